import { describe, expect, it } from "vitest";
import { realModeState } from "../../../../src/x86/state.js";
import type { X86State } from "../../../../src/x86/types.js";
import {
  EntryCtl, ExitCtl, F, FIELD_TABLE, IntrInfo, Pin, Proc, Proc2, SEGMENT_FIELDS, VmcsType, VmcsView, VmcsWidth, VMCS_REGION_BYTES,
} from "../vmcs-fields.js";
import { SOFT_CAPS, controlValue } from "./caps.js";
import {
  CHECKED_RFLAGS_BITS, CONTROL_CHECKS, EntryCheckMemo, GUEST_CHECKS, HOST_CHECKS, UNCHECKED_FIELDS, checkUsesEnv, runEntryChecks,
} from "./entry-checks.js";
import { KERNEL_HOST_STATE, eptPointerFor } from "./vmx-extension.js";

const ROOT = 0x0004_2000;
/** Host-physical addresses of the Frames bound as I/O bitmap A, B and MSR bitmap (GuestFrameRole order). */
const IO_A = 0x0005_0000, IO_B = 0x0005_1000, MSR_BM = 0x0005_3000;
/** A page directory pointer table whose third entry is present with reserved bit 1 set (SDM 4.4.1). */
const PDPT_BAD = 0x2000;
/** Frames bound as VM-entry MSR-load, VM-exit MSR-store and VM-exit MSR-load areas (256 entries each). */
const ML = 0x0006_0000, MS = 0x0006_1000, XL = 0x0006_2000;
const AREA = { length: 4096 };
const ENV = {
  eptRoot: ROOT,
  frames: [{ paddr: IO_A }, { paddr: IO_B }, { paddr: MSR_BM }, null, null, { paddr: ML, bytes: AREA }, { paddr: MS, bytes: AREA }, { paddr: XL, bytes: AREA }],
  memory: { read32: (pa: number) => (pa === PDPT_BAD + 16 ? 0x3 : 0) },
};

/** A VMCS that passes every check: the backend's controls, the kernel's host state, a real-mode guest. */
function baseline(): VmcsView {
  const v = new VmcsView(new Uint8Array(VMCS_REGION_BYTES));
  const c = SOFT_CAPS;
  v.set(F.PinControls, controlValue(c.pin, Pin.ExtIntExiting));
  v.set(F.ProcControls, controlValue(c.proc, Proc.HltExiting | Proc.UncondIoExiting | Proc.ActivateSecondary));
  v.set(F.Proc2Controls, Proc2.EnableEpt | Proc2.UnrestrictedGuest);
  v.set(F.ExitControls, controlValue(c.exit, ExitCtl.SaveDebugControls | ExitCtl.SaveEfer));
  v.set(F.EntryControls, controlValue(c.entry, EntryCtl.LoadDebugControls | EntryCtl.LoadEfer));
  v.set(F.EptPointer, eptPointerFor(ROOT));
  v.set(F.IoBitmapA, IO_A); v.set(F.IoBitmapB, IO_B); v.set(F.MsrBitmap, MSR_BM);
  for (const [enc, val] of KERNEL_HOST_STATE) v.set(enc, val);
  v.set(F.VmcsLinkPtr, 0xffffffff);
  v.set(F.VmcsLinkPtr | 1, 0xffffffff);
  writeGuest(v, realModeState(0, 0x1000));
  return v;
}

function writeGuest(v: VmcsView, s: X86State): void {
  v.set(F.GuestRip, s.eip); v.set(F.GuestRsp, s.esp); v.set(F.GuestRflags, s.eflags);
  v.set(F.GuestCr0, s.cr0); v.set(F.GuestCr3, s.cr3); v.set(F.GuestCr4, s.cr4); v.set(F.GuestDr7, s.dr7);
  for (const f of SEGMENT_FIELDS) {
    const r = s[f.name];
    v.set(f.sel, r.selector); v.set(f.base, r.base); v.set(f.limit, r.limit); v.set(f.ar, r.attrib);
  }
  v.set(F.GuestGdtrLimit, s.gdtr.limit); v.set(F.GuestIdtrLimit, s.idtr.limit);
}

const or = (v: VmcsView, enc: number, bits: number): void => v.set(enc, v.get(enc) | bits);
const andNot = (v: VmcsView, enc: number, bits: number): void => v.set(enc, v.get(enc) & ~bits);
const V = IntrInfo.Valid;
const v86Segments = (v: VmcsView): void => {
  for (const f of SEGMENT_FIELDS.slice(0, 6)) { v.set(f.base, v.get(f.sel) << 4); v.set(f.limit, 0xffff); v.set(f.ar, 0xf3); }
};

/** One mutation per check; each breaks exactly that rule. */
const CASES: Record<string, (v: VmcsView) => void> = {
  // controls → VMfailValid 7
  "pin-controls-vs-caps": (v) => andNot(v, F.PinControls, Pin.ExtIntExiting),
  "proc-controls-vs-caps": (v) => or(v, F.ProcControls, Proc.Cr8LoadExiting),
  "io-bitmap-address": (v) => { or(v, F.ProcControls, Proc.UseIoBitmaps); v.set(F.IoBitmapB | 1, 1); },
  "io-bitmap-is-bound-frame": (v) => { or(v, F.ProcControls, Proc.UseIoBitmaps); v.set(F.IoBitmapB, IO_A); },
  "msr-bitmap-address": (v) => { or(v, F.ProcControls, Proc.UseMsrBitmaps); v.set(F.MsrBitmap | 1, 1); },
  "msr-bitmap-is-bound-frame": (v) => { or(v, F.ProcControls, Proc.UseMsrBitmaps); v.set(F.MsrBitmap, MSR_BM + 0x1000); },
  "proc2-controls-vs-caps": (v) => or(v, F.Proc2Controls, Proc2.EnableVpid),
  "cr3-target-count": (v) => v.set(F.Cr3TargetCount, 5),
  "exit-msr-store-address": (v) => { v.set(F.ExitMsrStoreCount, 1); v.set(F.ExitMsrStoreAddr, MS + 8); },
  "exit-msr-store-is-bound-frame": (v) => { v.set(F.ExitMsrStoreCount, 1); v.set(F.ExitMsrStoreAddr, MS + 0x1000); },
  // Last byte beyond 4 GiB (the 32-bit physical-address width).
  "exit-msr-load-address": (v) => { v.set(F.ExitMsrLoadCount, 2); v.set(F.ExitMsrLoadAddr, 0xfffffff0); },
  // Starts in the frame, 257 entries run past its end.
  "exit-msr-load-is-bound-frame": (v) => { v.set(F.ExitMsrLoadCount, 257); v.set(F.ExitMsrLoadAddr, XL); },
  "entry-msr-load-address": (v) => { v.set(F.EntryMsrLoadCount, 1); v.set(F.EntryMsrLoadAddr | 1, 1); },
  "entry-msr-load-is-bound-frame": (v) => { v.set(F.EntryMsrLoadCount, 1); v.set(F.EntryMsrLoadAddr, MS); },
  "unrestricted-guest-needs-ept": (v) => v.set(F.Proc2Controls, Proc2.UnrestrictedGuest),
  "eptp-memory-type": (v) => v.set(F.EptPointer, ROOT | (3 << 3) | 1),
  "eptp-walk-length": (v) => v.set(F.EptPointer, ROOT | (4 << 3) | 6),
  "eptp-reserved": (v) => v.set(F.EptPointer, eptPointerFor(ROOT) | 0x80), // bit 6 is A/D enable (SDM 29.3.5), bits 11:7 reserved
  "eptp-is-bound-gpspace": (v) => v.set(F.EptPointer, eptPointerFor(ROOT + 0x1000)),
  "exit-controls-vs-caps": (v) => or(v, F.ExitControls, ExitCtl.HostAddrSpaceSize),
  "entry-controls-vs-caps": (v) => or(v, F.EntryControls, EntryCtl.Ia32eModeGuest),
  "entry-intr-reserved": (v) => v.set(F.EntryIntrInfo, V | (1 << 12) | 0x20),
  "entry-intr-type": (v) => v.set(F.EntryIntrInfo, V | (1 << 8) | 0x20),
  "entry-intr-other-event-vector": (v) => v.set(F.EntryIntrInfo, V | (7 << 8) | 1),
  "virtual-nmis-need-nmi-exiting": (v) => or(v, F.PinControls, Pin.VirtualNmis),
  "nmi-window-needs-virtual-nmis": (v) => or(v, F.ProcControls, Proc.NmiWindow),
  "save-timer-needs-timer": (v) => or(v, F.ExitControls, ExitCtl.SavePreemptionTimer),
  "entry-intr-vector": (v) => v.set(F.EntryIntrInfo, V | (2 << 8) | 3),
  // real mode with unrestricted guest: no error code may be delivered
  "entry-intr-error-code": (v) => v.set(F.EntryIntrInfo, V | (3 << 8) | 13 | IntrInfo.DeliverErrorCode),
  "entry-intr-error-code-reserved": (v) => {
    or(v, F.GuestCr0, 1);
    v.set(F.EntryIntrInfo, V | (3 << 8) | 13 | IntrInfo.DeliverErrorCode);
    v.set(F.EntryExceptionErrorCode, 0x10000);
  },
  "entry-intr-instr-length": (v) => { v.set(F.EntryIntrInfo, V | (4 << 8) | 0x21); v.set(F.EntryInstrLen, 16); },
  // host → VMfailValid 8
  "host-cr0-fixed": (v) => v.set(F.HostCr0, 0x31),
  "host-cr4-fixed": (v) => v.set(F.HostCr4, 1 << 13),
  "host-selector-rpl-ti": (v) => v.set(F.HostDsSel, 0x13),
  "host-cs-nonnull": (v) => v.set(F.HostCsSel, 0),
  "host-tr-nonnull": (v) => v.set(F.HostTrSel, 0),
  "host-ss-nonnull": (v) => v.set(F.HostSsSel, 0),
  // guest → exit 33
  "guest-cr0-fixed": (v) => or(v, F.GuestCr0, 1 << 6),
  "guest-cr0-pg-needs-pe": (v) => v.set(F.GuestCr0, 0x80000010),
  "guest-cr4-fixed": (v) => v.set(F.GuestCr4, 1 << 13),
  "guest-efer": (v) => v.set(F.GuestEfer, 0x400),
  "guest-v86-segments": (v) => { or(v, F.GuestCr0, 1); or(v, F.GuestRflags, 1 << 17); },
  "guest-tr-ti": (v) => v.set(F.GuestTrSel, 4),
  "guest-ldtr-ti": (v) => v.set(F.GuestLdtrSel, 4),
  "guest-ss-rpl": (v) => { v.set(F.Proc2Controls, Proc2.EnableEpt); v.set(F.GuestCr0, 0x80000011); v.set(F.GuestSsSel, 1); },
  "guest-cs-type": (v) => v.set(F.GuestCsAr, 0x91),
  "guest-ss-type": (v) => v.set(F.GuestSsAr, 0x9b),
  "guest-data-seg-type": (v) => v.set(F.GuestDsAr, 0x92),
  "guest-seg-s": (v) => v.set(F.GuestDsAr, 0x83),
  "guest-cs-dpl": (v) => v.set(F.GuestCsAr, 0xbb),
  "guest-ss-dpl": (v) => { v.set(F.GuestCsAr, 0x93); v.set(F.GuestSsAr, 0xb3); },
  "guest-seg-present": (v) => v.set(F.GuestDsAr, 0x13),
  "guest-seg-ar-reserved": (v) => v.set(F.GuestDsAr, 0x193),
  "guest-seg-granularity": (v) => v.set(F.GuestDsLimit, 0x1fffff),
  "guest-tr-ar": (v) => v.set(F.GuestTrAr, 0x81),
  "guest-ldtr-ar": (v) => v.set(F.GuestLdtrAr, 0x83),
  "guest-gdtr-idtr-limit": (v) => v.set(F.GuestGdtrLimit, 0x10000),
  "guest-rflags-reserved": (v) => v.set(F.GuestRflags, 0x0a),
  "guest-rflags-vm-needs-pe": (v) => { v86Segments(v); v.set(F.GuestRflags, 0x20002); },
  "guest-rflags-if-for-extint": (v) => v.set(F.EntryIntrInfo, V | 0x20),
  "guest-activity-valid": (v) => v.set(F.GuestActivity, 4),
  "guest-activity-blocking": (v) => { v.set(F.GuestRflags, 0x202); v.set(F.GuestInterruptibility, 1); v.set(F.GuestActivity, 1); },
  "guest-activity-injection": (v) => { v.set(F.GuestRflags, 0x202); v.set(F.GuestActivity, 3); v.set(F.EntryIntrInfo, V | 0x20); },
  "guest-nmi-injection-movss": (v) => { v.set(F.EntryIntrInfo, V | (2 << 8) | 2); v.set(F.GuestInterruptibility, 2); },
  "guest-nmi-injection-sti": (v) => { v.set(F.GuestRflags, 0x202); v.set(F.EntryIntrInfo, V | (2 << 8) | 2); v.set(F.GuestInterruptibility, 1); },
  "guest-virtual-nmi-blocking": (v) => {
    or(v, F.PinControls, Pin.NmiExiting | Pin.VirtualNmis); v.set(F.EntryIntrInfo, V | (2 << 8) | 2); v.set(F.GuestInterruptibility, 8);
  },
  "guest-pending-dbg-reserved": (v) => v.set(F.GuestPendingDbg, 0x10),
  "guest-pending-dbg-bs": (v) => { v.set(F.GuestActivity, 1); v.set(F.GuestPendingDbg, 0x4000); },
  "guest-debugctl-reserved": (v) => v.set(F.GuestDebugCtl, 4),
  "guest-ss-dpl-rpl": (v) => {
    v.set(F.Proc2Controls, Proc2.EnableEpt); v.set(F.GuestCr0, 0x80000011); v.set(F.GuestSsSel, 3); v.set(F.GuestCsSel, 3);
  },
  "guest-data-seg-dpl-rpl": (v) => { v.set(F.Proc2Controls, Proc2.EnableEpt); v.set(F.GuestCr0, 0x80000011); v.set(F.GuestDsSel, 3); },
  "guest-pdpte-fields": (v) => { v.set(F.GuestCr0, 0x80000011); v.set(F.GuestCr4, 0x20); v.set(F.GuestPdpte2, 0x3); },
  "guest-pdpte-load": (v) => {
    v.set(F.Proc2Controls, 0); v.set(F.GuestCr0, 0x80000011); v.set(F.GuestCr4, 0x20); v.set(F.GuestCr3, PDPT_BAD);
  },
  "guest-activity-hlt-ss-dpl": (v) => {
    v.set(F.GuestCr0, 0x11); v.set(F.GuestCsAr, 0xbb); v.set(F.GuestSsAr, 0xb3); v.set(F.GuestActivity, 1);
  },
  "guest-interruptibility-reserved": (v) => v.set(F.GuestInterruptibility, 0x20),
  "guest-sti-and-movss": (v) => { v.set(F.GuestRflags, 0x202); v.set(F.GuestInterruptibility, 3); },
  "guest-sti-needs-if": (v) => v.set(F.GuestInterruptibility, 1),
  "guest-extint-not-blocked": (v) => {
    v.set(F.GuestRflags, 0x202); v.set(F.GuestInterruptibility, 2); v.set(F.EntryIntrInfo, V | 0x20);
  },
  "guest-smi-blocking": (v) => v.set(F.GuestInterruptibility, 4),
  "guest-vmcs-link-pointer": (v) => v.set(F.VmcsLinkPtr, 0),
};

const ALL = [
  ...CONTROL_CHECKS.map((c) => ({ c, kind: "control", code: 7 })),
  ...HOST_CHECKS.map((c) => ({ c, kind: "host", code: 8 })),
  ...GUEST_CHECKS.map((c) => ({ c, kind: "guest", code: 33 })),
];

describe("VM-entry checks", () => {
  it("pass a well-formed real-mode unrestricted-guest VMCS", () => {
    expect(runEntryChecks(baseline(), SOFT_CAPS, ENV)?.check.name).toBeUndefined();
  });

  it("have exactly one breaking case per check, and unique names", () => {
    const names = ALL.map((x) => x.c.name);
    expect(new Set(names).size).toBe(names.length);
    expect(Object.keys(CASES).sort()).toEqual([...names].sort());
  });

  it.each(ALL.map((x) => [x.c.name, x] as const))("%s: breaking only this rule fails entry with it", (name, x) => {
    const v = baseline();
    CASES[name]!(v);
    const f = runEntryChecks(v, SOFT_CAPS, ENV);
    expect(f?.check.name).toBe(name);
    expect(f?.kind).toBe(x.kind);
    expect(f?.code).toBe(x.code);
    expect(x.c.rule).toMatch(/^(SDM 27\.|hvkit:)/);
  });

  it("gives the PDPTE-load failure qualification 2 and the NMI-with-STI-blocking one 3 (SDM 27.8)", () => {
    const a = baseline();
    CASES["guest-pdpte-load"]!(a);
    expect(runEntryChecks(a, SOFT_CAPS, ENV)?.qualification).toBe(2);
    // Same PDPT, all entries valid: passes.
    expect(runEntryChecks(a, SOFT_CAPS, { ...ENV, memory: { read32: (pa: number) => (pa === PDPT_BAD + 16 ? 0x1001 : 0) } })?.check.name)
      .toBeUndefined();
    const b = baseline();
    CASES["guest-nmi-injection-sti"]!(b);
    expect(runEntryChecks(b, SOFT_CAPS, ENV)?.qualification).toBe(3);
  });

  it("accepts the shutdown and wait-for-SIPI activity states and a pending MTF injection (type 7, vector 0)", () => {
    for (const a of [2, 3]) {
      const v = baseline();
      v.set(F.GuestActivity, a);
      expect(runEntryChecks(v, SOFT_CAPS, ENV)?.check.name).toBeUndefined();
    }
    const v = baseline();
    v.set(F.EntryIntrInfo, V | (7 << 8));
    expect(runEntryChecks(v, SOFT_CAPS, ENV)?.check.name).toBeUndefined();
  });

  it("gives the VMCS-link-pointer failure qualification 4 and other guest failures 0 (SDM 27.8)", () => {
    const a = baseline();
    CASES["guest-vmcs-link-pointer"]!(a);
    expect(runEntryChecks(a, SOFT_CAPS, ENV)?.qualification).toBe(4);
    const b = baseline();
    CASES["guest-rflags-reserved"]!(b);
    expect(runEntryChecks(b, SOFT_CAPS, ENV)?.qualification).toBe(0);
  });

  it("checks controls before host state and host state before guest state", () => {
    const v = baseline();
    CASES["guest-rflags-reserved"]!(v);
    CASES["host-cs-nonnull"]!(v);
    expect(runEntryChecks(v, SOFT_CAPS, ENV)?.kind).toBe("host");
    CASES["pin-controls-vs-caps"]!(v);
    expect(runEntryChecks(v, SOFT_CAPS, ENV)?.kind).toBe("control");
  });

  it("accept bound, aligned bitmap addresses with use I/O and MSR bitmaps set", () => {
    const v = baseline();
    or(v, F.ProcControls, Proc.UseIoBitmaps | Proc.UseMsrBitmaps);
    expect(runEntryChecks(v, SOFT_CAPS, ENV)?.check.name).toBeUndefined();
    expect(runEntryChecks(v, SOFT_CAPS, { eptRoot: ROOT })?.check.name).toBe("io-bitmap-is-bound-frame");
  });

  it("lifts the CR0.PE/PG fixed bits only for an unrestricted guest", () => {
    const v = baseline();
    v.set(F.Proc2Controls, Proc2.EnableEpt);
    expect(runEntryChecks(v, SOFT_CAPS, ENV)?.check.name).toBe("guest-cr0-fixed");
  });
});

/** A VmcsView that records every encoding the checks read. */
class RecordingView extends VmcsView {
  readonly reads = new Set<number>();
  override get(enc: number): number { this.reads.add(enc); return super.get(enc); }
}
const outcome = (f: ReturnType<typeof runEntryChecks>): string => (f === undefined ? "pass" : `${f.kind}:${f.code}:${f.qualification}:${f.check.name}`);
/** The baseline and each breaking case, each also with I/O and MSR bitmaps on (more paths through the checks). */
function variants(): [string, VmcsView][] {
  const out: [string, VmcsView][] = [];
  for (const name of ["baseline", ...Object.keys(CASES)]) {
    for (const bitmaps of [false, true]) {
      const v = new RecordingView(new Uint8Array(VMCS_REGION_BYTES));
      v.bytes.set(baseline().bytes);
      if (bitmaps) or(v, F.ProcControls, Proc.UseIoBitmaps | Proc.UseMsrBitmaps);
      if (name !== "baseline") CASES[name]!(v);
      out.push([`${name}${bitmaps ? " +bitmaps" : ""}`, v]);
    }
  }
  return out;
}

describe("VM-entry check memo", () => {
  it("no check reads RIP, RSP, the preemption timer value, an exit-information field or the high half of a field that has none", () => {
    const reads = new Set<number>();
    for (const [, v] of variants()) {
      for (const c of [...CONTROL_CHECKS, ...HOST_CHECKS, ...GUEST_CHECKS]) c.fails(v, SOFT_CAPS, ENV);
      for (const e of (v as RecordingView).reads) reads.add(e);
    }
    const readOnly = [...FIELD_TABLE.values()].filter((f) => f.type === VmcsType.ReadOnly).map((f) => f.encoding);
    expect([...UNCHECKED_FIELDS, ...readOnly].filter((e) => reads.has(e) || reads.has(e | 1))).toEqual([]);
    const notW64 = [...FIELD_TABLE.values()].filter((f) => f.width !== VmcsWidth.W64).map((f) => f.encoding | 1);
    expect(notW64.filter((e) => reads.has(e))).toEqual([]);
    expect(reads.has(F.EptPointer | 1)).toBe(true);
    expect(reads.has(F.GuestRflags)).toBe(true); // the recording works
  });

  it("RFLAGS bits outside CHECKED_RFLAGS_BITS change no outcome", () => {
    for (const [name, v] of variants()) {
      const want = outcome(runEntryChecks(v, SOFT_CAPS, ENV));
      const rf = v.get(F.GuestRflags);
      for (let bit = 0; bit < 32; bit++) {
        if ((CHECKED_RFLAGS_BITS >>> bit) & 1) continue;
        v.set(F.GuestRflags, rf ^ (1 << bit));
        expect(outcome(runEntryChecks(v, SOFT_CAPS, ENV)), `${name}, RFLAGS bit ${bit}`).toBe(want);
      }
      v.set(F.GuestRflags, rf);
    }
  });

  it("the checks that read kernel state outside the VMCS are the ones declaring env", () => {
    expect([...CONTROL_CHECKS, ...HOST_CHECKS, ...GUEST_CHECKS].filter(checkUsesEnv).map((c) => c.name)).toEqual([
      "io-bitmap-is-bound-frame", "msr-bitmap-is-bound-frame", "eptp-is-bound-gpspace", "exit-msr-store-is-bound-frame",
      "exit-msr-load-is-bound-frame", "entry-msr-load-is-bound-frame", "guest-pdpte-load",
    ]);
  });

  it("after a passing entry, gives the same outcome as all the checks for every breaking case", () => {
    for (const [name, v] of variants()) {
      const memo = new EntryCheckMemo();
      const base = new VmcsView(v.bytes);
      const saved = v.bytes.slice();
      base.bytes.set(baseline().bytes);
      expect(memo.run(base, SOFT_CAPS, ENV)).toBeUndefined();
      v.bytes.set(saved);
      expect(outcome(memo.run(v, SOFT_CAPS, ENV)), name).toBe(outcome(runEntryChecks(v, SOFT_CAPS, ENV)));
    }
  });

  it("skips the VMCS-only checks while only unchecked fields change, and still runs those that read env", () => {
    const v = baseline();
    or(v, F.ProcControls, Proc.UseIoBitmaps | Proc.UseMsrBitmaps);
    const memo = new EntryCheckMemo();
    expect(memo.run(v, SOFT_CAPS, ENV)).toBeUndefined();
    v.set(F.GuestRip, 0x1234); v.set(F.GuestRsp, 0x88); v.set(F.GuestRflags, 2 | 0x8d5); v.set(F.ExitReason, 30);
    expect(memo.run(v, SOFT_CAPS, ENV)).toBeUndefined();
    expect(memo.hits).toBe(1);
    // The I/O bitmap frames are no longer bound: an env check, run on a hit too.
    expect(outcome(memo.run(v, SOFT_CAPS, { eptRoot: ROOT }))).toBe("control:7:0:io-bitmap-is-bound-frame");
    expect(memo.hits).toBe(2);
    // A checked bit (IF set with STI blocking already there) is a miss: all checks run.
    v.set(F.GuestInterruptibility, 1);
    expect(outcome(memo.run(v, SOFT_CAPS, ENV))).toBe("guest:33:0:guest-sti-needs-if");
    expect(memo.hits).toBe(2);
  });
});

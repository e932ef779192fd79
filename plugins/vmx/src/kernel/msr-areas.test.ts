// VM-entry MSR-load, VM-exit MSR-store and VM-exit MSR-load areas (SDM Vol. 3C 25.7.2,
// 25.8.2, 27.4, 28.4, 28.6, 28.7) and CR3-target values (25.6.7, 26.1.3) through the real
// kernel: the monitor binds the area Frames by capability and writes their addresses and
// counts; the guest sees the loaded MSRs, the store area receives the guest's values.
import { describe, expect, it } from "vitest";
import { GuestFrameRole, ObjType, SysErr } from "../../../../src/kernel/api.js";
import { testMachine, withVmcs, writeRealModeGuest } from "../testing/machine.js";
import { ExitReason, F, Proc, Proc2, VmxError } from "../vmcs-fields.js";
import { SOFT_CAPS, VmxMsr, vmxMsrValue } from "./caps.js";
import { VmxAbort, type VmcsState } from "./vmx-extension.js";

const CODE = 0x1000;
const SYSENTER_CS = 0x174, SYSENTER_ESP = 0x175, APIC_BASE = 0x1b;
const FAIL = 0x80000000;

type Entry = readonly [index: number, lo: number, hi?: number, reserved?: number];
interface Area { view: Uint8Array; addr: number }

interface Setup {
  proc?: number;
  regs?: Partial<Record<"eax" | "ecx" | "edx", number>>;
  entryLoad?: readonly Entry[];
  exitStore?: readonly Entry[];
  exitLoad?: readonly Entry[];
  /** Bytes of each area Frame (default 4096). */
  areaBytes?: number;
  fields?: readonly (readonly [number, number])[];
}

const u32 = (b: Uint8Array, o: number) => new DataView(b.buffer, b.byteOffset).getUint32(o, true);
function writeEntries(a: Area, list: readonly Entry[]): void {
  const dv = new DataView(a.view.buffer, a.view.byteOffset, a.view.byteLength);
  list.forEach(([idx, lo, hi = 0, reserved = 0], i) => {
    dv.setUint32(i * 16, idx, true); dv.setUint32(i * 16 + 4, reserved, true);
    dv.setUint32(i * 16 + 8, lo, true); dv.setUint32(i * 16 + 12, hi, true);
  });
}

/** A real-mode guest at 0000:1000 running `code` then HLT, with the three areas bound (an MSR bitmap of zeros: no MSR exits). */
function machine(code: number[], setup: Setup = {}) {
  const m = testMachine();
  const { sys } = m;
  const { dcb, vmcs } = withVmcs(m, false);
  const frame = (role: GuestFrameRole, bytes = 4096): Area => {
    expect(sys.ramRetype(m.caps.ram, ObjType.Frame, bytes)).toBe(SysErr.Ok);
    const cap = sys.ret.cap;
    expect(sys.frameMap(cap)).toBe(SysErr.Ok);
    const view = sys.ret.view!;
    expect(sys.capIdentify(cap)).toBe(SysErr.Ok);
    const addr = sys.ret.value >>> 0;
    expect(sys.dispatcherBindFrame(dcb, role, cap)).toBe(SysErr.Ok);
    return { view, addr };
  };
  const msrBitmap = frame(GuestFrameRole.VmxMsrBitmap);
  const entryLoad = frame(GuestFrameRole.VmxEntryMsrLoad, setup.areaBytes);
  const exitStore = frame(GuestFrameRole.VmxExitMsrStore, setup.areaBytes);
  const exitLoad = frame(GuestFrameRole.VmxExitMsrLoad, setup.areaBytes);
  expect(sys.vmptrld(dcb, vmcs)).toBe(SysErr.Ok);
  m.ram.set(code, CODE);
  m.ram[CODE + code.length] = 0xf4; // hlt
  const w = (enc: number, v: number) => expect(sys.vmwrite(dcb, enc, v)).toBe(SysErr.Ok);
  w(F.PinControls, SOFT_CAPS.pin.mustBe1);
  w(F.ProcControls, SOFT_CAPS.proc.mustBe1 | Proc.HltExiting | Proc.ActivateSecondary | Proc.UseMsrBitmaps | (setup.proc ?? 0));
  w(F.Proc2Controls, Proc2.EnableEpt | Proc2.UnrestrictedGuest);
  w(F.ExitControls, SOFT_CAPS.exit.mustBe1);
  w(F.EntryControls, SOFT_CAPS.entry.mustBe1);
  writeRealModeGuest(w, CODE, 0x10, 0);
  w(F.MsrBitmap, msrBitmap.addr);
  const lists = [
    [entryLoad, setup.entryLoad, F.EntryMsrLoadAddr, F.EntryMsrLoadCount],
    [exitStore, setup.exitStore, F.ExitMsrStoreAddr, F.ExitMsrStoreCount],
    [exitLoad, setup.exitLoad, F.ExitMsrLoadAddr, F.ExitMsrLoadCount],
  ] as const;
  for (const [area, list, addr, count] of lists) {
    if (list === undefined) continue;
    writeEntries(area, list);
    w(addr, area.addr); w(count, list.length);
  }
  for (const [enc, v] of setup.fields ?? []) w(enc, v);
  const g = m.caps.guestRegs;
  const r = setup.regs ?? {};
  g[0] = r.eax ?? 0; g[1] = r.ecx ?? 0; g[2] = r.edx ?? 0;
  const rd = (enc: number) => { expect(sys.vmread(dcb, enc)).toBe(SysErr.Ok); return sys.ret.value >>> 0; };
  const st = () => m.ext.controls[0]!.ext as VmcsState;
  const launch = () => {
    const err = sys.vmlaunch(dcb);
    return { err, vmError: sys.ret.vmInstructionError, check: st().lastFailure?.check.name };
  };
  return { m, sys, dcb, vmcs, w, rd, st, launch, regs: g, areas: { entryLoad, exitStore, exitLoad } };
}

const RDMSR = [0x0f, 0x32], WRMSR = [0x0f, 0x30];

describe("VM-entry MSR-load area (SDM 27.4)", () => {
  it("loads each entry into the guest before its first instruction: RDMSR in the guest sees it without exiting", () => {
    const g = machine(RDMSR, { regs: { ecx: SYSENTER_CS }, entryLoad: [[SYSENTER_ESP, 0x8000], [SYSENTER_CS, 0x0010]] });
    expect(g.launch().err).toBe(SysErr.Ok);
    expect(g.rd(F.ExitReason)).toBe(ExitReason.Hlt);
    expect([g.regs[0], g.regs[2]]).toEqual([0x0010, 0]);
  });

  it.each([
    ["an index in the x2APIC range 800H-8FFH", [SYSENTER_CS, 1], [0x802, 0]],
    ["IA32_FS_BASE", [SYSENTER_CS, 1], [0xc0000100, 0]],
    ["IA32_GS_BASE", [SYSENTER_CS, 1], [0xc0000101, 0]],
    ["IA32_SMM_MONITOR_CTL (writable only in SMM)", [SYSENTER_CS, 1], [0x9b, 0]],
    ["reserved bits 63:32 set", [SYSENTER_CS, 1], [SYSENTER_ESP, 0, 0, 1]],
    ["a value WRMSR refuses with #GP (IA32_APIC_BASE moved)", [SYSENTER_CS, 1], [APIC_BASE, 0xfee00000]],
    ["an MSR the core does not have", [SYSENTER_CS, 1], [0x12345, 0]],
  ] as const)("entry 3 naming %s fails the entry with exit 34 | bit 31, qualification 3", (_n, ok, bad) => {
    const g = machine([0x90], { entryLoad: [[SYSENTER_ESP, 0x1234], ok as Entry, bad as Entry] });
    expect(g.launch().err).toBe(SysErr.Ok);
    expect(g.rd(F.ExitReason)).toBe((FAIL | ExitReason.EntryFailMsrLoading) >>> 0);
    expect(g.rd(F.ExitQualification)).toBe(3);
    // SDM 27.8: the guest-state area is not modified and the launch state stays clear.
    expect(g.rd(F.GuestRip)).toBe(CODE);
    expect(g.st().launched).toBe(false);
  });

  it("keeps the MSRs loaded before the failing entry in the guest (SDM 27.8)", () => {
    // IA32_MTRR_PHYSBASE0 (200h): an MSR the guest-state area does not also load (the
    // SYSENTER MSRs would be reloaded from their VMCS fields at the next entry, SDM 27.3.2.1).
    const MTRR_PHYSBASE0 = 0x200;
    const g = machine(RDMSR, { regs: { ecx: MTRR_PHYSBASE0 }, entryLoad: [[MTRR_PHYSBASE0, 0x0006], [0xc0000100, 0]] });
    g.launch();
    expect(g.rd(F.ExitQualification)).toBe(2);
    g.w(F.EntryMsrLoadCount, 0);
    expect(g.launch().err).toBe(SysErr.Ok); // still clear: VMLAUNCH again
    expect(g.rd(F.ExitReason)).toBe(ExitReason.Hlt);
    expect(g.regs[0]).toBe(0x0006);
  });

  it("fails a list longer than IA32_VMX_MISC[27:25] recommends at the first entry beyond it, 512 * (N + 1) + 1", () => {
    const n = Number((vmxMsrValue(SOFT_CAPS, VmxMsr.Misc)! >> 25n) & 7n);
    const max = 512 * (n + 1);
    const list: Entry[] = Array.from({ length: max + 1 }, () => [SYSENTER_CS, 8] as const);
    const g = machine([0x90], { entryLoad: list, areaBytes: 4096 * Math.ceil(((max + 1) * 16) / 4096) });
    g.launch();
    expect([g.rd(F.ExitReason), g.rd(F.ExitQualification)]).toEqual([(FAIL | ExitReason.EntryFailMsrLoading) >>> 0, max + 1]);
    // Exactly the recommended maximum loads.
    g.w(F.EntryMsrLoadCount, max);
    g.launch();
    expect(g.rd(F.ExitReason)).toBe(ExitReason.Hlt);
  });
});

describe("MSR-area control checks (SDM 27.2.1.2, 27.2.1.3): VMfailValid 7", () => {
  it.each([
    ["entry-msr-load-address", F.EntryMsrLoadAddr, F.EntryMsrLoadCount, "entryLoad", 8, 1],
    ["exit-msr-store-address", F.ExitMsrStoreAddr, F.ExitMsrStoreCount, "exitStore", 4, 1],
    ["exit-msr-load-address", F.ExitMsrLoadAddr, F.ExitMsrLoadCount, "exitLoad", 1, 1],
  ] as const)("%s: a misaligned address with a nonzero count", (check, addr, count, area, off, n) => {
    const g = machine([0x90]);
    g.w(addr, g.areas[area].addr + off); g.w(count, n);
    expect(g.launch()).toEqual({ err: SysErr.VmFailValid, vmError: VmxError.EntryInvalidControls, check });
    g.w(count, 0); // a zero count ignores the address
    expect(g.launch().err).toBe(SysErr.Ok);
  });

  it("an area whose last byte lies beyond the 32-bit physical-address width", () => {
    const g = machine([0x90]);
    g.w(F.ExitMsrStoreAddr, 0xfffffff0); g.w(F.ExitMsrStoreCount, 2);
    expect(g.launch().check).toBe("exit-msr-store-address");
    g.w(F.ExitMsrStoreAddr, 0); g.w(F.ExitMsrStoreAddr | 1, 1); g.w(F.ExitMsrStoreCount, 1);
    expect(g.launch().check).toBe("exit-msr-store-address");
  });

  it("an area outside the Frame bound in its role (hvkit capability rule)", () => {
    const g = machine([0x90]);
    g.w(F.EntryMsrLoadAddr, g.areas.exitStore.addr); g.w(F.EntryMsrLoadCount, 1);
    expect(g.launch().check).toBe("entry-msr-load-is-bound-frame");
    g.w(F.EntryMsrLoadAddr, g.areas.entryLoad.addr + 4096 - 16); g.w(F.EntryMsrLoadCount, 2);
    expect(g.launch().check).toBe("entry-msr-load-is-bound-frame");
    g.w(F.EntryMsrLoadCount, 1);
    expect(g.launch().err).toBe(SysErr.Ok);
  });
});

describe("VM-exit MSR-store and MSR-load areas (SDM 28.4, 28.6, 28.7)", () => {
  it("stores the guest's current value of each MSR named in the store area at the exit", () => {
    const g = machine(WRMSR, {
      regs: { ecx: SYSENTER_ESP, eax: 0xcafe0000 },
      exitStore: [[SYSENTER_CS, 0xdead, 0xbeef], [SYSENTER_ESP, 0xdead, 0xbeef]],
    });
    expect(g.launch().err).toBe(SysErr.Ok);
    expect(g.rd(F.ExitReason)).toBe(ExitReason.Hlt);
    const b = g.areas.exitStore.view;
    expect([u32(b, 8), u32(b, 12), u32(b, 24), u32(b, 28)]).toEqual([0, 0, 0xcafe0000, 0]);
    expect(g.st().view.abort).toBe(0);
  });

  it("a store entry that fails (x2APIC index) is a VMX abort with indicator 1: VMLAUNCH returns VmxAbort, the exit information is still written", () => {
    const g = machine([0x90], { exitStore: [[SYSENTER_CS, 0], [0x830, 0]], exitLoad: [[0x9b, 0]] });
    expect(g.launch().err).toBe(SysErr.VmxAbort);
    expect(g.sys.ret.value).toBe(VmxAbort.SaveGuestMsrs);
    expect(g.rd(F.ExitReason)).toBe(ExitReason.Hlt);
    expect(g.st().view.abort).toBe(VmxAbort.SaveGuestMsrs);
  });

  it("a valid host MSR-load list is checked and leaves the guest's MSRs alone", () => {
    const g = machine(RDMSR, {
      regs: { ecx: SYSENTER_CS },
      entryLoad: [[SYSENTER_CS, 0x0008]],
      exitLoad: [[SYSENTER_CS, 0x0010], [SYSENTER_ESP, 0]],
    });
    g.launch();
    expect(g.rd(F.ExitReason)).toBe(ExitReason.Hlt);
    expect(g.st().view.abort).toBe(0);
    // The next entry (no entry load) still sees the guest's value, not the host list's.
    g.w(F.EntryMsrLoadCount, 0);
    g.w(F.GuestRip, CODE); g.regs[1] = SYSENTER_CS;
    expect(g.sys.vmresume(g.dcb)).toBe(SysErr.Ok);
    expect(g.regs[0]).toBe(0x0008);
  });

  it.each([
    ["IA32_FS_BASE", [0xc0000100, 0]],
    ["reserved bits 63:32", [SYSENTER_CS, 0, 0, 2]],
  ] as const)("a host MSR-load entry naming %s is a VMX abort with indicator 4", (_n, bad) => {
    const g = machine([0x90], { exitLoad: [[SYSENTER_CS, 0], bad as Entry] });
    expect(g.launch().err).toBe(SysErr.VmxAbort);
    expect(g.sys.ret.value).toBe(VmxAbort.LoadHostMsrs);
    expect(g.rd(F.ExitReason)).toBe(ExitReason.Hlt);
    expect(g.st().view.abort).toBe(VmxAbort.LoadHostMsrs);
  });

  it("a VM-entry failure processes the VM-exit MSR-load area (SDM 27.8); a failing entry there is a VMX abort", () => {
    const g = machine([0x90], { entryLoad: [[0x802, 0]], exitLoad: [[0x9b, 0]] });
    expect(g.launch().err).toBe(SysErr.VmxAbort);
    expect(g.sys.ret.value).toBe(VmxAbort.LoadHostMsrs);
    expect(g.rd(F.ExitReason)).toBe((FAIL | ExitReason.EntryFailMsrLoading) >>> 0);
    expect(g.st().view.abort).toBe(VmxAbort.LoadHostMsrs);
  });

  it("after a VMX abort the VMCS is in shutdown: VMRESUME and VMLAUNCH return VmxAbort without running the guest, also after VMPTRLD", () => {
    // inc ax; hlt: each entry that runs the guest increments AX.
    const g = machine([0x40], { exitStore: [[0x830, 0]] });
    expect(g.launch().err).toBe(SysErr.VmxAbort);
    expect([g.regs[0], g.rd(F.GuestRip)]).toEqual([1, CODE + 1]);
    g.w(F.GuestRip, CODE);
    g.w(F.ExitMsrStoreCount, 0); // the bad area is gone, but the processor stays in shutdown
    g.sys.ret.value = 0;
    expect(g.sys.vmresume(g.dcb)).toBe(SysErr.VmxAbort);
    expect(g.sys.ret.value).toBe(VmxAbort.SaveGuestMsrs);
    expect(g.sys.vmlaunch(g.dcb)).toBe(SysErr.VmxAbort);
    expect(g.sys.vmptrld(g.dcb, g.vmcs)).toBe(SysErr.Ok);
    expect(g.sys.vmresume(g.dcb)).toBe(SysErr.VmxAbort);
    expect([g.regs[0], g.rd(F.GuestRip), g.rd(F.ExitReason)]).toEqual([1, CODE, ExitReason.Hlt]);
    expect(g.st().view.abort).toBe(VmxAbort.SaveGuestMsrs);
  });

  it("VMCLEAR ends the shutdown and zeroes the abort indicator: the VMCS can be loaded and launched again", () => {
    const g = machine([0x40], { exitStore: [[0x830, 0]] });
    expect(g.launch().err).toBe(SysErr.VmxAbort);
    expect(g.sys.vmclear(g.dcb, g.vmcs)).toBe(SysErr.Ok);
    expect(g.st().view.abort).toBe(0);
    expect(g.sys.vmptrld(g.dcb, g.vmcs)).toBe(SysErr.Ok);
    expect(g.sys.vmresume(g.dcb)).toBe(SysErr.VmFailValid); // the launch state is clear
    g.w(F.ExitMsrStoreCount, 0);
    g.w(F.GuestRip, CODE);
    expect(g.launch().err).toBe(SysErr.Ok);
    expect([g.regs[0], g.rd(F.ExitReason)]).toEqual([2, ExitReason.Hlt]);
  });
});

describe("CR3-target values (SDM 25.6.7, 26.1.3)", () => {
  const MOV_CR3_EAX = [0x0f, 0x22, 0xd8];
  const targets = (count: number) => [
    [F.Cr3TargetCount, count], [F.Cr3Target0, 0x3000], [F.Cr3Target1, 0x5000], [F.Cr3Target2, 0x7000], [F.Cr3Target3, 0x9000],
  ] as const;

  it("IA32_VMX_MISC reports 4 CR3-target values", () => {
    expect((vmxMsrValue(SOFT_CAPS, VmxMsr.Misc)! >> 16n) & 0x1ffn).toBe(4n);
  });

  it.each([0x3000, 0x5000, 0x9000])("a MOV to CR3 of target value %s loads CR3 without exiting", (value) => {
    const g = machine(MOV_CR3_EAX, { proc: Proc.Cr3LoadExiting, regs: { eax: value }, fields: targets(4) });
    g.launch();
    expect(g.rd(F.ExitReason)).toBe(ExitReason.Hlt);
    expect(g.rd(F.GuestCr3)).toBe(value);
  });

  it("a value that is not among the first CR3-target-count values exits 28 (MOV to CR3 from EAX)", () => {
    for (const [value, count] of [[0x6000, 4], [0x9000, 3], [0x3000, 0]] as const) {
      const g = machine(MOV_CR3_EAX, { proc: Proc.Cr3LoadExiting, regs: { eax: value }, fields: targets(count) });
      g.launch();
      // Table 28-3: CR number 3 (bits 3:0), access type 0 MOV to CR (5:4), GPR 0 = EAX (11:8).
      expect([g.rd(F.ExitReason), g.rd(F.ExitQualification), g.rd(F.ExitInstrLen), g.rd(F.GuestRip)])
        .toEqual([ExitReason.CrAccess, 3, 3, CODE]);
      expect(g.rd(F.GuestCr3)).toBe(0);
    }
  });

  it("a CR3-target count above 4 fails the entry with VMfailValid 7 (cr3-target-count)", () => {
    const g = machine(MOV_CR3_EAX, { proc: Proc.Cr3LoadExiting, fields: [[F.Cr3TargetCount, 5]] });
    expect(g.launch()).toEqual({ err: SysErr.VmFailValid, vmError: VmxError.EntryInvalidControls, check: "cr3-target-count" });
  });
});

describe("guest IA32_SYSENTER_CS/ESP/EIP fields (SDM 27.3.2.1, 28.3.2)", () => {
  it("are loaded into the guest at entry and saved at exit", () => {
    // rdmsr (SYSENTER_ESP, from its VMCS field); mov ebx, eax; wrmsr SYSENTER_EIP := 12345678h; hlt.
    const g = machine([...RDMSR, 0x66, 0x89, 0xc3, 0x66, 0xb9, 0x76, 0x01, 0, 0, 0x66, 0xb8, 0x78, 0x56, 0x34, 0x12,
      0x66, 0x31, 0xd2, ...WRMSR], { regs: { ecx: SYSENTER_ESP }, fields: [[F.GuestSysenterEsp, 0xc0de], [F.GuestSysenterCs, 0x10]] });
    expect(g.launch().err).toBe(SysErr.Ok);
    expect(g.rd(F.ExitReason)).toBe(ExitReason.Hlt);
    expect(g.regs[3]).toBe(0xc0de);
    expect(g.rd(F.GuestSysenterEip)).toBe(0x12345678);
    expect(g.rd(F.GuestSysenterCs)).toBe(0x10);
  });
});

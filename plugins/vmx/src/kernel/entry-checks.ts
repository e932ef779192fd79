// VM-entry checks (SDM Vol. 3C 27.2 and 27.3.1) as ordered lists of small named
// functions, Bochs VMenterLoadCheck* style. Controls and host state fail the
// instruction (VMfailValid 7 / 8); guest state fails entry with a VM exit
// (reason 33 | bit 31) carrying the qualification (SDM 27.8).
// Only the rules for the fields this slice supports are here; the README lists the rest.
import {
  EntryCtl, ExitCtl, F, FIELD_TABLE, IntrInfo, IntrType, Pin, Proc, Proc2, SEGMENT_FIELDS, VmcsType, VmcsWidth, VmxError, type VmcsView,
} from "../vmcs-fields.js";
import { GuestFrameRole } from "../../../../src/kernel/api.js";
import type { CtlCap, VmxCaps } from "./caps.js";

export interface EntryEnv {
  /** Host-physical address of the GuestPhysSpace the DCB was set up with. */
  readonly eptRoot: number;
  /**
   * Whether host-physical `pa` is a RAM page of that GuestPhysSpace, where a monitor-built
   * EPT may live (src/kernel/nested-paging.ts); absent: only `eptRoot` is accepted.
   */
  readonly eptTableRam?: (pa: number) => boolean;
  /** Frames bound with dispatcherBindFrame, indexed by GuestFrameRole (GuestBinding.frames); absent: none. */
  readonly frames?: readonly ({ readonly paddr: number; readonly bytes?: { readonly length: number } } | null)[];
  /** Guest-physical memory, for the PDPTEs loaded from CR3 without EPT (SDM 27.3.1.6); absent: not checked. */
  readonly memory?: { read32(pa: number): number };
}

export interface EntryCheck {
  readonly name: string;
  /** The rule, quoted or paraphrased, with its SDM section. */
  readonly rule: string;
  /** True when the VMCS breaks the rule. */
  fails(v: VmcsView, caps: VmxCaps, env: EntryEnv): boolean;
  /** Guest checks only: the exit qualification (SDM 27.8; 0 = default). */
  readonly qualification?: number;
}

export interface EntryFailure {
  readonly kind: "control" | "host" | "guest";
  /** VMfailValid number (7, 8) or, for guest failures, the basic exit reason 33. */
  readonly code: number;
  readonly qualification: number;
  readonly check: EntryCheck;
}

// ---------------------------------------------------------------------------
// helpers

const ctlBad = (value: number, cap: CtlCap): boolean =>
  ((value & cap.mustBe1) >>> 0) !== (cap.mustBe1 >>> 0) || (value & ~cap.mayBe1) !== 0;
/** Secondary controls count only when "activate secondary controls" is 1 (SDM 25.6.2). */
export const proc2Of = (v: VmcsView): number =>
  (v.get(F.ProcControls) & Proc.ActivateSecondary) !== 0 ? v.get(F.Proc2Controls) : 0;
const unrestricted = (v: VmcsView): boolean => (proc2Of(v) & Proc2.UnrestrictedGuest) !== 0;
const cr0Pe = (v: VmcsView): boolean => (v.get(F.GuestCr0) & 1) !== 0;
const fixedBad = (value: number, fixed0: number, fixed1: number): boolean =>
  ((value & fixed0) >>> 0) !== (fixed0 >>> 0) || (value & ~fixed1) !== 0;

const AR = { Type: 0xf, S: 1 << 4, DplShift: 5, P: 1 << 7, G: 1 << 15, Unusable: 1 << 16, Reserved: 0xfffe0f00 } as const;
const usable = (ar: number): boolean => (ar & AR.Unusable) === 0;
const dpl = (ar: number): number => (ar >>> AR.DplShift) & 3;
const v86 = (v: VmcsView): boolean => (v.get(F.GuestRflags) & (1 << 17)) !== 0;
/** SDM 27.3.1.2: limit bits 11:0 not all 1 → G = 0; limit bits 31:20 not all 0 → G = 1. */
const granularityBad = (limit: number, ar: number): boolean =>
  ((limit & 0xfff) !== 0xfff && (ar & AR.G) !== 0) || ((limit & 0xfff00000) !== 0 && (ar & AR.G) === 0);

const CS = SEGMENT_FIELDS[1], SS = SEGMENT_FIELDS[2], LDTR = SEGMENT_FIELDS[6], TR = SEGMENT_FIELDS[7];
/** DS, ES, FS, GS. */
const DATA_SEGS = [SEGMENT_FIELDS[3], SEGMENT_FIELDS[0], SEGMENT_FIELDS[4], SEGMENT_FIELDS[5]];
/** CS, SS, DS, ES, FS, GS: the segments with code/data rules. */
const CODE_DATA_SEGS = [CS, SS, ...DATA_SEGS];
/** Vectors that push an error code (SDM 6.3.1 table 6-1): #DF #TS #NP #SS #GP #PF #AC #CP. */
const ERROR_CODE_VECTORS = (1 << 8) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 17) | (1 << 21);

/** hvkit: a bitmap address must name the Frame bound in `role` (GuestFrameRole; see GuestBinding.frames). */
const notBoundFrame = (addr: number, env: EntryEnv, role: number): boolean => {
  const f = env.frames?.[role];
  return f === undefined || f === null || f.paddr >>> 0 !== addr >>> 0;
};
/** SDM 27.2.1.1: 4 KiB aligned, no bits beyond the physical-address width (32: IA32_VMX_BASIC[48]). */
const bitmapAddrBad = (v: VmcsView, enc: number): boolean => (v.get(enc) & 0xfff) !== 0 || v.get(enc | 1) !== 0;
/**
 * SDM 27.2.1.2/27.2.1.3: with a nonzero count, bits 3:0 of the MSR-area address must be 0 and
 * neither its first nor its last byte (address + 16 * count - 1) may set bits beyond the
 * physical-address width (32: IA32_VMX_BASIC[48]).
 */
const msrAreaBad = (v: VmcsView, addr: number, count: number): boolean => {
  const n = v.get(count);
  return n !== 0 && ((v.get(addr) & 0xf) !== 0 || v.get(addr | 1) !== 0 || v.get(addr) + n * 16 - 1 > 0xffffffff);
};
/** hvkit: a nonzero-count MSR area must lie inside the Frame bound in `role` (VmxEntryMsrLoad/VmxExitMsrStore/VmxExitMsrLoad). */
const msrAreaNotBound = (v: VmcsView, addr: number, count: number, env: EntryEnv, role: number): boolean => {
  const n = v.get(count);
  if (n === 0) return false;
  const f = env.frames?.[role];
  if (f === undefined || f === null) return true;
  const off = v.get(addr) - f.paddr;
  return off < 0 || off + n * 16 > (f.bytes?.length ?? 0);
};
const ioBitmaps = (v: VmcsView): boolean => (v.get(F.ProcControls) & Proc.UseIoBitmaps) !== 0;
const msrBitmaps = (v: VmcsView): boolean => (v.get(F.ProcControls) & Proc.UseMsrBitmaps) !== 0;

const eptp = (v: VmcsView): number => v.get(F.EptPointer);
const eptOn = (v: VmcsView): boolean => (proc2Of(v) & Proc2.EnableEpt) !== 0;
const intrInfo = (v: VmcsView): number => v.get(F.EntryIntrInfo);
const intrValid = (v: VmcsView): boolean => (intrInfo(v) & IntrInfo.Valid) !== 0;
const intrType = (v: VmcsView): number => (intrInfo(v) & IntrInfo.TypeMask) >>> IntrInfo.TypeShift;

// ---------------------------------------------------------------------------
// 27.2.1: VM-execution, exit and entry control fields → VMfailValid(7)

export const CONTROL_CHECKS: readonly EntryCheck[] = [
  { name: "pin-controls-vs-caps", rule: "SDM 27.2.1.1: reserved pin-based controls set as IA32_VMX_TRUE_PINBASED_CTLS allows",
    fails: (v, c) => ctlBad(v.get(F.PinControls), c.pin) },
  { name: "proc-controls-vs-caps", rule: "SDM 27.2.1.1: reserved primary processor-based controls set as IA32_VMX_TRUE_PROCBASED_CTLS allows ",
    fails: (v, c) => ctlBad(v.get(F.ProcControls), c.proc) },
  { name: "proc2-controls-vs-caps", rule: "SDM 27.2.1.1: with activate secondary controls = 1, reserved secondary controls set as IA32_VMX_PROCBASED_CTLS2 allows",
    fails: (v, c) => ctlBad(proc2Of(v), c.proc2) },
  { name: "io-bitmap-address", rule: "SDM 27.2.1.1: with use I/O bitmaps = 1, bits 11:0 of each I/O-bitmap address must be 0 and neither may set bits beyond the physical-address width",
    fails: (v) => ioBitmaps(v) && (bitmapAddrBad(v, F.IoBitmapA) || bitmapAddrBad(v, F.IoBitmapB)) },
  { name: "io-bitmap-is-bound-frame", rule: "hvkit: with use I/O bitmaps = 1, I/O-bitmap addresses A and B must name the Frames bound in roles VmxIoBitmapA/B (capability rule, no SDM equivalent)",
    fails: (v, _c, env) => ioBitmaps(v)
      && (notBoundFrame(v.get(F.IoBitmapA), env, GuestFrameRole.VmxIoBitmapA)
        || notBoundFrame(v.get(F.IoBitmapB), env, GuestFrameRole.VmxIoBitmapB)) },
  { name: "msr-bitmap-address", rule: "SDM 27.2.1.1: with use MSR bitmaps = 1, bits 11:0 of the MSR-bitmap address must be 0 and it may not set bits beyond the physical-address width",
    fails: (v) => msrBitmaps(v) && bitmapAddrBad(v, F.MsrBitmap) },
  { name: "msr-bitmap-is-bound-frame", rule: "hvkit: with use MSR bitmaps = 1, the MSR-bitmap address must name the Frame bound in role VmxMsrBitmap (capability rule, no SDM equivalent)",
    fails: (v, _c, env) => msrBitmaps(v) && notBoundFrame(v.get(F.MsrBitmap), env, GuestFrameRole.VmxMsrBitmap) },
  { name: "cr3-target-count", rule: "SDM 27.2.1.1: the CR3-target count must not be greater than the number IA32_VMX_MISC[24:16] reports (4)",
    fails: (v, c) => v.get(F.Cr3TargetCount) >>> 0 > c.cr3Targets },
  { name: "unrestricted-guest-needs-ept", rule: "SDM 27.2.1.1: if unrestricted guest is 1, enable EPT must be 1",
    fails: (v) => unrestricted(v) && !eptOn(v) },
  { name: "eptp-memory-type", rule: "SDM 27.2.1.1: EPTP bits 2:0 must be a memory type IA32_VMX_EPT_VPID_CAP allows (UC 0, WB 6)",
    fails: (v, c) => eptOn(v) && !c.eptMemTypes.includes(eptp(v) & 7) },
  { name: "eptp-walk-length", rule: "SDM 27.2.1.1: EPTP bits 5:3 (page-walk length - 1) must be 3",
    fails: (v) => eptOn(v) && ((eptp(v) >>> 3) & 7) !== 3 },
  { name: "eptp-reserved", rule: "SDM 27.2.1.1: EPTP bit 6 must be 0 without accessed/dirty support, bits 11:7 and bits beyond the physical-address width must be 0",
    fails: (v, c) => eptOn(v) && ((eptp(v) & (c.eptAccessedDirty === true ? 0xf80 : 0xfc0)) !== 0 || v.get(F.EptPointer | 1) !== 0) },
  { name: "eptp-is-bound-gpspace", rule: "hvkit: the EPTP must name the GuestPhysSpace the DCB was set up with (its root: the kernel-managed EPT) or a RAM page mapped in it (tables the monitor built there) (capability rule, no SDM equivalent)",
    fails: (v, _c, env) => {
      if (!eptOn(v)) return false;
      const root = (eptp(v) & ~0xfff) >>> 0;
      return root !== env.eptRoot >>> 0 && !(env.eptTableRam?.(root) ?? false);
    } },
  { name: "virtual-nmis-need-nmi-exiting", rule: "SDM 27.2.1.1: if NMI exiting is 0, virtual NMIs must be 0",
    fails: (v) => (v.get(F.PinControls) & (Pin.NmiExiting | Pin.VirtualNmis)) === Pin.VirtualNmis },
  { name: "nmi-window-needs-virtual-nmis", rule: "SDM 27.2.1.1: if virtual NMIs is 0, NMI-window exiting must be 0",
    fails: (v) => (v.get(F.PinControls) & Pin.VirtualNmis) === 0 && (v.get(F.ProcControls) & Proc.NmiWindow) !== 0 },
  { name: "exit-controls-vs-caps", rule: "SDM 27.2.1.2: reserved VM-exit controls set as IA32_VMX_TRUE_EXIT_CTLS allows",
    fails: (v, c) => ctlBad(v.get(F.ExitControls), c.exit) },
  { name: "save-timer-needs-timer", rule: "SDM 27.2.1.2: if activate VMX-preemption timer is 0, save VMX-preemption timer value must be 0",
    fails: (v) => (v.get(F.PinControls) & Pin.PreemptionTimer) === 0 && (v.get(F.ExitControls) & ExitCtl.SavePreemptionTimer) !== 0 },
  { name: "exit-msr-store-address", rule: "SDM 27.2.1.2: with a nonzero VM-exit MSR-store count, the address must be 16-byte aligned and the area's first and last byte within the physical-address width",
    fails: (v) => msrAreaBad(v, F.ExitMsrStoreAddr, F.ExitMsrStoreCount) },
  { name: "exit-msr-store-is-bound-frame", rule: "hvkit: a nonzero-count VM-exit MSR-store area must lie in the Frame bound in role VmxExitMsrStore (capability rule, no SDM equivalent)",
    fails: (v, _c, env) => msrAreaNotBound(v, F.ExitMsrStoreAddr, F.ExitMsrStoreCount, env, GuestFrameRole.VmxExitMsrStore) },
  { name: "exit-msr-load-address", rule: "SDM 27.2.1.2: with a nonzero VM-exit MSR-load count, the address must be 16-byte aligned and the area's first and last byte within the physical-address width",
    fails: (v) => msrAreaBad(v, F.ExitMsrLoadAddr, F.ExitMsrLoadCount) },
  { name: "exit-msr-load-is-bound-frame", rule: "hvkit: a nonzero-count VM-exit MSR-load area must lie in the Frame bound in role VmxExitMsrLoad (capability rule, no SDM equivalent)",
    fails: (v, _c, env) => msrAreaNotBound(v, F.ExitMsrLoadAddr, F.ExitMsrLoadCount, env, GuestFrameRole.VmxExitMsrLoad) },
  { name: "entry-controls-vs-caps", rule: "SDM 27.2.1.3: reserved VM-entry controls set as IA32_VMX_TRUE_ENTRY_CTLS allows",
    fails: (v, c) => ctlBad(v.get(F.EntryControls), c.entry) },
  { name: "entry-intr-reserved", rule: "SDM 27.2.1.3: if the VM-entry interruption information is valid, bits 30:12 must be 0",
    fails: (v) => intrValid(v) && (intrInfo(v) & 0x7ffff000) !== 0 },
  { name: "entry-intr-type", rule: "SDM 27.2.1.3: interruption type 1 is reserved; type 7 (other event) needs the 1-setting of monitor trap flag in IA32_VMX_TRUE_PROCBASED_CTLS",
    fails: (v, c) => intrValid(v) && (intrType(v) === IntrType.Reserved
      || (intrType(v) === IntrType.OtherEvent && (c.proc.mayBe1 & Proc.MonitorTrapFlag) === 0)) },
  { name: "entry-intr-other-event-vector", rule: "SDM 27.2.1.3: type other event (7) needs vector 0 (pending MTF VM exit)",
    fails: (v) => intrValid(v) && intrType(v) === IntrType.OtherEvent && (intrInfo(v) & IntrInfo.VectorMask) !== 0 },
  { name: "entry-intr-vector", rule: "SDM 27.2.1.3: type NMI needs vector 2; type hardware exception needs vector <= 31",
    fails: (v) => {
      if (!intrValid(v)) return false;
      const vec = intrInfo(v) & IntrInfo.VectorMask, t = intrType(v);
      return (t === IntrType.Nmi && vec !== 2) || (t === IntrType.HardwareException && vec > 31);
    } },
  { name: "entry-intr-error-code", rule: "SDM 27.2.1.3: deliver-error-code is 1 exactly for hardware exceptions 8, 10-14, 17, 21, and 0 when unrestricted guest is 1 and CR0.PE is 0",
    fails: (v) => {
      if (!intrValid(v)) return false;
      const info = intrInfo(v);
      const want = intrType(v) === IntrType.HardwareException && !(unrestricted(v) && !cr0Pe(v))
        && (ERROR_CODE_VECTORS & (1 << (info & 31))) !== 0 && (info & 0xff) < 32;
      return ((info & IntrInfo.DeliverErrorCode) !== 0) !== want;
    } },
  { name: "entry-intr-error-code-reserved", rule: "SDM 27.2.1.3: if deliver-error-code is 1, bits 31:16 of the VM-entry exception error code must be 0",
    fails: (v) => intrValid(v) && (intrInfo(v) & IntrInfo.DeliverErrorCode) !== 0 && (v.get(F.EntryExceptionErrorCode) & 0xffff0000) !== 0 },
  { name: "entry-intr-instr-length", rule: "SDM 27.2.1.3: for software interrupts/exceptions the VM-entry instruction length must be 1-15 (0 allowed when IA32_VMX_MISC[30] is 1)",
    fails: (v, c) => {
      if (!intrValid(v)) return false;
      const t = intrType(v);
      if (t !== IntrType.SoftwareInt && t !== IntrType.PrivSoftwareException && t !== IntrType.SoftwareException) return false;
      const len = v.get(F.EntryInstrLen);
      return len > 15 || (len === 0 && !c.zeroLengthInjection);
    } },
  { name: "entry-msr-load-address", rule: "SDM 27.2.1.3: with a nonzero VM-entry MSR-load count, the address must be 16-byte aligned and the area's first and last byte within the physical-address width",
    fails: (v) => msrAreaBad(v, F.EntryMsrLoadAddr, F.EntryMsrLoadCount) },
  { name: "entry-msr-load-is-bound-frame", rule: "hvkit: a nonzero-count VM-entry MSR-load area must lie in the Frame bound in role VmxEntryMsrLoad (capability rule, no SDM equivalent)",
    fails: (v, _c, env) => msrAreaNotBound(v, F.EntryMsrLoadAddr, F.EntryMsrLoadCount, env, GuestFrameRole.VmxEntryMsrLoad) },
];

// ---------------------------------------------------------------------------
// 27.2.2-27.2.3: host-state area → VMfailValid(8)

const HOST_SELECTORS = [F.HostCsSel, F.HostSsSel, F.HostDsSel, F.HostEsSel, F.HostFsSel, F.HostGsSel, F.HostTrSel];

export const HOST_CHECKS: readonly EntryCheck[] = [
  { name: "host-cr0-fixed", rule: "SDM 27.2.2: host CR0 bits must be set as IA32_VMX_CR0_FIXED0/FIXED1 require",
    fails: (v, c) => fixedBad(v.get(F.HostCr0), c.cr0Fixed0, c.cr0Fixed1) },
  { name: "host-cr4-fixed", rule: "SDM 27.2.2: host CR4 bits must be set as IA32_VMX_CR4_FIXED0/FIXED1 require",
    fails: (v, c) => fixedBad(v.get(F.HostCr4), c.cr4Fixed0, c.cr4Fixed1) },
  { name: "host-selector-rpl-ti", rule: "SDM 27.2.3: host CS, SS, DS, ES, FS, GS and TR selectors must have RPL = 0 and TI = 0",
    fails: (v) => { for (const f of HOST_SELECTORS) if ((v.get(f) & 7) !== 0) return true; return false; } },
  { name: "host-cs-nonnull", rule: "SDM 27.2.3: the host CS selector must not be 0000H",
    fails: (v) => v.get(F.HostCsSel) === 0 },
  { name: "host-tr-nonnull", rule: "SDM 27.2.3: the host TR selector must not be 0000H",
    fails: (v) => v.get(F.HostTrSel) === 0 },
  { name: "host-ss-nonnull", rule: "SDM 27.2.3: the host SS selector must not be 0000H when host address-space size is 0",
    fails: (v) => v.get(F.HostSsSel) === 0 },
];

// ---------------------------------------------------------------------------
// 27.3.1: guest-state area → VM exit 33 | 0x80000000

type SegFields = (typeof SEGMENT_FIELDS)[number];
const segAr = (v: VmcsView, s: SegFields): number => v.get(s.ar);
/** Module-level predicates and a loop, so checking allocates nothing per entry. */
function anySeg(v: VmcsView, list: readonly SegFields[], bad: (v: VmcsView, s: SegFields) => boolean): boolean {
  for (let i = 0; i < list.length; i++) if (bad(v, list[i]!)) return true;
  return false;
}
/** CS is always checked; the others only when usable (SDM 27.3.1.2). */
const checked = (s: SegFields, ar: number): boolean => s === CS || usable(ar);
const v86SegBad = (v: VmcsView, s: SegFields): boolean =>
  v.get(s.base) !== ((v.get(s.sel) << 4) >>> 0) || v.get(s.limit) !== 0xffff || v.get(s.ar) !== 0xf3;
const dataTypeBad = (v: VmcsView, s: SegFields): boolean => {
  const ar = segAr(v, s);
  return usable(ar) && ((ar & 1) === 0 || ((ar & 8) !== 0 && (ar & 2) === 0));
};
const sBad = (v: VmcsView, s: SegFields): boolean => { const ar = segAr(v, s); return checked(s, ar) && (ar & AR.S) === 0; };
const presentBad = (v: VmcsView, s: SegFields): boolean => { const ar = segAr(v, s); return checked(s, ar) && (ar & AR.P) === 0; };
const arReservedBad = (v: VmcsView, s: SegFields): boolean => { const ar = segAr(v, s); return checked(s, ar) && (ar & AR.Reserved) !== 0; };
const granularitySegBad = (v: VmcsView, s: SegFields): boolean => {
  const ar = segAr(v, s);
  return checked(s, ar) && granularityBad(v.get(s.limit), ar);
};

const dataDplBad = (v: VmcsView, s: SegFields): boolean => {
  const ar = segAr(v, s);
  return usable(ar) && (ar & AR.Type) <= 11 && dpl(ar) < (v.get(s.sel) & 3);
};
/** IA32_DEBUGCTL bits a guest may set: LBR, BTF, 6-15 (SDM Vol. 3B 17.4.1; the rest reserved here). */
const DEBUGCTL_ALLOWED = 0x0000ffc3;
/** Pending debug exceptions (SDM 25.4.2 table 25-4): B3-B0, enabled breakpoint (12), BS (14), RTM (16). */
const PENDING_DBG_ALLOWED = 0x0001500f;
const ACT = { Active: 0, Hlt: 1, Shutdown: 2, WaitForSipi: 3 } as const;
const activity = (v: VmcsView): number => v.get(F.GuestActivity);
const intrState = (v: VmcsView): number => v.get(F.GuestInterruptibility);
const injectingNmi = (v: VmcsView): boolean => intrValid(v) && intrType(v) === IntrType.Nmi;
/**
 * SDM 27.3.1.5 table: events an activity state lets VM entry inject. HLT: external
 * interrupts, NMI, #DB and #MC hardware exceptions, and a pending MTF (type 7);
 * shutdown: NMI and #MC; wait-for-SIPI: nothing.
 */
function injectionBlockedByActivity(v: VmcsView): boolean {
  if (!intrValid(v)) return false;
  const a = activity(v), t = intrType(v), vec = intrInfo(v) & IntrInfo.VectorMask;
  if (a === ACT.Hlt) {
    return !(t === IntrType.ExtInt || t === IntrType.Nmi || t === IntrType.OtherEvent
      || (t === IntrType.HardwareException && (vec === 1 || vec === 18)));
  }
  if (a === ACT.Shutdown) return !(t === IntrType.Nmi || (t === IntrType.HardwareException && vec === 18));
  return a === ACT.WaitForSipi;
}
/** PAE paging without IA-32e mode (SDM 27.3.1.6): CR0.PG = 1, CR4.PAE = 1 (the IA-32e mode guest control is not supported). */
const paePaging = (v: VmcsView): boolean => (v.get(F.GuestCr0) & 0x80000000) !== 0 && (v.get(F.GuestCr4) & 0x20) !== 0;
/**
 * A present PDPTE with reserved bits set (SDM 4.4.1 table 4-8): bits 2:1, 8:5, and bits
 * 63:MAXPHYADDR with MAXPHYADDR 36 (CPUID 8000_0008 of a PAE-era 32-bit part).
 */
const pdpteBad = (lo: number, hi: number): boolean => (lo & 1) !== 0 && ((lo & 0x1e6) !== 0 || (hi & 0xfffffff0) !== 0);
const PDPTE_FIELDS = [F.GuestPdpte0, F.GuestPdpte1, F.GuestPdpte2, F.GuestPdpte3];

export const GUEST_CHECKS: readonly EntryCheck[] = [
  // 27.3.1.1 control registers, debug registers, MSRs
  { name: "guest-cr0-fixed", rule: "SDM 27.3.1.1: guest CR0 bits set as IA32_VMX_CR0_FIXED0/FIXED1 require, except PE and PG when unrestricted guest is 1",
    fails: (v, c) => fixedBad(v.get(F.GuestCr0), unrestricted(v) ? c.cr0Fixed0 & ~0x80000001 : c.cr0Fixed0, c.cr0Fixed1) },
  { name: "guest-cr0-pg-needs-pe", rule: "SDM 27.3.1.1: if CR0.PG is 1, CR0.PE must be 1",
    fails: (v) => ((v.get(F.GuestCr0) & 0x80000001) >>> 0) === 0x80000000 },
  { name: "guest-cr4-fixed", rule: "SDM 27.3.1.1: guest CR4 bits set as IA32_VMX_CR4_FIXED0/FIXED1 require",
    fails: (v, c) => fixedBad(v.get(F.GuestCr4), c.cr4Fixed0, c.cr4Fixed1) },
  { name: "guest-efer", rule: "SDM 27.3.1.1: with load IA32_EFER, reserved EFER bits are 0, LMA equals IA-32e mode guest (0 here), and with CR0.PG = 1 so does LME",
    fails: (v) => {
      if ((v.get(F.EntryControls) & EntryCtl.LoadEfer) === 0) return false;
      const efer = v.get(F.GuestEfer);
      return (efer & ~0xd01) !== 0 || v.get(F.GuestEfer | 1) !== 0 || (efer & 0x400) !== 0
        || ((v.get(F.GuestCr0) & 0x80000000) !== 0 && (efer & 0x100) !== 0);
    } },
  { name: "guest-debugctl-reserved", rule: "SDM 27.3.1.1: with load debug controls, reserved IA32_DEBUGCTL bits must be 0 (allowed: 0, 1, 6-15)",
    fails: (v) => (v.get(F.EntryControls) & EntryCtl.LoadDebugControls) !== 0
      && ((v.get(F.GuestDebugCtl) & ~DEBUGCTL_ALLOWED) !== 0 || v.get(F.GuestDebugCtl | 1) !== 0) },
  // 27.3.1.2 segment registers
  { name: "guest-v86-segments", rule: "SDM 27.3.1.2: with RFLAGS.VM = 1, each of CS SS DS ES FS GS has base = selector << 4, limit FFFFH, access rights F3H",
    fails: (v) => v86(v) && anySeg(v, CODE_DATA_SEGS, v86SegBad) },
  { name: "guest-tr-ti", rule: "SDM 27.3.1.2: TR selector TI flag (bit 2) must be 0",
    fails: (v) => (v.get(TR.sel) & 4) !== 0 },
  { name: "guest-ldtr-ti", rule: "SDM 27.3.1.2: LDTR selector TI flag must be 0 if LDTR is usable",
    fails: (v) => usable(segAr(v, LDTR)) && (v.get(LDTR.sel) & 4) !== 0 },
  { name: "guest-ss-rpl", rule: "SDM 27.3.1.2: without virtual-8086 and unrestricted guest, SS.RPL must equal CS.RPL",
    fails: (v) => !v86(v) && !unrestricted(v) && (v.get(SS.sel) & 3) !== (v.get(CS.sel) & 3) },
  { name: "guest-ss-dpl-rpl", rule: "SDM 27.3.1.2: without virtual-8086 and unrestricted guest, SS.DPL must equal SS.RPL",
    fails: (v) => !v86(v) && !unrestricted(v) && dpl(segAr(v, SS)) !== (v.get(SS.sel) & 3) },
  { name: "guest-data-seg-dpl-rpl", rule: "SDM 27.3.1.2: without virtual-8086 and unrestricted guest, a usable DS ES FS GS of type 0-11 has DPL >= RPL",
    fails: (v) => !v86(v) && !unrestricted(v) && anySeg(v, DATA_SEGS, dataDplBad) },
  { name: "guest-cs-type", rule: "SDM 27.3.1.2: CS type must be 9, 11, 13 or 15 (accessed code), or 3 if unrestricted guest is 1",
    fails: (v) => {
      if (v86(v)) return false;
      const t = segAr(v, CS) & AR.Type;
      return !(t === 9 || t === 11 || t === 13 || t === 15 || (t === 3 && unrestricted(v)));
    } },
  { name: "guest-ss-type", rule: "SDM 27.3.1.2: if SS is usable, its type must be 3 or 7",
    fails: (v) => {
      const ar = segAr(v, SS), t = ar & AR.Type;
      return !v86(v) && usable(ar) && t !== 3 && t !== 7;
    } },
  { name: "guest-data-seg-type", rule: "SDM 27.3.1.2: usable DS ES FS GS must be accessed (type bit 0), and readable (bit 1) if code (bit 3)",
    fails: (v) => !v86(v) && anySeg(v, DATA_SEGS, dataTypeBad) },
  { name: "guest-seg-s", rule: "SDM 27.3.1.2: S (bit 4) must be 1 for CS and for usable SS DS ES FS GS",
    fails: (v) => !v86(v) && anySeg(v, CODE_DATA_SEGS, sBad) },
  { name: "guest-cs-dpl", rule: "SDM 27.3.1.2: CS type 3 needs DPL 0; type 9/11 needs DPL = SS.DPL; type 13/15 needs DPL <= SS.DPL",
    fails: (v) => {
      if (v86(v)) return false;
      const ar = segAr(v, CS), t = ar & AR.Type, ssDpl = dpl(segAr(v, SS));
      if (t === 3) return dpl(ar) !== 0;
      if (t === 9 || t === 11) return dpl(ar) !== ssDpl;
      if (t === 13 || t === 15) return dpl(ar) > ssDpl;
      return false;
    } },
  { name: "guest-ss-dpl", rule: "SDM 27.3.1.2: SS.DPL must be 0 if CS type is 3 or CR0.PE is 0",
    fails: (v) => !v86(v) && ((segAr(v, CS) & AR.Type) === 3 || !cr0Pe(v)) && dpl(segAr(v, SS)) !== 0 },
  { name: "guest-seg-present", rule: "SDM 27.3.1.2: P (bit 7) must be 1 for CS and for usable SS DS ES FS GS",
    fails: (v) => !v86(v) && anySeg(v, CODE_DATA_SEGS, presentBad) },
  { name: "guest-seg-ar-reserved", rule: "SDM 27.3.1.2: access-rights bits 11:8 and 31:17 must be 0 for CS and usable SS DS ES FS GS",
    fails: (v) => !v86(v) && anySeg(v, CODE_DATA_SEGS, arReservedBad) },
  { name: "guest-seg-granularity", rule: "SDM 27.3.1.2: limit bits 11:0 not all 1 needs G = 0; limit bits 31:20 not all 0 needs G = 1 (CS, usable SS DS ES FS GS)",
    fails: (v) => !v86(v) && anySeg(v, CODE_DATA_SEGS, granularitySegBad) },
  { name: "guest-tr-ar", rule: "SDM 27.3.1.2: TR type 3 or 11 (busy TSS), S = 0, P = 1, bits 11:8 and 31:17 0, G consistent with the limit, usable",
    fails: (v) => {
      const ar = segAr(v, TR), t = ar & AR.Type;
      return (t !== 3 && t !== 11) || (ar & AR.S) !== 0 || (ar & AR.P) === 0 || (ar & AR.Reserved) !== 0
        || !usable(ar) || granularityBad(v.get(TR.limit), ar);
    } },
  { name: "guest-ldtr-ar", rule: "SDM 27.3.1.2: a usable LDTR has type 2, S = 0, P = 1, bits 11:8 and 31:17 0, G consistent with the limit",
    fails: (v) => {
      const ar = segAr(v, LDTR);
      return usable(ar) && ((ar & AR.Type) !== 2 || (ar & AR.S) !== 0 || (ar & AR.P) === 0
        || (ar & AR.Reserved) !== 0 || granularityBad(v.get(LDTR.limit), ar));
    } },
  // 27.3.1.3 descriptor-table registers
  { name: "guest-gdtr-idtr-limit", rule: "SDM 27.3.1.3: GDTR and IDTR limit bits 31:16 must be 0",
    fails: (v) => (v.get(F.GuestGdtrLimit) & 0xffff0000) !== 0 || (v.get(F.GuestIdtrLimit) & 0xffff0000) !== 0 },
  // 27.3.1.4 RIP and RFLAGS
  { name: "guest-rflags-reserved", rule: "SDM 27.3.1.4: RFLAGS bits 31:22, 15, 5 and 3 must be 0 and bit 1 must be 1",
    fails: (v) => (v.get(F.GuestRflags) & 0xffc08028) !== 0 || (v.get(F.GuestRflags) & 2) === 0 },
  { name: "guest-rflags-vm-needs-pe", rule: "SDM 27.3.1.4: RFLAGS.VM must be 0 if CR0.PE is 0",
    fails: (v) => v86(v) && !cr0Pe(v) },
  { name: "guest-rflags-if-for-extint", rule: "SDM 27.3.1.4: RFLAGS.IF must be 1 if a valid external interrupt is being injected",
    fails: (v) => intrValid(v) && intrType(v) === IntrType.ExtInt && (v.get(F.GuestRflags) & 0x200) === 0 },
  // 27.3.1.5 non-register state
  { name: "guest-activity-valid", rule: "SDM 27.3.1.5: the activity state must be 0-3 and one IA32_VMX_MISC[8:6] supports (here: all)",
    fails: (v, c) => {
      const a = activity(v);
      return !(a === ACT.Active || (a === ACT.Hlt && c.activityHlt) || (a === ACT.Shutdown && c.activityShutdown)
        || (a === ACT.WaitForSipi && c.activityWaitForSipi));
    } },
  { name: "guest-activity-hlt-ss-dpl", rule: "SDM 27.3.1.5: the activity state must not be HLT if SS.DPL is not 0",
    fails: (v) => v.get(F.GuestActivity) === 1 && dpl(segAr(v, SS)) !== 0 },
  { name: "guest-activity-blocking", rule: "SDM 27.3.1.5: the activity state must be active if the interruptibility state shows blocking by STI or by MOV SS",
    fails: (v) => activity(v) !== ACT.Active && (intrState(v) & 3) !== 0 },
  { name: "guest-activity-injection", rule: "SDM 27.3.1.5: an injected event must be one the activity state does not block (HLT: ext. interrupt, NMI, #DB, #MC, MTF; shutdown: NMI, #MC; wait-for-SIPI: none)",
    fails: injectionBlockedByActivity },
  { name: "guest-interruptibility-reserved", rule: "SDM 27.3.1.5: interruptibility bits 31:5 must be 0, and bit 4 (enclave) without SGX",
    fails: (v) => (v.get(F.GuestInterruptibility) & 0xfffffff0) !== 0 },
  { name: "guest-sti-and-movss", rule: "SDM 27.3.1.5: blocking by STI and blocking by MOV SS must not both be 1",
    fails: (v) => (v.get(F.GuestInterruptibility) & 3) === 3 },
  { name: "guest-sti-needs-if", rule: "SDM 27.3.1.5: blocking by STI must be 0 if RFLAGS.IF is 0",
    fails: (v) => (v.get(F.GuestInterruptibility) & 1) !== 0 && (v.get(F.GuestRflags) & 0x200) === 0 },
  { name: "guest-extint-not-blocked", rule: "SDM 27.3.1.5: blocking by STI and by MOV SS must be 0 when injecting an external interrupt",
    fails: (v) => intrValid(v) && intrType(v) === IntrType.ExtInt && (v.get(F.GuestInterruptibility) & 3) !== 0 },
  { name: "guest-nmi-injection-movss", rule: "SDM 27.3.1.5: blocking by MOV SS must be 0 when injecting an NMI",
    fails: (v) => injectingNmi(v) && (intrState(v) & 2) !== 0 },
  { name: "guest-nmi-injection-sti", rule: "SDM 27.3.1.5 / 27.8: blocking by STI must be 0 when injecting an NMI (implementation-specific; exit qualification 3)",
    qualification: 3,
    fails: (v) => injectingNmi(v) && (intrState(v) & 1) !== 0 },
  { name: "guest-virtual-nmi-blocking", rule: "SDM 27.3.1.5: with virtual NMIs, blocking by NMI (virtual-NMI blocking) must be 0 when injecting an NMI",
    fails: (v) => injectingNmi(v) && (v.get(F.PinControls) & Pin.VirtualNmis) !== 0 && (intrState(v) & 8) !== 0 },
  { name: "guest-smi-blocking", rule: "SDM 27.3.1.5: blocking by SMI must be 0 outside SMM",
    fails: (v) => (v.get(F.GuestInterruptibility) & 4) !== 0 },
  { name: "guest-pending-dbg-reserved", rule: "SDM 27.3.1.5: pending debug exceptions bits 11:4, 13, 15 and 63:17 must be 0",
    fails: (v) => (v.get(F.GuestPendingDbg) & ~PENDING_DBG_ALLOWED) !== 0 },
  { name: "guest-pending-dbg-bs", rule: "SDM 27.3.1.5: with STI/MOV SS blocking or activity HLT, BS (bit 14) must be 1 if RFLAGS.TF = 1 and DEBUGCTL.BTF = 0, and 0 if TF = 0 or BTF = 1",
    fails: (v) => {
      if ((intrState(v) & 3) === 0 && activity(v) !== ACT.Hlt) return false;
      const single = (v.get(F.GuestRflags) & 0x100) !== 0 && (v.get(F.GuestDebugCtl) & 2) === 0;
      return ((v.get(F.GuestPendingDbg) & 0x4000) !== 0) !== single;
    } },
  { name: "guest-vmcs-link-pointer", rule: "SDM 27.3.1.5: a VMCS link pointer other than FFFFFFFF_FFFFFFFFH must name a valid VMCS (not supported here: only all-ones)",
    qualification: 4,
    fails: (v) => (v.get(F.VmcsLinkPtr) >>> 0) !== 0xffffffff || (v.get(F.VmcsLinkPtr | 1) >>> 0) !== 0xffffffff },
  // 27.3.1.6 PDPTEs
  { name: "guest-pdpte-fields", rule: "SDM 27.3.1.6: with enable EPT and PAE paging, present PDPTE fields must have no reserved bit set",
    fails: (v) => {
      if (!eptOn(v) || !paePaging(v)) return false;
      for (let i = 0; i < 4; i++) if (pdpteBad(v.get(PDPTE_FIELDS[i]!), v.get(PDPTE_FIELDS[i]! | 1))) return true;
      return false;
    } },
  { name: "guest-pdpte-load", rule: "SDM 27.3.1.6 / 27.8: without EPT and with PAE paging, the four PDPTEs at CR3[31:5] are loaded and must have no reserved bit set (exit qualification 2)",
    qualification: 2,
    fails: (v, _c, env) => {
      if (eptOn(v) || !paePaging(v) || env.memory === undefined) return false;
      const base = (v.get(F.GuestCr3) & ~0x1f) >>> 0;
      for (let i = 0; i < 4; i++) if (pdpteBad(env.memory.read32(base + i * 8), env.memory.read32(base + i * 8 + 4))) return true;
      return false;
    } },
];

/** Run the three lists in SDM order; the first failure wins. Allocates nothing on success. */
export function runEntryChecks(v: VmcsView, caps: VmxCaps, env: EntryEnv): EntryFailure | undefined {
  for (let i = 0; i < CONTROL_CHECKS.length; i++) {
    const check = CONTROL_CHECKS[i]!;
    if (check.fails(v, caps, env)) return { kind: "control", code: VmxError.EntryInvalidControls, qualification: 0, check };
  }
  for (let i = 0; i < HOST_CHECKS.length; i++) {
    const check = HOST_CHECKS[i]!;
    if (check.fails(v, caps, env)) return { kind: "host", code: VmxError.EntryInvalidHostState, qualification: 0, check };
  }
  for (let i = 0; i < GUEST_CHECKS.length; i++) {
    const check = GUEST_CHECKS[i]!;
    if (check.fails(v, caps, env)) return { kind: "guest", code: 33, qualification: check.qualification ?? 0, check };
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Memo: the entry checks run at every VMLAUNCH/VMRESUME (SDM 27.2-27.3), but between two
// exits of a running guest the VMCS usually changes only where no check looks.

/** A check that declares the `env` parameter depends on kernel state outside the VMCS (bound frames, mappings, guest memory). */
export const checkUsesEnv = (c: EntryCheck): boolean => c.fails.length >= 3;

/**
 * Guest fields no check reads, which change at almost every exit: RIP, RSP, the preemption
 * timer value (saved at exit). Read-only (exit-information) fields are never checked either.
 * entry-checks.test.ts proves no check reads them.
 */
export const UNCHECKED_FIELDS: readonly number[] = [F.GuestRip, F.GuestRsp, F.PreemptionTimerValue];
/** RFLAGS bits the checks read: reserved bits 31:22, 15, 5, 3, 1, and TF (8), IF (9), VM (17). */
export const CHECKED_RFLAGS_BITS = 0xffc0832a | (1 << 17);

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
let fieldsFirst = Infinity, fieldsEnd = 0;
for (const f of FIELD_TABLE.values()) { fieldsFirst = Math.min(fieldsFirst, f.offset); fieldsEnd = Math.max(fieldsEnd, f.offset + 8); }
const WORDS = (fieldsEnd - fieldsFirst) / 4;
/**
 * The words of the field slots the checks depend on, compared whole: each checked field's low
 * word, and the high word of a 64-bit one (only those have a high half, SDM 25.11.2). RFLAGS
 * is compared apart, through CHECKED_RFLAGS_BITS.
 */
const CHECKED_WORDS: Int32Array = (() => {
  const w: number[] = [];
  for (const f of FIELD_TABLE.values()) {
    if (f.type === VmcsType.ReadOnly || UNCHECKED_FIELDS.includes(f.encoding) || f.encoding === F.GuestRflags) continue;
    const i = (f.offset - fieldsFirst) / 4;
    w.push(i);
    if (f.width === VmcsWidth.W64) w.push(i + 1);
  }
  return Int32Array.from(w);
})();
const RFLAGS_WORD = (FIELD_TABLE.get(F.GuestRflags)!.offset - fieldsFirst) / 4;

/**
 * runEntryChecks with a memo per VMCS: when every checked bit of the VMCS equals what it was
 * at the last entry that passed (same caps), the checks that read only the VMCS and the caps
 * would pass again, so only those that read `env` run (in SDM order, as in runEntryChecks:
 * the first failure is the same one). Otherwise all run, and a pass is remembered.
 */
export class EntryCheckMemo {
  #snap: Uint32Array | null = null;
  #caps: VmxCaps | null = null;
  #envChecks: readonly (readonly [EntryCheck, EntryFailure["kind"]])[] = [
    ...CONTROL_CHECKS.filter(checkUsesEnv).map((c) => [c, "control"] as const),
    ...HOST_CHECKS.filter(checkUsesEnv).map((c) => [c, "host"] as const),
    ...GUEST_CHECKS.filter(checkUsesEnv).map((c) => [c, "guest"] as const),
  ];
  /** A word view of the field slots of the VMCS last seen (null: unaligned, or a big-endian host). */
  #bytes: Uint8Array | null = null;
  #words: Uint32Array | null = null;
  /** Entries whose checks the memo shortened (diagnostics, tests). */
  hits = 0;

  run(v: VmcsView, caps: VmxCaps, env: EntryEnv): EntryFailure | undefined {
    if (v.bytes !== this.#bytes) {
      this.#bytes = v.bytes;
      this.#snap = null;
      this.#words = LITTLE_ENDIAN && (v.bytes.byteOffset + fieldsFirst) % 4 === 0 && v.bytes.length >= fieldsEnd
        ? new Uint32Array(v.bytes.buffer, v.bytes.byteOffset + fieldsFirst, WORDS) : null;
    }
    const words = this.#words;
    const snap = this.#snap;
    if (words !== null && snap !== null && caps === this.#caps && sameChecked(words, snap)) {
      this.hits++;
      const list = this.#envChecks;
      for (let i = 0; i < list.length; i++) {
        const [check, kind] = list[i]!;
        if (!check.fails(v, caps, env)) continue;
        return kind === "guest" ? { kind, code: 33, qualification: check.qualification ?? 0, check }
          : { kind, code: kind === "control" ? VmxError.EntryInvalidControls : VmxError.EntryInvalidHostState, qualification: 0, check };
      }
      return undefined;
    }
    const failure = runEntryChecks(v, caps, env);
    if (failure === undefined && words !== null) {
      this.#snap ??= new Uint32Array(WORDS);
      this.#snap.set(words);
      this.#caps = caps;
    } else {
      this.#snap = null;
    }
    return failure;
  }
}

function sameChecked(a: Uint32Array, b: Uint32Array): boolean {
  if (((a[RFLAGS_WORD]! ^ b[RFLAGS_WORD]!) & CHECKED_RFLAGS_BITS) !== 0) return false;
  const w = CHECKED_WORDS;
  for (let i = 0; i < w.length; i++) { const k = w[i]!; if (a[k] !== b[k]) return false; }
  return true;
}

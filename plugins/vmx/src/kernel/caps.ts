// VMX capability MSRs (SDM Vol. 3C appendix A) as data, computed for what the soft
// engine honours. The entry checks enforce exactly these values, so a control the
// engine cannot honour cannot be turned on.
import { EntryCtl, ExitCtl, Pin, Proc, Proc2, VMCS_REGION_BYTES, highestFieldIndex } from "../vmcs-fields.js";

/** One VM-execution/exit/entry control MSR (SDM A.3-A.5): allowed-0 (bits that must be 1), allowed-1 (bits that may be 1). */
export interface CtlCap {
  /** Bit set: the control must be 1 (MSR bits 31:0). */
  readonly mustBe1: number;
  /** Bit clear: the control must be 0 (MSR bits 63:32). */
  readonly mayBe1: number;
}

export interface VmxCaps {
  /** IA32_VMX_BASIC bits 30:0 (SDM A.1). */
  readonly revision: number;
  /** The "TRUE" control values (SDM A.3.1): with IA32_VMX_BASIC[55] = 1, these are what entry checks use. */
  readonly pin: CtlCap;
  readonly proc: CtlCap;
  readonly proc2: CtlCap;
  readonly exit: CtlCap;
  readonly entry: CtlCap;
  readonly cr0Fixed0: number;
  readonly cr0Fixed1: number;
  readonly cr4Fixed0: number;
  readonly cr4Fixed1: number;
  /** IA32_VMX_MISC bits 8:6: activity states beyond active (bit 6 of the MSR = HLT). */
  readonly activityHlt: boolean;
  /** IA32_VMX_MISC bits 7 and 8: the shutdown and wait-for-SIPI activity states. */
  readonly activityShutdown: boolean;
  readonly activityWaitForSipi: boolean;
  /** IA32_VMX_MISC bits 4:0: the VMX-preemption timer counts down when TSC bit X changes (SDM 26.5.1). */
  readonly preemptionTimerRate: number;
  /** IA32_VMX_MISC bit 30: injecting a software event with instruction length 0 is allowed. */
  readonly zeroLengthInjection: boolean;
  /** IA32_VMX_MISC bits 24:16: the number of CR3-target values supported (SDM A.6; real parts report 4). */
  readonly cr3Targets: number;
  /** IA32_VMX_MISC bits 27:25 (N): each MSR-load/store list should hold at most 512 * (N + 1) entries (SDM A.6). */
  readonly msrListN: number;
  /** IA32_VMX_EPT_VPID_CAP: allowed EPT paging-structure memory types (0 UC, 6 WB), and 4-level walks. */
  readonly eptMemTypes: readonly number[];
  /** IA32_VMX_EPT_VPID_CAP bit 21: EPTP bit 6 may enable EPT accessed/dirty flags (SDM 29.3.5). Absent: no. */
  readonly eptAccessedDirty?: boolean;
}

/** "Default1" controls of the non-TRUE MSRs (SDM A.2). */
export const DEFAULT1 = { pin: 0x00000016, proc: 0x0401e172, exit: 0x00036dff, entry: 0x000011ff } as const;
/** Reserved, must-be-1 control bits that are not controls at all (SDM 25.6.1/25.6.2/25.7.1/25.8.1). */
const PIN_RESERVED1 = 0x00000016;
const PROC_RESERVED1 = 0x04006172;
const EXIT_RESERVED1 = 0x00036dfb;
const ENTRY_RESERVED1 = 0x000011fb;

/** "HVK" + 1: any value in bits 30:0 works, as long as VMPTRLD checks the same one. */
export const VMCS_REVISION = 0x48564b01 & 0x7fffffff;

export const SOFT_CAPS: VmxCaps = {
  revision: VMCS_REVISION,
  // External-interrupt exiting is required: the host's timeslice ending is modelled
  // as a host external interrupt, and the kernel must always get the CPU back.
  // NMI exiting, virtual NMIs and the preemption timer: enter() in vmx-extension.ts.
  pin: {
    mustBe1: PIN_RESERVED1 | Pin.ExtIntExiting,
    mayBe1: PIN_RESERVED1 | Pin.ExtIntExiting | Pin.NmiExiting | Pin.VirtualNmis | Pin.PreemptionTimer,
  },
  proc: {
    mustBe1: PROC_RESERVED1,
    // The core's instruction and CR intercepts (InterceptControls.insn, cr3LoadExit/StoreExit).
    // TSC offsetting (EngineVcpu.tscOffset), I/O bitmaps (InterceptControls.ioBitmap), MSR
    // bitmaps (InterceptControls.msrBitmap). Not: CR8, TPR shadow, MWAIT/MONITOR.
    mayBe1: PROC_RESERVED1 | Proc.InterruptWindow | Proc.HltExiting | Proc.UncondIoExiting | Proc.ActivateSecondary
      | Proc.InvlpgExiting | Proc.RdpmcExiting | Proc.RdtscExiting | Proc.Cr3LoadExiting | Proc.Cr3StoreExiting
      | Proc.MovDrExiting | Proc.PauseExiting | Proc.TscOffsetting | Proc.UseIoBitmaps | Proc.UseMsrBitmaps
      // NMI window, monitor trap flag (stepped by enter()), MWAIT/MONITOR (core intercepts).
      | Proc.NmiWindow | Proc.MonitorTrapFlag | Proc.MwaitExiting | Proc.MonitorExiting,
  },
  proc2: { mustBe1: 0, mayBe1: Proc2.EnableEpt | Proc2.UnrestrictedGuest | Proc2.WbinvdExiting | Proc2.DescTableExiting | Proc2.EnableRdtscp },
  exit: { mustBe1: EXIT_RESERVED1, mayBe1: EXIT_RESERVED1 | ExitCtl.SaveDebugControls | ExitCtl.SaveEfer | ExitCtl.AckIntOnExit | ExitCtl.SavePreemptionTimer },
  entry: { mustBe1: ENTRY_RESERVED1, mayBe1: ENTRY_RESERVED1 | EntryCtl.LoadDebugControls | EntryCtl.LoadEfer },
  // Hardware fixes CR0.NE and CR4.VMXE to 1; the soft engine has no such limitation and
  // honours no CR read shadows yet, so requiring them would make the guest see them.
  // PE and PG stay fixed-1 (the unrestricted-guest exception lifts them for the guest).
  cr0Fixed0: 0x80000001,
  cr0Fixed1: 0xe005003f, // PE MP EM TS ET NE, WP, AM, NW CD PG
  cr4Fixed0: 0,
  // VME PVI TSD DE PSE PAE MCE PGE PCE OSFXSR OSXMMEXCPT, OSXSAVE (18): the core takes it
  // while its CPUID reports XSAVE, and XSETBV then exits 55 (SDM 26.1.2, A.8).
  cr4Fixed1: 0x000407ff,
  activityHlt: true,
  activityShutdown: true,
  activityWaitForSipi: true,
  // One timer tick per 32 TSC ticks (instructions here): a small X, as on most parts.
  preemptionTimerRate: 5,
  zeroLengthInjection: true,
  // The four CR3-target fields exist and the core honours them (InterceptControls.cr3Targets).
  cr3Targets: 4,
  // 512 entries per MSR list; a longer list fails entry with exit 34 (README "MSR areas").
  msrListN: 0,
  eptMemTypes: [0, 6],
  // src/kernel/nested-paging.ts sets EPT A/D flags when EPTP bit 6 asks for them.
  eptAccessedDirty: true,
};

/** IA32_VMX_EPT_VPID_CAP bits (SDM A.10). */
export const EptCap = {
  ExecuteOnly: 1n << 0n, WalkLength4: 1n << 6n, Uc: 1n << 8n, Wb: 1n << 14n, Pages2M: 1n << 16n, Pages1G: 1n << 17n,
  Invept: 1n << 20n, AccessedDirty: 1n << 21n, InveptSingle: 1n << 25n, InveptAll: 1n << 26n,
} as const;
const EPT_CAP_NESTED = EptCap.ExecuteOnly | EptCap.Pages2M | EptCap.Pages1G | EptCap.Invept | EptCap.InveptSingle | EptCap.InveptAll;

/** MSR numbers (SDM appendix A, table 2-2). */
export const VmxMsr = {
  Basic: 0x480, PinbasedCtls: 0x481, ProcbasedCtls: 0x482, ExitCtls: 0x483, EntryCtls: 0x484, Misc: 0x485,
  Cr0Fixed0: 0x486, Cr0Fixed1: 0x487, Cr4Fixed0: 0x488, Cr4Fixed1: 0x489, VmcsEnum: 0x48a,
  ProcbasedCtls2: 0x48b, EptVpidCap: 0x48c, TruePinbasedCtls: 0x48d, TrueProcbasedCtls: 0x48e,
  TrueExitCtls: 0x48f, TrueEntryCtls: 0x490,
  /** IA32_FEATURE_CONTROL (SDM Vol. 4 table 2-2; Vol. 3C 24.7). */
  FeatureControl: 0x3a,
} as const;

/** Every MSR `vmxMsrValue` answers, in MSR order (the order `hvkit info` prints them). */
export const VMX_CAPABILITY_MSRS: readonly number[] = [
  VmxMsr.FeatureControl, VmxMsr.Basic, VmxMsr.PinbasedCtls, VmxMsr.ProcbasedCtls, VmxMsr.ExitCtls,
  VmxMsr.EntryCtls, VmxMsr.Misc, VmxMsr.Cr0Fixed0, VmxMsr.Cr0Fixed1, VmxMsr.Cr4Fixed0, VmxMsr.Cr4Fixed1,
  VmxMsr.VmcsEnum, VmxMsr.ProcbasedCtls2, VmxMsr.EptVpidCap, VmxMsr.TruePinbasedCtls,
  VmxMsr.TrueProcbasedCtls, VmxMsr.TrueExitCtls, VmxMsr.TrueEntryCtls,
];

/** IA32_FEATURE_CONTROL bits (SDM 24.7): lock, VMXON inside SMX, VMXON outside SMX. */
export const FeatureControl = { Lock: 1 << 0, VmxInSmx: 1 << 1, VmxOutsideSmx: 1 << 2 } as const;

/** IA32_VMX_BASIC fields as read back from the MSR (SDM A.1). */
export interface VmxBasic {
  readonly revision: number;
  readonly regionBytes: number;
  readonly physAddr32: boolean;
  readonly dualMonitor: boolean;
  readonly memType: number;
  readonly insOutsInfo: boolean;
  readonly trueControls: boolean;
}

export function decodeBasic(v: bigint): VmxBasic {
  return {
    revision: Number(v & 0x7fffffffn),
    regionBytes: Number((v >> 32n) & 0x1fffn),
    physAddr32: ((v >> 48n) & 1n) === 1n,
    dualMonitor: ((v >> 49n) & 1n) === 1n,
    memType: Number((v >> 50n) & 0xfn),
    insOutsInfo: ((v >> 54n) & 1n) === 1n,
    trueControls: ((v >> 55n) & 1n) === 1n,
  };
}

/** Control values stay int32 like the bit-OR constants they are compared with. */
const ctlFrom = (v: bigint): CtlCap => ({ mustBe1: Number(v & 0xffffffffn) | 0, mayBe1: Number(v >> 32n) | 0 });

/**
 * The inverse of `vmxMsrValue`: VmxCaps from capability MSRs read one by one (what a
 * monitor does through the rdmsrCap syscall). Uses the TRUE control MSRs when
 * IA32_VMX_BASIC[55] says they exist (SDM A.2). `read` returns undefined for an MSR
 * it cannot read; a missing required MSR is a CapsReadError.
 */
export function capsFromMsrs(read: (msr: number) => bigint | undefined): VmxCaps {
  const get = (msr: number): bigint => {
    const v = read(msr);
    if (v === undefined) throw new CapsReadError(msr);
    return v;
  };
  const basic = decodeBasic(get(VmxMsr.Basic));
  const t = basic.trueControls;
  const misc = get(VmxMsr.Misc);
  const ept = get(VmxMsr.EptVpidCap);
  return {
    revision: basic.revision,
    pin: ctlFrom(get(t ? VmxMsr.TruePinbasedCtls : VmxMsr.PinbasedCtls)),
    proc: ctlFrom(get(t ? VmxMsr.TrueProcbasedCtls : VmxMsr.ProcbasedCtls)),
    proc2: ctlFrom(get(VmxMsr.ProcbasedCtls2)),
    exit: ctlFrom(get(t ? VmxMsr.TrueExitCtls : VmxMsr.ExitCtls)),
    entry: ctlFrom(get(t ? VmxMsr.TrueEntryCtls : VmxMsr.EntryCtls)),
    cr0Fixed0: Number(get(VmxMsr.Cr0Fixed0) & 0xffffffffn) >>> 0,
    cr0Fixed1: Number(get(VmxMsr.Cr0Fixed1) & 0xffffffffn) >>> 0,
    cr4Fixed0: Number(get(VmxMsr.Cr4Fixed0) & 0xffffffffn) >>> 0,
    cr4Fixed1: Number(get(VmxMsr.Cr4Fixed1) & 0xffffffffn) >>> 0,
    activityHlt: ((misc >> 6n) & 1n) === 1n,
    activityShutdown: ((misc >> 7n) & 1n) === 1n,
    activityWaitForSipi: ((misc >> 8n) & 1n) === 1n,
    preemptionTimerRate: Number(misc & 0x1fn),
    zeroLengthInjection: ((misc >> 30n) & 1n) === 1n,
    cr3Targets: Number((misc >> 16n) & 0x1ffn),
    msrListN: Number((misc >> 25n) & 7n),
    eptMemTypes: [...(((ept >> 8n) & 1n) === 1n ? [0] : []), ...(((ept >> 14n) & 1n) === 1n ? [6] : [])],
    eptAccessedDirty: (ept & EptCap.AccessedDirty) !== 0n,
  };
}

/** A capability MSR the monitor needs could not be read. */
export class CapsReadError extends Error {
  override readonly name = "CapsReadError";
  constructor(readonly msr: number) {
    super(`vmx: capability MSR 0x${msr.toString(16)} could not be read`);
  }
}

const ctlMsr = (c: CtlCap): bigint => (BigInt(c.mayBe1 >>> 0) << 32n) | BigInt(c.mustBe1 >>> 0);
/** The non-TRUE MSR: default1 controls reported as must-be-1 (SDM A.3.1, A.3.2). */
const legacyMsr = (c: CtlCap, default1: number): CtlCap => ({ mustBe1: (c.mustBe1 | default1) >>> 0, mayBe1: (c.mayBe1 | default1) >>> 0 });

/**
 * The 64-bit value of a VMX capability MSR, or undefined if `msr` is not one.
 * The non-TRUE procbased MSR reports CR3-load/store exiting as default1 (SDM A.3.2);
 * the TRUE MSR (IA32_VMX_BASIC[55] = 1), which entry checks use, lets them be 0 or 1.
 */
export function vmxMsrValue(caps: VmxCaps, msr: number): bigint | undefined {
  switch (msr) {
    case VmxMsr.Basic:
      return BigInt(caps.revision)
        | (BigInt(VMCS_REGION_BYTES) << 32n)
        | (1n << 48n)          // 32-bit physical addresses (32-bit host)
        | (6n << 50n)          // VMCS memory type WB
        | (1n << 54n)          // INS/OUTS exits report VM-exit instruction information
        | (1n << 55n);         // TRUE control MSRs
    case VmxMsr.PinbasedCtls: return ctlMsr(legacyMsr(caps.pin, DEFAULT1.pin));
    case VmxMsr.ProcbasedCtls: return ctlMsr(legacyMsr(caps.proc, DEFAULT1.proc));
    case VmxMsr.ExitCtls: return ctlMsr(legacyMsr(caps.exit, DEFAULT1.exit));
    case VmxMsr.EntryCtls: return ctlMsr(legacyMsr(caps.entry, DEFAULT1.entry));
    case VmxMsr.Misc:
      return BigInt(caps.preemptionTimerRate & 0x1f) | (caps.activityHlt ? 1n << 6n : 0n)
        | (caps.activityShutdown ? 1n << 7n : 0n) | (caps.activityWaitForSipi ? 1n << 8n : 0n)
        | (BigInt(caps.cr3Targets & 0x1ff) << 16n) | (BigInt(caps.msrListN & 7) << 25n)
        | (caps.zeroLengthInjection ? 1n << 30n : 0n);
    case VmxMsr.Cr0Fixed0: return BigInt(caps.cr0Fixed0 >>> 0);
    case VmxMsr.Cr0Fixed1: return BigInt(caps.cr0Fixed1 >>> 0);
    case VmxMsr.Cr4Fixed0: return BigInt(caps.cr4Fixed0 >>> 0);
    case VmxMsr.Cr4Fixed1: return BigInt(caps.cr4Fixed1 >>> 0);
    case VmxMsr.VmcsEnum: return BigInt(highestFieldIndex(caps) << 1);
    // Locked, VMXON outside SMX allowed: what firmware leaves for a hypervisor (SDM 24.7).
    case VmxMsr.FeatureControl: return BigInt(FeatureControl.Lock | FeatureControl.VmxOutsideSmx);
    case VmxMsr.ProcbasedCtls2: return ctlMsr(caps.proc2);
    case VmxMsr.EptVpidCap: {
      let v = 1n << 6n; // 4-level page walk
      // What src/kernel/nested-paging.ts walks: execute-only pages (bit 0), 2 MiB and 1 GiB
      // pages (16, 17), INVEPT (20) with single-context (25) and all-context (26) types.
      // Accessed/dirty flags (bit 21) when the caps say so (SDM 29.3.5; else EPTP bit 6 must be 0).
      if ((caps.proc2.mayBe1 & Proc2.EnableEpt) !== 0) v |= EPT_CAP_NESTED;
      if ((caps.proc2.mayBe1 & Proc2.EnableEpt) !== 0 && caps.eptAccessedDirty === true) v |= EptCap.AccessedDirty;
      if (caps.eptMemTypes.includes(0)) v |= 1n << 8n;
      if (caps.eptMemTypes.includes(6)) v |= 1n << 14n;
      return v;
    }
    case VmxMsr.TruePinbasedCtls: return ctlMsr(caps.pin);
    case VmxMsr.TrueProcbasedCtls: return ctlMsr(caps.proc);
    case VmxMsr.TrueExitCtls: return ctlMsr(caps.exit);
    case VmxMsr.TrueEntryCtls: return ctlMsr(caps.entry);
    default: return undefined;
  }
}

/** The value a control field should hold: the wanted bits plus every must-be-1 bit. */
export const controlValue = (cap: CtlCap, wanted: number): number => (wanted | cap.mustBe1) >>> 0;

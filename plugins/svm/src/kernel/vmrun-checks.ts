// VMRUN consistency checks (AMD APM Vol. 2, 15.5.1 "Basic Operation",
// "Canonicalization and Consistency Checks"), as an ordered list of small named
// functions, in the APM's order, followed by the rules this kernel adds (prefixed
// "hvkit."). A failed check makes VMRUN #VMEXIT with VMEXIT_INVALID before any
// guest instruction runs. The monitor half uses the same table to name the rule.
import { B, Efer, EventInj, EventInjType, F, Misc1, Misc2, SEG_ATTRIB, type Vmcb } from "../vmcb.js";

/** What the engine behind this extension implements (reported honestly, as CPUID would). */
export interface SvmCaps {
  /** Long mode (EFER.LME/LMA) is supported. */
  readonly longMode: boolean;
  /** Physical-address width (CPUID 8000_0008h EAX[7:0]). */
  readonly physAddrBits: number;
  /** CR4 bits the core implements; every other bit is MBZ. */
  readonly cr4Supported: number;
}

/** The soft engine (src/x86): 32-bit protected mode with paging, no long mode yet. */
export const SOFT_SVM_CAPS: SvmCaps = {
  longMode: false,
  physAddrBits: 32,
  // VME, PVI, TSD, DE, PSE, PAE, MCE, PGE, PCE, OSFXSR, OSXMMEXCPT, and OSXSAVE (18), which
  // the core takes while its CPUID reports XSAVE (APM 3.1.3). The core exports no CR4 mask.
  cr4Supported: 0x407ff,
};

export interface VmrunEnv {
  readonly caps: SvmCaps;
  /** Host-physical address of the GuestPhysSpace bound to the DCB (what N_CR3 must name). */
  readonly gpspacePaddr: number;
  /**
   * Whether host-physical `pa` is a RAM page of that GuestPhysSpace, where monitor-built
   * nested tables may live (src/kernel/nested-paging.ts); absent: only `gpspacePaddr`.
   */
  readonly nptTableRam?: (pa: number) => boolean;
  /**
   * Frames bound to the DCB, indexed by GuestFrameRole (GuestBinding.frames); absent or
   * null = none bound. IOPM_BASE_PA / MSRPM_BASE_PA must name them (hvkit.iopm / hvkit.msrpm).
   */
  readonly frames?: readonly ({ readonly paddr: number } | null)[];
}

export interface VmrunCheck {
  /** Stable short name, e.g. "efer.svme". */
  readonly name: string;
  /** The rule it enforces, citing the manual. */
  readonly rule: string;
  /** True when the VMCB breaks the rule. */
  violated(v: Vmcb, env: VmrunEnv): boolean;
}

const CR0_PE = 1 << 0, CR0_NW = 1 << 29, CR0_CD = 1 << 30, CR0_PG = 1 << 31;
const CR4_PAE = 1 << 5;
/** SVM-format CS attributes: L is bit 9, D/B bit 10 (APM 15.5.1 segment attributes). */
const SVM_ATTR_L = 1 << 9, SVM_ATTR_D = 1 << 10;
/**
 * EFER bits that are not MBZ (APM 3.1.7, figure 3-8): SCE, LME, LMA, NXE, SVME,
 * LMSLE, FFXSR, TCE. Everything else (incl. bits 7:1 and 9) must be zero.
 */
const EFER_DEFINED = 0x1 | 0x100 | 0x400 | 0x800 | 0x1000 | 0x2000 | 0x4000 | 0x8000;
/** APM 15.10.1: the IOPM is 12 KiB; APM 15.11: the MSRPM is 8 KiB. */
const IOPM_BYTES = 12 * 1024, MSRPM_BYTES = 8 * 1024;

/** GuestFrameRole.SvmIopm / SvmMsrpm (src/kernel/api.ts), as plain indices. */
const ROLE_IOPM = 3, ROLE_MSRPM = 4;

/** `field` does not hold the host-physical address of the frame bound in `role`. */
function notBound(v: Vmcb, env: VmrunEnv, field: typeof F.IOPM_BASE_PA, role: number): boolean {
  const frame = env.frames?.[role] ?? null;
  return frame === null || v.readHi(field) !== 0 || v.read(field) !== frame.paddr >>> 0;
}

/** A 64-bit value (lo, hi) has a bit set at or above bit `width`. */
function aboveWidth(lo: number, hi: number, width: number): boolean {
  if (width >= 64) return false;
  if (width >= 32) return width === 32 ? hi !== 0 : (hi >>> (width - 32)) !== 0;
  return hi !== 0 || (lo >>> width) !== 0;
}

/** The last byte of a table at `field` lies at or above 2^physAddrBits. */
function tableBeyondPhys(v: Vmcb, field: typeof F.IOPM_BASE_PA, bytes: number, bits: number): boolean {
  const last = v.readHi(field) * 2 ** 32 + v.read(field) + bytes - 1;
  return last >= 2 ** bits;
}

function longModePaging(v: Vmcb): boolean {
  return (v.read(F.EFER) & Efer.LME) !== 0 && (v.read(F.CR0) & CR0_PG) !== 0;
}

function eventInjValid(v: Vmcb): boolean {
  return (v.read(F.EVENTINJ) & EventInj.V) !== 0;
}

function eventInjType(v: Vmcb): number {
  return (v.read(F.EVENTINJ) & EventInj.TYPE_MASK) >>> EventInj.TYPE_SHIFT;
}

/** Four PAT fields (one dword of the PAT MSR) hold only the types UC 0, WC 1, WT 4, WP 5, WB 6, UC- 7 (APM 7.8.1). */
function patValid(dword: number): boolean {
  for (let i = 0; i < 4; i++) {
    const t = (dword >>> (8 * i)) & 0xff;
    if (t > 7 || t === 2 || t === 3) return false;
  }
  return true;
}

/** The checks, in order. Index + 1 is reported in EXITINFO1 of VMEXIT_INVALID (hvkit diagnostic). */
export const VMRUN_CHECKS: readonly VmrunCheck[] = [
  {
    name: "efer.svme",
    rule: "APM 15.5.1: EFER.SVME is zero",
    violated: (v) => (v.read(F.EFER) & Efer.SVME) === 0,
  },
  {
    name: "cr0.cd-nw",
    rule: "APM 15.5.1: CR0.CD is zero and CR0.NW is set",
    violated: (v) => (v.read(F.CR0) & (CR0_CD | CR0_NW)) === CR0_NW,
  },
  {
    name: "cr0.upper",
    rule: "APM 15.5.1: CR0[63:32] are not zero",
    violated: (v) => v.readHi(F.CR0) !== 0,
  },
  {
    name: "cr3.mbz",
    rule: "APM 15.5.1: any MBZ bit of CR3 is set (bits at or above the physical-address width)",
    violated: (v, env) => aboveWidth(v.read(F.CR3), v.readHi(F.CR3), env.caps.physAddrBits),
  },
  {
    name: "cr4.mbz",
    rule: "APM 15.5.1: any MBZ bit of CR4 is set (bits the processor does not implement)",
    violated: (v, env) => v.readHi(F.CR4) !== 0 || (v.read(F.CR4) & ~env.caps.cr4Supported) !== 0,
  },
  {
    name: "dr6.upper",
    rule: "APM 15.5.1: DR6[63:32] are not zero",
    violated: (v) => v.readHi(F.DR6) !== 0,
  },
  {
    name: "dr7.upper",
    rule: "APM 15.5.1: DR7[63:32] are not zero",
    violated: (v) => v.readHi(F.DR7) !== 0,
  },
  {
    name: "efer.mbz",
    rule: "APM 15.5.1: any MBZ bit of EFER is set",
    violated: (v) => v.readHi(F.EFER) !== 0 || (v.read(F.EFER) & ~EFER_DEFINED) !== 0,
  },
  {
    name: "efer.long-mode-unsupported",
    rule: "APM 15.5.1: EFER.LMA or EFER.LME is non-zero and this processor does not support long mode",
    violated: (v, env) => !env.caps.longMode && (v.read(F.EFER) & (Efer.LME | Efer.LMA)) !== 0,
  },
  {
    name: "efer.lme-pg-no-pae",
    rule: "APM 15.5.1: EFER.LME and CR0.PG are both set and CR4.PAE is zero",
    violated: (v) => longModePaging(v) && (v.read(F.CR4) & CR4_PAE) === 0,
  },
  {
    name: "efer.lme-pg-no-pe",
    rule: "APM 15.5.1: EFER.LME and CR0.PG are both non-zero and CR0.PE is zero",
    violated: (v) => longModePaging(v) && (v.read(F.CR0) & CR0_PE) === 0,
  },
  {
    name: "cs.l-and-d",
    rule: "APM 15.5.1: EFER.LME, CR0.PG, CR4.PAE, CS.L and CS.D are all non-zero",
    violated: (v) => {
      if (!longModePaging(v) || (v.read(F.CR4) & CR4_PAE) === 0) return false;
      const attr = v.dv.getUint16(F.CS.offset + SEG_ATTRIB, true);
      return (attr & SVM_ATTR_L) !== 0 && (attr & SVM_ATTR_D) !== 0;
    },
  },
  {
    name: "intercept.vmrun",
    rule: "APM 15.5.1: the VMRUN intercept bit is clear",
    violated: (v) => (v.read(F.INTERCEPT_MISC2) & Misc2.VMRUN) === 0,
  },
  {
    name: "iopm.range",
    rule: "APM 15.5.1: the IOIO intercept table extends to a physical address ≥ the maximum supported",
    violated: (v, env) => tableBeyondPhys(v, F.IOPM_BASE_PA, IOPM_BYTES, env.caps.physAddrBits),
  },
  {
    name: "msrpm.range",
    rule: "APM 15.5.1: the MSR intercept table extends to a physical address ≥ the maximum supported",
    violated: (v, env) => tableBeyondPhys(v, F.MSRPM_BASE_PA, MSRPM_BYTES, env.caps.physAddrBits),
  },
  {
    name: "eventinj.type",
    rule: "APM 15.20: illegal event injection: EVENTINJ.TYPE is reserved (1, 5, 6, 7)",
    violated: (v) => {
      if (!eventInjValid(v)) return false;
      const t = eventInjType(v);
      return t !== EventInjType.INTR && t !== EventInjType.NMI && t !== EventInjType.EXCEPTION && t !== EventInjType.SOFT_INT;
    },
  },
  {
    name: "eventinj.exception-vector",
    rule: "APM 15.20: illegal event injection: TYPE exception with vector 2 (NMI) or a vector above 31",
    violated: (v) => {
      if (!eventInjValid(v) || eventInjType(v) !== EventInjType.EXCEPTION) return false;
      const vec = v.read(F.EVENTINJ) & EventInj.VECTOR_MASK;
      return vec === 2 || vec > 31;
    },
  },
  {
    name: "asid.zero",
    rule: "APM 15.5.1: ASID is equal to zero",
    violated: (v) => v.read(F.GUEST_ASID) === 0,
  },
  {
    name: "g-pat.invalid",
    rule: "APM 15.25.4: with NP_ENABLE, VMRUN loads G_PAT as the guest's PAT: a PAn field with a reserved type (2, 3) or reserved bits 7:3 set (APM 7.8.1) is illegal state",
    violated: (v) => v.bits(B.NP_ENABLE) !== 0 && (!patValid(v.read(F.G_PAT)) || !patValid(v.readHi(F.G_PAT))),
  },
  // --- rules of this kernel (not the APM's) ---
  {
    name: "hvkit.np-enable",
    rule: "hvkit: NP_ENABLE must be set: guest memory is the bound GuestPhysSpace (no shadow paging)",
    violated: (v) => v.bits(B.NP_ENABLE) === 0,
  },
  {
    name: "hvkit.n-cr3",
    rule: "hvkit: N_CR3 must name the GuestPhysSpace bound to the dispatcher (its root: kernel-managed nested paging) or a RAM page mapped in it (tables the monitor built there); bits 63:32 are beyond MAXPHYADDR (APM 15.25.4)",
    violated: (v, env) => v.readHi(F.N_CR3) !== 0
      || (v.read(F.N_CR3) !== env.gpspacePaddr >>> 0 && !(env.nptTableRam?.((v.read(F.N_CR3) & ~0xfff) >>> 0) ?? false)),
  },
  {
    name: "hvkit.iopm",
    rule: "hvkit: with IOIO_PROT set, IOPM_BASE_PA must name the frame bound in role SvmIopm (APM 15.10.1: the IOPM is always consulted)",
    violated: (v, env) => (v.read(F.INTERCEPT_MISC1) & Misc1.IOIO_PROT) !== 0 && notBound(v, env, F.IOPM_BASE_PA, ROLE_IOPM),
  },
  {
    name: "hvkit.msrpm",
    rule: "hvkit: with MSR_PROT set, MSRPM_BASE_PA must name the frame bound in role SvmMsrpm (APM 15.11: the MSRPM is always consulted)",
    violated: (v, env) => (v.read(F.INTERCEPT_MISC1) & Misc1.MSR_PROT) !== 0 && notBound(v, env, F.MSRPM_BASE_PA, ROLE_MSRPM),
  },
  {
    name: "hvkit.intercept-intr",
    rule: "hvkit: the INTR intercept must be set: the end of the host's timeslice is a physical interrupt the guest may not take",
    violated: (v) => (v.read(F.INTERCEPT_MISC1) & Misc1.INTR) === 0,
  },
  {
    name: "hvkit.intercept-shutdown",
    rule: "hvkit: the SHUTDOWN intercept must be set: a guest may not shut down the host's CPU",
    violated: (v) => (v.read(F.INTERCEPT_MISC1) & Misc1.SHUTDOWN) === 0,
  },
];

/** Index of the first violated check, or -1. Allocation-free. */
export function firstFailedCheck(v: Vmcb, env: VmrunEnv): number {
  for (let i = 0; i < VMRUN_CHECKS.length; i++) {
    if (VMRUN_CHECKS[i]!.violated(v, env)) return i;
  }
  return -1;
}

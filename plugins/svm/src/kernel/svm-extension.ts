// The kernel half of plugins/svm: VMRUN semantics on a VMCB frame that the monitor
// edits directly (AMD APM Vol. 2 chapter 15). VMRUN runs the consistency checks
// (15.5.1), loads the guest from the state-save area, programs the engine's
// intercepts from the intercept vectors (15.9), injects EVENTINJ (15.20), runs the
// guest for one timeslice, and on #VMEXIT writes EXITCODE/EXITINFO1/EXITINFO2/nRIP
// (15.6, 15.7) and saves the guest back.
//
// Emulated: the intercepts INTR, VINTR, CPUID, HLT, IOIO_PROT through the IOPM
// (15.10.1), MSR_PROT through the MSRPM (15.11), SHUTDOWN, INTn, exception intercepts,
// RDTSC, RDPMC, INVD, PAUSE, INVLPG, WBINVD, CR3 reads/writes, CR0 selective write,
// DR reads/writes; V_IRQ/V_TPR/V_INTR_PRIO/V_IGN_TPR/V_INTR_VECTOR virtual interrupts
// (15.21.4); EVENTINJ; interrupt shadow; nRIP (15.7.1); decode-assist EXITINFO1 for
// INTn, INVLPG and MOV CR/DR.
// Also the intercepts VMRUN, VMMCALL, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA (each
// #UD when not intercepted: the guest has no SVM of its own).
// Not emulated: reads/writes of CR0 (other than the selective write) and CR4 (they do
// not map onto the core's mask/shadow model exactly), the other MISC1/MISC2 intercepts,
// TSC_OFFSET, TLB_CONTROL and ASIDs
// (no TLB), VMCB clean bits (every VMRUN reloads everything, which the APM permits),
// EXITINTINFO for faults during event delivery, #PF EXITINFO2, long mode, VMLOAD/VMSAVE
// state, GIF.
import {
  SysErr,
  type DispatcherObject,
  type EngineVcpu,
  type ExtensionContext,
  type GuestBinding,
  type SvmExtension,
  type SysRet,
  type VmControlObject,
} from "../../../../src/kernel/api.js";
import {
  Activity,
  CpuExitReason,
  CrAccessType,
  InsnIntercept,
  EventType,
  Gpr,
  Interruptibility,
  SoftIntKind,
  type InterceptControls,
  type X86State,
} from "../../../../src/x86/types.js";
import { resetState } from "../../../../src/x86/state.js";
import {
  B, Efer, EventInj, F, IoioInfo, Misc1, Misc2, SvmExit, Vmcb, VMCB_BYTES,
} from "../vmcb.js";
import { firstFailedCheck, SOFT_SVM_CAPS, type SvmCaps, type VmrunEnv } from "./vmrun-checks.js";

const EFLAGS_VM = 1 << 17;
/** GuestFrameRole.SvmIopm / SvmMsrpm (a const enum of src/kernel/api.ts, as plain indices). */
const ROLE_IOPM = 3, ROLE_MSRPM = 4;
/** CR0.MP and CR0.TS: the bits the CR0 selective-write intercept ignores (APM 15.9). */
const CR0_TS_MP = (1 << 1) | (1 << 3);
/** INTERCEPT_CR bit of a CR3 read / write. */
const CR3_READ = 1 << 3, CR3_WRITE = 1 << 19;
const CR0_PE = 1;
/** VMX-format D/B bit of CS (SDM 25.4.1): 32-bit code. */
const ATTRIB_DB = 1 << 14;
const SHADOW = Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs;

/** One bit per vector, all set: the INTn intercept applies to every INT n (APM 15.9). */
const ALL_SOFT_INTS = new Uint8Array(32).fill(0xff);

/** Per-guest state of the extension, kept in `GuestBinding.ext`. */
export class SvmGuest {
  /** Scratch architectural state, reused by every VMRUN. */
  readonly state: X86State = resetState();
  readonly env: VmrunEnv;
  /** The IOPM's first 8 KiB (one bit per port) as the core's ioBitmap, cached per bound frame. */
  ioBitmap: Uint8Array | null = null;
  private ioBitmapOf: Uint8Array | null = null;
  constructor(readonly vmcb: Vmcb, caps: SvmCaps, gpspacePaddr: number, readonly frames: GuestBinding["frames"]) {
    this.env = { caps, gpspacePaddr, frames };
  }

  /** APM 15.10.1: bits 0-65535 of the IOPM are the ports; the third page only serves wrapping accesses. */
  iopmBits(): Uint8Array | null {
    const f = this.frames[ROLE_IOPM] ?? null;
    if (f === null) return null;
    if (this.ioBitmapOf !== f.bytes) {
      this.ioBitmapOf = f.bytes;
      this.ioBitmap = f.bytes.subarray(0, 8192);
    }
    return this.ioBitmap;
  }

  /**
   * APM 15.11: the MSRPM bit for `msr` (read: even bit, write: odd bit), or true for an
   * MSR outside the three 8K-MSR ranges (always intercepted).
   */
  msrIntercepted(msr: number, write: boolean): boolean {
    const f = this.frames[ROLE_MSRPM] ?? null;
    if (f === null) return true;
    const m = msr >>> 0;
    let base: number;
    if (m <= 0x1fff) base = 0;
    else if (m >= 0xc0000000 && m <= 0xc0001fff) base = 0x800;
    else if (m >= 0xc0010000 && m <= 0xc0011fff) base = 0x1000;
    else return true;
    const bit = (m & 0x1fff) * 2 + (write ? 1 : 0);
    return (f.bytes[base + (bit >>> 3)]! & (1 << (bit & 7))) !== 0;
  }
}

/** Host-side SVM state of the (one) physical CPU this kernel models. */
export interface SvmHostState {
  /** EFER.SVME of the host: set by the first setupGuest, as a kernel sets it before its first VMRUN. */
  svme: boolean;
  /**
   * The VM_HSAVE_PA area (APM 15.30.4): kernel-owned, never mapped to a monitor.
   * The soft engine has no host state to save; it is kept so the model names it.
   */
  hsave: Uint8Array | null;
}

/** The CPUID leaves readCapability answers (APM Vol. 3 appendix E.4). */
export const SVM_CPUID = { ExtFeatures: 0x80000001, AddressSizes: 0x80000008, SvmFeatures: 0x8000000a } as const;
/** CPUID Fn8000_000A EDX (APM Vol. 3 E.4.9). */
export const SvmFeature = { Np: 1 << 0, LbrVirt: 1 << 1, Svml: 1 << 2, Nrips: 1 << 3, DecodeAssists: 1 << 7 } as const;

export class SvmKernelExtension implements SvmExtension {
  readonly kind = "svm" as const;
  readonly host: SvmHostState = { svme: false, hsave: null };
  private ctx: ExtensionContext | null = null;

  constructor(readonly caps: SvmCaps = SOFT_SVM_CAPS) {}

  attach(ctx: ExtensionContext): void {
    this.ctx = ctx;
  }

  /**
   * SVM has no capability MSRs; what it reports is CPUID (APM Vol. 3 appendix E.4):
   * Fn8000_0001 (value = ECX with SVM bit 2, valueHigh = EDX with LM bit 29),
   * Fn8000_0008 (value = EAX, physical-address bits 7:0) and Fn8000_000A (value = EAX,
   * SvmRev 1; valueHigh = EDX features: NP bit 0 (N_CR3 is honoured), NRIPS bit 3).
   * Decode assists are partial (EXITINFO1 for INTn, INVLPG, MOV CR/DR; no instruction
   * bytes for #PF/NPF in GUEST_INSN_LEN), so bit 7 is not reported.
   */
  readCapability(leaf: number, ret: SysRet): SysErr {
    switch (leaf) {
      case SVM_CPUID.ExtFeatures: ret.value = 1 << 2; ret.valueHigh = this.caps.longMode ? 1 << 29 : 0; return SysErr.Ok;
      case SVM_CPUID.AddressSizes: ret.value = this.caps.physAddrBits & 0xff; ret.valueHigh = 0; return SysErr.Ok;
      case SVM_CPUID.SvmFeatures: ret.value = 1; ret.valueHigh = SvmFeature.Np | SvmFeature.Nrips; return SysErr.Ok;
      default: return SysErr.InvalidArgument;
    }
  }

  /** A new VMCB is all zeroes (the monitor fills it); its accessor lives in ctl.ext. */
  initControl(ctl: VmControlObject): void {
    const v = new Vmcb(ctl.bytes);
    v.zero();
    ctl.ext = v;
  }

  setupGuest(_dcb: DispatcherObject, guest: GuestBinding): SysErr {
    const ctl = guest.vmcontrol;
    if (ctl.kind !== "vmcb" || ctl.bytes.byteLength < VMCB_BYTES) return SysErr.InvalidArgument;
    const v = ctl.ext instanceof Vmcb ? ctl.ext : new Vmcb(ctl.bytes);
    ctl.ext = v;
    if (!this.host.svme) {
      this.host.svme = true;
      this.host.hsave = new Uint8Array(VMCB_BYTES);
    }
    // The monitor cannot learn host-physical addresses through its capabilities,
    // so the kernel names the bound GuestPhysSpace in N_CR3 (as vmkitmon's kernel
    // fills the VMCS host state); VMRUN checks it is still that (hvkit.n-cr3).
    v.write(F.N_CR3, guest.gpspace.paddr);
    guest.ext = new SvmGuest(v, this.caps, guest.gpspace.paddr, guest.frames);
    return SysErr.Ok;
  }

  vmrun(dcb: DispatcherObject, _ret: SysRet): SysErr {
    const g = dcb.guest;
    if (g === null) return SysErr.NotGuest;
    if (!this.host.svme) return SysErr.NoExtension; // VMRUN with EFER.SVME=0 is #UD (APM 15.4)
    const gs = g.ext;
    if (!(gs instanceof SvmGuest) || g.vmcontrol.kind !== "vmcb") return SysErr.InvalidArgument;
    const v = gs.vmcb;

    const failed = firstFailedCheck(v, gs.env as VmrunEnv);
    if (failed >= 0) {
      // APM 15.5.1: illegal guest state → #VMEXIT(VMEXIT_INVALID); no guest instruction runs.
      // EXITINFO1 = index + 1 of the failed check: an hvkit diagnostic (the APM defines none).
      v.setExitCode(SvmExit.INVALID);
      v.write(F.EXITINFO1, failed + 1);
      v.write(F.EXITINFO2, 0);
      v.write(F.EXITINTINFO, 0);
      v.write(F.NRIP, 0);
      return SysErr.Ok;
    }

    const vcpu = g.vcpu;
    const s = gs.state;
    loadGuest(v, g.guestControl, s);
    vcpu.setState(s);
    programIntercepts(v, vcpu.intercepts, gs, s.cr0);
    v.write(F.EXITINFO1, 0);
    v.write(F.EXITINFO2, 0);
    v.write(F.EXITINTINFO, 0);
    v.write(F.NRIP, 0);

    const code = this.runGuest(v, vcpu, gs, this.ctx?.timeslice ?? 100_000);
    vcpu.getState(s);
    this.encodeExit(v, vcpu, s, code);
    saveGuest(v, g.guestControl, s);
    return SysErr.Ok;
  }

  /** Injects EVENTINJ and runs until an intercept; returns the SVM exit code. */
  private runGuest(v: Vmcb, vcpu: EngineVcpu, gs: SvmGuest, timeslice: number): number {
    const ic = vcpu.intercepts;
    const inj = v.read(F.EVENTINJ);
    if (inj & EventInj.V) {
      // APM 15.20: the event is delivered through the guest IDT after the guest state is loaded.
      const err = v.readHi(F.EVENTINJ);
      v.write64(F.EVENTINJ, 0, 0);
      vcpu.exit.reason = CpuExitReason.None;
      vcpu.deliverEvent(
        ((inj & EventInj.TYPE_MASK) >>> EventInj.TYPE_SHIFT) as EventType,
        inj & EventInj.VECTOR_MASK, err, (inj & EventInj.EV) !== 0,
      );
      const reason = exitReason(vcpu);
      if (reason === CpuExitReason.Exception) {
        // Delivery hit an intercepted exception: the event was not delivered (APM 15.7.2).
        v.write64(F.EXITINTINFO, inj, err);
        return this.exceptionExit(v, vcpu);
      }
      if (reason === CpuExitReason.TripleFault) return SvmExit.SHUTDOWN;
    }

    const misc1 = v.read(F.INTERCEPT_MISC1);
    let virq = virtualInterruptPending(v);
    let remaining = timeslice;
    for (;;) {
      if (virq && vcpu.interruptible()) {
        // APM 15.21.4: the VINTR intercept fires where the guest would take V_IRQ.
        if (misc1 & Misc1.VINTR) return SvmExit.VINTR;
        v.setBits(B.V_IRQ, 0);
        virq = false;
        vcpu.deliverEvent(EventType.ExtInt, v.bits(B.V_INTR_VECTOR), 0, false);
      }
      // The end of the timeslice is a physical interrupt to the host (INTR intercept,
      // required by hvkit.intercept-intr).
      if (remaining <= 0) return SvmExit.INTR;
      // While a virtual interrupt waits for IF=1, step so the window is seen at once.
      const budget = virq ? 1 : remaining;
      let r = vcpu.run(budget);
      if (r === CpuExitReason.Budget) {
        remaining -= budget;
        continue;
      }
      remaining -= 1; // a lower bound: the core does not report how many it ran
      if (r === CpuExitReason.SoftInt && vcpu.exit.softIntKind !== SoftIntKind.IntN) {
        // INT3/INTO raise #BP/#OF (APM 15.12): not INTn intercepts.
        const vec = vcpu.exit.vector;
        if (ic.exceptionBitmap & (1 << vec)) {
          this.setNextRip(v, vcpu);
          v.write(F.EXITINFO1, 0);
          return SvmExit.EXCP_BASE + vec;
        }
        // Not intercepted: execute just this instruction with the INTn intercept lifted.
        const saved = ic.softIntBitmap;
        ic.softIntBitmap = null;
        r = vcpu.run(1);
        ic.softIntBitmap = saved;
        if (r === CpuExitReason.Budget) continue;
      }
      if (r === CpuExitReason.Msr && !gs.msrIntercepted(vcpu.exit.msrIndex, vcpu.exit.msrWrite)) {
        // APM 15.11: the MSRPM bit is clear: the guest's RDMSR/WRMSR runs on the core's
        // own MSRs. The core's intercept is all-or-nothing, so it is lifted for one instruction.
        ic.msr = false;
        r = vcpu.run(1);
        ic.msr = true;
        if (r === CpuExitReason.Budget) continue;
      }
      if (r === CpuExitReason.Instruction && vcpu.exit.insn === InsnIntercept.SvmInsn
        && !svmInsnIntercepted(v, vcpu.exit.svmInsn)) {
        // The core stops every SVM instruction; one whose intercept is clear is #UD (the
        // guest has no SVM of its own): run it with the intercept lifted.
        const saved = ic.insn;
        ic.insn = saved & ~InsnIntercept.SvmInsn;
        r = vcpu.run(1);
        ic.insn = saved;
        if (r === CpuExitReason.Budget) continue;
      }
      if (r === CpuExitReason.Instruction && vcpu.exit.insn === InsnIntercept.MovDr
        && (v.read(F.INTERCEPT_DR) & drBit(vcpu)) === 0) {
        // APM 15.9: only the DRs whose INTERCEPT_DR bit is set exit; MovDr covers them all.
        const saved = ic.insn;
        ic.insn = saved & ~InsnIntercept.MovDr;
        r = vcpu.run(1);
        ic.insn = saved;
        if (r === CpuExitReason.Budget) continue;
      }
      switch (r) {
        case CpuExitReason.Hlt:
        case CpuExitReason.Cpuid:
        case CpuExitReason.Io:
          return r === CpuExitReason.Hlt ? SvmExit.HLT : r === CpuExitReason.Cpuid ? SvmExit.CPUID : SvmExit.IOIO;
        case CpuExitReason.SoftInt:
          return SvmExit.SWINT;
        case CpuExitReason.Msr:
          return SvmExit.MSR;
        case CpuExitReason.Instruction:
          return insnExitCode(vcpu);
        case CpuExitReason.CrAccess:
          return crExitCode(vcpu);
        case CpuExitReason.Exception:
          return this.exceptionExit(v, vcpu);
        case CpuExitReason.TripleFault:
          return SvmExit.SHUTDOWN;
        case CpuExitReason.Halted:
          // HLT not intercepted: the guest waits for an interrupt. A pending virtual
          // interrupt wakes it; otherwise it idles to the end of the timeslice. The
          // VMCB has no activity state: the next VMRUN resumes after the HLT (APM 15.9).
          if (virq && vcpu.interruptible()) continue;
          return SvmExit.INTR;
        default:
          return SvmExit.INTR;
      }
    }
  }

  private exceptionExit(v: Vmcb, vcpu: EngineVcpu): number {
    const e = vcpu.exit;
    // APM 15.12: EXITINFO1 holds the error code of exceptions that push one.
    v.write(F.EXITINFO1, e.hasErrorCode ? e.errorCode : 0);
    return SvmExit.EXCP_BASE + (e.vector & 31);
  }

  /** nRIP (APM 15.7.1) = RIP of the instruction after the intercepted one. */
  private setNextRip(v: Vmcb, vcpu: EngineVcpu): number {
    vcpu.getState(scratchRip);
    const next = nextRip(scratchRip, vcpu.exit.instrLen);
    v.write(F.NRIP, next);
    return next;
  }

  /** Writes EXITCODE and the instruction-specific EXITINFO fields. */
  private encodeExit(v: Vmcb, vcpu: EngineVcpu, s: X86State, code: number): void {
    v.setExitCode(code);
    const e = vcpu.exit;
    switch (code) {
      case SvmExit.CPUID:
      case SvmExit.HLT:
        v.write(F.NRIP, nextRip(s, e.instrLen));
        return;
      case SvmExit.SWINT:
        // Decode assist (APM 15.33): EXITINFO1 = the INTn vector.
        v.write(F.EXITINFO1, e.vector & 0xff);
        v.write(F.NRIP, nextRip(s, e.instrLen));
        return;
      case SvmExit.IOIO: {
        // APM 15.10.2, figure 15-2.
        let info = (e.ioPort & 0xffff) << IoioInfo.PORT_SHIFT;
        if (e.ioIn) info |= IoioInfo.TYPE_IN;
        if (e.ioString) {
          info |= IoioInfo.STR | ((e.ioSeg & 7) << IoioInfo.SEG_SHIFT);
          if (e.ioRep) info |= IoioInfo.REP;
        }
        info |= e.ioSize === 1 ? IoioInfo.SZ8 : e.ioSize === 2 ? IoioInfo.SZ16 : IoioInfo.SZ32;
        info |= e.ioAddrSize === 4 ? IoioInfo.A32 : IoioInfo.A16;
        const next = nextRip(s, e.instrLen);
        v.write(F.EXITINFO1, info >>> 0);
        v.write(F.EXITINFO2, next); // APM 15.10.2: EXITINFO2 = rIP of the next instruction
        v.write(F.NRIP, next);
        return;
      }
      case SvmExit.MSR:
        // APM 15.11: EXITINFO1 = 0 for RDMSR, 1 for WRMSR; ECX and EDX:EAX are the guest's.
        v.write(F.EXITINFO1, e.msrWrite ? 1 : 0);
        v.write(F.NRIP, nextRip(s, e.instrLen));
        return;
      case SvmExit.INVLPG:
        // Decode assist (APM 15.33): EXITINFO1 = the linear address operand.
        v.write(F.EXITINFO1, e.linear >>> 0);
        v.write(F.NRIP, nextRip(s, e.instrLen));
        return;
      case SvmExit.RDTSC: case SvmExit.RDPMC: case SvmExit.INVD: case SvmExit.PAUSE: case SvmExit.WBINVD:
      case SvmExit.INVLPGA: case SvmExit.VMRUN: case SvmExit.VMMCALL: case SvmExit.VMLOAD: case SvmExit.VMSAVE:
      case SvmExit.STGI: case SvmExit.CLGI: case SvmExit.SKINIT:
        v.write(F.NRIP, nextRip(s, e.instrLen));
        return;
      default:
        if (code >= SvmExit.CR_READ_BASE && code < SvmExit.EXCP_BASE || code === SvmExit.CR0_SEL_WRITE) {
          // Decode assist (APM 15.33): MOV CR/DR sets EXITINFO1 bit 63 and the GPR in 3:0;
          // LMSW (selective CR0 write) and CLTS leave it 0.
          const gpr = code >= SvmExit.DR_READ_BASE && code < SvmExit.EXCP_BASE ? e.drGpr
            : e.crAccessType === CrAccessType.MovToCr || e.crAccessType === CrAccessType.MovFromCr ? e.crGpr : -1;
          if (gpr >= 0) v.write64(F.EXITINFO1, gpr & 0xf, 0x8000_0000);
          v.write(F.NRIP, nextRip(s, e.instrLen));
        }
        return;
    }
  }
}

/** INTERCEPT_DR bit of the DR access the core stopped at (reads 15:0, writes 31:16). */
function drBit(vcpu: EngineVcpu): number {
  const e = vcpu.exit;
  return 1 << ((e.drNumber & 15) + (e.drRead ? 0 : 16));
}

/**
 * The intercept bit of the SVM instruction 0F 01 D8+n: MISC2 bit n for VMRUN..SKINIT
 * (n = 0, 2-6), MISC1 INVLPGA for n = 7 (APM B-1).
 */
function svmInsnIntercepted(v: Vmcb, n: number): boolean {
  if (n === 7) return (v.read(F.INTERCEPT_MISC1) & Misc1.INVLPGA) !== 0;
  return (v.read(F.INTERCEPT_MISC2) & (1 << (n & 7))) !== 0;
}

/** APM appendix C exit codes of CpuExitReason.Instruction stops. */
function insnExitCode(vcpu: EngineVcpu): number {
  const e = vcpu.exit;
  switch (e.insn) {
    case InsnIntercept.Rdtsc: return SvmExit.RDTSC;
    case InsnIntercept.Rdpmc: return SvmExit.RDPMC;
    case InsnIntercept.Invd: return SvmExit.INVD;
    case InsnIntercept.Pause: return SvmExit.PAUSE;
    case InsnIntercept.Invlpg: return SvmExit.INVLPG;
    case InsnIntercept.Wbinvd: return SvmExit.WBINVD;
    case InsnIntercept.Vmmcall: return SvmExit.VMMCALL;
    // 0F 01 D8+n: VMRUN 80h, VMLOAD 82h ... SKINIT 86h; INVLPGA (DF) is 7Ah.
    case InsnIntercept.SvmInsn: return e.svmInsn === 7 ? SvmExit.INVLPGA : SvmExit.VMRUN + (e.svmInsn & 7);
    case InsnIntercept.MovDr: return (e.drRead ? SvmExit.DR_READ_BASE : SvmExit.DR_WRITE_BASE) + (e.drNumber & 15);
    default: return SvmExit.INTR; // not programmed by this extension
  }
}

/**
 * CrAccess stops (APM 15.9): CR3 reads/writes come from cr3StoreExit/cr3LoadExit; CR0
 * writes only from the selective-write mapping (mask = all but TS/MP, shadow = CR0), so
 * MOV to CR0 and LMSW that stop are exit 65h.
 */
function crExitCode(vcpu: EngineVcpu): number {
  const e = vcpu.exit;
  if (e.crNumber === 0) return SvmExit.CR0_SEL_WRITE;
  return (e.crAccessType === CrAccessType.MovFromCr ? SvmExit.CR_READ_BASE : SvmExit.CR_WRITE_BASE) + (e.crNumber & 15);
}

const scratchRip: X86State = resetState();

/** Read through a call so the compiler does not narrow a field the core writes. */
function exitReason(vcpu: EngineVcpu): CpuExitReason {
  return vcpu.exit.reason;
}

function nextRip(s: X86State, len: number): number {
  const next = (s.eip + len) >>> 0;
  return s.cs.attrib & ATTRIB_DB ? next : next & 0xffff;
}

/** V_IRQ is pending and its priority beats V_TPR (or V_IGN_TPR): APM 15.21.4. */
function virtualInterruptPending(v: Vmcb): boolean {
  if (!v.bits(B.V_IRQ)) return false;
  return v.bits(B.V_IGN_TPR) !== 0 || v.bits(B.V_INTR_PRIO) > (v.bits(B.V_TPR) & 0xf);
}

/** Intercept vectors → the engine's controls (APM 15.9-15.13). */
function programIntercepts(v: Vmcb, ic: InterceptControls, gs: SvmGuest, cr0: number): void {
  const misc1 = v.read(F.INTERCEPT_MISC1);
  const misc2 = v.read(F.INTERCEPT_MISC2);
  ic.hlt = (misc1 & Misc1.HLT) !== 0;
  ic.cpuid = (misc1 & Misc1.CPUID) !== 0;
  // IOIO_PROT consults the IOPM (APM 15.10.1), bound and checked by hvkit.iopm. Accesses
  // that wrap past FFFF (the third page's job) always exit in the core.
  ic.ioAll = false;
  ic.ioBitmap = misc1 & Misc1.IOIO_PROT ? gs.iopmBits() : null;
  // MSR_PROT: every RDMSR/WRMSR stops; runGuest consults the MSRPM (APM 15.11).
  ic.msr = (misc1 & Misc1.MSR_PROT) !== 0;
  ic.insn = (misc1 & Misc1.RDTSC ? InsnIntercept.Rdtsc : 0)
    | (misc1 & Misc1.RDPMC ? InsnIntercept.Rdpmc : 0)
    | (misc1 & Misc1.INVD ? InsnIntercept.Invd : 0)
    | (misc1 & Misc1.PAUSE ? InsnIntercept.Pause : 0)
    | (misc1 & Misc1.INVLPG ? InsnIntercept.Invlpg : 0)
    | (misc2 & Misc2.WBINVD ? InsnIntercept.Wbinvd : 0)
    | (misc2 & Misc2.VMMCALL ? InsnIntercept.Vmmcall : 0)
    // VMRUN is always intercepted (intercept.vmrun), so every SVM instruction stops in the
    // core; runGuest turns those whose own bit is clear into #UD.
    | InsnIntercept.SvmInsn
    // The core's MovDr stops every MOV DR; runGuest lets those with a clear bit through.
    | (v.read(F.INTERCEPT_DR) !== 0 ? InsnIntercept.MovDr : 0);
  const crs = v.read(F.INTERCEPT_CR);
  ic.cr3StoreExit = (crs & CR3_READ) !== 0;
  ic.cr3LoadExit = (crs & CR3_WRITE) !== 0;
  // CR0 selective write (APM 15.9): a write changing any bit but TS/MP exits. That is the
  // core's mask/shadow rule with mask = ~(TS|MP) and shadow = CR0; reads then see CR0 itself.
  ic.cr0Mask = misc1 & Misc1.CR0_SEL_WRITE ? ~CR0_TS_MP : 0;
  ic.cr0Shadow = cr0;
  ic.cr4Mask = 0;
  ic.cr4Shadow = 0;
  ic.softIntBitmap = misc1 & Misc1.INTN ? ALL_SOFT_INTS : null;
  ic.exceptionBitmap = v.read(F.INTERCEPT_EXCEPTIONS) >>> 0;
}

/** State-save area (+ GPRs from guestControl; RAX and RSP live in the VMCB) → state. */
function loadGuest(v: Vmcb, regs: Uint32Array, s: X86State): void {
  s.eax = v.read(F.RAX);
  s.ecx = regs[Gpr.Ecx]!; s.edx = regs[Gpr.Edx]!; s.ebx = regs[Gpr.Ebx]!;
  s.esp = v.read(F.RSP);
  s.ebp = regs[Gpr.Ebp]!; s.esi = regs[Gpr.Esi]!; s.edi = regs[Gpr.Edi]!;
  s.eip = v.read(F.RIP);
  s.eflags = v.read(F.RFLAGS);
  v.readSegment(F.ES, s.es); v.readSegment(F.CS, s.cs); v.readSegment(F.SS, s.ss);
  v.readSegment(F.DS, s.ds); v.readSegment(F.FS, s.fs); v.readSegment(F.GS, s.gs);
  v.readSegment(F.LDTR, s.ldtr); v.readSegment(F.TR, s.tr);
  v.readTable(F.GDTR, s.gdtr); v.readTable(F.IDTR, s.idtr);
  s.cr0 = v.read(F.CR0); s.cr2 = v.read(F.CR2); s.cr3 = v.read(F.CR3); s.cr4 = v.read(F.CR4);
  s.dr7 = v.read(F.DR7);
  // EFER.SVME is the host's requirement for guest mode (checked above); the core has no SVM.
  s.efer = v.read(F.EFER) & ~Efer.SVME;
  s.activity = Activity.Active;
  s.interruptibility = v.bits(B.INTERRUPT_SHADOW) ? Interruptibility.BlockingBySti : 0;
}

/** State → state-save area (+ GPRs to guestControl; EAX/ESP mirrored there too). */
function saveGuest(v: Vmcb, regs: Uint32Array, s: X86State): void {
  regs[Gpr.Eax] = s.eax; regs[Gpr.Ecx] = s.ecx; regs[Gpr.Edx] = s.edx; regs[Gpr.Ebx] = s.ebx;
  regs[Gpr.Esp] = s.esp; regs[Gpr.Ebp] = s.ebp; regs[Gpr.Esi] = s.esi; regs[Gpr.Edi] = s.edi;
  v.write(F.RAX, s.eax);
  v.write(F.RSP, s.esp);
  v.write(F.RIP, s.eip);
  v.write(F.RFLAGS, s.eflags);
  v.writeSegment(F.ES, s.es); v.writeSegment(F.CS, s.cs); v.writeSegment(F.SS, s.ss);
  v.writeSegment(F.DS, s.ds); v.writeSegment(F.FS, s.fs); v.writeSegment(F.GS, s.gs);
  v.writeSegment(F.LDTR, s.ldtr); v.writeSegment(F.TR, s.tr);
  v.writeTable(F.GDTR, s.gdtr); v.writeTable(F.IDTR, s.idtr);
  v.write(F.CR0, s.cr0); v.write(F.CR2, s.cr2); v.write(F.CR3, s.cr3); v.write(F.CR4, s.cr4);
  v.write(F.DR7, s.dr7);
  v.write(F.EFER, (s.efer | Efer.SVME) >>> 0);
  // APM 15.5.1: CPL is 0 in real mode, 3 in virtual-8086 mode, else SS.DPL.
  const cpl = (s.cr0 & CR0_PE) === 0 ? 0 : s.eflags & EFLAGS_VM ? 3 : (s.ss.attrib >>> 5) & 3;
  v.write(F.CPL, cpl);
  v.setBits(B.INTERRUPT_SHADOW, s.interruptibility & SHADOW ? 1 : 0);
}


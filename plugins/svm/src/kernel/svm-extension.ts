// The kernel half of plugins/svm: VMRUN semantics on a VMCB frame that the monitor
// edits directly (AMD APM Vol. 2 chapter 15). VMRUN runs the consistency checks
// (15.5.1), loads the guest from the state-save area, programs the engine's
// intercepts from the intercept vectors (15.9), injects EVENTINJ (15.20), runs the
// guest for one timeslice, and on #VMEXIT writes EXITCODE/EXITINFO1/EXITINFO2/nRIP
// (15.6, 15.7) and saves the guest back.
//
// Emulated: the intercepts INTR, NMI, INIT, VINTR, CPUID, HLT, IOIO_PROT through the
// IOPM (15.10.1), MSR_PROT through the MSRPM (15.11), SHUTDOWN, INTn, exception
// intercepts, RDTSC, RDPMC, INVD, PAUSE, INVLPG, WBINVD, PUSHF, POPF, IRET, RDTSCP, ICEBP,
// MONITOR, MWAIT, XSETBV, descriptor-table reads/writes, TASK_SWITCH, CR0-15 reads/writes,
// CR0 selective write, DR reads/writes; V_IRQ/V_TPR/V_INTR_PRIO/V_IGN_TPR/V_INTR_VECTOR
// virtual interrupts (15.21.4); EVENTINJ of every type (15.20); EXITINTINFO (15.7.2);
// NMI blocking kept per guest across VMRUNs (it is not in the VMCB); SMI/NMI/INIT posted by
// the monitor in GuestControlWord.PendingEvents (SMI intercept 62h, else consumed; INIT
// without its intercept → #SX, VM_CR.R_INIT); TSC_OFFSET; GIF (cleared on #VMEXIT,
// set by VMRUN); interrupt shadow; nRIP (15.7.1); #PF EXITINFO2. No decode assists (15.33: not in CPUID).
// The SVM instructions VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA are #GP(0) at
// CPL > 0 before their intercept (APM 15.9: simple exceptions first); at CPL 0 they exit
// when intercepted and are #UD otherwise (the guest has no SVM: CPUID hides it).
// Not emulated (README): TLB_CONTROL and ASIDs beyond the non-zero check (no guest TLB),
// VMCB clean bits (every VMRUN reloads everything, APM 15.15.4 allows it), SMM,
// MWAIT_CONDITIONAL (the core's MONITOR arms nothing), long mode, host VMLOAD/VMSAVE.
import {
  GuestControlWord,
  NestedAccess,
  NestedFaultKind,
  NestedFormat,
  nestedPagingFor,
  PendingEvent,
  SysErr,
  type NestedPagingMemory,
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
  DescInsn,
  InsnIntercept,
  EventType,
  Gpr,
  Interruptibility,
  SoftIntKind,
  TaskSwitchSource,
  type InterceptControls,
  type X86State,
} from "../../../../src/x86/types.js";
import { resetState } from "../../../../src/x86/state.js";
import {
  B, Efer, EventInj, EventInjType, F, IoioInfo, Misc1, Misc2, SvmExit, TaskSwitchInfoHi, Vmcb, VMCB_BYTES,
} from "../vmcb.js";
import { firstFailedCheck, SOFT_SVM_CAPS, type SvmCaps, type VmrunEnv } from "./vmrun-checks.js";

const EFLAGS_VM = 1 << 17;
/** GuestFrameRole.SvmIopm / SvmMsrpm (a const enum of src/kernel/api.ts, as plain indices). */
const ROLE_IOPM = 3, ROLE_MSRPM = 4;
const CR0_PE = 1;
/** VMX-format D/B bit of CS (SDM 25.4.1): 32-bit code. */
const ATTRIB_DB = 1 << 14;
const SHADOW = Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs;
const GP = 13, PF = 14;
/** #SX (APM 8.2): vector 30; error code 1 = an INIT redirected by VM_CR.R_INIT (APM 15.21.8). */
const SX = 30, SX_INIT_REDIRECT = 1;
/** INTERCEPT_MISC1 descriptor-table bits → core descExitMask bits (DescInsn order). */
const DESC_INTERCEPTS: readonly (readonly [number, DescInsn])[] = [
  [Misc1.GDTR_READ, DescInsn.Sgdt], [Misc1.IDTR_READ, DescInsn.Sidt],
  [Misc1.GDTR_WRITE, DescInsn.Lgdt], [Misc1.IDTR_WRITE, DescInsn.Lidt],
  [Misc1.LDTR_READ, DescInsn.Sldt], [Misc1.TR_READ, DescInsn.Str],
  [Misc1.LDTR_WRITE, DescInsn.Lldt], [Misc1.TR_WRITE, DescInsn.Ltr],
];
/** Exit code per DescInsn (APM appendix C: 66h-6Dh). */
const DESC_EXIT: readonly number[] = [
  SvmExit.GDTR_READ, SvmExit.IDTR_READ, SvmExit.GDTR_WRITE, SvmExit.IDTR_WRITE,
  SvmExit.LDTR_READ, SvmExit.TR_READ, SvmExit.LDTR_WRITE, SvmExit.TR_WRITE,
];
/** EventType → EVENTINJ/EXITINTINFO TYPE (APM 15.20): INT3/INTO and ICEBP are exceptions (3). */
const EXITINTINFO_TYPE: readonly number[] = [
  EventInjType.INTR, EventInjType.INTR, EventInjType.NMI, EventInjType.EXCEPTION,
  EventInjType.SOFT_INT, EventInjType.EXCEPTION, EventInjType.EXCEPTION, EventInjType.EXCEPTION,
];

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
  /**
   * The guest's NMI blocking (from an NMI's delivery to the next IRET, SDM 6.7.1): processor
   * state the VMCB's architected state does not hold, so the kernel keeps it per guest
   * across VMRUNs. A VMM learns that it ended by intercepting IRET (APM 15.9).
   */
  nmiBlocked = false;
  /**
   * TSC change the guest made with an unintercepted WRMSR IA32_TSC: on hardware that write
   * moves the physical TSC (guest TSC = TSC + TSC_OFFSET), so it persists across VMRUNs.
   */
  tscAdjust = 0;
  /** The NPT walker over the bound GuestPhysSpace (null: the engine cannot install one), and whether it is installed. */
  nested: NestedPagingMemory | null = null;
  nestedOn = false;
  constructor(readonly vmcb: Vmcb, caps: SvmCaps, gpspacePaddr: number, readonly frames: GuestBinding["frames"],
    nptTableRam?: (pa: number) => boolean) {
    this.env = { caps, gpspacePaddr, frames, nptTableRam };
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
  /**
   * The global interrupt flag (APM 15.17): set by VMRUN, cleared by #VMEXIT. The host never
   * executes STGI here (no host-side STGI/CLGI call), so between a #VMEXIT and the next
   * VMRUN posted NMI/INIT stay pending and are recognised in guest mode after VMRUN.
   */
  gif: boolean;
}

/** The CPUID leaves readCapability answers (APM Vol. 3 appendix E.4). */
export const SVM_CPUID = { ExtFeatures: 0x80000001, AddressSizes: 0x80000008, SvmFeatures: 0x8000000a } as const;
/** CPUID Fn8000_000A EDX (APM Vol. 3 E.4.9). */
export const SvmFeature = { Np: 1 << 0, LbrVirt: 1 << 1, Svml: 1 << 2, Nrips: 1 << 3, DecodeAssists: 1 << 7 } as const;

export class SvmKernelExtension implements SvmExtension {
  readonly kind = "svm" as const;
  readonly host: SvmHostState = { svme: false, hsave: null, gif: true };
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
   * DecodeAssists (bit 7) is not reported (no instruction bytes for #PF/NPF in
   * GUEST_INSN_LEN), so no exit carries decode information either (encodeExit).
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
    // N_CR3 may instead name nested tables the monitor built in the space (hvkit.n-cr3);
    // walking them needs an engine that takes a new PhysMemory (EngineVcpu.setMemory).
    v.write(F.N_CR3, guest.gpspace.paddr);
    const nested = typeof guest.vcpu?.setMemory === "function" ? nestedPagingFor(guest.gpspace.memory) : null;
    const host = nested?.host;
    const gs = new SvmGuest(v, this.caps, guest.gpspace.paddr, guest.frames,
      host === undefined ? undefined : (pa) => host.mappingAt(pa) !== null);
    gs.nested = nested;
    // The walker counts guest page-table accesses as writes for nested A/D (APM 15.25.5).
    if (nested !== null && guest.vcpu !== undefined) nested.walkSource = guest.vcpu.exit;
    guest.ext = gs;
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
    // #VMEXIT (also VMEXIT_INVALID) leaves GIF clear (APM 15.17).
    this.host.gif = false;
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
    if (gs.nmiBlocked) s.interruptibility |= Interruptibility.BlockingByNmi;
    vcpu.setState(s);
    installNpt(v, g, gs);
    programIntercepts(v, vcpu.intercepts, gs);
    // APM 15.5: the guest reads TSC + TSC_OFFSET (a signed 64-bit field) in RDTSC, RDTSCP
    // and RDMSR IA32_TSC; tscAdjust carries the guest's own writes of IA32_TSC.
    const tscOffset = (v.readHi(F.TSC_OFFSET) | 0) * 0x1_0000_0000 + v.read(F.TSC_OFFSET);
    vcpu.tscOffset = gs.tscAdjust + tscOffset;
    vcpu.exit.vectoringValid = false;
    v.write(F.EXITINFO1, 0);
    v.write(F.EXITINFO2, 0);
    v.write(F.EXITINTINFO, 0);
    v.write(F.NRIP, 0);
    this.host.gif = true; // VMRUN sets GIF (APM 15.17)

    const code = this.runGuest(v, vcpu, gs, g.guestControl, this.ctx?.timeslice ?? 100_000);
    this.host.gif = false;
    gs.tscAdjust = vcpu.tscOffset - tscOffset;
    vcpu.getState(s);
    gs.nmiBlocked = (s.interruptibility & Interruptibility.BlockingByNmi) !== 0;
    this.encodeExit(v, vcpu, s, code);
    saveGuest(v, g.guestControl, s);
    return SysErr.Ok;
  }

  /** Injects EVENTINJ and runs until an intercept; returns the SVM exit code. */
  private runGuest(v: Vmcb, vcpu: EngineVcpu, gs: SvmGuest, gc: Uint32Array, timeslice: number): number {
    const ic = vcpu.intercepts;
    const inj = v.read(F.EVENTINJ);
    if (inj & EventInj.V) {
      // APM 15.20: the event is delivered through the guest IDT after the guest state is
      // loaded. TYPE (checked by eventinj.type) equals the core's EventType; an NMI ignores
      // VECTOR and goes through vector 2; TYPE exception is delivered as a fault without the
      // INTn privilege check, TYPE software interrupt as INT n (RIP is the return address).
      const err = v.readHi(F.EVENTINJ);
      v.write64(F.EVENTINJ, 0, 0);
      const type = (inj & EventInj.TYPE_MASK) >>> EventInj.TYPE_SHIFT;
      vcpu.exit.reason = CpuExitReason.None;
      vcpu.deliverEvent(type as EventType, type === EventInjType.NMI ? 2 : inj & EventInj.VECTOR_MASK, err, (inj & EventInj.EV) !== 0);
      // A fault during delivery that is intercepted: EXITINTINFO (from the core's vectoring
      // information, encodeExit) names the event, which was not delivered (APM 15.7.2).
      const code = this.afterDelivery(v, vcpu, gs);
      if (code >= 0) return code;
    }

    const misc1 = v.read(F.INTERCEPT_MISC1);
    // Physical SMI/INIT/NMI posted by the monitor (GuestControlWord.PendingEvents), recognised
    // at the first instruction boundary in guest mode: GIF = 1 only from VMRUN to #VMEXIT, so
    // a signal posted between VMRUNs is held pending until then (APM 15.17). SMI before INIT
    // before NMI (external hardware interventions first, APM 8.5). Intercepted: #VMEXIT and
    // the signal is consumed. An unintercepted NMI is delivered to the guest once it is not
    // NMI-blocked.
    let pending = gc[GuestControlWord.PendingEvents]!;
    if (pending & PendingEvent.Smi) {
      // APM 15.13.2: with the SMI intercept, #VMEXIT(SMI). Without it the SMI is the host's:
      // its SMM handler runs and RSM returns to the guest, which sees nothing. No SMM is
      // modelled, so the SMI is consumed with no guest-visible effect.
      pending &= ~PendingEvent.Smi;
      gc[GuestControlWord.PendingEvents] = pending;
      if (misc1 & Misc1.SMI) return SvmExit.SMI;
    }
    if (pending & PendingEvent.Init) {
      pending &= ~PendingEvent.Init;
      gc[GuestControlWord.PendingEvents] = pending;
      if (misc1 & Misc1.INIT) return SvmExit.INIT;
      // APM 15.21.8: an INIT the VMM does not intercept is redirected to #SX (vector 30,
      // error code 1) when VM_CR.R_INIT is set; this kernel runs with R_INIT = 1 (it never
      // lets a guest reset the host CPU). #SX is an ordinary exception to the guest:
      // exit 5Eh when intercepted, else delivered through the guest's IDT/IVT.
      if (ic.exceptionBitmap & (1 << SX)) {
        v.write(F.EXITINFO1, SX_INIT_REDIRECT);
        return SvmExit.EXCP_BASE + SX;
      }
      vcpu.exit.reason = CpuExitReason.None;
      vcpu.deliverEvent(EventType.HardwareException, SX, SX_INIT_REDIRECT, true);
      const code = this.afterDelivery(v, vcpu, gs);
      if (code >= 0) return code;
    }
    let nmiWait = (pending & PendingEvent.Nmi) !== 0;
    if (nmiWait && misc1 & Misc1.NMI) {
      gc[GuestControlWord.PendingEvents] = pending & ~PendingEvent.Nmi;
      return SvmExit.NMI;
    }
    let virq = virtualInterruptPending(v);
    let remaining = timeslice;
    const startRetired = vcpu.retired; // the HLT idle time is the rest of the timeslice
    for (;;) {
      if (nmiWait) {
        // SDM 6.7.1: NMIs are blocked after one is delivered until the next IRET (and for
        // one instruction after MOV SS); they take priority over maskable interrupts.
        vcpu.getState(scratchRip);
        if ((scratchRip.interruptibility & (Interruptibility.BlockingByNmi | Interruptibility.BlockingByMovSs)) === 0) {
          nmiWait = false;
          gc[GuestControlWord.PendingEvents] = gc[GuestControlWord.PendingEvents]! & ~PendingEvent.Nmi;
          vcpu.exit.reason = CpuExitReason.None;
          vcpu.deliverEvent(EventType.Nmi, 2, 0, false);
          const code = this.afterDelivery(v, vcpu, gs);
          if (code >= 0) return code;
        }
      }
      if (virq && vcpu.interruptible()) {
        // APM 15.21.4: the VINTR intercept fires where the guest would take V_IRQ.
        if (misc1 & Misc1.VINTR) return SvmExit.VINTR;
        v.setBits(B.V_IRQ, 0);
        virq = false;
        vcpu.exit.reason = CpuExitReason.None;
        vcpu.deliverEvent(EventType.ExtInt, v.bits(B.V_INTR_VECTOR), 0, false);
        const code = this.afterDelivery(v, vcpu, gs);
        if (code >= 0) return code;
      }
      // The end of the timeslice is a physical interrupt to the host (INTR intercept,
      // required by hvkit.intercept-intr).
      if (remaining <= 0) return SvmExit.INTR;
      // While a virtual interrupt waits for IF=1 (or an NMI for the IRET), step so the
      // window is seen at once.
      const budget = virq || nmiWait ? 1 : remaining;
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
      if (r === CpuExitReason.Instruction && vcpu.exit.insn === InsnIntercept.SvmInsn && guestCpl(vcpu) !== 0) {
        // APM 15.9: instruction intercepts are checked after simple exceptions such as #GP
        // for a wrong CPL; VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT and INVLPGA need CPL 0.
        if (ic.exceptionBitmap & (1 << GP)) {
          v.write(F.EXITINFO1, 0);
          return SvmExit.EXCP_BASE + GP;
        }
        vcpu.exit.reason = CpuExitReason.None;
        vcpu.deliverEvent(EventType.HardwareException, GP, 0, true);
        const code = this.afterDelivery(v, vcpu, gs);
        if (code >= 0) return code;
        continue;
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
        case CpuExitReason.TaskSwitch:
          return SvmExit.TASK_SWITCH;
        case CpuExitReason.MemAbort:
          return npfExit(v, vcpu, gs);
        case CpuExitReason.Halted:
          // HLT not intercepted: the guest waits for an interrupt. A pending virtual
          // interrupt or NMI wakes it; otherwise it idles to the end of the timeslice, and
          // the TSC runs on meanwhile (EngineVcpu.wait: idle time, APM 17.4 / SDM 18.17). The
          // VMCB has no activity state: the next VMRUN resumes after the HLT (APM 15.9).
          if ((virq && vcpu.interruptible()) || nmiWait) continue;
          if (vcpu.wait !== undefined) {
            vcpu.getState(scratchRip);
            if (scratchRip.activity === Activity.Hlt) vcpu.wait(timeslice - (vcpu.retired - startRetired));
          }
          return SvmExit.INTR;
        default:
          return SvmExit.INTR;
      }
    }
  }

  /**
   * After the kernel delivers an event itself (EVENTINJ, #SX, NMI, V_IRQ, #GP): the exit
   * the delivery stopped at (an intercepted fault with EXITINTINFO, shutdown, a nested page
   * fault, or a task switch through a task gate, APM 15.14.1), or -1 to run on.
   */
  private afterDelivery(v: Vmcb, vcpu: EngineVcpu, gs: SvmGuest): number {
    switch (exitReason(vcpu)) {
      case CpuExitReason.Exception: return this.exceptionExit(v, vcpu);
      case CpuExitReason.TripleFault: return SvmExit.SHUTDOWN;
      case CpuExitReason.MemAbort: return npfExit(v, vcpu, gs);
      case CpuExitReason.TaskSwitch: return SvmExit.TASK_SWITCH;
      default: return -1;
    }
  }

  private exceptionExit(v: Vmcb, vcpu: EngineVcpu): number {
    const e = vcpu.exit;
    // APM 15.12: EXITINFO1 holds the error code of exceptions that push one. An intercepted
    // #PF gives the faulting linear address in EXITINFO2 and leaves CR2 alone
    // (the core does not load CR2 for an exception that stops it).
    v.write(F.EXITINFO1, e.hasErrorCode ? e.errorCode : 0);
    if ((e.vector & 31) === PF) v.write(F.EXITINFO2, e.linear >>> 0);
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
    if (e.vectoringValid) {
      // APM 15.7.2: the exit happened while delivering this event, which was not delivered.
      let info = (e.vectoringVector & EventInj.VECTOR_MASK) | (EXITINTINFO_TYPE[e.vectoringType & 7]! << EventInj.TYPE_SHIFT) | EventInj.V;
      if (e.vectoringHasErrorCode) info |= EventInj.EV;
      v.write64(F.EXITINTINFO, info >>> 0, e.vectoringHasErrorCode ? e.vectoringErrorCode : 0);
      // The core leaves RIP on an INT n / INT3 / INTO / ICEBP whose delivery exited; nRIP
      // is the return address a VMM re-injecting it through EVENTINJ moves RIP to first.
      const t = e.vectoringType;
      if ((t === EventType.SoftwareInt || t === EventType.SoftwareException || t === EventType.PrivilegedSoftwareException) && e.instrLen > 0) {
        v.write(F.NRIP, nextRip(s, e.instrLen));
      }
    }
    switch (code) {
      case SvmExit.CPUID:
      case SvmExit.HLT:
        v.write(F.NRIP, nextRip(s, e.instrLen));
        return;
      case SvmExit.SWINT:
        // EXITINFO1 = the vector only with decode assists (APM 15.33.2), not reported: 0.
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
        // EXITINFO1 = the linear address only with decode assists (APM 15.33.3): 0.
        v.write(F.NRIP, nextRip(s, e.instrLen));
        return;
      case SvmExit.RDTSC: case SvmExit.RDPMC: case SvmExit.INVD: case SvmExit.PAUSE: case SvmExit.WBINVD:
      case SvmExit.INVLPGA: case SvmExit.VMRUN: case SvmExit.VMMCALL: case SvmExit.VMLOAD: case SvmExit.VMSAVE:
      case SvmExit.STGI: case SvmExit.CLGI: case SvmExit.SKINIT:
      case SvmExit.PUSHF: case SvmExit.POPF: case SvmExit.IRET: case SvmExit.RDTSCP: case SvmExit.ICEBP:
      case SvmExit.MONITOR: case SvmExit.MWAIT: case SvmExit.XSETBV:
      case SvmExit.IDTR_READ: case SvmExit.GDTR_READ: case SvmExit.LDTR_READ: case SvmExit.TR_READ:
      case SvmExit.IDTR_WRITE: case SvmExit.GDTR_WRITE: case SvmExit.LDTR_WRITE: case SvmExit.TR_WRITE:
        v.write(F.NRIP, nextRip(s, e.instrLen));
        return;
      case SvmExit.TASK_SWITCH: {
        // EXITINFO1 = the target TSS selector; EXITINFO2 = source bits and the error code of
        // an event that reached a task gate (TaskSwitchInfoHi). No nRIP: not an instruction
        // intercept (a task switch may come from an event). Bit 48 = the EFLAGS.RF the switch
        // would save in the outgoing TSS (APM 15.14.1): 1 for a fault through a task gate.
        let hi = e.tsSource === TaskSwitchSource.Iret ? TaskSwitchInfoHi.IRET : e.tsSource === TaskSwitchSource.Jmp ? TaskSwitchInfoHi.JMP : 0;
        if (e.tsHasErrorCode) hi |= TaskSwitchInfoHi.HAS_ERROR_CODE;
        if (e.tsRf === true) hi |= 1 << 16; // EXITINFO2 bit 48
        v.write(F.EXITINFO1, e.tsSelector & 0xffff);
        v.write64(F.EXITINFO2, e.tsHasErrorCode ? e.tsErrorCode : 0, hi);
        return;
      }
      default:
        if (code >= SvmExit.CR_READ_BASE && code < SvmExit.EXCP_BASE || code === SvmExit.CR0_SEL_WRITE) {
          // EXITINFO1 bit 63 + GPR for MOV CR/DR (0 for SMSW/LMSW/CLTS) is a decode assist
          // (APM 15.33.1), not reported: EXITINFO1 stays 0 (the VMM decodes the instruction at RIP).
          v.write(F.NRIP, nextRip(s, e.instrLen));
        }
        return;
    }
  }
}

/**
 * The guest's physical memory for this VMRUN (APM 15.25): with NP_ENABLE and N_CR3 naming
 * tables in the bound space, the NPT walker (a new N_CR3 or a nonzero TLB_CONTROL flushes
 * its cache, APM 15.16); with N_CR3 naming the space's root, the space itself.
 */
function installNpt(v: Vmcb, guest: GuestBinding, gs: SvmGuest): void {
  const w = gs.nested;
  if (w === null) return;
  const root = v.read(F.N_CR3) & ~0xfff;
  const on = v.bits(B.NP_ENABLE) !== 0 && root >>> 0 !== guest.gpspace.paddr >>> 0;
  if (on) {
    const flushes = w.flushes;
    w.setRoot(NestedFormat.Npt, root);
    // TLB_CONTROL 1 (all), 3 (this ASID), 7 (non-global): one cache per guest, so each flushes it.
    if (v.read(F.TLB_CONTROL) !== 0 && w.flushes === flushes) w.flush();
  }
  if (on !== gs.nestedOn) {
    guest.vcpu.setMemory!(on ? w : guest.gpspace.memory);
    gs.nestedOn = on;
  }
}

/**
 * #VMEXIT(NPF) (APM 15.25.6): EXITINFO1 = a #PF-format error code (P: the entry was
 * present, RW: a write, US: always 1 (nested accesses are user accesses), RSVD: a reserved
 * bit, ID: an instruction fetch) with bit 32 for a fault on the final guest-physical
 * address and bit 33 for one on a guest page-table access; EXITINFO2 = the guest-physical
 * address.
 */
function npfExit(v: Vmcb, vcpu: EngineVcpu, gs: SvmGuest): number {
  const e = vcpu.exit;
  const w = gs.nested;
  const own = w !== null && w.faultKind !== NestedFaultKind.None;
  const write = own ? w.faultAccess === NestedAccess.Write : e.memWrite;
  const fetch = own ? w.faultAccess === NestedAccess.Fetch : e.memFetch;
  const rsvd = own && w.faultKind === NestedFaultKind.Misconfig;
  const lo = (own && w.faultPresent ? 1 : 0) | (write ? 2 : 0) | 4 | (rsvd ? 8 : 0) | (fetch ? 16 : 0);
  v.write64(F.EXITINFO1, lo, e.memWalk ? 2 : 1);
  v.write64(F.EXITINFO2, (own ? w.faultGpa : e.memGpa) >>> 0, 0);
  return SvmExit.NPF;
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
    case InsnIntercept.Pushf: return SvmExit.PUSHF;
    case InsnIntercept.Popf: return SvmExit.POPF;
    case InsnIntercept.Iret: return SvmExit.IRET;
    case InsnIntercept.Icebp: return SvmExit.ICEBP;
    case InsnIntercept.Rdtscp: return SvmExit.RDTSCP;
    case InsnIntercept.Monitor: return SvmExit.MONITOR;
    case InsnIntercept.Mwait: return SvmExit.MWAIT;
    case InsnIntercept.Xsetbv: return SvmExit.XSETBV;
    case InsnIntercept.DescTable: return DESC_EXIT[e.descInsn & 7]!;
    default: return SvmExit.INTR; // not programmed by this extension
  }
}

/**
 * CrAccess stops (APM 15.9): the core's crReadExit/crWriteExit give 00h+n / 10h+n (SMSW is
 * a CR0 read; CLTS and LMSW CR0 writes); the selective CR0 write intercept gives 65h (the
 * plain CR0 write intercept has priority over it, APM 15.9.1: the core reports which).
 */
function crExitCode(vcpu: EngineVcpu): number {
  const e = vcpu.exit;
  if (e.crSelective) return SvmExit.CR0_SEL_WRITE;
  return (e.crAccessType === CrAccessType.MovFromCr ? SvmExit.CR_READ_BASE : SvmExit.CR_WRITE_BASE) + (e.crNumber & 15);
}

/** APM 15.5.1: CPL is 0 in real mode, 3 in virtual-8086 mode, else SS.DPL (the core's state). */
function guestCpl(vcpu: EngineVcpu): number {
  vcpu.getState(scratchRip);
  const s = scratchRip;
  return (s.cr0 & CR0_PE) === 0 ? 0 : s.eflags & EFLAGS_VM ? 3 : (s.ss.attrib >>> 5) & 3;
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
function programIntercepts(v: Vmcb, ic: InterceptControls, gs: SvmGuest): void {
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
    | (misc1 & Misc1.PUSHF ? InsnIntercept.Pushf : 0)
    | (misc1 & Misc1.POPF ? InsnIntercept.Popf : 0)
    | (misc1 & Misc1.IRET ? InsnIntercept.Iret : 0)
    | (misc2 & Misc2.RDTSCP ? InsnIntercept.Rdtscp : 0)
    | (misc2 & Misc2.ICEBP ? InsnIntercept.Icebp : 0)
    | (misc2 & Misc2.MONITOR ? InsnIntercept.Monitor : 0)
    | (misc2 & Misc2.MWAIT ? InsnIntercept.Mwait : 0)
    | (misc2 & Misc2.XSETBV ? InsnIntercept.Xsetbv : 0)
    // VMRUN is always intercepted (intercept.vmrun), so every SVM instruction stops in the
    // core; runGuest turns those whose own bit is clear into #UD.
    | InsnIntercept.SvmInsn
    // The core's MovDr stops every MOV DR; runGuest lets those with a clear bit through.
    | (v.read(F.INTERCEPT_DR) !== 0 ? InsnIntercept.MovDr : 0);
  // APM 15.9: INTERCEPT_CR bits 15:0 intercept reads of CR0-15, 31:16 writes; the core's
  // SVM CR hooks take the same layout. The VMX mask/shadow and CR3 exiting stay off.
  const crs = v.read(F.INTERCEPT_CR);
  ic.crReadExit = crs & 0xffff;
  ic.crWriteExit = crs >>> 16;
  ic.cr0SelectiveExit = (misc1 & Misc1.CR0_SEL_WRITE) !== 0;
  ic.cr3StoreExit = false;
  ic.cr3LoadExit = false;
  ic.cr0Mask = 0;
  ic.cr0Shadow = 0;
  ic.cr4Mask = 0;
  ic.cr4Shadow = 0;
  let desc = 0;
  for (const [bit, insn] of DESC_INTERCEPTS) if (misc1 & bit) desc |= 1 << insn;
  ic.descExitMask = desc;
  ic.taskSwitchExit = (misc1 & Misc1.TASK_SWITCH) !== 0;
  ic.softIntBitmap = misc1 & Misc1.INTN ? ALL_SOFT_INTS : null;
  ic.exceptionBitmap = v.read(F.INTERCEPT_EXCEPTIONS) >>> 0;
  // APM 15.12: DR6 is updated as the #DB would update it before the #DB intercept (Intel
  // leaves it alone, SDM 27.1; the core's default). The core keeps DR6: no VMCB field reaches it.
  ic.dbExitSetsDr6 = true;
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


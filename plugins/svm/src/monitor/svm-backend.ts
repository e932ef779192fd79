// The monitor half of plugins/svm: a VcpuBackend over a VMCB frame that the monitor
// maps (Syscalls.frameMap) and edits directly, as vmkitmon does: no syscall per
// field, one `vmrun` syscall per entry (AMD APM Vol. 2 chapter 15).
//
// Exits are decoded from EXITCODE/EXITINFO1/EXITINFO2/nRIP into the backend-neutral
// VmExit union, one reused object per kind. Instruction exits are completed at the
// next run() (KVM-like): IN data into AL/AX/EAX, CPUID results into EAX-EDX, RIP to
// nRIP. String I/O (INS/OUTS, REP) runs through the shared IoAssist against the PIO
// bus and guest memory, and is reported as one `io` exit with `count` (README); nested
// page faults on MMIO (`npt: true`) run through the MemAssist and are reported as one
// `mmio` exit with `count`. Task switches (TASK_SWITCH intercept) are performed with the
// shared TaskSwitchAssist and the guest re-entered.
import { inject, injectable, type InjectionToken } from "tsyringe";
import { MapPerm, NestedFormat, identityTablesBytes, writeIdentityTables } from "../../../../src/kernel/api.js";
import { GUEST_FRAME_BYTES, GuestControlWord, GuestFrameRole, ObjType, PendingEvent, SYS_ERR_NAMES, SysErr, type CPtr, type Syscalls } from "../../../../src/kernel/api.js";
import {
  ExitObjects,
  MemAssist,
  MemAssistStatus,
  IoAssist,
  IoAssistStatus,
  StateParts,
  TaskSwitchAssist,
  TaskSwitchOutcome,
  faultSetsRf,
  Tokens,
  newStringIo,
  busPortAccess,
  stringIoUnsupported,
  type Bus,
  type GuestMemory,
  type PortAccess,
  type StringIo,
  type TaskGateEvent,
  type MachineCaps,
  type UnhandledExit,
  type VcpuBackend,
  type VcpuEvent,
  type VmExit,
} from "../../../../src/monitor/api.js";
import { Activity, EventType, Gpr, Interruptibility, TaskSwitchSource, type AccessSize, type X86State } from "../../../../src/x86/types.js";
import { resetState } from "../../../../src/x86/state.js";
import { B, Efer, EventInj, EventInjType, F, IoioInfo, Misc1, Misc2, SvmExit, TaskSwitchInfoHi, Vmcb, VMCB_BYTES } from "../vmcb.js";
import { VMRUN_CHECKS } from "../kernel/vmrun-checks.js";

/** A host-side problem setting up or running the SVM vCPU (never caused by the guest). */
export class SvmBackendError extends Error {
  override readonly name = "SvmBackendError";
}

const EFLAGS_IF = 1 << 9, EFLAGS_DF = 1 << 10, EFLAGS_RF = 1 << 16, EFLAGS_VM = 1 << 17;
const CR0_PE = 1;
/** VMCB segment records in x86 Sreg order (ES, CS, SS, DS, FS, GS), as EXITINFO1.SEG numbers them. */
const SREG_FIELDS = [F.ES, F.CS, F.SS, F.DS, F.FS, F.GS] as const;
/** Exceptions that push an error code in protected mode (APM 8.2); none do in real mode. */
const ERROR_CODE_VECTORS = (1 << 8) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 17) | (1 << 21) | (1 << 29) | (1 << 30);
const SIZE_MASK = [0, 0xff, 0xffff, 0, 0xffffffff] as const;
/** #VMEXIT(NPF) EXITINFO1 has the #PF error-code format (APM 15.25.6): bit 1 = write access. */
const NPF_ERR_WRITE = 1 << 1;

/** The intercepts this backend always sets (APM 15.9; INTR and SHUTDOWN are required by the hvkit kernel). */
export const SVM_BACKEND_MISC1 = Misc1.INTR | Misc1.CPUID | Misc1.HLT | Misc1.IOIO_PROT | Misc1.SHUTDOWN;
export const SVM_BACKEND_MISC2 = Misc2.VMRUN;
export const SVM_BACKEND_ASID = 1;

/** Messages for VMEXIT_INVALID, built once (EXITINFO1 = failed check index + 1). */
const INVALID_MESSAGES = VMRUN_CHECKS.map((c) => `VMEXIT_INVALID: ${c.name}: ${c.rule}`);

const enum Completion { None, IoIn, IoOut, Cpuid, Hlt, MsrRead, MsrWrite }

/** Names of the instruction/CR/DR exits this backend reports as `unhandled` (APM appendix C). */
function exitName(code: number): string | null {
  if (code >= SvmExit.CR_READ_BASE && code < SvmExit.CR_WRITE_BASE) return `MOV from CR${code - SvmExit.CR_READ_BASE}`;
  if (code >= SvmExit.CR_WRITE_BASE && code < SvmExit.DR_READ_BASE) return `MOV to CR${code - SvmExit.CR_WRITE_BASE}`;
  if (code >= SvmExit.DR_READ_BASE && code < SvmExit.DR_WRITE_BASE) return `MOV from DR${code - SvmExit.DR_READ_BASE}`;
  if (code >= SvmExit.DR_WRITE_BASE && code < SvmExit.EXCP_BASE) return `MOV to DR${code - SvmExit.DR_WRITE_BASE}`;
  switch (code) {
    case SvmExit.CR0_SEL_WRITE: return "CR0 selective write";
    case SvmExit.RDTSC: return "RDTSC";
    case SvmExit.RDPMC: return "RDPMC";
    case SvmExit.INVD: return "INVD";
    case SvmExit.PAUSE: return "PAUSE";
    case SvmExit.INVLPG: return "INVLPG";
    case SvmExit.WBINVD: return "WBINVD";
    case SvmExit.INVLPGA: return "INVLPGA";
    case SvmExit.VMRUN: return "VMRUN";
    case SvmExit.VMMCALL: return "VMMCALL";
    case SvmExit.VMLOAD: return "VMLOAD";
    case SvmExit.VMSAVE: return "VMSAVE";
    case SvmExit.STGI: return "STGI";
    case SvmExit.CLGI: return "CLGI";
    case SvmExit.SKINIT: return "SKINIT";
    case SvmExit.NMI: return "NMI";
    case SvmExit.SMI: return "SMI";
    case SvmExit.INIT: return "INIT";
    case SvmExit.IDTR_READ: return "SIDT";
    case SvmExit.GDTR_READ: return "SGDT";
    case SvmExit.LDTR_READ: return "SLDT";
    case SvmExit.TR_READ: return "STR";
    case SvmExit.IDTR_WRITE: return "LIDT";
    case SvmExit.GDTR_WRITE: return "LGDT";
    case SvmExit.LDTR_WRITE: return "LLDT";
    case SvmExit.TR_WRITE: return "LTR";
    case SvmExit.PUSHF: return "PUSHF";
    case SvmExit.POPF: return "POPF";
    case SvmExit.RSM: return "RSM";
    case SvmExit.IRET: return "IRET";
    case SvmExit.TASK_SWITCH: return "task switch";
    case SvmExit.FERR_FREEZE: return "FERR freeze";
    case SvmExit.RDTSCP: return "RDTSCP";
    case SvmExit.ICEBP: return "ICEBP";
    case SvmExit.MONITOR: return "MONITOR";
    case SvmExit.MWAIT: return "MWAIT";
    case SvmExit.MWAIT_CONDITIONAL: return "MWAIT (conditional)";
    case SvmExit.XSETBV: return "XSETBV";
    default: return null;
  }
}
/** Messages for the named exits, built once so an exit does not allocate. */
const UNHANDLED_MESSAGES = new Map<number, string>();
for (let code = 0; code < 0x100; code++) {
  const name = exitName(code);
  if (name !== null) UNHANDLED_MESSAGES.set(code, `SVM exit 0x${code.toString(16)} (${name}) has no VmExit kind in this backend`);
}

/** The `unhandled` message of a task-switch exit on a backend built without the GuestMemory. */
const TASK_SWITCH_NO_MEMORY = "SVM exit 0x7d (task switch): the task-switch assist needs the GuestMemory";

/** Options of the svm plugin that the backend reads (index.ts registers them). */
export interface SvmBackendOptions {
  /**
   * true: the backend builds long-mode nested tables mapping guest RAM identically and names
   * them in N_CR3; accesses outside RAM are nested page faults that go through the MemAssist
   * to the MMIO bus. false: N_CR3 names the GuestPhysSpace itself (kernel-managed nested
   * paging), and the kernel hands MMIO to the bus synchronously.
   */
  readonly npt: boolean;
}
export const SvmBackendOptions: InjectionToken<SvmBackendOptions> = Symbol.for("hvkit:svm:BackendOptions");
/** Default when no options are registered (see README "Nested paging"). */
export const SVM_DEFAULT_OPTIONS: SvmBackendOptions = { npt: false };
/** Exits one run() may handle itself (performed task switches) before it returns. */
const ASSISTS_PER_RUN = 256;

@injectable()
export class SvmBackend implements VcpuBackend {
  readonly id = "svm";
  /** The VMCB as the monitor maps it. */
  readonly vmcb: Vmcb;
  /** The VmControl capability of the VMCB. */
  readonly vmcbCap: CPtr;
  /** The I/O permission map (APM 15.10.1) bound in role SvmIopm: all ones, every port exits. */
  readonly iopm: Uint8Array;
  readonly iopmCap: CPtr;

  private readonly regs: Uint32Array;
  private readonly state: X86State = resetState();
  private completion = Completion.None;
  private completionSize: AccessSize = 1;
  private completionRip = 0;
  /** EXITINTINFO of the last exit (APM 15.7.2), re-injected at the next run unless the monitor injects. */
  private reinjectLo = 0;
  private reinjectHi = 0;
  /** For a software INT n / INT3 / INTO / ICEBP: the return address (nRIP) RIP moves to first. */
  private reinjectRip = 0;

  private readonly exits = new ExitObjects();
  /** A nested page fault the MemAssist performed (count set: the run loop only counts it). */
  private readonly stringIo: StringIo = newStringIo();
  private readonly ioAssist = new IoAssist();
  /** With `npt: true`: MMIO instructions behind nested page faults. */
  private memAssist: MemAssist | null = null;
  /** Built at the first TASK_SWITCH exit (it needs the GuestMemory). */
  private taskAssist: TaskSwitchAssist | null = null;
  private readonly taskEvent: TaskGateEvent = { type: EventType.ExtInt, vector: 0, errorCode: 0, hasErrorCode: false };
  private readonly portAccess: PortAccess | null;
  private readonly scratchTable = { base: 0, limit: 0 };

  constructor(
    @inject(Tokens.Syscalls) private readonly sys: Syscalls,
    @inject(Tokens.MachineCaps) private readonly caps: MachineCaps,
    // Optional so a bare backend (tests, tools) still builds; string I/O needs both.
    @inject(Tokens.PioBus, { isOptional: true }) pio?: Bus,
    @inject(Tokens.GuestMemory, { isOptional: true }) private readonly memory?: GuestMemory,
    @inject(Tokens.MmioBus, { isOptional: true }) mmio?: Bus,
    @inject(SvmBackendOptions, { isOptional: true }) options: SvmBackendOptions = SVM_DEFAULT_OPTIONS,
  ) {
    this.portAccess = pio === undefined ? null : busPortAccess(pio);
    this.regs = caps.guestRegs;
    this.check(sys.ramRetype(caps.ram, ObjType.VmControl, VMCB_BYTES, "vmcb"), "ramRetype(VmControl vmcb)");
    this.vmcbCap = sys.ret.cap;
    this.check(sys.frameMap(this.vmcbCap), "frameMap(vmcb)");
    const view = sys.ret.view;
    if (view === null) throw new SvmBackendError("frameMap(vmcb) returned no view");
    this.vmcb = new Vmcb(view);
    this.check(
      sys.dispatcherSetupGuest(caps.dispatcher, { vmcontrol: this.vmcbCap, gpspace: caps.gpspace, guestControl: caps.guestControl }),
      "dispatcherSetupGuest",
    );
    const v = this.vmcb;
    // IOIO_PROT always consults the IOPM (APM 15.10.1): a 12 KiB frame of ones intercepts
    // every port; the kernel checks IOPM_BASE_PA names the frame bound to the DCB.
    this.check(sys.ramRetype(caps.ram, ObjType.Frame, GUEST_FRAME_BYTES[GuestFrameRole.SvmIopm]!), "ramRetype(Frame iopm)");
    this.iopmCap = sys.ret.cap;
    this.check(sys.frameMap(this.iopmCap), "frameMap(iopm)");
    const iopm = sys.ret.view;
    if (iopm === null) throw new SvmBackendError("frameMap(iopm) returned no view");
    this.iopm = iopm;
    iopm.fill(0xff);
    this.check(sys.dispatcherBindFrame(caps.dispatcher, GuestFrameRole.SvmIopm, this.iopmCap), "dispatcherBindFrame(SvmIopm)");
    this.check(sys.capIdentify(this.iopmCap), "capIdentify(iopm)");
    v.write64(F.IOPM_BASE_PA, sys.ret.value >>> 0, 0);
    v.write(F.INTERCEPT_MISC1, SVM_BACKEND_MISC1);
    v.write(F.INTERCEPT_MISC2, SVM_BACKEND_MISC2);
    v.write(F.GUEST_ASID, SVM_BACKEND_ASID);
    // Guest memory is the GuestPhysSpace: nested paging, N_CR3 as the kernel filled it at setup.
    v.setBits(B.NP_ENABLE, 1);
    // With nested paging VMRUN loads the guest's PAT from G_PAT (checked: g-pat.invalid): the reset value (APM 7.8.2).
    v.write64(F.G_PAT, 0x00070406, 0x00070406);
    if (options.npt) this.enableNpt(mmio);
    // The power-on state (APM 14.1.3) until a BootContribution sets its own.
    this.setState(resetState(), StateParts.All);
  }

  private check(err: SysErr, what: string): void {
    if (err !== SysErr.Ok) throw new SvmBackendError(`svm backend: ${what} failed: ${SYS_ERR_NAMES[err] ?? err}`);
  }

  run(): VmExit {
    // A task switch the assist performed needs no monitor: re-enter at once, but return a
    // preempt exit after a batch so a guest looping through faulting switches still yields.
    for (let n = 0; n < ASSISTS_PER_RUN; n++) {
      const exit = this.runOnce();
      if (exit !== null) return exit;
    }
    return this.exits.preempt;
  }

  /**
   * Identity nested tables (APM 15.25) for guest RAM in a frame mapped into the
   * GuestPhysSpace above RAM (the tables do not map it), named in N_CR3.
   */
  private enableNpt(mmio: Bus | undefined): void {
    const memory = this.memory, sys = this.sys, caps = this.caps;
    if (memory === undefined || mmio === undefined) throw new SvmBackendError("svm backend: npt: true needs the GuestMemory and the MMIO bus");
    this.check(sys.ramRetype(caps.ram, ObjType.Frame, identityTablesBytes(memory.size)), "ramRetype(Frame nested tables)");
    const frame = sys.ret.cap;
    const at = Math.ceil(memory.size / 0x20_0000) * 0x20_0000;
    this.check(sys.gpspaceMap(caps.gpspace, frame, at, MapPerm.R | MapPerm.W), "gpspaceMap(nested tables)");
    this.check(sys.frameMap(frame), "frameMap(nested tables)");
    this.vmcb.write64(F.N_CR3, writeIdentityTables(NestedFormat.Npt, sys.ret.view!, at, memory.size), 0);
    this.memAssist = new MemAssist({ memory, mmio, isMmio: (gpa) => gpa >= memory.size });
  }

  /**
   * #VMEXIT(NPF) (APM 15.25.6): outside RAM it is MMIO; the MemAssist performs the
   * instruction against the bus and moves the registers, and the exit is returned as an
   * `mmio` exit with `count` (for the statistics; the run loop does not dispatch it again);
   * an exception the assist raises is injected (count 0). During an event's delivery
   * (EXITINTINFO valid, APM 15.7.2) the faulting access is the delivery's own (IDT/IVT
   * entry, stack push, guest page table): on MMIO it cannot be emulated (there is no
   * instruction to assist): `unhandled` with `internal: "delivery-event"` (KVM's
   * KVM_INTERNAL_ERROR_DELIVERY_EV); on RAM the fault is the nested tables' (not this
   * backend's identity tables): `unhandled`, and the event stays queued (decodeExit) and
   * is re-injected through EVENTINJ at the next run(), after the monitor fixed the tables.
   */
  private nestedPageFault(): VmExit | null {
    const v = this.vmcb;
    const gpa = v.read(F.EXITINFO2);
    const assist = this.memAssist;
    const mmio = v.readHi(F.EXITINFO2) !== 0 || (this.memory !== undefined && gpa >= this.memory.size);
    const intInfo = v.read(F.EXITINTINFO);
    if (mmio && (intInfo & EventInj.V) !== 0) {
      const e = this.unhandled(SvmExit.NPF, `event delivery accessed MMIO at guest-physical 0x${gpa.toString(16)}: `
        + `vector ${intInfo & EventInj.VECTOR_MASK} (EXITINTINFO 0x${(intInfo >>> 0).toString(16)}); the guest's IDT/IVT or stack `
        + "is outside RAM (KVM: KVM_INTERNAL_ERROR_DELIVERY_EV)");
      e.internal = "delivery-event";
      return e;
    }
    if (assist === null || !mmio) {
      return this.unhandled(SvmExit.NPF, `nested page fault at guest-physical 0x${gpa.toString(16)}, error code 0x${v.read(F.EXITINFO1).toString(16)}`);
    }
    const s = this.getState(StateParts.All);
    const st = assist.run(s, gpa);
    if (st === MemAssistStatus.Unsupported) return this.unhandled(SvmExit.NPF, `MMIO at 0x${gpa.toString(16)}: ${assist.message}`);
    this.setState(s, StateParts.Gprs | StateParts.Basic);
    const e = this.exits.mmio;
    e.gpa = gpa;
    e.write = (v.read(F.EXITINFO1) & NPF_ERR_WRITE) !== 0;
    e.count = 0;
    if (st === MemAssistStatus.Exception) {
      if (assist.vector === 14) v.write(F.CR2, assist.cr2 >>> 0);
      this.inject({ type: EventType.HardwareException, vector: assist.vector, errorCode: assist.hasErrorCode ? assist.errorCode : undefined });
    } else {
      e.count = assist.count;
    }
    return e;
  }

  /**
   * #VMEXIT(TASK_SWITCH) (APM 15.14.1, 15.9): the switch has not begun. EXITINFO1 = the new
   * TSS selector; EXITINFO2 bit 36 = IRET, bit 38 = JMP, neither for a far CALL or a task
   * gate, bit 44 + bits 31:0 = the error code of an event reaching a gate. EXITINTINFO valid
   * means a task gate of the IDT: it names the event, which the switch itself delivers (its
   * error code pushed on the new stack, APM 12.3.2), so it is consumed here and not
   * re-injected. A software event (TYPE 4, or TYPE 3 with nRIP set: INT3/INTO/ICEBP) raised
   * by an instruction has nRIP ≠ 0; the assist executes that instruction again. The state
   * comes from the VMCB and guestControl and goes back there. A fault the switch raises
   * (#TS, #NP, #SS, #GP, #PF, or #DF when it combines with the event) is injected through
   * EVENTINJ into the guest's IDT; EVENTINJ is not subject to exception intercepts (APM
   * 15.20), so a fault whose intercept is set becomes the exception exit the processor's
   * own switch would have given (interceptedFault).
   * EXITINFO2 bit 48 (the RF the outgoing TSS would get) adds nothing here: it is the VMCB's
   * live RFLAGS.RF, or 1 for a fault-class event through a gate, which the assist sets itself.
   */
  private taskSwitch(): VmExit | null {
    const v = this.vmcb, memory = this.memory;
    if (memory === undefined) return this.unhandled(SvmExit.TASK_SWITCH, TASK_SWITCH_NO_MEMORY);
    const assist = this.taskAssist ??= new TaskSwitchAssist(memory, this.caps.guestFeatures);
    const hi = v.readHi(F.EXITINFO2);
    let source = hi & TaskSwitchInfoHi.IRET ? TaskSwitchSource.Iret : hi & TaskSwitchInfoHi.JMP ? TaskSwitchSource.Jmp : TaskSwitchSource.Call;
    let event: TaskGateEvent | null = null;
    let insnLen = 0;
    const info = this.reinjectLo, infoHi = this.reinjectHi, infoRip = this.reinjectRip;
    if (source === TaskSwitchSource.Call && (info & EventInj.V) !== 0) {
      source = TaskSwitchSource.Gate;
      const ev = this.taskEvent, nrip = this.reinjectRip;
      const type = (info & EventInj.TYPE_MASK) >>> EventInj.TYPE_SHIFT;
      ev.vector = info & EventInj.VECTOR_MASK;
      ev.hasErrorCode = (info & EventInj.EV) !== 0;
      ev.errorCode = ev.hasErrorCode ? this.reinjectHi >>> 0 : 0;
      // EVENTINJ/EXITINTINFO types equal EventType's for INTR, NMI, exception and INTn; an
      // exception with nRIP is INT3/INTO (#BP/#OF) or ICEBP (#DB), the instruction's event.
      ev.type = type === EventInjType.EXCEPTION && nrip !== 0
        ? (ev.vector === 1 ? EventType.PrivilegedSoftwareException : EventType.SoftwareException)
        : type as EventType;
      if (nrip !== 0) insnLen = ((nrip - v.read(F.RIP)) >>> 0) || 1;
      event = ev;
      this.reinjectLo = 0; // delivered by the switch: never re-injected
    }
    const s = this.getState(StateParts.All);
    const outcome = assist.perform(s, source, event, insnLen);
    this.setState(s, StateParts.All);
    if (outcome === TaskSwitchOutcome.Shutdown) return this.exits.shutdown;
    if (outcome === TaskSwitchOutcome.Fault) {
      const f = assist.fault;
      if ((v.read(F.INTERCEPT_EXCEPTIONS) & (1 << f.vector)) !== 0) return this.interceptedFault(info, infoHi, infoRip);
      if (f.vector === 14) v.write(F.CR2, f.cr2);
      // The processor pushes RF = 1 for a fault; EVENTINJ delivers the EFLAGS it finds.
      if (faultSetsRf(f.vector)) v.write(F.RFLAGS, (v.read(F.RFLAGS) | EFLAGS_RF) >>> 0);
      this.inject({ type: EventType.HardwareException, vector: f.vector, errorCode: f.hasErrorCode ? f.errorCode : undefined });
    }
    return null;
  }

  /**
   * A fault of a performed task switch whose exception intercept is set: the VMCB gets the
   * exit the processor gives for it (APM 15.12: EXITCODE 40h + vector, EXITINFO1 = error
   * code, EXITINFO2 = the address of a #PF, CR2 unchanged; EXITINTINFO = the gate's event
   * when the fault interrupted its delivery, nRIP its return address for a software one,
   * APM 15.7.2), and that event is queued for re-injection again as for any such exit.
   */
  private interceptedFault(info: number, infoHi: number, infoRip: number): VmExit {
    const v = this.vmcb, f = this.taskAssist!.fault, e = this.exits.exception;
    v.setExitCode(SvmExit.EXCP_BASE + f.vector);
    v.write64(F.EXITINFO1, f.hasErrorCode ? f.errorCode : 0, 0);
    v.write64(F.EXITINFO2, f.vector === 14 ? f.cr2 : 0, 0);
    if (f.duringEvent) {
      v.write64(F.EXITINTINFO, info, infoHi);
      v.write(F.NRIP, infoRip);
      this.reinjectLo = info; this.reinjectHi = infoHi; this.reinjectRip = infoRip;
    } else {
      v.write64(F.EXITINTINFO, 0, 0);
      v.write(F.NRIP, 0);
    }
    e.vector = f.vector; e.errorCode = f.hasErrorCode ? f.errorCode : 0; e.hasErrorCode = f.hasErrorCode;
    return e;
  }

  private runOnce(): VmExit | null {
    if (this.completion !== Completion.None) this.complete();
    if (this.reinjectLo !== 0) this.reinject();
    const err = this.sys.vmrun(this.caps.dispatcher);
    if (err !== SysErr.Ok) throw new SvmBackendError(`svm backend: vmrun failed: ${SYS_ERR_NAMES[err] ?? err}`);
    return this.decodeExit();
  }

  /** Finishes the last instruction exit: the monitor's setState came first, this goes on top. */
  private complete(): void {
    const v = this.vmcb;
    switch (this.completion) {
      case Completion.IoIn: {
        const size = this.completionSize;
        const data = this.exits.io.data >>> 0;
        if (size === 4) v.write(F.RAX, data); // a 32-bit write zero-extends (APM 3.1.2)
        else {
          const mask = SIZE_MASK[size];
          v.write64(F.RAX, ((v.read(F.RAX) & ~mask) | (data & mask)) >>> 0, v.readHi(F.RAX));
        }
        break;
      }
      case Completion.Cpuid: {
        const c = this.exits.cpuid;
        v.write(F.RAX, c.eax >>> 0);
        this.regs[Gpr.Eax] = c.eax >>> 0;
        this.regs[Gpr.Ebx] = c.ebx >>> 0;
        this.regs[Gpr.Ecx] = c.ecx >>> 0;
        this.regs[Gpr.Edx] = c.edx >>> 0;
        break;
      }
      case Completion.MsrRead:
        // RDMSR loads EDX:EAX (a 32-bit write zero-extends RAX, APM 3.1.2).
        v.write64(F.RAX, this.exits.msr.lo >>> 0, 0);
        this.regs[Gpr.Eax] = this.exits.msr.lo >>> 0;
        this.regs[Gpr.Edx] = this.exits.msr.hi >>> 0;
        break;
      default:
        break;
    }
    v.write(F.RIP, this.completionRip);
    // The intercepted instruction is done: an STI / MOV SS shadow over it has expired (APM 15.21.5).
    v.setBits(B.INTERRUPT_SHADOW, 0);
    this.completion = Completion.None;
  }

  /**
   * APM 15.7.2: an event whose delivery the last exit interrupted goes back through
   * EVENTINJ, as a VMM must re-inject it, unless the monitor queued another event (inject)
   * which then replaces it (e.g. the #GP an intercepted fault during delivery turned into).
   */
  private reinject(): void {
    const v = this.vmcb;
    if ((v.read(F.EVENTINJ) & EventInj.V) === 0) {
      if (this.reinjectRip !== 0) v.write(F.RIP, this.reinjectRip);
      v.write64(F.EVENTINJ, this.reinjectLo, this.reinjectHi);
    }
    this.reinjectLo = 0;
  }

  /**
   * Posts a physical SMI, NMI or INIT to the guest's processor
   * (GuestControlWord.PendingEvents), recognised at the next VMRUN: exits 62h / 61h / 63h
   * when intercepted. Unintercepted: an SMI is the host's (no SMM: consumed, nothing
   * visible); an NMI is delivered through vector 2 once the guest is not NMI-blocked; an
   * INIT becomes #SX (vector 30, error code 1: VM_CR.R_INIT, APM 15.21.8), an `exception`
   * exit when exception 30 is intercepted.
   */
  post(event: PendingEvent.Nmi | PendingEvent.Init | PendingEvent.Smi): void {
    const r = this.regs;
    if (r.length <= GuestControlWord.PendingEvents) throw new RangeError("svm backend: the guestControl mapping is too short to hold PendingEvents");
    r[GuestControlWord.PendingEvents] = (r[GuestControlWord.PendingEvents]! | event) >>> 0;
  }

  /** The engine's retired-instruction count, which the kernel publishes in guestControl after each world switch. */
  instructionsRetired(): number {
    const r = this.regs;
    if (r.length <= GuestControlWord.RetiredHi) throw new RangeError("svm backend: the guestControl mapping is too short to hold the retired-instruction count");
    return r[GuestControlWord.RetiredHi]! * 0x1_0000_0000 + r[GuestControlWord.RetiredLo]!;
  }

  private decodeExit(): VmExit | null {
    const v = this.vmcb;
    const code = v.exitCode();
    const intInfo = v.read(F.EXITINTINFO);
    if (intInfo & EventInj.V) {
      this.reinjectLo = intInfo;
      this.reinjectHi = v.readHi(F.EXITINTINFO);
      this.reinjectRip = v.read(F.NRIP);
    }
    switch (code) {
      case SvmExit.IOIO: {
        const info = v.read(F.EXITINFO1);
        if (info & IoioInfo.STR) return this.stringIoExitFor(code, info);
        const size: AccessSize = info & IoioInfo.SZ8 ? 1 : info & IoioInfo.SZ16 ? 2 : 4;
        const isIn = (info & IoioInfo.TYPE_IN) !== 0;
        const e = this.exits.io;
        e.port = info >>> IoioInfo.PORT_SHIFT;
        e.size = size;
        e.in = isIn;
        e.data = isIn ? 0 : (v.read(F.RAX) & SIZE_MASK[size]) >>> 0;
        this.completion = isIn ? Completion.IoIn : Completion.IoOut;
        this.completionSize = size;
        this.completionRip = v.read(F.EXITINFO2); // APM 15.10.2: the next rIP
        return e;
      }
      case SvmExit.CPUID: {
        const e = this.exits.cpuid;
        e.leaf = v.read(F.RAX);
        e.subleaf = this.regs[Gpr.Ecx]!;
        e.eax = 0; e.ebx = 0; e.ecx = 0; e.edx = 0;
        this.completion = Completion.Cpuid;
        this.completionRip = v.read(F.NRIP);
        return e;
      }
      case SvmExit.HLT:
        this.exits.hlt.interruptsEnabled = (v.read(F.RFLAGS) & EFLAGS_IF) !== 0;
        this.completion = Completion.Hlt;
        this.completionRip = v.read(F.NRIP);
        return this.exits.hlt;
      case SvmExit.MSR: {
        // APM 15.11: EXITINFO1 = 1 for WRMSR; ECX holds the index, EDX:EAX the value.
        const e = this.exits.msr;
        e.write = v.read(F.EXITINFO1) === 1;
        e.index = this.regs[Gpr.Ecx]! >>> 0;
        e.lo = e.write ? v.read(F.RAX) >>> 0 : 0;
        e.hi = e.write ? this.regs[Gpr.Edx]! >>> 0 : 0;
        this.completion = e.write ? Completion.MsrWrite : Completion.MsrRead;
        this.completionRip = v.read(F.NRIP);
        return e;
      }
      case SvmExit.NPF:
        return this.nestedPageFault();
      case SvmExit.TASK_SWITCH:
        return this.taskSwitch();
      case SvmExit.SHUTDOWN:
        return this.exits.shutdown;
      case SvmExit.INTR:
        return this.exits.preempt;
      case SvmExit.VINTR:
        return this.exits.window;
      case SvmExit.INVALID: {
        const e = this.exits.failure;
        e.code = SvmExit.INVALID;
        const idx = v.read(F.EXITINFO1) - 1;
        e.message = INVALID_MESSAGES[idx] ?? "VMEXIT_INVALID";
        return e;
      }
      default:
        if (code >= SvmExit.EXCP_BASE && code < SvmExit.EXCP_BASE + 32) {
          const e = this.exits.exception;
          e.vector = code - SvmExit.EXCP_BASE;
          e.errorCode = v.read(F.EXITINFO1);
          // The VMCB does not say whether an error code was pushed; protected-mode
          // exceptions of these vectors push one, real-mode ones never do.
          e.hasErrorCode = (v.read(F.CR0) & CR0_PE) !== 0 && (ERROR_CODE_VECTORS & (1 << e.vector)) !== 0;
          return e;
        }
        return this.unhandled(code, UNHANDLED_MESSAGES.get(code)
          ?? `SVM exit code 0x${(code >>> 0).toString(16)} has no VmExit kind in this backend`);
    }
  }

  /**
   * INS/OUTS (EXITINFO1.STR, APM 15.10.2): the IoAssist moves the data now; RIP goes to
   * EXITINFO2 at the next run only if the REP count is used up, otherwise the guest
   * re-executes the instruction and exits again (interruptible REP). The assist gets the
   * guest state (StringIo.guest): segment checks and, with CR0.PG, the guest page walk; a
   * fault it raises (#GP/#SS(0), #PF with CR2) is injected at the instruction, after the
   * elements before it moved.
   */
  private stringIoExitFor(code: number, info: number): VmExit {
    const port = this.portAccess, memory = this.memory, v = this.vmcb;
    const why = stringIoUnsupported(port !== null, memory !== undefined, v.read(F.CR0), true);
    if (why !== undefined) return this.unhandled(code, why);
    const op = this.stringIo, t = this.scratchTable;
    op.size = info & IoioInfo.SZ8 ? 1 : info & IoioInfo.SZ16 ? 2 : 4;
    op.in = (info & IoioInfo.TYPE_IN) !== 0;
    op.rep = (info & IoioInfo.REP) !== 0;
    op.port = info >>> IoioInfo.PORT_SHIFT;
    op.addrSize = (info & IoioInfo.A32) !== 0 ? 4 : 2;
    const seg = (info >>> IoioInfo.SEG_SHIFT) & 7;
    op.srcSeg = seg < 6 ? seg : 3;
    op.guest = this.getState(StateParts.All);
    v.readTable(F.ES, t);
    op.esBase = t.base;
    if (op.in) op.srcBase = t.base;
    else { v.readTable(SREG_FIELDS[seg < 6 ? seg : 3]!, t); op.srcBase = t.base; }
    op.df = (v.read(F.RFLAGS) & EFLAGS_DF) !== 0;
    const e = this.exits.stringIo, assist = this.ioAssist;
    const st = assist.runOnGuest(op, memory!, port!, this.regs, e);
    if (st === IoAssistStatus.Unsupported) return this.unhandled(code, assist.message);
    if (st === IoAssistStatus.Exception) {
      // The faulting element was not started; RIP stays on the instruction (completion None).
      if (assist.vector === 14) v.write(F.CR2, assist.cr2 >>> 0);
      if (faultSetsRf(assist.vector)) v.write(F.RFLAGS, (v.read(F.RFLAGS) | EFLAGS_RF) >>> 0);
      this.inject({ type: EventType.HardwareException, vector: assist.vector, errorCode: assist.hasErrorCode ? assist.errorCode : undefined });
      return e;
    }
    if (op.done) {
      this.completion = Completion.IoOut; // only RIP moves
      this.completionRip = v.read(F.EXITINFO2); // APM 15.10.2: the next rIP
    } else {
      this.completion = Completion.None;
    }
    return e;
  }

  private unhandled(code: number, message: string): UnhandledExit {
    this.exits.unhandled.code = code;
    this.exits.unhandled.message = message;
    this.exits.unhandled.internal = undefined; // set again by the delivery-event path only
    return this.exits.unhandled;
  }

  getState(parts: number = StateParts.All): X86State {
    const v = this.vmcb, s = this.state, r = this.regs;
    if (parts & StateParts.Gprs) {
      s.eax = v.read(F.RAX); s.ecx = r[Gpr.Ecx]!; s.edx = r[Gpr.Edx]!; s.ebx = r[Gpr.Ebx]!;
      s.esp = v.read(F.RSP); s.ebp = r[Gpr.Ebp]!; s.esi = r[Gpr.Esi]!; s.edi = r[Gpr.Edi]!;
    }
    if (parts & StateParts.Basic) {
      s.eip = v.read(F.RIP);
      s.eflags = v.read(F.RFLAGS);
    }
    if (parts & StateParts.Segments) {
      v.readSegment(F.ES, s.es); v.readSegment(F.CS, s.cs); v.readSegment(F.SS, s.ss);
      v.readSegment(F.DS, s.ds); v.readSegment(F.FS, s.fs); v.readSegment(F.GS, s.gs);
    }
    if (parts & StateParts.Control) {
      s.cr0 = v.read(F.CR0); s.cr2 = v.read(F.CR2); s.cr3 = v.read(F.CR3); s.cr4 = v.read(F.CR4);
      s.dr7 = v.read(F.DR7);
      s.efer = v.read(F.EFER) & ~Efer.SVME; // SVME is the host's, not the guest's view
    }
    if (parts & StateParts.Tables) {
      v.readTable(F.GDTR, s.gdtr); v.readTable(F.IDTR, s.idtr);
      v.readSegment(F.LDTR, s.ldtr); v.readSegment(F.TR, s.tr);
    }
    if (parts & StateParts.Events) {
      // The VMCB has no activity state: a guest is running whenever it is entered.
      s.activity = Activity.Active;
      s.interruptibility = v.bits(B.INTERRUPT_SHADOW) ? Interruptibility.BlockingBySti : 0;
    }
    return s;
  }

  setState(state: X86State, parts: number = StateParts.All): void {
    const v = this.vmcb, r = this.regs;
    if (parts & StateParts.Gprs) {
      r[Gpr.Eax] = state.eax; r[Gpr.Ecx] = state.ecx; r[Gpr.Edx] = state.edx; r[Gpr.Ebx] = state.ebx;
      r[Gpr.Esp] = state.esp; r[Gpr.Ebp] = state.ebp; r[Gpr.Esi] = state.esi; r[Gpr.Edi] = state.edi;
      v.write(F.RAX, state.eax);
      v.write(F.RSP, state.esp);
    }
    if (parts & StateParts.Basic) {
      v.write(F.RIP, state.eip);
      v.write(F.RFLAGS, state.eflags);
    }
    if (parts & StateParts.Segments) {
      v.writeSegment(F.ES, state.es); v.writeSegment(F.CS, state.cs); v.writeSegment(F.SS, state.ss);
      v.writeSegment(F.DS, state.ds); v.writeSegment(F.FS, state.fs); v.writeSegment(F.GS, state.gs);
    }
    if (parts & StateParts.Control) {
      v.write(F.CR0, state.cr0); v.write(F.CR2, state.cr2); v.write(F.CR3, state.cr3); v.write(F.CR4, state.cr4);
      v.write(F.DR7, state.dr7);
      // APM 15.5.1: EFER.SVME must be set in the guest's VMCB EFER.
      v.write(F.EFER, (state.efer | Efer.SVME) >>> 0);
    }
    if (parts & StateParts.Tables) {
      v.writeTable(F.GDTR, state.gdtr); v.writeTable(F.IDTR, state.idtr);
      v.writeSegment(F.LDTR, state.ldtr); v.writeSegment(F.TR, state.tr);
    }
    if (parts & (StateParts.Segments | StateParts.Control | StateParts.Basic)) {
      // APM 15.5.1: CPL is 0 in real mode, 3 in virtual-8086 mode, else SS.DPL.
      const cr0 = v.read(F.CR0), fl = v.read(F.RFLAGS);
      const ss = v.dv.getUint16(F.SS.offset + 2, true);
      v.write(F.CPL, (cr0 & CR0_PE) === 0 ? 0 : fl & EFLAGS_VM ? 3 : (ss >>> 5) & 3);
    }
    if (parts & StateParts.Events) {
      v.setBits(B.INTERRUPT_SHADOW, state.interruptibility & (Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs) ? 1 : 0);
    }
  }

  /** EVENTINJ for the next VMRUN (APM 15.20); EventType numbers equal EVENTINJ.TYPE. */
  inject(event: VcpuEvent): void {
    // A hardware exception injected after an exit is the exiting instruction's fault (e.g.
    // #GP for an MSR the policy refuses): the instruction did not complete, so its
    // completion (results, RIP advance) is dropped and the fault points at it.
    if (event.type === EventType.HardwareException) this.completion = Completion.None;
    let lo = (event.vector & EventInj.VECTOR_MASK) | ((event.type & 7) << EventInj.TYPE_SHIFT) | EventInj.V;
    let hi = 0;
    if (event.errorCode !== undefined) {
      lo |= EventInj.EV;
      hi = event.errorCode >>> 0;
    }
    this.vmcb.write64(F.EVENTINJ, lo >>> 0, hi);
  }

  /**
   * APM 15.21.4: a virtual interrupt (V_IRQ, priority ignored via V_IGN_TPR) with the
   * VINTR intercept exits as soon as the guest could take it.
   */
  setInterruptWindow(enabled: boolean): void {
    const v = this.vmcb;
    v.setBits(B.V_IRQ, enabled ? 1 : 0);
    v.setBits(B.V_IGN_TPR, enabled ? 1 : 0);
    const misc1 = v.read(F.INTERCEPT_MISC1);
    v.write(F.INTERCEPT_MISC1, enabled ? misc1 | Misc1.VINTR : misc1 & ~Misc1.VINTR);
  }
}

// Task-switch assist, shared by the backends. Under VMX every task switch exits
// (SDM 26.1.2, basic exit reason 9) before anything of it happened, and the VMM
// performs it (SDM 27.4 note; KVM's emulator does the same); SVM's TASK_SWITCH
// intercept (APM 15.14.1) leaves the VMM the same job. The monitor does it with
// the project's one x86 core: a scratch X86Cpu on guest memory, every intercept
// off, runs the switching instruction (CALL/JMP/IRET) or delivers the event that
// went through a task gate, and the resulting state goes back to the vCPU. Faults
// raised by the switch (#TS, #NP, #GP, ...) are delivered by that core to the guest,
// as the hardware would, so nothing here throws for guest input.
//
// `perform` is the variant for a backend with an event-injection field (SVM EVENTINJ, VMX
// entry interruption): a fault the switch raises is not delivered by the scratch core but
// returned, with the state at the point where the processor delivers it (the old task
// before the commit point, the new one after it, SDM 7.3 / APM 12.3.2), so that the backend
// injects it and the guest's exception intercepts and IDT apply as for any other fault.
//
// Not covered: the FPU and MSR state of the scratch core are its own (a task switch
// touches neither; CR0.TS comes back in the state), and MMIO is not reachable from it
// (descriptor tables and TSSs in MMIO read as all-ones, as GuestMemory reads do).
import { X86Cpu } from "../../x86/cpu.js";
import { CpuExitReason, EventType, TaskSwitchSource } from "../../x86/types.js";
import type { AccessSize, IoPorts, PhysMemory, X86State } from "../../x86/types.js";
import type { GuestMemory, MachineCaps } from "../api.js";

/** The event an IDT task gate was delivering (the exit's IDT-vectoring information). */
export interface TaskGateEvent {
  type: EventType;
  vector: number;
  errorCode: number;
  hasErrorCode: boolean;
}

/** What `TaskSwitchAssist.perform` did. */
export const enum TaskSwitchOutcome {
  /** The switch completed: the state is the new task's (or the old one's after an IRET). */
  Switched = 0,
  /** The switch raised `fault`: the state is where the processor delivers it; the backend injects it. */
  Fault = 1,
  /** A fault while delivering #DF through a task gate: shutdown (triple fault, SDM 6.15 interrupt 8). */
  Shutdown = 2,
}

/** The fault a switch raised (TaskSwitchOutcome.Fault), already combined per SDM 6.15 table 6-5. */
export interface TaskSwitchFault {
  vector: number;
  errorCode: number;
  hasErrorCode: boolean;
  /** #PF: the faulting linear address, for CR2 (the injected #PF does not load it). */
  cr2: number;
  /**
   * The fault interrupted the delivery of the gate's `event` (the switch is part of it, also
   * after the commit point): a backend that reports the fault as an exception exit instead
   * of injecting it names `event` as its IDT-vectoring information / EXITINTINFO, as the
   * processor does when the fault is intercepted.
   */
  duringEvent: boolean;
}

/**
 * Whether a hardware exception of `vector` raised by an instruction or a switch is
 * fault-class, so that the EFLAGS image it pushes has RF = 1 (SDM 17.3.1.1, 6.15 table 6-1;
 * APM 13.1.4.1): all but #DB (a trap here), NMI, #BP/#OF (traps), #DF and #MC (aborts). A
 * backend that injects such a fault (EVENTINJ / VM-entry injection delivers the event as
 * given) sets RFLAGS.RF first, as KVM does for fault-class injections.
 */
export function faultSetsRf(vector: number): boolean {
  return vector < 32 && ((1 << vector) & ((1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 8) | (1 << 18))) === 0;
}

const EFLAGS_RF = 1 << 16;

/**
 * Exceptions `perform` stops at: all but #BP and #OF, which only INT3/INTO raise (a switch
 * does not), and whose bitmap bits would stop a re-executed INT3/INTO before its gate.
 */
const FAULT_BITMAP = ~((1 << 3) | (1 << 4)) >>> 0;

/** A PhysMemory over the monitor's view of guest RAM (no direct window: one instruction only). */
class GuestPhys implements PhysMemory {
  constructor(private readonly m: GuestMemory) {}
  read8(pa: number): number { return this.m.read8(pa); }
  read16(pa: number): number { return this.m.read16(pa); }
  read32(pa: number): number { return this.m.read32(pa) >>> 0; }
  write8(pa: number, v: number): void { this.m.write8(pa, v); }
  write16(pa: number, v: number): void { this.m.write16(pa, v); }
  write32(pa: number, v: number): void { this.m.write32(pa, v); }
}

/** The switch performs no I/O; an access would be a bug in the core, answered as an empty bus. */
const NO_PORTS: IoPorts = { in: (_p: number, s: AccessSize) => (s === 1 ? 0xff : s === 2 ? 0xffff : 0xffffffff), out: () => {} };

export class TaskSwitchAssist {
  readonly #cpu: X86Cpu;

  /**
   * `features`: the CPUID words the guest sees (MachineCaps.guestFeatures); the scratch core
   * hides the same features (CR4 bits, EFER.NXE) so its page walks and CR3 loads fault as
   * the guest's core would.
   */
  constructor(memory: GuestMemory, features?: MachineCaps["guestFeatures"]) {
    this.#cpu = new X86Cpu(new GuestPhys(memory), NO_PORTS);
    this.#cpu.compileHot = false;
    if (features !== undefined) Object.assign(this.#cpu.cpuidMask, features);
  }

  /**
   * Perform the task switch the guest was stopped at and update `state` in place, for a
   * caller without event injection: `perform`, then a fault it returns is delivered through
   * the guest's IDT on the scratch core (RF = 1 pushed for a fault-class vector, CR2 loaded
   * for #PF), as the processor's own switch would deliver it. A triple fault leaves `state`
   * in shutdown. Arguments as for `perform`.
   */
  run(state: X86State, source: TaskSwitchSource, event: TaskGateEvent | null, insnLen: number): void {
    if (this.perform(state, source, event, insnLen) !== TaskSwitchOutcome.Fault) return;
    const cpu = this.#cpu, f = this.fault;
    if (f.vector === 14) state.cr2 = f.cr2;
    if (faultSetsRf(f.vector)) state.eflags = (state.eflags | EFLAGS_RF) >>> 0;
    cpu.setState(state);
    cpu.deliverEvent(EventType.HardwareException, f.vector, f.errorCode, f.hasErrorCode);
    cpu.getState(state);
  }

  /** The fault of the last `perform` that returned TaskSwitchOutcome.Fault (reused object). */
  readonly fault: TaskSwitchFault = { vector: 0, errorCode: 0, hasErrorCode: false, cr2: 0, duringEvent: false };

  /**
   * Perform the task switch the guest was stopped at, as `run` does, but return a fault the
   * switch raises instead of delivering it. `state` is updated in place: the new task's
   * after a switch, the state to deliver `fault` in otherwise. For Gate, `event` is the
   * event that reached the task gate (it is consumed: the switch delivers it, pushing its
   * error code on the new task's stack, SDM 7.3 step 12 / APM 12.3.2) and `insnLen` > 0
   * says that the INT n / INT3 / INTO / INT1 at `state.eip` raised it: that instruction is
   * executed again on the scratch core, so a fault before the commit point points at it
   * and one after it is taken in the new task, exactly as the core's own switch behaves.
   * `insnLen` = 0 with a software event: an injected one, EIP already its return address.
   */
  perform(state: X86State, source: TaskSwitchSource, event: TaskGateEvent | null, insnLen: number): TaskSwitchOutcome {
    const cpu = this.#cpu, ic = cpu.intercepts;
    // A fault-class exception reaching the gate was raised with RF = 1 in the EFLAGS it saves
    // (SDM 17.3.1.1): the processor had set it before reading the gate, the exit restored it.
    const rf = event !== null && source === TaskSwitchSource.Gate && event.type === EventType.HardwareException
      && faultSetsRf(event.vector) && (state.eflags & EFLAGS_RF) === 0;
    const tr = state.tr.selector;
    if (rf) state.eflags = (state.eflags | EFLAGS_RF) >>> 0;
    ic.exceptionBitmap = FAULT_BITMAP;
    let reason: CpuExitReason;
    try {
      cpu.setState(state);
      if (source === TaskSwitchSource.Gate && event !== null && insnLen === 0) {
        cpu.deliverEvent(event.type, event.vector, event.errorCode, event.hasErrorCode);
        reason = cpu.exit.reason;
      } else {
        reason = cpu.run(1);
      }
    } finally {
      ic.exceptionBitmap = 0;
    }
    cpu.getState(state);
    if (reason === CpuExitReason.TripleFault) return TaskSwitchOutcome.Shutdown;
    if (reason !== CpuExitReason.Exception) return TaskSwitchOutcome.Switched;
    // A fault before the commit point leaves the old task as it was when the gate was read.
    if (rf && state.tr.selector === tr) state.eflags = (state.eflags & ~EFLAGS_RF) >>> 0;
    const e = cpu.exit, f = this.fault;
    f.vector = e.vector; f.errorCode = e.hasErrorCode ? e.errorCode : 0; f.hasErrorCode = e.hasErrorCode;
    f.cr2 = e.vector === 14 ? e.linear >>> 0 : 0;
    f.duringEvent = event !== null && e.vectoringValid;
    return TaskSwitchOutcome.Fault;
  }
}

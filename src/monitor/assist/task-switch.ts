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
// Not covered: the FPU and MSR state of the scratch core are its own (a task switch
// touches neither; CR0.TS comes back in the state), and MMIO is not reachable from it
// (descriptor tables and TSSs in MMIO read as all-ones, as GuestMemory reads do).
import { X86Cpu } from "../../x86/cpu.js";
import { EventType, TaskSwitchSource } from "../../x86/types.js";
import type { AccessSize, IoPorts, PhysMemory, X86State } from "../../x86/types.js";
import type { GuestMemory } from "../api.js";

/** The event an IDT task gate was delivering (the exit's IDT-vectoring information). */
export interface TaskGateEvent {
  type: EventType;
  vector: number;
  errorCode: number;
  hasErrorCode: boolean;
}

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

  constructor(memory: GuestMemory) {
    this.#cpu = new X86Cpu(new GuestPhys(memory), NO_PORTS);
    this.#cpu.compileHot = false;
  }

  /**
   * Perform the task switch the guest was stopped at and update `state` in place.
   * `source` is the exit's (SDM table 28-2; APM EXITINFO2 bits 36/38); for Gate, `event`
   * is the IDT-vectoring information and `insnLen` the length of an INT n/INT3/INTO/INT1
   * that raised it (EIP is on that instruction; the old task resumes after it).
   */
  run(state: X86State, source: TaskSwitchSource, event: TaskGateEvent | null, insnLen: number): void {
    const cpu = this.#cpu;
    if (source === TaskSwitchSource.Gate && event !== null) {
      const soft = event.type === EventType.SoftwareInt || event.type === EventType.SoftwareException
        || event.type === EventType.PrivilegedSoftwareException;
      if (soft) state.eip = (state.eip + insnLen) >>> 0;
      cpu.setState(state);
      cpu.deliverEvent(event.type, event.vector, event.errorCode, event.hasErrorCode);
    } else {
      cpu.setState(state);
      cpu.run(1);
    }
    cpu.getState(state);
  }
}

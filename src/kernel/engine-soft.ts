// The soft engine: each vCPU is an src/x86 core (X86Cpu) running on the
// GuestPhysSpace's memory. The installed extension programs `intercepts` before
// each run; port I/O that is not intercepted reaches no device (the kernel never
// imports one): reads return all-ones and writes are dropped, as on a bus where
// nothing decodes the port, and both are counted here.
import type { AccessSize, Engine, EngineVcpu, EventType, PhysMemory, X86State } from "./api.js";
import type { CpuExitReason, Cpu, CpuExit, InterceptControls, IoPorts } from "../x86/types.js";
import { X86Cpu } from "../x86/cpu.js";

/** Port I/O with nothing behind it. */
export class UnclaimedIo implements IoPorts {
  reads = 0;
  writes = 0;
  in(_port: number, size: AccessSize): number {
    this.reads++;
    return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
  }
  out(_port: number, _size: AccessSize, _value: number): void {
    this.writes++;
  }
}

export class SoftVcpu implements EngineVcpu {
  readonly io = new UnclaimedIo();
  readonly cpu: Cpu;
  /** The core's own reused objects, so the extension programs and reads them directly. */
  readonly intercepts: InterceptControls;
  readonly exit: CpuExit;
  constructor(memory: PhysMemory, createCpu: (mem: PhysMemory, io: IoPorts) => Cpu) {
    this.cpu = createCpu(memory, this.io);
    this.intercepts = this.cpu.intercepts;
    this.exit = this.cpu.exit;
  }
  /** Port reads that reached no device. */
  get unclaimedIoReads(): number {
    return this.io.reads;
  }
  /** Port writes that reached no device. */
  get unclaimedIoWrites(): number {
    return this.io.writes;
  }
  get retired(): number {
    return this.cpu.retired;
  }
  /**
   * Time spent waiting in HLT or shutdown, in instruction-times: no instruction retires, but
   * the TSC goes on (SDM 18.17), so the core's TSC offset carries it on top of `tscOffset`.
   */
  idle = 0;
  wait(n: number): void {
    if (!(n > 0)) return;
    this.idle += n;
    this.cpu.tscOffset += n;
  }
  get tscOffset(): number {
    return this.cpu.tscOffset - this.idle;
  }
  set tscOffset(v: number) {
    this.cpu.tscOffset = v + this.idle;
  }
  get rdtscpEnabled(): boolean {
    return this.cpu.rdtscpEnabled;
  }
  set rdtscpEnabled(v: boolean) {
    this.cpu.rdtscpEnabled = v;
  }
  run(budget: number): CpuExitReason {
    return this.cpu.run(budget);
  }
  getState(out: X86State): void {
    this.cpu.getState(out);
  }
  setState(state: X86State): void {
    this.cpu.setState(state);
  }
  deliverEvent(type: EventType, vector: number, errorCode: number, hasErrorCode: boolean): void {
    this.cpu.deliverEvent(type, vector, errorCode, hasErrorCode);
  }
  interruptible(): boolean {
    return this.cpu.interruptible();
  }
  /** The core re-reads `mem.ram` at each run, so a new provider takes effect at the next run. */
  setMemory(memory: PhysMemory): void {
    this.cpu.mem = memory;
  }
  /** The core's MSR set, for the VMX MSR-load/store areas; a core without accessMsr refuses every MSR. */
  accessMsr(index: number, write: boolean, lo: number, hi: number, out: Uint32Array): boolean {
    return this.cpu.accessMsr?.(index, write, lo, hi, out) ?? false;
  }
}

export interface SoftEngineOptions {
  /** Build the core (default: `new X86Cpu(mem, io)`). For tests and for alternative cores. */
  createCpu?: (mem: PhysMemory, io: IoPorts) => Cpu;
}

export function softEngine(options: SoftEngineOptions = {}): Engine {
  const createCpu = options.createCpu ?? ((mem: PhysMemory, io: IoPorts): Cpu => new X86Cpu(mem, io));
  return {
    name: "soft",
    createVcpu(memory: PhysMemory): EngineVcpu {
      return new SoftVcpu(memory, createCpu);
    },
  };
}

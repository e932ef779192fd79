// The run loop and assisted MMIO: an `mmio` exit carrying `count` was already performed by
// the backend's MemAssist (an EPT violation / nested page fault), so the loop counts it,
// with its syscalls, but must not touch the MMIO bus again.
import { EventEmitter } from "eventemitter3";
import { describe, expect, it } from "vitest";
import type { AccessSize, IoDevice, MonitorEventMap, VcpuBackend, VmExit, X86State } from "./api.js";
import { MmioBus, PioBus } from "./bus.js";
import { VmConsole } from "./console.js";
import { CpuidPolicy, defaultProfile } from "./cpuid.js";
import { IrqLineSet } from "./irq.js";
import { RunLoop } from "./run-loop.js";

const counter = { count: 0 };

/** Each run() costs `cost` syscalls on the shared counter. */
class ListVcpu implements VcpuBackend {
  readonly id = "list";
  #n = 0;
  constructor(private readonly exits: VmExit[], private readonly cost: number) {}
  run(): VmExit { counter.count += this.cost; return this.exits[this.#n++] ?? { kind: "hlt", interruptsEnabled: false }; }
  getState(): X86State { throw new Error("not used by the loop"); }
  setState(): void {}
  inject(): void {}
  setInterruptWindow(): void {}
}

describe("run loop with assisted MMIO exits", () => {
  it("counts an mmio exit with count, and its syscalls, without a second bus access; plain mmio still reaches the bus", async () => {
    const accesses: string[] = [];
    const dev: IoDevice = {
      name: "probe",
      read: (_o: number, _s: AccessSize) => { accesses.push("read"); return 0; },
      write: (_o: number, _s: AccessSize, v: number) => { accesses.push(`write ${v}`); },
    };
    const mmio = new MmioBus();
    mmio.insert({ space: "mmio", base: 0xd000_0000, length: 0x1000 }, dev);
    const vcpu = new ListVcpu([
      { kind: "mmio", gpa: 0xd000_0000, size: 1, write: true, data: 0, count: 1 },
      { kind: "mmio", gpa: 0xd000_0000, size: 1, write: false, data: 0, count: 4 },
      { kind: "mmio", gpa: 0xd000_0000, size: 1, write: false, data: 0, count: 0 },
      { kind: "mmio", gpa: 0xd000_0000, size: 1, write: true, data: 0x42 },
    ], 5);
    const loop = new RunLoop({
      vcpu, pio: new PioBus(), mmio, console: new VmConsole(), irqs: new IrqLineSet(),
      events: new EventEmitter<MonitorEventMap>(), cpuid: new CpuidPolicy(defaultProfile("vmx")), syscalls: counter,
    });
    const r = await loop.run();
    expect(r.reason).toBe("halted");
    expect(accesses).toEqual(["write 66"]);
    expect(r.exits).toEqual({ mmio: 4, hlt: 1 });
    expect(loop.exitSyscalls()).toEqual({ mmio: 20, hlt: 5 });
  });
});

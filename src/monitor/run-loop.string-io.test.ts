// The run loop and string I/O: an `io` exit carrying `count` was already performed by the
// backend's IoAssist, so the loop counts it but must not touch the PIO bus again.
import { EventEmitter } from "eventemitter3";
import { describe, expect, it } from "vitest";
import type { AccessSize, IoDevice, MonitorEventMap, VcpuBackend, VmExit, X86State } from "./api.js";
import { MmioBus, PioBus } from "./bus.js";
import { VmConsole } from "./console.js";
import { CpuidPolicy, defaultProfile } from "./cpuid.js";
import { IrqLineSet } from "./irq.js";
import { RunLoop } from "./run-loop.js";

class ListVcpu implements VcpuBackend {
  readonly id = "list";
  #n = 0;
  constructor(private readonly exits: VmExit[]) {}
  run(): VmExit { return this.exits[this.#n++] ?? { kind: "hlt", interruptsEnabled: false }; }
  getState(): X86State { throw new Error("not used by the loop"); }
  setState(): void {}
  inject(): void {}
  setInterruptWindow(): void {}
}

describe("run loop with string I/O exits", () => {
  it("counts an io exit with count as an io exit without a second bus access; plain io still reaches the bus", async () => {
    const accesses: string[] = [];
    const dev: IoDevice = {
      name: "probe",
      read: (_o: number, _s: AccessSize) => { accesses.push("read"); return 0; },
      write: (_o: number, _s: AccessSize, v: number) => { accesses.push(`write ${v}`); },
    };
    const pio = new PioBus();
    pio.insert({ space: "pio", base: 0x3f0, length: 1 }, dev);
    const vcpu = new ListVcpu([
      { kind: "io", port: 0x3f0, size: 1, in: false, data: 0x41, count: 5 },
      { kind: "io", port: 0x3f0, size: 1, in: true, data: 0, count: 0 },
      { kind: "io", port: 0x3f0, size: 1, in: false, data: 0x42 },
    ]);
    const loop = new RunLoop({
      vcpu, pio, mmio: new MmioBus(), console: new VmConsole(), irqs: new IrqLineSet(),
      events: new EventEmitter<MonitorEventMap>(), cpuid: new CpuidPolicy(defaultProfile("vmx")),
    });
    const r = await loop.run();
    expect(r.reason).toBe("halted");
    expect(accesses).toEqual(["write 66"]);
    expect(r.exits).toEqual({ io: 3, hlt: 1 });
  });
});

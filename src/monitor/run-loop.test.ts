// The run loop against a scripted VcpuBackend: each run() returns the next scripted
// exit. This checks the loop's dispatch, counting and stop reasons, not a CPU.
import { EventEmitter } from "eventemitter3";
import { describe, expect, it } from "vitest";
import type { AccessSize, IoDevice, MonitorEventMap, VcpuBackend, VmExit, X86State } from "./api.js";
import { MmioBus, PioBus } from "./bus.js";
import { VmConsole } from "./console.js";
import { CpuidPolicy, defaultProfile } from "./cpuid.js";
import { IrqLineSet } from "./irq.js";
import { RunLoop } from "./run-loop.js";

class ScriptedVcpu implements VcpuBackend {
  readonly id = "scripted";
  runs = 0;
  /** exit.data of the previous exit as the next run() commits it (IN results). */
  readonly committed: number[] = [];
  windowCalls: boolean[] = [];
  #prev: VmExit | undefined;
  constructor(private readonly script: (n: number) => VmExit) {}
  run(): VmExit {
    if (this.#prev && (this.#prev.kind === "io" || this.#prev.kind === "mmio")) this.committed.push(this.#prev.data);
    this.#prev = this.script(this.runs++);
    return this.#prev;
  }
  getState(): X86State { throw new Error("not used by the loop"); }
  setState(): void {}
  inject(): void {}
  setInterruptWindow(enabled: boolean): void { this.windowCalls.push(enabled); }
}

function fromList(exits: VmExit[]): (n: number) => VmExit {
  return (n) => exits[n] ?? { kind: "hlt", interruptsEnabled: false };
}

function setup(script: (n: number) => VmExit) {
  const vcpu = new ScriptedVcpu(script);
  const pio = new PioBus();
  const mmio = new MmioBus();
  const console = new VmConsole();
  const irqs = new IrqLineSet();
  const events = new EventEmitter<MonitorEventMap>();
  const loop = new RunLoop({ vcpu, pio, mmio, console, irqs, events, cpuid: new CpuidPolicy(defaultProfile("vmx")) });
  return { vcpu, pio, mmio, console, irqs, events, loop };
}

const latch: IoDevice & { writes: number[] } = {
  name: "latch", writes: [],
  read: (offset: number, size: AccessSize) => 0x40 + offset + size,
  write(_o: number, _s: AccessSize, v: number) { this.writes.push(v); },
};

describe("run loop", () => {
  it("dispatches io and mmio exits to the buses and stores IN/read results in the exit", async () => {
    const s = setup(fromList([
      { kind: "io", port: 0x80, size: 1, in: false, data: 0x12 },
      { kind: "io", port: 0x81, size: 2, in: true, data: 0 },
      { kind: "io", port: 0x90, size: 1, in: true, data: 0 },
      { kind: "mmio", gpa: 0xfee00004, size: 4, write: false, data: 0 },
      { kind: "mmio", gpa: 0xfee00000, size: 4, write: true, data: 0x99 },
    ]));
    latch.writes.length = 0;
    s.pio.insert({ space: "pio", base: 0x80, length: 2 }, latch);
    s.mmio.insert({ space: "mmio", base: 0xfee00000, length: 0x1000 }, latch);
    const r = await s.loop.run();
    expect(r.reason).toBe("halted");
    expect(latch.writes).toEqual([0x12, 0x99]);
    // committed data of each exit: OUT value, IN from 0x81 (offset 1, size 2), unclaimed IN, MMIO read (offset 4, size 4), MMIO write value
    expect(s.vcpu.committed).toEqual([0x12, 0x43, 0xff, 0x48, 0x99]);
    expect(s.pio.unclaimed.reads).toBe(1);
    expect(r.exits).toEqual({ io: 3, mmio: 2, hlt: 1 });
  });

  it("answers cpuid exits from the policy", async () => {
    const exit: VmExit = { kind: "cpuid", leaf: 0, subleaf: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
    const s = setup(fromList([exit]));
    await s.loop.run();
    expect(exit.eax).toBe(1);
    expect(exit.ebx).toBe(0x756e6547); // "Genu"
  });

  it("stops halted on HLT with interrupts off, emitting start and stop", async () => {
    const s = setup(fromList([]));
    const seen: string[] = [];
    s.events.on("start", () => seen.push("start"));
    s.events.on("stop", (r) => seen.push(`stop:${r.reason}`));
    const r = await s.loop.run();
    expect(r).toEqual({ reason: "halted", message: "the guest halted with interrupts disabled", exits: { hlt: 1 } });
    expect(seen).toEqual(["start", "stop:halted"]);
  });

  it("stops with shutdown on a triple fault", async () => {
    const r = await setup(fromList([{ kind: "shutdown", reason: "triple-fault" }])).loop.run();
    expect(r.reason).toBe("shutdown");
    expect(r.message).toContain("triple fault");
  });

  it.each([
    [{ kind: "entry-failure", code: 7, message: "invalid control field" } as VmExit, "VM entry failed (code 7): invalid control field"],
    [{ kind: "unhandled", code: 0x30, message: "EPT violation" } as VmExit, "unhandled exit (code 0x30): EPT violation"],
    [{ kind: "exception", vector: 13, errorCode: 0x10, hasErrorCode: true } as VmExit, "unexpected exception exit #GP (vector 13, error code 0x10)"],
  ])("stops with error on %o", async (exit, message) => {
    const r = await setup(fromList([exit])).loop.run();
    expect(r.reason).toBe("error");
    expect(r.message).toBe(message);
  });

  it("stops with error, not an exception, when the backend throws", async () => {
    const r = await setup(() => { throw new Error("boom"); }).loop.run();
    expect(r).toMatchObject({ reason: "error", message: "vCPU scripted threw: boom" });
  });

  it("waits in HLT with interrupts on until console input arrives, without spinning", async () => {
    const s = setup(fromList([{ kind: "hlt", interruptsEnabled: true }, { kind: "io", port: 0x60, size: 1, in: true, data: 0 }]));
    const running = s.loop.run();
    await new Promise((r) => setTimeout(r, 30));
    expect(s.vcpu.runs).toBe(1);
    s.console.type("x");
    const r = await running;
    expect(r.reason).toBe("halted");
    expect(r.exits).toEqual({ hlt: 2, io: 1 });
  });

  it("wakes a HLT with interrupts on when an IRQ line rises", async () => {
    const s = setup(fromList([{ kind: "hlt", interruptsEnabled: true }]));
    const running = s.loop.run();
    await new Promise((r) => setTimeout(r, 10));
    expect(s.vcpu.runs).toBe(1);
    s.irqs.line(4).raise();
    expect((await running).reason).toBe("halted");
  });

  it("yields on preempt exits so a timeout can end a guest that never stops", async () => {
    const s = setup(() => ({ kind: "preempt" }));
    const r = await s.loop.run({ timeoutMs: 30 });
    expect(r.reason).toBe("timeout");
    expect(r.message).toBe("no stop within 30 ms");
    expect(r.exits["preempt"]).toBeGreaterThan(1);
  });

  it("yields periodically even when the guest exits only for I/O", async () => {
    const exit: VmExit = { kind: "io", port: 0x3fd, size: 1, in: true, data: 0 };
    const s = setup(() => exit);
    const r = await s.loop.run({ timeoutMs: 30 });
    expect(r.reason).toBe("timeout");
    expect(r.exits["io"]).toBeGreaterThan(100);
  });

  it("ends a waiting HLT when stopped from outside (the escape key)", async () => {
    const s = setup(fromList([{ kind: "hlt", interruptsEnabled: true }]));
    const running = s.loop.run();
    await new Promise((r) => setTimeout(r, 5));
    s.loop.stop("escape", "escape key");
    s.loop.stop("timeout", "too late: the first reason wins");
    expect(await running).toMatchObject({ reason: "escape", message: "escape key" });
  });

  it("closes the interrupt window, having nothing to inject without an interrupt controller", async () => {
    const s = setup(fromList([{ kind: "interrupt-window" }]));
    await s.loop.run();
    expect(s.vcpu.windowCalls).toEqual([false]);
  });

  it("keeps time per exit kind", async () => {
    const s = setup((n) => {
      if (n > 0) return { kind: "hlt", interruptsEnabled: false };
      const until = performance.now() + 2;
      while (performance.now() < until); // the guest "runs" 2 ms before this io exit
      return { kind: "io", port: 0, size: 1, in: false, data: 0 };
    });
    await s.loop.run();
    expect(s.loop.times[0]).toBeGreaterThanOrEqual(2);
    expect(s.loop.times[1]).toBe(0);
  });
});

// Interrupt delivery through the run loop against a model vCPU that decides
// interruptibility the way a backend does (IF and the STI shadow), the real 8259A pair,
// and the virtual clock. The model records every injection and whether the guest could
// take it at that moment.
import { EventEmitter } from "eventemitter3";
import { describe, expect, it } from "vitest";
import type { MonitorEventMap, VcpuBackend, VcpuEvent, VmExit, X86State } from "./api.js";
import { MmioBus, PioBus } from "./bus.js";
import { MonitorClock } from "./clock.js";
import { VmConsole } from "./console.js";
import { CpuidPolicy, defaultProfile } from "./cpuid.js";
import { IrqLineSet } from "./irq.js";
import { RunLoop } from "./run-loop.js";
import { I8259Pic, PIC_MASTER_BASE } from "../../plugins/devices-lpc/src/i8259-pic.js";

/** One guest "instruction". A function is a device acting at that point (counts as a NOP). */
type Op = "cli" | "sti" | "hlt" | "nop" | ((m: ModelVcpu) => void);

/**
 * A guest as a list of ops. Each run() first delivers a queued injection (recording a
 * violation if IF=0 or in a shadow), then exits with interrupt-window if the window is
 * open and the guest is interruptible, else executes one op. A delivered interrupt runs a
 * handler: non-specific EOI to the master (an io exit), then IRET (IF back to 1).
 */
class ModelVcpu implements VcpuBackend {
  readonly id = "model";
  ifl = true;
  shadow = false;
  window = false;
  runs = 0;
  retired = 0;
  readonly delivered: number[] = [];
  readonly violations: string[] = [];
  #pending: VcpuEvent | undefined;
  readonly #ops: Op[];
  readonly #preempt: VmExit = { kind: "preempt" };

  constructor(ops: Op[]) {
    this.#ops = [...ops];
  }

  run(): VmExit {
    this.runs++;
    if (this.#pending) {
      const e = this.#pending;
      this.#pending = undefined;
      if (!this.ifl || this.shadow) this.violations.push(`vector ${e.vector} injected with IF=${this.ifl} shadow=${this.shadow}`);
      this.delivered.push(e.vector);
      this.ifl = false;
      this.#ops.unshift("eoi" as unknown as Op, "iret" as unknown as Op);
    }
    if (this.window && this.ifl && !this.shadow) return { kind: "interrupt-window" };
    const op = this.#ops.shift();
    if (op === undefined) return { kind: "hlt", interruptsEnabled: false };
    this.retired++;
    const wasShadow = this.shadow;
    this.shadow = false;
    switch (op as string) {
      case "cli": this.ifl = false; break;
      case "sti": this.ifl = true; this.shadow = !wasShadow; break;
      case "iret": this.ifl = true; break;
      case "eoi": return { kind: "io", port: PIC_MASTER_BASE, size: 1, in: false, data: 0x20 };
      case "hlt": return { kind: "hlt", interruptsEnabled: this.ifl };
      case "nop": break;
      default: (op as (m: ModelVcpu) => void)(this);
    }
    return this.#preempt;
  }

  getState(): X86State { throw new Error("not used by the loop"); }
  setState(): void {}
  inject(event: VcpuEvent): void {
    if (this.#pending) this.violations.push("a second injection before the first was delivered");
    this.#pending = { ...event };
  }
  setInterruptWindow(enabled: boolean): void { this.window = enabled; }
  instructionsRetired(): number { return this.retired; }
}

function setup(ops: Op[], clockMode: "host" | "instructions" = "host", idle: "skip" | "sleep" = "skip") {
  const vcpu = new ModelVcpu(ops);
  const pio = new PioBus();
  const irqs = new IrqLineSet();
  const pic = new I8259Pic();
  pio.insert({ space: "pio", base: PIC_MASTER_BASE, length: 2 }, pic.masterIo);
  pio.insert({ space: "pio", base: 0xa0, length: 2 }, pic.slaveIo);
  irqs.attachController(pic);
  const clock = new MonitorClock({ mode: clockMode, mips: 100, idle });
  clock.attach(vcpu);
  const loop = new RunLoop({
    vcpu, pio, mmio: new MmioBus(), console: new VmConsole(), irqs, events: new EventEmitter<MonitorEventMap>(),
    cpuid: new CpuidPolicy(defaultProfile("vmx")), controller: pic, clock,
  });
  // Program the PIC as a BIOS does: master base 0x08, slave 0x70, everything unmasked.
  for (const [port, v] of [[0x20, 0x11], [0x21, 0x08], [0x21, 0x04], [0x21, 0x01], [0xa0, 0x11], [0xa1, 0x70], [0xa1, 0x02], [0xa1, 0x01], [0x21, 0], [0xa1, 0]] as const) {
    pio.write(port, 1, v);
  }
  return { vcpu, irqs, pic, clock, loop };
}

describe("run loop interrupt delivery", () => {
  it("injects a request raised while IF=0 only after STI and its shadow, exactly once", async () => {
    let irqs!: IrqLineSet;
    const s = setup(["cli", () => irqs.line(3).raise(), "nop", "nop", "sti", "nop", () => irqs.line(3).lower(), "nop"]);
    irqs = s.irqs;
    const r = await s.loop.run();
    expect(r.reason).toBe("halted");
    expect(s.vcpu.violations).toEqual([]);
    expect(s.vcpu.delivered).toEqual([0x0b]);
    expect(s.loop.injected).toBe(1);
  });

  it("a request that goes away before the window opens is not injected (nothing spurious)", async () => {
    let irqs!: IrqLineSet;
    const s = setup(["cli", () => irqs.line(4).raise(), () => irqs.line(4).lower(), "sti", "nop", "nop"]);
    irqs = s.irqs;
    await s.loop.run();
    expect(s.vcpu.delivered).toEqual([]);
  });

  it("every rising edge is delivered once, with the guest's EOI between, none lost or duplicated", async () => {
    let irqs!: IrqLineSet;
    const ops: Op[] = [];
    for (let i = 0; i < 50; i++) {
      ops.push(() => irqs.line(3).raise());
      // Sometimes with interrupts off for a while, sometimes two sources at once.
      if (i % 3 === 0) ops.push("cli", "nop", "sti");
      if (i % 7 === 0) ops.push(() => irqs.line(9).raise(), "nop", () => irqs.line(9).lower());
      ops.push("nop", () => irqs.line(3).lower());
    }
    const s = setup(ops);
    irqs = s.irqs;
    await s.loop.run();
    expect(s.vcpu.violations).toEqual([]);
    expect(s.vcpu.delivered.filter((v) => v === 0x0b)).toHaveLength(50);
    // IRQ9 is held one NOP: delivered when it is ahead of IRQ3 (IR2 outranks IR3), else
    // it waits behind an IRQ3 in service and its line drops first. No vector but these two.
    expect(s.vcpu.delivered.every((v) => v === 0x0b || v === 0x71)).toBe(true);
    expect(s.loop.injected).toBe(s.vcpu.delivered.length);
  });

  it("HLT with IF=1 and a pending interrupt continues at once and takes it", async () => {
    let irqs!: IrqLineSet;
    const s = setup(["cli", () => irqs.line(5).raise(), "sti", "hlt", "cli"]);
    irqs = s.irqs;
    const r = await s.loop.run({ timeoutMs: 2000 });
    expect(r.reason).toBe("halted");
    expect(s.vcpu.delivered).toEqual([0x0d]);
  });

  it("a halted guest stays halted (no runs) until an unmasked IRQ arrives, then takes it", async () => {
    const s = setup(["sti", "hlt", "cli"]);
    s.pic.masterIo.write(1, 1, 0x80); // IMR: IR7 masked
    const running = s.loop.run({ timeoutMs: 2000 });
    await new Promise((r) => setTimeout(r, 20));
    const runs = s.vcpu.runs;
    s.irqs.line(7).raise(); // masked: wakes the loop, but the guest must stay halted
    await new Promise((r) => setTimeout(r, 20));
    expect(s.vcpu.runs).toBe(runs);
    s.irqs.line(6).raise();
    const r = await running;
    expect(r.reason).toBe("halted");
    expect(s.vcpu.delivered).toEqual([0x0e]);
  });

  it("host mode: a halted guest sleeps until its timer, which raises the IRQ that wakes it", async () => {
    let s!: ReturnType<typeof setup>;
    let firedAt = 0;
    s = setup(["sti", () => {
      s.clock.setTimer(s.clock.now() + 30e6, (t) => { firedAt = t; s.irqs.line(0).raise(); });
    }, "hlt", "cli"]);
    const t0 = performance.now();
    const r = await s.loop.run({ timeoutMs: 2000 });
    expect(r.reason).toBe("halted");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(29);
    expect(firedAt).toBeGreaterThanOrEqual(30e6);
    expect(s.vcpu.delivered).toEqual([0x08]);
    expect(s.vcpu.runs).toBeLessThan(20); // slept, did not spin
  });

  it("instructions mode: HLT jumps virtual time to the next deadline without waiting", async () => {
    let s!: ReturnType<typeof setup>;
    const fired: number[] = [];
    s = setup(["sti", () => {
      // A periodic 10 ms virtual tick, five times.
      const tick = (t: number) => {
        fired.push(t);
        s.irqs.line(0).raise();
        s.irqs.line(0).lower();
        s.irqs.line(0).raise();
        if (fired.length < 5) s.clock.setTimer(t + 10e6, tick);
      };
      s.clock.setTimer(10e6, tick);
    }, "hlt", () => s.irqs.line(0).lower(), "hlt", () => s.irqs.line(0).lower(), "hlt", () => s.irqs.line(0).lower(),
    "hlt", () => s.irqs.line(0).lower(), "hlt", "cli"], "instructions");
    const t0 = performance.now();
    const r = await s.loop.run({ timeoutMs: 5000 });
    expect(r.reason).toBe("halted");
    expect(performance.now() - t0).toBeLessThan(1000); // 50 ms of virtual time, far less host time
    expect(fired).toEqual([10e6, 20e6, 30e6, 40e6, 50e6]);
    expect(s.vcpu.delivered).toEqual([8, 8, 8, 8, 8]);
    expect(s.vcpu.violations).toEqual([]);
  });

  it("instructions mode with idle sleep: HLT waits the deadline out in host time, then fires it at its virtual time", async () => {
    let s!: ReturnType<typeof setup>;
    let firedAt = 0;
    s = setup(["sti", () => { s.clock.setTimer(30e6, (t) => { firedAt = t; s.irqs.line(1).raise(); }); }, "hlt", "cli"], "instructions", "sleep");
    const t0 = performance.now();
    const r = await s.loop.run({ timeoutMs: 2000 });
    expect(r.reason).toBe("halted");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
    expect(firedAt).toBe(30e6);
    expect(s.vcpu.delivered).toEqual([0x09]);
  });

  it("instructions mode is deterministic: the same guest gives the same delivery points", async () => {
    const once = async () => {
      let s!: ReturnType<typeof setup>;
      const seenAt: number[] = [];
      const ops: Op[] = [() => {
        const tick = (t: number) => { s.irqs.line(0).lower(); s.irqs.line(0).raise(); if (t < 100_000) s.clock.setTimer(t + 7_000, tick); };
        s.clock.setTimer(7_000, tick);
      }];
      for (let i = 0; i < 3000; i++) ops.push(i % 100 === 50 ? "cli" : i % 100 === 60 ? "sti" : () => seenAt.push(s.vcpu.delivered.length));
      s = setup(ops, "instructions");
      await s.loop.run();
      return { delivered: s.vcpu.delivered.length, seenAt: seenAt.join(",") };
    };
    const a = await once();
    const b = await once();
    expect(a.delivered).toBeGreaterThanOrEqual(4);
    expect(b).toEqual(a);
  });
});

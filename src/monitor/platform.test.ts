import { describe, expect, it } from "vitest";
import { bootKernel, softEngine, MapPerm, ObjType, Rights, SysErr } from "../kernel/index.js";
import type { Logger } from "./api.js";
import { X86Cpu } from "../x86/cpu.js";
import { FlatMemory } from "../x86/memory.js";
import { realModeState } from "../x86/state.js";
import { CpuExitReason } from "../x86/types.js";
import { IrqLineSet } from "./irq.js";
import { FERR_IRQ, FERR_PORT, FerrLatch, MachinePlatform } from "./platform.js";

/** A kernel with 2 MiB of RAM mapped at guest-physical 0. */
function world() {
  const k = bootKernel({ engine: softEngine(), ramBytes: 4 * 1024 * 1024 });
  const sys = k.syscalls;
  const ok = (e: SysErr) => expect(e).toBe(SysErr.Ok);
  ok(sys.ramRetype(k.ram, ObjType.Frame, 2 * 1024 * 1024));
  const frame = sys.ret.cap;
  ok(sys.ramRetype(k.ram, ObjType.GuestPhysSpace, 4096));
  const gps = sys.ret.cap;
  ok(sys.gpspaceMap(gps, frame, 0, MapPerm.RWX));
  return { sys, gps };
}

class Warnings implements Logger {
  readonly lines: string[] = [];
  debug(): void {}
  info(): void {}
  warn(m: string): void { this.lines.push(m); }
}

describe("MachinePlatform", () => {
  it("powers on with A20 enabled and forwards changes to the gpspace", () => {
    const w = world();
    const calls: Array<[number, boolean]> = [];
    const sys = new Proxy(w.sys, {
      get(t, p) {
        if (p === "gpspaceSetA20") return (g: number, e: boolean) => { calls.push([g, e]); return t.gpspaceSetA20(g, e); };
        return Reflect.get(t, p);
      },
    });
    const p = new MachinePlatform(sys, w.gps);
    expect(p.a20()).toBe(true);
    expect(calls).toEqual([[w.gps, true]]);
    p.setA20(false);
    p.setA20(false); // no change: no second syscall
    expect(p.a20()).toBe(false);
    p.setA20(true);
    expect(calls).toEqual([[w.gps, true], [w.gps, false], [w.gps, true]]);
  });

  it("a reset request calls the machine's reset reaction and is counted", () => {
    const w = world();
    const p = new MachinePlatform(w.sys, w.gps);
    p.requestReset(); // before the machine attached: counted, nothing else
    let stops = 0;
    p.onReset(() => stops++);
    p.requestReset();
    expect(stops).toBe(1);
    expect(p.resetRequests).toBe(2);
  });

  it("logs instead of throwing when the kernel refuses the A20 change (no Write right)", () => {
    const w = world();
    expect(w.sys.capMint(w.gps, Rights.Read)).toBe(SysErr.Ok);
    const ro = w.sys.ret.cap;
    const log = new Warnings();
    const p = new MachinePlatform(w.sys, ro, log);
    expect(() => p.setA20(false)).not.toThrow();
    expect(log.lines.length).toBe(2);
    expect(log.lines[1]).toMatch(/gpspaceSetA20\(false\): cap-no-right/);
  });
});

describe("FerrLatch (x87 errors with CR0.NE = 0, SDM Vol. 1 8.7 / D.2.1)", () => {
  /** Real-mode core at 1000:0 whose OUTs go to the latch; data at 2000:0. */
  function rig(cr0ne: boolean) {
    const irqs = new IrqLineSet();
    const latch = new FerrLatch(irqs.line(FERR_IRQ));
    const m = new FlatMemory(0x40000);
    const outs: number[] = [];
    const cpu = new X86Cpu(m, {
      in: () => 0xffffffff,
      out: (port, size, v) => { outs.push(port); if (port === FERR_PORT) latch.write(0, size, v); },
    });
    latch.attach(cpu);
    m.bytes.set([
      0xd9, 0x2e, 0x00, 0x02, // FLDCW [200h]: IM clear
      0xd9, 0xee, 0xd9, 0xee, 0xde, 0xf9, // FLDZ; FLDZ; FDIVP: 0/0, unmasked #IA pending
      0x9b, // FWAIT: FERR# (CR0.NE = 0) or #MF (CR0.NE = 1)
      0xe6, 0xf0, // OUT F0h, AL: the handler clears the latch
      0xdb, 0xe2, // FNCLEX
      0xf4,
    ], 0x10000);
    m.write16(0x20200, 0x037f & ~1);
    const s = realModeState(0x1000, 0);
    s.ds = { selector: 0x2000, base: 0x20000, limit: 0xffff, attrib: 0x93 };
    if (cr0ne) s.cr0 |= 0x20;
    cpu.setState(s);
    return { irqs, latch, cpu, outs };
  }

  it("FERR# at the waiting instruction raises IRQ 13; OUT F0h lowers it; FNCLEX drops FERR# without a new edge", () => {
    const r = rig(false);
    expect(r.cpu.run(5)).toBe(CpuExitReason.Budget); // up to and including FWAIT
    expect(r.irqs.level(FERR_IRQ)).toBe(true);
    expect(r.latch.asserts).toBe(1);
    expect(r.cpu.run(100)).toBe(CpuExitReason.Halted);
    expect(r.outs).toEqual([FERR_PORT]);
    expect(r.irqs.level(FERR_IRQ)).toBe(false);
    expect(r.irqs.raises[FERR_IRQ]).toBe(1);
    expect(r.latch.read(0, 1)).toBe(0xffffffff);
  });

  it("with CR0.NE = 1 the error is #MF and IRQ 13 stays low", () => {
    const r = rig(true);
    r.cpu.intercepts.exceptionBitmap = 1 << 16;
    expect(r.cpu.run(100)).toBe(CpuExitReason.Exception);
    expect(r.cpu.exit.vector).toBe(16);
    expect(r.irqs.level(FERR_IRQ)).toBe(false);
    expect(r.latch.asserts).toBe(0);
  });
});

import { describe, expect, it } from "vitest";
import { bootKernel, softEngine, MapPerm, ObjType, Rights, SysErr } from "../kernel/index.js";
import type { Logger } from "./api.js";
import { MachinePlatform } from "./platform.js";

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

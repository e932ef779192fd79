import { describe, expect, it } from "vitest";
import type { VcpuBackend, VmExit, X86State } from "./api.js";
import { ConfigError } from "./api.js";
import { MAX_FIRED_PER_CALL, MonitorClock } from "./clock.js";

/** A host clock the test moves by hand (milliseconds, like performance.now). */
function manualHost(start = 1000) {
  const h = { ms: start, now: () => h.ms };
  return h;
}

function countingVcpu(withCount = true): VcpuBackend & { retired: number } {
  const v = {
    id: "counting",
    retired: 0,
    run(): VmExit { return { kind: "preempt" }; },
    getState(): X86State { throw new Error("unused"); },
    setState(): void {},
    inject(): void {},
    setInterruptWindow(): void {},
  } as VcpuBackend & { retired: number };
  if (withCount) v.instructionsRetired = function (this: { retired: number }) { return this.retired; };
  return v;
}

describe("virtual clock, host mode", () => {
  it("counts nanoseconds of host time since it was built", () => {
    const h = manualHost();
    const c = new MonitorClock({ mode: "host", mips: 100 }, h.now);
    expect(c.now()).toBe(0);
    h.ms += 2.5;
    expect(c.now()).toBe(2_500_000);
  });

  it("fires due timers in deadline order, ties in the order they were set, and passes now", () => {
    const h = manualHost();
    const c = new MonitorClock({ mode: "host", mips: 100 }, h.now);
    const seen: string[] = [];
    c.setTimer(3000, (t) => seen.push(`c@${t}`));
    c.setTimer(1000, (t) => seen.push(`a@${t}`));
    c.setTimer(2000, () => seen.push("b1"));
    c.setTimer(2000, () => seen.push("b2"));
    c.setTimer(9000, () => seen.push("late"));
    h.ms += 0.005; // 5000 ns
    expect(c.runDue()).toBe(4);
    expect(seen).toEqual(["a@5000", "b1", "b2", "c@5000"]);
    expect(c.nextDeadline()).toBe(9000);
    expect(c.pending).toBe(1);
  });

  it("cancel removes a timer; a stale handle of a fired timer cancels nothing else", () => {
    const c = new MonitorClock({ mode: "host", mips: 100 }, manualHost().now);
    const seen: number[] = [];
    const a = c.setTimer(10, () => seen.push(1));
    const b = c.setTimer(20, () => seen.push(2));
    c.cancel(b);
    c.runDue(15);
    const d = c.setTimer(30, () => seen.push(3)); // may reuse a's node
    c.cancel(a); // stale: a fired already
    c.cancel(-5);
    c.runDue(100);
    expect(seen).toEqual([1, 3]);
    expect(c.pending).toBe(0);
    expect(d).not.toBe(a);
  });

  it("keeps order over many timers set and cancelled in random order (the pool grows)", () => {
    const c = new MonitorClock({ mode: "host", mips: 100 }, manualHost().now);
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const fired: number[] = [];
    const handles: { h: number; at: number }[] = [];
    for (let i = 0; i < 1000; i++) {
      const at = Math.floor(rnd() * 1e6);
      handles.push({ h: c.setTimer(at, () => fired.push(at)), at });
    }
    const cancelled = new Set<number>();
    for (let i = 0; i < 1000; i += 3) { c.cancel(handles[i]!.h); cancelled.add(i); }
    c.runDue(2e6);
    const expected = handles.filter((_, i) => !cancelled.has(i)).map((x) => x.at).sort((a, b) => a - b);
    expect(fired).toEqual(expected);
  });

  it("a callback may set a timer that is already due: it fires in the same call, in order", () => {
    const c = new MonitorClock({ mode: "host", mips: 100 }, manualHost().now);
    const seen: string[] = [];
    c.setTimer(10, () => { seen.push("a"); c.setTimer(15, () => seen.push("a2")); });
    c.setTimer(20, () => seen.push("b"));
    c.runDue(30);
    expect(seen).toEqual(["a", "a2", "b"]);
  });

  it("a timer re-arming itself in the past fires a bounded number of times per call", () => {
    const c = new MonitorClock({ mode: "host", mips: 100 }, manualHost().now);
    let n = 0;
    const again = () => { n++; c.setTimer(0, again); };
    c.setTimer(0, again);
    expect(c.runDue(1)).toBe(MAX_FIRED_PER_CALL);
    expect(n).toBe(MAX_FIRED_PER_CALL);
  });
});

describe("virtual clock, instructions mode", () => {
  it("advances with retired instructions at the configured rate", () => {
    const v = countingVcpu();
    v.retired = 500; // instructions before the clock attached do not count
    const c = new MonitorClock({ mode: "instructions", mips: 50 }, () => { throw new Error("host time must not be read"); });
    c.attach(v);
    expect(c.now()).toBe(0);
    v.retired += 1000;
    expect(c.now()).toBe(20_000); // 1000 instructions at 50 MIPS = 20 us
  });

  it("is deterministic: the same instruction counts give the same timer firings", () => {
    const run = () => {
      const v = countingVcpu();
      const c = new MonitorClock({ mode: "instructions", mips: 100 });
      c.attach(v);
      const seen: number[] = [];
      for (let k = 1; k <= 5; k++) c.setTimer(k * 1000, (t) => seen.push(t));
      for (let step = 0; step < 10; step++) { v.retired += 37; c.runDue(); }
      return seen;
    };
    expect(run()).toEqual([1110, 2220, 3330]);
    expect(run()).toEqual(run());
  });

  it("skipIdleTo moves time to a deadline while no instructions retire, and never backwards", () => {
    const v = countingVcpu();
    const c = new MonitorClock({ mode: "instructions", mips: 100 });
    c.attach(v);
    v.retired = 10;
    expect(c.now()).toBe(100);
    c.skipIdleTo(5_000);
    expect(c.now()).toBe(5_000);
    c.skipIdleTo(1_000); // already past
    expect(c.now()).toBe(5_000);
    v.retired = 20;
    expect(c.now()).toBe(5_100);
  });

  it("rejects a backend that cannot count retired instructions with a ConfigError naming it", () => {
    const c = new MonitorClock({ mode: "instructions", mips: 100 });
    expect(() => c.attach(countingVcpu(false), "vm.yaml")).toThrow(ConfigError);
    expect(() => c.attach(countingVcpu(false))).toThrow(/"counting" does not/);
  });

  it("skipIdleTo does nothing in host mode", () => {
    const h = manualHost();
    const c = new MonitorClock({ mode: "host", mips: 100 }, h.now);
    c.skipIdleTo(1e9);
    expect(c.now()).toBe(0);
  });
});

// An unintercepted HLT idles to the end of the timeslice (exit 60h); the TSC runs on while
// the guest waits (EngineVcpu.wait), so the guest sees that time pass, as on hardware.
import { describe, expect, it } from "vitest";
import { StateParts } from "../../../../src/monitor/api.js";
import { F, Misc1 } from "../vmcb.js";
import { expectKind, machine } from "../svm-machine.fixtures.js";

/** rdtsc; mov esi, eax; hlt (not intercepted); rdtsc; out 0x98, al — the TSC delta across the HLT. */
function tscAcrossHlt(timeslice: number, interceptHlt = false): number {
  const m = machine([0x0f, 0x31, 0x66, 0x89, 0xc6, 0xf4, 0x0f, 0x31, 0xe6, 0x98], timeslice);
  const v = m.backend.vmcb;
  if (!interceptHlt) v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) & ~Misc1.HLT);
  // The HLT idles to the end of the timeslice: INTR (preempt); the next VMRUN resumes after it.
  expectKind(m.backend.run(), interceptHlt ? "hlt" : "preempt");
  expectKind(m.backend.run(), "io");
  const g = m.backend.getState(StateParts.Gprs);
  return (g.eax - g.esi) >>> 0;
}

describe("TSC while an unintercepted HLT waits", () => {
  it("advances by the rest of the timeslice: a longer timeslice adds exactly its extra length", () => {
    const short = tscAcrossHlt(1000), long = tscAcrossHlt(5000);
    expect(long - short).toBe(4000);
    // Three instructions ran in the first timeslice; the HLT waited for the rest of it.
    expect(short).toBeGreaterThanOrEqual(1000 - 3);
    expect(short).toBeLessThanOrEqual(1000 + 3);
  });

  it("an intercepted HLT exits at once: no idle time is added", () => {
    expect(tscAcrossHlt(5000, true)).toBeLessThan(10);
  });
});

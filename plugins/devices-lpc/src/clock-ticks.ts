// Exact conversions between the virtual clock's nanoseconds and the tick count of a
// device's input clock (the 8254's 1.193182 MHz, the MC146818's 32.768 kHz).
//
// ns * hz overflows 2^53 after a few seconds, so both directions split off whole
// seconds first: every intermediate stays an integer below 2^53 for any time a VM can
// reach, and the results are exact (no drift however long the guest runs).

const NS_PER_S = 1_000_000_000;

/** Input-clock edges that have occurred at or before `ns` (edge k is at time k/hz). */
export function ticksAt(ns: number, hz: number): number {
  const t = Math.floor(ns);
  const s = Math.floor(t / NS_PER_S);
  const r = t - s * NS_PER_S;
  return s * hz + Math.floor((r * hz) / NS_PER_S);
}

/** The earliest whole nanosecond at which edge `tick` has occurred: ticksAt(tickTime(k)) === k. */
export function tickTime(tick: number, hz: number): number {
  const s = Math.floor(tick / hz);
  const r = tick - s * hz;
  return s * NS_PER_S + Math.ceil((r * NS_PER_S) / hz);
}

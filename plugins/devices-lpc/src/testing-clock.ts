// Test helpers for the timer devices: a manually advanced VirtualClock and an IRQ line
// that records its edges with their virtual times. Used by the tests only.
import type { IrqLine, VirtualClock } from "../../../src/monitor/api.js";

interface PendingTimer { at: number; fn: (now: number) => void }

export class ManualClock implements VirtualClock {
  readonly mode = "instructions" as const;
  private t = 0;
  private nextHandle = 1;
  readonly timers = new Map<number, PendingTimer>();
  /** setTimer calls so far (tests check that devices do no per-tick work). */
  timersSet = 0;

  now(): number {
    return this.t;
  }

  setTimer(atNs: number, fn: (now: number) => void): number {
    const h = this.nextHandle++;
    this.timersSet++;
    this.timers.set(h, { at: atNs, fn });
    return h;
  }

  cancel(handle: number): void {
    this.timers.delete(handle);
  }

  /** Advance to `ns`, running due timers in time order, each at its own time. */
  advanceTo(ns: number): void {
    for (;;) {
      let best = -1;
      let bestAt = Number.POSITIVE_INFINITY;
      for (const [h, tm] of this.timers) {
        if (tm.at <= ns && tm.at < bestAt) {
          best = h;
          bestAt = tm.at;
        }
      }
      if (best < 0) break;
      const tm = this.timers.get(best)!;
      this.timers.delete(best);
      if (bestAt > this.t) this.t = bestAt;
      tm.fn(this.t);
    }
    if (ns > this.t) this.t = ns;
  }
}

export class RecordingIrq implements IrqLine {
  level = false;
  /** Virtual times of low-to-high transitions. */
  readonly rises: number[] = [];
  readonly falls: number[] = [];
  constructor(private readonly clock: VirtualClock) {}
  raise(): void {
    if (!this.level) this.rises.push(this.clock.now());
    this.level = true;
  }
  lower(): void {
    if (this.level) this.falls.push(this.clock.now());
    this.level = false;
  }
}

// The VM's one virtual clock (VirtualClock in api.ts) and its timer queue.
//
// "host": nanoseconds of the host's monotonic clock (performance.now) since the clock
// was built. "instructions": retired guest instructions × ns per instruction (from the
// configured MIPS rate), plus an idle offset: a halted guest retires nothing, so the run
// loop moves virtual time to the next deadline with `skipIdleTo` instead of waiting.
//
// Timers live in a binary min-heap over preallocated node arrays (deadline, then the
// order they were set in). Setting, cancelling and firing allocate nothing until the
// node pool has to grow (doubling).
import type { VcpuBackend, VirtualClock } from "./api.js";
import { ConfigError } from "./api.js";

export type ClockMode = "host" | "instructions";

export interface ClockConfig {
  readonly mode: ClockMode;
  /** Guest instructions per microsecond in "instructions" mode. */
  readonly mips: number;
  /**
   * "instructions" mode, guest halted: "skip" moves virtual time to the next deadline at once
   * (fast, for tests); "sleep" first waits that long in host time (paced, for interactive
   * use). Both show the guest the same virtual times.
   */
  readonly idle?: "skip" | "sleep";
}

export const DEFAULT_MIPS = 100;
export const DEFAULT_CLOCK: ClockConfig = { mode: "host", mips: DEFAULT_MIPS, idle: "skip" };

type TimerFn = (now: number) => void;

const INITIAL_NODES = 64;
/** Handles are generation × NODE_LIMIT + node index, so a stale handle never cancels a reused node. */
const NODE_LIMIT = 1 << 21;
export const MAX_FIRED_PER_CALL = 4096;

export class MonitorClock implements VirtualClock {
  readonly mode: ClockMode;
  readonly idle: "skip" | "sleep";
  readonly nsPerInstruction: number;
  readonly #hostNow: () => number;
  readonly #t0: number;
  #retired: (() => number) | undefined;
  #retired0 = 0;
  #idle = 0;
  /** The highest time handed out: `now()` never goes backwards. */
  #last = 0;

  // Node pool: per node its deadline, sequence number, callback, heap position and generation.
  #deadline = new Float64Array(INITIAL_NODES);
  #seq = new Float64Array(INITIAL_NODES);
  #fn: (TimerFn | undefined)[] = new Array<TimerFn | undefined>(INITIAL_NODES).fill(undefined);
  #pos = new Int32Array(INITIAL_NODES).fill(-1);
  #gen = new Uint32Array(INITIAL_NODES);
  #free = new Int32Array(INITIAL_NODES);
  #freeCount = 0;
  /** The heap: node indices. */
  #heap = new Int32Array(INITIAL_NODES);
  #size = 0;
  #nextSeq = 0;
  #capacity = INITIAL_NODES;

  constructor(config: ClockConfig = DEFAULT_CLOCK, hostNow: () => number = () => performance.now()) {
    this.mode = config.mode;
    this.idle = config.idle ?? "skip";
    this.nsPerInstruction = 1000 / config.mips;
    this.#hostNow = hostNow;
    this.#t0 = config.mode === "host" ? hostNow() : 0;
    for (let i = INITIAL_NODES - 1; i >= 0; i--) this.#free[this.#freeCount++] = i;
  }

  /**
   * "instructions" mode: take the retired-instruction count from the (wrapped) vCPU.
   * Throws ConfigError at `clock.mode` when the backend cannot tell.
   */
  attach(vcpu: VcpuBackend, file?: string): void {
    if (this.mode !== "instructions") return;
    const f = vcpu.instructionsRetired;
    if (typeof f !== "function") {
      throw new ConfigError("clock.mode", `"instructions" needs a backend that counts retired instructions; "${vcpu.id}" does not`, file);
    }
    this.#retired = () => f.call(vcpu);
    this.#retired0 = this.#retired();
  }

  now(): number {
    let t: number;
    if (this.mode === "host") {
      t = Math.round((this.#hostNow() - this.#t0) * 1e6);
    } else {
      const r = this.#retired === undefined ? 0 : this.#retired() - this.#retired0;
      t = Math.round(r * this.nsPerInstruction) + this.#idle;
    }
    if (t > this.#last) this.#last = t;
    return this.#last;
  }

  /** "instructions" mode: the guest is idle; let virtual time jump to `atNs` (no-op if it is past). */
  skipIdleTo(atNs: number): void {
    if (this.mode !== "instructions") return;
    const now = this.now();
    if (atNs > now) this.#idle += Math.ceil(atNs - now);
  }

  setTimer(atNs: number, fn: TimerFn): number {
    if (this.#freeCount === 0) this.#grow();
    const n = this.#free[--this.#freeCount]!;
    this.#deadline[n] = Number.isNaN(atNs) ? 0 : atNs;
    this.#seq[n] = this.#nextSeq++;
    this.#fn[n] = fn;
    this.#heap[this.#size] = n;
    this.#pos[n] = this.#size;
    this.#up(this.#size++);
    return this.#gen[n]! * NODE_LIMIT + n;
  }

  cancel(handle: number): void {
    if (!Number.isInteger(handle) || handle < 0) return;
    const n = handle % NODE_LIMIT;
    if (n >= this.#capacity || this.#gen[n]! !== Math.floor(handle / NODE_LIMIT) || this.#pos[n]! < 0) return;
    this.#removeAt(this.#pos[n]!);
    this.#release(n);
  }

  /** Timers set and not yet fired or cancelled. */
  get pending(): number {
    return this.#size;
  }

  /** The earliest deadline, Infinity with no timer set. */
  nextDeadline(): number {
    return this.#size === 0 ? Infinity : this.#deadline[this.#heap[0]!]!;
  }

  /**
   * Fire every timer due at `now`, earliest deadline first (ties in the order they were set),
   * including ones a callback sets that are already due. At most MAX_FIRED_PER_CALL fire per
   * call, so a callback that keeps re-arming itself in the past cannot hold the loop; the
   * rest fire at the next call. Returns how many fired.
   */
  runDue(now?: number): number {
    if (this.#size === 0) return 0;
    if (now === undefined) now = this.now();
    let fired = 0;
    while (this.#size > 0 && this.#deadline[this.#heap[0]!]! <= now && fired < MAX_FIRED_PER_CALL) {
      const fn = this.#popTop();
      fired++;
      fn(now);
    }
    return fired;
  }

  // ---- heap internals

  #popTop(): TimerFn {
    const n = this.#heap[0]!;
    const fn = this.#fn[n]!;
    this.#removeAt(0);
    this.#release(n);
    return fn;
  }

  #release(n: number): void {
    this.#fn[n] = undefined;
    this.#pos[n] = -1;
    this.#gen[n] = (this.#gen[n]! + 1) >>> 0;
    this.#free[this.#freeCount++] = n;
  }

  #less(a: number, b: number): boolean {
    const da = this.#deadline[a]!, db = this.#deadline[b]!;
    return da < db || (da === db && this.#seq[a]! < this.#seq[b]!);
  }

  #place(i: number, n: number): void {
    this.#heap[i] = n;
    this.#pos[n] = i;
  }

  #up(i: number): void {
    const h = this.#heap;
    const n = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(n, h[p]!)) break;
      this.#place(i, h[p]!);
      i = p;
    }
    this.#place(i, n);
  }

  #down(i: number): void {
    const h = this.#heap;
    const n = h[i]!;
    const size = this.#size;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const r = l + 1;
      const c = r < size && this.#less(h[r]!, h[l]!) ? r : l;
      if (!this.#less(h[c]!, n)) break;
      this.#place(i, h[c]!);
      i = c;
    }
    this.#place(i, n);
  }

  #removeAt(i: number): void {
    const last = --this.#size;
    if (i !== last) {
      const moved = this.#heap[last]!;
      this.#place(i, moved);
      this.#down(i);
      if (this.#heap[i] === moved) this.#up(i);
    }
  }

  #grow(): void {
    const old = this.#capacity;
    const cap = old * 2;
    if (cap > NODE_LIMIT) throw new RangeError(`clock: more than ${NODE_LIMIT} timers set at once`);
    const f64 = (a: Float64Array) => { const b = new Float64Array(cap); b.set(a); return b; };
    const i32 = (a: Int32Array, fill: number) => { const b = new Int32Array(cap).fill(fill); b.set(a); return b; };
    this.#deadline = f64(this.#deadline);
    this.#seq = f64(this.#seq);
    this.#pos = i32(this.#pos, -1);
    this.#heap = i32(this.#heap, 0);
    this.#free = i32(this.#free, 0);
    const gen = new Uint32Array(cap); gen.set(this.#gen); this.#gen = gen;
    for (let i = old; i < cap; i++) this.#fn.push(undefined);
    for (let i = cap - 1; i >= old; i--) this.#free[this.#freeCount++] = i;
    this.#capacity = cap;
  }
}

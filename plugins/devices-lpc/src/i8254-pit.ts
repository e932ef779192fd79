// Intel 8254 Programmable Interval Timer, as wired on the PC/AT: three counters fed by
// the 1.193182 MHz clock, counter 0's OUT on IRQ 0, counter 2's GATE and OUT at port 0x61.
// Source: Intel 8254 datasheet (order 231164-005), "Control Word Format", "Read-Back
// Command", "Mode Definitions" (modes 0-5) and table 3 "Gate Pin Operations Summary".
//
// Emulated:
// - Control words (SC, RW, M2-M0, BCD; modes 6/7 alias 2/3), the counter latch command,
//   the read-back command (count and/or status for any set of counters) and the status
//   byte (OUTPUT, NULL COUNT, RW, mode, BCD).
// - LSB, MSB and LSB-then-MSB reads and writes with their flip-flops; latched counts are
//   held until read; "writing the first byte disables counting" in mode 0.
// - Every mode's OUT waveform, reload and gate behaviour, binary and BCD counting, a count
//   of 0 meaning 65536 (10000 in BCD), the one-CLK delay from a count write to the load.
// - The count and OUT are derived from virtual time (the tick number since the VM began),
//   never by stepping the clock: reading a counter is O(1) however long it has run.
// - IRQ 0 follows counter 0's OUT. Clock timers are set only at OUT transitions; a
//   one-CLK low pulse (modes 2, 4, 5) is delivered as one lower+raise at its rising edge.
//   Periodic rising edges closer than PIT_MIN_IRQ_PERIOD_NS coalesce (see README).
//
// Not emulated:
// - Gates of counters 0 and 1 (tied high on the PC) other than through setGate();
//   counter 1 (DRAM refresh on the AT) counts but drives nothing.
// - Sub-CLK timing: a gate change takes effect at the current tick; the 8254's
//   "undefined" reads (count before the first CLK after a write) return the new count.
// - Mode 2/3 with a count of 1 (illegal in the datasheet): mode 2 holds OUT low, mode 3
//   holds OUT high.
// - Power-up state (undefined in the datasheet): every counter in mode 3, LSB-then-MSB,
//   no count loaded, OUT high, NULL COUNT set.
import type { AccessSize, DeviceEvents, IoDevice, IrqLine, VirtualClock } from "../../../src/monitor/api.js";
import { NO_EVENTS } from "../../../src/monitor/api.js";
import { tickTime, ticksAt } from "./clock-ticks.js";

/** The PC's 8254 input clock: 14.31818 MHz / 12 (IBM PC/AT Technical Reference). */
export const PIT_CLOCK_HZ = 1_193_182;

// Register offsets (datasheet table 1, A1 A0).
export const PIT_COUNTER0 = 0;
export const PIT_COUNTER1 = 1;
export const PIT_COUNTER2 = 2;
export const PIT_CONTROL_WORD = 3;
export const PIT_REGISTER_COUNT = 4;

// Control word (datasheet "Control Word Format").
export const CW_SC_SHIFT = 6;
export const CW_SC_READ_BACK = 3;
export const CW_RW_SHIFT = 4;
export const RW_COUNTER_LATCH = 0;
export const RW_LSB = 1;
export const RW_MSB = 2;
export const RW_LSB_MSB = 3;
export const CW_M_SHIFT = 1;
export const CW_BCD = 0x01;

// Read-back command (datasheet "Read-Back Command Format"): COUNT and STATUS are active low.
export const RB_COUNT = 0x20;
export const RB_STATUS = 0x10;
export const RB_CNT2 = 0x08;
export const RB_CNT1 = 0x04;
export const RB_CNT0 = 0x02;

// Status byte (datasheet "Status Byte").
export const STATUS_OUTPUT = 0x80;
export const STATUS_NULL_COUNT = 0x40;

/**
 * Periodic IRQ 0 rising edges (modes 2 and 3) are delivered at most this often. A guest
 * programming a count of 2 would otherwise cost the host ~600 000 timer callbacks per
 * virtual second. 50 µs (20 kHz) is 20x Linux's fastest PIT tick (HZ=1000).
 */
export const PIT_MIN_IRQ_PERIOD_NS = 50_000;
const MIN_IRQ_TICKS = Math.ceil((PIT_MIN_IRQ_PERIOD_NS * PIT_CLOCK_HZ) / 1e9);

const NEVER = Number.POSITIVE_INFINITY;

const toBcd = (v: number): number =>
  ((Math.floor(v / 1000) % 10) << 12) | ((Math.floor(v / 100) % 10) << 8) | ((Math.floor(v / 10) % 10) << 4) | (v % 10);
const fromBcd = (v: number): number =>
  ((v >> 12) & 15) * 1000 + ((v >> 8) & 15) * 100 + ((v >> 4) & 15) * 10 + (v & 15);

/** One counter's registers and its current counting segment. */
export interface I8254ChannelState {
  mode: number;
  rw: number;
  bcd: boolean;
  gate: boolean;
  /** The count register as last written (raw, BCD digits when bcd). */
  cr: number;
  writeMsb: boolean;
  writeLsb: number;
  readMsb: boolean;
  countLatched: boolean;
  latchValue: number;
  latchRw: number;
  latchMsb: boolean;
  statusLatched: boolean;
  statusValue: number;
  countWritten: boolean;
  /** NULL COUNT is set until this tick; -1: until a trigger or a count write. */
  crLoadTick: number;
  /** No count in the counting element yet (after a control word, or before a mode 1/5 trigger). */
  waiting: boolean;
  /** The counter decrements (gate allows it). */
  running: boolean;
  /** The segment: the counting element holds `ce` at tick `start`. */
  start: number;
  ce: number;
  /** Modes 0/1/4/5: the terminal count of this load has not passed yet. */
  armed: boolean;
  /** Mode 3: OUT and the ticks left in the half-period that is current at `start`. */
  phaseOut: boolean;
  remain: number;
  /** Modes 2/3: the count loaded at each reload. */
  reload: number;
  /** OUT before `start` (between a write and the CLK that loads it) and while waiting. */
  preOut: boolean;
}

/** Versioned, JSON-safe snapshot (STYLE rule 3). Ticks count PIT_CLOCK_HZ edges of the VM's virtual clock. */
export interface I8254State {
  readonly v: 1;
  channels: I8254ChannelState[];
  irqLevel: boolean;
  lastRise: number;
}

/** A bad state given to fromState (a host problem, not a guest one). */
export class I8254StateError extends Error {
  override readonly name = "I8254StateError";
}

class Channel implements I8254ChannelState {
  mode = 3;
  rw = RW_LSB_MSB;
  bcd = false;
  gate: boolean;
  cr = 0;
  writeMsb = false;
  writeLsb = 0;
  readMsb = false;
  countLatched = false;
  latchValue = 0;
  latchRw = 0;
  latchMsb = false;
  statusLatched = false;
  statusValue = 0;
  countWritten = false;
  crLoadTick = -1;
  waiting = true;
  running = false;
  start = 0;
  ce = 0;
  armed = false;
  phaseOut = true;
  remain = 1;
  reload = 2;
  preOut = true;
  // evaluate() results, kept here so evaluation allocates nothing.
  out = true;
  count = 0;
  /** Ticks from the evaluated tick to the next OUT transition (NEVER if none). */
  left = NEVER;

  constructor(gate: boolean) {
    this.gate = gate;
  }

  get modulus(): number {
    return this.bcd ? 10000 : 0x10000;
  }

  /** The count register as a number of CLKs: 0 means 65536 (10000 in BCD). */
  countValue(): number {
    const m = this.modulus;
    const n = this.bcd ? fromBcd(this.cr) % 10000 : this.cr;
    return n === 0 ? m : n;
  }

  dist(): number {
    return this.ce % this.modulus || this.modulus;
  }

  /** Compute out, count (0..modulus-1) and left at tick t. */
  evaluate(t: number): void {
    const m = this.modulus;
    if (this.waiting || t < this.start) {
      this.out = this.preOut;
      this.count = this.ce % m;
      this.left = this.waiting ? NEVER : this.start - t;
      return;
    }
    const e = this.running ? t - this.start : 0;
    switch (this.mode) {
      case 0:
      case 1: {
        const d = this.dist();
        this.count = (((this.ce - e) % m) + m) % m;
        const low = this.armed && e < d;
        this.out = !low;
        this.left = low && this.running ? d - e : NEVER;
        break;
      }
      case 4:
      case 5: {
        const d = this.dist();
        this.count = (((this.ce - e) % m) + m) % m;
        this.out = !(this.armed && e === d);
        this.left = this.armed && this.running && e <= d ? (e < d ? d - e : 1) : NEVER;
        break;
      }
      case 2: {
        const c = e < this.ce ? this.ce - e : this.reload - ((e - this.ce) % this.reload);
        this.count = c % m;
        // OUT is low while the counting element holds 1 (datasheet mode 2).
        this.out = c !== 1;
        this.left = !this.running ? NEVER : c > 1 ? c - 1 : this.reload === 1 ? NEVER : 1;
        break;
      }
      default: {
        // Mode 3: decrement by two; OUT toggles at the end of each half-period, which is
        // (N+1)/2 CLKs high and (N-1)/2 low for odd N (datasheet mode 3).
        if (e < this.remain) {
          this.out = this.phaseOut;
          this.count = (this.ce - 2 * e) % m;
          this.left = this.running ? this.remain - e : NEVER;
        } else {
          const n = this.reload;
          if (n === 1) {
            this.out = true;
            this.count = 0;
            this.left = NEVER;
          } else {
            const hi = (n + 1) >> 1;
            const lo = n >> 1;
            const top = n - (n & 1);
            const p = (e - this.remain) % n;
            const first = this.phaseOut ? lo : hi;
            if (p < first) {
              this.out = !this.phaseOut;
              this.count = (top - 2 * p) % m;
              this.left = first - p;
            } else {
              this.out = this.phaseOut;
              this.count = (top - 2 * (p - first)) % m;
              this.left = n - p;
            }
          }
        }
        break;
      }
    }
    // Modes 2 and 3: GATE low forces OUT high at once (datasheet table 3).
    if (!this.gate && (this.mode === 2 || this.mode === 3)) {
      this.out = true;
      this.left = NEVER;
    }
  }

  /** Restate the segment so that it starts at tick t, with the same behaviour from t on. */
  rebase(t: number): void {
    if (this.waiting || t < this.start) return;
    if (!this.running) {
      // Frozen: the evaluation does not depend on `start`; restart the segment here.
      this.start = t;
      return;
    }
    const e = t - this.start;
    this.evaluate(t);
    switch (this.mode) {
      case 0:
      case 1:
      case 4:
      case 5: {
        const d = this.dist();
        if (this.armed && e < d) this.ce = d - e;
        else {
          this.armed = false;
          this.ce = this.count;
        }
        break;
      }
      case 2:
        // The counting element holds 1..N in mode 2; a displayed 0 is 65536 (10000).
        this.ce = this.count === 0 ? this.modulus : this.count;
        break;
      default:
        if (this.left === NEVER) {
          // Count of 1 after its first half-period: OUT stays high.
          this.phaseOut = true;
          this.remain = 1;
          this.ce = 0;
          this.reload = 1;
        } else {
          this.phaseOut = this.out;
          this.remain = this.left;
          // A displayed 0 with CLKs left in the half-period is the full 65536 (10000);
          // 0 with one CLK left is the last CLK of an odd count's high half.
          this.ce = this.count === 0 && this.left > 1 ? this.modulus : this.count;
        }
        break;
    }
    this.preOut = this.out;
    this.start = t;
  }

  /** Mode 2/3: load the count register into the counting element at the next CLK. */
  freshLoad(t: number): void {
    const n = this.countValue();
    this.start = t + 1;
    this.waiting = false;
    this.running = true;
    this.reload = n;
    this.preOut = true;
    if (this.mode === 2) {
      this.ce = n;
    } else {
      this.phaseOut = true;
      this.remain = (n + 1) >> 1;
      this.ce = n - (n & 1);
    }
  }

  nullCount(t: number): boolean {
    return this.crLoadTick < 0 || t < this.crLoadTick;
  }

  status(t: number): number {
    this.evaluate(t);
    return (
      (this.out ? STATUS_OUTPUT : 0) |
      (this.nullCount(t) ? STATUS_NULL_COUNT : 0) |
      (this.rw << CW_RW_SHIFT) |
      (this.mode << CW_M_SHIFT) |
      (this.bcd ? CW_BCD : 0)
    );
  }

  display(count: number): number {
    return this.bcd ? toBcd(count) : count;
  }
}

const EVENT_SYNC = 0;
const EVENT_PULSE = 1;

export interface I8254Deps {
  clock: VirtualClock;
  /** Counter 0's OUT (IRQ 0 on the PC). */
  irq0: IrqLine;
  events?: DeviceEvents;
}

const isInt = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x);

export class I8254Pit implements IoDevice {
  readonly name: string;
  private readonly clock: VirtualClock;
  private readonly irq0: IrqLine;
  private readonly events: DeviceEvents;
  private readonly ch: [Channel, Channel, Channel];
  private irqLevel = false;
  private timer = -1;
  private eventTick = 0;
  private eventKind = EVENT_SYNC;
  /** Tick of the last periodic rising edge delivered (for coalescing). */
  private lastRise = -MIN_IRQ_TICKS;
  private readonly onTimer = (now: number): void => this.irqTimer(now);

  constructor(clock: VirtualClock, irq0: IrqLine, events: DeviceEvents = NO_EVENTS, name = "i8254") {
    this.name = name;
    this.clock = clock;
    this.irq0 = irq0;
    this.events = events;
    // GATE 0 and 1 are tied high on the PC; GATE 2 is port 0x61 bit 0 (clear at reset).
    this.ch = [new Channel(true), new Channel(true), new Channel(false)];
    this.setIrq(this.ch[0].out);
  }

  // ---- IoDevice

  read(offset: number, size: AccessSize): number {
    if (size !== 1 || offset < 0 || offset >= PIT_CONTROL_WORD) {
      // The control word register cannot be read: the bus floats (datasheet table 1).
      this.events.invalidRead(offset, size);
      return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
    }
    return this.readCounter(this.ch[offset]!, this.tick());
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (size !== 1 || offset < 0 || offset >= PIT_REGISTER_COUNT) {
      this.events.invalidWrite(offset, size, value);
      return;
    }
    const t = this.tick();
    this.flushOverdue(t);
    const v = value & 0xff;
    if (offset === PIT_CONTROL_WORD) {
      const sc = v >> CW_SC_SHIFT;
      if (sc === CW_SC_READ_BACK) {
        this.readBack(v, t);
        return;
      }
      this.controlWord(this.ch[sc]!, v, t);
      if (sc === 0) this.counter0Changed(t);
      return;
    }
    this.writeCounter(this.ch[offset]!, v, t);
    if (offset === 0) this.counter0Changed(t);
  }

  // ---- Wiring for port 0x61 and the board

  /** Drive counter `n`'s GATE input (only counter 2's is wired on the PC, through port 0x61). */
  setGate(n: 0 | 1 | 2, level: boolean): void {
    const t = this.tick();
    if (n === 0) this.flushOverdue(t);
    this.gateChange(this.ch[n], level, t);
    if (n === 0) this.counter0Changed(t);
  }

  gate(n: 0 | 1 | 2): boolean {
    return this.ch[n].gate;
  }

  /** Counter `n`'s OUT level now. */
  output(n: 0 | 1 | 2): boolean {
    const c = this.ch[n];
    c.evaluate(this.tick());
    return c.out;
  }

  // ---- Snapshot (STYLE rule 3)

  saveState(): I8254State {
    const channels = this.ch.map((c) => {
      const s: I8254ChannelState = {
        mode: c.mode, rw: c.rw, bcd: c.bcd, gate: c.gate, cr: c.cr,
        writeMsb: c.writeMsb, writeLsb: c.writeLsb, readMsb: c.readMsb,
        countLatched: c.countLatched, latchValue: c.latchValue, latchRw: c.latchRw, latchMsb: c.latchMsb,
        statusLatched: c.statusLatched, statusValue: c.statusValue,
        countWritten: c.countWritten, crLoadTick: c.crLoadTick, waiting: c.waiting, running: c.running,
        start: c.start, ce: c.ce, armed: c.armed, phaseOut: c.phaseOut, remain: c.remain,
        reload: c.reload, preOut: c.preOut,
      };
      return s;
    });
    return { v: 1, channels, irqLevel: this.irqLevel, lastRise: this.lastRise };
  }

  /** Rebuild from a snapshot taken on the same virtual clock; re-drives IRQ 0 and re-arms its timer. */
  static fromState(state: I8254State, deps: I8254Deps, name?: string): I8254Pit {
    const s = state as unknown as Record<string, unknown>;
    if (s === null || typeof s !== "object" || s.v !== 1) {
      throw new I8254StateError(`I8254State: unsupported version ${String(s?.v)} (expected 1)`);
    }
    if (!Array.isArray(s.channels) || s.channels.length !== 3) {
      throw new I8254StateError("I8254State.channels: expected 3 counters");
    }
    if (typeof s.irqLevel !== "boolean" || !isInt(s.lastRise)) {
      throw new I8254StateError("I8254State.irqLevel/lastRise: expected a boolean and an integer");
    }
    const pit = new I8254Pit(deps.clock, deps.irq0, deps.events ?? NO_EVENTS, name);
    (s.channels as unknown[]).forEach((raw, i) => {
      const cs = raw as Record<string, unknown>;
      const where = `I8254State.channels[${i}]`;
      if (cs === null || typeof cs !== "object") throw new I8254StateError(`${where}: expected an object`);
      const c = pit.ch[i]!;
      const ints: Array<[keyof I8254ChannelState, number, number]> = [
        ["mode", 0, 5], ["rw", 1, 3], ["cr", 0, 0xffff], ["writeLsb", 0, 0xff], ["latchValue", 0, 0xffff],
        ["latchRw", 0, 3], ["statusValue", 0, 0xff], ["crLoadTick", -1, Number.MAX_SAFE_INTEGER],
        ["start", 0, Number.MAX_SAFE_INTEGER], ["ce", 0, 0x10000], ["remain", 1, 0x10000], ["reload", 1, 0x10000],
      ];
      for (const [k, lo, hi] of ints) {
        const x = cs[k];
        if (!isInt(x) || x < lo || x > hi) throw new I8254StateError(`${where}.${k}: expected an integer in ${lo}..${hi}, got ${String(x)}`);
        (c as unknown as Record<string, number>)[k] = x;
      }
      const bools: Array<keyof I8254ChannelState> = [
        "bcd", "gate", "writeMsb", "readMsb", "countLatched", "latchMsb", "statusLatched", "countWritten",
        "waiting", "running", "armed", "phaseOut", "preOut",
      ];
      for (const k of bools) {
        if (typeof cs[k] !== "boolean") throw new I8254StateError(`${where}.${k}: expected a boolean`);
        (c as unknown as Record<string, boolean>)[k] = cs[k] as boolean;
      }
    });
    pit.lastRise = state.lastRise;
    pit.irqLevel = !state.irqLevel;
    pit.setIrq(state.irqLevel);
    pit.counter0Changed(pit.tick());
    return pit;
  }

  // ---- Internals

  private tick(): number {
    return ticksAt(this.clock.now(), PIT_CLOCK_HZ);
  }

  private controlWord(c: Channel, v: number, t: number): void {
    const rw = (v >> CW_RW_SHIFT) & 3;
    if (rw === RW_COUNTER_LATCH) {
      this.latchCount(c, t);
      return;
    }
    let mode = (v >> CW_M_SHIFT) & 7;
    if (mode >= 6) mode -= 4; // 11x: modes 6 and 7 are modes 2 and 3
    c.evaluate(t);
    c.ce = c.count; // the counting element stops where it was
    c.mode = mode;
    c.rw = rw;
    c.bcd = (v & CW_BCD) !== 0;
    c.writeMsb = false;
    c.readMsb = false;
    c.countWritten = false;
    c.crLoadTick = -1;
    c.waiting = true;
    c.running = false;
    c.armed = false;
    // "OUT goes to a known initial state": low in mode 0, high in every other mode.
    c.preOut = mode !== 0;
  }

  private latchCount(c: Channel, t: number): void {
    if (c.countLatched) return; // later latch commands are ignored until the count is read
    c.evaluate(t);
    c.latchValue = c.display(c.count);
    c.latchRw = c.rw;
    c.latchMsb = false;
    c.countLatched = true;
  }

  private readBack(v: number, t: number): void {
    for (let i = 0; i < 3; i++) {
      if ((v & (RB_CNT0 << i)) === 0) continue;
      const c = this.ch[i]!;
      if ((v & RB_COUNT) === 0) this.latchCount(c, t);
      if ((v & RB_STATUS) === 0 && !c.statusLatched) {
        c.statusValue = c.status(t);
        c.statusLatched = true;
      }
    }
  }

  private readCounter(c: Channel, t: number): number {
    if (c.statusLatched) {
      c.statusLatched = false;
      return c.statusValue;
    }
    if (c.countLatched) {
      const v = c.latchValue;
      if (c.latchRw === RW_LSB) {
        c.countLatched = false;
        return v & 0xff;
      }
      if (c.latchRw === RW_MSB) {
        c.countLatched = false;
        return v >> 8;
      }
      if (!c.latchMsb) {
        c.latchMsb = true;
        return v & 0xff;
      }
      c.latchMsb = false;
      c.countLatched = false;
      return v >> 8;
    }
    c.evaluate(t);
    const v = c.display(c.count);
    if (c.rw === RW_LSB) return v & 0xff;
    if (c.rw === RW_MSB) return v >> 8;
    c.readMsb = !c.readMsb;
    return c.readMsb ? v & 0xff : v >> 8;
  }

  private writeCounter(c: Channel, v: number, t: number): void {
    if (c.rw === RW_LSB) c.cr = v;
    else if (c.rw === RW_MSB) c.cr = v << 8;
    else if (!c.writeMsb) {
      c.writeLsb = v;
      c.writeMsb = true;
      if (c.mode === 0) {
        // Mode 0: "writing the first byte disables counting".
        c.rebase(t);
        c.running = false;
      }
      return;
    } else {
      c.cr = (v << 8) | c.writeLsb;
      c.writeMsb = false;
    }
    this.loadCount(c, t);
  }

  private loadCount(c: Channel, t: number): void {
    const n = c.countValue();
    c.countWritten = true;
    switch (c.mode) {
      case 0:
      case 4:
        // The count is loaded at the next CLK; OUT goes (mode 0) or stays (mode 4) at its initial level.
        c.start = t + 1;
        c.ce = n;
        c.armed = true;
        c.running = c.gate;
        c.waiting = false;
        c.preOut = c.mode !== 0;
        c.crLoadTick = t + 1;
        break;
      case 1:
      case 5:
        // Loaded only by the next GATE trigger; a one-shot in progress is not disturbed.
        c.crLoadTick = -1;
        break;
      default:
        if (c.waiting) {
          if (c.gate) {
            c.freshLoad(t);
            c.crLoadTick = t + 1;
          } else c.crLoadTick = -1;
        } else if (c.running) {
          // A new count during counting takes effect at the end of the current period
          // (mode 2) or half-period (mode 3).
          c.rebase(t);
          c.reload = n;
          c.crLoadTick = t + (c.mode === 2 ? c.ce : c.remain);
        } else {
          c.reload = n;
          c.crLoadTick = -1;
        }
        break;
    }
  }

  private gateChange(c: Channel, level: boolean, t: number): void {
    if (level === c.gate) return;
    switch (c.mode) {
      case 0:
      case 4:
        // GATE low suspends counting; high resumes it (table 3).
        c.rebase(t);
        c.running = level;
        break;
      case 1:
      case 5:
        // A rising edge (re)triggers: the count register is loaded at the next CLK.
        if (level && c.countWritten) {
          c.evaluate(t);
          c.preOut = c.out;
          c.start = t + 1;
          c.ce = c.countValue();
          c.armed = true;
          c.running = true;
          c.waiting = false;
          if (c.nullCount(t)) c.crLoadTick = t + 1;
        }
        break;
      default:
        if (!level) {
          // GATE low stops counting and sets OUT high at once.
          if (!c.waiting) {
            c.rebase(t);
            c.running = false;
          }
          if (c.nullCount(t)) c.crLoadTick = -1;
        } else if (c.countWritten) {
          // A rising edge reloads the counter at the next CLK.
          const wasNull = c.nullCount(t);
          c.freshLoad(t);
          if (wasNull) c.crLoadTick = t + 1;
        }
        break;
    }
    c.gate = level;
  }

  // ---- IRQ 0

  private setIrq(level: boolean): void {
    if (level === this.irqLevel) return;
    this.irqLevel = level;
    if (level) this.irq0.raise();
    else this.irq0.lower();
  }

  /** A pending IRQ 0 event is overdue (the guest's access came first): deliver it before the change. */
  private flushOverdue(t: number): void {
    if (this.timer >= 0 && this.eventTick <= t) {
      this.clock.cancel(this.timer);
      this.timer = -1;
      this.deliver(t);
    }
  }

  private counter0Changed(t: number): void {
    const c = this.ch[0];
    c.evaluate(t);
    this.setIrq(c.out);
    this.schedule(t);
  }

  private irqTimer(now: number): void {
    this.timer = -1;
    this.deliver(Math.max(ticksAt(now, PIT_CLOCK_HZ), this.eventTick));
  }

  private deliver(t: number): void {
    const c = this.ch[0];
    const k = this.eventTick;
    if (this.eventKind === EVENT_PULSE) {
      // The one-CLK low pulse (or a coalesced periodic edge): one rising edge on IRQ 0.
      this.setIrq(false);
      this.setIrq(true);
      if (c.mode === 2 || c.mode === 3) this.lastRise = k;
    } else {
      // The level at the transition first, so a late callback still shows the edge.
      c.evaluate(k);
      this.setIrq(c.out);
    }
    c.evaluate(t);
    this.setIrq(c.out);
    this.schedule(t);
  }

  /** Set the clock timer for counter 0's next OUT transition after tick t that matters for IRQ 0. */
  private schedule(t: number): void {
    if (this.timer >= 0) {
      this.clock.cancel(this.timer);
      this.timer = -1;
    }
    const c = this.ch[0];
    let k = NEVER;
    let kind = EVENT_SYNC;
    const periodic = !c.waiting && c.running && c.gate && c.reload >= 2 &&
      (c.mode === 2 || (c.mode === 3 && c.reload < MIN_IRQ_TICKS));
    if (periodic) {
      k = this.nextPeriodicRise(c, Math.max(t + 1, this.lastRise + MIN_IRQ_TICKS));
      kind = EVENT_PULSE;
    } else {
      c.evaluate(t);
      if (c.left !== NEVER) {
        k = t + c.left;
        c.evaluate(k);
        if (!c.out) {
          // A fall: if OUT is low for one CLK only (modes 4/5 strobe), deliver it as a pulse.
          c.evaluate(k + 1);
          if (c.out) {
            k += 1;
            kind = EVENT_PULSE;
          }
        }
      }
    }
    if (k === NEVER) return;
    this.eventTick = k;
    this.eventKind = kind;
    this.timer = this.clock.setTimer(tickTime(k, PIT_CLOCK_HZ), this.onTimer);
  }

  /** Modes 2/3: the first tick >= b at which OUT rises (mode 2: the reload after CE = 1). */
  private nextPeriodicRise(c: Channel, b: number): number {
    const first = c.mode === 2 ? c.start + c.ce : c.start + c.remain + (c.phaseOut ? c.reload >> 1 : 0);
    if (b <= first) return first;
    return first + Math.ceil((b - first) / c.reload) * c.reload;
  }
}

// Port 0x61, the PC/AT's "system control port B" beside the 8254: timer 2 gate and
// speaker data out, refresh detect, timer 2 output and the NMI sources in.
// Source: IBM PC/AT Technical Reference, "System Board", I/O port 0x61 bit assignments;
// Intel 82371AB (PIIX4) datasheet, NMI Status and Control Register (NMISC, I/O 0x61).
//
// Emulated:
// - Bit 0 (TIM2 gate) drives the 8254 counter 2 GATE; bit 5 reads counter 2's OUT.
// - Bits 1-3 (speaker data, parity check enable, IOCHK enable) are stored and read back.
// - Bit 4 (refresh detect) toggles every 18 PIT clocks (15.09 µs, counter 1's refresh
//   period on the AT), derived from virtual time, as BIOS and Linux delay loops expect.
//
// Not emulated:
// - Sound: the speaker (bit 1 AND counter 2's OUT) is not played.
// - Bits 6-7 (IOCHK and parity error) always read 0: no source of NMI exists.
import type { AccessSize, DeviceEvents, IoDevice, VirtualClock } from "../../../src/monitor/api.js";
import { NO_EVENTS } from "../../../src/monitor/api.js";
import { ticksAt } from "./clock-ticks.js";
import { PIT_CLOCK_HZ } from "./i8254-pit.js";

export const PORT61_TIM2_GATE = 0x01;
export const PORT61_SPKR_DATA = 0x02;
export const PORT61_PCK_DISABLE = 0x04;
export const PORT61_IOCHK_DISABLE = 0x08;
export const PORT61_REF_TOGGLE = 0x10;
export const PORT61_TIM2_OUT = 0x20;
export const PORT61_IOCHK = 0x40;
export const PORT61_SERR = 0x80;
const PORT61_WRITABLE = 0x0f;

/** PIT clocks per refresh request: counter 1 in mode 2 with count 18 (PC/AT BIOS). */
export const REFRESH_PIT_TICKS = 18;

/** What port 0x61 needs from the 8254. */
export interface Timer2Wiring {
  setGate(n: 2, level: boolean): void;
  output(n: 2): boolean;
}

export interface Port61State {
  readonly v: 1;
  value: number;
}

export class Port61StateError extends Error {
  override readonly name = "Port61StateError";
}

export class Port61 implements IoDevice {
  readonly name: string;
  private value = 0;

  constructor(
    private readonly pit: Timer2Wiring,
    private readonly clock: VirtualClock,
    private readonly events: DeviceEvents = NO_EVENTS,
    name = "port61",
  ) {
    this.name = name;
  }

  read(offset: number, size: AccessSize): number {
    if (offset !== 0 || size !== 1) {
      this.events.invalidRead(offset, size);
      return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
    }
    const refresh = Math.floor(ticksAt(this.clock.now(), PIT_CLOCK_HZ) / REFRESH_PIT_TICKS) & 1;
    return this.value | (refresh ? PORT61_REF_TOGGLE : 0) | (this.pit.output(2) ? PORT61_TIM2_OUT : 0);
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset !== 0 || size !== 1) {
      this.events.invalidWrite(offset, size, value);
      return;
    }
    // Bits 4-7 are status bits: writes to them are ignored.
    this.value = value & PORT61_WRITABLE;
    this.pit.setGate(2, (value & PORT61_TIM2_GATE) !== 0);
  }

  saveState(): Port61State {
    return { v: 1, value: this.value };
  }

  /** The 8254's own state carries counter 2's gate; this only restores the stored bits. */
  static fromState(state: Port61State, pit: Timer2Wiring, clock: VirtualClock, events?: DeviceEvents, name?: string): Port61 {
    const s = state as unknown as Record<string, unknown>;
    if (s === null || typeof s !== "object" || s.v !== 1) {
      throw new Port61StateError(`Port61State: unsupported version ${String(s?.v)} (expected 1)`);
    }
    if (typeof s.value !== "number" || !Number.isInteger(s.value) || s.value < 0 || s.value > PORT61_WRITABLE) {
      throw new Port61StateError(`Port61State.value: expected 0..15, got ${String(s.value)}`);
    }
    const p = new Port61(pit, clock, events, name);
    p.value = s.value;
    return p;
  }
}

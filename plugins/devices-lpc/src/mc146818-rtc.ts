// Motorola MC146818A real-time clock plus RAM, as the PC/AT's RTC and CMOS at ports
// 0x70 (index; bit 7 = NMI mask) and 0x71 (data), with the interrupt on IRQ 8.
// Source: Motorola MC146818A datasheet, "Address Map" (figure 3), "Time, Calendar and
// Alarm Locations" (table 2/3), registers A-D, "Update Cycle", "Interrupts", "Periodic
// Interrupt Rate" (table 5); CMOS layout: IBM PC/AT Technical Reference, "CMOS RAM Address
// Map", plus the SeaBIOS/QEMU convention for memory above 4 GiB (0x5B-0x5D).
//
// Emulated:
// - Time, alarm and date registers in BCD or binary (B.DM), 24 h or 12 h with the PM bit
//   (bit 7 of the hours); the seconds chain advances with the virtual clock from a start
//   time given by the host (`Date`) or by config, so tests are reproducible.
// - Register A: UIP (set 244 µs before each update), DV (only 010, the PC's 32.768 kHz
//   time base, runs the clock; leaving 11x starts the first update 500 ms later), RS.
// - Register B: SET (stops updates, clears UIE), PIE, AIE, UIE, SQWE, DM, 24/12, DSE.
// - Register C: IRQF, PF, AF, UF, cleared by reading; register D: VRT always set.
// - Periodic (at the RS rate), alarm (0xC0-0xFF = don't care) and update-ended interrupts
//   on IRQ 8: the line rises when IRQF goes high and falls when C is read.
// - 128 bytes of CMOS; bytes 0x0E-0x7F are RAM, prefilled by buildCmosNvram().
// - Everything is derived from virtual time: timers are set only while an enabled
//   interrupt can still raise IRQF (none while IRQF is already set).
//
// Not emulated:
// - The ~2 ms update cycle itself: the update is atomic at the end of the UIP window,
//   and UF/AF are set at that instant.
// - DSE (daylight saving) is stored only; the SQW pin does not exist on the PC.
// - The chip's increment of out-of-range time values is undefined: such values are
//   normalised at the next update (seconds 75 becomes the next minute + 15 s).
// - The century byte (0x32) is RAM, as on the PC: the year wrapping 99 -> 00 leaves it.
import type { AccessSize, DeviceEvents, IoDevice, IrqLine, VirtualClock } from "../../../src/monitor/api.js";
import { NO_EVENTS } from "../../../src/monitor/api.js";
import { tickTime, ticksAt } from "./clock-ticks.js";

/** Port offsets from 0x70. */
export const RTC_INDEX = 0;
export const RTC_DATA = 1;
export const RTC_PORT_COUNT = 2;
export const RTC_NMI_DISABLE = 0x80;

// Address map (datasheet figure 3).
export const RTC_SECONDS = 0x00;
export const RTC_SECONDS_ALARM = 0x01;
export const RTC_MINUTES = 0x02;
export const RTC_MINUTES_ALARM = 0x03;
export const RTC_HOURS = 0x04;
export const RTC_HOURS_ALARM = 0x05;
export const RTC_DAY_OF_WEEK = 0x06;
export const RTC_DATE_OF_MONTH = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09;
export const RTC_REG_A = 0x0a;
export const RTC_REG_B = 0x0b;
export const RTC_REG_C = 0x0c;
export const RTC_REG_D = 0x0d;
export const CMOS_SIZE = 128;

export const REG_A_UIP = 0x80;
export const REG_A_DV_MASK = 0x70;
/** DV2-DV0 = 010: 32.768 kHz time base, normal operation. */
export const REG_A_DV_32KHZ = 0x20;
export const REG_A_RS_MASK = 0x0f;

export const REG_B_SET = 0x80;
export const REG_B_PIE = 0x40;
export const REG_B_AIE = 0x20;
export const REG_B_UIE = 0x10;
export const REG_B_SQWE = 0x08;
export const REG_B_DM = 0x04;
export const REG_B_24_12 = 0x02;
export const REG_B_DSE = 0x01;

export const REG_C_IRQF = 0x80;
export const REG_C_PF = 0x40;
export const REG_C_AF = 0x20;
export const REG_C_UF = 0x10;

export const REG_D_VRT = 0x80;

/** Hours bit 7 in 12-hour mode. */
export const HOURS_PM = 0x80;
/** An alarm byte 0xC0-0xFF matches any value (datasheet "Alarm"). */
export const ALARM_DONT_CARE = 0xc0;

// CMOS RAM (IBM PC/AT Technical Reference, "CMOS RAM Address Map").
export const CMOS_DIAGNOSTIC_STATUS = 0x0e;
export const CMOS_SHUTDOWN_STATUS = 0x0f;
export const CMOS_FLOPPY_TYPES = 0x10;
export const CMOS_HARD_DISK_TYPES = 0x12;
export const CMOS_EQUIPMENT = 0x14;
export const CMOS_BASE_MEM_LO = 0x15;
export const CMOS_BASE_MEM_HI = 0x16;
export const CMOS_EXT_MEM_LO = 0x17;
export const CMOS_EXT_MEM_HI = 0x18;
export const CMOS_HD0_EXT_TYPE = 0x19;
export const CMOS_HD1_EXT_TYPE = 0x1a;
export const CMOS_CHECKSUM_HI = 0x2e;
export const CMOS_CHECKSUM_LO = 0x2f;
export const CMOS_EXT_MEM2_LO = 0x30;
export const CMOS_EXT_MEM2_HI = 0x31;
export const CMOS_CENTURY = 0x32;
export const CMOS_MEM_ABOVE_16M_LO = 0x34;
export const CMOS_MEM_ABOVE_16M_HI = 0x35;
/** SeaBIOS/QEMU: RAM above 4 GiB in 64 KiB units, 3 bytes. */
export const CMOS_MEM_ABOVE_4G = 0x5b;
export const CMOS_CHECKSUM_FIRST = 0x10;
export const CMOS_CHECKSUM_LAST = 0x2d;

/** Floppy type 4: 1.44 MB 3.5" (AT BIOS drive type table). */
export const FLOPPY_TYPE_1440K = 4;
/** Hard disk type 15 in the nibble means "see the extended type byte"; 47 is the user-defined type. */
export const HD_TYPE_EXTENDED = 0x0f;
export const HD_TYPE_USER = 47;

const RTC_CLOCK_HZ = 32_768;
const NS_PER_S = 1_000_000_000;
/** tBUC: UIP is set this long before the update (datasheet "Update Cycle", 32.768 kHz). */
export const RTC_UIP_LEAD_NS = 244_000;
/** The first update after the divider leaves reset comes half a second later. */
const DIVIDER_START_NS = 500_000_000;
const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/** 32.768 kHz cycles per periodic interrupt for RS (datasheet table 5); 0 = none. */
export function rtcPeriodicCycles(rs: number): number {
  if (rs === 0) return 0;
  if (rs <= 2) return 1 << (rs + 6); // 0001/0010 repeat 1000/1001 (3.90625 / 7.8125 ms)
  return 1 << (rs - 1); // 0011 = 122.070 µs ... 1111 = 500 ms
}

export interface CmosLayout {
  /** Bytes of guest RAM from address 0. */
  memoryBytes: number;
  /** 1.44 MB floppy drives present (0-2). */
  floppies: number;
  /** Hard disks present (0-2). */
  hardDisks: number;
}

/** The NVRAM contents (bytes 0x0E-0x7F of a 128-byte image) a PC BIOS leaves for the OS. */
export function buildCmosNvram(layout: CmosLayout): Uint8Array {
  const c = new Uint8Array(CMOS_SIZE);
  const floppies = Math.max(0, Math.min(2, layout.floppies));
  const disks = Math.max(0, Math.min(2, layout.hardDisks));
  c[CMOS_FLOPPY_TYPES] = (floppies >= 1 ? FLOPPY_TYPE_1440K << 4 : 0) | (floppies >= 2 ? FLOPPY_TYPE_1440K : 0);
  c[CMOS_HARD_DISK_TYPES] = (disks >= 1 ? HD_TYPE_EXTENDED << 4 : 0) | (disks >= 2 ? HD_TYPE_EXTENDED : 0);
  if (disks >= 1) c[CMOS_HD0_EXT_TYPE] = HD_TYPE_USER;
  if (disks >= 2) c[CMOS_HD1_EXT_TYPE] = HD_TYPE_USER;
  // Equipment: bit 0 floppy present, bit 1 math coprocessor, bits 5-4 00 = EGA/VGA,
  // bits 7-6 floppy drives minus one.
  c[CMOS_EQUIPMENT] = 0x02 | (floppies > 0 ? 0x01 | ((floppies - 1) << 6) : 0);
  const mem = Math.max(0, layout.memoryBytes);
  const put16 = (lo: number, v: number) => {
    c[lo] = v & 0xff;
    c[lo + 1] = (v >> 8) & 0xff;
  };
  put16(CMOS_BASE_MEM_LO, Math.min(640, Math.floor(mem / KIB)));
  const ext = Math.min(0xffff, Math.max(0, Math.floor((mem - MIB) / KIB)));
  put16(CMOS_EXT_MEM_LO, ext);
  put16(CMOS_EXT_MEM2_LO, ext);
  put16(CMOS_MEM_ABOVE_16M_LO, Math.min(0xffff, Math.max(0, Math.floor((Math.min(mem, 4 * GIB) - 16 * MIB) / 65536))));
  const above4g = Math.min(0xffffff, Math.max(0, Math.floor((mem - 4 * GIB) / 65536)));
  c[CMOS_MEM_ABOVE_4G] = above4g & 0xff;
  c[CMOS_MEM_ABOVE_4G + 1] = (above4g >> 8) & 0xff;
  c[CMOS_MEM_ABOVE_4G + 2] = (above4g >> 16) & 0xff;
  setCmosChecksum(c);
  return c;
}

/** The AT checksum: the 16-bit sum of bytes 0x10-0x2D, big-endian at 0x2E/0x2F. */
export function setCmosChecksum(c: Uint8Array): void {
  let sum = 0;
  for (let i = CMOS_CHECKSUM_FIRST; i <= CMOS_CHECKSUM_LAST; i++) sum += c[i]!;
  c[CMOS_CHECKSUM_HI] = (sum >> 8) & 0xff;
  c[CMOS_CHECKSUM_LO] = sum & 0xff;
}

// Proleptic Gregorian calendar <-> days since 1970-01-01 (H. Hinnant, "chrono-compatible
// low-level date algorithms"); integers only, no Date allocation on the access path.
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

export interface Mc146818State {
  readonly v: 1;
  /** All 128 bytes: time registers, A (without UIP), B, C (flags), D, NVRAM. */
  cmos: number[];
  index: number;
  nmiDisabled: boolean;
  /** Virtual time (ns) of the last update boundary passed; the next is 1 s later. */
  lastUpdateNs: number;
  /** Virtual time (ns) the divider chain started: periodic boundaries count from it. */
  dividerEpochNs: number;
  /** 32.768 kHz ticks since dividerEpochNs at the last periodic-flag evaluation. */
  pfTick: number;
}

export class Mc146818StateError extends Error {
  override readonly name = "Mc146818StateError";
}

export interface Mc146818Options {
  /** Calendar time (Unix ms, UTC) at the clock's current virtual time. */
  startTimeMs: number;
  /** Initial CMOS image; bytes 0x0E-0x7F are used (buildCmosNvram). */
  nvram?: Uint8Array;
}

export interface Mc146818Deps {
  clock: VirtualClock;
  irq8: IrqLine;
  events?: DeviceEvents;
}

export class Mc146818Rtc implements IoDevice {
  readonly name: string;
  private readonly clock: VirtualClock;
  private readonly irq: IrqLine;
  private readonly events: DeviceEvents;
  private readonly cmos = new Uint8Array(CMOS_SIZE);
  private index = 0;
  private nmiDisabled = false;
  private lastUpdateNs = 0;
  private dividerEpochNs = 0;
  private pfTick = 0;
  private periodicTimer = -1;
  private updateTimer = -1;
  private readonly onPeriodic = (now: number): void => {
    this.periodicTimer = -1;
    this.timerFired(now);
  };
  private readonly onUpdate = (now: number): void => {
    this.updateTimer = -1;
    this.timerFired(now);
  };
  // Scratch for the calendar conversion (no allocation per update).
  private cy = 0;
  private cm = 0;
  private cd = 0;

  constructor(clock: VirtualClock, irq8: IrqLine, options: Mc146818Options, events: DeviceEvents = NO_EVENTS, name = "mc146818") {
    this.name = name;
    this.clock = clock;
    this.irq = irq8;
    this.events = events;
    if (options.nvram) this.cmos.set(options.nvram.subarray(CMOS_DIAGNOSTIC_STATUS, CMOS_SIZE), CMOS_DIAGNOSTIC_STATUS);
    // Power-on state a PC BIOS leaves: 32.768 kHz divider, 1024 Hz rate, 24 h, BCD.
    this.cmos[RTC_REG_A] = REG_A_DV_32KHZ | 0x06;
    this.cmos[RTC_REG_B] = REG_B_24_12;
    this.cmos[RTC_REG_C] = 0;
    this.cmos[RTC_REG_D] = REG_D_VRT;
    const now = clock.now();
    const ms = Math.floor(options.startTimeMs);
    const secs = Math.floor(ms / 1000);
    // Align the update phase with the start time's sub-second part.
    this.lastUpdateNs = now - (ms - secs * 1000) * 1_000_000;
    this.dividerEpochNs = now;
    this.pfTick = 0;
    this.storeTime(secs);
    this.cmos[RTC_DAY_OF_WEEK] = this.enc((((Math.floor(secs / 86400) + 4) % 7) + 7) % 7 + 1);
    this.cy = Math.floor(this.yearOf(secs) / 100);
    this.cmos[CMOS_CENTURY] = ((Math.floor(this.cy / 10) % 10) << 4) | (this.cy % 10); // BCD, as BIOSes keep it
  }

  // ---- IoDevice

  read(offset: number, size: AccessSize): number {
    if (size !== 1 || (offset !== RTC_INDEX && offset !== RTC_DATA)) {
      this.events.invalidRead(offset, size);
      return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
    }
    // Port 0x70 is write-only on the PC: reads float.
    if (offset === RTC_INDEX) return 0xff;
    return this.readRegister(this.index);
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (size !== 1 || (offset !== RTC_INDEX && offset !== RTC_DATA)) {
      this.events.invalidWrite(offset, size, value);
      return;
    }
    if (offset === RTC_INDEX) {
      this.index = value & 0x7f;
      this.nmiDisabled = (value & RTC_NMI_DISABLE) !== 0;
      return;
    }
    this.writeRegister(this.index, value & 0xff);
  }

  /** Port 0x70 bit 7 as last written (the NMI gate; no NMI source exists yet). */
  get nmiMasked(): boolean {
    return this.nmiDisabled;
  }

  // ---- Registers

  readRegister(reg: number): number {
    const now = this.clock.now();
    if (reg <= RTC_REG_D) this.catchUp(now);
    switch (reg) {
      case RTC_REG_A:
        return this.cmos[RTC_REG_A]! | (this.updateInProgress(now) ? REG_A_UIP : 0);
      case RTC_REG_C: {
        const v = this.cmos[RTC_REG_C]!;
        this.cmos[RTC_REG_C] = 0;
        if (v & REG_C_IRQF) this.irq.lower();
        this.rearm();
        return v;
      }
      case RTC_REG_D:
        return REG_D_VRT;
      default:
        return this.cmos[reg & 0x7f]!;
    }
  }

  writeRegister(reg: number, v: number): void {
    const now = this.clock.now();
    if (reg <= RTC_REG_D) this.catchUp(now);
    switch (reg) {
      case RTC_REG_A: {
        const wasRunning = this.dividerRunning();
        this.cmos[RTC_REG_A] = v & ~REG_A_UIP;
        if (!wasRunning && this.dividerRunning()) {
          // Out of reset: the divider chain starts now, the first update comes 500 ms later.
          this.dividerEpochNs = now;
          this.pfTick = 0;
          this.lastUpdateNs = now + DIVIDER_START_NS - NS_PER_S;
        }
        break;
      }
      case RTC_REG_B:
        // SET going high clears UIE (datasheet register B, UIE).
        this.cmos[RTC_REG_B] = v & REG_B_SET ? v & ~REG_B_UIE : v;
        this.updateIrq();
        break;
      case RTC_REG_C:
      case RTC_REG_D:
        break; // read-only
      default:
        this.cmos[reg & 0x7f] = v;
        return;
    }
    this.rearm();
  }

  // ---- Snapshot

  saveState(): Mc146818State {
    this.catchUp(this.clock.now());
    return {
      v: 1,
      cmos: Array.from(this.cmos),
      index: this.index,
      nmiDisabled: this.nmiDisabled,
      lastUpdateNs: this.lastUpdateNs,
      dividerEpochNs: this.dividerEpochNs,
      pfTick: this.pfTick,
    };
  }

  /** Rebuild from a snapshot on the same virtual clock; re-raises IRQ 8 if IRQF is set and re-arms timers. */
  static fromState(state: Mc146818State, deps: Mc146818Deps, name?: string): Mc146818Rtc {
    const s = state as unknown as Record<string, unknown>;
    if (s === null || typeof s !== "object" || s.v !== 1) {
      throw new Mc146818StateError(`Mc146818State: unsupported version ${String(s?.v)} (expected 1)`);
    }
    const cmos = s.cmos;
    if (!Array.isArray(cmos) || cmos.length !== CMOS_SIZE || !cmos.every((b) => Number.isInteger(b) && b >= 0 && b <= 0xff)) {
      throw new Mc146818StateError(`Mc146818State.cmos: expected ${CMOS_SIZE} bytes`);
    }
    if (!Number.isInteger(s.index) || (s.index as number) < 0 || (s.index as number) > 0x7f) {
      throw new Mc146818StateError(`Mc146818State.index: expected 0..127, got ${String(s.index)}`);
    }
    if (typeof s.nmiDisabled !== "boolean") throw new Mc146818StateError("Mc146818State.nmiDisabled: expected a boolean");
    for (const k of ["lastUpdateNs", "dividerEpochNs", "pfTick"] as const) {
      if (typeof s[k] !== "number" || !Number.isFinite(s[k])) {
        throw new Mc146818StateError(`Mc146818State.${k}: expected a finite number, got ${String(s[k])}`);
      }
    }
    const rtc = new Mc146818Rtc(deps.clock, deps.irq8, { startTimeMs: 0 }, deps.events ?? NO_EVENTS, name);
    rtc.cmos.set(cmos as number[]);
    rtc.index = state.index;
    rtc.nmiDisabled = state.nmiDisabled;
    rtc.lastUpdateNs = state.lastUpdateNs;
    rtc.dividerEpochNs = state.dividerEpochNs;
    rtc.pfTick = state.pfTick;
    if (rtc.cmos[RTC_REG_C]! & REG_C_IRQF) rtc.irq.raise();
    rtc.catchUp(deps.clock.now());
    rtc.rearm();
    return rtc;
  }

  // ---- Internals: time keeping

  private dividerRunning(): boolean {
    return (this.cmos[RTC_REG_A]! & REG_A_DV_MASK) === REG_A_DV_32KHZ;
  }

  private updateInProgress(now: number): boolean {
    if (!this.dividerRunning() || this.cmos[RTC_REG_B]! & REG_B_SET) return false;
    return this.lastUpdateNs + NS_PER_S - now <= RTC_UIP_LEAD_NS;
  }

  /** Apply every periodic boundary and update cycle up to `now`. */
  private catchUp(now: number): void {
    if (!this.dividerRunning()) return;
    const tick = ticksAt(Math.max(0, now - this.dividerEpochNs), RTC_CLOCK_HZ);
    const cycles = rtcPeriodicCycles(this.cmos[RTC_REG_A]! & REG_A_RS_MASK);
    if (cycles !== 0 && Math.floor(tick / cycles) > Math.floor(this.pfTick / cycles)) this.cmos[RTC_REG_C]! |= REG_C_PF;
    if (tick > this.pfTick) this.pfTick = tick;
    const n = Math.floor((now - this.lastUpdateNs) / NS_PER_S);
    if (n > 0) {
      this.lastUpdateNs += n * NS_PER_S;
      if (!(this.cmos[RTC_REG_B]! & REG_B_SET)) this.advance(n);
    }
    this.updateIrq();
  }

  /** n update cycles: the time advances n seconds; UF is set, and AF if any second matched the alarm. */
  private advance(n: number): void {
    const c = this.cmos;
    const sec = this.bin(c[RTC_SECONDS]!);
    const min = this.bin(c[RTC_MINUTES]!);
    const hour = this.hour24(c[RTC_HOURS]!);
    let month = this.bin(c[RTC_MONTH]!);
    const cent = ((c[CMOS_CENTURY]! >> 4) & 15) * 10 + (c[CMOS_CENTURY]! & 15);
    let year = (cent <= 99 ? cent : 20) * 100 + this.bin(c[RTC_YEAR]!);
    // Normalise an out-of-range month before the day arithmetic.
    year += Math.floor((month - 1) / 12);
    month = ((((month - 1) % 12) + 12) % 12) + 1;
    const day = daysFromCivil(year, month, 1) + this.bin(c[RTC_DATE_OF_MONTH]!) - 1;
    const before = day * 86400 + hour * 3600 + min * 60 + sec;
    const after = before + n;

    // Alarm: any of the n seconds whose time of day matches (at most one day to look at).
    const as = c[RTC_SECONDS_ALARM]!;
    const am = c[RTC_MINUTES_ALARM]!;
    const ah = c[RTC_HOURS_ALARM]!;
    const dcS = (as & ALARM_DONT_CARE) === ALARM_DONT_CARE;
    const dcM = (am & ALARM_DONT_CARE) === ALARM_DONT_CARE;
    const dcH = (ah & ALARM_DONT_CARE) === ALARM_DONT_CARE;
    const wantS = this.bin(as);
    const wantM = this.bin(am);
    const wantH = this.hour24(ah);
    const steps = Math.min(n, 86400);
    for (let k = n - steps + 1; k <= n; k++) {
      const sod = (((before + k) % 86400) + 86400) % 86400;
      if ((dcH || Math.floor(sod / 3600) === wantH) && (dcM || Math.floor(sod / 60) % 60 === wantM) && (dcS || sod % 60 === wantS)) {
        c[RTC_REG_C]! |= REG_C_AF;
        break;
      }
    }

    this.storeTime(after);
    const days = Math.floor(after / 86400) - Math.floor(before / 86400);
    const dow = this.bin(c[RTC_DAY_OF_WEEK]!);
    c[RTC_DAY_OF_WEEK] = this.enc((((dow - 1 + days) % 7) + 7) % 7 + 1);
    c[RTC_REG_C]! |= REG_C_UF;
  }

  /** Write seconds since 1970 into the time and date registers (not the day of week). */
  private storeTime(t: number): void {
    const c = this.cmos;
    const days = Math.floor(t / 86400);
    const sod = t - days * 86400;
    this.civil(days);
    c[RTC_SECONDS] = this.enc(sod % 60);
    c[RTC_MINUTES] = this.enc(Math.floor(sod / 60) % 60);
    c[RTC_HOURS] = this.encHour(Math.floor(sod / 3600));
    c[RTC_DATE_OF_MONTH] = this.enc(this.cd);
    c[RTC_MONTH] = this.enc(this.cm);
    c[RTC_YEAR] = this.enc(((this.cy % 100) + 100) % 100);
  }

  private yearOf(t: number): number {
    this.civil(Math.floor(t / 86400));
    return this.cy;
  }

  private civil(days: number): void {
    const z = days + 719468;
    const era = Math.floor(z / 146097);
    const doe = z - era * 146097;
    const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
    const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
    const mp = Math.floor((5 * doy + 2) / 153);
    this.cd = doy - Math.floor((153 * mp + 2) / 5) + 1;
    this.cm = mp < 10 ? mp + 3 : mp - 9;
    this.cy = yoe + era * 400 + (this.cm <= 2 ? 1 : 0);
  }

  private binaryMode(): boolean {
    return (this.cmos[RTC_REG_B]! & REG_B_DM) !== 0;
  }

  private bin(v: number): number {
    return this.binaryMode() ? v : (v >> 4) * 10 + (v & 15);
  }

  private enc(v: number): number {
    return this.binaryMode() ? v : ((Math.floor(v / 10) % 10) << 4) | (v % 10);
  }

  private hour24(v: number): number {
    if (this.cmos[RTC_REG_B]! & REG_B_24_12) return this.bin(v & 0x7f);
    const h = this.bin(v & 0x7f) % 12;
    return v & HOURS_PM ? h + 12 : h;
  }

  private encHour(h: number): number {
    if (this.cmos[RTC_REG_B]! & REG_B_24_12) return this.enc(h);
    return this.enc(h % 12 || 12) | (h >= 12 ? HOURS_PM : 0);
  }

  // ---- Internals: interrupts

  private updateIrq(): void {
    const c = this.cmos[RTC_REG_C]!;
    const b = this.cmos[RTC_REG_B]!;
    const pending = (c & REG_C_PF && b & REG_B_PIE) || (c & REG_C_AF && b & REG_B_AIE) || (c & REG_C_UF && b & REG_B_UIE);
    if (pending && !(c & REG_C_IRQF)) {
      this.cmos[RTC_REG_C] = c | REG_C_IRQF;
      this.irq.raise();
    }
  }

  /** Set timers only for interrupts that can still raise IRQF; flags are otherwise computed on access. */
  private rearm(): void {
    if (this.periodicTimer >= 0) this.clock.cancel(this.periodicTimer);
    if (this.updateTimer >= 0) this.clock.cancel(this.updateTimer);
    this.periodicTimer = -1;
    this.updateTimer = -1;
    const b = this.cmos[RTC_REG_B]!;
    if (!this.dividerRunning() || this.cmos[RTC_REG_C]! & REG_C_IRQF) return;
    const cycles = rtcPeriodicCycles(this.cmos[RTC_REG_A]! & REG_A_RS_MASK);
    if (b & REG_B_PIE && cycles !== 0) {
      const next = (Math.floor(this.pfTick / cycles) + 1) * cycles;
      this.periodicTimer = this.clock.setTimer(this.dividerEpochNs + tickTime(next, RTC_CLOCK_HZ), this.onPeriodic);
    }
    if (b & (REG_B_UIE | REG_B_AIE) && !(b & REG_B_SET)) {
      this.updateTimer = this.clock.setTimer(this.lastUpdateNs + NS_PER_S, this.onUpdate);
    }
  }

  private timerFired(now: number): void {
    this.catchUp(now);
    this.rearm();
  }
}

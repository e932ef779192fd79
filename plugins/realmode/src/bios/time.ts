// Time services: INT 08h (IRQ 0 tick), INT 1Ah (tick count, RTC time/date/alarm, PCI BIOS
// presence) and INT 70h (IRQ 8 acknowledge). Sources: IBM PC/AT Technical Reference
// (TIMER_INT, TIME_OF_DAY, RTC_INT), RBIL INT 1Ah and CMOS.LST, MC146818A datasheet
// (registers A-D), PCI BIOS Specification 2.1 (B101h).
//
// The RTC is read through ports 0x70/0x71 on the PIO bus, so the time is whatever the
// MC146818 model holds (host time, or a fixed time from its config). Without an RTC on the
// bus (both register A and B read FFh) 02h-07h return CF=1, as a BIOS whose clock is not
// operating does. Values are returned in BCD and 24-hour form whatever the RTC's DM and
// 24/12 bits say. INT 70h acknowledges the RTC (reads register C); the INT 4Ah user alarm
// and the INT 15h/83h event wait are not emulated.
import type { GuestMemory } from "../../../../src/monitor/api.js";
import type { X86State } from "../../../../src/x86/types.js";
import type { BiosReturn } from "./frame.js";
import { BDA_MIDNIGHT, BDA_TICKS, CMOS_DATA, CMOS_INDEX, TICKS_PER_DAY } from "./layout.js";
import type { PortAccess } from "./ports.js";
import { hi8, lo16, lo8, setAh, setAl, setCh, setCl, setCx, setDh, setDl, setDx } from "./regs.js";

const BDA_MOTOR_COUNT = 0x440;
const BDA_MOTOR_STATUS = 0x43f;

export const RTC_SECONDS = 0x00;
export const RTC_SECONDS_ALARM = 0x01;
export const RTC_MINUTES = 0x02;
export const RTC_MINUTES_ALARM = 0x03;
export const RTC_HOURS = 0x04;
export const RTC_HOURS_ALARM = 0x05;
export const RTC_DAY_OF_MONTH = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09;
export const RTC_REG_A = 0x0a;
export const RTC_REG_B = 0x0b;
export const RTC_REG_C = 0x0c;
/** The century byte IBM put at CMOS 32h (RBIL CMOS.LST). */
export const CMOS_CENTURY = 0x32;

const REG_A_UIP = 0x80;
const REG_B_SET = 0x80;
const REG_B_AIE = 0x20;
const REG_B_DM_BINARY = 0x04;
const REG_B_24H = 0x02;
const REG_B_DSE = 0x01;

/** Reads of register A waiting for UIP to clear (an update lasts under 2 ms on the chip). */
const UIP_POLLS = 1000;

const toBcd = (v: number) => (((v / 10) | 0) << 4) | (v % 10);
const fromBcd = (v: number) => (v >> 4) * 10 + (v & 0x0f);

export class TimeService {
  constructor(private readonly mem: GuestMemory, private readonly ports: PortAccess) {}

  /** INT 08h: tick, midnight rollover at 0x1800B0 ticks, diskette motor count-down. */
  int08(): void {
    let t = this.mem.read32(BDA_TICKS) + 1;
    if (t >= TICKS_PER_DAY) { t = 0; this.mem.write8(BDA_MIDNIGHT, 1); }
    this.mem.write32(BDA_TICKS, t);
    const motor = this.mem.read8(BDA_MOTOR_COUNT);
    if (motor > 0) {
      this.mem.write8(BDA_MOTOR_COUNT, motor - 1);
      if (motor === 1) this.mem.write8(BDA_MOTOR_STATUS, this.mem.read8(BDA_MOTOR_STATUS) & 0xf0);
    }
  }

  /** INT 70h (IRQ 8): reading register C acknowledges the RTC's interrupt. */
  int70(): void {
    this.cmosRead(RTC_REG_C);
  }

  int1a(s: X86State, ret: BiosReturn): void {
    const fn = hi8(s.eax);
    switch (fn) {
      case 0x00: {
        const t = this.mem.read32(BDA_TICKS);
        setCx(s, t >>> 16); setDx(s, t & 0xffff);
        setAl(s, this.mem.read8(BDA_MIDNIGHT));
        this.mem.write8(BDA_MIDNIGHT, 0);
        ret.setCarry(false);
        return;
      }
      case 0x01:
        this.mem.write32(BDA_TICKS, ((lo16(s.ecx) << 16) | lo16(s.edx)) >>> 0);
        this.mem.write8(BDA_MIDNIGHT, 0);
        ret.setCarry(false);
        return;
      case 0xb1: // PCI BIOS: not present (no PCI plugin); what SeaBIOS answers without one
        setAh(s, 0x86);
        ret.setCarry(true);
        return;
    }
    if (fn < 0x02 || fn > 0x07) { ret.setCarry(true); return; }
    if (!this.rtcPresent() || !this.waitNotUpdating()) { ret.setCarry(true); return; }
    const b = this.cmosRead(RTC_REG_B);
    switch (fn) {
      case 0x02:
        setCh(s, this.readHours(b));
        setCl(s, this.readBcd(RTC_MINUTES, b));
        setDh(s, this.readBcd(RTC_SECONDS, b));
        setDl(s, b & REG_B_DSE);
        break;
      case 0x03:
        this.setClock(b, lo8(s.edx) & 1, [[RTC_HOURS, hi8(s.ecx)], [RTC_MINUTES, lo8(s.ecx)], [RTC_SECONDS, hi8(s.edx)]]);
        break;
      case 0x04:
        setCh(s, this.readBcdRaw(CMOS_CENTURY));
        setCl(s, this.readBcd(RTC_YEAR, b));
        setDh(s, this.readBcd(RTC_MONTH, b));
        setDl(s, this.readBcd(RTC_DAY_OF_MONTH, b));
        break;
      case 0x05:
        this.setClock(b, b & REG_B_DSE, [[RTC_YEAR, lo8(s.ecx)], [RTC_MONTH, hi8(s.edx)], [RTC_DAY_OF_MONTH, lo8(s.edx)]]);
        this.cmosWrite(CMOS_CENTURY, hi8(s.ecx));
        break;
      case 0x06: // set the alarm (BCD); CF=1 if one is already set
        if (b & REG_B_AIE) { ret.setCarry(true); return; }
        this.setClock(b, b & REG_B_DSE, [[RTC_HOURS_ALARM, hi8(s.ecx)], [RTC_MINUTES_ALARM, lo8(s.ecx)], [RTC_SECONDS_ALARM, hi8(s.edx)]]);
        this.cmosWrite(RTC_REG_B, (this.cmosRead(RTC_REG_B) | REG_B_AIE) & ~REG_B_SET);
        break;
      case 0x07: // reset the alarm
        this.cmosWrite(RTC_REG_B, b & ~REG_B_AIE & ~REG_B_SET);
        break;
    }
    ret.setCarry(false);
  }

  cmosRead(reg: number): number {
    this.ports.out(CMOS_INDEX, 1, reg & 0x7f);
    return this.ports.in(CMOS_DATA, 1) & 0xff;
  }

  cmosWrite(reg: number, v: number): void {
    this.ports.out(CMOS_INDEX, 1, reg & 0x7f);
    this.ports.out(CMOS_DATA, 1, v & 0xff);
  }

  /** An empty bus reads FFh from both status registers; no MC146818 reads that (register B bit 7 SET is write-only in use). */
  private rtcPresent(): boolean {
    return !(this.cmosRead(RTC_REG_A) === 0xff && this.cmosRead(RTC_REG_B) === 0xff);
  }

  private waitNotUpdating(): boolean {
    for (let i = 0; i < UIP_POLLS; i++) if ((this.cmosRead(RTC_REG_A) & REG_A_UIP) === 0) return true;
    return false;
  }

  private readBcdRaw(reg: number): number { return this.cmosRead(reg); }

  /** A time/date register as BCD, whatever the data mode (register B DM). */
  private readBcd(reg: number, b: number): number {
    const v = this.cmosRead(reg);
    return (b & REG_B_DM_BINARY) !== 0 ? toBcd(v % 100) : v;
  }

  /** Hours as 24-hour BCD (12-hour mode: bit 7 is PM, 12 AM is 0). */
  private readHours(b: number): number {
    const raw = this.cmosRead(RTC_HOURS);
    if ((b & REG_B_24H) !== 0) return (b & REG_B_DM_BINARY) !== 0 ? toBcd(raw % 24) : raw;
    const pm = (raw & 0x80) !== 0;
    const h12 = (b & REG_B_DM_BINARY) !== 0 ? raw & 0x7f : fromBcd(raw & 0x7f);
    return toBcd(((h12 % 12) + (pm ? 12 : 0)) % 24);
  }

  /**
   * Write BCD values with SET held (no update in between), leaving the RTC in BCD, 24-hour
   * mode with the given DSE bit and its interrupt enables kept (the PC/AT BIOS's RTC_TS).
   */
  private setClock(b: number, dse: number, regs: ReadonlyArray<readonly [number, number]>): void {
    const keep = b & 0x70; // PIE, AIE, UIE
    this.cmosWrite(RTC_REG_B, REG_B_SET | keep | REG_B_24H | dse);
    for (const [reg, v] of regs) this.cmosWrite(reg, v);
    this.cmosWrite(RTC_REG_B, keep | REG_B_24H | dse);
  }
}

import { describe, expect, it } from "vitest";
import {
  buildCmosNvram, CMOS_BASE_MEM_HI, CMOS_BASE_MEM_LO, CMOS_CENTURY, CMOS_CHECKSUM_HI, CMOS_CHECKSUM_LO, CMOS_EQUIPMENT,
  CMOS_EXT_MEM2_HI, CMOS_EXT_MEM2_LO, CMOS_EXT_MEM_HI, CMOS_EXT_MEM_LO, CMOS_FLOPPY_TYPES, CMOS_HARD_DISK_TYPES,
  CMOS_HD0_EXT_TYPE, CMOS_MEM_ABOVE_16M_HI, CMOS_MEM_ABOVE_16M_LO, Mc146818Rtc, Mc146818StateError, REG_A_UIP,
  REG_B_24_12, REG_B_AIE, REG_B_DM, REG_B_PIE, REG_B_SET, REG_B_UIE, REG_C_AF, REG_C_IRQF, REG_C_PF, REG_C_UF,
  REG_D_VRT, RTC_DATA, RTC_DATE_OF_MONTH, RTC_DAY_OF_WEEK, RTC_HOURS, RTC_HOURS_ALARM, RTC_INDEX, RTC_MINUTES,
  RTC_MINUTES_ALARM, RTC_MONTH, RTC_REG_A, RTC_REG_B, RTC_REG_C, RTC_REG_D, RTC_SECONDS, RTC_SECONDS_ALARM, RTC_YEAR,
  rtcPeriodicCycles,
} from "./mc146818-rtc.js";
import { ManualClock, RecordingIrq } from "./testing-clock.js";

const S = 1e9;

function setup(iso = "2026-01-01T00:00:00Z", nvram?: Uint8Array) {
  const clock = new ManualClock();
  const irq = new RecordingIrq(clock);
  const rtc = new Mc146818Rtc(clock, irq, { startTimeMs: Date.parse(iso), nvram });
  const rd = (reg: number) => {
    rtc.write(RTC_INDEX, 1, reg);
    return rtc.read(RTC_DATA, 1);
  };
  const wr = (reg: number, v: number) => {
    rtc.write(RTC_INDEX, 1, reg);
    rtc.write(RTC_DATA, 1, v);
  };
  const time = () => [RTC_YEAR, RTC_MONTH, RTC_DATE_OF_MONTH, RTC_HOURS, RTC_MINUTES, RTC_SECONDS].map(rd);
  return { clock, irq, rtc, rd, wr, time };
}

describe("mc146818 time keeping", () => {
  it("starts at the configured time in BCD, 24 h, with the century byte and day of week", () => {
    const { rd, time } = setup();
    expect(time()).toEqual([0x26, 0x01, 0x01, 0x00, 0x00, 0x00]);
    expect(rd(CMOS_CENTURY)).toBe(0x20);
    expect(rd(RTC_DAY_OF_WEEK)).toBe(5); // Thursday; Sunday = 1
    expect(rd(RTC_REG_D)).toBe(REG_D_VRT);
  });

  it("advances with the virtual clock, not the host's", () => {
    const { clock, time } = setup();
    clock.advanceTo(61.5 * S);
    expect(time()).toEqual([0x26, 0x01, 0x01, 0x00, 0x01, 0x01]);
  });

  it("carries through a leap day, a year end and the day of week", () => {
    const a = setup("2024-02-28T23:59:59Z");
    a.clock.advanceTo(1 * S);
    expect(a.time()).toEqual([0x24, 0x02, 0x29, 0x00, 0x00, 0x00]);
    const b = setup("2025-12-31T23:59:59Z");
    const dow = b.rd(RTC_DAY_OF_WEEK);
    b.clock.advanceTo(2 * S);
    expect(b.time()).toEqual([0x26, 0x01, 0x01, 0x00, 0x00, 0x01]);
    expect(b.rd(RTC_DAY_OF_WEEK)).toBe((dow % 7) + 1);
  });

  it("counts in binary with DM set and in 12-hour mode with the PM bit", () => {
    const { clock, rd, wr } = setup();
    wr(RTC_REG_B, REG_B_SET | REG_B_DM); // 12 h, binary
    wr(RTC_HOURS, 0x80 | 11); // 11 PM
    wr(RTC_MINUTES, 59);
    wr(RTC_SECONDS, 59);
    wr(RTC_REG_B, REG_B_DM);
    clock.advanceTo(1 * S);
    expect(rd(RTC_HOURS)).toBe(12); // 12 AM: midnight, no PM bit
    expect(rd(RTC_MINUTES)).toBe(0);
    expect(rd(RTC_DATE_OF_MONTH)).toBe(2);
  });

  it("12-hour BCD noon reads 0x92 (12 with PM)", () => {
    const { clock, rd, wr } = setup("2026-01-01T11:59:59Z");
    wr(RTC_REG_B, REG_B_SET);
    wr(RTC_HOURS, 0x11); // 11 AM in 12 h BCD
    wr(RTC_REG_B, 0);
    clock.advanceTo(1 * S);
    expect(rd(RTC_HOURS)).toBe(0x92);
  });

  it("sets UIP only in the 244 µs before each update", () => {
    const { clock, rd } = setup();
    clock.advanceTo(S - 300_000);
    expect(rd(RTC_REG_A) & REG_A_UIP).toBe(0);
    clock.advanceTo(S - 200_000);
    expect(rd(RTC_REG_A) & REG_A_UIP).toBe(REG_A_UIP);
    expect(rd(RTC_SECONDS)).toBe(0);
    clock.advanceTo(S + 1000);
    expect(rd(RTC_REG_A) & REG_A_UIP).toBe(0);
    expect(rd(RTC_SECONDS)).toBe(1);
  });

  it("SET stops updates and clears UIE; clearing it resumes on the same second phase", () => {
    const { clock, rd, wr } = setup();
    wr(RTC_REG_B, REG_B_24_12 | REG_B_UIE | REG_B_SET);
    expect(rd(RTC_REG_B) & REG_B_UIE).toBe(0);
    clock.advanceTo(5.5 * S);
    expect(rd(RTC_SECONDS)).toBe(0);
    wr(RTC_REG_B, REG_B_24_12);
    clock.advanceTo(6 * S);
    expect(rd(RTC_SECONDS)).toBe(1);
  });

  it("leaving divider reset starts the first update 500 ms later", () => {
    const { clock, rd, wr } = setup();
    wr(RTC_REG_A, 0x70 | 0x06); // DV = 111: reset
    clock.advanceTo(10.2 * S);
    expect(rd(RTC_SECONDS)).toBe(0);
    wr(RTC_REG_A, 0x26);
    clock.advanceTo(10.69 * S);
    expect(rd(RTC_SECONDS)).toBe(0);
    clock.advanceTo(10.71 * S);
    expect(rd(RTC_SECONDS)).toBe(1);
  });
});

describe("mc146818 interrupts on IRQ 8", () => {
  it("periodic interrupt at the RS rate: raised when IRQF goes high, lowered when C is read", () => {
    const { clock, irq, rd, wr } = setup();
    expect(rtcPeriodicCycles(6)).toBe(32); // 1024 Hz
    wr(RTC_REG_B, REG_B_24_12 | REG_B_PIE);
    const period = 1e9 / 1024;
    clock.advanceTo(period - 1);
    expect(irq.level).toBe(false);
    clock.advanceTo(period + 1);
    expect(irq.rises).toEqual([Math.ceil(period)]);
    const c = rd(RTC_REG_C);
    expect(c).toBe(REG_C_IRQF | REG_C_PF);
    expect(irq.level).toBe(false);
    expect(rd(RTC_REG_C)).toBe(0);
    clock.advanceTo(2 * period + 1);
    expect(irq.rises).toEqual([Math.ceil(period), Math.ceil(2 * period)]);
  });

  it("sets no timers while IRQF waits for the guest to read C", () => {
    const { clock, rd, wr } = setup();
    wr(RTC_REG_A, 0x23); // 8192 Hz
    wr(RTC_REG_B, REG_B_24_12 | REG_B_PIE);
    clock.advanceTo(200_000);
    const set = clock.timersSet;
    clock.advanceTo(10 * S);
    expect(clock.timersSet).toBe(set);
    expect(rd(RTC_REG_C) & REG_C_PF).toBe(REG_C_PF);
  });

  it("PF, UF are set for polling even with their interrupts disabled, without IRQF", () => {
    const { clock, irq, rd } = setup();
    clock.advanceTo(1.5 * S);
    expect(rd(RTC_REG_C)).toBe(REG_C_PF | REG_C_UF);
    expect(irq.level).toBe(false);
  });

  it("update-ended interrupt every second", () => {
    const { clock, irq, rd, wr } = setup();
    wr(RTC_REG_B, REG_B_24_12 | REG_B_UIE);
    clock.advanceTo(1.5 * S);
    expect(irq.rises).toEqual([S]);
    expect(rd(RTC_REG_C)).toBe(REG_C_IRQF | REG_C_UF | REG_C_PF);
    clock.advanceTo(2.5 * S);
    expect(irq.rises).toEqual([S, 2 * S]);
  });

  it("alarm with don't-care hours and minutes fires at the matching second", () => {
    const { clock, irq, rd, wr } = setup();
    wr(RTC_HOURS_ALARM, 0xff);
    wr(RTC_MINUTES_ALARM, 0xc0);
    wr(RTC_SECONDS_ALARM, 0x05);
    wr(RTC_REG_B, REG_B_24_12 | REG_B_AIE);
    clock.advanceTo(4.5 * S);
    expect(irq.level).toBe(false);
    clock.advanceTo(5.5 * S);
    expect(irq.rises).toEqual([5 * S]);
    expect(rd(RTC_REG_C) & (REG_C_IRQF | REG_C_AF)).toBe(REG_C_IRQF | REG_C_AF);
    clock.advanceTo(64.5 * S);
    expect(irq.rises).toEqual([5 * S]);
    clock.advanceTo(65.5 * S);
    expect(irq.rises).toEqual([5 * S, 65 * S]);
  });

  it("an exact alarm time not reached does not set AF", () => {
    const { clock, rd, wr } = setup();
    wr(RTC_HOURS_ALARM, 0x01);
    wr(RTC_MINUTES_ALARM, 0x00);
    wr(RTC_SECONDS_ALARM, 0x00);
    clock.advanceTo(3599 * S);
    expect(rd(RTC_REG_C) & REG_C_AF).toBe(0);
    clock.advanceTo(3600.5 * S);
    expect(rd(RTC_REG_C) & REG_C_AF).toBe(REG_C_AF);
  });

  it("enabling PIE while PF is already set raises IRQ 8 at once", () => {
    const { clock, irq, wr } = setup();
    clock.advanceTo(0.01 * S);
    wr(RTC_REG_B, REG_B_24_12 | REG_B_PIE);
    expect(irq.level).toBe(true);
  });
});

describe("mc146818 ports and CMOS", () => {
  it("stores the NMI mask from port 0x70 bit 7; port 0x70 reads float", () => {
    const { rtc } = setup();
    rtc.write(RTC_INDEX, 1, 0x80 | RTC_SECONDS);
    expect(rtc.nmiMasked).toBe(true);
    expect(rtc.read(RTC_INDEX, 1)).toBe(0xff);
    expect(rtc.read(RTC_DATA, 1)).toBe(0x00);
  });

  it("NVRAM bytes read back what was written; C and D ignore writes", () => {
    const { rd, wr } = setup();
    wr(0x50, 0xa5);
    expect(rd(0x50)).toBe(0xa5);
    wr(RTC_REG_D, 0);
    expect(rd(RTC_REG_D)).toBe(REG_D_VRT);
  });

  it("builds the memory, equipment, drive bytes and checksum a BIOS reads", () => {
    const c = buildCmosNvram({ memoryBytes: 32 * 1024 * 1024, floppies: 1, hardDisks: 1 });
    expect(c[CMOS_BASE_MEM_LO]! | (c[CMOS_BASE_MEM_HI]! << 8)).toBe(640);
    expect(c[CMOS_EXT_MEM_LO]! | (c[CMOS_EXT_MEM_HI]! << 8)).toBe(31 * 1024);
    expect(c[CMOS_EXT_MEM2_LO]! | (c[CMOS_EXT_MEM2_HI]! << 8)).toBe(31 * 1024);
    expect(c[CMOS_MEM_ABOVE_16M_LO]! | (c[CMOS_MEM_ABOVE_16M_HI]! << 8)).toBe(256);
    expect(c[CMOS_FLOPPY_TYPES]).toBe(0x40);
    expect(c[CMOS_EQUIPMENT]).toBe(0x03);
    expect(c[CMOS_HARD_DISK_TYPES]).toBe(0xf0);
    expect(c[CMOS_HD0_EXT_TYPE]).toBe(47);
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += c[i]!;
    expect((c[CMOS_CHECKSUM_HI]! << 8) | c[CMOS_CHECKSUM_LO]!).toBe(sum);
  });

  it("caps extended memory at 0xFFFF KiB and reports two floppies in the equipment byte", () => {
    const c = buildCmosNvram({ memoryBytes: 256 * 1024 * 1024, floppies: 2, hardDisks: 0 });
    expect(c[CMOS_EXT_MEM_LO]! | (c[CMOS_EXT_MEM_HI]! << 8)).toBe(0xffff);
    expect(c[CMOS_MEM_ABOVE_16M_LO]! | (c[CMOS_MEM_ABOVE_16M_HI]! << 8)).toBe(240 * 16);
    expect(c[CMOS_EQUIPMENT]).toBe(0x43);
    expect(c[CMOS_FLOPPY_TYPES]).toBe(0x44);
    expect(c[CMOS_HARD_DISK_TYPES]).toBe(0);
  });

  it("the RTC serves the NVRAM image it was given", () => {
    const img = buildCmosNvram({ memoryBytes: 16 * 1024 * 1024, floppies: 0, hardDisks: 0 });
    const { rd } = setup(undefined, img);
    expect(rd(CMOS_EXT_MEM_LO) | (rd(CMOS_EXT_MEM_HI) << 8)).toBe(15 * 1024);
  });

  it("wide accesses are invalid: all-ones reads, ignored writes", () => {
    const { rtc } = setup();
    expect(rtc.read(RTC_DATA, 2)).toBe(0xffff);
    rtc.write(RTC_INDEX, 2, 0x0a);
    rtc.write(RTC_INDEX, 1, RTC_SECONDS);
    expect(rtc.read(RTC_DATA, 1)).toBe(0);
  });
});

describe("mc146818 snapshot", () => {
  it("fromState keeps the time and phase, re-raises a pending IRQ 8 and re-arms the periodic timer", () => {
    const { clock, rtc, wr } = setup();
    wr(RTC_REG_B, REG_B_24_12 | REG_B_PIE);
    clock.advanceTo(3.0005 * S);
    const json = JSON.parse(JSON.stringify(rtc.saveState()));
    const clock2 = new ManualClock();
    clock2.advanceTo(clock.now());
    const irq2 = new RecordingIrq(clock2);
    const rtc2 = Mc146818Rtc.fromState(json, { clock: clock2, irq8: irq2 });
    expect(irq2.level).toBe(true);
    const rd2 = (reg: number) => {
      rtc2.write(RTC_INDEX, 1, reg);
      return rtc2.read(RTC_DATA, 1);
    };
    expect(rd2(RTC_SECONDS)).toBe(3);
    expect(rd2(RTC_REG_C) & REG_C_IRQF).toBe(REG_C_IRQF);
    expect(irq2.level).toBe(false);
    clock2.advanceTo(3.002 * S);
    expect(irq2.level).toBe(true);
  });

  it("fromState rejects a malformed snapshot", () => {
    const { clock, irq, rtc } = setup();
    const s = rtc.saveState();
    expect(() => Mc146818Rtc.fromState({ ...s, cmos: [1, 2] }, { clock, irq8: irq })).toThrow(Mc146818StateError);
    expect(() => Mc146818Rtc.fromState({ ...s, v: 3 } as never, { clock, irq8: irq })).toThrow(/version/);
  });
});

describe("mc146818 under random guest input", () => {
  it("never throws, reads stay bytes and at most two timers are pending", () => {
    const { clock, rtc } = setup();
    let seed = 777;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    let t = 0;
    for (let i = 0; i < 20000; i++) {
      const op = rnd(3);
      if (op === 0) rtc.write(rnd(2), 1, rnd(256));
      else if (op === 1) expect(rtc.read(RTC_DATA, 1)).toBeLessThanOrEqual(0xff);
      else {
        t += rnd(50_000_000);
        clock.advanceTo(t);
      }
    }
    expect(clock.timers.size).toBeLessThanOrEqual(2);
  });
});

import { describe, expect, it } from "vitest";
import type { DeviceEvents } from "../../../src/monitor/api.js";
import { tickTime, ticksAt } from "./clock-ticks.js";
import {
  CW_BCD, I8254Pit, I8254StateError, PIT_CLOCK_HZ, PIT_CONTROL_WORD, PIT_MIN_IRQ_PERIOD_NS,
  RB_CNT0, RB_CNT2, RB_COUNT, RB_STATUS, RW_LSB, RW_LSB_MSB, RW_MSB, STATUS_NULL_COUNT, STATUS_OUTPUT,
} from "./i8254-pit.js";
import { ManualClock, RecordingIrq } from "./testing-clock.js";

const at = (tick: number): number => tickTime(tick, PIT_CLOCK_HZ);
const cw = (sc: number, rw: number, mode: number, bcd = false): number => (sc << 6) | (rw << 4) | (mode << 1) | (bcd ? CW_BCD : 0);
const readBackCmd = (flags: number): number => 0xc0 | flags;

function setup() {
  const clock = new ManualClock();
  const irq = new RecordingIrq(clock);
  const invalid: string[] = [];
  const events: DeviceEvents = {
    invalidRead: (o, s) => invalid.push(`r${o}/${s}`),
    invalidWrite: (o, s, v) => invalid.push(`w${o}/${s}=${v}`),
  };
  const pit = new I8254Pit(clock, irq, events);
  const program = (ch: number, mode: number, count: number, bcd = false) => {
    pit.write(PIT_CONTROL_WORD, 1, cw(ch, RW_LSB_MSB, mode, bcd));
    pit.write(ch, 1, count & 0xff);
    pit.write(ch, 1, (count >> 8) & 0xff);
  };
  const readCount = (ch: number) => {
    pit.write(PIT_CONTROL_WORD, 1, cw(ch, 0, 0)); // counter latch command
    return pit.read(ch, 1) | (pit.read(ch, 1) << 8);
  };
  const status = (ch: number) => {
    pit.write(PIT_CONTROL_WORD, 1, readBackCmd(RB_COUNT | (RB_CNT0 << ch))); // COUNT bit set: status only
    return pit.read(ch, 1);
  };
  return { clock, irq, pit, program, readCount, status, invalid };
}

describe("clock tick conversion", () => {
  it("tickTime gives the first nanosecond at which a tick has happened", () => {
    for (const k of [0, 1, 2, 1193181, 1193182, 1193183, 123456789, 4_000_000_000_000]) {
      const ns = tickTime(k, PIT_CLOCK_HZ);
      expect(ticksAt(ns, PIT_CLOCK_HZ)).toBe(k);
      if (k > 0) expect(ticksAt(ns - 1, PIT_CLOCK_HZ)).toBe(k - 1);
    }
  });

  it("one second of virtual time is exactly 1193182 PIT ticks, even after a day", () => {
    const day = 86_400 * 1e9;
    expect(ticksAt(day + 1e9, PIT_CLOCK_HZ) - ticksAt(day, PIT_CLOCK_HZ)).toBe(PIT_CLOCK_HZ);
  });
});

describe("i8254 mode 0 (interrupt on terminal count)", () => {
  it("OUT goes low at the control word and rises N+1 CLKs after the count write, raising IRQ 0 then", () => {
    const { clock, irq, pit, program, readCount } = setup();
    program(0, 0, 100);
    expect(irq.level).toBe(false);
    clock.advanceTo(at(51));
    expect(readCount(0)).toBe(50);
    clock.advanceTo(at(100));
    expect(pit.output(0)).toBe(false);
    clock.advanceTo(at(1000));
    expect(irq.rises.at(-1)).toBe(at(101));
    expect(irq.level).toBe(true);
  });

  it("keeps counting through zero (wraps to 0xFFFF) with OUT staying high", () => {
    const { clock, pit, program, readCount } = setup();
    program(0, 0, 10);
    clock.advanceTo(at(13)); // loaded at tick 1, 0 at tick 11
    expect(readCount(0)).toBe(0xfffe);
    expect(pit.output(0)).toBe(true);
  });

  it("a count of 0 means 65536", () => {
    const { clock, irq, program } = setup();
    program(0, 0, 0);
    clock.advanceTo(at(65536));
    expect(irq.level).toBe(false);
    clock.advanceTo(at(65537));
    expect(irq.level).toBe(true);
  });

  it("GATE low suspends counting (counter 2, gate from setGate)", () => {
    const { clock, pit, program, readCount } = setup();
    pit.setGate(2, true);
    program(2, 0, 1000);
    clock.advanceTo(at(101));
    expect(readCount(2)).toBe(900);
    pit.setGate(2, false);
    clock.advanceTo(at(501));
    expect(readCount(2)).toBe(900);
    pit.setGate(2, true);
    clock.advanceTo(at(601));
    expect(readCount(2)).toBe(800);
    clock.advanceTo(at(1400));
    expect(pit.output(2)).toBe(false);
    clock.advanceTo(at(1401));
    expect(pit.output(2)).toBe(true);
  });

  it("writing the first byte of a two-byte count stops counting until the second", () => {
    const { clock, pit, program, readCount } = setup();
    program(0, 0, 1000);
    clock.advanceTo(at(101));
    pit.write(0, 1, 0x34);
    clock.advanceTo(at(301));
    expect(readCount(0)).toBe(900);
    pit.write(0, 1, 0x12);
    clock.advanceTo(at(302 + 5));
    expect(readCount(0)).toBe(0x1234 - 5);
  });
});

describe("i8254 mode 1 (hardware retriggerable one-shot)", () => {
  it("waits for a GATE rising edge, then holds OUT low for N CLKs; a retrigger restarts it", () => {
    const { clock, pit, program } = setup();
    program(2, 1, 50);
    clock.advanceTo(at(100));
    expect(pit.output(2)).toBe(true); // no trigger yet
    pit.setGate(2, true); // trigger at tick 100: load at 101
    clock.advanceTo(at(101));
    expect(pit.output(2)).toBe(false);
    clock.advanceTo(at(130));
    pit.setGate(2, false);
    pit.setGate(2, true); // retrigger at 130: load at 131, OUT high at 181
    clock.advanceTo(at(180));
    expect(pit.output(2)).toBe(false);
    clock.advanceTo(at(181));
    expect(pit.output(2)).toBe(true);
  });
});

describe("i8254 mode 2 (rate generator)", () => {
  it("pulses OUT low for one CLK every N CLKs and raises IRQ 0 at each rising edge", () => {
    const { clock, irq, pit, program, status } = setup();
    program(0, 2, 1000);
    clock.advanceTo(at(1000)); // CE = 1: OUT low
    expect(status(0) & STATUS_OUTPUT).toBe(0);
    clock.advanceTo(at(3500));
    expect(irq.rises).toEqual([0, at(1001), at(2001), at(3001)]); // 0: OUT high from power-up
    expect(pit.output(0)).toBe(true);
    expect(irq.level).toBe(true);
  });

  it("sets one clock timer per period, not per tick", () => {
    const { clock, program } = setup();
    program(0, 2, 11932); // ~100 Hz
    const before = clock.timersSet;
    clock.advanceTo(1e9);
    expect(clock.timersSet - before).toBeGreaterThanOrEqual(99);
    expect(clock.timersSet - before).toBeLessThanOrEqual(102);
  });

  it("a new count written during counting takes effect at the end of the current period", () => {
    const { clock, irq, pit, program } = setup();
    program(0, 2, 1000);
    clock.advanceTo(at(500));
    pit.write(0, 1, 200 & 0xff);
    pit.write(0, 1, 0);
    clock.advanceTo(at(1500));
    expect(irq.rises).toEqual([0, at(1001), at(1201), at(1401)]);
  });

  it("GATE low forces OUT high and stops counting; the rising edge reloads the count", () => {
    const { clock, pit, program, readCount } = setup();
    pit.setGate(2, true);
    program(2, 2, 100);
    clock.advanceTo(at(100)); // CE = 1, OUT low
    expect(pit.output(2)).toBe(false);
    pit.setGate(2, false);
    expect(pit.output(2)).toBe(true);
    clock.advanceTo(at(150));
    expect(readCount(2)).toBe(1);
    pit.setGate(2, true); // reload at 151
    clock.advanceTo(at(161));
    expect(readCount(2)).toBe(90);
  });

  it("modes 6 and 7 alias modes 2 and 3", () => {
    const { pit, status } = setup();
    pit.write(PIT_CONTROL_WORD, 1, cw(0, RW_LSB_MSB, 6));
    expect((status(0) >> 1) & 7).toBe(2);
    pit.write(PIT_CONTROL_WORD, 1, cw(1, RW_LSB_MSB, 7));
    expect((status(1) >> 1) & 7).toBe(3);
  });
});

describe("i8254 mode 3 (square wave)", () => {
  it("an even count gives N/2 CLKs high and N/2 low, decrementing by two", () => {
    const { clock, irq, pit, program, readCount } = setup();
    program(0, 3, 1000);
    clock.advanceTo(at(11));
    expect(readCount(0)).toBe(980);
    clock.advanceTo(at(2600));
    expect(irq.falls).toEqual([at(501), at(1501), at(2501)]);
    expect(irq.rises).toEqual([0, at(1001), at(2001)]); // 0: OUT high from power-up
    expect(pit.output(0)).toBe(false);
  });

  it("an odd count gives (N+1)/2 CLKs high and (N-1)/2 low", () => {
    const { clock, pit, program } = setup();
    pit.setGate(2, true);
    program(2, 3, 5); // load at 1: high 1..3, low 4..5, high 6..8
    const seen: boolean[] = [];
    for (let k = 1; k <= 10; k++) {
      clock.advanceTo(at(k));
      seen.push(pit.output(2));
    }
    expect(seen).toEqual([true, true, true, false, false, true, true, true, false, false]);
  });

  it("coalesces IRQ 0 edges for periods below the minimum, and keeps the exact count", () => {
    const { clock, irq, program, readCount } = setup();
    program(0, 3, 2); // ~600 kHz
    const before = irq.rises.length;
    clock.advanceTo(1_000_000); // 1 ms
    const edges = irq.rises.length - before;
    expect(edges).toBeGreaterThan(0);
    expect(edges).toBeLessThanOrEqual(1_000_000 / PIT_MIN_IRQ_PERIOD_NS + 1);
    for (let i = 1; i < irq.rises.length; i++) {
      if (irq.rises[i - 1]! > 0) expect(irq.rises[i]! - irq.rises[i - 1]!).toBeGreaterThanOrEqual(PIT_MIN_IRQ_PERIOD_NS - 1000);
    }
    expect(readCount(0)).toBe(2); // a count of 2 always reads 2 in mode 3
  });

  it("a new count written during counting takes effect at the end of the current half-period", () => {
    const { clock, irq, pit, program } = setup();
    program(0, 3, 1000);
    clock.advanceTo(at(250));
    pit.write(0, 1, 400 & 0xff);
    pit.write(0, 1, 400 >> 8);
    clock.advanceTo(at(1200));
    expect(irq.falls).toEqual([at(501), at(901)]);
    expect(irq.rises).toEqual([0, at(701), at(1101)]);
  });

  it("GATE low forces OUT high", () => {
    const { clock, pit, program } = setup();
    pit.setGate(2, true);
    program(2, 3, 100);
    clock.advanceTo(at(60));
    expect(pit.output(2)).toBe(false);
    pit.setGate(2, false);
    expect(pit.output(2)).toBe(true);
  });
});

describe("i8254 modes 4 and 5 (strobes)", () => {
  it("mode 4 strobes OUT low for one CLK N+1 CLKs after the count write; IRQ 0 rises after it", () => {
    const { clock, irq, pit, program } = setup();
    program(0, 4, 10);
    clock.advanceTo(at(10));
    expect(pit.output(0)).toBe(true);
    clock.advanceTo(at(11));
    expect(pit.output(0)).toBe(false);
    clock.advanceTo(at(100));
    expect(pit.output(0)).toBe(true);
    expect(irq.rises.at(-1)).toBe(at(12));
    expect(irq.rises).toHaveLength(2); // power-up level, then the strobe: only once
  });

  it("mode 5 strobes N+1 CLKs after the GATE trigger", () => {
    const { clock, pit, program } = setup();
    program(2, 5, 20);
    clock.advanceTo(at(50));
    pit.setGate(2, true);
    clock.advanceTo(at(70));
    expect(pit.output(2)).toBe(true);
    clock.advanceTo(at(71));
    expect(pit.output(2)).toBe(false);
    clock.advanceTo(at(72));
    expect(pit.output(2)).toBe(true);
  });
});

describe("i8254 reading and writing", () => {
  it("the counter latch command holds the count until it is read; a second latch is ignored", () => {
    const { clock, pit, program } = setup();
    program(0, 2, 5000);
    clock.advanceTo(at(1001));
    pit.write(PIT_CONTROL_WORD, 1, 0x00);
    clock.advanceTo(at(2001));
    pit.write(PIT_CONTROL_WORD, 1, 0x00);
    expect(pit.read(0, 1) | (pit.read(0, 1) << 8)).toBe(4000);
    const live = pit.read(0, 1) | (pit.read(0, 1) << 8);
    expect(live).toBe(3000);
  });

  it("LSB-only and MSB-only access read and write one byte", () => {
    const { clock, pit } = setup();
    pit.write(PIT_CONTROL_WORD, 1, cw(0, RW_MSB, 2));
    pit.write(0, 1, 0x10); // count 0x1000
    clock.advanceTo(at(1 + 0x100));
    expect(pit.read(0, 1)).toBe(0x0f);
    pit.write(PIT_CONTROL_WORD, 1, cw(1, RW_LSB, 2));
    pit.write(1, 1, 0x80);
    clock.advanceTo(at(1 + 0x100 + 1 + 0x10));
    expect(pit.read(1, 1)).toBe(0x70);
  });

  it("read-back latches status and count; status is read first", () => {
    const { clock, pit, program } = setup();
    program(0, 2, 3000);
    clock.advanceTo(at(1001));
    pit.write(PIT_CONTROL_WORD, 1, readBackCmd(RB_CNT0)); // COUNT and STATUS both active (0)
    clock.advanceTo(at(2001));
    expect(pit.read(0, 1)).toBe(STATUS_OUTPUT | (RW_LSB_MSB << 4) | (2 << 1));
    expect(pit.read(0, 1) | (pit.read(0, 1) << 8)).toBe(2000);
  });

  it("read-back latches several counters with one command", () => {
    const { clock, pit, program } = setup();
    program(0, 2, 3000);
    pit.setGate(2, true);
    program(2, 2, 4000);
    clock.advanceTo(at(1001));
    pit.write(PIT_CONTROL_WORD, 1, readBackCmd(RB_STATUS | RB_CNT0 | RB_CNT2)); // count only
    clock.advanceTo(at(1501));
    expect(pit.read(0, 1) | (pit.read(0, 1) << 8)).toBe(2000);
    expect(pit.read(2, 1) | (pit.read(2, 1) << 8)).toBe(3000);
  });

  it("NULL COUNT is set from the control word until the count is loaded at the next CLK", () => {
    const { clock, pit, status } = setup();
    clock.advanceTo(at(10));
    pit.write(PIT_CONTROL_WORD, 1, cw(0, RW_LSB_MSB, 0));
    expect(status(0) & STATUS_NULL_COUNT).toBe(STATUS_NULL_COUNT);
    pit.write(0, 1, 100);
    pit.write(0, 1, 0);
    expect(status(0) & STATUS_NULL_COUNT).toBe(STATUS_NULL_COUNT);
    clock.advanceTo(at(11));
    expect(status(0) & STATUS_NULL_COUNT).toBe(0);
  });

  it("counts in BCD: 0x1000 is one thousand CLKs, and reads are BCD", () => {
    const { clock, irq, program, readCount } = setup();
    program(0, 2, 0x1000, true);
    clock.advanceTo(at(1 + 1)); // one CLK after loading
    expect(readCount(0)).toBe(0x0999);
    clock.advanceTo(at(2100));
    expect(irq.rises).toEqual([0, at(1001), at(2001)]);
  });

  it("a BCD count of 0 means 10000", () => {
    const { clock, pit, program, readCount } = setup();
    program(0, 0, 0, true);
    clock.advanceTo(at(2));
    expect(readCount(0)).toBe(0x9999);
    clock.advanceTo(at(10000));
    expect(pit.output(0)).toBe(false);
    clock.advanceTo(at(10001));
    expect(pit.output(0)).toBe(true);
  });

  it("the control port reads as all-ones; wide accesses are invalid and ignored", () => {
    const { pit, invalid } = setup();
    expect(pit.read(PIT_CONTROL_WORD, 1)).toBe(0xff);
    expect(pit.read(0, 2)).toBe(0xffff);
    pit.write(0, 4, 0x12345678);
    expect(invalid).toEqual(["r3/1", "r0/2", "w0/4=305419896"]);
  });
});

describe("i8254 snapshot", () => {
  it("fromState continues a mode 2 counter with IRQ 0 at the same virtual times", () => {
    const { clock, pit, program } = setup();
    program(0, 2, 1000);
    clock.advanceTo(at(1500));
    const json = JSON.parse(JSON.stringify(pit.saveState()));
    const clock2 = new ManualClock();
    clock2.advanceTo(clock.now());
    const irq2 = new RecordingIrq(clock2);
    const pit2 = I8254Pit.fromState(json, { clock: clock2, irq0: irq2 });
    expect(irq2.level).toBe(true);
    clock2.advanceTo(at(3500));
    expect(irq2.rises.slice(1)).toEqual([at(2001), at(3001)]);
    expect(pit2.saveState().channels[0]!.mode).toBe(2);
  });

  it("fromState rejects a bad version or field", () => {
    const { clock, irq, pit } = setup();
    const s = pit.saveState();
    expect(() => I8254Pit.fromState({ ...s, v: 2 } as never, { clock, irq0: irq })).toThrow(I8254StateError);
    const bad = JSON.parse(JSON.stringify(s));
    bad.channels[1].mode = 9;
    expect(() => I8254Pit.fromState(bad, { clock, irq0: irq })).toThrow(/channels\[1\]\.mode/);
  });
});

describe("i8254 under random guest input", () => {
  it("never throws, keeps IRQ 0 timers bounded and reads stay bytes", () => {
    const { clock, pit } = setup();
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    let t = 0;
    for (let i = 0; i < 20000; i++) {
      const op = rnd(4);
      if (op === 0) pit.write(rnd(4), 1, rnd(256));
      else if (op === 1) expect(pit.read(rnd(3), 1)).toBeLessThanOrEqual(0xff);
      else if (op === 2) pit.setGate(2, rnd(2) === 1);
      else {
        t += rnd(100_000);
        clock.advanceTo(t);
      }
    }
    // At most one pending timer for IRQ 0, however the guest programmed it.
    expect(clock.timers.size).toBeLessThanOrEqual(1);
  });
});

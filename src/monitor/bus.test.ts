import { describe, expect, it } from "vitest";
import type { AccessSize, IoDevice } from "./api.js";
import { MmioBus, PioBus } from "./bus.js";

/** A device that records the offsets it sees and answers reads with offset+size. */
function recorder(name: string): IoDevice & { log: string[] } {
  const log: string[] = [];
  return {
    name, log,
    read(offset: number, size: AccessSize) { log.push(`r${offset}/${size}`); return 0x100 + offset; },
    write(offset: number, size: AccessSize, value: number) { log.push(`w${offset}/${size}=${value.toString(16)}`); },
  };
}

describe("PIO bus", () => {
  it("dispatches with offsets relative to the range base", () => {
    const bus = new PioBus();
    const uart = recorder("uart16550");
    expect(bus.insert({ space: "pio", base: 0x3f8, length: 8 }, uart)).toBeUndefined();
    expect(bus.read(0x3fd, 1)).toBe(0x105);
    bus.write(0x3f8, 1, 0x41);
    expect(uart.log).toEqual(["r5/1", "w0/1=41"]);
  });

  it("rejects an overlap with a message naming both devices", () => {
    const bus = new PioBus();
    bus.insert({ space: "pio", base: 0x3f8, length: 2 }, recorder("rtc"));
    const err = bus.insert({ space: "pio", base: 0x3f8, length: 8 }, recorder("uart16550"));
    expect(err).toEqual({ kind: "overlap", with: "rtc", message: "uart16550@pio:0x3f8+8 overlaps rtc@pio:0x3f8+2" });
    // a partial overlap at the top end too
    expect(bus.insert({ space: "pio", base: 0x3f0, length: 9 }, recorder("fdc"))?.kind).toBe("overlap");
    // adjacent ranges are fine
    expect(bus.insert({ space: "pio", base: 0x3fa, length: 6 }, recorder("x"))).toBeUndefined();
  });

  it("rejects zero length and ranges past port 0xffff", () => {
    const bus = new PioBus();
    expect(bus.insert({ space: "pio", base: 0x80, length: 0 }, recorder("a"))?.kind).toBe("zero-length");
    expect(bus.insert({ space: "pio", base: 0xfffe, length: 3 }, recorder("b"))?.kind).toBe("overflow");
    expect(bus.insert({ space: "pio", base: 0xfffe, length: 2 }, recorder("c"))).toBeUndefined();
    expect(bus.insert({ space: "mmio", base: 0x10, length: 2 }, recorder("d"))?.kind).toBe("overflow");
  });

  it("reads all-ones for the access size from unclaimed ports, drops writes, and counts both", () => {
    const bus = new PioBus();
    expect(bus.read(0x80, 1)).toBe(0xff);
    expect(bus.read(0x80, 2)).toBe(0xffff);
    expect(bus.read(0x80, 4)).toBe(0xffffffff);
    bus.write(0x80, 1, 0);
    expect(bus.unclaimed).toEqual({ reads: 3, writes: 1 });
  });
});

describe("MMIO bus", () => {
  it("finds devices by binary search among sorted ranges and passes offsets", () => {
    const bus = new MmioBus();
    const devs = [0xfee00000, 0xa0000, 0xfec00000, 0xe0000000].map((b, i) => {
      const d = recorder(`d${i}`);
      expect(bus.insert({ space: "mmio", base: b, length: 0x1000 }, d)).toBeUndefined();
      return d;
    });
    expect(bus.read(0xfec00010, 4)).toBe(0x110);
    bus.write(0xa0fff, 1, 7);
    expect(devs[2]!.log).toEqual(["r16/4"]);
    expect(devs[1]!.log).toEqual(["w4095/1=7"]);
    expect(bus.entries().map((e) => e.base)).toEqual([0xa0000, 0xe0000000, 0xfec00000, 0xfee00000]);
  });

  it("rejects overlaps, zero length and ranges past 4 GiB", () => {
    const bus = new MmioBus();
    bus.insert({ space: "mmio", base: 0xfec00000, length: 0x1000 }, recorder("ioapic"));
    expect(bus.insert({ space: "mmio", base: 0xfebff000, length: 0x1001 }, recorder("hpet"))?.message)
      .toBe("hpet@mmio:0xfebff000+4097 overlaps ioapic@mmio:0xfec00000+4096");
    expect(bus.insert({ space: "mmio", base: 0, length: 0 }, recorder("z"))?.kind).toBe("zero-length");
    expect(bus.insert({ space: "mmio", base: 0xfffff000, length: 0x2000 }, recorder("o"))?.kind).toBe("overflow");
    expect(bus.insert({ space: "mmio", base: 0xfffff000, length: 0x1000 }, recorder("top"))).toBeUndefined();
  });

  it("counts unclaimed accesses and reads all-ones", () => {
    const bus = new MmioBus();
    bus.insert({ space: "mmio", base: 0x1000, length: 0x10 }, recorder("a"));
    expect(bus.read(0x1010, 2)).toBe(0xffff);
    expect(bus.read(0xfff, 4)).toBe(0xffffffff);
    bus.write(0x2000, 4, 1);
    expect(bus.unclaimed).toEqual({ reads: 2, writes: 1 });
  });
});

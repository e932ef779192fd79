import { describe, expect, it } from "vitest";
import type { AccessSize, MmioHandler } from "./api.js";
import { GuestPhysMemory, MapResult } from "./gpspace.js";

const RW = 3;
const R = 1;

class RecordingMmio implements MmioHandler {
  readonly log: string[] = [];
  constructor(private readonly readValue = 0x12345678) {}
  read(gpa: number, size: AccessSize): number {
    this.log.push(`r${size}@${gpa.toString(16)}`);
    return this.readValue;
  }
  write(gpa: number, size: AccessSize, value: number): void {
    this.log.push(`w${size}@${gpa.toString(16)}=${value.toString(16)}`);
  }
}

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

describe("GuestPhysMemory RAM", () => {
  it("reads little-endian values from the frame mapped at 0", () => {
    const m = new GuestPhysMemory();
    const f = pattern(8192, 1);
    expect(m.map(0, f, RW, true, "f")).toBe(MapResult.Ok);
    expect(m.read8(0x1234)).toBe(f[0x1234]);
    expect(m.read16(0x1234)).toBe(f[0x1234] | (f[0x1235] << 8));
    expect(m.read32(0x1234)).toBe((f[0x1234] | (f[0x1235] << 8) | (f[0x1236] << 16) | (f[0x1237] << 24)) >>> 0);
  });

  it("writes little-endian values into a frame mapped above 0 at the right offset", () => {
    const m = new GuestPhysMemory();
    const f = new Uint8Array(4096);
    m.map(0x10_0000, f, RW, true, "f");
    m.write32(0x10_0010, 0xdeadbeef);
    m.write16(0x10_0020, 0xcafe);
    m.write8(0x10_0030, 0x1ab); // truncated to 8 bits
    expect([...f.subarray(0x10, 0x14)]).toEqual([0xef, 0xbe, 0xad, 0xde]);
    expect([...f.subarray(0x20, 0x22)]).toEqual([0xfe, 0xca]);
    expect(f[0x30]).toBe(0xab);
    expect(m.read32(0x10_0010)).toBe(0xdeadbeef);
  });

  it("splits accesses that straddle two frames", () => {
    const m = new GuestPhysMemory();
    const a = new Uint8Array(4096);
    const b = new Uint8Array(4096);
    m.map(0x2000, a, RW, true, "a");
    m.map(0x3000, b, RW, true, "b");
    m.write32(0x2ffe, 0x11223344);
    expect([a[0xffe], a[0xfff], b[0], b[1]]).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(m.read32(0x2ffe)).toBe(0x11223344);
    m.write16(0x2fff, 0xbeef);
    expect([a[0xfff], b[0]]).toEqual([0xef, 0xbe]);
    expect(m.read16(0x2fff)).toBe(0xbeef);
    expect(m.read32(0x2ffd)).toBe((a[0xffd] | (a[0xffe] << 8) | (a[0xfff] << 16) | (b[0] << 24)) >>> 0);
  });

  it("drops writes to a read-only mapping and counts them, also for the frame at 0", () => {
    const m = new GuestPhysMemory();
    const low = pattern(4096, 3);
    const high = pattern(4096, 5);
    m.map(0, low, R, false, "low");
    m.map(0x8000, high, R, false, "high");
    const before = [low[0x10], high[0x10]];
    m.write8(0x10, 0);
    m.write16(0x10, 0);
    m.write32(0x10, 0);
    m.write32(0x8010, 0);
    expect([low[0x10], high[0x10]]).toEqual(before);
    expect(m.read8(0x8010)).toBe(high[0x10]);
    expect(m.droppedWrites).toBe(4);
  });

  it("wraps a 32-bit access at 4 GiB onto guest-physical 0", () => {
    const m = new GuestPhysMemory();
    const low = new Uint8Array(4096);
    const top = new Uint8Array(4096);
    expect(m.map(0xffff_f000, top, RW, true, "top")).toBe(MapResult.Ok);
    m.map(0, low, RW, true, "low");
    m.write32(0xffff_fffe, 0xa1b2c3d4);
    expect([top[0xffe], top[0xfff], low[0], low[1]]).toEqual([0xd4, 0xc3, 0xb2, 0xa1]);
    expect(m.read32(0xffff_fffe)).toBe(0xa1b2c3d4);
  });
});

describe("GuestPhysMemory MMIO", () => {
  it("sends accesses outside RAM to the handler with their size, masking the result", () => {
    const m = new GuestPhysMemory();
    m.map(0, new Uint8Array(4096), RW, true, "f");
    const h = new RecordingMmio(0xfedcba98);
    m.mmio = h;
    expect(m.read8(0xfee0_0000)).toBe(0x98);
    expect(m.read16(0xfee0_0010)).toBe(0xba98);
    expect(m.read32(0xfee0_0020)).toBe(0xfedcba98);
    m.write8(0x1000, 0x1ff);
    m.write16(0x1002, 0x12345);
    m.write32(0x1004, -1);
    expect(h.log).toEqual([
      "r1@fee00000", "r2@fee00010", "r4@fee00020", "w1@1000=ff", "w2@1002=2345", "w4@1004=ffffffff",
    ]);
  });

  it("reads all-ones and drops writes when no handler is set, counting them", () => {
    const m = new GuestPhysMemory();
    expect(m.read8(0x5000)).toBe(0xff);
    expect(m.read16(0x5000)).toBe(0xffff);
    expect(m.read32(0x5000)).toBe(0xffffffff);
    m.write32(0x5000, 0);
    expect(m.unclaimedAccesses).toBe(4);
  });

  it("hands a page-straddling access that is MMIO on both sides to the handler whole", () => {
    const m = new GuestPhysMemory();
    const h = new RecordingMmio(0xaabbccdd);
    m.mmio = h;
    expect(m.read32(0xfee0_0ffe)).toBe(0xaabbccdd);
    m.write16(0xfee0_0fff, 0x1234);
    expect(h.log).toEqual(["r4@fee00ffe", "w2@fee00fff=1234"]);
  });

  it("splits a straddling access that is half RAM, half MMIO, into bytes", () => {
    const m = new GuestPhysMemory();
    const f = new Uint8Array(4096);
    m.map(0x1000, f, RW, true, "f");
    const h = new RecordingMmio(0xff);
    m.mmio = h;
    m.write32(0x1ffe, 0x44332211);
    expect([f[0xffe], f[0xfff]]).toEqual([0x11, 0x22]);
    expect(h.log).toEqual(["w1@2000=33", "w1@2001=44"]);
    expect(m.read32(0x1ffe)).toBe(0xffff2211);
  });

  it("never throws for wild addresses and masks them to 32 bits", () => {
    const m = new GuestPhysMemory();
    const low = pattern(4096, 9);
    m.map(0, low, RW, true, "low");
    const wild = [-1, -4096, 2 ** 32, 2 ** 32 + 5, 2 ** 53, 1e300, Number.NaN, Infinity, -Infinity, 0.5];
    for (const a of wild) {
      expect(() => {
        m.read8(a); m.read16(a); m.read32(a);
        m.write8(a, 1); m.write16(a, 2); m.write32(a, 3);
      }).not.toThrow();
    }
    m.write8(2 ** 32 + 5, 0x5a);
    expect(low[5]).toBe(0x5a);
    expect(m.read8(-4096 + 5)).toBe(m.read8(0xffff_f005));
  });
});

describe("GuestPhysMemory mappings", () => {
  it("rejects overlapping, unaligned and out-of-range mappings", () => {
    const m = new GuestPhysMemory();
    expect(m.map(0x4000, new Uint8Array(8192), RW, true, "a")).toBe(MapResult.Ok);
    expect(m.map(0x5000, new Uint8Array(4096), RW, true, "b")).toBe(MapResult.Overlap);
    expect(m.map(0x3000, new Uint8Array(8192), RW, true, "b")).toBe(MapResult.Overlap);
    expect(m.map(0x6000, new Uint8Array(4096), RW, true, "b")).toBe(MapResult.Ok);
    expect(m.map(0x7800, new Uint8Array(4096), RW, true, "c")).toBe(MapResult.BadAddress);
    expect(m.map(0xffff_f000, new Uint8Array(8192), RW, true, "c")).toBe(MapResult.BadAddress);
    expect(m.map(-4096, new Uint8Array(4096), RW, true, "c")).toBe(MapResult.BadAddress);
  });

  it("unmap by base address sends the range back to MMIO, including the frame at 0", () => {
    const m = new GuestPhysMemory();
    const f = pattern(4096, 2);
    m.map(0, f, RW, true, "f");
    expect(m.unmap(0x800)).toBe(MapResult.NotMapped);
    expect(m.unmap(0)).toBe(MapResult.Ok);
    expect(m.read8(0x10)).toBe(0xff);
    m.write8(0x10, 0);
    expect(f[0x10]).not.toBe(0);
    expect(m.unmap(0)).toBe(MapResult.NotMapped);
    expect(m.map(0, new Uint8Array(4096), RW, true, "g")).toBe(MapResult.Ok);
  });

  it("unmapOwner removes every mapping of one owner", () => {
    const m = new GuestPhysMemory();
    const f = new Uint8Array(4096);
    m.map(0, f, RW, true, "f");
    m.map(0x9000, f, R, false, "f");
    m.map(0xa000, new Uint8Array(4096), RW, true, "g");
    expect(m.unmapOwner("f")).toBe(2);
    expect(m.mappings().map((x) => x.gpa)).toEqual([0xa000]);
  });
});

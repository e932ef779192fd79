import { describe, expect, it } from "vitest";
import { FrameGuestMemory } from "./guest-memory.js";

describe("guest memory over the RAM frame", () => {
  it("reads and writes little-endian values in the frame", () => {
    const view = new Uint8Array(0x1000);
    const m = new FrameGuestMemory(view);
    m.write32(0x10, 0xdeadbeef);
    expect(Array.from(view.subarray(0x10, 0x14))).toEqual([0xef, 0xbe, 0xad, 0xde]);
    expect(m.read32(0x10)).toBe(0xdeadbeef);
    expect(m.read16(0x11)).toBe(0xadbe);
    m.write16(0x20, 0x1234);
    expect(m.read8(0x21)).toBe(0x12);
  });

  it("never throws outside RAM: all-ones reads, dropped writes, refused copies", () => {
    const view = new Uint8Array(0x1000);
    const m = new FrameGuestMemory(view);
    expect(m.read8(0x1000)).toBe(0xff);
    expect(m.read16(0xfff)).toBe(0xffff);
    expect(m.read32(-4)).toBe(0xffffffff);
    m.write32(0xffe, 0);
    m.write8(NaN, 1);
    expect(view.every((b) => b === 0)).toBe(true);
    expect(m.writeBytes(0xffe, new Uint8Array(3))).toBe(false);
    expect(m.writeBytes(0xffd, new Uint8Array([1, 2, 3]))).toBe(true);
    expect(m.readBytes(0xffd, 3)).toEqual(new Uint8Array([1, 2, 3]));
    expect(m.readBytes(0xffd, 4)).toBeUndefined();
  });

  it("copies between guest memory and a caller's buffer without allocating, refusing ranges outside either", () => {
    const view = new Uint8Array(0x1000);
    const m = new FrameGuestMemory(view);
    const buf = new Uint8Array(8);
    buf.set([9, 8, 7, 6], 2);
    expect(m.writeFrom(0x100, buf, 2, 4)).toBe(true);
    expect(Array.from(view.subarray(0x100, 0x104))).toEqual([9, 8, 7, 6]);
    const out = new Uint8Array(8);
    expect(m.readInto(0x101, out, 5, 3)).toBe(true);
    expect(Array.from(out)).toEqual([0, 0, 0, 0, 0, 8, 7, 6]);
    expect(m.readInto(0xffe, out, 0, 3)).toBe(false); // leaves RAM
    expect(m.readInto(0x100, out, 6, 3)).toBe(false); // leaves the buffer
    expect(m.writeFrom(0x100, buf, -1, 2)).toBe(false);
    expect(m.writeFrom(0xfff, buf, 0, 2)).toBe(false);
    expect(view[0xfff]).toBe(0);
  });
});

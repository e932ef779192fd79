import { describe, expect, it } from "vitest";
import { FlatMemory, SparseMemory } from "./memory.js";

describe("FlatMemory", () => {
  it("stores little-endian and reads all-ones past its end", () => {
    const m = new FlatMemory(16);
    m.write32(0, 0x11223344);
    expect([m.read8(0), m.read8(3), m.read16(1), m.read32(0)]).toEqual([0x44, 0x11, 0x2233, 0x11223344]);
    m.write8(16, 0x55); // dropped
    expect(m.read8(16)).toBe(0xff);
    expect(m.read16(15)).toBe(0xff00 | m.read8(15));
  });

  it("offers all of its bytes as the direct RAM window (PhysMemory.ram)", () => {
    const m = new FlatMemory(32);
    expect(m.ram).toBe(m.bytes);
    m.ram[5] = 0x42;
    expect(m.read8(5)).toBe(0x42);
  });
});

describe("SparseMemory", () => {
  it("masks addresses, records CPU writes but not pokes, and clears", () => {
    const m = new SparseMemory(0xfffff);
    m.poke(0x10, 0xaa);
    m.write16(0xfffff, 0x1234); // wraps to 0
    expect([m.read8(0x10), m.read8(0xfffff), m.read8(0)]).toEqual([0xaa, 0x34, 0x12]);
    expect([...m.written].sort((a, b) => a - b)).toEqual([0, 0xfffff]);
    m.clear();
    expect(m.read8(0x10)).toBe(0);
    expect(m.written.size).toBe(0);
  });
});

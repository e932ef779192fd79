// Test helpers shared by the x86 tests (not product code).
import type { FlatMemory } from "./memory.js";
import type { IoPorts, PhysMemory } from "./types.js";

/** Ports that read all-ones and drop writes. */
export const NO_IO: IoPorts = { in: () => 0xffffffff, out: () => {} };

/**
 * The same bytes without PhysMemory.ram: the core can neither take the direct path nor
 * cache decoded or compiled code, so it is the plain interpreter to compare against.
 */
export class NoWindow implements PhysMemory {
  constructor(readonly m: FlatMemory) {}
  read8(pa: number): number { return this.m.read8(pa); }
  read16(pa: number): number { return this.m.read16(pa); }
  read32(pa: number): number { return this.m.read32(pa); }
  write8(pa: number, v: number): void { this.m.write8(pa, v); }
  write16(pa: number, v: number): void { this.m.write16(pa, v); }
  write32(pa: number, v: number): void { this.m.write32(pa, v); }
}

/** xorshift32: reproducible pseudo-random numbers. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

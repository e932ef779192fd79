// PhysMemory implementations for tests, tools and the realmode emulator.
// FlatMemory: one Uint8Array at physical 0; outside it reads are all-ones and
// writes are dropped (PhysMemory contract). SparseMemory: a byte map of any
// 32-bit address, for conformance vectors scattered over 16 MiB.
import type { PhysMemory } from "./types.js";

export class FlatMemory implements PhysMemory {
  readonly bytes: Uint8Array;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }
  /** PhysMemory.ram: all of it is plain RAM. */
  get ram(): Uint8Array {
    return this.bytes;
  }
  read8(pa: number): number {
    return pa < this.bytes.length ? this.bytes[pa] : 0xff;
  }
  read16(pa: number): number {
    return this.read8(pa) | (this.read8(pa + 1) << 8);
  }
  read32(pa: number): number {
    return (this.read16(pa) | (this.read16(pa + 2) << 16)) >>> 0;
  }
  write8(pa: number, value: number): void {
    if (pa < this.bytes.length) this.bytes[pa] = value;
  }
  write16(pa: number, value: number): void {
    this.write8(pa, value & 0xff);
    this.write8(pa + 1, (value >>> 8) & 0xff);
  }
  write32(pa: number, value: number): void {
    this.write16(pa, value & 0xffff);
    this.write16(pa + 2, value >>> 16);
  }
}

/** Byte-granular sparse memory; unwritten bytes read as `fill`. Records written addresses. */
export class SparseMemory implements PhysMemory {
  readonly bytes = new Map<number, number>();
  /** Addresses written since the last clear (for "no stray writes" checks). */
  readonly written = new Set<number>();
  constructor(public addrMask = 0xffffffff, public fill = 0) {}
  clear(): void {
    this.bytes.clear();
    this.written.clear();
  }
  /** Set a byte without recording it as a CPU write. */
  poke(pa: number, value: number): void {
    this.bytes.set((pa & this.addrMask) >>> 0, value & 0xff);
  }
  read8(pa: number): number {
    const v = this.bytes.get((pa & this.addrMask) >>> 0);
    return v === undefined ? this.fill : v;
  }
  read16(pa: number): number {
    return this.read8(pa) | (this.read8(pa + 1) << 8);
  }
  read32(pa: number): number {
    return (this.read16(pa) | (this.read16(pa + 2) << 16)) >>> 0;
  }
  write8(pa: number, value: number): void {
    const a = (pa & this.addrMask) >>> 0;
    this.bytes.set(a, value & 0xff);
    this.written.add(a);
  }
  write16(pa: number, value: number): void {
    this.write8(pa, value & 0xff);
    this.write8(pa + 1, (value >>> 8) & 0xff);
  }
  write32(pa: number, value: number): void {
    this.write16(pa, value & 0xffff);
    this.write16(pa + 2, value >>> 16);
  }
}

/**
 * Thrown by a PhysMemory provider to refuse an access (an EPT violation, a nested page
 * fault): the core catches it, leaves the instruction undone and stops with
 * CpuExitReason.MemAbort (types.ts). One preallocated object; nothing else may be thrown.
 */
export class MemAbortSignal {}
export const MEM_ABORT = new MemAbortSignal();

// A guest-physical address space as the engine's core sees it (PhysMemory):
// whole RAM frames mapped at 4 KiB-aligned guest-physical addresses with
// EPT/NPT-style permissions, everything else dispatched to the monitor's MMIO
// handler.
//
// Modelled: 32-bit guest-physical addresses (every address is masked to 32 bits,
// so nothing the guest does can throw); the A20 gate (setA20: bit 20 forced to 0); per-4 KiB-page lookup; read-only
// mappings; accesses that straddle a page boundary (split into bytes when any
// part hits RAM; handed to the MMIO handler whole when both pages are MMIO,
// because an MMIO device's range is not page-shaped).
// Not modelled yet: a write to a mapping without W is dropped and counted in
// `droppedWrites`; a later issue turns it into an EPT-violation (SDM 28.3.3) /
// nested-page-fault (APM 15.25.6) exit. The X permission is recorded but not
// enforced: instruction fetches come through the same read path.
import type { AccessSize, MmioHandler, PhysMemory } from "./api.js";

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
const PAGE_MASK = PAGE_SIZE - 1;
const PAGES = 1 << (32 - PAGE_SHIFT);
const EMPTY = new Uint8Array(0);

/** One frame mapped at `gpa`: guest-physical `pa` is `bytes[pa - gpa]`. */
export interface GpaMapping {
  readonly gpa: number;
  readonly bytes: Uint8Array;
  readonly perms: number;
  readonly writable: boolean;
  /** Who owns the bytes (the kernel's Frame object), for unmapping on destroy. */
  readonly owner: unknown;
}

export const enum MapResult {
  Ok = 0,
  Overlap = 1,
  BadAddress = 2,
  NotMapped = 3,
}

function allOnes(size: AccessSize): number {
  return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
}

export class GuestPhysMemory implements PhysMemory {
  /** The frame mapped at guest-physical 0 (the common case: low RAM), for a one-compare fast path. */
  private low: Uint8Array = EMPTY;
  /** Same as `low` when that mapping is writable, else empty. */
  private lowW: Uint8Array = EMPTY;
  /**
   * PhysMemory.ram (the `ram` getter), the core's direct window: `low` when it is RWX and not aliased
   * by another mapping, cut to 1 MiB while A20 is gated off; else empty.
   */
  private window: Uint8Array = EMPTY;
  /** Per 4 KiB page: index into `maps`, 0 = not RAM. 4 MiB, zero-filled. */
  private readonly pageMap = new Int32Array(PAGES);
  private readonly maps: (GpaMapping | null)[] = [null];
  private readonly freeIndices: number[] = [];
  mmio: MmioHandler | null = null;
  /** Writes dropped because the mapping lacks W. */
  droppedWrites = 0;
  /** Accesses that reached no RAM and no MMIO handler. */
  unclaimedAccesses = 0;
  /** AND-ed into every guest-physical address: bit 20 cleared while A20 is gated off. */
  private addrMask = 0xffffffff;

  /**
   * The chipset's A20M#: when disabled, bit 20 of every guest-physical address is forced
   * to 0, so 1 MiB + x aliases x as on an 8086 (the CPU's A20M# input; Intel SDM Vol. 3,
   * "Architecture Compatibility", segment wraparound).
   */
  setA20(enabled: boolean): void {
    this.addrMask = enabled ? 0xffffffff : 0xffefffff;
    this.updateRam();
  }

  get a20(): boolean {
    return this.addrMask === 0xffffffff;
  }

  /** Map `bytes` (a whole number of pages) at the page-aligned `gpa`. */
  map(gpa: number, bytes: Uint8Array, perms: number, writable: boolean, owner: unknown): MapResult {
    const len = bytes.length;
    if (!Number.isInteger(gpa) || gpa < 0 || (gpa & PAGE_MASK) !== 0 || len === 0 || (len & PAGE_MASK) !== 0) {
      return MapResult.BadAddress;
    }
    if (gpa + len > 2 ** 32) return MapResult.BadAddress;
    const first = gpa >>> PAGE_SHIFT;
    const end = first + len / PAGE_SIZE;
    for (let p = first; p < end; p++) if (this.pageMap[p] !== 0) return MapResult.Overlap;
    const index = this.freeIndices.length > 0 ? this.freeIndices.pop()! : this.maps.length;
    this.maps[index] = { gpa, bytes, perms, writable, owner };
    this.pageMap.fill(index, first, end);
    if (gpa === 0) {
      this.low = bytes;
      this.lowW = writable ? bytes : EMPTY;
    }
    this.updateRam();
    return MapResult.Ok;
  }

  /** Remove the mapping whose base is `gpa`. */
  unmap(gpa: number): MapResult {
    if (!Number.isInteger(gpa) || gpa < 0 || gpa >= 2 ** 32) return MapResult.BadAddress;
    const index = this.pageMap[gpa >>> PAGE_SHIFT];
    const m = this.maps[index];
    if (index === 0 || m === null || m.gpa !== gpa) return MapResult.NotMapped;
    this.removeIndex(index, m);
    return MapResult.Ok;
  }

  /** Remove every mapping owned by `owner`; returns how many. */
  unmapOwner(owner: unknown): number {
    let n = 0;
    for (let i = 1; i < this.maps.length; i++) {
      const m = this.maps[i];
      if (m !== null && m.owner === owner) {
        this.removeIndex(i, m);
        n++;
      }
    }
    return n;
  }

  /**
   * The RAM mapping that holds `pa` (no A20 masking), or null where `pa` is MMIO. No
   * allocation: the nested-paging walker (nested-paging.ts) reads its tables through this,
   * so a table address that is not RAM never reaches the monitor's MMIO handler.
   */
  mappingAt(pa: number): GpaMapping | null {
    return this.maps[this.pageMap[(pa >>> 0) >>> PAGE_SHIFT]!] ?? null;
  }

  /** The mappings, for inspection (not a hot path). */
  mappings(): GpaMapping[] {
    return this.maps.filter((m): m is GpaMapping => m !== null);
  }

  private removeIndex(index: number, m: GpaMapping): void {
    const first = m.gpa >>> PAGE_SHIFT;
    this.pageMap.fill(0, first, first + m.bytes.length / PAGE_SIZE);
    this.maps[index] = null;
    this.freeIndices.push(index);
    if (m.gpa === 0) {
      this.low = EMPTY;
      this.lowW = EMPTY;
    }
    this.updateRam();
  }

  /** Recompute the direct window (PhysMemory.ram) after a map, unmap or A20 change. */
  private updateRam(): void {
    const low = this.low;
    const m = this.maps[this.pageMap[0]];
    let ok = low.length > 0 && m !== null && m.writable && (m.perms & 7) === 7;
    // A second mapping of the same buffer would let writes reach these bytes behind the window.
    for (let i = 1; ok && i < this.maps.length; i++) {
      const o = this.maps[i];
      if (o !== null && o !== m && o.bytes.buffer === low.buffer
        && o.bytes.byteOffset < low.byteOffset + low.length && low.byteOffset < o.bytes.byteOffset + o.bytes.length) ok = false;
    }
    if (!ok) this.window = EMPTY;
    else if (this.addrMask !== 0xffffffff && low.length > 1 << 20) this.window = low.subarray(0, 1 << 20);
    else this.window = low;
  }

  get ram(): Uint8Array {
    return this.window;
  }

  // ---- PhysMemory (hot path: no allocation) ----

  read8(pa: number): number {
    pa = (pa & this.addrMask) >>> 0;
    if (pa < this.low.length) return this.low[pa];
    const m = this.maps[this.pageMap[pa >>> PAGE_SHIFT]];
    if (m !== null) return m.bytes[pa - m.gpa];
    return this.mmioRead(pa, 1);
  }

  read16(pa: number): number {
    pa = (pa & this.addrMask) >>> 0;
    if ((pa & PAGE_MASK) > PAGE_SIZE - 2) return this.readSplit(pa, 2);
    if (pa < this.low.length) {
      const b = this.low;
      return b[pa] | (b[pa + 1] << 8);
    }
    const m = this.maps[this.pageMap[pa >>> PAGE_SHIFT]];
    if (m !== null) {
      const b = m.bytes;
      const i = pa - m.gpa;
      return b[i] | (b[i + 1] << 8);
    }
    return this.mmioRead(pa, 2);
  }

  read32(pa: number): number {
    pa = (pa & this.addrMask) >>> 0;
    if ((pa & PAGE_MASK) > PAGE_SIZE - 4) return this.readSplit(pa, 4);
    if (pa < this.low.length) {
      const b = this.low;
      return (b[pa] | (b[pa + 1] << 8) | (b[pa + 2] << 16) | (b[pa + 3] << 24)) >>> 0;
    }
    const m = this.maps[this.pageMap[pa >>> PAGE_SHIFT]];
    if (m !== null) {
      const b = m.bytes;
      const i = pa - m.gpa;
      return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
    }
    return this.mmioRead(pa, 4);
  }

  write8(pa: number, value: number): void {
    pa = (pa & this.addrMask) >>> 0;
    if (pa < this.lowW.length) {
      this.lowW[pa] = value;
      return;
    }
    const m = this.maps[this.pageMap[pa >>> PAGE_SHIFT]];
    if (m !== null) {
      if (m.writable) m.bytes[pa - m.gpa] = value;
      else this.droppedWrites++;
      return;
    }
    this.mmioWrite(pa, 1, value & 0xff);
  }

  write16(pa: number, value: number): void {
    pa = (pa & this.addrMask) >>> 0;
    if ((pa & PAGE_MASK) > PAGE_SIZE - 2) {
      this.writeSplit(pa, 2, value);
      return;
    }
    if (pa < this.lowW.length) {
      const b = this.lowW;
      b[pa] = value;
      b[pa + 1] = value >>> 8;
      return;
    }
    const m = this.maps[this.pageMap[pa >>> PAGE_SHIFT]];
    if (m !== null) {
      if (m.writable) {
        const b = m.bytes;
        const i = pa - m.gpa;
        b[i] = value;
        b[i + 1] = value >>> 8;
      } else {
        this.droppedWrites++;
      }
      return;
    }
    this.mmioWrite(pa, 2, value & 0xffff);
  }

  write32(pa: number, value: number): void {
    pa = (pa & this.addrMask) >>> 0;
    if ((pa & PAGE_MASK) > PAGE_SIZE - 4) {
      this.writeSplit(pa, 4, value);
      return;
    }
    if (pa < this.lowW.length) {
      const b = this.lowW;
      b[pa] = value;
      b[pa + 1] = value >>> 8;
      b[pa + 2] = value >>> 16;
      b[pa + 3] = value >>> 24;
      return;
    }
    const m = this.maps[this.pageMap[pa >>> PAGE_SHIFT]];
    if (m !== null) {
      if (m.writable) {
        const b = m.bytes;
        const i = pa - m.gpa;
        b[i] = value;
        b[i + 1] = value >>> 8;
        b[i + 2] = value >>> 16;
        b[i + 3] = value >>> 24;
      } else {
        this.droppedWrites++;
      }
      return;
    }
    this.mmioWrite(pa, 4, value >>> 0);
  }

  // ---- slow paths ----

  /** Both pages MMIO: one access to the handler. Otherwise byte by byte, little-endian, wrapping at 4 GiB. */
  private readSplit(pa: number, size: 2 | 4): number {
    const last = (pa + size - 1) >>> 0;
    if (this.pageMap[pa >>> PAGE_SHIFT] === 0 && this.pageMap[last >>> PAGE_SHIFT] === 0) {
      return this.mmioRead(pa, size);
    }
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.read8((pa + i) >>> 0) << (8 * i);
    return v >>> 0;
  }

  private writeSplit(pa: number, size: 2 | 4, value: number): void {
    const last = (pa + size - 1) >>> 0;
    if (this.pageMap[pa >>> PAGE_SHIFT] === 0 && this.pageMap[last >>> PAGE_SHIFT] === 0) {
      this.mmioWrite(pa, size, size === 2 ? value & 0xffff : value >>> 0);
      return;
    }
    for (let i = 0; i < size; i++) this.write8((pa + i) >>> 0, value >>> (8 * i));
  }

  private mmioRead(pa: number, size: AccessSize): number {
    const h = this.mmio;
    if (h === null) {
      this.unclaimedAccesses++;
      return allOnes(size);
    }
    const v = h.read(pa, size);
    return size === 4 ? v >>> 0 : v & allOnes(size);
  }

  private mmioWrite(pa: number, size: AccessSize, value: number): void {
    const h = this.mmio;
    if (h === null) {
      this.unclaimedAccesses++;
      return;
    }
    h.write(pa, size, value);
  }
}

// The PIO and MMIO buses (STYLE rule 6, after Firecracker's Bus::insert): ranges map to
// devices, insertion rejects zero length, overflow and overlap, devices see offsets.
// Unclaimed reads return all-ones for the access size and unclaimed writes are
// dropped (what a PC's floating ISA bus does), both counted.
// An access that straddles the end of a device's range goes whole to the device
// holding its first byte; real chipsets split it, no guest here depends on that.
import type { AccessSize, Bus, BusInsertError, IoDevice, IoRange } from "./api.js";

export const PIO_LIMIT = 0x10000;
export const MMIO_LIMIT = 2 ** 32;

/** All-ones for an access size: what a read from nothing returns. */
export function allOnes(size: AccessSize): number {
  return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
}

export interface BusEntry {
  readonly device: IoDevice;
  readonly base: number;
  readonly length: number;
}

function label(space: string, e: { device: IoDevice; base: number; length: number }): string {
  return `${e.device.name}@${space}:0x${e.base.toString(16)}+${e.length}`;
}

function checkRange(space: "pio" | "mmio", limit: number, range: IoRange, device: IoDevice): BusInsertError | undefined {
  const me = label(space, { device, base: range.base, length: range.length });
  if (range.space !== space) return { kind: "overflow", message: `${me}: a ${range.space} range cannot go on the ${space} bus` };
  if (!Number.isInteger(range.length) || range.length <= 0) return { kind: "zero-length", message: `${me}: zero length` };
  if (!Number.isInteger(range.base) || range.base < 0 || range.base + range.length > limit) {
    return { kind: "overflow", message: `${me}: ends past the ${space} space (0x${limit.toString(16)})` };
  }
  return undefined;
}

/** Port I/O: a 64 K table of device indices, so dispatch is one array load. */
export class PioBus implements Bus {
  readonly space = "pio" as const;
  readonly unclaimed = { reads: 0, writes: 0 };
  /** port → index+1 into `entries` (0: no device). */
  readonly #table = new Uint16Array(PIO_LIMIT);
  readonly #entries: BusEntry[] = [];

  insert(range: IoRange, device: IoDevice): BusInsertError | undefined {
    const bad = checkRange("pio", PIO_LIMIT, range, device);
    if (bad) return bad;
    for (let p = range.base; p < range.base + range.length; p++) {
      const idx = this.#table[p]!;
      if (idx !== 0) {
        const other = this.#entries[idx - 1]!;
        return {
          kind: "overlap", with: other.device.name,
          message: `${label("pio", { device, ...range })} overlaps ${label("pio", other)}`,
        };
      }
    }
    this.#entries.push({ device, base: range.base, length: range.length });
    this.#table.fill(this.#entries.length, range.base, range.base + range.length);
    return undefined;
  }

  read(port: number, size: AccessSize): number {
    const idx = this.#table[port & 0xffff]!;
    if (idx === 0) {
      this.unclaimed.reads++;
      return allOnes(size);
    }
    const e = this.#entries[idx - 1]!;
    return e.device.read((port & 0xffff) - e.base, size);
  }

  write(port: number, size: AccessSize, value: number): void {
    const idx = this.#table[port & 0xffff]!;
    if (idx === 0) {
      this.unclaimed.writes++;
      return;
    }
    const e = this.#entries[idx - 1]!;
    e.device.write((port & 0xffff) - e.base, size, value);
  }

  entries(): readonly BusEntry[] {
    return this.#entries;
  }
}

/** Memory-mapped I/O: ranges kept sorted by base, found by binary search. */
export class MmioBus implements Bus {
  readonly space = "mmio" as const;
  readonly unclaimed = { reads: 0, writes: 0 };
  #entries: BusEntry[] = [];

  insert(range: IoRange, device: IoDevice): BusInsertError | undefined {
    const bad = checkRange("mmio", MMIO_LIMIT, range, device);
    if (bad) return bad;
    const end = range.base + range.length;
    for (const other of this.#entries) {
      if (range.base < other.base + other.length && other.base < end) {
        return {
          kind: "overlap", with: other.device.name,
          message: `${label("mmio", { device, ...range })} overlaps ${label("mmio", other)}`,
        };
      }
    }
    this.#entries = [...this.#entries, { device, base: range.base, length: range.length }].sort((a, b) => a.base - b.base);
    return undefined;
  }

  /** The entry holding `addr`, or undefined. */
  #find(addr: number): BusEntry | undefined {
    const es = this.#entries;
    let lo = 0;
    let hi = es.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const e = es[mid]!;
      if (addr < e.base) hi = mid - 1;
      else if (addr >= e.base + e.length) lo = mid + 1;
      else return e;
    }
    return undefined;
  }

  read(addr: number, size: AccessSize): number {
    const a = addr >>> 0;
    const e = this.#find(a);
    if (!e) {
      this.unclaimed.reads++;
      return allOnes(size);
    }
    return e.device.read(a - e.base, size);
  }

  write(addr: number, size: AccessSize, value: number): void {
    const a = addr >>> 0;
    const e = this.#find(a);
    if (!e) {
      this.unclaimed.writes++;
      return;
    }
    e.device.write(a - e.base, size, value);
  }

  entries(): readonly BusEntry[] {
    return this.#entries;
  }
}

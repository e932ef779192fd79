// GuestMemory over the monitor's mapping of the RAM frame (frameMap of the Frame cap
// mapped at guest-physical 0). Bounds-checked: accesses that leave RAM read as
// all-ones and drop writes, as the GuestMemory contract says; nothing throws.
import type { GuestMemory } from "./api.js";

export class FrameGuestMemory implements GuestMemory {
  readonly size: number;
  readonly #b: Uint8Array;

  constructor(view: Uint8Array) {
    this.#b = view;
    this.size = view.length;
  }

  #ok(gpa: number, n: number): boolean {
    return Number.isInteger(gpa) && gpa >= 0 && gpa + n <= this.size;
  }

  read8(gpa: number): number {
    return this.#ok(gpa, 1) ? this.#b[gpa]! : 0xff;
  }
  read16(gpa: number): number {
    return this.#ok(gpa, 2) ? this.#b[gpa]! | (this.#b[gpa + 1]! << 8) : 0xffff;
  }
  read32(gpa: number): number {
    if (!this.#ok(gpa, 4)) return 0xffffffff;
    const b = this.#b;
    return (b[gpa]! | (b[gpa + 1]! << 8) | (b[gpa + 2]! << 16) | (b[gpa + 3]! << 24)) >>> 0;
  }
  write8(gpa: number, value: number): void {
    if (this.#ok(gpa, 1)) this.#b[gpa] = value;
  }
  write16(gpa: number, value: number): void {
    if (!this.#ok(gpa, 2)) return;
    this.#b[gpa] = value;
    this.#b[gpa + 1] = value >>> 8;
  }
  write32(gpa: number, value: number): void {
    if (!this.#ok(gpa, 4)) return;
    const b = this.#b;
    b[gpa] = value;
    b[gpa + 1] = value >>> 8;
    b[gpa + 2] = value >>> 16;
    b[gpa + 3] = value >>> 24;
  }
  writeBytes(gpa: number, bytes: Uint8Array): boolean {
    if (!this.#ok(gpa, bytes.length)) return false;
    this.#b.set(bytes, gpa);
    return true;
  }
  readInto(gpa: number, buf: Uint8Array, offset: number, length: number): boolean {
    if (!bufferRangeOk(buf, offset, length) || !this.#ok(gpa, length)) return false;
    const b = this.#b;
    for (let i = 0; i < length; i++) buf[offset + i] = b[gpa + i]!;
    return true;
  }
  writeFrom(gpa: number, buf: Uint8Array, offset: number, length: number): boolean {
    if (!bufferRangeOk(buf, offset, length) || !this.#ok(gpa, length)) return false;
    const b = this.#b;
    for (let i = 0; i < length; i++) b[gpa + i] = buf[offset + i]!;
    return true;
  }
  readBytes(gpa: number, length: number): Uint8Array | undefined {
    if (!Number.isInteger(length) || length < 0 || !this.#ok(gpa, length)) return undefined;
    return this.#b.slice(gpa, gpa + length);
  }
}

/** `buf[offset, offset + length)` exists. */
function bufferRangeOk(buf: Uint8Array, offset: number, length: number): boolean {
  return Number.isInteger(offset) && Number.isInteger(length) && offset >= 0 && length >= 0 && offset + length <= buf.length;
}

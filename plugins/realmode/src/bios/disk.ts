// Disk images as the BIOS sees them: a backing (host file or bytes), a copy-on-write overlay
// for images that are not writable, and a CHS geometry.
import { SECTOR_SIZE } from "./layout.js";

export interface Geometry {
  readonly cylinders: number;
  readonly heads: number;
  readonly sectors: number;
}

export interface FloppyFormat extends Geometry {
  readonly bytes: number;
  /** CMOS drive type returned in BL by INT 13h AH=08h (RBIL INT 13/AH=08h). */
  readonly driveType: number;
}

/** Standard PC diskette formats (RBIL INT 13/AH=08h; IBM PC/AT Technical Reference, diskette). */
export const FLOPPY_FORMATS: readonly FloppyFormat[] = [
  { bytes: 160 * 1024, cylinders: 40, heads: 1, sectors: 8, driveType: 1 },
  { bytes: 180 * 1024, cylinders: 40, heads: 1, sectors: 9, driveType: 1 },
  { bytes: 320 * 1024, cylinders: 40, heads: 2, sectors: 8, driveType: 1 },
  { bytes: 360 * 1024, cylinders: 40, heads: 2, sectors: 9, driveType: 1 },
  { bytes: 720 * 1024, cylinders: 80, heads: 2, sectors: 9, driveType: 3 },
  { bytes: 1200 * 1024, cylinders: 80, heads: 2, sectors: 15, driveType: 2 },
  { bytes: 1440 * 1024, cylinders: 80, heads: 2, sectors: 18, driveType: 4 },
  { bytes: 2880 * 1024, cylinders: 80, heads: 2, sectors: 36, driveType: 6 },
];
export const FLOPPY_1440K = FLOPPY_FORMATS[6]!;
export const FLOPPY_2880K = FLOPPY_FORMATS[7]!;

/**
 * The diskette format for an image size: an exact standard size, else the 1.44 MB format
 * for anything up to 1.44 MB (a short image reads as zero-padded), else 2.88 MB.
 * Returns undefined for images larger than 2.88 MB.
 */
export function floppyFormat(bytes: number): FloppyFormat | undefined {
  const exact = FLOPPY_FORMATS.find((f) => f.bytes === bytes);
  if (exact) return exact;
  if (bytes <= FLOPPY_1440K.bytes) return FLOPPY_1440K;
  if (bytes <= FLOPPY_2880K.bytes) return FLOPPY_2880K;
  return undefined;
}

/** INT 13h CHS addresses at most 1024 cylinders, 255 heads, 63 sectors. */
export const CHS_MAX_CYLINDERS = 1024;

/**
 * A hard-disk geometry for an image size: 16 heads x 63 sectors while that fits in 1024
 * cylinders (504 MiB), else 255 heads x 63 sectors, cylinders rounded up and capped at 1024
 * (sectors past the cap are unreachable through CHS, as on a real BIOS without LBA).
 */
export function hardDiskGeometry(bytes: number): Geometry {
  const total = Math.max(1, Math.ceil(bytes / SECTOR_SIZE));
  const sectors = 63;
  const heads = total <= CHS_MAX_CYLINDERS * 16 * sectors ? 16 : 255;
  const cylinders = Math.min(CHS_MAX_CYLINDERS, Math.max(1, Math.ceil(total / (heads * sectors))));
  return { cylinders, heads, sectors };
}

/** A host-side problem with an image (too large for a floppy, ...). */
export class DiskImageError extends Error {
  override readonly name = "DiskImageError";
}

/**
 * Where an image's sectors live on the host. `read`/`write` return false on a host I/O
 * error (the BIOS turns that into a status code); they never throw.
 */
export interface DiskBacking {
  /** Bytes in the image. */
  readonly size: number;
  /** Fill `out` from byte `offset`; bytes past the end read as zero. */
  read(offset: number, out: Uint8Array): boolean;
  /** Store `src` at byte `offset` (bytes past the end are dropped: the image does not grow). */
  write(offset: number, src: Uint8Array): boolean;
  close?(): void;
}

/** An image held in memory (tests, small images). */
export class MemoryBacking implements DiskBacking {
  constructor(readonly data: Uint8Array) {}
  get size(): number { return this.data.length; }
  read(offset: number, out: Uint8Array): boolean {
    const end = Math.min(offset + out.length, this.data.length);
    if (offset >= end) { out.fill(0); return true; }
    out.set(this.data.subarray(offset, end));
    if (end - offset < out.length) out.fill(0, end - offset);
    return true;
  }
  write(offset: number, src: Uint8Array): boolean {
    if (offset >= this.data.length) return true;
    this.data.set(src.subarray(0, Math.min(src.length, this.data.length - offset)), offset);
    return true;
  }
}

export interface DiskImageOptions {
  /** Writes reach the backing (the host file); otherwise they go to an in-memory overlay. */
  writable: boolean;
}

/** Overlay sectors kept in memory per image; past this, writes fail with a BIOS status. */
export const OVERLAY_MAX_SECTORS = 256 * 1024; // 128 MiB

export class DiskImage {
  readonly geometry: Geometry;
  /** BL for INT 13h AH=08h; 0 for hard disks. */
  readonly driveType: number;
  /** Sectors in the image (the last partial sector counts, read zero-padded). */
  readonly totalSectors: number;
  readonly writable: boolean;
  /** Copy-on-write sectors of a non-writable image: LBA -> 512 bytes. The backing is never written. */
  private readonly overlay = new Map<number, Uint8Array>();

  /**
   * `data` (a byte array, wrapped in a MemoryBacking) or a backing. Unless `writable`, INT 13h
   * writes go to the in-memory copy-on-write overlay and the backing is never changed.
   */
  constructor(readonly drive: number, backing: DiskBacking | Uint8Array, opts: DiskImageOptions = { writable: false }) {
    this.backing = backing instanceof Uint8Array ? new MemoryBacking(backing) : backing;
    this.writable = opts.writable;
    const size = this.backing.size;
    this.totalSectors = Math.ceil(size / SECTOR_SIZE);
    if (drive < 0x80) {
      const f = floppyFormat(size);
      if (!f) throw new DiskImageError(`drive 0x${drive.toString(16)}: ${size} bytes is larger than any diskette format (2.88 MB)`);
      this.geometry = f;
      this.driveType = f.driveType;
    } else {
      this.geometry = hardDiskGeometry(size);
      this.driveType = 0;
    }
  }

  readonly backing: DiskBacking;

  get isFloppy(): boolean { return this.drive < 0x80; }

  /** Sectors addressable by LBA: the image's, or the whole floppy format for a short diskette image. */
  get sectorCount(): number {
    if (this.isFloppy) { const g = this.geometry; return g.cylinders * g.heads * g.sectors; }
    return this.totalSectors;
  }

  /** Sectors written to the overlay so far. */
  get overlaySectors(): number { return this.overlay.size; }

  /** The LBA of a CHS address (sector 1-based), or -1 outside the geometry. */
  lba(cylinder: number, head: number, sector: number): number {
    const g = this.geometry;
    if (cylinder >= g.cylinders || head >= g.heads || sector < 1 || sector > g.sectors) return -1;
    return (cylinder * g.heads + head) * g.sectors + (sector - 1);
  }

  /** Copy one sector into `out` (512 bytes); bytes past the image's end read as zero. False on a host error. */
  readSector(lba: number, out: Uint8Array): boolean {
    const o = this.overlay.get(lba);
    if (o) { out.set(o); return true; }
    return this.backing.read(lba * SECTOR_SIZE, out);
  }

  /**
   * Store one sector: through to the backing when writable, else into the overlay. Returns
   * false on a host write error or a full overlay; the caller reports a BIOS status.
   */
  writeSector(lba: number, src: Uint8Array): boolean {
    if (this.writable) return this.backing.write(lba * SECTOR_SIZE, src.subarray(0, SECTOR_SIZE));
    let o = this.overlay.get(lba);
    if (!o) {
      if (this.overlay.size >= OVERLAY_MAX_SECTORS) return false;
      o = new Uint8Array(SECTOR_SIZE);
      this.overlay.set(lba, o);
    }
    o.set(src.subarray(0, SECTOR_SIZE));
    return true;
  }

  close(): void { this.backing.close?.(); }
}

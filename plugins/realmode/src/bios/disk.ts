// Disk images as the BIOS sees them: a byte array and a CHS geometry.
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

export class DiskImage {
  readonly geometry: Geometry;
  /** BL for INT 13h AH=08h; 0 for hard disks. */
  readonly driveType: number;

  /**
   * `data` is the image; writes (INT 13h AH=03h) change this copy only, never the host file.
   */
  constructor(readonly drive: number, readonly data: Uint8Array, readonly readonly: boolean) {
    if (drive < 0x80) {
      const f = floppyFormat(data.length);
      if (!f) throw new DiskImageError(`drive 0x${drive.toString(16)}: ${data.length} bytes is larger than any diskette format (2.88 MB)`);
      this.geometry = f;
      this.driveType = f.driveType;
    } else {
      this.geometry = hardDiskGeometry(data.length);
      this.driveType = 0;
    }
  }

  get isFloppy(): boolean { return this.drive < 0x80; }

  /** The LBA of a CHS address (sector 1-based), or -1 outside the geometry. */
  lba(cylinder: number, head: number, sector: number): number {
    const g = this.geometry;
    if (cylinder >= g.cylinders || head >= g.heads || sector < 1 || sector > g.sectors) return -1;
    return (cylinder * g.heads + head) * g.sectors + (sector - 1);
  }

  /** Copy one sector into `out` (512 bytes); bytes past the image's end read as zero. */
  readSector(lba: number, out: Uint8Array): void {
    const start = lba * SECTOR_SIZE;
    const end = Math.min(start + SECTOR_SIZE, this.data.length);
    if (start >= end) { out.fill(0); return; }
    out.set(this.data.subarray(start, end));
    if (end - start < SECTOR_SIZE) out.fill(0, end - start);
  }

  /** Store one sector; bytes past the image's end are dropped (the image does not grow). */
  writeSector(lba: number, src: Uint8Array): void {
    const start = lba * SECTOR_SIZE;
    if (start >= this.data.length) return;
    this.data.set(src.subarray(0, Math.min(SECTOR_SIZE, this.data.length - start)), start);
  }
}

import { describe, expect, it } from "vitest";
import { DiskImage, DiskImageError, FLOPPY_FORMATS, floppyFormat, hardDiskGeometry } from "./disk.js";

describe("disk geometry", () => {
  it("recognises every standard diskette size", () => {
    for (const f of FLOPPY_FORMATS) expect(floppyFormat(f.bytes)).toBe(f);
    expect(floppyFormat(1440 * 1024)).toMatchObject({ cylinders: 80, heads: 2, sectors: 18 });
  });

  it("gives a short diskette image the 1.44 MB format and reads past its end as zeros", () => {
    const img = new Uint8Array(512).fill(0x11);
    const d = new DiskImage(0, img);
    expect(d.geometry).toMatchObject({ cylinders: 80, heads: 2, sectors: 18 });
    const out = new Uint8Array(512).fill(0xee);
    d.readSector(5, out);
    expect(out.every((b) => b === 0)).toBe(true);
    d.readSector(0, out);
    expect(out[511]).toBe(0x11);
  });

  it("refuses a diskette image larger than 2.88 MB", () => {
    expect(() => new DiskImage(0, new Uint8Array(2880 * 1024 + 512))).toThrow(DiskImageError);
  });

  it("uses 16 heads x 63 sectors up to 504 MiB and 255 heads beyond, capped at 1024 cylinders", () => {
    expect(hardDiskGeometry(10 * 1024 * 1024)).toEqual({ cylinders: 21, heads: 16, sectors: 63 });
    // one sector more than 16 heads can address: 1032193 sectors / (255*63) -> 65 cylinders
    expect(hardDiskGeometry(1024 * 16 * 63 * 512 + 512)).toEqual({ cylinders: 65, heads: 255, sectors: 63 });
    expect(hardDiskGeometry(100 * 1024 * 1024 * 1024).cylinders).toBe(1024);
    expect(hardDiskGeometry(512)).toEqual({ cylinders: 1, heads: 16, sectors: 63 });
  });

  it("maps CHS to LBA and rejects addresses outside the geometry", () => {
    const d = new DiskImage(0, new Uint8Array(1440 * 1024));
    expect(d.lba(0, 0, 1)).toBe(0);
    expect(d.lba(0, 1, 1)).toBe(18);
    expect(d.lba(1, 0, 1)).toBe(36);
    expect(d.lba(79, 1, 18)).toBe(2879);
    expect(d.lba(80, 0, 1)).toBe(-1);
    expect(d.lba(0, 2, 1)).toBe(-1);
    expect(d.lba(0, 0, 0)).toBe(-1);
    expect(d.lba(0, 0, 19)).toBe(-1);
  });
});

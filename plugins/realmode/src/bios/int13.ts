// INT 13h: diskette and hard-disk services over DiskImages, CHS and LBA (EDD).
// Sources: IBM PC/AT Technical Reference (DISKETTE_IO, DISK_IO); RBIL INT 13h (status
// table 00234); Phoenix "BIOS Enhanced Disk Drive Specification" 1.1 (functions 41h-48h,
// the disk address packet and the drive parameter table); SeaBIOS disk.c where the
// documents leave the choice open (the status for a missing drive or a bad parameter).
//
// Emulated: 00h, 01h, 02h, 03h, 04h, 08h, 0Ch, 0Dh, 10h, 15h, 16h, 41h, 42h, 43h, 44h, 47h,
// 48h. Not emulated: the 64 KiB DMA boundary rule (transfers may cross it; a buffer leaving
// guest RAM fails with AH=09h), formatting (05h-07h), 45h/46h/49h (removable media), and
// a device path or DPTE in the 48h result (the DPTE pointer reads FFFF:FFFF).
import type { GuestMemory } from "../../../../src/monitor/api.js";
import type { X86State } from "../../../../src/x86/types.js";
import type { DiskImage } from "./disk.js";
import type { BiosReturn } from "./frame.js";
import { BDA_FLOPPY_STATUS, BDA_HDD_STATUS, DPT_OFFSET, ROM_SEGMENT, SECTOR_SIZE } from "./layout.js";
import { hi8, lo16, lo8, loadRealSegment, setAh, setAl, setAx, setBl, setBx, setCh, setCl, setCx, setDh, setDi, setDl, setDx } from "./regs.js";

/** INT 13h status codes (RBIL INT 13/AH=01h, table 00234). */
export const enum DiskStatus {
  Ok = 0x00,
  BadCommand = 0x01,
  AddressMarkNotFound = 0x02,
  WriteProtected = 0x03,
  SectorNotFound = 0x04,
  ChangeLine = 0x06,
  DmaBoundary = 0x09,
  UnsupportedTrack = 0x0c,
  /** Host read error: reported as an uncorrectable data error. */
  EccError = 0x10,
  ControllerFailure = 0x20,
  SeekFailed = 0x40,
  Timeout = 0x80,
  DriveNotReady = 0xaa,
  /** Host write error (or a full overlay): "write fault on selected drive". */
  WriteFault = 0xcc,
}

/** Largest EDD transfer in one call (Phoenix EDD 1.1: 7Fh blocks). */
export const EDD_MAX_BLOCKS = 0x7f;
/** The EDD version we report in AH for 41h: 2.1 (EDD 1.1); CX bit 0 only (42h-44h, 47h, 48h). */
export const EDD_VERSION = 0x21;
export const EDD_SUBSETS = 0x0001;
/** Size of the 48h result without (1Ah) and with (1Eh) the DPTE pointer. */
const EDD_PARAMS_MIN = 0x1a;
const EDD_PARAMS_DPTE = 0x1e;

export class DiskService {
  private readonly disks = new Map<number, DiskImage>();
  private readonly sector = new Uint8Array(SECTOR_SIZE);
  readonly floppies: number;
  readonly hardDisks: number;

  constructor(private readonly mem: GuestMemory, disks: readonly DiskImage[], private readonly writeProtected: ReadonlySet<number> = new Set()) {
    for (const d of disks) this.disks.set(d.drive, d);
    this.floppies = disks.filter((d) => d.isFloppy).length;
    this.hardDisks = disks.length - this.floppies;
  }

  disk(drive: number): DiskImage | undefined { return this.disks.get(drive); }

  int13(s: X86State, ret: BiosReturn): void {
    const fn = hi8(s.eax);
    const drive = lo8(s.edx);
    const d = this.disks.get(drive);
    const statusAt = drive < 0x80 ? BDA_FLOPPY_STATUS : BDA_HDD_STATUS;
    let status: number;
    switch (fn) {
      case 0x00: // reset
        status = d ? DiskStatus.Ok : DiskStatus.BadCommand;
        break;
      case 0x01: { // status of the last operation; does not overwrite it
        const last = this.mem.read8(statusAt);
        setAh(s, last);
        ret.setCarry(last !== 0);
        return;
      }
      case 0x02: case 0x03: case 0x04:
        if (!d) { setAl(s, 0); status = DiskStatus.BadCommand; break; }
        status = this.chsTransfer(d, s, fn);
        break;
      case 0x08:
        if (!d) { status = DiskStatus.BadCommand; break; }
        this.driveParameters(d, s);
        status = DiskStatus.Ok;
        break;
      case 0x0c: // seek to CH/CL cylinder, DH head
        if (!d || d.isFloppy) { status = DiskStatus.BadCommand; break; }
        status = d.lba(chsCylinder(s), hi8(s.edx), 1) < 0 ? DiskStatus.SeekFailed : DiskStatus.Ok;
        break;
      case 0x0d: // alternate reset (hard disk only)
      case 0x10: // test drive ready (hard disk only)
        status = d && !d.isFloppy ? DiskStatus.Ok : DiskStatus.BadCommand;
        break;
      case 0x15: // disk type: CF=0 and AH = type, the status byte is not touched
        if (!d) setAh(s, 0x00);
        else if (d.isFloppy) setAh(s, hasChangeLine(d) ? 0x02 : 0x01);
        else {
          setAh(s, 0x03);
          const n = d.sectorCount;
          setCx(s, n >>> 16); setDx(s, n & 0xffff);
        }
        ret.setCarry(false);
        return;
      case 0x16: // change line: our media never change
        if (!d || !d.isFloppy) status = DiskStatus.BadCommand;
        else status = hasChangeLine(d) ? DiskStatus.Ok : DiskStatus.ChangeLine;
        break;
      case 0x41: // EDD installation check
        if (!d || d.isFloppy || lo16(s.ebx) !== 0x55aa) { status = DiskStatus.BadCommand; break; }
        setBx(s, 0xaa55);
        setCx(s, EDD_SUBSETS);
        setAh(s, EDD_VERSION);
        ret.setCarry(false);
        return; // AH carries the version, not a status
      case 0x42: case 0x43: case 0x44: case 0x47:
        status = d && !d.isFloppy ? this.eddTransfer(d, s, fn) : DiskStatus.BadCommand;
        break;
      case 0x48:
        status = d && !d.isFloppy ? this.eddParameters(d, s) : DiskStatus.BadCommand;
        break;
      default:
        status = DiskStatus.BadCommand;
    }
    this.mem.write8(statusAt, status);
    setAh(s, status);
    ret.setCarry(status !== DiskStatus.Ok);
  }

  /** INT 13h AH=02h/03h/04h: CHS read, write, verify at ES:BX; AL = sectors done. */
  private chsTransfer(d: DiskImage, s: X86State, fn: number): number {
    const count = lo8(s.eax);
    let cyl = chsCylinder(s);
    let sec = lo8(s.ecx) & 0x3f;
    let head = hi8(s.edx);
    const g = d.geometry;
    let done = 0;
    let status: number = count === 0 || count > 0x80 ? DiskStatus.BadCommand : DiskStatus.Ok;
    if (status === DiskStatus.Ok && fn === 0x03 && this.writeProtected.has(d.drive)) status = DiskStatus.WriteProtected;
    const buf = (s.es.base + lo16(s.ebx)) >>> 0;
    while (status === DiskStatus.Ok && done < count) {
      const lba = d.lba(cyl, head, sec);
      if (lba < 0) { status = DiskStatus.SectorNotFound; break; }
      status = this.sectorOp(d, fn, lba, buf + done * SECTOR_SIZE);
      if (status !== DiskStatus.Ok) break;
      done++;
      // Multi-sector transfers continue on the next head and cylinder.
      if (++sec > g.sectors) { sec = 1; if (++head >= g.heads) { head = 0; cyl++; } }
    }
    setAl(s, done);
    return status;
  }

  /** One sector of a read (02h/42h), write (03h/43h) or verify (04h/44h) at guest address `at`. */
  private sectorOp(d: DiskImage, fn: number, lba: number, at: number): number {
    const kind = fn & 0x0f; // 2 read, 3 write, 4 verify
    if (kind === 0x03) {
      const src = this.mem.readBytes(at >>> 0, SECTOR_SIZE);
      if (!src) return DiskStatus.DmaBoundary;
      return d.writeSector(lba, src) ? DiskStatus.Ok : DiskStatus.WriteFault;
    }
    if (!d.readSector(lba, this.sector)) return DiskStatus.EccError;
    if (kind === 0x02 && !this.mem.writeBytes(at >>> 0, this.sector)) return DiskStatus.DmaBoundary;
    return DiskStatus.Ok;
  }

  private driveParameters(d: DiskImage, s: X86State): void {
    const g = d.geometry;
    const maxCyl = g.cylinders - 1;
    setAx(s, 0);
    setCh(s, maxCyl & 0xff);
    setCl(s, (g.sectors & 0x3f) | ((maxCyl >> 2) & 0xc0));
    setDh(s, g.heads - 1);
    if (d.isFloppy) {
      setBl(s, d.driveType);
      setDl(s, this.floppies);
      loadRealSegment(s.es, ROM_SEGMENT);
      setDi(s, DPT_OFFSET);
    } else {
      setDl(s, this.hardDisks);
    }
  }

  /**
   * 42h read, 43h write (AL 0/1: no verify, 2: verify), 44h verify, 47h seek, all through the
   * disk address packet at DS:SI (EDD 1.1): size (10h, or 18h with a flat 64-bit buffer
   * used when the seg:off is FFFF:FFFF), block count (updated to the blocks done), buffer,
   * 64-bit LBA.
   */
  private eddTransfer(d: DiskImage, s: X86State, fn: number): number {
    const dap = (s.ds.base + lo16(s.esi)) >>> 0;
    const size = this.mem.read8(dap);
    if (size < 0x10 || !this.inRam(dap, 0x10)) return DiskStatus.BadCommand;
    if (fn === 0x43 && lo8(s.eax) > 2) return DiskStatus.BadCommand;
    const count = this.mem.read16(dap + 2);
    const lbaLo = this.mem.read32(dap + 8);
    const lbaHi = this.mem.read32(dap + 12);
    const total = d.sectorCount;
    if (lbaHi !== 0 || lbaLo >= total) {
      if (fn !== 0x47) this.mem.write16(dap + 2, 0);
      return DiskStatus.BadCommand;
    }
    if (fn === 0x47) return DiskStatus.Ok;
    if (count > EDD_MAX_BLOCKS) { this.mem.write16(dap + 2, 0); return DiskStatus.BadCommand; }
    if (fn === 0x43 && this.writeProtected.has(d.drive)) { this.mem.write16(dap + 2, 0); return DiskStatus.WriteProtected; }
    let buf = ((this.mem.read16(dap + 6) << 4) + this.mem.read16(dap + 4)) >>> 0;
    if (this.mem.read32(dap + 4) === 0xffffffff) {
      if (size < 0x18 || !this.inRam(dap, 0x18) || this.mem.read32(dap + 20) !== 0) { this.mem.write16(dap + 2, 0); return DiskStatus.BadCommand; }
      buf = this.mem.read32(dap + 16);
    }
    let done = 0;
    let status: number = DiskStatus.Ok;
    while (done < count) {
      const lba = lbaLo + done;
      if (lba >= total) { status = DiskStatus.SectorNotFound; break; }
      status = this.sectorOp(d, fn, lba, buf + done * SECTOR_SIZE);
      if (status !== DiskStatus.Ok) break;
      done++;
    }
    this.mem.write16(dap + 2, done);
    return status;
  }

  /** 48h: the drive parameter table at DS:SI, as large as the caller's size word allows. */
  private eddParameters(d: DiskImage, s: X86State): number {
    const at = (s.ds.base + lo16(s.esi)) >>> 0;
    const room = this.mem.read16(at);
    if (room < EDD_PARAMS_MIN || !this.inRam(at, EDD_PARAMS_MIN)) return DiskStatus.BadCommand;
    const withDpte = room >= EDD_PARAMS_DPTE && this.inRam(at, EDD_PARAMS_DPTE);
    const g = d.geometry;
    const m = this.mem;
    m.write16(at, withDpte ? EDD_PARAMS_DPTE : EDD_PARAMS_MIN);
    m.write16(at + 2, 0x0002); // bit 1: the CHS fields are valid
    m.write32(at + 4, g.cylinders);
    m.write32(at + 8, g.heads);
    m.write32(at + 12, g.sectors);
    m.write32(at + 16, d.sectorCount);
    m.write32(at + 20, 0);
    m.write16(at + 24, SECTOR_SIZE);
    if (withDpte) m.write32(at + 26, 0xffffffff); // no DPTE
    return DiskStatus.Ok;
  }

  private inRam(at: number, len: number): boolean {
    return at + len <= this.mem.size;
  }

  /**
   * INT 19h helper: read sector 0 of `drive` into `out`; false if absent or unreadable.
   */
  readBootSector(drive: number, out: Uint8Array): boolean {
    const d = this.disks.get(drive);
    return !!d && d.readSector(0, out);
  }

  get drives(): readonly number[] { return [...this.disks.keys()]; }
}

/** The 10-bit cylinder of CH and CL bits 7-6. */
function chsCylinder(s: X86State): number {
  return hi8(s.ecx) | ((lo8(s.ecx) & 0xc0) << 2);
}

/** PC/AT drives (1.2 MB and up, types 2, 3, 4, 6) have a change line; 360 KB drives (type 1) do not. */
function hasChangeLine(d: DiskImage): boolean {
  return d.driveType !== 1;
}

// The BIOS services, in TypeScript, over a register block (X86State) and GuestMemory.
// Both ways of reaching them (native ROM stubs, emulated INT n) call `Bios.call`.
// Sources: IBM PC/AT Technical Reference (BIOS listing), Ralf Brown's Interrupt List (RBIL).
//
// Services: INT 08h (tick), 10h (00h/01h/02h/03h/0Eh/0Fh), 11h, 12h, 13h (00h/01h/02h/03h/
// 08h/15h), 15h (all "unsupported": CF=1 AH=86h), 16h (00h/01h/02h/10h/11h), 19h, 1Ah (00h/01h).
// Every other vector returns at once with the registers unchanged.
import type { Console, GuestMemory } from "../../../../src/monitor/api.js";
import type { X86State } from "../../../../src/x86/types.js";
import { DiskImage } from "./disk.js";
import type { BiosReturn } from "./frame.js";
import { KeyboardBuffer } from "./keyboard.js";
import {
  BDA_COM1, BDA_CURSOR_SHAPE, BDA_EQUIPMENT, BDA_FLOPPY_STATUS, BDA_HDD_COUNT, BDA_HDD_STATUS, BDA_KBD_FLAGS, BDA_MEMORY_KIB,
  BDA_MIDNIGHT, BDA_TICKS, BIOS_CALL_PORT, BOOT_OFFSET, BOOT_SEGMENT, BOOT_SIGNATURE_OFFSET, COM1_PORT,
  DPT_OFFSET, IVT_BASE, IVT_ENTRIES, MODEL_AT, ROM_BASE, ROM_DATE_OFFSET, ROM_MODEL_OFFSET, ROM_SEGMENT,
  SECTOR_SIZE, STUB_OFFSET, STUB_SIZE, STUB_TABLE, TICKS_PER_DAY, VECTOR_DPT,
} from "./layout.js";
import { hi8, lo16, lo8, setAh, setAl, setAx, setBh, setBl, setCh, setCl, setCx, setDh, setDi, setDl, setDx, loadRealSegment } from "./regs.js";
import { Video } from "./video.js";

export const enum BiosStatus {
  /** The service finished; the caller returns to the guest. */
  Done = 0,
  /** INT 16h AH=00h/10h found no key: nothing changed; retry the same call later. */
  WaitForKey = 1,
}

/** INT 13h status codes (RBIL INT 13/AH=01h table 00234). */
export const enum DiskStatus {
  Ok = 0x00,
  BadCommand = 0x01,
  WriteProtected = 0x03,
  SectorNotFound = 0x04,
  DmaBoundary = 0x09,
}

/** INT 15h "function not supported" (RBIL INT 15h). */
export const INT15_UNSUPPORTED = 0x86;

const PIC1_EOI_PORT = 0x20;
const PIC2_EOI_PORT = 0xa0;
const EOI = 0x20;

/** Diskette parameter table for 1.44 MB drives (IBM PC/AT Technical Reference, DISK_BASE). */
const DPT_1440K = [0xdf, 0x02, 0x25, 0x02, 0x12, 0x1b, 0xff, 0x6c, 0xf6, 0x0f, 0x08];

/** The machine code of stub `vector`: `out BIOS_CALL_PORT, al`, an EOI for IRQ vectors, `iret`. */
export function stubCode(vector: number): number[] {
  const out = [0xe6, BIOS_CALL_PORT];
  const eoi = (port: number) => [0xe6, port]; // out port, al
  if (vector >= 0x08 && vector <= 0x0f) {
    // IRQ 0-7 (master PIC at vector 08h): push ax; mov al,20h; out 20h,al; pop ax
    return [...out, 0x50, 0xb0, EOI, ...eoi(PIC1_EOI_PORT), 0x58, 0xcf];
  }
  if (vector >= 0x70 && vector <= 0x77) {
    return [...out, 0x50, 0xb0, EOI, ...eoi(PIC2_EOI_PORT), ...eoi(PIC1_EOI_PORT), 0x58, 0xcf];
  }
  return [...out, 0xcf];
}

/** The stub vector for a linear address at a stub's first byte, or -1. */
export function stubVectorAt(linear: number): number {
  const off = linear - STUB_TABLE;
  if (off < 0 || off >= IVT_ENTRIES * STUB_SIZE || off % STUB_SIZE !== 0) return -1;
  return off / STUB_SIZE;
}

export interface BiosOptions {
  disks: readonly DiskImage[];
  /** The drive INT 19h boots from. */
  bootDrive: number;
}

export class Bios {
  readonly keyboard: KeyboardBuffer;
  readonly video: Video;
  private readonly disks = new Map<number, DiskImage>();
  private readonly sector = new Uint8Array(SECTOR_SIZE);
  private readonly floppies: number;
  private readonly hardDisks: number;
  readonly bootDrive: number;

  constructor(private readonly mem: GuestMemory, console: Console, opts: BiosOptions) {
    for (const d of opts.disks) this.disks.set(d.drive, d);
    this.floppies = opts.disks.filter((d) => d.isFloppy).length;
    this.hardDisks = opts.disks.length - this.floppies;
    this.bootDrive = opts.bootDrive;
    this.keyboard = new KeyboardBuffer(mem);
    this.video = new Video(mem, console);
    console.onInput((b) => this.keyboard.hostByte(b));
  }

  /** Write the IVT, the ROM stubs and tables, and the BDA. */
  install(): void {
    const m = this.mem;
    for (let v = 0; v < IVT_ENTRIES; v++) {
      const code = stubCode(v);
      const at = STUB_TABLE + v * STUB_SIZE;
      for (let i = 0; i < STUB_SIZE; i++) m.write8(at + i, i < code.length ? code[i]! : 0x90);
      m.write16(IVT_BASE + 4 * v, STUB_OFFSET + v * STUB_SIZE);
      m.write16(IVT_BASE + 4 * v + 2, ROM_SEGMENT);
    }
    for (let i = 0; i < DPT_1440K.length; i++) m.write8(ROM_BASE + DPT_OFFSET + i, DPT_1440K[i]!);
    m.write16(IVT_BASE + 4 * VECTOR_DPT, DPT_OFFSET);
    const date = "01/01/24";
    for (let i = 0; i < date.length; i++) m.write8(ROM_BASE + ROM_DATE_OFFSET + i, date.charCodeAt(i));
    m.write8(ROM_BASE + ROM_MODEL_OFFSET, MODEL_AT);

    for (let a = 0x400; a < 0x500; a++) m.write8(a, 0);
    m.write16(BDA_COM1, COM1_PORT);
    // Equipment word (RBIL INT 11h): bit 0 diskette present, bit 1 x87, bits 5-4 = 10b
    // (80x25 colour), bits 7-6 diskettes - 1, bits 11-9 serial ports.
    let equip = 0x0002 | (0b10 << 4) | (1 << 9);
    if (this.floppies > 0) equip |= 1 | (((this.floppies - 1) & 3) << 6);
    m.write16(BDA_EQUIPMENT, equip);
    // Conventional memory below 640 KiB; no EBDA is reserved.
    m.write16(BDA_MEMORY_KIB, Math.min(640, Math.floor(m.size / 1024)));
    m.write8(BDA_HDD_COUNT, this.hardDisks);
    this.keyboard.install();
    this.video.install();
  }

  /** Run the service for `vector` on `s`; flags and jumps go through `ret`. */
  call(vector: number, s: X86State, ret: BiosReturn): BiosStatus {
    switch (vector) {
      case 0x08: this.int08(); break;
      case 0x10: this.int10(s); break;
      case 0x11: setAx(s, this.mem.read16(BDA_EQUIPMENT)); break;
      case 0x12: setAx(s, this.mem.read16(BDA_MEMORY_KIB)); break;
      case 0x13: this.int13(s, ret); break;
      case 0x15: setAh(s, INT15_UNSUPPORTED); ret.setCarry(true); break;
      case 0x16: return this.int16(s, ret);
      case 0x19: this.int19(s, ret); break;
      case 0x1a: this.int1a(s, ret); break;
      default: break;
    }
    return BiosStatus.Done;
  }

  /**
   * INT 19h: load sector 0 of the boot drive to 0000:7C00 and check the 0x55AA signature.
   * On success DL = drive and the return goes to 0000:7C00; returns false otherwise.
   */
  bootstrap(s: X86State, ret: BiosReturn): boolean {
    const d = this.disks.get(this.bootDrive);
    if (!d) return false;
    d.readSector(0, this.sector);
    if (this.sector[BOOT_SIGNATURE_OFFSET] !== 0x55 || this.sector[BOOT_SIGNATURE_OFFSET + 1] !== 0xaa) return false;
    if (!this.mem.writeBytes((BOOT_SEGMENT << 4) + BOOT_OFFSET, this.sector)) return false;
    setDl(s, d.drive);
    ret.jump(BOOT_SEGMENT, BOOT_OFFSET);
    return true;
  }

  // ---- services

  private int08(): void {
    let t = this.mem.read32(BDA_TICKS) + 1;
    if (t >= TICKS_PER_DAY) { t = 0; this.mem.write8(BDA_MIDNIGHT, 1); }
    this.mem.write32(BDA_TICKS, t);
  }

  private int10(s: X86State): void {
    const v = this.video;
    switch (hi8(s.eax)) {
      case 0x00: v.setMode(lo8(s.eax)); break;
      case 0x01: this.mem.write16(BDA_CURSOR_SHAPE, lo16(s.ecx)); break;
      case 0x02: v.setCursor(hi8(s.ebx), hi8(s.edx), lo8(s.edx)); break;
      case 0x03: {
        const c = v.getCursor(hi8(s.ebx));
        setDh(s, c.row); setDl(s, c.col);
        setCx(s, this.mem.read16(BDA_CURSOR_SHAPE));
        break;
      }
      case 0x0e: v.teletype(lo8(s.eax), hi8(s.ebx)); break;
      case 0x0f: setAl(s, v.mode()); setAh(s, v.columns()); setBh(s, v.activePage()); break;
      default: break; // a VGA BIOS ignores functions it does not have
    }
  }

  private int13(s: X86State, ret: BiosReturn): void {
    const fn = hi8(s.eax);
    const drive = lo8(s.edx);
    const d = this.disks.get(drive);
    let status: number = DiskStatus.Ok;
    switch (fn) {
      case 0x00: // reset
        status = d ? DiskStatus.Ok : DiskStatus.BadCommand;
        break;
      case 0x01: // status of the last operation
        status = this.mem.read8(drive < 0x80 ? BDA_FLOPPY_STATUS : BDA_HDD_STATUS);
        setAh(s, status);
        ret.setCarry(status !== 0);
        return; // does not overwrite the stored status
      case 0x02:
      case 0x03:
        status = d ? this.transfer(d, s, fn === 0x03) : DiskStatus.BadCommand;
        if (!d) setAl(s, 0);
        break;
      case 0x08:
        if (!d) { status = DiskStatus.BadCommand; break; }
        this.driveParameters(d, s);
        break;
      case 0x15: // disk type: AH=01h diskette without change line, 03h hard disk (CX:DX sectors)
        setAh(s, d ? (d.isFloppy ? 0x01 : 0x03) : 0x00);
        if (d && !d.isFloppy) {
          const g = d.geometry;
          const n = g.cylinders * g.heads * g.sectors;
          setCx(s, n >>> 16); setDx(s, n & 0xffff);
        }
        ret.setCarry(false);
        return;
      default:
        status = DiskStatus.BadCommand;
    }
    this.mem.write8(drive < 0x80 ? BDA_FLOPPY_STATUS : BDA_HDD_STATUS, status);
    setAh(s, status);
    ret.setCarry(status !== DiskStatus.Ok);
  }

  /** INT 13h AH=02h/03h: CHS transfer to/from ES:BX; AL = sectors done. */
  private transfer(d: DiskImage, s: X86State, write: boolean): number {
    const count = lo8(s.eax);
    let cyl = hi8(s.ecx) | ((lo8(s.ecx) & 0xc0) << 2);
    let sec = lo8(s.ecx) & 0x3f;
    let head = hi8(s.edx);
    const g = d.geometry;
    let done = 0;
    let status: number = count === 0 ? DiskStatus.BadCommand : DiskStatus.Ok;
    if (write && d.readonly) status = DiskStatus.WriteProtected;
    const buf = (s.es.base + lo16(s.ebx)) >>> 0;
    while (status === DiskStatus.Ok && done < count) {
      const lba = d.lba(cyl, head, sec);
      if (lba < 0) { status = DiskStatus.SectorNotFound; break; }
      const at = buf + done * SECTOR_SIZE;
      if (write) {
        const src = this.mem.readBytes(at, SECTOR_SIZE);
        if (!src) { status = DiskStatus.DmaBoundary; break; }
        d.writeSector(lba, src);
      } else {
        d.readSector(lba, this.sector);
        if (!this.mem.writeBytes(at, this.sector)) { status = DiskStatus.DmaBoundary; break; }
      }
      done++;
      // Multi-sector transfers continue on the next head and cylinder.
      if (++sec > g.sectors) { sec = 1; if (++head >= g.heads) { head = 0; cyl++; } }
    }
    setAl(s, done);
    return status;
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

  private int16(s: X86State, ret: BiosReturn): BiosStatus {
    const kb = this.keyboard;
    switch (hi8(s.eax)) {
      case 0x00:
      case 0x10: {
        const k = kb.take();
        if (k < 0) return BiosStatus.WaitForKey; // no register or flag touched
        setAx(s, k);
        break;
      }
      case 0x01:
      case 0x11: {
        const k = kb.peek();
        if (k >= 0) setAx(s, k);
        ret.setZero(k < 0);
        break;
      }
      case 0x02:
        setAl(s, this.mem.read8(BDA_KBD_FLAGS));
        break;
      default:
        break;
    }
    return BiosStatus.Done;
  }

  private int19(s: X86State, ret: BiosReturn): void {
    if (!this.bootstrap(s, ret)) {
      const msg = `hvkit BIOS: no bootable disk in drive ${this.bootDrive.toString(16).padStart(2, "0")}h\r\n`;
      for (let i = 0; i < msg.length; i++) this.video.teletype(msg.charCodeAt(i), this.video.activePage());
    }
  }

  private int1a(s: X86State, ret: BiosReturn): void {
    switch (hi8(s.eax)) {
      case 0x00: {
        const t = this.mem.read32(BDA_TICKS);
        setCx(s, t >>> 16); setDx(s, t & 0xffff);
        setAl(s, this.mem.read8(BDA_MIDNIGHT));
        this.mem.write8(BDA_MIDNIGHT, 0);
        ret.setCarry(false);
        break;
      }
      case 0x01:
        this.mem.write32(BDA_TICKS, ((lo16(s.ecx) << 16) | lo16(s.edx)) >>> 0);
        this.mem.write8(BDA_MIDNIGHT, 0);
        ret.setCarry(false);
        break;
      default: // the RTC functions are not emulated
        ret.setCarry(true);
    }
  }
}

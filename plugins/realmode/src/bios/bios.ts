// The BIOS services, in TypeScript, over a register block (X86State) and GuestMemory.
// Both ways of reaching them (native ROM stubs, emulated INT n) call `Bios.call`.
// Sources: IBM PC/AT Technical Reference (BIOS listing), Ralf Brown's Interrupt List (RBIL).
//
// Vectors: 08h (tick, then INT 1Ch from the ROM stub), 09h (keyboard IRQ: a ROM routine
// reads port 60h, calls INT 15h/4Fh, then the service), 10h (video.ts), 11h, 12h, 13h
// (int13.ts), 14h (serial.ts), 15h (system.ts), 16h, 18h, 19h, 1Ah (time.ts), 70h (RTC IRQ).
// Every other vector returns at once with the registers unchanged (the IRQ ones send EOI).
import type { Console, GuestMemory, Platform, VirtualClock } from "../../../../src/monitor/api.js";
import type { X86State } from "../../../../src/x86/types.js";
import type { DiskImage } from "./disk.js";
import type { BiosReturn } from "./frame.js";
import { DiskService } from "./int13.js";
import { KeyboardBuffer, standardKey } from "./keyboard.js";
import {
  BDA_COM1, BDA_EBDA_SEGMENT, BDA_EQUIPMENT, BDA_HDD_COUNT, BDA_KBD_FLAGS, BDA_MEMORY_KIB, BIOS_CALL_PORT, BOOT_OFFSET,
  BOOT_SEGMENT, BOOT_SIGNATURE_OFFSET, COM1_PORT, DPT_OFFSET, EBDA_SIZE, IVT_BASE, IVT_ENTRIES, KBC_DATA, KBD_IRQ_OFFSET,
  MODEL_AT, NO_BOOT_OFFSET, PIC1_CMD, PIC1_DATA, PIC2_CMD, PIC2_DATA, PIT_CH0, PIT_CMD, ROM_BASE, ROM_DATE_OFFSET,
  ROM_MODEL_OFFSET, ROM_SEGMENT, SECTOR_SIZE, SERVICE_WAIT_TIMER_RETRY, STUB_OFFSET, STUB_SIZE, STUB_TABLE, VECTOR_DPT,
  WAIT_KEY_OFFSET, WAIT_TIMER_OFFSET, WAIT_TIMER_RETRY_OFFSET,
} from "./layout.js";
import { NO_PORTS, type PortAccess } from "./ports.js";
import { hi8, lo16, lo8, setAl, setAx, setDl } from "./regs.js";
import { SerialService } from "./serial.js";
import { ebdaBase, SystemService } from "./system.js";
import { TimeService } from "./time.js";
import { Video } from "./video.js";

export { DiskStatus } from "./int13.js";
export { INT15_UNSUPPORTED } from "./system.js";

export const enum BiosStatus {
  /** The service finished; the caller returns to the guest. */
  Done = 0,
  /**
   * The service cannot finish yet and changed nothing: retry the same call later. No
   * service returns it today (waits run as ROM loops in guest code, see BiosReturn.detour);
   * the gate and both interposers still honour it.
   */
  WaitForKey = 1,
}

const EOI = 0x20;

/** Diskette parameter table for 1.44 MB drives (IBM PC/AT Technical Reference, DISK_BASE). */
const DPT_1440K = [0xdf, 0x02, 0x25, 0x02, 0x12, 0x1b, 0xff, 0x6c, 0xf6, 0x0f, 0x08];

const OUT_BIOS = [0xe6, BIOS_CALL_PORT];
const jmpFar = (off: number) => [0xea, off & 0xff, off >>> 8, ROM_SEGMENT & 0xff, ROM_SEGMENT >>> 8];

/**
 * The machine code of stub `vector`: `out BIOS_CALL_PORT, al`, then for INT 08h an `int 1Ch`
 * (so a guest's 1Ch hook runs in guest code), an EOI for IRQ vectors, and `iret`. The 1Ch
 * stub is a bare IRET, the PC/AT's DUMMY_RETURN.
 */
export function stubCode(vector: number): number[] {
  const eoi = (port: number) => [0xe6, port]; // out port, al
  if (vector === 0x1c) return [0xcf];
  if (vector === 0x08) return [...OUT_BIOS, 0xcd, 0x1c, 0x50, 0xb0, EOI, ...eoi(PIC1_CMD), 0x58, 0xcf];
  if (vector >= 0x08 && vector <= 0x0f) {
    // IRQ 0-7 (master PIC at vector 08h): push ax; mov al,20h; out 20h,al; pop ax
    return [...OUT_BIOS, 0x50, 0xb0, EOI, ...eoi(PIC1_CMD), 0x58, 0xcf];
  }
  if (vector >= 0x70 && vector <= 0x77) {
    return [...OUT_BIOS, 0x50, 0xb0, EOI, ...eoi(PIC2_CMD), ...eoi(PIC1_CMD), 0x58, 0xcf];
  }
  return [...OUT_BIOS, 0xcf];
}

/**
 * INT 09h at F000:E987, run in guest code as on a PC/AT: read the scancode, offer it to
 * INT 15h/4Fh (CF=0 from a hook drops it), hand it to the BIOS in AL, EOI.
 */
export const KBD_IRQ_CODE = [
  0x50, // push ax
  0xe4, KBC_DATA, // in al, 60h
  0xb4, 0x4f, // mov ah, 4Fh
  0xf9, // stc
  0xcd, 0x15, // int 15h
  0x73, 0x02, // jnc .eoi
  ...OUT_BIOS, // the service: AL = scancode
  0xb0, EOI, 0xe6, PIC1_CMD, // .eoi: mov al, 20h; out 20h, al
  0x58, 0xcf, // pop ax; iret
];
const KBD_SERVICE_AT = ROM_BASE + KBD_IRQ_OFFSET + 10;

/** The ROM routines other than the stubs: offset -> code. */
export const ROM_ROUTINES: ReadonlyArray<readonly [number, readonly number[]]> = [
  [KBD_IRQ_OFFSET, KBD_IRQ_CODE],
  // INT 16h wait: sti; hlt; cli; re-enter the INT 16h stub with the caller's frame in place.
  [WAIT_KEY_OFFSET, [0xfb, 0xf4, 0xfa, ...jmpFar(STUB_OFFSET + 0x16 * STUB_SIZE)]],
  // INT 15h/86h wait: sti; hlt; cli; jmp to the deadline check.
  [WAIT_TIMER_OFFSET, [0xfb, 0xf4, 0xfa, ...jmpFar(WAIT_TIMER_RETRY_OFFSET)]],
  [WAIT_TIMER_RETRY_OFFSET, [...OUT_BIOS, 0xcf]],
  // INT 18h / failed INT 19h: cli; hlt; jmp back to the hlt. The run ends as "halted".
  [NO_BOOT_OFFSET, [0xfa, 0xf4, 0xeb, 0xfd]],
];

/** The service id for a linear address at a BIOS port OUT in ROM (a stub or routine), or -1. */
export function stubVectorAt(linear: number): number {
  if (linear === KBD_SERVICE_AT) return 0x09;
  if (linear === ROM_BASE + WAIT_TIMER_RETRY_OFFSET) return SERVICE_WAIT_TIMER_RETRY;
  const off = linear - STUB_TABLE;
  if (off < 0 || off >= IVT_ENTRIES * STUB_SIZE || off % STUB_SIZE !== 0) return -1;
  return off / STUB_SIZE;
}

export type KeyboardSource = "console" | "i8042";

export interface BiosOptions {
  disks: readonly DiskImage[];
  /** The drive the initial boot and INT 19h try first. */
  bootDrive: number;
  /** Drives INT 19h tries in order (default: just bootDrive). */
  bootOrder?: readonly number[];
  /** The chips, through the PIO bus (default: an empty bus). */
  ports?: PortAccess;
  /** The A20 gate (INT 15h/24xx); without it A20 is always on. */
  platform?: Platform;
  /** The virtual clock (INT 15h/86h); without it the wait returns at once. */
  clock?: VirtualClock;
  /** Who fills the keyboard ring: the console directly, or INT 09h from the i8042 (default "console"). */
  keyboard?: KeyboardSource;
  /** Drives whose writes fail with AH=03h (write protected). */
  writeProtected?: ReadonlySet<number>;
}

export const NO_BOOT_MESSAGE = "hvkit BIOS: no bootable device\r\n";

export class Bios {
  readonly keyboard: KeyboardBuffer;
  readonly video: Video;
  readonly disk: DiskService;
  readonly time: TimeService;
  readonly serial: SerialService;
  readonly system: SystemService;
  readonly bootDrive: number;
  readonly bootOrder: readonly number[];
  readonly keyboardSource: KeyboardSource;
  private readonly ports: PortAccess;
  private readonly sector = new Uint8Array(SECTOR_SIZE);

  constructor(private readonly mem: GuestMemory, console: Console, opts: BiosOptions) {
    this.ports = opts.ports ?? NO_PORTS;
    this.disk = new DiskService(mem, opts.disks, opts.writeProtected);
    this.bootDrive = opts.bootDrive;
    this.bootOrder = opts.bootOrder && opts.bootOrder.length > 0 ? opts.bootOrder : [opts.bootDrive];
    this.keyboardSource = opts.keyboard ?? "console";
    this.keyboard = new KeyboardBuffer(mem);
    this.video = new Video(mem, console);
    this.time = new TimeService(mem, this.ports);
    this.serial = new SerialService(mem, this.ports);
    this.system = new SystemService(mem, this.ports, opts.platform, opts.clock);
    if (this.keyboardSource === "console") console.onInput((b) => this.keyboard.hostByte(b));
  }

  /** Write the IVT, the ROM stubs, routines and tables, the BDA and EBDA; program the PIC and PIT. */
  install(): void {
    const m = this.mem;
    for (let v = 0; v < IVT_ENTRIES; v++) {
      const code = stubCode(v);
      const at = STUB_TABLE + v * STUB_SIZE;
      for (let i = 0; i < STUB_SIZE; i++) m.write8(at + i, i < code.length ? code[i]! : 0x90);
      m.write16(IVT_BASE + 4 * v, STUB_OFFSET + v * STUB_SIZE);
      m.write16(IVT_BASE + 4 * v + 2, ROM_SEGMENT);
    }
    for (const [off, code] of ROM_ROUTINES) for (let i = 0; i < code.length; i++) m.write8(ROM_BASE + off + i, code[i]!);
    m.write16(IVT_BASE + 4 * 0x09, KBD_IRQ_OFFSET);
    for (let i = 0; i < DPT_1440K.length; i++) m.write8(ROM_BASE + DPT_OFFSET + i, DPT_1440K[i]!);
    m.write16(IVT_BASE + 4 * VECTOR_DPT, DPT_OFFSET);
    const date = "01/01/24";
    for (let i = 0; i < date.length; i++) m.write8(ROM_BASE + ROM_DATE_OFFSET + i, date.charCodeAt(i));
    m.write8(ROM_BASE + ROM_MODEL_OFFSET, MODEL_AT);

    for (let a = 0x400; a < 0x500; a++) m.write8(a, 0);
    m.write16(BDA_COM1, COM1_PORT);
    // Equipment word (RBIL INT 11h): bit 0 diskette present, bit 1 x87, bits 5-4 = 10b
    // (80x25 colour), bits 7-6 diskettes - 1, bits 11-9 serial ports.
    const floppies = this.disk.floppies;
    let equip = 0x0002 | (0b10 << 4) | (1 << 9);
    if (floppies > 0) equip |= 1 | (((floppies - 1) & 3) << 6);
    m.write16(BDA_EQUIPMENT, equip);
    // Conventional memory ends at the EBDA: 1 KiB below 640 KiB, its segment at 0x40E and
    // its first byte its size in KiB (RBIL MEMORY.LST).
    const ebda = ebdaBase(m.size);
    m.write16(BDA_MEMORY_KIB, ebda / 1024);
    m.write16(BDA_EBDA_SEGMENT, ebda >>> 4);
    for (let i = 0; i < EBDA_SIZE; i++) m.write8(ebda + i, 0);
    m.write8(ebda, EBDA_SIZE / 1024);
    m.write8(BDA_HDD_COUNT, this.disk.hardDisks);
    this.keyboard.install();
    this.video.install();
    this.system.install();
    this.initChipset();
  }

  /**
   * What a PC BIOS's POST does to the interrupt and timer chips, through the PIO bus:
   * 8259A pair edge-triggered, cascaded on IR2, master at vector 08h and slave at 70h, all
   * but IRQ 0, 1 and 2 masked (8259A datasheet, ICW1-ICW4, OCW1); PIT channel 0 in mode 3
   * with count 0 (65536: 18.2 Hz) (8254 datasheet, control word).
   */
  initChipset(): void {
    const o = (port: number, v: number) => this.ports.out(port, 1, v);
    o(PIC1_CMD, 0x11); o(PIC1_DATA, 0x08); o(PIC1_DATA, 0x04); o(PIC1_DATA, 0x01);
    o(PIC2_CMD, 0x11); o(PIC2_DATA, 0x70); o(PIC2_DATA, 0x02); o(PIC2_DATA, 0x01);
    o(PIC1_DATA, 0xf8);
    o(PIC2_DATA, 0xff);
    o(PIT_CMD, 0x36); o(PIT_CH0, 0x00); o(PIT_CH0, 0x00);
  }

  /** Run service `vector` (a vector, or a SERVICE_* id) on `s`; flags and jumps go through `ret`. */
  call(vector: number, s: X86State, ret: BiosReturn): BiosStatus {
    switch (vector) {
      case 0x08: this.time.int08(); break;
      case 0x09: if (this.keyboardSource === "i8042") this.keyboard.scancode(lo8(s.eax)); break;
      case 0x10: this.video.int10(s); break;
      case 0x11: setAx(s, this.mem.read16(BDA_EQUIPMENT)); break;
      case 0x12: setAx(s, this.mem.read16(BDA_MEMORY_KIB)); break;
      case 0x13: this.disk.int13(s, ret); break;
      case 0x14: this.serial.int14(s); break;
      case 0x15: this.system.int15(s, ret); break;
      case 0x16: this.int16(s, ret); break;
      case 0x18: this.noBootDevice(ret); break;
      case 0x19: this.int19(s, ret); break;
      case 0x1a: this.time.int1a(s, ret); break;
      case 0x70: this.time.int70(); break;
      case SERVICE_WAIT_TIMER_RETRY: this.system.wait(s, ret, true); break;
      default: break;
    }
    return BiosStatus.Done;
  }

  /**
   * INT 19h's loader: sector 0 of the first drive in the boot order with the 0x55AA
   * signature goes to 0000:7C00; DL = that drive and the return goes there. False if none.
   */
  bootstrap(s: X86State, ret: BiosReturn): boolean {
    for (const drive of this.bootOrder) {
      if (!this.disk.readBootSector(drive, this.sector)) continue;
      if (this.sector[BOOT_SIGNATURE_OFFSET] !== 0x55 || this.sector[BOOT_SIGNATURE_OFFSET + 1] !== 0xaa) continue;
      if (!this.mem.writeBytes((BOOT_SEGMENT << 4) + BOOT_OFFSET, this.sector)) return false;
      setDl(s, drive);
      ret.jump(BOOT_SEGMENT, BOOT_OFFSET);
      return true;
    }
    return false;
  }

  // ---- services

  /**
   * INT 16h. 00h/10h with an empty ring detour through the ROM loop `sti; hlt; cli; jmp
   * <INT 16h stub>`: the guest halts with interrupts on (IRQ 1 / the console wake it) and
   * re-issues the call. 00h-02h hide enhanced-keyboard keys (RBIL INT 16/AH=00h).
   */
  private int16(s: X86State, ret: BiosReturn): void {
    const kb = this.keyboard;
    const fn = hi8(s.eax);
    switch (fn) {
      case 0x00: case 0x10: {
        for (;;) {
          const k = kb.take();
          if (k < 0) { ret.detour(ROM_SEGMENT, WAIT_KEY_OFFSET); return; }
          const w = fn === 0x10 ? k : standardKey(k);
          if (w >= 0) { setAx(s, w); return; }
        }
      }
      case 0x01: case 0x11: {
        for (;;) {
          const k = kb.peek();
          if (k < 0) { ret.setZero(true); return; }
          const w = fn === 0x11 ? k : standardKey(k);
          if (w < 0) { kb.take(); continue; } // 01h discards what 00h would never return
          setAx(s, w);
          ret.setZero(false);
          return;
        }
      }
      case 0x02: setAl(s, this.mem.read8(BDA_KBD_FLAGS)); return;
      case 0x05: setAl(s, kb.store(lo16(s.ecx)) ? 0 : 1); return;
      case 0x12: setAx(s, kb.extendedShiftFlags()); return;
      default: return;
    }
  }

  private int19(s: X86State, ret: BiosReturn): void {
    if (!this.bootstrap(s, ret)) this.noBootDevice(ret);
  }

  /** INT 18h: nothing to boot. The message goes to the teletype; the guest halts with IF=0. */
  private noBootDevice(ret: BiosReturn): void {
    for (let i = 0; i < NO_BOOT_MESSAGE.length; i++) this.video.teletype(NO_BOOT_MESSAGE.charCodeAt(i), this.video.activePage());
    ret.jump(ROM_SEGMENT, NO_BOOT_OFFSET);
  }

  /** Close the disk images' host files. */
  dispose(): void {
    for (const d of this.disk.drives) this.disk.disk(d)?.close();
  }
}

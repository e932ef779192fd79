import { describe, expect, it } from "vitest";
import { realModeState } from "../../../../src/x86/state.js";
import type { X86State } from "../../../../src/x86/types.js";
import { TestConsole, TestMemory } from "../testing.js";
import { Bios, BiosStatus, DiskStatus, stubCode, stubVectorAt, type BiosOptions } from "./bios.js";
import { DiskImage } from "./disk.js";
import { BiosReturn, FLAG_CF, FLAG_IF, FLAG_ZF, ReturnVia } from "./frame.js";
import {
  BDA_COM1, BDA_CURSOR_POS, BDA_EQUIPMENT, BDA_KBD_HEAD, BDA_KBD_TAIL, BDA_MEMORY_KIB, BIOS_CALL_PORT, DPT_OFFSET,
  ROM_SEGMENT, STUB_OFFSET, STUB_SIZE, STUB_TABLE, TEXT_COLOR_BASE, WAIT_KEY_OFFSET, NO_BOOT_OFFSET,
} from "./layout.js";

const MiB = 1024 * 1024;

/** A 1.44 MB floppy whose every byte encodes its LBA: byte i of sector n is (n + i) & 0xff. */
function patternFloppy(bytes = 1440 * 1024): Uint8Array {
  const d = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) d[i] = ((i >> 9) + (i & 511)) & 0xff;
  return d;
}

function bootSector(): Uint8Array {
  const d = new Uint8Array(512);
  d[0] = 0xeb; d[1] = 0xfe; // jmp $
  d[510] = 0x55; d[511] = 0xaa;
  return d;
}

function setup(disks: DiskImage[] = [new DiskImage(0, patternFloppy())], bootDrive = 0, extra: Partial<BiosOptions> = {}) {
  const mem = new TestMemory(2 * MiB);
  const console = new TestConsole();
  const bios = new Bios(mem, console, { disks, bootDrive, ...extra });
  bios.install();
  const ret = new BiosReturn(mem);
  const s = realModeState(0, 0x7c00);
  s.esp = 0x7000;
  const call = (vector: number, regs: Partial<X86State>, via = ReturnVia.Registers, instrLen = 2) => {
    Object.assign(s, regs);
    return bios.call(vector, s, ret.bind(s, via, instrLen));
  };
  return { mem, console, bios, s, call, ret };
}

/** Every key in the buffer, through INT 16h 01h (peek) and 00h (take), as AX words. */
function drainKeys(call: (v: number, r: Partial<X86State>) => BiosStatus, s: X86State, extended = false): number[] {
  const keys: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    call(0x16, { eax: extended ? 0x1100 : 0x0100 });
    if (s.eflags & FLAG_ZF) return keys;
    call(0x16, { eax: extended ? 0x1000 : 0x0000 });
    keys.push(s.eax & 0xffff);
  }
  throw new Error("the buffer never became empty");
}

const ah = (s: X86State) => (s.eax >>> 8) & 0xff;
const al = (s: X86State) => s.eax & 0xff;
const cf = (s: X86State) => (s.eflags & FLAG_CF) !== 0;

describe("BIOS memory setup", () => {
  it("points every IVT vector at its ROM stub, whose code exits through BIOS_CALL_PORT", () => {
    const { mem } = setup();
    for (const v of [0x00, 0x10, 0x13, 0x16, 0xff]) {
      expect(mem.read16(4 * v)).toBe(STUB_OFFSET + v * STUB_SIZE);
      expect(mem.read16(4 * v + 2)).toBe(ROM_SEGMENT);
      const at = STUB_TABLE + v * STUB_SIZE;
      expect([mem.read8(at), mem.read8(at + 1), mem.read8(at + 2)]).toEqual([0xe6, BIOS_CALL_PORT, 0xcf]);
      expect(stubVectorAt(at)).toBe(v);
    }
    expect(stubVectorAt(STUB_TABLE + 1)).toBe(-1);
    expect(stubVectorAt(STUB_TABLE + 256 * STUB_SIZE)).toBe(-1);
  });

  it("makes IRQ stubs send an EOI to the PIC before IRET", () => {
    expect(stubCode(0x09)).toEqual([0xe6, BIOS_CALL_PORT, 0x50, 0xb0, 0x20, 0xe6, 0x20, 0x58, 0xcf]);
    // INT 08h runs INT 1Ch in guest code before the EOI, so a guest's 1Ch hook runs
    expect(stubCode(0x08)).toEqual([0xe6, BIOS_CALL_PORT, 0xcd, 0x1c, 0x50, 0xb0, 0x20, 0xe6, 0x20, 0x58, 0xcf]);
    expect(stubCode(0x70)).toContain(0xa0);
    for (let v = 0; v < 256; v++) expect(stubCode(v).length).toBeLessThanOrEqual(STUB_SIZE);
  });

  it("points INT 1Eh at the diskette parameter table", () => {
    const { mem } = setup();
    expect(mem.read16(4 * 0x1e)).toBe(DPT_OFFSET);
    expect(mem.read8((ROM_SEGMENT << 4) + DPT_OFFSET + 4)).toBe(18); // sectors per track
  });

  it("fills the BDA: COM1 base, memory size in KiB below the 1 KiB EBDA, equipment word with one diskette", () => {
    const { mem } = setup();
    expect(mem.read16(BDA_COM1)).toBe(0x3f8);
    expect(mem.read16(BDA_MEMORY_KIB)).toBe(639);
    expect(mem.read16(0x40e)).toBe(0x9fc0); // EBDA segment
    expect(mem.read8(0x9fc00)).toBe(1); // its size in KiB
    const eq = mem.read16(BDA_EQUIPMENT);
    expect(eq & 1).toBe(1);
    expect((eq >> 6) & 3).toBe(0);
    expect((eq >> 9) & 7).toBe(1);
  });

  it("puts the EBDA at the top of a RAM smaller than 640 KiB", () => {
    const mem = new TestMemory(256 * 1024);
    new Bios(mem, new TestConsole(), { disks: [], bootDrive: 0 }).install();
    expect(mem.read16(BDA_MEMORY_KIB)).toBe(255);
    expect(mem.read16(0x40e)).toBe((255 * 1024) >> 4);
  });
});

describe("INT 10h", () => {
  it("teletype writes to the console as bios-tty and to the text buffer, advancing the cursor", () => {
    const { call, console, mem } = setup();
    for (const c of "Hi\r\nA") call(0x10, { eax: 0x0e00 | c.charCodeAt(0), ebx: 0 });
    expect(console.output("bios-tty")).toBe("Hi\r\nA");
    expect(mem.text(TEXT_COLOR_BASE, 2)).toBe("Hi");
    expect(mem.text(TEXT_COLOR_BASE + 160, 1)).toBe("A");
    expect(mem.read16(BDA_CURSOR_POS)).toBe((1 << 8) | 1);
  });

  it("scrolls the screen up when a line feed leaves the last row", () => {
    const { call, mem } = setup();
    call(0x10, { eax: 0x0e00 | 0x58, ebx: 0 }); // 'X' on row 0
    for (let i = 0; i < 25; i++) call(0x10, { eax: 0x0e0a, ebx: 0 });
    call(0x10, { eax: 0x0e00 | 0x59, ebx: 0 });
    expect(mem.read16(BDA_CURSOR_POS) >> 8).toBe(24);
    expect(mem.text(TEXT_COLOR_BASE, 1)).toBe(" "); // 'X' scrolled away
    expect(mem.text(TEXT_COLOR_BASE + 24 * 160 + 2, 1)).toBe("Y");
  });

  it("sets and gets the cursor, and reports mode 3 with 80 columns", () => {
    const { call, s } = setup();
    call(0x10, { eax: 0x0200, ebx: 0, edx: 0x0c22 });
    call(0x10, { eax: 0x0300, ebx: 0, edx: 0 });
    expect(s.edx & 0xffff).toBe(0x0c22);
    call(0x10, { eax: 0x0f00 });
    expect(al(s)).toBe(3);
    expect(ah(s)).toBe(80);
  });

  it("clamps a cursor position past the screen", () => {
    const { call, s } = setup();
    call(0x10, { eax: 0x0200, ebx: 0, edx: 0xffff });
    call(0x10, { eax: 0x0300, ebx: 0 });
    expect(s.edx & 0xffff).toBe((24 << 8) | 79);
  });
});

describe("INT 11h / 12h", () => {
  it("returns the equipment word and the memory size", () => {
    const { call, s, mem } = setup();
    call(0x11, { eax: 0xdead0000 });
    expect(s.eax).toBe((0xdead0000 | mem.read16(BDA_EQUIPMENT)) >>> 0);
    call(0x12, { eax: 0 });
    expect(s.eax).toBe(639);
  });
});

describe("INT 13h", () => {
  it("reads CHS sectors into ES:BX, continuing onto the next head", () => {
    const { call, s, mem } = setup();
    s.es.selector = 0x1000; s.es.base = 0x10000;
    // C0 H0 S18 then C0 H1 S1: LBAs 17 and 18
    call(0x13, { eax: 0x0202, ecx: 0x0012, edx: 0x0000, ebx: 0x0100, eflags: 0x202 | FLAG_CF });
    expect(ah(s)).toBe(0);
    expect(al(s)).toBe(2);
    expect(cf(s)).toBe(false);
    expect(mem.read8(0x10100)).toBe(17);
    expect(mem.read8(0x10100 + 512)).toBe(18);
    expect(mem.read8(0x10100 + 513)).toBe(19);
  });

  it("decodes the cylinder's high bits from CL bits 7-6 on hard disks", () => {
    const img = new Uint8Array(300 * 16 * 63 * 512);
    const lba = (260 * 16 + 3) * 63 + 4;
    img[lba * 512] = 0xab;
    const { call, s, mem } = setup([new DiskImage(0x80, img)], 0x80);
    call(0x13, { eax: 0x0201, ecx: ((260 & 0xff) << 8) | ((260 >> 2) & 0xc0) | 5, edx: 0x0380, ebx: 0x8000 });
    expect(ah(s)).toBe(0);
    expect(mem.read8(0x8000)).toBe(0xab);
  });

  it("returns AH=04h with CF=1 and AL = sectors read when a read runs off the geometry", () => {
    const { call, s } = setup();
    // C79 H1 S17: two sectors fit, the third is past the last cylinder
    call(0x13, { eax: 0x0203 + 0x0100 * 0, ecx: (79 << 8) | 17, edx: 0x0100, ebx: 0x1000 });
    expect(ah(s)).toBe(DiskStatus.SectorNotFound);
    expect(al(s)).toBe(2);
    expect(cf(s)).toBe(true);
  });

  it("rejects sector 0, a head past the geometry and a zero count with defined status codes", () => {
    const { call, s } = setup();
    call(0x13, { eax: 0x0201, ecx: 0x0000, edx: 0x0000, ebx: 0 });
    expect([ah(s), al(s), cf(s)]).toEqual([DiskStatus.SectorNotFound, 0, true]);
    call(0x13, { eax: 0x0201, ecx: 0x0001, edx: 0x0500, ebx: 0 });
    expect([ah(s), cf(s)]).toEqual([DiskStatus.SectorNotFound, true]);
    call(0x13, { eax: 0x0200, ecx: 0x0001, edx: 0x0000, ebx: 0 });
    expect([ah(s), cf(s)]).toEqual([DiskStatus.BadCommand, true]);
  });

  it("fails a read into memory past RAM with AH=09h and CF=1", () => {
    const mem = new TestMemory(0x100000);
    const bios = new Bios(mem, new TestConsole(), { disks: [new DiskImage(0, patternFloppy())], bootDrive: 0 });
    bios.install();
    const s = realModeState(0, 0);
    s.es.selector = 0xffff; s.es.base = 0xffff0; // FFFF:0100 is linear 0x1000F0, past 1 MiB of RAM
    s.eax = 0x0201; s.ecx = 1; s.ebx = 0x0100;
    bios.call(0x13, s, new BiosReturn(mem).bind(s, ReturnVia.Registers));
    expect([ah(s), al(s), cf(s)]).toEqual([DiskStatus.DmaBoundary, 0, true]);
  });

  it("reports 1.44 MB floppy geometry 80/2/18 with drive type 4 and the DPT in ES:DI", () => {
    const { call, s } = setup();
    call(0x13, { eax: 0x0800, edx: 0x0000 });
    expect(ah(s)).toBe(0);
    expect((s.ecx >> 8) & 0xff).toBe(79);
    expect(s.ecx & 0x3f).toBe(18);
    expect(s.edx & 0xffff).toBe(0x0101); // DH = max head 1, DL = one diskette
    expect(s.ebx & 0xff).toBe(4);
    expect(s.es.selector).toBe(ROM_SEGMENT);
    expect(s.edi & 0xffff).toBe(DPT_OFFSET);
  });

  it("reports a hard-disk geometry computed from the image size", () => {
    const img = new Uint8Array(20 * 16 * 63 * 512);
    const { call, s } = setup([new DiskImage(0x80, img)], 0x80);
    call(0x13, { eax: 0x0800, edx: 0x0080 });
    expect(ah(s)).toBe(0);
    expect((s.ecx >> 8) & 0xff).toBe(19);
    expect(s.ecx & 0x3f).toBe(63);
    expect((s.edx >> 8) & 0xff).toBe(15);
    expect(s.edx & 0xff).toBe(1);
  });

  it("answers an unsupported function or a missing drive with AH=01h and CF=1", () => {
    const { call, s } = setup();
    call(0x13, { eax: 0x4100, ebx: 0x55aa, edx: 0x80 });
    expect([ah(s), cf(s)]).toEqual([DiskStatus.BadCommand, true]);
    call(0x13, { eax: 0x7700, edx: 0 });
    expect([ah(s), cf(s)]).toEqual([DiskStatus.BadCommand, true]);
    call(0x13, { eax: 0x0201, ecx: 1, edx: 0x81 });
    expect([ah(s), cf(s)]).toEqual([DiskStatus.BadCommand, true]);
  });

  it("resets with AH=00h and keeps the last status for AH=01h", () => {
    const { call, s } = setup();
    call(0x13, { eax: 0x0201, ecx: 0, edx: 0 });
    call(0x13, { eax: 0x0100, edx: 0 });
    expect([ah(s), cf(s)]).toEqual([DiskStatus.SectorNotFound, true]);
    call(0x13, { eax: 0x0000, edx: 0 });
    expect([ah(s), cf(s)]).toEqual([0, false]);
  });

  it("writes sectors to the copy-on-write overlay, leaving the image bytes alone, and refuses on a write-protected disk", () => {
    const data = patternFloppy();
    const { call, s, mem } = setup([new DiskImage(0, data)]);
    mem.write8(0x3000, 0x77);
    call(0x13, { eax: 0x0301, ecx: 0x0001, edx: 0, ebx: 0x3000 });
    expect([ah(s), cf(s), al(s)]).toEqual([0, false, 1]);
    expect(data[0]).toBe(0); // the base image is untouched
    call(0x13, { eax: 0x0201, ecx: 0x0001, edx: 0, ebx: 0x4000 });
    expect(mem.read8(0x4000)).toBe(0x77); // the overlay is read back
    const ro = setup([new DiskImage(0, patternFloppy())], 0, { writeProtected: new Set([0]) });
    ro.call(0x13, { eax: 0x0301, ecx: 0x0001, edx: 0, ebx: 0x3000 });
    expect([ah(ro.s), cf(ro.s)]).toEqual([DiskStatus.WriteProtected, true]);
  });

  it("puts CF into the FLAGS image on the stack when called through a ROM stub", () => {
    const { call, s, mem } = setup();
    s.esp = 0x6ffa; // the INT pushed IP, CS, FLAGS at 6FFA, 6FFC, 6FFE
    mem.write16(0x6ffe, 0x0202);
    s.eflags = 0x0002;
    call(0x13, { eax: 0x7700, edx: 0 }, ReturnVia.Stack);
    expect(mem.read16(0x6ffe)).toBe(0x0202 | FLAG_CF);
    expect(s.eflags).toBe(0x0002); // the live flags are the stub's, the IRET restores the image
    call(0x13, { eax: 0x0000, edx: 0 }, ReturnVia.Stack);
    expect(mem.read16(0x6ffe)).toBe(0x0202);
  });
});

describe("INT 16h", () => {
  it("with no key, detours through the ROM wait loop with the INT's return frame pushed, then returns scancode and ASCII", () => {
    const { call, s, console, mem } = setup();
    expect(call(0x16, { eax: 0x0000, eip: 0x7c10, esp: 0x7000, eflags: 0x202 })).toBe(BiosStatus.Done);
    expect(s.eax).toBe(0);
    expect([s.cs.selector, s.eip]).toEqual([ROM_SEGMENT, WAIT_KEY_OFFSET]);
    expect(s.esp).toBe(0x6ffa);
    expect([mem.read16(0x6ffa), mem.read16(0x6ffc), mem.read16(0x6ffe)]).toEqual([0x7c12, 0, 0x202]);
    expect(s.eflags & FLAG_IF).toBe(0);
    // The loop: sti; hlt; cli; jmp far F000:<INT 16h stub>
    const loop = (ROM_SEGMENT << 4) + WAIT_KEY_OFFSET;
    expect([mem.read8(loop), mem.read8(loop + 1), mem.read8(loop + 2), mem.read8(loop + 3)]).toEqual([0xfb, 0xf4, 0xfa, 0xea]);
    expect(mem.read16(loop + 4)).toBe(STUB_OFFSET + 0x16 * STUB_SIZE);
    console.type("q");
    expect(call(0x16, { eax: 0x0000 })).toBe(BiosStatus.Done);
    expect(s.eax & 0xffff).toBe(0x1071);
  });

  it("peeks with AH=01h: ZF=1 when empty, ZF=0 and the key (left in place) otherwise", () => {
    const { call, s, console } = setup();
    call(0x16, { eax: 0x0100, eflags: 0x202 });
    expect(s.eflags & FLAG_ZF).toBe(FLAG_ZF);
    console.type("A");
    call(0x16, { eax: 0x0100 });
    expect(s.eflags & FLAG_ZF).toBe(0);
    expect(s.eax & 0xffff).toBe(0x1e41);
    call(0x16, { eax: 0x0000 });
    expect(s.eax & 0xffff).toBe(0x1e41);
  });

  it("maps Enter, Backspace and Esc to their scancodes, and CR LF to one Enter", () => {
    const { call, s, console } = setup();
    console.type("\r\n\x7f\x1b\n");
    expect(drainKeys(call, s)).toEqual([0x1c0d, 0x0e08, 0x011b, 0x1c0d]);
  });

  it("keeps typed input beyond the 15-key ring and delivers it in order", () => {
    const { call, s, console, mem } = setup();
    const text = "the quick brown fox jumps";
    console.type(text);
    expect((mem.read16(BDA_KBD_TAIL) - mem.read16(BDA_KBD_HEAD) + 32) % 32).toBe(30); // 15 keys in the ring
    expect(String.fromCharCode(...drainKeys(call, s).map((k) => k & 0xff))).toBe(text);
  });

  it("keeps input typed before the BIOS set up the BDA", () => {
    const mem = new TestMemory(MiB);
    const console = new TestConsole();
    const bios = new Bios(mem, console, { disks: [], bootDrive: 0 });
    console.type("x");
    bios.install();
    const s = realModeState(0, 0);
    expect(bios.call(0x16, s, new BiosReturn(mem).bind(s, ReturnVia.Registers))).toBe(BiosStatus.Done);
    expect(s.eax & 0xff).toBe(0x78);
  });

  it("resets a ring whose pointers the guest corrupted instead of reading garbage", () => {
    const { call, mem, console, s } = setup();
    mem.write16(BDA_KBD_HEAD, 0x1234);
    mem.write16(BDA_KBD_TAIL, 0x0001);
    call(0x16, { eax: 0x0100 });
    expect(s.eflags & FLAG_ZF).toBe(FLAG_ZF); // empty, not garbage
    console.type("k");
    expect(call(0x16, { eax: 0 })).toBe(BiosStatus.Done);
    expect(s.eax & 0xff).toBe(0x6b);
  });
});

describe("INT 19h", () => {
  it("loads sector 0 to 0000:7C00 and jumps there with DL = boot drive", () => {
    const { call, s, mem } = setup([new DiskImage(0x80, bootSector())], 0x80);
    s.cs.selector = 0x1234; s.cs.base = 0x12340; s.eip = 0x55;
    call(0x19, { edx: 0 });
    expect(mem.read16(0x7c00)).toBe(0xfeeb);
    expect(mem.read16(0x7dfe)).toBe(0xaa55);
    expect([s.cs.selector, s.cs.base, s.eip]).toEqual([0, 0, 0x7c00]);
    expect(s.edx & 0xff).toBe(0x80);
  });

  it("through a stub, rewrites the IRET frame's CS:IP instead of the registers", () => {
    const { call, s, mem } = setup([new DiskImage(0, bootSector())]);
    s.esp = 0x6ffa;
    mem.write16(0x6ffa, 0x1111); mem.write16(0x6ffc, 0x2222);
    call(0x19, {}, ReturnVia.Stack);
    expect([mem.read16(0x6ffa), mem.read16(0x6ffc)]).toEqual([0x7c00, 0]);
    expect(s.eip).toBe(0x7c00); // unchanged: realModeState(0, 0x7c00) from setup
  });

  it("reports a disk without the 0x55AA signature and goes to the INT 18h halt (cli; hlt)", () => {
    const { call, s, console, mem } = setup([new DiskImage(0, new Uint8Array(512))]);
    s.eip = 0x1234;
    call(0x19, {});
    expect([s.cs.selector, s.eip]).toEqual([ROM_SEGMENT, NO_BOOT_OFFSET]);
    const at = (ROM_SEGMENT << 4) + NO_BOOT_OFFSET;
    expect([mem.read8(at), mem.read8(at + 1)]).toEqual([0xfa, 0xf4]);
    expect(console.output("bios-tty")).toMatch(/no bootable device/);
  });

  it("tries the drives of the boot order in turn and boots the first with a signature", () => {
    const boot = bootSector();
    const { call, s, mem } = setup([new DiskImage(0, new Uint8Array(512)), new DiskImage(0x80, boot)], 0, { bootOrder: [0x00, 0x80] });
    call(0x19, {});
    expect([s.cs.selector, s.eip, s.edx & 0xff]).toEqual([0, 0x7c00, 0x80]);
    expect(mem.read16(0x7c00)).toBe(0xfeeb);
  });
});

describe("other vectors", () => {
  it("counts timer ticks with INT 08h and reads them with INT 1Ah AH=00h", () => {
    const { call, s } = setup();
    for (let i = 0; i < 3; i++) call(0x08, {});
    call(0x1a, { eax: 0, ecx: 0, edx: 0 });
    expect([s.ecx & 0xffff, s.edx & 0xffff]).toEqual([0, 3]);
  });

  it("answers INT 15h with CF=1 AH=86h, and leaves unknown vectors' registers alone", () => {
    const { call, s } = setup();
    call(0x15, { eax: 0xe820, eflags: 0x202 });
    expect([ah(s), cf(s)]).toEqual([0x86, true]);
    const before = JSON.stringify(s);
    call(0x42, {});
    expect(JSON.stringify(s)).toBe(before);
  });
});

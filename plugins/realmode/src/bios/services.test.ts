// The services added for the complete BIOS: INT 10h text functions, INT 13h EDD and the
// overlay, INT 15h memory map / block move / A20 / wait, INT 09h and 16h extended keys,
// INT 14h, INT 1Ah RTC, INT 08h rollover, the POST programming of PIC and PIT.
import { describe, expect, it } from "vitest";
import type { Platform, VirtualClock } from "../../../../src/monitor/api.js";
import { realModeState } from "../../../../src/x86/state.js";
import type { X86State } from "../../../../src/x86/types.js";
import { FakePorts, TestConsole, TestMemory } from "../testing.js";
import { Bios, type BiosOptions } from "./bios.js";
import { DiskImage, type DiskBacking } from "./disk.js";
import { BiosReturn, FLAG_CF, FLAG_ZF, ReturnVia } from "./frame.js";
import { DiskStatus, EDD_VERSION } from "./int13.js";
import { translate } from "./keyboard.js";
import {
  BDA_KBD_FLAGS, BDA_MIDNIGHT, BDA_TICKS, ROM_SEGMENT, SERVICE_WAIT_TIMER_RETRY, TEXT_COLOR_BASE, TEXT_MONO_BASE,
  TICKS_PER_DAY, WAIT_TIMER_OFFSET,
} from "./layout.js";
import { e820Map, E820Type } from "./system.js";

const MiB = 1024 * 1024;

function hardDisk(sectors = 64): Uint8Array {
  const d = new Uint8Array(sectors * 512);
  for (let i = 0; i < d.length; i++) d[i] = ((i >> 9) * 7 + (i & 511)) & 0xff;
  return d;
}

function setup(extra: Partial<BiosOptions> = {}, memBytes = 16 * MiB, disks: DiskImage[] = [new DiskImage(0x80, hardDisk())]) {
  const mem = new TestMemory(memBytes);
  const console = new TestConsole();
  const bios = new Bios(mem, console, { disks, bootDrive: disks[0]?.drive ?? 0, ...extra });
  bios.install();
  const ret = new BiosReturn(mem);
  const s = realModeState(0, 0x7c00);
  s.esp = 0x7000;
  const call = (vector: number, regs: Partial<X86State>, via = ReturnVia.Registers) => {
    Object.assign(s, regs);
    bios.call(vector, s, ret.bind(s, via, 2));
  };
  return { mem, console, bios, s, call };
}

const ah = (s: X86State) => (s.eax >>> 8) & 0xff;
const al = (s: X86State) => s.eax & 0xff;
const cf = (s: X86State) => (s.eflags & FLAG_CF) !== 0;

describe("INT 10h text functions", () => {
  it("scrolls a window up and down by AL lines with BH as the new lines' attribute; AL=0 clears it", () => {
    const { call, mem } = setup();
    const cell = (r: number, c: number) => TEXT_COLOR_BASE + 2 * (r * 80 + c);
    for (let r = 0; r < 5; r++) mem.write16(cell(r, 1), 0x0700 | (0x41 + r));
    call(0x10, { eax: 0x0601, ebx: 0x1e00, ecx: 0x0001, edx: 0x0401 }); // rows 0-4, column 1
    expect([0, 1, 2, 3].map((r) => mem.read8(cell(r, 1)))).toEqual([0x42, 0x43, 0x44, 0x45]);
    expect(mem.read16(cell(4, 1))).toBe(0x1e20);
    expect(mem.read8(cell(0, 0))).toBe(0x20); // outside the window: untouched blank
    call(0x10, { eax: 0x0702, ebx: 0x2f00, ecx: 0x0001, edx: 0x0401 });
    expect([mem.read16(cell(0, 1)), mem.read16(cell(1, 1)), mem.read8(cell(2, 1))]).toEqual([0x2f20, 0x2f20, 0x42]);
    call(0x10, { eax: 0x0600, ebx: 0x7000, ecx: 0x0000, edx: 0x184f });
    expect(mem.read16(cell(24, 79))).toBe(0x7020);
    expect(mem.read16(cell(2, 1))).toBe(0x7020);
  });

  it("writes a character with attribute CX times (09h), a character only (0Ah), and reads it back (08h)", () => {
    const { call, s, mem } = setup();
    call(0x10, { eax: 0x0200, ebx: 0, edx: 0x0205 });
    call(0x10, { eax: 0x0958, ebx: 0x004e, ecx: 3 });
    expect(mem.text(TEXT_COLOR_BASE + 2 * (2 * 80 + 5), 4)).toBe("XXX ");
    expect(mem.read8(TEXT_COLOR_BASE + 2 * (2 * 80 + 7) + 1)).toBe(0x4e);
    call(0x10, { eax: 0x0a59, ebx: 0, ecx: 1 });
    call(0x10, { eax: 0x0800, ebx: 0 });
    expect(s.eax & 0xffff).toBe(0x4e59); // the attribute of 09h, the character of 0Ah
    call(0x10, { eax: 0x0300, ebx: 0 });
    expect(s.edx & 0xffff).toBe(0x0205); // the cursor did not move
    call(0x10, { eax: 0x0200, ebx: 0, edx: 0x184e }); // last row, column 78: a count past the screen stops at its end
    mem.write8(TEXT_COLOR_BASE + 4000, 0);
    call(0x10, { eax: 0x0921, ebx: 0x0007, ecx: 500 });
    expect(mem.text(TEXT_COLOR_BASE + 3996, 2)).toBe("!!");
    expect(mem.read8(TEXT_COLOR_BASE + 4000)).toBe(0); // past 80x25: not written
  });

  it("writes a string (13h) in all four modes: attribute in BL or inline, cursor moved or kept", () => {
    const { call, s, mem, console } = setup();
    mem.writeBytes(0x5000, new TextEncoder().encode("Hi"));
    mem.writeBytes(0x5100, new Uint8Array([0x4f, 0x1e, 0x4b, 0x2e])); // "O" 1Eh, "K" 2Eh
    const cursor = () => { call(0x10, { eax: 0x0300, ebx: 0 }); return s.edx & 0xffff; };
    call(0x10, { eax: 0x1300, ebx: 0x0017, ecx: 2, edx: 0x0300, ebp: 0x5000 });
    expect(mem.read16(TEXT_COLOR_BASE + 2 * 240)).toBe(0x1748);
    expect(cursor()).toBe(0);
    call(0x10, { eax: 0x1301, ebx: 0x0017, ecx: 2, edx: 0x0400, ebp: 0x5000 });
    expect(cursor()).toBe(0x0402);
    call(0x10, { eax: 0x1302, ebx: 0, ecx: 2, edx: 0x0500, ebp: 0x5100 });
    expect([mem.read16(TEXT_COLOR_BASE + 2 * 400), mem.read16(TEXT_COLOR_BASE + 2 * 401)]).toEqual([0x1e4f, 0x2e4b]);
    expect(cursor()).toBe(0x0402);
    call(0x10, { eax: 0x1303, ebx: 0, ecx: 2, edx: 0x0600, ebp: 0x5100 });
    expect(cursor()).toBe(0x0602);
    expect(console.output("bios-tty")).toBe("HiHiOKOK");
  });

  it("sets mode 7 with the buffer at B0000h and the BDA fields, and keeps the buffer when AL bit 7 is set", () => {
    const { call, s, mem } = setup();
    mem.write16(TEXT_MONO_BASE, 0x0741);
    call(0x10, { eax: 0x0087 });
    expect(mem.read16(TEXT_MONO_BASE)).toBe(0x0741);
    call(0x10, { eax: 0x0f00 });
    expect([al(s), ah(s)]).toEqual([7, 80]);
    expect(mem.read16(0x463)).toBe(0x3b4); // mono CRTC
    call(0x10, { eax: 0x0007 });
    expect(mem.read16(TEXT_MONO_BASE)).toBe(0x0720);
    call(0x10, { eax: 0x0e5a, ebx: 0 });
    expect(mem.read8(TEXT_MONO_BASE)).toBe(0x5a);
    expect([mem.read8(0x449), mem.read16(0x44a), mem.read8(0x484)]).toEqual([7, 80, 24]);
  });
});

describe("INT 13h, extensions and images", () => {
  const dap = (mem: TestMemory, at: number, count: number, seg: number, off: number, lba: number) => {
    mem.write8(at, 0x10); mem.write8(at + 1, 0); mem.write16(at + 2, count);
    mem.write16(at + 4, off); mem.write16(at + 6, seg); mem.write32(at + 8, lba); mem.write32(at + 12, 0);
  };

  it("answers 41h with BX=AA55h, the EDD version and the subset bits; refuses it for a diskette", () => {
    const { call, s } = setup({}, 16 * MiB, [new DiskImage(0x80, hardDisk()), new DiskImage(0, new Uint8Array(1440 * 1024))]);
    call(0x13, { eax: 0x4100, ebx: 0x55aa, edx: 0x80 });
    expect([ah(s), s.ebx & 0xffff, s.ecx & 0xffff, cf(s)]).toEqual([EDD_VERSION, 0xaa55, 0x0001, false]);
    call(0x13, { eax: 0x4100, ebx: 0x55aa, edx: 0x00 });
    expect([ah(s), cf(s)]).toEqual([DiskStatus.BadCommand, true]);
  });

  it("reads by LBA (42h) into the packet's buffer, also through a flat 64-bit address, and writes the count done", () => {
    const { call, s, mem } = setup();
    dap(mem, 0x600, 2, 0x0100, 0x0000, 3);
    call(0x13, { eax: 0x4200, edx: 0x80, esi: 0x600 });
    expect([ah(s), cf(s), mem.read16(0x602)]).toEqual([0, false, 2]);
    expect(mem.read8(0x1000)).toBe(21); // sector 3, byte 0
    expect(mem.read8(0x1000 + 512 + 1)).toBe((28 + 1) & 0xff);
    mem.write8(0x600, 0x18); mem.write32(0x604, 0xffffffff); mem.write32(0x610, 0x200000); mem.write32(0x614, 0);
    mem.write16(0x602, 1);
    call(0x13, { eax: 0x4200, edx: 0x80, esi: 0x600 });
    expect([ah(s), mem.read8(0x200000)]).toEqual([0, 21]);
  });

  it("fails 42h past the disk with 0 blocks done, more than 7Fh blocks, and a short packet, each with CF=1", () => {
    const { call, s, mem } = setup();
    dap(mem, 0x600, 1, 0, 0x1000, 64);
    call(0x13, { eax: 0x4200, edx: 0x80, esi: 0x600 });
    expect([ah(s), cf(s), mem.read16(0x602)]).toEqual([DiskStatus.BadCommand, true, 0]);
    dap(mem, 0x600, 3, 0, 0x1000, 62); // runs off the end after 2 sectors
    call(0x13, { eax: 0x4200, edx: 0x80, esi: 0x600 });
    expect([ah(s), cf(s), mem.read16(0x602)]).toEqual([DiskStatus.SectorNotFound, true, 2]);
    dap(mem, 0x600, 0x80, 0, 0x1000, 0);
    call(0x13, { eax: 0x4200, edx: 0x80, esi: 0x600 });
    expect(cf(s)).toBe(true);
    mem.write8(0x600, 0x08);
    call(0x13, { eax: 0x4200, edx: 0x80, esi: 0x600 });
    expect([ah(s), cf(s)]).toEqual([DiskStatus.BadCommand, true]);
    call(0x13, { eax: 0x0100, edx: 0x80 });
    expect(ah(s)).toBe(DiskStatus.BadCommand); // the hard-disk status byte (BDA 0x474) kept it
  });

  it("writes by LBA (43h) to the overlay, verifies (44h), seeks (47h) and rejects a bad 43h AL", () => {
    const data = hardDisk();
    const { call, s, mem } = setup({}, 16 * MiB, [new DiskImage(0x80, data)]);
    mem.bytes.fill(0xab, 0x3000, 0x3200);
    dap(mem, 0x600, 1, 0, 0x3000, 5);
    call(0x13, { eax: 0x4302, edx: 0x80, esi: 0x600 });
    expect([ah(s), cf(s)]).toEqual([0, false]);
    expect(data[5 * 512]).toBe(35 & 0xff); // the base bytes are untouched
    dap(mem, 0x600, 1, 0, 0x4000, 5);
    call(0x13, { eax: 0x4200, edx: 0x80, esi: 0x600 });
    expect(mem.read8(0x4000)).toBe(0xab);
    call(0x13, { eax: 0x4400, edx: 0x80, esi: 0x600 });
    expect([ah(s), cf(s), mem.read16(0x602)]).toEqual([0, false, 1]);
    call(0x13, { eax: 0x4700, edx: 0x80, esi: 0x600 });
    expect(cf(s)).toBe(false);
    call(0x13, { eax: 0x4303, edx: 0x80, esi: 0x600 });
    expect([ah(s), cf(s)]).toEqual([DiskStatus.BadCommand, true]);
  });

  it("fills the 48h table as far as the caller's size allows: 1Ah, or 1Eh with no DPTE; less than 1Ah fails", () => {
    const { call, s, mem } = setup();
    mem.write16(0x700, 0x1a);
    mem.write32(0x71a, 0x12345678);
    call(0x13, { eax: 0x4800, edx: 0x80, esi: 0x700 });
    expect([ah(s), mem.read16(0x700), mem.read32(0x704), mem.read32(0x708), mem.read32(0x70c), mem.read32(0x710), mem.read16(0x718)])
      .toEqual([0, 0x1a, 1, 16, 63, 64, 512]);
    expect(mem.read32(0x71a)).toBe(0x12345678); // past the 1Ah bytes: untouched
    mem.write16(0x700, 0x42);
    call(0x13, { eax: 0x4800, edx: 0x80, esi: 0x700 });
    expect([mem.read16(0x700), mem.read32(0x71a)]).toEqual([0x1e, 0xffffffff]);
    mem.write16(0x700, 0x10);
    call(0x13, { eax: 0x4800, edx: 0x80, esi: 0x700 });
    expect([ah(s), cf(s)]).toEqual([DiskStatus.BadCommand, true]);
  });

  it("reports types (15h), change lines (16h), seek (0Ch), drive ready (10h) by drive class", () => {
    const { call, s } = setup({}, 16 * MiB, [new DiskImage(0x80, hardDisk()), new DiskImage(0, new Uint8Array(1440 * 1024)), new DiskImage(1, new Uint8Array(360 * 1024))]);
    call(0x13, { eax: 0x1500, edx: 0x80 });
    expect([ah(s), s.ecx & 0xffff, s.edx & 0xffff, cf(s)]).toEqual([3, 0, 64, false]);
    call(0x13, { eax: 0x1500, edx: 0x00 });
    expect(ah(s)).toBe(2); // 1.44 MB: change line
    call(0x13, { eax: 0x1500, edx: 0x01 });
    expect(ah(s)).toBe(1); // 360 KB: none
    call(0x13, { eax: 0x1500, edx: 0x82 });
    expect([ah(s), cf(s)]).toEqual([0, false]); // no such drive
    call(0x13, { eax: 0x1600, edx: 0x00 });
    expect([ah(s), cf(s)]).toEqual([0, false]);
    call(0x13, { eax: 0x1600, edx: 0x01 });
    expect([ah(s), cf(s)]).toEqual([DiskStatus.ChangeLine, true]);
    call(0x13, { eax: 0x0c00, ecx: 0x0001, edx: 0x0080 });
    expect(cf(s)).toBe(false);
    call(0x13, { eax: 0x0c00, ecx: 0x0501, edx: 0x0080 }); // cylinder 5 of 1
    expect([ah(s), cf(s)]).toEqual([DiskStatus.SeekFailed, true]);
    call(0x13, { eax: 0x1000, edx: 0x80 });
    expect(cf(s)).toBe(false);
    call(0x13, { eax: 0x1000, edx: 0x00 });
    expect(cf(s)).toBe(true);
  });

  it("turns a host write error on a writable disk into AH=CCh, and a read error into AH=10h, never a throw", () => {
    const failing: DiskBacking = { size: 64 * 512, read: () => false, write: () => false };
    const { call, s } = setup({}, 16 * MiB, [new DiskImage(0x80, failing, { writable: true })]);
    call(0x13, { eax: 0x0301, ecx: 0x0001, edx: 0x0080, ebx: 0x1000 });
    expect([ah(s), al(s), cf(s)]).toEqual([DiskStatus.WriteFault, 0, true]);
    call(0x13, { eax: 0x0201, ecx: 0x0001, edx: 0x0080, ebx: 0x1000 });
    expect([ah(s), cf(s)]).toEqual([DiskStatus.EccError, true]);
  });
});

describe("INT 15h", () => {
  it("builds the E820 map of a 16 MiB machine: conventional RAM, EBDA, ROM, RAM above 1 MiB", () => {
    expect(e820Map(16 * MiB)).toEqual([
      { base: 0, length: 0x9fc00, type: E820Type.Ram },
      { base: 0x9fc00, length: 0x400, type: E820Type.Reserved },
      { base: 0xf0000, length: 0x10000, type: E820Type.Reserved },
      { base: 0x100000, length: 15 * MiB, type: E820Type.Ram },
    ]);
  });

  it("walks E820h with EBX continuation, 20- or 24-byte entries, and refuses ECX < 20, a bad EBX and a buffer past RAM", () => {
    const { call, s, mem } = setup();
    const got: number[][] = [];
    s.ebx = 0;
    do {
      call(0x15, { eax: 0xe820, edx: 0x534d4150, ecx: 20, edi: 0x800 });
      expect([s.eax, s.ecx, cf(s)]).toEqual([0x534d4150, 20, false]);
      got.push([mem.read32(0x800), mem.read32(0x808), mem.read32(0x810)]);
    } while (s.ebx !== 0 && got.length < 10);
    expect(got).toEqual([[0, 0x9fc00, 1], [0x9fc00, 0x400, 2], [0xf0000, 0x10000, 2], [0x100000, 15 * MiB, 1]]);
    call(0x15, { eax: 0xe820, edx: 0x534d4150, ecx: 100, ebx: 0, edi: 0x800 });
    expect([s.ecx, mem.read32(0x814)]).toEqual([24, 1]);
    for (const bad of [{ ecx: 19, ebx: 0 }, { ecx: 20, ebx: 4 }, { ecx: 20, ebx: 0xffffffff }]) {
      call(0x15, { eax: 0xe820, edx: 0x534d4150, edi: 0x800, ...bad });
      expect([ah(s), cf(s)]).toEqual([0x86, true]);
    }
    s.es.base = 16 * MiB - 0x10;
    call(0x15, { eax: 0xe820, edx: 0x534d4150, ecx: 20, ebx: 0, edi: 0x8 });
    expect(cf(s)).toBe(true);
  });

  it("reports extended memory with 88h (KiB above 1 MiB) and E801h (KiB to 16 MiB, 64 KiB blocks above)", () => {
    const { call, s } = setup({}, 64 * MiB);
    call(0x15, { eax: 0x8800 });
    expect([s.eax & 0xffff, cf(s)]).toEqual([63 * 1024, false]);
    call(0x15, { eax: 0xe801 });
    expect([s.eax & 0xffff, s.ebx & 0xffff, s.ecx & 0xffff, s.edx & 0xffff]).toEqual([0x3c00, 48 * 16, 0x3c00, 48 * 16]);
  });

  it("moves CX words between the GDT's source and destination bases (87h), and refuses ranges past a limit or RAM", () => {
    const { call, s, mem } = setup();
    const gdt = 0x900;
    const desc = (i: number, base: number, limit: number) => {
      const d = gdt + 8 * i;
      mem.write16(d, limit); mem.write16(d + 2, base & 0xffff); mem.write8(d + 4, (base >>> 16) & 0xff);
      mem.write8(d + 5, 0x93); mem.write8(d + 6, 0); mem.write8(d + 7, base >>> 24);
    };
    for (let i = 0; i < 8; i++) mem.write8(0x300000 + i, 0x10 + i);
    desc(2, 0x300000, 0xffff); desc(3, 0x2000, 0xffff);
    call(0x15, { eax: 0x8700, ecx: 4, esi: gdt });
    expect([ah(s), cf(s), mem.read32(0x2000), mem.read32(0x2004)]).toEqual([0, false, 0x13121110, 0x17161514]);
    desc(3, 0x2000, 5); // 8 bytes do not fit a limit of 5
    call(0x15, { eax: 0x8700, ecx: 4, esi: gdt });
    expect([ah(s), cf(s)]).toEqual([0x02, true]);
    desc(3, 0xfffff000, 0xffff); // outside RAM
    call(0x15, { eax: 0x8700, ecx: 4, esi: gdt });
    expect([ah(s), cf(s)]).toEqual([0x02, true]);
  });

  it("drives A20 through the platform (2400h-2403h) and answers without one as an always-on gate", () => {
    let a20 = true;
    const platform: Platform = { setA20: (e) => { a20 = e; }, a20: () => a20, requestReset: () => {} };
    const ports = new FakePorts();
    ports.values.set(0x92, 0x02);
    const { call, s } = setup({ platform, ports });
    call(0x15, { eax: 0x2400 });
    expect([a20, ah(s), cf(s)]).toEqual([false, 0, false]);
    call(0x15, { eax: 0x2402 });
    expect(al(s)).toBe(0);
    call(0x15, { eax: 0x2401 });
    call(0x15, { eax: 0x2402 });
    expect([a20, al(s)]).toEqual([true, 1]);
    call(0x15, { eax: 0x2403 });
    expect(s.ebx & 0xffff).toBe(0x0002); // port 92h answers, the i8042 status port does not
    const bare = setup();
    bare.call(0x15, { eax: 0x2400 });
    expect([ah(bare.s), cf(bare.s)]).toEqual([0x86, true]);
    bare.call(0x15, { eax: 0x2402 });
    expect([al(bare.s), cf(bare.s)]).toEqual([1, false]);
  });

  it("waits CX:DX microseconds (86h) through the ROM halt loop until the clock passes the deadline", () => {
    let now = 1000;
    const timers: number[] = [];
    const clock: VirtualClock = { mode: "instructions", now: () => now, setTimer: (at) => { timers.push(at); return 1; }, cancel: () => {} };
    const { call, s, bios } = setup({ clock });
    s.eip = 0x7c20;
    call(0x15, { eax: 0x8600, ecx: 0x0000, edx: 1000, eflags: 0x202 }); // 1 ms
    expect([s.cs.selector, s.eip]).toEqual([ROM_SEGMENT, WAIT_TIMER_OFFSET]);
    expect(timers).toEqual([1000 + 1_000_000]);
    call(0x15, { eax: 0x8600, ecx: 0, edx: 5 });
    expect([ah(s), cf(s)]).toEqual([0x83, true]); // a second wait while one is pending
    now = 500_000;
    s.eip = 0x1234; s.cs.selector = 0; s.cs.base = 0;
    bios.call(SERVICE_WAIT_TIMER_RETRY, s, new BiosReturn(new TestMemory(0)).bind(s, ReturnVia.Registers, 0));
    expect(s.eip).toBe(WAIT_TIMER_OFFSET); // not yet: round the loop again
    now = 1_001_000;
    s.eip = 0x1234; s.cs.selector = 0; s.cs.base = 0; s.eflags = 0x202 | FLAG_CF;
    call(SERVICE_WAIT_TIMER_RETRY, {});
    expect([s.eip, ah(s), cf(s)]).toEqual([0x1234, 0, false]);
    const noClock = setup();
    noClock.call(0x15, { eax: 0x8600, ecx: 0x000f, edx: 0x4240, eip: 0x7c20 });
    expect([noClock.s.eip, cf(noClock.s)]).toEqual([0x7c20, false]); // returns at once
  });

  it("points ES:BX at the C0h configuration table, keeps the scancode on 4Fh, and refuses unknown functions", () => {
    const { call, s, mem } = setup();
    call(0x15, { eax: 0xc000 });
    const at = s.es.base + (s.ebx & 0xffff);
    expect([s.es.selector, mem.read16(at), mem.read8(at + 2), mem.read8(at + 5), cf(s)]).toEqual([ROM_SEGMENT, 8, 0xfc, 0x74, false]);
    call(0x15, { eax: 0x4f1e });
    expect([al(s), cf(s)]).toEqual([0x1e, true]);
    call(0x15, { eax: 0xc200 });
    expect([ah(s), cf(s)]).toEqual([0x86, true]);
  });
});

describe("INT 09h and INT 16h extended keys", () => {
  const kbd = () => setup({ keyboard: "i8042" });

  it("turns set-1 make codes into key words with Shift, Caps Lock and Ctrl, and ignores break codes", () => {
    const { bios, mem } = kbd();
    const k = bios.keyboard;
    expect(k.scancode(0x1e)).toBe(0x1e61); // a
    expect(k.scancode(0x9e)).toBe(-1);
    k.scancode(0x2a); // left Shift down
    expect(mem.read8(BDA_KBD_FLAGS) & 0x02).toBe(0x02);
    expect(k.scancode(0x1e)).toBe(0x1e41);
    expect(k.scancode(0x02)).toBe(0x0221); // !
    k.scancode(0xaa);
    k.scancode(0x3a); k.scancode(0xba); // Caps Lock on
    expect(mem.read8(BDA_KBD_FLAGS) & 0x40).toBe(0x40);
    expect(k.scancode(0x1e)).toBe(0x1e41);
    expect(k.scancode(0x02)).toBe(0x0231); // digits ignore Caps Lock
    k.scancode(0x1d); // Ctrl
    expect(k.scancode(0x2e)).toBe(0x2e03); // Ctrl+C
    k.scancode(0x9d);
    expect(k.scancode(0x3b)).toBe(0x3b00); // F1
    expect(k.scancode(0x57)).toBe(0x8500); // F11
  });

  it("keeps E0h in AL for grey keys for 10h, and 00h returns them with AL=0 while dropping F11", () => {
    const { bios, call, s } = kbd();
    const k = bios.keyboard;
    k.scancode(0xe0); k.scancode(0x48); // grey Up
    k.scancode(0x57); // F11
    k.scancode(0xe0); k.scancode(0x1c); // keypad Enter
    call(0x16, { eax: 0x1100 });
    expect([s.eax & 0xffff, (s.eflags & FLAG_ZF) !== 0]).toEqual([0x48e0, false]);
    call(0x16, { eax: 0x0000 });
    expect(s.eax & 0xffff).toBe(0x4800);
    call(0x16, { eax: 0x0000 }); // F11 is skipped by the standard call
    expect(s.eax & 0xffff).toBe(0x1c0d);
    k.scancode(0xe0); k.scancode(0x1c);
    call(0x16, { eax: 0x1000 });
    expect(s.eax & 0xffff).toBe(0xe00d);
  });

  it("reports the extended shift state (12h) and stores a key word (05h)", () => {
    const { bios, call, s } = kbd();
    bios.keyboard.scancode(0xe0); bios.keyboard.scancode(0x1d); // right Ctrl
    bios.keyboard.scancode(0x38); // left Alt
    call(0x16, { eax: 0x1200 });
    expect(s.eax & 0xffff).toBe(((0x04 | 0x02) << 8) | 0x0c);
    call(0x16, { eax: 0x0500, ecx: 0x3920 });
    expect(al(s)).toBe(0);
    call(0x16, { eax: 0x1000 });
    expect(s.eax & 0xffff).toBe(0x3920);
  });

  it("runs INT 09h on AL (the scancode the ROM routine read) only when the i8042 fills the ring", () => {
    const i = kbd();
    i.call(0x09, { eax: 0x1e });
    i.call(0x16, { eax: 0x0100 });
    expect(i.s.eax & 0xffff).toBe(0x1e61);
    const c = setup();
    c.call(0x09, { eax: 0x1e });
    c.call(0x16, { eax: 0x0100 });
    expect(c.s.eflags & FLAG_ZF).toBe(FLAG_ZF); // console mode: the ring is the console's
  });

  it("translates keypad keys by Num Lock", () => {
    expect(translate(0x47, false, 0)).toBe(0x4700);
    expect(translate(0x47, false, 0x20)).toBe(0x4737);
    expect(translate(0x53, false, 0x20)).toBe(0x532e);
  });
});

describe("INT 14h, INT 1Ah, INT 08h, POST", () => {
  /** A CMOS behind ports 70h/71h. */
  function cmos(regs: Record<number, number>) {
    const ports = new FakePorts();
    let index = 0;
    ports.writers.set(0x70, (v) => { index = v & 0x7f; });
    ports.writers.set(0x71, (v) => { regs[index] = v; });
    ports.readers.set(0x71, () => regs[index] ?? 0);
    return { ports, regs };
  }

  it("reads the RTC's time and date as BCD (02h/04h), converting binary and 12-hour modes", () => {
    const { ports } = cmos({ 0x0a: 0x26, 0x0b: 0x02, 0x00: 0x56, 0x02: 0x34, 0x04: 0x12, 0x07: 0x15, 0x08: 0x03, 0x09: 0x24, 0x32: 0x20 });
    const { call, s } = setup({ ports });
    call(0x1a, { eax: 0x0200 });
    expect([s.ecx & 0xffff, (s.edx >>> 8) & 0xff, cf(s)]).toEqual([0x1234, 0x56, false]);
    call(0x1a, { eax: 0x0400 });
    expect([s.ecx & 0xffff, s.edx & 0xffff]).toEqual([0x2024, 0x0315]);
    const bin = cmos({ 0x0a: 0x26, 0x0b: 0x04, 0x00: 59, 0x02: 7, 0x04: 0x80 | 11 }); // binary, 12 h, 11 PM
    const b = setup({ ports: bin.ports });
    b.call(0x1a, { eax: 0x0200 });
    expect([b.s.ecx & 0xffff, (b.s.edx >>> 8) & 0xff]).toEqual([0x2307, 0x59]);
  });

  it("sets the time (03h) with SET held and the chip left in BCD 24-hour mode", () => {
    const { ports, regs } = cmos({ 0x0a: 0x26, 0x0b: 0x06 });
    const { call, s } = setup({ ports });
    call(0x1a, { eax: 0x0300, ecx: 0x0815, edx: 0x3000 });
    expect([regs[0x04], regs[0x02], regs[0x00], regs[0x0b], cf(s)]).toEqual([0x08, 0x15, 0x30, 0x02, false]);
    expect(ports.writes.filter(([p]) => p === 0x71).map(([, v]) => v)[0]).toBe(0x82); // SET first
  });

  it("returns CF=1 from the RTC functions without an RTC, and AH=86h CF=1 for the PCI BIOS check", () => {
    const { call, s } = setup();
    call(0x1a, { eax: 0x0200 });
    expect(cf(s)).toBe(true);
    call(0x1a, { eax: 0xb101, edx: 0 });
    expect([ah(s), cf(s), s.edx]).toEqual([0x86, true, 0]);
  });

  it("rolls the tick count over at midnight (1800B0h ticks) and sets the midnight flag once", () => {
    const { call, s, mem } = setup();
    mem.write32(BDA_TICKS, TICKS_PER_DAY - 1);
    call(0x08, {});
    expect([mem.read32(BDA_TICKS), mem.read8(BDA_MIDNIGHT)]).toEqual([0, 1]);
    call(0x1a, { eax: 0x0000 });
    expect(al(s)).toBe(1);
    call(0x1a, { eax: 0x0000 });
    expect(al(s)).toBe(0);
  });

  it("sends a byte (01h) once THR is empty, initialises the divisor and line (00h), times out on receive (02h)", () => {
    const ports = new FakePorts();
    ports.values.set(0x3fd, 0x60);
    ports.values.set(0x3fe, 0xb0);
    const { call, s } = setup({ ports });
    call(0x14, { eax: 0x0141, edx: 0 });
    expect(ports.writes).toContainEqual([0x3f8, 0x41]);
    expect(ah(s) & 0x80).toBe(0);
    ports.writes.length = 0;
    call(0x14, { eax: 0x00e3, edx: 0 }); // 9600 baud, 8N1
    expect(ports.writes).toEqual([[0x3fb, 0x80], [0x3f8, 12], [0x3f9, 0], [0x3fb, 0x03], [0x3f9, 0]]);
    expect(s.eax & 0xffff).toBe(0x60b0);
    call(0x14, { eax: 0x0200, edx: 0 });
    expect(ah(s) & 0x80).toBe(0x80);
    call(0x14, { eax: 0x0300, edx: 3 }); // COM4: not installed
    expect(ah(s)).toBe(0x80);
  });

  it("programs the 8259A pair (bases 08h/70h, cascade on IR2, IRQ 0-2 unmasked) and PIT channel 0 in mode 3 at boot", () => {
    const ports = new FakePorts();
    setup({ ports });
    expect(ports.writes).toEqual([
      [0x20, 0x11], [0x21, 0x08], [0x21, 0x04], [0x21, 0x01],
      [0xa0, 0x11], [0xa1, 0x70], [0xa1, 0x02], [0xa1, 0x01],
      [0x21, 0xf8], [0xa1, 0xff],
      [0x43, 0x36], [0x40, 0x00], [0x40, 0x00],
    ]);
  });
});

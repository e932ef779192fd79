import { describe, expect, it } from "vitest";
import { Gpr, type AccessSize } from "../../x86/types.js";
import type { IoExit } from "../api.js";
import { PioBus } from "../bus.js";
import { FrameGuestMemory } from "../guest-memory.js";
import { IoAssist, IO_ASSIST_MAX_ELEMENTS, busPortAccess, newStringIo, stringIoUnsupported, type StringIo } from "./io-assist.js";

interface Access { port: number; size: AccessSize; isIn: boolean; value: number }

/** A port that records every access and answers INs from a queue. */
function recordingPort(answers: number[] = []) {
  const log: Access[] = [];
  let next = 0;
  const fn = (port: number, size: AccessSize, isIn: boolean, value: number): number => {
    log.push({ port, size, isIn, value });
    return isIn ? answers[next++] ?? 0 : 0;
  };
  return { fn, log };
}

/** Guest memory that counts batched and single-byte accesses. */
class CountingMemory extends FrameGuestMemory {
  batchedReads = 0; batchedWrites = 0; byteReads = 0; byteWrites = 0;
  // The assist's batched, allocation-free forms.
  override readInto(gpa: number, buf: Uint8Array, offset: number, length: number): boolean { this.batchedReads++; return super.readInto(gpa, buf, offset, length); }
  override writeFrom(gpa: number, buf: Uint8Array, offset: number, length: number): boolean { this.batchedWrites++; return super.writeFrom(gpa, buf, offset, length); }
  override read8(gpa: number): number { this.byteReads++; return super.read8(gpa); }
  override write8(gpa: number, v: number): void { this.byteWrites++; super.write8(gpa, v); }
}

function op(fields: Partial<StringIo>): StringIo {
  return Object.assign(newStringIo(), fields);
}

function setup(ramBytes = 0x30000) {
  const ram = new Uint8Array(ramBytes);
  return { ram, mem: new CountingMemory(ram) };
}

describe("IoAssist OUTS", () => {
  it("OUTSB without REP sends one byte from DS:SI and advances SI by 1", () => {
    const { ram, mem } = setup();
    ram[0x1234 + 0x100] = 0x5a;
    const p = recordingPort();
    const o = op({ size: 1, port: 0xe9, srcBase: 0x1234, esi: 0x100, ecx: 77 });
    expect(new IoAssist().run(o, mem, p.fn)).toBe(1);
    expect(p.log).toEqual([{ port: 0xe9, size: 1, isIn: false, value: 0x5a }]);
    expect(o.esi).toBe(0x101);
    expect(o.ecx).toBe(77); // no REP: CX untouched
    expect(o.done).toBe(true);
  });

  it("REP OUTSW with DF=0 reads the whole span in one batch and sends each word in order", () => {
    const { ram, mem } = setup();
    ram.set([0x11, 0x22, 0x33, 0x44, 0x55, 0x66], 0x2000);
    const p = recordingPort();
    const o = op({ size: 2, rep: true, port: 0x3f8, srcBase: 0x2000, esi: 0, ecx: 3 });
    new IoAssist().run(o, mem, p.fn);
    expect(p.log.map((a) => a.value)).toEqual([0x2211, 0x4433, 0x6655]);
    expect(p.log.every((a) => a.size === 2 && !a.isIn && a.port === 0x3f8)).toBe(true);
    expect(mem.batchedReads).toBe(1);
    expect(mem.byteReads).toBe(0);
    expect(o.esi).toBe(6);
    expect(o.ecx).toBe(0);
    expect(o.count).toBe(3);
  });

  it("REP OUTSD with DF=1 sends dwords going down and moves ESI down by count*4", () => {
    const { ram, mem } = setup();
    const dv = new DataView(ram.buffer);
    dv.setUint32(0x1008, 0xaaaa0001, true);
    dv.setUint32(0x1004, 0xbbbb0002, true);
    dv.setUint32(0x1000, 0xcccc0003, true);
    const p = recordingPort();
    const o = op({ size: 4, rep: true, df: true, addrSize: 4, srcBase: 0, esi: 0x1008, ecx: 3 });
    new IoAssist().run(o, mem, p.fn);
    expect(p.log.map((a) => a.value)).toEqual([0xaaaa0001, 0xbbbb0002, 0xcccc0003]);
    expect(o.esi).toBe(0xffc);
    expect(o.ecx).toBe(0);
    expect(mem.batchedReads).toBe(1);
  });

  it("OUTS reads through the segment it is given (an override) rather than ES", () => {
    const { ram, mem } = setup();
    ram[0x500] = 0x01; // ES:SI
    ram[0x900] = 0x02; // FS:SI
    const p = recordingPort();
    new IoAssist().run(op({ size: 1, esBase: 0x500, srcBase: 0x900, esi: 0 }), mem, p.fn);
    expect(p.log[0]!.value).toBe(0x02);
  });

  it("with 16-bit addressing a span crossing offset 0xffff wraps to offset 0 of the segment, byte by byte", () => {
    const { ram, mem } = setup();
    const base = 0x10000;
    ram[base + 0xfffe] = 0xa1; ram[base + 0xffff] = 0xa2; ram[base] = 0xa3; ram[base + 1] = 0xa4;
    ram[base + 0x10000] = 0xee; // what a non-wrapping read would wrongly take
    const p = recordingPort();
    const o = op({ size: 1, rep: true, srcBase: base, esi: 0xfffe, ecx: 4 });
    new IoAssist().run(o, mem, p.fn);
    expect(p.log.map((a) => a.value)).toEqual([0xa1, 0xa2, 0xa3, 0xa4]);
    expect(o.esi).toBe(2);
    expect(mem.batchedReads).toBe(0);
  });

  it("a 16-bit update changes only SI and CX, leaving bits 31:16 of ESI and ECX", () => {
    const { mem } = setup();
    const o = op({ size: 1, rep: true, srcBase: 0, esi: 0xabcd_fffe, ecx: 0x1234_0002 });
    new IoAssist().run(o, mem, recordingPort().fn);
    expect(o.esi).toBe(0xabcd_0000);
    expect(o.ecx).toBe(0x1234_0000);
  });

  it("a source running past the end of RAM reads the missing bytes as all-ones, byte by byte", () => {
    const { mem } = setup(0x1000);
    const p = recordingPort();
    new IoAssist().run(op({ size: 2, rep: true, addrSize: 4, srcBase: 0, esi: 0xffe, ecx: 2 }), mem, p.fn);
    expect(p.log.map((a) => a.value)).toEqual([0x0000, 0xffff]); // RAM ends at 0x1000
    expect(mem.byteReads).toBe(4);
  });
});

describe("IoAssist INS", () => {
  it("INSB without REP stores one byte at ES:DI and advances DI", () => {
    const { ram, mem } = setup();
    const p = recordingPort([0x77]);
    const o = op({ in: true, size: 1, port: 0x60, esBase: 0x3000, srcBase: 0x9000, edi: 0x10 });
    new IoAssist().run(o, mem, p.fn);
    expect(ram[0x3010]).toBe(0x77);
    expect(ram[0x9010]).toBe(0);
    expect(p.log).toEqual([{ port: 0x60, size: 1, isIn: true, value: 0 }]);
    expect(o.edi).toBe(0x11);
  });

  it("INS always writes through ES, whatever the source segment is", () => {
    const { ram, mem } = setup();
    new IoAssist().run(op({ in: true, size: 1, esBase: 0x100, srcBase: 0x200, edi: 0 }), mem, recordingPort([9]).fn);
    expect(ram[0x100]).toBe(9);
    expect(ram[0x200]).toBe(0);
  });

  it("REP INSW with DF=0 calls the port per element and writes the destination in one batch", () => {
    const { ram, mem } = setup();
    const p = recordingPort([0x1122, 0x3344, 0x5566]);
    const o = op({ in: true, size: 2, rep: true, esBase: 0x4000, edi: 0x20, ecx: 3 });
    new IoAssist().run(o, mem, p.fn);
    expect([...ram.subarray(0x4020, 0x4026)]).toEqual([0x22, 0x11, 0x44, 0x33, 0x66, 0x55]);
    expect(p.log).toHaveLength(3);
    expect(mem.batchedWrites).toBe(1);
    expect(mem.byteWrites).toBe(0);
    expect(o.edi).toBe(0x26);
    expect(o.ecx).toBe(0);
  });

  it("REP INSD with DF=1 stores the first dword at EDI and the next ones below it", () => {
    const { ram, mem } = setup();
    const p = recordingPort([0x01020304, 0x05060708]);
    const o = op({ in: true, size: 4, rep: true, df: true, addrSize: 4, esBase: 0, edi: 0x2004, ecx: 2 });
    new IoAssist().run(o, mem, p.fn);
    const dv = new DataView(ram.buffer);
    expect(dv.getUint32(0x2004, true)).toBe(0x01020304);
    expect(dv.getUint32(0x2000, true)).toBe(0x05060708);
    expect(o.edi).toBe(0x1ffc);
    expect(mem.batchedWrites).toBe(1);
  });

  it("REP INSB across the 64 KiB offset wrap writes the tail at offset 0 of ES", () => {
    const { ram, mem } = setup();
    const o = op({ in: true, size: 1, rep: true, esBase: 0x10000, edi: 0xffff, ecx: 2 });
    new IoAssist().run(o, mem, recordingPort([0xb1, 0xb2]).fn);
    expect(ram[0x1ffff]).toBe(0xb1);
    expect(ram[0x10000]).toBe(0xb2);
    expect(ram[0x20000]).toBe(0);
    expect(o.edi).toBe(1);
  });
});

describe("IoAssist REP counts", () => {
  it("a REP with CX = 0 touches neither port nor memory nor registers, and completes", () => {
    const { mem } = setup();
    const p = recordingPort();
    const o = op({ in: true, size: 1, rep: true, edi: 0x40, ecx: 0xffff_0000 });
    expect(new IoAssist().run(o, mem, p.fn)).toBe(0);
    expect(p.log).toEqual([]);
    expect(mem.batchedWrites + mem.byteWrites).toBe(0);
    expect(o.edi).toBe(0x40);
    expect(o.done).toBe(true);
  });

  it("counts with CX only under 16-bit addressing and with ECX under 32-bit", () => {
    const { mem } = setup();
    const a = op({ size: 1, rep: true, ecx: 0x0001_0002 });
    new IoAssist().run(a, mem, recordingPort().fn);
    expect(a.count).toBe(2);
    const b = op({ size: 1, rep: true, addrSize: 4, ecx: 0x0001_0002 });
    new IoAssist(1 << 17).run(b, mem, recordingPort().fn);
    expect(b.count).toBe(0x10002);
  });

  it("stops at maxElements leaving the rest in CX and the instruction not done; the next call finishes it", () => {
    const { ram, mem } = setup();
    for (let i = 0; i < 10; i++) ram[0x100 + i] = i + 1;
    const p = recordingPort();
    const assist = new IoAssist(4);
    const o = op({ size: 1, rep: true, esi: 0x100, ecx: 10 });
    const seen: number[] = [];
    for (let calls = 1; ; calls++) {
      assist.run(o, mem, p.fn);
      seen.push(o.count);
      if (o.done) { expect(calls).toBe(3); break; }
      expect(o.ecx).toBe(10 - seen.reduce((x, y) => x + y, 0));
    }
    expect(seen).toEqual([4, 4, 2]);
    expect(p.log.map((a) => a.value)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(o.esi).toBe(0x10a);
    expect(o.ecx).toBe(0);
  });

  it("bounds each call to IO_ASSIST_MAX_ELEMENTS by default", () => {
    const { mem } = setup();
    const o = op({ size: 1, rep: true, addrSize: 4, ecx: IO_ASSIST_MAX_ELEMENTS + 5 });
    new IoAssist().run(o, mem, recordingPort().fn);
    expect(o.count).toBe(IO_ASSIST_MAX_ELEMENTS);
    expect(o.ecx).toBe(5);
    expect(o.done).toBe(false);
  });

  it("rejects a maxElements that is not a positive integer", () => {
    expect(() => new IoAssist(0)).toThrow(RangeError);
  });
});

describe("IoAssist on the guest's registers", () => {
  it("takes SI/DI/CX from the guestControl words, writes them back and fills the one io exit", () => {
    const mem = new FrameGuestMemory(new Uint8Array(0x1000));
    mem.writeBytes(0x100, new Uint8Array([0x68, 0x69])); // "hi" at DS:SI
    const seen: number[] = [];
    const bus = new PioBus();
    bus.insert({ space: "pio", base: 0xe9, length: 1 }, { name: "sink", read: () => 0xff, write: (_o, _s, v) => { seen.push(v); } });
    const regs = new Uint32Array(16);
    regs[Gpr.Esi] = 0xabcd_0100; regs[Gpr.Ecx] = 0xabcd_0002; // 16-bit REP: the upper halves stay
    const exit: IoExit = { kind: "io", port: 0, size: 4, in: true, data: 7, count: 0 };
    const o = op({ in: false, size: 1, rep: true, port: 0xe9, addrSize: 2, srcBase: 0 });
    new IoAssist().runOnGuest(o, mem, busPortAccess(bus), regs, exit);
    expect(seen).toEqual([0x68, 0x69]);
    expect([regs[Gpr.Esi], regs[Gpr.Ecx]]).toEqual([0xabcd_0102, 0xabcd_0000]);
    expect(exit).toEqual({ kind: "io", port: 0xe9, size: 1, in: false, data: 0, count: 2 });
    expect(o.done).toBe(true);
  });

  it("names why a backend cannot assist: no bus or memory, or paging on", () => {
    expect(stringIoUnsupported(true, true, 0x11)).toBeUndefined();
    expect(stringIoUnsupported(false, true, 0)).toMatch(/needs Tokens.PioBus and Tokens.GuestMemory/);
    expect(stringIoUnsupported(true, false, 0)).toMatch(/needs Tokens.PioBus and Tokens.GuestMemory/);
    expect(stringIoUnsupported(true, true, 0x8000_0011)).toMatch(/paging enabled/);
  });
});

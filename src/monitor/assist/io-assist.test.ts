import { describe, expect, it } from "vitest";
import { Gpr, type AccessSize } from "../../x86/types.js";
import type { IoExit } from "../api.js";
import { PioBus } from "../bus.js";
import { FrameGuestMemory } from "../guest-memory.js";
import { resetState } from "../../x86/state.js";
import type { SegmentReg, X86State } from "../../x86/types.js";
import { IoAssist, IoAssistStatus, IO_ASSIST_MAX_ELEMENTS, busPortAccess, newStringIo, stringIoUnsupported, type StringIo } from "./io-assist.js";

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

  it("with 16-bit addressing a span crossing offset 0xffff wraps to offset 0 of the segment, one batch each side", () => {
    const { ram, mem } = setup();
    const base = 0x10000;
    ram[base + 0xfffe] = 0xa1; ram[base + 0xffff] = 0xa2; ram[base] = 0xa3; ram[base + 1] = 0xa4;
    ram[base + 0x10000] = 0xee; // what a non-wrapping read would wrongly take
    const p = recordingPort();
    const o = op({ size: 1, rep: true, srcBase: base, esi: 0xfffe, ecx: 4 });
    new IoAssist().run(o, mem, p.fn);
    expect(p.log.map((a) => a.value)).toEqual([0xa1, 0xa2, 0xa3, 0xa4]);
    expect(o.esi).toBe(2);
    expect(mem.batchedReads).toBe(2);
    expect(mem.byteReads).toBe(0);
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
    // A backend that passes the guest state gets paging walked.
    expect(stringIoUnsupported(true, true, 0x8000_0011, true)).toBeUndefined();
    expect(stringIoUnsupported(false, true, 0x8000_0011, true)).toMatch(/needs Tokens.PioBus/);
  });
});

// ---------------------------------------------------------------- with the guest's state

const PD = 0x1000, PT = 0x2000;
const P = 1, RW = 2, US = 4, A = 0x20, D = 0x40;
/** A flat 4 GiB data segment (type 3, S, P, DPL `dpl`, B) or the value given. */
const flat = (dpl = 0, attrib = 0x4093): SegmentReg => ({ selector: 0x10 | dpl, base: 0, limit: 0xffffffff, attrib: attrib | (dpl << 5) });

/** Protected mode with 32-bit paging at CR3 = PD; PD[0] -> PT; `cpl` 0 or 3 (SS.DPL). */
function pagedGuest(cpl = 0): X86State {
  const s = resetState();
  s.cr0 = 0x8000_0011; s.cr3 = PD; s.cr4 = 0;
  s.es = flat(cpl); s.ds = flat(cpl); s.ss = flat(cpl); s.fs = flat(cpl); s.gs = flat(cpl);
  s.cs = flat(cpl, 0x409b);
  return s;
}

/** 4 MiB of RAM whose 32-bit tables map linear page `lin >> 12` to `phys` with `flags`. */
function paged(map: [number, number, number][]) {
  const { ram, mem } = setup(0x400000);
  const dv = new DataView(ram.buffer);
  dv.setUint32(PD, PT | P | RW | US, true);
  for (const [lin, phys, flags] of map) dv.setUint32(PT + ((lin >>> 12) << 2), phys | flags, true);
  const pte = (lin: number) => dv.getUint32(PT + ((lin >>> 12) << 2), true);
  return { ram, mem, dv, pte };
}

describe("IoAssist with guest paging (StringIo.guest)", () => {
  it("REP INSW writes each linear page to the frame the guest maps, one batched write per guest-physical run", () => {
    // Linear 0x10000 and 0x11000 map to adjacent frames (one run); 0x12000 elsewhere (a second run).
    const { ram, mem, pte } = paged([[0x10000, 0x50000, P | RW], [0x11000, 0x51000, P | RW], [0x12000, 0x30000, P | RW]]);
    const words = (0x13000 - 0x10800) / 2;
    const answers = Array.from({ length: words }, (_, i) => (i * 7 + 1) & 0xffff);
    const o = op({ in: true, size: 2, rep: true, addrSize: 4, edi: 0x10800, ecx: words, guest: pagedGuest() });
    const assist = new IoAssist(8192);
    expect(assist.run(o, mem, recordingPort(answers).fn)).toBe(words);
    expect(assist.status).toBe(IoAssistStatus.Done);
    const dv = new DataView(ram.buffer);
    expect(dv.getUint16(0x50800, true)).toBe(answers[0]);
    expect(dv.getUint16(0x50ffe, true)).toBe(answers[0x3ff]);
    expect(dv.getUint16(0x51000, true)).toBe(answers[0x400]);
    expect(dv.getUint16(0x30000, true)).toBe(answers[0xc00]);
    expect(dv.getUint16(0x30ffe, true)).toBe(answers[words - 1]);
    expect(dv.getUint16(0x10800, true)).toBe(0); // the linear address is not used as guest-physical
    expect(mem.batchedWrites).toBe(2);
    expect([o.edi, o.ecx, o.done]).toEqual([0x13000, 0, true]);
    // SDM 4.8: accessed and dirty set on the PTEs written through.
    for (const l of [0x10000, 0x11000, 0x12000]) expect(pte(l) & (A | D)).toBe(A | D);
  });

  it("REP OUTSB with DF=1 reads down across pages mapped apart, and a word straddling two frames takes a byte from each", () => {
    const { ram, mem, pte } = paged([[0x20000, 0x60000, P], [0x21000, 0x40000, P]]);
    ram[0x40001] = 0xb1; ram[0x40000] = 0xb0; ram[0x60fff] = 0xaf; ram[0x60ffe] = 0xae;
    const p = recordingPort();
    const o = op({ size: 1, rep: true, addrSize: 4, df: true, esi: 0x21001, ecx: 4, srcSeg: 3, guest: pagedGuest() });
    new IoAssist().run(o, mem, p.fn);
    expect(p.log.map((a) => a.value)).toEqual([0xb1, 0xb0, 0xaf, 0xae]);
    expect(o.esi).toBe(0x20ffd);
    expect(pte(0x20000) & (A | D)).toBe(A); // read only: accessed, not dirty
    const w = recordingPort();
    new IoAssist().run(op({ size: 2, addrSize: 4, esi: 0x20fff, guest: pagedGuest() }), mem, w.fn);
    expect(w.log[0]!.value).toBe(0x00af | (0xb0 << 8));
  });

  it("a REP INSB reaching a non-present page moves the elements before it, then reports #PF with CR2 and the error code", () => {
    const { ram, mem } = paged([[0x11000, 0x51000, P | RW]]); // 0x12000 not present
    const p = recordingPort(Array.from({ length: 32 }, (_, i) => 0x40 + i));
    const o = op({ in: true, size: 1, rep: true, addrSize: 4, edi: 0x11ff0, ecx: 0x20, guest: pagedGuest() });
    const assist = new IoAssist();
    expect(assist.run(o, mem, p.fn)).toBe(16);
    expect(assist.status).toBe(IoAssistStatus.Exception);
    expect([assist.vector, assist.errorCode, assist.hasErrorCode, assist.cr2]).toEqual([14, 2, true, 0x12000]); // W, supervisor, not present
    expect(p.log.length).toBe(16); // the faulting element's port read never happened
    expect(ram[0x51ff0]).toBe(0x40);
    expect(ram[0x51fff]).toBe(0x4f);
    expect([o.edi, o.ecx, o.count, o.done]).toEqual([0x12000, 0x10, 16, false]);
  });

  it("a word straddling into a non-present page faults with CR2 at the page and moves nothing", () => {
    const { ram, mem } = paged([[0x11000, 0x51000, P | RW]]);
    const p = recordingPort([0x1234]);
    const o = op({ in: true, size: 2, addrSize: 4, edi: 0x11fff, guest: pagedGuest() });
    const assist = new IoAssist();
    expect(assist.run(o, mem, p.fn)).toBe(0);
    expect([assist.status, assist.vector, assist.cr2, assist.errorCode]).toEqual([IoAssistStatus.Exception, 14, 0x12000, 2]);
    expect(p.log).toEqual([]);
    expect(ram[0x51fff]).toBe(0);
    expect([o.edi, o.done]).toEqual([0x11fff, false]);
  });

  it("REP OUTSB going down (DF=1) faults at the first byte below a present page, keeping what it sent", () => {
    const { ram, mem } = paged([[0x12000, 0x52000, P]]); // 0x11000 not present
    for (let i = 0; i < 4; i++) ram[0x52000 + i] = 0x10 + i;
    const p = recordingPort();
    const o = op({ size: 1, rep: true, addrSize: 4, df: true, esi: 0x12003, ecx: 8, guest: pagedGuest() });
    const assist = new IoAssist();
    expect(assist.run(o, mem, p.fn)).toBe(4);
    expect(p.log.map((a) => a.value)).toEqual([0x13, 0x12, 0x11, 0x10]);
    expect([assist.vector, assist.errorCode, assist.cr2]).toEqual([14, 0, 0x11fff]); // a supervisor read
    expect([o.esi, o.ecx]).toEqual([0x11fff, 4]);
  });

  it("protection: a CPL 3 access to a supervisor page is #PF P|W|U; a supervisor write to a read-only page faults only with CR0.WP", () => {
    const { mem } = paged([[0x10000, 0x50000, P | RW], [0x11000, 0x51000, P | US]]);
    const assist = new IoAssist();
    const p = recordingPort([1, 2]);
    assist.run(op({ in: true, size: 1, addrSize: 4, edi: 0x10010, guest: pagedGuest(3) }), mem, p.fn);
    expect([assist.status, assist.vector, assist.errorCode, assist.cr2]).toEqual([IoAssistStatus.Exception, 14, 7, 0x10010]);
    expect(p.log).toEqual([]);
    // Read-only user page: a user write faults (P|W|U), a user read is fine.
    assist.run(op({ in: true, size: 1, addrSize: 4, edi: 0x11000, guest: pagedGuest(3) }), mem, p.fn);
    expect([assist.vector, assist.errorCode]).toEqual([14, 7]);
    assist.run(op({ size: 1, addrSize: 4, esi: 0x11000, guest: pagedGuest(3) }), mem, p.fn);
    expect(assist.status).toBe(IoAssistStatus.Done);
    // Supervisor write to it: allowed without CR0.WP, #PF P|W with it.
    const sup = pagedGuest();
    expect(new IoAssist().run(op({ in: true, size: 1, addrSize: 4, edi: 0x11000, guest: sup }), mem, p.fn)).toBe(1);
    sup.cr0 |= 0x10000;
    assist.run(op({ in: true, size: 1, addrSize: 4, edi: 0x11000, guest: sup }), mem, p.fn);
    expect([assist.vector, assist.errorCode]).toEqual([14, 3]);
  });

  it("PAE paging with a 2 MiB page maps the transfer through it", () => {
    const { ram, mem } = setup(0x400000);
    const dv = new DataView(ram.buffer);
    dv.setUint32(0x3000, 0x4000 | P, true); // PDPT[0] -> PD
    dv.setUint32(0x4000, 0x200000 | P | RW | 0x80, true); // PD[0]: 2 MiB page at 2 MiB
    const g = pagedGuest(); g.cr3 = 0x3000; g.cr4 = 0x20;
    const o = op({ in: true, size: 4, rep: true, addrSize: 4, edi: 0x10000, ecx: 2, guest: g });
    new IoAssist().run(o, mem, recordingPort([0x11223344, 0x55667788]).fn);
    expect(dv.getUint32(0x210000, true)).toBe(0x11223344);
    expect(dv.getUint32(0x210004, true)).toBe(0x55667788);
    expect(dv.getUint32(0x4000, true) & (A | D)).toBe(A | D);
  });

  it("a transfer scattered over more guest-physical runs than one call batches stops at a run boundary; the next call goes on", () => {
    const pages = 70;
    const map: [number, number, number][] = [];
    for (let i = 0; i < pages; i++) map.push([0x100000 + i * 0x1000, 0x200000 + i * 0x2000, P | RW]); // frames with gaps
    const { mem } = paged(map);
    const o = op({ in: true, size: 4, rep: true, addrSize: 4, edi: 0x100000, ecx: pages * 1024, guest: pagedGuest() });
    const assist = new IoAssist(1 << 17);
    const port = recordingPort();
    const first = assist.run(o, mem, port.fn);
    expect(first).toBe(64 * 1024); // 64 runs of one page each
    expect([o.done, o.ecx, o.edi, assist.status]).toEqual([false, pages * 1024 - first, 0x100000 + first * 4, IoAssistStatus.Done]);
    expect(mem.batchedWrites).toBe(first / 1024);
    assist.run(o, mem, port.fn);
    expect([o.done, o.ecx, o.edi]).toEqual([true, 0, 0x100000 + pages * 0x1000]);
    expect(port.log.length).toBe(pages * 1024);
  });

  it("a page table outside RAM is Unsupported with nothing moved", () => {
    const { mem } = setup(0x10000);
    const g = pagedGuest(); g.cr3 = 0x100000;
    const p = recordingPort([1]);
    const o = op({ in: true, size: 1, addrSize: 4, edi: 0x1000, guest: g });
    const assist = new IoAssist();
    expect(assist.run(o, mem, p.fn)).toBe(0);
    expect(assist.status).toBe(IoAssistStatus.Unsupported);
    expect(assist.message).toMatch(/page-table entry at gpa 0x100000 is not in RAM/);
    expect(p.log).toEqual([]);
  });

  it("runOnGuest returns the status and reports the elements moved before the fault in the io exit", () => {
    const { mem } = paged([[0x11000, 0x51000, P | RW]]);
    const regs = new Uint32Array(16);
    regs[Gpr.Edi] = 0x11ffe; regs[Gpr.Ecx] = 4;
    const exit: IoExit = { kind: "io", port: 0, size: 1, in: false, data: 0, count: 0 };
    const assist = new IoAssist();
    const st = assist.runOnGuest(op({ in: true, size: 1, rep: true, addrSize: 4, port: 0x1f0, guest: pagedGuest() }), mem, recordingPort([9, 9]).fn, regs, exit);
    expect(st).toBe(IoAssistStatus.Exception);
    expect(exit).toEqual({ kind: "io", port: 0x1f0, size: 1, in: true, data: 0, count: 2 });
    expect([regs[Gpr.Edi], regs[Gpr.Ecx], assist.cr2]).toEqual([0x12000, 2, 0x12000]);
  });
});

describe("IoAssist segment checks (StringIo.guest)", () => {
  /** Protected mode without paging. */
  const pm = (): X86State => { const s = pagedGuest(); s.cr0 = 0x11; return s; };

  it("the segment bases come from the guest state: ES for INS, srcSeg (an override) for OUTS", () => {
    const { ram, mem } = setup();
    const g = pm(); g.es.base = 0x1000; g.fs.base = 0x2000;
    ram[0x2010] = 0x77;
    const p = recordingPort([0x66]);
    new IoAssist().run(op({ in: true, size: 1, addrSize: 4, edi: 0x10, esBase: 0x9000, guest: g }), mem, p.fn);
    expect(ram[0x1010]).toBe(0x66);
    new IoAssist().run(op({ size: 1, addrSize: 4, esi: 0x10, srcSeg: 4, srcBase: 0x9000, guest: g }), mem, p.fn);
    expect(p.log[1]!.value).toBe(0x77);
  });

  it("a REP INSB running past the ES limit moves the bytes inside it, then #GP(0)", () => {
    const { ram, mem } = setup();
    const g = pm(); g.es.limit = 0xfff;
    const assist = new IoAssist();
    const o = op({ in: true, size: 1, rep: true, addrSize: 4, edi: 0xffe, ecx: 4, guest: g });
    expect(assist.run(o, mem, recordingPort([1, 2, 3, 4]).fn)).toBe(2);
    expect([assist.status, assist.vector, assist.errorCode, assist.hasErrorCode]).toEqual([IoAssistStatus.Exception, 13, 0, true]);
    expect([ram[0xffe], ram[0xfff], ram[0x1000]]).toEqual([1, 2, 0]);
    expect([o.edi, o.ecx]).toEqual([0x1000, 2]);
  });

  it("OUTS beyond the limit of SS is #SS(0); in real mode a word at offset FFFFh is #GP with no error code", () => {
    const { mem } = setup();
    const g = pm(); g.ss.limit = 0xff;
    const assist = new IoAssist();
    assist.run(op({ size: 4, addrSize: 4, esi: 0xfe, srcSeg: 2, guest: g }), mem, recordingPort().fn);
    expect([assist.vector, assist.errorCode, assist.hasErrorCode]).toEqual([12, 0, true]);
    const r = resetState(); // real mode, 64 KiB limits
    const p = recordingPort([0xabcd]);
    expect(assist.run(op({ in: true, size: 2, edi: 0xffff, guest: r }), mem, p.fn)).toBe(0);
    expect([assist.status, assist.vector, assist.hasErrorCode]).toEqual([IoAssistStatus.Exception, 13, false]);
    expect(p.log).toEqual([]);
  });

  it("INS into a read-only or null ES is #GP(0); expand-down ES accepts only offsets above the limit", () => {
    const { mem } = setup();
    const assist = new IoAssist();
    const ro = pm(); ro.es.attrib = 0x4091; // data, read-only
    assist.run(op({ in: true, size: 1, addrSize: 4, edi: 0, guest: ro }), mem, recordingPort([1]).fn);
    expect([assist.status, assist.vector]).toEqual([IoAssistStatus.Exception, 13]);
    const nul = pm(); nul.es.attrib = 0x10000; // unusable
    assist.run(op({ in: true, size: 1, addrSize: 4, edi: 0, guest: nul }), mem, recordingPort([1]).fn);
    expect(assist.vector).toBe(13);
    // OUTS may read a readable code segment through a CS override.
    const code = pm(); code.cs.base = 0x100;
    assist.run(op({ size: 1, addrSize: 4, esi: 0, srcSeg: 1, guest: code }), mem, recordingPort().fn);
    expect(assist.status).toBe(IoAssistStatus.Done);
    const down = pm(); down.es.attrib = 0x4097; down.es.limit = 0xfff; // expand-down, writable, B = 1
    assist.run(op({ in: true, size: 1, addrSize: 4, edi: 0x800, guest: down }), mem, recordingPort([1]).fn);
    expect(assist.status).toBe(IoAssistStatus.Exception);
    assist.run(op({ in: true, size: 1, addrSize: 4, edi: 0x2000, guest: down }), mem, recordingPort([1]).fn);
    expect(assist.status).toBe(IoAssistStatus.Done);
  });
});

describe("IoAssist public API", () => {
  it("is exported from the monitor's api.ts with its status values", async () => {
    const api = await import("../api.js");
    expect(api.IoAssist).toBe(IoAssist);
    expect([IoAssistStatus.Done, IoAssistStatus.Exception, IoAssistStatus.Unsupported]).toEqual([0, 1, 2]);
    const o = newStringIo();
    expect([o.guest, o.srcSeg]).toEqual([null, 3]);
  });
});

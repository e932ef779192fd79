import { describe, expect, it } from "vitest";
import { X86Cpu } from "../../x86/cpu.js";
import { FlatMemory } from "../../x86/memory.js";
import { cloneState, realModeState } from "../../x86/state.js";
import { NO_IO, rng } from "../../x86/testing.js";
import { CpuExitReason, type AccessSize, type SegmentReg, type X86State } from "../../x86/types.js";
import type { Bus } from "../api.js";
import { FrameGuestMemory } from "../guest-memory.js";
import { MemAssist, MemAssistStatus, MEM_ASSIST_MAX_ELEMENTS, type MemAssistEnv } from "./mem-assist.js";

// Guest-physical map of every test: RAM [0, RAM_END), a memory-like device [MMIO_BASE, SPACE).
const RAM_END = 0x20000;
const MMIO_BASE = 0x20000;
const MMIO_SIZE = 0x10000;
const SPACE = MMIO_BASE + MMIO_SIZE;
/** Linear address of the instruction under test (RAM). */
const CODE = 0x1000;

const CF = 1, PF = 4, AF = 0x10, ZF = 0x40, SF = 0x80, DF = 0x400, OF = 0x800;
const ARITH = CF | PF | AF | ZF | SF | OF;

interface Access { gpa: number; write: boolean; size: AccessSize; data: number }

/** An MMIO bus over plain bytes that records every access as a device would see it. */
class RecordingBus implements Bus {
  readonly space = "mmio" as const;
  readonly unclaimed = { reads: 0, writes: 0 };
  readonly log: Access[] = [];
  constructor(readonly bytes: Uint8Array, readonly base: number) {}
  insert(): undefined { return undefined; }
  read(addr: number, size: AccessSize): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.bytes[addr - this.base + i]! << (8 * i);
    v >>>= 0;
    this.log.push({ gpa: addr, write: false, size, data: v });
    return v;
  }
  write(addr: number, size: AccessSize, value: number): void {
    this.log.push({ gpa: addr, write: true, size, data: value >>> 0 });
    for (let i = 0; i < size; i++) this.bytes[addr - this.base + i] = value >>> (8 * i);
  }
}

function world(maxElements = MEM_ASSIST_MAX_ELEMENTS, extra: Partial<MemAssistEnv> = {}) {
  const ram = new Uint8Array(RAM_END);
  const dev = new Uint8Array(MMIO_SIZE);
  const bus = new RecordingBus(dev, MMIO_BASE);
  const env: MemAssistEnv = {
    memory: new FrameGuestMemory(ram), mmio: bus,
    isMmio: (g) => g >= MMIO_BASE && g < SPACE,
    ...extra,
  };
  return { ram, dev, bus, env, assist: new MemAssist(env, maxElements) };
}

function seg(selector: number, base: number, limit: number, attrib: number): SegmentReg {
  return { selector, base, limit, attrib };
}

/** Real mode, CS:IP at CODE, DS and ES on the device window. */
function real16(): X86State {
  const s = realModeState(CODE >> 4, 0);
  s.ds = seg(MMIO_BASE >> 4, MMIO_BASE, 0xffff, 0x93);
  s.es = seg(MMIO_BASE >> 4, MMIO_BASE, 0xffff, 0x93);
  return s;
}

/** Protected mode with flat 4 GiB 32-bit segments, EIP at CODE. */
function flat32(): X86State {
  const s = realModeState(0, 0);
  s.cr0 = 0x11;
  s.cs = seg(0x08, 0, 0xffffffff, 0xc09b);
  for (const k of ["es", "ss", "ds", "fs", "gs"] as const) s[k] = seg(0x10, 0, 0xffffffff, 0xc093);
  s.eip = CODE;
  s.esp = 0x8000;
  return s;
}

interface Scenario {
  state: X86State;
  code: number[];
  ram?: (b: Uint8Array) => void;
  dev?: (b: Uint8Array) => void;
  maxElements?: number;
}

function place(ram: Uint8Array, sc: Scenario): void {
  ram.set([...sc.code, 0xf4], sc.state.cs.base + sc.state.eip);
}

/** The assist, called again while a REP batch leaves work for the next exit. */
function viaAssist(sc: Scenario) {
  const w = world(sc.maxElements);
  sc.ram?.(w.ram);
  sc.dev?.(w.dev);
  place(w.ram, sc);
  const state = cloneState(sc.state);
  const statuses: MemAssistStatus[] = [];
  for (let i = 0; i < 100; i++) {
    const s = w.assist.run(state, MMIO_BASE);
    statuses.push(s);
    if (s !== MemAssistStatus.Done || w.assist.done) break;
  }
  return { ...w, state, statuses, last: statuses[statuses.length - 1]! };
}

// One core and one flat memory for every oracle run (the core drops its caches at run()).
const oracleMem = new FlatMemory(SPACE);
const oracle = new X86Cpu(oracleMem, NO_IO);
oracle.intercepts.hlt = true;
oracle.intercepts.exceptionBitmap = 0xffffffff;

/** The same instruction on the x86 core, the device window being plain RAM there. */
function viaCore(sc: Scenario) {
  const b = oracleMem.bytes;
  b.fill(0);
  sc.ram?.(b.subarray(0, RAM_END));
  sc.dev?.(b.subarray(MMIO_BASE, SPACE));
  place(b, sc);
  oracle.setState(sc.state);
  const reason = oracle.run(1_000_000);
  const state = cloneState(sc.state);
  oracle.getState(state);
  return { reason, state, vector: oracle.exit.vector, ram: b.slice(0, RAM_END), dev: b.slice(MMIO_BASE, SPACE) };
}

function regs(s: X86State) {
  return {
    eax: s.eax >>> 0, ecx: s.ecx >>> 0, edx: s.edx >>> 0, ebx: s.ebx >>> 0,
    esp: s.esp >>> 0, ebp: s.ebp >>> 0, esi: s.esi >>> 0, edi: s.edi >>> 0,
    eip: s.eip >>> 0, eflags: s.eflags >>> 0,
  };
}

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : a.length;
}

/** Run on both, expect the same registers, flags, EIP, RAM, device bytes and outcome. */
function expectSameAsCore(sc: Scenario) {
  const a = viaAssist(sc);
  const c = viaCore(sc);
  if (c.reason === CpuExitReason.Hlt) {
    expect(a.last, a.assist.message).toBe(MemAssistStatus.Done);
    expect(a.assist.done).toBe(true);
  } else {
    expect(c.reason).toBe(CpuExitReason.Exception);
    expect(a.last).toBe(MemAssistStatus.Exception);
    expect(a.assist.vector).toBe(c.vector);
  }
  expect(regs(a.state)).toEqual(regs(c.state));
  expect(firstDiff(a.ram, c.ram)).toBe(-1);
  expect(firstDiff(a.dev, c.dev)).toBe(-1);
  return a;
}

function le(v: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((v >>> (8 * i)) & 0xff);
  return out;
}

const MASKS = [0, 0xff, 0xffff, 0, 0xffffffff];
const EDGES = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0x0f, 0x10];

describe("MemAssist MOV", () => {
  it("MOV r/m8, r8 (88) in real mode writes one byte to the device at DS:disp16", () => {
    const s = real16();
    s.eax = 0x1234_56ab;
    const a = expectSameAsCore({ state: s, code: [0x88, 0x26, 0x10, 0x00] }); // mov [0x10], ah
    expect(a.bus.log).toEqual([{ gpa: MMIO_BASE + 0x10, write: true, size: 1, data: 0x56 }]);
    expect(a.state.eip).toBe(4);
  });

  it("MOV r16, r/m16 (8B) with a [bx+si+disp8] address reads one word from the device", () => {
    const s = real16();
    s.ebx = 0x100; s.esi = 0x20; s.eax = 0xdead_0000;
    const a = expectSameAsCore({ state: s, code: [0x8b, 0x40, 0x04], dev: (d) => d.set([0x34, 0x12], 0x124) }); // mov ax, [bx+si+4]
    expect(a.bus.log).toEqual([{ gpa: MMIO_BASE + 0x124, write: false, size: 2, data: 0x1234 }]);
    expect(a.state.eax >>> 0).toBe(0xdead_1234);
  });

  it("MOV r32, r/m32 and MOV r/m32, r32 in 32-bit code use a SIB address and one dword access", () => {
    const s = flat32();
    s.ebx = MMIO_BASE; s.ecx = 0x40; s.edx = 0xcafef00d;
    const st = expectSameAsCore({ state: s, code: [0x89, 0x54, 0x8b, 0x08] }); // mov [ebx+ecx*4+8], edx
    expect(st.bus.log).toEqual([{ gpa: MMIO_BASE + 0x108, write: true, size: 4, data: 0xcafef00d }]);
    const ld = expectSameAsCore({ state: s, code: [0x8b, 0x03], dev: (d) => d.set([1, 2, 3, 4]) }); // mov eax, [ebx]
    expect(ld.state.eax >>> 0).toBe(0x04030201);
  });

  it("an operand-size prefix makes MOV a word access in 32-bit code and a dword access in 16-bit code", () => {
    const s32 = flat32();
    s32.ebx = MMIO_BASE; s32.eax = 0x11223344;
    expect(expectSameAsCore({ state: s32, code: [0x66, 0x89, 0x03] }).bus.log[0]).toMatchObject({ size: 2, data: 0x3344 });
    const s16 = real16();
    s16.ebx = 0x10; s16.eax = 0x11223344;
    expect(expectSameAsCore({ state: s16, code: [0x66, 0x89, 0x07] }).bus.log[0]).toMatchObject({ size: 4, data: 0x11223344 });
  });

  it("MOV r/m, imm (C6/C7) stores the immediate", () => {
    const s = real16();
    const a = expectSameAsCore({ state: s, code: [0xc7, 0x06, 0x20, 0x00, 0x34, 0x12] }); // mov word [0x20], 0x1234
    expect(a.bus.log).toEqual([{ gpa: MMIO_BASE + 0x20, write: true, size: 2, data: 0x1234 }]);
    const f = flat32();
    f.ebx = MMIO_BASE;
    const b = expectSameAsCore({ state: f, code: [0xc6, 0x43, 0x05, 0x9a] }); // mov byte [ebx+5], 0x9a
    expect(b.bus.log).toEqual([{ gpa: MMIO_BASE + 5, write: true, size: 1, data: 0x9a }]);
  });

  it("MOV moffs (A0-A3) reads and writes AL/AX/EAX at a 16- or 32-bit offset, honouring a segment override", () => {
    const s = real16();
    s.es = seg(0x2100, MMIO_BASE + 0x1000, 0xffff, 0x93);
    expectSameAsCore({ state: s, code: [0xa0, 0x30, 0x00], dev: (d) => { d[0x30] = 0x77; } }); // mov al, [0x30]
    const es = expectSameAsCore({ state: s, code: [0x26, 0xa1, 0x30, 0x00], dev: (d) => d.set([0xcd, 0xab], 0x1030) }); // mov ax, es:[0x30]
    expect(es.bus.log[0]).toEqual({ gpa: MMIO_BASE + 0x1030, write: false, size: 2, data: 0xabcd });
    const f = flat32();
    f.eax = 0x89abcdef;
    expect(expectSameAsCore({ state: f, code: [0xa3, ...le(MMIO_BASE + 0x44, 4)] }).bus.log)
      .toEqual([{ gpa: MMIO_BASE + 0x44, write: true, size: 4, data: 0x89abcdef }]);
    expect(expectSameAsCore({ state: f, code: [0xa2, ...le(MMIO_BASE + 0x45, 4)] }).bus.log[0]).toMatchObject({ size: 1, data: 0xef });
  });

  it("MOVZX and MOVSX read an 8- or 16-bit source and extend it into the destination", () => {
    const f = flat32();
    f.ebx = MMIO_BASE; f.eax = 0xffffffff;
    const dev = (d: Uint8Array) => d.set([0x85, 0x90]);
    expect(expectSameAsCore({ state: f, code: [0x0f, 0xb6, 0x03], dev }).state.eax >>> 0).toBe(0x85); // movzx eax, byte [ebx]
    expect(expectSameAsCore({ state: f, code: [0x0f, 0xbe, 0x03], dev }).state.eax >>> 0).toBe(0xffffff85); // movsx eax, byte [ebx]
    expect(expectSameAsCore({ state: f, code: [0x0f, 0xb7, 0x03], dev }).state.eax >>> 0).toBe(0x9085);
    const w = expectSameAsCore({ state: f, code: [0x0f, 0xbf, 0x03], dev }); // movsx eax, word [ebx]
    expect(w.state.eax >>> 0).toBe(0xffff9085);
    expect(w.bus.log).toEqual([{ gpa: MMIO_BASE, write: false, size: 2, data: 0x9085 }]);
    const s = real16();
    s.ebx = 0; s.eax = 0x12345678;
    expect(expectSameAsCore({ state: s, code: [0x0f, 0xbe, 0x07], dev }).state.eax >>> 0).toBe(0x1234ff85); // movsx ax, byte [bx]
  });
});

describe("MemAssist address size", () => {
  it("67 in 16-bit code selects 32-bit addressing: beyond the 64 KiB limit is #GP, inside a 4 GiB (unreal) limit it works", () => {
    const s = real16();
    s.ds = seg(0, 0, 0xffff, 0x93);
    s.ebx = MMIO_BASE + 0x10;
    const gp = expectSameAsCore({ state: s, code: [0x67, 0x8b, 0x03] }); // mov ax, [ebx]
    expect(gp.assist.vector).toBe(13);
    s.ds.limit = 0xffffffff;
    const ok = expectSameAsCore({ state: s, code: [0x67, 0x8b, 0x03], dev: (d) => d.set([0x0d, 0xf0], 0x10) });
    expect(ok.state.eax & 0xffff).toBe(0xf00d);
  });

  it("67 in 32-bit code selects 16-bit addressing ([bx+di]) and a 67 REP MOVSB counts CX, not ECX", () => {
    const f = flat32();
    f.ds = seg(0x18, MMIO_BASE, 0xffff, 0xc093);
    f.ebx = 0xffff_0100; f.edi = 0x20;
    const a = expectSameAsCore({ state: f, code: [0x67, 0x8b, 0x01] }); // mov eax, [bx+di]
    expect(a.bus.log[0]!.gpa).toBe(MMIO_BASE + 0x120);
    const r = flat32();
    r.ds = seg(0x18, MMIO_BASE, 0xffff, 0xc093);
    r.es = seg(0x18, MMIO_BASE, 0xffff, 0xc093);
    r.esi = 0x7777_0010; r.edi = 0x8888_0100; r.ecx = 0x9999_0003;
    const m = expectSameAsCore({ state: r, code: [0x67, 0xf3, 0xa4], dev: (d) => d.set([1, 2, 3], 0x10) });
    expect([m.state.esi >>> 0, m.state.edi >>> 0, m.state.ecx >>> 0]).toEqual([0x7777_0013, 0x8888_0103, 0x9999_0000]);
    expect(m.bus.log).toHaveLength(6);
  });
});

describe("MemAssist string instructions", () => {
  it("MOVSW with both operands in MMIO reads the source then writes the destination (MMIO to MMIO)", () => {
    const s = real16();
    s.esi = 0x10; s.edi = 0x200;
    const a = expectSameAsCore({ state: s, code: [0xa5], dev: (d) => d.set([0x11, 0x22], 0x10) });
    expect(a.bus.log).toEqual([
      { gpa: MMIO_BASE + 0x10, write: false, size: 2, data: 0x2211 },
      { gpa: MMIO_BASE + 0x200, write: true, size: 2, data: 0x2211 },
    ]);
    expect([a.state.esi, a.state.edi]).toEqual([0x12, 0x202]);
  });

  it("REP MOVSD from RAM to MMIO and from MMIO to RAM moves every element through the bus", () => {
    const toDev = flat32();
    toDev.esi = 0x3000; toDev.edi = MMIO_BASE + 0x100; toDev.ecx = 5;
    const a = expectSameAsCore({ state: toDev, code: [0xf3, 0xa5], ram: (r) => { for (let i = 0; i < 20; i++) r[0x3000 + i] = i + 1; } });
    expect(a.bus.log.map((x) => [x.gpa - MMIO_BASE, x.write, x.size])).toEqual([0, 1, 2, 3, 4].map((i) => [0x100 + 4 * i, true, 4]));
    expect(a.state.ecx).toBe(0);
    const fromDev = flat32();
    fromDev.esi = MMIO_BASE + 0x100; fromDev.edi = 0x3000; fromDev.ecx = 3;
    const b = expectSameAsCore({ state: fromDev, code: [0xf3, 0xa4], dev: (d) => d.set([7, 8, 9], 0x100) });
    expect(b.bus.log.every((x) => !x.write && x.size === 1)).toBe(true);
    expect([...b.ram.subarray(0x3000, 0x3003)]).toEqual([7, 8, 9]);
  });

  it("REP MOVSW with DF=1 and 16-bit addressing walks down and counts CX only", () => {
    const s = real16();
    s.eflags |= DF;
    s.esi = 0xabcd_0020; s.edi = 0x1234_0100; s.ecx = 0x5555_0004;
    const a = expectSameAsCore({ state: s, code: [0xf3, 0xa5], dev: (d) => { for (let i = 0; i < 0x30; i++) d[i] = 0x40 + i; } });
    expect(a.bus.log.filter((x) => !x.write).map((x) => x.gpa - MMIO_BASE)).toEqual([0x20, 0x1e, 0x1c, 0x1a]);
    expect([a.state.esi >>> 0, a.state.edi >>> 0, a.state.ecx >>> 0]).toEqual([0xabcd_0018, 0x1234_00f8, 0x5555_0000]);
  });

  it("REP STOSD is bounded per call: EIP stays until the last batch, ECX/EDI count exactly", () => {
    const s = flat32();
    s.edi = MMIO_BASE; s.ecx = 5000; s.eax = 0xa5a5a5a5;
    const w = world();
    place(w.ram, { state: s, code: [0xf3, 0xab] });
    const st = cloneState(s);
    expect(w.assist.run(st, MMIO_BASE)).toBe(MemAssistStatus.Done);
    expect(w.assist.done).toBe(false);
    expect(w.assist.count).toBe(MEM_ASSIST_MAX_ELEMENTS);
    expect(st.eip).toBe(CODE);
    expect(st.ecx).toBe(5000 - MEM_ASSIST_MAX_ELEMENTS);
    expect(st.edi).toBe(MMIO_BASE + 4 * MEM_ASSIST_MAX_ELEMENTS);
    expect(w.bus.log).toHaveLength(MEM_ASSIST_MAX_ELEMENTS);
    expect(w.assist.run(st, MMIO_BASE)).toBe(MemAssistStatus.Done);
    expect(w.assist.done).toBe(true);
    expect([st.eip, st.ecx, st.edi]).toEqual([CODE + 2, 0, MMIO_BASE + 20000]);
    expect(w.bus.log.every((x, i) => x.write && x.size === 4 && x.data === 0xa5a5a5a5 && x.gpa === MMIO_BASE + 4 * i)).toBe(true);
    // And the end state equals the core's.
    expectSameAsCore({ state: s, code: [0xf3, 0xab] });
  });

  it("REP STOSB with a small batch bound takes several calls and ends where the core does", () => {
    const s = real16();
    s.edi = 0xfff0; s.ecx = 0x0b; s.eax = 0x3c;
    const a = expectSameAsCore({ state: s, code: [0xf3, 0xaa], maxElements: 3 });
    expect(a.statuses).toEqual([0, 0, 0, 0]);
    expect(a.bus.log).toHaveLength(11);
  });

  it("REP with a count of zero does nothing and completes", () => {
    const s = flat32();
    s.edi = MMIO_BASE; s.ecx = 0;
    const a = expectSameAsCore({ state: s, code: [0xf3, 0xab] });
    expect(a.bus.log).toEqual([]);
    expect(a.assist.done).toBe(true);
  });

  it("STOS without REP stores once at ES:DI and leaves CX", () => {
    const s = real16();
    s.edi = 0x40; s.ecx = 9; s.eax = 0xbeef;
    const a = expectSameAsCore({ state: s, code: [0xab] });
    expect(a.bus.log).toEqual([{ gpa: MMIO_BASE + 0x40, write: true, size: 2, data: 0xbeef }]);
    expect(a.state.ecx).toBe(9);
  });

  it("LODS reads DS:SI (or an override segment) into AL/AX/EAX", () => {
    const s = real16();
    s.esi = 0x8;
    s.fs = seg(0, MMIO_BASE + 0x800, 0xffff, 0x93);
    expectSameAsCore({ state: s, code: [0xac], dev: (d) => { d[8] = 0x5e; } });
    const fs = expectSameAsCore({ state: s, code: [0x64, 0x66, 0xad], dev: (d) => d.set([1, 2, 3, 4], 0x808) });
    expect(fs.state.eax >>> 0).toBe(0x04030201);
    expect(fs.state.esi).toBe(0xc);
  });

  it("REPE CMPSB and REPNE SCASW stop where the core stops and set the same flags", () => {
    const s = real16();
    s.esi = 0; s.edi = 0x100; s.ecx = 8;
    expectSameAsCore({ state: s, code: [0xf3, 0xa6], dev: (d) => { d.set([1, 2, 3, 4, 5], 0); d.set([1, 2, 3, 9, 5], 0x100); } });
    const t = real16();
    t.edi = 0x10; t.ecx = 10; t.eax = 0x0302;
    const a = expectSameAsCore({ state: t, code: [0xf2, 0xaf], dev: (d) => d.set([0, 0, 5, 5, 2, 3, 7, 7], 0x10) });
    expect(a.state.ecx).toBe(7);
  });
});

describe("MemAssist arithmetic and logic: EFLAGS and results match the x86 core", () => {
  const names = ["ADD", "OR", "ADC", "SBB", "AND", "SUB", "XOR", "CMP"];
  const MODRM_EBX = 3;
  for (let aop = 0; aop < 8; aop++) {
    it(`${names[aop]} r/m,r / r,r/m / r/m,imm with a memory operand in MMIO, 8/16/32-bit`, () => {
      const next = rng(0x1000 + aop);
      let n = 0;
      for (const size of [1, 2, 4] as const) {
        const pre = size === 2 ? [0x66] : [];
        for (let k = 0; k < 14; k++) {
          const m = MASKS[size]!;
          const dv = (k < EDGES.length ? EDGES[k]! : next()) & m;
          const sv = (k < EDGES.length ? EDGES[(k * 5 + aop) % EDGES.length]! : next()) & m;
          const reg = next() & 7;
          const s = flat32();
          s.eflags = 2 | (next() & ARITH);
          s.ebx = MMIO_BASE + 0x40;
          const rv = next();
          // Put sv in the register (reg 3 is EBX/BL: keep the address for the 32/16-bit forms).
          if (reg === 3 && size !== 1) continue;
          const put = (v: number) => {
            const regsArr = [s.eax, s.ecx, s.edx, s.ebx, s.esp, s.ebp, s.esi, s.edi];
            if (size === 1) {
              const i = reg & 3, sh = reg < 4 ? 0 : 8;
              regsArr[i] = ((regsArr[i]! & ~(0xff << sh)) | (v << sh)) >>> 0;
            } else regsArr[reg] = size === 2 ? ((regsArr[reg]! & 0xffff0000) | v) >>> 0 : v;
            [s.eax, s.ecx, s.edx, s.ebx, s.esp, s.ebp, s.esi, s.edi] = regsArr as [number, number, number, number, number, number, number, number];
          };
          s.eax = rv; s.ecx = ~rv >>> 0; s.edx = rv ^ 0x5a5a5a5a;
          put(sv);
          const dev = (d: Uint8Array) => d.set(le(dv, size), 0x40);
          const modrm = (reg << 3) | MODRM_EBX;
          const forms = [
            [...pre, aop * 8 + (size === 1 ? 0 : 1), modrm],
            [...pre, aop * 8 + (size === 1 ? 2 : 3), modrm],
            [...pre, size === 1 ? 0x80 : 0x81, (aop << 3) | MODRM_EBX, ...le(sv, size)],
          ];
          if (size !== 1) forms.push([...pre, 0x83, (aop << 3) | MODRM_EBX, sv & 0xff]);
          if (aop !== 7 && (k & 1)) forms.push([0xf0, ...forms[0]!.slice(0)]); // LOCK on the RMW form
          for (const code of forms) {
            const a = expectSameAsCore({ state: s, code, dev });
            expect(a.bus.log.length).toBeGreaterThan(0);
            n++;
          }
        }
      }
      expect(n).toBeGreaterThan(100);
    });
  }

  it("a read-modify-write is one read and one write on the bus; CMP and TEST only read", () => {
    const s = flat32();
    s.ebx = MMIO_BASE; s.eax = 5;
    const add = expectSameAsCore({ state: s, code: [0x01, 0x03], dev: (d) => d.set([7]) }); // add [ebx], eax
    expect(add.bus.log).toEqual([
      { gpa: MMIO_BASE, write: false, size: 4, data: 7 },
      { gpa: MMIO_BASE, write: true, size: 4, data: 12 },
    ]);
    expect(expectSameAsCore({ state: s, code: [0x39, 0x03] }).bus.log.map((x) => x.write)).toEqual([false]); // cmp [ebx], eax
    expect(expectSameAsCore({ state: s, code: [0x85, 0x03] }).bus.log.map((x) => x.write)).toEqual([false]); // test [ebx], eax
  });

  it("TEST r/m,r and r/m,imm; INC, DEC, NOT, NEG r/m; XCHG r/m,r: flags and results as the core", () => {
    const next = rng(77);
    for (const size of [1, 2, 4] as const) {
      const pre = size === 2 ? [0x66] : [];
      const w = size === 1 ? 0 : 1;
      for (let k = 0; k < 16; k++) {
        const m = MASKS[size]!;
        const dv = (k < EDGES.length ? EDGES[k]! : next()) & m;
        const s = flat32();
        s.eflags = 2 | (next() & ARITH);
        s.ebx = MMIO_BASE + 0x10;
        s.eax = next(); s.ecx = next();
        const dev = (d: Uint8Array) => d.set(le(dv, size), 0x10);
        const forms = [
          [...pre, 0x84 + w, 0x0b], // test [ebx], cl/cx/ecx
          [...pre, 0xf6 + w, 0x03, ...le(next(), size)], // test [ebx], imm
          [...pre, 0xfe + w, 0x03], // inc
          [...pre, 0xfe + w, 0x0b], // dec
          [...pre, 0xf6 + w, 0x13], // not
          [...pre, 0xf6 + w, 0x1b], // neg
          [...pre, 0x86 + w, 0x03], // xchg [ebx], al/ax/eax
          [0xf0, ...pre, 0xf6 + w, 0x1b], // lock neg
        ];
        for (const code of forms) {
          const a = expectSameAsCore({ state: s, code, dev });
          expect(a.bus.log.length).toBeGreaterThan(0);
        }
      }
    }
  });

  it("BT/BTS/BTR/BTC with a register offset address beyond the operand (signed), and with imm8", () => {
    const next = rng(5);
    for (const size of [2, 4] as const) {
      const pre = size === 2 ? [0x66] : [];
      for (const off of [0, 5, 15, 31, 37, 100, -1, -33, 0x7fff]) {
        for (const op of [0xa3, 0xab, 0xb3, 0xbb]) {
          const s = flat32();
          s.eflags = 2 | (next() & ARITH);
          s.ebx = MMIO_BASE + 0x100;
          s.ecx = off >>> 0;
          const seed = next();
          const dev = (d: Uint8Array) => { const r = rng(seed); for (let i = 0; i < 0x1000; i++) d[i] = r() & 0xff; };
          const a = expectSameAsCore({ state: s, code: [...pre, 0x0f, op, 0x0b], dev }); // bt* [ebx], cx/ecx
          expect(a.bus.log.length).toBe(op === 0xa3 ? 1 : 2);
        }
      }
      for (const sub of [4, 5, 6, 7]) {
        const s = flat32();
        s.ebx = MMIO_BASE + 0x100;
        expectSameAsCore({ state: s, code: [...pre, 0x0f, 0xba, (sub << 3) | 3, 0x23], dev: (d) => d.set([0xf0, 0x0f, 0x55, 0xaa], 0x100) });
      }
    }
  });
});

describe("MemAssist stack forms", () => {
  it("PUSH r/m (FF /6) reads the device and pushes onto a RAM stack; POP r/m (8F /0) pops into the device", () => {
    const s = flat32();
    s.ebx = MMIO_BASE + 0x20;
    const push = expectSameAsCore({ state: s, code: [0xff, 0x33], dev: (d) => d.set([9, 8, 7, 6], 0x20) });
    expect(push.state.esp).toBe(0x7ffc);
    expect(push.bus.log).toEqual([{ gpa: MMIO_BASE + 0x20, write: false, size: 4, data: 0x06070809 }]);
    const pop = expectSameAsCore({ state: s, code: [0x8f, 0x03], ram: (r) => r.set([1, 2, 3, 4], 0x8000) });
    expect(pop.bus.log).toEqual([{ gpa: MMIO_BASE + 0x20, write: true, size: 4, data: 0x04030201 }]);
    expect(pop.state.esp).toBe(0x8004);
  });

  it("POP r/m addressed through ESP uses ESP after the pop", () => {
    const s = flat32();
    s.ss = seg(0x10, MMIO_BASE, 0xffff, 0xc093);
    s.esp = 0x100;
    expectSameAsCore({ state: s, code: [0x8f, 0x44, 0x24, 0x08], dev: (d) => d.set([0xaa, 0xbb, 0xcc, 0xdd], 0x100) }); // pop dword [esp+8]
  });

  it("PUSH and POP of a register with SS in MMIO go through the bus, with a 16-bit SP", () => {
    const s = real16();
    s.ss = seg(MMIO_BASE >> 4, MMIO_BASE, 0xffff, 0x93);
    s.esp = 0x1234_0010; s.eax = 0x4321;
    const push = expectSameAsCore({ state: s, code: [0x50] });
    expect(push.bus.log).toEqual([{ gpa: MMIO_BASE + 0xe, write: true, size: 2, data: 0x4321 }]);
    expect(push.state.esp >>> 0).toBe(0x1234_000e);
    const pop = expectSameAsCore({ state: s, code: [0x5b], dev: (d) => d.set([0x22, 0x11], 0x10) });
    expect(pop.state.ebx & 0xffff).toBe(0x1122);
  });
});

describe("MemAssist accesses across page and RAM/MMIO boundaries", () => {
  it("a dword read straddling the end of RAM takes two bytes from RAM and one word access from the bus", () => {
    const s = flat32();
    s.ebx = RAM_END - 2;
    const a = expectSameAsCore({ state: s, code: [0x8b, 0x03], ram: (r) => r.set([0x11, 0x22], RAM_END - 2), dev: (d) => d.set([0x33, 0x44]) });
    expect(a.state.eax >>> 0).toBe(0x44332211);
    expect(a.bus.log).toEqual([{ gpa: MMIO_BASE, write: false, size: 2, data: 0x4433 }]);
  });

  it("a dword write straddling RAM/MMIO writes the RAM bytes and one byte-run on the bus (3 bytes -> 2 + 1)", () => {
    const s = flat32();
    s.ebx = RAM_END - 1; s.eax = 0xd4c3b2a1;
    const a = expectSameAsCore({ state: s, code: [0x89, 0x03] });
    expect(a.ram[RAM_END - 1]).toBe(0xa1);
    expect(a.bus.log).toEqual([
      { gpa: MMIO_BASE, write: true, size: 2, data: 0xc3b2 },
      { gpa: MMIO_BASE + 2, write: true, size: 1, data: 0xd4 },
    ]);
  });

  it("an unaligned dword wholly in MMIO is one bus access at its own address", () => {
    const s = flat32();
    s.ebx = MMIO_BASE + 0xfff; // crosses a 4 KiB boundary inside the device; paging is off
    const a = expectSameAsCore({ state: s, code: [0x8b, 0x03] });
    expect(a.bus.log).toEqual([{ gpa: MMIO_BASE + 0xfff, write: false, size: 4, data: 0 }]);
  });
});

// ---------------------------------------------------------------- paging (no core oracle: the core has no paging yet)

const PD = 0x8000, PT = 0x9000;
function pagedWorld(extra: Partial<MemAssistEnv> = {}) {
  const w = world(MEM_ASSIST_MAX_ELEMENTS, extra);
  const dv = new DataView(w.ram.buffer);
  dv.setUint32(PD, PT | 0x27, true); // present, writable, user, accessed
  for (let i = 0; i < 0x30; i++) dv.setUint32(PT + 4 * i, (i << 12) | 0x67, true); // identity, accessed+dirty
  const s = flat32();
  s.cr0 = 0x80000011; s.cr3 = PD;
  return { ...w, dv, s, map: (lin: number, pte: number) => dv.setUint32(PT + 4 * (lin >>> 12), pte >>> 0, true) };
}

describe("MemAssist with guest paging", () => {
  it("translates data through 32-bit page tables: a write across a page boundary goes half to RAM, half to the bus", () => {
    const p = pagedWorld();
    p.map(0x40000, 0x1f000 | 0x63); // last RAM page
    p.map(0x41000, 0x24000 | 0x63); // a device page
    p.s.ebx = 0x40ffe; p.s.eax = 0x44332211;
    place(p.ram, { state: p.s, code: [0x89, 0x03] });
    expect(p.assist.run(p.s, 0x24000)).toBe(MemAssistStatus.Done);
    expect([...p.ram.subarray(0x1fffe, 0x20000)]).toEqual([0x11, 0x22]);
    expect(p.bus.log).toEqual([{ gpa: 0x24000, write: true, size: 2, data: 0x4433 }]);
    expect(p.s.eip).toBe(CODE + 2);
  });

  it("an access crossing into a not-present page is #PF with CR2 at the page start, and nothing is accessed", () => {
    const p = pagedWorld();
    p.map(0x42000, 0x25000 | 0x63);
    p.map(0x43000, 0);
    p.s.ebx = 0x42ffe;
    place(p.ram, { state: p.s, code: [0x89, 0x03] });
    const before = cloneState(p.s);
    expect(p.assist.run(p.s, 0x25ffe)).toBe(MemAssistStatus.Exception);
    expect([p.assist.vector, p.assist.errorCode, p.assist.hasErrorCode, p.assist.cr2]).toEqual([14, 2, true, 0x43000]);
    expect(p.bus.log).toEqual([]);
    expect(p.s).toEqual(before);
  });

  it("a user-mode write to a read-only page is #PF with P|W|U; a supervisor write passes unless CR0.WP", () => {
    const p = pagedWorld();
    p.map(0x44000, 0x26000 | 0x65); // present, user, read-only
    p.s.ebx = 0x44000;
    place(p.ram, { state: p.s, code: [0x89, 0x03] });
    const user = cloneState(p.s);
    user.ss.attrib = 0xc0f3; // DPL 3: CPL 3
    expect(p.assist.run(user, 0x26000)).toBe(MemAssistStatus.Exception);
    expect(p.assist.errorCode).toBe(7);
    const wp = cloneState(p.s);
    wp.cr0 |= 0x10000;
    expect(p.assist.run(wp, 0x26000)).toBe(MemAssistStatus.Exception);
    expect(p.assist.errorCode).toBe(3);
    expect(p.assist.run(p.s, 0x26000)).toBe(MemAssistStatus.Done);
    expect(p.bus.log).toEqual([{ gpa: 0x26000, write: true, size: 4, data: 0 }]);
  });

  it("sets the accessed bits of the entries used and the dirty bit of the page written", () => {
    const p = pagedWorld();
    p.dv.setUint32(PD, PT | 0x07, true);
    p.map(0x45000, 0x27000 | 0x03);
    p.s.ebx = 0x45010;
    place(p.ram, { state: p.s, code: [0x89, 0x03] });
    expect(p.assist.run(p.s, 0x27010)).toBe(MemAssistStatus.Done);
    expect(p.dv.getUint32(PD, true) & 0x20).toBe(0x20);
    expect(p.dv.getUint32(PT + 4 * 0x45, true) & 0x60).toBe(0x60);
  });

  it("maps a 4 MiB page with CR4.PSE", () => {
    const p = pagedWorld();
    p.dv.setUint32(PD + 4, 0x00000000 | 0xe7, true); // linear 4 MiB..8 MiB -> physical 0
    p.s.cr4 = 0x10;
    p.s.ebx = 0x400000 + MMIO_BASE + 0x30;
    place(p.ram, { state: p.s, code: [0x8b, 0x03] });
    expect(p.assist.run(p.s, MMIO_BASE + 0x30)).toBe(MemAssistStatus.Done);
    expect(p.bus.log).toEqual([{ gpa: MMIO_BASE + 0x30, write: false, size: 4, data: 0 }]);
  });

  it("walks PAE tables (PDPT, PD, PT) and honours the XD bit only for fetches", () => {
    const w = world();
    const dv = new DataView(w.ram.buffer);
    const PDPT = 0xa000, PDP = 0xb000, PTP = 0xc000;
    dv.setUint32(PDPT, PDP | 1, true);
    dv.setUint32(PDP, PTP | 0x27, true);
    for (let i = 0; i < 0x30; i++) dv.setUint32(PTP + 8 * i, (i << 12) | 0x67, true);
    dv.setUint32(PTP + 8 * 0x50, 0x28000 | 0x63, true);
    dv.setUint32(PTP + 8 * 0x50 + 4, 0x80000000, true); // XD on the device page
    const s = flat32();
    s.cr0 = 0x80000011; s.cr3 = PDPT; s.cr4 = 0x20; s.efer = 0x800;
    s.ebx = 0x50004; s.eax = 0x1234;
    place(w.ram, { state: s, code: [0x89, 0x03] });
    expect(w.assist.run(s, 0x28004)).toBe(MemAssistStatus.Done);
    expect(w.bus.log).toEqual([{ gpa: 0x28004, write: true, size: 4, data: 0x1234 }]);
    // Code on an XD page: the fetch faults with I/D set.
    const f = cloneState(s);
    dv.setUint32(PTP + 8 * 1, (1 << 12) | 0x63, true);
    dv.setUint32(PTP + 8 * 1 + 4, 0x80000000, true);
    f.eip = CODE;
    expect(w.assist.run(f, 0x28004)).toBe(MemAssistStatus.Exception);
    expect([w.assist.vector, w.assist.errorCode, w.assist.cr2]).toEqual([14, 0x11, CODE]);
  });

  it("uses env.translate when given, and reports its #PF error code", () => {
    const calls: [number, boolean, boolean, boolean][] = [];
    const w = world(MEM_ASSIST_MAX_ELEMENTS, {
      translate(this: MemAssistEnv, lin, write, user, fetch) {
        calls.push([lin, write, user, fetch]);
        if (lin >= 0x900000) { this.pfErrorCode = 0x5; return -1; }
        return lin >= 0x800000 ? lin - 0x800000 + MMIO_BASE : lin;
      },
    });
    const s = flat32();
    s.cr0 = 0x80000011;
    s.ebx = 0x800010;
    place(w.ram, { state: s, code: [0x8b, 0x03] });
    const ok = cloneState(s);
    expect(w.assist.run(ok, 0)).toBe(MemAssistStatus.Done);
    expect(w.bus.log).toEqual([{ gpa: MMIO_BASE + 0x10, write: false, size: 4, data: 0 }]);
    expect(calls).toContainEqual([0x800010, false, false, false]);
    expect(calls).toContainEqual([CODE, false, false, true]);
    const bad = cloneState(s);
    bad.ebx = 0x900000;
    expect(w.assist.run(bad, 0)).toBe(MemAssistStatus.Exception);
    expect([w.assist.vector, w.assist.errorCode, w.assist.cr2]).toEqual([14, 5, 0x900000]);
  });

  it("REP STOSB through paging crosses pages element by element, translating each page", () => {
    const p = pagedWorld();
    p.map(0x60000, 0x29000 | 0x63);
    p.map(0x61000, 0x2b000 | 0x63);
    p.s.edi = 0x60ffe; p.s.ecx = 4; p.s.eax = 0x77;
    place(p.ram, { state: p.s, code: [0xf3, 0xaa] });
    expect(p.assist.run(p.s, 0x29ffe)).toBe(MemAssistStatus.Done);
    expect(p.bus.log.map((x) => x.gpa)).toEqual([0x29ffe, 0x29fff, 0x2b000, 0x2b001]);
    expect([p.s.ecx, p.s.edi, p.s.eip]).toEqual([0, 0x61002, CODE + 2]);
  });

  it("a fault in the middle of REP STOS leaves the registers at the completed elements and EIP on the instruction", () => {
    const p = pagedWorld();
    p.map(0x62000, 0x2a000 | 0x63);
    p.map(0x63000, 0);
    p.s.edi = 0x62ffc; p.s.ecx = 3; p.s.eax = 0x11223344;
    place(p.ram, { state: p.s, code: [0xf3, 0xab] });
    expect(p.assist.run(p.s, 0x2affc)).toBe(MemAssistStatus.Exception);
    expect([p.s.ecx, p.s.edi, p.s.eip]).toEqual([2, 0x63000, CODE]);
    expect(p.bus.log).toHaveLength(1);
    expect(p.assist.cr2).toBe(0x63000);
  });
});

describe("MemAssist segment checks", () => {
  it("in real mode a word at offset FFFF is #GP (DS) or #SS (SS), with no error code and no access", () => {
    const s = real16();
    const gp = expectSameAsCore({ state: s, code: [0x8b, 0x06, 0xff, 0xff] }); // mov ax, [0xffff]
    expect([gp.assist.vector, gp.assist.hasErrorCode]).toEqual([13, false]);
    expect(gp.bus.log).toEqual([]);
    const t = real16();
    t.ss = seg(MMIO_BASE >> 4, MMIO_BASE, 0xffff, 0x93);
    t.ebp = 0xffff;
    const ss = expectSameAsCore({ state: t, code: [0x89, 0x46, 0x00] }); // mov [bp+0], ax
    expect(ss.assist.vector).toBe(12);
  });

  it("in protected mode a limit overrun, a write to a read-only segment and an unusable segment are #GP(0)", () => {
    const w = world();
    const s = flat32();
    s.ds = seg(0x18, MMIO_BASE, 0xfff, 0x4093);
    s.ebx = 0xffe;
    place(w.ram, { state: s, code: [0x8b, 0x03] });
    expect(w.assist.run(cloneState(s), 0)).toBe(MemAssistStatus.Exception);
    expect([w.assist.vector, w.assist.errorCode, w.assist.hasErrorCode]).toEqual([13, 0, true]);
    const ro = cloneState(s);
    ro.ds.attrib = 0x4091; ro.ebx = 0x10;
    place(w.ram, { state: ro, code: [0x89, 0x03] });
    expect(w.assist.run(ro, 0)).toBe(MemAssistStatus.Exception);
    place(w.ram, { state: ro, code: [0x8b, 0x03] });
    expect(w.assist.run(cloneState(ro), 0)).toBe(MemAssistStatus.Done); // reading it is fine
    const unusable = cloneState(ro);
    unusable.ds.attrib = 0x10000;
    expect(w.assist.run(unusable, 0)).toBe(MemAssistStatus.Exception);
    expect(w.bus.log).toHaveLength(1);
  });

  it("an expand-down segment allows only offsets above its limit", () => {
    const w = world();
    const s = flat32();
    s.ds = seg(0x18, MMIO_BASE - 0x1000, 0x0fff, 0x4097); // expand-down, writable, 32-bit (B)
    s.ebx = 0x0800;
    place(w.ram, { state: s, code: [0x8b, 0x03] });
    expect(w.assist.run(cloneState(s), 0)).toBe(MemAssistStatus.Exception);
    s.ebx = 0x1004;
    expect(w.assist.run(s, 0)).toBe(MemAssistStatus.Done);
    expect(w.bus.log).toEqual([{ gpa: MMIO_BASE + 4, write: false, size: 4, data: 0 }]);
  });
});

describe("MemAssist shifts and rotates (D0-D3, C0/C1) with the operand in MMIO", () => {
  it("every /0-/7 by 1, CL and imm8, 8/16/32-bit, counts 0-31 and edge values: result and EFLAGS as the core", () => {
    const next = rng(0x5417);
    let n = 0;
    for (const size of [1, 2, 4] as const) {
      const pre = size === 2 ? [0x66] : [];
      const w = size === 1 ? 0 : 1;
      for (let sub = 0; sub < 8; sub++) {
        for (let k = 0; k < 10; k++) {
          const dv = (k < EDGES.length ? EDGES[k]! : next()) & MASKS[size]!;
          // Counts: the interesting ones (0, 1, size edges, above the width, masked to 5 bits) then random.
          const cnt = [0, 1, 7, 8, 9, 15, 16, 17, 31, 0x21][k]! ^ (k >= 10 ? next() & 0xff : 0);
          const s = flat32();
          s.eflags = 2 | (next() & ARITH);
          s.ebx = MMIO_BASE + 0x20;
          s.ecx = (next() & 0xffffff00) | cnt;
          const dev = (d: Uint8Array) => d.set(le(dv, size), 0x20);
          const modrm = (sub << 3) | 3; // [ebx]
          for (const code of [
            [...pre, 0xd0 + w, modrm], // by 1
            [...pre, 0xd2 + w, modrm], // by CL
            [...pre, 0xc0 + w, modrm, cnt], // by imm8
          ]) {
            expectSameAsCore({ state: s, code, dev });
            n++;
          }
        }
      }
    }
    expect(n).toBe(3 * 8 * 10 * 3);
  });

  it("a count of 0 reads the operand only; a non-zero count is one read and one write", () => {
    const s = real16();
    s.ebx = 0x30; s.ecx = 0x20; // CL = 32: masked to 0
    const zero = expectSameAsCore({ state: s, code: [0xd3, 0x27], dev: (d) => d.set([0x81, 0x40], 0x30) }); // shl word [bx], cl
    expect(zero.bus.log).toEqual([{ gpa: MMIO_BASE + 0x30, write: false, size: 2, data: 0x4081 }]);
    const one = expectSameAsCore({ state: s, code: [0xd1, 0x0f], dev: (d) => d.set([0x81, 0x40], 0x30) }); // ror word [bx], 1
    expect(one.bus.log).toEqual([
      { gpa: MMIO_BASE + 0x30, write: false, size: 2, data: 0x4081 },
      { gpa: MMIO_BASE + 0x30, write: true, size: 2, data: 0xa040 },
    ]);
    expect(one.state.eflags & (CF | OF)).toBe(CF | OF);
  });

  it("LOCK on a shift is #UD; a write to a read-only segment is #GP(0) with no access", () => {
    const s = flat32();
    s.ebx = MMIO_BASE;
    expect(expectSameAsCore({ state: s, code: [0xf0, 0xd1, 0x23] }).assist.vector).toBe(6); // lock shl dword [ebx], 1
    const ro = flat32();
    ro.ebx = MMIO_BASE;
    ro.ds.attrib = 0xc091; // read-only data
    const a = expectSameAsCore({ state: ro, code: [0xd1, 0x23] });
    expect([a.assist.vector, a.assist.errorCode, a.bus.log]).toEqual([13, 0, []]);
  });
});

describe("MemAssist MUL/IMUL/DIV/IDIV (F6/F7 /4-/7) with the operand in MMIO", () => {
  it("results in AL/AX/EAX and AH/DX/EDX and the flags match the core, 8/16/32-bit, with edge values", () => {
    const next = rng(0xd1f);
    let faults = 0, n = 0;
    for (const size of [1, 2, 4] as const) {
      const pre = size === 2 ? [0x66] : [];
      const w = size === 1 ? 0 : 1;
      for (let sub = 4; sub < 8; sub++) {
        for (let k = 0; k < 24; k++) {
          const m = MASKS[size]!;
          const sv = (k < EDGES.length ? EDGES[k]! : next()) & m;
          const s = flat32();
          s.eflags = 2 | (next() & ARITH);
          s.ebx = MMIO_BASE + 0x40;
          s.eax = k & 1 ? next() : EDGES[(k * 3) % EDGES.length]!;
          // Small high halves too, so that DIV/IDIV do not always overflow.
          s.edx = k % 3 === 0 ? 0 : k % 3 === 1 ? ((s.eax | 0) < 0 ? 0xffffffff : 0) : next();
          const a = expectSameAsCore({ state: s, code: [...pre, 0xf6 + w, (sub << 3) | 3], dev: (d) => d.set(le(sv, size), 0x40) });
          expect(a.bus.log.map((x) => [x.write, x.size])).toEqual([[false, size]]);
          if (a.last === MemAssistStatus.Exception) faults++;
          n++;
        }
      }
    }
    expect(n).toBe(3 * 4 * 24);
    expect(faults).toBeGreaterThan(10); // the #DE cases were exercised
  });

  it("DIV by zero and a quotient too large are #DE (vector 0, no error code) with no register changed", () => {
    const s = flat32();
    s.ebx = MMIO_BASE; s.eax = 0x1234; s.edx = 0x5678;
    const z = expectSameAsCore({ state: s, code: [0xf7, 0x33] }); // div dword [ebx] (= 0)
    expect([z.assist.vector, z.assist.hasErrorCode, z.state.eax, z.state.edx, z.state.eip]).toEqual([0, false, 0x1234, 0x5678, CODE]);
    const big = expectSameAsCore({ state: s, code: [0xf7, 0x33], dev: (d) => d.set([2]) }); // EDX:EAX / 2 > 2^32
    expect(big.assist.vector).toBe(0);
    const r = real16();
    r.ebx = 0x10; r.eax = 0x8000; // IDIV byte: -32768 / -1 overflows
    expect(expectSameAsCore({ state: r, code: [0xf6, 0x3f], dev: (d) => { d[0x10] = 0xff; } }).assist.vector).toBe(0);
    const ok = expectSameAsCore({ state: r, code: [0xf6, 0x3f], dev: (d) => { d[0x10] = 0xf9; } }); // -32768 / -7 does not fit a byte either
    expect(ok.assist.vector).toBe(0);
    const fits = real16();
    fits.ebx = 0x10; fits.eax = 0xff9c; // -100 / 7 = -14 rem -2
    const f = expectSameAsCore({ state: fits, code: [0xf6, 0x3f], dev: (d) => { d[0x10] = 7; } });
    expect(f.state.eax & 0xffff).toBe(0xfef2);
  });

  it("MUL r/m32 gives the full 64-bit product in EDX:EAX; IMUL sets CF/OF when it does not fit EAX", () => {
    const s = flat32();
    s.ebx = MMIO_BASE; s.eax = 0xffffffff;
    const mul = expectSameAsCore({ state: s, code: [0xf7, 0x23], dev: (d) => d.set(le(0xffffffff, 4)) });
    expect([mul.state.edx >>> 0, mul.state.eax >>> 0]).toEqual([0xfffffffe, 1]);
    const t = flat32();
    t.ebx = MMIO_BASE; t.eax = 0x10000;
    const imul = expectSameAsCore({ state: t, code: [0xf7, 0x2b], dev: (d) => d.set(le(0xffff0000, 4)) }); // 65536 * -65536
    expect([imul.state.edx >>> 0, imul.state.eax >>> 0, imul.state.eflags & (CF | OF)]).toEqual([0xffffffff, 0, CF | OF]);
  });
});

describe("MemAssist CMPXCHG, CMPXCHG8B and XADD with the operand in MMIO", () => {
  it("CMPXCHG r/m,r (0F B0/B1): equal stores the source, unequal loads the accumulator and writes the old value back", () => {
    const next = rng(0xc3c3);
    for (const size of [1, 2, 4] as const) {
      const pre = size === 2 ? [0x66] : [];
      for (let k = 0; k < 12; k++) {
        const m = MASKS[size]!;
        const dv = (k < EDGES.length ? EDGES[k]! : next()) & m;
        const s = flat32();
        s.eflags = 2 | (next() & ARITH);
        s.ebx = MMIO_BASE + 0x60;
        s.ecx = next(); s.edx = next();
        s.eax = k & 1 ? (next() & ~m) | dv : next(); // odd k: the accumulator equals the destination
        for (const lock of [[], [0xf0]]) {
          const a = expectSameAsCore({ state: s, code: [...lock, ...pre, 0x0f, size === 1 ? 0xb0 : 0xb1, 0x0b], dev: (d) => d.set(le(dv, size), 0x60) }); // cmpxchg [ebx], cl/cx/ecx
          expect(a.bus.log.map((x) => [x.write, x.size])).toEqual([[false, size], [true, size]]);
          expect(a.bus.log[1]!.data).toBe(k & 1 ? (s.ecx & m) >>> 0 : dv >>> 0);
        }
      }
    }
  });

  it("CMPXCHG8B m64 (0F C7 /1): two dword reads then two writes, ZF and EDX:EAX as the core", () => {
    for (const equal of [true, false]) {
      for (const lo of [0, 0x12345678]) {
        const s = flat32();
        s.eflags = 2 | (equal ? 0 : ZF);
        s.ebx = 0xcafebabe; s.ecx = 0x0badf00d; s.esi = MMIO_BASE + 0x80;
        s.eax = equal ? lo : 0x11111111; s.edx = 0x9abcdef0;
        const dev = (d: Uint8Array) => { d.set(le(lo, 4), 0x80); d.set(le(0x9abcdef0, 4), 0x84); };
        for (const lock of [[], [0xf0]]) {
          const a = expectSameAsCore({ state: s, code: [...lock, 0x0f, 0xc7, 0x0e], dev }); // cmpxchg8b [esi]
          expect(a.bus.log.map((x) => [x.gpa - MMIO_BASE, x.write])).toEqual([[0x80, false], [0x84, false], [0x80, true], [0x84, true]]);
          expect(a.state.eflags & ZF).toBe(equal ? ZF : 0);
          expect(a.bus.log[2]!.data).toBe(equal ? 0xcafebabe : lo);
        }
      }
    }
  });

  it("CMPXCHG8B: a register operand or a reg field other than 1 is #UD; the high dword beyond the limit is #GP before any access", () => {
    const s = real16();
    expect(expectSameAsCore({ state: s, code: [0x0f, 0xc7, 0x17] }).assist.vector).toBe(6); // 0F C7 /2 [bx]
    const f = flat32();
    f.esi = MMIO_BASE + 0x100;
    f.ds.limit = MMIO_BASE + 0x103; // the low dword fits the limit, the high one does not
    const a = expectSameAsCore({ state: f, code: [0x0f, 0xc7, 0x0e] });
    expect([a.assist.vector, a.bus.log]).toEqual([13, []]);
  });

  it("XADD r/m,r (0F C0/C1): the sum goes to memory, the old value to the register, flags as ADD", () => {
    const next = rng(0xadd);
    for (const size of [1, 2, 4] as const) {
      const pre = size === 2 ? [0x66] : [];
      for (let k = 0; k < 14; k++) {
        const m = MASKS[size]!;
        const dv = (k < EDGES.length ? EDGES[k]! : next()) & m;
        const s = flat32();
        s.eflags = 2 | (next() & ARITH);
        s.ebx = MMIO_BASE + 0x90;
        s.eax = next(); s.ecx = k < EDGES.length ? EDGES[(k + 3) % EDGES.length]! : next(); s.edx = next();
        for (const lock of [[], [0xf0]]) {
          // xadd [ebx], cl/cx/ecx and, for bytes, xadd [ebx], ch (a high byte register)
          for (const modrm of size === 1 ? [0x0b, 0x2b] : [0x0b]) {
            const a = expectSameAsCore({ state: s, code: [...lock, ...pre, 0x0f, size === 1 ? 0xc0 : 0xc1, modrm], dev: (d) => d.set(le(dv, size), 0x90) });
            expect(a.bus.log.map((x) => [x.write, x.size])).toEqual([[false, size], [true, size]]);
          }
        }
      }
    }
  });

  it("an XADD operand crossing from RAM into MMIO splits at the boundary as the other read-modify-writes do", () => {
    const s = flat32();
    s.ebx = MMIO_BASE - 2; s.ecx = 0x01010101;
    const a = expectSameAsCore({ state: s, code: [0x0f, 0xc1, 0x0b], ram: (r) => r.set([0xff, 0xff], MMIO_BASE - 2), dev: (d) => d.set([0x10, 0x20]) });
    expect(a.bus.log).toEqual([
      { gpa: MMIO_BASE, write: false, size: 2, data: 0x2010 },
      { gpa: MMIO_BASE, write: true, size: 2, data: 0x2112 }, // 0x2010ffff + 0x01010101 = 0x21120100
    ]);
    expect(a.state.ecx >>> 0).toBe(0x2010ffff);
  });
});

describe("MemAssist decoding limits", () => {
  it("LOCK on an instruction that does not allow it is #UD, as on the core", () => {
    const s = real16();
    const a = expectSameAsCore({ state: s, code: [0xf0, 0x8b, 0x07] }); // lock mov ax, [bx]
    expect([a.assist.vector, a.bus.log]).toEqual([6, []]);
  });

  it("an instruction it cannot emulate is Unsupported, names the opcode and changes nothing", () => {
    const w = world();
    const s = real16();
    // SHLD [bx], ax, cl; JMP FAR [bx]; VMPTRLD [bx]
    for (const [code, name] of [[[0x0f, 0xa5, 0x07], "0F A5"], [[0xff, 0x2f], "FF /5"], [[0x0f, 0xc7, 0x37], "0F C7 /6"]] as const) {
      place(w.ram, { state: s, code: [...code] });
      const st = cloneState(s);
      expect(w.assist.run(st, MMIO_BASE)).toBe(MemAssistStatus.Unsupported);
      expect(w.assist.message).toContain(name);
      expect(st).toEqual(s);
    }
    expect(w.bus.log).toEqual([]);
  });

  it("code in MMIO is Unsupported with a message saying so", () => {
    const w = world();
    const s = real16();
    s.cs = seg(MMIO_BASE >> 4, MMIO_BASE, 0xffff, 0x9b);
    s.eip = 0x10;
    expect(w.assist.run(s, MMIO_BASE)).toBe(MemAssistStatus.Unsupported);
    expect(w.assist.message).toMatch(/instruction fetch from MMIO/);
  });

  it("an instruction running past the CS limit is #GP(0)", () => {
    const w = world();
    const s = flat32();
    s.cs.limit = CODE + 1; // the disp32 of mov eax, [disp32] lies beyond it
    place(w.ram, { state: s, code: [0x8b, 0x05, ...le(MMIO_BASE, 4)] });
    expect(w.assist.run(s, MMIO_BASE)).toBe(MemAssistStatus.Exception);
    expect(w.assist.vector).toBe(13);
  });

  it("a completed instruction ends an STI / MOV SS interrupt shadow", () => {
    const s = flat32();
    s.ebx = MMIO_BASE;
    s.interruptibility = 1;
    const a = viaAssist({ state: s, code: [0x8b, 0x03] });
    expect(a.last).toBe(MemAssistStatus.Done);
    expect(a.state.interruptibility).toBe(0);
  });
});

describe("MemAssist public API", () => {
  it("is exported from the monitor's api.ts with its status values", async () => {
    const api = await import("../api.js");
    expect(api.MemAssist).toBe(MemAssist);
    expect(api.MEM_ASSIST_MAX_ELEMENTS).toBe(4096);
    expect([MemAssistStatus.Done, MemAssistStatus.Exception, MemAssistStatus.Unsupported]).toEqual([0, 1, 2]);
  });

  it("rejects a batch bound that is not a positive integer", () => {
    const w = world();
    expect(() => new MemAssist(w.env, 0)).toThrow(RangeError);
  });
});

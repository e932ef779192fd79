import { describe, expect, it } from "vitest";
import { X86Cpu } from "./cpu.js";
import { DecodedInsn, Kind, decodeInsn } from "./decoder.js";
import { blockSource, endsBlock } from "./compiler.js";
import { FlatMemory } from "./memory.js";
import { realModeState, resetState } from "./state.js";
import { CpuExitReason } from "./types.js";
import type { IoPorts, X86State } from "./types.js";
import { NO_IO, NoWindow, rng } from "./testing.js";


/** Opcodes the decoder (and so the compiler) handles. */
const DECODED = [
  ...Array.from({ length: 0x40 }, (_, i) => i).filter((op) => (op & 7) < 6),
  ...Array.from({ length: 0x20 }, (_, i) => 0x40 + i),
  ...Array.from({ length: 0x10 }, (_, i) => 0x70 + i),
  0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x88, 0x89, 0x8a, 0x8b, 0x8d, 0x90, 0xa8, 0xa9,
  ...Array.from({ length: 0x10 }, (_, i) => 0xb0 + i),
  0xc0, 0xc1, 0xc2, 0xc3, 0xc6, 0xc7, 0xd0, 0xd1, 0xd2, 0xd3, 0xe0, 0xe1, 0xe2, 0xe3, 0xe8, 0xe9, 0xeb, 0xfe, 0xff,
];
/** Opcodes with their own code paths in the compiler (shifts, carry users, INC/DEC, branches): drawn more often. */
const FOCUS = [
  0xc0, 0xc1, 0xd0, 0xd1, 0xd2, 0xd3, 0x10, 0x11, 0x13, 0x18, 0x19, 0x1b, 0x40, 0x4b, 0xfe, 0xff,
  ...Array.from({ length: 0x10 }, (_, i) => 0x70 + i), 0xe0, 0xe1, 0xe2, 0xe3, 0x84, 0x85, 0xa8, 0x52, 0x5a, 0x3b, 0x83,
];
/** Instructions left to the interpreter: REP string, 0F, PUSHF/POPF (TF), STI (shadow), MUL, XCHG, CBW, INT 3. */
const UNSUPPORTED = [
  [0xf3, 0xaa], [0x0f, 0xb6, 0xc0], [0x9c], [0x9d], [0xfb], [0xfa], [0xf7, 0xe3], [0x87, 0xd8], [0x98], [0xcc], [0xf3, 0xa5],
];
const PREFIXES = [0x66, 0x67, 0x26, 0x2e, 0x36, 0x3e];

const CODE_SEG = 0x1000, START = 0x100, HANDLER = 0x600;

interface Machine { cpu: X86Cpu; mem: FlatMemory }

/**
 * A random loop body at CODE_SEG:START: decodable instructions (random ModR/M, SIB,
 * displacements, immediates), some unsupported ones, branches to instruction
 * boundaries of the body, and a JMP back to the start.
 */
function randomProgram(next: () => number, bytes: Uint8Array, observe: boolean): void {
  const d = new DecodedInsn();
  const insns: number[][] = [];
  const count = 4 + (next() % 28);
  while (insns.length < count) {
    if (next() % 10 === 0) { insns.push(UNSUPPORTED[next() % UNSUPPORTED.length]); continue; }
    const b: number[] = [];
    if ((next() & 3) === 0) b.push(PREFIXES[next() % PREFIXES.length]);
    const op = (next() & 1) ? DECODED[next() % DECODED.length] : FOCUS[next() % FOCUS.length];
    if ((op === 0xc2 || op === 0xc3) && next() % 4 !== 0) continue; // RET: rare, it leaves the body
    b.push(op);
    // Registers as ModR/M r/m most of the time: memory operands then fault less often.
    b.push((next() & 1) ? 0xc0 | (next() & 0x3f) : next() & 0xff);
    while (b.length < 12) b.push(next() & 0xff);
    decodeInsn(d, Uint8Array.from(b), 0, 15, false);
    if (d.kind === Kind.Exec) continue;
    // A memory operand that faults on every pass cuts the body short (the handler restarts it):
    // keep most 32-bit forms to the small registers and displacements.
    if (d.mod !== 3 && d.kind !== Kind.Lea && d.asz === 4 && (next() & 3) !== 0
      && (d.base < 3 || d.index < 3 || d.disp > 0xffff)) continue;
    insns.push(b.slice(0, d.len));
    // PUSHF (left to the interpreter) right after: the flags of the block's last instruction land in memory.
    if (observe && (next() & 1) === 0) insns.push([0x9c]);
  }
  // Branch displacements: to an instruction boundary of the body (the last byte(s) of the encoding).
  const offs: number[] = [];
  let o = START;
  for (const b of insns) { offs.push(o); o += b.length; }
  const end = o;
  for (let i = 0; i < insns.length; i++) {
    const b = insns[i];
    decodeInsn(d, Uint8Array.from(b), 0, b.length, false);
    if (!endsBlock(d.kind) || d.kind === Kind.Ret) continue;
    const target = offs[next() % insns.length];
    const rel = target - (offs[i] + b.length);
    if (d.op === 0xe8 || d.op === 0xe9) { // rel16 or rel32
      if (d.osz === 2) { b[b.length - 2] = rel & 0xff; b[b.length - 1] = (rel >> 8) & 0xff; }
      else { for (let k = 0; k < 4; k++) b[b.length - 4 + k] = (rel >> (8 * k)) & 0xff; }
    } else b[b.length - 1] = rel & 0xff;
  }
  const base = CODE_SEG * 16;
  o = START;
  for (const b of insns) { bytes.set(b, base + o); o += b.length; }
  const back = START - (end + 2);
  bytes.set([0xeb, back & 0xff], base + end); // jmp START
}

function build(seed: number, compile: boolean, window: boolean, useBitmap: boolean, slowSrc?: FlatMemory): Machine {
  const next = rng(seed);
  const mem = new FlatMemory(0x50000);
  if (slowSrc) mem.bytes.set(slowSrc.bytes);
  else {
    for (let i = 0x400; i < mem.bytes.length; i++) mem.bytes[i] = next() & 0xff;
    // IVT: every vector to 0000:0600, which resets the pointer registers and SP and restarts the body.
    for (let v = 0; v < 256; v++) mem.bytes.set([HANDLER & 0xff, HANDLER >> 8, 0, 0], v * 4);
    mem.bytes.set([0x31, 0xdb, 0x31, 0xf6, 0x31, 0xff, 0x31, 0xed, 0xbc, 0x00, 0x80, 0xea, START & 0xff, START >> 8, CODE_SEG & 0xff, CODE_SEG >> 8], HANDLER);
    randomProgram(next, mem.bytes, (seed & 4) !== 0);
  }
  const cpu = new X86Cpu(window ? mem : new NoWindow(mem), NO_IO);
  cpu.compileHot = compile;
  if (useBitmap) cpu.intercepts.exceptionBitmap = 0xffffffff;
  const s = realModeState(CODE_SEG, START);
  const small = () => (next() & 7) === 0 ? next() >>> 0 : next() & 0x7ff;
  // AX, CX, DX are no 16-bit base or index: any value, so shifts and ALU results reach the sign bits.
  s.eax = next() >>> 0; s.ecx = (next() & 1) ? next() >>> 0 : next() & 0x1f; s.edx = next() >>> 0; s.ebx = small();
  s.esp = 0x8000; s.ebp = small(); s.esi = small(); s.edi = small();
  s.eflags = (next() & 0x8d5) | 2;
  // DS is the code segment half the time: stores then rewrite the running code.
  const ds = (next() & 1) ? CODE_SEG : 0x2000;
  for (const [k, sel] of [["ds", ds], ["es", 0x2000], ["ss", 0x3000], ["fs", CODE_SEG], ["gs", 0x2800]] as const) {
    s[k].selector = sel; s[k].base = sel << 4;
  }
  cpu.setState(s);
  return { cpu, mem };
}

/** Run a compiling core and the plain interpreter side by side in slices of random budgets. */
function sideBySide(seed: number, slices: number): number {
  const next = rng(seed ^ 0x9e3779b9);
  const useBitmap = (seed & 3) === 0;
  const slow = build(seed, false, false, useBitmap);
  const fast = build(seed, true, true, useBitmap, slow.mem);
  slow.cpu.setState(stateOf(fast.cpu)); // same random registers (build draws them after the bytes)
  const sa: X86State = resetState(), sb: X86State = resetState();
  for (let i = 0; i < slices; i++) {
    const budget = 1 + (next() % ((next() & 1) ? 40 : 400));
    const ra = fast.cpu.run(budget), rb = slow.cpu.run(budget);
    fast.cpu.getState(sa); slow.cpu.getState(sb);
    const where = `seed ${seed} slice ${i} budget ${budget}`;
    expect(ra, where).toBe(rb);
    expect(sa, where).toEqual(sb);
    expect(fast.cpu.retired, where).toBe(slow.cpu.retired);
    if (ra === CpuExitReason.Exception) expect(fast.cpu.exit.vector, where).toBe(slow.cpu.exit.vector);
    expect(Buffer.compare(fast.mem.bytes, slow.mem.bytes), where).toBe(0);
    if (ra !== CpuExitReason.Budget) break;
  }
  return fast.cpu.blocksCompiled;
}

function stateOf(cpu: X86Cpu): X86State {
  const s = resetState();
  cpu.getState(s);
  return s;
}

/** A core at 1000:0000 running `code`, compiling or not. */
function core(code: number[], compile = true, mem = new FlatMemory(0x40000)): { cpu: X86Cpu; mem: FlatMemory } {
  mem.bytes.set(code, 0x10000);
  const cpu = new X86Cpu(mem, NO_IO);
  cpu.compileHot = compile;
  cpu.setState(realModeState(0x1000, 0));
  return { cpu, mem };
}

describe("compiled blocks match the interpreter", () => {
  it("agrees on registers, flags, memory, faults and retired counts for random looping programs", () => {
    let compiled = 0;
    for (let seed = 1; seed <= 300; seed++) compiled += sideBySide(seed * 7919, 40);
    expect(compiled).toBeGreaterThan(300); // the comparison really ran compiled code
  });

  it("agrees when every budget ends inside a block", () => {
    // The bench loop: a 7-instruction block (add, xor, inc, mov [di], mov dx, shl, loop).
    const loop = [0x31, 0xc0, 0xb9, 0x00, 0x00, 0x01, 0xc8, 0x31, 0xc3, 0x46, 0x89, 0x05, 0x8b, 0x15, 0xd1, 0xe2, 0xe2, 0xf3, 0xeb, 0xf1];
    const a = core(loop, true), b = core(loop, false, new FlatMemory(0x40000));
    const n = rng(42);
    for (let i = 0; i < 3000; i++) {
      const budget = 1 + (n() % 13);
      expect(a.cpu.run(budget)).toBe(b.cpu.run(budget));
      expect(stateOf(a.cpu)).toEqual(stateOf(b.cpu));
      expect(a.cpu.retired).toBe(b.cpu.retired);
    }
    expect(a.cpu.blocksCompiled).toBeGreaterThan(0);
    expect(Buffer.compare(a.mem.bytes, b.mem.bytes)).toBe(0);
  });

  it("leaves EIP, ESP, flags and retired exactly as the interpreter when a fault hits mid-block", () => {
    // top: inc ax ; add cx, ax ; push cx ; mov [bx], ax ; pop dx ; dec bx ; jmp top
    // At BX = FFFF the word store runs past the segment limit: #GP (SDM 20.1.1).
    const code = [0x40, 0x01, 0xc1, 0x51, 0x89, 0x07, 0x5a, 0x4b, 0xeb, 0xf6];
    for (const bitmap of [0xffffffff, 0]) {
      const runs = [true, false].map((compile) => {
        const m = core(code, compile);
        m.cpu.intercepts.exceptionBitmap = bitmap;
        const s = stateOf(m.cpu);
        s.esp = 0x8000;
        s.ebx = 99; // reaches FFFF on the 101st pass of the loop
        m.cpu.setState(s);
        const r = m.cpu.run(10_000);
        return { r, s: stateOf(m.cpu), retired: m.cpu.retired, vector: m.cpu.exit.vector, mem: m.mem, blocks: m.cpu.blocksCompiled };
      });
      expect(runs[0].r).toBe(runs[1].r);
      expect(runs[0].s).toEqual(runs[1].s);
      expect(runs[0].retired).toBe(runs[1].retired);
      expect(Buffer.compare(runs[0].mem.bytes, runs[1].mem.bytes)).toBe(0);
      expect(runs[0].blocks).toBeGreaterThan(0);
      if (bitmap !== 0) {
        expect(runs[0].r).toBe(CpuExitReason.Exception);
        expect(runs[0].vector).toBe(13);
        expect(runs[0].s.eip).toBe(4); // the MOV [BX], AX
        expect(runs[0].retired).toBe(100 * 7 + 3);
      }
    }
  });

  it("stops a block after a store into its own code (self-modifying code)", () => {
    // top: mov byte [cs:imm], cl ; mov al, 0 (imm patched) ; add bl, al ; loop top ; hlt
    // Each pass patches the MOV's immediate with CL just before it runs: BL sums CL..1.
    const code = [0x2e, 0x88, 0x0e, 0x06, 0x00, 0xb0, 0x00, 0x00, 0xc3, 0xe2, 0xf5, 0xf4];
    for (const compile of [true, false]) {
      const m = core(code, compile);
      const s = stateOf(m.cpu);
      s.ecx = 200; s.ebx = 0;
      m.cpu.setState(s);
      expect(m.cpu.run(100_000)).toBe(CpuExitReason.Halted);
      const e = stateOf(m.cpu);
      expect(e.ebx & 0xff).toBe((200 * 201 / 2) & 0xff);
      expect(m.cpu.retired).toBe(200 * 4); // HLT stops the core without retiring
      if (compile) expect(m.cpu.blocksCompiled).toBeGreaterThan(0);
    }
  });

  it("drops a hot block when its bytes change between runs", () => {
    // top: mov ax, 0x1111 ; inc cx ; jmp top
    const m = core([0xb8, 0x11, 0x11, 0x41, 0xeb, 0xfa]);
    m.cpu.run(1000);
    expect(m.cpu.blocksCompiled).toBe(1);
    expect(stateOf(m.cpu).eax & 0xffff).toBe(0x1111);
    m.mem.bytes.set([0x22, 0x22], 0x10001);
    m.cpu.run(1000);
    expect(stateOf(m.cpu).eax & 0xffff).toBe(0x2222);
    // Unchanged bytes: the blocks are kept across runs, not recompiled.
    m.cpu.run(1000);
    const before = m.cpu.blocksCompiled;
    m.cpu.run(1000);
    expect(m.cpu.blocksCompiled).toBe(before);
  });

  it("drops a hot block on invalidateCode() from a port handler during the run", () => {
    const mem = new FlatMemory(0x20000);
    let cpu!: X86Cpu;
    let ins = 0;
    const io: IoPorts = {
      in: () => { if (++ins === 100) { mem.bytes[0x10001] = 0x33; cpu.invalidateCode(0x10001, 1); } return 0; },
      out: () => {},
    };
    // top: mov ax, 0x0001 ; add bx, ax ; in al, 0x80 ; jmp top
    mem.bytes.set([0xb8, 0x01, 0x00, 0x01, 0xc3, 0xe4, 0x80, 0xeb, 0xf7], 0x10000);
    cpu = new X86Cpu(mem, io);
    cpu.setState(realModeState(0x1000, 0));
    cpu.run(4 * 200);
    expect(cpu.blocksCompiled).toBeGreaterThan(0);
    // Passes 1..100 add 1 (the IN of pass 100 patches), passes 101..200 add 0x33.
    expect(stateOf(cpu).ebx & 0xffff).toBe(100 + 100 * 0x33);
  });

  it("computes constant-count SHL, SHR, SAR results and flags exactly as X86Cpu.shift", () => {
    const n = rng(7);
    for (const size of [1, 2, 4]) {
      for (const sub of [4, 5, 6, 7]) {
        for (const count of [1, 2, 7, 8, 9, 15, 16, 17, 31]) {
          // top: mov eAX/AL, v ; shift eAX/AL, count ; pushf ; jmp top
          const v = n() >>> 0;
          const p = size === 4 ? [0x66] : [];
          const mov = size === 1 ? [0xb0, v & 0xff] : size === 2 ? [0xb8, v & 0xff, (v >> 8) & 0xff] : [0x66, 0xb8, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24];
          const body = [...mov, ...p, size === 1 ? 0xc0 : 0xc1, 0xc0 | (sub << 3), count, 0x9c];
          const code = [...body, 0xeb, (-(body.length + 2)) & 0xff];
          const a = core(code, true), b = core(code, false);
          for (const m of [a, b]) { const s = stateOf(m.cpu); s.ss.selector = 0x3000; s.ss.base = 0x30000; s.esp = 0x8000; m.cpu.setState(s); }
          for (let i = 0; i < 60; i++) {
            a.cpu.run(4); b.cpu.run(4);
            expect(stateOf(a.cpu), `size ${size} op ${sub} count ${count} value ${v.toString(16)}`).toEqual(stateOf(b.cpu));
          }
          expect(a.cpu.blocksCompiled).toBeGreaterThan(0);
          expect(Buffer.compare(a.mem.bytes, b.mem.bytes)).toBe(0);
        }
      }
    }
  });

  it("keeps the flags of a block's ALU operations in locals until something can observe them", () => {
    // add ax, cx ; xor bx, ax ; inc si ; mov [di], ax : the store can fault, so INC's flags are stored before it.
    const d: DecodedInsn[] = [];
    const ips: number[] = [];
    let ip = 0;
    for (const b of [[0x01, 0xc8], [0x31, 0xc3], [0x46], [0x89, 0x05]]) {
      const x = new DecodedInsn();
      decodeInsn(x, Uint8Array.from(b), 0, b.length, false);
      d.push(x); ips.push(ip); ip += x.len;
    }
    const src = blockSource(d, ips);
    expect(src.match(/cpu\.lzOp =/g)?.length).toBe(1);
    expect(src.indexOf("cpu.lzOp =")).toBeLessThan(src.indexOf("cpu.wr16"));
  });
});

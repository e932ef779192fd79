import { describe, expect, it } from "vitest";
import { X86Cpu } from "./cpu.js";
import { DecodedInsn, Kind, NO_REG, decodeInsn } from "./decoder.js";
import { FlatMemory } from "./memory.js";
import { realModeState, resetState } from "./state.js";
import { CpuExitReason } from "./types.js";
import type { IoPorts, X86State } from "./types.js";
import { NO_IO, NoWindow, rng } from "./testing.js";


function decode(bytes: number[], code32 = false): DecodedInsn {
  const d = new DecodedInsn();
  decodeInsn(d, Uint8Array.from(bytes), 0, Math.min(15, bytes.length), code32);
  return d;
}

describe("decodeInsn", () => {
  it("splits prefixes, ModR/M, a 16-bit address plan, displacement and immediate", () => {
    const d = decode([0x26, 0x81, 0x40, 0xfe, 0x34, 0x12]); // add word [es:bx+si-2], 0x1234
    expect([d.kind, d.len, d.segOv, d.seg, d.sub, d.size]).toEqual([Kind.Grp1, 6, 0, 0, 0, 2]);
    expect([d.base, d.index, d.scale, d.disp, d.imm]).toEqual([3, 6, 0, -2, 0x1234]);
  });

  it("decodes a SIB address with a 67 prefix and an operand-size override", () => {
    const d = decode([0x66, 0x67, 0x8b, 0x44, 0x8d, 0x10]); // mov eax, [ebp+ecx*4+0x10]
    expect([d.kind, d.len, d.osz, d.asz, d.size]).toEqual([Kind.MovGE, 6, 4, 4, 4]);
    expect([d.base, d.index, d.scale, d.disp, d.seg]).toEqual([5, 1, 2, 0x10, 2]); // EBP base: SS
  });

  it("decodes disp32-only and 16-bit disp16-only forms without a base register", () => {
    const a = decode([0x67, 0x8b, 0x05, 0x78, 0x56, 0x34, 0x12]);
    expect([a.base, a.index, a.disp, a.len]).toEqual([NO_REG, NO_REG, 0x12345678, 7]);
    const b = decode([0x8b, 0x06, 0x34, 0x12]);
    expect([b.base, b.index, b.disp, b.len, b.seg]).toEqual([NO_REG, NO_REG, 0x1234, 4, 3]);
  });

  it("sizes immediates as the interpreter does (83 sign-extends, D0 counts 1, D2 counts CL)", () => {
    expect(decode([0x83, 0xc0, 0xff]).imm).toBe(0xffff);
    expect(decode([0x66, 0x83, 0xc0, 0xff]).imm).toBe(0xffffffff);
    expect(decode([0xd1, 0xe0]).imm).toBe(1);
    expect(decode([0xd3, 0xe0]).imm).toBe(-1);
    expect(decode([0xeb, 0xfe]).imm).toBe(-2);
    expect(decode([0xe9, 0xfe, 0xff]).imm).toBe(0xfffe);
  });

  it("leaves LOCK, REP, 0F, strings, I/O and invalid group forms to the interpreter", () => {
    for (const b of [[0xf0, 0x01, 0x07], [0xf3, 0x90], [0x0f, 0xb6, 0xc0], [0xa4], [0xe4, 0x60], [0xc7, 0xc8, 0, 0], [0xff, 0xd0], [0x8d, 0xc0]]) {
      expect(decode(b).kind).toBe(Kind.Exec);
    }
  });

  it("does not read past the bytes it is given: a truncated instruction stays with the interpreter", () => {
    const d = new DecodedInsn();
    decodeInsn(d, Uint8Array.from([0xb8, 0x34, 0x12]), 0, 2, false);
    expect(d.kind).toBe(Kind.Exec);
  });
});

/** Run both cores one step (or `steps`) from the same state; they must agree on everything. */
function lockstep(seed: number, iterations: number, opcodes: number[]): void {
  const next = rng(seed);
  const size = 0x30000;
  const fast = new FlatMemory(size), slow = new FlatMemory(size);
  for (let i = 0; i < size; i++) fast.bytes[i] = next() & 0xff;
  slow.bytes.set(fast.bytes);
  const a = new X86Cpu(fast, NO_IO), b = new X86Cpu(new NoWindow(slow), NO_IO);
  a.intercepts.exceptionBitmap = b.intercepts.exceptionBitmap = 0xffffffff;
  const sa: X86State = resetState(), sb: X86State = resetState();
  const prefixes = [0x66, 0x67, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65];
  for (let it = 0; it < iterations; it++) {
    const s = realModeState(0x1000, 0x100 + (next() & 0xff));
    // Small registers keep most effective addresses inside the 64 KiB limit; some do not.
    const small = () => (next() & 3) === 0 ? next() >>> 0 : next() & 0x3fff;
    s.eax = small(); s.ecx = small(); s.edx = small(); s.ebx = small();
    s.esp = 0x8000 + (next() & 0xfff); s.ebp = small(); s.esi = small(); s.edi = small();
    s.eflags = (next() & 0x8d5) | 2;
    for (const [k, sel] of [["ds", 0x1800], ["es", 0x2000], ["ss", 0x2400], ["fs", 0x0800], ["gs", 0x0c00]] as const) {
      s[k].selector = sel; s[k].base = sel << 4;
    }
    a.setState(s); b.setState(s);
    // The instruction: up to two prefixes, an opcode, then random ModR/M, SIB, displacement, immediate.
    const at = 0x10000 + s.eip;
    const bytes: number[] = [];
    while ((next() & 3) === 0 && bytes.length < 2) bytes.push(prefixes[next() & 7]);
    bytes.push(opcodes[next() % opcodes.length]);
    while (bytes.length < 12) bytes.push(next() & 0xff);
    fast.bytes.set(bytes, at); slow.bytes.set(bytes, at);
    const ra = a.run(1), rb = b.run(1);
    a.getState(sa); b.getState(sb);
    const where = `seed ${seed} iteration ${it}: ${bytes.map((x) => x.toString(16).padStart(2, "0")).join(" ")}`;
    expect(ra, where).toBe(rb);
    if (ra === CpuExitReason.Exception) expect(a.exit.vector, where).toBe(b.exit.vector);
    expect(sa, where).toEqual(sb);
    expect(Buffer.compare(fast.bytes, slow.bytes), where).toBe(0);
  }
}

/** Every opcode the decoder handles (decoder.ts Kind), and a few it does not. */
const DECODED = [
  ...Array.from({ length: 0x40 }, (_, i) => i).filter((op) => (op & 7) < 6),
  ...Array.from({ length: 0x20 }, (_, i) => 0x40 + i),
  ...Array.from({ length: 0x10 }, (_, i) => 0x70 + i),
  0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x88, 0x89, 0x8a, 0x8b, 0x8d, 0x90, 0xa8, 0xa9,
  ...Array.from({ length: 0x10 }, (_, i) => 0xb0 + i),
  0xc0, 0xc1, 0xc2, 0xc3, 0xc6, 0xc7, 0xd0, 0xd1, 0xd2, 0xd3, 0xe0, 0xe1, 0xe2, 0xe3, 0xe8, 0xe9, 0xeb, 0xfe, 0xff,
];

describe("decoded execution matches the interpreter", () => {
  it("agrees with the interpreter on registers, flags, memory and faults for random decoded instructions", () => {
    lockstep(0x1234567, 6000, DECODED);
    lockstep(0xbadc0de, 6000, DECODED);
  });

  it("agrees on random bytes of any opcode (decoded or not)", () => {
    lockstep(0x5eed, 4000, Array.from({ length: 256 }, (_, i) => i));
  });

  it("runs the bench loop from the cache to the same state as the interpreter", () => {
    const loop = [0x31, 0xc0, 0xb9, 0x00, 0x00, 0x01, 0xc8, 0x31, 0xc3, 0x46, 0x89, 0x05, 0x8b, 0x15, 0xd1, 0xe2, 0xe2, 0xf3, 0xeb, 0xf1];
    const fast = new FlatMemory(0x20000), slow = new FlatMemory(0x20000);
    fast.bytes.set(loop, 0x10000); slow.bytes.set(loop, 0x10000);
    const a = new X86Cpu(fast, NO_IO), b = new X86Cpu(new NoWindow(slow), NO_IO);
    a.setState(realModeState(0x1000, 0)); b.setState(realModeState(0x1000, 0));
    expect(a.run(300_001)).toBe(CpuExitReason.Budget);
    expect(b.run(300_001)).toBe(CpuExitReason.Budget);
    const sa = resetState(), sb = resetState();
    a.getState(sa); b.getState(sb);
    expect(sa).toEqual(sb);
    expect(a.retired).toBe(b.retired);
    expect(Buffer.compare(fast.bytes, slow.bytes)).toBe(0);
  });
});

describe("decoded-instruction cache invalidation", () => {
  function core(code: number[]) {
    const mem = new FlatMemory(0x20000);
    mem.bytes.set(code, 0x10000);
    const cpu = new X86Cpu(mem, NO_IO);
    cpu.setState(realModeState(0x1000, 0));
    const ax = () => { const s = resetState(); cpu.getState(s); return s.eax & 0xffff; };
    return { mem, cpu, ax };
  }

  it("sees the guest rewrite an instruction it has already executed (self-modifying code in one run)", () => {
    // top: mov ax, 1 (at 0) ; inc bx ; cmp bx, 2 ; jne patch ; hlt
    // patch (0x0e): mov byte [cs:1], 7 ; jmp top   -> the second pass must load 7
    const code = [
      0xb8, 0x01, 0x00, 0x43, 0x83, 0xfb, 0x02, 0x75, 0x01, 0xf4, 0x90, 0x90, 0x90, 0x90,
      0x2e, 0xc6, 0x06, 0x01, 0x00, 0x07, 0xeb, 0xea,
    ];
    code[8] = 0x0e - 9; // jne patch
    code[21] = (0 - 22) & 0xff; // jmp top
    const m = core(code);
    expect(m.cpu.run(100)).toBe(CpuExitReason.Halted);
    expect(m.ax()).toBe(7);
  });

  it("sees a 16-bit store that overlaps the last byte of a cached instruction", () => {
    // mov word [cs:0x0f], 0x9009 rewrites the last byte of `add ax, 0x0101` (0x0d..0x0f) and the NOP after it.
    const code = [
      0xb8, 0x00, 0x00, // 0: mov ax, 0
      0xb9, 0x02, 0x00, // 3: mov cx, 2
      0xeb, 0x05, // 6: jmp 0x0d
      0x90, 0x90, 0x90, 0x90, 0x90, // 8
      0x05, 0x01, 0x01, // 0x0d: add ax, 0x0101
      0x90, // 0x10
      0x2e, 0xc7, 0x06, 0x0f, 0x00, 0x09, 0x90, // 0x11: mov word [cs:0x0f], 0x9009
      0xe2, 0xf3, // 0x18: loop 0x0d
      0xf4, // 0x1a
    ];
    const m = core(code);
    expect(m.cpu.run(100)).toBe(CpuExitReason.Halted);
    expect(m.ax()).toBe(0x0101 + 0x0901);
  });

  it("sees bytes written behind the core between two runs (the monitor loading a sector)", () => {
    const m = core([0xb8, 0x11, 0x11, 0xeb, 0xfb]); // mov ax, 0x1111 ; jmp 0
    m.cpu.run(50);
    expect(m.ax()).toBe(0x1111);
    m.mem.bytes.set([0x22, 0x22], 0x10001);
    m.cpu.run(50);
    expect(m.ax()).toBe(0x2222);
  });

  it("invalidateCode drops decoded instructions for writes that happen during a run", () => {
    // The IN is the hook: its port handler rewrites the immediate of the MOV the core just ran.
    const mem = new FlatMemory(0x20000);
    let cpu!: X86Cpu;
    const io: IoPorts = {
      in: () => { mem.bytes[0x10001] = 0x33; cpu.invalidateCode(0x10001, 1); return 0; },
      out: () => {},
    };
    // 0: mov ax, 0x0001 ; cmp cx, 1 ; je done ; inc cx ; in al, 0x80 ; jmp 0 ; done: hlt
    mem.bytes.set([0xb8, 0x01, 0x00, 0x83, 0xf9, 0x01, 0x74, 0x05, 0x41, 0xe4, 0x80, 0xeb, 0xf3, 0xf4], 0x10000);
    cpu = new X86Cpu(mem, io);
    cpu.setState(realModeState(0x1000, 0));
    expect(cpu.run(100)).toBe(CpuExitReason.Halted);
    const s = resetState();
    cpu.getState(s);
    expect(s.eax & 0xffff).toBe(0x0033);
  });
});

// 32-bit operand paths (66 prefix in real mode), which the 16-bit conformance
// vectors do not reach, checked against BigInt reference arithmetic.
import { describe, expect, it } from "vitest";
import { X86Cpu } from "./cpu.js";
import { FlatMemory } from "./memory.js";
import { realModeState, resetState } from "./state.js";
import type { X86State } from "./types.js";

const mem = new FlatMemory(0x20000);
const cpu = new X86Cpu(mem, { in: () => 0xff, out: () => {} });

function exec(code: number[], regs: Partial<X86State>): X86State {
  mem.bytes.fill(0);
  mem.bytes.set(code, 0x10000);
  const s = realModeState(0x1000, 0);
  s.esp = 0x800;
  Object.assign(s, regs);
  cpu.setState(s);
  cpu.run(1);
  const out = resetState();
  cpu.getState(out);
  return out;
}

/** Deterministic xorshift so a failure is reproducible. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}
const INTERESTING = [0, 1, 2, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe, 0x10000, 0xffff];

describe("X86Cpu 32-bit arithmetic", () => {
  const r = rng(0x1234567);
  const pairs: Array<[number, number]> = [];
  for (const a of INTERESTING) for (const b of INTERESTING) pairs.push([a, b]);
  for (let i = 0; i < 200; i++) pairs.push([r(), r() >>> (r() & 31)]);

  it("MUL EBX gives the 64-bit product in EDX:EAX and CF=OF=(EDX!=0)", () => {
    for (const [a, b] of pairs) {
      const s = exec([0x66, 0xf7, 0xe3], { eax: a, ebx: b });
      const p = BigInt(a) * BigInt(b);
      expect([s.eax, s.edx]).toEqual([Number(p & 0xffffffffn), Number(p >> 32n)]);
      expect(s.eflags & 0x801).toBe(p >> 32n ? 0x801 : 0);
    }
  });

  it("IMUL EBX gives the signed 64-bit product", () => {
    for (const [a, b] of pairs) {
      const s = exec([0x66, 0xf7, 0xeb], { eax: a, ebx: b });
      const p = BigInt.asUintN(64, BigInt(a | 0) * BigInt(b | 0));
      expect([s.eax, s.edx]).toEqual([Number(p & 0xffffffffn), Number(p >> 32n)]);
      const fits = BigInt(a | 0) * BigInt(b | 0) === BigInt((Number(p & 0xffffffffn)) | 0);
      expect(s.eflags & 0x801).toBe(fits ? 0 : 0x801);
    }
  });

  it("DIV EBX divides EDX:EAX or raises #DE", () => {
    for (const [a, b] of pairs) {
      const edx = b === 0 ? 0 : (a % b) >>> 0; // keep most quotients in range
      const s = exec([0x66, 0xf7, 0xf3], { eax: a, ebx: b, edx });
      const n = (BigInt(edx) << 32n) | BigInt(a);
      if (b === 0 || n / BigInt(b) > 0xffffffffn) { expect(s.eip).not.toBe(3); continue; }
      expect([s.eax, s.edx]).toEqual([Number(n / BigInt(b)), Number(n % BigInt(b))]);
    }
  });

  it("IDIV EBX divides signed EDX:EAX with truncation", () => {
    for (const [a, b] of pairs) {
      const edx = (a | 0) < 0 ? 0xffffffff : 0;
      const s = exec([0x66, 0xf7, 0xfb], { eax: a, ebx: b, edx });
      const n = BigInt(a | 0), d = BigInt(b | 0);
      if (d === 0n || n / d > 0x7fffffffn || n / d < -0x80000000n) { expect(s.eip).not.toBe(3); continue; }
      expect([s.eax, s.edx]).toEqual([Number(BigInt.asUintN(32, n / d)), Number(BigInt.asUintN(32, n % d))]);
    }
  });

  it("SHL/SHR/SAR/ROL/ROR EAX, CL match the reference for every count", () => {
    for (const [a] of pairs.slice(0, 60)) {
      for (let c = 0; c < 32; c++) {
        const A = BigInt(a);
        const ref = [
          Number(BigInt.asUintN(32, (A << BigInt(c)) | (A >> BigInt((32 - c) % 32)))), // ROL
          Number(BigInt.asUintN(32, (A >> BigInt(c)) | (A << BigInt((32 - c) % 32)))), // ROR
          Number(BigInt.asUintN(32, A << BigInt(c))),
          Number(A >> BigInt(c)),
          Number(BigInt.asUintN(32, BigInt(a | 0) >> BigInt(c))),
        ];
        const ops = [0xc0, 0xc8, 0xe0, 0xe8, 0xf8]; // ModR/M for /0 /1 /4 /5 /7 with EAX
        for (let i = 0; i < 5; i++) {
          const s = exec([0x66, 0xd3, ops[i]], { eax: a, ecx: c });
          expect(s.eax, `op ${i} ${a.toString(16)} by ${c}`).toBe(ref[i]);
        }
      }
    }
  });
});

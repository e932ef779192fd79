import { describe, expect, it } from "vitest";
import { DE, IE, PE, UE, ZE } from "./float80.js";
import { cloneState, resetState } from "./state.js";
import { CpuExitReason } from "./types.js";
import type { X86State } from "./types.js";
import { DM_CODE, DM_DATA, dataMachine, rng } from "./testing.js";

const CODE = DM_CODE, DATA = DM_DATA; // CS:0 at 0x10000, DS:0 at 0x20000
const SW_SF = 0x40, SW_ES = 0x80, SW_C0 = 0x100, SW_C1 = 0x200, SW_C2 = 0x400, SW_C3 = 0x4000, SW_B = 0x8000;
const CR0_MP = 0x2, CR0_EM = 0x4, CR0_TS = 0x8, CR0_NE = 0x20;

/** ModR/M memory form [disp16] (mod 00, rm 110) with a reg field. */
const mem = (op: number, reg: number, addr: number): number[] => [op, (reg << 3) | 6, addr & 0xff, addr >>> 8];

function machine(code: number[], init?: (s: X86State) => void) {
  const { m, cpu, state, d } = dataMachine(code, init);
  const fpu = cpu.fpu, f = fpu.f;
  const st = (i: number) => f.toNumber(fpu.stSlot(i));
  const f64 = (off: number, v: number) => new DataView(m.bytes.buffer).setFloat64(d(off), v, true);
  const f32 = (off: number, v: number) => new DataView(m.bytes.buffer).setFloat32(d(off), v, true);
  const getF64 = (off: number) => new DataView(m.bytes.buffer).getFloat64(d(off), true);
  const u16 = (off: number) => m.read16(d(off));
  const u32 = (off: number) => m.read32(d(off));
  const runToHlt = () => cpu.run(1000);
  return { m, cpu, fpu, f, st, state, d, f64, f32, getF64, u16, u32, runToHlt };
}

describe("x87 through the core (real mode)", () => {
  it("FLD m32, FADD m32, FSTP m64, FNSTSW AX, WAIT compute 1.5 + 2.25 = 3.75", () => {
    const x = machine([
      ...mem(0xd9, 0, 0x200), // FLD dword [200]
      ...mem(0xd8, 0, 0x204), // FADD dword [204]
      ...mem(0xdd, 3, 0x208), // FSTP qword [208]
      0xdf, 0xe0, // FNSTSW AX
      0x9b, // WAIT
    ]);
    x.f32(0x200, 1.5); x.f32(0x204, 2.25); x.f64(0x208, -1);
    expect(x.runToHlt()).toBe(CpuExitReason.Halted);
    expect(x.getF64(0x208)).toBe(3.75);
    expect(x.state().eax & 0xffff).toBe(0); // TOP back to 0, no exception, no condition code
    expect(x.fpu.stEmpty(0)).toBe(true);
    // FIP/FDP describe the last non-control instruction: FSTP at CS:8, operand DS:208.
    expect([x.fpu.fcs, x.fpu.fip, x.fpu.fds, x.fpu.fdp, x.fpu.fop]).toEqual([CODE, 8, DATA, 0x208, (5 << 8) | 0x1e]);
  });

  it("integer loads, FIMUL and FISTP m16/m32/m64 round per RC; overflow stores the integer indefinite with IE", () => {
    const x = machine([
      ...mem(0xdf, 0, 0x200), // FILD word [200] = -7
      ...mem(0xda, 1, 0x204), // FIMUL dword [204] = 3 -> -21
      ...mem(0xdb, 2, 0x210), // FIST dword [210]
      ...mem(0xdf, 7, 0x218), // FISTP qword [218]
      ...mem(0xdb, 0, 0x208), // FILD dword [208] = 40000
      ...mem(0xdf, 3, 0x220), // FISTP word [220]: overflow
    ]);
    x.m.write16(x.d(0x200), 0xfff9); x.m.write32(x.d(0x204), 3); x.m.write32(x.d(0x208), 40000);
    x.runToHlt();
    expect(x.u32(0x210) | 0).toBe(-21);
    expect([x.u32(0x218), x.u32(0x21c)]).toEqual([0xffffffeb, 0xffffffff]);
    expect(x.u16(0x220)).toBe(0x8000);
    expect(x.fpu.sw & 0x3f).toBe(IE);
    expect(x.fpu.stEmpty(0)).toBe(true); // masked: FISTP still pops
  });

  it("the ninth push overflows: IE|SF with C1=1 and the indefinite in ST0 (masked)", () => {
    const x = machine(Array(9).fill([0xd9, 0xe8]).flat()); // FLD1 x 9
    x.runToHlt();
    const sw = x.fpu.sw;
    expect(sw & (IE | SW_SF | SW_C1)).toBe(IE | SW_SF | SW_C1);
    expect((sw >>> 11) & 7).toBe(7);
    expect([x.f.signOf(x.fpu.stSlot(0)), x.f.expOf(x.fpu.stSlot(0)), x.f.hiOf(x.fpu.stSlot(0))]).toEqual([1, 0x7fff, 0xc0000000]);
    expect(x.st(1)).toBe(1);
  });

  it("an empty operand underflows: IE|SF with C1=0, and the masked response writes the indefinite", () => {
    const x = machine([0xd9, 0xe8, 0xd9, 0xe0 /* FCHS: set C1 cleared */, 0xd8, 0xc1]); // FLD1; FCHS; FADD ST0, ST1 (empty)
    x.runToHlt();
    expect(x.fpu.sw & (IE | SW_SF | SW_C1)).toBe(IE | SW_SF);
    expect(Number.isNaN(x.st(0))).toBe(true);
  });

  it("an unmasked division by zero sets ES/B, keeps the operands, and the next waiting instruction raises #MF (CR0.NE=1)", () => {
    const x = machine([
      ...mem(0xd9, 5, 0x200), // FLDCW [200]: ZM clear
      0xd9, 0xe8, 0xd9, 0xee, // FLD1, FLDZ
      0xde, 0xf9, // FDIVP ST1, ST0 -> 1/0
      0x90,
      0xd9, 0xe8, // FLD1: waiting -> #MF
    ], (s) => { s.cr0 = 0x10 | CR0_NE; });
    x.m.write16(x.d(0x200), 0x037f & ~ZE);
    x.cpu.intercepts.exceptionBitmap = 1 << 16;
    expect(x.runToHlt()).toBe(CpuExitReason.Exception);
    expect(x.cpu.exit.vector).toBe(16);
    expect(x.state().eip).toBe(4 + 4 + 2 + 1); // at the FLD1 that found the pending exception
    expect(x.fpu.sw & (ZE | SW_ES | SW_B)).toBe(ZE | SW_ES | SW_B);
    expect([x.st(0), x.st(1)]).toEqual([0, 1]); // not popped, not written
  });

  it("with CR0.NE=0 a pending exception asserts FERR# (IRQ 13 path) and the instruction runs; FNCLEX deasserts", () => {
    const x = machine([
      ...mem(0xd9, 5, 0x200), 0xd9, 0xee, 0xd9, 0xee, 0xde, 0xf9, // FLDCW; FLDZ; FLDZ; FDIVP: 0/0 unmasked IE
      0x9b, // WAIT: FERR#
      0xd9, 0xe8, // FLD1 runs
      0xdb, 0xe2, // FNCLEX
    ]);
    x.m.write16(x.d(0x200), 0x037f & ~IE);
    const ferr: boolean[] = [];
    x.fpu.onFerr = (v) => ferr.push(v);
    expect(x.runToHlt()).toBe(CpuExitReason.Halted);
    expect(ferr).toEqual([true, false]);
    expect(x.st(0)).toBe(1);
    expect(x.fpu.sw & (SW_ES | 0x3f)).toBe(0);
  });

  it("CR0.EM gives #NM on ESC; CR0.TS gives #NM on ESC, and on WAIT only with CR0.MP (SDM table 2-2)", () => {
    const nm = (code: number[], cr0: number) => {
      const x = machine(code, (s) => { s.cr0 = 0x10 | cr0; });
      x.cpu.intercepts.exceptionBitmap = 1 << 7;
      return x.runToHlt() === CpuExitReason.Exception && x.cpu.exit.vector === 7;
    };
    expect(nm([0xd9, 0xe8], CR0_EM)).toBe(true);
    expect(nm([0xd9, 0xe8], CR0_TS)).toBe(true);
    expect(nm([0x9b], CR0_TS)).toBe(false);
    expect(nm([0x9b], CR0_TS | CR0_MP)).toBe(true);
    expect(nm([0x9b], CR0_EM)).toBe(false);
    expect(nm([0x0f, 0xae, 0x06, 0x00, 0x02], CR0_TS)).toBe(true); // FXSAVE
  });

  it("FISTTP (SSE3) and reserved ESC encodings are #UD on this P6-class core", () => {
    for (const code of [mem(0xdb, 1, 0x200), mem(0xdd, 1, 0x200), [0xd9, 0xd1], [0xde, 0xd8]]) {
      const x = machine(code);
      x.cpu.intercepts.exceptionBitmap = 1 << 6;
      expect(x.runToHlt(), code.join(",")).toBe(CpuExitReason.Exception);
      expect(x.cpu.exit.vector).toBe(6);
    }
  });

  it("register forms follow the reversed DC/DE encodings: DE E8+i is ST(i)-ST0, DE F0+i is ST0/ST(i), DC E0+i is ST0-ST(i)", () => {
    const x = machine([
      ...mem(0xdf, 0, 0x200), ...mem(0xdf, 0, 0x202), // FILD 10; FILD 4
      0xde, 0xe9, // FSUBP ST1, ST0: 10 - 4 = 6
      ...mem(0xdf, 0, 0x204), 0xde, 0xf1, // FILD 3; FDIVRP ST1, ST0: 3 / 6
      ...mem(0xdf, 0, 0x202), 0xdc, 0xe1, // FILD 4; FSUBR ST1, ST0: 4 - 0.5
      0xd8, 0xe1, // FSUB ST0, ST1: 4 - 3.5
      0xd8, 0xe9, // FSUBR ST0, ST1: 3.5 - 0.5
      0xdc, 0xf9, // FDIV ST1, ST0: 3.5 / 3
    ]);
    x.m.write16(x.d(0x200), 10); x.m.write16(x.d(0x202), 4); x.m.write16(x.d(0x204), 3);
    x.runToHlt();
    expect([x.st(0), x.st(1)]).toEqual([3, 3.5 / 3]);
    expect(x.fpu.stEmpty(2)).toBe(true);
  });

  it("FCOMI sets ZF/PF/CF and FCMOVB moves only when CF is set", () => {
    const x = machine([
      0xd9, 0xe8, 0xd9, 0xee, // FLD1; FLDZ: ST0 = 0, ST1 = 1
      0xdb, 0xf1, // FCOMI ST0, ST1: 0 < 1 -> CF
      0x9c, // PUSHF
      0xda, 0xc1, // FCMOVB ST0, ST1
    ]);
    x.runToHlt();
    const fl = x.m.read16(0x30000 + 0xfe);
    expect(fl & 0x45).toBe(0x01);
    expect(x.st(0)).toBe(1);
  });

  it("FCOMI with an unmasked #IA leaves ZF/PF/CF but still clears OF, SF and AF (SDM Vol. 2 FCOMI)", () => {
    const x = machine([
      ...mem(0xd9, 5, 0x200), // FLDCW [200]: IM clear
      ...mem(0xd9, 0, 0x204), 0xd9, 0xe8, // FLD dword [204] (QNaN); FLD1
      0xdb, 0xf1, // FCOMI ST0, ST1: QNaN -> #IA, unmasked
      0x9c, // PUSHF
    ], (s) => { s.eflags = 0x2 | 0x800 | 0x80 | 0x10 | 0x40 | 0x1; });
    x.m.write16(x.d(0x200), 0x037f & ~IE);
    x.m.write32(x.d(0x204), 0x7fc00000);
    x.runToHlt();
    expect(x.m.read16(0x30000 + 0xfe) & 0x8d5).toBe(0x41); // ZF and CF as before; OF, SF, AF cleared; PF not set
    expect(x.fpu.sw & (IE | SW_ES)).toBe(IE | SW_ES);
  });

  it("FCOM, FUCOM, FTST and FXAM set C3/C2/C0 (and C1 = sign for FXAM)", () => {
    const x = machine([
      0xd9, 0xe8, 0xd9, 0xee, // ST0 = 0, ST1 = 1
      0xd8, 0xd1, // FCOM ST1: 0 < 1
      0xdf, 0xe0, 0x89, 0xc3, // FNSTSW AX; MOV BX, AX
      0xd9, 0xe4, // FTST: 0 = 0
      0xdf, 0xe0, 0x89, 0xc1, // -> CX
      0xd9, 0xe0, 0xd9, 0xe5, // FCHS; FXAM: -0 -> zero class, C1 = 1
      0xdf, 0xe0, 0x89, 0xc2, // -> DX
    ]);
    x.runToHlt();
    const s = x.state();
    expect(s.ebx & (SW_C3 | SW_C2 | SW_C0)).toBe(SW_C0);
    expect(s.ecx & (SW_C3 | SW_C2 | SW_C0)).toBe(SW_C3);
    expect(s.edx & (SW_C3 | SW_C2 | SW_C1 | SW_C0)).toBe(SW_C3 | SW_C1);
  });

  it("FLDPI rounds per RC: ...C235 to nearest, ...C234 toward zero (SDM 8.3.8)", () => {
    const x = machine([0xd9, 0xeb, ...mem(0xd9, 5, 0x200), 0xd9, 0xeb]);
    x.m.write16(x.d(0x200), 0x0f7f); // RC = toward zero
    x.runToHlt();
    expect([x.f.hiOf(x.fpu.stSlot(1)), x.f.loOf(x.fpu.stSlot(1))]).toEqual([0xc90fdaa2, 0x2168c235]);
    expect([x.f.hiOf(x.fpu.stSlot(0)), x.f.loOf(x.fpu.stSlot(0))]).toEqual([0xc90fdaa2, 0x2168c234]);
  });

  it("FDIV with PC=24 rounds 1/3 to single precision and FSQRT gives sqrt(2)", () => {
    const x = machine([
      ...mem(0xd9, 5, 0x200), // FLDCW: PC = 24 bits
      0xd9, 0xe8, ...mem(0xda, 6, 0x204), // FLD1; FIDIV dword [204] = 3
      ...mem(0xd9, 3, 0x208), // FSTP dword [208]
      ...mem(0xd9, 5, 0x20c), // FLDCW: PC = 64
      ...mem(0xdf, 0, 0x210), 0xd9, 0xfa, // FILD word [210] = 2; FSQRT
    ]);
    x.m.write16(x.d(0x200), 0x007f); x.m.write32(x.d(0x204), 3); x.m.write16(x.d(0x20c), 0x037f); x.m.write16(x.d(0x210), 2);
    x.runToHlt();
    expect(x.u32(0x208)).toBe(0x3eaaaaab); // 1/3 in float32, round to nearest
    expect([x.f.hiOf(x.fpu.stSlot(0)), x.f.loOf(x.fpu.stSlot(0))]).toEqual([0xb504f333, 0xf9de6484]);
    expect(x.fpu.sw & PE).toBe(PE);
  });

  it("FBSTP and FBLD round-trip a packed BCD value", () => {
    const x = machine([...mem(0xdf, 4, 0x200), ...mem(0xdf, 6, 0x210)]);
    const bcd = [0x21, 0x43, 0x65, 0x87, 0x09, 0, 0, 0, 0, 0x80];
    x.m.bytes.set(bcd, x.d(0x200));
    x.runToHlt();
    expect(Array.from(x.m.bytes.subarray(x.d(0x210), x.d(0x21a)))).toEqual(bcd);
  });

  it("FNSAVE writes the 94-byte real-mode image and reinitializes; FRSTOR brings it back", () => {
    const x = machine([
      0xd9, 0xe8, 0xd9, 0xeb, // FLD1; FLDPI
      ...mem(0xdd, 6, 0x300), // FNSAVE [300]
      0xdf, 0xe0, 0x89, 0xc3, // FNSTSW AX -> BX (after the implicit FNINIT)
      ...mem(0xdd, 4, 0x300), // FRSTOR [300]
    ]);
    x.runToHlt();
    expect(x.u16(0x300)).toBe(0x037f); // FCW
    expect((x.u16(0x302) >>> 11) & 7).toBe(6); // TOP
    expect(x.u16(0x304)).toBe(0x0fff); // R6 valid, R7 valid, others empty
    // Real-mode format: FIP is the 20-bit linear address of FLDPI; FOP in bits 10:0 of word 4.
    expect(x.u16(0x306) | ((x.u16(0x308) >>> 12) << 16)).toBe(CODE * 16 + 2);
    expect(x.u16(0x308) & 0x7ff).toBe((1 << 8) | 0xeb);
    expect(x.u32(0x30e + 4)).toBe(0xc90fdaa2); // ST0 significand high
    expect(x.u16(0x30e + 10 + 8)).toBe(0x3fff); // ST1 = 1.0 exponent
    expect(x.state().ebx & 0xffff).toBe(0);
    expect([x.st(0), x.st(1)]).toEqual([Math.PI, 1]);
    expect((x.fpu.sw >>> 11) & 7).toBe(6);
  });

  it("FSTENV with a 32-bit operand size uses the 28-byte layout and then masks all exceptions", () => {
    const x = machine([
      ...mem(0xd9, 5, 0x200), // FLDCW 0x0360 (all unmasked)
      0x66, ...mem(0xd9, 6, 0x300), // FNSTENV (28 bytes)
      ...mem(0xd9, 7, 0x220), // FNSTCW [220]
    ]);
    x.m.write16(x.d(0x200), 0x0360);
    x.runToHlt();
    expect(x.u32(0x300)).toBe(0x0360 | 0x40);
    expect(x.u32(0x308)).toBe(0xffff);
    expect(x.u16(0x220)).toBe(0x037f);
  });

  it("FXSAVE stores the SDM table 10-2 image (abridged tags, 16-byte register slots); misalignment is #GP", () => {
    const x = machine([0xd9, 0xe8, 0xd9, 0xee, 0x0f, 0xae, 0x06, 0x00, 0x04, 0xdb, 0xe3, 0x0f, 0xae, 0x0e, 0x00, 0x04]);
    x.runToHlt();
    const b = x.d(0x400);
    expect(x.m.read16(b)).toBe(0x037f);
    expect((x.m.read16(b + 2) >>> 11) & 7).toBe(6);
    expect(x.m.read8(b + 4)).toBe(0xc0); // R6, R7 in use
    expect(x.m.read16(b + 32 + 16 + 8)).toBe(0x3fff); // ST1 = 1.0
    expect(x.m.read32(b + 32 + 4)).toBe(0); // ST0 = +0
    // FXRSTOR after FNINIT brought the stack back.
    expect([x.st(0), x.st(1)]).toEqual([0, 1]);
    const y = machine([0x0f, 0xae, 0x06, 0x08, 0x04]);
    y.cpu.intercepts.exceptionBitmap = 1 << 13;
    expect(y.runToHlt()).toBe(CpuExitReason.Exception);
    expect(y.cpu.exit.vector).toBe(13);
  });

  it("FPTAN pushes 1.0 and FPREM reports quotient bits in C0/C3/C1", () => {
    const x = machine([
      0xd9, 0xee, 0xd9, 0xf2, // FLDZ; FPTAN -> ST0 = 1, ST1 = tan 0 = 0
      ...mem(0xdf, 0, 0x200), ...mem(0xdf, 0, 0x202), // FILD 3; FILD 7
      0xd9, 0xf8, // FPREM: 7 rem 3 = 1, quotient 2 -> C3 (Q1)
    ]);
    x.m.write16(x.d(0x200), 3); x.m.write16(x.d(0x202), 7);
    x.runToHlt();
    expect([x.st(0), x.st(1), x.st(2), x.st(3)]).toEqual([1, 3, 1, 0]);
    expect(x.fpu.sw & (SW_C0 | SW_C1 | SW_C2 | SW_C3)).toBe(SW_C3);
  });

  it("F2XM1, FYL2X, FYL2XP1 and FPATAN give the full 64-bit result, rounded once per RC with C1 (SDM 8.3.10)", () => {
    /** Load the doubles at 200h.. (FLD qword each), run `op`, return ST0 as [sign, exponent, significand hex] and FSW. */
    const calc = (vals: number[], op: number[], cw = 0x037f) => {
      const code = [...mem(0xd9, 5, 0x300)];
      vals.forEach((_, i) => code.push(...mem(0xdd, 0, 0x200 + 8 * i)));
      const x = machine([...code, ...op]);
      x.m.write16(x.d(0x300), cw);
      vals.forEach((v, i) => x.f64(0x200 + 8 * i, v));
      x.runToHlt();
      const p = x.fpu.stSlot(0);
      const sig = x.f.hiOf(p).toString(16).padStart(8, "0") + x.f.loOf(p).toString(16).padStart(8, "0");
      return { v: [x.f.signOf(p), x.f.expOf(p), sig], sw: x.fpu.sw };
    };
    // 2^0.5 - 1 = 0.6A09E667F3BCC908B2FB...h: D413CCCFE7799211 65F6...
    expect(calc([0.5], [0xd9, 0xf0]).v).toEqual([0, 0x3ffd, "d413cccfe7799211"]);
    const up = calc([0.5], [0xd9, 0xf0], 0x0b7f);
    expect(up.v).toEqual([0, 0x3ffd, "d413cccfe7799212"]);
    expect(up.sw & (SW_C1 | PE)).toBe(SW_C1 | PE);
    // 1 * log2(10) is FLDL2T's value, ...8AFE 492B... to nearest; 3 * log2(8) = 9 exactly (no PE).
    expect(calc([1, 10], [0xd9, 0xf1]).v).toEqual([0, 0x4000, "d49a784bcd1b8afe"]);
    const nine = calc([3, 8], [0xd9, 0xf1]);
    expect(nine.v).toEqual([0, 0x4002, "9000000000000000"]);
    expect(nine.sw & PE).toBe(0);
    // FYL2XP1(1, -0.25) = log2(0.75) = FYL2X(1, 0.75).
    expect(calc([1, -0.25], [0xd9, 0xf9]).v).toEqual(calc([1, 0.75], [0xd9, 0xf1]).v);
    // atan2(1, 1) = pi/4 = C90FDAA22168C234 C4C6...: rounds up, C1 = 1; atan2(+0, -1) = pi; atan2(1, -1) = 3pi/4.
    const q = calc([1, 1], [0xd9, 0xf3]);
    expect(q.v).toEqual([0, 0x3ffe, "c90fdaa22168c235"]);
    expect(q.sw & (SW_C1 | PE)).toBe(SW_C1 | PE);
    expect(calc([0, -1], [0xd9, 0xf3]).v).toEqual([0, 0x4000, "c90fdaa22168c235"]);
    expect(calc([1, -1], [0xd9, 0xf3]).v).toEqual([0, 0x4000, "96cbe3f9990e91a8"]);
    expect(calc([-1e-300, 5], [0xd9, 0xf3]).v[0]).toBe(1);
    // Exact zeros, without PE: atan2(-3, +inf) = -0; 0 * log2(0.5) = -0; log2(1 + 0) * 7 = +0.
    for (const [vals, op, sign] of [[[-3, Infinity], [0xd9, 0xf3], 1], [[0, 0.5], [0xd9, 0xf1], 1], [[7, 0], [0xd9, 0xf9], 0]] as const) {
      const z = calc([...vals], [...op]);
      expect(z.v).toEqual([sign, 0, "0000000000000000"]);
      expect(z.sw & PE).toBe(0);
    }
  });

  it("CPUID.1:EDX reports FPU (bit 0) and FXSR (bit 24)", () => {
    const x = machine([0x66, 0xb8, 1, 0, 0, 0, 0x0f, 0xa2]);
    x.runToHlt();
    expect(x.state().edx & 0x01000001).toBe(0x01000001);
  });

  it("saveState/loadState round-trips the unit as plain data", () => {
    const x = machine([0xd9, 0xeb, 0xd9, 0xe8]);
    x.runToHlt();
    const s = JSON.parse(JSON.stringify(x.fpu.saveState()));
    const y = machine([]);
    y.fpu.loadState(s);
    expect([y.st(0), y.st(1)]).toEqual([1, Math.PI]);
    expect(y.fpu.sw).toBe(x.fpu.sw);
    expect(y.fpu.tagWord).toBe(0x0fff);
    expect(() => y.fpu.loadState({ ...s, v: 2 })).toThrow(/version/);
  });

  it("X86State.fpu round-trips through getState/setState as plain data; without the field getState leaves it out", () => {
    const x = machine([
      ...mem(0xd9, 5, 0x200), // FLDCW [200]: RC down, ZM clear
      0xd9, 0xeb, 0xd9, 0xe8, 0xd9, 0xee, // FLDPI, FLD1, FLDZ
      0xdc, 0xf9, // DC F8+i is FDIV ST(i), ST0: ST1 = 1/0, unmasked ZE pending
      0xdd, 0xc0, // FFREE ST0: a waiting instruction, so it reports the pending ZE (#MF) and frees nothing
    ], (s) => { s.cr0 = 0x10 | CR0_NE; });
    x.m.write16(x.d(0x200), (0x037f & ~ZE) | 0x400);
    x.cpu.intercepts.exceptionBitmap = 1 << 16;
    expect(x.runToHlt()).toBe(CpuExitReason.Exception);
    const plain = x.state();
    expect("fpu" in plain).toBe(false);
    const s = resetState();
    s.fpu = { fcw: 0, fsw: 0, ftw: 0, fip: 0, fcs: 0, fdp: 0, fds: 0, fop: 0, regs: [] };
    x.cpu.getState(s);
    const regsBefore = s.fpu!.regs;
    x.cpu.getState(s);
    expect(s.fpu!.regs).toBe(regsBefore); // reused, not reallocated
    const copy = JSON.parse(JSON.stringify(s)) as X86State;
    expect(copy.fpu!.fcw).toBe((0x037f & ~ZE) | 0x400);
    expect(copy.fpu!.fsw & (ZE | SW_ES | SW_B | 0x3800)).toBe(ZE | SW_ES | SW_B | (5 << 11));
    expect(copy.fpu!.ftw).toBe(x.fpu.tagWord);
    expect(copy.fpu!.regs[7]).toEqual({ hi: 0xc90fdaa2, lo: 0x2168c234, se: 0x4000 }); // FLDPI rounded down, in R7
    expect(copy.fpu!.fop).toBe(x.fpu.fop);
    expect(copy.fpu!.fip).toBe(x.fpu.fip);

    const y = machine([0xdd, 0xd1]); // FST ST1 (waiting): the restored pending ZE raises #MF
    const st = y.state();
    st.cr0 = 0x10 | CR0_NE;
    st.fpu = copy.fpu;
    y.cpu.setState(st);
    const back = resetState();
    back.fpu = { fcw: 0, fsw: 0, ftw: 0, fip: 0, fcs: 0, fdp: 0, fds: 0, fop: 0, regs: [] };
    y.cpu.getState(back);
    expect(back.fpu).toEqual(copy.fpu);
    expect([y.st(0), y.st(1), y.st(2)]).toEqual([0, 1, Math.PI]); // the unmasked 1/0 wrote nothing
    expect(y.fpu.stEmpty(3)).toBe(true);
    y.cpu.intercepts.exceptionBitmap = 1 << 16;
    expect(y.runToHlt()).toBe(CpuExitReason.Exception);
    expect(y.cpu.exit.vector).toBe(16);
    // cloneState copies the x87 part deeply.
    const c = cloneState(back);
    c.fpu!.regs[0].hi ^= 1;
    expect(back.fpu!.regs[0].hi).not.toBe(c.fpu!.regs[0].hi);
    expect(() => y.cpu.setState({ ...st, fpu: { ...copy.fpu!, regs: [] } })).toThrow(/8 registers/);
  });
});

describe("FSIN, FCOS, FSINCOS, FPTAN to 64 bits (66-bit pi reduction, SDM Vol. 1 8.3.8)", () => {
  const FSIN = [0xd9, 0xfe], FCOS = [0xd9, 0xff], FSINCOS = [0xd9, 0xfb], FPTAN = [0xd9, 0xf2];
  const RC = { n: 0x037f, d: 0x077f, u: 0x0b7f, z: 0x0f7f } as const;
  /** An 80-bit operand: [sign, biased exponent, 64-bit significand]. */
  type X80 = readonly [number, number, bigint];
  const put = (x: ReturnType<typeof machine>, off: number, [s, e, m]: X80) => {
    x.m.write32(x.d(off), Number(m & 0xffffffffn)); x.m.write32(x.d(off + 4), Number(m >> 32n));
    x.m.write16(x.d(off + 8), (s << 15) | e);
  };
  const get = (x: ReturnType<typeof machine>, i: number): [number, number, string] => {
    const p = x.fpu.stSlot(i);
    return [x.f.signOf(p), x.f.expOf(p), x.f.hiOf(p).toString(16).padStart(8, "0") + x.f.loOf(p).toString(16).padStart(8, "0")];
  };
  /** FLDCW [300]; FLD tbyte [200]; op. */
  const run = (v: X80, op: number[], cw = 0x037f, pre: number[] = []) => {
    const x = machine([...mem(0xd9, 5, 0x300), ...pre, ...mem(0xdb, 5, 0x200), ...op]);
    x.m.write16(x.d(0x300), cw); put(x, 0x200, v);
    x.runToHlt();
    return x;
  };
  const dbl = (n: number): X80 => { // a double as an 80-bit value (normal doubles only)
    const b = new DataView(new ArrayBuffer(8)); b.setFloat64(0, n);
    const bits = b.getBigUint64(0), e = Number((bits >> 52n) & 0x7ffn);
    return [n < 0 ? 1 : 0, e - 1023 + 16383, ((bits & 0xfffffffffffffn) | 0x10000000000000n) << 11n];
  };

  // Expected values: mpmath at 600 bits, reducing |x| by the nearest multiple of pi66/2
  // and rounding by hand to 64 bits per RC; [sign, exp, significand] for RC n z u d.
  const PI6: X80 = [0, 0x3ffe, 0x860a91c16b9b2c23n]; // pi/6 to nearest
  const TABLE: [string, X80, number[], string[]][] = [
    ["sin(pi/6)", PI6, FSIN, ["3ffe 8000000000000000", "3ffd ffffffffffffffff", "3ffe 8000000000000000", "3ffd ffffffffffffffff"]],
    ["cos(1)", dbl(1), FCOS, ["3ffe 8a51407da8345c92", "3ffe 8a51407da8345c91", "3ffe 8a51407da8345c92", "3ffe 8a51407da8345c91"]],
    ["tan(0.5)", dbl(0.5), FPTAN, ["3ffe 8bda7adf9a3a5219", "3ffe 8bda7adf9a3a5218", "3ffe 8bda7adf9a3a5219", "3ffe 8bda7adf9a3a5218"]],
    ["tan(1)", dbl(1), FPTAN, ["3fff c75922e5f71d2dc5", "3fff c75922e5f71d2dc5", "3fff c75922e5f71d2dc6", "3fff c75922e5f71d2dc5"]],
    ["-sin(0.1)", dbl(-0.1), FSIN, ["-3ffb cc75765c5e5961c7", "-3ffb cc75765c5e5961c6", "-3ffb cc75765c5e5961c6", "-3ffb cc75765c5e5961c7"]],
    ["cos(-0.1)", dbl(-0.1), FCOS, ["3ffe feb897cd40be0409", "3ffe feb897cd40be0409", "3ffe feb897cd40be040a", "3ffe feb897cd40be0409"]],
    ["cos(3)", dbl(3), FCOS, ["-3ffe fd7025f42f2e9308", "-3ffe fd7025f42f2e9307", "-3ffe fd7025f42f2e9307", "-3ffe fd7025f42f2e9308"]],
    ["sin(1e18)", dbl(1e18), FSIN, ["-3ffe fe293239d98b5dc4", "-3ffe fe293239d98b5dc4", "-3ffe fe293239d98b5dc4", "-3ffe fe293239d98b5dc5"]],
    ["cos(2^62)", dbl(2 ** 62), FCOS, ["-3ffe b5033c867715345a", "-3ffe b5033c8677153459", "-3ffe b5033c8677153459", "-3ffe b5033c867715345a"]],
  ];
  const fmt = ([s, e, m]: [number, number, string]) => `${s ? "-" : ""}${e.toString(16)} ${m}`;

  it("round once to 64 bits per RC (nearest, zero, up, down) with PE and C1 = rounded up in magnitude", () => {
    for (const [name, v, op, want] of TABLE) {
      (["n", "z", "u", "d"] as const).forEach((rc, i) => {
        const x = run(v, op, RC[rc]);
        const at = op === FPTAN ? 1 : 0;
        expect(`${name} ${rc} ${fmt(get(x, at))}`).toBe(`${name} ${rc} ${want[i]}`);
        const mag = (w: string) => BigInt("0x" + w.split(" ")[1]) + (BigInt("0x" + w.replace("-", "").split(" ")[0]) << 64n);
        const up = mag(want[i]) > mag(want[1]); // the RC=zero result is the truncation
        expect(x.fpu.sw & (PE | SW_C1 | SW_C2 | 0x3f)).toBe(PE | (up ? SW_C1 : 0));
        if (op === FPTAN) expect(get(x, 0)).toEqual([0, 0x3fff, "8000000000000000"]);
      });
    }
  });

  it("reduce with the SDM's 66-bit pi, as Intel hardware: FSIN(FLDPI) = -2^-64, FSIN(double pi) = 1.2246063538223773e-16", () => {
    // FLDPI = C90FDAA22168C235h * 2^-62 and pi66 = C90FDAA22168C234.Ch * 2^-62 differ by
    // exactly 2^-64; with the true pi the result would be -5.0165576e-20.
    const x = machine([0xd9, 0xeb, ...FSIN]);
    x.runToHlt();
    expect(get(x, 0)).toEqual([1, 0x3fff - 64, "8000000000000000"]);
    const y = run(dbl(Math.PI), [...FSIN, ...mem(0xdd, 3, 0x208)]);
    expect(y.getF64(0x208)).toBe(1.2246063538223773e-16); // the value Intel CPUs give (sin is 1.2246467991473532e-16)
    // FPTAN(FLDPI) = tan(2^-64) rounds to +2^-64 (nearest); FCOS(FLDPI) = -1.
    expect(get(run([0, 0x4000, 0xc90fdaa22168c235n], FPTAN), 1)).toEqual([0, 0x3fff - 64, "8000000000000000"]);
    expect(get(run([0, 0x4000, 0xc90fdaa22168c235n], FCOS), 0)).toEqual([1, 0x3fff, "8000000000000000"]);
  });

  it("precision control does not apply (SDM 8.1.5.2): PC=24 and PC=53 still give 64 bits", () => {
    for (const pc of [0, 2]) {
      const x = run(dbl(1), FCOS, (0x037f & ~0x300) | (pc << 8));
      expect(fmt(get(x, 0))).toBe("3ffe 8a51407da8345c92");
    }
  });

  it("|x| >= 2^63 sets C2 and leaves the stack unchanged; just below 2^63 is computed and clears C2", () => {
    for (const op of [FSIN, FCOS, FSINCOS, FPTAN]) {
      const x = run([1, 0x3fff + 63, 0x8000000000000000n], op);
      expect(x.fpu.sw & (SW_C2 | 0x3f)).toBe(SW_C2);
      expect(get(x, 0)).toEqual([1, 0x3fff + 63, "8000000000000000"]);
      expect(x.fpu.stEmpty(1)).toBe(true);
      const y = run([0, 0x3fff + 62, 0xffffffffffffffffn], op); // 2^63 - 1
      expect(y.fpu.sw & (SW_C2 | PE)).toBe(PE);
      expect(y.fpu.stEmpty(op === FSIN || op === FCOS ? 1 : 2)).toBe(true);
    }
    // C2 from an out-of-range FSIN is cleared by the next in-range one.
    const z = machine([...mem(0xdb, 5, 0x200), ...FSIN, 0xd9, 0xe8, ...FSIN]);
    put(z, 0x200, [0, 0x3fff + 64, 0x8000000000000000n]);
    z.runToHlt();
    expect(z.fpu.sw & SW_C2).toBe(0);
    expect(fmt(get(z, 0))).toBe("3ffe d76aa47848677021"); // sin(1)
  });

  it("+-0: FSIN and FPTAN keep the sign, FCOS gives +1, FSINCOS gives cos over sin, all exact (no PE)", () => {
    for (const s of [0, 1]) {
      const zero: X80 = [s, 0, 0n];
      let x = run(zero, FSIN);
      expect(get(x, 0)).toEqual([s, 0, "0000000000000000"]);
      expect(x.fpu.sw & 0x3f).toBe(0);
      x = run(zero, FCOS);
      expect(get(x, 0)).toEqual([0, 0x3fff, "8000000000000000"]);
      x = run(zero, FPTAN);
      expect([get(x, 0), get(x, 1)]).toEqual([[0, 0x3fff, "8000000000000000"], [s, 0, "0000000000000000"]]);
      x = run(zero, FSINCOS);
      expect([get(x, 0), get(x, 1)]).toEqual([[0, 0x3fff, "8000000000000000"], [s, 0, "0000000000000000"]]);
      expect(x.fpu.sw & (0x3f | SW_C1 | SW_C2)).toBe(0);
    }
  });

  it("FSINCOS leaves sin in ST1 and cos in ST0 (C1 from cos); FPTAN's C1 is tan's round-up", () => {
    const x = run(dbl(1), FSINCOS, RC.u);
    expect([fmt(get(x, 0)), fmt(get(x, 1))]).toEqual(["3ffe 8a51407da8345c92", "3ffe d76aa47848677021"]);
    expect(x.fpu.sw & (SW_C1 | PE)).toBe(SW_C1 | PE);
    const y = run(dbl(1), FSINCOS, RC.z);
    expect([fmt(get(y, 0)), fmt(get(y, 1))]).toEqual(["3ffe 8a51407da8345c91", "3ffe d76aa47848677020"]);
    expect(y.fpu.sw & (SW_C1 | PE)).toBe(PE);
    expect(run(dbl(0.5), FPTAN).fpu.sw & SW_C1).toBe(SW_C1); // tan(0.5) ...5219 rounds up
  });

  it("tiny arguments round the right way: sin x and tan x are x to nearest; sin toward zero is just below, tan up just above", () => {
    const t: X80 = [0, 0x3fff - 40, 0x8000000000000000n]; // 2^-40
    expect(fmt(get(run(t, FSIN), 0))).toBe("3fd7 8000000000000000");
    expect(fmt(get(run(t, FSIN, RC.z), 0))).toBe("3fd6 ffffffffffffffff");
    expect(fmt(get(run(t, FPTAN, RC.u), 1))).toBe("3fd7 8000000000000001");
    expect(fmt(get(run(t, FCOS, RC.d), 0))).toBe("3ffe ffffffffffffffff");
    expect(fmt(get(run(t, FCOS), 0))).toBe("3fff 8000000000000000");
    // 2^-100: the series' first correction is beyond the 192 bits kept, the direction still counts.
    const u: X80 = [0, 0x3fff - 100, 0x8000000000000000n];
    expect(fmt(get(run(u, FSIN, RC.z), 0))).toBe("3f9a ffffffffffffffff");
    expect(fmt(get(run(u, FSIN, RC.u), 0))).toBe("3f9b 8000000000000000");
    expect(fmt(get(run(u, FCOS, RC.d), 0))).toBe("3ffe ffffffffffffffff");
    expect(fmt(get(run(u, FCOS, RC.u), 0))).toBe("3fff 8000000000000000");
    expect(fmt(get(run(u, FPTAN, RC.u), 1))).toBe("3f9b 8000000000000001");
    expect(fmt(get(run(u, FPTAN, RC.z), 1))).toBe("3f9b 8000000000000000");
    // A denormal: #D (masked) and a tiny inexact sine (UE, PE); unmasked DM stores nothing.
    const dn: X80 = [1, 0, 0x0000000000001234n];
    const x = run(dn, FSIN);
    expect(get(x, 0)).toEqual([1, 0, "0000000000001234"]);
    expect(x.fpu.sw & 0x3f).toBe(DE | UE | PE);
    const y = run(dn, FSIN, 0x037f & ~DE);
    expect(y.fpu.sw & (DE | SW_ES)).toBe(DE | SW_ES);
    expect(get(y, 0)).toEqual([1, 0, "0000000000001234"]); // untouched
    expect(y.fpu.sw & PE).toBe(0);
  });

  it("+-inf is #IA (indefinite, FPTAN/FSINCOS push a second); NaNs propagate, an SNaN quieted with IE", () => {
    for (const op of [FSIN, FCOS, FSINCOS, FPTAN]) {
      const x = run([1, 0x7fff, 0x8000000000000000n], op);
      expect(x.fpu.sw & 0x3f).toBe(IE);
      expect(get(x, 0)).toEqual([1, 0x7fff, "c000000000000000"]);
      const n = run([0, 0x7fff, 0xc000000000000abcn], op);
      expect(n.fpu.sw & 0x3f).toBe(0);
      expect(get(n, 0)).toEqual([0, 0x7fff, "c000000000000abc"]);
      const sn = run([0, 0x7fff, 0x8000000000000abcn], op);
      expect(sn.fpu.sw & 0x3f).toBe(IE);
      expect(get(sn, 0)).toEqual([0, 0x7fff, "c000000000000abc"]);
      // Unmasked IE: nothing written, nothing pushed.
      const u = run([0, 0x7fff, 0x8000000000000000n], op, 0x037f & ~IE);
      expect(get(u, 0)).toEqual([0, 0x7fff, "8000000000000000"]);
      expect(u.fpu.stEmpty(1)).toBe(true);
    }
  });

  it("FPTAN and FSINCOS with a full stack: stack overflow (IE|SF, C1=1), masked response the indefinite twice", () => {
    for (const op of [FPTAN, FSINCOS]) {
      const x = machine([...Array(8).fill([0xd9, 0xe8]).flat(), ...op]); // FLD1 x 8
      x.runToHlt();
      expect(x.fpu.sw & (IE | SW_SF | SW_C1)).toBe(IE | SW_SF | SW_C1);
      expect([get(x, 0), get(x, 1)]).toEqual([[1, 0x7fff, "c000000000000000"], [1, 0x7fff, "c000000000000000"]]);
      expect(x.st(2)).toBe(1);
    }
  });

  // An independent reference: fixed point with W fraction bits, pi by Machin's formula,
  // x moved by q (pi - pi66)/2 (the 66-bit pi's reduction error) then reduced mod 2 pi
  // and put through the Taylor series of sin and cos on [-pi, pi].
  const W = 420n;
  const atanInv = (n: bigint, w: bigint) => { let sum = 0n, t = (1n << w) / n, k = 1n, sg = 1n; while (t !== 0n) { sum += sg * (t / k); t /= n * n; k += 2n; sg = -sg; } return sum; };
  const PI_W = (16n * atanInv(5n, W + 16n) - 4n * atanInv(239n, W + 16n)) >> 16n;
  const PI66_W = 0xc90fdaa22168c234cn << (W - 66n);
  const sinCos = (b: bigint): [bigint, bigint] => {
    const b2 = (b * b) >> W;
    let s = 0n, c = 0n, t = b;
    for (let n = 1n; t !== 0n; n += 2n) { s += t; t = -((t * b2) >> W) / ((n + 1n) * (n + 2n)); }
    t = 1n << W;
    for (let n = 0n; t !== 0n; n += 2n) { c += t; t = -((t * b2) >> W) / ((n + 1n) * (n + 2n)); }
    return [s, c];
  };
  const reference = (fn: "sin" | "cos" | "tan", [sx, ex, m]: X80): bigint => {
    const a = m << BigInt(ex - 16383 - 63) + W; // |x| in fixed point (ex >= 16383 - 60)
    const q = (2n * a + PI66_W / 2n) / PI66_W; // nearest multiple of pi66/2
    const a2 = a + (q * (PI_W - PI66_W)) / 2n;
    const k = (a2 + PI_W) / (2n * PI_W);
    const [s, c] = sinCos(a2 - k * 2n * PI_W);
    const sgn = sx ? -1n : 1n;
    return fn === "sin" ? sgn * s : fn === "cos" ? c : (sgn * (s << W)) / c;
  };
  /** Error in ulps of the result (sign, exp, sig) against ref. */
  const ulpErr = ([s, e, sig]: [number, number, string], ref: bigint): number => {
    const shift = BigInt(e - 16383 - 63) + W;
    const v = (s ? -1n : 1n) * (BigInt("0x" + sig) << shift);
    return Number(v - ref) / 2 ** Number(shift);
  };

  it("200 random arguments per function and RC (2^-20 <= |x| < 2^62, 40 of them next to k pi/2): correctly rounded against a 420-bit reference", () => {
    const r = rng(0x5eed7), N = 200;
    const args: X80[] = [];
    for (let i = 0; i < N; i++) {
      const m = (BigInt(r()) << 32n) | BigInt(r()) | 0x8000000000000000n;
      args.push([r() & 1, 16383 - 20 + (r() % 82), m]);
    }
    // And 40 next to multiples of pi66/2 (k pi66/2 truncated to 64 bits): sin/cos/tan near 0 or a pole.
    for (let i = 0; i < 40; i++) {
      const v = BigInt(1 + (r() % 0xfffffff)) * 0xc90fdaa22168c234cn; // times 2^-67
      const len = v.toString(2).length;
      args[i] = [r() & 1, 16383 + len - 68, v >> BigInt(len - 64)];
    }
    for (const [fn, op, at] of [["sin", FSIN, 0], ["cos", FCOS, 0], ["tan", FPTAN, 1]] as const) {
      for (const rc of ["n", "z", "u", "d"] as const) {
        // One machine: FLD tbyte [i*10]; op; FSTP tbyte [0x1000 + i*10]; (FSTP the 1.0 for FPTAN first).
        const code = [...mem(0xd9, 5, 0x3000)];
        for (let i = 0; i < N; i++) {
          code.push(...mem(0xdb, 5, i * 10), ...op);
          if (at === 1) code.push(0xdd, 0xd8); // FSTP ST0
          code.push(...mem(0xdb, 7, 0x1000 + i * 10));
        }
        const x = machine(code);
        x.m.write16(x.d(0x3000), RC[rc]);
        args.forEach((v, i) => put(x, i * 10, v));
        x.cpu.run(N * 4 + 10);
        let worst = 0;
        args.forEach((v, i) => {
          const o = x.d(0x1000 + i * 10), se = x.m.read16(o + 8);
          const sig = x.m.read32(o + 4).toString(16).padStart(8, "0") + x.m.read32(o).toString(16).padStart(8, "0");
          const err = ulpErr([se >> 15, se & 0x7fff, sig], reference(fn, v));
          const neg = (se >> 15) === 1;
          if (rc === "n") expect(Math.abs(err)).toBeLessThanOrEqual(0.5);
          else {
            expect(Math.abs(err)).toBeLessThan(1);
            // Directed: down (or zero for positive results) lands at or below the reference.
            const below = rc === "d" || (rc === "z" && !neg);
            expect(below ? err <= 0 : err >= 0).toBe(true);
          }
          worst = Math.max(worst, Math.abs(err));
        });
        expect(worst).toBeGreaterThan(0); // the comparison saw inexact results
      }
    }
  });
});

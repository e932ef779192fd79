// XSAVE feature set of the core, x87 component only (SDM Vol. 1 ch. 13; Vol. 2 XGETBV,
// XSETBV, XSAVE, XRSTOR, CPUID leaf 0Dh): CPUID bits, CR4.OSXSAVE, XCR0 and its checks,
// the XSETBV intercept's place among the faults (SDM 26.1.1, APM 15.9), and the XSAVE
// area: the legacy region as FXSAVE writes it plus the header.
import { describe, expect, it } from "vitest";
import { resetState } from "./state.js";
import { CpuExitReason, InsnIntercept } from "./types.js";
import type { X86State } from "./types.js";
import { dataMachine } from "./testing.js";

// dataMachine: CS:0 at 0x10000, DS:0 at 0x20000 (64-byte aligned).
const CR4_OSXSAVE = 0x40000, CR0_EM = 0x4, CR0_TS = 0x8;
const HLT = 0xf4;

// Real-mode encodings (16-bit addressing).
const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const movEax = (v: number) => [0x66, 0xb8, ...le32(v)];
const movEcx = (v: number) => [0x66, 0xb9, ...le32(v)];
const movEdx = (v: number) => [0x66, 0xba, ...le32(v)];
const movBx = (v: number) => [0xbb, v & 0xff, v >>> 8];
const movSi = (v: number) => [0xbe, v & 0xff, v >>> 8];
const CPUID = [0x0f, 0xa2];
const XGETBV = [0x0f, 0x01, 0xd0];
const XSETBV = [0x0f, 0x01, 0xd1];
const XSAVE_BX = [0x0f, 0xae, 0x27]; // 0F AE /4, [bx]
const XRSTOR_BX = [0x0f, 0xae, 0x2f]; // 0F AE /5, [bx]
const FXSAVE_SI = [0x0f, 0xae, 0x04]; // 0F AE /0, [si]
const FXRSTOR_SI = [0x0f, 0xae, 0x0c];
const FLD1 = [0xd9, 0xe8], FLDPI = [0xd9, 0xeb], FNINIT = [0xdb, 0xe3];
const MOV_EAX_CR4 = [0x0f, 0x20, 0xe0], MOV_CR4_EAX = [0x0f, 0x22, 0xe0];

function machine(code: number[], init?: (s: X86State) => void) {
  const { m, cpu, state, d } = dataMachine(code, (s) => { s.cr4 = CR4_OSXSAVE; init?.(s); });
  const bytes = (off: number, n: number) => Array.from(m.bytes.subarray(d(off), d(off) + n));
  /** Run to HLT; a fault in `faults` stops with its vector instead. */
  const run = (faults = 0): number => {
    cpu.intercepts.exceptionBitmap = faults;
    const r = cpu.run(1000);
    return r === CpuExitReason.Exception ? cpu.exit.vector : r === CpuExitReason.Halted ? -1 : -100 - r;
  };
  return { m, cpu, state, d, bytes, run };
}
const FAULTS = (1 << 6) | (1 << 7) | (1 << 13);

describe("CPUID for XSAVE", () => {
  it("leaf 0 reaches 0Dh; leaf 1 ECX has XSAVE, and OSXSAVE exactly while CR4.OSXSAVE is set", () => {
    const x = machine([...movEax(0), ...CPUID], (s) => { s.cr4 = 0; });
    x.run();
    expect(x.state().eax).toBe(0xd);
    const off = machine([...movEax(1), ...CPUID], (s) => { s.cr4 = 0; });
    off.run();
    expect(off.state().ecx).toBe(1 << 26);
    // MOV to CR4 sets OSXSAVE (supported), and CPUID follows it.
    const on = machine([...MOV_EAX_CR4, 0x66, 0x0d, ...le32(CR4_OSXSAVE), ...MOV_CR4_EAX, ...movEax(1), ...CPUID], (s) => { s.cr4 = 0; });
    expect(on.run(FAULTS)).toBe(-1);
    expect(on.state().cr4).toBe(CR4_OSXSAVE);
    expect(on.state().ecx).toBe((1 << 26) | (1 << 27));
  });

  it("leaf 0Dh: sub-leaf 0 reports XCR0 = x87 only and 576-byte areas; sub-leaf 1 and 2 are zeros", () => {
    const regs = (sub: number) => {
      const x = machine([...movEax(0xd), ...movEcx(sub), ...movEdx(0x5a5a), ...movBx(0x1234), ...CPUID]);
      x.run();
      const s = x.state();
      return [s.eax, s.ebx, s.ecx, s.edx];
    };
    expect(regs(0)).toEqual([1, 576, 576, 0]);
    expect(regs(1)).toEqual([0, 0, 0, 0]);
    expect(regs(2)).toEqual([0, 0, 0, 0]);
  });

  it("with XSAVE masked out of CPUID, leaf 1 and 0Dh report nothing and CR4.OSXSAVE is reserved (#GP)", () => {
    const x = machine([...movEax(1), ...CPUID], (s) => { s.cr4 = 0; });
    x.cpu.cpuidMask.leaf1Ecx = ~(1 << 26);
    x.run();
    expect(x.state().ecx).toBe(0);
    const d = machine([...movEax(0xd), ...movEcx(0), ...CPUID], (s) => { s.cr4 = 0; });
    d.cpu.cpuidMask.leaf1Ecx = ~(1 << 26);
    d.run();
    expect([d.state().eax, d.state().ebx, d.state().ecx]).toEqual([0, 0, 0]);
    const c = machine([...movEax(CR4_OSXSAVE), ...MOV_CR4_EAX], (s) => { s.cr4 = 0; });
    c.cpu.cpuidMask.leaf1Ecx = ~(1 << 26);
    expect(c.run(FAULTS)).toBe(13);
    expect(c.state().cr4).toBe(0);
  });
});

describe("XGETBV / XSETBV", () => {
  it("XGETBV reads XCR0 = 1 after reset; ECX != 0 is #GP(0); without CR4.OSXSAVE both are #UD", () => {
    const x = machine([...movEdx(0xffff), ...movEcx(0), ...XGETBV]);
    expect(x.run(FAULTS)).toBe(-1);
    expect([x.state().eax, x.state().edx]).toEqual([1, 0]);
    expect(machine([...movEcx(1), ...XGETBV]).run(FAULTS)).toBe(13);
    expect(machine([...movEcx(0), ...XGETBV], (s) => { s.cr4 = 0; }).run(FAULTS)).toBe(6);
    expect(machine([...movEax(1), ...movEcx(0), ...movEdx(0), ...XSETBV], (s) => { s.cr4 = 0; }).run(FAULTS)).toBe(6);
  });

  it("XSETBV loads XCR0 = 1; a bit other than x87 (SSE), bit 0 clear, EDX != 0 or ECX != 0 is #GP(0)", () => {
    const ok = machine([...movEax(1), ...movEcx(0), ...movEdx(0), ...XSETBV, ...XGETBV]);
    expect(ok.run(FAULTS)).toBe(-1);
    expect(ok.state().eax).toBe(1);
    for (const [eax, ecx, edx] of [[3, 0, 0], [0, 0, 0], [2, 0, 0], [1, 0, 1], [1, 1, 0], [0x80000001, 0, 0]]) {
      const x = machine([...movEax(eax!), ...movEcx(ecx!), ...movEdx(edx!), ...XSETBV]);
      expect(x.run(FAULTS), `EDX:EAX ${edx}:${eax} ECX ${ecx}`).toBe(13);
      expect(x.cpu.exit.errorCode).toBe(0);
      expect(x.cpu.xcr0).toBe(1);
    }
  });

  it("XSETBV at CPL 3 (virtual-8086 mode) is #GP(0) even when intercepted; XGETBV works there", () => {
    const v86 = (s: X86State) => { s.cr0 |= 1; s.eflags |= 0x20000; };
    const x = machine([...movEax(1), ...movEcx(0), ...movEdx(0), ...XSETBV], v86);
    x.cpu.intercepts.insn = InsnIntercept.Xsetbv;
    expect(x.run(FAULTS)).toBe(13);
    expect(x.state().eip).toBe(18); // at XSETBV
    // XGETBV runs; the #GP(0) then comes from the HLT after it (privileged in v86 mode).
    const g = machine([...movEcx(0), ...XGETBV], v86);
    expect(g.run(FAULTS)).toBe(13);
    expect(g.state().eip).toBe(9);
    expect(g.state().eax).toBe(1);
  });

  it("the XSETBV intercept stops after #UD and the CPL check but before the operand checks, with nothing changed", () => {
    // A bad value (EAX = 3) still exits: the VMM sees the attempt (SDM 26.1.1, APM 15.9).
    const x = machine([...movEax(3), ...movEcx(0), ...movEdx(0), ...XSETBV]);
    x.cpu.intercepts.insn = InsnIntercept.Xsetbv;
    x.cpu.intercepts.exceptionBitmap = FAULTS;
    expect(x.cpu.run(100)).toBe(CpuExitReason.Instruction);
    expect([x.cpu.exit.insn, x.cpu.exit.instrLen]).toEqual([InsnIntercept.Xsetbv, 3]);
    expect(x.state().eip).toBe(18);
    expect(x.cpu.xcr0).toBe(1);
    // Without CR4.OSXSAVE the #UD wins over the intercept.
    const u = machine([...XSETBV], (s) => { s.cr4 = 0; });
    u.cpu.intercepts.insn = InsnIntercept.Xsetbv;
    expect(u.run(FAULTS)).toBe(6);
  });

  it("X86State.xcr0 round-trips through setState/getState, and getState leaves an object without it alone", () => {
    const x = machine([]);
    const s = x.state();
    expect("xcr0" in s).toBe(false);
    s.xcr0 = 1;
    x.cpu.setState(s);
    const o = resetState(); o.xcr0 = 0;
    x.cpu.getState(o);
    expect(o.xcr0).toBe(1);
    // Bit 0 cannot be cleared; unsupported bits are not loaded.
    s.xcr0 = 6;
    x.cpu.setState(s);
    expect(x.cpu.xcr0).toBe(1);
  });
});

describe("XSAVE / XRSTOR (x87 component)", () => {
  /** FLD1, FLDPI; FXSAVE to DS:0x400 (the reference image); XSAVE to DS:[bx]. */
  const saveBoth = (bx: number, eax: number, pre = 0xaa) => {
    const x = machine([...FLD1, ...FLDPI, ...movSi(0x400), ...FXSAVE_SI, ...movBx(bx), ...movEax(eax), ...movEdx(0xffffffff), ...XSAVE_BX]);
    x.m.bytes.fill(pre, x.d(bx), x.d(bx) + 576);
    x.m.bytes.fill(pre, x.d(0x400), x.d(0x400) + 512);
    return x;
  };

  it("XSAVE writes the x87 part of the legacy region as FXSAVE does, sets XSTATE_BV[0], and touches nothing else", () => {
    const x = saveBoth(0, 0xffffffff);
    expect(x.run(FAULTS)).toBe(-1);
    // Bytes 0-23 and 32-159: the FXSAVE image byte for byte.
    expect(x.bytes(0, 24)).toEqual(x.bytes(0x400, 24));
    expect(x.bytes(32, 128)).toEqual(x.bytes(0x400 + 32, 128));
    expect(x.m.read16(x.d(0))).toBe(0x037f);
    expect(x.m.read16(x.d(32 + 8))).toBe(0x4000); // ST0 = pi, exponent 0x4000
    // MXCSR (24-31) and the rest of the legacy region belong to SSE: untouched.
    expect(x.bytes(24, 8)).toEqual(Array(8).fill(0xaa));
    expect(x.bytes(160, 352)).toEqual(Array(352).fill(0xaa));
    // Header: XSTATE_BV bit 0 set, other bits (not in RFBM) and the rest of the header kept.
    expect(x.m.read8(x.d(512))).toBe(0xab);
    expect(x.bytes(513, 63)).toEqual(Array(63).fill(0xaa));
  });

  it("XSAVE with RFBM = 0 (EAX bit 0 clear) writes nothing", () => {
    const x = saveBoth(0, 0xfffffffe);
    expect(x.run(FAULTS)).toBe(-1);
    expect(x.bytes(0, 576)).toEqual(Array(576).fill(0xaa));
  });

  it("XSAVE/XRSTOR need a 64-byte aligned operand (#GP(0)), CR4.OSXSAVE (#UD), CR0.TS clear (#NM); CR0.EM does not matter", () => {
    const x = saveBoth(0x20, 0xffffffff, 0); // 16- but not 64-byte aligned: FXSAVE works, XSAVE faults
    expect(x.run(FAULTS)).toBe(13);
    expect(x.cpu.exit.errorCode).toBe(0);
    expect(x.bytes(0x20, 576)).toEqual(Array(576).fill(0));
    const r = machine([...movBx(0x20), ...movEax(1), ...XRSTOR_BX]);
    expect(r.run(FAULTS)).toBe(13);
    expect(machine([...movBx(0), ...XSAVE_BX], (s) => { s.cr4 = 0; }).run(FAULTS)).toBe(6);
    expect(machine([...movBx(0), ...XRSTOR_BX], (s) => { s.cr4 = 0; }).run(FAULTS)).toBe(6);
    expect(machine([...movBx(0), ...movEax(1), ...XSAVE_BX], (s) => { s.cr0 |= CR0_TS; }).run(FAULTS)).toBe(7);
    const em = machine([...movBx(0), ...movEax(1), ...XSAVE_BX], (s) => { s.cr0 |= CR0_EM; });
    expect(em.run(FAULTS)).toBe(-1);
    expect(em.m.read16(em.d(0))).toBe(0x037f);
    // The 576-byte area must fit the segment limit.
    expect(machine([...movBx(0xfe00), ...movEax(1), ...XSAVE_BX]).run(FAULTS)).toBe(13);
  });

  it("XRSTOR with XSTATE_BV[0] = 1 loads the x87 state XSAVE stored", () => {
    const x = machine([...FLD1, ...FLDPI, ...movBx(0), ...movEax(1), ...movEdx(0), ...XSAVE_BX,
      ...FNINIT, ...XRSTOR_BX, ...movSi(0x400), ...FXSAVE_SI]);
    expect(x.run(FAULTS)).toBe(-1);
    expect(x.cpu.fpu.sw >>> 11 & 7).toBe(6);
    expect(x.bytes(0x400, 24)).toEqual(x.bytes(0, 24));
    expect(x.bytes(0x400 + 32, 128)).toEqual(x.bytes(32, 128));
  });

  it("XRSTOR with XSTATE_BV[0] = 0 puts x87 in its initial configuration (FNINIT state, ST0-ST7 zero)", () => {
    // Load a non-initial image with FXRSTOR first, then XRSTOR an area whose XSTATE_BV is 0.
    const x = machine([...FLD1, ...FLDPI, ...movSi(0x400), ...FXSAVE_SI, ...FXRSTOR_SI, ...movBx(0x800), ...movEax(1), ...movEdx(0), ...XRSTOR_BX]);
    x.m.bytes.fill(0x55, x.d(0x800), x.d(0x800) + 512); // garbage legacy region: must not be loaded
    x.m.bytes.fill(0, x.d(0x800 + 512), x.d(0x800 + 576));
    expect(x.run(FAULTS)).toBe(-1);
    const fpu = x.cpu.fpu;
    expect([fpu.fcw, fpu.sw, fpu.empty, fpu.fip, fpu.fdp, fpu.fop, fpu.fcs, fpu.fds]).toEqual([0x037f, 0, 0xff, 0, 0, 0, 0, 0]);
    expect(Array.from(fpu.f.v.subarray(0, 24))).toEqual(Array(24).fill(0));
  });

  it("XRSTOR with RFBM[0] = 0 leaves x87 alone whatever XSTATE_BV says", () => {
    const x = machine([...FLD1, ...movBx(0x800), ...movEax(0), ...XRSTOR_BX]);
    expect(x.run(FAULTS)).toBe(-1);
    expect(x.cpu.fpu.sw >>> 11 & 7).toBe(7);
    expect(x.cpu.fpu.empty).toBe(0x7f);
  });

  it("XRSTOR is #GP(0) for an XSTATE_BV bit outside XCR0 or non-zero header bytes 23:8 (XCOMP_BV), with x87 unchanged", () => {
    const cases: [number, number][] = [[512, 2], [519, 0x80], [520, 1], [527, 0x80], [535, 1]];
    for (const [at, v] of cases) {
      const x = machine([...FLD1, ...movBx(0x800), ...movEax(1), ...XRSTOR_BX]);
      x.m.bytes.fill(0, x.d(0x800), x.d(0x800) + 576);
      x.m.write8(x.d(0x800 + 512), 1);
      x.m.write8(x.d(0x800 + at), x.m.read8(x.d(0x800 + at)) | v);
      expect(x.run(FAULTS), `byte ${at}`).toBe(13);
      expect(x.cpu.fpu.empty, `byte ${at}`).toBe(0x7f); // ST0 = 1.0 still there
    }
    // Bytes 63:24 of the header are not checked by the standard form.
    const ok = machine([...FLD1, ...movBx(0x800), ...movEax(1), ...XRSTOR_BX]);
    ok.m.bytes.fill(0, ok.d(0x800), ok.d(0x800) + 576);
    ok.m.write8(ok.d(0x800 + 512), 1);
    ok.m.write8(ok.d(0x800 + 536), 0xff);
    ok.m.write16(ok.d(0x800), 0x037f);
    expect(ok.run(FAULTS)).toBe(-1);
    expect(ok.cpu.fpu.empty).toBe(0xff);
  });
});

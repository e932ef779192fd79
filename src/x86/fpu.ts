// The x87 floating-point unit of a P6-class core (SDM Vol. 1 ch. 8, Vol. 2 "F*"):
// the 8-register stack with TOP and tags, control/status words, last-instruction
// pointers, and every ESC (D8-DF) instruction of the Pentium Pro, plus WAIT and
// FXSAVE/FXRSTOR (0F AE /0 /1). Arithmetic is the exact software 80-bit engine in
// float80.ts; registers are its slots 0-7 (physical R0-R7), scratch slots follow.
//
// Exceptions: the masked responses of SDM 4.9.1 / 8.5; an unmasked one sets ES and
// B and leaves the destination (and TOP) as SDM 8.5 says; it is reported on the next
// waiting x87 instruction or WAIT: #MF when CR0.NE=1, else the FERR# callback (the
// platform wires it to IRQ 13, SDM D.2). CR0.EM/TS -> #NM per SDM table 2-2 (the
// core checks it before decoding the operand; exec() checks again).
//
// Not emulated / precision notes:
// - F2XM1 (|x| <= 1), FYL2X, FYL2XP1 (|x| < 1), FPATAN, FSIN, FCOS, FSINCOS and FPTAN
//   are computed on 192-bit BigInt significands (float80.ts big floats) and rounded
//   once per RC (PC does not apply, SDM 8.1.5.2): the correctly rounded 64-bit result
//   in practice (the hardware promises < 1 ulp, SDM 8.3.10). The trigonometric ones
//   reduce |x| < 2^63 exactly by the x87's internal 66-bit pi (SDM 8.3.8), as Intel
//   hardware does, so results near multiples of pi match the hardware, not the true
//   sine (FSIN(FLDPI) = -2^-64). Zeros, infinities and out-of-domain arguments of
//   F2XM1/FYL2X/FYL2XP1/FPATAN take the float64 path in transc().
// - FISTTP is SSE3 (#UD on a P6). MMX state is not modelled (FXSAVE writes the x87
//   part of the image; MXCSR and the XMM area are left as they are: no SSE).
// - Reserved fields of the environment images are written as 0.
import { BIG_P, Cls, DE, F80, IE, OE, PE, UE, ZE, bigAdd, bigAtan2, bigExp2m1, bigInt, bigLog2, bigLog2p1, bigMul, bigPi, bigCos, bigSin, bigTan, bigTrigReduce } from "./float80.js";
import type { Big } from "./float80.js";
import type { X87State } from "./types.js";

/** Status word bits (SDM 8.1.3). */
const SW_SF = 0x40, SW_ES = 0x80, SW_C0 = 0x100, SW_C1 = 0x200, SW_C2 = 0x400, SW_C3 = 0x4000, SW_B = 0x8000;
const SW_CC = SW_C0 | SW_C1 | SW_C2 | SW_C3;
/** Exception vectors (SDM table 6-1). */
const UD = 6, NM = 7, MF = 16;
/** CR0 bits (SDM 2.5). */
const CR0_MP = 0x2, CR0_EM = 0x4, CR0_TS = 0x8, CR0_NE = 0x20;
/** EFLAGS bits written by FCOMI and read by FCMOVcc. */
const CF = 0x1, PF = 0x4, ZF = 0x40;

// Scratch slots after the 8 registers.
const S_A = 8, S_B = 9, S_R = 10, S_R2 = 11, S_T = 12;

/** What the core provides to an ESC instruction. Memory offsets are relative to the instruction's memory operand. */
export interface FpuHost {
  cr0(): number;
  /** 32-bit operand size: selects the 28-byte (else 14-byte) environment layout. */
  op32(): boolean;
  /** Real-address or virtual-8086 mode: selects the real-mode environment layout (SDM 8.1.10). */
  realMode(): boolean;
  /** CS selector and offset of the current instruction. */
  cs(): number; ip(): number;
  /** Segment selector and offset of the memory operand. */
  ds(): number; dp(): number;
  /** Segment-limit (and later paging) checks of the whole operand before any access; faults if outside. */
  checkOperand(size: number): void;
  read(disp: number, size: 1 | 2 | 4): number;
  write(disp: number, size: 1 | 2 | 4, value: number): void;
  /** EFLAGS (FCMOVcc) and setting ZF/PF/CF with OF/SF/AF cleared (FCOMI). */
  flags(): number;
  setCmpFlags(zpc: number): void;
  /** AX for FNSTSW AX. */
  setAx(v: number): void;
  /** Raise an exception (no error code); does not return. */
  fault(vector: number): never;
}

/** Saved x87 state: plain and JSON-safe; the X86State.fpu part with a version (registers in physical order R0-R7). */
export interface FpuState extends X87State {
  readonly v: 1;
}

/** Thrown by fromState for malformed input. */
export class FpuStateError extends Error {
  constructor(msg: string) { super(`FpuState: ${msg}`); this.name = "FpuStateError"; }
}

// Constants as 64-bit significands plus the rounding direction of the exact value
// beyond bit 64 (SDM 8.3.8: rounded per RC). [exp, hi, lo, roundUpOnNearest]
const CONSTS: readonly (readonly number[])[] = [
  [0x3fff, 0x80000000, 0x00000000, 0, 0], // FLD1 (exact)
  [0x4000, 0xd49a784b, 0xcd1b8afe, 0, 1], // FLDL2T log2(10) = ...8AFE 492B...
  [0x3fff, 0xb8aa3b29, 0x5c17f0bb, 1, 1], // FLDL2E log2(e) = ...F0BB BE87...
  [0x4000, 0xc90fdaa2, 0x2168c234, 1, 1], // FLDPI = ...C234 C4C6...
  [0x3ffd, 0x9a209a84, 0xfbcff798, 1, 1], // FLDLG2 log10(2) = ...F798 8F89...
  [0x3ffe, 0xb17217f7, 0xd1cf79ab, 1, 1], // FLDLN2 ln(2) = ...79AB C9E3...
];

export class X87 {
  /** The number engine; slots 0-7 are the physical registers R0-R7. */
  readonly f = new F80(16);
  fcw = 0x037f;
  /** Status word without TOP (bits 13:11 are kept in `top`). */
  fsw = 0;
  top = 0;
  /** Bit i set: physical register i is empty. */
  empty = 0xff;
  fip = 0; fcs = 0; fdp = 0; fds = 0; fop = 0;
  /** FERR# output (CR0.NE = 0): the platform raises IRQ 13 while asserted (SDM D.2.1). */
  onFerr: (asserted: boolean) => void = () => {};
  private ferr = false;
  private readonly bcd = new Uint8Array(10);

  constructor() { this.applyCw(); }

  // ---------------------------------------------------------------- state

  /** Status word as FSTSW stores it, TOP included. */
  get sw(): number { return ((this.fsw & ~0x3800) | (this.top << 11)) & 0xffff; }

  /** FNINIT (SDM Vol. 2 FINIT): also the state after RESET here. */
  init(): void {
    this.fcw = 0x037f; this.fsw = 0; this.top = 0; this.empty = 0xff;
    this.fip = 0; this.fcs = 0; this.fdp = 0; this.fds = 0; this.fop = 0;
    this.applyCw();
    this.setFerr(false);
  }

  private applyCw(): void {
    const f = this.f;
    f.masks = this.fcw & 0x3f;
    f.rc = (this.fcw >>> 10) & 3;
    const pc = (this.fcw >>> 8) & 3;
    f.pc = pc === 0 ? 24 : pc === 2 ? 53 : 64; // PC=1 is reserved: treated as 64
  }
  /** ES/B follow the unmasked exception flags (SDM 8.1.3.? ES "error summary"). */
  private syncEs(): void {
    if ((this.fsw & 0x3f & ~this.fcw) !== 0) this.fsw |= SW_ES | SW_B;
    else { this.fsw &= ~(SW_ES | SW_B); this.setFerr(false); }
  }
  private setFerr(v: boolean): void {
    if (this.ferr !== v) { this.ferr = v; this.onFerr(v); }
  }

  /** Tag of physical register p (SDM 8.1.7): 0 valid, 1 zero, 2 special, 3 empty. */
  tagOf(p: number): number {
    if ((this.empty >>> p) & 1) return 3;
    const f = this.f, exp = f.expOf(p), hi = f.hiOf(p);
    if (exp === 0x7fff) return 2;
    if (exp === 0) return (hi | f.loOf(p)) === 0 ? 1 : 2;
    return hi & 0x80000000 ? 0 : 2;
  }
  get tagWord(): number {
    let t = 0;
    for (let p = 0; p < 8; p++) t |= this.tagOf(p) << (2 * p);
    return t;
  }

  saveState(): FpuState {
    const out: FpuState = { v: 1, fcw: 0, fsw: 0, ftw: 0, fip: 0, fcs: 0, fdp: 0, fds: 0, fop: 0, regs: [] };
    this.getX87(out);
    return out;
  }
  loadState(s: FpuState): void {
    if (s.v !== 1) throw new FpuStateError(`unsupported version ${String(s.v)}`);
    this.setX87(s);
  }

  /** Copy the unit into an X86State part (X86State.fpu), reusing its register objects. */
  getX87(out: X87State): void {
    out.fcw = this.fcw; out.fsw = this.sw; out.ftw = this.tagWord;
    out.fip = this.fip; out.fcs = this.fcs; out.fdp = this.fdp; out.fds = this.fds; out.fop = this.fop;
    const f = this.f;
    for (let p = 0; p < 8; p++) {
      const r = out.regs[p] ?? (out.regs[p] = { hi: 0, lo: 0, se: 0 });
      r.hi = f.hiOf(p); r.lo = f.loOf(p); r.se = (f.signOf(p) << 15) | f.expOf(p);
    }
    out.regs.length = 8;
  }
  /** Load the unit from an X86State part; FERR# follows the loaded ES (a pending unmasked exception). */
  setX87(s: X87State): void {
    if (!Array.isArray(s.regs) || s.regs.length !== 8) throw new FpuStateError("X87State.regs must hold 8 registers");
    for (let p = 0; p < 8; p++) {
      const r = s.regs[p];
      this.f.set(p, (r.se >>> 15) & 1, r.se & 0x7fff, r.hi >>> 0, r.lo >>> 0);
    }
    this.fcw = s.fcw & 0x1f7f; this.fsw = s.fsw & 0xffff; this.top = (s.fsw >>> 11) & 7;
    let e = 0;
    for (let p = 0; p < 8; p++) if (((s.ftw >>> (2 * p)) & 3) === 3) e |= 1 << p;
    this.empty = e;
    this.fip = s.fip >>> 0; this.fcs = s.fcs & 0xffff; this.fdp = s.fdp >>> 0; this.fds = s.fds & 0xffff; this.fop = s.fop & 0x7ff;
    this.applyCw();
    this.setFerr(false); // re-asserted by the next waiting instruction if an exception is pending
    this.syncEs();
  }

  // ---------------------------------------------------------------- stack

  /** The F80 slot (= physical register) holding ST(i). */
  stSlot(i: number): number { return (this.top + i) & 7; }
  /** ST(i) is empty. */
  stEmpty(i: number): boolean { return this.isEmpty(i); }
  private phys(i: number): number { return (this.top + i) & 7; }
  private isEmpty(i: number): boolean { return ((this.empty >>> this.phys(i)) & 1) !== 0; }
  private setValid(p: number): void { this.empty &= ~(1 << p); }
  private pop(): void { this.empty |= 1 << this.top; this.top = (this.top + 1) & 7; }
  private masked(bits: number): boolean { return (this.fcw & bits) === bits; }

  /** Raise exception bits in the status word; ES/B when any is unmasked. */
  private raise(bits: number): void {
    this.fsw |= bits;
    if ((bits & 0x3f & ~this.fcw) !== 0) this.fsw |= SW_ES | SW_B;
  }
  /** Stack fault (SDM 8.5.1.1): IE|SF, C1 = 1 overflow / 0 underflow. Returns true when masked. */
  private stackFault(overflow: boolean): boolean {
    this.fsw = (this.fsw & ~SW_C1) | (overflow ? SW_C1 : 0);
    this.raise(IE | SW_SF);
    return this.masked(IE);
  }
  private setC1(v: boolean): void { this.fsw = (this.fsw & ~SW_C1) | (v ? SW_C1 : 0); }

  /**
   * Push scratch slot s: on overflow, the masked response pushes the indefinite
   * (SDM 8.5.1.1). Returns false when nothing was pushed.
   */
  private push(s: number): boolean {
    const p = (this.top - 1) & 7;
    if (((this.empty >>> p) & 1) === 0) {
      if (!this.stackFault(true)) return false;
      this.f.indefinite(p);
    } else {
      this.f.copy(p, s);
      this.setC1(false);
    }
    this.top = p;
    this.setValid(p);
    return true;
  }
  /** Check a push can happen (before reading a memory operand): false when it overflows unmasked. */
  private pushOverflows(): boolean {
    return ((this.empty >>> ((this.top - 1) & 7)) & 1) === 0;
  }

  /** Commit an arithmetic result from slot S_R to physical p unless an unmasked IE/DE/ZE forbids it. */
  private commit(p: number): boolean {
    const f = this.f, exc = f.exc;
    if ((exc & (IE | DE | ZE) & ~this.fcw) !== 0) { this.raise(exc & (IE | DE | ZE)); return false; }
    f.copy(p, S_R);
    this.setValid(p);
    this.setC1(f.c1);
    this.raise(exc);
    return true;
  }

  // ---------------------------------------------------------------- entry points

  /**
   * WAIT/FWAIT (9B): #NM when CR0.MP and CR0.TS (table 2-2), then a pending unmasked
   * exception is reported.
   */
  wait(h: FpuHost): void {
    const cr0 = h.cr0();
    if ((cr0 & (CR0_MP | CR0_TS)) === (CR0_MP | CR0_TS)) h.fault(NM);
    this.pending(h, cr0);
  }
  private pending(h: FpuHost, cr0: number): void {
    if ((this.fsw & SW_ES) === 0) return;
    if (cr0 & CR0_NE) h.fault(MF);
    this.setFerr(true); // legacy: FERR# -> IRQ 13; the instruction proceeds
  }

  /**
   * One ESC instruction: op is the opcode byte D8-DF, modrm its ModR/M byte (the core
   * has decoded the memory operand the host's read/write address).
   */
  exec(op: number, modrm: number, h: FpuHost): void {
    const cr0 = h.cr0();
    if (cr0 & (CR0_EM | CR0_TS)) h.fault(NM);
    const esc = op & 7, mod = modrm >>> 6, reg = (modrm >>> 3) & 7, rm = modrm & 7;
    const mem = mod !== 3;
    // Non-waiting control instructions skip the pending-exception check (SDM 8.3.11).
    const nowait = mem
      ? (esc === 1 && (reg === 6 || reg === 7)) || (esc === 5 && (reg === 6 || reg === 7))
      : (esc === 3 && reg === 4) || (esc === 7 && reg === 4 && rm === 0);
    if (!nowait) this.pending(h, cr0);
    if (mem) this.execMem(esc, reg, modrm, h);
    else this.execReg(esc, reg, rm, modrm, h);
  }

  /** Last-instruction pointers for a non-control instruction (SDM 8.1.8, 8.1.9). */
  private note(esc: number, modrm: number, h: FpuHost, mem: boolean): void {
    this.fop = (esc << 8) | modrm;
    this.fip = h.ip(); this.fcs = h.cs();
    if (mem) { this.fdp = h.dp(); this.fds = h.ds(); }
  }

  // ---------------------------------------------------------------- memory forms

  private execMem(esc: number, reg: number, modrm: number, h: FpuHost): void {
    const f = this.f;
    switch (esc) {
      case 0: case 2: case 4: case 6: { // arithmetic with m32real, m32int, m64real, m16int
        const size = esc === 4 ? 8 : esc === 6 ? 2 : 4;
        h.checkOperand(size);
        this.note(esc, modrm, h, true);
        f.exc = 0;
        if (esc === 0) f.fromF32(S_B, h.read(0, 4));
        else if (esc === 2) f.fromInt32(S_B, h.read(0, 4));
        else if (esc === 4) { const lo = h.read(0, 4); f.fromF64(S_B, lo, h.read(4, 4)); }
        else f.fromInt32(S_B, (h.read(0, 2) << 16) >> 16);
        this.arith(reg, 0, S_B, false, false);
        return;
      }
      case 1:
        switch (reg) {
          case 0: { // FLD m32real
            h.checkOperand(4); this.note(esc, modrm, h, true);
            f.exc = 0; f.fromF32(S_A, h.read(0, 4));
            this.loadPush(true);
            return;
          }
          case 2: case 3: { // FST/FSTP m32real
            h.checkOperand(4); this.note(esc, modrm, h, true);
            this.store(reg === 3, 4, h);
            return;
          }
          case 4: this.ldenv(h, 0); return;
          case 5: h.checkOperand(2); this.fcw = h.read(0, 2) & 0x1f7f | 0x40; this.applyCw(); this.syncEs(); return; // FLDCW
          case 6: this.stenv(h, 0); this.fcw |= 0x3f; this.applyCw(); return; // FNSTENV masks all exceptions afterwards
          case 7: h.checkOperand(2); h.write(0, 2, this.fcw); return; // FNSTCW
          default: h.fault(UD);
        }
        return;
      case 3:
        switch (reg) {
          case 0: { // FILD m32int
            h.checkOperand(4); this.note(esc, modrm, h, true);
            f.exc = 0; f.fromInt32(S_A, h.read(0, 4));
            this.loadPush(false);
            return;
          }
          case 2: case 3: h.checkOperand(4); this.note(esc, modrm, h, true); this.fist(reg === 3, 32, h); return;
          case 5: { // FLD m80real: no conversion, no exceptions but the stack fault
            h.checkOperand(10); this.note(esc, modrm, h, true);
            const lo = h.read(0, 4), hi = h.read(4, 4), se = h.read(8, 2);
            f.set(S_A, se >>> 15, se & 0x7fff, hi, lo);
            f.exc = 0;
            this.loadPush(false);
            return;
          }
          case 7: h.checkOperand(10); this.note(esc, modrm, h, true); this.store(true, 10, h); return; // FSTP m80real
          default: h.fault(UD); // 1: FISTTP (SSE3), 4, 6: reserved
        }
        return;
      case 5:
        switch (reg) {
          case 0: { // FLD m64real
            h.checkOperand(8); this.note(esc, modrm, h, true);
            const lo = h.read(0, 4), hi = h.read(4, 4);
            f.exc = 0; f.fromF64(S_A, lo, hi);
            this.loadPush(true);
            return;
          }
          case 2: case 3: h.checkOperand(8); this.note(esc, modrm, h, true); this.store(reg === 3, 8, h); return;
          case 4: this.frstor(h); return;
          case 6: this.fsave(h); return;
          case 7: h.checkOperand(2); h.write(0, 2, this.sw); return; // FNSTSW m16
          default: h.fault(UD);
        }
        return;
      default: // 7
        switch (reg) {
          case 0: { // FILD m16int
            h.checkOperand(2); this.note(esc, modrm, h, true);
            f.exc = 0; f.fromInt32(S_A, (h.read(0, 2) << 16) >> 16);
            this.loadPush(false);
            return;
          }
          case 2: case 3: h.checkOperand(2); this.note(esc, modrm, h, true); this.fist(reg === 3, 16, h); return;
          case 4: { // FBLD
            h.checkOperand(10); this.note(esc, modrm, h, true);
            const b = this.bcd;
            for (let i = 0; i < 10; i++) b[i] = h.read(i, 1);
            f.exc = 0; f.fromBcd(S_A, b);
            this.loadPush(false);
            return;
          }
          case 5: { // FILD m64int
            h.checkOperand(8); this.note(esc, modrm, h, true);
            const lo = h.read(0, 4), hi = h.read(4, 4);
            f.exc = 0; f.fromInt64(S_A, lo, hi);
            this.loadPush(false);
            return;
          }
          case 6: h.checkOperand(10); this.note(esc, modrm, h, true); this.fbstp(h); return;
          case 7: h.checkOperand(8); this.note(esc, modrm, h, true); this.fist(true, 64, h); return;
          default: h.fault(UD); // 1: FISTTP (SSE3)
        }
    }
  }

  /**
   * Push S_A after a load. convert: the source was m32/m64 (an SNaN raises IE and is
   * made quiet; a denormal raised DE in the conversion). Unmasked IE/DE: no push.
   */
  private loadPush(convert: boolean): void {
    const f = this.f;
    if (this.pushOverflows()) { this.push(S_A); return; }
    if (convert && f.classOf(S_A) === Cls.SNaN) {
      f.exc |= IE;
      f.set(S_A, f.signOf(S_A), 0x7fff, (f.hiOf(S_A) | 0x40000000) >>> 0, f.loOf(S_A));
    }
    const exc = f.exc;
    if ((exc & (IE | DE) & ~this.fcw) !== 0) { this.raise(exc); return; }
    this.push(S_A);
    this.raise(exc);
  }

  /** FST/FSTP to m32 (size 4), m64 (8) or m80 (10). */
  private store(popAfter: boolean, size: number, h: FpuHost): void {
    const f = this.f;
    const p = this.phys(0);
    f.exc = 0; f.c1 = false;
    let underflow = false;
    if (this.isEmpty(0)) {
      if (!this.stackFault(false)) return;
      underflow = true;
      f.indefinite(S_A);
    } else f.copy(S_A, p);
    if (size === 4) {
      const bits = f.toF32(S_A);
      if (!underflow && this.storeBlocked()) return;
      h.write(0, 4, bits);
    } else if (size === 8) {
      f.toF64(S_A);
      if (!underflow && this.storeBlocked()) return;
      const lo = f.outLo, hi = f.outHi;
      h.write(0, 4, lo); h.write(4, 4, hi);
    } else {
      h.write(0, 4, f.loOf(S_A)); h.write(4, 4, f.hiOf(S_A)); h.write(8, 2, f.v[S_A * 3 + 2]);
    }
    if (!underflow) { this.setC1(f.c1); this.raise(f.exc); }
    if (popAfter) this.pop();
  }
  /** Memory destination with unmasked IE, OE or UE: nothing is stored, TOP unchanged (SDM 4.9.1.4-5). */
  private storeBlocked(): boolean {
    const exc = this.f.exc;
    if ((exc & (IE | OE | UE) & ~this.fcw) !== 0) {
      this.setC1(this.f.c1);
      this.raise(exc);
      return true;
    }
    return false;
  }

  /** FIST/FISTP m16/m32/m64int. */
  private fist(popAfter: boolean, bits: number, h: FpuHost): void {
    const f = this.f;
    f.exc = 0; f.c1 = false;
    if (this.isEmpty(0)) {
      if (!this.stackFault(false)) return;
      f.indefinite(S_A);
      f.toInt(S_A, bits); // integer indefinite
      f.exc = 0;
    } else {
      f.toInt(this.phys(0), bits);
      if ((f.exc & IE & ~this.fcw) !== 0) { this.raise(f.exc); return; }
      this.setC1(f.c1);
    }
    const lo = f.outLo, hi = f.outHi;
    if (bits === 16) h.write(0, 2, lo);
    else { h.write(0, 4, lo); if (bits === 64) h.write(4, 4, hi); }
    this.raise(f.exc);
    if (popAfter) this.pop();
  }

  private fbstp(h: FpuHost): void {
    const f = this.f, b = this.bcd;
    f.exc = 0; f.c1 = false;
    if (this.isEmpty(0)) {
      if (!this.stackFault(false)) return;
      f.indefinite(S_A); f.toBcd(S_A, b); f.exc = 0;
    } else {
      f.toBcd(this.phys(0), b);
      if ((f.exc & IE & ~this.fcw) !== 0) { this.raise(f.exc); return; }
      this.setC1(f.c1);
    }
    for (let i = 0; i < 10; i++) h.write(i, 1, b[i]);
    this.raise(f.exc);
    this.pop();
  }

  // ---------------------------------------------------------------- arithmetic

  /**
   * reg 0 add, 1 mul, 2 com, 3 comp, 4 sub (a-b), 5 subr (b-a), 6 div (a/b), 7 divr (b/a)
   * with a = ST(dst), b = slot bSlot (a scratch slot, or a register when bReg).
   * popAfter: the P forms. Destination is ST(dst).
   */
  private arith(reg: number, dst: number, bSlot: number, bReg: boolean, popAfter: boolean): void {
    const f = this.f;
    const pd = this.phys(dst);
    if (this.isEmpty(dst) || (bReg && ((this.empty >>> bSlot) & 1) !== 0)) {
      if (!this.stackFault(false)) return;
      if (reg === 2 || reg === 3) this.fsw |= SW_C0 | SW_C2 | SW_C3;
      else { f.indefinite(pd); this.setValid(pd); }
      if (reg === 3 || popAfter) this.pop();
      return;
    }
    if (reg === 2 || reg === 3) {
      // Unmasked IE/DE: no condition codes and no pop (SDM Vol. 2 FCOM).
      if (this.setCompare(f.compare(pd, bSlot, false)) && reg === 3) this.pop();
      return;
    }
    const a = pd;
    switch (reg) {
      case 0: f.add(S_R, a, bSlot, false); break;
      case 1: f.mul(S_R, a, bSlot); break;
      case 4: f.add(S_R, a, bSlot, true); break;
      case 5: f.add(S_R, bSlot, a, true); break;
      case 6: f.div(S_R, a, bSlot); break;
      default: f.div(S_R, bSlot, a); break;
    }
    if (this.commit(pd) && popAfter) this.pop();
  }

  /** Condition codes of a compare (0 >, 1 <, 2 =, 3 unordered); unmasked IE leaves them. */
  private setCompare(r: number): boolean {
    const exc = this.f.exc;
    if ((exc & (IE | DE) & ~this.fcw) !== 0) { this.raise(exc); return false; }
    this.raise(exc);
    let cc = 0; // C1 cleared too
    if (r === 1) cc = SW_C0; else if (r === 2) cc = SW_C3; else if (r === 3) cc = SW_C0 | SW_C2 | SW_C3;
    this.fsw = (this.fsw & ~SW_CC) | cc;
    return true;
  }

  // ---------------------------------------------------------------- register forms

  private execReg(esc: number, reg: number, rm: number, modrm: number, h: FpuHost): void {
    const f = this.f;
    const pi = this.phys(rm);
    switch (esc) {
      case 0: // D8: ST0 = ST0 op ST(i)
        this.note(esc, modrm, h, false); f.exc = 0;
        this.arith(reg, 0, pi, true, false);
        return;
      case 4: // DC: ST(i) = ST(i) op ST0, with the SUB/SUBR and DIV/DIVR encodings swapped
        this.note(esc, modrm, h, false); f.exc = 0;
        if (reg === 2 || reg === 3) this.arith(reg, 0, pi, true, false); // aliases of FCOM/FCOMP ST(i)
        else this.arith(reg >= 4 ? reg ^ 1 : reg, rm, this.phys(0), true, false);
        return;
      case 6: // DE: the popping forms; DE D9 is FCOMPP; DE D0+i is an alias of FCOMP
        if (reg === 3 && rm !== 1) h.fault(UD);
        this.note(esc, modrm, h, false); f.exc = 0;
        if (reg === 3) {
          this.comPP(false);
          return;
        }
        if (reg === 2) this.arith(3, 0, pi, true, false); // alias of FCOMP ST(i)
        else this.arith(reg >= 4 ? reg ^ 1 : reg, rm, this.phys(0), true, true);
        return;
      case 1: this.d9reg(reg, rm, modrm, h); return;
      case 2:
        if (reg < 4) { this.note(esc, modrm, h, false); this.fcmov(reg, rm, false, h); return; }
        if (reg === 5 && rm === 1) { this.note(esc, modrm, h, false); f.exc = 0; this.comPP(true); return; } // FUCOMPP
        h.fault(UD);
        return;
      case 3:
        if (reg < 4) { this.note(esc, modrm, h, false); this.fcmov(reg, rm, true, h); return; }
        if (reg === 4) {
          switch (rm) {
            case 2: this.fsw &= ~(0x3f | SW_SF | SW_ES | SW_B); this.setFerr(false); return; // FNCLEX
            case 3: this.init(); return; // FNINIT
            case 0: case 1: case 4: return; // FNENI, FNDISI, FNSETPM: no-ops since the 80387
            default: h.fault(UD);
          }
        }
        if (reg === 5 || reg === 6) { this.note(esc, modrm, h, false); f.exc = 0; this.comi(rm, reg === 5, false, h); return; } // FUCOMI, FCOMI
        h.fault(UD);
        return;
      case 5:
        this.note(esc, modrm, h, false);
        switch (reg) {
          case 0: this.empty |= 1 << pi; return; // FFREE
          case 1: this.fxch(rm); return; // alias of FXCH
          case 2: case 3: this.stReg(rm, reg === 3); return; // FST/FSTP ST(i)
          case 4: case 5: // FUCOM / FUCOMP
            f.exc = 0;
            if (this.isEmpty(0) || this.isEmpty(rm)) {
              if (this.stackFault(false)) { this.fsw |= SW_C0 | SW_C2 | SW_C3; if (reg === 5) this.pop(); }
              return;
            }
            if (this.setCompare(f.compare(this.phys(0), pi, true)) && reg === 5) this.pop();
            return;
          default: h.fault(UD);
        }
        return;
      default: // 7 (DF)
        switch (reg) {
          case 0: this.note(esc, modrm, h, false); this.empty |= 1 << pi; this.pop(); return; // FFREEP
          case 1: this.note(esc, modrm, h, false); this.fxch(rm); return;
          case 2: case 3: this.note(esc, modrm, h, false); this.stReg(rm, true); return; // aliases of FSTP
          case 4:
            if (rm !== 0) h.fault(UD);
            h.setAx(this.sw); return; // FNSTSW AX
          case 5: case 6: this.note(esc, modrm, h, false); f.exc = 0; this.comi(rm, reg === 5, true, h); return; // FUCOMIP, FCOMIP
          default: h.fault(UD);
        }
    }
  }

  private comPP(quiet: boolean): void {
    const f = this.f;
    if (this.isEmpty(0) || this.isEmpty(1)) {
      if (this.stackFault(false)) { this.fsw |= SW_C0 | SW_C2 | SW_C3; this.pop(); this.pop(); }
      return;
    }
    if (this.setCompare(f.compare(this.phys(0), this.phys(1), quiet))) { this.setC1(false); this.pop(); this.pop(); }
  }

  /** FCOMI/FUCOMI(P): ZF PF CF from the compare (SDM Vol. 2 FCOMI). */
  private comi(rm: number, quiet: boolean, popAfter: boolean, h: FpuHost): void {
    const f = this.f;
    this.setC1(false);
    // OF, SF and AF are cleared even when an unmasked exception leaves ZF/PF/CF alone (SDM Vol. 2 FCOMI).
    if (this.isEmpty(0) || this.isEmpty(rm)) {
      if (this.stackFault(false)) { h.setCmpFlags(ZF | PF | CF); if (popAfter) this.pop(); }
      else h.setCmpFlags(h.flags() & (ZF | PF | CF));
      return;
    }
    const r = f.compare(this.phys(0), this.phys(rm), quiet);
    const exc = f.exc;
    if ((exc & (IE | DE) & ~this.fcw) !== 0) { this.raise(exc); h.setCmpFlags(h.flags() & (ZF | PF | CF)); return; }
    this.raise(exc);
    h.setCmpFlags(r === 0 ? 0 : r === 1 ? CF : r === 2 ? ZF : ZF | PF | CF);
    if (popAfter) this.pop();
  }

  /** FCMOVcc (DA/DB C0-DF): B, E, BE, U and their negations. */
  private fcmov(cc: number, rm: number, negate: boolean, h: FpuHost): void {
    if (this.isEmpty(0) || this.isEmpty(rm)) {
      if (this.stackFault(false)) { this.f.indefinite(this.phys(0)); this.setValid(this.phys(0)); }
      return;
    }
    const fl = h.flags();
    let c: boolean;
    switch (cc) {
      case 0: c = (fl & CF) !== 0; break;
      case 1: c = (fl & ZF) !== 0; break;
      case 2: c = (fl & (CF | ZF)) !== 0; break;
      default: c = (fl & PF) !== 0; break;
    }
    if (c !== negate) this.f.copy(this.phys(0), this.phys(rm));
    this.setC1(false);
  }

  private fxch(rm: number): void {
    const f = this.f, p0 = this.phys(0), pi = this.phys(rm);
    if (this.isEmpty(0) || this.isEmpty(rm)) {
      if (!this.stackFault(false)) return;
      if (this.isEmpty(0)) f.indefinite(p0);
      if (this.isEmpty(rm)) f.indefinite(pi);
      this.setValid(p0); this.setValid(pi);
    } else this.setC1(false);
    f.copy(S_T, p0); f.copy(p0, pi); f.copy(pi, S_T);
  }

  /** FST/FSTP ST(i): a plain 80-bit copy. */
  private stReg(rm: number, popAfter: boolean): void {
    const f = this.f, pi = this.phys(rm);
    if (this.isEmpty(0)) {
      if (!this.stackFault(false)) return;
      f.indefinite(pi);
    } else { f.copy(pi, this.phys(0)); this.setC1(false); }
    this.setValid(pi);
    if (popAfter) this.pop();
  }

  private d9reg(reg: number, rm: number, modrm: number, h: FpuHost): void {
    const f = this.f;
    this.note(1, modrm, h, false);
    f.exc = 0;
    switch (reg) {
      case 0: { // FLD ST(i)
        if (this.isEmpty(rm)) {
          if (!this.stackFault(false)) return;
          f.indefinite(S_A);
        } else f.copy(S_A, this.phys(rm));
        this.push(S_A);
        return;
      }
      case 1: this.fxch(rm); return;
      case 2: if (rm !== 0) h.fault(UD); return; // FNOP
      case 3: this.stReg(rm, true); return; // FSTP1 alias (D9 D8+i)
      case 4:
        switch (rm) {
          case 0: case 1: { // FCHS, FABS
            if (this.isEmpty(0)) { if (this.stackFault(false)) { f.indefinite(this.phys(0)); this.setValid(this.phys(0)); } return; }
            const p = this.phys(0), i = p * 3 + 2;
            f.v[i] = rm === 0 ? f.v[i] ^ 0x8000 : f.v[i] & 0x7fff;
            this.setC1(false);
            return;
          }
          case 4: { // FTST
            if (this.isEmpty(0)) { if (this.stackFault(false)) this.fsw |= SW_C0 | SW_C2 | SW_C3; return; }
            f.set(S_B, 0, 0, 0, 0);
            this.setCompare(f.compare(this.phys(0), S_B, false));
            this.setC1(false);
            return;
          }
          case 5: this.fxam(); return;
          default: h.fault(UD);
        }
        return;
      case 5: { // constants
        if (rm === 7) h.fault(UD);
        if (rm === 6) f.set(S_A, 0, 0, 0, 0);
        else {
          const c = CONSTS[rm];
          let lo = c[2];
          const rc = f.rc;
          // Round the exact constant per RC (SDM 8.3.8): up under RC=up or nearest when
          // the bits beyond 64 say so; down/zero truncate (all constants are positive).
          if (rm !== 0 && ((rc === 0 && c[3] === 1) || rc === 2)) lo = (lo + 1) >>> 0;
          f.set(S_A, 0, c[0], c[1], lo);
        }
        this.push(S_A);
        return;
      }
      case 6:
        switch (rm) {
          case 0: this.transc(0); return; // F2XM1
          case 1: this.transc(1); return; // FYL2X
          case 2: this.transc(2); return; // FPTAN
          case 3: this.transc(3); return; // FPATAN
          case 4: this.fxtract(); return;
          case 5: this.fprem(true); return;
          case 6: this.top = (this.top - 1) & 7; this.setC1(false); return; // FDECSTP
          default: this.top = (this.top + 1) & 7; this.setC1(false); return; // FINCSTP
        }
      default:
        switch (rm) {
          case 0: this.fprem(false); return;
          case 1: this.transc(4); return; // FYL2XP1
          case 2: this.unary(0); return; // FSQRT
          case 3: this.transc(5); return; // FSINCOS
          case 4: this.unary(1); return; // FRNDINT
          case 5: this.fscale(); return;
          case 6: this.transc(6); return; // FSIN
          default: this.transc(7); return; // FCOS
        }
    }
  }

  private unary(kind: number): void {
    const f = this.f, p = this.phys(0);
    if (this.isEmpty(0)) { if (this.stackFault(false)) { f.indefinite(p); this.setValid(p); } return; }
    if (kind === 0) f.sqrt(S_R, p); else f.roundInt(S_R, p);
    this.commit(p);
  }

  /** FXAM (SDM Vol. 2 FXAM): C3 C2 C0 class, C1 sign; never faults. */
  private fxam(): void {
    const f = this.f, p = this.phys(0);
    let cc: number;
    if (this.isEmpty(0)) cc = SW_C3 | SW_C0;
    else {
      switch (f.classOf(p)) {
        case Cls.Invalid: cc = 0; break;
        case Cls.QNaN: case Cls.SNaN: cc = SW_C0; break;
        case Cls.Inf: cc = SW_C2 | SW_C0; break;
        case Cls.Zero: cc = SW_C3; break;
        default: cc = f.isDenormal(p) ? SW_C3 | SW_C2 : SW_C2;
      }
    }
    if (f.signOf(p)) cc |= SW_C1;
    this.fsw = (this.fsw & ~SW_CC) | cc;
  }

  private fscale(): void {
    const f = this.f, p0 = this.phys(0);
    if (this.isEmpty(0) || this.isEmpty(1)) { if (this.stackFault(false)) { f.indefinite(p0); this.setValid(p0); } return; }
    f.scale(S_R, p0, this.phys(1));
    this.commit(p0);
  }

  private fxtract(): void {
    const f = this.f, p0 = this.phys(0);
    if (this.isEmpty(0)) {
      if (!this.stackFault(false)) return;
      f.indefinite(p0); this.setValid(p0);
      f.indefinite(S_A); this.push(S_A);
      return;
    }
    if (this.pushOverflows()) { this.stackFault(true); if (this.masked(IE)) { f.indefinite(p0); f.indefinite(S_A); this.top = (this.top - 1) & 7; this.setValid(this.top); f.copy(this.top, S_A); } return; }
    f.extract(S_R, S_R2, p0);
    const exc = f.exc;
    if ((exc & (IE | DE | ZE) & ~this.fcw) !== 0) { this.raise(exc); return; }
    f.copy(p0, S_R);
    this.push(S_R2);
    this.raise(exc);
  }

  private fprem(round: boolean): void {
    const f = this.f, p0 = this.phys(0);
    if (this.isEmpty(0) || this.isEmpty(1)) { if (this.stackFault(false)) { f.indefinite(p0); this.setValid(p0); } return; }
    const q = f.rem(S_R, p0, this.phys(1), round);
    const exc = f.exc;
    if ((exc & (IE | DE) & ~this.fcw) !== 0) { this.raise(exc); return; }
    f.copy(p0, S_R);
    this.raise(exc);
    // C0 = Q2, C3 = Q1, C1 = Q0, C2 = incomplete (SDM Vol. 2 FPREM).
    let cc = 0;
    if ((exc & IE) === 0) {
      if (q & 8) cc = SW_C2;
      else cc = (q & 4 ? SW_C0 : 0) | (q & 2 ? SW_C3 : 0) | (q & 1 ? SW_C1 : 0);
    }
    this.fsw = (this.fsw & ~SW_CC) | cc;
  }

  /**
   * Transcendentals: finite FSIN/FCOS/FSINCOS/FPTAN go to trig(), in-domain ones to
   * transcBig(), the rest through float64 (header). kind: 0 F2XM1,
   * 1 FYL2X, 2 FPTAN, 3 FPATAN, 4 FYL2XP1, 5 FSINCOS, 6 FSIN, 7 FCOS.
   */
  private transc(kind: number): void {
    const f = this.f, p0 = this.phys(0), p1 = this.phys(1);
    const two = kind === 1 || kind === 3 || kind === 4;
    const pushes = kind === 2 || kind === 5;
    if (this.isEmpty(0) || (two && this.isEmpty(1))) {
      if (!this.stackFault(false)) return;
      if (two) { f.indefinite(p1); this.setValid(p1); this.pop(); }
      else { f.indefinite(p0); this.setValid(p0); if (pushes) { f.indefinite(S_A); this.push(S_A); } }
      return;
    }
    if (pushes && this.pushOverflows()) { this.stackFault(true); if (this.masked(IE)) { f.indefinite(p0); f.indefinite(S_A); this.top = (this.top - 1) & 7; f.copy(this.top, S_A); this.setValid(this.top); } return; }
    f.exc = 0;
    const c0 = f.classOf(p0), c1 = two ? f.classOf(p1) : Cls.Zero;
    if (c0 === Cls.Invalid || c1 === Cls.Invalid || c0 === Cls.SNaN || c1 === Cls.SNaN || c0 === Cls.QNaN || c1 === Cls.QNaN) {
      // NaN propagation as for arithmetic (the add path implements the rules).
      if (two) f.add(S_R, p1, p0, false); else f.add(S_R, p0, p0, false);
      if (!this.commitTo(two ? p1 : p0)) return;
      if (two) this.pop();
      else if (pushes) { f.copy(S_A, S_R); this.push(S_A); }
      this.setC2(false);
      return;
    }
    if (f.isDenormal(p0) || (two && f.isDenormal(p1))) f.exc |= DE;
    if ((kind === 2 || kind >= 5) && c0 !== Cls.Inf) { this.trig(kind, p0, c0); return; }
    if (this.transcBig(kind, p0, p1, c0, c1)) {
      if (kind === 0) { this.commitTo(p0); return; }
      if (!this.commitTo(p1)) return;
      this.pop();
      return;
    }
    const x = f.toNumber(p0), y = two ? f.toNumber(p1) : 0;
    let r = 0, invalid = false, zdiv = false;
    switch (kind) {
      case 0: r = Number.isFinite(x) ? Math.expm1(x * Math.LN2) : x > 0 ? x : -1; break;
      case 1: // y * log2(x)
        if (x < 0 || (x === 0 && y === 0) || (x === 1 && !Number.isFinite(y)) || (!Number.isFinite(x) && y === 0)) invalid = true;
        else if (x === 0) { zdiv = true; r = y > 0 ? -Infinity : Infinity; }
        else r = y * Math.log2(x);
        break;
      case 4: // y * log2(1 + x)
        if (x < -1 || (x === 0 && !Number.isFinite(y))) invalid = true;
        else r = y * (Math.log1p(x) / Math.LN2);
        break;
      case 3: r = Math.atan2(y, x); break;
      default: invalid = true; break; // FPTAN, FSINCOS, FSIN, FCOS of +-inf (finite ones: trig())
    }
    if (invalid) { f.exc |= IE; f.indefinite(S_R); f.indefinite(S_R2); }
    else if (zdiv) { f.exc |= ZE; f.fromNumber(S_R, r); }
    else {
      f.fromNumber(S_R, r);
      // Zeros and infinities out of FYL2X/FYL2XP1 are exact (a zero operand, log2(1), an infinite one).
      const exact = (kind === 0 && (x === 0 || !Number.isFinite(x))) || (kind === 3 && (y === 0 || (x === 0 && y === 0)))
        || ((kind === 1 || kind === 4) && (r === 0 || !Number.isFinite(r)));
      if (!exact) f.exc |= PE;
    }
    f.c1 = false;
    if (two) {
      if (!this.commitTo(p1)) return;
      this.pop();
    } else if (kind === 2 || kind === 5) {
      // FPTAN: ST0 = tan, push 1.0. FSINCOS: ST0 = sin, push cos.
      if (!this.commitTo(p0)) return;
      f.copy(S_A, S_R2); this.push(S_A);
    } else if (!this.commitTo(p0)) return;
    if (kind === 2 || kind >= 5) this.setC2(false);
  }
  private commitTo(p: number): boolean { return this.commit(p); }

  /**
   * FSIN, FCOS, FSINCOS, FPTAN (kind 6, 7, 5, 2) of a finite ST0: reduced exactly by the
   * x87's 66-bit pi (float80.ts bigTrigReduce; SDM Vol. 1 8.3.8), evaluated on big floats
   * and rounded once per RC to 64 bits (PC does not apply, SDM 8.1.5.2); C1 = round-up
   * of the value rounded for the new ST0 side (tan for FPTAN, cos for FSINCOS).
   * |x| >= 2^63 sets C2 and changes nothing else (SDM Vol. 2 FSIN/FCOS/FSINCOS/FPTAN).
   */
  private trig(kind: number, p0: number, c0: Cls): void {
    const f = this.f, s0 = f.signOf(p0);
    if (c0 === Cls.Normal && f.expOf(p0) >= 0x3fff + 63) { this.setC2(true); return; }
    if (c0 === Cls.Zero) { // exact: sin, tan = +-0, cos = +1 (SDM Vol. 2 tables)
      f.set(S_R, kind === 7 ? 0 : s0, kind === 7 ? 0x3fff : 0, kind === 7 ? 0x80000000 : 0, 0);
      f.set(S_R2, 0, 0x3fff, 0x80000000, 0);
      f.c1 = false;
    } else {
      // |x| = q pi66/2 + rho, |rho| = r, sign sr: sin|x| = +-sin r (q even) or +-cos r,
      // cos|x| = +-cos r (q even) or +-sin r, tan|x| = tan rho (q even) or -cot rho.
      const [q, sr, r] = bigTrigReduce(f.bigOf(p0));
      const odd = (q & 1) === 1, hi = q >> 1;
      if (kind === 2) f.roundBig(S_R, s0 ^ sr ^ (odd ? 1 : 0), bigTan(r, odd), true);
      else if (kind === 7) f.roundBig(S_R, odd ? sr ^ 1 ^ hi : hi, odd ? bigSin(r) : bigCos(r), true);
      else f.roundBig(S_R, s0 ^ (odd ? hi : sr ^ hi), odd ? bigCos(r) : bigSin(r), true);
      if (kind === 5) f.roundBig(S_R2, odd ? sr ^ 1 ^ hi : hi, odd ? bigSin(r) : bigCos(r), true);
      else f.set(S_R2, 0, 0x3fff, 0x80000000, 0); // FPTAN's 1.0
    }
    const c1 = f.c1;
    if (!this.commit(p0)) return;
    if (kind === 2 || kind === 5) { this.push(S_R2); this.setC1(c1); }
    this.setC2(false);
  }

  /**
   * F2XM1, FYL2X, FYL2XP1 and FPATAN to the full 64 bits (float80.ts big floats, one
   * rounding per RC; C1 is the round-up indicator). Covers the finite operands in the
   * SDM's ranges and FPATAN's results that are multiples of pi/4; false for the rest
   * (zeros, infinities, out-of-range arguments), which take the float64 path.
   * The result is left in S_R for the caller to commit.
   */
  private transcBig(kind: number, p0: number, p1: number, c0: Cls, c1: Cls): boolean {
    const f = this.f;
    const s0 = f.signOf(p0), s1 = f.signOf(p1);
    let sign = 0, r: Big | null = null, inexact = true;
    // An exact signed zero (SDM Vol. 2 FYL2X/FYL2XP1/FPATAN tables), without float64 (which
    // cannot hold every finite extended operand).
    const zero = (sz: number): boolean => { f.set(S_R, sz, 0, 0, 0); f.c1 = false; return true; };
    switch (kind) {
      case 0: { // F2XM1, -1 <= x <= 1
        if (c0 !== Cls.Normal) return false;
        const x = f.bigOf(p0), one = bigInt(1);
        const cmp = x.e === one.e ? (x.m > one.m ? 1 : x.m === one.m ? 0 : -1) : x.e > one.e ? 1 : -1;
        if (cmp > 0) return false;
        if (cmp === 0) { f.fromNumber(S_R, s0 ? -0.5 : 1); f.c1 = false; return true; } // 2^1 - 1, 2^-1 - 1: exact
        [sign, r] = bigExp2m1(s0, x);
        break;
      }
      case 1: { // FYL2X: ST1 * log2(ST0), ST0 > 0
        if (c0 !== Cls.Normal || s0 || (c1 !== Cls.Normal && c1 !== Cls.Zero)) return false;
        const [sl, l] = bigLog2(f.bigOf(p0));
        if (l.m === 0n) return zero(s1); // log2(1) = +0
        if (c1 === Cls.Zero) return zero(s1 ^ sl);
        // A power of two gives an integer logarithm: the product is then exact before rounding.
        inexact = !(f.hiOf(p0) === 0x80000000 && f.loOf(p0) === 0);
        r = bigMul(f.bigOf(p1), l); sign = sl ^ s1;
        break;
      }
      case 4: { // FYL2XP1: ST1 * log2(1 + ST0), |ST0| < 1
        if ((c0 === Cls.Zero && c1 !== Cls.Inf) || (c1 === Cls.Zero && c0 === Cls.Normal)) return zero(s0 ^ s1);
        if (c0 !== Cls.Normal || c1 !== Cls.Normal) return false;
        const x = f.bigOf(p0);
        if (x.e + BIG_P - 1 >= 0) return false; // |x| >= 1: outside the SDM's range
        const [sl, l] = bigLog2p1(s0, x);
        r = bigMul(f.bigOf(p1), l); sign = sl ^ s1;
        break;
      }
      case 3: { // FPATAN: atan2(ST1, ST0), sign of ST1 (SDM Vol. 2 FPATAN table 3-29)
        sign = s1;
        const pi = bigPi(), half = { m: pi.m, e: pi.e - 1 }, quarter = { m: pi.m, e: pi.e - 2 };
        if (c1 === Cls.Normal && c0 === Cls.Normal) r = bigAtan2(f.bigOf(p1), s0, f.bigOf(p0));
        else if (c1 === Cls.Zero || (c1 === Cls.Normal && c0 === Cls.Inf)) {
          if (!s0) return zero(s1); // +-0 or finite over +0, +x, +inf: exact +-0
          r = pi; // over -0, -x, -inf: +-pi
        } else if (c0 === Cls.Zero) r = half;
        else r = c0 !== Cls.Inf ? half : s0 ? bigAdd(pi, quarter, true) : quarter; // y infinite
        break;
      }
      default: return false;
    }
    f.roundBig(S_R, sign, r, inexact);
    return true;
  }
  private setC2(v: boolean): void { this.fsw = (this.fsw & ~SW_C2) | (v ? SW_C2 : 0); }

  // ---------------------------------------------------------------- environment

  /**
   * FSTENV layout (SDM 8.1.10, figures 8-9 to 8-12), at host offset base: 14 bytes
   * (16-bit operand size) or 28 (32-bit), protected- or real-mode format.
   */
  private writeEnv(h: FpuHost, base: number): void {
    const o32 = h.op32(), real = h.realMode();
    const tw = this.tagWord;
    if (o32) {
      h.write(base, 4, this.fcw); h.write(base + 4, 4, this.sw); h.write(base + 8, 4, tw);
      if (real) {
        const ip = (this.fcs << 4) + this.fip, dp = (this.fds << 4) + this.fdp;
        h.write(base + 12, 4, ip & 0xffff);
        h.write(base + 16, 4, ((ip >>> 16) << 12 | this.fop) >>> 0);
        h.write(base + 20, 4, dp & 0xffff);
        h.write(base + 24, 4, ((dp >>> 16) << 12) >>> 0);
      } else {
        h.write(base + 12, 4, this.fip);
        h.write(base + 16, 4, (this.fcs | (this.fop << 16)) >>> 0);
        h.write(base + 20, 4, this.fdp);
        h.write(base + 24, 4, this.fds);
      }
    } else {
      h.write(base, 2, this.fcw); h.write(base + 2, 2, this.sw); h.write(base + 4, 2, tw);
      if (real) {
        const ip = (this.fcs << 4) + this.fip, dp = (this.fds << 4) + this.fdp;
        h.write(base + 6, 2, ip & 0xffff);
        h.write(base + 8, 2, (((ip >>> 16) & 0xf) << 12) | this.fop);
        h.write(base + 10, 2, dp & 0xffff);
        h.write(base + 12, 2, ((dp >>> 16) & 0xf) << 12);
      } else {
        h.write(base + 6, 2, this.fip & 0xffff); h.write(base + 8, 2, this.fcs);
        h.write(base + 10, 2, this.fdp & 0xffff); h.write(base + 12, 2, this.fds);
      }
    }
  }
  private readEnv(h: FpuHost, base: number): void {
    const o32 = h.op32(), real = h.realMode();
    let cw: number, sw: number, tw: number;
    if (o32) {
      cw = h.read(base, 4); sw = h.read(base + 4, 4); tw = h.read(base + 8, 4);
      if (real) {
        const a = h.read(base + 12, 4), b = h.read(base + 16, 4), c = h.read(base + 20, 4), d = h.read(base + 24, 4);
        this.fip = ((a & 0xffff) | ((b >>> 12) & 0xffff) << 16) >>> 0; this.fcs = 0; this.fop = b & 0x7ff;
        this.fdp = ((c & 0xffff) | ((d >>> 12) & 0xffff) << 16) >>> 0; this.fds = 0;
      } else {
        this.fip = h.read(base + 12, 4); const b = h.read(base + 16, 4);
        this.fcs = b & 0xffff; this.fop = (b >>> 16) & 0x7ff;
        this.fdp = h.read(base + 20, 4); this.fds = h.read(base + 24, 4) & 0xffff;
      }
    } else {
      cw = h.read(base, 2); sw = h.read(base + 2, 2); tw = h.read(base + 4, 2);
      if (real) {
        const a = h.read(base + 6, 2), b = h.read(base + 8, 2), c = h.read(base + 10, 2), d = h.read(base + 12, 2);
        this.fip = a | ((b >>> 12) << 16); this.fcs = 0; this.fop = b & 0x7ff;
        this.fdp = c | ((d >>> 12) << 16); this.fds = 0;
      } else {
        this.fip = h.read(base + 6, 2); this.fcs = h.read(base + 8, 2);
        this.fdp = h.read(base + 10, 2); this.fds = h.read(base + 12, 2);
      }
    }
    this.fcw = (cw & 0x1f7f) | 0x40; this.fsw = sw & 0xffff & ~0x3800; this.top = (sw >>> 11) & 7;
    let e = 0;
    for (let p = 0; p < 8; p++) if (((tw >>> (2 * p)) & 3) === 3) e |= 1 << p;
    this.empty = e;
    this.applyCw();
    this.syncEs();
  }

  private envSize(h: FpuHost): number { return h.op32() ? 28 : 14; }

  private stenv(h: FpuHost, _base: number): void {
    h.checkOperand(this.envSize(h));
    this.writeEnv(h, 0);
  }
  private ldenv(h: FpuHost, _base: number): void {
    h.checkOperand(this.envSize(h));
    this.readEnv(h, 0);
  }

  /** FNSAVE: environment, then ST0..ST7 (10 bytes each), then FNINIT (SDM Vol. 2 FSAVE). */
  private fsave(h: FpuHost): void {
    const n = this.envSize(h);
    h.checkOperand(n + 80);
    this.writeEnv(h, 0);
    const f = this.f;
    for (let i = 0; i < 8; i++) {
      const p = this.phys(i), o = n + i * 10;
      h.write(o, 4, f.loOf(p)); h.write(o + 4, 4, f.hiOf(p)); h.write(o + 8, 2, f.v[p * 3 + 2]);
    }
    this.init();
  }
  private frstor(h: FpuHost): void {
    const n = this.envSize(h);
    h.checkOperand(n + 80);
    // Read everything before changing state (a fault leaves the unit as it was).
    const f = this.f;
    for (let i = 0; i < 8; i++) {
      const o = n + i * 10;
      const lo = h.read(o, 4), hi = h.read(o + 4, 4), se = h.read(o + 8, 2);
      this.tmp[i * 3] = lo; this.tmp[i * 3 + 1] = hi; this.tmp[i * 3 + 2] = se;
    }
    this.readEnv(h, 0);
    for (let i = 0; i < 8; i++) {
      const p = this.phys(i);
      f.v[p * 3] = this.tmp[i * 3]; f.v[p * 3 + 1] = this.tmp[i * 3 + 1]; f.v[p * 3 + 2] = this.tmp[i * 3 + 2];
    }
  }
  private readonly tmp = new Uint32Array(24);

  /**
   * FXSAVE (0F AE /0) of the x87 part of the 512-byte image (SDM Vol. 1 10.5.1,
   * table 10-2): FCW, FSW, abridged FTW, FOP, FIP, FCS, FDP, FDS, ST0-ST7 in 16-byte
   * slots. The caller has checked CR0 (#NM), alignment (#GP) and limits.
   */
  fxsave(h: FpuHost): void {
    const f = this.f;
    let ftw = 0;
    for (let p = 0; p < 8; p++) if (((this.empty >>> p) & 1) === 0) ftw |= 1 << p;
    h.write(0, 2, this.fcw); h.write(2, 2, this.sw); h.write(4, 1, ftw); h.write(5, 1, 0);
    h.write(6, 2, this.fop); h.write(8, 4, this.fip); h.write(12, 2, this.fcs); h.write(14, 2, 0);
    h.write(16, 4, this.fdp); h.write(20, 2, this.fds); h.write(22, 2, 0);
    for (let i = 0; i < 8; i++) {
      const p = this.phys(i), o = 32 + i * 16;
      h.write(o, 4, f.loOf(p)); h.write(o + 4, 4, f.hiOf(p)); h.write(o + 8, 2, f.v[p * 3 + 2]);
      h.write(o + 10, 2, 0); h.write(o + 12, 4, 0);
    }
  }
  /**
   * The x87 initial configuration (SDM Vol. 1 13.6), which XRSTOR loads when XSTATE_BV[0] = 0:
   * FNINIT's state, and ST0-ST7 zero as well.
   */
  initComponent(): void {
    this.init();
    this.f.v.fill(0, 0, 24);
  }
  /** FXRSTOR (0F AE /1): the inverse of fxsave (abridged tag bit set = not empty). */
  fxrstor(h: FpuHost): void {
    const cw = h.read(0, 2), sw = h.read(2, 2), ftw = h.read(4, 1), fop = h.read(6, 2);
    const fip = h.read(8, 4), fcs = h.read(12, 2), fdp = h.read(16, 4), fds = h.read(20, 2);
    for (let i = 0; i < 8; i++) {
      const o = 32 + i * 16;
      this.tmp[i * 3] = h.read(o, 4); this.tmp[i * 3 + 1] = h.read(o + 4, 4); this.tmp[i * 3 + 2] = h.read(o + 8, 2);
    }
    this.fcw = (cw & 0x1f7f) | 0x40; this.fsw = sw & ~0x3800; this.top = (sw >>> 11) & 7;
    this.empty = ~ftw & 0xff;
    this.fop = fop & 0x7ff; this.fip = fip; this.fcs = fcs; this.fdp = fdp; this.fds = fds;
    const f = this.f;
    for (let i = 0; i < 8; i++) {
      const p = this.phys(i);
      f.v[p * 3] = this.tmp[i * 3]; f.v[p * 3 + 1] = this.tmp[i * 3 + 1]; f.v[p * 3 + 2] = this.tmp[i * 3 + 2];
    }
    this.applyCw();
    this.syncEs();
  }
}

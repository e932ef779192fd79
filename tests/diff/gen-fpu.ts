// x87 arithmetic (SDM Vol. 1 ch. 8, Vol. 2 F* instructions): random operands of every
// memory format and random control words (precision, rounding, exception masks;
// CR0.NE is set by the variant so an unmasked exception raises #MF at the next
// waiting instruction).
//
// What the generator avoids, and why (see README "x87"):
// - Stack faults (SDM 8.5.1.1). QEMU 7.2 has no tag checks: it reads an empty
//   register's stale value and overwrites a full one, never setting SF/IE. The
//   generator tracks TOP and the tags (they do not depend on values) and only emits
//   instructions whose operands are valid and whose pushes land in empty registers.
// - FNCLEX when an exception is unmasked: it would discard the pending #MF and let
//   the sequence go on from a state the tag tracking cannot know (an unmasked
//   exception leaves TOP unchanged, SDM 8.5). Sequences with unmasked exceptions
//   end with FWAIT, so a pending exception is taken before the dump.
// - FSIN, FCOS, FSINCOS, FPTAN: QEMU 7.2 computes them in host double precision.
//   F2XM1, FYL2X, FYL2XP1 (with arguments in the SDM's domains) and FPATAN are compared:
//   QEMU's are softfloat to the full 64 bits, hvkit's big-float series (fpu.ts).
//
// The dump: FNSTSW AX with the condition codes the SDM leaves undefined cleared
// (tracked per instruction, Vol. 2 "FPU Flags Affected"), and FNSAVE (SDM Vol. 2
// FSAVE) outside the scratch area, placed so its 80 register bytes (ST0..ST7, raw,
// empty ones included) are the record's extras. The full tag word goes to EAX 31:16.
// The environment (with the last-instruction pointers) is not compared.
import { CF, PF, ZF } from "./layout.js";
import type { Prng } from "./prng.js";
import { SeqBuilder } from "./seq.js";
import type { Sequence } from "./seq.js";

const hex = (v: number): string => "0x" + (v >>> 0).toString(16);

/** DS-relative (scratch segment, beyond the 1 KiB scratch area) offset of the FNSAVE register image. */
export const FPU_REGS_AT = 0x500;
/** Where EAX's image (masked FSW, tag word) is assembled, DS-relative. */
const EAX_AT = 0x4d0;

/** Condition-code bits of FSW (SDM 8.1.3.1). */
const C0 = 0x100, C1 = 0x200, C2 = 0x400, C3 = 0x4000;
const CC = C0 | C1 | C2 | C3;

/** How an instruction leaves C0-C3 (SDM Vol. 2, "FPU Flags Affected"). */
const enum Cc {
  /** C1 defined (round-up indicator or 0), C0/C2/C3 undefined: loads, arithmetic, stores, FXCH, FINCSTP ... */
  C1Only,
  /** All four defined: compares, FTST, FXAM, FPREM. */
  All,
  /** C1 set to 0, the others unaffected: FCOMI. */
  C1Keep,
  /** All four undefined: FFREE, FNCLEX. */
  None,
  /** Not affected: FWAIT. */
  Same,
}

/**
 * The instructions after which QEMU 7.2 writes C1 as the SDM says; after any other C1
 * writer QEMU leaves C1 as it was (explained.ts "qemu-x87-c1"), except FPREM1, whose
 * quotient bits QEMU never sets ("qemu-fprem1-quotient"). The predicate there
 * uses this to decide a C1-only difference in EAX.
 */
export const QEMU_C1_WRITERS = /^(fxam|fprem|fincstp|fdecstp)\b/;

/** Mnemonics that write C1 per the SDM (all of Cc.C1Only, Cc.All, Cc.C1Keep). */
export const C1_WRITERS = /^(fld|fild|fadd|fsub|fmul|fdiv|fsqrt|fabs|fchs|frndint|fscale|fxtract|fxch|fst|fist|fincstp|fdecstp|fcom|fucom|ftst|fxam|fprem|f2xm1|fyl2x|fpatan)/;

/** An IEEE double's two dwords, from interesting classes. */
function double(rng: Prng): [number, number] {
  const dv = new DataView(new ArrayBuffer(8));
  switch (rng.int(7)) {
    case 0: dv.setFloat64(0, rng.pick([0, -0, 1, -1, 0.5, 2, 3, 10, 1e308, -1e-308, Infinity, -Infinity, NaN, Math.PI, 1 / 3])); break;
    case 1: dv.setFloat64(0, (rng.int(2000001) - 1000000) / rng.range(1, 1000)); break;
    case 2: dv.setFloat64(0, rng.int(1 << 20)); break;
    case 3: dv.setUint32(0, rng.u32() & 0x800fffff); dv.setUint32(4, rng.u32()); break; // denormals
    default: dv.setUint32(0, rng.u32()); dv.setUint32(4, rng.u32());
  }
  return [dv.getUint32(4), dv.getUint32(0)]; // [low dword, high dword]
}

/** TOP and tags as the SDM defines them (independent of the values). */
class Stack {
  top = 0;
  /** Bit p set: physical register p holds a value. */
  full = 0;
  ok(i: number): boolean { return ((this.full >>> ((this.top + i) & 7)) & 1) === 1; }
  canPush(): boolean { return !this.ok(7); }
  push(): void { this.top = (this.top + 7) & 7; this.full |= 1 << this.top; }
  pop(): void { this.full &= ~(1 << this.top); this.top = (this.top + 1) & 7; }
  free(i: number): void { this.full &= ~(1 << ((this.top + i) & 7)); }
}

/** One candidate instruction: what it needs of the stack and what it does to it. */
interface Op {
  asm: string; reads: number[]; push?: number; pop?: number; cc: Cc; apply?: (s: Stack) => void; def?: number;
  /** A second instruction that must follow (a transcendental after its argument load). */
  then?: Op;
}

export function fpuSequence(rng: Prng, seqNo: number, bits: 16 | 32): Sequence {
  const b = new SeqBuilder(rng, "x87");
  void seqNo;
  // Operands: 16 doubles at scratch+0..7F, 8 dword ints at +80h, 8 word ints at +A0h, 4 qword ints at +C0h.
  const narrow: number[] = [];
  for (let i = 0; i < 16; i++) {
    const [lo, hi] = double(rng);
    // A double that a 24-bit significand holds exactly: normal (or zero, infinity, NaN) with fraction bits 28:0 clear.
    const e = (hi >>> 20) & 0x7ff;
    if ((lo & 0x1fffffff) === 0 && (e !== 0 || ((hi & 0xfffff) | lo) === 0)) narrow.push(i);
    b.pre.push(`mov dword [${hex(i * 8)}], ${hex(lo)}`, `mov dword [${hex(i * 8 + 4)}], ${hex(hi)}`);
  }
  for (let i = 0; i < 8; i++) b.pre.push(`mov dword [${hex(0x80 + i * 4)}], ${hex(rng.value())}`);
  // Transcendental arguments inside the SDM's domains, as floats (exact at any PC): 4 with
  // |x| < 1 - sqrt(2)/2 (F2XM1, FYL2XP1) at +100h, 4 positive ones (FYL2X) at +110h.
  const fv = new DataView(new ArrayBuffer(4));
  for (let i = 0; i < 8; i++) {
    const mag = i < 4 ? (rng.chance(0.25) ? 2 ** -rng.range(10, 60) : 0.29) : rng.pick([1, 2, 1000, 1e30]);
    fv.setFloat32(0, i < 4 ? (rng.u32() / 2 ** 32 * 2 - 1) * mag : (rng.u32() / 2 ** 32) * mag + 2 ** -30);
    b.pre.push(`mov dword [${hex(0x100 + i * 4)}], ${hex(fv.getUint32(0))}`);
  }
  // Control word: all masked mostly; precision 24/53/64 bits; any rounding (SDM 8.1.5).
  // DM stays set: QEMU 7.2 never reports a denormal operand (explained.ts "qemu-x87-de"),
  // so an unmasked #D would change the control flow, not just one FSW bit.
  const masks = (rng.chance(0.8) ? 0x3f : rng.u32() & 0x3f) | 0x02;
  const pc = rng.pick([0, 2, 3]);
  const cw = masks | 0x40 | (pc << 8) | (rng.int(4) << 10);
  // Known register contents: FNINIT keeps the registers (SDM Vol. 2 FINIT), so the
  // previous sequence's values would otherwise show through empty registers.
  b.pre.push("fninit");
  for (let i = 0; i < 8; i++) b.pre.push(`fld qword [${hex(i * 8)}]`);
  b.pre.push("fninit", `mov word [0x3f0], ${hex(cw)}`, "fldcw [0x3f0]");
  // The FNSAVE image is outside the scratch fill: clear it so a faulting sequence shows no stale dump.
  b.pre.push("cld", `mov edi, ${hex(EAX_AT)}`, `mov ecx, ${(FPU_REGS_AT + 80 - EAX_AT) / 4}`, "mov eax, 0", "rep stosd");

  const s = new Stack();
  let undef = CC; // FLDCW leaves C0-C3 undefined (SDM Vol. 2 FLDCW)
  const emit = (op: Op): void => {
    b.add(op.asm, op.def ? { def: op.def } : {});
    if (op.apply) op.apply(s);
    else {
      for (let k = 0; k < (op.push ?? 0); k++) s.push();
      for (let k = 0; k < (op.pop ?? 0); k++) s.pop();
    }
    switch (op.cc) {
      case Cc.C1Only: undef = C0 | C2 | C3; break;
      case Cc.All: undef = 0; break;
      case Cc.C1Keep: undef &= ~C1; break;
      case Cc.None: undef = CC; break;
      case Cc.Same: break;
    }
  };
  const fits = (op: Op): boolean => {
    if (!op.reads.every((i) => s.ok(i))) return false;
    // A push needs ST7 empty (after any pop the instruction does first: none here).
    if (op.push && !s.canPush()) return false;
    return true;
  };
  // QEMU 7.2 rounds a double-precision memory operand to the precision control when it
  // converts it (hardware converts exactly, SDM 8.1.5.2), so with PC = 24 bits only
  // doubles that fit in 24 bits are used (and a float otherwise).
  const m64 = (): string => {
    if (pc !== 0) return `qword [${hex(rng.int(16) * 8)}]`;
    return narrow.length ? `qword [${hex(rng.pick(narrow) * 8)}]` : `dword [${hex(rng.int(32) * 4)}]`;
  };
  const m32 = (): string => `dword [${hex(rng.int(32) * 4)}]`;
  const i = (): number => rng.int(8);
  const j = (): number => rng.range(1, 7);
  const ld = (asm: string): Op => ({ asm, reads: [], push: 1, cc: Cc.C1Only });
  const loadOp = (): Op => rng.pick([
    () => ld(`fld ${m64()}`), () => ld(`fld ${m32()}`), () => ld(`fild dword [${hex(0x80 + rng.int(8) * 4)}]`),
    () => ld(`fild word [${hex(0x80 + rng.int(16) * 2)}]`), () => ld("fld1"), () => ld("fldpi"), () => ld("fldz"),
    () => ld("fldl2t"), () => ld("fldlg2"),
  ])();
  const candidate = (): Op => {
    switch (rng.int(11)) {
      case 0: case 1: {
        const op = rng.pick(["fadd", "fsub", "fsubr", "fmul", "fdiv", "fdivr"]);
        switch (rng.int(4)) {
          case 0: return { asm: `${op} ${m64()}`, reads: [0], cc: Cc.C1Only };
          case 1: return { asm: `${op} ${m32()}`, reads: [0], cc: Cc.C1Only };
          case 2: { const k = i(); return { asm: `${op} st0, st${k}`, reads: [0, k], cc: Cc.C1Only }; }
          default: { const k = j(); return { asm: `${op}p st${k}, st0`, reads: [0, k], pop: 1, cc: Cc.C1Only }; }
        }
      }
      case 2: {
        const op = rng.pick(["fsqrt", "fabs", "fchs", "frndint", "fscale", "fprem", "fprem1", "fxtract", "fxam", "ftst"]);
        if (op === "fxam") return { asm: op, reads: [], cc: Cc.All };
        if (op === "ftst") return { asm: op, reads: [0], cc: Cc.All };
        // QEMU 7.2 rounds FPREM/FPREM1 and FRNDINT results to the precision control (softfloat
        // round-pack with the x87 precision); the SDM makes them exact / PC-independent (8.1.5.2).
        if ((op === "fprem" || op === "fprem1" || op === "frndint") && pc !== 3) return { asm: "fabs", reads: [0], cc: Cc.C1Only };
        if (op === "fprem" || op === "fprem1") return { asm: op, reads: [0, 1], cc: Cc.All };
        if (op === "fscale") return { asm: op, reads: [0, 1], cc: Cc.C1Only };
        if (op === "fxtract") return { asm: op, reads: [0], push: 1, cc: Cc.C1Only };
        return { asm: op, reads: [0], cc: Cc.C1Only };
      }
      case 3: { const k = j(); return { asm: `fxch st${k}`, reads: [0, k], cc: Cc.C1Only }; }
      case 4: {
        if (rng.chance(0.25)) { const k = i(); return { asm: `fld st${k}`, reads: [k], push: 1, cc: Cc.C1Only }; }
        return rng.chance(0.3) ? ld(`fild qword [${hex(0xc0 + rng.int(4) * 8)}]`) : ld(rng.chance(0.5) ? `fld ${m64()}` : `fld ${m32()}`);
      }
      case 5: return rng.pick([
        () => ({ asm: `fist word [${hex(0x200 + rng.int(8) * 2)}]`, reads: [0], cc: Cc.C1Only }),
        () => ({ asm: `fistp dword [${hex(0x210 + rng.int(8) * 4)}]`, reads: [0], pop: 1, cc: Cc.C1Only }),
        () => ({ asm: `fistp qword [${hex(0x230 + rng.int(4) * 8)}]`, reads: [0], pop: 1, cc: Cc.C1Only }),
        () => ({ asm: `fist dword [${hex(0x250 + rng.int(4) * 4)}]`, reads: [0], cc: Cc.C1Only }),
      ])();
      case 6: return rng.pick([
        () => ({ asm: `fst qword [${hex(0x260 + rng.int(4) * 8)}]`, reads: [0], cc: Cc.C1Only }),
        () => ({ asm: `fstp dword [${hex(0x280 + rng.int(4) * 4)}]`, reads: [0], pop: 1, cc: Cc.C1Only }),
        () => ({ asm: `fstp tword [${hex(0x290 + rng.int(4) * 10)}]`, reads: [0], pop: 1, cc: Cc.C1Only }),
      ])();
      case 7: return rng.pick([
        () => { const k = i(); return { asm: `fcom st${k}`, reads: [0, k], cc: Cc.All }; },
        () => ({ asm: `fcomp ${m64()}`, reads: [0], pop: 1, cc: Cc.All }),
        () => { const k = i(); return { asm: `fucom st${k}`, reads: [0, k], cc: Cc.All }; },
        () => ({ asm: "fcompp", reads: [0, 1], pop: 2, cc: Cc.All }),
        () => ({ asm: "fucompp", reads: [0, 1], pop: 2, cc: Cc.All }),
      ])();
      case 8: { const k = j(); return { asm: `fcomi st0, st${k}`, reads: [0, k], cc: Cc.C1Keep, def: ZF | PF | CF }; }
      case 9: {
        // F2XM1, FYL2X, FYL2XP1 on an argument loaded from the in-domain table; FPATAN on any two.
        const t = rng.int(4);
        if (t === 3) return { asm: "fpatan", reads: [0, 1], pop: 1, cc: Cc.C1Only };
        const arg = `fld dword [${hex(t === 1 ? 0x110 + rng.int(4) * 4 : 0x100 + rng.int(4) * 4)}]`;
        const then: Op = t === 0 ? { asm: "f2xm1", reads: [0], cc: Cc.C1Only } : { asm: t === 1 ? "fyl2x" : "fyl2xp1", reads: [0, 1], pop: 1, cc: Cc.C1Only };
        return { asm: arg, reads: t === 0 ? [] : [0], push: 1, cc: Cc.C1Only, then };
      }
      default: return rng.pick([
        () => ({ asm: "fincstp", reads: [], cc: Cc.C1Only, apply: (t: Stack) => { t.top = (t.top + 1) & 7; } }),
        () => ({ asm: "fdecstp", reads: [], cc: Cc.C1Only, apply: (t: Stack) => { t.top = (t.top + 7) & 7; } }),
        () => { const k = i(); return { asm: `ffree st${k}`, reads: [], cc: Cc.None, apply: (t: Stack) => t.free(k) }; },
        () => (masks === 0x3f ? { asm: "fnclex", reads: [], cc: Cc.None } : { asm: "fwait", reads: [], cc: Cc.Same }),
        () => ({ asm: "fwait", reads: [], cc: Cc.Same }),
      ])();
    }
  };
  // Start with a few loads so the arithmetic has operands.
  const loads = rng.range(1, 4);
  for (let k = 0; k < loads; k++) { emit(loadOp()); if (masks !== 0x3f) emit({ asm: "fwait", reads: [], cc: Cc.Same }); }
  const n = rng.range(2, 8);
  // With an exception unmasked, FWAIT follows every instruction: QEMU 7.2 checks for a
  // pending exception only at FWAIT (helper_fwait), not before every waiting x87
  // instruction as the SDM says (8.6, 8.7), so only there do the two agree where #MF comes.
  const unmasked = masks !== 0x3f;
  const wait: Op = { asm: "fwait", reads: [], cc: Cc.Same };
  for (let k = 0; k < n; k++) {
    let op = candidate();
    for (let tries = 0; tries < 20 && !fits(op); tries++) op = candidate();
    if (!fits(op)) op = s.canPush() ? loadOp() : { asm: "fincstp", reads: [], cc: Cc.C1Only, apply: (t: Stack) => { t.top = (t.top + 1) & 7; } };
    emit(op);
    if (unmasked && op.asm !== "fwait") emit(wait);
    if (op.then) { emit(op.then); if (unmasked) emit(wait); }
  }
  // FSW (undefined condition codes cleared, EFLAGS kept) and the tag word into EAX,
  // then the registers through FNSAVE (which needs no valid tags, unlike FSTP).
  const env = bits === 16 ? 14 : 28;
  const ftw = FPU_REGS_AT - env + (bits === 16 ? 4 : 8);
  b.post.push("fnstsw ax");
  if (undef) b.post.push("pushfd", `and ax, ${hex(~undef & 0xffff)}`, "popfd");
  b.post.push(`mov [${hex(EAX_AT)}], ax`, `fnsave [${hex(FPU_REGS_AT - env)}]`,
    `mov ax, [${hex(ftw)}]`, `mov [${hex(EAX_AT + 2)}], ax`, `mov eax, [${hex(EAX_AT)}]`);
  return b.build();
}

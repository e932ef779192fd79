// x87 arithmetic (SDM Vol. 1 ch. 8, Vol. 2 F* instructions): random operands of every
// memory format and random control words (precision, rounding, exception masks;
// CR0.NE is set by the variant so an unmasked exception raises #MF at the next
// waiting instruction). The sequence ends by storing FSW in AX, then ST0..ST7 as
// 80-bit values at scratch+300h (the record's extras). Transcendentals (FSIN, FPTAN,
// F2XM1, FYL2X ...) are left out: QEMU computes them in host double precision.
import { CF, PF, ZF } from "./layout.js";
import type { Prng } from "./prng.js";
import { SeqBuilder } from "./seq.js";
import type { Sequence } from "./seq.js";

const hex = (v: number): string => "0x" + (v >>> 0).toString(16);

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

export function fpuSequence(rng: Prng, seqNo: number): Sequence {
  const b = new SeqBuilder(rng, "x87");
  void seqNo;
  // Operands: 16 doubles at scratch+0..7F, 8 dword ints at +80h, 8 word ints at +A0h, 4 qword ints at +C0h.
  for (let i = 0; i < 16; i++) {
    const [lo, hi] = double(rng);
    b.pre.push(`mov dword [${hex(i * 8)}], ${hex(lo)}`, `mov dword [${hex(i * 8 + 4)}], ${hex(hi)}`);
  }
  for (let i = 0; i < 8; i++) b.pre.push(`mov dword [${hex(0x80 + i * 4)}], ${hex(rng.value())}`);
  // Control word: all masked mostly; precision 24/53/64 bits; any rounding (SDM 8.1.5).
  const masks = rng.chance(0.8) ? 0x3f : rng.u32() & 0x3f;
  const cw = masks | 0x40 | (rng.pick([0, 2, 3]) << 8) | (rng.int(4) << 10);
  b.pre.push("fninit", `mov word [0x3f0], ${hex(cw)}`, "fldcw [0x3f0]");
  const m64 = (): string => `qword [${hex(rng.int(16) * 8)}]`;
  const m32 = (): string => `dword [${hex(rng.int(32) * 4)}]`;
  const st = (): string => `st${rng.int(8)}`;
  // Start with a few loads so the arithmetic has operands.
  const loads = rng.range(1, 4);
  for (let i = 0; i < loads; i++) {
    b.add(rng.pick([`fld ${m64()}`, `fld ${m32()}`, `fild dword [${hex(0x80 + rng.int(8) * 4)}]`, `fild word [${hex(0x80 + rng.int(16) * 2)}]`, "fld1", "fldpi", "fldz", "fldl2t", "fldlg2"]));
  }
  const n = rng.range(2, 8);
  for (let i = 0; i < n; i++) {
    switch (rng.int(10)) {
      case 0: case 1: {
        const op = rng.pick(["fadd", "fsub", "fsubr", "fmul", "fdiv", "fdivr"]);
        switch (rng.int(4)) {
          case 0: b.add(`${op} ${m64()}`); break;
          case 1: b.add(`${op} ${m32()}`); break;
          case 2: b.add(`${op} st0, ${st()}`); break;
          default: b.add(`${op}p ${st() === "st0" ? "st1" : `st${rng.range(1, 7)}`}, st0`);
        }
        break;
      }
      case 2: b.add(rng.pick(["fsqrt", "fabs", "fchs", "frndint", "fscale", "fprem", "fprem1", "fxtract", "fxam", "ftst"])); break;
      case 3: b.add(`fxch st${rng.range(1, 7)}`); break;
      case 4: b.add(rng.pick([`fld ${m64()}`, `fld ${m32()}`, `fld ${st()}`, `fild qword [${hex(0xc0 + rng.int(4) * 8)}]`])); break;
      case 5: b.add(rng.pick([`fist word [${hex(0x200 + rng.int(8) * 2)}]`, `fistp dword [${hex(0x210 + rng.int(8) * 4)}]`, `fistp qword [${hex(0x230 + rng.int(4) * 8)}]`, `fist dword [${hex(0x250 + rng.int(4) * 4)}]`])); break;
      case 6: b.add(rng.pick([`fst qword [${hex(0x260 + rng.int(4) * 8)}]`, `fstp dword [${hex(0x280 + rng.int(4) * 4)}]`, `fstp tword [${hex(0x290 + rng.int(4) * 10)}]`])); break;
      case 7: b.add(rng.pick([`fcom ${st()}`, `fcomp ${m64()}`, `fucom ${st()}`, "fcompp", "fucompp"])); break;
      case 8: b.add(`fcomi st0, st${rng.range(1, 7)}`, { def: ZF | PF | CF }); break;
      default: b.add(rng.pick(["fincstp", "fdecstp", `ffree ${st()}`, "fnclex", "fwait"]));
    }
  }
  // FSW into AX, then ST0..ST7 as 80-bit values with every exception masked (an empty
  // register stores the indefinite QNaN, SDM 8.5.1.2).
  b.post.push("fnstsw ax", "fnclex", "mov word [0x3f2], 0x37f", "fldcw [0x3f2]");
  for (let i = 0; i < 8; i++) b.post.push(`fstp tword [${hex(0x300 + i * 10)}]`);
  return b.build();
}

// A generated sequence and the builder that tracks which arithmetic flags are
// undefined after each instruction (SDM Vol. 1 appendix A, "EFLAGS cross-reference",
// and each instruction's "Flags Affected" in Vol. 2), so the comparer can mask them.
import { ARITH } from "./layout.js";
import type { Prng } from "./prng.js";

export interface Insn {
  /** One or more lines of NASM; the first line is labelled for offsets and fault mapping. */
  asm: string;
}

export interface Sequence {
  /** Lines run after the standard preamble, before the GPR and EFLAGS loads. */
  pre: string[];
  /** Initial EAX, ECX, EDX, EBX, (ESP ignored), EBP, ESI, EDI; ESP is the stack's ESP0. */
  regs: number[];
  /** Initial EFLAGS (loaded with PUSH imm32 / POPFD). */
  eflags: number;
  insns: Insn[];
  /** Flags undefined before each instruction (same length as insns). */
  undefBefore: number[];
  /** Flags undefined after the last instruction. */
  undefEnd: number;
  /** Flags QEMU is known to compute wrongly (explained.ts) before each instruction, and at the end. */
  suspectBefore: number[];
  suspectEnd: number;
  /** Lines after the instructions, before the jump to the dump (not labelled, no flag masking). */
  post: string[];
  /** Code or data placed out of line after the sequence (subroutines, ring-3 bodies). */
  tail: string[];
  /** A short human description ("alu", "call gate ring 3 -> 0", ...). */
  note: string;
}

export interface FlagEffect {
  /** Flags the instruction reads (a read of an undefined flag gets a definer inserted first). */
  reads?: number;
  /** Flags the instruction leaves with defined values. */
  def?: number;
  /** Flags the instruction leaves undefined. */
  undef?: number;
  /**
   * Flags the SDM defines but QEMU is known to get wrong after this instruction (an
   * explained.ts entry names the case): compared, but a reader gets a definer first
   * so the known difference does not spread into registers.
   */
  suspect?: number;
}

/** A flag definer that changes no register: CMP sets all six arithmetic flags (SDM Vol. 2 CMP). */
const DEFINER = "cmp eax, ecx";

export class SeqBuilder {
  readonly insns: Insn[] = [];
  readonly undefBefore: number[] = [];
  readonly suspectBefore: number[] = [];
  undef = 0;
  suspect = 0;
  pre: string[] = [];
  post: string[] = [];
  tail: string[] = [];
  regs: number[];
  eflags: number;
  constructor(readonly rng: Prng, public note: string) {
    this.regs = Array.from({ length: 8 }, () => rng.value());
    // Arithmetic flags and DF random; IF, TF, NT, IOPL clear; bit 1 set (SDM Vol. 1 3.4.3).
    this.eflags = (rng.u32() & (ARITH | 0x400)) | 0x2;
  }
  add(asm: string, fx: FlagEffect = {}): this {
    if ((fx.reads ?? 0) & (this.undef | this.suspect)) {
      this.undefBefore.push(this.undef);
      this.suspectBefore.push(this.suspect);
      this.insns.push({ asm: DEFINER });
      this.undef = 0;
      this.suspect = 0;
    }
    this.undefBefore.push(this.undef);
    this.suspectBefore.push(this.suspect);
    this.insns.push({ asm });
    this.undef = (this.undef & ~(fx.def ?? 0)) | (fx.undef ?? 0);
    // Only a writer of all six arithmetic flags replaces QEMU's whole lazy-flags state; partial
    // writers (rotates, BT, CLC ...) merge into it and carry a wrong state on.
    // Instructions that leave flags undefined may not touch QEMU's state at all (DIV, IDIV).
    this.suspect = (((fx.def ?? 0) & ARITH) === ARITH ? 0 : this.suspect) | (fx.suspect ?? 0);
    return this;
  }
  build(): Sequence {
    return {
      pre: this.pre, regs: this.regs, eflags: this.eflags, insns: this.insns,
      undefBefore: this.undefBefore, undefEnd: this.undef, suspectBefore: this.suspectBefore, suspectEnd: this.suspect, post: this.post, tail: this.tail, note: this.note,
    };
  }
}

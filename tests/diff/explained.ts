// Disagreements where QEMU, not the SDM, is wrong. Each entry names the SDM section
// that decides, says why QEMU differs, and matches exactly the field differences it
// explains. The comparer counts a disagreement as explained only when every differing
// field of it is matched by an entry here; explained ones are counted and listed,
// never hidden.
import type { SeqMeta, Variant } from "./guest.js";
import { C1_WRITERS, QEMU_C1_WRITERS } from "./gen-fpu.js";
import { AF, GDT_SEGMENTS, LDT_COPIES, NO_VECTOR, OF, R, SF } from "./layout.js";
import type { SegDesc } from "./layout.js";

export interface FieldDiff {
  field: string;
  /** Index into the record (layout.ts R). */
  index: number;
  qemu: number;
  hvkit: number;
}

export interface ExplainContext {
  variant: Variant;
  seq: SeqMeta;
  qemu: Uint32Array;
  hvkit: Uint32Array;
}

export interface Explained {
  id: string;
  /** The SDM (or APM) section that decides, e.g. "SDM Vol. 3A 17.3.1.1". */
  sdm: string;
  /** Why QEMU differs from hardware here. */
  why: string;
  /** True when this entry explains this field difference in this sequence. */
  matches(d: FieldDiff, ctx: ExplainContext): boolean;
}

/** Flags the generator marked as known-wrong in QEMU at the point the record describes. */
function suspectAtRecord(ctx: ExplainContext): number {
  const rec = ctx.qemu;
  if (rec[R.Vector] === NO_VECTOR) return ctx.seq.suspectEnd;
  const k = ctx.seq.insns.findIndex((i) => i.addr === rec[R.FaultEip]);
  return k >= 0 ? ctx.seq.insns[k].suspectBefore : ctx.seq.suspectEnd;
}


/** FSW bits (SDM Vol. 1 8.1.3). */
const FSW_DE = 0x2, FSW_C1 = 0x200;
/** C0, C1, C3: the quotient bits Q2, Q0, Q1 of FPREM/FPREM1. */
const FSW_Q = 0x100 | 0x200 | 0x4000;

/**
 * The x87 dump's EAX (FSW in 15:0, full tag word in 31:16; gen-fpu.ts) split into the
 * bits QEMU 7.2 is known not to implement and the rest. Only for records of sequences
 * that reached the dump (a fault record's EAX is the sequence's own value).
 */
function fswParts(d: FieldDiff, ctx: ExplainContext): { de: boolean; c1: boolean; q: boolean; rest: number } {
  const x = (d.qemu ^ d.hvkit) >>> 0;
  if (d.index !== R.Eax || ctx.variant.needs.indexOf("fpu") < 0 || ctx.qemu[R.Vector] !== NO_VECTOR || ctx.hvkit[R.Vector] !== NO_VECTOR) {
    return { de: false, c1: false, q: false, rest: x };
  }
  const last = [...ctx.seq.insns].reverse().find((i) => C1_WRITERS.test(i.asm));
  // FPREM1: QEMU passes no quotient pointer to floatx80_modrem for the IEEE remainder,
  // so Q2, Q1, Q0 (C0, C3, C1) come out 0. FPREM1 is the last writer of all four codes.
  const q = last !== undefined && /^fprem1\b/.test(last.asm) && (d.qemu & x & FSW_Q) === 0 && (x & FSW_Q) !== 0;
  // DE: hvkit reports a denormal operand, QEMU never does.
  const de = (x & FSW_DE) !== 0 && (d.hvkit & FSW_DE) !== 0;
  // C1: QEMU writes it only for FXAM, FPREM/FPREM1 and FINCSTP/FDECSTP; after any other
  // writer it keeps the old value. Decided by the last instruction that writes C1.
  const c1 = (x & FSW_C1) !== 0 && last !== undefined && !QEMU_C1_WRITERS.test(last.asm) && !q;
  return { de, c1, q, rest: x & ~(de ? FSW_DE : 0) & ~(c1 ? FSW_C1 : 0) & ~(q ? FSW_Q : 0) };
}

// ---- Data-segment checks QEMU's TCG does not make (pm32-desc, pm32-ctl)

const GPR_NAMES = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
const SREG_FIELD: Record<string, number> = { es: R.Es, cs: R.Cs, ss: R.Ss, ds: R.Ds, fs: R.Fs, gs: R.Gs };
/** A register operand's 32-bit GPR index and size, or null. */
function gprOf(op: string): { i: number; size: number } | null {
  const r = op.trim();
  let i = GPR_NAMES.indexOf(r);
  if (i >= 0) return { i, size: 4 };
  i = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"].indexOf(r);
  if (i >= 0) return { i, size: 2 };
  i = ["al", "cl", "dl", "bl"].indexOf(r);
  if (i >= 0) return { i, size: 1 };
  i = ["ah", "ch", "dh", "bh"].indexOf(r);
  return i >= 0 ? { i, size: 1 } : null;
}
const MEM = /\[(?:(es|cs|ss|ds|fs|gs):)?(0x[0-9a-f]+|\d+)\]/;

/**
 * The data access of a generated `mov` with an absolute memory operand:
 * segment register, offset, size, write or read. Null for anything else.
 */
function movAccess(asm: string): { sreg: string; off: number; size: number; write: boolean } | null {
  const line = asm.split("\n")[0].trim();
  // SGDT/SIDT store 6 bytes, SLDT/STR m16 2 (SDM Vol. 2); LDS & co. read a 32-bit far pointer.
  const sys = /^(sgdt|sidt|sldt|str)\s+(\[.*\])$/.exec(line);
  const far = /^l[defgs]s\s+\w+,\s*(\[.*\])$/.exec(line);
  const smem = MEM.exec(sys?.[2] ?? far?.[1] ?? "");
  if (smem) return { sreg: smem[1] ?? "ds", off: Number(smem[2]), size: sys && (sys[1] === "sldt" || sys[1] === "str") ? 2 : 6, write: sys !== null };
  const m = /^mov\s+(.+?),\s*(.+)$/.exec(line);
  if (!m) return null;
  const [dst, src] = [m[1].trim(), m[2].trim()];
  const write = MEM.test(dst);
  const mem = MEM.exec(write ? dst : src);
  if (!mem) return null;
  const other = write ? src : dst;
  const kw = /^(byte|word|dword)\s/.exec(write ? dst : other);
  const size = kw ? { byte: 1, word: 2, dword: 4 }[kw[1] as "byte" | "word" | "dword"] : gprOf(other)?.size;
  if (!size) return null;
  return { sreg: mem[1] ?? "ds", off: Number(mem[2]), size, write };
}

/** The descriptor a selector names in the guest's tables (layout.ts); null for system entries or beyond the tables. */
function segDesc(sel: number): SegDesc | null {
  if ((sel & 4) !== 0) {
    const copy = LDT_COPIES[sel >>> 3];
    return copy === undefined ? null : GDT_SEGMENTS.get(copy) ?? null;
  }
  return GDT_SEGMENTS.get(sel & 0xfff8) ?? null;
}

/**
 * Whether the SDM faults on this access through a segment register holding `sel`
 * (already loaded, so its load checks passed): a null selector (3.4.2), a write to a
 * code or read-only data segment or a read of an execute-only one (5.4), an offset
 * outside the limit, expand-down included (5.3).
 */
function accessFaults(sel: number, off: number, size: number, write: boolean): boolean | null {
  if ((sel & 0xfffc) === 0) return true;
  const d = segDesc(sel);
  if (!d) return null;
  const code = (d.access & 0x08) !== 0, rw = (d.access & 0x02) !== 0;
  if (code ? write || !rw : write && !rw) return true;
  const limit = (d.flags & 0x8) !== 0 ? ((d.limit << 12) | 0xfff) >>> 0 : d.limit;
  const last = off + size - 1;
  if (!code && (d.access & 0x04) !== 0) {
    const upper = (d.flags & 0x4) !== 0 ? 0xffffffff : 0xffff;
    return off <= limit || last > upper;
  }
  return last > limit;
}

/** Record fields an instruction may change (generated desc/ctl forms); null: anything. */
function writtenFields(asm: string): number[] | null {
  const line = asm.split("\n")[0].trim();
  const m = /^(\w+)\s*(.*)$/.exec(line);
  if (!m) return null;
  const [mn, rest] = [m[1], m[2]];
  const ops = rest.split(",").map((s) => s.trim());
  const dst = ops[0] ?? "";
  const regOrMem = (op: string): number[] => {
    const g = gprOf(op);
    if (g) return [R.Eax + g.i];
    if (op in SREG_FIELD) return [SREG_FIELD[op]];
    return MEM.test(op) ? [R.ScratchSum] : [];
  };
  switch (mn) {
    case "mov": return regOrMem(dst);
    case "lds": case "les": case "lfs": case "lgs": case "lss":
      return [...regOrMem(dst), SREG_FIELD[mn.slice(1)]];
    case "lar": case "lsl": case "arpl": case "add": case "sub": case "and": case "or": case "xor": case "adc": case "sbb":
      return [...regOrMem(dst), R.Eflags];
    case "cmp": case "test": case "verr": case "verw": return [R.Eflags];
    case "sldt": case "str": case "smsw": case "sgdt": case "sidt": return regOrMem(dst);
    case "push": return [R.Esp];
    case "pop": return [R.Esp, ...regOrMem(dst)];
    // A far JMP to code16 (18h) runs gen-desc's 16-bit tail: MOV AX, imm; ADD AX, BX; JMP back.
    case "jmp": {
      const sel = /^(0x[0-9a-f]+):/.exec(dst);
      if (sel) return (Number(sel[1]) & ~3) === 0x18 ? [R.Cs, R.Eax, R.Eflags] : [R.Cs];
      return /^far\b/.test(dst) ? [R.Cs] : [];
    }
    // INT 40h/41h count in aux and return; INT 42h and the privileged ones end the sequence.
    case "int": return dst === "0x40" || dst === "0x41" ? [R.Aux] : [];
    case "hlt": case "cli": case "clts": case "lgdt": case "out": return [];
    case "in": return [R.Eax];
    // Call gates count in aux (gate_target_params through EAX and ADD); CALL to a conforming segment returns.
    case "call": return [R.Aux, R.Eax, R.Esp, R.Eflags];
    default: return null;
  }
}

/**
 * True when hvkit stopped at instruction k with the fault the SDM requires for its data
 * access (vector and error code checked against the descriptor in hvkit's recorded
 * segment register), and QEMU ran past k without that fault.
 */
/** Fault-class exceptions (SDM 6.15, table 6-1) that reach the guest's 32-bit handlers; #DB is left out (instruction breakpoints keep RF). */
const FAULT_VECTORS = new Set([0, 5, 6, 7, 10, 11, 12, 13, 14, 16, 17, 19]);
const RF_BIT = 0x10000;
/** Flags the comparer masks for this record: undefined at the record's point (compare.ts undefinedFlags). */
function undefAtRecord(ctx: ExplainContext, rec: Uint32Array): number {
  if (rec[R.Vector] === NO_VECTOR) return ctx.seq.undefEnd;
  const k = ctx.seq.insns.findIndex((i) => i.addr === rec[R.FaultEip]);
  if (k >= 0) return ctx.seq.insns[k].undefBefore;
  if (rec[R.FaultEip] === ctx.seq.endAddr) return ctx.seq.undefEnd;
  return ctx.seq.insns.reduce((m, i) => m | i.undefBefore, ctx.seq.undefEnd);
}
/**
 * An EFLAGS difference that is only RF, set in hvkit's image of a fault-class exception
 * frame (a 32-bit gate: the 16-bit frame has no bit 16) and clear in QEMU's record.
 */
function onlyFaultRf(d: FieldDiff, ctx: ExplainContext): boolean {
  if (d.index !== R.Eflags || ctx.variant.mode === "real" || ctx.variant.mode === "pm16") return false;
  const x = (d.qemu ^ d.hvkit) & ~(undefAtRecord(ctx, ctx.qemu) | undefAtRecord(ctx, ctx.hvkit));
  return x === RF_BIT && (d.hvkit & RF_BIT) !== 0 && FAULT_VECTORS.has(ctx.hvkit[R.Vector]);
}

function qemuSkippedSegmentFault(ctx: ExplainContext): number | null {
  const h = ctx.hvkit, q = ctx.qemu, insns = ctx.seq.insns;
  if (h[R.Vector] !== 13 && h[R.Vector] !== 12) return null;
  if (h[R.ErrorCode] !== 0) return null;
  const k = insns.findIndex((i) => i.addr === h[R.FaultEip]);
  if (k < 0) return null;
  const acc = movAccess(insns[k].asm);
  if (!acc) return null;
  const sel = h[SREG_FIELD[acc.sreg]] & 0xffff;
  if (accessFaults(sel, acc.off, acc.size, acc.write) !== true) return null;
  // #SS(0) for SS-relative accesses beyond the limit, #GP(0) for the rest (SDM Vol. 2 MOV, Protected Mode Exceptions).
  const expect = acc.sreg === "ss" && (sel & 0xfffc) !== 0 ? 12 : 13;
  if (h[R.Vector] !== expect) return null;
  if (q[R.Vector] !== NO_VECTOR) {
    const j = insns.findIndex((i) => i.addr === q[R.FaultEip]);
    if (j >= 0 && j <= k) return null;
  }
  return k;
}

/** Whether a generated x87 sequence runs an arithmetic or compare with a signalling-NaN memory operand (decoded from its operand stores). */
function snanMemoryOperand(ctx: ExplainContext): boolean {
  const mem = new Map<number, number>();
  for (const line of ctx.seq.seq.pre) {
    const m = /^mov dword \[(0x[0-9a-f]+)\], (0x[0-9a-f]+)$/.exec(line);
    if (m) mem.set(Number(m[1]), Number(m[2]) >>> 0);
  }
  const stop = ctx.qemu[R.Vector] === NO_VECTOR ? ctx.seq.insns.length : ctx.seq.insns.findIndex((i) => i.addr === ctx.qemu[R.FaultEip]);
  return ctx.seq.insns.slice(0, stop < 0 ? ctx.seq.insns.length : stop).some((i) => {
    const m = /^f(add|sub|subr|mul|div|divr|com|comp|ucom) (dword|qword) \[(0x[0-9a-f]+)\]$/.exec(i.asm);
    if (!m) return false;
    const a = Number(m[3]);
    if (m[2] === "dword") {
      const v = mem.get(a);
      return v !== undefined && ((v >>> 23) & 0xff) === 0xff && (v & 0x7fffff) !== 0 && (v & 0x400000) === 0;
    }
    const lo = mem.get(a), hi = mem.get(a + 4);
    return lo !== undefined && hi !== undefined && ((hi >>> 20) & 0x7ff) === 0x7ff && ((hi & 0xfffff) | lo) !== 0 && (hi & 0x80000) === 0;
  });
}

/** The x87 dump's 8 registers (extras, FNSAVE order ST0..ST7) as [sign<<15|exponent, significand]. */
function x87Regs(rec: Uint32Array): Array<[number, bigint]> {
  const b = new Uint8Array(rec.buffer, rec.byteOffset + R.Extra * 4, 80);
  const out: Array<[number, bigint]> = [];
  for (let i = 0; i < 8; i++) {
    let m = 0n;
    for (let k = 7; k >= 0; k--) m = (m << 8n) | BigInt(b[i * 10 + k]);
    out.push([b[i * 10 + 8] | (b[i * 10 + 9] << 8), m]);
  }
  return out;
}
/** Two 80-bit values one unit in the last place apart (same sign; a carry may change the exponent). */
function oneUlpApart(a: [number, bigint], b: [number, bigint]): boolean {
  if ((a[0] & 0x8000) !== (b[0] & 0x8000)) return false;
  const [lo, hi] = (a[0] & 0x7fff) < (b[0] & 0x7fff) || ((a[0] === b[0]) && a[1] < b[1]) ? [a, b] : [b, a];
  if (lo[0] === hi[0]) return hi[1] - lo[1] === 1n;
  return hi[0] === lo[0] + 1 && lo[1] === 0xffffffffffffffffn && hi[1] === 0x8000000000000000n;
}

export const EXPLAINED: readonly Explained[] = [
  {
    id: "qemu-cmpxchg8b-flags",
    sdm: "SDM Vol. 2A, CMPXCHG8B/CMPXCHG16B, Flags Affected: ZF is set or cleared; CF, PF, AF, SF and OF are unaffected",
    why: "QEMU 7.2 TCG rebuilds the other arithmetic flags from a stale lazy-flags state (the translator's cc_op is not " +
      "written back before the flags are materialised; cf. unicorn-engine/unicorn PR #2373 on gen_compute_eflags), so " +
      "CF/PF/AF/SF/OF come out wrong and other EFLAGS bits (reserved ones, even bits 16-31) can read as 1 until the next flag writer. hvkit keeps them, as the SDM says.",
    matches: (d, ctx) => d.index === R.Eflags && ((d.qemu ^ d.hvkit) & ~suspectAtRecord(ctx)) === 0,
  },
  {
    id: "qemu-x87-de",
    sdm: "SDM Vol. 1 8.5.2 (Denormal Operand Exception #D) and 4.9.1.3; Vol. 2 FLD, FADD ... 'Floating-Point Exceptions: #D'",
    why: "QEMU 7.2's softfloat raises float_flag_input_denormal only when it flushes denormal inputs to zero, which the " +
      "x87 never does, so FSW.DE is never set for a denormal operand. hvkit sets it as the SDM says. The generator keeps " +
      "DM set, so only the sticky DE bit differs (no #MF).",
    matches: (d, ctx) => { const p = fswParts(d, ctx); return p.de && p.rest === 0; },
  },
  {
    id: "qemu-x87-c1",
    sdm: "SDM Vol. 1 8.1.3.1 and table 8-10 (C1: round-up indicator when #P, else 0); Vol. 2 'FPU Flags Affected' of each instruction",
    why: "QEMU 7.2 writes C1 only for FXAM, FPREM/FPREM1 and FINCSTP/FDECSTP; loads, stores, arithmetic, FXCH, FABS/FCHS " +
      "and the compares leave the previous C1 instead of the round-up indicator or 0. Matched only when the last " +
      "instruction of the sequence that writes C1 is one QEMU does not update it for.",
    matches: (d, ctx) => { const p = fswParts(d, ctx); return p.c1 && p.rest === 0; },
  },
  {
    id: "qemu-fprem1-quotient",
    sdm: "SDM Vol. 2A FPREM1, Operation and 'FPU Flags Affected': C0, C3, C1 = Q2, Q1, Q0 of the quotient",
    why: "QEMU 7.2's helper_fprem1 calls floatx80_modrem with mod = false, and softfloat fills the quotient only for " +
      "mod = true, so FPREM1 leaves C0, C3 and C1 at 0. Matched only when FPREM1 is the last condition-code writer and QEMU's bits are 0.",
    matches: (d, ctx) => { const p = fswParts(d, ctx); return p.q && p.rest === 0; },
  },
  {
    id: "qemu-x87-unmasked-store",
    sdm: "SDM Vol. 1 8.5.1.2 and 8.5.4 (#IA, #O unmasked: the destination is not changed; to memory, nothing is stored), Vol. 2 FIST/FST",
    why: "QEMU 7.2 always stores the masked response (integer indefinite, infinity ...) and only then records the " +
      "unmasked exception; the hardware stores nothing. Matched only when both take #MF at the same FWAIT that follows " +
      "a store to memory (the generator puts FWAIT after every instruction when an exception is unmasked) and the " +
      "scratch checksum is the only difference.",
    matches: (d, ctx) => {
      if (d.index !== R.ScratchSum || ctx.variant.needs.indexOf("fpu") < 0) return false;
      const q = ctx.qemu, h = ctx.hvkit;
      if (q[R.Vector] !== 16 || h[R.Vector] !== 16 || q[R.FaultEip] !== h[R.FaultEip]) return false;
      const k = ctx.seq.insns.findIndex((i) => i.addr === q[R.FaultEip]);
      return k > 0 && ctx.seq.insns[k].asm === "fwait" && /^(fstp?|fistp?) (word|dword|qword|tword) \[/.test(ctx.seq.insns[k - 1].asm);
    },
  },
  {
    id: "qemu-x87-snan-memory-operand",
    sdm: "SDM Vol. 1 4.8.3.5 and table 4-7 (x87: an SNaN and a QNaN operand give the QNaN operand)",
    why: "QEMU 7.2 converts an m32/m64 operand to extended in a separate helper (helper_flds_FT0/fldl_FT0) that already " +
      "quiets an SNaN; the operation then sees two QNaNs and returns the one with the larger significand instead of the " +
      "register's QNaN. Matched only for register and memory results (extras, scratch checksum) of sequences that run an " +
      "arithmetic or compare instruction whose memory operand, as generated, is a signalling NaN.",
    matches: (d, ctx) => ctx.variant.needs.indexOf("fpu") >= 0 && (d.index >= R.Extra || d.index === R.ScratchSum) && snanMemoryOperand(ctx),
  },
  {
    id: "qemu-fcomi-unmasked-ia",
    sdm: "SDM Vol. 2A FCOMI/FCOMIP/FUCOMI/FUCOMIP, table 3-22 note: flags not set if an unmasked #IA is generated; OF, SF, AF set to 0 regardless",
    why: "QEMU 7.2 writes ZF, PF, CF = 1, 1, 1 (unordered) for a NaN operand even when IE is unmasked, and keeps OF, SF " +
      "and AF. Matched only when both take #MF at the FWAIT right after an FCOMI, QEMU's ZF/PF/CF are all 1 and hvkit's OF/SF/AF are 0.",
    matches: (d, ctx) => {
      if (d.index !== R.Eflags || ctx.variant.needs.indexOf("fpu") < 0) return false;
      const q = ctx.qemu, h = ctx.hvkit;
      if (q[R.Vector] !== 16 || h[R.Vector] !== 16 || q[R.FaultEip] !== h[R.FaultEip]) return false;
      const k = ctx.seq.insns.findIndex((i) => i.addr === q[R.FaultEip]);
      if (k <= 0 || ctx.seq.insns[k].asm !== "fwait" || !/^fu?comip? /.test(ctx.seq.insns[k - 1].asm)) return false;
      // The #MF frame's RF (hvkit 1, QEMU 0; SDM 17.3.1.1) is the same in every fault record, not an FCOMI effect.
      const rf = (d.hvkit & ~d.qemu) & 0x10000;
      const x = (d.qemu ^ d.hvkit) & ~rf, zpc = 0x45;
      return x !== 0 && (x & ~(OF | SF | AF | zpc)) === 0 && (d.qemu & zpc) === zpc && (d.hvkit & (OF | SF | AF)) === 0;
    },
  },
  {
    id: "qemu-x87-transcendental-ulp",
    sdm: "SDM Vol. 1 8.3.10 (transcendental results within 1 ulp of the exact value); Vol. 2 F2XM1, FYL2X, FYL2XP1, FPATAN",
    why: "QEMU 7.2's softfloat F2XM1/FYL2X/FYL2XP1/FPATAN are polynomial approximations that are not always correctly " +
      "rounded: near a rounding boundary, and in the directed modes, the result can be one ulp off. hvkit evaluates " +
      "them on 192-bit big floats and rounds once (checked against 80-digit decimal arithmetic for the cases seen). " +
      "Both are within the SDM's bound. Matched only for dumped registers that differ by exactly one ulp, in sequences " +
      "that run one of these instructions; and for the scratch checksum when such a register differs and a store follows the instruction.",
    matches: (d, ctx) => {
      if ((d.index < R.Extra && d.index !== R.ScratchSum) || ctx.variant.needs.indexOf("fpu") < 0) return false;
      if (ctx.qemu[R.Vector] !== NO_VECTOR || ctx.hvkit[R.Vector] !== NO_VECTOR) return false;
      const t = ctx.seq.insns.findIndex((i) => /^(f2xm1|fyl2x|fyl2xp1|fpatan)$/.test(i.asm));
      if (t < 0) return false;
      const q = x87Regs(ctx.qemu), h = x87Regs(ctx.hvkit);
      if (d.index === R.ScratchSum) {
        // The one-ulp value was stored: every register equal or one ulp apart, at least one apart, and a store after the instruction.
        let apart = 0;
        for (let r = 0; r < 8; r++) {
          if (q[r][0] === h[r][0] && q[r][1] === h[r][1]) continue;
          if (!oneUlpApart(q[r], h[r])) return false;
          apart++;
        }
        return apart > 0 && ctx.seq.insns.slice(t + 1).some((i) => /^f(i)?stp? /.test(i.asm));
      }
      const off = (d.index - R.Extra) * 4;
      for (let r = Math.floor(off / 10); r <= Math.floor((off + 3) / 10) && r < 8; r++) {
        if (q[r][0] !== h[r][0] || q[r][1] !== h[r][1]) { if (!oneUlpApart(q[r], h[r])) return false; }
      }
      return true;
    },
  },
  {
    id: "qemu-fcomi-osa",
    sdm: "SDM Vol. 2A FCOMI/FCOMIP/FUCOMI/FUCOMIP: 'set the OF, SF and AF flags to zero in the EFLAGS register'",
    why: "QEMU 7.2's helper_fcomi_ST0_FT0 replaces ZF, PF and CF and keeps the other arithmetic flags as they were.",
    matches: (d, ctx) => {
      if (d.index !== R.Eflags || ctx.variant.needs.indexOf("fpu") < 0) return false;
      // A fault frame's RF (hvkit 1, QEMU 0; SDM 17.3.1.1) is not an FCOMI effect: set aside here.
      const rf = ctx.qemu[R.Vector] !== NO_VECTOR ? (d.hvkit & ~d.qemu) & 0x10000 : 0;
      const x = (d.qemu ^ d.hvkit) & ~ctx.seq.undefEnd & ~suspectAtRecord(ctx) & ~rf;
      const stop = ctx.qemu[R.Vector] === NO_VECTOR ? -1 : ctx.seq.insns.findIndex((i) => i.addr === ctx.qemu[R.FaultEip]);
      const ran = stop < 0 ? ctx.seq.insns : ctx.seq.insns.slice(0, stop);
      return x !== 0 && (x & ~(OF | SF | AF)) === 0 && (d.hvkit & x) === 0 && ran.some((i) => /^fu?comip?\b/.test(i.asm));
    },
  },
  {
    id: "qemu-tcg-no-data-segment-checks",
    sdm: "SDM Vol. 3A 5.3 (limit checking, expand-down included), 5.4 (type checking: no writes to code or read-only data " +
      "segments), 3.4.2 (a memory access through a null selector is #GP(0)); Vol. 2 MOV, Protected Mode Exceptions",
    why: "QEMU's TCG checks segment limits, types and null selectors when a segment register is loaded but not on data " +
      "accesses (no limit check in the softmmu load/store path; cf. ghaerr/elks PR #2735: 'On QEMU TCG, segment limits " +
      "aren't checked'). An access the SDM faults on runs on QEMU, and QEMU's record shows whatever the sequence did " +
      "afterwards. Matched only when hvkit's fault is the SDM's for that access (from the descriptor in hvkit's recorded " +
      "segment register), QEMU ran past it, and the field is one the fault record or a later instruction of the sequence writes.",
    matches: (d, ctx) => {
      const k = qemuSkippedSegmentFault(ctx);
      if (k === null) return false;
      if (d.index === R.Vector || d.index === R.ErrorCode || d.index === R.FaultEip) return true;
      if (onlyFaultRf(d, ctx)) return true; // hvkit's #GP/#SS frame has RF; see qemu-no-rf-in-fault-frames
      // The stack window: pushes and the two machines' different fault frames.
      if (d.index >= R.Extra) return ctx.variant.extrasAreStack;
      for (const insn of ctx.seq.insns.slice(k)) {
        const w = writtenFields(insn.asm);
        if (w === null || w.includes(d.index)) return true;
      }
      return false;
    },
  },
  {
    id: "qemu-no-accessed-bit-on-cs-load",
    sdm: "SDM Vol. 3A 3.4.5.1 (type field, accessed bit: set by the processor when it loads the selector into a segment " +
      "register, CS included) and 5.8.1; Vol. 2 LAR (bits 15:8 of the result are the access byte)",
    why: "QEMU's helper_ljmp_protected / helper_lcall_protected load CS from the descriptor without writing the accessed " +
      "bit back (only helper_load_seg for data segments and SS does), so a later LAR of that code segment shows A = 0. " +
      "Matched only for a LAR destination register that differs in bit 8 alone, where hvkit's value names a code segment.",
    matches: (d, ctx) => {
      if (d.index < R.Eax || d.index > R.Edi || ((d.qemu ^ d.hvkit) >>> 0) !== 0x100) return false;
      if ((d.hvkit & 0x100) === 0 || (d.hvkit & 0x1800) !== 0x1800) return false;
      const reg = GPR_NAMES[d.index - R.Eax];
      return ctx.seq.insns.some((i) => {
        const m = /^lar\s+(\w+),/.exec(i.asm);
        return m !== null && gprOf(m[1])?.i === GPR_NAMES.indexOf(reg);
      });
    },
  },
  {
    id: "qemu-pf-rsvd-without-p",
    sdm: "SDM Vol. 3A 4.7, #PF error code: reserved bits are checked only in present entries, so RSVD (bit 3) can be set only if P (bit 0) is also set",
    why: "QEMU 7.1+ mmu_translate (target/i386/tcg/sysemu/excp_helper.c) sets error_code = PG_ERROR_RSVD_MASK at do_fault_rsvd " +
      "and skips PG_ERROR_P_MASK, which the code before the 7.1 rewrite added by falling through to do_fault_protect. hvkit reports P | RSVD.",
    matches: (d, ctx) => d.index === R.ErrorCode && ctx.qemu[R.Vector] === 14 && ctx.hvkit[R.Vector] === 14
      && (d.qemu & 0x9) === 0x8 && d.hvkit === (d.qemu | 0x1),
  },
  {
    id: "qemu-no-rf-in-fault-frames",
    sdm: "SDM Vol. 3A 17.3.1.1 (the EFLAGS image pushed for any fault-class exception other than an instruction-breakpoint " +
      "#DB has RF = 1) and 6.12.1",
    why: "QEMU 7.2's TCG pushes the EFLAGS value as it is when it delivers a fault and does not set RF in the image " +
      "(probe: a #GP frame reads 16h on QEMU, 10016h on hvkit), so the guest's fault records show RF = 0. Matched only when RF is the whole EFLAGS difference, " +
      "hvkit's record is a fault-class exception taken through a 32-bit gate, and hvkit's image has RF set.",
    matches: onlyFaultRf,
  },
];

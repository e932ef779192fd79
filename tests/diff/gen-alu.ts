// Random integer instruction sequences: ALU, shifts and rotates, multiply and
// divide, bit tests, BCD adjust, string instructions, stack operations. Every
// memory operand stays inside the scratch area (DS/ES/FS/GS) or the stack window
// below ESP0 (SS), so the record's checksum and extras see every write.
import { AF, ARITH, CF, ESP0, OF, PF, SF, ZF } from "./layout.js";
import type { Prng } from "./prng.js";
import { SeqBuilder } from "./seq.js";
import type { Sequence } from "./seq.js";

type Size = 8 | 16 | 32;
const REGS: Record<Size, readonly string[]> = {
  8: ["al", "cl", "dl", "bl", "ah", "ch", "dh", "bh"],
  16: ["ax", "cx", "dx", "bx", "bp", "si", "di"],
  32: ["eax", "ecx", "edx", "ebx", "ebp", "esi", "edi"],
};
const PTR: Record<Size, string> = { 8: "byte", 16: "word", 32: "dword" };
const LOGIC = ARITH & ~AF;
const hex = (v: number): string => "0x" + (v >>> 0).toString(16);

/** Condition codes and the flags each reads (SDM Vol. 1 table B-1). */
const CC: ReadonlyArray<readonly [string, number]> = [
  ["o", OF], ["no", OF], ["b", CF], ["ae", CF], ["z", ZF], ["nz", ZF], ["be", CF | ZF], ["a", CF | ZF],
  ["s", SF], ["ns", SF], ["p", PF], ["np", PF], ["l", SF | OF], ["ge", SF | OF], ["le", ZF | SF | OF], ["g", ZF | SF | OF],
];

export class AluGen {
  private label = 0;
  constructor(private readonly rng: Prng, private readonly bits: 16 | 32, private readonly seqNo: number) {}

  private size(): Size {
    return this.rng.pick<Size>([8, 16, 32]);
  }
  private reg(s: Size): string {
    return this.rng.pick(REGS[s]);
  }
  private imm(s: Size): string {
    return hex(this.rng.value() & (s === 8 ? 0xff : s === 16 ? 0xffff : 0xffffffff));
  }

  /**
   * A memory operand of size s, with any setup instructions it needs (added to b first).
   * Forms: direct displacement in either address size, a base register, base+index*scale,
   * an SS-relative BP/EBP form in the stack window; sometimes a segment override.
   */
  private mem(b: SeqBuilder, s: Size, write: boolean): string {
    const r = this.rng;
    const bytes = s / 8;
    const off = (): number => r.int(0x3f0 - bytes);
    const seg = r.chance(0.2) ? r.pick(["es:", "fs:", "gs:"]) : "";
    const ptr = PTR[s];
    switch (r.int(5)) {
      case 0: return `${ptr} [${seg}${this.bits === 16 ? "" : "word "}${hex(off())}]`;
      case 1: return `${ptr} [${seg}${this.bits === 16 ? "dword " : ""}${hex(off())}]`;
      case 2: {
        const base = off() & ~0xf, disp = r.int(0x10 - bytes);
        if (r.chance(0.5)) {
          const br = r.pick(["bx", "si", "di"]);
          b.add(`mov ${br}, ${hex(base)}`);
          return `${ptr} [${seg}${br}+${disp}]`;
        }
        const br = r.pick(["ebx", "esi", "edi", "eax", "ecx", "edx"]);
        b.add(`mov ${br}, ${hex(base)}`);
        return `${ptr} [${seg}${br}+${disp}]`;
      }
      case 3: {
        const scale = r.pick([1, 2, 4, 8]), idx = r.int(0x10);
        const base = r.int(0x300);
        const [br, ir] = r.pick([["ebx", "esi"], ["eax", "edi"], ["edx", "ecx"], ["esi", "ebp"]]);
        b.add(`mov ${br}, ${hex(base)}`).add(`mov ${ir}, ${idx}`);
        return `${ptr} [${seg}${br}+${ir}*${scale}+${r.int(0x40)}]`;
      }
      default: {
        // BP/EBP default to SS (SDM Vol. 1 3.7.4): the stack window [ESP0-50h, ESP0).
        const base = ESP0 - 0x50 + r.int(0x40 - bytes);
        const bp = r.chance(0.5) ? "bp" : "ebp";
        b.add(`mov ebp, ${hex(base)}`);
        void write;
        return `${ptr} [${bp}+${r.int(0x8)}]`;
      }
    }
  }

  /** r/m operand: a register or a memory operand. */
  private rm(b: SeqBuilder, s: Size, write: boolean): string {
    return this.rng.chance(0.6) ? this.reg(s) : this.mem(b, s, write);
  }

  private shiftFx(op: string, s: Size, count: number): { def: number; undef: number; reads: number } {
    const c = count & 0x1f;
    if (c === 0) return { def: 0, undef: 0, reads: 0 };
    if (op === "rol" || op === "ror") return { def: c === 1 ? CF | OF : CF, undef: c === 1 ? 0 : OF, reads: 0 };
    if (op === "rcl" || op === "rcr") return { def: c === 1 ? CF | OF : CF, undef: c === 1 ? 0 : OF, reads: CF };
    // SHL/SHR/SAR: AF undefined; OF only for 1-bit shifts; CF undefined when count >= size (SDM Vol. 2 SAL/SAR/SHL/SHR).
    let undef = AF | (c === 1 ? 0 : OF), def = CF | SF | ZF | PF | (c === 1 ? OF : 0);
    if (c >= s) { undef |= CF; def &= ~CF; }
    return { def, undef, reads: 0 };
  }

  private one(b: SeqBuilder): void {
    const r = this.rng;
    const s = this.size();
    const s1632: Size = r.chance(0.5) ? 16 : 32;
    switch (r.int(24)) {
      case 0: case 1: case 2: case 3: {
        const op = r.pick(["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"]);
        const fx = { reads: op === "adc" || op === "sbb" ? CF : 0, def: ["or", "and", "xor"].includes(op) ? LOGIC : ARITH, undef: ["or", "and", "xor"].includes(op) ? AF : 0 };
        switch (r.int(5)) {
          case 0: b.add(`${op} ${this.reg(s)}, ${this.reg(s)}`, fx); break;
          case 1: b.add(`${op} ${this.reg(s)}, ${this.imm(s)}`, fx); break;
          case 2: { const m = this.mem(b, s, false); b.add(`${op} ${this.reg(s)}, ${m}`, fx); break; }
          case 3: { const m = this.mem(b, s, true); b.add(`${op} ${m}, ${this.reg(s)}`, fx); break; }
          default: {
            const m = this.mem(b, s, true);
            // The sign-extended imm8 form (83 /n) as well as the full immediate.
            const v = s !== 8 && r.chance(0.5) ? `byte ${r.range(-128, 127)}` : this.imm(s);
            b.add(`${op} ${m}, ${v}`, fx);
          }
        }
        return;
      }
      case 4: {
        const op = r.pick(["inc", "dec", "neg", "not"]);
        const fx = op === "not" ? {} : op === "neg" ? { def: ARITH } : { def: ARITH & ~CF };
        b.add(`${op} ${this.rm(b, s, true)}`, fx);
        return;
      }
      case 5: {
        const m = r.chance(0.5) ? this.reg(s) : this.mem(b, s, false);
        b.add(`test ${m}, ${r.chance(0.5) ? this.reg(s) : this.imm(s)}`, { def: LOGIC, undef: AF });
        return;
      }
      case 6: case 7: {
        const op = r.pick(["shl", "shr", "sar", "rol", "ror", "rcl", "rcr"]);
        const dst = this.rm(b, s, true);
        const kind = r.int(3);
        const count = kind === 0 ? 1 : r.int(32);
        if (kind === 2) {
          b.add(`mov cl, ${count}`);
          b.add(`${op} ${dst}, cl`, this.shiftFx(op, s, count));
        } else {
          b.add(`${op} ${dst}, ${count}`, this.shiftFx(op, s, count));
        }
        return;
      }
      case 8: {
        const op = r.pick(["shld", "shrd"]);
        const c = r.range(1, s1632 - 1);
        b.add(`${op} ${this.rm(b, s1632, true)}, ${this.reg(s1632)}, ${c}`,
          { def: CF | SF | ZF | PF | (c === 1 ? OF : 0), undef: AF | (c === 1 ? 0 : OF) });
        return;
      }
      case 9: {
        const fx = { def: CF | OF, undef: SF | ZF | AF | PF };
        switch (r.int(4)) {
          case 0: b.add(`${r.pick(["mul", "imul"])} ${this.rm(b, s, false)}`, fx); break;
          case 1: b.add(`imul ${this.reg(s1632)}, ${this.rm(b, s1632, false)}`, fx); break;
          case 2: b.add(`imul ${this.reg(s1632)}, ${this.rm(b, s1632, false)}, ${r.chance(0.5) ? r.range(-128, 127) : this.imm(s1632)}`, fx); break;
          default: b.add(`imul ${this.reg(s1632)}, ${this.reg(s1632)}, ${r.range(-128, 127)}`, fx);
        }
        return;
      }
      case 10: {
        // Keep most quotients in range: a small high half, a nonzero divisor (sometimes not).
        const hi = s === 8 ? "ah" : s === 16 ? "dx" : "edx";
        if (r.chance(0.7)) b.add(`mov ${hi}, ${r.int(4)}`);
        const divisors = REGS[s].filter((x) => !["al", "ah", "ax", "eax", "dx", "edx"].includes(x));
        const dv = r.chance(0.7) ? r.pick(divisors) : this.mem(b, s, false);
        if (r.chance(0.8) && divisors.includes(dv)) b.add(`or ${dv}, 0x${(0x10 << r.int(3)).toString(16)}`, { def: LOGIC, undef: AF });
        b.add(`${r.pick(["div", "idiv"])} ${dv}`, { undef: ARITH });
        return;
      }
      case 11: {
        const op = r.pick(["bt", "bts", "btr", "btc"]);
        const dst = r.chance(0.7) ? this.reg(s1632) : this.mem(b, s1632, true);
        const src = r.chance(0.5) || !REGS[s1632].includes(dst) ? `${r.int(s1632)}` : this.reg(s1632);
        // With a register bit offset and a register operand the offset is taken modulo the size.
        b.add(`${op} ${dst}, ${src}`, { def: CF, undef: OF | SF | AF | PF });
        return;
      }
      case 12: {
        const dst = r.pick(REGS[s1632]);
        const src: Size = s1632 === 16 ? 8 : r.pick<Size>([8, 16]);
        b.add(`${r.pick(["movzx", "movsx"])} ${dst}, ${this.rm(b, src, false)}`);
        return;
      }
      case 13: {
        switch (r.int(5)) {
          case 0: b.add(`xchg ${this.reg(s)}, ${this.rm(b, s, true)}`); break;
          case 1: b.add(`xadd ${this.rm(b, s, true)}, ${this.reg(s)}`, { def: ARITH }); break;
          case 2: b.add(`cmpxchg ${this.rm(b, s, true)}, ${this.reg(s)}`, { def: ARITH }); break;
          case 3: b.add(`bswap ${r.pick(REGS[32])}`); break;
          default: b.add(`lea ${this.reg(s1632)}, [${r.pick(REGS[32])}+${r.pick(REGS[32])}*${r.pick([1, 2, 4, 8])}+${hex(r.u32() & 0xffff)}]`);
        }
        return;
      }
      case 14: {
        const [cc, reads] = r.pick(CC);
        switch (r.int(3)) {
          case 0: b.add(`set${cc} ${this.rm(b, 8, true)}`, { reads }); break;
          case 1: b.add(`cmov${cc} ${this.reg(s1632)}, ${this.rm(b, s1632, false)}`, { reads }); break;
          default: {
            const l = `L${this.seqNo}_${this.label++}`;
            b.add(`j${cc} short ${l}\n not ${this.reg(32)}\n${l}:`, { reads });
          }
        }
        return;
      }
      case 15: b.add(r.pick(["cbw", "cwde", "cwd", "cdq"])); return;
      case 16: {
        const op = r.pick(["daa", "das", "aaa", "aas", "aam", "aad"]);
        if (op === "daa" || op === "das") b.add(op, { reads: AF | CF, def: CF | AF | SF | ZF | PF, undef: OF });
        else if (op === "aaa" || op === "aas") b.add(op, { reads: AF, def: AF | CF, undef: OF | SF | ZF | PF });
        else b.add(`${op} ${r.chance(0.9) ? r.range(1, 255) : r.pick([0, 10])}`, { def: SF | ZF | PF, undef: OF | AF | CF });
        return;
      }
      case 17: case 18: {
        switch (r.int(7)) {
          case 0: b.add(`push ${this.reg(s1632)}`); break;
          case 1: b.add(`pop ${this.reg(s1632)}`); break;
          case 2: b.add(`push ${s1632 === 16 ? "word" : "dword"} ${this.imm(s1632)}`); break;
          case 3: b.add(`push ${this.mem(b, s1632, false)}`); break;
          case 4: b.add(`pop ${this.mem(b, s1632, true)}`); break;
          case 5: b.add(r.pick(["pushfd", "pushf"]), { reads: ARITH }); break;
          default: b.add(`${r.pick(["pusha", "pushad"])}\n ${r.pick(["popa", "popad"])}`);
        }
        return;
      }
      case 19: {
        b.add(`enter ${r.int(0x20)}, 0\n push ${this.reg(s1632)}\n leave`);
        return;
      }
      case 20: case 21: {
        // String instructions over the scratch area; either address size.
        const a16 = r.chance(0.5);
        const n = r.range(1, 12);
        b.add(`mov esi, ${hex(0x180 + r.int(0x80))}`).add(`mov edi, ${hex(0x180 + r.int(0x80))}`).add(`mov ecx, ${n}`);
        if (r.chance(0.4)) b.add(r.pick(["cld", "std"]));
        const sz = r.pick(["b", "w", "d"]);
        const asz = (this.bits === 16) === a16 ? "" : a16 ? "a16 " : "a32 ";
        const op = r.pick(["movs", "stos", "lods", "cmps", "scas"]);
        const rep = r.chance(0.7) ? (op === "cmps" || op === "scas" ? r.pick(["repe ", "repne "]) : "rep ") : "";
        const fx = op === "cmps" || op === "scas" ? { def: ARITH } : {};
        b.add(`${rep}${asz}${op}${sz}`, fx);
        return;
      }
      case 22: {
        const op = r.pick(["clc", "stc", "cmc", "lahf", "sahf", "xlatb", "bsf", "bsr"]);
        if (op === "cmc") b.add(op, { reads: CF, def: CF });
        else if (op === "clc" || op === "stc") b.add(op, { def: CF });
        else if (op === "lahf") b.add(op, { reads: SF | ZF | AF | PF | CF });
        else if (op === "sahf") b.add(op, { def: SF | ZF | AF | PF | CF });
        else if (op === "xlatb") { b.add(`mov ebx, ${hex(r.int(0x300))}`); b.add(op); }
        else {
          // BSF/BSR leave the destination undefined for a zero source: force a set bit first.
          const src = r.pick(REGS[s1632]);
          b.add(`or ${src}, ${hex(1 << r.int(s1632))}`, { def: LOGIC, undef: AF });
          b.add(`${op} ${this.reg(s1632)}, ${src}`, { def: ZF, undef: CF | OF | SF | AF | PF });
        }
        return;
      }
      default: {
        if (this.bits === 32 || r.chance(0.5)) {
          const m = this.mem(b, 32, true);
          // CF PF AF SF OF are "unaffected" (SDM Vol. 2A CMPXCHG8B); QEMU 7.2 returns garbage in
          // every EFLAGS bit but ZF after it (explained.ts).
          b.add(`cmpxchg8b ${m.replace("dword", "qword")}`, { def: ZF, suspect: ~ZF >>> 0 });
        } else {
          b.add(`${r.pick(["inc", "dec"])} ${this.reg(s)}`, { def: ARITH & ~CF });
        }
      }
    }
  }

  sequence(min = 3, max = 10): Sequence {
    const b = new SeqBuilder(this.rng, "alu");
    // The cmpxchg8b operand must not straddle the scratch end; mem() keeps it below 3F0h.
    const n = this.rng.range(min, max);
    for (let i = 0; i < n; i++) this.one(b);
    return b.build();
  }
}

export function aluSequence(rng: Prng, bits: 16 | 32, seq: number): Sequence {
  return new AluGen(rng, bits, seq).sequence();
}

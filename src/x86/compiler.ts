// Basic-block compiler for the x86 core: turns a run of decoded instructions
// (decoder.ts DecodedInsn) starting at one physical address into one JavaScript
// function, built once with `new Function` and run by X86Cpu.run()'s fast loop
// instead of execDecoded() per instruction.
//
// The generated code performs exactly the state changes execDecoded() would, in
// the same order and through the same memory helpers (rd8/16/32, wr8/16/32,
// push, pop, peek, addSp, shift): only register access, the ALU and the lazy-flag
// bookkeeping are inlined. Lazy flags (cpu.lzOp .. lzMask) are kept in locals
// while no one can observe them and stored back before anything that can fault
// (a fault pushes FLAGS, SDM 20.1.4), before helpers that read flags, and at the
// block's end, so the observable EFLAGS are always the interpreter's.
//
// Block shape: consecutive instructions of the kinds execDecoded supports, up to
// and including the first control transfer (Jcc, JMP, CALL, RET, LOOPcc, JCXZ),
// stopping before an instruction left to the interpreter (Kind.Exec), after
// MAX_INSNS instructions or before the bytes would span more than MAX_BYTES (so a
// block touches at most two 256-byte code blocks of the core's code map).
//
// Contract with the run loop (cpu.ts):
// - the function returns how many instructions it retired; normally `count`,
//   fewer when one of its stores wrote code (cpu.codeEpoch changed): it then
//   stops after that store with EIP at the next instruction, as the interpreter
//   would re-decode there (self-modifying code inside a block);
// - before each instruction that can fault it sets cpu.startEip; the run loop
//   maps that back to the instruction index (CompiledBlock.indexOf) to count
//   `retired` exactly. ESP is never changed before an instruction's last fault.
import { type DecodedInsn, Kind, NO_REG } from "./decoder.js";

/** Instructions per block at most. */
export const MAX_INSNS = 32;
/** Bytes per block at most: with 256-byte code blocks, a block spans at most two. */
export const MAX_BYTES = 256;
/** Executions of a start address (interpreted) before its block is compiled. */
export const HOT_THRESHOLD = 40;

const CF = 0x1, ARITH = 0x8d5;
const LZ_ADD = 1, LZ_SUB = 2, LZ_LOGIC = 3;
const MASK = [0, 0xff, 0xffff, 0, 0xffffffff];
const SIGN = [0, 0x80, 0x8000, 0, 0x80000000];
const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let b = i, p = 1;
  while (b) { p ^= b & 1; b >>= 1; }
  PARITY[i] = p ? 0x4 : 0;
}

/** A compiled block's code: (cpu, cpu.regs) -> instructions retired. */
export type BlockFn = (cpu: unknown, r: Uint32Array) => number;

/** One compiled block, cached by the core per start physical address. */
export class CompiledBlock {
  /** Physical address of the first byte; -1 when dropped. */
  pa = -1;
  /** What the code was compiled for: entry IP, CS base, CS.D, A20 mask. */
  ip = 0;
  csBase = 0;
  code32 = 0;
  a20 = 0;
  /** Instructions in the block. */
  count = 0;
  /** IP of the block's last byte (the run loop checks it against the CS limit). */
  lastIp = 0;
  /** Code-cache generation and the code-map versions of the 1-2 code blocks it spans, when last checked. */
  gtag = -1;
  cb0 = 0; v0 = 0;
  cb1 = 0; v1 = 0;
  /** Start IP of each instruction, for the fault bookkeeping. */
  readonly ips: number[] = [];
  /** The bytes compiled, to revalidate the block after a cache flush. */
  bytes: Uint8Array = new Uint8Array(0);
  /** The generated code. */
  fn: BlockFn = () => 0;

  /** Index of the instruction starting at `ip` (set by the code as cpu.startEip before a fault). */
  indexOf(ip: number): number {
    const i = this.ips.indexOf(ip);
    return i < 0 ? 0 : i;
  }

  /** Whether RAM still holds exactly the bytes this block was compiled from. */
  bytesMatch(ram: Uint8Array): boolean {
    const b = this.bytes, pa = this.pa;
    if (pa < 0 || pa + b.length > ram.length) return false;
    for (let i = 0; i < b.length; i++) if (ram[pa + i] !== b[i]) return false;
    return true;
  }
}

/** Whether this kind ends a block (a control transfer: the next IP is not known statically). */
export function endsBlock(k: Kind): boolean {
  return k === Kind.Jcc || k === Kind.Jmp || k === Kind.Call || k === Kind.Ret || k === Kind.Loop || k === Kind.Jcxz;
}

/** Lazy-flag state known at compile time: pending values in locals, not yet stored in cpu. */
interface Pending {
  op: number;
  size: number;
  dst: string;
  src: string;
  res: string;
  /** INC/DEC: CF is kept apart (a local) and lzMask excludes it. */
  cf: string | null;
}

/**
 * Generate the block's code for `insns` (decoded at consecutive addresses starting
 * at IP `ips[0]`). Returns the function; the caller fills the CompiledBlock.
 */
export function compileBlock(insns: readonly DecodedInsn[], ips: readonly number[]): BlockFn {
  const g = new Gen();
  for (let i = 0; i < insns.length; i++) g.insn(insns[i], ips[i], i, i === insns.length - 1);
  const body = g.finish();
  const factory = new Function("PARITY", `"use strict"; return function block(cpu, r) {\n${body}\n};`) as (p: Uint8Array) => BlockFn;
  return factory(PARITY);
}

/** The generated source of a block (for tests and debugging). */
export function blockSource(insns: readonly DecodedInsn[], ips: readonly number[]): string {
  const g = new Gen();
  for (let i = 0; i < insns.length; i++) g.insn(insns[i], ips[i], i, i === insns.length - 1);
  return g.finish();
}

class Gen {
  private out: string[] = ["const e0 = cpu.codeEpoch;"];
  private pend: Pending | null = null;
  private tmp = 0;
  /** The block set cpu.eip (a control transfer ended it). */
  private eipSet = false;
  private lastNext = 0;
  private count = 0;

  private v(): string { return `t${this.tmp++}`; }
  private emit(s: string): void { this.out.push(s); }

  finish(): string {
    this.flush();
    if (!this.eipSet) this.emit(`cpu.eip = ${this.lastNext};`);
    this.emit(`return ${this.count};`);
    return this.out.join("\n");
  }

  // ---- registers (getReg/setReg of cpu.ts)
  private get(size: number, i: number): string {
    if (size === 1) return i < 4 ? `(r[${i}] & 255)` : `((r[${i - 4}] >>> 8) & 255)`;
    if (size === 2) return `(r[${i}] & 65535)`;
    return `r[${i}]`;
  }
  private set(size: number, i: number, v: string): void {
    if (size === 1) {
      if (i < 4) this.emit(`r[${i}] = (r[${i}] & -256) | (${v} & 255);`);
      else this.emit(`r[${i - 4}] = (r[${i - 4}] & -65281) | ((${v} & 255) << 8);`);
    } else if (size === 2) this.emit(`r[${i}] = (r[${i}] & -65536) | (${v} & 65535);`);
    else this.emit(`r[${i}] = ${v};`);
  }
  /** trunc(size, v) */
  private trunc(size: number, v: string): string {
    return size === 4 ? `(${v} >>> 0)` : `(${v} & ${MASK[size]})`;
  }

  /** Effective-address offset (X86Cpu.eaOf) into a new local. */
  private ea(d: DecodedInsn): string {
    const t = this.v();
    let e = `${d.disp}`;
    if (d.base !== NO_REG) e += ` + r[${d.base}]`;
    if (d.index !== NO_REG) e += ` + ((r[${d.index}] << ${d.scale}) >>> 0)`;
    this.emit(`const ${t} = ${d.asz === 2 ? `(${e}) & 65535` : `(${e}) >>> 0`};`);
    return t;
  }
  private rd(size: number, seg: number, off: string): string {
    return `cpu.rd${size * 8}(${seg}, ${off})`;
  }
  private wr(size: number, seg: number, off: string, v: string): void {
    this.emit(`cpu.wr${size * 8}(${seg}, ${off}, ${v});`);
  }

  // ---- lazy flags
  /** Store pending lazy flags into the core (setLazy / incdec of cpu.ts). */
  private flush(): void {
    const p = this.pend;
    if (p === null) return;
    this.emit(`cpu.lzOp = ${p.op}; cpu.lzSize = ${p.size}; cpu.lzDst = ${p.dst}; cpu.lzSrc = ${p.src}; cpu.lzRes = ${p.res};`);
    if (p.cf !== null) this.emit(`cpu.lzMask = ${ARITH & ~CF}; cpu.flags = (cpu.flags & -2) | ${p.cf};`);
    else this.emit(`cpu.lzMask = ${ARITH};`);
    this.pend = null;
  }
  /** Expression for CF (0/1) as cpu.getCF() would return it now. */
  private cf(): string {
    const p = this.pend;
    if (p === null) return "cpu.getCF()";
    if (p.cf !== null) return p.cf;
    if (p.op === LZ_ADD) return `(${p.res} > ${MASK[p.size]} ? 1 : 0)`;
    if (p.op === LZ_SUB) return `(${p.res} < 0 ? 1 : 0)`;
    return "0";
  }
  /** Expression for ZF as a boolean. */
  private zf(): string {
    const p = this.pend;
    if (p === null) return "cpu.getZF()";
    return p.size === 4 ? `((${p.res} >>> 0) === 0)` : `((${p.res} & ${MASK[p.size]}) === 0)`;
  }
  /** Expression for condition `cc` (X86Cpu.testCC). */
  private cc(cc: number): string {
    const p = this.pend;
    if (p === null) return `cpu.testCC(${cc})`;
    const s = SIGN[p.size];
    const sf = `((${p.res} & ${s}) !== 0)`;
    const of = p.op === LZ_ADD ? `(((${p.dst} ^ ${p.res}) & (${p.src} ^ ${p.res}) & ${s}) !== 0)`
      : p.op === LZ_SUB ? `(((${p.dst} ^ ${p.src}) & (${p.dst} ^ ${p.res}) & ${s}) !== 0)` : "false";
    let e: string;
    switch (cc >> 1) {
      case 0: e = of; break;
      case 1: e = `(${this.cf()} !== 0)`; break;
      case 2: e = this.zf(); break;
      case 3: e = `(${this.cf()} !== 0 || ${this.zf()})`; break;
      case 4: e = sf; break;
      case 5: e = `(PARITY[${p.res} & 255] !== 0)`; break;
      case 6: e = `(${sf} !== ${of})`; break;
      default: e = `(${this.zf()} || ${sf} !== ${of})`; break;
    }
    return cc & 1 ? `!${e}` : e;
  }

  /** X86Cpu.alu: emits the operation, leaves flags pending; returns the truncated result's local. */
  private alu(op: number, size: number, d: string, s: string): string {
    const dv = this.v(), sv = this.v(), rv = this.v();
    this.emit(`const ${dv} = ${d}, ${sv} = ${s};`);
    let expr: string, lz: number;
    switch (op) {
      case 0: expr = `${dv} + ${sv}`; lz = LZ_ADD; break;
      case 1: expr = `${dv} | ${sv}`; lz = LZ_LOGIC; break;
      case 2: expr = `${dv} + ${sv} + ${this.cf()}`; lz = LZ_ADD; break;
      case 3: expr = `${dv} - ${sv} - ${this.cf()}`; lz = LZ_SUB; break;
      case 4: expr = `${dv} & ${sv}`; lz = LZ_LOGIC; break;
      case 6: expr = `${dv} ^ ${sv}`; lz = LZ_LOGIC; break;
      default: expr = `${dv} - ${sv}`; lz = LZ_SUB; break;
    }
    this.emit(`const ${rv} = ${expr};`);
    this.pend = { op: lz, size, dst: dv, src: sv, res: rv, cf: null };
    return this.trunc(size, rv);
  }
  /** X86Cpu.incdec. */
  private incdec(size: number, d: string, dec: boolean): string {
    const cv = this.v(), dv = this.v(), rv = this.v();
    this.emit(`const ${cv} = ${this.cf()}, ${dv} = ${d}, ${rv} = ${dv} ${dec ? "-" : "+"} 1;`);
    this.pend = { op: dec ? LZ_SUB : LZ_ADD, size, dst: dv, src: "1", res: rv, cf: cv };
    return this.trunc(size, rv);
  }

  /** Before an instruction that can fault: the core must hold the flags and know where it is. */
  private faultable(ip: number): void {
    this.flush();
    this.emit(`cpu.startEip = ${ip};`);
  }
  /** After a store: if it wrote code (this block's or any), stop here as the interpreter would re-decode. */
  private stored(next: number, idx: number, last: boolean): void {
    if (last) return;
    this.emit(`if (cpu.codeEpoch !== e0) {`);
    const saved = this.pend;
    this.flush();
    this.pend = saved;
    this.emit(`cpu.eip = ${next}; return ${idx + 1}; }`);
  }
  /** X86Cpu.jumpNear, then EIP; the fault path stores the flags and the fault position first. */
  private jump(d: DecodedInsn, ip: number, target: string): void {
    const t = this.v();
    this.emit(`const ${t} = ${d.osz === 2 ? `(${target}) & 65535` : `(${target}) >>> 0`};`);
    this.emit(`if (${t} > cpu.segLimit[1]) {`);
    const saved = this.pend;
    this.flush();
    this.pend = saved;
    this.emit(`cpu.startEip = ${ip}; cpu.faultCode(13, 0); }`);
    this.emit(`cpu.eip = ${t};`);
  }

  /**
   * SHL/SAL, SHR, SAR of a register by a constant count 1-31: X86Cpu.shift's arithmetic
   * with the count folded in. It sets all arithmetic flags eagerly (setFlags(ARITH, ..)),
   * so pending lazy flags are simply dropped.
   */
  private shiftConst(op: number, size: number, rm: number, c: number): void {
    const bits = size * 8, sign = SIGN[size];
    const dv = this.v(), rv = this.v(), cv = this.v();
    this.emit(`const ${dv} = ${this.get(size, rm)};`);
    let of: string;
    if (op === 5) { // SHR
      const before = c <= bits ? `(${dv} >>> ${c - 1})` : "0";
      this.emit(`const ${cv} = ${before} & 1, ${rv} = ${c >= bits ? "0" : `${dv} >>> ${c}`};`);
      of = `((${before} & ${sign}) !== 0 ? ${0x800} : 0)`;
    } else if (op === 7) { // SAR
      const sd = size === 1 ? `((${dv} << 24) >> 24)` : size === 2 ? `((${dv} << 16) >> 16)` : `(${dv} | 0)`;
      const cc = c >= bits ? bits - 1 : c;
      this.emit(`const ${cv} = ${c >= bits ? `(${sd} < 0 ? 1 : 0)` : `(${sd} >> ${c - 1}) & 1`}, ${rv} = ${this.trunc(size, `(${sd} >> ${cc})`)};`);
      of = "0";
    } else { // SHL, SAL
      if (c <= bits) {
        const cf = c === bits ? `(${dv} & 1)` : `((${dv} >>> ${bits - c}) & 1)`;
        const r = c === bits ? "0" : this.trunc(size, `(${dv} << ${c})`);
        this.emit(`const ${cv} = ${cf}, ${rv} = ${r};`);
      } else this.emit(`const ${cv} = 0, ${rv} = 0;`);
      of = `((((${rv} & ${sign}) !== 0 ? 1 : 0) ^ ${cv}) !== 0 ? ${0x800} : 0)`;
    }
    this.pend = null;
    this.emit(`cpu.lzMask = 0; cpu.flags = (cpu.flags & ${~ARITH}) | ${cv} | ${of} | (${rv} === 0 ? ${0x40} : 0) | ((${rv} & ${sign}) !== 0 ? ${0x80} : 0) | PARITY[${rv} & 255];`);
    this.set(size, rm, rv);
  }

  insn(d: DecodedInsn, ip: number, idx: number, last: boolean): void {
    const nextRaw = ip + d.len;
    const next = d.code32 ? nextRaw >>> 0 : nextRaw & 0xffff;
    this.lastNext = next;
    this.count = idx + 1;
    const size = d.size, mem = d.mod !== 3;
    this.emit(`// ${ip.toString(16)}: kind ${d.kind} op ${d.op.toString(16)}`);
    switch (d.kind) {
      case Kind.AluEG: case Kind.Grp1: {
        const aop = d.sub;
        const src = d.kind === Kind.Grp1 ? `${d.imm}` : this.get(size, d.reg);
        if (!mem) {
          const res = this.alu(aop, size, this.get(size, d.rm), src);
          if (aop !== 7) this.set(size, d.rm, res);
        } else {
          this.faultable(ip);
          const off = this.ea(d);
          const res = this.alu(aop, size, this.rd(size, d.seg, off), src);
          // Flags stay pending until after the write, so a faulting write leaves them as they were.
          if (aop !== 7) { this.wr(size, d.seg, off, res); this.stored(next, idx, last); }
        }
        return;
      }
      case Kind.AluGE: {
        let s: string;
        if (mem) { this.faultable(ip); s = this.rd(size, d.seg, this.ea(d)); } else s = this.get(size, d.rm);
        const sv = this.v();
        this.emit(`const ${sv} = ${s};`);
        const res = this.alu(d.sub, size, this.get(size, d.reg), sv);
        if (d.sub !== 7) this.set(size, d.reg, res);
        return;
      }
      case Kind.AluAI: {
        const res = this.alu(d.sub, size, this.get(size, 0), `${d.imm}`);
        if (d.sub !== 7) this.set(size, 0, res);
        return;
      }
      case Kind.TestEG: {
        let v: string;
        if (mem) { this.faultable(ip); v = this.rd(size, d.seg, this.ea(d)); } else v = this.get(size, d.rm);
        this.alu(4, size, v, this.get(size, d.reg));
        return;
      }
      case Kind.TestAI: this.alu(4, size, this.get(size, 0), `${d.imm}`); return;
      case Kind.MovEG:
        if (!mem) this.set(size, d.rm, this.get(size, d.reg));
        else {
          this.faultable(ip);
          this.wr(size, d.seg, this.ea(d), this.get(size, d.reg));
          this.stored(next, idx, last);
        }
        return;
      case Kind.MovGE:
        if (!mem) this.set(size, d.reg, this.get(size, d.rm));
        else {
          this.faultable(ip);
          const v = this.v();
          this.emit(`const ${v} = ${this.rd(size, d.seg, this.ea(d))};`);
          this.set(size, d.reg, v);
        }
        return;
      case Kind.MovRI: this.set(size, d.reg, `${d.imm}`); return;
      case Kind.MovEI:
        if (!mem) this.set(size, d.rm, `${d.imm}`);
        else {
          this.faultable(ip);
          this.wr(size, d.seg, this.ea(d), `${d.imm}`);
          this.stored(next, idx, last);
        }
        return;
      case Kind.Lea: this.set(size, d.reg, this.ea(d)); return;
      case Kind.IncR: case Kind.DecR:
        this.set(size, d.reg, this.incdec(size, this.get(size, d.reg), d.kind === Kind.DecR));
        return;
      case Kind.IncDecE:
        if (!mem) this.set(size, d.rm, this.incdec(size, this.get(size, d.rm), d.sub === 1));
        else {
          this.faultable(ip);
          const off = this.ea(d);
          const v = this.incdec(size, this.rd(size, d.seg, off), d.sub === 1);
          this.wr(size, d.seg, off, v);
          this.stored(next, idx, last);
        }
        return;
      case Kind.PushR: {
        this.faultable(ip);
        this.emit(`cpu.push(${size}, ${this.get(size, d.reg)});`);
        this.stored(next, idx, last);
        return;
      }
      case Kind.PopR: {
        this.faultable(ip);
        const v = this.v();
        this.emit(`const ${v} = cpu.pop(${size});`);
        this.set(size, d.reg, v);
        return;
      }
      case Kind.Shift: {
        // X86Cpu.shift reads and writes the flags itself.
        const cnt = this.v();
        this.emit(`const ${cnt} = ${d.imm < 0 ? "r[1] & 255" : d.imm};`);
        if (!mem) {
          if (d.imm >= 0 && (d.imm & 0x1f) === 0) return; // count 0: no change at all
          if (d.imm >= 0 && d.sub >= 4) { this.shiftConst(d.sub, size, d.rm, d.imm & 0x1f); return; }
          this.flush();
          const res = this.v();
          this.emit(`const ${res} = cpu.shift(${d.sub}, ${size}, ${this.get(size, d.rm)}, ${cnt});`);
          if (d.imm < 0) this.emit(`if ((${cnt} & 31) !== 0) {`);
          this.set(size, d.rm, res);
          if (d.imm < 0) this.emit("}");
        } else {
          this.faultable(ip);
          const off = this.ea(d), res = this.v(), dv = this.v();
          // X86Cpu.shift sets the flags: check the write first (X86Cpu.wrProbe, SDM 6.5).
          this.emit(`const ${dv} = ${this.rd(size, d.seg, off)};`);
          this.emit(`if ((${cnt} & 31) !== 0) cpu.wrProbe(${size}, ${d.seg}, ${off});`);
          this.emit(`const ${res} = cpu.shift(${d.sub}, ${size}, ${dv}, ${cnt});`);
          this.emit(`if ((${cnt} & 31) !== 0) {`);
          this.wr(size, d.seg, off, res);
          this.stored(next, idx, last);
          this.emit("}");
        }
        return;
      }
      case Kind.Jcc:
        this.emit(`if (${this.cc(d.sub)}) {`);
        this.jump(d, ip, `${next} + ${d.imm}`);
        this.emit(`} else cpu.eip = ${next};`);
        this.eipSet = true;
        return;
      case Kind.Jmp:
        this.jump(d, ip, `${next} + ${d.imm}`);
        this.eipSet = true;
        return;
      case Kind.Call:
        this.faultable(ip);
        this.jump(d, ip, `${next} + ${d.imm}`);
        // X86Cpu.execDecoded: a fault in the push restores EIP, then the fault resets it to startEip anyway.
        this.emit(`cpu.push(${size}, ${next});`);
        this.eipSet = true;
        return;
      case Kind.Ret: {
        this.faultable(ip);
        const t = this.v();
        this.emit(`const ${t} = cpu.peek(${size}, 0);`);
        this.jump(d, ip, t);
        this.emit(`cpu.addSp(${size + d.imm});`);
        this.eipSet = true;
        return;
      }
      case Kind.Loop: {
        const c = this.v();
        if (d.asz === 2) this.emit(`const ${c} = (r[1] - 1) & 65535; r[1] = (r[1] & -65536) | ${c};`);
        else this.emit(`const ${c} = r[1] - 1; r[1] = ${c};`);
        const cond = d.sub === 0xe2 ? `${c} !== 0` : `${c} !== 0 && ${d.sub === 0xe1 ? "" : "!"}${this.zf()}`;
        this.emit(`if (${cond}) {`);
        this.jump(d, ip, `${next} + ${d.imm}`);
        this.emit(`} else cpu.eip = ${next};`);
        this.eipSet = true;
        return;
      }
      case Kind.Jcxz:
        this.emit(`if (${d.asz === 2 ? "(r[1] & 65535)" : "r[1]"} === 0) {`);
        this.jump(d, ip, `${next} + ${d.imm}`);
        this.emit(`} else cpu.eip = ${next};`);
        this.eipSet = true;
        return;
      case Kind.Nop: return;
      default: throw new Error(`compileBlock: kind ${d.kind} is not compilable`);
    }
  }
}


// The x86 core's instruction decoder: turns the bytes of one instruction into a
// DecodedInsn (prefixes, opcode, ModR/M split into registers and an effective-
// address plan, immediates, length), the form X86Cpu caches per physical address
// and executes without re-reading the bytes, and the form a later compiler of hot
// guest code consumes. Encodings: Intel SDM Vol. 2 ch. 2 (tables 2-1, 2-2, 2-3)
// and appendix A (opcode map).
//
// Decoded: the common one-byte integer instructions listed in `Kind`, with
// 66/67 and segment-override prefixes. Everything else (LOCK, REP/REPNE, 0F xx,
// strings, I/O, far transfers, INT, flags and segment loads ...) is left as
// Kind.Exec: the interpreter (X86Cpu.exec) runs it from memory, so adding a kind
// here is an optimisation, never a semantic change.
//
// Real-mode/16-bit and 32-bit operand and address sizes are handled; the decoder
// never reads past `avail` bytes (the caller bounds it by the segment limit, the
// RAM window, the 64 KiB IP wrap and the 15-byte limit, SDM 2.3.11).

/** What the executor does with a decoded instruction. */
export const enum Kind {
  /** Not decoded: X86Cpu.exec interprets the bytes. */
  Exec = 0,
  /** ALU r/m, reg (00-3F forms 0/1): `sub` = ADD OR ADC SBB AND SUB XOR CMP. */
  AluEG,
  /** ALU reg, r/m (forms 2/3). */
  AluGE,
  /** ALU AL/eAX, imm (forms 4/5). */
  AluAI,
  /** 80-83: ALU r/m, imm; `sub` = ModR/M reg; `imm` already sized as the interpreter does. */
  Grp1,
  /** 84/85 TEST r/m, reg. */
  TestEG,
  /** A8/A9 TEST AL/eAX, imm. */
  TestAI,
  /** 88/89 MOV r/m, reg. */
  MovEG,
  /** 8A/8B MOV reg, r/m. */
  MovGE,
  /** B0-BF MOV reg, imm (`reg` is the register, `size` 1 for B0-B7). */
  MovRI,
  /** C6/C7 /0 MOV r/m, imm. */
  MovEI,
  /** 8D LEA reg, m. */
  Lea,
  /** 40-47 INC reg. */
  IncR,
  /** 48-4F DEC reg. */
  DecR,
  /** FE/FF /0 /1 INC/DEC r/m (`sub` 0 INC, 1 DEC). */
  IncDecE,
  /** 50-57 PUSH reg. */
  PushR,
  /** 58-5F POP reg. */
  PopR,
  /** 70-7F Jcc rel8: `sub` = condition, `imm` = sign-extended displacement. */
  Jcc,
  /** EB/E9 JMP rel: `imm` = displacement (rel16/32 unsigned, as fetched). */
  Jmp,
  /** E8 CALL rel. */
  Call,
  /** C3/C2 RET near: `imm` = bytes to release. */
  Ret,
  /** E0/E1/E2 LOOPNE/LOOPE/LOOP: `sub` = opcode, `imm` = sign-extended displacement. */
  Loop,
  /** E3 JCXZ/JECXZ. */
  Jcxz,
  /** C0/C1/D0-D3 shifts and rotates: `sub` = ModR/M reg, `imm` = count, or -1 for CL. */
  Shift,
  /** 90 NOP (without F3: PAUSE stays with the interpreter). */
  Nop,
}

/** No register: an effective-address plan without a base or an index. */
export const NO_REG = 8;

// Segment register indices, x86 Sreg order.
const DS = 3, SS = 2;

/**
 * One decoded instruction. Objects are allocated once per cache slot and
 * overwritten in place when the slot is reused (no allocation per instruction).
 */
export class DecodedInsn {
  /** Physical address of the first byte; -1 when the slot holds nothing valid. */
  pa = -1;
  /** Cache generation and CS.D the bytes were decoded under (owned by the cache). */
  gtag = -1;
  kind: Kind = Kind.Exec;
  /** Bytes, prefixes included. */
  len = 0;
  /** Decoded with a 32-bit default operand/address size (CS.D). */
  code32 = false;
  /** The opcode byte (after prefixes). */
  op = 0;
  /** Operand size and address size after 66/67: 2 or 4. */
  osz = 2;
  asz = 2;
  /** Segment-override prefix (0-5), or -1. */
  segOv = -1;
  /** Operand size of this instruction: 1, 2 or 4. */
  size = 1;
  /** Sub-operation (ALU op, condition, ModR/M reg of a group ...), see Kind. */
  sub = 0;
  // ModR/M
  mod = 3;
  reg = 0;
  rm = 0;
  // Effective-address plan (mod != 3): off = disp + regs[base] + (regs[index] << scale), masked to asz.
  base = NO_REG;
  index = NO_REG;
  scale = 0;
  disp = 0;
  /** Segment of the memory operand, override applied. */
  seg = DS;
  imm = 0;
  /** REP prefix (0, 0xF2 or 0xF3) and LOCK: recorded only by decodeInsn(..., lockRep = true). */
  rep = 0;
  lock = false;
}

function sext8(v: number): number { return (v << 24) >> 24; }

/**
 * Decode the instruction at `b[pa]`, reading at most `avail` bytes. Leaves
 * `d.kind = Kind.Exec` when the instruction is not one the decoder handles or
 * does not fit in `avail` (the interpreter then raises the right fault).
 * Fills every field the kind uses; does not touch `pa`/`gtag`.
 * `lockRep`: decode past LOCK/REP prefixes and record them in `d.lock`/`d.rep` (for
 * callers that check lockability themselves, such as the monitor's memory assist).
 */
export function decodeInsn(d: DecodedInsn, b: Uint8Array, pa: number, avail: number, code32: boolean, lockRep = false): void {
  d.kind = Kind.Exec;
  d.len = 0;
  d.code32 = code32;
  const def = code32 ? 4 : 2;
  let osz = def, asz = def, segOv = -1, other = false, rep = 0, lock = false;
  let i = 0;
  let op = 0;
  for (;;) {
    if (i >= avail) return;
    op = b[pa + i++];
    switch (op) {
      case 0x26: segOv = 0; continue;
      case 0x2e: segOv = 1; continue;
      case 0x36: segOv = 2; continue;
      case 0x3e: segOv = 3; continue;
      case 0x64: segOv = 4; continue;
      case 0x65: segOv = 5; continue;
      case 0x66: osz = 6 - def; continue;
      case 0x67: asz = 6 - def; continue;
      case 0xf0: other = true; lock = true; continue;
      case 0xf2: case 0xf3: other = true; rep = op; continue;
    }
    break;
  }
  // LOCK needs the lockability check and REP changes a few opcodes: the interpreter keeps them.
  if (other && !lockRep) return;
  d.op = op; d.osz = osz; d.asz = asz; d.segOv = segOv; d.rep = rep; d.lock = lock;
  d.mod = 3;

  let kind = Kind.Exec, size = osz, sub = 0, modrm = false, imm = 0; // imm: bytes of immediate (-1: none)
  if (op < 0x40 && (op & 7) < 6) {
    sub = op >> 3;
    switch (op & 7) {
      case 0: kind = Kind.AluEG; size = 1; modrm = true; break;
      case 1: kind = Kind.AluEG; modrm = true; break;
      case 2: kind = Kind.AluGE; size = 1; modrm = true; break;
      case 3: kind = Kind.AluGE; modrm = true; break;
      case 4: kind = Kind.AluAI; size = 1; imm = 1; break;
      default: kind = Kind.AluAI; imm = osz; break;
    }
  } else if (op >= 0x40 && op <= 0x5f) {
    kind = op < 0x48 ? Kind.IncR : op < 0x50 ? Kind.DecR : op < 0x58 ? Kind.PushR : Kind.PopR;
    d.reg = op & 7;
  } else if (op >= 0x70 && op <= 0x7f) {
    kind = Kind.Jcc; sub = op & 15; imm = 1;
  } else if (op >= 0xb0 && op <= 0xbf) {
    kind = Kind.MovRI; d.reg = op & 7;
    if (op < 0xb8) { size = 1; imm = 1; } else imm = osz;
  } else {
    switch (op) {
      case 0x80: case 0x82: kind = Kind.Grp1; size = 1; modrm = true; imm = 1; break;
      case 0x81: kind = Kind.Grp1; modrm = true; imm = osz; break;
      case 0x83: kind = Kind.Grp1; modrm = true; imm = 1; break;
      case 0x84: kind = Kind.TestEG; size = 1; modrm = true; break;
      case 0x85: kind = Kind.TestEG; modrm = true; break;
      case 0x88: kind = Kind.MovEG; size = 1; modrm = true; break;
      case 0x89: kind = Kind.MovEG; modrm = true; break;
      case 0x8a: kind = Kind.MovGE; size = 1; modrm = true; break;
      case 0x8b: kind = Kind.MovGE; modrm = true; break;
      case 0x8d: kind = Kind.Lea; modrm = true; break;
      case 0x90: kind = Kind.Nop; break;
      case 0xa8: kind = Kind.TestAI; size = 1; imm = 1; break;
      case 0xa9: kind = Kind.TestAI; imm = osz; break;
      case 0xc0: kind = Kind.Shift; size = 1; modrm = true; imm = 1; break;
      case 0xc1: kind = Kind.Shift; modrm = true; imm = 1; break;
      case 0xd0: case 0xd2: kind = Kind.Shift; size = 1; modrm = true; break;
      case 0xd1: case 0xd3: kind = Kind.Shift; modrm = true; break;
      case 0xc2: kind = Kind.Ret; imm = 2; break;
      case 0xc3: kind = Kind.Ret; break;
      case 0xc6: kind = Kind.MovEI; size = 1; modrm = true; imm = 1; break;
      case 0xc7: kind = Kind.MovEI; modrm = true; imm = osz; break;
      case 0xe0: case 0xe1: case 0xe2: kind = Kind.Loop; sub = op; imm = 1; break;
      case 0xe3: kind = Kind.Jcxz; imm = 1; break;
      case 0xe8: kind = Kind.Call; imm = osz; break;
      case 0xe9: kind = Kind.Jmp; imm = osz; break;
      case 0xeb: kind = Kind.Jmp; imm = 1; break;
      case 0xfe: kind = Kind.IncDecE; size = 1; modrm = true; break;
      case 0xff: kind = Kind.IncDecE; modrm = true; break;
      default: return;
    }
  }

  if (modrm) {
    i = decodeModrm(d, b, pa, i, avail);
    if (i < 0) return;
    const reg = d.reg;
    // Group opcodes whose other /reg forms the interpreter keeps (#UD, CALL/JMP/PUSH r/m ...).
    if ((op === 0xc6 || op === 0xc7) && reg !== 0) return;
    if ((op === 0xfe || op === 0xff) && reg > 1) return;
    if (op === 0x8d && d.mod === 3) return;
    if (kind === Kind.Grp1 || kind === Kind.Shift || kind === Kind.IncDecE) sub = reg;
  }

  let v = 0;
  if (imm === 1) {
    if (i >= avail) return;
    v = b[pa + i++];
  } else if (imm === 2) {
    if (i + 2 > avail) return;
    v = b[pa + i] | (b[pa + i + 1] << 8); i += 2;
  } else if (imm === 4) {
    if (i + 4 > avail) return;
    v = (b[pa + i] | (b[pa + i + 1] << 8) | (b[pa + i + 2] << 16) | (b[pa + i + 3] << 24)) >>> 0; i += 4;
  }
  // Immediates as the interpreter sizes them.
  switch (kind) {
    case Kind.Jcc: case Kind.Loop: case Kind.Jcxz: v = sext8(v); break;
    case Kind.Jmp: if (op === 0xeb) v = sext8(v); break;
    case Kind.Grp1: if (op === 0x83) v = size === 4 ? sext8(v) >>> 0 : sext8(v) & 0xffff; break;
    case Kind.Shift: if (op >= 0xd0) v = op < 0xd2 ? 1 : -1; break;
  }
  d.imm = v;
  d.size = size;
  d.sub = sub;
  d.len = i;
  d.kind = kind;
}

/**
 * Decode a ModR/M byte at `b[pa + i]` and its SIB and displacement into `d.mod/reg/rm` and,
 * for a memory operand, the effective-address plan (`base`, `index`, `scale`, `disp`,
 * `seg` with `d.segOv` applied), under the address size in `d.asz`. Returns the index
 * after the last byte, or -1 when the bytes do not fit in `avail`.
 */
export function decodeModrm(d: DecodedInsn, b: Uint8Array, pa: number, i: number, avail: number): number {
  if (i >= avail) return -1;
  const m = b[pa + i++];
  const mod = m >> 6, rm = m & 7;
  d.mod = mod; d.reg = (m >> 3) & 7; d.rm = rm;
  if (mod === 3) return i;
  const asz = d.asz, segOv = d.segOv;
  let base = NO_REG, index = NO_REG, scale = 0, disp = 0, seg = DS;
  if (asz === 2) {
    switch (rm) { // SDM table 2-1
      case 0: base = 3; index = 6; break;
      case 1: base = 3; index = 7; break;
      case 2: base = 5; index = 6; seg = SS; break;
      case 3: base = 5; index = 7; seg = SS; break;
      case 4: base = 6; break;
      case 5: base = 7; break;
      case 6:
        if (mod === 0) {
          if (i + 2 > avail) return -1;
          disp = b[pa + i] | (b[pa + i + 1] << 8); i += 2;
        } else { base = 5; seg = SS; }
        break;
      default: base = 3; break;
    }
    if (mod === 1) {
      if (i >= avail) return -1;
      disp = sext8(b[pa + i++]);
    } else if (mod === 2) {
      if (i + 2 > avail) return -1;
      disp = b[pa + i] | (b[pa + i + 1] << 8); i += 2;
    }
  } else { // SDM tables 2-2, 2-3
    let disp32 = false;
    if (rm === 4) {
      if (i >= avail) return -1;
      const sib = b[pa + i++];
      const sb = sib & 7, si = (sib >> 3) & 7;
      if (sb === 5 && mod === 0) disp32 = true;
      else { base = sb; if (sb === 4 || sb === 5) seg = SS; }
      if (si !== 4) { index = si; scale = sib >> 6; }
    } else if (rm === 5 && mod === 0) {
      disp32 = true;
    } else {
      base = rm;
      if (rm === 5) seg = SS;
    }
    if (disp32 || mod === 2) {
      if (i + 4 > avail) return -1;
      disp = (b[pa + i] | (b[pa + i + 1] << 8) | (b[pa + i + 2] << 16) | (b[pa + i + 3] << 24)) >>> 0; i += 4;
    } else if (mod === 1) {
      if (i >= avail) return -1;
      disp = sext8(b[pa + i++]);
    }
  }
  d.base = base; d.index = index; d.scale = scale; d.disp = disp;
  d.seg = segOv >= 0 ? segOv : seg;
  return i;
}

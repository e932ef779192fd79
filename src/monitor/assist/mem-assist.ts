// The monitor's memory assist, shared by the VMX and SVM backends, after NetBSD libnvmm's
// nvmm_assist_mem: the backend reports an EPT violation / nested page fault on an MMIO
// address, the assist decodes the faulting instruction with the x86 core's decoder
// (src/x86/decoder.ts), performs it against guest RAM and the MMIO bus, and updates the
// registers as the instruction would. A device sees only `{ gpa, write, size, data }`.
//
// Emulated (Intel SDM Vol. 2 for each instruction):
// - MOV r/m<->r (88-8B), MOV r/m,imm (C6/C7 /0), MOV AL/eAX<->moffs (A0-A3),
//   MOVZX/MOVSX (0F B6/B7/BE/BF);
// - MOVS, STOS, LODS, CMPS, SCAS, with REP/REPE/REPNE: the source, the destination or both
//   may be MMIO; element by element, honouring EFLAGS.DF and the address size (SI/DI/CX
//   or ESI/EDI/ECX). REP is interruptible (SDM Vol. 2 "REP"): one call does at most
//   `maxElements` and leaves EIP on the instruction so the next exit does the rest;
// - ADD/OR/ADC/SBB/AND/SUB/XOR/CMP r/m,r / r,r/m / r/m,imm (00-3F, 80-83), TEST r/m,r
//   and r/m,imm (84/85, F6/F7 /0 /1), INC/DEC/NOT/NEG r/m, XCHG r/m,r, BT/BTS/BTR/BTC
//   r/m,r and r/m,imm8 (0F A3/AB/B3/BB/BA): EFLAGS as the SDM defines them (SDM Vol. 1
//   3.4.3, appendix A); where the SDM leaves a flag undefined the assist does what the
//   x86 core does (logic ops clear AF; BT* leave OF/SF/AF/PF);
// - shifts and rotates ROL/ROR/RCL/RCR/SHL/SHR/SAR r/m by 1, CL or imm8 (D0-D3, C0/C1):
//   count masked to 5 bits, a count of 0 reads the operand and changes nothing;
// - MUL/IMUL/DIV/IDIV r/m (F6/F7 /4-/7), #DE for a zero divisor or a quotient that does
//   not fit (SDM Vol. 2 DIV, IDIV);
// - CMPXCHG r/m,r (0F B0/B1; the destination is written back when the compare fails),
//   CMPXCHG8B m64 (0F C7 /1: two dword accesses, low first), XADD r/m,r (0F C0/C1);
//   undefined flags of these (shift OF for counts > 1, MUL SF/ZF/PF/AF, DIV all) as the
//   x86 core sets them, so the assist and the core agree;
// - PUSH r/m (FF /6), POP r/m (8F /0), PUSH/POP reg with the stack in MMIO;
// - LOCK where the SDM allows it (else #UD); a read-modify-write is one read and one
//   write on the bus.
// - Segmentation (SDM Vol. 3A 3.4.5, 5.3): limit checks (expand-down included) and, in
//   protected mode, type/present/usable checks: #GP(0), or #SS(0) through SS. In real
//   mode the exception carries no error code (VM entry refuses one, SDM 27.2.1.3).
// - Paging when CR0.PG: `env.translate`, else the assist walks 32-bit or PAE tables
//   itself (SDM Vol. 3A 4.3, 4.4) with the U/S, R/W, CR0.WP and XD checks, and sets the
//   accessed/dirty bits; a refused access is #PF with CR2 in `cr2`. The walk and the
//   segment checks are guest-access.ts, shared with the I/O assist.
// - Instruction bytes are read at CS.base+EIP (through paging), at most 15 (SDM 2.3.11);
//   code in MMIO is Unsupported.
//
// How an access reaches RAM and the bus (the split rule). An access is first cut at a
// linear page boundary (each page translated on its own; both pages are checked before
// anything is read or written, so a fault has no side effect). Each piece is then cut
// where `isMmio` changes, byte by byte: a RAM run goes to `memory`, an MMIO run goes to
// the bus as accesses of 4, 2 or 1 bytes, the largest that fits first. An access wholly
// inside one MMIO page of 1, 2 or 4 bytes is therefore one bus access at its own
// (possibly unaligned) address, as hardware would issue it.
//
// Not emulated: the TF single-step trap after the emulated instruction, debug
// breakpoints, alignment checks (#AC), SMEP/SMAP, reserved-bit checks in page tables
// (the PAE PDPTEs are read from memory, not from the CPU's PDPTE registers), A20
// masking, 64-bit mode, SHLD/SHRD, BSF/BSR, SETcc, CMOVcc, the VMX instructions of group 9
// and far transfers with a memory operand (Unsupported, with the opcode in `message`).
import { isLockable } from "../../x86/cpu.js";
import { DecodedInsn, Kind, NO_REG, decodeInsn, decodeModrm } from "../../x86/decoder.js";
import type { AccessSize, X86State } from "../../x86/types.js";
import type { Bus, GuestMemory } from "../api.js";
import { GuestPageWalk, WALK_PAGE_FAULT, pfErrorBits, segOf, segmentOk } from "./guest-access.js";

export interface MemAssistEnv {
  /** Guest RAM by guest-physical address. */
  readonly memory: GuestMemory;
  /** The MMIO bus: a device sees only {gpa, write, size, data}. */
  readonly mmio: Bus;
  /** True when gpa is not RAM (so it goes to the MMIO bus). */
  isMmio(gpa: number): boolean;
  /**
   * Linear -> guest-physical when the guest has paging on (CR0.PG): -1 if not present or
   * not permitted (then the assist reports #PF with the error code in `pfErrorCode`).
   * Absent: the assist walks the guest's 2-level / PAE page tables itself from CR3/CR4 in `memory`.
   */
  translate?(linear: number, write: boolean, user: boolean, fetch: boolean): number;
  /**
   * Written by `translate` before it returns -1: the #PF error code (SDM Vol. 3A 4.7). The
   * assist sets it to -1 before each call; left at -1 it reports a not-present fault with
   * the access's W/R, U/S and I/D bits.
   */
  pfErrorCode?: number;
}

export const enum MemAssistStatus { Done = 0, Exception = 1, Unsupported = 2 }

/** Elements one call moves for a REP string instruction when the caller does not say. */
export const MEM_ASSIST_MAX_ELEMENTS = 4096;

// EFLAGS (SDM Vol. 1 3.4.3)
const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, DF = 0x400, OF = 0x800, VM = 0x20000;
const ARITH = CF | PF | AF | ZF | SF | OF;
// Segment registers, x86 Sreg order.
const ES = 0, SS = 2, DS = 3;
// Vectors
const DE = 0, UD = 6, SSV = 12, GP = 13, PFV = 14;
const CR0_PE = 0x1, CR0_PG = 0x80000000;

const MASK = [0, 0xff, 0xffff, 0, 0xffffffff];
const SIGN = [0, 0x80, 0x8000, 0, 0x80000000];
const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let b = i, p = 1;
  while (b) { p ^= b & 1; b >>= 1; }
  PARITY[i] = p ? PF : 0;
}

/** What the decoded instruction does (the assist's own view of decoder Kinds and the extra opcodes). */
const enum Op {
  Load, Store, StoreImm, Movzx, Movsx,
  /** r/m = r/m op reg; `sub` 0-7 ALU op, 8 TEST. */
  AluMR,
  /** reg = reg op r/m. */
  AluRM,
  /** r/m = r/m op imm. */
  AluMI,
  IncDec, Not, Neg, Xchg, Bt,
  /** C0/C1/D0-D3: `sub` the ModR/M reg, `imm` the count or -1 for CL. */
  Shift,
  /** F6/F7 /4-/7: `sub` 4 MUL, 5 IMUL, 6 DIV, 7 IDIV. */
  MulDiv,
  Cmpxchg, Cmpxchg8b, Xadd,
  PushM, PopM, PushR, PopR,
  Movs, Stos, Lods, Cmps, Scas,
}
const ALU_TEST = 8;

/** Why the instruction fetch stopped before 15 bytes. */
const enum FetchStop { None, Limit, Fault, Mmio, Unsupported }

/** One memory operand resolved to guest-physical pieces: at most two, one per linear page. */
class MemRef {
  lin = 0;
  gpa0 = 0; n0 = 0;
  gpa1 = 0; n1 = 0;
  // Last translation (within one run): linear page, guest-physical page, checked for write.
  tPage = -1; tGpa = 0; tWrite = false;
}

function isPrefix(b: number): boolean {
  return b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e || b === 0x64 || b === 0x65 ||
    b === 0x66 || b === 0x67 || b === 0xf0 || b === 0xf2 || b === 0xf3;
}

/** Unsigned 32 x 32 -> 64 bits into out[0] (low) and out[1] (high), exact in doubles. */
function mul32(a: number, b: number, out: Uint32Array): void {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  out[0] = ((mid << 16) | (ll & 0xffff)) >>> 0;
  out[1] = (hh + (lh >>> 16) + (hl >>> 16) + Math.floor(mid / 65536)) >>> 0;
}

function hex(v: number, w: number): string { return v.toString(16).padStart(w, "0"); }

/** Emulates one instruction that faulted on MMIO; see the file header. */
export class MemAssist {
  readonly maxElements: number;
  // After Exception: the fault to inject (EIP left at the instruction). The backend sets
  // CR2 from `cr2` when it injects #PF.
  vector = 0;
  errorCode = 0;
  hasErrorCode = false;
  cr2 = 0;
  /** After Unsupported: why (names the opcode); "" otherwise. */
  message = "";
  /** After Done: the instruction completed and EIP moved past it; false after a REP batch that left elements for the next exit. */
  done = false;
  /** Elements a string instruction moved in this call (1 for any other instruction). */
  count = 0;

  readonly #env: MemAssistEnv;
  readonly #d = new DecodedInsn();
  readonly #code = new Uint8Array(16);
  readonly #regs = new Uint32Array(8);
  readonly #a = new MemRef();
  readonly #b = new MemRef();
  readonly #walker = new GuestPageWalk();
  /** MUL/IMUL r/m32: the 64-bit product, low and high dwords. */
  readonly #wide = new Uint32Array(2);
  #st!: X86State;
  #gpa = 0;
  #flags = 0;
  #pe = false;
  #paging = false;
  #user = false;
  #code32 = false;
  #fetchStop = FetchStop.None;
  #fetchGpa = 0;
  // The decoded operation.
  #op = Op.Load;
  #opByte = 0;
  #op0f = false;
  #size = 1;
  #srcSize = 1;
  #sub = 0;
  #imm = 0;
  #bitImm = false;

  constructor(env: MemAssistEnv, maxElements: number = MEM_ASSIST_MAX_ELEMENTS) {
    if (!Number.isInteger(maxElements) || maxElements < 1) {
      throw new RangeError(`mem assist: maxElements must be a positive integer, got ${maxElements}`);
    }
    this.#env = env;
    this.maxElements = maxElements;
  }

  /**
   * Emulate the one instruction at state.cs:eip that faulted on guest-physical `gpa`
   * (an EPT violation / nested page fault on MMIO): perform it against RAM and the MMIO
   * bus, update `state` (GPRs, EIP, EFLAGS) as the instruction would. The operands are
   * recomputed from the instruction as the CPU does (`gpa` only appears in messages).
   * Exception: nothing was accessed, except the completed iterations of a REP string
   * instruction (their registers are in `state`). Unsupported: nothing was done.
   */
  run(state: X86State, gpa: number): MemAssistStatus {
    this.#st = state;
    this.#gpa = gpa;
    this.message = "";
    this.done = false;
    this.count = 0;
    this.#a.tPage = -1; this.#b.tPage = -1;
    const r = this.#regs;
    r[0] = state.eax; r[1] = state.ecx; r[2] = state.edx; r[3] = state.ebx;
    r[4] = state.esp; r[5] = state.ebp; r[6] = state.esi; r[7] = state.edi;
    this.#flags = state.eflags >>> 0;
    const v86 = (this.#flags & VM) !== 0;
    this.#pe = (state.cr0 & CR0_PE) !== 0;
    this.#paging = this.#pe && (state.cr0 & CR0_PG) !== 0;
    // CPL: 3 in virtual-8086 mode, else SS.DPL (the VMCS keeps the CPL there, SDM 25.4.1).
    this.#user = this.#pe && (v86 || ((state.ss.attrib >> 5) & 3) === 3);
    this.#code32 = !v86 && (state.cs.attrib & 0x4000) !== 0;

    const avail = this.#fetch();
    let s = this.#decode(avail);
    if (s !== MemAssistStatus.Done) return s;
    s = this.#exec();
    if (s === MemAssistStatus.Unsupported) return s;
    // Done, or a fault after some REP iterations: the registers say what was done.
    state.eax = r[0]; state.ecx = r[1]; state.edx = r[2]; state.ebx = r[3];
    state.esp = r[4]; state.ebp = r[5]; state.esi = r[6]; state.edi = r[7];
    state.eflags = this.#flags;
    if (s === MemAssistStatus.Done && this.done) {
      const next = state.eip + this.#d.len;
      state.eip = this.#code32 ? next >>> 0 : next & 0xffff;
      // The instruction retired: an STI / MOV SS shadow ends (SDM Vol. 3A 6.8.3).
      state.interruptibility &= ~3;
    }
    return s;
  }

  // ---------------------------------------------------------------- results

  #fault(vector: number, code: number): MemAssistStatus {
    this.vector = vector;
    // Real mode delivers no error code (SDM 20.1.4) and VM entry refuses one there (SDM 27.2.1.3).
    this.hasErrorCode = code >= 0 && this.#pe;
    this.errorCode = this.hasErrorCode ? code : 0;
    return MemAssistStatus.Exception;
  }

  #unsupported(what: string): MemAssistStatus {
    const st = this.#st;
    this.message = `memory assist: ${what} at ${hex(st.cs.selector, 4)}:${hex(st.eip >>> 0, 8)} (MMIO gpa 0x${hex(this.#gpa, 8)})`;
    return MemAssistStatus.Unsupported;
  }

  #opcodeName(): string {
    return this.#op0f ? `opcode 0F ${hex(this.#opByte, 2).toUpperCase()}` : `opcode ${hex(this.#opByte, 2).toUpperCase()}`;
  }

  // ---------------------------------------------------------------- fetch and decode

  /** Read up to 15 instruction bytes at CS:EIP into #code; returns how many, #fetchStop says why it stopped early. */
  #fetch(): number {
    const st = this.#st, cs = st.cs, env = this.#env, code = this.#code;
    this.#fetchStop = FetchStop.None;
    let page = -1, pageGpa = 0;
    for (let n = 0; n < 15; n++) {
      const off = st.eip + n;
      if (off > cs.limit) { this.#fetchStop = FetchStop.Limit; return n; }
      const lin = (cs.base + off) >>> 0;
      let gpa = lin;
      if (this.#paging) {
        const p = lin - (lin & 0xfff);
        if (p !== page) {
          const g = this.#translate(lin, false, true);
          if (g < 0) { this.#fetchStop = g === -1 ? FetchStop.Fault : FetchStop.Unsupported; return n; }
          page = p; pageGpa = g - (lin & 0xfff);
        }
        gpa = pageGpa + (lin & 0xfff);
      }
      if (env.isMmio(gpa)) { this.#fetchStop = FetchStop.Mmio; this.#fetchGpa = gpa; return n; }
      code[n] = env.memory.read8(gpa);
    }
    return 15;
  }

  /** The instruction needs bytes the fetch could not read: the fault that stopped it. */
  #truncated(avail: number): MemAssistStatus {
    switch (this.#fetchStop) {
      case FetchStop.Fault: return MemAssistStatus.Exception; // #translate set the #PF
      case FetchStop.Unsupported: return MemAssistStatus.Unsupported; // message set
      case FetchStop.Mmio:
        return this.#unsupported(avail === 0
          ? `instruction fetch from MMIO (gpa 0x${hex(this.#fetchGpa, 8)}) cannot be emulated`
          : `instruction continues into MMIO (gpa 0x${hex(this.#fetchGpa, 8)}) and cannot be emulated`);
      default: return this.#fault(GP, 0); // CS limit, or longer than 15 bytes (SDM 2.3.11)
    }
  }

  #decode(avail: number): MemAssistStatus {
    const c = this.#code, d = this.#d;
    let p = 0;
    while (p < avail && isPrefix(c[p])) p++;
    if (p >= avail) return this.#truncated(avail);
    decodeInsn(d, c, 0, avail, this.#code32, true);
    this.#op0f = false;
    this.#opByte = c[p];
    const s = d.kind !== Kind.Exec ? this.#fromKind() : this.#decodeExtra(p, avail);
    if (s !== MemAssistStatus.Done) return s;
    if (d.lock && !isLockable(this.#opByte, (d.mod << 6) | (d.reg << 3) | d.rm, this.#op0f)) return this.#fault(UD, -1);
    return s;
  }

  /** Map an instruction the core's decoder decoded. */
  #fromKind(): MemAssistStatus {
    const d = this.#d;
    this.#size = d.size;
    this.#sub = d.sub;
    this.#imm = d.imm;
    switch (d.kind) {
      case Kind.MovEG: this.#op = Op.Store; break;
      case Kind.MovGE: this.#op = Op.Load; break;
      case Kind.MovEI: this.#op = Op.StoreImm; break;
      case Kind.AluEG: this.#op = Op.AluMR; break;
      case Kind.AluGE: this.#op = Op.AluRM; break;
      case Kind.Grp1: this.#op = Op.AluMI; break;
      case Kind.TestEG: this.#op = Op.AluMR; this.#sub = ALU_TEST; break;
      case Kind.IncDecE: this.#op = Op.IncDec; break;
      case Kind.PushR: this.#op = Op.PushR; this.#size = d.osz; return MemAssistStatus.Done;
      case Kind.PopR: this.#op = Op.PopR; this.#size = d.osz; return MemAssistStatus.Done;
      case Kind.Shift: this.#op = Op.Shift; break;
      default:
        return this.#unsupported(`${this.#opcodeName()} has no memory operand to emulate`);
    }
    if (d.mod === 3) return this.#unsupported(`${this.#opcodeName()} with a register operand has no memory operand to emulate`);
    return MemAssistStatus.Done;
  }

  /** The opcodes the core's decoder leaves to its interpreter: strings, moffs, 0F forms, groups 3/5, XCHG, POP r/m. */
  #decodeExtra(p: number, avail: number): MemAssistStatus {
    const c = this.#code, d = this.#d;
    const op = c[p];
    let i = p + 1;
    d.mod = 3;
    let modrm = false, mem = true;
    this.#size = op & 1 ? d.osz : 1;
    switch (op) {
      case 0x0f: {
        if (i >= avail) return this.#truncated(avail);
        const op2 = c[i++];
        this.#op0f = true;
        this.#opByte = op2;
        this.#size = d.osz;
        switch (op2) {
          case 0xb6: case 0xb7: case 0xbe: case 0xbf:
            this.#op = op2 >= 0xbe ? Op.Movsx : Op.Movzx;
            this.#srcSize = op2 & 1 ? 2 : 1;
            modrm = true;
            break;
          case 0xa3: case 0xab: case 0xb3: case 0xbb:
            this.#op = Op.Bt; this.#sub = (op2 >> 3) & 3; this.#bitImm = false; modrm = true;
            break;
          case 0xb0: case 0xb1: case 0xc0: case 0xc1:
            this.#op = op2 < 0xc0 ? Op.Cmpxchg : Op.Xadd; this.#size = op2 & 1 ? d.osz : 1; modrm = true;
            break;
          case 0xc7: // group 9: /1 CMPXCHG8B m64; /6 /7 are the VMX instructions (SDM Vol. 2, appendix A table A-6)
            i = decodeModrm(d, c, 0, i, avail);
            if (i < 0) return this.#truncated(avail);
            if (d.reg === 6 || d.reg === 7) return this.#unsupported(`${this.#opcodeName()} /${d.reg} (a VMX instruction) is not emulated`);
            if (d.reg !== 1 || d.mod === 3) return this.#fault(UD, -1);
            this.#op = Op.Cmpxchg8b; this.#size = 4;
            break;
          case 0xba:
            i = decodeModrm(d, c, 0, i, avail);
            if (i < 0) return this.#truncated(avail);
            if (d.reg < 4) return this.#fault(UD, -1);
            if (i >= avail) return this.#truncated(avail);
            this.#op = Op.Bt; this.#sub = d.reg - 4; this.#bitImm = true; this.#imm = c[i++];
            break;
          default:
            return this.#unsupported(`${this.#opcodeName()} is not emulated`);
        }
        break;
      }
      case 0xa0: case 0xa1: case 0xa2: case 0xa3: { // MOV AL/eAX <-> moffs: an address-size offset, no ModR/M
        const n = d.asz;
        if (i + n > avail) return this.#truncated(avail);
        d.disp = n === 2 ? c[i] | (c[i + 1] << 8) : (c[i] | (c[i + 1] << 8) | (c[i + 2] << 16) | (c[i + 3] << 24)) >>> 0;
        i += n;
        d.mod = 0; d.reg = 0; d.base = NO_REG; d.index = NO_REG; d.scale = 0;
        d.seg = d.segOv >= 0 ? d.segOv : DS;
        this.#op = op < 0xa2 ? Op.Load : Op.Store;
        break;
      }
      case 0xa4: case 0xa5: this.#op = Op.Movs; mem = false; break;
      case 0xa6: case 0xa7: this.#op = Op.Cmps; mem = false; break;
      case 0xaa: case 0xab: this.#op = Op.Stos; mem = false; break;
      case 0xac: case 0xad: this.#op = Op.Lods; mem = false; break;
      case 0xae: case 0xaf: this.#op = Op.Scas; mem = false; break;
      case 0x86: case 0x87: this.#op = Op.Xchg; modrm = true; break;
      case 0x8f:
        i = decodeModrm(d, c, 0, i, avail);
        if (i < 0) return this.#truncated(avail);
        if (d.reg !== 0) return this.#unsupported(`opcode 8F /${d.reg} is not emulated`);
        this.#op = Op.PopM; this.#size = d.osz;
        break;
      case 0xf6: case 0xf7:
        i = decodeModrm(d, c, 0, i, avail);
        if (i < 0) return this.#truncated(avail);
        switch (d.reg) {
          case 0: case 1: { // TEST r/m, imm
            const n = this.#size;
            if (i + n > avail) return this.#truncated(avail);
            this.#imm = n === 1 ? c[i] : n === 2 ? c[i] | (c[i + 1] << 8) : (c[i] | (c[i + 1] << 8) | (c[i + 2] << 16) | (c[i + 3] << 24)) >>> 0;
            i += n;
            this.#op = Op.AluMI; this.#sub = ALU_TEST;
            break;
          }
          case 2: this.#op = Op.Not; break;
          case 3: this.#op = Op.Neg; break;
          default: this.#op = Op.MulDiv; this.#sub = d.reg; break;
        }
        break;
      case 0xfe: case 0xff:
        // /0 /1 (INC/DEC) are decoded by decodeInsn; here only PUSH r/m.
        i = decodeModrm(d, c, 0, i, avail);
        if (i < 0) return this.#truncated(avail);
        if (op !== 0xff || d.reg !== 6) return this.#unsupported(`${this.#opcodeName()} /${d.reg} is not emulated`);
        this.#op = Op.PushM; this.#size = d.osz;
        break;
      default:
        // Includes an instruction decodeInsn knows that ran out of bytes.
        if (avail < 15 && this.#fetchStop !== FetchStop.None) return this.#truncated(avail);
        return this.#unsupported(`${this.#opcodeName()} is not emulated`);
    }
    if (modrm) {
      i = decodeModrm(d, c, 0, i, avail);
      if (i < 0) return this.#truncated(avail);
    }
    if (mem && d.mod === 3) return this.#unsupported(`${this.#opcodeName()} with a register operand has no memory operand to emulate`);
    d.len = i;
    return MemAssistStatus.Done;
  }

  // ---------------------------------------------------------------- execution

  #exec(): MemAssistStatus {
    const d = this.#d, size = this.#size, a = this.#a, b = this.#b;
    let s: MemAssistStatus;
    this.count = 1;
    switch (this.#op) {
      case Op.Load:
        if ((s = this.#resolve(a, d.seg, this.#ea(), size, false)) !== MemAssistStatus.Done) return s;
        this.#setReg(size, d.reg, this.#load(a, size));
        break;
      case Op.Store:
      case Op.StoreImm:
        if ((s = this.#resolve(a, d.seg, this.#ea(), size, true)) !== MemAssistStatus.Done) return s;
        this.#store(a, size, this.#op === Op.Store ? this.#getReg(size, d.reg) : this.#imm);
        break;
      case Op.Movzx:
      case Op.Movsx: {
        const n = this.#srcSize;
        if ((s = this.#resolve(a, d.seg, this.#ea(), n, false)) !== MemAssistStatus.Done) return s;
        let v = this.#load(a, n);
        if (this.#op === Op.Movsx) v = n === 1 ? (v << 24) >> 24 : (v << 16) >> 16;
        this.#setReg(size, d.reg, v);
        break;
      }
      case Op.AluMR:
      case Op.AluMI: {
        const sub = this.#sub, writes = sub !== 7 && sub !== ALU_TEST;
        if ((s = this.#resolve(a, d.seg, this.#ea(), size, writes)) !== MemAssistStatus.Done) return s;
        const v = this.#load(a, size);
        const res = this.#alu(sub, size, v, this.#op === Op.AluMR ? this.#getReg(size, d.reg) : this.#imm);
        if (writes) this.#store(a, size, res);
        break;
      }
      case Op.AluRM: {
        if ((s = this.#resolve(a, d.seg, this.#ea(), size, false)) !== MemAssistStatus.Done) return s;
        const res = this.#alu(this.#sub, size, this.#getReg(size, d.reg), this.#load(a, size));
        if (this.#sub !== 7) this.#setReg(size, d.reg, res);
        break;
      }
      case Op.IncDec:
      case Op.Not:
      case Op.Neg:
      case Op.Xchg: {
        if ((s = this.#resolve(a, d.seg, this.#ea(), size, true)) !== MemAssistStatus.Done) return s;
        const v = this.#load(a, size);
        let res: number;
        switch (this.#op) {
          case Op.IncDec: { // CF is kept (SDM Vol. 2 INC, DEC)
            const cf = this.#flags & CF;
            res = this.#alu(this.#sub === 0 ? 0 : 5, size, v, 1);
            this.#flags = (this.#flags & ~CF) | cf;
            break;
          }
          case Op.Not: res = ~v & MASK[size]; break; // no flags
          case Op.Neg: res = this.#alu(5, size, 0, v); break; // CF = source != 0
          default: res = this.#getReg(size, d.reg); this.#setReg(size, d.reg, v); break;
        }
        this.#store(a, size, res);
        break;
      }
      case Op.Bt: return this.#bt();
      case Op.Shift: {
        // A count of 0 (after masking to 5 bits) reads the operand and changes nothing, as the core does.
        const cnt = (this.#imm < 0 ? this.#regs[1] & 0xff : this.#imm) & 0x1f;
        if ((s = this.#resolve(a, d.seg, this.#ea(), size, cnt !== 0)) !== MemAssistStatus.Done) return s;
        const v = this.#load(a, size);
        if (cnt !== 0) this.#store(a, size, this.#shift(this.#sub, size, v, cnt));
        break;
      }
      case Op.MulDiv: {
        if ((s = this.#resolve(a, d.seg, this.#ea(), size, false)) !== MemAssistStatus.Done) return s;
        if ((s = this.#muldiv(this.#sub, size, this.#load(a, size))) !== MemAssistStatus.Done) return s;
        break;
      }
      case Op.Cmpxchg: {
        // SDM Vol. 2 CMPXCHG: flags as CMP accumulator, destination; the destination is written either way.
        if ((s = this.#resolve(a, d.seg, this.#ea(), size, true)) !== MemAssistStatus.Done) return s;
        const v = this.#load(a, size), acc = this.#getReg(size, 0);
        this.#alu(7, size, acc, v);
        if (acc === v) this.#store(a, size, this.#getReg(size, d.reg));
        else { this.#store(a, size, v); this.#setReg(size, 0, v); }
        break;
      }
      case Op.Xadd: {
        // SDM Vol. 2 XADD: TEMP <- SRC + DEST; SRC <- DEST; DEST <- TEMP; flags as ADD.
        if ((s = this.#resolve(a, d.seg, this.#ea(), size, true)) !== MemAssistStatus.Done) return s;
        const v = this.#load(a, size);
        const sum = this.#alu(0, size, v, this.#getReg(size, d.reg));
        this.#store(a, size, sum);
        this.#setReg(size, d.reg, v);
        break;
      }
      case Op.Cmpxchg8b: {
        // SDM Vol. 2 CMPXCHG8B: EDX:EAX against m64; equal: m64 <- ECX:EBX, ZF = 1; else EDX:EAX <- m64
        // and m64 is written back, ZF = 0. Two dword accesses on the bus (low first), both checked first.
        const off = this.#ea(), hiOff = d.asz === 2 ? (off + 4) & 0xffff : (off + 4) >>> 0;
        if ((s = this.#resolve(a, d.seg, off, 4, true)) !== MemAssistStatus.Done) return s;
        if ((s = this.#resolve(b, d.seg, hiOff, 4, true)) !== MemAssistStatus.Done) return s;
        const r = this.#regs, lo = this.#load(a, 4), hi = this.#load(b, 4);
        if (lo === r[0] && hi === r[2]) {
          this.#store(a, 4, r[3]); this.#store(b, 4, r[1]);
          this.#flags |= ZF;
        } else {
          this.#store(a, 4, lo); this.#store(b, 4, hi);
          r[0] = lo; r[2] = hi;
          this.#flags &= ~ZF;
        }
        break;
      }
      case Op.PushR:
      case Op.PushM: {
        let v: number;
        if (this.#op === Op.PushM) {
          if ((s = this.#resolve(b, d.seg, this.#ea(), size, false)) !== MemAssistStatus.Done) return s;
        }
        const sp = this.#ss32() ? (this.#regs[4] - size) >>> 0 : (this.#regs[4] - size) & 0xffff;
        if ((s = this.#resolve(a, SS, sp, size, true)) !== MemAssistStatus.Done) return s;
        if (this.#op === Op.PushM) v = this.#load(b, size);
        else v = this.#getReg(size, d.reg); // PUSH ESP pushes the value before the push
        this.#store(a, size, v);
        this.#setSp(sp);
        break;
      }
      case Op.PopR:
      case Op.PopM: {
        const oldSp = this.#regs[4];
        const sp = this.#ss32() ? oldSp : oldSp & 0xffff;
        if ((s = this.#resolve(b, SS, sp, size, false)) !== MemAssistStatus.Done) return s;
        this.#setSp(this.#ss32() ? (sp + size) >>> 0 : (sp + size) & 0xffff);
        if (this.#op === Op.PopM) {
          // ESP is incremented before the destination address is computed (SDM Vol. 2 POP).
          if ((s = this.#resolve(a, d.seg, this.#ea(), size, true)) !== MemAssistStatus.Done) {
            this.#regs[4] = oldSp;
            return s;
          }
          this.#store(a, size, this.#load(b, size));
        } else {
          this.#setReg(size, d.reg, this.#load(b, size)); // POP ESP: the popped value wins
        }
        break;
      }
      default: return this.#string();
    }
    this.done = true;
    return MemAssistStatus.Done;
  }

  /** MOVS/CMPS/STOS/LODS/SCAS, with REP (SDM Vol. 2 "REP/REPE/REPZ/REPNE/REPNZ"). */
  #string(): MemAssistStatus {
    const d = this.#d, size = this.#size, a = this.#a, b = this.#b, r = this.#regs;
    const op = this.#op, rep = d.rep, amask = d.asz === 2 ? 0xffff : 0xffffffff;
    const srcSeg = d.segOv >= 0 ? d.segOv : DS;
    let left = rep !== 0 ? (r[1] & amask) >>> 0 : 1;
    this.count = 0;
    if (left === 0) { this.done = true; return MemAssistStatus.Done; }
    for (let n = 0; n < this.maxElements; n++) {
      let s: MemAssistStatus;
      // Resolve every operand of the element before touching any (a fault has no side effect).
      if (op === Op.Movs || op === Op.Lods || op === Op.Cmps) {
        if ((s = this.#resolve(a, srcSeg, this.#idx(6, amask), size, false)) !== MemAssistStatus.Done) return s;
      }
      if (op !== Op.Lods) {
        if ((s = this.#resolve(b, ES, this.#idx(7, amask), size, op === Op.Movs || op === Op.Stos)) !== MemAssistStatus.Done) return s;
      }
      switch (op) {
        case Op.Movs: this.#store(b, size, this.#load(a, size)); break;
        case Op.Stos: this.#store(b, size, this.#getReg(size, 0)); break;
        case Op.Lods: this.#setReg(size, 0, this.#load(a, size)); break;
        case Op.Cmps: { const x = this.#load(a, size); this.#alu(7, size, x, this.#load(b, size)); break; }
        default: this.#alu(7, size, this.#getReg(size, 0), this.#load(b, size)); break; // SCAS
      }
      if (op !== Op.Stos && op !== Op.Scas) this.#advance(6, size, amask);
      if (op !== Op.Lods) this.#advance(7, size, amask);
      this.count++;
      if (rep === 0) { this.done = true; return MemAssistStatus.Done; }
      left--;
      r[1] = ((r[1] & ~amask) | (left & amask)) >>> 0;
      if (left === 0) { this.done = true; return MemAssistStatus.Done; }
      if (op === Op.Cmps || op === Op.Scas) {
        const zf = (this.#flags & ZF) !== 0;
        if (rep === 0xf3 ? !zf : zf) { this.done = true; return MemAssistStatus.Done; }
      }
    }
    return MemAssistStatus.Done; // batch bound reached: EIP stays, the next exit continues
  }

  /** BT/BTS/BTR/BTC (SDM Vol. 2 BT): a register bit offset is signed and may address beyond the operand. */
  #bt(): MemAssistStatus {
    const d = this.#d, size = this.#size, bits = size * 8;
    let off = this.#ea(), bit: number;
    if (this.#bitImm) bit = this.#imm & (bits - 1);
    else {
      bit = this.#getReg(size, d.reg);
      const sbit = size === 2 ? (bit << 16) >> 16 : bit | 0;
      const delta = size * Math.floor(sbit / bits);
      off = d.asz === 2 ? (off + delta) & 0xffff : (off + delta) >>> 0;
      bit &= bits - 1;
    }
    const kind = this.#sub;
    const s = this.#resolve(this.#a, d.seg, off, size, kind !== 0);
    if (s !== MemAssistStatus.Done) return s;
    const v = this.#load(this.#a, size), m = (1 << bit) >>> 0;
    // CF = the bit; OF, SF, AF, PF undefined (kept, as the core does), ZF kept.
    this.#flags = (this.#flags & ~CF) | ((v & m) !== 0 ? CF : 0);
    if (kind !== 0) this.#store(this.#a, size, kind === 1 ? v | m : kind === 2 ? v & ~m : v ^ m);
    this.done = true;
    return MemAssistStatus.Done;
  }

  #szp(size: number, r: number): number {
    r = (r & MASK[size]) >>> 0;
    return (r === 0 ? ZF : 0) | ((r & SIGN[size]) !== 0 ? SF : 0) | PARITY[r & 0xff];
  }
  #setFlags(mask: number, v: number): void { this.#flags = (this.#flags & ~mask) | v; }

  /**
   * Shifts and rotates (SDM Vol. 2 "RCL/RCR/ROL/ROR", "SAL/SAR/SHL/SHR"), `count` already
   * masked to 5 bits and not 0. Rotates change only CF and OF; shifts set CF, OF, SF, ZF, PF
   * and clear AF (undefined in the SDM: what the core does). OF for counts above 1 (undefined)
   * and SAR's OF = 0 follow the core too.
   */
  #shift(op: number, size: number, d: number, count: number): number {
    const bits = size * 8, m = MASK[size], sign = SIGN[size];
    let r: number, cf: number, of: number;
    switch (op) {
      case 0: { // ROL
        const c = count & (bits - 1);
        r = c === 0 ? d : ((d << c) | (d >>> (bits - c))) & m;
        cf = r & 1;
        of = ((r & sign) !== 0 ? 1 : 0) ^ cf;
        this.#setFlags(CF | OF, cf | (of ? OF : 0));
        return r >>> 0;
      }
      case 1: { // ROR
        const c = count & (bits - 1);
        r = c === 0 ? d : ((d >>> c) | (d << (bits - c))) & m;
        cf = (r & sign) !== 0 ? 1 : 0;
        of = cf ^ (((r << 1) & sign) !== 0 ? 1 : 0);
        this.#setFlags(CF | OF, cf | (of ? OF : 0));
        return r >>> 0;
      }
      case 2: { // RCL: through CF, a 9/17/33-bit rotate
        const c = size === 4 ? count : count % (bits + 1);
        r = d; cf = this.#flags & CF;
        for (let i = 0; i < c; i++) {
          const out = (r & sign) !== 0 ? 1 : 0;
          r = (r * 2 + cf) % (m + 1);
          cf = out;
        }
        of = ((r & sign) !== 0 ? 1 : 0) ^ cf;
        this.#setFlags(CF | OF, cf | (of ? OF : 0));
        return r >>> 0;
      }
      case 3: { // RCR
        const c = size === 4 ? count : count % (bits + 1);
        r = d; cf = this.#flags & CF;
        for (let i = 0; i < c; i++) {
          const out = r & 1;
          r = ((r >>> 1) | (cf ? sign : 0)) >>> 0;
          cf = out;
        }
        of = (((r << 1) ^ r) & sign) !== 0 ? OF : 0;
        this.#setFlags(CF | OF, cf | of);
        return r >>> 0;
      }
      case 4: case 6: { // SHL/SAL
        if (count < bits) { cf = (d >>> (bits - count)) & 1; r = (d << count) & m; }
        else { cf = count === bits ? d & 1 : 0; r = 0; }
        of = ((r & sign) !== 0 ? 1 : 0) ^ cf;
        this.#setFlags(ARITH, cf | (of ? OF : 0) | this.#szp(size, r));
        return r >>> 0;
      }
      case 5: { // SHR: OF = the MSB before the last 1-bit step
        const before = count <= bits ? d >>> (count - 1) : 0;
        cf = before & 1;
        r = count >= bits ? 0 : d >>> count;
        this.#setFlags(ARITH, cf | ((before & sign) !== 0 ? OF : 0) | this.#szp(size, r));
        return r >>> 0;
      }
      default: { // SAR: OF = 0
        const sd = size === 1 ? (d << 24) >> 24 : size === 2 ? (d << 16) >> 16 : d | 0;
        const c = count >= bits ? bits - 1 : count;
        cf = count >= bits ? (sd < 0 ? 1 : 0) : (sd >> (c - 1)) & 1;
        r = (sd >> c) & m;
        this.#setFlags(ARITH, cf | this.#szp(size, r));
        return r >>> 0;
      }
    }
  }

  /**
   * MUL/IMUL/DIV/IDIV with the r/m operand `s` (SDM Vol. 2): AL/AX/EAX with AH/DX/EDX.
   * MUL/IMUL: CF = OF = the upper half is significant; SF, ZF, PF of the low half and AF
   * cleared (undefined: what the core does). DIV/IDIV: flags unchanged (undefined); a zero
   * divisor or a quotient that does not fit is #DE, with no register changed.
   */
  #muldiv(op: number, size: number, s: number): MemAssistStatus {
    const r = this.#regs;
    switch (op) {
      case 4: { // MUL
        let hi: number, lo: number;
        if (size === 1) { const p = (r[0] & 0xff) * s; this.#setReg(2, 0, p); hi = p >>> 8; lo = p & 0xff; }
        else if (size === 2) { const p = (r[0] & 0xffff) * s; this.#setReg(2, 0, p); this.#setReg(2, 2, p >>> 16); hi = p >>> 16; lo = p & 0xffff; }
        else { mul32(r[0], s, this.#wide); r[0] = this.#wide[0]; r[2] = this.#wide[1]; lo = this.#wide[0]; hi = this.#wide[1]; }
        this.#setFlags(ARITH, (hi !== 0 ? CF | OF : 0) | this.#szp(size, lo));
        return MemAssistStatus.Done;
      }
      case 5: { // IMUL
        let ovf: boolean, lo: number;
        if (size === 1) { const p = ((r[0] << 24) >> 24) * ((s << 24) >> 24); this.#setReg(2, 0, p); lo = p & 0xff; ovf = p !== ((p << 24) >> 24); }
        else if (size === 2) { const p = ((r[0] << 16) >> 16) * ((s << 16) >> 16); this.#setReg(2, 0, p); this.#setReg(2, 2, p >> 16); lo = p & 0xffff; ovf = p !== ((p << 16) >> 16); }
        else {
          const a = r[0] | 0, b = s | 0, w = this.#wide;
          mul32(Math.abs(a) >>> 0, Math.abs(b) >>> 0, w);
          if ((a < 0) !== (b < 0) && (w[0] | w[1]) !== 0) { w[0] = (~w[0] + 1) >>> 0; w[1] = (~w[1] + (w[0] === 0 ? 1 : 0)) >>> 0; }
          r[0] = w[0]; r[2] = w[1]; lo = w[0];
          ovf = w[1] !== ((w[0] | 0) < 0 ? 0xffffffff : 0);
        }
        this.#setFlags(ARITH, (ovf ? CF | OF : 0) | this.#szp(size, lo));
        return MemAssistStatus.Done;
      }
      case 6: { // DIV
        if (s === 0) return this.#fault(DE, -1);
        if (size === 1) {
          const n = r[0] & 0xffff, q = Math.floor(n / s);
          if (q > 0xff) return this.#fault(DE, -1);
          this.#setReg(2, 0, ((n % s) << 8) | q);
        } else if (size === 2) {
          const n = (r[2] & 0xffff) * 65536 + (r[0] & 0xffff), q = Math.floor(n / s);
          if (q > 0xffff) return this.#fault(DE, -1);
          this.#setReg(2, 0, q); this.#setReg(2, 2, n % s);
        } else if (r[2] === 0) {
          const n = r[0];
          r[0] = Math.floor(n / s); r[2] = n % s;
        } else { // a 64-bit dividend: rare, BigInt is exact
          const n = (BigInt(r[2]) << 32n) | BigInt(r[0]), bs = BigInt(s), q = n / bs;
          if (q > 0xffffffffn) return this.#fault(DE, -1);
          r[0] = Number(q); r[2] = Number(n % bs);
        }
        return MemAssistStatus.Done;
      }
      default: { // IDIV: the quotient truncates toward 0, the remainder has the dividend's sign
        if (s === 0) return this.#fault(DE, -1);
        if (size === 1) {
          const n = (r[0] << 16) >> 16, dv = (s << 24) >> 24, q = Math.trunc(n / dv);
          if (q > 127 || q < -128) return this.#fault(DE, -1);
          this.#setReg(2, 0, (((n % dv) & 0xff) << 8) | (q & 0xff));
        } else if (size === 2) {
          const n = (r[2] << 16) | (r[0] & 0xffff), dv = (s << 16) >> 16, q = Math.trunc(n / dv);
          if (q > 32767 || q < -32768) return this.#fault(DE, -1);
          this.#setReg(2, 0, q); this.#setReg(2, 2, n % dv);
        } else if (r[2] === ((r[0] | 0) < 0 ? 0xffffffff : 0)) {
          const n = r[0] | 0, dv = s | 0, q = Math.trunc(n / dv);
          if (q > 0x7fffffff || q < -0x80000000) return this.#fault(DE, -1);
          r[0] = q >>> 0; r[2] = (n % dv) >>> 0;
        } else {
          const n = (BigInt(r[2] | 0) << 32n) | BigInt(r[0]), dv = BigInt(s | 0), q = n / dv;
          if (q > 0x7fffffffn || q < -0x80000000n) return this.#fault(DE, -1);
          r[0] = Number(BigInt.asUintN(32, q)); r[2] = Number(BigInt.asUintN(32, n % dv));
        }
        return MemAssistStatus.Done;
      }
    }
  }

  /** The ALU (SDM Vol. 1 appendix A): `op` 0-7 = ADD OR ADC SBB AND SUB XOR CMP, 8 TEST; sets the six arithmetic flags. */
  #alu(op: number, size: number, d: number, s: number): number {
    const sign = SIGN[size], mask = MASK[size];
    let r: number, cf = 0, of = 0, af = 0;
    switch (op) {
      case 0: case 2:
        r = d + s + (op === 2 ? this.#flags & CF : 0);
        cf = r > mask ? CF : 0;
        of = ((d ^ r) & (s ^ r) & sign) !== 0 ? OF : 0;
        af = (d ^ s ^ r) & AF;
        break;
      case 3: case 5: case 7:
        r = d - s - (op === 3 ? this.#flags & CF : 0);
        cf = r < 0 ? CF : 0;
        of = ((d ^ s) & (d ^ r) & sign) !== 0 ? OF : 0;
        af = (d ^ s ^ r) & AF;
        break;
      case 1: r = d | s; break;
      case 6: r = d ^ s; break;
      default: r = d & s; break; // AND, TEST: CF = OF = 0, AF cleared
    }
    r = (r & mask) >>> 0;
    this.#flags = (this.#flags & ~ARITH) | cf | of | af | PARITY[r & 0xff] | (r === 0 ? ZF : 0) | ((r & sign) !== 0 ? SF : 0);
    return r;
  }

  // ---------------------------------------------------------------- registers

  #getReg(size: number, i: number): number {
    const r = this.#regs;
    if (size === 1) return i < 4 ? r[i] & 0xff : (r[i - 4] >>> 8) & 0xff;
    return size === 2 ? r[i] & 0xffff : r[i];
  }
  #setReg(size: number, i: number, v: number): void {
    const r = this.#regs;
    if (size === 1) {
      if (i < 4) r[i] = (r[i] & ~0xff) | (v & 0xff);
      else r[i - 4] = (r[i - 4] & ~0xff00) | ((v & 0xff) << 8);
    } else if (size === 2) r[i] = (r[i] & 0xffff0000) | (v & 0xffff);
    else r[i] = v;
  }
  #ea(): number {
    const d = this.#d, r = this.#regs;
    let off = d.disp;
    if (d.base !== NO_REG) off += r[d.base];
    if (d.index !== NO_REG) off += (r[d.index] << d.scale) >>> 0;
    return d.asz === 2 ? off & 0xffff : off >>> 0;
  }
  #idx(i: number, amask: number): number { return (this.#regs[i] & amask) >>> 0; }
  #advance(i: number, size: number, amask: number): void {
    const r = this.#regs, delta = (this.#flags & DF) !== 0 ? -size : size;
    r[i] = ((r[i] & ~amask) | ((r[i] + delta) & amask)) >>> 0;
  }
  #ss32(): boolean { return (this.#st.ss.attrib & 0x4000) !== 0 && (this.#flags & VM) === 0; }
  #setSp(sp: number): void {
    const r = this.#regs;
    r[4] = this.#ss32() ? sp : (r[4] & 0xffff0000) | sp;
  }

  // ---------------------------------------------------------------- memory

  /**
   * Check segment `seg` for `size` bytes at offset `off` and translate them into `ref`
   * (SDM Vol. 3A 5.3 limit checks, 5.x type checks in protected mode, then paging).
   */
  #resolve(ref: MemRef, seg: number, off: number, size: number, write: boolean): MemAssistStatus {
    const sr = segOf(this.#st, seg);
    if (!segmentOk(sr, off, size, write, this.#pe, (this.#flags & VM) !== 0)) return this.#fault(seg === SS ? SSV : GP, 0);
    const lin = (sr.base + off) >>> 0;
    ref.lin = lin;
    if (!this.#paging) {
      ref.gpa0 = lin; ref.n0 = size; ref.n1 = 0;
      return MemAssistStatus.Done;
    }
    const first = 0x1000 - (lin & 0xfff);
    const n0 = size < first ? size : first;
    const g0 = this.#xlate(ref, lin, write);
    if (g0 < 0) return g0 === -1 ? MemAssistStatus.Exception : MemAssistStatus.Unsupported;
    ref.gpa0 = g0; ref.n0 = n0; ref.n1 = 0;
    if (n0 < size) {
      const g1 = this.#xlate(ref, (lin + n0) >>> 0, write);
      if (g1 < 0) return g1 === -1 ? MemAssistStatus.Exception : MemAssistStatus.Unsupported;
      ref.gpa1 = g1; ref.n1 = size - n0;
    }
    return MemAssistStatus.Done;
  }

  /** Linear -> guest-physical through the one-page cache of `ref`: >= 0, or -1 (#PF set), -2 (Unsupported, message set). */
  #xlate(ref: MemRef, lin: number, write: boolean): number {
    const low = lin & 0xfff, page = lin - low;
    if (ref.tPage === page && (ref.tWrite || !write)) return ref.tGpa + low;
    const g = this.#translate(lin, write, false);
    if (g < 0) return g;
    ref.tPage = page; ref.tGpa = g - low; ref.tWrite = write;
    return g;
  }

  #translate(lin: number, write: boolean, fetch: boolean): number {
    const env = this.#env, user = this.#user;
    if (env.translate) {
      env.pfErrorCode = -1;
      const g = env.translate(lin, write, user, fetch);
      if (g >= 0) return g;
      const code = env.pfErrorCode ?? -1;
      return this.#pageFault(lin, code >= 0 ? code : pfErrorBits(this.#st, write, user, fetch));
    }
    const w = this.#walker, g = w.walk(env, this.#st, lin, write, user, fetch);
    if (g >= 0) return g;
    if (g === WALK_PAGE_FAULT) return this.#pageFault(lin, w.errorCode);
    this.#unsupported(`a page-table entry at gpa 0x${hex(w.entryGpa, 8)} is in MMIO`);
    return -2;
  }

  #pageFault(lin: number, code: number): number {
    this.#fault(PFV, code);
    this.cr2 = lin;
    return -1;
  }

  /** Read `size` bytes of a resolved operand: one piece per page, split at RAM/MMIO boundaries. */
  #load(ref: MemRef, size: number): number {
    let v = this.#loadPiece(ref.gpa0, ref.n0, 0);
    if (ref.n1 !== 0) v |= this.#loadPiece(ref.gpa1, ref.n1, ref.n0);
    return (v & MASK[size]) >>> 0;
  }

  #store(ref: MemRef, size: number, v: number): void {
    v = (v & MASK[size]) >>> 0;
    this.#storePiece(ref.gpa0, ref.n0, 0, v);
    if (ref.n1 !== 0) this.#storePiece(ref.gpa1, ref.n1, ref.n0, v);
  }

  /** Bytes [at, at+n) of the operand from gpa..gpa+n-1, shifted into place. */
  #loadPiece(gpa: number, n: number, at: number): number {
    const env = this.#env;
    let v = 0, j = 0;
    while (j < n) {
      const mmio = env.isMmio(gpa + j);
      let k = j + 1;
      while (k < n && env.isMmio(gpa + k) === mmio) k++;
      if (mmio) {
        while (j < k) {
          const c = k - j >= 4 ? 4 : k - j >= 2 ? 2 : 1;
          v |= (env.mmio.read(gpa + j, c as AccessSize) & MASK[c]) << ((at + j) * 8);
          j += c;
        }
      } else if (j === 0 && k === n && n !== 3) {
        v = n === 1 ? env.memory.read8(gpa) : n === 2 ? env.memory.read16(gpa) : env.memory.read32(gpa);
        v = at === 0 ? v : v << (at * 8);
        j = k;
      } else {
        for (; j < k; j++) v |= (env.memory.read8(gpa + j) & 0xff) << ((at + j) * 8);
      }
    }
    return v;
  }

  #storePiece(gpa: number, n: number, at: number, v: number): void {
    const env = this.#env;
    let j = 0;
    while (j < n) {
      const mmio = env.isMmio(gpa + j);
      let k = j + 1;
      while (k < n && env.isMmio(gpa + k) === mmio) k++;
      if (mmio) {
        while (j < k) {
          const c = k - j >= 4 ? 4 : k - j >= 2 ? 2 : 1;
          env.mmio.write(gpa + j, c as AccessSize, ((v >>> ((at + j) * 8)) & MASK[c]) >>> 0);
          j += c;
        }
      } else if (j === 0 && k === n && n !== 3) {
        const x = (v >>> (at * 8)) >>> 0;
        if (n === 1) env.memory.write8(gpa, x & 0xff);
        else if (n === 2) env.memory.write16(gpa, x & 0xffff);
        else env.memory.write32(gpa, x);
        j = k;
      } else {
        for (; j < k; j++) env.memory.write8(gpa + j, (v >>> ((at + j) * 8)) & 0xff);
      }
    }
  }
}

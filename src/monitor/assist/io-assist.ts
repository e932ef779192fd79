// The monitor's I/O assist for string port I/O (INS/OUTS, with or without REP), shared
// by the VMX and SVM backends, after NetBSD libnvmm's nvmm_assist_io: the backend
// reports a string I/O exit, the assist moves the data between guest memory and the
// port, and a device sees only `{ port, in, size, data }` per element.
//
// Emulated (Intel SDM Vol. 2B "INS/INSB/INSW/INSD", "OUTS/OUTSB/OUTSW/OUTSD", "REP"):
// - OUTS reads DS:(E)SI or the override segment; INS writes ES:(E)DI (no override).
// - (E)SI/(E)DI move by size per element, down when EFLAGS.DF = 1; REP counts (E)CX/CX
//   down to 0; a REP with a count of 0 does nothing.
// - 16-bit address size: SI/DI/CX are the registers and the element offsets wrap at
//   64 KiB; 32-bit: ESI/EDI/ECX, at 4 GiB. An element's own bytes are contiguous in the
//   linear space (a word at offset FFFFh reaches base+10000h, as on hardware; with
//   `StringIo.guest` the limit check refuses it first in a 64 KiB segment).
// - REP is interruptible (SDM Vol. 2B "REP", "interrupts and exceptions"): one call moves
//   at most `maxElements`; the rest is left for the guest to re-execute the instruction.
// - With `StringIo.guest` (the guest's state from the backend): the segment checks of
//   guest-access.ts (limit, expand-down, null/not-present/type: #GP(0), or #SS(0) for an
//   OUTS from SS; no error code in real mode), and paging when CR0.PG: each linear page is
//   translated by the guest page walk the memory assist uses (32-bit and PAE, U/S from the
//   CPL, R/W with CR0.WP, A/D bits); a refused page is #PF with the walk's error code and
//   CR2. The elements before the faulting one are done (their registers are updated), as a
//   REP on hardware does before the fault; the faulting one is not started: every element
//   is checked and translated before any port or memory access. Each run of elements
//   contiguous in guest-physical memory is one batched read or write.
// Not emulated: I/O-permission checks (done by the CPU before the exit), 64-bit address
// size, debug breakpoints on the memory operand, #AC, page tables outside RAM (the
// instruction is Unsupported). Without `guest`: no segment checks and no paging (the
// linear address is taken as guest-physical; stringIoUnsupported keeps such callers to
// CR0.PG = 0).
import { Gpr, type AccessSize, type SegmentReg, type X86State } from "../../x86/types.js";
import type { Bus, GuestMemory, IoExit } from "../api.js";
import { GuestPageWalk, WALK_PAGE_FAULT, segOf, segmentOk, type PageWalkEnv } from "./guest-access.js";

/** Calls the port once per element: IN returns the value read, OUT gets `value` (return ignored). */
export type PortAccess = (port: number, size: AccessSize, isIn: boolean, value: number) => number;

/** Elements moved per call when the caller does not say (about 16 KiB of dwords). */
export const IO_ASSIST_MAX_ELEMENTS = 4096;

/** What a call did: Done (see count/done), Exception (inject IoAssist.vector...), Unsupported (IoAssist.message). */
export const enum IoAssistStatus { Done = 0, Exception = 1, Unsupported = 2 }

/**
 * One string I/O instruction, filled by the backend from the exit information and the
 * guest registers. The assist updates `esi`, `edi`, `ecx` in place and sets `count` and
 * `done`; the backend writes the registers back and advances RIP only when `done`.
 * One reused object per backend: nothing is allocated per exit.
 */
export interface StringIo {
  /** INS (true) or OUTS (false). */
  in: boolean;
  size: AccessSize;
  rep: boolean;
  port: number;
  /** Address size of the instruction: 2 (SI/DI/CX) or 4 (ESI/EDI/ECX). */
  addrSize: 2 | 4;
  /** Base of the OUTS source segment: DS or the override prefix's segment (without `guest`). */
  srcBase: number;
  /** Base of ES: always the INS destination (without `guest`). */
  esBase: number;
  /** The OUTS source segment register, x86 Sreg order (ES 0 .. GS 5): DS (3) or the override. Read with `guest`. */
  srcSeg: number;
  /**
   * The guest's state (the backend's getState: CR0, CR3, CR4, EFER, EFLAGS.VM, the segment
   * registers, SS.DPL as CPL) for the segment checks and the page walk; the segment bases
   * then come from here, not from srcBase/esBase. null: no checks, linear = guest-physical.
   * Read only; the registers the assist moves are esi/edi/ecx above.
   */
  guest: X86State | null;
  /** EFLAGS.DF. */
  df: boolean;
  esi: number;
  edi: number;
  ecx: number;
  /** Out: elements moved by this call. */
  count: number;
  /** Out: the instruction is complete (advance RIP); false means re-execute it. */
  done: boolean;
}

/** IN reads the bus, OUT writes it: the PortAccess a backend gives the assist. */
export function busPortAccess(bus: Bus): PortAccess {
  return (port, size, isIn, value) => {
    if (isIn) return bus.read(port, size);
    bus.write(port, size, value);
    return 0;
  };
}

/**
 * Why a backend cannot assist a string I/O exit, or undefined when it can. `givesGuest`:
 * the backend fills StringIo.guest, so the assist walks the guest's page tables; without
 * it, paging on is refused (the linear address would be taken as guest-physical).
 */
export function stringIoUnsupported(hasBus: boolean, hasMemory: boolean, cr0: number, givesGuest = false): string | undefined {
  if (!hasBus || !hasMemory) return "string I/O (INS/OUTS) needs Tokens.PioBus and Tokens.GuestMemory in the backend's container";
  if (!givesGuest && (cr0 & 0x8000_0000) !== 0) return "string I/O (INS/OUTS) with paging enabled needs StringIo.guest (the guest state for the page walk)";
  return undefined;
}

/** A fresh StringIo, for a backend to keep and reuse. */
export function newStringIo(): StringIo {
  return {
    in: false, size: 1, rep: false, port: 0, addrSize: 2, srcBase: 0, esBase: 0, srcSeg: 3, guest: null, df: false,
    esi: 0, edi: 0, ecx: 0, count: 0, done: false,
  };
}


// Vectors and control bits (SDM Vol. 3A 2.5, 6.15).
const SSV = 12, GP = 13, PFV = 14;
const SS = 2;
const CR0_PE = 0x1, CR0_PG = 0x8000_0000, EFLAGS_VM = 0x20000;
/** Guest-physical runs one call may batch; a transfer that needs more is cut there (REP is interruptible). */
const MAX_RUNS = 64;

/** Performs string I/O against guest memory and a port callback; see the file header. */
export class IoAssist {
  readonly maxElements: number;
  /** What the last call did. */
  status: IoAssistStatus = IoAssistStatus.Done;
  // After Exception: the fault to inject (RIP stays on the instruction); for #PF, CR2 = `cr2`.
  vector = 0;
  errorCode = 0;
  hasErrorCode = false;
  cr2 = 0;
  /** After Unsupported: why; "" otherwise. */
  message = "";
  private readonly buf: Uint8Array;
  // Guest-physical runs of the current transfer: buffer offset, gpa, length.
  private readonly runAt = new Int32Array(MAX_RUNS);
  private readonly runGpa = new Float64Array(MAX_RUNS);
  private readonly runLen = new Int32Array(MAX_RUNS);
  private runs = 0;
  private readonly walker = new GuestPageWalk();
  /** The page walk's view of the call's memory: tables must be in RAM. */
  private readonly walkEnv: PageWalkEnv & { memory: GuestMemory };
  // Per call: the guest's paging, its CPL-3-ness, and a one-page translation cache.
  private guest: X86State | null = null;
  private paging = false;
  private user = false;
  private pe = false;
  private tPage = -1;
  private tGpa = 0;

  constructor(maxElements: number = IO_ASSIST_MAX_ELEMENTS) {
    if (!Number.isInteger(maxElements) || maxElements < 1) {
      throw new RangeError(`io assist: maxElements must be a positive integer, got ${maxElements}`);
    }
    this.maxElements = maxElements;
    this.buf = new Uint8Array(maxElements * 4);
    const env = { memory: null as unknown as GuestMemory, isMmio: (gpa: number) => gpa >= env.memory.size };
    this.walkEnv = env;
  }

  /**
   * `run` on the guest's own registers: SI/DI/CX come from and go back to `regs` (the
   * guestControl words, Gpr order), and `exit` becomes the one io exit reporting the transfer
   * (count 0 when nothing moved). Returns `status`: on Exception the backend injects
   * `vector` (with `errorCode` when `hasErrorCode`; CR2 = `cr2` for #PF).
   */
  runOnGuest(op: StringIo, memory: GuestMemory, port: PortAccess, regs: Uint32Array, exit: IoExit): IoAssistStatus {
    op.esi = regs[Gpr.Esi]!; op.edi = regs[Gpr.Edi]!; op.ecx = regs[Gpr.Ecx]!;
    this.run(op, memory, port);
    regs[Gpr.Esi] = op.esi; regs[Gpr.Edi] = op.edi; regs[Gpr.Ecx] = op.ecx;
    exit.port = op.port; exit.size = op.size; exit.in = op.in; exit.count = op.count;
    exit.data = 0;
    return this.status;
  }

  /**
   * Moves the elements of `op` (at most maxElements) and updates its registers; returns
   * op.count. `status` says whether it stopped on an exception (the elements before the
   * faulting one moved) or could not start (Unsupported: nothing moved).
   */
  run(op: StringIo, memory: GuestMemory, port: PortAccess): number {
    this.status = IoAssistStatus.Done;
    this.message = "";
    const mask = op.addrSize === 4 ? 0xffffffff : 0xffff;
    const size = op.size;
    const total = op.rep ? (op.ecx & mask) >>> 0 : 1;
    if (total === 0) { op.count = 0; op.done = true; return 0; }
    const n = total > this.maxElements ? this.maxElements : total;
    const isIn = op.in;
    const g = op.guest;
    this.guest = g;
    let sr: SegmentReg | null = null, base: number, v86 = false;
    if (g !== null) {
      sr = isIn ? g.es : segOf(g, op.srcSeg);
      base = sr.base;
      v86 = (g.eflags & EFLAGS_VM) !== 0;
      this.pe = (g.cr0 & CR0_PE) !== 0;
      this.paging = this.pe && (g.cr0 & CR0_PG) !== 0;
      // CPL 3 (a user access): virtual-8086 mode, else SS.DPL (the VMCS/VMCB keep the CPL there).
      this.user = this.pe && (v86 || ((g.ss.attrib >> 5) & 3) === 3);
    } else {
      base = isIn ? op.esBase : op.srcBase;
      this.pe = false; this.paging = false; this.user = false;
    }
    this.walkEnv.memory = memory;
    this.tPage = -1;
    this.runs = 0;
    const start = ((isIn ? op.edi : op.esi) & mask) >>> 0;
    const step = op.df ? -size : size;

    // Check and translate every element, in the order the instruction accesses them, before
    // any port or memory access; stop at the first that faults.
    let m = 0;
    for (; m < n; m++) {
      const off = ((start + m * step) & mask) >>> 0;
      if (sr !== null && !segmentOk(sr, off, size, isIn, this.pe, v86)) {
        this.fault(!isIn && op.srcSeg === SS ? SSV : GP, 0);
        break;
      }
      const lin = (base + off) >>> 0;
      // The part on the element's first page (or below 4 GiB without paging).
      const room = this.paging ? 0x1000 - (lin & 0xfff) : 0x1_0000_0000 - lin;
      const first = size < room ? size : room;
      const g0 = this.translate(lin, isIn);
      if (g0 < 0) break;
      let g1 = 0;
      if (first < size) {
        g1 = this.translate((lin + first) >>> 0, isIn);
        if (g1 < 0) break;
      }
      const at = op.df ? (n - 1 - m) * size : m * size;
      const runs = this.runs, last = runs - 1;
      const lAt = last >= 0 ? this.runAt[last]! : 0, lGpa = last >= 0 ? this.runGpa[last]! : 0, lLen = last >= 0 ? this.runLen[last]! : 0;
      if (!this.addRun(at, g0, first) || (first < size && !this.addRun(at + first, g1, size - first))) {
        // No room for another run: this element waits for the next call (undo its first piece).
        this.runs = runs;
        if (last >= 0) { this.runAt[last] = lAt; this.runGpa[last] = lGpa; this.runLen[last] = lLen; }
        break;
      }
    }
    if (m === 0) {
      op.count = 0; op.done = false;
      return 0;
    }

    const buf = this.buf;
    if (isIn) {
      for (let i = 0; i < m; i++) {
        const v = port(op.port, size, true, 0) >>> 0;
        const at = op.df ? (n - 1 - i) * size : i * size;
        buf[at] = v; if (size > 1) { buf[at + 1] = v >>> 8; if (size === 4) { buf[at + 2] = v >>> 16; buf[at + 3] = v >>> 24; } }
      }
      // One batched write per contiguous run in RAM; else byte by byte (bytes outside RAM dropped).
      for (let r = 0; r < this.runs; r++) {
        const at = this.runAt[r]!, gpa = this.runGpa[r]!, len = this.runLen[r]!;
        if (!memory.writeFrom(gpa, buf, at, len)) for (let j = 0; j < len; j++) memory.write8(gpa + j, buf[at + j]!);
      }
    } else {
      for (let r = 0; r < this.runs; r++) {
        const at = this.runAt[r]!, gpa = this.runGpa[r]!, len = this.runLen[r]!;
        if (!memory.readInto(gpa, buf, at, len)) for (let j = 0; j < len; j++) buf[at + j] = memory.read8(gpa + j);
      }
      for (let i = 0; i < m; i++) {
        const at = op.df ? (n - 1 - i) * size : i * size;
        const v = size === 1 ? buf[at]!
          : size === 2 ? buf[at]! | (buf[at + 1]! << 8)
          : (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
        port(op.port, size, false, v);
      }
    }

    const delta = m * step;
    if (isIn) op.edi = advance(op.edi, delta, mask);
    else op.esi = advance(op.esi, delta, mask);
    if (op.rep) op.ecx = (((op.ecx & ~mask) | ((total - m) & mask)) >>> 0);
    op.count = m;
    op.done = m === total;
    // A walk that found a table outside RAM after some elements: they are done, the next exit reports it.
    if ((this.status as IoAssistStatus) === IoAssistStatus.Unsupported) { this.status = IoAssistStatus.Done; this.message = ""; }
    return m;
  }

  /** Linear -> guest-physical for the current call (identity without paging); -1 with status set when refused. */
  private translate(lin: number, write: boolean): number {
    if (!this.paging) return lin;
    const low = lin & 0xfff, page = lin - low;
    if (page === this.tPage) return this.tGpa + low;
    const w = this.walker;
    const g = w.walk(this.walkEnv, this.guest!, lin, write, this.user, false);
    if (g >= 0) { this.tPage = page; this.tGpa = g - low; return g; }
    if (g === WALK_PAGE_FAULT) {
      this.fault(PFV, w.errorCode);
      this.cr2 = lin;
    } else {
      this.status = IoAssistStatus.Unsupported;
      this.message = `io assist: a page-table entry at gpa 0x${w.entryGpa.toString(16)} is not in RAM`;
    }
    return -1;
  }
  /** Bytes [at, at+len) of the buffer go to `gpa`: merged with the last run when contiguous in both, else a new run; false when full. */
  private addRun(at: number, gpa: number, len: number): boolean {
    const k = this.runs - 1;
    if (k >= 0) {
      const ra = this.runAt[k]!, rg = this.runGpa[k]!, rl = this.runLen[k]!;
      if (ra + rl === at && rg + rl === gpa) { this.runLen[k] = rl + len; return true; }
      if (at + len === ra && gpa + len === rg) { this.runAt[k] = at; this.runGpa[k] = gpa; this.runLen[k] = rl + len; return true; }
    }
    if (this.runs === MAX_RUNS) return false;
    this.runAt[this.runs] = at; this.runGpa[this.runs] = gpa; this.runLen[this.runs] = len;
    this.runs++;
    return true;
  }

  private fault(vector: number, code: number): void {
    this.status = IoAssistStatus.Exception;
    this.vector = vector;
    // Real mode delivers no error code (SDM 20.1.4) and VM entry refuses one there (SDM 27.2.1.3).
    this.hasErrorCode = this.pe;
    this.errorCode = this.pe ? code : 0;
  }
}

/** reg + delta within the address size; a 16-bit update leaves bits 31:16 alone. */
function advance(reg: number, delta: number, mask: number): number {
  return ((reg & ~mask) | ((reg + delta) & mask)) >>> 0;
}

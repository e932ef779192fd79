// The monitor's I/O assist for string port I/O (INS/OUTS, with or without REP), shared
// by the VMX and SVM backends, after NetBSD libnvmm's nvmm_assist_io: the backend
// reports a string I/O exit, the assist moves the data between guest memory and the
// port, and a device sees only `{ port, in, size, data }` per element.
//
// Emulated (Intel SDM Vol. 2B "INS/INSB/INSW/INSD", "OUTS/OUTSB/OUTSW/OUTSD", "REP"):
// - OUTS reads DS:(E)SI or the override segment; INS writes ES:(E)DI (no override).
// - (E)SI/(E)DI move by size per element, down when EFLAGS.DF = 1; REP counts (E)CX/CX
//   down to 0; a REP with a count of 0 does nothing.
// - 16-bit address size: SI/DI/CX are the registers and offsets wrap at 64 KiB; 32-bit:
//   ESI/EDI/ECX, offsets wrap at 4 GiB.
// - REP is interruptible (SDM Vol. 2B "REP", "interrupts and exceptions"): one call moves
//   at most `maxElements`; the rest is left for the guest to re-execute the instruction.
// Not emulated: segment-limit and access-rights checks (#GP/#SS), paging (the linear
// address is used as the guest-physical one: callers run the assist only without paging),
// I/O-permission checks (done by the CPU before the exit), 64-bit address size.
import { Gpr, type AccessSize } from "../../x86/types.js";
import type { Bus, GuestMemory, IoExit } from "../api.js";

/** Calls the port once per element: IN returns the value read, OUT gets `value` (return ignored). */
export type PortAccess = (port: number, size: AccessSize, isIn: boolean, value: number) => number;

/** Elements moved per call when the caller does not say (about 16 KiB of dwords). */
export const IO_ASSIST_MAX_ELEMENTS = 4096;

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
  /** Base of the OUTS source segment: DS or the override prefix's segment. */
  srcBase: number;
  /** Base of ES: always the INS destination. */
  esBase: number;
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

/** Why a backend cannot assist a string I/O exit, or undefined when it can. */
export function stringIoUnsupported(hasBus: boolean, hasMemory: boolean, cr0: number): string | undefined {
  if (!hasBus || !hasMemory) return "string I/O (INS/OUTS) needs Tokens.PioBus and Tokens.GuestMemory in the backend's container";
  // The assist uses linear = guest-physical addresses, true only without paging.
  if ((cr0 & 0x8000_0000) !== 0) return "string I/O (INS/OUTS) with paging enabled is not supported (the I/O assist does not walk guest page tables)";
  return undefined;
}

/** A fresh StringIo, for a backend to keep and reuse. */
export function newStringIo(): StringIo {
  return {
    in: false, size: 1, rep: false, port: 0, addrSize: 2, srcBase: 0, esBase: 0, df: false,
    esi: 0, edi: 0, ecx: 0, count: 0, done: false,
  };
}

/** Performs string I/O against guest memory and a port callback; see the file header. */
export class IoAssist {
  readonly maxElements: number;
  private readonly buf: Uint8Array;

  constructor(maxElements: number = IO_ASSIST_MAX_ELEMENTS) {
    if (!Number.isInteger(maxElements) || maxElements < 1) {
      throw new RangeError(`io assist: maxElements must be a positive integer, got ${maxElements}`);
    }
    this.maxElements = maxElements;
    this.buf = new Uint8Array(maxElements * 4);
  }

  /**
   * `run` on the guest's own registers: SI/DI/CX come from and go back to `regs` (the
   * guestControl words, Gpr order), and `exit` becomes the one io exit reporting the transfer.
   */
  runOnGuest(op: StringIo, memory: GuestMemory, port: PortAccess, regs: Uint32Array, exit: IoExit): void {
    op.esi = regs[Gpr.Esi]!; op.edi = regs[Gpr.Edi]!; op.ecx = regs[Gpr.Ecx]!;
    this.run(op, memory, port);
    regs[Gpr.Esi] = op.esi; regs[Gpr.Edi] = op.edi; regs[Gpr.Ecx] = op.ecx;
    exit.port = op.port; exit.size = op.size; exit.in = op.in; exit.count = op.count;
    exit.data = 0;
  }

  /** Moves the elements of `op` (at most maxElements) and updates its registers; returns op.count. */
  run(op: StringIo, memory: GuestMemory, port: PortAccess): number {
    const mask = op.addrSize === 4 ? 0xffffffff : 0xffff;
    const size = op.size;
    const total = op.rep ? (op.ecx & mask) >>> 0 : 1;
    if (total === 0) { op.count = 0; op.done = true; return 0; }
    const n = total > this.maxElements ? this.maxElements : total;
    const isIn = op.in;
    const off = ((isIn ? op.edi : op.esi) & mask) >>> 0;
    const base = isIn ? op.esBase : op.srcBase;
    const span = n * size;
    // Lowest offset the transfer touches: the first element going up, the last going down.
    const low = op.df ? off - (n - 1) * size : off;
    const wraps = low < 0 || low + span - 1 > mask;
    const buf = this.buf;

    if (isIn) {
      for (let i = 0; i < n; i++) {
        const v = port(op.port, size, true, 0) >>> 0;
        const at = op.df ? (n - 1 - i) * size : i * size;
        buf[at] = v; if (size > 1) { buf[at + 1] = v >>> 8; if (size === 4) { buf[at + 2] = v >>> 16; buf[at + 3] = v >>> 24; } }
      }
      const lin = (base + low) >>> 0;
      // One batched write when the span is contiguous and in RAM; else byte by byte
      // (offsets wrapping at the address size, bytes outside RAM dropped).
      if (wraps || !memory.writeFrom(lin, buf, 0, span)) {
        for (let j = 0; j < span; j++) memory.write8((base + ((low + j) & mask)) >>> 0, buf[j]!);
      }
    } else {
      const lin = (base + low) >>> 0;
      if (wraps || !memory.readInto(lin, buf, 0, span)) for (let j = 0; j < span; j++) buf[j] = memory.read8((base + ((low + j) & mask)) >>> 0);
      for (let i = 0; i < n; i++) {
        const at = op.df ? (n - 1 - i) * size : i * size;
        const v = size === 1 ? buf[at]!
          : size === 2 ? buf[at]! | (buf[at + 1]! << 8)
          : (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
        port(op.port, size, false, v);
      }
    }

    const delta = op.df ? -span : span;
    if (isIn) op.edi = step(op.edi, delta, mask);
    else op.esi = step(op.esi, delta, mask);
    if (op.rep) op.ecx = (((op.ecx & ~mask) | ((total - n) & mask)) >>> 0);
    op.count = n;
    op.done = n === total;
    return n;
  }
}

/** reg + delta within the address size; a 16-bit update leaves bits 31:16 alone. */
function step(reg: number, delta: number, mask: number): number {
  return ((reg & ~mask) | ((reg + delta) & mask)) >>> 0;
}

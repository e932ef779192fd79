// Runs a guest image on hvkit's software core directly: X86Cpu over a PhysMemory
// with 32 MiB of RAM and the ROM at F0000h and FFFF0000h (as QEMU's -bios maps a
// 64 KiB image), port E9h captured, a write to port F4h as the end. An instruction
// budget bounds every run, so a broken core reports "hang" instead of hanging.
import { X86Cpu } from "../../src/x86/cpu.js";
import { resetState } from "../../src/x86/state.js";
import { CpuExitReason } from "../../src/x86/types.js";
import type { AccessSize, IoPorts, PhysMemory } from "../../src/x86/types.js";
import { DEBUGCON_PORT, EXIT_PORT, ROM_SIZE } from "./layout.js";

const RAM_SIZE = 32 << 20;
/** The RAM window offered to the core: below the legacy VGA hole, all plain RAM. */
const WINDOW = 0xa0000;
const ROM_LOW = 0x100000 - ROM_SIZE, ROM_HIGH = 0x100000000 - ROM_SIZE;

/** RAM plus the BIOS ROM at both of its addresses; ROM writes are dropped, unbacked reads are all-ones. */
export class DiffMemory implements PhysMemory {
  readonly bytes = new Uint8Array(RAM_SIZE);
  readonly ram: Uint8Array = this.bytes.subarray(0, WINDOW);
  constructor(readonly rom: Uint8Array) {}
  read8(pa: number): number {
    pa >>>= 0;
    if (pa >= ROM_LOW && pa < 0x100000) return this.rom[pa - ROM_LOW];
    if (pa >= ROM_HIGH) return this.rom[pa - ROM_HIGH];
    return pa < RAM_SIZE ? this.bytes[pa] : 0xff;
  }
  read16(pa: number): number { return this.read8(pa) | (this.read8(pa + 1) << 8); }
  read32(pa: number): number { return (this.read16(pa) | (this.read16(pa + 2) << 16)) >>> 0; }
  write8(pa: number, v: number): void {
    pa >>>= 0;
    if (pa < RAM_SIZE && !(pa >= ROM_LOW && pa < 0x100000)) this.bytes[pa] = v & 0xff;
  }
  write16(pa: number, v: number): void { this.write8(pa, v); this.write8(pa + 1, v >>> 8); }
  write32(pa: number, v: number): void { this.write16(pa, v & 0xffff); this.write16(pa + 2, v >>> 16); }
}

/** Debug console bytes, growable without per-byte allocation. */
class ByteSink {
  buf = new Uint8Array(1 << 16);
  len = 0;
  push(b: number): void {
    if (this.len === this.buf.length) {
      const n = new Uint8Array(this.buf.length * 2);
      n.set(this.buf);
      this.buf = n;
    }
    this.buf[this.len++] = b;
  }
}

export type RunStatus = "exit" | "hang" | "halt" | "triple-fault" | "stopped" | "crash" | "timeout" | "error";

export interface RunResult {
  status: RunStatus;
  /** Port E9h output. */
  output: Uint8Array;
  /** Human-readable detail for anything but "exit". */
  detail: string;
  /** Instructions executed (hvkit) or wall time in ms (QEMU). */
  work: number;
}

/** Default budget: a guest of 100 sequences needs well under a million instructions. */
export const DEFAULT_BUDGET = 30_000_000;

export function runHvkit(image: Uint8Array, budget = DEFAULT_BUDGET): RunResult {
  const mem = new DiffMemory(image);
  const sink = new ByteSink();
  const io: IoPorts = {
    in: (): number => 0xffffffff,
    out: (port: number, size: AccessSize, value: number): void => {
      if (port === DEBUGCON_PORT) sink.push(value & 0xff);
      void size;
    },
  };
  const cpu = new X86Cpu(mem, io);
  const bitmap = new Uint8Array(8192);
  bitmap[EXIT_PORT >> 3] |= 1 << (EXIT_PORT & 7);
  cpu.intercepts.ioBitmap = bitmap;
  cpu.setState(resetState());
  const done = (status: RunStatus, detail: string): RunResult =>
    ({ status, output: sink.buf.slice(0, sink.len), detail, work: cpu.retired });
  try {
    for (;;) {
      const left = budget - cpu.retired;
      if (left <= 0) return done("hang", `no exit after ${budget} instructions`);
      const r = cpu.run(Math.min(left, 1_000_000));
      if (r === CpuExitReason.Budget) continue;
      if (r === CpuExitReason.Io && cpu.exit.ioPort === EXIT_PORT) return done("exit", "");
      const st = resetState();
      cpu.getState(st);
      const where = `cs=${st.cs.selector.toString(16)} eip=${st.eip.toString(16)}`;
      if (r === CpuExitReason.Halted || r === CpuExitReason.Hlt) return done("halt", `HLT at ${where}`);
      if (r === CpuExitReason.TripleFault) return done("triple-fault", `triple fault at ${where}`);
      return done("stopped", `core stopped with exit reason ${r} at ${where}`);
    }
  } catch (e) {
    return done("crash", `the core threw: ${(e as Error).stack ?? String(e)}`);
  }
}

// Test helpers shared by the x86 tests (not product code).
import { X86Cpu } from "./cpu.js";
import { FlatMemory } from "./memory.js";
import { realModeState, resetState } from "./state.js";
import type { IoPorts, PhysMemory, X86State } from "./types.js";

/** Ports that read all-ones and drop writes. */
export const NO_IO: IoPorts = { in: () => 0xffffffff, out: () => {} };

/**
 * The same bytes without PhysMemory.ram: the core can neither take the direct path nor
 * cache decoded or compiled code, so it is the plain interpreter to compare against.
 */
export class NoWindow implements PhysMemory {
  constructor(readonly m: FlatMemory) {}
  read8(pa: number): number { return this.m.read8(pa); }
  read16(pa: number): number { return this.m.read16(pa); }
  read32(pa: number): number { return this.m.read32(pa); }
  write8(pa: number, v: number): void { this.m.write8(pa, v); }
  write16(pa: number, v: number): void { this.m.write16(pa, v); }
  write32(pa: number, v: number): void { this.m.write32(pa, v); }
}

/** xorshift32: reproducible pseudo-random numbers. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

/** Where the real-mode test machines put their code (CS base) and data (DS base). */
export const TEST_CODE = 0x10000, TEST_DATA = 0x30000;

/**
 * A core over `mem` with `code` at TEST_CODE, in real mode with CS:IP = 1000:0000,
 * DS at TEST_DATA and SP = 100h; `init` may adjust the state first. `state()` reads
 * the current state back.
 */
export function realModeMachine<M extends FlatMemory>(mem: M, code: number[], init?: (s: X86State) => void, io: IoPorts = NO_IO) {
  const cpu = new X86Cpu(mem, io);
  mem.bytes.set(code, TEST_CODE);
  const s = realModeState(TEST_CODE >> 4, 0);
  s.ds.selector = TEST_DATA >> 4; s.ds.base = TEST_DATA;
  s.esp = 0x100;
  init?.(s);
  cpu.setState(s);
  const state = (): X86State => { const o = resetState(); cpu.getState(o); return o; };
  return { mem, cpu, state };
}

/** Segments of dataMachine: CS:0 at 10000h, DS:0 at 20000h (64-byte aligned), SS:0 at 30000h with SP = 100h. */
export const DM_CODE = 0x1000, DM_DATA = 0x2000;

/**
 * A core over 256 KiB running `code` then HLT in real mode, with DS and SS apart from CS
 * (the FPU and XSAVE tests); `d(off)` is the physical address of DS:off.
 */
export function dataMachine(code: number[], init?: (s: X86State) => void) {
  const m = new FlatMemory(0x40000);
  const cpu = new X86Cpu(m, NO_IO);
  m.bytes.set([...code, 0xf4], DM_CODE * 16);
  const s = realModeState(DM_CODE, 0);
  s.ds = { selector: DM_DATA, base: DM_DATA * 16, limit: 0xffff, attrib: 0x93 };
  s.ss = { selector: 0x3000, base: 0x30000, limit: 0xffff, attrib: 0x93 }; s.esp = 0x100;
  init?.(s);
  cpu.setState(s);
  const state = (): X86State => { const o = resetState(); cpu.getState(o); return o; };
  const d = (off: number): number => DM_DATA * 16 + off;
  return { m, cpu, state, d };
}

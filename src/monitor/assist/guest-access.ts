// How the monitor's assists reach guest memory the way the guest's CPU would: the segment
// checks and the guest page walk shared by the memory assist (mem-assist.ts) and the I/O
// assist (io-assist.ts). Nothing here allocates or throws.
//
// Emulated:
// - Segment checks (SDM Vol. 3A 3.4.5 and 5.3 limits; the type rules of each instruction's
//   "Protected Mode Exceptions" in Vol. 2): real and
//   virtual-8086 mode check the limit only; protected mode also refuses an unusable (null),
//   not-present or system segment, a write to a code or read-only segment, a read of an
//   execute-only segment, and handles expand-down data segments (B bit: 64 KiB or 4 GiB).
// - The guest page walk (SDM Vol. 3A 4.3 32-bit paging with PSE 4 MiB pages and PSE-36,
//   4.4 PAE with 2 MiB pages and XD), access rights (4.6: U/S, R/W with CR0.WP, XD for
//   fetches), the accessed and dirty bits (4.8) and the #PF error code (4.7).
// Not emulated: reserved-bit checks (RSVD #PF), SMEP/SMAP, PKE, the PDPTE registers (the
// PAE PDPTEs are read from memory at each walk), 4-level paging, TLBs (every walk reads
// the tables), A20 masking.
import type { SegmentReg, X86State } from "../../x86/types.js";
import type { GuestMemory } from "../api.js";

/** Where the tables live: guest RAM, and which guest-physical addresses are not RAM. */
export interface PageWalkEnv {
  readonly memory: GuestMemory;
  isMmio(gpa: number): boolean;
}

/** The control registers a walk reads (X86State has them). */
export type PagingRegs = Pick<X86State, "cr0" | "cr3" | "cr4" | "efer">;

/** GuestPageWalk.walk: the access is refused, raise #PF (error code in `errorCode`). */
export const WALK_PAGE_FAULT = -1;
/** GuestPageWalk.walk: a paging-structure entry is not in RAM (its address in `entryGpa`). */
export const WALK_NOT_RAM = -2;

const CR0_WP = 0x10000;
const CR4_PSE = 0x10, CR4_PAE = 0x20;
const EFER_NXE = 0x800;
// #PF error code (SDM Vol. 3A 4.7)
const PFE_P = 1, PFE_W = 2, PFE_U = 4, PFE_I = 16;

/** Segment register `i` (x86 Sreg order: ES CS SS DS FS GS) of `s`. */
export function segOf(s: X86State, i: number): SegmentReg {
  switch (i) {
    case 0: return s.es;
    case 1: return s.cs;
    case 2: return s.ss;
    case 3: return s.ds;
    case 4: return s.fs;
    default: return s.gs;
  }
}

/**
 * Whether `size` bytes at offset `off` of segment `sr` may be accessed (a read, or a write
 * when `write`). `pe`: CR0.PE; `v86`: EFLAGS.VM. False means #GP(0), or #SS(0) through SS.
 */
export function segmentOk(sr: SegmentReg, off: number, size: number, write: boolean, pe: boolean, v86: boolean): boolean {
  const last = off + size - 1;
  if (!pe || v86) return last <= sr.limit; // real and virtual-8086 mode: limit only
  const a = sr.attrib;
  // Unusable (a null selector), not present, or a system segment.
  if ((a & 0x10000) !== 0 || (a & 0x80) === 0 || (a & 0x10) === 0) return false;
  const type = a & 0xf;
  if ((type & 8) !== 0) { // code: never writable; readable only with type bit 1
    if (write || (type & 2) === 0) return false;
    return last <= sr.limit;
  }
  if (write && (type & 2) === 0) return false;
  if ((type & 4) !== 0) { // expand-down: offsets above the limit, up to 64 KiB or 4 GiB by the B bit
    const upper = (a & 0x4000) !== 0 ? 0xffffffff : 0xffff;
    return off > sr.limit && last <= upper;
  }
  return last <= sr.limit;
}

/** The W/R, U/S and I/D bits of a #PF error code for an access (SDM Vol. 3A 4.7). */
export function pfErrorBits(st: PagingRegs, write: boolean, user: boolean, fetch: boolean): number {
  // I/D is reported only when execute-disable is in force.
  const xd = (st.cr4 & CR4_PAE) !== 0 && (st.efer & EFER_NXE) !== 0;
  return (write ? PFE_W : 0) | (user ? PFE_U : 0) | (fetch && xd ? PFE_I : 0);
}

/** The guest's page walk; one reusable object per assist. */
export class GuestPageWalk {
  /** After WALK_PAGE_FAULT: the #PF error code. */
  errorCode = 0;
  /** After WALK_NOT_RAM: the guest-physical address of the entry that is not RAM. */
  entryGpa = 0;

  /**
   * Linear `lin` -> guest-physical through the tables at CR3 (32-bit or PAE paging by
   * CR4.PAE): >= 0, WALK_PAGE_FAULT or WALK_NOT_RAM. An allowed access sets the accessed
   * bits, and the dirty bit of the leaf for a write.
   */
  walk(env: PageWalkEnv, st: PagingRegs, lin: number, write: boolean, user: boolean, fetch: boolean): number {
    const mem = env.memory;
    const wp = (st.cr0 & CR0_WP) !== 0, nxe = (st.efer & EFER_NXE) !== 0;
    let rw = true, us = true, xd = false;
    let leafA: number, leaf: number, base: number;
    // Accessed bits to set on the non-leaf entries once the access is allowed.
    let dirA = -1, dir = 0;
    if ((st.cr4 & CR4_PAE) === 0) {
      const pdeA = ((st.cr3 & 0xfffff000) >>> 0) + ((lin >>> 22) << 2);
      const pde = this.#table(env, pdeA);
      if (pde === WALK_NOT_RAM) return WALK_NOT_RAM;
      if ((pde & 1) === 0) return this.#fault(pfErrorBits(st, write, user, fetch));
      rw &&= (pde & 2) !== 0; us &&= (pde & 4) !== 0;
      if ((pde & 0x80) !== 0 && (st.cr4 & CR4_PSE) !== 0) { // 4 MiB page; PSE-36 bits 20:13 are address bits 39:32
        leafA = pdeA; leaf = pde;
        base = ((pde & 0xffc00000) >>> 0) + ((pde >>> 13) & 0xff) * 0x100000000 + (lin & 0x3fffff);
      } else {
        dirA = pdeA; dir = pde;
        leafA = ((pde & 0xfffff000) >>> 0) + (((lin >>> 12) & 0x3ff) << 2);
        leaf = this.#table(env, leafA);
        if (leaf === WALK_NOT_RAM) return WALK_NOT_RAM;
        if ((leaf & 1) === 0) return this.#fault(pfErrorBits(st, write, user, fetch));
        rw &&= (leaf & 2) !== 0; us &&= (leaf & 4) !== 0;
        base = ((leaf & 0xfffff000) >>> 0) + (lin & 0xfff);
      }
    } else {
      const pdpteA = ((st.cr3 & 0xffffffe0) >>> 0) + ((lin >>> 30) << 3);
      const pdpte = this.#table(env, pdpteA);
      if (pdpte === WALK_NOT_RAM) return WALK_NOT_RAM;
      if ((pdpte & 1) === 0) return this.#fault(pfErrorBits(st, write, user, fetch));
      const pdpteHi = mem.read32(pdpteA + 4) >>> 0;
      const pdeA = ((pdpte & 0xfffff000) >>> 0) + (pdpteHi & 0xfffff) * 0x100000000 + (((lin >>> 21) & 0x1ff) << 3);
      const pde = this.#table(env, pdeA);
      if (pde === WALK_NOT_RAM) return WALK_NOT_RAM;
      if ((pde & 1) === 0) return this.#fault(pfErrorBits(st, write, user, fetch));
      const pdeHi = mem.read32(pdeA + 4) >>> 0;
      rw &&= (pde & 2) !== 0; us &&= (pde & 4) !== 0; xd ||= nxe && (pdeHi & 0x80000000) !== 0;
      if ((pde & 0x80) !== 0) { // 2 MiB page
        leafA = pdeA; leaf = pde;
        base = ((pde & 0xffe00000) >>> 0) + (pdeHi & 0xfffff) * 0x100000000 + (lin & 0x1fffff);
      } else {
        dirA = pdeA; dir = pde;
        leafA = ((pde & 0xfffff000) >>> 0) + (pdeHi & 0xfffff) * 0x100000000 + (((lin >>> 12) & 0x1ff) << 3);
        leaf = this.#table(env, leafA);
        if (leaf === WALK_NOT_RAM) return WALK_NOT_RAM;
        if ((leaf & 1) === 0) return this.#fault(pfErrorBits(st, write, user, fetch));
        const pteHi = mem.read32(leafA + 4) >>> 0;
        rw &&= (leaf & 2) !== 0; us &&= (leaf & 4) !== 0; xd ||= nxe && (pteHi & 0x80000000) !== 0;
        base = ((leaf & 0xfffff000) >>> 0) + (pteHi & 0xfffff) * 0x100000000 + (lin & 0xfff);
      }
    }
    // SDM 4.6: user accesses need U/S everywhere; writes need R/W (supervisor only with CR0.WP); XD forbids fetches.
    const denied = (user && !us) || (write && !rw && (user || wp)) || (fetch && xd);
    if (denied) return this.#fault(PFE_P | pfErrorBits(st, write, user, fetch));
    // SDM 4.8: accessed on every entry used, dirty on the leaf of a write.
    if (dirA >= 0 && (dir & 0x20) === 0) mem.write32(dirA, (dir | 0x20) >>> 0);
    const set = 0x20 | (write ? 0x40 : 0);
    if ((leaf & set) !== set) mem.write32(leafA, (leaf | set) >>> 0);
    return base;
  }

  #fault(code: number): number {
    this.errorCode = code;
    return WALK_PAGE_FAULT;
  }

  /** A paging-structure dword, or WALK_NOT_RAM. */
  #table(env: PageWalkEnv, gpa: number): number {
    if (env.isMmio(gpa)) { this.entryGpa = gpa; return WALK_NOT_RAM; }
    return env.memory.read32(gpa) >>> 0;
  }
}

// Linear -> physical translation for the x86 core (SDM Vol. 3A chapter 4).
//
// Emulated: 32-bit paging with 4 KiB pages and, with CR4.PSE, 4 MiB pages (4.3); PAE
// paging with 4 KiB and 2 MiB pages and the four PDPTE registers loaded by MOV CR0/CR3/
// CR4 (4.4, 4.4.1); execute-disable with IA32_EFER.NXE (PAE only); CR0.WP; U/S and R/W
// combined over every level (4.6); accessed and dirty flags written back (4.8); global
// pages with CR4.PGE (4.10.2.4); reserved-bit checks and #PF error codes (4.7).
// MAXPHYADDR is 32 (CPUID.80000008h:EAX[7:0] = 32, as on Core Duo-era i686 parts), so
// PAE entry bits 62:32 are reserved and a 4 MiB PDE has reserved bits 21:13 (no PSE-36).
// Not emulated: PCIDs, SMEP/SMAP, protection keys, 4-level paging, paging-structure
// caches (no PDE is cached; a TLB miss always walks from CR3 or the PDPTE registers).
//
// A/D updates: upper-level entries get A as the walk passes them; the leaf gets A (and D
// on a write) only once the access is allowed — the order QEMU follows; Intel sets them
// with locked RMW cycles (4.8), and a single-threaded core needs no more than a byte RMW.
//
// TLB: one Int32Array indexed by linear page number (2^20 entries, allocated when paging
// is first enabled). An entry is (physical page << 12) | flags; the hot path is one load,
// one AND with a per-privilege mask and one compare (see X86Cpu.rd8). Large pages are
// cached per 4 KiB piece. Flushes clear only the pages filled since the last flush.
import type { CpuExit, PhysMemory } from "./types.js";

/** #PF error-code bits (SDM 4.7, figure 4-12). */
export const PF_P = 1, PF_W = 2, PF_U = 4, PF_RSVD = 8, PF_I = 16;

/** Access kinds for translate(). */
export const ACC_READ = 0, ACC_WRITE = 1, ACC_FETCH = 2;

/** TLB entry flags (bits 11:0 of an entry; bits 31:12 hold the physical page). */
export const TLB_VALID = 1;
/** Some level has U/S = 0. */
export const TLB_NOUSER = 2;
/** Read-only and CR0.WP = 1: supervisor writes fault. */
export const TLB_NOWRITE_SUP = 4;
/** Read-only: user writes fault. */
export const TLB_NOWRITE_USER = 8;
/** The leaf's dirty flag is clear: a write must walk to set it. */
export const TLB_CLEAN = 16;
/** Execute-disable (some level has XD = 1 and EFER.NXE = 1). */
export const TLB_NX = 32;
/** Global page (CR4.PGE and G = 1): survives a CR3 load. */
export const TLB_GLOBAL = 64;
/** Cut from a 4 MiB / 2 MiB page: INVLPG drops every piece of it. */
export const TLB_LARGE = 128;

/** Hot-path masks: an access hits when (entry & mask) === TLB_VALID. */
const SUP_R = TLB_VALID, SUP_W = TLB_VALID | TLB_NOWRITE_SUP | TLB_CLEAN, SUP_X = TLB_VALID | TLB_NX;
const USR_R = TLB_VALID | TLB_NOUSER, USR_W = TLB_VALID | TLB_NOUSER | TLB_NOWRITE_USER | TLB_CLEAN;
const USR_X = TLB_VALID | TLB_NOUSER | TLB_NX;

/** The hit mask for an access of kind `acc` (ACC_*) at user or supervisor privilege. */
export function tlbMask(acc: number, user: boolean): number {
  return acc === ACC_READ ? (user ? USR_R : SUP_R) : acc === ACC_WRITE ? (user ? USR_W : SUP_W) : (user ? USR_X : SUP_X);
}

/** Paging modes. */
export const PG_OFF = 0, PG_32 = 1, PG_PAE = 2;

const CR0_PE = 0x1, CR0_WP = 0x10000, CR0_PG = 0x80000000;
const CR4_PSE = 0x10, CR4_PAE = 0x20, CR4_PGE = 0x80;
const EFER_NXE = 0x800;

/** PDPTE bits 2:1 and 8:5 are reserved (SDM 4.4.1, table 4-8); bits 63:32 too with MAXPHYADDR 32. */
const PDPTE_RSVD_LO = 0x1e6;

/** Pages filled since the last flush that the flush list tracks before falling back to a full clear. */
const LIST_CAP = 8192;
const EMPTY = new Int32Array(0);

/** What the walker needs from its core: physical memory and the exit record for MemAbort. */
export interface MmuHost {
  mem: PhysMemory;
  readonly exit: CpuExit;
  /** The walker wrote a paging-structure byte inside the RAM window (A/D): drop decoded code there. */
  invalidateCode(pa: number, len: number): void;
  a20Mask: number;
}

export class Mmu {
  /** The TLB (see the header); empty until paging is first enabled. */
  tlb: Int32Array = EMPTY;
  mode = PG_OFF;
  /** Current privilege's hit masks for reads, writes and fetches (setUser). */
  mR = SUP_R;
  mW = SUP_W;
  mX = SUP_X;
  user = false;
  /** The PDPTE registers (PAE), low and high dwords. */
  readonly pdpteLo = new Uint32Array(4);
  readonly pdpteHi = new Uint32Array(4);
  /** After translate() returned -1: the #PF error code. */
  pfCode = 0;
  private cr0 = 0;
  /** CR3 as last configured. */
  cr3 = 0;
  private cr4 = 0;
  private nxe = false;
  private readonly list = new Int32Array(LIST_CAP);
  private listLen = 0;
  private overflow = false;
  /** Large-page pieces are cached: INVLPG scans the 4 MiB region. */
  private large = false;
  /** A20 mask the cached entries were made with. */
  private a20 = 0xffffffff;
  /** The linear address being translated (MemAbort reporting). */
  private walkLa = 0;

  constructor(private readonly host: MmuHost) {}

  /** Privilege of ordinary accesses: user (CPL 3) or supervisor. */
  setUser(user: boolean): void {
    this.user = user;
    this.mR = user ? USR_R : SUP_R;
    this.mW = user ? USR_W : SUP_W;
    this.mX = user ? USR_X : SUP_X;
  }

  /**
   * Take new CR0/CR3/CR4/EFER values. Flushes the whole TLB when the paging mode, WP,
   * PSE, PGE or NXE changes (the TLB caches what they decide; SDM 4.10.4.1 requires it
   * for PG, PAE, PGE, PSE) and non-global entries when CR3 changes. Does not load the
   * PDPTE registers: the caller does (loadPdptes) where SDM 4.4.1 says they load.
   */
  configure(cr0: number, cr3: number, cr4: number, efer: number): void {
    const mode = (cr0 & (CR0_PG | CR0_PE)) !== (CR0_PG | CR0_PE) ? PG_OFF : (cr4 & CR4_PAE) !== 0 ? PG_PAE : PG_32;
    const nxe = (efer & EFER_NXE) !== 0;
    const full = mode !== this.mode || ((cr0 ^ this.cr0) & CR0_WP) !== 0 || ((cr4 ^ this.cr4) & (CR4_PSE | CR4_PGE | CR4_PAE)) !== 0
      || nxe !== this.nxe;
    const cr3Changed = cr3 !== this.cr3;
    this.mode = mode; this.cr0 = cr0; this.cr3 = cr3; this.cr4 = cr4; this.nxe = nxe;
    if (mode !== PG_OFF && this.tlb.length === 0) { this.tlb = new Int32Array(1 << 20); this.listLen = 0; this.overflow = false; }
    if (full) this.flush(false);
    else if (cr3Changed) this.flush(true);
  }

  /**
   * Load the PDPTE registers from CR3 (SDM 4.4.1). False when a present PDPTE has a
   * reserved bit set: the MOV that caused the load raises #GP(0) and changes nothing.
   */
  loadPdptes(cr3: number): boolean {
    const base = (cr3 & 0xffffffe0) >>> 0;
    this.walkLa = -1;
    const lo = [0, 0, 0, 0], hi = [0, 0, 0, 0];
    for (let i = 0; i < 4; i++) {
      lo[i] = this.phys32(base + i * 8);
      hi[i] = this.phys32(base + i * 8 + 4);
      if ((lo[i] & 1) !== 0 && ((lo[i] & PDPTE_RSVD_LO) !== 0 || hi[i] !== 0)) return false;
    }
    for (let i = 0; i < 4; i++) { this.pdpteLo[i] = lo[i]; this.pdpteHi[i] = hi[i]; }
    this.flush(true);
    return true;
  }

  /** Drop cached translations; `keepGlobal`: global pages survive (a CR3 load, SDM 4.10.4.1). */
  flush(keepGlobal: boolean): void {
    const t = this.tlb;
    if (t.length === 0) return;
    if (this.overflow) {
      // Too many pages to track one by one: clear everything (the TLB may drop any entry, 4.10.1).
      t.fill(0);
      this.listLen = 0; this.overflow = false; this.large = false;
      return;
    }
    const l = this.list;
    let kept = 0, large = false;
    for (let i = 0; i < this.listLen; i++) {
      const lp = l[i], e = t[lp];
      if (keepGlobal && (e & TLB_GLOBAL) !== 0) { l[kept++] = lp; if ((e & TLB_LARGE) !== 0) large = true; } else t[lp] = 0;
    }
    this.listLen = kept;
    this.large = large;
  }

  /** INVLPG (SDM 4.10.4.1): drop the page of `la`, every piece of a large page holding it, global or not. */
  invlpg(la: number): void {
    const t = this.tlb;
    if (t.length === 0) return;
    const lp = la >>> 12;
    t[lp] = 0;
    if (this.large) {
      const first = lp & ~0x3ff;
      for (let p = first; p < first + 0x400; p++) if ((t[p] & TLB_LARGE) !== 0) t[p] = 0;
    }
  }

  /** The A20 mask changed: cached translations were made with the old one. */
  checkA20(): void {
    const a = this.host.a20Mask;
    if (a !== this.a20) { this.a20 = a; this.flush(false); }
  }

  /**
   * Translate `la` for an access of kind `acc` (ACC_*), `user` = a CPL-3 access that is
   * not an implicit supervisor one (SDM 4.6). Returns the physical address and fills
   * the TLB, or -1 with pfCode set (the caller raises #PF and CR2 = la). The page's TLB
   * entry is dropped on a fault (SDM 4.10.4.2). Paging-structure accesses outside the
   * RAM window may throw MEM_ABORT with exit.memWalk set.
   */
  translate(la: number, acc: number, user: boolean): number {
    la >>>= 0;
    this.walkLa = la;
    const write = acc === ACC_WRITE, fetch = acc === ACC_FETCH;
    const a20 = this.host.a20Mask;
    const rsvdHi = this.nxe ? 0x7fffffff : 0xffffffff;
    let u = 4, w = 2, nx = 0, large = false, leafAddr: number, leaf: number, pageBase: number, g: number;
    if (this.mode === PG_PAE) {
      const pdp = la >>> 30;
      const pd = this.pdpteLo[pdp];
      if ((pd & 1) === 0) return this.fail(la, 0, acc, user);
      const pdeAddr = (((pd & 0xfffff000) + ((la >>> 21) & 0x1ff) * 8) & a20) >>> 0;
      const lo = this.phys32(pdeAddr), hi = this.phys32(pdeAddr + 4);
      if ((lo & 1) === 0) return this.fail(la, 0, acc, user);
      if ((hi & rsvdHi) !== 0 || ((lo & 0x80) !== 0 && (lo & 0x1fe000) !== 0)) return this.fail(la, PF_P | PF_RSVD, acc, user);
      u &= lo; w &= lo; nx = hi >>> 31;
      if ((lo & 0x80) !== 0) {
        large = true; leafAddr = pdeAddr; leaf = lo; pageBase = ((lo & 0xffe00000) | (la & 0x1ff000)) >>> 0;
      } else {
        if ((lo & 0x20) === 0) this.setBits(pdeAddr, 0x20);
        const pteAddr = (((lo & 0xfffff000) + ((la >>> 12) & 0x1ff) * 8) & a20) >>> 0;
        const plo = this.phys32(pteAddr), phi = this.phys32(pteAddr + 4);
        if ((plo & 1) === 0) return this.fail(la, 0, acc, user);
        if ((phi & rsvdHi) !== 0) return this.fail(la, PF_P | PF_RSVD, acc, user);
        u &= plo; w &= plo; nx |= phi >>> 31;
        leafAddr = pteAddr; leaf = plo; pageBase = (plo & 0xfffff000) >>> 0;
      }
    } else {
      const pdeAddr = (((this.cr3 & 0xfffff000) + (la >>> 22) * 4) & a20) >>> 0;
      const pde = this.phys32(pdeAddr);
      if ((pde & 1) === 0) return this.fail(la, 0, acc, user);
      u &= pde; w &= pde;
      if ((pde & 0x80) !== 0 && (this.cr4 & CR4_PSE) !== 0) {
        if ((pde & 0x3fe000) !== 0) return this.fail(la, PF_P | PF_RSVD, acc, user); // bits 21:13 (no PSE-36)
        large = true; leafAddr = pdeAddr; leaf = pde; pageBase = ((pde & 0xffc00000) | (la & 0x3ff000)) >>> 0;
      } else {
        if ((pde & 0x20) === 0) this.setBits(pdeAddr, 0x20);
        const pteAddr = (((pde & 0xfffff000) + ((la >>> 12) & 0x3ff) * 4) & a20) >>> 0;
        const pte = this.phys32(pteAddr);
        if ((pte & 1) === 0) return this.fail(la, 0, acc, user);
        u &= pte; w &= pte;
        leafAddr = pteAddr; leaf = pte; pageBase = (pte & 0xfffff000) >>> 0;
      }
    }
    // Access rights (SDM 4.6): user needs U everywhere; writes need W everywhere except
    // supervisor writes with CR0.WP = 0; fetches fault on XD.
    const wp = (this.cr0 & CR0_WP) !== 0;
    if ((user && u === 0) || (write && w === 0 && (user || wp)) || (fetch && nx !== 0)) {
      return this.fail(la, PF_P, acc, user);
    }
    const want = write ? 0x60 : 0x20;
    if ((leaf & want) !== want) { this.setBits(leafAddr, want); leaf |= want; }
    g = (leaf & 0x100) !== 0 && (this.cr4 & CR4_PGE) !== 0 ? TLB_GLOBAL : 0;
    const pa = ((pageBase & a20) | (la & 0xfff)) >>> 0;
    const flags = TLB_VALID | (u === 0 ? TLB_NOUSER : 0) | (w === 0 ? TLB_NOWRITE_USER | (wp ? TLB_NOWRITE_SUP : 0) : 0)
      | ((leaf & 0x40) === 0 ? TLB_CLEAN : 0) | (nx !== 0 ? TLB_NX : 0) | g | (large ? TLB_LARGE : 0);
    this.fill(la >>> 12, ((pa & 0xfffff000) | flags) | 0);
    if (large) this.large = true;
    return pa;
  }

  private fill(lp: number, e: number): void {
    const t = this.tlb;
    if (t[lp] === 0) {
      if (this.listLen < LIST_CAP) this.list[this.listLen++] = lp; else this.overflow = true;
    }
    t[lp] = e;
  }

  /** A translation fault: the #PF error code (SDM 4.7) in pfCode, the page's entry dropped. */
  private fail(la: number, bits: number, acc: number, user: boolean): number {
    let code = bits;
    if (acc === ACC_WRITE) code |= PF_W;
    if (user) code |= PF_U;
    // I/D is reported only with PAE paging and EFER.NXE (no SMEP here).
    if (acc === ACC_FETCH && this.mode === PG_PAE && this.nxe) code |= PF_I;
    this.pfCode = code;
    if (this.tlb.length !== 0) this.tlb[la >>> 12] = 0;
    return -1;
  }

  /** A paging-structure read (inside the RAM window directly, else through `mem` with the exit noted). */
  phys32(pa: number): number {
    pa >>>= 0;
    const h = this.host, ram = h.mem.ram;
    if (ram !== undefined && pa + 3 < ram.length) return (ram[pa] | (ram[pa + 1] << 8) | (ram[pa + 2] << 16) | (ram[pa + 3] << 24)) >>> 0;
    this.note(pa, false);
    return h.mem.read32(pa) >>> 0;
  }

  /** Set A/D bits in the paging-structure entry at `pa`: a byte read-modify-write (bits 6:5 live in byte 0). */
  private setBits(pa: number, bits: number): void {
    const h = this.host, ram = h.mem.ram;
    if (ram !== undefined && pa < ram.length) {
      ram[pa] |= bits;
      h.invalidateCode(pa, 1);
      return;
    }
    this.note(pa, false);
    const b = h.mem.read8(pa);
    this.note(pa, true);
    h.mem.write8(pa, b | bits);
  }

  /**
   * Record a paging-structure access leaving the RAM window, for a MemAbort exit: the
   * linear address being translated is valid, the access is not to it (SDM 28.2.1, table
   * 28-7 bits 7 and 8).
   */
  private note(pa: number, write: boolean): void {
    const e = this.host.exit;
    e.memGpa = pa; e.memWrite = write; e.memFetch = false; e.memWalk = true;
    e.memLinear = this.walkLa >>> 0; e.memLinearValid = this.walkLa >= 0;
  }
}

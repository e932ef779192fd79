// Nested paging for the VMX and SVM kernel halves: a PhysMemory that translates the
// guest's physical addresses through tables that live in the bound GuestPhysSpace
// ("host-physical" memory for a guest is that space: the monitor builds the tables in
// frames it mapped there), then accesses the GuestPhysSpace at the result.
//
// Formats:
// - EPT (Intel SDM Vol. 3C 29.3): 4-level walk, R/W/X per entry (permissions AND-ed over
//   the levels), execute-only pages, 2 MiB and 1 GiB pages, memory types checked
//   (29.3.7). Misconfigurations of 29.3.3.1: W without R, reserved bits (including
//   address bits at or above MAXPHYADDR = 32), memory types 2, 3, 7 in a leaf.
//   Accessed/dirty flags (29.3.5) when the EPTP enables them (bit 6: setRoot's
//   `accessedDirty`): bit 8 (accessed) in every entry a translation uses, bit 9 (dirty) in
//   the leaf on a write; guest paging-structure accesses then count as writes, for the
//   permission check too (29.3.3.2). No #VE, no mode-based execute.
// - NPT (AMD APM Vol. 2 15.25): long-mode 4-level tables (host paging mode), P/RW/US/NX
//   (nested accesses are user accesses, 15.25.5; EFER.NXE taken as 1), 2 MiB and 1 GiB
//   pages; reserved bits give an RSVD fault. A/D as in host paging (APM 5.4.1/5.4.2,
//   always on): Accessed (bit 5) in every entry used, Dirty (bit 6) in the leaf on a write;
//   a guest page-table access counts as a write for the nested A/D bits (the guest's
//   walker may write A/D there; APM 15.25.5), its permission check stays the real access.
//   Not modelled: PAT/PCD/PWT memory types.
//
// A/D bits are set after a translation succeeds, never for a faulting one. Which guest
// accesses are page-table accesses comes from `walkSource` (the core's CpuExit.memWalk,
// which the core sets before every access leaving its RAM window).
//
// A guest-physical address that translates to a host-physical address where the
// GuestPhysSpace maps no RAM is the space's MMIO, as without nested paging (the monitor's
// synchronous MmioHandler): a monitor that wants an exit for a page leaves it out of the
// tables (EPT violation / nested page fault), one that wants the upcall maps it to a hole.
// A table read from an address that is not RAM reads all-ones (reserved bits set: an EPT
// misconfiguration / an NPT RSVD fault), as a read of non-existent memory does on a PC.
//
// Translations are cached per 4 KiB page in a direct-mapped table until flush(): INVEPT,
// a new EPTP or N_CR3, TLB_CONTROL (SDM 29.4.1, APM 15.16 allow caching until then).
// Faulting translations are never cached. A cached translation grants a write only once
// the leaf's dirty flag is set, so the first write after a read still walks and sets it.
// While the tables map guest-physical [0, N) identically onto the space's RAM window with
// full permissions (computed at flush), `ram` keeps the core's direct window over that
// prefix. With A/D on, a page is in that prefix only if every entry mapping it already has
// A set and its leaf D set (writeIdentityTables pre-sets them): accesses through the window
// skip the walker, so the bits they would have set must already be there. Software that
// clears them must flush (INVEPT, TLB_CONTROL), which recomputes the window, as hardware
// may also cache translations until then.
import type { AccessSize, PhysMemory } from "../x86/types.js";
import { MEM_ABORT } from "../x86/memory.js";

/** What the walker needs of the host-physical space (GuestPhysMemory implements it). */
export interface HostPhysRam extends PhysMemory {
  /** The RAM mapping holding host-physical `pa`, or null (MMIO). Must not allocate. */
  mappingAt(pa: number): { readonly gpa: number; readonly bytes: Uint8Array } | null;
}

export const enum NestedFormat {
  /** No translation: the GuestPhysSpace is the guest-physical space. */
  None = 0,
  Ept = 1,
  Npt = 2,
}

/** Access and permission bits, in EPT order (SDM table 28-7 bits 2:0 and 5:3). */
export const enum NestedAccess {
  Read = 1,
  Write = 2,
  Fetch = 4,
}

export const enum NestedFaultKind {
  None = 0,
  /** EPT violation (SDM 29.3.3.2) / nested page fault for a not-present or protection violation. */
  Violation = 1,
  /** EPT misconfiguration (SDM 29.3.3.1) / nested page fault with RSVD set. */
  Misconfig = 2,
}

export interface NestedPagingOptions {
  /** 2 MiB pages (EPT PDE bit 7, NPT PDE.PS). Default true. */
  largePages2M?: boolean;
  /** 1 GiB pages (EPT PDPTE bit 7, NPT PDPE.PS). Default true. */
  largePages1G?: boolean;
}

/** Cache perm bit: no dirty-flag work left for this page (D set, A/D off, or the leaf not writable). */
const DIRTY_DONE = 8;
const CACHE_BITS = 12;
const CACHE_SIZE = 1 << CACHE_BITS;
const CACHE_MASK = CACHE_SIZE - 1;
const EMPTY = new Uint8Array(0);
/** Entry address bits 51:32 (SDM 29.3.2, APM 5.3.3): reserved with MAXPHYADDR = 32. */
const HI_ADDR_RESERVED = 0x000fffff;
/** NPT bit 63 (NX) in the high dword. */
const NPT_NX_HI = 0x80000000;

/** EPT memory types a leaf may name (SDM 29.3.7): UC 0, WC 1, WT 4, WP 5, WB 6. */
const EPT_MEMTYPE_OK = (1 << 0) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6);

export class NestedPagingMemory implements PhysMemory {
  private formatValue: NestedFormat = NestedFormat.None;
  private rootValue = 0;
  /** Per cache slot: guest page number + 1 (0 = empty), host page base, permissions (NestedAccess bits). */
  private readonly tag = new Int32Array(CACHE_SIZE);
  private readonly hbase = new Uint32Array(CACHE_SIZE);
  private readonly perm = new Uint8Array(CACHE_SIZE);
  /** Bytes [0, identityLen) translate identically with R/W/X (computed at flush). */
  private identityLen = 0;
  private windowFor: Uint8Array | undefined = undefined;
  private window: Uint8Array = EMPTY;
  private readonly large2M: boolean;
  private readonly large1G: boolean;
  private adValue = false;
  // Walk results (no allocation): the host address and the size of the leaf.
  private walkHpa = 0;
  private walkLeafBytes = 0;
  /** Host-physical addresses of the entries the last walk used (root first), and how many. */
  private readonly walkPath = new Float64Array(4);
  private walkDepth = 0;
  /** The last walk found A set in every entry it used / D set in its leaf. */
  private walkAllAccessed = false;
  private walkLeafDirty = false;

  /**
   * Where the walker learns that an access is a guest page-table access (the engine core's
   * CpuExit: memWalk is set before each such access that leaves the core's RAM window).
   * Null: no access is taken for one. Only consulted with A/D on.
   */
  walkSource: { readonly memWalk: boolean } | null = null;

  // ---- the last fault (valid after this object threw MEM_ABORT) ----
  faultKind: NestedFaultKind = NestedFaultKind.None;
  /** The guest-physical address whose translation failed (for a split access, the failing byte's page). */
  faultGpa = 0;
  /** The access: one NestedAccess bit. */
  faultAccess = 0;
  /** EPT: the AND of bits 2:0 of the entries walked (SDM table 28-7 bits 5:3); NPT: the same for R=US, W=RW, X=!NX. */
  faultPerms = 0;
  /** NPT: the failing translation reached a present entry (error code P, APM 8.4.2). */
  faultPresent = false;
  /** Translations done by a walk (cache misses), for statistics and tests. */
  walks = 0;
  flushes = 0;

  constructor(readonly host: HostPhysRam, options: NestedPagingOptions = {}) {
    this.large2M = options.largePages2M ?? true;
    this.large1G = options.largePages1G ?? true;
  }

  get format(): NestedFormat { return this.formatValue; }
  /** The host-physical address of the top-level table (EPTP/N_CR3 bits 31:12). */
  get root(): number { return this.rootValue; }
  /** Whether the walker sets accessed/dirty flags in the entries (NPT always; EPT with EPTP bit 6). */
  get accessedDirty(): boolean { return this.adValue; }

  /**
   * Point the walker at new tables; a different root, format or A/D setting flushes the
   * cache. `accessedDirty` defaults to the format's own rule: always for NPT (APM 15.25),
   * never for EPT unless the EPTP's bit 6 asks for it (SDM 29.3.5).
   */
  setRoot(format: NestedFormat, root: number, accessedDirty: boolean = format === NestedFormat.Npt): void {
    root = (root & ~0xfff) >>> 0;
    const ad = format !== NestedFormat.None && accessedDirty;
    if (format === this.formatValue && root === this.rootValue && ad === this.adValue) return;
    this.formatValue = format;
    this.rootValue = root;
    this.adValue = ad;
    this.flush();
  }

  /** Drop every cached translation and recompute the identity window (INVEPT, TLB_CONTROL). */
  flush(): void {
    this.tag.fill(0);
    this.flushes++;
    this.identityLen = this.formatValue === NestedFormat.None ? 0x1_0000_0000 : this.scanIdentity();
    this.windowFor = undefined;
  }

  get ram(): Uint8Array {
    const h = this.host.ram ?? EMPTY;
    if (h !== this.windowFor) {
      this.windowFor = h;
      this.window = h.length <= this.identityLen ? h : h.subarray(0, this.identityLen);
    }
    return this.window;
  }

  /** The identically mapped RWX prefix, up to the host's own window. */
  private scanIdentity(): number {
    const limit = (this.host.ram ?? EMPTY).length;
    let gpa = 0;
    while (gpa < limit) {
      if (!this.walk(gpa, NestedAccess.Read) || this.faultPerms !== 7 || this.walkHpa !== gpa) break;
      // With A/D on, the window may only cover pages whose bits are already all set.
      if (this.adValue && (!this.walkAllAccessed || !this.walkLeafDirty)) break;
      // The leaf covers [gpa rounded down to its size, + size): step to its end.
      gpa = gpa - (gpa % this.walkLeafBytes) + this.walkLeafBytes;
    }
    this.faultKind = NestedFaultKind.None;
    return Math.min(gpa, limit);
  }

  // ---- translation ----

  /** One 64-bit table entry at host-physical `pa`: low dword returned, high in `entryHi`. All-ones where no RAM. */
  private entryHi = 0;
  private readEntry(pa: number): number {
    const m = this.host.mappingAt(pa);
    if (m === null) { this.entryHi = 0xffffffff; return 0xffffffff; }
    const b = m.bytes, i = pa - m.gpa;
    this.entryHi = (b[i + 4]! | (b[i + 5]! << 8) | (b[i + 6]! << 16) | (b[i + 7]! << 24)) >>> 0;
    return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
  }

  /**
   * Walk the tables for `gpa`. On success: walkHpa, walkLeafBytes, faultPerms (the
   * effective permissions) and true. On failure the fault fields and false.
   */
  private walk(gpa: number, access: number): boolean {
    this.walks++;
    const ept = this.formatValue === NestedFormat.Ept;
    let table = this.rootValue;
    let perms = 7;
    this.faultGpa = gpa;
    this.faultAccess = access;
    this.faultPresent = false;
    this.walkDepth = 0;
    let accessed = true;
    const aBit = ept ? 0x100 : 0x20;
    for (let level = 4; level >= 1; level--) {
      // Guest-physical addresses are 32 bits: the PML4 index (bits 47:39) is 0.
      const idx = level === 4 ? 0 : (gpa >>> (12 + 9 * (level - 1))) & 511;
      const entryPa = table + idx * 8;
      const lo = this.readEntry(entryPa);
      const hi = this.entryHi;
      this.walkPath[this.walkDepth++] = entryPa;
      if ((lo & aBit) === 0) accessed = false;
      const large = level >= 2 && level <= 3 && (lo & 0x80) !== 0;
      const leaf = level === 1 || large;
      let bad: boolean;
      let present: boolean;
      let p: number;
      if (ept) {
        p = lo & 7;
        present = p !== 0;
        if (!present) return this.fail(NestedFaultKind.Violation, 0);
        bad = (lo & 3) === 2 // write without read (SDM 29.3.3.1)
          || (hi & HI_ADDR_RESERVED) !== 0
          || (level === 4 && (lo & 0xf8) !== 0) // PML4E bits 7:3
          || (!leaf && level < 4 && (lo & 0x78) !== 0) // non-leaf bits 6:3
          || (large && level === 3 && (!this.large1G || (lo & 0x3ffff000) !== 0))
          || (large && level === 2 && (!this.large2M || (lo & 0x1ff000) !== 0))
          || (leaf && ((EPT_MEMTYPE_OK >>> ((lo >>> 3) & 7)) & 1) === 0);
      } else {
        present = (lo & 1) !== 0;
        if (!present) return this.fail(NestedFaultKind.Violation, perms & 0);
        // R = user-accessible (US), W = RW and US, X = US and not NX (APM 5.6).
        const us = (lo & 4) !== 0;
        p = us ? 1 | ((lo & 2) !== 0 ? 2 : 0) | ((hi & NPT_NX_HI) === 0 ? 4 : 0) : 0;
        bad = (hi & HI_ADDR_RESERVED) !== 0
          || (level === 4 && (lo & 0x180) !== 0) // PML4E PS and bit 8 MBZ (APM 5.3.3)
          || (large && level === 3 && (!this.large1G || (lo & 0x3fffe000) !== 0))
          || (large && level === 2 && (!this.large2M || (lo & 0x1fe000) !== 0));
      }
      if (bad) {
        this.faultPresent = true;
        return this.fail(NestedFaultKind.Misconfig, perms & p);
      }
      perms &= p;
      if (leaf) {
        const bytes = level === 1 ? 0x1000 : level === 2 ? 0x20_0000 : 0x4000_0000;
        const base = (lo & ~(bytes - 1)) >>> 0;
        this.walkHpa = (base + (gpa & (bytes - 1))) >>> 0;
        this.walkLeafBytes = bytes;
        this.faultPerms = perms;
        this.faultPresent = true;
        this.walkAllAccessed = accessed;
        this.walkLeafDirty = (lo & (ept ? 0x200 : 0x40)) !== 0;
        if ((perms & access) !== access) return this.fail(NestedFaultKind.Violation, perms);
        return true;
      }
      table = (lo & 0xfffff000) >>> 0;
    }
    return false; // not reached: level 1 is always a leaf
  }

  private fail(kind: NestedFaultKind, perms: number): boolean {
    this.faultKind = kind;
    this.faultPerms = perms;
    return false;
  }

  /**
   * The host-physical address of `gpa` for `access`, through the cache; throws MEM_ABORT
   * (the fault fields say why) when the tables refuse it. With A/D on, a successful walk
   * sets A in each entry used and D in the leaf for a write (or a guest page-table access).
   */
  translate(gpa: number, access: number): number {
    gpa >>>= 0;
    if (this.formatValue === NestedFormat.None) return gpa;
    let dirty = access === NestedAccess.Write;
    if (this.adValue && this.walkSource !== null && this.walkSource.memWalk) {
      // A guest page-table access: a write for the nested A/D bits (APM 15.25.5); with EPT
      // A/D also for the permission check (SDM 29.3.3.2).
      dirty = true;
      if (this.formatValue === NestedFormat.Ept) access |= NestedAccess.Write;
    }
    const gpn = gpa >>> 12;
    const i = gpn & CACHE_MASK;
    const p = this.perm[i]!;
    if (this.tag[i] === gpn + 1 && (p & access) === access && (!dirty || (p & DIRTY_DONE) !== 0)) return this.hbase[i]! + (gpa & 0xfff);
    if (!this.walk(gpa, access)) throw MEM_ABORT;
    this.faultKind = NestedFaultKind.None;
    let done = DIRTY_DONE;
    if (this.adValue) done = this.setAccessedDirty(dirty);
    this.tag[i] = gpn + 1;
    this.hbase[i] = (this.walkHpa & ~0xfff) >>> 0;
    this.perm[i] = this.faultPerms | done;
    return this.walkHpa;
  }

  /**
   * After a successful walk: A in every entry it used, D in the leaf when `dirty` and the
   * leaf allows writes (a read of a guest table on a read-only nested page sets only A).
   * Returns DIRTY_DONE when no later access needs to set D. Byte read-modify-writes of RAM.
   */
  private setAccessedDirty(dirty: boolean): number {
    const ept = this.formatValue === NestedFormat.Ept;
    const aByte = ept ? 1 : 0, aMask = ept ? 0x01 : 0x20, dMask = ept ? 0x02 : 0x40;
    const n = this.walkDepth;
    if (!this.walkAllAccessed) {
      for (let k = 0; k < n; k++) this.orEntryByte(this.walkPath[k]!, aByte, aMask);
      this.walkAllAccessed = true;
    }
    const writable = (this.faultPerms & NestedAccess.Write) !== 0;
    if (this.walkLeafDirty || !writable) return DIRTY_DONE;
    if (!dirty) return 0;
    this.orEntryByte(this.walkPath[n - 1]!, aByte, dMask);
    this.walkLeafDirty = true;
    return DIRTY_DONE;
  }

  private orEntryByte(entryPa: number, byte: number, mask: number): void {
    const m = this.host.mappingAt(entryPa);
    if (m === null) return;
    const i = entryPa - m.gpa + byte;
    m.bytes[i] = m.bytes[i]! | mask;
  }

  // ---- PhysMemory (hot path: a cache hit allocates nothing and walks nothing) ----

  read8(pa: number): number {
    return this.host.read8(this.translate(pa, NestedAccess.Read));
  }
  read16(pa: number): number {
    return (pa & 0xfff) > 0xffe ? this.readSplit(pa >>> 0, 2) : this.host.read16(this.translate(pa, NestedAccess.Read));
  }
  read32(pa: number): number {
    return (pa & 0xfff) > 0xffc ? this.readSplit(pa >>> 0, 4) : this.host.read32(this.translate(pa, NestedAccess.Read));
  }
  fetch8(pa: number): number {
    return this.host.read8(this.translate(pa, NestedAccess.Fetch));
  }
  write8(pa: number, value: number): void {
    this.host.write8(this.translate(pa, NestedAccess.Write), value);
  }
  write16(pa: number, value: number): void {
    if ((pa & 0xfff) > 0xffe) this.writeSplit(pa >>> 0, 2, value);
    else this.host.write16(this.translate(pa, NestedAccess.Write), value);
  }
  write32(pa: number, value: number): void {
    if ((pa & 0xfff) > 0xffc) this.writeSplit(pa >>> 0, 4, value);
    else this.host.write32(this.translate(pa, NestedAccess.Write), value);
  }

  /**
   * An access crossing a page: both pages are translated before any byte moves, so a
   * refused second page leaves nothing half done. Contiguous host pages take one access
   * (an MMIO device sees it whole), others go byte by byte.
   */
  private readSplit(pa: number, size: AccessSize): number {
    // The second page's first byte: the address a fault there reports.
    const second = ((pa + size - 1) & ~0xfff) >>> 0;
    const h0 = this.translate(pa, NestedAccess.Read);
    const h1 = this.translate(second, NestedAccess.Read);
    if (h1 === h0 + (second - pa)) return size === 2 ? this.host.read16(h0) : this.host.read32(h0);
    let v = 0;
    for (let k = 0; k < size; k++) v |= this.host.read8(this.translate((pa + k) >>> 0, NestedAccess.Read)) << (8 * k);
    return v >>> 0;
  }
  private writeSplit(pa: number, size: AccessSize, value: number): void {
    // The second page's first byte: the address a fault there reports.
    const second = ((pa + size - 1) & ~0xfff) >>> 0;
    const h0 = this.translate(pa, NestedAccess.Write);
    const h1 = this.translate(second, NestedAccess.Write);
    if (h1 === h0 + (second - pa)) {
      if (size === 2) this.host.write16(h0, value); else this.host.write32(h0, value);
      return;
    }
    for (let k = 0; k < size; k++) this.host.write8(this.translate((pa + k) >>> 0, NestedAccess.Write), value >>> (8 * k));
  }
}

/** Bits of an EPT paging-structure entry (SDM 29.3.2), for monitors building tables. */
export const EptEntry = { R: 1, W: 2, X: 4, MemTypeWb: 6 << 3, IgnorePat: 1 << 6, Large: 1 << 7, Accessed: 1 << 8, Dirty: 1 << 9 } as const;
/** Bits of an NPT (long-mode) entry (APM 5.3.3); NX is bit 31 of the high dword. */
export const NptEntry = { P: 1, RW: 2, US: 4, Accessed: 1 << 5, Dirty: 1 << 6, Large: 1 << 7, NxHi: 0x80000000 } as const;

/**
 * The nested-paging PhysMemory for a GuestPhysSpace's memory, or null when that memory
 * cannot look up its RAM frames (an engine whose space is not a GuestPhysMemory).
 */
export function nestedPagingFor(memory: PhysMemory, options: NestedPagingOptions = {}): NestedPagingMemory | null {
  const m = memory as Partial<HostPhysRam> & PhysMemory;
  return typeof m.mappingAt === "function" ? new NestedPagingMemory(m as HostPhysRam, options) : null;
}

/** Bytes of tables `writeIdentityTables` needs to map [0, ramBytes): PML4, PDPT, one PD per GiB, a PT for a tail below 2 MiB. */
export function identityTablesBytes(ramBytes: number): number {
  const pds = Math.max(1, Math.ceil(ramBytes / 0x4000_0000));
  return (2 + pds + (ramBytes % 0x20_0000 !== 0 ? 1 : 0)) * 0x1000;
}

/**
 * Write nested tables (EPT or NPT) that map guest-physical [0, ramBytes) identically with
 * full permissions (EPT: RWX, write-back; NPT: P/RW/US) and A/D pre-set, using 2 MiB pages and 4 KiB pages
 * for a tail, and nothing else: every other guest-physical address faults (an EPT
 * violation / NPF, which a monitor sends to its memory assist as MMIO). `tables` is the
 * monitor's view of the frame it maps at host-physical `tablesAddr` (4 KiB aligned), at
 * least identityTablesBytes(ramBytes) long; ramBytes a multiple of 4 KiB, at most 4 GiB.
 * Returns the root's address (EPTP bits 31:12 / N_CR3).
 */
export function writeIdentityTables(format: NestedFormat.Ept | NestedFormat.Npt, tables: Uint8Array, tablesAddr: number, ramBytes: number): number {
  if (ramBytes % 0x1000 !== 0 || ramBytes > 0x1_0000_0000 || tables.length < identityTablesBytes(ramBytes) || tablesAddr % 0x1000 !== 0) {
    throw new RangeError(`nested paging: cannot map ${ramBytes} bytes with ${tables.length} bytes of tables at 0x${tablesAddr.toString(16)}`);
  }
  const ept = format === NestedFormat.Ept;
  // A and D are pre-set (the monitor built the tables and every page is RAM it owns): the
  // walker's identity window may then cover the pages (see NestedPagingMemory) and skip
  // the per-access A/D updates. With EPT A/D off, bits 8 and 9 are ignored (SDM 29.3.2).
  const dir = ept ? EptEntry.R | EptEntry.W | EptEntry.X | EptEntry.Accessed : NptEntry.P | NptEntry.RW | NptEntry.US | NptEntry.Accessed;
  const leaf = ept ? dir | EptEntry.MemTypeWb | EptEntry.Dirty : dir | NptEntry.Dirty;
  const dv = new DataView(tables.buffer, tables.byteOffset, tables.length);
  const put = (off: number, lo: number): void => { dv.setUint32(off, lo >>> 0, true); dv.setUint32(off + 4, 0, true); };
  tables.fill(0, 0, identityTablesBytes(ramBytes));
  const pds = Math.max(1, Math.ceil(ramBytes / 0x4000_0000));
  const ptOff = (2 + pds) * 0x1000;
  put(0, (tablesAddr + 0x1000) | dir); // PML4[0] -> PDPT
  for (let g = 0; g < pds; g++) put(0x1000 + g * 8, (tablesAddr + 0x2000 + g * 0x1000) | dir);
  for (let base = 0; base < ramBytes; base += 0x20_0000) {
    const pde = 0x2000 + (base / 0x20_0000) * 8; // the PDs are consecutive: one index over all of them
    if (base + 0x20_0000 <= ramBytes) { put(pde, base | leaf | EptEntry.Large); continue; }
    put(pde, (tablesAddr + ptOff) | dir);
    for (let p = base; p < ramBytes; p += 0x1000) put(ptOff + ((p - base) / 0x1000) * 8, p | leaf);
  }
  return tablesAddr;
}

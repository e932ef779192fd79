import { describe, expect, it } from "vitest";
import type { AccessSize, MmioHandler } from "./api.js";
import { GuestPhysMemory } from "./gpspace.js";
import {
  EptEntry, NestedAccess, NestedFaultKind, NestedFormat, NestedPagingMemory, NptEntry, identityTablesBytes, nestedPagingFor, writeIdentityTables,
} from "./nested-paging.js";
import { MEM_ABORT } from "../x86/memory.js";

const RAM = 8 << 20; // 8 MiB at host-physical 0
const TABLES = 0x0100_0000; // tables frame at 16 MiB, outside RAM
const PML4 = TABLES, PDPT = TABLES + 0x1000, PD = TABLES + 0x2000, PT = TABLES + 0x3000, PT2 = TABLES + 0x4000;
const RWX = EptEntry.R | EptEntry.W | EptEntry.X;
const WB = EptEntry.MemTypeWb;

class Mmio implements MmioHandler {
  readonly log: string[] = [];
  read(gpa: number, size: AccessSize): number { this.log.push(`r${size}@${gpa.toString(16)}`); return 0x5a; }
  write(gpa: number, size: AccessSize, v: number): void { this.log.push(`w${size}@${gpa.toString(16)}=${v.toString(16)}`); }
}

function setup() {
  const host = new GuestPhysMemory();
  const ram = new Uint8Array(RAM);
  const tables = new Uint8Array(0x10000);
  host.map(0, ram, 7, true, "ram");
  host.map(TABLES, tables, 7, true, "tables");
  const mmio = new Mmio();
  host.mmio = mmio;
  const dv = new DataView(tables.buffer);
  const set = (pa: number, lo: number, hi = 0): void => { dv.setUint32(pa - TABLES, lo >>> 0, true); dv.setUint32(pa - TABLES + 4, hi >>> 0, true); };
  const np = nestedPagingFor(host)!;
  return { host, ram, mmio, set, np };
}

/** EPT: PML4[0] -> PDPT, PDPT[0] -> PD, PD[0] -> PT, PT[i] = page i identity with `leaf` bits. */
function eptTables(set: (pa: number, lo: number, hi?: number) => void, leaf = RWX | WB, pages = 512): void {
  set(PML4, PDPT | RWX);
  set(PDPT, PD | RWX);
  set(PD, PT | RWX);
  for (let i = 0; i < pages; i++) set(PT + i * 8, (i << 12) | leaf);
}

function abortOf(f: () => unknown): unknown {
  try { f(); } catch (x) { return x; }
  return undefined;
}

describe("EPT walk (SDM 29.3)", () => {
  it("translates through four levels onto the space's RAM", () => {
    const { ram, set, np } = setup();
    eptTables(set);
    set(PT + 5 * 8, 0x0030_0000 | RWX | WB); // guest page 5 -> host 3 MiB
    np.setRoot(NestedFormat.Ept, PML4);
    ram[0x30_0010] = 0x77;
    expect(np.read8(0x5010)).toBe(0x77);
    np.write32(0x5020, 0xdeadbeef);
    expect(ram[0x30_0020]).toBe(0xef);
  });

  it("each permission bit is enforced, with the access and the AND of the entries' bits reported", () => {
    const { set, np } = setup();
    eptTables(set);
    set(PT + 1 * 8, 0x1000 | EptEntry.R | WB); // read-only
    set(PT + 2 * 8, 0x2000 | EptEntry.X | WB); // execute-only
    set(PT + 3 * 8, 0x3000 | EptEntry.R | EptEntry.W | WB); // no execute
    set(PD, PT | EptEntry.R | EptEntry.W); // the PDE takes X away from everything below it
    np.setRoot(NestedFormat.Ept, PML4);
    expect(np.read8(0x1000)).toBe(0);
    expect(abortOf(() => np.write8(0x1000, 1))).toBe(MEM_ABORT);
    expect([np.faultKind, np.faultGpa, np.faultAccess, np.faultPerms]).toEqual([NestedFaultKind.Violation, 0x1000, NestedAccess.Write, 1]);
    expect(abortOf(() => np.fetch8(0x3000))).toBe(MEM_ABORT);
    expect([np.faultAccess, np.faultPerms]).toEqual([NestedAccess.Fetch, 3]);
    expect(abortOf(() => np.read8(0x2000))).toBe(MEM_ABORT);
    expect([np.faultAccess, np.faultPerms]).toEqual([NestedAccess.Read, 0]);
    set(PD, PT | RWX);
    np.flush();
    expect(np.fetch8(0x2000)).toBe(0); // execute-only is supported
    expect(np.fetch8(0x3000 - 1)).toBe(0);
  });

  it("a not-present entry is a violation with no permissions", () => {
    const { set, np } = setup();
    eptTables(set, RWX | WB, 16);
    np.setRoot(NestedFormat.Ept, PML4);
    expect(abortOf(() => np.read32(0x10_0000))).toBe(MEM_ABORT);
    expect([np.faultKind, np.faultGpa, np.faultPerms]).toEqual([NestedFaultKind.Violation, 0x10_0000, 0]);
  });

  it("2 MiB and 1 GiB pages translate with the offset inside the page", () => {
    const { ram, set, np } = setup();
    set(PML4, PDPT | RWX);
    set(PDPT, PD | RWX);
    set(PD + 1 * 8, 0x0040_0000 | RWX | WB | EptEntry.Large); // guest 2 MiB -> host 4 MiB
    set(PDPT + 1 * 8, 0 | RWX | WB | EptEntry.Large); // guest 1 GiB -> host 0
    np.setRoot(NestedFormat.Ept, PML4);
    ram[0x40_1234] = 0x11; ram[0x1234] = 0x22;
    expect(np.read8(0x20_1234)).toBe(0x11);
    expect(np.read8(0x4000_1234)).toBe(0x22);
  });

  it("misconfigurations: W without R, reserved bits, a bad memory type, a disabled page size", () => {
    const cases: [string, (set: (pa: number, lo: number, hi?: number) => void) => void, { largePages2M?: boolean }?][] = [
      ["write without read", (set) => set(PT, 0 | EptEntry.W | WB)],
      ["address bit 32 (MAXPHYADDR 32)", (set) => set(PT, 0 | RWX | WB, 1)],
      ["PML4E bit 7", (set) => set(PML4, PDPT | RWX | EptEntry.Large)],
      ["non-leaf PDE bits 6:3", (set) => set(PD, PT | RWX | (1 << 3))],
      ["memory type 2", (set) => set(PT, 0 | RWX | (2 << 3))],
      ["memory type 7", (set) => set(PT, 0 | RWX | (7 << 3))],
      ["2 MiB page with bits 20:12 set", (set) => set(PD, 0x1000 | RWX | WB | EptEntry.Large)],
      ["2 MiB page when unsupported", (set) => set(PD, 0 | RWX | WB | EptEntry.Large), { largePages2M: false }],
    ];
    for (const [name, corrupt, opts] of cases) {
      const { host, set } = setup();
      const np = new NestedPagingMemory(host, opts);
      eptTables(set);
      corrupt(set);
      np.setRoot(NestedFormat.Ept, PML4);
      expect(abortOf(() => np.read8(0x10)), name).toBe(MEM_ABORT);
      expect(np.faultKind, name).toBe(NestedFaultKind.Misconfig);
    }
  });

  it("tables at an address that is not RAM read as all-ones: a misconfiguration, and no MMIO upcall", () => {
    const { mmio, np } = setup();
    np.setRoot(NestedFormat.Ept, 0x2000_0000);
    expect(abortOf(() => np.read8(0))).toBe(MEM_ABORT);
    expect(np.faultKind).toBe(NestedFaultKind.Misconfig);
    expect(mmio.log).toEqual([]);
  });

  it("a guest page translated to a host address with no RAM reaches the space's MMIO handler", () => {
    const { set, np, mmio } = setup();
    eptTables(set);
    set(PT + 7 * 8, 0xfee0_0000 | RWX | WB);
    np.setRoot(NestedFormat.Ept, PML4);
    expect(np.read32(0x7004)).toBe(0x5a);
    np.write16(0x7008, 0x1234);
    expect(mmio.log).toEqual(["r4@fee00004", "w2@fee00008=1234"]);
  });

  it("a write crossing into a refused page writes nothing", () => {
    const { ram, set, np } = setup();
    eptTables(set);
    set(PT + 2 * 8, 0x2000 | EptEntry.R | WB);
    np.setRoot(NestedFormat.Ept, PML4);
    expect(abortOf(() => np.write32(0x1ffe, 0x11223344))).toBe(MEM_ABORT);
    expect(np.faultGpa).toBe(0x2000);
    expect([ram[0x1ffe], ram[0x1fff]]).toEqual([0, 0]);
    np.write16(0x0ffe, 0xbbaa); // both pages writable: done
    expect([ram[0xffe], ram[0xfff]]).toEqual([0xaa, 0xbb]);
  });
});

describe("translation cache (SDM 29.4, APM 15.16)", () => {
  it("keeps a translation until flush, and sees the new entry after it", () => {
    const { ram, set, np } = setup();
    eptTables(set);
    np.setRoot(NestedFormat.Ept, PML4);
    ram[0x9000] = 1; ram[0xa000] = 2;
    expect(np.read8(0x9000)).toBe(1);
    const walks = np.walks;
    set(PT + 9 * 8, 0xa000 | RWX | WB);
    expect(np.read8(0x9000)).toBe(1); // cached
    expect(np.walks).toBe(walks);
    np.flush();
    expect(np.read8(0x9000)).toBe(2);
  });

  it("a new root flushes; the same root does not", () => {
    const { set, np } = setup();
    eptTables(set);
    np.setRoot(NestedFormat.Ept, PML4);
    const f = np.flushes;
    np.setRoot(NestedFormat.Ept, PML4 | 0x1e); // EPTP low bits are not part of the root
    expect(np.flushes).toBe(f);
    np.setRoot(NestedFormat.Npt, PML4);
    expect(np.flushes).toBe(f + 1);
  });

  it("a cached read-only translation does not let a write through", () => {
    const { set, np } = setup();
    eptTables(set);
    set(PT + 4 * 8, 0x4000 | EptEntry.R | WB);
    np.setRoot(NestedFormat.Ept, PML4);
    np.read8(0x4000);
    expect(abortOf(() => np.write8(0x4000, 1))).toBe(MEM_ABORT);
  });
});

describe("identity window (the core's direct RAM path)", () => {
  it("covers the identically mapped RWX prefix, up to the space's own window", () => {
    const { host, set, np } = setup();
    eptTables(set); // [0, 2 MiB) identity with 4 KiB pages
    np.setRoot(NestedFormat.Ept, PML4);
    expect(np.ram.length).toBe(0x20_0000);
    set(PD + 8, 0x20_0000 | RWX | WB | EptEntry.Large);
    set(PD + 16, 0x40_0000 | RWX | WB | EptEntry.Large);
    set(PD + 24, 0x60_0000 | RWX | WB | EptEntry.Large);
    set(PD + 32, 0x80_0000 | RWX | WB | EptEntry.Large); // beyond host RAM
    np.flush();
    expect(np.ram.length).toBe(RAM);
    expect(np.ram.buffer).toBe(host.ram.buffer);
  });

  it("stops at a page without full permissions or not mapped identically", () => {
    const { set, np } = setup();
    eptTables(set);
    set(PT + 0x100 * 8, 0x10_0000 | EptEntry.R | EptEntry.X | WB);
    np.setRoot(NestedFormat.Ept, PML4);
    expect(np.ram.length).toBe(0x10_0000);
    set(PT + 0x100 * 8, RWX | WB); // guest 1 MiB -> host 0: an alias, not identity
    np.flush();
    expect(np.ram.length).toBe(0x10_0000);
  });

  it("follows the space's window when A20 cuts it", () => {
    const { host, set, np } = setup();
    eptTables(set);
    np.setRoot(NestedFormat.Ept, PML4);
    host.setA20(false);
    expect(np.ram.length).toBe(0x10_0000);
    host.setA20(true);
    expect(np.ram.length).toBe(0x20_0000);
  });
});

describe("NPT walk (APM 15.25)", () => {
  const U = NptEntry.P | NptEntry.RW | NptEntry.US;
  function nptTables(set: (pa: number, lo: number, hi?: number) => void): void {
    set(PML4, PDPT | U); set(PDPT, PD | U); set(PD, PT | U);
    for (let i = 0; i < 512; i++) set(PT + i * 8, (i << 12) | U);
  }

  it("P, RW, US and NX each refuse the access they govern", () => {
    const { set, np } = setup();
    nptTables(set);
    set(PT + 1 * 8, 0x1000); // not present
    set(PT + 2 * 8, 0x2000 | NptEntry.P | NptEntry.US); // read-only
    set(PT + 3 * 8, 0x3000 | NptEntry.P | NptEntry.RW); // supervisor: nested accesses are user accesses
    set(PT + 4 * 8, 0x4000 | U, NptEntry.NxHi);
    np.setRoot(NestedFormat.Npt, PML4);
    expect(abortOf(() => np.read8(0x1000))).toBe(MEM_ABORT);
    expect([np.faultKind, np.faultPresent]).toEqual([NestedFaultKind.Violation, false]);
    expect(np.read8(0x2000)).toBe(0);
    expect(abortOf(() => np.write8(0x2000, 1))).toBe(MEM_ABORT);
    expect([np.faultKind, np.faultPresent, np.faultAccess]).toEqual([NestedFaultKind.Violation, true, NestedAccess.Write]);
    expect(abortOf(() => np.read8(0x3000))).toBe(MEM_ABORT);
    expect(np.faultPresent).toBe(true);
    expect(np.read8(0x4000)).toBe(0);
    expect(abortOf(() => np.fetch8(0x4000))).toBe(MEM_ABORT);
    expect(np.faultAccess).toBe(NestedAccess.Fetch);
  });

  it("reserved bits give a present RSVD fault; large pages translate", () => {
    const { ram, set, np } = setup();
    nptTables(set);
    set(PT + 5 * 8, 0x5000 | U, 0x10); // address bit 36
    set(PD + 8, 0x40_0000 | U | NptEntry.Large);
    np.setRoot(NestedFormat.Npt, PML4);
    expect(abortOf(() => np.read8(0x5000))).toBe(MEM_ABORT);
    expect([np.faultKind, np.faultPresent]).toEqual([NestedFaultKind.Misconfig, true]);
    ram[0x40_0042] = 9;
    expect(np.read8(0x20_0042)).toBe(9);
    set(PD + 8, 0x40_2000 | U | NptEntry.Large); // bits 20:13 of a 2 MiB PDE are reserved
    np.flush();
    expect(abortOf(() => np.read8(0x20_0042))).toBe(MEM_ABORT);
    expect(np.faultKind).toBe(NestedFaultKind.Misconfig);
  });
});

describe("identity tables for monitors (writeIdentityTables)", () => {
  it.each([[NestedFormat.Ept], [NestedFormat.Npt]] as const)("format %i maps exactly [0, RAM) with 2 MiB pages and a 4 KiB tail; the window covers it", (format) => {
    const host = new GuestPhysMemory();
    const ramBytes = 0x30_3000; // 3 MiB + 12 KiB
    const ram = new Uint8Array(ramBytes);
    host.map(0, ram, 7, true, "ram");
    const tables = new Uint8Array(identityTablesBytes(ramBytes));
    host.map(0x80_0000, tables, 7, true, "tables");
    const np = new NestedPagingMemory(host);
    np.setRoot(format, writeIdentityTables(format, tables, 0x80_0000, ramBytes));
    expect(np.ram.length).toBe(ramBytes);
    ram[0x30_2fff] = 0x42;
    expect(np.read8(0x30_2fff)).toBe(0x42);
    expect(abortOf(() => np.read8(0x30_3000))).toBe(MEM_ABORT);
    expect(abortOf(() => np.read8(0x80_0000))).toBe(MEM_ABORT); // the tables themselves are not guest memory
    expect(np.faultKind).toBe(NestedFaultKind.Violation);
  });
});

describe("accessed and dirty flags (APM 15.25 with 5.4.2; SDM 29.3.5)", () => {
  const U = NptEntry.P | NptEntry.RW | NptEntry.US;
  function nptTables(set: (pa: number, lo: number, hi?: number) => void): void {
    set(PML4, PDPT | U); set(PDPT, PD | U); set(PD, PT | U);
    for (let i = 0; i < 512; i++) set(PT + i * 8, (i << 12) | U);
  }
  const lo32 = (host: GuestPhysMemory, pa: number): number => host.read32(pa) >>> 0;

  it("NPT: a read sets Accessed in every entry used and no Dirty; the first write sets Dirty in the leaf only", () => {
    const { host, set, np } = setup();
    nptTables(set);
    np.setRoot(NestedFormat.Npt, PML4);
    expect(np.accessedDirty).toBe(true);
    np.read8(0x7010);
    for (const pa of [PML4, PDPT, PD, PT + 7 * 8]) expect(lo32(host, pa) & NptEntry.Accessed).toBe(NptEntry.Accessed);
    expect(lo32(host, PT + 7 * 8) & NptEntry.Dirty).toBe(0);
    expect(lo32(host, PT + 8 * 8) & NptEntry.Accessed).toBe(0); // an entry no walk used
    // The read is cached; the write after it must still reach the leaf's Dirty flag.
    np.write8(0x7011, 1);
    expect(lo32(host, PT + 7 * 8) & NptEntry.Dirty).toBe(NptEntry.Dirty);
    expect(lo32(host, PD) & NptEntry.Dirty).toBe(0); // non-leaf entries have no dirty flag
    const walks = np.walks;
    np.write8(0x7012, 2); // D already set: a cache hit
    expect(np.walks).toBe(walks);
  });

  it("NPT: a faulting translation sets no flag; a 2 MiB leaf gets Dirty on a write", () => {
    const { host, set, np } = setup();
    nptTables(set);
    set(PT + 2 * 8, 0x2000 | NptEntry.P | NptEntry.US); // read-only
    set(PD + 8, 0x40_0000 | U | NptEntry.Large);
    np.setRoot(NestedFormat.Npt, PML4);
    expect(abortOf(() => np.write8(0x2000, 1))).toBe(MEM_ABORT);
    expect(lo32(host, PT + 2 * 8) & (NptEntry.Accessed | NptEntry.Dirty)).toBe(0);
    np.write32(0x20_0100, 5);
    expect(lo32(host, PD + 8) & (NptEntry.Accessed | NptEntry.Dirty)).toBe(NptEntry.Accessed | NptEntry.Dirty);
  });

  it("NPT: a guest page-table access counts as a write for Dirty, not for the permission check", () => {
    const { host, set, np } = setup();
    nptTables(set);
    set(PT + 3 * 8, 0x3000 | NptEntry.P | NptEntry.US); // read-only page holding guest tables
    np.setRoot(NestedFormat.Npt, PML4);
    const exit = { memWalk: true };
    np.walkSource = exit;
    np.read32(0x5000); // the guest walker reads a PTE
    expect(lo32(host, PT + 5 * 8) & NptEntry.Dirty).toBe(NptEntry.Dirty);
    expect(np.read32(0x3000)).toBe(0); // read-only: the walk read is allowed, sets A only
    expect(lo32(host, PT + 3 * 8) & (NptEntry.Accessed | NptEntry.Dirty)).toBe(NptEntry.Accessed);
    exit.memWalk = false;
    np.read32(0x6000); // an ordinary read
    expect(lo32(host, PT + 6 * 8) & NptEntry.Dirty).toBe(0);
    exit.memWalk = true;
    np.read32(0x6004); // cached without D: a walk access must not hit it
    expect(lo32(host, PT + 6 * 8) & NptEntry.Dirty).toBe(NptEntry.Dirty);
  });

  it("EPT: no flag without EPTP bit 6; with it bit 8 in every entry and bit 9 in the leaf on a write", () => {
    const { host, set, np } = setup();
    eptTables(set);
    np.setRoot(NestedFormat.Ept, PML4);
    expect(np.accessedDirty).toBe(false);
    np.write8(0x9000, 1);
    for (const pa of [PML4, PDPT, PD, PT + 9 * 8]) expect(lo32(host, pa) & (EptEntry.Accessed | EptEntry.Dirty)).toBe(0);
    const f = np.flushes;
    np.setRoot(NestedFormat.Ept, PML4, true);
    expect(np.flushes).toBe(f + 1); // turning A/D on flushes the cache
    np.read8(0x9000);
    for (const pa of [PML4, PDPT, PD, PT + 9 * 8]) expect(lo32(host, pa) & EptEntry.Accessed).toBe(EptEntry.Accessed);
    expect(lo32(host, PT + 9 * 8) & EptEntry.Dirty).toBe(0);
    np.write8(0x9000, 2);
    expect(lo32(host, PT + 9 * 8) & EptEntry.Dirty).toBe(EptEntry.Dirty);
  });

  it("EPT with A/D: a guest paging-structure access to a read-only page is a write violation (SDM 29.3.3.2)", () => {
    const { set, np } = setup();
    eptTables(set);
    set(PT + 4 * 8, 0x4000 | EptEntry.R | WB);
    np.setRoot(NestedFormat.Ept, PML4, true);
    np.walkSource = { memWalk: true };
    expect(abortOf(() => np.read32(0x4000))).toBe(MEM_ABORT);
    expect(np.faultAccess & NestedAccess.Write).toBe(NestedAccess.Write);
  });

  it("the identity window covers only pages whose A and D are already set", () => {
    const { set, np } = setup();
    nptTables(set);
    np.setRoot(NestedFormat.Npt, PML4);
    expect(np.ram.length).toBe(0); // fresh tables: every access must walk to set A/D
    const AD = NptEntry.Accessed | NptEntry.Dirty;
    set(PML4, PDPT | U | NptEntry.Accessed); set(PDPT, PD | U | NptEntry.Accessed); set(PD, PT | U | NptEntry.Accessed);
    for (let i = 0; i < 512; i++) set(PT + i * 8, (i << 12) | U | (i < 0x10 ? AD : NptEntry.Accessed));
    np.flush();
    expect(np.ram.length).toBe(0x10_000); // pages 0-15 pre-set; page 16 lacks D
  });

  it.each([[NestedFormat.Ept], [NestedFormat.Npt]] as const)("writeIdentityTables (format %i) pre-sets A/D, so the window stays whole with A/D on", (format) => {
    const host = new GuestPhysMemory();
    const ramBytes = 0x30_3000;
    host.map(0, new Uint8Array(ramBytes), 7, true, "ram");
    const tables = new Uint8Array(identityTablesBytes(ramBytes));
    host.map(0x80_0000, tables, 7, true, "tables");
    const np = new NestedPagingMemory(host);
    np.setRoot(format, writeIdentityTables(format, tables, 0x80_0000, ramBytes), true);
    expect(np.accessedDirty).toBe(true);
    expect(np.ram.length).toBe(ramBytes);
  });
});

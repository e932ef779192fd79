// The page walker and TLB of mmu.ts in isolation (SDM Vol. 3A chapter 4).
import { describe, expect, it } from "vitest";
import { FlatMemory, MEM_ABORT } from "./memory.js";
import {
  ACC_FETCH, ACC_READ, ACC_WRITE, Mmu, PF_I, PF_P, PF_RSVD, PF_U, PF_W, PG_32, PG_OFF, PG_PAE, TLB_VALID, tlbMask,
} from "./mmu.js";
import type { CpuExit, PhysMemory } from "./types.js";

const P = 1, W = 2, U = 4, A = 0x20, D = 0x40, PS = 0x80, G = 0x100;
const PE = 1, WP = 0x10000, PG = 0x80000000;
const PSE = 0x10, PAE = 0x20, PGE = 0x80, NXE = 0x800;

interface Host { mem: PhysMemory; exit: CpuExit; invalidateCode(pa: number, len: number): void; a20Mask: number; invalidated: number[] }

function host(mem: PhysMemory): Host {
  const h: Host = {
    mem,
    exit: { memGpa: 0, memWrite: false, memFetch: false, memWalk: false, memLinear: 0, memLinearValid: false } as CpuExit,
    invalidated: [],
    invalidateCode(pa: number) { h.invalidated.push(pa); },
    a20Mask: 0xffffffff,
  };
  return h;
}

/** 32-bit paging: page directory at 0x1000, one page table at 0x2000 for the first 4 MiB. */
function setup32(cr0 = PE | PG, cr4 = 0) {
  const m = new FlatMemory(0x1000000);
  const h = host(m);
  const mmu = new Mmu(h);
  const rd = (pa: number) => m.read32(pa);
  const wr = (pa: number, v: number) => m.write32(pa, v >>> 0);
  wr(0x1000, 0x2000 | P | W | U);
  const map = (la: number, pa: number, flags: number) => wr(0x2000 + ((la >>> 12) & 0x3ff) * 4, (pa | flags) >>> 0);
  mmu.configure(cr0, 0x1000, cr4, 0);
  return { m, h, mmu, rd, wr, map };
}

describe("Mmu: 32-bit paging", () => {
  it("translates a 4 KiB page, sets A in the PDE and PTE on a read, and D only on a write", () => {
    const t = setup32();
    t.map(0x5000, 0x7000, P | W);
    expect(t.mmu.mode).toBe(PG_32);
    expect(t.mmu.translate(0x5123, ACC_READ, false)).toBe(0x7123);
    expect(t.rd(0x1000) & (A | D)).toBe(A);
    expect(t.rd(0x2014) & (A | D)).toBe(A);
    t.mmu.flush(false);
    expect(t.mmu.translate(0x5ffc, ACC_WRITE, false)).toBe(0x7ffc);
    expect(t.rd(0x2014) & (A | D)).toBe(A | D);
    expect(t.rd(0x1000) & D).toBe(0); // D exists only in the entry that maps the page
  });

  it("reports not-present faults with P=0 and the W/R and U/S bits of the access", () => {
    const t = setup32();
    expect(t.mmu.translate(0x6000, ACC_READ, false)).toBe(-1);
    expect(t.mmu.pfCode).toBe(0);
    expect(t.mmu.translate(0x6000, ACC_WRITE, true)).toBe(-1);
    expect(t.mmu.pfCode).toBe(PF_W | PF_U);
    expect(t.mmu.translate(0x00400000, ACC_READ, true)).toBe(-1); // PDE 1 not present
    expect(t.mmu.pfCode).toBe(PF_U);
    // I/D is not reported without PAE and NXE (SDM 4.7).
    expect(t.mmu.translate(0x6000, ACC_FETCH, false)).toBe(-1);
    expect(t.mmu.pfCode).toBe(0);
  });

  it("U/S and R/W combine over both levels; CR0.WP decides supervisor writes to read-only pages", () => {
    const t = setup32();
    t.map(0x5000, 0x7000, P | U);         // read-only user page
    t.map(0x8000, 0x9000, P | W);         // supervisor page
    expect(t.mmu.translate(0x5000, ACC_READ, true)).toBe(0x7000);
    expect(t.mmu.translate(0x5000, ACC_WRITE, true)).toBe(-1);
    expect(t.mmu.pfCode).toBe(PF_P | PF_W | PF_U);
    expect(t.mmu.translate(0x5000, ACC_WRITE, false)).toBe(0x7000); // WP = 0
    expect(t.mmu.translate(0x8000, ACC_READ, true)).toBe(-1);
    expect(t.mmu.pfCode).toBe(PF_P | PF_U);
    t.mmu.configure(PE | PG | WP, 0x1000, 0, 0);
    expect(t.mmu.translate(0x5000, ACC_WRITE, false)).toBe(-1);
    expect(t.mmu.pfCode).toBe(PF_P | PF_W);
    // A supervisor-only PDE hides a user PTE.
    t.wr(0x1000, 0x2000 | P | W);
    t.mmu.flush(false);
    expect(t.mmu.translate(0x5000, ACC_READ, true)).toBe(-1);
    expect(t.mmu.pfCode).toBe(PF_P | PF_U);
  });

  it("a protection fault sets A in the PDE it passed but neither A nor D in the leaf", () => {
    const t = setup32(PE | PG | WP);
    t.map(0x5000, 0x7000, P);
    expect(t.mmu.translate(0x5000, ACC_WRITE, false)).toBe(-1);
    expect(t.rd(0x1000) & A).toBe(A);
    expect(t.rd(0x2014) & (A | D)).toBe(0);
  });

  it("4 MiB pages need CR4.PSE; without it the PDE points to a page table; bits 21:13 are reserved", () => {
    const t = setup32(PE | PG, PSE);
    t.wr(0x1004, 0x00c00000 | P | W | PS); // 4 MiB page at 12 MiB for linear 4-8 MiB
    expect(t.mmu.translate(0x00512345, ACC_WRITE, false)).toBe(0x00d12345);
    expect(t.rd(0x1004) & (A | D)).toBe(A | D);
    t.mmu.configure(PE | PG, 0x1000, 0, 0); // PSE off: entry 0x00c00000 is a page-table address
    t.wr(0x00c00000 + 0x112 * 4, 0x3000 | P);
    expect(t.mmu.translate(0x00512345, ACC_READ, false)).toBe(0x3345);
    t.mmu.configure(PE | PG, 0x1000, PSE, 0);
    t.wr(0x1004, 0x00c00000 | P | PS | 0x2000);
    expect(t.mmu.translate(0x00400000, ACC_READ, false)).toBe(-1);
    expect(t.mmu.pfCode).toBe(PF_P | PF_RSVD);
  });

  it("a paging-structure access that the memory refuses throws MEM_ABORT with memWalk and the linear address", () => {
    const m = new FlatMemory(0x10000);
    const refusing: PhysMemory = {
      read8: (pa) => { if (pa >= 0x10000) throw MEM_ABORT; return m.read8(pa); },
      read16: (pa) => { if (pa >= 0x10000) throw MEM_ABORT; return m.read16(pa); },
      read32: (pa) => { if (pa >= 0x10000) throw MEM_ABORT; return m.read32(pa); },
      write8: (pa, v) => m.write8(pa, v), write16: (pa, v) => m.write16(pa, v), write32: (pa, v) => m.write32(pa, v),
      ram: m.bytes,
    };
    const h = host(refusing);
    const mmu = new Mmu(h);
    m.write32(0x1000, 0x20000 | P | W); // page table outside the RAM window
    mmu.configure(PE | PG, 0x1000, 0, 0);
    expect(() => mmu.translate(0x3456, ACC_READ, false)).toThrow();
    expect([h.exit.memWalk, h.exit.memGpa, h.exit.memWrite, h.exit.memLinear, h.exit.memLinearValid]).toEqual([true, 0x2000c, false, 0x3456, true]);
  });

  it("A/D updates inside the RAM window invalidate decoded code at the entry", () => {
    const t = setup32();
    t.map(0x5000, 0x7000, P | W);
    t.mmu.translate(0x5000, ACC_WRITE, false);
    expect(t.h.invalidated).toContain(0x2014);
    expect(t.h.invalidated).toContain(0x1000);
  });
});

describe("Mmu: PAE paging", () => {
  /** PDPT at 0x1000 (entry 0 -> PD at 0x2000), PD entry 0 -> PT at 0x3000. */
  function setupPae(efer = 0) {
    const m = new FlatMemory(0x800000);
    const mmu = new Mmu(host(m));
    const w64 = (pa: number, lo: number, hi = 0) => { m.write32(pa, lo >>> 0); m.write32(pa + 4, hi >>> 0); };
    w64(0x1000, 0x2000 | P);
    w64(0x2000, 0x3000 | P | W | U);
    mmu.configure(PE | PG, 0x1000, PAE, efer);
    expect(mmu.loadPdptes(0x1000)).toBe(true);
    return { m, mmu, w64 };
  }

  it("walks PDPTE, PDE and PTE for 4 KiB pages and maps 2 MiB pages", () => {
    const t = setupPae();
    expect(t.mmu.mode).toBe(PG_PAE);
    t.w64(0x3000 + 5 * 8, 0x7000 | P | W);
    expect(t.mmu.translate(0x5abc, ACC_WRITE, false)).toBe(0x7abc);
    expect(t.m.read32(0x3028) & (A | D)).toBe(A | D);
    t.w64(0x2008, 0x00600000 | P | PS); // PD entry 1: 2 MiB page for linear 2-4 MiB
    expect(t.mmu.translate(0x00212345, ACC_READ, false)).toBe(0x00612345);
    t.w64(0x2010, 0x00600000 | P | PS | 0x100000); // bit 20 in a 2 MiB PDE is reserved
    expect(t.mmu.translate(0x00400000, ACC_READ, false)).toBe(-1);
    expect(t.mmu.pfCode).toBe(PF_P | PF_RSVD);
  });

  it("PDPTE reserved bits make loadPdptes fail and keep the old registers", () => {
    const t = setupPae();
    t.w64(0x4000, 0x2000 | P | W); // bit 1 is reserved in a PDPTE
    expect(t.mmu.loadPdptes(0x4000)).toBe(false);
    expect(t.mmu.pdpteLo[0]).toBe(0x2000 | P);
    t.w64(0x4000, 0x2000 | P, 1); // bits 63:32 reserved with MAXPHYADDR 32
    expect(t.mmu.loadPdptes(0x4000)).toBe(false);
    t.w64(0x4000, 0x2000 | W); // not present: its other bits are not checked
    expect(t.mmu.loadPdptes(0x4000)).toBe(true);
    expect(t.mmu.translate(0x1000, ACC_READ, false)).toBe(-1);
    expect(t.mmu.pfCode).toBe(0);
  });

  it("XD is reserved without EFER.NXE and forbids fetches with it; I/D is reported", () => {
    const off = setupPae();
    off.w64(0x3000 + 8, 0x7000 | P | W, 0x80000000);
    expect(off.mmu.translate(0x1000, ACC_READ, false)).toBe(-1);
    expect(off.mmu.pfCode).toBe(PF_P | PF_RSVD);
    const on = setupPae(NXE);
    on.w64(0x3000 + 8, 0x7000 | P | W, 0x80000000);
    expect(on.mmu.translate(0x1000, ACC_READ, false)).toBe(0x7000);
    expect(on.mmu.translate(0x1000, ACC_FETCH, false)).toBe(-1);
    expect(on.mmu.pfCode).toBe(PF_P | PF_I);
    on.w64(0x3000 + 16, 0x8000 | P);
    expect(on.mmu.translate(0x2000, ACC_FETCH, true)).toBe(-1); // user fetch of a supervisor page
    expect(on.mmu.pfCode).toBe(PF_P | PF_U | PF_I);
    on.w64(0x3000 + 24, 0x9000 | P, 0x00000010); // bit 36: reserved (MAXPHYADDR 32)
    expect(on.mmu.translate(0x3000, ACC_READ, false)).toBe(-1);
    expect(on.mmu.pfCode).toBe(PF_P | PF_RSVD);
  });
});

describe("Mmu: TLB", () => {
  const hit = (mmu: Mmu, la: number, acc: number, user = false) => (mmu.tlb[la >>> 12] & tlbMask(acc, user)) === TLB_VALID;

  it("caches a translation until INVLPG, and a fault drops the page's entry", () => {
    const t = setup32();
    t.map(0x5000, 0x7000, P | W);
    t.mmu.translate(0x5000, ACC_READ, false);
    expect(hit(t.mmu, 0x5000, ACC_READ)).toBe(true);
    expect(t.mmu.tlb[5] & ~0xfff).toBe(0x7000);
    t.map(0x5000, 0x8000, P | W);
    expect(t.mmu.tlb[5] & ~0xfff).toBe(0x7000); // stale until invalidated, as on hardware
    t.mmu.invlpg(0x5fff);
    expect(t.mmu.tlb[5]).toBe(0);
    expect(t.mmu.translate(0x5000, ACC_READ, false)).toBe(0x8000);
    t.map(0x5000, 0x8000, 0);
    expect(t.mmu.translate(0x5000, ACC_WRITE, false)).toBe(-1);
    expect(t.mmu.tlb[5]).toBe(0);
  });

  it("a read-filled entry is clean: a write misses and walks to set D", () => {
    const t = setup32();
    t.map(0x5000, 0x7000, P | W);
    t.mmu.translate(0x5000, ACC_READ, false);
    expect(hit(t.mmu, 0x5000, ACC_WRITE)).toBe(false);
    t.mmu.translate(0x5000, ACC_WRITE, false);
    expect(hit(t.mmu, 0x5000, ACC_WRITE)).toBe(true);
    expect(t.rd(0x2014) & D).toBe(D);
  });

  it("user and supervisor masks: a supervisor page never hits for user accesses", () => {
    const t = setup32(PE | PG | WP);
    t.map(0x5000, 0x7000, P | W | A | D);
    t.map(0x6000, 0x7000, P | U | A | D);
    t.mmu.translate(0x5000, ACC_WRITE, false);
    t.mmu.translate(0x6000, ACC_READ, true);
    expect([hit(t.mmu, 0x5000, ACC_WRITE), hit(t.mmu, 0x5000, ACC_READ, true)]).toEqual([true, false]);
    expect([hit(t.mmu, 0x6000, ACC_READ, true), hit(t.mmu, 0x6000, ACC_WRITE, true), hit(t.mmu, 0x6000, ACC_WRITE)]).toEqual([true, false, false]);
    t.mmu.setUser(true);
    expect(t.mmu.mR).toBe(tlbMask(ACC_READ, true));
  });

  it("a CR3 load keeps global pages only with CR4.PGE; toggling PGE flushes them", () => {
    const t = setup32(PE | PG, PGE);
    t.map(0x5000, 0x7000, P | W | G);
    t.map(0x6000, 0x8000, P | W);
    t.mmu.translate(0x5000, ACC_READ, false);
    t.mmu.translate(0x6000, ACC_READ, false);
    t.mmu.configure(PE | PG, 0x1000 | 0x18, PGE, 0); // same tables, PCD|PWT: still a CR3 change
    expect([t.mmu.tlb[5] !== 0, t.mmu.tlb[6] !== 0]).toEqual([true, false]);
    t.mmu.configure(PE | PG, 0x1000, 0, 0);
    expect(t.mmu.tlb[5]).toBe(0);
    // Without PGE the G bit is ignored: the entry is not global.
    t.mmu.translate(0x5000, ACC_READ, false);
    t.mmu.configure(PE | PG, 0x1000 | 0x8, 0, 0);
    expect(t.mmu.tlb[5]).toBe(0);
  });

  it("INVLPG drops every cached piece of a 4 MiB page; turning paging off empties the TLB", () => {
    const t = setup32(PE | PG, PSE);
    t.wr(0x1004, 0x00c00000 | P | W | PS);
    t.mmu.translate(0x00400000, ACC_READ, false);
    t.mmu.translate(0x00455000, ACC_READ, false);
    t.mmu.invlpg(0x007ff000);
    expect([t.mmu.tlb[0x400], t.mmu.tlb[0x455]]).toEqual([0, 0]);
    t.mmu.translate(0x00400000, ACC_READ, false);
    t.mmu.configure(PE, 0x1000, PSE, 0);
    expect(t.mmu.mode).toBe(PG_OFF);
    expect(t.mmu.tlb[0x400]).toBe(0);
  });

  it("more pages than the flush list tracks still all flush", () => {
    const m = new FlatMemory(0x2000000);
    const mmu = new Mmu(host(m));
    for (let i = 0; i < 8; i++) m.write32(0x1000 + i * 4, (0x10000 + i * 0x1000) | P | W);
    for (let i = 0; i < 8192 + 100; i++) m.write32(0x10000 + i * 4, (i << 12) | P | W);
    mmu.configure(PE | PG, 0x1000, 0, 0);
    for (let i = 0; i < 8192 + 100; i++) mmu.translate(i << 12, ACC_READ, false);
    mmu.configure(PE | PG, 0x1008, 0, 0);
    let left = 0;
    for (let i = 0; i < 8192 + 100; i++) if (mmu.tlb[i] !== 0) left++;
    expect(left).toBe(0);
  });
});

// Paging cases (SDM Vol. 3A 4.3 2-level with 4 KiB and 4 MiB pages, 4.4 PAE with
// 2 MiB pages, 4.6 access rights with CR0.WP and U/S, 4.7 #PF error codes and CR2,
// 4.8 accessed and dirty bits, 4.10.4 INVLPG). Each sequence rewrites the test
// window's paging entries with random flags, flushes the TLB (MOV CR3), then reads,
// writes and executes there from ring 0 and ring 3.
import { ARITH, BIG_PHYS, PAE_BIG_PHYS, PAE_PD, PAE_PT1, PAE_TEST_LIN, PD, PT1, RING3_ESP, Sel, TEST_LIN, TEST_PHYS } from "./layout.js";
import type { Prng } from "./prng.js";
import { SeqBuilder } from "./seq.js";
import type { Sequence } from "./seq.js";

const hex = (v: number): string => "0x" + (v >>> 0).toString(16);

interface Geometry {
  pae: boolean;
  /** Linear base of the test window and the number of 4 KiB pages in it the records cover. */
  lin: number;
  pages: number;
  /** The PDE for the window and the page table behind it; entry size. */
  pde: number;
  pt: number;
  entry: 4 | 8;
  /** Physical frame of the large page. */
  big: number;
  bigShift: number;
}

const TWO_LEVEL: Geometry = { pae: false, lin: TEST_LIN, pages: 16, pde: PD + 4, pt: PT1, entry: 4, big: BIG_PHYS, bigShift: 22 };
const PAE: Geometry = { pae: true, lin: PAE_TEST_LIN, pages: 9, pde: PAE_PD + 8, pt: PAE_PT1, entry: 8, big: PAE_BIG_PHYS, bigShift: 21 };

/** Random low flag bits: P, R/W, U/S, PWT, PCD, A, D (D only meaningful in leaves). */
function flags(rng: Prng, pPresent: number): number {
  let f = 0;
  if (rng.chance(pPresent)) f |= 1;
  if (rng.chance(0.7)) f |= 2;
  if (rng.chance(0.7)) f |= 4;
  if (rng.chance(0.1)) f |= 8;
  if (rng.chance(0.1)) f |= 0x10;
  if (rng.chance(0.3)) f |= 0x20;
  if (rng.chance(0.3)) f |= 0x40;
  return f;
}

function pagingSeq(rng: Prng, seqNo: number, g: Geometry): Sequence {
  const b = new SeqBuilder(rng, g.pae ? "PAE paging" : "2-level paging");
  const p = b.pre;
  p.push(`mov ax, ${hex(Sel.data32)}`, "mov gs, ax");
  // The large-page frame is reachable only through the test window. Map it there as one
  // writable large page and flush before writing the RET bytes: the previous sequence
  // left random entries, and entries still cached from them may or may not be used
  // (SDM 4.10.2.2, 4.10.4.3), so no write may depend on the TLB's contents.
  if (!g.pae) p.push("mov eax, cr4", "or eax, 0x10", "mov cr4, eax");
  p.push(`mov dword [gs:${hex(g.pde)}], ${hex(g.big | 0x83)}`);
  if (g.pae) p.push(`mov dword [gs:${hex(g.pde + 4)}], 0`);
  p.push("mov eax, cr3", "mov cr3, eax");
  // A RET at a random offset of each backing frame for the execute tests: the 4 KiB
  // frames through the identity map, the large frame through the window.
  const retOff = rng.int(0x1000);
  for (let i = 0; i < g.pages; i++) {
    p.push(`mov byte [gs:${hex(TEST_PHYS + i * 0x1000 + retOff)}], 0xc3`, `mov byte [gs:${hex(g.lin + i * 0x1000 + retOff)}], 0xc3`);
  }
  const big = rng.chance(0.3);
  let pde = big ? g.big | 0x80 | flags(rng, 0.9) : g.pt | (flags(rng, 0.95) & ~0x40);
  if (!big && rng.chance(0.7)) pde |= 7; // mostly let the leaf decide
  p.push(`mov dword [gs:${hex(g.pde)}], ${hex(pde)}`);
  // PAE without EFER.NXE: bit 63 is reserved, a set one faults with PFEC.RSVD (SDM 4.4.2, 4.7).
  if (g.pae) p.push(`mov dword [gs:${hex(g.pde + 4)}], ${rng.chance(0.05) ? "0x80000000" : "0"}`);
  for (let i = 0; i < g.pages; i++) {
    const pte = (TEST_PHYS + i * 0x1000) | flags(rng, 0.85);
    p.push(`mov dword [gs:${hex(g.pt + i * g.entry)}], ${hex(pte)}`);
    if (g.pae) p.push(`mov dword [gs:${hex(g.pt + i * g.entry + 4)}], ${rng.chance(0.03) ? "0x80000000" : "0"}`);
  }
  const wp = rng.chance(0.5);
  p.push("mov eax, cr0", wp ? "or eax, 0x10000" : "and eax, 0xfffeffff", "mov cr0, eax");
  // CR4.PSE off makes a PS = 1 PDE point to a page table at the large frame, whose
  // contents the generator does not control (its entries could map any physical page,
  // unbacked ones included): PSE goes off only under a PDE without PS.
  if (!g.pae) p.push("mov eax, cr4", big || rng.chance(0.85) ? "or eax, 0x10" : "and eax, 0xffffffef", "mov cr4, eax");
  p.push("mov eax, cr3", "mov cr3, eax");

  const addr = (size: number): number => {
    const page = rng.int(g.pages);
    const off = rng.chance(0.15) ? 0x1000 - rng.range(1, size) : rng.int(0x1000 - size);
    return g.lin + page * 0x1000 + off;
  };
  const access = (seg: string): void => {
    switch (rng.int(7)) {
      case 0: case 1: b.add(`mov eax, [${seg}${hex(addr(4))}]`); break;
      case 2: b.add(`mov dword [${seg}${hex(addr(4) & ~3)}], ${hex(rng.u32())}`); break;
      case 3: b.add(`add byte [${seg}${hex(addr(1))}], ${rng.int(256)}`, { def: ARITH }); break;
      case 4: b.add(`mov ebx, ${hex(g.lin + rng.int(g.pages) * 0x1000 + retOff)}`).add("call ebx"); break;
      case 5: {
        // Change a PTE, then INVLPG it (SDM 4.10.4.1): the next access must see the new entry.
        const i = rng.int(g.pages);
        b.add(`mov dword [gs:${hex(g.pt + i * g.entry)}], ${hex((TEST_PHYS + rng.int(g.pages) * 0x1000) | flags(rng, 0.8))}`);
        b.add(`invlpg [gs:${hex(g.lin + i * 0x1000)}]`);
        break;
      }
      default: b.add(`mov ecx, [${seg}${hex(addr(2))}]`);
    }
  };
  const n = rng.range(2, 5);
  for (let i = 0; i < n; i++) access("gs:");
  if (rng.chance(0.35)) {
    // To ring 3 (flat DPL-3 data in DS), user-mode accesses, then INT 42h back (SDM 4.6.1).
    const r3 = `P${seqNo}_r3`;
    b.add(`push dword ${hex(Sel.stack32Ring3 | 3)}`).add(`push dword ${hex(RING3_ESP)}`).add("push dword 2")
      .add(`push dword ${hex(Sel.code32Ring3 | 3)}`).add(`push dword ${r3}`).add(`iretd\n${r3}:`, { def: ARITH });
    b.add(`mov ax, ${hex(Sel.data32Ring3 | 3)}`).add("mov ds, ax");
    const m = rng.range(1, 3);
    for (let i = 0; i < m; i++) {
      if (rng.chance(0.5)) b.add(`mov eax, [${hex(addr(4))}]`);
      else b.add(`mov dword [${hex(addr(4) & ~3)}], ${hex(rng.u32())}`);
    }
    b.add("int 0x42");
  }
  return b.build();
}

export function pagingSequence(rng: Prng, seqNo: number): Sequence {
  return pagingSeq(rng, seqNo, TWO_LEVEL);
}
export function paeSequence(rng: Prng, seqNo: number): Sequence {
  return pagingSeq(rng, seqNo, PAE);
}

// The variants, simplest first. Each is a generator with its own seed stream
// (see harness.ts: guest seeds derive from the variant name). `asserted` marks the
// ones that must have zero unexplained disagreements (the default suite's sample and the
// full 20,000-sequence run in tests/soak): every variant the core claims to support,
// which today is all of them. A variant not asserted runs and is counted.
import { aluSequence } from "./gen-alu.js";
import { ctlSequence } from "./gen-ctl.js";
import { descSequence } from "./gen-desc.js";
import { FPU_REGS_AT, fpuSequence } from "./gen-fpu.js";
import { pagingSequence, paeSequence } from "./gen-paging.js";
import type { Variant } from "./guest.js";
import { ESP0, GDT_BASE, PAE_PD, PAE_PT1, PD, PT1, SCRATCH, STACK, Sel, TSS1, TSS2 } from "./layout.js";

/** The 20 dwords below ESP0: pushes and SS-relative stores land here. */
const STACK_WINDOW: ReadonlyArray<readonly [number, number]> = [[STACK + ESP0 - 0x50, 20]];
/** FPU results: the register image (ST0..ST7, 80 bytes) of the FNSAVE the x87 dump does beyond the scratch area. */
const FPU_WINDOW: ReadonlyArray<readonly [number, number]> = [[SCRATCH + FPU_REGS_AT, 20]];

export const VARIANTS: readonly Variant[] = [
  {
    name: "real16-alu", mode: "real", needs: [], asserted: true, seqsPerGuest: 100,
    extras: STACK_WINDOW, extrasAreStack: true,
    generate: (rng, n) => aluSequence(rng, 16, n),
  },
  {
    name: "real16-fpu", mode: "real", needs: ["fpu"], asserted: true, seqsPerGuest: 60,
    extras: FPU_WINDOW, extrasAreStack: false,
    setup: ["mov eax, cr0", "or eax, 0x20", "mov cr0, eax"], // CR0.NE: unmasked x87 errors raise #MF (SDM 8.7)
    generate: (rng, n) => fpuSequence(rng, n, 16),
  },
  {
    name: "pm16-alu", mode: "pm16", needs: ["protected mode"], asserted: true, seqsPerGuest: 100,
    extras: STACK_WINDOW, extrasAreStack: true,
    generate: (rng, n) => aluSequence(rng, 16, n),
  },
  {
    name: "pm32-alu", mode: "pm32", needs: ["protected mode"], asserted: true, seqsPerGuest: 100,
    extras: STACK_WINDOW, extrasAreStack: true,
    generate: (rng, n) => aluSequence(rng, 32, n),
  },
  {
    name: "pm32-desc", mode: "pm32", needs: ["protected mode"], asserted: true, seqsPerGuest: 100,
    extras: STACK_WINDOW, extrasAreStack: true,
    generate: (rng, n) => descSequence(rng, n),
  },
  {
    name: "pm32-ctl", mode: "pm32", needs: ["protected mode"], asserted: true, seqsPerGuest: 80,
    // The outgoing task's saved state (TSS1 EIP..LDT), TR, and the two TSS descriptors' type bytes.
    // The outgoing task's state as saved in TSS1 (EIP..LDT), TSS2's back link, and the
    // high dwords of the TSS1 and TSS2 descriptors (their busy bits).
    extras: [[TSS1 + 0x20, 17], [TSS2, 1], [GDT_BASE + Sel.tss1 + 4, 1], [GDT_BASE + Sel.tss2 + 4, 1]],
    extrasAreStack: false,
    generate: (rng, n) => ctlSequence(rng, n),
  },
  {
    name: "pm32-paging", mode: "paging", needs: ["protected mode", "paging"], asserted: true, seqsPerGuest: 50,
    // PDE 1, then PTEs 0-15 of the test table, then PDE 0 and the two entries after the test ones.
    extras: [[PD + 4, 1], [PT1, 16], [PD, 1], [PT1 + 64, 2]],
    extrasAreStack: false,
    generate: (rng, n) => pagingSequence(rng, n),
  },
  {
    name: "pm32-pae", mode: "pae", needs: ["protected mode", "paging"], asserted: true, seqsPerGuest: 50,
    // PDE 1 (both halves), then PTEs 0-8 of the test table (both halves).
    extras: [[PAE_PD + 8, 2], [PAE_PT1, 18]],
    extrasAreStack: false,
    generate: (rng, n) => paeSequence(rng, n),
  },
  {
    name: "pm32-fpu", mode: "pm32", needs: ["protected mode", "fpu"], asserted: true, seqsPerGuest: 60,
    extras: FPU_WINDOW, extrasAreStack: false,
    setup: ["mov eax, cr0", "or eax, 0x20", "mov cr0, eax"],
    generate: (rng, n) => fpuSequence(rng, n, 32),
  },
];

export function variantByName(name: string): Variant | undefined {
  return VARIANTS.find((v) => v.name === name);
}

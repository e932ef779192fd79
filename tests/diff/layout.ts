// Memory map, selectors and the dump-record layout shared by the guest builder
// (guest.ts), the runners and the comparer. All addresses are physical = linear
// (identity mapped when paging is on).

/** The ROM image: 64 KiB, mapped at F0000h and at FFFF0000h (QEMU -bios). */
export const ROM_SIZE = 0x10000;
/** The body is copied from ROM offset 0 to linear BODY and runs there (CS base 0). */
export const BODY = 0x2000;
export const BODY_MAX = 0xe000;

/** TSSes and the LDT, built at run time below the body. */
export const TSS1 = 0x1000, TSS2 = 0x1100, LDT_BASE = 0x1200, GDT_BASE = 0x1800;
/** Setup stack (real mode, before the first sequence). */
export const SETUP_SP = 0x1ff0;

/** Scratch data area: every generated memory operand lands in its first SCRATCH_SIZE bytes. */
export const SCRATCH = 0x20000, SCRATCH_SIZE = 0x400;
/** Stack segment base; ESP0 is every sequence's initial stack pointer. */
export const STACK = 0x30000, ESP0 = 0x8000;
/** Stack pointers (offsets in the stack segment) of ring 0 (TSS.ESP0), ring 3, and task 2. */
export const RING0_ESP = 0xe000, RING3_ESP = 0xc000, TASK2_ESP = 0xd000;
/** The record area, SS-relative: the dump assembles the record here before sending it. */
export const SAVE = 0xf000;
/** SS-relative: the address of the next sequence (the fault path jumps through it). */
export const NEXT = 0xf100;

/** Paging structures (built by the paging variants' setup). */
export const PD = 0x40000, PT0 = 0x41000, PT1 = 0x42000;
/** Physical pages behind the 4 KiB test mappings (16 pages). */
export const TEST_PHYS = 0x50000;
/** Linear test window of the 2-level paging variant (PDE 1) and physical frame of its 4 MiB page. */
export const TEST_LIN = 0x400000, BIG_PHYS = 0x400000;
/** PAE: PDPT, PD0, PT0 (0-2 MiB identity), PT1 (test window at 2 MiB). */
export const PAE_PDPT = 0x43000, PAE_PD = 0x44000, PAE_PT0 = 0x45000, PAE_PT1 = 0x46000;
export const PAE_TEST_LIN = 0x200000, PAE_BIG_PHYS = 0x600000;

/** Debug ports: QEMU isa-debugcon and isa-debug-exit. */
export const DEBUGCON_PORT = 0xe9, EXIT_PORT = 0xf4;

/** GDT selectors (protected-mode guests). */
export const Sel = {
  null: 0x00,
  code32: 0x08, data32: 0x10, code16: 0x18,
  scratch: 0x20, stack16: 0x28, stack32: 0x30,
  scratchExpandDown: 0x38, scratchRo: 0x40, notPresent: 0x48, scratchDpl3: 0x50,
  code32ExecOnly: 0x58, code32Conforming: 0x60, scratchSmall: 0x68,
  code32Ring3: 0x70, stack32Ring3: 0x78,
  tss1: 0x80, callGate3: 0x88, callGateParams: 0x90, ldt: 0x98, tss2: 0xa0, taskGate: 0xa8,
  stackRo: 0xb0, code16Ring3: 0xb8, data32Ring3: 0xc0,
  /** First selector beyond the GDT limit. */
  beyondLimit: 0xc8,
} as const;

/** A code or data segment descriptor as the guest's GDT holds it (access byte without A; flags = G, D/B, L, AVL). */
export interface SegDesc { base: number; limit: number; access: number; flags: number }
/** The GDT's code and data segments by selector (guest.ts writes them; gates and system entries are its own). */
export const GDT_SEGMENTS: ReadonlyMap<number, SegDesc> = new Map([
  [Sel.code32, { base: 0, limit: 0xfffff, access: 0x9a, flags: 0xc }],
  [Sel.data32, { base: 0, limit: 0xfffff, access: 0x92, flags: 0xc }],
  [Sel.code16, { base: 0, limit: 0xffff, access: 0x9a, flags: 0x0 }],
  [Sel.scratch, { base: 0x20000, limit: 0xffff, access: 0x92, flags: 0x0 }],
  [Sel.stack16, { base: 0x30000, limit: 0xffff, access: 0x92, flags: 0x0 }],
  [Sel.stack32, { base: 0x30000, limit: 0xffff, access: 0x92, flags: 0x4 }],
  [Sel.scratchExpandDown, { base: 0x20000, limit: 0x00ff, access: 0x96, flags: 0x0 }],
  [Sel.scratchRo, { base: 0x20000, limit: 0xffff, access: 0x90, flags: 0x0 }],
  [Sel.notPresent, { base: 0x20000, limit: 0xffff, access: 0x12, flags: 0x0 }],
  [Sel.scratchDpl3, { base: 0x20000, limit: 0xffff, access: 0xf2, flags: 0x0 }],
  [Sel.code32ExecOnly, { base: 0, limit: 0xfffff, access: 0x98, flags: 0xc }],
  [Sel.code32Conforming, { base: 0, limit: 0xfffff, access: 0x9e, flags: 0xc }],
  [Sel.scratchSmall, { base: 0x20000, limit: 0x3ff, access: 0x92, flags: 0x0 }],
  [Sel.code32Ring3, { base: 0, limit: 0xfffff, access: 0xfa, flags: 0xc }],
  [Sel.stack32Ring3, { base: 0x30000, limit: 0xffff, access: 0xf2, flags: 0x4 }],
  [Sel.stackRo, { base: 0x30000, limit: 0xffff, access: 0x90, flags: 0x4 }],
  [Sel.code16Ring3, { base: 0, limit: 0xffff, access: 0xfa, flags: 0x0 }],
  [Sel.data32Ring3, { base: 0, limit: 0xfffff, access: 0xf2, flags: 0xc }],
]);
/** The LDT's entries (selectors 04h, 0Ch, 14h) are copies of these GDT segments. */
export const LDT_COPIES: readonly number[] = [Sel.scratch, Sel.scratchDpl3, Sel.code32];

/** Record fields, as dword indices (the record is RECORD_DWORDS little-endian dwords). */
export const enum R {
  Magic = 0, Seq = 1,
  Eax = 2, Ecx = 3, Edx = 4, Ebx = 5, Esp = 6, Ebp = 7, Esi = 8, Edi = 9,
  Eflags = 10,
  Es = 11, Cs = 12, Ss = 13, Ds = 14, Fs = 15, Gs = 16,
  Cr0 = 17, Cr2 = 18, Cr3 = 19,
  Vector = 20, ErrorCode = 21, FaultEip = 22,
  ScratchSum = 23, Aux = 24,
  Extra = 25,
}
export const EXTRA_DWORDS = 20;
export const RECORD_DWORDS = R.Extra + EXTRA_DWORDS;
export const RECORD_BYTES = RECORD_DWORDS * 4;
export const FIELD_NAMES = [
  "magic", "seq", "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eflags",
  "es", "cs", "ss", "ds", "fs", "gs", "cr0", "cr2", "cr3", "vector", "errorCode", "faultEip",
  "scratchSum", "aux",
  ...Array.from({ length: EXTRA_DWORDS }, (_, i) => `extra[${i}]`),
];
/** "DSEQ" and "DEND" as little-endian dwords. */
export const MAGIC_SEQ = 0x51455344, MAGIC_END = 0x444e4544;
/** No fault was taken. */
export const NO_VECTOR = 0xffffffff;

// EFLAGS bits (SDM Vol. 1 3.4.3).
export const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800;
export const ARITH = CF | PF | AF | ZF | SF | OF;

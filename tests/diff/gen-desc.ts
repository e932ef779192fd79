// Descriptor checks in 32-bit protected mode (SDM Vol. 3A 5.4-5.10, Vol. 2 MOV/POP/
// LDS/LAR/LSL/VERR/VERW/ARPL): loads of null, not-present, wrong-type, wrong-DPL/RPL,
// beyond-limit and LDT selectors into each data segment register and SS, accesses at
// the edges of normal and expand-down limits, far jumps to each code-segment kind.
import { ARITH, GDT_BASE, LDT_BASE, SCRATCH, SCRATCH_SIZE, STACK, Sel, ZF } from "./layout.js";
import type { Prng } from "./prng.js";
import { SeqBuilder } from "./seq.js";
import type { Sequence } from "./seq.js";

const hex = (v: number): string => "0x" + (v >>> 0).toString(16);

/** Selectors for data-segment loads: valid, invalid, with RPL variations; LDT selectors 04/0C/14, 1C beyond the LDT. */
const DATA_SELS = [
  Sel.null, 1, 3, Sel.scratch, Sel.scratch | 3, Sel.scratchRo, Sel.notPresent, Sel.scratchDpl3, Sel.scratchDpl3 | 3,
  Sel.code32, Sel.code32ExecOnly, Sel.code32Conforming, Sel.code32Conforming | 3, Sel.scratchExpandDown, Sel.scratchSmall,
  Sel.tss1, Sel.callGate3, Sel.ldt, Sel.taskGate, Sel.stack32, Sel.stackRo,
  0x04, 0x0c, 0x0f, 0x14, 0x1c, Sel.beyondLimit, 0xfff8,
];
/**
 * SS: every selector here either loads a segment with the stack base (30000h) the dump
 * relies on, or faults. A valid load of another base (scratch 20h, LDT 04h) would make
 * the dump write its record elsewhere and lose it; 0Ch (LDT, DPL 3) and 14h (LDT code)
 * test LDT selectors instead.
 */
const SS_SELS = [Sel.null, Sel.stack32, Sel.stack16, Sel.stack32Ring3, Sel.stack32 | 3, Sel.stackRo, Sel.scratchDpl3, Sel.code32, Sel.notPresent, Sel.beyondLimit, 0x0c, 0x14];
const CODE_SELS = [Sel.code32, Sel.code32ExecOnly, Sel.code32Conforming, Sel.code32Ring3, Sel.scratch, Sel.null, Sel.notPresent, Sel.tss1 | 0, Sel.beyondLimit, 0x14];
/** Offsets near the interesting limits: 3FFh (small), FFh (expand-down lower bound), FFFFh (16-bit upper bound). */
const EDGE = [0, 0x10, 0xfc, 0xfd, 0xfe, 0xff, 0x100, 0x101, 0x3f8, 0x3fc, 0x3fd, 0x3ff, 0x400, 0xfffc, 0xfffd, 0xffff];

/** [linear, dwords]: bases 0, 20000h and 30000h plus EDGE offsets, less the scratch area the guest fills itself. */
const ZEROED: ReadonlyArray<readonly [number, number]> = [
  [0x0, 0x104], [0xfff0, 8], [SCRATCH + SCRATCH_SIZE, 4], [STACK - 0x10, 0x108], [STACK + 0xfff0, 8],
];

export function descSequence(rng: Prng, seqNo: number): Sequence {
  const b = new SeqBuilder(rng, "descriptor checks");
  let label = 0;
  // Start in CS 08h: a far JMP of an earlier sequence may have left CS on another code
  // segment, and a fault there (taken by one machine only) would carry into this one.
  b.pre.push(`jmp ${hex(Sel.code32)}:D${seqNo}_cs`, `D${seqNo}_cs:`);
  // Zero what the EDGE offsets reach outside the filled scratch and stack windows. QEMU
  // stores where the SDM faults (explained.ts, qemu-tcg-no-data-segment-checks), and a
  // later sequence reading such bytes would see a difference not its own.
  b.pre.push("cld", `mov ax, ${hex(Sel.data32)}`, "mov es, ax", "xor eax, eax");
  for (const [lin, n] of ZEROED) b.pre.push(`mov edi, ${hex(lin)}`, `mov ecx, ${n}`, "rep stosd");
  // Clear the accessed bits of the code and data descriptors (GDT and LDT): a load QEMU made
  // after a fault hvkit took in an earlier sequence would otherwise show in a later LAR.
  b.pre.push(`mov edi, ${hex(GDT_BASE + 5)}`, `mov ecx, ${Sel.beyondLimit / 8}`,
    `D${seqNo}_a: test byte [es:edi], 0x10`, `jz D${seqNo}_b`, "and byte [es:edi], 0xfe",
    `D${seqNo}_b: add edi, 8`, `loop D${seqNo}_a`);
  for (let i = 0; i < 3; i++) b.pre.push(`and byte [es:${hex(LDT_BASE + 8 * i + 5)}], 0xfe`);
  b.pre.push(`mov ax, ${hex(Sel.scratch)}`, "mov es, ax");
  const n = rng.range(2, 5);
  for (let i = 0; i < n; i++) {
    const sreg = rng.pick(["ds", "es", "fs", "gs"]);
    switch (rng.int(9)) {
      case 0: case 1: {
        const sel = rng.pick(DATA_SELS);
        b.add(`mov ax, ${hex(sel)}`).add(`mov ${sreg}, ax`);
        const size = rng.pick(["byte", "word", "dword"]);
        const off = rng.pick(EDGE);
        if (rng.chance(0.5)) b.add(`mov ${size === "byte" ? "bl" : size === "word" ? "bx" : "ebx"}, [${sreg}:${hex(off)}]`);
        else b.add(`mov ${size} [${sreg}:${hex(off)}], ${hex(rng.u32() & 0x7f)}`);
        break;
      }
      case 2: b.add(`mov ax, ${hex(rng.pick(SS_SELS))}`).add("mov ss, ax"); break;
      case 3: {
        const sel = rng.pick(DATA_SELS);
        if (rng.chance(0.5)) b.add(`push dword ${hex(sel)}`).add(`pop ${sreg}`);
        else {
          // A far pointer in scratch for LDS/LES/LFS/LGS/LSS (SDM Vol. 2 LDS/LES/LFS/LGS/LSS).
          const ss = rng.chance(0.2);
          b.add(`mov dword [0x100], ${hex(rng.u32())}`).add(`mov word [0x104], ${hex(ss ? rng.pick(SS_SELS) : sel)}`);
          b.add(`${ss ? "lss" : rng.pick(["lds", "les", "lfs", "lgs"])} ${rng.pick(["eax", "ebx", "ecx"])}, [0x100]`);
          // After LSS the stack pointer is random: restore a usable one only if the load succeeded.
          if (ss) b.add("mov esp, 0x8000");
        }
        break;
      }
      case 4: {
        const op = rng.pick(["lar", "lsl", "verr", "verw"]);
        const sel = rng.pick([...DATA_SELS, ...CODE_SELS, Sel.tss2, Sel.ldt, Sel.callGateParams]) | rng.int(4);
        b.add(`mov cx, ${hex(sel)}`);
        b.add(op.startsWith("ver") ? `${op} cx` : `${op} ${rng.pick(["edx", "dx"]) === "dx" ? "dx, cx" : "edx, ecx"}`, { def: ZF });
        break;
      }
      case 5: b.add(`mov ax, ${hex(rng.u32() & 0xffff)}`).add(`mov bx, ${hex(rng.u32() & 0xffff)}`).add("arpl ax, bx", { def: ZF }); break;
      case 6: {
        const sel = rng.pick(CODE_SELS) | rng.int(4);
        const l = `D${seqNo}_${label++}`;
        b.add(`jmp ${hex(sel)}:${l}\n${l}:`);
        break;
      }
      case 7: {
        const l = `D${seqNo}_${label++}`, back = `D${seqNo}_${label++}`;
        // Into a 16-bit code segment and back (SDM 21.1: mixing 16- and 32-bit code).
        b.add(`jmp ${hex(Sel.code16)}:${l}\n${back}:`);
        b.tail.push("bits 16", `${l}: mov ax, ${hex(rng.u32() & 0xffff)}`, "add ax, bx", `jmp dword ${hex(Sel.code32)}:${back}`, "bits 32");
        b.undef &= ~ARITH;
        break;
      }
      default: {
        const op = rng.pick(["sldt ax", "str ax", "smsw eax", "sgdt [0x200]", "sidt [0x208]", "sldt [0x210]", "str [0x212]"]);
        b.add(op);
      }
    }
  }
  return b.build();
}

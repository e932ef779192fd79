// Control transfers in 32-bit protected mode: near and far JMP/CALL/RET (with
// immediate pops), IRET, INT n/INT3/INTO/BOUND, call gates with and without
// privilege change (parameter copying, TSS stack switch, data-segment nulling on
// return), ring-3 faults, and task switches by JMP/CALL to a TSS, a task gate and
// an IDT task gate (SDM Vol. 3A 5.8, 6.12, 7.3; Vol. 2 CALL/JMP/RET/IRET/INT n).
import { aluSequence } from "./gen-alu.js";
import { ARITH, GDT_BASE, OF, RING3_ESP, SAVE, Sel, TASK2_ESP, TSS2, R, ZF } from "./layout.js";
import type { Prng } from "./prng.js";
import { SeqBuilder } from "./seq.js";
import type { Sequence } from "./seq.js";

const hex = (v: number): string => "0x" + (v >>> 0).toString(16);

/**
 * Reset TR to TSS1 (both descriptors available first: SDM 7.2.2). A task switch of an
 * earlier sequence leaves TR on TSS2, whose SS0:ESP0 is not set up; a ring-3 sequence
 * needs TSS1's for its way back (SDM 7.2.1, 6.12.1). Leaves GS = data32.
 */
function resetTr(b: SeqBuilder): void {
  const p = b.pre;
  p.push(`mov ax, ${hex(Sel.data32)}`, "mov gs, ax");
  p.push(`and byte [gs:${hex(GDT_BASE + Sel.tss1 + 5)}], 0xfd`, `and byte [gs:${hex(GDT_BASE + Sel.tss2 + 5)}], 0xfd`);
  p.push(`mov ax, ${hex(Sel.tss1)}`, "ltr ax");
}

/** Reset TR to TSS1 and describe task 2 afresh. */
function taskPreamble(b: SeqBuilder, rng: Prng, entry: string): void {
  const p = b.pre;
  resetTr(b);
  const fields: Array<[number, string]> = [
    [0x00, "0"], [0x20, entry], [0x24, hex((rng.u32() & (ARITH | 0x400)) | 2)],
    [0x28, hex(rng.value())], [0x2c, hex(rng.value())], [0x30, hex(rng.value())], [0x34, hex(rng.value())],
    [0x38, hex(TASK2_ESP)], [0x3c, hex(rng.value())], [0x40, hex(rng.value())], [0x44, hex(rng.value())],
    [0x48, hex(Sel.scratch)], [0x4c, hex(Sel.code32)], [0x50, hex(Sel.stack32)], [0x54, hex(Sel.scratch)],
    [0x58, hex(Sel.scratch)], [0x5c, hex(Sel.scratch)], [0x60, "0"], [0x64, hex(0x680000)],
  ];
  for (const [off, v] of fields) p.push(`mov dword [gs:${hex(TSS2 + off)}], ${v}`);
  p.push("mov eax, cr3", `mov [gs:${hex(TSS2 + 0x1c)}], eax`);
  p.push(`mov ax, ${hex(Sel.scratch)}`, "mov gs, ax");
}

function aluFill(rng: Prng, b: SeqBuilder, seqNo: number, max: number): void {
  const s = aluSequence(rng, 32, seqNo * 1000 + b.insns.length);
  // CMPXCHG8B keeps its suspect flags (gen-alu.ts, explained.ts qemu-cmpxchg8b-flags).
  for (const i of s.insns.slice(0, max)) b.add(i.asm, { undef: ARITH, suspect: /^cmpxchg8b/.test(i.asm) ? ~ZF >>> 0 : 0 });
}

export function ctlSequence(rng: Prng, seqNo: number): Sequence {
  const b = new SeqBuilder(rng, "");
  let label = 0;
  const L = (): string => `C${seqNo}_${label++}`;
  const kind = rng.int(12);
  switch (kind) {
    case 0: {
      b.note = "near call/ret";
      const sub = L();
      const pops = rng.chance(0.5) ? rng.pick([2, 4, 8]) : 0;
      if (pops) for (let i = 0; i < pops / 2; i++) b.add(`push word ${hex(rng.u32() & 0xffff)}`);
      b.add(rng.chance(0.5) ? `call ${sub}` : `mov eax, ${sub}\n call eax`);
      aluFill(rng, b, seqNo, 2);
      b.tail.push(`${sub}: add dword [ss:${hex(SAVE + R.Aux * 4)}], 1`, pops ? `ret ${pops}` : "ret");
      break;
    }
    case 1: {
      b.note = "far jmp";
      const t = L();
      const sel = rng.pick([Sel.code32, Sel.code32Conforming, Sel.code32ExecOnly]);
      if (rng.chance(0.5)) b.add(`jmp ${hex(sel)}:${t}\n${t}:`);
      else b.add(`mov dword [0x120], ${t}`).add(`mov word [0x124], ${hex(sel | rng.int(2) * 3)}`).add(`jmp far [0x120]\n${t}:`);
      aluFill(rng, b, seqNo, 2);
      break;
    }
    case 2: {
      b.note = "far call/retf";
      const sub = L();
      const sel = rng.pick([Sel.code32, Sel.code32Conforming, Sel.code32Ring3, Sel.code32 | 3]);
      const pops = rng.chance(0.4) ? 4 : 0;
      if (pops) b.add(`push dword ${hex(rng.u32())}`);
      b.add(`call ${hex(sel)}:${sub}`);
      aluFill(rng, b, seqNo, 2);
      b.tail.push(`${sub}: add dword [ss:${hex(SAVE + R.Aux * 4)}], 2`, pops ? `retf ${pops}` : "retf");
      break;
    }
    case 3: {
      b.note = "int n / int3 / into / bound";
      const op = rng.pick(["int 0x40", "int 0x41", "int3", "into", "int 0x30", "int 0x42", "bound"]);
      if (op === "into") b.add(rng.pick(["add eax, 0x7fffffff", "add eax, 1"]), { def: ARITH }).add("into", { reads: OF });
      else if (op === "bound") b.add("mov dword [0x130], 0x10").add("mov dword [0x134], 0x20").add(`mov eax, ${rng.range(0xe, 0x22)}`).add("bound eax, [0x130]");
      else b.add(op);
      aluFill(rng, b, seqNo, 2);
      break;
    }
    case 4: {
      b.note = "iret same privilege";
      const t = L();
      b.add(`push dword ${hex((rng.u32() & ARITH) | 2)}`).add(`push dword ${hex(Sel.code32)}`).add(`push dword ${t}`).add(`iretd\n${t}:`, { def: ARITH });
      aluFill(rng, b, seqNo, 2);
      break;
    }
    case 5: {
      b.note = "call gate, same privilege";
      if (rng.chance(0.5)) b.add(`call ${hex(Sel.callGate3)}:0`);
      else b.add(`push dword ${hex(rng.u32() & 0xffff)}`).add(`push dword ${hex(rng.u32() & 0xffff)}`).add(`call ${hex(Sel.callGateParams)}:0`);
      aluFill(rng, b, seqNo, 2);
      break;
    }
    case 6: case 7: case 8: {
      b.note = "ring 3: iret out, gates and faults, int 42h back";
      const r3 = L();
      resetTr(b);
      b.pre.push(`mov ax, ${hex(Sel.scratch)}`, "mov gs, ax");
      // IRET to CPL 3 (SDM Vol. 2 IRET, "RETURN-TO-OUTER-PRIVILEGE-LEVEL"): DS/ES/FS/GS holding DPL-0 segments become null.
      b.add(`push dword ${hex(Sel.stack32Ring3 | 3)}`).add(`push dword ${hex(RING3_ESP)}`)
        .add(`push dword ${hex((rng.u32() & ARITH) | 2)}`).add(`push dword ${hex(Sel.code32Ring3 | 3)}`)
        .add(`push dword ${r3}`).add(`iretd\n${r3}:`, { def: ARITH });
      const m = rng.range(1, 3);
      for (let i = 0; i < m; i++) {
        switch (rng.int(8)) {
          case 0: b.add(`call ${hex(Sel.callGate3 | 3)}:0`); break;
          case 1: b.add(`push dword ${hex(rng.u32() & 0xffff)}`).add(`push dword ${hex(rng.u32() & 0xffff)}`).add(`call ${hex(Sel.callGateParams)}:0`); break;
          case 2: b.add("int 0x40"); break;
          case 3: b.add(rng.pick(["cli", "hlt", "mov eax, cr0", "in al, 0x80", "out 0x80, al", "lgdt [0x100]", "int 0x30", "clts", "mov ss, ax"])); break;
          case 4: b.add(`mov ax, ${hex(rng.pick([Sel.scratchDpl3 | 3, Sel.scratch, Sel.scratch | 3, Sel.data32Ring3 | 3, Sel.code32Conforming | 3, 0x0f]))}`).add("mov ds, ax").add("mov eax, [0x10]"); break;
          case 5: b.add("mov eax, [0x20]"); break; // DS was nulled by the IRET: #GP(0)
          case 6: { const t = L(); b.add(`call ${hex(Sel.code32Conforming | 3)}:${t}`); b.tail.push(`${t}: retf`); break; }
          default: b.add(`add eax, ${hex(rng.u32())}`, { def: ARITH });
        }
      }
      b.add("int 0x42");
      break;
    }
    default: {
      b.note = "task switch";
      const back = rng.chance(0.4);
      taskPreamble(b, rng, back ? "task2_iret" : "task2_entry");
      const op = back ? rng.pick([`call ${hex(Sel.tss2)}:0`, `call ${hex(Sel.taskGate)}:0`, "int 0x43"])
        : rng.pick([`jmp ${hex(Sel.tss2)}:0`, `call ${hex(Sel.tss2)}:0`, `jmp ${hex(Sel.taskGate)}:0`, "int 0x43", `jmp ${hex(Sel.tss1)}:0`, `call ${hex(Sel.tss2 | 3)}:0`]);
      b.add(op, { undef: 0 });
      aluFill(rng, b, seqNo, 2);
    }
  }
  return b.build();
}

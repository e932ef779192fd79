// The descriptor-table operand decoder behind exits 46/47 (SDM Vol. 3C 28.2.5 tables
// 28-10/28-11): prefixes, ModR/M/SIB, and the read-only walk that finds the bytes under each
// paging mode (SDM 4.3, 4.4). vmx-guest-pm.test.ts covers it through the kernel with
// 32-bit paging; this covers the other paging modes and the failure cases.
import { describe, expect, it } from "vitest";
import { FlatMemory, realModeState } from "../../../../src/x86/index.js";
import type { X86State } from "../../../../src/x86/types.js";
import { InsnOperand, NO_REG } from "./insn-operand.js";

const CODE_LA = 0x00401000; // the instruction's linear address (CS base 0)
const CODE_PA = 0x9000;
/** 66 26 0F 01 4C 73 F8: o16 SIDT [es:ebx+esi*2-8]. */
const SIDT = [0x66, 0x26, 0x0f, 0x01, 0x4c, 0x73, 0xf8];

function setup(mode: "off" | "pg32" | "pse" | "pae", bytes = SIDT) {
  const mem = new FlatMemory(0x20000);
  const s: X86State = realModeState(0, 0);
  s.cs.attrib = 0x409b; // 32-bit code
  s.cr0 = mode === "off" ? 1 : 0x80000001;
  s.eip = mode === "off" ? CODE_PA : CODE_LA;
  const w32 = (pa: number, v: number) => mem.write32(pa, v >>> 0);
  if (mode === "pg32") {
    s.cr3 = 0x1000;
    w32(0x1000 + (CODE_LA >>> 22) * 4, 0x2000 | 3);
    w32(0x2000 + ((CODE_LA >>> 12) & 0x3ff) * 4, CODE_PA | 3);
  } else if (mode === "pse") {
    s.cr3 = 0x5000; s.cr4 = 0x10;
    // A 4 MiB page at linear 4 MiB mapped to physical 0: the code is at 0x1000 there.
    w32(0x5000 + (CODE_LA >>> 22) * 4, 0x00000083);
  } else if (mode === "pae") {
    s.cr3 = 0x1020; s.cr4 = 0x20; // PDPT 32-byte aligned, not page aligned
    w32(0x1020 + (CODE_LA >>> 30) * 8, 0x3000 | 1);
    w32(0x3000 + ((CODE_LA >>> 21) & 0x1ff) * 8, 0x4000 | 3);
    w32(0x4000 + ((CODE_LA >>> 12) & 0x1ff) * 8, CODE_PA | 3);
  }
  const pa = mode === "pse" ? CODE_LA & 0x3fffff : CODE_PA;
  bytes.forEach((b, i) => mem.write8(pa + i, b));
  return { mem, s };
}

describe("InsnOperand: the operand of a descriptor-table instruction from its bytes", () => {
  it.each(["off", "pg32", "pse", "pae"] as const)("decodes o16 SIDT [es:ebx+esi*2-8] with paging %s", (mode) => {
    const { mem, s } = setup(mode);
    const op = new InsnOperand();
    expect(op.decode(mem, s, SIDT.length)).toBe(true);
    const d = op.d;
    expect([op.osz, d.asz, d.seg, d.base, d.index, d.scale, d.mod, d.reg]).toEqual([2, 4, 0, 3, 6, 1, 1, 1]);
    expect(op.displacement()).toBe(0xfffffff8);
  });

  it("a register operand has no displacement; a 16-bit one is sign-extended", () => {
    const op = new InsnOperand();
    const reg = setup("off", [0x0f, 0x00, 0xc2]); // SLDT edx
    expect(op.decode(reg.mem, reg.s, 3)).toBe(true);
    expect([op.d.mod, op.d.rm, op.displacement()]).toEqual([3, 2, 0]);
    const a16 = setup("off", [0x67, 0x0f, 0x01, 0x87, 0x00, 0x80]); // SGDT [bx+8000h]
    expect(op.decode(a16.mem, a16.s, 6)).toBe(true);
    expect([op.d.asz, op.d.base, op.d.index, op.displacement()]).toEqual([2, 3, NO_REG, 0xffff8000]);
  });

  it("fails when the bytes are not mapped or are not a 0F 00 / 0F 01 instruction", () => {
    const op = new InsnOperand();
    const np = setup("pg32");
    np.mem.write32(0x1000 + (CODE_LA >>> 22) * 4, 0); // PDE not present
    expect(op.decode(np.mem, np.s, SIDT.length)).toBe(false);
    const other = setup("off", [0x0f, 0xae, 0x38]); // CLFLUSH [eax]
    expect(op.decode(other.mem, other.s, 3)).toBe(false);
    expect(op.decode(other.mem, other.s, 0)).toBe(false);
  });

  it("decodes the VMX instructions' operands too (INVEPT's three-byte opcode)", () => {
    const op = new InsnOperand();
    const inv = setup("off", [0x66, 0x0f, 0x38, 0x80, 0x4c, 0x24, 0x10]); // INVEPT ecx, [esp+10h]
    expect(op.decode(inv.mem, inv.s, 7)).toBe(true);
    expect([op.d.reg, op.d.base, op.d.index, op.d.seg, op.displacement()]).toEqual([1, 4, NO_REG, 2, 0x10]);
  });
});

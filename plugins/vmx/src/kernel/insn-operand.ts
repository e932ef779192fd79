// The operand of a descriptor-table instruction (LGDT LIDT LLDT LTR SGDT SIDT SLDT STR) or a
// VMX instruction (VMCLEAR VMPTRLD VMPTRST VMXON VMREAD VMWRITE INVEPT INVVPID) as the
// VM-exit instruction-information field and exit qualification report it (SDM Vol. 3C
// 28.2.1, 28.2.5 tables 28-9 to 28-14): base, index, scale, displacement, address size,
// operand size, segment, register or memory form. The core's exit gives only the effective
// offset, so the kernel half re-reads the bytes the core stopped before (CS.base + EIP,
// exit.instrLen of them) and decodes prefixes and ModR/M with the src/x86 decoder.
// Linear addresses are translated by a read-only walk of the guest's 32-bit or PAE paging
// structures (no accessed/dirty writes: the fetch that just succeeded did those). Limits:
// the PAE PDPTEs are read from memory at CR3, not the PDPTE registers (they differ only if
// the guest rewrote its PDPT without reloading CR3); A20 masking is not applied; bytes in
// MMIO are read through the guest-physical space like the PDPTE entry check does.
import { DecodedInsn, decodeModrm, NO_REG } from "../../../../src/x86/decoder.js";
import type { PhysMemory, X86State } from "../../../../src/x86/types.js";

export { NO_REG };

const CR0_PE_PG = 0x80000001, CR4_PSE = 0x10, CR4_PAE = 0x20, PS = 0x80;

/** Guest-physical address of linear `la` under the state's paging mode, or -1 (not present). */
function linearToPhys(mem: PhysMemory, s: X86State, la: number): number {
  if ((s.cr0 & CR0_PE_PG) >>> 0 !== CR0_PE_PG) return la >>> 0;
  if ((s.cr4 & CR4_PAE) !== 0) { // SDM 4.4
    const pdpte = mem.read32(((s.cr3 & ~0x1f) + (la >>> 30) * 8) >>> 0);
    if ((pdpte & 1) === 0) return -1;
    const pde = mem.read32(((pdpte & ~0xfff) + ((la >>> 21) & 0x1ff) * 8) >>> 0);
    if ((pde & 1) === 0) return -1;
    if ((pde & PS) !== 0) return ((pde & 0xffe00000) | (la & 0x1fffff)) >>> 0;
    const pte = mem.read32(((pde & ~0xfff) + ((la >>> 12) & 0x1ff) * 8) >>> 0);
    return (pte & 1) === 0 ? -1 : ((pte & ~0xfff) | (la & 0xfff)) >>> 0;
  }
  const pde = mem.read32(((s.cr3 & ~0xfff) + (la >>> 22) * 4) >>> 0); // SDM 4.3
  if ((pde & 1) === 0) return -1;
  if ((pde & PS) !== 0 && (s.cr4 & CR4_PSE) !== 0) return ((pde & 0xffc00000) | (la & 0x3fffff)) >>> 0;
  const pte = mem.read32(((pde & ~0xfff) + ((la >>> 12) & 0x3ff) * 4) >>> 0);
  return (pte & 1) === 0 ? -1 : ((pte & ~0xfff) | (la & 0xfff)) >>> 0;
}

/** One decoder per kernel half: reused for every exit (no allocation on the exit path). */
export class InsnOperand {
  /** mod/reg/rm, and for a memory operand base/index/scale/disp/seg (NO_REG: none), asz. */
  readonly d = new DecodedInsn();
  /** Operand size after a 66 prefix: 2 or 4. */
  osz = 2;
  private readonly bytes = new Uint8Array(15);

  /**
   * Decode the instruction of `len` bytes at CS:EIP of `s`: 0F 00, 0F 01, 0F 78, 0F 79,
   * 0F C7 or 0F 38 80/81 with a ModR/M. False when its bytes cannot be read (not present,
   * refused by EPT) or are not such an instruction.
   */
  decode(mem: PhysMemory, s: X86State, len: number): boolean {
    if (len < 3 || len > 15) return false;
    const b = this.bytes;
    try {
      let page = -1, pa = 0;
      for (let i = 0; i < len; i++) {
        const la = (s.cs.base + ((s.eip + i) >>> 0)) >>> 0;
        if (page !== la >>> 12) {
          pa = linearToPhys(mem, s, la);
          if (pa < 0) return false;
          page = la >>> 12;
        } else pa++;
        b[i] = mem.read8(pa) & 0xff;
      }
    } catch {
      return false; // the nested walker refused a read (MEM_ABORT): report what the core gave
    }
    const def = (s.cs.attrib & (1 << 14)) !== 0 ? 4 : 2;
    let osz = def, asz = def, segOv = -1, i = 0;
    for (; i < len; i++) {
      const p = b[i]!;
      if (p === 0x66) osz = 6 - def;
      else if (p === 0x67) asz = 6 - def;
      else if (p === 0x26 || p === 0x2e || p === 0x36 || p === 0x3e) segOv = (p >> 3) & 3; // ES CS SS DS
      else if (p === 0x64 || p === 0x65) segOv = p - 0x60; // FS GS
      else if (p !== 0xf0 && p !== 0xf2 && p !== 0xf3) break;
    }
    if (b[i] !== 0x0f) return false;
    const op = b[i + 1];
    let at = i + 2;
    if (op === 0x38) {
      if (b[i + 2] !== 0x80 && b[i + 2] !== 0x81) return false; // INVEPT, INVVPID
      at++;
    } else if (op !== 0x00 && op !== 0x01 && op !== 0x78 && op !== 0x79 && op !== 0xc7) return false;
    const d = this.d;
    d.asz = asz; d.segOv = segOv;
    if (decodeModrm(d, b, 0, at, len) < 0) return false;
    this.osz = osz;
    return true;
  }

  /** SDM 28.2.1: the displacement, sign-extended to 32 bits (0 for a register operand). */
  displacement(): number {
    const d = this.d;
    if (d.mod === 3) return 0;
    return (d.asz === 2 ? (d.disp << 16) >> 16 : d.disp | 0) >>> 0;
  }
}

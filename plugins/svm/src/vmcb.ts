// The VMCB as data: one table of offsets and widths (AMD APM Vol. 2, appendix B,
// tables B-1 "VMCB Layout, Control Area" and B-2 "VMCB Layout, State Save Area"),
// and typed accessors over the 4 KiB frame. The kernel half (vmrun) and the monitor
// half (SvmBackend, which maps the same frame) both use this file, so the two can
// never disagree on a layout.
//
// 64-bit fields are stored full width as two little-endian u32 halves. Accessors
// on the hot path move the low half (`read`/`write`) or both halves (`readHi`,
// `write64`); `read64` (BigInt) is for tests and diagnostics only.
import type { SegmentReg, TableReg } from "../../../src/x86/types.js";

export const VMCB_BYTES = 4096;
/** APM B-2: the state-save area starts at offset 400h. */
export const VMCB_SAVE_AREA = 0x400;

export type VmcbWidth = 1 | 2 | 4 | 8;

export interface VmcbField {
  readonly name: string;
  readonly offset: number;
  readonly width: VmcbWidth;
}

/** A bit field inside a field; `word` is the byte offset of the u32 that holds it. */
export interface VmcbBits {
  readonly name: string;
  readonly word: number;
  readonly shift: number;
  readonly bits: number;
}

const f = (name: string, offset: number, width: VmcbWidth): VmcbField => ({ name, offset, width });
const b = (name: string, word: number, shift: number, bits: number): VmcbBits => ({ name, word, shift, bits });
const S = VMCB_SAVE_AREA;

/** APM table B-1 (control area) and B-2 (state-save area, offsets + 400h). */
export const F = {
  // --- control area ---
  /** Bits 15:0 intercept reads of CR0-15, bits 31:16 writes. */
  INTERCEPT_CR: f("INTERCEPT_CR", 0x000, 4),
  /** Bits 15:0 intercept reads of DR0-15, bits 31:16 writes. */
  INTERCEPT_DR: f("INTERCEPT_DR", 0x004, 4),
  /** Bit n intercepts exception vector n. */
  INTERCEPT_EXCEPTIONS: f("INTERCEPT_EXCEPTIONS", 0x008, 4),
  INTERCEPT_MISC1: f("INTERCEPT_MISC1", 0x00c, 4),
  INTERCEPT_MISC2: f("INTERCEPT_MISC2", 0x010, 4),
  INTERCEPT_MISC3: f("INTERCEPT_MISC3", 0x014, 4),
  PAUSE_FILTER_THRESHOLD: f("PAUSE_FILTER_THRESHOLD", 0x03c, 2),
  PAUSE_FILTER_COUNT: f("PAUSE_FILTER_COUNT", 0x03e, 2),
  IOPM_BASE_PA: f("IOPM_BASE_PA", 0x040, 8),
  MSRPM_BASE_PA: f("MSRPM_BASE_PA", 0x048, 8),
  TSC_OFFSET: f("TSC_OFFSET", 0x050, 8),
  GUEST_ASID: f("GUEST_ASID", 0x058, 4),
  TLB_CONTROL: f("TLB_CONTROL", 0x05c, 1),
  /** V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR: see B. */
  VINTR_CONTROL: f("VINTR_CONTROL", 0x060, 8),
  /** Bit 0 INTERRUPT_SHADOW, bit 1 GUEST_INTERRUPT_MASK. */
  INTERRUPT_STATE: f("INTERRUPT_STATE", 0x068, 8),
  EXITCODE: f("EXITCODE", 0x070, 8),
  EXITINFO1: f("EXITINFO1", 0x078, 8),
  EXITINFO2: f("EXITINFO2", 0x080, 8),
  EXITINTINFO: f("EXITINTINFO", 0x088, 8),
  /** Bit 0 NP_ENABLE. */
  NP_CONTROL: f("NP_CONTROL", 0x090, 8),
  AVIC_APIC_BAR: f("AVIC_APIC_BAR", 0x098, 8),
  GHCB_PA: f("GHCB_PA", 0x0a0, 8),
  EVENTINJ: f("EVENTINJ", 0x0a8, 8),
  N_CR3: f("N_CR3", 0x0b0, 8),
  LBR_VIRT_CONTROL: f("LBR_VIRT_CONTROL", 0x0b8, 8),
  VMCB_CLEAN: f("VMCB_CLEAN", 0x0c0, 4),
  NRIP: f("NRIP", 0x0c8, 8),
  GUEST_INSN_LEN: f("GUEST_INSN_LEN", 0x0d0, 1),

  // --- state-save area (APM B-2) ---
  ES: f("ES", S + 0x000, 8), CS: f("CS", S + 0x010, 8), SS: f("SS", S + 0x020, 8), DS: f("DS", S + 0x030, 8),
  FS: f("FS", S + 0x040, 8), GS: f("GS", S + 0x050, 8), GDTR: f("GDTR", S + 0x060, 8), LDTR: f("LDTR", S + 0x070, 8),
  IDTR: f("IDTR", S + 0x080, 8), TR: f("TR", S + 0x090, 8),
  CPL: f("CPL", S + 0x0cb, 1),
  EFER: f("EFER", S + 0x0d0, 8),
  CR4: f("CR4", S + 0x148, 8),
  CR3: f("CR3", S + 0x150, 8),
  CR0: f("CR0", S + 0x158, 8),
  DR7: f("DR7", S + 0x160, 8),
  DR6: f("DR6", S + 0x168, 8),
  RFLAGS: f("RFLAGS", S + 0x170, 8),
  RIP: f("RIP", S + 0x178, 8),
  RSP: f("RSP", S + 0x1d8, 8),
  RAX: f("RAX", S + 0x1f8, 8),
  STAR: f("STAR", S + 0x200, 8),
  LSTAR: f("LSTAR", S + 0x208, 8),
  CSTAR: f("CSTAR", S + 0x210, 8),
  SFMASK: f("SFMASK", S + 0x218, 8),
  KERNEL_GS_BASE: f("KERNEL_GS_BASE", S + 0x220, 8),
  SYSENTER_CS: f("SYSENTER_CS", S + 0x228, 8),
  SYSENTER_ESP: f("SYSENTER_ESP", S + 0x230, 8),
  SYSENTER_EIP: f("SYSENTER_EIP", S + 0x238, 8),
  CR2: f("CR2", S + 0x240, 8),
  G_PAT: f("G_PAT", S + 0x268, 8),
  DBGCTL: f("DBGCTL", S + 0x270, 8),
} as const;

/** Within a segment record (APM B-2): selector u16, attrib u16, limit u32, base u64. */
export const SEG_SELECTOR = 0, SEG_ATTRIB = 2, SEG_LIMIT = 4, SEG_BASE = 8;

/** Bit fields of packed control-area words (APM table B-1). */
export const B = {
  V_TPR: b("V_TPR", 0x060, 0, 8),
  V_IRQ: b("V_IRQ", 0x060, 8, 1),
  V_GIF: b("V_GIF", 0x060, 9, 1),
  V_INTR_PRIO: b("V_INTR_PRIO", 0x060, 16, 4),
  V_IGN_TPR: b("V_IGN_TPR", 0x060, 20, 1),
  V_INTR_MASKING: b("V_INTR_MASKING", 0x060, 24, 1),
  /** Bits 39:32 of the VINTR control field. */
  V_INTR_VECTOR: b("V_INTR_VECTOR", 0x064, 0, 8),
  INTERRUPT_SHADOW: b("INTERRUPT_SHADOW", 0x068, 0, 1),
  GUEST_INTERRUPT_MASK: b("GUEST_INTERRUPT_MASK", 0x068, 1, 1),
  NP_ENABLE: b("NP_ENABLE", 0x090, 0, 1),
} as const;

/** INTERCEPT_MISC1 (vector 3 of APM B-1, offset 0Ch). */
export const enum Misc1 {
  INTR = 1 << 0, NMI = 1 << 1, SMI = 1 << 2, INIT = 1 << 3, VINTR = 1 << 4, CR0_SEL_WRITE = 1 << 5,
  IDTR_READ = 1 << 6, GDTR_READ = 1 << 7, LDTR_READ = 1 << 8, TR_READ = 1 << 9,
  IDTR_WRITE = 1 << 10, GDTR_WRITE = 1 << 11, LDTR_WRITE = 1 << 12, TR_WRITE = 1 << 13,
  RDTSC = 1 << 14, RDPMC = 1 << 15, PUSHF = 1 << 16, POPF = 1 << 17, CPUID = 1 << 18, RSM = 1 << 19,
  IRET = 1 << 20, INTN = 1 << 21, INVD = 1 << 22, PAUSE = 1 << 23, HLT = 1 << 24, INVLPG = 1 << 25,
  INVLPGA = 1 << 26, IOIO_PROT = 1 << 27, MSR_PROT = 1 << 28, TASK_SWITCH = 1 << 29, FERR_FREEZE = 1 << 30,
  SHUTDOWN = 1 << 31,
}

/** INTERCEPT_MISC2 (vector 4 of APM B-1, offset 10h). */
export const enum Misc2 {
  VMRUN = 1 << 0, VMMCALL = 1 << 1, VMLOAD = 1 << 2, VMSAVE = 1 << 3, STGI = 1 << 4, CLGI = 1 << 5,
  SKINIT = 1 << 6, RDTSCP = 1 << 7, ICEBP = 1 << 8, WBINVD = 1 << 9, MONITOR = 1 << 10, MWAIT = 1 << 11,
  MWAIT_CONDITIONAL = 1 << 12, XSETBV = 1 << 13, RDPRU = 1 << 14, EFER_WRITE_TRAP = 1 << 15,
}

/** EXITCODE values (APM appendix C, table C-1) used by this slice. */
export const enum SvmExit {
  /** 0x00-0x0F: read of CR n; 0x10-0x1F: write of CR n (APM 15.9, appendix C). */
  CR_READ_BASE = 0x00,
  CR_WRITE_BASE = 0x10,
  /** 0x20-0x2F: read of DR n; 0x30-0x3F: write of DR n. */
  DR_READ_BASE = 0x20,
  DR_WRITE_BASE = 0x30,
  EXCP_BASE = 0x40,
  INTR = 0x60,
  NMI = 0x61,
  SMI = 0x62,
  INIT = 0x63,
  VINTR = 0x64,
  CR0_SEL_WRITE = 0x65,
  /** 0x66-0x69: SIDT, SGDT, SLDT, STR; 0x6A-0x6D: LIDT, LGDT, LLDT, LTR (APM appendix C). */
  IDTR_READ = 0x66,
  GDTR_READ = 0x67,
  LDTR_READ = 0x68,
  TR_READ = 0x69,
  IDTR_WRITE = 0x6a,
  GDTR_WRITE = 0x6b,
  LDTR_WRITE = 0x6c,
  TR_WRITE = 0x6d,
  RDTSC = 0x6e,
  RDPMC = 0x6f,
  PUSHF = 0x70,
  POPF = 0x71,
  CPUID = 0x72,
  RSM = 0x73,
  IRET = 0x74,
  SWINT = 0x75,
  INVD = 0x76,
  PAUSE = 0x77,
  HLT = 0x78,
  INVLPG = 0x79,
  INVLPGA = 0x7a,
  IOIO = 0x7b,
  MSR = 0x7c,
  TASK_SWITCH = 0x7d,
  FERR_FREEZE = 0x7e,
  SHUTDOWN = 0x7f,
  VMRUN = 0x80,
  VMMCALL = 0x81,
  VMLOAD = 0x82,
  VMSAVE = 0x83,
  STGI = 0x84,
  CLGI = 0x85,
  SKINIT = 0x86,
  RDTSCP = 0x87,
  ICEBP = 0x88,
  WBINVD = 0x89,
  MONITOR = 0x8a,
  MWAIT = 0x8b,
  MWAIT_CONDITIONAL = 0x8c,
  XSETBV = 0x8d,
  NPF = 0x400,
  /** VMEXIT_INVALID (-1): the full 64-bit field is all ones. */
  INVALID = -1,
}

/** EVENTINJ / EXITINTINFO format (APM 15.20, figure 15-4). */
export const enum EventInj {
  VECTOR_MASK = 0xff,
  TYPE_SHIFT = 8,
  TYPE_MASK = 0x700,
  EV = 1 << 11,
  V = 1 << 31,
}
/** EVENTINJ.TYPE values (APM 15.20); 1 and 5-7 are reserved. */
export const enum EventInjType { INTR = 0, NMI = 2, EXCEPTION = 3, SOFT_INT = 4 }

/**
 * EXITINFO2 bits 63:32 of a task-switch intercept (APM 15.9, TASK_SWITCH): bit 36 IRET, bit 38 JMP,
 * bit 44 the error code in bits 31:0 is valid (a task gate reached by an exception with one).
 */
export const enum TaskSwitchInfoHi { IRET = 1 << 4, JMP = 1 << 6, HAS_ERROR_CODE = 1 << 12 }

/** EXITINFO1 of an IOIO intercept (APM 15.10.2, figure 15-2). */
export const enum IoioInfo {
  TYPE_IN = 1 << 0,
  STR = 1 << 2,
  REP = 1 << 3,
  SZ8 = 1 << 4, SZ16 = 1 << 5, SZ32 = 1 << 6,
  A16 = 1 << 7, A32 = 1 << 8, A64 = 1 << 9,
  SEG_SHIFT = 10,
  PORT_SHIFT = 16,
}

/** EFER bits the checks and the backend name (APM 3.1.7). */
export const enum Efer { SCE = 1 << 0, LME = 1 << 8, LMA = 1 << 10, NXE = 1 << 11, SVME = 1 << 12 }

/** Typed accessors over a VMCB frame. One per frame; allocation-free after construction. */
export class Vmcb {
  readonly dv: DataView;
  constructor(readonly bytes: Uint8Array) {
    if (bytes.byteLength < VMCB_BYTES) {
      throw new RangeError(`VMCB frame is ${bytes.byteLength} bytes, needs ${VMCB_BYTES}`);
    }
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, VMCB_BYTES);
  }

  /** The field's low 32 bits (all of it for widths ≤ 4), unsigned. */
  read(field: VmcbField): number {
    switch (field.width) {
      case 1: return this.dv.getUint8(field.offset);
      case 2: return this.dv.getUint16(field.offset, true);
      default: return this.dv.getUint32(field.offset, true);
    }
  }

  /** Bits 63:32 of an 8-byte field (0 for narrower ones). */
  readHi(field: VmcbField): number {
    return field.width === 8 ? this.dv.getUint32(field.offset + 4, true) : 0;
  }

  /** Writes the field; an 8-byte field gets `value` as its low half and 0 as its high half. */
  write(field: VmcbField, value: number): void {
    switch (field.width) {
      case 1: this.dv.setUint8(field.offset, value); return;
      case 2: this.dv.setUint16(field.offset, value, true); return;
      case 4: this.dv.setUint32(field.offset, value >>> 0, true); return;
      default:
        this.dv.setUint32(field.offset, value >>> 0, true);
        this.dv.setUint32(field.offset + 4, 0, true);
    }
  }

  write64(field: VmcbField, lo: number, hi: number): void {
    this.dv.setUint32(field.offset, lo >>> 0, true);
    if (field.width === 8) this.dv.setUint32(field.offset + 4, hi >>> 0, true);
  }

  /** Off the hot path only (tests, diagnostics). */
  read64(field: VmcbField): bigint {
    return (BigInt(this.readHi(field)) << 32n) | BigInt(this.read(field));
  }

  bits(f: VmcbBits): number {
    const mask = f.bits === 32 ? 0xffffffff : (1 << f.bits) - 1;
    return (this.dv.getUint32(f.word, true) >>> f.shift) & mask;
  }

  setBits(f: VmcbBits, value: number): void {
    const mask = (f.bits === 32 ? 0xffffffff : (1 << f.bits) - 1) << f.shift;
    const old = this.dv.getUint32(f.word, true);
    this.dv.setUint32(f.word, ((old & ~mask) | ((value << f.shift) & mask)) >>> 0, true);
  }

  /** EXITCODE (VMEXIT_INVALID reads as -1). */
  exitCode(): number {
    const lo = this.read(F.EXITCODE);
    return lo === 0xffffffff && this.readHi(F.EXITCODE) === 0xffffffff ? SvmExit.INVALID : lo;
  }

  setExitCode(code: number): void {
    if (code === SvmExit.INVALID) this.write64(F.EXITCODE, 0xffffffff, 0xffffffff);
    else this.write(F.EXITCODE, code);
  }

  // --- segments -------------------------------------------------------------

  /** Reads a segment record into `out` with the attributes in VMX format. */
  readSegment(seg: VmcbField, out: SegmentReg): void {
    const o = seg.offset;
    out.selector = this.dv.getUint16(o + SEG_SELECTOR, true);
    out.attrib = svmToVmxAttrib(this.dv.getUint16(o + SEG_ATTRIB, true));
    out.limit = this.dv.getUint32(o + SEG_LIMIT, true);
    out.base = this.dv.getUint32(o + SEG_BASE, true);
  }

  writeSegment(seg: VmcbField, s: SegmentReg): void {
    const o = seg.offset;
    this.dv.setUint16(o + SEG_SELECTOR, s.selector & 0xffff, true);
    this.dv.setUint16(o + SEG_ATTRIB, vmxToSvmAttrib(s.attrib), true);
    this.dv.setUint32(o + SEG_LIMIT, s.limit >>> 0, true);
    this.dv.setUint32(o + SEG_BASE, s.base >>> 0, true);
    this.dv.setUint32(o + SEG_BASE + 4, 0, true);
  }

  /** GDTR/IDTR: only limit and base are meaningful (APM B-2). */
  readTable(seg: VmcbField, out: TableReg): void {
    out.limit = this.dv.getUint32(seg.offset + SEG_LIMIT, true);
    out.base = this.dv.getUint32(seg.offset + SEG_BASE, true);
  }

  writeTable(seg: VmcbField, t: TableReg): void {
    this.dv.setUint32(seg.offset + SEG_LIMIT, t.limit >>> 0, true);
    this.dv.setUint32(seg.offset + SEG_BASE, t.base >>> 0, true);
    this.dv.setUint32(seg.offset + SEG_BASE + 4, 0, true);
  }

  zero(): void {
    this.bytes.fill(0, 0, VMCB_BYTES);
  }
}

/** VMX access-rights bit 16 (SDM 25.4.1, table 25-2). */
export const VMX_ATTRIB_UNUSABLE = 1 << 16;
/** Present bit, the same bit 7 in both formats. */
const ATTRIB_P = 1 << 7;

/**
 * SVM segment attributes are the descriptor's attribute bits compressed into 12
 * bits (APM 15.5.1, "Segment state in the VMCB"): bits 7:0 = descriptor bits
 * 47:40 (type, S, DPL, P), bits 11:8 = descriptor bits 55:52 (AVL, L, D/B, G).
 * The VMX format keeps the latter at bits 15:12 and adds "unusable" (bit 16);
 * SVM has no unusable bit, so an unusable segment is stored as 0 (P = 0), as KVM does.
 */
export function vmxToSvmAttrib(vmx: number): number {
  if (vmx & VMX_ATTRIB_UNUSABLE) return 0;
  return (vmx & 0xff) | ((vmx >>> 4) & 0xf00);
}

/** The inverse of vmxToSvmAttrib: a not-present segment reads back as unusable. */
export function svmToVmxAttrib(svm: number): number {
  const vmx = (svm & 0xff) | ((svm & 0xf00) << 4);
  return svm & ATTRIB_P ? vmx : vmx | VMX_ATTRIB_UNUSABLE;
}

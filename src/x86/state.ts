// Power-on and clean real-mode states (SDM Vol. 3A 10.1.1, table 10-1), and a
// state copier. Segment access rights are in the VMCS format (SDM 25.4.1).
import { Activity } from "./types.js";
import type { SegmentReg, X86State } from "./types.js";

/** Present, writable, accessed data segment (type 3, S=1, P=1). */
export const ATTRIB_DATA16 = 0x93;
/** Present, readable, accessed code segment (type 11, S=1, P=1). */
export const ATTRIB_CODE16 = 0x9b;
/** LDTR after reset: present LDT (type 2). */
export const ATTRIB_LDT = 0x82;
/** TR after reset: present busy 16-bit TSS (type 3). */
export const ATTRIB_TSS16_BUSY = 0x83;

function seg(selector: number, base: number, limit: number, attrib: number): SegmentReg {
  return { selector, base, limit, attrib };
}

/** The state after RESET (SDM table 10-1): CS F000 with base FFFF0000, EIP FFF0. */
export function resetState(): X86State {
  return {
    eax: 0, ecx: 0, edx: 0x300, ebx: 0, // EDX = family/model/stepping; a 386-class value
    esp: 0, ebp: 0, esi: 0, edi: 0,
    eip: 0xfff0,
    eflags: 0x2,
    es: seg(0, 0, 0xffff, ATTRIB_DATA16),
    cs: seg(0xf000, 0xffff0000, 0xffff, ATTRIB_CODE16),
    ss: seg(0, 0, 0xffff, ATTRIB_DATA16),
    ds: seg(0, 0, 0xffff, ATTRIB_DATA16),
    fs: seg(0, 0, 0xffff, ATTRIB_DATA16),
    gs: seg(0, 0, 0xffff, ATTRIB_DATA16),
    ldtr: seg(0, 0, 0xffff, ATTRIB_LDT),
    tr: seg(0, 0, 0xffff, ATTRIB_TSS16_BUSY),
    gdtr: { base: 0, limit: 0xffff },
    idtr: { base: 0, limit: 0xffff },
    cr0: 0x60000010, cr2: 0, cr3: 0, cr4: 0,
    dr7: 0x400,
    efer: 0,
    activity: Activity.Active,
    interruptibility: 0,
  };
}

/** A clean real-mode state executing at cs:ip with all other segments zero. */
export function realModeState(cs: number, ip: number): X86State {
  const s = resetState();
  s.edx = 0;
  s.cs = seg(cs & 0xffff, (cs & 0xffff) << 4, 0xffff, ATTRIB_CODE16);
  s.eip = ip & 0xffff;
  s.cr0 = 0x10; // ET; CD/NW clear so caches behave normally
  return s;
}

/** Deep copy of a state (all fields are plain numbers or small objects). */
export function cloneState(s: X86State): X86State {
  return {
    ...s,
    es: { ...s.es }, cs: { ...s.cs }, ss: { ...s.ss }, ds: { ...s.ds }, fs: { ...s.fs }, gs: { ...s.gs },
    ldtr: { ...s.ldtr }, tr: { ...s.tr },
    gdtr: { ...s.gdtr }, idtr: { ...s.idtr },
    ...(s.fpu ? { fpu: { ...s.fpu, regs: s.fpu.regs.map((r) => ({ ...r })) } } : {}),
  };
}

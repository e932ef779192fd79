// The guest both backends' task-switch tests run (plugins/vmx and plugins/svm
// *-backend.task-switch.test.ts): a flat protected-mode GDT, an IDT with task gates, and
// tasks A (current), B, D, E plus a #TS handler, each reporting through a port. Test code only.
import { resetState } from "../../x86/state.js";
import type { X86State } from "../../x86/types.js";

/** Where the guest's task A code starts (the boot-sector address both test machines use). */
export const ORG = 0x7c00;
export const GDT = 0x1000, IDT = 0x2000, COUNTER = 0x6000;
export const TSS_A = 0x3000, TSS_B = 0x3100, TSS_BAD = 0x3200, TSS_D = 0x3300, TSS_E = 0x3400;
export const CODE_B = 0x8000, CODE_D = 0x8800, CODE_E = 0x8c00, H_TS = 0x9000;
export const CS0 = 0x08, DS0 = 0x10, SEL_A = 0x18, SEL_B = 0x20, SEL_BAD = 0x28, SEL_D = 0x30, SEL_E = 0x38;
export const TS = 10, GP = 13;
/** Ports the guest writes: B's marker, A's marker after returning, #TS handler's error code and return EIP, D's error code. */
export const P_B = 0xe9, P_A = 0xea, P_TS_CODE = 0x9a, P_TS_EIP = 0x9b, P_D = 0x98;

export function desc(ram: Uint8Array, sel: number, base: number, limit: number, access: number, flags: number): void {
  const dv = new DataView(ram.buffer, ram.byteOffset);
  dv.setUint32(GDT + sel, (((base & 0xffff) << 16) | (limit & 0xffff)) >>> 0, true);
  dv.setUint32(GDT + sel + 4, ((base & 0xff000000) | (flags << 20) | (limit & 0xf0000) | (access << 8) | ((base >>> 16) & 0xff)) >>> 0, true);
}

/** An IDT entry: a task gate (type 5) to `sel`, or a 32-bit interrupt gate (type E) to CS0:`offset`. */
export function taskGate(ram: Uint8Array, vector: number, sel: number, dpl: number): void {
  ram.set([0, 0, sel & 0xff, sel >>> 8, 0, 0x85 | (dpl << 5), 0, 0], IDT + vector * 8);
}
export function intGate(ram: Uint8Array, vector: number, offset: number): void {
  ram.set([offset & 0xff, (offset >>> 8) & 0xff, CS0, 0, 0, 0x8e, (offset >>> 16) & 0xff, offset >>> 24], IDT + vector * 8);
}

/** A 32-bit TSS: EIP, EFLAGS, EAX, ESP, CS and the data selectors. */
export function tss(ram: Uint8Array, base: number, eip: number, esp: number, eax: number, cs = CS0, ds = DS0): void {
  const dv = new DataView(ram.buffer, ram.byteOffset);
  dv.setUint32(base + 0x20, eip, true);
  dv.setUint32(base + 0x24, 2, true);
  dv.setUint32(base + 0x28, eax, true);
  dv.setUint32(base + 0x38, esp, true);
  dv.setUint16(base + 0x4c, cs, true);
  dv.setUint16(base + 0x50, DS0, true); // SS
  dv.setUint16(base + 0x48, ds, true); // ES
  dv.setUint16(base + 0x54, ds, true); // DS
}

/** The guest: task A (current, at ORG) runs `code`; tasks B, D, E and the #TS handler as described per test. */
export function image(ram: Uint8Array, code: number[]): void {
  desc(ram, CS0, 0, 0xfffff, 0x9b, 0xc);
  desc(ram, DS0, 0, 0xfffff, 0x93, 0xc);
  desc(ram, SEL_A, TSS_A, 0x67, 0x8b, 0); // busy: the current task
  desc(ram, SEL_B, TSS_B, 0x67, 0x89, 0);
  desc(ram, SEL_BAD, TSS_BAD, 0x20, 0x89, 0); // limit below 67h: #TS(SEL_BAD) (SDM 7.3 step 6, APM 12.3.2)
  desc(ram, SEL_D, TSS_D, 0x67, 0x89, 0);
  desc(ram, SEL_E, TSS_E, 0x67, 0x89, 0);
  tss(ram, TSS_B, CODE_B, 0xa000, 0xb0b0);
  tss(ram, TSS_D, CODE_D, 0xb000, 0);
  tss(ram, TSS_E, CODE_E, 0xc000, 0, CS0, SEL_A); // DS = a TSS descriptor: #TS after the commit point
  // B: inc dword [COUNTER]; out P_B, al; iretd; jmp B (re-entry after a later switch back).
  ram.set([0xff, 0x05, COUNTER & 0xff, COUNTER >>> 8, 0, 0, 0xe6, P_B, 0xcf, 0xeb, 0xf5], CODE_B);
  // D (#GP task): pop eax (error code); out P_D, eax; add dword [TSS_A+20h], 2 (past A's
  // 2-byte faulting MOV DS); iretd.
  ram.set([0x58, 0xe7, P_D, 0x83, 0x05, 0x20, TSS_A >>> 8, 0, 0, 2, 0xcf], CODE_D);
  ram.set([0xf4], CODE_E);
  // #TS handler: pop eax (error code); out; pop eax (return EIP); out; hlt.
  ram.set([0x58, 0xe7, P_TS_CODE, 0x58, 0xe7, P_TS_EIP, 0xf4], H_TS);
  taskGate(ram, 0x40, SEL_B, 3);
  taskGate(ram, 0x41, SEL_BAD, 3);
  taskGate(ram, GP, SEL_D, 0);
  intGate(ram, TS, H_TS);
  ram.set(code, ORG);
}

export function pmState(): X86State {
  const s = resetState();
  const flat = (sel: number, attrib: number) => ({ selector: sel, base: 0, limit: 0xffffffff, attrib });
  s.cs = flat(CS0, 0xc09b); s.ss = flat(DS0, 0xc093); s.ds = flat(DS0, 0xc093); s.es = flat(DS0, 0xc093);
  s.fs = { selector: 0, base: 0, limit: 0, attrib: 0x10000 }; s.gs = { ...s.fs };
  s.eip = ORG; s.esp = 0x9800; s.eflags = 2; s.cr0 = 0x11;
  s.gdtr = { base: GDT, limit: 0x3f }; s.idtr = { base: IDT, limit: 0x7ff };
  s.tr = { selector: SEL_A, base: TSS_A, limit: 0x67, attrib: 0x8b };
  s.ldtr = { selector: 0, base: 0, limit: 0, attrib: 0x10000 };
  return s;
}

export const jmpFar = (sel: number) => [0xea, 0, 0, 0, 0, sel & 0xff, sel >>> 8];
export const callFar = (sel: number) => [0x9a, 0, 0, 0, 0, sel & 0xff, sel >>> 8];
export const AFTER = [0xe6, P_A, 0xf4]; // out P_A, al; hlt

// Byte/word views of the 32-bit GPRs in an X86State (the BIOS "register block").
import type { X86State } from "../../../../src/x86/types.js";

export const lo8 = (r: number) => r & 0xff;
export const hi8 = (r: number) => (r >>> 8) & 0xff;
export const lo16 = (r: number) => r & 0xffff;
export const withLo8 = (r: number, v: number) => ((r & 0xffffff00) | (v & 0xff)) >>> 0;
export const withHi8 = (r: number, v: number) => ((r & 0xffff00ff) | ((v & 0xff) << 8)) >>> 0;
export const withLo16 = (r: number, v: number) => ((r & 0xffff0000) | (v & 0xffff)) >>> 0;

export const setAl = (s: X86State, v: number) => { s.eax = withLo8(s.eax, v); };
export const setAh = (s: X86State, v: number) => { s.eax = withHi8(s.eax, v); };
export const setAx = (s: X86State, v: number) => { s.eax = withLo16(s.eax, v); };
export const setBl = (s: X86State, v: number) => { s.ebx = withLo8(s.ebx, v); };
export const setBh = (s: X86State, v: number) => { s.ebx = withHi8(s.ebx, v); };
export const setBx = (s: X86State, v: number) => { s.ebx = withLo16(s.ebx, v); };
export const setCl = (s: X86State, v: number) => { s.ecx = withLo8(s.ecx, v); };
export const setCh = (s: X86State, v: number) => { s.ecx = withHi8(s.ecx, v); };
export const setCx = (s: X86State, v: number) => { s.ecx = withLo16(s.ecx, v); };
export const setDl = (s: X86State, v: number) => { s.edx = withLo8(s.edx, v); };
export const setDh = (s: X86State, v: number) => { s.edx = withHi8(s.edx, v); };
export const setDx = (s: X86State, v: number) => { s.edx = withLo16(s.edx, v); };
export const setDi = (s: X86State, v: number) => { s.edi = withLo16(s.edi, v); };

/** Load a real-mode segment register in place (the object may belong to a backend). */
export function loadRealSegment(seg: { selector: number; base: number }, selector: number): void {
  seg.selector = selector & 0xffff;
  seg.base = (selector & 0xffff) << 4;
}

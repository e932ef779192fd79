// What both backends' string-I/O tests share (plugins/vmx vmx-backend.string-io.test.ts and
// plugins/svm svm-backend.string-io.test.ts): a recording one-port device and a 32-bit paged
// guest whose REP OUTSB crosses a remapped and a not-present page. Test code only.
import { resetState } from "../../x86/state.js";
import type { X86State } from "../../x86/types.js";
import type { AccessSize, IoDevice } from "../api.js";

/** The port the string-I/O guests use (DX = 3F0h). */
export const STRING_IO_PORT = 0x3f0;

/** A one-port device: records every write and every access size, answers reads from a queue (then FFh). */
export class RecordingPortDevice implements IoDevice {
  readonly name = "recorder";
  readonly written: number[] = [];
  readonly sizes: AccessSize[] = [];
  constructor(private readonly answers: number[] = []) {}
  read(_offset: number, size: AccessSize): number { this.sizes.push(size); return this.answers.shift() ?? 0xff; }
  write(_offset: number, size: AccessSize, value: number): void { this.sizes.push(size); this.written.push(value); }
}

/**
 * The paged REP OUTSB guest: 32-bit protected mode with paging, linear = physical except
 * linear page 2 -> physical 6000h and linear page 3 not present. The first REP OUTSB sends
 * "abc" from 6000h; the second (at `org + SECOND_REP`) sends "xy" from 6FFEh and then takes
 * #PF on page 3; the #PF handler (an interrupt gate to HANDLER) does mov eax, cr2; hlt.
 */
export const PAGED_OUTS = {
  GDT: 0x0800, IDT: 0x0c00, PD: 0x4000, PT: 0x5000, HANDLER: 0x8000, STACK: 0x9000,
  /** Offset of the second REP OUTSB from the code's start. */
  SECOND_REP: 0x1b,
} as const;

const PAGED_OUTS_CODE = [
  0xfc,                               // +00 cld
  0xbe, 0x00, 0x20, 0x00, 0x00,       // +01 mov esi, 0x2000
  0xb9, 0x03, 0x00, 0x00, 0x00,       // +06 mov ecx, 3
  0x66, 0xba, 0xf0, 0x03,             // +0b mov dx, 0x3f0
  0xf3, 0x6e,                         // +0f rep outsb
  0xbe, 0xfe, 0x2f, 0x00, 0x00,       // +11 mov esi, 0x2ffe
  0xb9, 0x04, 0x00, 0x00, 0x00,       // +16 mov ecx, 4
  0xf3, 0x6e,                         // +1b rep outsb: 2 bytes, then page 3
  0xf4,                               // +1d hlt
];

/** Writes the paged guest (code at `org`, which must lie in linear pages 0-1 or 4-15) into guest RAM. */
export function writePagedOutsGuest(ram: Uint8Array, org: number): void {
  const { GDT, IDT, PD, PT, HANDLER } = PAGED_OUTS;
  ram.set(PAGED_OUTS_CODE, org);
  const dv = new DataView(ram.buffer, ram.byteOffset);
  dv.setUint32(GDT + 8, 0x0000ffff, true); dv.setUint32(GDT + 12, 0x00cf9b00, true);
  dv.setUint32(GDT + 16, 0x0000ffff, true); dv.setUint32(GDT + 20, 0x00cf9300, true);
  // IDT 14: a 32-bit interrupt gate to HANDLER: mov eax, cr2; hlt.
  dv.setUint32(IDT + 14 * 8, (0x08 << 16) | (HANDLER & 0xffff), true); dv.setUint32(IDT + 14 * 8 + 4, 0x8e00, true);
  ram.set([0x0f, 0x20, 0xd0, 0xf4], HANDLER);
  dv.setUint32(PD, PT | 3, true);
  for (let i = 0; i < 16; i++) dv.setUint32(PT + i * 4, i === 3 ? 0 : ((i === 2 ? 0x6000 : i * 0x1000) | 3), true);
  ram.set([0x61, 0x62, 0x63], 0x6000);
  ram.set([0x78, 0x79], 0x6ffe);
  ram.set([0x7a], 0x3000); // physical page 3: never read (linear page 3 is not present)
}

/** The paged guest's entry state: flat 32-bit CS/SS/DS/ES/FS/GS, CR0.PG|PE, CR3 = PD, EIP = `org`. */
export function pagedOutsState(org: number): X86State {
  const { GDT, IDT, PD, STACK } = PAGED_OUTS;
  const s = resetState();
  const flat = (sel: number, attrib: number) => ({ selector: sel, base: 0, limit: 0xffffffff, attrib });
  s.cs = flat(0x08, 0xc09b); s.ss = flat(0x10, 0xc093); s.ds = flat(0x10, 0xc093); s.es = flat(0x10, 0xc093);
  s.fs = flat(0x10, 0xc093); s.gs = flat(0x10, 0xc093);
  s.eip = org; s.esp = STACK; s.eflags = 2; s.cr0 = 0x80000011; s.cr3 = PD;
  s.gdtr = { base: GDT, limit: 0x17 }; s.idtr = { base: IDT, limit: 0xff };
  s.tr = { selector: 0, base: 0, limit: 0xffff, attrib: 0x8b };
  return s;
}

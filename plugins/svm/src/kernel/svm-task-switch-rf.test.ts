// TASK_SWITCH EXITINFO2 bit 48 (APM 15.14.1): the EFLAGS.RF the switch would have saved in
// the outgoing TSS had it not been intercepted. Each source runs twice: with the intercept
// (the exit's bit 48; the backend has no GuestMemory, so the exit stays `unhandled` and the
// VMCB is read as the kernel wrote it) and without it (the core switches and saves EFLAGS in
// task A's TSS); the two must agree, and equal what SDM 17.3.1.1 gives each source.
import { describe, expect, it } from "vitest";
import { StateParts } from "../../../../src/monitor/api.js";
import { resetState } from "../../../../src/x86/state.js";
import { EventType, type X86State } from "../../../../src/x86/types.js";
import { F, Misc1, SvmExit, TaskSwitchInfoHi } from "../vmcb.js";
import { ORG, expectKind, machine } from "../svm-machine.fixtures.js";

const GDT = 0x1000, IDT = 0x2000, TSS_A = 0x3000, TSS_B = 0x3100, CODE_B = 0x8000;
const CS0 = 0x08, DS0 = 0x10, SEL_A = 0x18, SEL_B = 0x20;
const RF = 0x10000, EXITINFO2_RF = 1 << 16; // bit 48 of EXITINFO2, in its high dword

function desc(dv: DataView, sel: number, base: number, limit: number, access: number, flags: number): void {
  dv.setUint32(GDT + sel, (((base & 0xffff) << 16) | (limit & 0xffff)) >>> 0, true);
  dv.setUint32(GDT + sel + 4, ((base & 0xff000000) | (flags << 20) | (limit & 0xf0000) | (access << 8) | ((base >>> 16) & 0xff)) >>> 0, true);
}

function pmState(eflags: number): X86State {
  const s = resetState();
  const flat = (sel: number, attrib: number) => ({ selector: sel, base: 0, limit: 0xffffffff, attrib });
  s.cs = flat(CS0, 0xc09b); s.ss = flat(DS0, 0xc093); s.ds = flat(DS0, 0xc093); s.es = flat(DS0, 0xc093);
  s.fs = { selector: 0, base: 0, limit: 0, attrib: 0x10000 }; s.gs = { ...s.fs };
  s.eip = ORG; s.esp = 0x9800; s.eflags = eflags; s.cr0 = 0x11;
  s.gdtr = { base: GDT, limit: 0x27 }; s.idtr = { base: IDT, limit: 0x7ff };
  s.tr = { selector: SEL_A, base: TSS_A, limit: 0x67, attrib: 0x8b };
  s.ldtr = { selector: 0, base: 0, limit: 0, attrib: 0x10000 };
  return s;
}

interface Source { code: number[]; eflags?: number; inject?: boolean }

/** Task A (current) runs `code`; #GP (13) and INT 40h are task gates to task B, which halts. */
function boot(src: Source, intercept: boolean) {
  const m = machine([]);
  const ram = m.ram, dv = new DataView(ram.buffer, ram.byteOffset);
  desc(dv, CS0, 0, 0xfffff, 0x9b, 0xc);
  desc(dv, DS0, 0, 0xfffff, 0x93, 0xc);
  desc(dv, SEL_A, TSS_A, 0x67, 0x8b, 0); // busy: the current task
  desc(dv, SEL_B, TSS_B, 0x67, 0x89, 0);
  dv.setUint32(TSS_B + 0x20, CODE_B, true);
  dv.setUint32(TSS_B + 0x24, 2, true);
  dv.setUint32(TSS_B + 0x38, 0xa000, true);
  for (const off of [0x48, 0x50, 0x54]) dv.setUint16(TSS_B + off, DS0, true); // ES, SS, DS
  dv.setUint16(TSS_B + 0x4c, CS0, true);
  ram.set([0xf4], CODE_B); // hlt
  for (const vector of [13, 0x40]) ram.set([0, 0, SEL_B, 0, 0, 0xe5, 0, 0], IDT + vector * 8); // task gate, DPL 3
  ram.set(src.code, ORG);
  m.backend.setState(pmState(src.eflags ?? 2), StateParts.All);
  const v = m.backend.vmcb;
  if (intercept) v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.TASK_SWITCH);
  if (src.inject === true) m.backend.inject({ type: EventType.ExtInt, vector: 0x40 });
  return { m, dv, v };
}

/** [EXITINFO2 high dword with the intercept, RF in task A's saved EFLAGS without it]. */
function rfBoth(src: Source): [number, number] {
  const a = boot(src, true);
  const e = expectKind(a.m.backend.run(), "unhandled");
  expect(e.code).toBe(SvmExit.TASK_SWITCH);
  expect(a.v.read(F.EXITINFO1)).toBe(SEL_B);
  const hi = a.v.readHi(F.EXITINFO2);
  const b = boot(src, false);
  expectKind(b.m.backend.run(), "hlt"); // task B's HLT: the core switched
  expect(b.m.backend.getState(StateParts.Tables).tr.selector).toBe(SEL_B);
  return [hi, b.dv.getUint32(TSS_A + 0x24, true) & RF];
}

describe("TASK_SWITCH EXITINFO2 bit 48: the RF the outgoing TSS would get", () => {
  it("a fault through a task gate: RF = 1, as its EFLAGS image (#GP(0FF8h) from MOV DS)", () => {
    const [hi, saved] = rfBoth({ code: [0x66, 0xb8, 0xf8, 0x0f, 0x8e, 0xd8] }); // mov ax, 0ff8h; mov ds, ax
    expect(saved).toBe(RF);
    expect(hi).toBe((TaskSwitchInfoHi.HAS_ERROR_CODE | EXITINFO2_RF) >>> 0);
  });

  it("INT n through a task gate: RF = 0 (a software interrupt is not a fault)", () => {
    const [hi, saved] = rfBoth({ code: [0xcd, 0x40] });
    expect(saved).toBe(0);
    expect(hi).toBe(0);
  });

  it("a far JMP to a TSS: RF = 0 (cleared before each instruction)", () => {
    const [hi, saved] = rfBoth({ code: [0xea, 0, 0, 0, 0, SEL_B, 0] });
    expect(saved).toBe(0);
    expect(hi).toBe(TaskSwitchInfoHi.JMP);
  });

  it("an interrupt injected through EVENTINJ with RFLAGS.RF = 1 at VMRUN: the live RF, 1", () => {
    const [hi, saved] = rfBoth({ code: [0xf4], eflags: 2 | RF, inject: true });
    expect(saved).toBe(RF);
    expect(hi).toBe(EXITINFO2_RF);
  });
});

// The task-switch assist must leave the guest exactly where the core would have been
// had the switch not exited: the reference is the same core running without
// taskSwitchExit on a copy of the same memory.
import { describe, expect, it } from "vitest";
import { X86Cpu } from "../../x86/cpu.js";
import { FlatMemory } from "../../x86/memory.js";
import { resetState } from "../../x86/state.js";
import { CpuExitReason, EventType, TaskSwitchSource } from "../../x86/types.js";
import type { X86State } from "../../x86/types.js";
import { NO_IO } from "../../x86/testing.js";
import { FrameGuestMemory } from "../guest-memory.js";
import { TaskSwitchAssist, TaskSwitchOutcome, faultSetsRf } from "./task-switch.js";

const GDT = 0x1000, IDT = 0x2000, TSS_A = 0x3000, TSS_B = 0x3400, CODE0 = 0x10000, CODE_B = 0x18000;
const CS0 = 0x08, DS0 = 0x10, TSSA = 0x18, TSSB = 0x20;

function image(code: number[]): FlatMemory {
  const m = new FlatMemory(0x40000);
  const desc = (sel: number, base: number, limit: number, access: number, flags: number) => {
    m.write32(GDT + sel, (((base & 0xffff) << 16) | (limit & 0xffff)) >>> 0);
    m.write32(GDT + sel + 4, ((base & 0xff000000) | (flags << 20) | (limit & 0xf0000) | (access << 8) | ((base >>> 16) & 0xff)) >>> 0);
  };
  desc(CS0, 0, 0xfffff, 0x9b, 0xc);
  desc(DS0, 0, 0xfffff, 0x93, 0xc);
  desc(TSSA, TSS_A, 0x67, 0x8b, 0); // busy: the current task
  desc(TSSB, TSS_B, 0x67, 0x89, 0);
  // Task B: EIP, EFLAGS, EAX, ESP, segments.
  m.write32(TSS_B + 0x20, CODE_B); m.write32(TSS_B + 0x24, 2); m.write32(TSS_B + 0x28, 0xb0b0);
  m.write32(TSS_B + 0x38, 0x9000);
  for (const off of [0x48, 0x50, 0x54]) m.write16(TSS_B + off, DS0);
  m.write16(TSS_B + 0x4c, CS0);
  m.bytes.set([0xeb, 0xfe], CODE_B); // jmp $
  // IDT vector 0x50: a task gate to TSS B (P, DPL 3, type 5).
  m.write32(IDT + 0x50 * 8, TSSB << 16); m.write32(IDT + 0x50 * 8 + 4, 0xe500);
  m.bytes.set(code, CODE0);
  return m;
}

function pmState(): X86State {
  const s = resetState();
  const flat = (sel: number, attrib: number) => ({ selector: sel, base: 0, limit: 0xffffffff, attrib });
  s.cs = flat(CS0, 0xc09b); s.ss = flat(DS0, 0xc093); s.ds = flat(DS0, 0xc093); s.es = flat(DS0, 0xc093);
  s.fs = { selector: 0, base: 0, limit: 0, attrib: 0x10000 }; s.gs = { ...s.fs };
  s.eip = CODE0; s.esp = 0x8000; s.eflags = 2; s.cr0 = 0x11; s.ecx = 0xc0c0;
  s.gdtr = { base: GDT, limit: 0x27 }; s.idtr = { base: IDT, limit: 0x7ff };
  s.tr = { selector: TSSA, base: TSS_A, limit: 0x67, attrib: 0x8b };
  s.ldtr = { selector: 0, base: 0, limit: 0, attrib: 0x10000 };
  return s;
}

/** Run to the task-switch exit, let the assist switch; and the reference run on a copy. */
function both(code: number[]) {
  const mem = image(code), ref = new FlatMemory(mem.bytes.length);
  ref.bytes.set(mem.bytes);
  const cpu = new X86Cpu(mem, NO_IO);
  cpu.setState(pmState());
  cpu.intercepts.taskSwitchExit = true;
  const reason = cpu.run(10);
  const s = resetState(); cpu.getState(s);
  const e = cpu.exit;
  const event = e.vectoringValid
    ? { type: e.vectoringType, vector: e.vectoringVector, errorCode: e.vectoringErrorCode, hasErrorCode: e.vectoringHasErrorCode } : null;
  new TaskSwitchAssist(new FrameGuestMemory(mem.bytes)).run(s, e.tsSource, event, e.instrLen);
  const r = new X86Cpu(ref, NO_IO);
  r.setState(pmState());
  r.run(1);
  const want = resetState(); r.getState(want);
  return { reason, source: e.tsSource, got: s, want, mem, ref };
}

describe("task-switch assist", () => {
  it("JMP to a TSS: the assisted switch equals the core's own", () => {
    const t = both([0xea, 0, 0, 0, 0, TSSB, 0]); // jmp far TSSB:0
    expect([t.reason, t.source]).toEqual([CpuExitReason.TaskSwitch, TaskSwitchSource.Jmp]);
    expect(t.got).toEqual(t.want);
    expect([t.got.tr.selector, t.got.eip, t.got.eax]).toEqual([TSSB, CODE_B, 0xb0b0]);
    expect(t.mem.bytes).toEqual(t.ref.bytes); // the old task saved, busy bits moved, alike
  });

  it("CALL to a TSS nests: back link and NT, as the core does it", () => {
    const t = both([0x9a, 0, 0, 0, 0, TSSB, 0]); // call far TSSB:0
    expect(t.source).toBe(TaskSwitchSource.Call);
    expect(t.got).toEqual(t.want);
    expect(t.got.eflags & 0x4000).toBe(0x4000);
    expect(t.mem.bytes).toEqual(t.ref.bytes);
  });

  it("INT n through a task gate: the old task resumes after the INT", () => {
    const t = both([0xcd, 0x50]); // int 50h
    expect(t.source).toBe(TaskSwitchSource.Gate);
    expect(t.got).toEqual(t.want);
    expect(t.mem.read32(TSS_A + 0x20)).toBe(CODE0 + 2); // saved EIP of the old task
    expect(t.mem.bytes).toEqual(t.ref.bytes);
  });

  it("a switch that faults (TSS B not present) delivers the fault to the guest instead of throwing", () => {
    const mem = image([0xea, 0, 0, 0, 0, TSSB, 0]);
    mem.bytes[GDT + TSSB + 5] = 0x09; // not present
    const s = pmState();
    new TaskSwitchAssist(new FrameGuestMemory(mem.bytes)).run(s, TaskSwitchSource.Jmp, null, 0);
    // No IDT entry for #NP (vector 11 is a null gate): #NP -> #GP on the gate -> #DF -> shutdown.
    expect(s.activity).toBe(2);
    expect(s.tr.selector).toBe(TSSA);
  });
});

/** Run to the task-switch exit and return the state and the exit's event, as a backend sees them. */
function atExit(mem: FlatMemory) {
  const cpu = new X86Cpu(mem, NO_IO);
  cpu.setState(pmState());
  cpu.intercepts.taskSwitchExit = true;
  expect(cpu.run(10)).toBe(CpuExitReason.TaskSwitch);
  const s = resetState(); cpu.getState(s);
  const e = cpu.exit;
  const event = e.vectoringValid
    ? { type: e.vectoringType, vector: e.vectoringVector, errorCode: e.vectoringErrorCode, hasErrorCode: e.vectoringHasErrorCode } : null;
  return { s, source: e.tsSource, event, len: e.instrLen };
}

/** The first offset where two memories differ, or -1 (quicker than a deep equal of 256 KiB). */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe("task-switch assist: run (faults delivered on the scratch core)", () => {
  it("INT n through a gate to a bad TSS: #TS is delivered with the INT's address and RF = 1 in the frame", () => {
    const mem = image([0xcd, 0x50]);
    mem.bytes[GDT + TSSB] = 0x20; // TSS limit below 67h: #TS(TSSB), SDM 7.3 step 6
    // IDT 10: a 32-bit interrupt gate to 0x11000.
    mem.write32(IDT + 10 * 8, (CS0 << 16) | 0x1000); mem.write32(IDT + 10 * 8 + 4, 0x00018e00);
    const x = atExit(mem);
    new TaskSwitchAssist(new FrameGuestMemory(mem.bytes)).run(x.s, x.source, x.event, x.len);
    expect([x.s.tr.selector, x.s.eip, x.s.esp]).toEqual([TSSA, 0x11000, 0x8000 - 16]);
    // Error code, return EIP (the INT itself: it is re-executed after the handler), CS, EFLAGS.
    expect([mem.read32(0x7ff0), mem.read32(0x7ff4), mem.read32(0x7ff8), mem.read32(0x7ffc) & 0x10000])
      .toEqual([TSSB, CODE0, CS0, 0x10000]);
  });
});

describe("task-switch assist: perform (faults returned for injection)", () => {
  it("a switch that completes gives Switched and the same state and memory as the core's own", () => {
    for (const code of [[0xea, 0, 0, 0, 0, TSSB, 0], [0x9a, 0, 0, 0, 0, TSSB, 0], [0xcd, 0x50]]) {
      const mem = image(code), ref = new FlatMemory(mem.bytes.length);
      ref.bytes.set(mem.bytes);
      const x = atExit(mem);
      const out = new TaskSwitchAssist(new FrameGuestMemory(mem.bytes)).perform(x.s, x.source, x.event, x.len);
      const r = new X86Cpu(ref, NO_IO);
      r.setState(pmState()); r.run(1);
      const want = resetState(); r.getState(want);
      expect(out).toBe(TaskSwitchOutcome.Switched);
      expect(x.s).toEqual(want);
      expect(firstDiff(mem.bytes, ref.bytes)).toBe(-1);
    }
  });

  it("a TSS limit below 67h is #TS(selector) returned, not delivered: the old task at the JMP, memory untouched", () => {
    const mem = image([0xea, 0, 0, 0, 0, TSSB, 0]);
    mem.bytes[GDT + TSSB] = 0x20;
    const x = atExit(mem), before = mem.bytes.slice();
    const a = new TaskSwitchAssist(new FrameGuestMemory(mem.bytes));
    expect(a.perform(x.s, x.source, x.event, x.len)).toBe(TaskSwitchOutcome.Fault);
    expect(a.fault).toMatchObject({ vector: 10, errorCode: TSSB, hasErrorCode: true, duringEvent: false });
    expect([x.s.tr.selector, x.s.eip, x.s.esp]).toEqual([TSSA, CODE0, 0x8000]);
    expect(firstDiff(mem.bytes, before)).toBe(-1);
  });

  it("INT n through a gate to a bad TSS: #TS points at the INT (re-executed) and interrupts the event's delivery", () => {
    const mem = image([0xcd, 0x50]);
    mem.bytes[GDT + TSSB] = 0x20;
    const x = atExit(mem);
    expect(x.event).toMatchObject({ type: EventType.SoftwareInt, vector: 0x50 });
    const a = new TaskSwitchAssist(new FrameGuestMemory(mem.bytes));
    expect(a.perform(x.s, x.source, x.event, x.len)).toBe(TaskSwitchOutcome.Fault);
    expect(a.fault).toMatchObject({ vector: 10, errorCode: TSSB, duringEvent: true });
    expect(x.s.eip).toBe(CODE0);
  });

  it("a #GP reaching a task gate pushes its error code on the new stack and saves the old EFLAGS with RF (a fault)", () => {
    const mem = image([0xf4]);
    mem.write32(IDT + 13 * 8, TSSB << 16); mem.write32(IDT + 13 * 8 + 4, 0x8500);
    const s = pmState();
    const a = new TaskSwitchAssist(new FrameGuestMemory(mem.bytes));
    const ev = { type: EventType.HardwareException, vector: 13, errorCode: 0x1234, hasErrorCode: true };
    expect(a.perform(s, TaskSwitchSource.Gate, ev, 0)).toBe(TaskSwitchOutcome.Switched);
    expect([s.tr.selector, s.esp, mem.read32(0x9000 - 4)]).toEqual([TSSB, 0x9000 - 4, 0x1234]);
    expect(mem.read32(TSS_A + 0x24) & 0x10000).toBe(0x10000);
  });

  it("RF is pushed for fault-class vectors only (SDM 6.15 table 6-1)", () => {
    const rf = Array.from({ length: 20 }, (_, v) => faultSetsRf(v));
    expect(rf.map((x, v) => (x ? v : -1)).filter((v) => v >= 0)).toEqual([0, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19]);
  });
});

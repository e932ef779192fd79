// Task switches under the SVM backend (APM 15.14.1 TASK_SWITCH intercept, 12.3 task
// switches): with the intercept on, the backend performs each switch with the shared
// TaskSwitchAssist and re-enters the guest. The reference is the same guest on a second
// machine with the intercept off, where the core switches natively: every exit the monitor
// sees, the final guest state and all of guest RAM (saved TSS state, busy bits, back links)
// must be equal.
import { describe, expect, it } from "vitest";
import { StateParts, type VmExit } from "../../../../src/monitor/api.js";
import { PioBus } from "../../../../src/monitor/bus.js";
import { EventType, type X86State } from "../../../../src/x86/types.js";
import { EventInj, F, Misc1, SvmExit } from "../vmcb.js";
import { ORG, expectKind, machine, type Machine } from "../svm-machine.fixtures.js";
import {
  AFTER, CODE_E, COUNTER, GDT, GP, IDT, P_A, P_B, P_D, P_TS_CODE, P_TS_EIP, SEL_A, SEL_B, SEL_BAD, SEL_E, TS, TSS_B, callFar, image, jmpFar, pmState,
} from "../../../../src/monitor/assist/task-switch.fixtures.js";

/** A machine with GuestMemory (the assist needs it), the guest loaded and in protected mode. */
function boot(code: number[], intercept: boolean, exceptions = 0): Machine {
  const m = machine([], 10_000, new PioBus());
  image(m.ram, code);
  m.backend.setState(pmState());
  const v = m.backend.vmcb;
  if (intercept) v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.TASK_SWITCH);
  v.write(F.INTERCEPT_EXCEPTIONS, exceptions);
  return m;
}

type Seen = string;
function describeExit(e: VmExit): Seen {
  switch (e.kind) {
    case "io": return `io ${e.port.toString(16)}=${(e.data >>> 0).toString(16)}`;
    case "exception": return `exception ${e.vector} (${e.errorCode.toString(16)})`;
    case "unhandled": case "entry-failure": return `${e.kind}: ${e.message}`;
    default: return e.kind;
  }
}

/** EXITCODE, EXITINFO1/2, EXITINTINFO and nRIP of the last exit (APM 15.7). */
function exitFields(m: Machine): string {
  const v = m.backend.vmcb;
  return [v.read64(F.EXITCODE), v.read64(F.EXITINFO1), v.read64(F.EXITINFO2), v.read64(F.EXITINTINFO), v.read64(F.NRIP)]
    .map((x) => x.toString(16)).join(" ");
}

/** Runs until HLT, an exception exit or anything but `io` (or `max` exits); returns every exit with its VMCB fields and the final state. */
function trace(m: Machine, max = 20): { exits: Seen[]; fields: string[]; state: X86State } {
  const exits: Seen[] = [], fields: string[] = [];
  for (let i = 0; i < max; i++) {
    const e = m.backend.run();
    exits.push(describeExit(e));
    fields.push(exitFields(m));
    if (e.kind !== "io" && e.kind !== "preempt") break;
  }
  return { exits, fields, state: structuredClone(m.backend.getState(StateParts.All)) };
}

/** The same guest with the intercept (backend switches) and without it (the core switches). */
function both(code: number[], exceptions = 0, max = 20) {
  const assisted = boot(code, true, exceptions), native = boot(code, false, exceptions);
  const a = trace(assisted, max), n = trace(native, max);
  return { a, n, assisted, native };
}

function expectSame(t: ReturnType<typeof both>): void {
  expect(t.a.exits).toEqual(t.n.exits);
  expect(t.a.fields).toEqual(t.n.fields);
  expect(t.a.state).toEqual(t.n.state);
  const diff: string[] = [];
  t.assisted.ram.forEach((b, i) => { if (b !== t.native.ram[i]) diff.push(`${i.toString(16)}: ${b.toString(16)} vs ${t.native.ram[i]!.toString(16)}`); });
  expect(diff).toEqual([]);
}

describe("SvmBackend performs intercepted task switches (exit 7Dh) as the core would", () => {
  it("without GuestMemory the exit stays unhandled, naming the task switch, and the switch has not begun", () => {
    const m = machine([]);
    image(m.ram, [...jmpFar(SEL_B), ...AFTER]);
    m.backend.setState(pmState());
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.TASK_SWITCH);
    const e = expectKind(m.backend.run(), "unhandled");
    expect(e.code).toBe(SvmExit.TASK_SWITCH);
    expect(e.message).toMatch(/task switch.*GuestMemory/);
    expect(v.read(F.EXITINFO1)).toBe(SEL_B);
    expect(m.backend.getState(StateParts.Tables).tr.selector).toBe(SEL_A);
  });

  it("far JMP to a TSS: the new task runs, the old one is saved and no longer busy", () => {
    const t = both([...jmpFar(SEL_B), ...AFTER], 0, 1);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_B.toString(16)}=b0`]);
    expect(t.a.state.tr.selector).toBe(SEL_B);
    expect(t.assisted.ram[GDT + SEL_A + 5]).toBe(0x89); // A available again (JMP clears busy)
    expect(t.assisted.ram[GDT + SEL_B + 5]).toBe(0x8b);
  });

  it("far CALL to a TSS nests (back link, NT) and the new task's IRET returns after the CALL", () => {
    const t = both([...callFar(SEL_B), ...AFTER]);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_B.toString(16)}=b0`, `io ${P_A.toString(16)}=0`, "hlt"]);
    expect(t.assisted.ram[TSS_B] | (t.assisted.ram[TSS_B + 1]! << 8)).toBe(SEL_A); // back link
    expect([t.a.state.tr.selector, t.a.state.eip]).toEqual([SEL_A, ORG + 7 + 2]);
    expect(t.a.state.eflags & 0x4000).toBe(0); // IRET cleared NT in the old task (APM 12.3.3)
  });

  it("INT n through an IDT task gate: delivered exactly once, the old task resumes after the INT", () => {
    const t = both([0xcd, 0x40, ...AFTER]);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_B.toString(16)}=b0`, `io ${P_A.toString(16)}=0`, "hlt"]);
    expect(t.assisted.ram[COUNTER]).toBe(1);
    expect(t.a.state.eip).toBe(ORG + 2 + 2);
    expect(t.assisted.backend.vmcb.read(F.EVENTINJ) & EventInj.V).toBe(0);
  });

  it("an event injected through EVENTINJ at a task gate: the kernel's delivery stops at the intercept, delivered exactly once", () => {
    const assisted = boot([...AFTER], true), native = boot([...AFTER], false);
    for (const m of [assisted, native]) m.backend.inject({ type: EventType.ExtInt, vector: 0x40 });
    const t = { a: trace(assisted), n: trace(native), assisted, native };
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_B.toString(16)}=b0`, `io ${P_A.toString(16)}=0`, "hlt"]);
    expect(t.assisted.ram[COUNTER]).toBe(1);
  });

  it("an exception with an error code through a task gate: the code is on the new task's stack", () => {
    // mov ax, 0ff8h; mov ds, ax: beyond the GDT limit, #GP(0FF8h) through IDT 13, a task gate to D.
    const t = both([0x66, 0xb8, 0xf8, 0x0f, 0x8e, 0xd8, ...AFTER]);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_D.toString(16)}=ff8`, `io ${P_A.toString(16)}=f8`, "hlt"]);
    expect(t.a.state.tr.selector).toBe(SEL_A);
    expect(t.a.state.eip).toBe(ORG + 4 + 2 + 2);
  });

  it("a bad TSS (limit below 67h) on a far JMP gives #TS(selector) in the old task, delivered through the guest IDT", () => {
    const t = both([...jmpFar(SEL_BAD), ...AFTER]);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_TS_CODE.toString(16)}=${SEL_BAD.toString(16)}`, `io ${P_TS_EIP.toString(16)}=${ORG.toString(16)}`, "hlt"]);
    expect(t.a.state.tr.selector).toBe(SEL_A);
  });

  it("the #TS goes through EVENTINJ: with exception 10 intercepted it is an exception exit at the JMP", () => {
    const t = both([...jmpFar(SEL_BAD), ...AFTER], 1 << TS);
    expectSame(t);
    expect(t.a.exits).toEqual([`exception ${TS} (${SEL_BAD.toString(16)})`]);
    expect(t.assisted.backend.vmcb.exitCode()).toBe(SvmExit.EXCP_BASE + TS);
    expect(t.a.state.eip).toBe(ORG);
  });

  it("an intercepted #TS during an INT n's task gate names the INT in EXITINTINFO, nRIP after it", () => {
    const t = both([0xcd, 0x41, ...AFTER], 1 << TS);
    expectSame(t);
    expect(t.a.exits).toEqual([`exception ${TS} (${SEL_BAD.toString(16)})`]);
    const v = t.assisted.backend.vmcb;
    expect(v.read(F.EXITINTINFO)).toBe((EventInj.V | (4 << EventInj.TYPE_SHIFT) | 0x41) >>> 0);
    expect(v.read(F.NRIP)).toBe(ORG + 2);
    expect(t.a.state.eip).toBe(ORG);
  });

  it("INT n through a task gate to a bad TSS: #TS points at the INT and the event is not re-injected", () => {
    const t = both([0xcd, 0x41, ...AFTER]);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_TS_CODE.toString(16)}=${SEL_BAD.toString(16)}`, `io ${P_TS_EIP.toString(16)}=${ORG.toString(16)}`, "hlt"]);
  });

  it("a fault after the commit point (the new task's DS is a TSS) is taken in the new task", () => {
    const t = both([...jmpFar(SEL_E), ...AFTER]);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_TS_CODE.toString(16)}=${SEL_A.toString(16)}`, `io ${P_TS_EIP.toString(16)}=${CODE_E.toString(16)}`, "hlt"]);
    expect(t.a.state.tr.selector).toBe(SEL_E);
  });
});

describe("SOFT_SVM_CAPS.cr4Supported (VMRUN check cr4.mbz, APM 15.5.1)", () => {
  // xgetbv (ECX = 0: XCR0); out P_A, eax; hlt. XGETBV is #UD unless CR4.OSXSAVE.
  const XGETBV = [0x31, 0xc9, 0x0f, 0x01, 0xd0, 0xe7, P_A, 0xf4];

  it("a VMRUN with CR4.OSXSAVE set enters the guest, which runs XGETBV", () => {
    const m = boot(XGETBV, false, 1 << 6);
    const s = m.backend.getState(StateParts.Control);
    s.cr4 |= 1 << 18;
    m.backend.setState(s, StateParts.Control);
    const io = expectKind(m.backend.run(), "io");
    expect(io.port).toBe(P_A);
    expect(io.data & 1).toBe(1); // XCR0.X87 is always set
    // The next VMRUN (with OSXSAVE still set) passes too.
    expectKind(m.backend.run(), "hlt");
  });

  it("a VMRUN with a still-reserved CR4 bit (19) fails cr4.mbz and runs nothing", () => {
    const m = boot(XGETBV, false);
    const s = m.backend.getState(StateParts.Control);
    s.cr4 |= (1 << 18) | (1 << 19);
    m.backend.setState(s, StateParts.Control);
    const e = expectKind(m.backend.run(), "entry-failure");
    expect(e.message).toContain("cr4.mbz");
    expect(m.backend.getState(StateParts.Basic).eip).toBe(ORG);
  });
});

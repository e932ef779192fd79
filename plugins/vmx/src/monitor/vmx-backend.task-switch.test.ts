// Task switches under the VMX backend (SDM 26.1.2: every task switch exits with reason 9
// before any of it happened; SDM 7.3 task switching): the backend performs each switch with
// the shared TaskSwitchAssist (`perform`) and its own event injection, and re-enters the
// guest. On VMX there is no way to let the core switch natively, so the reference is a bare
// core (X86Cpu) running the same image on a copy of the same memory: every port write, the
// exit that ends the run (HLT, or an exception exit through the exception bitmap), the
// final guest state and all of guest RAM (saved TSS state, busy bits, back links) must be
// equal.
import { describe, expect, it } from "vitest";
import { SysErr } from "../../../../src/kernel/api.js";
import { StateParts, type VmExit } from "../../../../src/monitor/api.js";
import { PioBus } from "../../../../src/monitor/bus.js";
import { FrameGuestMemory } from "../../../../src/monitor/guest-memory.js";
import { X86Cpu } from "../../../../src/x86/cpu.js";
import { FlatMemory } from "../../../../src/x86/memory.js";
import { resetState } from "../../../../src/x86/state.js";
import { CpuExitReason, EventType, type X86State } from "../../../../src/x86/types.js";
import { guestControlWords, testMachine } from "../testing/machine.js";
import { ExitReason, F } from "../vmcs-fields.js";
import { VmxBackend } from "./vmx-backend.js";
import {
  AFTER, CODE_E, COUNTER, GDT, GP, IDT, ORG, P_A, P_B, P_D, P_TS_CODE, P_TS_EIP, SEL_A, SEL_B, SEL_BAD, SEL_E, TS, TSS_A, TSS_B, TSS_BAD, callFar, desc, image, jmpFar, pmState, taskGate, tss,
} from "../../../../src/monitor/assist/task-switch.fixtures.js";

const RAM = 64 * 1024;

/** The VMX backend on the real kernel (soft engine) with GuestMemory and the full guestControl mapping. */
function vmxMachine(code: number[], exceptions = 0) {
  const m = testMachine({ ramBytes: RAM });
  image(m.ram, code);
  const be = new VmxBackend(m.sys, { ...m.caps, guestRegs: guestControlWords(m) }, new PioBus(), new FrameGuestMemory(m.ram));
  be.setState(pmState());
  expect(m.sys.vmwrite(m.caps.dispatcher, F.ExceptionBitmap, exceptions)).toBe(SysErr.Ok);
  const vmread = (enc: number): number => {
    expect(m.sys.vmread(m.caps.dispatcher, enc)).toBe(SysErr.Ok);
    return m.sys.ret.value >>> 0;
  };
  return { m, be, vmread, ram: m.ram };
}

function describeExit(e: VmExit): string {
  switch (e.kind) {
    case "io": return `io ${e.port.toString(16)}=${(e.data >>> 0).toString(16)}`;
    case "exception": return `exception ${e.vector} (${e.errorCode.toString(16)})`;
    case "unhandled": case "entry-failure": return `${e.kind}: ${e.message}`;
    default: return e.kind;
  }
}

/** The state the comparison covers: everything both sides hold (the guest's architectural registers). */
function arch(s: X86State) {
  return {
    gprs: [s.eax, s.ecx, s.edx, s.ebx, s.esp, s.ebp, s.esi, s.edi], eip: s.eip, eflags: s.eflags,
    segs: [s.es, s.cs, s.ss, s.ds, s.fs, s.gs, s.ldtr, s.tr].map((r) => ({ ...r })),
    cr0: s.cr0, cr2: s.cr2, cr3: s.cr3, gdtr: { ...s.gdtr }, idtr: { ...s.idtr },
  };
}

/** Runs the backend until anything but `io` (or `max` exits). */
function traceVmx(code: number[], exceptions: number, max: number) {
  const v = vmxMachine(code, exceptions);
  const exits: string[] = [];
  for (let i = 0; i < max; i++) {
    const e = v.be.run();
    exits.push(describeExit(e));
    if (e.kind !== "io" && e.kind !== "preempt") break;
  }
  return { ...v, exits, state: arch(v.be.getState(StateParts.All)) };
}

/**
 * The bare core on a copy of the image: port writes, then HLT or an exception in `exceptions`.
 * The backend reports an OUT or HLT exit before completing it (RIP on the instruction, KVM
 * style), so the core's state is taken before the instruction that ended the trace.
 */
function traceCore(code: number[], exceptions: number, max: number) {
  const mem = new FlatMemory(RAM);
  image(mem.bytes, code);
  const exits: string[] = [];
  const cpu = new X86Cpu(mem, {
    in: () => 0xffffffff,
    out: (port, size, value) => { exits.push(`io ${port.toString(16)}=${((value & [0, 0xff, 0xffff, 0, 0xffffffff][size]!) >>> 0).toString(16)}`); },
  });
  cpu.setState(pmState());
  cpu.intercepts.exceptionBitmap = exceptions;
  const s = resetState();
  for (let i = 0; i < 1000; i++) {
    cpu.getState(s);
    const r = cpu.run(1);
    if (r === CpuExitReason.Hlt || r === CpuExitReason.Halted) { exits.push("hlt"); break; }
    if (r === CpuExitReason.Exception) {
      const e = cpu.exit;
      exits.push(`exception ${e.vector} (${(e.hasErrorCode ? e.errorCode : 0).toString(16)})`);
      cpu.getState(s);
      break;
    }
    if (exits.length >= max) break;
  }
  return { exits, state: arch(s), ram: mem.bytes, exit: cpu.exit };
}

function both(code: number[], exceptions = 0, max = 20) {
  return { a: traceVmx(code, exceptions, max), n: traceCore(code, exceptions, max) };
}

function expectSame(t: ReturnType<typeof both>): void {
  expect(t.a.exits).toEqual(t.n.exits);
  expect(t.a.state).toEqual(t.n.state);
  const diff: string[] = [];
  t.a.ram.subarray(0, RAM).forEach((b, i) => { if (b !== t.n.ram[i]) diff.push(`${i.toString(16)}: ${b.toString(16)} vs ${t.n.ram[i]!.toString(16)}`); });
  expect(diff).toEqual([]);
}

describe("VmxBackend performs task switches (exit 9) as the core would", () => {
  it("far JMP to a TSS: the new task runs, the old one is saved and no longer busy", () => {
    const t = both([...jmpFar(SEL_B), ...AFTER], 0, 1);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_B.toString(16)}=b0`]);
    expect(t.a.state.segs[7]!.selector).toBe(SEL_B);
    expect(t.a.ram[GDT + SEL_A + 5]).toBe(0x89); // A available again (JMP clears busy)
    expect(t.a.ram[GDT + SEL_B + 5]).toBe(0x8b);
  });

  it("far CALL to a TSS nests (back link, NT) and the new task's IRET returns after the CALL", () => {
    const t = both([...callFar(SEL_B), ...AFTER]);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_B.toString(16)}=b0`, `io ${P_A.toString(16)}=0`, "hlt"]);
    expect(t.a.ram[TSS_B] | (t.a.ram[TSS_B + 1]! << 8)).toBe(SEL_A); // back link
    expect([t.a.state.segs[7]!.selector, t.a.state.eip]).toEqual([SEL_A, ORG + 7 + 2]);
    expect(t.a.state.eflags & 0x4000).toBe(0); // IRET cleared NT in the old task (SDM 7.4)
  });

  it("INT n through an IDT task gate: delivered exactly once, the old task resumes after the INT", () => {
    const t = both([0xcd, 0x40, ...AFTER]);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_B.toString(16)}=b0`, `io ${P_A.toString(16)}=0`, "hlt"]);
    expect(t.a.ram[COUNTER]).toBe(1);
    expect(t.a.state.eip).toBe(ORG + 2 + 2);
  });

  it("an exception with an error code through a task gate: the code is on the new task's stack", () => {
    // mov ax, 0ff8h; mov ds, ax: beyond the GDT limit, #GP(0FF8h) through IDT 13, a task gate to D.
    const t = both([0x66, 0xb8, 0xf8, 0x0f, 0x8e, 0xd8, ...AFTER]);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_D.toString(16)}=ff8`, `io ${P_A.toString(16)}=f8`, "hlt"]);
    expect(t.a.state.segs[7]!.selector).toBe(SEL_A);
    expect(t.a.state.eip).toBe(ORG + 4 + 2 + 2);
  });

  it("a bad TSS (limit below 67h) on a far JMP gives #TS(selector) in the old task, injected through the guest IDT", () => {
    const t = both([...jmpFar(SEL_BAD), ...AFTER]);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_TS_CODE.toString(16)}=${SEL_BAD.toString(16)}`, `io ${P_TS_EIP.toString(16)}=${ORG.toString(16)}`, "hlt"]);
    expect(t.a.state.segs[7]!.selector).toBe(SEL_A);
  });

  it("the #TS goes through entry injection: with exception 10 in the bitmap it is an exception exit at the JMP", () => {
    const t = both([...jmpFar(SEL_BAD), ...AFTER], 1 << TS);
    expectSame(t);
    expect(t.a.exits).toEqual([`exception ${TS} (${SEL_BAD.toString(16)})`]);
    expect(t.n.exit.vectoringValid).toBe(false);
    expect(t.a.state.eip).toBe(ORG);
  });

  it("INT n through a task gate to a bad TSS: #TS points at the INT (pushed EIP) and the INT is not delivered again", () => {
    const t = both([0xcd, 0x41, ...AFTER]);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_TS_CODE.toString(16)}=${SEL_BAD.toString(16)}`, `io ${P_TS_EIP.toString(16)}=${ORG.toString(16)}`, "hlt"]);
  });

  it("an intercepted #TS during an INT n's task gate: exception exit at the INT, the INT re-injected at the next run", () => {
    const t = both([0xcd, 0x41, ...AFTER], 1 << TS);
    expectSame(t);
    expect(t.a.exits).toEqual([`exception ${TS} (${SEL_BAD.toString(16)})`]);
    // The core names the INT as the vectoring event (SDM 27.2.4); the backend keeps it for re-injection.
    expect([t.n.exit.vectoringValid, t.n.exit.vectoringType, t.n.exit.vectoringVector]).toEqual([true, EventType.SoftwareInt, 0x41]);
    expect(t.a.state.eip).toBe(ORG);
    // The monitor repairs the TSS descriptor and runs on: the re-injected INT 41h (type 4, length 2)
    // now switches to a good task, which reports and halts.
    const { be, ram, vmread } = t.a;
    desc(ram, SEL_BAD, TSS_BAD, 0x67, 0x89, 0);
    tss(ram, TSS_BAD, CODE_E, 0xc000, 0);
    be.setState(be.getState(StateParts.All), StateParts.All);
    expect(be.run().kind).toBe("hlt");
    // The entry injected INT 41h as a software interrupt (type 4); the exit cleared the valid bit.
    expect(vmread(F.EntryIntrInfo)).toBe((4 << 8) | 0x41);
    expect(vmread(F.EntryInstrLen)).toBe(2);
    const s = be.getState(StateParts.All);
    expect([s.tr.selector, s.eip]).toEqual([SEL_BAD, CODE_E]) // at its HLT;
    expect(new DataView(ram.buffer, ram.byteOffset).getUint32(TSS_A + 0x20, true)).toBe(ORG + 2); // A resumes after the INT
  });

  it("a fault after the commit point (the new task's DS is a TSS) is taken in the new task", () => {
    const t = both([...jmpFar(SEL_E), ...AFTER]);
    expectSame(t);
    expect(t.a.exits).toEqual([`io ${P_TS_CODE.toString(16)}=${SEL_A.toString(16)}`, `io ${P_TS_EIP.toString(16)}=${CODE_E.toString(16)}`, "hlt"]);
    expect(t.a.state.segs[7]!.selector).toBe(SEL_E);
  });

  it("a #DF through a task gate to a bad TSS is a triple fault: shutdown", () => {
    // #GP's gate (13) goes to the bad TSS: #TS there; #TS's gate is made a task gate to the bad TSS too,
    // and #DF (8) as well: the fault while delivering #DF is a triple fault.
    const code = [0x66, 0xb8, 0xf8, 0x0f, 0x8e, 0xd8, ...AFTER];
    const v = vmxMachine(code);
    for (const vec of [8, TS, GP]) taskGate(v.ram, vec, SEL_BAD, 0);
    expect(v.be.run().kind).toBe("shutdown");
    expect(v.be.getState(StateParts.Tables).tr.selector).toBe(SEL_A);
  });

  it("without GuestMemory the exit stays unhandled, naming the task switch, and the switch has not begun", () => {
    const m = testMachine({ ramBytes: RAM });
    image(m.ram, [...jmpFar(SEL_B), ...AFTER]);
    const be = new VmxBackend(m.sys, m.caps);
    be.setState(pmState());
    const e = be.run();
    expect(e.kind).toBe("unhandled");
    if (e.kind === "unhandled") {
      expect(e.code & 0xffff).toBe(ExitReason.TaskSwitch);
      expect(e.message).toMatch(/task switch.*GuestMemory/);
    }
    expect(be.getState(StateParts.Tables).tr.selector).toBe(SEL_A);
  });
});

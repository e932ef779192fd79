import { describe, expect, it } from "vitest";
import { container } from "tsyringe";
import { ObjType, Rights, SysErr } from "../../../../src/kernel/api.js";
import { EventType } from "../../../../src/x86/types.js";
import { StateParts, Tokens, type VmExit } from "../../../../src/monitor/api.js";
import { realModeState } from "../../../../src/x86/state.js";
import { VmxBackend, VmxBackendError } from "./vmx-backend.js";
import { testMachine, type TestMachine } from "../testing/machine.js";
import { F, Pin, Proc2 } from "../vmcs-fields.js";
import { SOFT_CAPS } from "../kernel/caps.js";

const CODE = 0x1000;

function boot(m: TestMachine, code: number[], setup?: (s: ReturnType<typeof realModeState>) => void): VmxBackend {
  m.ram.set(code, CODE);
  const be = new VmxBackend(m.sys, m.caps);
  const s = realModeState(0, CODE);
  s.esp = 0x8000;
  setup?.(s);
  be.setState(s);
  return be;
}

/** Copy the fields of an exit (the backend reuses the object). */
const snap = (e: VmExit): Record<string, unknown> => ({ ...e });

describe("VmxBackend end to end (real kernel, soft engine)", () => {
  it("after STI; HLT the interrupt window opens right after the HLT: completing it ends the STI shadow", () => {
    const m = testMachine();
    const be = boot(m, [0xfb, 0xf4, 0x90, 0xeb, 0xfe]); // sti; hlt; nop; jmp $
    const e = be.run();
    expect(snap(e)).toEqual({ kind: "hlt", interruptsEnabled: true });
    be.setInterruptWindow(true);
    expect(be.run().kind).toBe("interrupt-window");
    expect(be.getState(StateParts.Basic).eip).toBe(CODE + 2); // before the NOP, not after it
  });

  it("reports the instructions the engine retired, from the kernel's guestControl words", () => {
    const m = testMachine();
    const gc = m.caps.guestRegs;
    // The monitor maps the whole guestControl area (GUEST_CONTROL_BYTES), not only the GPRs.
    const caps = { ...m.caps, guestRegs: new Uint32Array(gc.buffer, gc.byteOffset, 16) };
    m.ram.set([0x90, 0x90, 0x90, 0xe6, 0xe9, 0x90, 0xf4], CODE); // nop x3; out 0xe9, al; nop; hlt
    const be = new VmxBackend(m.sys, caps);
    be.setState(realModeState(0, CODE));
    expect(be.run().kind).toBe("io");
    expect(be.instructionsRetired()).toBe(3); // the intercepted OUT does not retire in the engine
    expect(be.run().kind).toBe("hlt");
    expect(be.instructionsRetired()).toBe(4);
    expect(() => boot(testMachine(), [0xf4]).instructionsRetired()).toThrow(/too short/);
  });

  it("runs real-mode code: OUT imm, IN with completion, OUT DX, CPUID with results, HLT, each advancing RIP", () => {
    const m = testMachine();
    const be = boot(m, [
      0xb0, 0x41,       // 1000 mov al, 'A'
      0xe6, 0xe9,       // 1002 out 0xe9, al
      0xe4, 0x60,       // 1004 in al, 0x60
      0xba, 0xf8, 0x03, // 1006 mov dx, 0x3f8
      0xef,             // 1009 out dx, ax
      0x0f, 0xa2,       // 100a cpuid
      0xf4,             // 100c hlt
      0xf4,             // 100d hlt
    ], (s) => { s.eax = 0x12345600; s.ecx = 7; });

    let e = be.run();
    expect(snap(e)).toEqual({ kind: "io", port: 0xe9, size: 1, in: false, data: 0x41 });
    expect(be.getState(StateParts.Basic).eip).toBe(0x1002);
    // The kernel's encoding (SDM 28.2.1 table 28-5): size-1 = 0, OUT, immediate operand, port in 31:16.
    expect(m.sys.vmread(m.caps.dispatcher, F.ExitQualification)).toBe(SysErr.Ok);
    expect(m.sys.ret.value >>> 0).toBe(((0xe9 << 16) | (1 << 6)) >>> 0);
    expect(m.sys.vmread(m.caps.dispatcher, F.ExitInstrLen)).toBe(SysErr.Ok);
    expect(m.sys.ret.value).toBe(2);

    e = be.run();
    expect(snap(e)).toEqual({ kind: "io", port: 0x60, size: 1, in: true, data: 0 });
    expect(be.getState(StateParts.Basic).eip).toBe(0x1004);
    if (e.kind === "io") e.data = 0x5a;

    e = be.run();
    expect(snap(e)).toEqual({ kind: "io", port: 0x3f8, size: 2, in: false, data: 0x565a });
    expect(m.sys.vmread(m.caps.dispatcher, F.ExitQualification)).toBe(SysErr.Ok);
    expect(m.sys.ret.value >>> 0).toBe(((0x3f8 << 16) | 1) >>> 0); // size-1 = 1, OUT, DX operand
    expect(be.getState(StateParts.Basic).eip).toBe(0x1009);

    e = be.run();
    expect(snap(e)).toMatchObject({ kind: "cpuid", leaf: 0x1234565a, subleaf: 7 });
    expect(be.getState(StateParts.Basic).eip).toBe(0x100a);
    if (e.kind === "cpuid") { e.eax = 1; e.ebx = 2; e.ecx = 3; e.edx = 4; }

    e = be.run();
    expect(snap(e)).toEqual({ kind: "hlt", interruptsEnabled: false });
    const st = be.getState();
    expect(st.eip).toBe(0x100c);
    expect([st.eax, st.ebx, st.ecx, st.edx]).toEqual([1, 2, 3, 4]);
    expect(st.esp).toBe(0x8000);

    e = be.run();
    expect(e.kind).toBe("hlt");
    expect(be.getState(StateParts.Basic).eip).toBe(0x100d);
  });

  it("applies a setState made after an exit first, then the exit's completion", () => {
    const m = testMachine();
    const be = boot(m, [0xe4, 0x60, 0xf4, 0xf4, 0xf4]); // 1000 in al,0x60; 1002 hlt; 1003 hlt; 1004 hlt
    const e = be.run();
    expect(e.kind).toBe("io");
    if (e.kind === "io") e.data = 0x99;
    const s = be.getState();
    s.eax = 0xaabbcc00;
    s.eip = 0x1001; // the completion then adds the IN's length (2): the guest resumes at 1003
    be.setState(s, StateParts.Gprs | StateParts.Basic);
    expect(be.run().kind).toBe("hlt");
    const after = be.getState();
    expect(after.eax).toBe(0xaabbcc99);
    expect(after.eip).toBe(0x1003);
  });

  it("reports HLT with IF set as interruptsEnabled and the timeslice end as preempt", () => {
    const m = testMachine({ timeslice: 500 });
    const be = boot(m, [0xfb, 0xf4, 0xeb, 0xfe], (s) => { s.eflags = 0x202; }); // sti; hlt; jmp $
    expect(snap(be.run())).toEqual({ kind: "hlt", interruptsEnabled: true });
    expect(be.run().kind).toBe("preempt");
    expect(be.getState(StateParts.Basic).eip).toBe(0x1002);
  });

  it("exits for the interrupt window at once when the guest can take an interrupt, and injects through the IVT", () => {
    const m = testMachine();
    const be = boot(m, [0xeb, 0xfe], (s) => { s.eflags = 0x202; }); // jmp $
    new DataView(m.ram.buffer, m.ram.byteOffset).setUint32(0x20 * 4, 0x00002000, true); // IVT[0x20] = 0000:2000
    m.ram[0x2000] = 0xf4; // hlt
    be.setInterruptWindow(true);
    expect(be.run().kind).toBe("interrupt-window");
    be.setInterruptWindow(false);
    be.inject({ type: EventType.ExtInt, vector: 0x20 });
    expect(snap(be.run())).toEqual({ kind: "hlt", interruptsEnabled: false }); // IVT delivery clears IF
    const s = be.getState();
    expect(s.eip).toBe(0x2000);
    expect(s.esp).toBe(0x8000 - 6); // FLAGS, CS, IP pushed
  });

  it("exits for the interrupt window once the guest opens it (after the STI shadow), not before", () => {
    const m = testMachine();
    const be = boot(m, [0xfb, 0x90, 0xeb, 0xfe]); // 1000 sti; 1001 nop; 1002 jmp $ (IF = 0 at entry)
    be.setInterruptWindow(true);
    expect(be.run().kind).toBe("interrupt-window");
    expect(be.getState(StateParts.Basic).eip).toBe(0x1002);
  });

  it("turns a triple fault into a shutdown exit", () => {
    const m = testMachine();
    const be = boot(m, [0xcc], (s) => { s.idtr.limit = 0; }); // int3 with an empty IVT
    expect(snap(be.run())).toEqual({ kind: "shutdown", reason: "triple-fault" });
  });

  it("exits for an exception set in the exception bitmap with its vector", () => {
    const m = testMachine();
    const be = boot(m, [0x0f, 0x0b]); // ud2
    expect(m.sys.vmwrite(m.caps.dispatcher, F.ExceptionBitmap, 1 << 6)).toBe(SysErr.Ok);
    expect(snap(be.run())).toEqual({ kind: "exception", vector: 6, errorCode: 0, hasErrorCode: false });
  });

  it("returns entry-failure 33 for bad guest state and launches again once it is fixed", () => {
    const m = testMachine();
    const be = boot(m, [0xf4], (s) => { s.eflags = 0x0a; }); // RFLAGS bit 3 is reserved
    const e = be.run();
    expect(e).toMatchObject({ kind: "entry-failure", code: 33 });
    const s = be.getState(StateParts.Basic);
    s.eflags = 2;
    be.setState(s, StateParts.Basic);
    expect(be.run().kind).toBe("hlt");
  });

  it("returns entry-failure with VM-instruction error 7 when a required control is cleared", () => {
    const m = testMachine();
    const be = boot(m, [0xf4]);
    expect(m.sys.vmread(m.caps.dispatcher, F.PinControls)).toBe(SysErr.Ok);
    expect(m.sys.vmwrite(m.caps.dispatcher, F.PinControls, m.sys.ret.value & ~Pin.ExtIntExiting)).toBe(SysErr.Ok);
    expect(be.run()).toMatchObject({ kind: "entry-failure", code: 7 });
  });

  it("reports string I/O as unhandled, naming it", () => {
    const m = testMachine();
    const be = boot(m, [0x6e]); // outsb
    const e = be.run();
    expect(e.kind).toBe("unhandled");
    if (e.kind === "unhandled") {
      expect(e.code).toBe(30);
      expect(e.message).toMatch(/string I\/O/);
    }
  });

  it("reuses one exit object per kind", () => {
    const m = testMachine();
    const be = boot(m, [0xe6, 0x80, 0xe6, 0x81]); // out 0x80,al; out 0x81,al
    const a = be.run();
    const b = be.run();
    expect(b).toBe(a);
    expect(b).toMatchObject({ port: 0x81 });
  });

  it("cannot set up a guest through a DCB capability without the Write right (CapNoRight)", () => {
    const m = testMachine({ dcbRights: Rights.Read | Rights.Grant });
    let err: unknown;
    try { new VmxBackend(m.sys, m.caps); } catch (x) { err = x; }
    expect(err).toBeInstanceOf(VmxBackendError);
    expect((err as VmxBackendError).code).toBe(SysErr.CapNoRight);
    // The kernel needs Write on the DCB before any VMX call: setup is where the flow stops.
    expect((err as VmxBackendError).syscall).toBe("dispatcherSetupGuest");
  });

  it("a vmwrite through a Read-only DCB capability fails with CapNoRight, while vmread works", () => {
    const m = testMachine();
    const be = boot(m, [0xf4]);
    expect(be.run().kind).toBe("hlt");
    expect(m.sys.capMint(m.caps.dispatcher, Rights.Read)).toBe(SysErr.Ok);
    const readOnly = m.sys.ret.cap;
    // Same guest, same VMCS (current): reads through the copy succeed, writes do not.
    expect(m.sys.vmread(readOnly, F.GuestRip)).toBe(SysErr.Ok);
    expect(m.sys.ret.value).toBe(0x1000);
    expect(m.sys.vmwrite(readOnly, F.GuestRip, 0x2000)).toBe(SysErr.CapNoRight);
    expect(m.sys.vmread(readOnly, F.GuestRip)).toBe(SysErr.Ok);
    expect(m.sys.ret.value).toBe(0x1000);
  });

  it("resolves through tsyringe with explicit tokens", () => {
    const m = testMachine();
    const child = container.createChildContainer();
    child.register(Tokens.Syscalls, { useValue: m.sys });
    child.register(Tokens.MachineCaps, { useValue: m.caps });
    const be = child.resolve(VmxBackend);
    expect(be.id).toBe("vmx");
    const missing: number[] = [];
    const t = (Reflect.getOwnMetadata("injectionTokens", VmxBackend) ?? {}) as Record<string, unknown>;
    for (let i = 0; i < VmxBackend.length; i++) if (!(i in t)) missing.push(i);
    expect(missing).toEqual([]);
  });
});

describe("VmxBackend bring-up through the syscalls", () => {
  it("executes VMXON itself and reads its capabilities through rdmsrCap, not from SOFT_CAPS", () => {
    const caps = { ...SOFT_CAPS, revision: 0x5a5a5a5, proc2: { mustBe1: 0, mayBe1: Proc2.EnableEpt | Proc2.UnrestrictedGuest | 1 << 5 } };
    const m = testMachine({ vmxCaps: caps });
    expect(m.ext.vmxOperation).toBe(false);
    const be = new VmxBackend(m.sys, m.caps);
    expect(m.ext.vmxOperation).toBe(true);
    expect(be.caps).toEqual(caps);
    expect(new DataView(m.ext.currentVmxonRegion!.bytes.buffer).getUint32(0, true)).toBe(0x5a5a5a5);
  });

  it("accepts a kernel already in VMX operation (VMfailValid 15) for a second backend", () => {
    const m = testMachine();
    new VmxBackend(m.sys, m.caps);
    expect(m.sys.ramRetype(m.caps.ram, ObjType.Dispatcher, 4096)).toBe(SysErr.Ok);
    const dispatcher = m.sys.ret.cap;
    expect(m.sys.ramRetype(m.caps.ram, ObjType.Frame, 4096)).toBe(SysErr.Ok);
    const guestControl = m.sys.ret.cap;
    expect(() => new VmxBackend(m.sys, { ...m.caps, dispatcher, guestControl })).not.toThrow();
    expect(m.ext.vmxOperation).toBe(true);
  });

  it("throws VmxBackendError naming vmxon when the host has VMX disabled", () => {
    const m = testMachine({ host: { cpuidVmx: false } });
    expect(() => new VmxBackend(m.sys, m.caps)).toThrow(/vmxon failed with no-extension/);
  });
});

import { describe, expect, it } from "vitest";
import { StateParts } from "../../../../src/monitor/api.js";
import { EventType } from "../../../../src/x86/types.js";
import { BROKEN_ROWS } from "../kernel/vmrun-checks.fixtures.js";
import { F, IoioInfo, SvmExit } from "../vmcb.js";
import { ORG, expectKind, machine } from "../svm-machine.fixtures.js";

describe("SvmBackend through the real kernel (soft engine)", () => {
  it("exits for OUT, IN, CPUID, HLT in order with APM EXITINFO and completes them at the next run", () => {
    const m = machine([
      0xb0, 0x41, // mov al, 'A'
      0xe6, 0xe9, // out 0xe9, al
      0xe4, 0x60, // in al, 0x60
      0x0f, 0xa2, // cpuid
      0xf4,       // hlt
      0xeb, 0xfe, // jmp $
    ]);
    const b = m.backend, v = b.vmcb;

    const out = expectKind(b.run(), "io");
    expect(out).toMatchObject({ port: 0xe9, size: 1, in: false, data: 0x41 });
    expect(v.exitCode()).toBe(SvmExit.IOIO);
    expect(v.read(F.EXITINFO1)).toBe(((0xe9 << IoioInfo.PORT_SHIFT) | IoioInfo.SZ8 | IoioInfo.A16) >>> 0);
    expect(v.read(F.EXITINFO2)).toBe(ORG + 4);
    expect(v.read(F.NRIP)).toBe(ORG + 4);
    expect(b.getState(StateParts.Basic).eip).toBe(ORG + 2);

    const inn = expectKind(b.run(), "io");
    expect(inn).toMatchObject({ port: 0x60, size: 1, in: true });
    expect(v.read(F.EXITINFO1)).toBe(((0x60 << IoioInfo.PORT_SHIFT) | IoioInfo.TYPE_IN | IoioInfo.SZ8 | IoioInfo.A16) >>> 0);
    expect(v.read(F.EXITINFO2)).toBe(ORG + 6);
    expect(b.getState(StateParts.Basic).eip).toBe(ORG + 4);
    inn.data = 0x5a;
    // A setState after the exit does not cancel the completion: state first, then completion.
    const s = b.getState(StateParts.Gprs);
    s.ebx = 0x1234;
    b.setState(s, StateParts.Gprs);

    const cpuid = expectKind(b.run(), "cpuid");
    expect(cpuid.leaf).toBe(0x5a); // AL = the IN data, committed at this run
    expect(v.exitCode()).toBe(SvmExit.CPUID);
    expect(v.read(F.NRIP)).toBe(ORG + 8);
    const st = b.getState(StateParts.Gprs | StateParts.Basic);
    expect(st.eip).toBe(ORG + 6);
    expect(st.ebx).toBe(0x1234);
    Object.assign(cpuid, { eax: 0x11111111, ebx: 0x22222222, ecx: 0x33333333, edx: 0x44444444 });

    const hlt = expectKind(b.run(), "hlt");
    expect(hlt.interruptsEnabled).toBe(false);
    expect(v.exitCode()).toBe(SvmExit.HLT);
    expect(v.read(F.NRIP)).toBe(ORG + 9);
    const h = b.getState(StateParts.Gprs | StateParts.Basic);
    expect([h.eax, h.ebx, h.ecx, h.edx, h.eip]).toEqual([0x11111111, 0x22222222, 0x33333333, 0x44444444, ORG + 8]);

    // HLT completed at this run (RIP past it); the jmp $ spins to the end of the timeslice.
    expectKind(b.run(), "preempt");
    expect(v.exitCode()).toBe(SvmExit.INTR);
    expect(b.getState(StateParts.Basic).eip).toBe(ORG + 9);
  });

  it("reuses one exit object per kind", () => {
    const m = machine([0xe6, 0x80, 0xe6, 0x81, 0xeb, 0xfe]);
    const first = m.backend.run();
    const second = m.backend.run();
    expect(second).toBe(first);
    expect((second as { port: number }).port).toBe(0x81);
  });

  it("writes 16-bit IN data into AX and keeps the upper half of EAX", () => {
    const m = machine([0x66, 0xb8, 0x78, 0x56, 0x34, 0x12, 0xe5, 0x70, 0xf4]); // mov eax,0x12345678; in ax,0x70; hlt
    const io = expectKind(m.backend.run(), "io");
    expect(io).toMatchObject({ port: 0x70, size: 2, in: true });
    expect(m.backend.vmcb.read(F.EXITINFO1) & (IoioInfo.SZ16 | IoioInfo.TYPE_IN)).toBe(IoioInfo.SZ16 | IoioInfo.TYPE_IN);
    io.data = 0xbeef;
    expectKind(m.backend.run(), "hlt");
    expect(m.backend.getState(StateParts.Gprs).eax).toBe(0x1234beef);
  });

  it("returns unhandled for string I/O, naming it", () => {
    const m = machine([0x6e, 0xf4]); // outsb
    const e = expectKind(m.backend.run(), "unhandled");
    expect(e.code).toBe(SvmExit.IOIO);
    expect(e.message).toMatch(/string I\/O/);
    expect(m.backend.vmcb.read(F.EXITINFO1) & IoioInfo.STR).toBe(IoioInfo.STR);
  });

  it("delivers an injected external interrupt through the real-mode IVT", () => {
    const handler = 0x7e00;
    const m = machine([0xfb, 0xeb, 0xfe]); // sti; jmp $
    m.ram.set([0xb0, 0x49, 0xe6, 0xe9, 0xcf], handler); // mov al,'I'; out 0xe9,al; iret
    m.ram[0x20 * 4] = handler & 0xff;
    m.ram[0x20 * 4 + 1] = handler >> 8;
    m.backend.inject({ type: EventType.ExtInt, vector: 0x20 });
    const io = expectKind(m.backend.run(), "io");
    expect(io).toMatchObject({ port: 0xe9, in: false, data: 0x49 });
    expect(m.backend.getState(StateParts.Basic).eip).toBe(handler + 2);
    expect(m.backend.vmcb.read(F.EVENTINJ)).toBe(0); // consumed
  });

  it("exits interrupt-window once the guest can take an interrupt (after STI and its shadow)", () => {
    const m = machine([0x90, 0xfb, 0x90, 0x90, 0xeb, 0xfe]); // nop; sti; nop; nop; jmp $
    m.backend.setInterruptWindow(true);
    expectKind(m.backend.run(), "interrupt-window");
    expect(m.backend.vmcb.exitCode()).toBe(SvmExit.VINTR);
    // IF=1 after STI at ORG+1, blocked for one more instruction: the window opens at ORG+3.
    expect(m.backend.getState(StateParts.Basic).eip).toBe(ORG + 3);
    m.backend.setInterruptWindow(false);
    expectKind(m.backend.run(), "preempt");
  });

  it("after STI; HLT the interrupt window opens right after the HLT: completing it ends the STI shadow", () => {
    const m = machine([0xfb, 0xf4, 0x90, 0xeb, 0xfe]); // sti; hlt; nop; jmp $
    expect(expectKind(m.backend.run(), "hlt").interruptsEnabled).toBe(true);
    m.backend.setInterruptWindow(true);
    expectKind(m.backend.run(), "interrupt-window");
    expect(m.backend.getState(StateParts.Basic).eip).toBe(ORG + 2); // before the NOP, not after it
  });

  it("exits for an intercepted exception with vector and error code", () => {
    const m = machine([0x31, 0xc9, 0xf7, 0xf1, 0xf4]); // xor cx,cx; div cx -> #DE
    m.backend.vmcb.write(F.INTERCEPT_EXCEPTIONS, 1 << 0);
    const e = expectKind(m.backend.run(), "exception");
    expect(e).toMatchObject({ vector: 0, errorCode: 0, hasErrorCode: false });
    expect(m.backend.vmcb.exitCode()).toBe(SvmExit.EXCP_BASE);
    expect(m.backend.getState(StateParts.Basic).eip).toBe(ORG + 2); // the faulting DIV
  });

  it("exits shutdown on a triple fault", () => {
    const m = machine([0xcc]); // int3 with an empty IVT limit: #GP -> #DF -> shutdown
    const s = m.backend.getState();
    s.idtr.limit = 0;
    m.backend.setState(s, StateParts.Tables);
    const e = expectKind(m.backend.run(), "shutdown");
    expect(e.reason).toBe("triple-fault");
    expect(m.backend.vmcb.exitCode()).toBe(SvmExit.SHUTDOWN);
  });

  it("sets up the VMCB as the APM requires (intercepts, ASID 1, NP_ENABLE, N_CR3, EFER.SVME)", () => {
    const m = machine([0xf4]);
    const v = m.backend.vmcb;
    expect(v.read(F.GUEST_ASID)).toBe(1);
    expect(v.read(F.NP_CONTROL) & 1).toBe(1);
    expect(v.read(F.N_CR3)).not.toBe(0);
    expect(v.read(F.EFER) & (1 << 12)).not.toBe(0);
    expect(v.read(F.INTERCEPT_MISC2) & 1).toBe(1);
    expect(m.backend.getState(StateParts.Control).efer & (1 << 12)).toBe(0); // the guest's view hides SVME
  });
});

describe("VMRUN with an illegal VMCB (APM 15.5.1) through the real kernel", () => {
  // mov byte [0x600], 1; hlt — a marker that shows whether any guest instruction ran.
  const PROGRAM = [0xc6, 0x06, 0x00, 0x06, 0x01, 0xf4];
  const rows = BROKEN_ROWS.filter((r) => r.caps === undefined);

  it.each(rows)("breaking $check gives VMEXIT_INVALID naming it, and runs nothing", (row) => {
    const m = machine(PROGRAM);
    row.breakIt(m.backend.vmcb);
    const e = expectKind(m.backend.run(), "entry-failure");
    expect(e.message).toContain(row.check);
    expect(m.backend.vmcb.read64(F.EXITCODE)).toBe(0xffffffffffffffffn);
    expect(m.ram[0x600]).toBe(0);
    expect(m.backend.getState(StateParts.Basic).eip).toBe(ORG);
  });

  it("the same machine runs once the rule is satisfied (the fixture breaks only that rule)", () => {
    const m = machine(PROGRAM);
    expectKind(m.backend.run(), "hlt");
    expect(m.ram[0x600]).toBe(1);
  });
});

// Events through the real kernel: exception-bitmap exits with their interruption
// information, IDT-vectoring information and its re-injection, NMI injection, NMI exiting,
// virtual NMIs and the NMI window, host interrupts with acknowledge-on-exit, INIT/SIPI and
// the wait-for-SIPI state, the monitor trap flag, the VMX-preemption timer, and the
// MONITOR/MWAIT/RDTSCP/XSETBV/descriptor-table exits (SDM Vol. 3C 25.3, 26.2, 26.5, 26.7,
// 27.6, 28.2). A real-mode (unrestricted) guest with its IVT at 0.
import { describe, expect, it } from "vitest";
import { GuestControlWord, ObjType, PendingEvent, SysErr } from "../../../../src/kernel/api.js";
import { guestControlWords, guestEntry, testMachine, withVmcs, writeRealModeGuest } from "../testing/machine.js";
import { ExitCtl, ExitReason, F, IntrInfo, Pin, Proc, Proc2 } from "../vmcs-fields.js";
import { SOFT_CAPS } from "./caps.js";
import { HOST_TIMER_VECTOR, pfExits } from "./vmx-extension.js";

const CODE = 0x1000;
/** Every IVT entry points at 0000:HANDLERS + 4*vector, a HLT there. */
const HANDLERS = 0x3000;
const STACK = 0x8000;
const V = IntrInfo.Valid;
const HLT = 0xf4;

interface Setup {
  pin?: number;
  proc?: number;
  proc2?: number;
  exit?: number;
  cr0?: number;
  timeslice?: number;
  regs?: Partial<Record<"eax" | "ecx" | "edx" | "ebx", number>>;
  fields?: readonly (readonly [number, number])[];
}

/** A guest at 0000:1000 running `code` (then HLT); entries with `enter()`, which reads back the exit fields. */
function machine(code: number[], setup: Setup = {}) {
  const m = testMachine({ timeslice: setup.timeslice ?? 10_000 });
  const { sys } = m;
  const { dcb } = withVmcs(m);
  const gc = guestControlWords(m);
  for (let v = 0; v < 256; v++) {
    m.ram[v * 4] = (HANDLERS + v * 4) & 0xff; m.ram[v * 4 + 1] = (HANDLERS + v * 4) >> 8;
    m.ram[HANDLERS + v * 4] = HLT;
  }
  m.ram.set(code, CODE);
  m.ram[CODE + code.length] = HLT;
  const w = (enc: number, v: number) => expect(sys.vmwrite(dcb, enc, v)).toBe(SysErr.Ok);
  const rd = (enc: number) => { expect(sys.vmread(dcb, enc)).toBe(SysErr.Ok); return sys.ret.value >>> 0; };
  w(F.PinControls, SOFT_CAPS.pin.mustBe1 | (setup.pin ?? 0));
  w(F.ProcControls, SOFT_CAPS.proc.mustBe1 | Proc.HltExiting | Proc.ActivateSecondary | (setup.proc ?? 0));
  w(F.Proc2Controls, Proc2.EnableEpt | Proc2.UnrestrictedGuest | (setup.proc2 ?? 0));
  w(F.ExitControls, SOFT_CAPS.exit.mustBe1 | (setup.exit ?? 0));
  w(F.EntryControls, SOFT_CAPS.entry.mustBe1);
  writeRealModeGuest(w, CODE, setup.cr0 ?? 0x10); w(F.GuestRsp, STACK);
  for (const [enc, v] of setup.fields ?? []) w(enc, v);
  const r = setup.regs ?? {};
  gc[0] = r.eax ?? 0; gc[1] = r.ecx ?? 0; gc[2] = r.edx ?? 0; gc[3] = r.ebx ?? 0;
  const entry = guestEntry(m, dcb);
  const enter = () => {
    entry();
    return {
      reason: rd(F.ExitReason), qual: rd(F.ExitQualification), len: rd(F.ExitInstrLen), info: rd(F.ExitInstrInfo),
      // Signed, as the IntrInfo constants they are compared with.
      intr: rd(F.ExitIntrInfo) | 0, intrErr: rd(F.ExitIntrErrorCode), vect: rd(F.IdtVectoringInfo) | 0,
      vectErr: rd(F.IdtVectoringErrorCode), rip: rd(F.GuestRip), interruptibility: rd(F.GuestInterruptibility),
      activity: rd(F.GuestActivity),
    };
  };
  return { m, w, rd, enter, gc, ram: m.ram };
}

describe("exception-bitmap exits (SDM 25.6.3, 28.2.2)", () => {
  it("a #UD in the bitmap exits with type 3, no error code, length 0, RIP on the instruction; otherwise it is delivered", () => {
    const g = machine([0x0f, 0x0b], { fields: [[F.ExceptionBitmap, 1 << 6]] });
    const e = g.enter();
    expect([e.reason, e.intr, e.len, e.rip, e.vect]).toEqual([ExitReason.ExceptionOrNmi, V | (3 << 8) | 6, 0, CODE, 0]);
    const d = machine([0x0f, 0x0b]).enter();
    expect([d.reason, d.rip]).toEqual([ExitReason.Hlt, HANDLERS + 6 * 4]);
  });

  it("a single-step #DB in the bitmap exits with BS in the qualification and leaves DR6 alone (SDM 27.1, table 28-1)", () => {
    // inc bx (TF set: #DB trap after it); mov eax, dr6; then HLT.
    const g = machine([0x43, 0x0f, 0x21, 0xf0], { fields: [[F.ExceptionBitmap, 1 << 1], [F.GuestRflags, 0x102]] });
    const e = g.enter();
    expect([e.reason, e.intr, e.qual, e.rip]).toEqual([ExitReason.ExceptionOrNmi, V | (3 << 8) | 1, 0x4000, CODE + 1]);
    // The monitor drops the #DB and clears TF: the guest reads DR6 as it was, without BS.
    g.w(F.GuestRflags, 2);
    g.w(F.ExceptionBitmap, 0);
    expect(g.enter().reason).toBe(ExitReason.Hlt);
    expect(g.gc[0]! >>> 0).toBe(0xffff0ff0);
  });

  it("an instruction-breakpoint #DB reports B0 in the qualification; DR6.B0 stays clear", () => {
    // mov eax, CODE+19; mov dr0, eax; mov eax, 401h (L0, execute, 1 byte); mov dr7, eax; nop; inc bx (19); mov eax, dr6
    const code = [0x66, 0xb8, (CODE + 19) & 0xff, (CODE + 19) >> 8, 0, 0, 0x0f, 0x23, 0xc0,
      0x66, 0xb8, 0x01, 0x04, 0, 0, 0x0f, 0x23, 0xf8, 0x90, 0x43, 0x0f, 0x21, 0xf0];
    expect(code[19]).toBe(0x43);
    const g = machine(code, { fields: [[F.ExceptionBitmap, 1 << 1]] });
    const e = g.enter();
    expect([e.reason, e.intr, e.qual, e.rip]).toEqual([ExitReason.ExceptionOrNmi, V | (3 << 8) | 1, 0x1, CODE + 19]);
    // Resume with RF so the breakpoint does not fire again (SDM 17.3.1.1).
    g.w(F.ExceptionBitmap, 0);
    g.w(F.GuestRflags, 0x10002);
    expect(g.enter().reason).toBe(ExitReason.Hlt);
    expect(g.gc[0]! & 0xf).toBe(0);
  });

  it("INT3 with bit 3 exits as a software exception (type 6) with its length", () => {
    const e = machine([0xcc], { fields: [[F.ExceptionBitmap, 1 << 3]] }).enter();
    expect([e.reason, e.intr, e.len, e.rip]).toEqual([ExitReason.ExceptionOrNmi, V | (6 << 8) | 3, 1, CODE]);
  });

  it.each([
    // bitmap bit 14, PFEC, MASK, MATCH, exits
    [1, 0x2, 0, 0, true], [0, 0x2, 0, 0, false],
    [1, 0x2, 0x2, 0x2, true], [1, 0x0, 0x2, 0x2, false],
    [0, 0x0, 0x2, 0x2, true], [0, 0x2, 0x2, 0x2, false],
    [1, 0x3, 0x1, 0x3, false], [0, 0x3, 0x1, 0x3, true],
  ])("#PF with bit 14 = %i, PFEC %i, mask %i, match %i exits: %s (SDM 26.2)", (bit, pfec, mask, match, exits) => {
    expect(pfExits(bit << 14, pfec, mask, match)).toBe(exits);
  });
});

describe("IDT-vectoring information (SDM 27.2.4) and re-injection", () => {
  it("a #GP raised delivering INT 80h reports the INT as type 4 with its length; re-injecting it completes the INT", () => {
    // IDTR limit 0x3f: vector 80h is beyond it (#GP), vector 13 inside.
    const g = machine([0xcd, 0x80], { fields: [[F.ExceptionBitmap, 1 << 13], [F.GuestIdtrLimit, 0x3f]] });
    const e = g.enter();
    expect([e.reason, e.intr & (V | 0x7ff), e.vect, e.len, e.rip]).toEqual([
      // Real mode pushes no error codes (SDM 20.1.4).
      ExitReason.ExceptionOrNmi, V | (3 << 8) | 13, V | (4 << 8) | 0x80, 2, CODE,
    ]);
    // The monitor fixes the cause and re-injects the vectoring event (what the backend does).
    g.w(F.GuestIdtrLimit, 0x3ff); g.w(F.ExceptionBitmap, 0);
    g.w(F.EntryIntrInfo, e.vect >>> 0); g.w(F.EntryInstrLen, e.len);
    const r = g.enter();
    expect([r.reason, r.rip]).toEqual([ExitReason.Hlt, HANDLERS + 0x80 * 4]);
    // The INT's return address is the next instruction.
    expect(g.ram[STACK - 6]! | (g.ram[STACK - 5]! << 8)).toBe(CODE + 2);
  });

  it("an exit while delivering an injected event reports it as vectoring information, without running the guest", () => {
    const g = machine([0x90], { fields: [[F.ExceptionBitmap, 1 << 13], [F.GuestIdtrLimit, 0x3f], [F.EntryIntrInfo, V | 0x80], [F.GuestRflags, 0x202]] });
    const e = g.enter();
    expect([e.reason, e.intr & 0xff, e.vect, e.rip]).toEqual([ExitReason.ExceptionOrNmi, 13, V | 0x80, CODE]);
  });

  it("for an injected software interrupt, the exit reports the VM-entry instruction length and RIP stays on the INT", () => {
    const g = machine([0xcd, 0x80], {
      fields: [[F.ExceptionBitmap, 1 << 13], [F.GuestIdtrLimit, 0x3f], [F.EntryIntrInfo, V | (4 << 8) | 0x80], [F.EntryInstrLen, 2]],
    });
    const e = g.enter();
    expect([e.reason, e.vect, e.len, e.rip]).toEqual([ExitReason.ExceptionOrNmi, V | (4 << 8) | 0x80, 2, CODE]);
  });
});

describe("NMIs (SDM 25.3, 26.2, 26.7.6, 27.6)", () => {
  const iretFrame = (g: ReturnType<typeof machine>, ip: number) => {
    // An IRET frame at SS:SP-6 returning to 0000:ip with FLAGS 2.
    g.ram.set([ip & 0xff, ip >> 8, 0, 0, 2, 0], STACK - 6);
    g.w(F.GuestRsp, STACK - 6);
  };

  it("an injected NMI (type 2) runs the vector-2 handler and sets blocking by NMI", () => {
    const e = machine([0x90], { fields: [[F.EntryIntrInfo, V | (2 << 8) | 2]] }).enter();
    expect([e.reason, e.rip, e.interruptibility & 8]).toEqual([ExitReason.Hlt, HANDLERS + 8, 8]);
  });

  it("a posted NMI with NMI exiting exits before any instruction with type 2 vector 2, and is consumed", () => {
    const g = machine([0x90], { pin: Pin.NmiExiting });
    g.gc[GuestControlWord.PendingEvents] = PendingEvent.Nmi;
    const e = g.enter();
    expect([e.reason, e.intr, e.rip]).toEqual([ExitReason.ExceptionOrNmi, V | (2 << 8) | 2, CODE]);
    expect(g.gc[GuestControlWord.PendingEvents]).toBe(0);
  });

  it("a posted NMI without NMI exiting is delivered through the guest IVT", () => {
    const g = machine([0x90]);
    g.gc[GuestControlWord.PendingEvents] = PendingEvent.Nmi;
    const e = g.enter();
    expect([e.reason, e.rip, e.interruptibility & 8]).toEqual([ExitReason.Hlt, HANDLERS + 8, 8]);
    expect(g.gc[GuestControlWord.PendingEvents]).toBe(0);
  });

  it("blocking by NMI holds a posted NMI until IRET (without virtual NMIs)", () => {
    const g = machine([0xcf], { pin: Pin.NmiExiting, fields: [[F.GuestInterruptibility, 8]] });
    iretFrame(g, 0x1100);
    g.ram[0x1100] = HLT;
    g.gc[GuestControlWord.PendingEvents] = PendingEvent.Nmi;
    const e = g.enter();
    expect([e.reason, e.intr, e.rip, e.interruptibility & 8]).toEqual([ExitReason.ExceptionOrNmi, V | (2 << 8) | 2, 0x1100, 0]);
  });

  it("with virtual NMIs, virtual-NMI blocking does not hold a real NMI; NMI-window exiting waits for IRET", () => {
    const g = machine([0xcf], { pin: Pin.NmiExiting | Pin.VirtualNmis, fields: [[F.GuestInterruptibility, 8]] });
    g.gc[GuestControlWord.PendingEvents] = PendingEvent.Nmi;
    expect(g.enter().reason).toBe(ExitReason.ExceptionOrNmi);
    const w = machine([0xcf], { pin: Pin.NmiExiting | Pin.VirtualNmis, proc: Proc.NmiWindow, fields: [[F.GuestInterruptibility, 8]] });
    iretFrame(w, 0x1100);
    const e = w.enter();
    expect([e.reason, e.rip, e.interruptibility]).toEqual([ExitReason.NmiWindow, 0x1100, 0]);
    // No blocking: the window is open at entry.
    const open = machine([0x90], { pin: Pin.NmiExiting | Pin.VirtualNmis, proc: Proc.NmiWindow }).enter();
    expect([open.reason, open.rip]).toEqual([ExitReason.NmiWindow, CODE]);
  });
});

describe("host interrupts (SDM 25.6.1, 28.2.2)", () => {
  it("the timeslice ends with exit 1; with acknowledge interrupt on exit, the interruption information names the timer vector", () => {
    const plain = machine([0xeb, 0xfe], { timeslice: 500 }).enter(); // jmp $
    expect([plain.reason, plain.intr]).toEqual([ExitReason.ExternalInterrupt, 0]);
    const ack = machine([0xeb, 0xfe], { timeslice: 500, exit: ExitCtl.AckIntOnExit }).enter();
    expect([ack.reason, ack.intr]).toEqual([ExitReason.ExternalInterrupt, V | HOST_TIMER_VECTOR]);
  });
});

describe("INIT and SIPI (SDM 26.2, 25.4.2)", () => {
  it("a posted INIT exits with reason 3 before any instruction", () => {
    const g = machine([0x90]);
    g.gc[GuestControlWord.PendingEvents] = PendingEvent.Init;
    const e = g.enter();
    expect([e.reason, e.qual, e.rip]).toEqual([ExitReason.InitSignal, 0, CODE]);
    expect(g.gc[GuestControlWord.PendingEvents]).toBe(0);
  });

  it("in wait-for-SIPI a SIPI exits with its vector as qualification; without one the guest stays waiting", () => {
    const g = machine([0x90], { fields: [[F.GuestActivity, 3]], timeslice: 100 });
    const idle = g.enter();
    expect([idle.reason, idle.activity, idle.rip]).toEqual([ExitReason.ExternalInterrupt, 3, CODE]);
    g.gc[GuestControlWord.PendingEvents] = PendingEvent.Sipi | (0x12 << PendingEvent.SipiVectorShift);
    const e = g.enter();
    expect([e.reason, e.qual, e.activity]).toEqual([ExitReason.Sipi, 0x12, 3]);
  });

  it("a SIPI outside wait-for-SIPI is discarded", () => {
    const g = machine([0x90]);
    g.gc[GuestControlWord.PendingEvents] = PendingEvent.Sipi | (0x12 << PendingEvent.SipiVectorShift);
    expect(g.enter().reason).toBe(ExitReason.Hlt);
    expect(g.gc[GuestControlWord.PendingEvents]).toBe(0);
  });
});

describe("monitor trap flag (SDM 26.5.2)", () => {
  it("exits after each instruction, and before the first handler instruction of an injected event", () => {
    const g = machine([0x90, 0x90], { proc: Proc.MonitorTrapFlag });
    const a = g.enter();
    expect([a.reason, a.rip, a.len]).toEqual([ExitReason.MonitorTrapFlag, CODE + 1, 0]);
    expect(g.enter().rip).toBe(CODE + 2);
    const i = machine([0x90], { proc: Proc.MonitorTrapFlag, fields: [[F.EntryIntrInfo, V | (3 << 8) | 6]] }).enter();
    expect([i.reason, i.rip]).toEqual([ExitReason.MonitorTrapFlag, HANDLERS + 24]);
    // A pending MTF exit injected as type 7 exits at once.
    const p = machine([0x90], { proc: Proc.MonitorTrapFlag, fields: [[F.EntryIntrInfo, V | (7 << 8)]] }).enter();
    expect([p.reason, p.rip]).toEqual([ExitReason.MonitorTrapFlag, CODE]);
  });
});

describe("VMX-preemption timer (SDM 26.5.1)", () => {
  const rate = 2 ** SOFT_CAPS.preemptionTimerRate;
  it("value 0 exits before any instruction", () => {
    const e = machine([0x90], { pin: Pin.PreemptionTimer, fields: [[F.PreemptionTimerValue, 0]] }).enter();
    expect([e.reason, e.rip]).toEqual([ExitReason.PreemptionTimer, CODE]);
  });

  it("counts down once per 2^X instructions (X = IA32_VMX_MISC[4:0]) and saves what is left when asked", () => {
    const g = machine([0xeb, 0xfe], { pin: Pin.PreemptionTimer, exit: ExitCtl.SavePreemptionTimer, fields: [[F.PreemptionTimerValue, 3]] });
    const before = g.gc[GuestControlWord.RetiredLo]!;
    const e = g.enter();
    const ran = g.gc[GuestControlWord.RetiredLo]! - before;
    expect(e.reason).toBe(ExitReason.PreemptionTimer);
    expect(ran).toBeGreaterThan(2 * rate);
    expect(ran).toBeLessThanOrEqual(3 * rate);
    expect(g.rd(F.PreemptionTimerValue)).toBe(0);
    // A timeslice shorter than the timer: exit 1 and the remaining value saved.
    const s = machine([0xeb, 0xfe], { timeslice: 2 * rate, pin: Pin.PreemptionTimer, exit: ExitCtl.SavePreemptionTimer, fields: [[F.PreemptionTimerValue, 100]] });
    const x = s.enter();
    expect(x.reason).toBe(ExitReason.ExternalInterrupt);
    expect(s.rd(F.PreemptionTimerValue)).toBeGreaterThanOrEqual(97);
    expect(s.rd(F.PreemptionTimerValue)).toBeLessThan(100);
  });

  it("counts down in the HLT state (SDM 26.5.1): a halted guest gets exit 52 after the programmed time, still halted", () => {
    const g = machine([0x0f, 0x31], { // rdtsc (then HLT), reached after the wait
      pin: Pin.PreemptionTimer, exit: ExitCtl.SavePreemptionTimer, fields: [[F.PreemptionTimerValue, 3], [F.GuestActivity, 1]],
    });
    const e = g.enter();
    expect([e.reason, e.activity, e.rip, g.rd(F.PreemptionTimerValue)]).toEqual([ExitReason.PreemptionTimer, 1, CODE, 0]);
    expect(g.gc[GuestControlWord.RetiredLo]).toBe(0);
    // The TSC went on while the guest waited: 3 timer ticks of 2^X.
    g.w(F.GuestActivity, 0); g.w(F.PinControls, SOFT_CAPS.pin.mustBe1); g.w(F.ExitControls, SOFT_CAPS.exit.mustBe1);
    expect(g.enter().reason).toBe(ExitReason.Hlt);
    expect(g.gc[0]).toBe(3 * rate + 1);
  });

  it("a timeslice spent in HLT counts the timer down; in wait-for-SIPI it does not count", () => {
    const fields = (activity: number): readonly (readonly [number, number])[] => [[F.PreemptionTimerValue, 100], [F.GuestActivity, activity]];
    const hlt = machine([], { timeslice: 2 * rate, pin: Pin.PreemptionTimer, exit: ExitCtl.SavePreemptionTimer, fields: fields(1) });
    expect(hlt.enter().reason).toBe(ExitReason.ExternalInterrupt);
    expect(hlt.rd(F.PreemptionTimerValue)).toBe(98);
    const sipi = machine([], { timeslice: 2 * rate, pin: Pin.PreemptionTimer, exit: ExitCtl.SavePreemptionTimer, fields: fields(3) });
    expect(sipi.enter().reason).toBe(ExitReason.ExternalInterrupt);
    expect(sipi.rd(F.PreemptionTimerValue)).toBe(100);
  });
});

describe("MONITOR, MWAIT, RDTSCP, XSETBV and descriptor-table exits", () => {
  it.each([
    ["MONITOR", [0x0f, 0x01, 0xc8], Proc.MonitorExiting, 0, ExitReason.Monitor],
    ["MWAIT", [0x0f, 0x01, 0xc9], Proc.MwaitExiting, 0, ExitReason.Mwait],
    ["RDTSCP", [0x0f, 0x01, 0xf9], Proc.RdtscExiting, Proc2.EnableRdtscp, ExitReason.Rdtscp],
  ])("%s exits with its reason and length under its control", (_n, code, proc, proc2, reason) => {
    const e = machine(code, { proc, proc2 }).enter();
    expect([e.reason, e.len, e.qual, e.rip]).toEqual([reason, 3, 0, CODE]);
    expect(machine(code, { proc2 }).enter().reason).toBe(ExitReason.Hlt);
  });

  it("RDTSCP without enable RDTSCP is #UD; XSETBV is #UD before its unconditional exit (no XSAVE in the core)", () => {
    for (const code of [[0x0f, 0x01, 0xf9], [0x0f, 0x01, 0xd1]]) {
      const e = machine(code, { proc: Proc.RdtscExiting, fields: [[F.ExceptionBitmap, 1 << 6]] }).enter();
      expect([e.reason, e.intr]).toEqual([ExitReason.ExceptionOrNmi, V | (3 << 8) | 6]);
    }
  });

  it.each([
    ["SGDT [bx+8]", [0x0f, 0x01, 0x47, 0x08], 0],
    ["SIDT [bx+8]", [0x0f, 0x01, 0x4f, 0x08], 1],
    ["LGDT [bx+8]", [0x0f, 0x01, 0x57, 0x08], 2],
    ["LIDT [bx+8]", [0x0f, 0x01, 0x5f, 0x08], 3],
  ])("%s exits 46 with the displacement as qualification and table 28-10 information (base BX)", (_n, code, identity) => {
    const e = machine(code, { proc2: Proc2.DescTableExiting, regs: { ebx: 0x100 } }).enter();
    // 16-bit address and operand size, DS, no index (22), base BX (3 << 23).
    expect([e.reason, e.len, e.qual, e.info]).toEqual([
      ExitReason.GdtrIdtr, 4, 8, ((3 << 15) | (1 << 22) | (3 << 23) | (identity << 28)) >>> 0,
    ]);
    expect(machine(code, { regs: { ebx: 0x100 } }).enter().reason).toBe(ExitReason.Hlt);
  });

  it.each([
    ["SLDT ax", [0x0f, 0x00, 0xc0], 0, true],
    ["STR [bx+8]", [0x0f, 0x00, 0x4f, 0x08], 1, false],
  ])("%s (protected mode) exits 47 with table 28-11 information", (_n, code, identity, reg) => {
    const e = machine(code, { cr0: 0x11, proc2: Proc2.DescTableExiting, regs: { ebx: 0x100 } }).enter();
    // Register form: bit 10 and Reg1 (AX) only, the rest undefined (0); memory: DS, no index, base BX.
    const info = reg ? (1 << 10) | (0 << 3) : (3 << 15) | (1 << 22) | (3 << 23);
    expect([e.reason, e.len, e.qual, e.info]).toEqual([
      ExitReason.LdtrTr, code.length, reg ? 0 : 8, (info | (identity << 28)) >>> 0,
    ]);
  });
});

describe("NMI unblocking due to IRET (SDM 28.1, 28.2.2 bit 12)", () => {
  /** IRET with SS:SP = 0:0FFE and SS limit 0FFF: the second pop is past the limit, a #SS the bitmap intercepts. */
  const IRET_FAULT: readonly (readonly [number, number])[] = [
    [F.GuestSsLimit, 0x0fff], [F.GuestRsp, 0x0ffe], [F.ExceptionBitmap, (1 << 12) | (1 << 6)],
  ];
  const SS_FAULT = V | (3 << 8) | 12;

  it.each([
    ["without NMI exiting", 0],
    ["with virtual NMIs (virtual-NMI blocking)", Pin.NmiExiting | Pin.VirtualNmis],
  ])("%s: a fault on an IRET that ended the blocking sets bit 12 and exits with the blocking cleared", (_n, pin) => {
    const e = machine([0xcf], { pin, fields: [...IRET_FAULT, [F.GuestInterruptibility, 8]] }).enter();
    expect([e.reason, e.intr, e.rip, e.interruptibility & 8, e.vect]).toEqual([
      ExitReason.ExceptionOrNmi, SS_FAULT | IntrInfo.NmiUnblocking, CODE, 0, 0,
    ]);
  });

  it("without blocking before the IRET, bit 12 is 0", () => {
    const e = machine([0xcf], { fields: IRET_FAULT }).enter();
    expect([e.reason, e.intr]).toEqual([ExitReason.ExceptionOrNmi, SS_FAULT]);
  });

  it("with NMI exiting and no virtual NMIs bit 12 is undefined: written 0", () => {
    const e = machine([0xcf], { pin: Pin.NmiExiting, fields: [...IRET_FAULT, [F.GuestInterruptibility, 8]] }).enter();
    expect([e.reason, e.intr]).toEqual([ExitReason.ExceptionOrNmi, SS_FAULT]);
  });

  it("a fault from another instruction leaves bit 12 0 and the blocking in place", () => {
    // POP AX at SS:SP = 0:0FFF: the word crosses the SS limit.
    const e = machine([0x58], { fields: [[F.GuestSsLimit, 0x0fff], [F.GuestRsp, 0x0fff], [F.ExceptionBitmap, 1 << 12], [F.GuestInterruptibility, 8]] }).enter();
    expect([e.reason, e.intr, e.interruptibility & 8]).toEqual([ExitReason.ExceptionOrNmi, SS_FAULT, 8]);
  });

  it("an IRET fault the guest handles itself does not mark a later exit", () => {
    // #SS is delivered through the IVT (not in the bitmap); its handler executes UD2, which exits.
    const g = machine([0xcf], { fields: [[F.GuestSsLimit, 0x0fff], [F.GuestRsp, 0x0ffe], [F.ExceptionBitmap, 1 << 6], [F.GuestInterruptibility, 8]] });
    g.ram.set([0x0f, 0x0b], HANDLERS + 12 * 4);
    const e = g.enter();
    expect([e.reason, e.intr, e.rip, e.interruptibility & 8]).toEqual([ExitReason.ExceptionOrNmi, V | (3 << 8) | 6, HANDLERS + 12 * 4, 0]);
  });
});

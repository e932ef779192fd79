// tests/guests/vmx-exits.asm through the real kernel and soft engine: this test plays the
// monitor with syscalls, turns on every control the guest's steps need, and per step
// checks the basic exit reason, qualification, instruction length and information,
// interruption information, IDT-vectoring information and RIP (SDM Vol. 3C 28.2,
// appendix C), then moves RIP past the step as a VMM emulating the instruction would.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { GuestControlWord, ObjType, PendingEvent, SysErr } from "../../../../src/kernel/api.js";
import { guestControlWords, guestEntry, testMachine, withVmcs, writeRealModeGuest } from "../testing/machine.js";
import { ExitReason, F, Pin, Proc, Proc2 } from "../vmcs-fields.js";
import { SOFT_CAPS } from "./caps.js";

const here = dirname(fileURLToPath(import.meta.url));
const IMAGE = readFileSync(join(here, "../../../../tests/guests/vmx-exits.img"));
const ORG = 0x7c00, MEM = 0x600;
const V = 0x80000000;
/** Table 28-10/28-11 information for a [MEM] operand from real mode: 16-bit addresses, DS, base and index invalid. */
const DESC_INFO = ((3 << 15) | (1 << 22) | (1 << 27)) >>> 0;
const io = (port: number, inDir: boolean) => ((port << 16) | (1 << 6) | (inDir ? 1 << 3 : 0)) >>> 0;

/** What one instruction step exits with. `info`/`intr`: undefined = not checked. */
interface Step { reason: number; len: number; qual?: number; info?: number; intr?: number }

const STEPS: Step[] = [
  { reason: ExitReason.Cpuid, len: 2 },
  { reason: ExitReason.Rdtsc, len: 2 },
  { reason: ExitReason.Rdtscp, len: 3 },
  { reason: ExitReason.Rdpmc, len: 2 },
  { reason: ExitReason.Invd, len: 2 },
  { reason: ExitReason.Wbinvd, len: 2 },
  { reason: ExitReason.Invlpg, len: 5, qual: MEM },
  { reason: ExitReason.MovDr, len: 3, qual: 7 | (1 << 4) },
  { reason: ExitReason.CrAccess, len: 3, qual: 3 | (3 << 8) },
  { reason: ExitReason.CrAccess, len: 3, qual: 3 | (1 << 4) },
  { reason: ExitReason.GdtrIdtr, len: 5, qual: MEM, info: DESC_INFO | (0 << 28) },
  { reason: ExitReason.GdtrIdtr, len: 5, qual: MEM, info: DESC_INFO | (1 << 28) },
  { reason: ExitReason.GdtrIdtr, len: 5, qual: MEM, info: DESC_INFO | (2 << 28) },
  { reason: ExitReason.GdtrIdtr, len: 5, qual: MEM, info: (DESC_INFO | (3 << 28)) >>> 0 },
  { reason: ExitReason.Pause, len: 2 },
  { reason: ExitReason.Monitor, len: 3 },
  { reason: ExitReason.Mwait, len: 3 },
  { reason: ExitReason.Vmcall, len: 3 },
  { reason: ExitReason.Hlt, len: 1 },
  { reason: ExitReason.IoInstruction, len: 2, qual: io(0x80, false) },
  { reason: ExitReason.IoInstruction, len: 2, qual: io(0x81, true) },
  { reason: ExitReason.Rdmsr, len: 2 },
  { reason: ExitReason.Wrmsr, len: 2 },
  { reason: ExitReason.ExceptionOrNmi, len: 0, intr: (V | (3 << 8) | 6) >>> 0 },
  { reason: ExitReason.ExceptionOrNmi, len: 1, intr: (V | (6 << 8) | 3) >>> 0 },
  { reason: ExitReason.ExceptionOrNmi, len: 0, intr: (V | (3 << 8) | 6) >>> 0 }, // XSETBV: #UD first
];

function word(at: number): number {
  return IMAGE[at - ORG]! | (IMAGE[at - ORG + 1]! << 8);
}

function boot() {
  const m = testMachine();
  const { sys } = m;
  const { dcb } = withVmcs(m);
  const gc = guestControlWords(m);
  m.ram.set(IMAGE, ORG);
  const handler = word(ORG + 6);
  m.ram[0x80 * 4] = handler & 0xff; m.ram[0x80 * 4 + 1] = handler >> 8;
  const w = (enc: number, v: number) => expect(sys.vmwrite(dcb, enc, v >>> 0)).toBe(SysErr.Ok);
  const rd = (enc: number) => { expect(sys.vmread(dcb, enc)).toBe(SysErr.Ok); return sys.ret.value >>> 0; };
  w(F.PinControls, SOFT_CAPS.pin.mustBe1 | Pin.NmiExiting);
  w(F.ProcControls, SOFT_CAPS.proc.mustBe1 | Proc.HltExiting | Proc.ActivateSecondary | Proc.UncondIoExiting
    | Proc.RdtscExiting | Proc.RdpmcExiting | Proc.InvlpgExiting | Proc.MovDrExiting | Proc.Cr3LoadExiting
    | Proc.Cr3StoreExiting | Proc.PauseExiting | Proc.MonitorExiting | Proc.MwaitExiting);
  w(F.Proc2Controls, Proc2.EnableEpt | Proc2.UnrestrictedGuest | Proc2.WbinvdExiting | Proc2.DescTableExiting | Proc2.EnableRdtscp);
  w(F.ExitControls, SOFT_CAPS.exit.mustBe1);
  w(F.EntryControls, SOFT_CAPS.entry.mustBe1);
  w(F.ExceptionBitmap, (1 << 3) | (1 << 6) | (1 << 13));
  writeRealModeGuest(w, ORG);
  const entry = guestEntry(m, dcb);
  const enter = () => {
    entry();
    return {
      reason: rd(F.ExitReason), qual: rd(F.ExitQualification), len: rd(F.ExitInstrLen), info: rd(F.ExitInstrInfo),
      intr: rd(F.ExitIntrInfo), vect: rd(F.IdtVectoringInfo), rip: rd(F.GuestRip),
    };
  };
  return { w, rd, enter, gc };
}

describe("tests/guests/vmx-exits.asm through the VMX kernel half", () => {
  it("the image lays out one table entry per step the driver knows, plus the events, INT 80h and final OUT steps", () => {
    expect(word(ORG + 4)).toBe(STEPS.length + 3);
  });

  it("every step exits with its reason, qualification, length, information and RIP; events, vectoring and re-injection follow", () => {
    const g = boot();
    const table = word(ORG + 2);
    const at = (i: number) => ({ insn: word(table + i * 4), next: word(table + i * 4 + 2) });
    let e = g.enter();
    STEPS.forEach((s, i) => {
      if (i > 0) e = g.enter();
      const { insn, next } = at(i);
      const got = { step: i, reason: e.reason, len: e.len, rip: e.rip,
        ...(s.qual !== undefined ? { qual: e.qual } : {}), ...(s.info !== undefined ? { info: e.info } : {}),
        ...(s.intr !== undefined ? { intr: e.intr } : {}) };
      expect(got).toEqual({ step: i, reason: s.reason, len: s.len, rip: insn,
        ...(s.qual !== undefined ? { qual: s.qual } : {}), ...(s.info !== undefined ? { info: s.info } : {}),
        ...(s.intr !== undefined ? { intr: s.intr } : {}) });
      expect(next - insn, `step ${i} length in the image`).toBe(s.len === 0 ? next - insn : s.len);
      g.w(F.GuestRip, next);
    });

    // Events step (a NOP): the guest now stands before it, with nothing pending.
    const ev = at(STEPS.length);
    g.gc[GuestControlWord.PendingEvents] = PendingEvent.Nmi;
    e = g.enter();
    expect([e.reason, e.intr, e.rip]).toEqual([ExitReason.ExceptionOrNmi, (V | (2 << 8) | 2) >>> 0, ev.insn]);
    g.gc[GuestControlWord.PendingEvents] = PendingEvent.Init;
    e = g.enter();
    expect([e.reason, e.rip]).toEqual([ExitReason.InitSignal, ev.insn]);
    g.w(F.PinControls, SOFT_CAPS.pin.mustBe1 | Pin.NmiExiting | Pin.PreemptionTimer);
    g.w(F.PreemptionTimerValue, 0);
    e = g.enter();
    expect([e.reason, e.rip]).toEqual([ExitReason.PreemptionTimer, ev.insn]);
    g.w(F.PinControls, SOFT_CAPS.pin.mustBe1 | Pin.NmiExiting);
    const proc = g.rd(F.ProcControls);
    g.w(F.ProcControls, proc | Proc.MonitorTrapFlag);
    e = g.enter();
    expect([e.reason, e.rip, e.len]).toEqual([ExitReason.MonitorTrapFlag, ev.next, 0]);
    g.w(F.ProcControls, proc);

    // INT 80h beyond the IDT limit: #GP exits with the INT as IDT-vectoring information.
    const int80 = at(STEPS.length + 1);
    g.w(F.GuestIdtrLimit, 0x3f);
    e = g.enter();
    expect([e.reason, e.intr, e.vect, e.len, e.rip]).toEqual([
      ExitReason.ExceptionOrNmi, (V | (3 << 8) | 13) >>> 0, (V | (4 << 8) | 0x80) >>> 0, 2, int80.insn,
    ]);
    // Re-inject it as the backend does, with the limit restored: the handler's OUT exits.
    g.w(F.GuestIdtrLimit, 0x3ff);
    g.w(F.EntryIntrInfo, e.vect); g.w(F.EntryInstrLen, e.len);
    e = g.enter();
    const handler = word(ORG + 6);
    expect([e.reason, e.qual, e.rip]).toEqual([ExitReason.IoInstruction, io(0x97, false), handler]);
    g.w(F.GuestRip, handler + 2);
    // IRET returns after the INT: the final OUT.
    e = g.enter();
    expect([e.reason, e.qual, e.rip]).toEqual([ExitReason.IoInstruction, io(0x82, false), int80.next]);
  });
});

// The core's hooks for the VMX and SVM kernel halves: physical-access aborts
// (MEM_ABORT, for EPT violations and nested page faults), IDT-vectoring
// information for exits during event delivery (SDM 27.2.4, table 6-5), NMI
// blocking until IRET (SDM 6.7.1), and the instruction/CR/descriptor-table
// intercepts added for SVM (APM 15.9) and the remaining VMX exits.
import { describe, expect, it } from "vitest";
import { FlatMemory, MEM_ABORT } from "./memory.js";
import { CpuExitReason, CrAccessType, DescInsn, EventType, InsnIntercept, Interruptibility } from "./types.js";
import type { IoPorts, X86State } from "./types.js";
import { NO_IO, realModeMachine, TEST_DATA as DATA } from "./testing.js";

const MMIO = 0x200000;

/** RAM below 2 MiB as the direct window; an "MMIO" page at 2 MiB whose accesses the provider refuses while `refuse`. */
class AbortingMemory extends FlatMemory {
  refuse = true;
  readonly log: string[] = [];
  constructor() { super(MMIO); }
  private check(pa: number, what: string): void {
    this.log.push(`${what} ${pa.toString(16)}`);
    if (this.refuse && pa >= MMIO && pa < MMIO + 0x1000) throw MEM_ABORT;
  }
  override read8(pa: number): number { this.check(pa, "r"); return super.read8(pa); }
  override read16(pa: number): number { this.check(pa, "r"); return super.read16(pa); }
  override read32(pa: number): number { this.check(pa, "r"); return super.read32(pa); }
  override write8(pa: number, v: number): void { this.check(pa, "w"); super.write8(pa, v); }
  override write16(pa: number, v: number): void { this.check(pa, "w"); super.write16(pa, v); }
  override write32(pa: number, v: number): void { this.check(pa, "w"); super.write32(pa, v); }
}

function machine(code: number[], init?: (s: X86State) => void, io: IoPorts = NO_IO) {
  return realModeMachine(new AbortingMemory(), code, init, io);
}

/** A 32-bit address-size prefixed MOV [EBX], AL etc. reaches 2 MiB from real mode with a 4 GiB DS limit ("unreal" mode). */
function unreal(s: X86State): void { s.ds.selector = 0; s.ds.base = 0; s.ds.limit = 0xffffffff; s.ebx = MMIO + 0x10; }

describe("MEM_ABORT: a physical access the provider refuses", () => {
  it("stops before the instruction with MemAbort, state unchanged, and names the access", () => {
    // inc ax; mov [ebx], al (67 88 03); hlt
    const m = machine([0x40, 0x67, 0x88, 0x03, 0xf4], (s) => { unreal(s); s.eax = 0x41; });
    expect(m.cpu.run(100)).toBe(CpuExitReason.MemAbort);
    const e = m.cpu.exit;
    expect(m.state().eip).toBe(1);
    expect(m.state().eax).toBe(0x42);
    expect(m.cpu.retired).toBe(1);
    expect([e.memGpa, e.memWrite, e.memFetch, e.memWalk, e.memLinearValid]).toEqual([MMIO + 0x10, true, false, false, true]);
    expect(e.vectoringValid).toBe(false);
    // The provider now accepts: the instruction runs on re-entry.
    m.mem.refuse = false;
    expect(m.cpu.run(2)).toBe(CpuExitReason.Halted);
    // One refused write, then the one that happened.
    expect(m.mem.log.filter((l) => l.startsWith("w"))).toEqual([`w ${(MMIO + 0x10).toString(16)}`, `w ${(MMIO + 0x10).toString(16)}`]);
  });

  it("a read of a refused page reports a read, and a REP MOVSB keeps the iterations already done", () => {
    // rep movsb (addr32) from DS:ESI (RAM) to ES:EDI (refused at its 3rd byte)
    const m = machine([0xf3, 0x67, 0xa4, 0xf4], (s) => {
      unreal(s); s.es.selector = 0; s.es.base = 0; s.es.limit = 0xffffffff;
      s.esi = DATA; s.edi = MMIO - 2; s.ecx = 5;
    });
    expect(m.cpu.run(100)).toBe(CpuExitReason.MemAbort);
    const st = m.state();
    expect([st.ecx, st.edi, st.esi, st.eip]).toEqual([3, MMIO, DATA + 2, 0]);
    expect([m.cpu.exit.memGpa, m.cpu.exit.memWrite]).toEqual([MMIO, true]);
    // a read this time
    const r = machine([0x67, 0x8a, 0x03], unreal);
    expect(r.cpu.run(10)).toBe(CpuExitReason.MemAbort);
    expect(r.cpu.exit.memWrite).toBe(false);
  });

  it("an instruction fetch from a refused page is a fetch", () => {
    const m = machine([0x66, 0xea, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00]); // jmp dword 0:0x200000 (EIP > 64 KiB in real mode faults), so jump via CS base
    m.cpu.setState({ ...m.state(), cs: { selector: 0x2000, base: MMIO, limit: 0xffff, attrib: 0x9b }, eip: 0 });
    expect(m.cpu.run(10)).toBe(CpuExitReason.MemAbort);
    expect([m.cpu.exit.memFetch, m.cpu.exit.memGpa]).toEqual([true, MMIO]);
  });

  it("during delivery of INT n: IDT-vectoring information names it, EIP stays on the INT with its length", () => {
    // Stack in the refused page: the pushes of INT 21h abort.
    const m = machine([0x90, 0xcd, 0x21], (s) => { s.ss.selector = MMIO >> 4; s.ss.base = MMIO; s.esp = 0x100; });
    expect(m.cpu.run(10)).toBe(CpuExitReason.MemAbort);
    const e = m.cpu.exit;
    expect([e.vectoringValid, e.vectoringType, e.vectoringVector, e.instrLen]).toEqual([true, EventType.SoftwareInt, 0x21, 2]);
    expect(m.state().eip).toBe(1);
    expect(m.state().esp).toBe(0x100);
  });

  it("during an injected external interrupt: vectoring names it and the exit reason is MemAbort", () => {
    const m = machine([0x90], (s) => { s.ss.selector = MMIO >> 4; s.ss.base = MMIO; s.eflags |= 0x200; });
    m.cpu.deliverEvent(EventType.ExtInt, 0x30, 0, false);
    const e = m.cpu.exit;
    expect(e.reason).toBe(CpuExitReason.MemAbort);
    expect([e.vectoringValid, e.vectoringType, e.vectoringVector]).toEqual([true, EventType.ExtInt, 0x30]);
    expect(m.state().eip).toBe(0);
  });
});

describe("faults during delivery (SDM 6.15 table 6-5) and IDT-vectoring information", () => {
  it("an intercepted #GP raised while delivering INT n reports the INT as the vectoring event", () => {
    const m = machine([0xcd, 0x80], (s) => { s.idtr.limit = 0x3ff >> 2; }); // vector 0x80 beyond the IVT limit: #GP
    m.cpu.intercepts.exceptionBitmap = 1 << 13;
    expect(m.cpu.run(10)).toBe(CpuExitReason.Exception);
    const e = m.cpu.exit;
    expect([e.vector, e.vectoringValid, e.vectoringType, e.vectoringVector, e.instrLen]).toEqual([13, true, EventType.SoftwareInt, 0x80, 2]);
    expect(m.state().eip).toBe(0);
  });

  it("a contributory fault while delivering a contributory one becomes #DF; a fault delivering #DF shuts down", () => {
    const m = machine([0xcd, 0x80], (s) => { s.idtr.limit = 0x30; }); // #GP (vector 13 at 0x34 is beyond too)
    m.cpu.intercepts.exceptionBitmap = 1 << 8;
    expect(m.cpu.run(10)).toBe(CpuExitReason.Exception);
    expect([m.cpu.exit.vector, m.cpu.exit.vectoringValid, m.cpu.exit.vectoringVector]).toEqual([8, true, 13]);
    const t = machine([0xcd, 0x80], (s) => { s.idtr.limit = 0x1f; });
    expect(t.cpu.run(10)).toBe(CpuExitReason.TripleFault);
    expect(t.cpu.exit.vectoringValid).toBe(false);
  });

  it("a benign event whose delivery faults is handled serially: the #GP is delivered", () => {
    // INT 80h beyond the limit -> #GP through vector 13, which is inside the limit.
    const m = machine([0xcd, 0x80], (s) => { s.idtr.limit = 0x3f; });
    m.mem.bytes.set([0x00, 0x05, 0x00, 0x20], 13 * 4); // #GP handler at 2000:0500
    expect(m.cpu.run(1)).toBe(CpuExitReason.Budget);
    const st = m.state();
    expect([st.cs.selector, st.eip]).toEqual([0x2000, 0x500]);
    // The #GP is a fault on the INT: its return address is the INT itself.
    expect(m.mem.bytes[0x100 - 6] | (m.mem.bytes[0x100 - 5] << 8)).toBe(0);
  });
});

describe("NMI blocking (SDM 6.7.1)", () => {
  it("an injected NMI blocks NMIs until IRET, across instructions", () => {
    const m = machine([0x90, 0x90, 0xcf]);
    m.mem.bytes.set([0x00, 0x00, 0x00, 0x10], 2 * 4); // NMI handler at CODE (1000:0000)
    m.cpu.deliverEvent(EventType.Nmi, 2, 0, false);
    expect(m.state().interruptibility & Interruptibility.BlockingByNmi).toBeTruthy();
    m.cpu.run(2);
    expect(m.state().interruptibility & Interruptibility.BlockingByNmi).toBeTruthy();
    m.cpu.run(1); // IRET
    expect(m.state().interruptibility & Interruptibility.BlockingByNmi).toBe(0);
  });

  it("STI blocking still lasts one instruction while NMI blocking holds", () => {
    const m = machine([0xfb, 0x90, 0x90], (s) => { s.interruptibility = Interruptibility.BlockingByNmi; });
    m.cpu.run(1);
    expect(m.state().interruptibility).toBe(Interruptibility.BlockingByNmi | Interruptibility.BlockingBySti);
    m.cpu.run(1);
    expect(m.state().interruptibility).toBe(Interruptibility.BlockingByNmi);
  });
});

describe("instruction intercepts added for SVM and VMX", () => {
  const cases: { name: string; code: number[]; bit: InsnIntercept; len: number }[] = [
    { name: "PUSHF", code: [0x9c], bit: InsnIntercept.Pushf, len: 1 },
    { name: "POPF", code: [0x9d], bit: InsnIntercept.Popf, len: 1 },
    { name: "IRET", code: [0xcf], bit: InsnIntercept.Iret, len: 1 },
    { name: "ICEBP", code: [0xf1], bit: InsnIntercept.Icebp, len: 1 },
    { name: "MONITOR", code: [0x0f, 0x01, 0xc8], bit: InsnIntercept.Monitor, len: 3 },
    { name: "MWAIT", code: [0x0f, 0x01, 0xc9], bit: InsnIntercept.Mwait, len: 3 },
    { name: "RDTSCP", code: [0x0f, 0x01, 0xf9], bit: InsnIntercept.Rdtscp, len: 3 },
  ];
  for (const c of cases) {
    it(`${c.name} stops before executing, state unchanged`, () => {
      const m = machine(c.code, (s) => { s.eax = 0x10; });
      const before = m.state();
      m.cpu.intercepts.insn = c.bit;
      expect(m.cpu.run(10)).toBe(CpuExitReason.Instruction);
      expect([m.cpu.exit.insn, m.cpu.exit.instrLen]).toEqual([c.bit, c.len]);
      expect(m.state()).toEqual(before);
    });
  }

  it("RDTSCP without the intercept returns the TSC and IA32_TSC_AUX; disabled it is #UD", () => {
    const m = machine([0x90, 0x0f, 0x01, 0xf9]);
    m.cpu.tscAux = 0x1234;
    m.cpu.run(2);
    // The instruction-count TSC includes the RDTSCP itself (see X86Cpu.rdtsc).
    expect([m.state().ecx, m.state().eax, m.state().edx]).toEqual([0x1234, 2, 0]);
    const u = machine([0x0f, 0x01, 0xf9]);
    u.cpu.rdtscpEnabled = false;
    u.cpu.intercepts.exceptionBitmap = 1 << 6;
    expect(u.cpu.run(1)).toBe(CpuExitReason.Exception);
    expect(u.cpu.exit.vector).toBe(6);
  });

  it("MONITOR with ECX != 0 is #GP(0); MWAIT returns at once; XSETBV is #UD (no CR4.OSXSAVE) even when intercepted", () => {
    const m = machine([0x0f, 0x01, 0xc8], (s) => { s.ecx = 1; });
    m.cpu.intercepts.exceptionBitmap = 1 << 13;
    expect(m.cpu.run(1)).toBe(CpuExitReason.Exception);
    const w = machine([0x0f, 0x01, 0xc9, 0x90]);
    expect(w.cpu.run(2)).toBe(CpuExitReason.Budget);
    expect(w.state().eip).toBe(4);
    const x = machine([0x0f, 0x01, 0xd1]);
    x.cpu.intercepts.insn = InsnIntercept.Xsetbv;
    x.cpu.intercepts.exceptionBitmap = 1 << 6;
    expect(x.cpu.run(1)).toBe(CpuExitReason.Exception);
    expect(x.cpu.exit.vector).toBe(6);
  });

  it("descriptor-table instructions stop per descExitMask with their operand", () => {
    for (const [code, which] of [[[0x0f, 0x01, 0x07], DescInsn.Sgdt], [[0x0f, 0x01, 0x0f], DescInsn.Sidt],
      [[0x0f, 0x01, 0x17], DescInsn.Lgdt], [[0x0f, 0x01, 0x5f, 0x04], DescInsn.Lidt]] as [number[], DescInsn][]) {
      const m = machine(code, (s) => { s.ebx = 0x20; });
      const before = m.state();
      m.cpu.intercepts.descExitMask = 1 << which;
      expect(m.cpu.run(5)).toBe(CpuExitReason.Instruction);
      const e = m.cpu.exit;
      expect([e.insn, e.descInsn, e.insnMem, e.instrLen]).toEqual([InsnIntercept.DescTable, which, true, code.length]);
      expect(e.linear).toBe(DATA + 0x20 + (code.length === 4 ? 4 : 0));
      expect(m.state()).toEqual(before);
      // Another instruction's bit does not stop it.
      const n = machine(code, (s) => { s.ebx = 0x20; });
      n.cpu.intercepts.descExitMask = 0xff & ~(1 << which);
      expect(n.cpu.run(1)).toBe(CpuExitReason.Budget);
    }
  });
});

describe("SVM CR read/write intercepts (APM 15.9)", () => {
  it("MOV from CR0 and SMSW stop on the CR0 read intercept; MOV to CR3 on the CR3 write one", () => {
    for (const code of [[0x0f, 0x20, 0xc0], [0x0f, 0x01, 0xe0]]) {
      const m = machine(code);
      m.cpu.intercepts.crReadExit = 1;
      expect(m.cpu.run(1)).toBe(CpuExitReason.CrAccess);
      expect([m.cpu.exit.crNumber, m.cpu.exit.crAccessType]).toEqual([0, CrAccessType.MovFromCr]);
    }
    const w = machine([0x0f, 0x22, 0xd8]);
    w.cpu.intercepts.crWriteExit = 1 << 3;
    expect(w.cpu.run(1)).toBe(CpuExitReason.CrAccess);
    expect([w.cpu.exit.crNumber, w.cpu.exit.crAccessType, w.cpu.exit.crGpr]).toEqual([3, CrAccessType.MovToCr, 0]);
  });

  it("CLTS and LMSW are CR0 writes", () => {
    const c = machine([0x0f, 0x06]);
    c.cpu.intercepts.crWriteExit = 1;
    expect(c.cpu.run(1)).toBe(CpuExitReason.CrAccess);
    expect(c.cpu.exit.crAccessType).toBe(CrAccessType.Clts);
    const l = machine([0x0f, 0x01, 0xf0], (s) => { s.eax = 8; });
    l.cpu.intercepts.crWriteExit = 1;
    expect(l.cpu.run(1)).toBe(CpuExitReason.CrAccess);
    expect([l.cpu.exit.crAccessType, l.cpu.exit.lmswSource, l.cpu.exit.crSelective]).toEqual([CrAccessType.Lmsw, 8, false]);
  });

  it("the selective CR0 write intercept ignores TS/MP changes and stops on any other", () => {
    const ts = machine([0x0f, 0x22, 0xc0], (s) => { s.eax = s.cr0 | 0xa; });
    ts.cpu.intercepts.cr0SelectiveExit = true;
    expect(ts.cpu.run(1)).toBe(CpuExitReason.Budget);
    const pe = machine([0x0f, 0x22, 0xc0], (s) => { s.eax = s.cr0 | 0x4; }); // EM
    pe.cpu.intercepts.cr0SelectiveExit = true;
    expect(pe.cpu.run(1)).toBe(CpuExitReason.CrAccess);
    expect(pe.cpu.exit.crSelective).toBe(true);
    const lm = machine([0x0f, 0x01, 0xf0], (s) => { s.eax = 1; }); // LMSW setting PE
    lm.cpu.intercepts.cr0SelectiveExit = true;
    expect(lm.cpu.run(1)).toBe(CpuExitReason.CrAccess);
    expect([lm.cpu.exit.crAccessType, lm.cpu.exit.crSelective]).toEqual([CrAccessType.Lmsw, true]);
  });
});

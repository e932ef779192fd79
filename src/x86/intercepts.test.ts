// Instruction intercepts (InterceptControls.insn) and CR access intercepts (CR0/CR4
// guest/host masks and read shadows, CR3 load/store exiting): the core stops before
// the instruction with its state unchanged and the exit fields the VMX exit
// qualifications need (SDM Vol. 3C 26.1, 26.3, 28.2.1).
import { describe, expect, it } from "vitest";
import { FlatMemory } from "./memory.js";
import { CpuExitReason, CrAccessType, InsnIntercept, VmxInsn } from "./types.js";
import type { AccessSize, IoPorts, X86State } from "./types.js";

import { realModeMachine, TEST_DATA as DATA } from "./testing.js";

const NO_IO: IoPorts = { in: (_p: number, s: AccessSize) => (s === 1 ? 0xff : 0xffff), out: () => {} };

function machine(code: number[], init?: (s: X86State) => void) {
  const { mem, cpu, state } = realModeMachine(new FlatMemory(0x110000), code, init, NO_IO);
  /** Run one instruction; the vector it raised, or null. */
  const fault = (): number | null => {
    cpu.intercepts.exceptionBitmap = 0xffffffff;
    const r = cpu.run(1);
    cpu.intercepts.exceptionBitmap = 0;
    return r === CpuExitReason.Exception ? cpu.exit.vector : null;
  };
  return { mem, cpu, state, fault };
}

const UD = 6;

describe("instruction intercepts", () => {
  const cases: { name: string; code: number[]; bit: InsnIntercept; len: number }[] = [
    { name: "RDTSC", code: [0x0f, 0x31], bit: InsnIntercept.Rdtsc, len: 2 },
    { name: "RDPMC", code: [0x0f, 0x33], bit: InsnIntercept.Rdpmc, len: 2 },
    { name: "INVD", code: [0x0f, 0x08], bit: InsnIntercept.Invd, len: 2 },
    { name: "WBINVD", code: [0x0f, 0x09], bit: InsnIntercept.Wbinvd, len: 2 },
    { name: "INVLPG [bx+4]", code: [0x0f, 0x01, 0x7f, 0x04], bit: InsnIntercept.Invlpg, len: 4 },
    { name: "VMCALL", code: [0x0f, 0x01, 0xc1], bit: InsnIntercept.Vmcall, len: 3 },
    { name: "MOV DR7, EAX", code: [0x0f, 0x23, 0xf8], bit: InsnIntercept.MovDr, len: 3 },
    { name: "PAUSE", code: [0xf3, 0x90], bit: InsnIntercept.Pause, len: 2 },
  ];
  for (const c of cases) {
    it(`${c.name} stops before executing with exit.insn and its length, state unchanged`, () => {
      const m = machine(c.code, (s) => { s.eax = 0x1234; s.ebx = 0x10; });
      const before = m.state();
      m.cpu.intercepts.insn = c.bit;
      expect(m.cpu.run(10)).toBe(CpuExitReason.Instruction);
      expect([m.cpu.exit.insn, m.cpu.exit.instrLen]).toEqual([c.bit, c.len]);
      expect(m.state()).toEqual(before);
      expect(m.cpu.retired).toBe(0);
    });
    it(`${c.name} is not stopped by the other intercept bits`, () => {
      const m = machine(c.code, (s) => { s.ebx = 0x10; });
      m.cpu.intercepts.insn = 0x1ff & ~c.bit;
      const r = m.cpu.run(1);
      expect(r === CpuExitReason.Instruction).toBe(false);
    });
  }

  it("without intercepts RDTSC, INVD, WBINVD, INVLPG and PAUSE execute; RDPMC and VMCALL are #UD", () => {
    const m = machine([0x0f, 0x31, 0x0f, 0x08, 0x0f, 0x09, 0x0f, 0x01, 0x7f, 0x04, 0xf3, 0x90]);
    expect(m.cpu.run(5)).toBe(CpuExitReason.Budget);
    expect(m.state().eip).toBe(12);
    expect(m.state().eax).toBe(1); // RDTSC retired as the first instruction: TSC = 0 + 1
    expect(machine([0x0f, 0x33]).fault()).toBe(UD);
    expect(machine([0x0f, 0x01, 0xc1]).fault()).toBe(UD);
  });

  it("INVLPG reports the linear address of its operand (DS base + offset)", () => {
    const m = machine([0x0f, 0x01, 0x7f, 0x04], (s) => { s.ebx = 0x10; });
    m.cpu.intercepts.insn = InsnIntercept.Invlpg;
    m.cpu.run(1);
    expect(m.cpu.exit.linear).toBe(DATA + 0x14);
  });

  it("INVLPG with a register operand is #UD even when intercepted", () => {
    const m = machine([0x0f, 0x01, 0xf8]);
    m.cpu.intercepts.insn = InsnIntercept.Invlpg;
    expect(m.fault()).toBe(UD);
  });

  it("MOV DR reports the DR number, direction and GPR", () => {
    const m = machine([0x0f, 0x21, 0xf3]); // mov ebx, dr6
    m.cpu.intercepts.insn = InsnIntercept.MovDr;
    m.cpu.run(1);
    expect([m.cpu.exit.drNumber, m.cpu.exit.drRead, m.cpu.exit.drGpr]).toEqual([6, true, 3]);
    const w = machine([0x0f, 0x23, 0xfa]); // mov dr7, edx
    w.cpu.intercepts.insn = InsnIntercept.MovDr;
    w.cpu.run(1);
    expect([w.cpu.exit.drNumber, w.cpu.exit.drRead, w.cpu.exit.drGpr]).toEqual([7, false, 2]);
  });

  it("MOV DR4 with CR4.DE is #UD before the MOV-DR intercept (SDM 26.1.1)", () => {
    const m = machine([0x0f, 0x21, 0xe0], (s) => { s.cr4 = 0x8; });
    m.cpu.intercepts.insn = InsnIntercept.MovDr;
    expect(m.fault()).toBe(UD);
  });
});

describe("VMX instructions", () => {
  const PE = (s: X86State) => { s.cr0 = 0x11; s.ebx = 0x20; };
  const cases: { name: string; code: number[]; kind: VmxInsn; mem: boolean; reg: number; rm: number }[] = [
    { name: "VMPTRLD [bx]", code: [0x0f, 0xc7, 0x37], kind: VmxInsn.Vmptrld, mem: true, reg: 6, rm: 7 },
    { name: "VMCLEAR [bx]", code: [0x66, 0x0f, 0xc7, 0x37], kind: VmxInsn.Vmclear, mem: true, reg: 6, rm: 7 },
    { name: "VMXON [bx]", code: [0xf3, 0x0f, 0xc7, 0x37], kind: VmxInsn.Vmxon, mem: true, reg: 6, rm: 7 },
    { name: "VMPTRST [bx]", code: [0x0f, 0xc7, 0x3f], kind: VmxInsn.Vmptrst, mem: true, reg: 7, rm: 7 },
    { name: "VMREAD eax, ecx", code: [0x0f, 0x78, 0xc8], kind: VmxInsn.Vmread, mem: false, reg: 1, rm: 0 },
    { name: "VMWRITE edx, [bx]", code: [0x0f, 0x79, 0x17], kind: VmxInsn.Vmwrite, mem: true, reg: 2, rm: 7 },
    { name: "VMLAUNCH", code: [0x0f, 0x01, 0xc2], kind: VmxInsn.Vmlaunch, mem: false, reg: 0, rm: 0 },
    { name: "VMRESUME", code: [0x0f, 0x01, 0xc3], kind: VmxInsn.Vmresume, mem: false, reg: 0, rm: 0 },
    { name: "VMXOFF", code: [0x0f, 0x01, 0xc4], kind: VmxInsn.Vmxoff, mem: false, reg: 0, rm: 0 },
    { name: "INVEPT ecx, [bx]", code: [0x66, 0x0f, 0x38, 0x80, 0x0f], kind: VmxInsn.Invept, mem: true, reg: 1, rm: 7 },
    { name: "INVVPID ecx, [bx]", code: [0x66, 0x0f, 0x38, 0x81, 0x0f], kind: VmxInsn.Invvpid, mem: true, reg: 1, rm: 7 },
  ];
  for (const c of cases) {
    it(`${c.name} with CR0.PE = 1 stops with its kind and operands`, () => {
      const m = machine(c.code, PE);
      const before = m.state();
      m.cpu.intercepts.insn = InsnIntercept.VmxInsn;
      expect(m.cpu.run(1)).toBe(CpuExitReason.Instruction);
      const e = m.cpu.exit;
      expect([e.insn, e.vmxInsn, e.instrLen, e.insnMem]).toEqual([InsnIntercept.VmxInsn, c.kind, c.code.length, c.mem]);
      if (c.code[1] !== 0x01 && c.code[2] !== 0x01) expect([e.insnReg, e.insnRm]).toEqual([c.reg, c.rm]);
      if (c.mem) expect([e.insnOffset, e.linear, e.insnAddrSize, e.insnSeg]).toEqual([0x20, DATA + 0x20, 2, 3]);
      expect(m.state()).toEqual(before);
    });
    it(`${c.name} is #UD in real mode (CR0.PE = 0) even when intercepted, and without the intercept`, () => {
      const m = machine(c.code, (s) => { s.ebx = 0x20; });
      m.cpu.intercepts.insn = InsnIntercept.VmxInsn;
      expect(m.fault()).toBe(UD);
      expect(machine(c.code, PE).fault()).toBe(UD);
    });
  }

  it("VMPTRLD with a register operand is #UD before the exit", () => {
    const m = machine([0x0f, 0xc7, 0xf0], (s) => { s.cr0 = 0x11; });
    m.cpu.intercepts.insn = InsnIntercept.VmxInsn;
    expect(m.fault()).toBe(UD);
  });

  it("VMCALL exits in real mode (no CR0.PE condition)", () => {
    const m = machine([0x0f, 0x01, 0xc1]);
    m.cpu.intercepts.insn = InsnIntercept.Vmcall;
    expect(m.cpu.run(1)).toBe(CpuExitReason.Instruction);
  });
});

describe("CR access intercepts", () => {
  const TS = 8, MP = 2;

  it("MOV to CR0 exits when a masked bit differs from the shadow, with CR number, type and GPR", () => {
    const m = machine([0x0f, 0x22, 0xc3], (s) => { s.ebx = 0x10 | TS; }); // mov cr0, ebx
    const before = m.state();
    const ic = m.cpu.intercepts;
    ic.cr0Mask = TS; ic.cr0Shadow = 0;
    expect(m.cpu.run(1)).toBe(CpuExitReason.CrAccess);
    const e = m.cpu.exit;
    expect([e.crNumber, e.crAccessType, e.crGpr, e.instrLen]).toEqual([0, CrAccessType.MovToCr, 3, 3]);
    expect(m.state()).toEqual(before);
  });

  it("MOV to CR0 matching the shadow in masked bits does not exit and leaves masked bits unchanged", () => {
    const m = machine([0x0f, 0x22, 0xc3], (s) => { s.ebx = 0x10 | MP; s.cr0 = 0x10 | TS; });
    const ic = m.cpu.intercepts;
    ic.cr0Mask = TS; ic.cr0Shadow = 0;
    expect(m.cpu.run(1)).toBe(CpuExitReason.Budget);
    expect(m.state().cr0).toBe(0x10 | MP | TS);
  });

  it("MOV from CR0/CR4 and SMSW read the shadow in masked bits", () => {
    // mov eax, cr0 ; mov ecx, cr4 ; smsw dx
    const m = machine([0x0f, 0x20, 0xc0, 0x0f, 0x20, 0xe1, 0x0f, 0x01, 0xe2], (s) => { s.cr0 = 0x10 | TS; s.cr4 = 0x20; });
    const ic = m.cpu.intercepts;
    ic.cr0Mask = TS | MP; ic.cr0Shadow = MP; ic.cr4Mask = 0x20 | 0x1; ic.cr4Shadow = 0x1;
    m.cpu.run(3);
    const s = m.state();
    expect([s.eax, s.ecx, s.edx & 0xffff]).toEqual([0x10 | MP, 0x1, 0x10 | MP]);
    expect([s.cr0, s.cr4]).toEqual([0x10 | TS, 0x20]); // the real values are untouched
  });

  it("MOV to CR4 exits on a masked bit differing from the shadow", () => {
    const m = machine([0x0f, 0x22, 0xe1], (s) => { s.ecx = 0x20; }); // mov cr4, ecx
    m.cpu.intercepts.cr4Mask = 0x20;
    expect(m.cpu.run(1)).toBe(CpuExitReason.CrAccess);
    expect([m.cpu.exit.crNumber, m.cpu.exit.crAccessType, m.cpu.exit.crGpr]).toEqual([4, CrAccessType.MovToCr, 1]);
  });

  it("CR3 load and store exiting", () => {
    const w = machine([0x0f, 0x22, 0xda], (s) => { s.edx = 0x5000; }); // mov cr3, edx
    w.cpu.intercepts.cr3LoadExit = true;
    expect(w.cpu.run(1)).toBe(CpuExitReason.CrAccess);
    expect([w.cpu.exit.crNumber, w.cpu.exit.crAccessType, w.cpu.exit.crGpr, w.state().cr3]).toEqual([3, CrAccessType.MovToCr, 2, 0]);
    const r = machine([0x0f, 0x20, 0xde], (s) => { s.cr3 = 0x7000; }); // mov esi, cr3
    r.cpu.intercepts.cr3StoreExit = true;
    expect(r.cpu.run(1)).toBe(CpuExitReason.CrAccess);
    expect([r.cpu.exit.crNumber, r.cpu.exit.crAccessType, r.cpu.exit.crGpr, r.state().esi]).toEqual([3, CrAccessType.MovFromCr, 6, 0]);
  });

  it("CLTS exits when TS is masked with shadow TS = 1, and leaves TS alone when the shadow's TS is 0", () => {
    const m = machine([0x0f, 0x06], (s) => { s.cr0 = 0x10 | TS; });
    m.cpu.intercepts.cr0Mask = TS; m.cpu.intercepts.cr0Shadow = TS;
    expect(m.cpu.run(1)).toBe(CpuExitReason.CrAccess);
    expect([m.cpu.exit.crNumber, m.cpu.exit.crAccessType]).toEqual([0, CrAccessType.Clts]);
    m.cpu.intercepts.cr0Shadow = 0;
    expect(m.cpu.run(1)).toBe(CpuExitReason.Budget);
    expect(m.state().cr0 & TS).toBe(TS);
    const u = machine([0x0f, 0x06], (s) => { s.cr0 = 0x10 | TS; });
    u.cpu.run(1);
    expect(u.state().cr0 & TS).toBe(0);
  });

  it("LMSW exits setting a masked PE whose shadow is 0, reporting the source and operand type", () => {
    const m = machine([0x0f, 0x01, 0xf0], (s) => { s.eax = 0xab01; }); // lmsw ax
    m.cpu.intercepts.cr0Mask = 1;
    expect(m.cpu.run(1)).toBe(CpuExitReason.CrAccess);
    const e = m.cpu.exit;
    expect([e.crNumber, e.crAccessType, e.lmswSource, e.lmswMem]).toEqual([0, CrAccessType.Lmsw, 0xab01, false]);
    expect(m.state().cr0 & 1).toBe(0);
  });

  it("LMSW from memory reports its linear address; a masked MP differing from the shadow exits", () => {
    const m = machine([0x0f, 0x01, 0x37], (s) => { s.ebx = 0x40; }); // lmsw [bx]
    m.mem.write16(DATA + 0x40, MP);
    m.cpu.intercepts.cr0Mask = MP;
    expect(m.cpu.run(1)).toBe(CpuExitReason.CrAccess);
    expect([m.cpu.exit.lmswSource, m.cpu.exit.lmswMem, m.cpu.exit.linear]).toEqual([MP, true, DATA + 0x40]);
  });

  it("LMSW that does not exit leaves masked bits unmodified", () => {
    const m = machine([0x0f, 0x01, 0xf0], (s) => { s.eax = MP | TS; s.cr0 = 0x10; });
    m.cpu.intercepts.cr0Mask = 1; // PE masked, shadow 0, source PE = 0: no exit
    expect(m.cpu.run(1)).toBe(CpuExitReason.Budget);
    expect(m.state().cr0).toBe(0x10 | MP | TS);
  });
});

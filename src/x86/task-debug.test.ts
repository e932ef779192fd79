// Protected-mode event details (SDM Vol. 3A 6.12.1, 7.2.1, 7.6, 17.2.3, 17.3.1): RF in
// the EFLAGS image of fault frames and its one-instruction lifetime, the TSS T bit
// (#DB with DR6.BT after a task switch), and task switches through a 16-bit TSS, which
// leave the upper halves of the 32-bit registers alone. Small hand-assembled programs
// on X86Cpu + FlatMemory with a flat GDT, an IDT and two TSSs.
import { describe, expect, it } from "vitest";
import { X86Cpu } from "./cpu.js";
import { FlatMemory } from "./memory.js";
import { resetState } from "./state.js";
import { CpuExitReason } from "./types.js";
import type { SegmentReg, X86State } from "./types.js";
import { NO_IO } from "./testing.js";

const GDT = 0x1000, IDT = 0x2000, TSS_A = 0x3000, TSS_B = 0x3400;
const CODE0 = 0x10000, CODE_B = 0x18000, HANDLER = 0x30000, STACK0 = 0x8000, STACK_B = 0xa000, DATA = 0x5000;
const CS0 = 0x08, DS0 = 0x10, TSSA = 0x18, TSSB = 0x20, TSSB16 = 0x28, CS16 = 0x30, TASKGATE_B = 0x38;
const GDT_LIMIT = 0x40 - 1;
const RF = 0x10000, TF = 0x100, NT = 0x4000;
const DR6_BT = 0x8000, DR6_BS = 0x4000;
const EAX = 0, ECX = 1, EBX = 3;

const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const le16 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff];
const A = {
  movImm: (r: number, v: number) => [0xb8 + r, ...le32(v)],
  movDs: (r: number) => [0x8e, 0xd8 | r],
  storeEax: (addr: number) => [0xa3, ...le32(addr)],
  /** mov eax, [esp + d8] */
  eaxFromStack: (d: number) => [0x8b, 0x44, 0x24, d],
  /** mov [esp + d8], eax */
  eaxToStack: (d: number) => [0x89, 0x44, 0x24, d],
  /** or dword [esp + d8], imm32 */
  orStack: (d: number, v: number) => [0x81, 0x4c, 0x24, d, ...le32(v)],
  /** add dword [abs], imm8 */
  incMem: (addr: number) => [0x83, 0x05, ...le32(addr), 1],
  addEsp: (v: number) => [0x83, 0xc4, v],
  jmpFar: (sel: number, off: number) => [0xea, ...le32(off), ...le16(sel)],
  callFar: (sel: number, off: number) => [0x9a, ...le32(off), ...le16(sel)],
  movToDr: (n: number, r: number) => [0x0f, 0x23, 0xc0 | (n << 3) | r],
  movFromDr: (r: number, n: number) => [0x0f, 0x21, 0xc0 | (n << 3) | r],
  pushImm: (v: number) => [0x68, ...le32(v)],
  iretd: () => [0xcf],
  int3: () => [0xcc],
  int: (n: number) => [0xcd, n],
  ud2: () => [0x0f, 0x0b],
  nop: () => [0x90],
  hlt: () => [0xf4],
  incEbx: () => [0x43],
};
const asm = (...parts: number[][]): number[] => parts.flat();

class Machine {
  readonly mem = new FlatMemory(0x100000);
  readonly cpu = new X86Cpu(this.mem, NO_IO);
  constructor() {
    this.desc(CS0, 0, 0xfffff, 0x9a, 0xc);
    this.desc(DS0, 0, 0xfffff, 0x92, 0xc);
    this.desc(TSSA, TSS_A, 0x67, 0x8b, 0); // busy: the running task
    this.desc(TSSB, TSS_B, 0x67, 0x89, 0);
    this.desc(TSSB16, TSS_B, 0x2b, 0x81, 0);
    this.desc(CS16, 0, 0xffff, 0x9a, 0);
    this.w32(GDT + TASKGATE_B, TSSB << 16); this.w32(GDT + TASKGATE_B + 4, 0x8500);
    this.w32(TSS_A + 4, STACK0); this.w16(TSS_A + 8, DS0);
    this.cpu.intercepts.hlt = true;
  }
  w16(a: number, v: number): void { this.mem.write16(a, v); }
  w32(a: number, v: number): void { this.mem.write32(a, v >>> 0); }
  r16(a: number): number { return this.mem.read16(a); }
  r32(a: number): number { return this.mem.read32(a); }
  put(a: number, bytes: number[]): void { this.mem.bytes.set(bytes, a); }
  desc(sel: number, base: number, limit: number, access: number, flags: number): void {
    const a = GDT + sel;
    this.w32(a, ((base & 0xffff) << 16) | (limit & 0xffff));
    this.w32(a + 4, (base & 0xff000000) | ((flags & 0xf) << 20) | (limit & 0xf0000) | (access << 8) | ((base >>> 16) & 0xff));
  }
  /** IDT entry: a 32-bit interrupt gate (8Eh) to CS0:off, or a task gate (85h) to a TSS. */
  idt(vec: number, sel: number, off: number, access = 0x8e): void {
    this.w32(IDT + vec * 8, (sel << 16) | (off & 0xffff));
    this.w32(IDT + vec * 8 + 4, (off & 0xffff0000) | (access << 8));
  }
  seg(sel: number): SegmentReg {
    const a = GDT + (sel & ~7), lo = this.r32(a), hi = this.r32(a + 4);
    let limit = (lo & 0xffff) | (hi & 0xf0000);
    if (hi & 0x800000) limit = ((limit << 12) | 0xfff) >>> 0;
    return { selector: sel, base: ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0, limit, attrib: (hi >>> 8) & 0xf0ff };
  }
  /** Ring 0 at `eip` in task A, flat segments. */
  start(eip: number, init?: (s: X86State) => void): void {
    const s = resetState();
    s.cs = this.seg(CS0); s.ss = this.seg(DS0); s.ds = this.seg(DS0); s.es = this.seg(DS0);
    s.fs = this.seg(DS0); s.gs = this.seg(DS0);
    s.eip = eip; s.esp = STACK0; s.eflags = 0x2; s.cr0 = 0x11;
    s.gdtr = { base: GDT, limit: GDT_LIMIT };
    s.idtr = { base: IDT, limit: 0x800 - 1 };
    s.tr = this.seg(TSSA);
    s.ldtr = { selector: 0, base: 0, limit: 0, attrib: 0x10000 };
    init?.(s);
    this.cpu.setState(s);
  }
  state(): X86State { const s = resetState(); this.cpu.getState(s); return s; }
  /** Run to the HLT; returns its state. */
  runToHlt(n = 2000): X86State {
    expect(this.cpu.run(n)).toBe(CpuExitReason.Hlt);
    return this.state();
  }
  /** Task B: 32-bit at CODE_B with its own stack, flat segments, T bit as given. */
  taskB(code: number[], t: boolean): void {
    this.put(CODE_B, code);
    this.w32(TSS_B + 0x20, CODE_B); this.w32(TSS_B + 0x24, 0x2);
    this.w32(TSS_B + 0x2c + 8, 0xb3b3b3b3); // EBX
    this.w32(TSS_B + 0x38, STACK_B);
    for (const off of [0x48, 0x50, 0x54, 0x58, 0x5c]) this.w16(TSS_B + off, DS0);
    this.w16(TSS_B + 0x4c, CS0);
    this.w16(TSS_B + 0x64, t ? 1 : 0);
  }
}

/** Handler that stores the pushed EFLAGS (at [esp + d]) in DATA and halts. */
function frameEflagsHandler(d: number): number[] {
  return asm(A.eaxFromStack(d), A.storeEax(DATA), A.hlt());
}

describe("RF in exception frames (SDM 17.3.1.1, 6.12.1)", () => {
  it("a #GP fault pushes RF = 1 in the EFLAGS image; the handler runs with RF = 0", () => {
    const m = new Machine();
    m.idt(13, CS0, HANDLER);
    m.put(HANDLER, frameEflagsHandler(12)); // error code, EIP, CS, EFLAGS
    m.put(CODE0, asm(A.movImm(EAX, TSSA), A.movDs(EAX))); // a TSS selector into DS: #GP(18h)
    m.start(CODE0);
    const s = m.runToHlt();
    expect(m.r32(DATA) & RF).toBe(RF);
    expect(s.eflags & RF).toBe(0);
    expect(m.r32(STACK0 - 12)).toBe(CODE0 + 5); // the frame's EIP: the faulting MOV DS
  });

  it("#UD (a fault without error code) pushes RF = 1; INT3 and INT n (traps) push RF = 0", () => {
    const ud = new Machine();
    ud.idt(6, CS0, HANDLER);
    ud.put(HANDLER, frameEflagsHandler(8));
    ud.put(CODE0, A.ud2());
    ud.start(CODE0);
    ud.runToHlt();
    expect(ud.r32(DATA) & RF).toBe(RF);
    for (const code of [A.int3(), A.int(0x40)]) {
      const m = new Machine();
      m.idt(3, CS0, HANDLER); m.idt(0x40, CS0, HANDLER);
      m.put(HANDLER, frameEflagsHandler(8));
      m.put(CODE0, code);
      m.start(CODE0);
      m.runToHlt();
      expect(m.r32(DATA) & RF).toBe(0);
    }
  });

  it("RF loaded by IRET lasts one instruction: the INT3 after the next one pushes RF = 0, as does an INT3 right after", () => {
    for (const between of [[], A.nop()]) {
      const m = new Machine();
      m.idt(3, CS0, HANDLER);
      m.put(HANDLER, frameEflagsHandler(8));
      const target = CODE0 + 16;
      // push EFLAGS with RF, CS, target; IRETD -> [nop]; int3
      m.put(CODE0, asm(A.pushImm(RF | 0x2), A.pushImm(CS0), A.pushImm(target), A.iretd()));
      m.put(target, asm(between, A.int3()));
      m.start(CODE0);
      m.runToHlt();
      expect(m.r32(DATA) & RF).toBe(0);
    }
  });

  it("an instruction breakpoint pushes RF = 0; IRET with RF set in the image runs the instruction once, and RF is clear again after it", () => {
    const m = new Machine();
    // #DB handler: count in DATA+4, set RF in the image, IRET. The breakpoint is on INC EBX in a 3-pass loop.
    m.idt(1, CS0, HANDLER);
    m.put(HANDLER, asm(A.eaxFromStack(8), A.storeEax(DATA), A.incMem(DATA + 4), A.orStack(8, RF), A.iretd()));
    const setup = (t: number): number[] => asm(A.movImm(EAX, t), A.movToDr(0, EAX), A.movImm(EAX, 0x401), A.movToDr(7, EAX), A.nop());
    const target = CODE0 + setup(0).length;
    m.put(CODE0, setup(target));
    // target: inc ebx; dec ecx (49h); jnz target (75 FB); hlt
    m.put(target, asm(A.incEbx(), [0x49, 0x75, 0xfc], A.hlt()));
    expect(m.mem.bytes[target + 2]).toBe(0x75);
    m.start(CODE0, (s) => { s.ecx = 3; s.ebx = 0; });
    const s = m.runToHlt();
    expect(s.ebx).toBe(3); // each pass ran INC EBX exactly once
    expect(m.r32(DATA + 4)).toBe(3); // and each pass hit the breakpoint again: RF was cleared after INC EBX
    expect(m.r32(DATA) & RF).toBe(0); // the #DB frame's own RF
  });

  it("a faulting instruction under a breakpoint: #DB first, then the fault pushes RF = 1, and IRET resumes it without a second #DB", () => {
    const m = new Machine();
    m.idt(1, CS0, HANDLER);
    m.put(HANDLER, asm(A.incMem(DATA + 4), A.orStack(8, RF), A.iretd()));
    // #GP handler: record the image's RF, make EAX a good selector, drop the error code, IRET (the image already has RF).
    const GP_HANDLER = HANDLER + 0x100;
    m.idt(13, CS0, GP_HANDLER);
    m.put(GP_HANDLER, asm(A.eaxFromStack(12), A.storeEax(DATA), A.movImm(EAX, DS0), A.addEsp(4), A.iretd()));
    const setup = (t: number): number[] => asm(A.movImm(EAX, t), A.movToDr(0, EAX), A.movImm(EAX, 0x401), A.movToDr(7, EAX), A.movImm(EAX, TSSA));
    const target = CODE0 + setup(0).length;
    m.put(CODE0, setup(target));
    m.put(target, asm(A.movDs(EAX), A.movImm(EBX, 0x5a), A.hlt()));
    m.start(CODE0);
    const s = m.runToHlt();
    expect(m.r32(DATA + 4)).toBe(1); // one #DB
    expect(m.r32(DATA) & RF).toBe(RF); // the #GP frame had RF = 1
    expect(s.ds.selector).toBe(DS0);
    expect(s.ebx).toBe(0x5a);
  });
});

describe("far-pointer loads (SDM Vol. 2 LDS/LES/LFS/LGS/LSS)", () => {
  it("a faulting segment load leaves the offset register unchanged", () => {
    const m = new Machine();
    m.idt(13, CS0, HANDLER);
    m.put(HANDLER, asm(A.eaxFromStack(0), A.storeEax(DATA), A.hlt())); // the error code
    m.w32(DATA + 0x10, 0x12345678); m.w16(DATA + 0x14, TSSA); // offset, selector: a TSS is no data segment
    m.put(CODE0, [0xc5, 0x1d, ...le32(DATA + 0x10)]); // lds ebx, [DATA+10h]
    m.start(CODE0, (s) => { s.ebx = 0xcafe; });
    const s = m.runToHlt();
    expect(m.r32(DATA)).toBe(TSSA); // #GP(selector)
    expect(s.ebx).toBe(0xcafe);
    expect(s.ds.selector).toBe(DS0);
  });
});

describe("TSS T bit (SDM 7.2.1, 17.2.3, 17.3.1.5)", () => {
  /** #DB handler: DR6 into EAX, the frame's EIP into ECX, halt. */
  function dbHandler(m: Machine): void {
    m.idt(1, CS0, HANDLER);
    m.put(HANDLER, asm(A.movFromDr(EAX, 6), [0x8b, 0x0c, 0x24], A.hlt())); // mov ecx, [esp]
  }

  it("JMP to a task whose T bit is set raises #DB with DR6.BT before the task's first instruction", () => {
    const m = new Machine();
    dbHandler(m);
    m.taskB(asm(A.incEbx(), A.hlt()), true);
    m.put(CODE0, A.jmpFar(TSSB, 0));
    m.start(CODE0);
    const s = m.runToHlt();
    expect(s.eax & DR6_BT).toBe(DR6_BT);
    expect(s.eax & DR6_BS).toBe(0);
    expect(s.tr.selector).toBe(TSSB); // taken in the new task
    expect(s.ecx).toBe(CODE_B); // the frame points at its first instruction
    expect(s.ebx).toBe(0xb3b3b3b3); // which has not run
  });

  it("with T clear there is no #DB, and the task runs", () => {
    const m = new Machine();
    dbHandler(m);
    m.taskB(asm(A.incEbx(), A.hlt()), false);
    m.put(CODE0, A.jmpFar(TSSB, 0));
    m.start(CODE0);
    const s = m.runToHlt();
    expect(s.eip).toBe(CODE_B + 1); // stopped at the HLT
    expect(s.ebx).toBe(0xb3b3b3b4);
  });

  it("INT n through a task gate to a T = 1 task: #DB with BT in the new task, then IRET runs it", () => {
    const m = new Machine();
    m.idt(1, CS0, HANDLER);
    // #DB handler: DR6 into DATA, IRET to the task.
    m.put(HANDLER, asm(A.movFromDr(EAX, 6), A.storeEax(DATA), A.iretd()));
    m.idt(0x50, TSSB, 0, 0x85);
    m.taskB(asm(A.incEbx(), A.hlt()), true);
    m.put(CODE0, A.int(0x50));
    m.start(CODE0);
    const s = m.runToHlt();
    expect(m.r32(DATA) & DR6_BT).toBe(DR6_BT);
    expect(s.tr.selector).toBe(TSSB);
    expect(s.ebx).toBe(0xb3b3b3b4);
    expect(s.eflags & NT).toBe(NT); // the gate nested the task
  });

  it("a task switch by a JMP single-stepped with TF reports BS and BT in one #DB", () => {
    const m = new Machine();
    dbHandler(m);
    m.taskB(asm(A.incEbx(), A.hlt()), true);
    m.put(CODE0, A.jmpFar(TSSB, 0));
    m.start(CODE0, (s) => { s.eflags = 0x2 | TF; });
    const s = m.runToHlt();
    expect(s.eax & (DR6_BT | DR6_BS)).toBe(DR6_BT | DR6_BS);
    expect(s.ecx).toBe(CODE_B);
    expect(s.ebx).toBe(0xb3b3b3b3);
  });
});

describe("task switches through a 16-bit TSS (SDM 7.6)", () => {
  /** Task B as a 16-bit task: 16-bit code at CODE_B's low 64 KiB offset, 16-bit registers. */
  function task16(m: Machine, code: number[]): void {
    const ip = 0x8000;
    m.put(ip, code); // CS16 has base 0
    m.w16(TSS_B + 0x0e, ip); m.w16(TSS_B + 0x10, 0x2);
    [0x1111, 0x2222, 0x3333, 0x4444, STACK_B, 0x6666, 0x7777, 0x8888].forEach((v, i) => m.w16(TSS_B + 0x12 + i * 2, v));
    m.w16(TSS_B + 0x22, DS0); m.w16(TSS_B + 0x24, CS16); m.w16(TSS_B + 0x26, DS0); m.w16(TSS_B + 0x28, DS0);
    m.w16(TSS_B + 0x2a, 0); // LDT
    m.w32(TSS_B + 0x2c, 0xdeadbeef); // beyond the 16-bit TSS: must stay untouched
  }
  const HIGH = [0xa0010000, 0xa0020000, 0xa0030000, 0xa0040000, 0, 0xa0060000, 0xa0070000, 0xa0080000];
  const init = (s: X86State): void => {
    s.eax = HIGH[0] | 0xaaaa; s.ecx = HIGH[1] | 0xaaaa; s.edx = HIGH[2] | 0xaaaa; s.ebx = HIGH[3] | 0xaaaa;
    s.ebp = HIGH[5] | 0xaaaa; s.esi = HIGH[6] | 0xaaaa; s.edi = HIGH[7] | 0xaaaa;
  };

  it("loading a 16-bit task replaces the low 16 bits of each GPR and keeps the upper halves", () => {
    const m = new Machine();
    task16(m, [0xf4]); // hlt
    m.put(CODE0, A.jmpFar(TSSB16, 0));
    m.start(CODE0, init);
    const s = m.runToHlt();
    expect(s.tr.selector).toBe(TSSB16);
    expect(s.cs.selector).toBe(CS16);
    expect([s.eax, s.ecx, s.edx, s.ebx, s.ebp, s.esi, s.edi].map((v) => v >>> 0)).toEqual(
      [0x1111, 0x2222, 0x3333, 0x4444, 0x6666, 0x7777, 0x8888].map((v, i) => (HIGH[[0, 1, 2, 3, 5, 6, 7][i]] | v) >>> 0));
    expect(s.esp & 0xffff).toBe(STACK_B);
    expect(s.fs.selector).toBe(0); // a 16-bit TSS has no FS/GS: they are loaded null
    expect(s.gs.selector).toBe(0);
  });

  it("switching out of a 16-bit task saves 16-bit state only; IRET back to the 32-bit caller restores its full registers", () => {
    const m = new Machine();
    // 16-bit task: mov ax, 5555h; mov [5000h], eax (66 A3, 16-bit address); iret (NT: back to task A)
    task16(m, [0xb8, 0x55, 0x55, 0x66, 0xa3, 0x00, 0x50, 0xcf]);
    m.put(CODE0, asm(A.callFar(TSSB16, 0), A.hlt()));
    m.start(CODE0, init);
    const s = m.runToHlt();
    // In the 16-bit task EAX kept task A's upper half.
    expect(m.r32(DATA) >>> 0).toBe((HIGH[0] | 0x5555) >>> 0);
    // Its TSS got the 16-bit AX and IP back; the dword beyond the 16-bit TSS is untouched.
    expect(m.r16(TSS_B + 0x12)).toBe(0x5555);
    expect(m.r16(TSS_B + 0x0e)).toBe(0x8008);
    expect(m.r32(TSS_B + 0x2c) >>> 0).toBe(0xdeadbeef);
    expect(m.r16(TSS_B)).toBe(TSSA); // back link
    // Task A resumed after the CALL with its own 32-bit registers from its TSS.
    expect(s.tr.selector).toBe(TSSA);
    expect(s.eip).toBe(CODE0 + 7);
    expect(s.eax >>> 0).toBe((HIGH[0] | 0xaaaa) >>> 0);
    expect(s.edi >>> 0).toBe((HIGH[7] | 0xaaaa) >>> 0);
  });
});

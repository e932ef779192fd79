import { describe, expect, it } from "vitest";
import { X86Cpu } from "./cpu.js";
import { FlatMemory } from "./memory.js";
import { cloneState, realModeState, resetState } from "./state.js";
import { Activity, CpuExitReason, EventType, SoftIntKind } from "./types.js";
import type { AccessSize, IoPorts, X86State } from "./types.js";

const CODE_SEG = 0x1000; // code at linear 0x10000
const STACK_SEG = 0x2000; // stack at 0x20000, SP 0x100

class RecordingIo implements IoPorts {
  outs: Array<[number, number, number]> = [];
  ins: Array<[number, number]> = [];
  inValue = 0x5a;
  in(port: number, size: AccessSize): number { this.ins.push([port, size]); return this.inValue; }
  out(port: number, size: AccessSize, value: number): void { this.outs.push([port, size, value]); }
}

function machine(code: number[], init?: (s: X86State) => void) {
  const mem = new FlatMemory(0x110000);
  const io = new RecordingIo();
  const cpu = new X86Cpu(mem, io);
  mem.bytes.set(code, CODE_SEG * 16);
  const s = realModeState(CODE_SEG, 0);
  s.ss.selector = STACK_SEG; s.ss.base = STACK_SEG * 16; s.esp = 0x100;
  s.eflags = 0x2;
  init?.(s);
  cpu.setState(s);
  const state = () => { const o = resetState(); cpu.getState(o); return o; };
  /** Point IVT vector v at seg:off. */
  const vector = (v: number, seg: number, off: number) => { mem.write16(v * 4, off); mem.write16(v * 4 + 2, seg); };
  const stackWord = (i: number) => mem.read16(STACK_SEG * 16 + ((state().esp + 2 * i) & 0xffff));
  return { mem, io, cpu, state, vector, stackWord };
}

describe("X86Cpu intercepts", () => {
  it("HLT intercept stops before the instruction with its length, prefixes included", () => {
    const m = machine([0x90, 0x2e, 0xf4]);
    m.cpu.intercepts.hlt = true;
    expect(m.cpu.run(10)).toBe(CpuExitReason.Hlt);
    expect(m.cpu.exit.reason).toBe(CpuExitReason.Hlt);
    expect(m.cpu.exit.instrLen).toBe(2);
    expect(m.state().eip).toBe(1);
    expect(m.state().activity).toBe(Activity.Active);
  });

  it("HLT without the intercept halts after the instruction and an external interrupt wakes it", () => {
    const m = machine([0xf4, 0x90]);
    m.vector(0x20, 0x3000, 0x10);
    expect(m.cpu.run(10)).toBe(CpuExitReason.Halted);
    expect(m.state().activity).toBe(Activity.Hlt);
    expect(m.state().eip).toBe(1);
    expect(m.cpu.run(10)).toBe(CpuExitReason.Halted); // still waiting
    m.cpu.deliverEvent(EventType.ExtInt, 0x20, 0, false);
    const s = m.state();
    expect(s.activity).toBe(Activity.Active);
    expect(s.cs.selector).toBe(0x3000);
    expect(s.cs.base).toBe(0x30000);
    expect(s.eip).toBe(0x10);
    expect(m.stackWord(0)).toBe(1); // return IP: the instruction after HLT
    expect(m.stackWord(1)).toBe(CODE_SEG);
  });

  it("CPUID intercept stops before 0F A2 and leaves registers alone", () => {
    const m = machine([0x0f, 0xa2]);
    m.cpu.intercepts.cpuid = true;
    expect(m.cpu.run(5)).toBe(CpuExitReason.Cpuid);
    expect(m.cpu.exit.instrLen).toBe(2);
    expect(m.state().eip).toBe(0);
    expect(m.state().ebx).toBe(0);
  });

  it("CPUID without the intercept reports the minimal profile with exactly the implemented features", () => {
    const m = machine([0x0f, 0xa2, 0x66, 0xb8, 1, 0, 0, 0, 0x0f, 0xa2]);
    m.cpu.run(1);
    const s = m.state();
    const vendor = Buffer.alloc(12);
    vendor.writeUInt32LE(s.ebx, 0); vendor.writeUInt32LE(s.edx, 4); vendor.writeUInt32LE(s.ecx, 8);
    expect(vendor.toString("latin1")).toBe("hvkitSoftx86");
    expect(s.eax).toBe(0xd); // max basic leaf: 0Dh, the XSAVE leaf (xsave.test.ts)
    m.cpu.run(2);
    expect(m.state().eax).toBe(0x6d8); // family 6 model 13 stepping 8
    // FPU, DE, PSE, TSC, MSR, PAE, CX8, SEP, MTRR, PGE, CMOV, PAT, FXSR: what the core implements.
    expect(m.state().edx).toBe((1 | 4 | 8 | 16 | 32 | 64 | 256 | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 15) | (1 << 16) | (1 << 24)) >>> 0);
  });

  it("IN imm8 with ioAll exits with port, size and the imm flag", () => {
    const m = machine([0x66, 0xe5, 0x60]);
    m.cpu.intercepts.ioAll = true;
    expect(m.cpu.run(5)).toBe(CpuExitReason.Io);
    const e = m.cpu.exit;
    expect([e.ioPort, e.ioSize, e.ioIn, e.ioImm, e.ioString, e.instrLen]).toEqual([0x60, 4, true, true, false, 3]);
    expect(m.state().eip).toBe(0);
    expect(m.io.ins).toEqual([]);
  });

  it("the I/O bitmap exits only for set ports; others go to IoPorts", () => {
    const m = machine([0xee, 0xee], (s) => { s.edx = 0x3f8; s.eax = 0x41; });
    const bm = new Uint8Array(8192);
    m.cpu.intercepts.ioBitmap = bm;
    expect(m.cpu.run(1)).toBe(CpuExitReason.Budget);
    expect(m.io.outs).toEqual([[0x3f8, 1, 0x41]]);
    bm[0x3f8 >> 3] |= 1 << (0x3f8 & 7);
    expect(m.cpu.run(1)).toBe(CpuExitReason.Io);
    expect([m.cpu.exit.ioPort, m.cpu.exit.ioIn, m.cpu.exit.ioImm, m.cpu.exit.instrLen]).toEqual([0x3f8, false, false, 1]);
    expect(m.state().eip).toBe(1);
    expect(m.io.outs.length).toBe(1);
  });

  it("a word access exits when only its second port is in the bitmap", () => {
    const m = machine([0xed], (s) => { s.edx = 0x71; });
    const bm = new Uint8Array(8192);
    bm[0x72 >> 3] |= 1 << (0x72 & 7);
    m.cpu.intercepts.ioBitmap = bm;
    expect(m.cpu.run(1)).toBe(CpuExitReason.Io);
    expect(m.cpu.exit.ioSize).toBe(2);
  });

  it("REP OUTSB with an ES override reports string, rep and the source segment", () => {
    const m = machine([0x26, 0xf3, 0x6e], (s) => { s.edx = 0xe9; s.ecx = 3; });
    m.cpu.intercepts.ioAll = true;
    expect(m.cpu.run(1)).toBe(CpuExitReason.Io);
    const e = m.cpu.exit;
    expect([e.ioString, e.ioRep, e.ioSeg, e.ioAddrSize, e.instrLen, e.ioIn]).toEqual([true, true, 0, 2, 3, false]);
    expect(m.state().ecx).toBe(3);
  });

  it("INT n in softIntBitmap exits before vectoring", () => {
    const m = machine([0xcd, 0x21]);
    const bm = new Uint8Array(32);
    bm[0x21 >> 3] |= 1 << (0x21 & 7);
    m.cpu.intercepts.softIntBitmap = bm;
    expect(m.cpu.run(3)).toBe(CpuExitReason.SoftInt);
    expect([m.cpu.exit.vector, m.cpu.exit.softIntKind, m.cpu.exit.instrLen]).toEqual([0x21, SoftIntKind.IntN, 2]);
    expect(m.state().eip).toBe(0);
    expect(m.state().esp).toBe(0x100);
  });

  it("INT3 in the exception bitmap exits at the instruction with its length", () => {
    const m = machine([0x90, 0xcc]);
    m.cpu.intercepts.exceptionBitmap = 1 << 3;
    expect(m.cpu.run(5)).toBe(CpuExitReason.Exception);
    expect([m.cpu.exit.vector, m.cpu.exit.instrLen, m.cpu.exit.softIntKind]).toEqual([3, 1, SoftIntKind.Int3]);
    expect(m.state().eip).toBe(1);
    expect(m.state().esp).toBe(0x100);
  });

  it("an intercepted exception exits with EIP at the faulting instruction", () => {
    const m = machine([0x90, 0xf6, 0xf3], (s) => { s.eax = 0x10; s.ebx = 0; }); // DIV BL, BL = 0
    m.cpu.intercepts.exceptionBitmap = 1 << 0;
    expect(m.cpu.run(5)).toBe(CpuExitReason.Exception);
    expect(m.cpu.exit.vector).toBe(0);
    expect(m.state().eip).toBe(1);
    expect(m.state().esp).toBe(0x100);
  });
});

describe("X86Cpu interrupts and exceptions", () => {
  it("INT n pushes FLAGS, CS, IP and clears IF and TF (SDM 20.1.4)", () => {
    const m = machine([0xcd, 0x10], (s) => { s.eflags = 0x2 | 0x200 | 0x1; });
    m.vector(0x10, 0xc000, 0x1234);
    m.cpu.run(1);
    const s = m.state();
    expect(s.cs.selector).toBe(0xc000);
    expect(s.cs.base).toBe(0xc0000);
    expect(s.eip).toBe(0x1234);
    expect(s.esp).toBe(0xfa);
    expect(m.stackWord(0)).toBe(2);
    expect(m.stackWord(1)).toBe(CODE_SEG);
    expect(m.stackWord(2)).toBe(0x203);
    expect(s.eflags & 0x300).toBe(0);
    expect(s.eflags & 1).toBe(1);
  });

  it("IRET returns to the pushed CS:IP and restores FLAGS", () => {
    const m = machine([0xcd, 0x10, 0x90]);
    m.vector(0x10, 0x3000, 0);
    m.mem.write8(0x30000, 0xcf);
    m.cpu.run(1);
    m.cpu.setState({ ...m.state(), eflags: 0x2 });
    m.cpu.run(1);
    expect(m.state().cs.selector).toBe(CODE_SEG);
    expect(m.state().eip).toBe(2);
    expect(m.state().esp).toBe(0x100);
  });

  it("#DE on DIV by zero pushes the address of the DIV itself", () => {
    const m = machine([0x90, 0xf7, 0xf1], (s) => { s.ecx = 0; s.eax = 5; });
    m.vector(0, 0x3000, 0x40);
    m.cpu.run(2);
    const s = m.state();
    expect([s.cs.selector, s.eip]).toEqual([0x3000, 0x40]);
    expect(m.stackWord(0)).toBe(1);
    expect(s.eax).toBe(5);
  });

  it("#DE when the quotient overflows", () => {
    const m = machine([0xf6, 0xf3], (s) => { s.eax = 0x1000; s.ebx = 2; }); // 0x1000/2 > 0xFF
    m.vector(0, 0x3000, 0);
    m.cpu.run(1);
    expect(m.state().cs.selector).toBe(0x3000);
    expect(m.state().eax).toBe(0x1000);
  });

  it("a fault while delivering escalates to #DF, and a fault delivering #DF is a triple fault", () => {
    // IVT limit 3 holds only vector 0: #UD (6) cannot be delivered -> #DF (8) neither -> shutdown.
    const m = machine([0x0f, 0xff], (s) => { s.idtr.limit = 3; });
    expect(m.cpu.run(5)).toBe(CpuExitReason.TripleFault);
    expect(m.state().activity).toBe(Activity.Shutdown);
    expect(m.cpu.run(5)).toBe(CpuExitReason.TripleFault);
  });

  it("a fault while delivering is delivered as #DF when the #DF vector is reachable", () => {
    const m = machine([0xcd, 0x40], (s) => { s.idtr.limit = 8 * 4 + 3; }); // INT 40h beyond the IVT limit
    m.vector(8, 0x3000, 0x80);
    expect(m.cpu.run(1)).toBe(CpuExitReason.Budget);
    expect([m.state().cs.selector, m.state().eip]).toEqual([0x3000, 0x80]);
  });

  it("STI blocks interrupts for exactly one more instruction", () => {
    const m = machine([0xfb, 0x90, 0x90]);
    expect(m.cpu.interruptible()).toBe(false); // IF = 0
    m.cpu.run(1);
    expect(m.state().eflags & 0x200).toBe(0x200);
    expect(m.cpu.interruptible()).toBe(false);
    expect(m.state().interruptibility & 1).toBe(1);
    m.cpu.run(1);
    expect(m.cpu.interruptible()).toBe(true);
  });

  it("an intercepted instruction under the STI shadow keeps the shadow (it did not execute)", () => {
    const m = machine([0xfb, 0xe6, 0x80, 0x90]); // sti; out 0x80,al; nop
    m.cpu.intercepts.ioAll = true;
    expect(m.cpu.run(10)).toBe(CpuExitReason.Io);
    expect(m.state().eip).toBe(1);
    expect(m.state().interruptibility & 1).toBe(1);
    expect(m.cpu.interruptible()).toBe(false);
  });

  it("STI with IF already set opens no shadow", () => {
    const m = machine([0xfb], (s) => { s.eflags = 0x202; });
    m.cpu.run(1);
    expect(m.cpu.interruptible()).toBe(true);
  });

  it("MOV SS blocks interrupts for the next instruction", () => {
    const m = machine([0x8e, 0xd0, 0x90], (s) => { s.eflags = 0x202; s.eax = 0x2000; });
    m.cpu.run(1);
    expect(m.cpu.interruptible()).toBe(false);
    expect(m.state().interruptibility & 2).toBe(2);
    m.cpu.run(1);
    expect(m.cpu.interruptible()).toBe(true);
  });

  it("TF raises #DB after one instruction", () => {
    const m = machine([0x40, 0x40], (s) => { s.eflags = 0x102; });
    m.vector(1, 0x3000, 0);
    m.cpu.run(1);
    expect(m.state().eax).toBe(1);
    expect([m.state().cs.selector, m.state().eip]).toEqual([0x3000, 0]);
    expect(m.stackWord(0)).toBe(1);
  });
});

describe("X86Cpu execution", () => {
  it("run(budget) stops after budget instructions", () => {
    const m = machine([0x90, 0x90, 0x90, 0x90]);
    expect(m.cpu.run(3)).toBe(CpuExitReason.Budget);
    expect(m.state().eip).toBe(3);
  });

  it("ADD sets CF, ZF, AF, PF and OF from the result", () => {
    const m = machine([0x04, 0x80, 0x04, 0x01], (s) => { s.eax = 0x80; }); // ADD AL,80h ; ADD AL,1
    m.cpu.run(1);
    expect(m.state().eax & 0xff).toBe(0);
    expect(m.state().eflags & 0x8d5).toBe(0x1 | 0x4 | 0x40 | 0x800); // CF PF ZF OF
    m.cpu.run(1);
    expect(m.state().eflags & 0x8d5).toBe(0); // 0+1 = 1: odd parity, no flags
  });

  it("the 66 prefix gives 32-bit operands in real mode", () => {
    // MOV EAX, 0xFFFFFFFF ; ADD EAX, 1 (66 83 C0 01)
    const m = machine([0x66, 0xb8, 0xff, 0xff, 0xff, 0xff, 0x66, 0x83, 0xc0, 0x01]);
    m.cpu.run(2);
    expect(m.state().eax).toBe(0);
    expect(m.state().eflags & 0x41).toBe(0x41);
  });

  it("REP MOVSB copies CX bytes and leaves CX zero", () => {
    const m = machine([0xf3, 0xa4], (s) => {
      s.ecx = 4; s.esi = 0; s.edi = 0x10;
      s.ds.selector = 0x3000; s.ds.base = 0x30000; s.es.selector = 0x3000; s.es.base = 0x30000;
    });
    m.mem.bytes.set([1, 2, 3, 4], 0x30000);
    expect(m.cpu.run(4)).toBe(CpuExitReason.Budget); // each iteration draws one unit of the budget
    expect(Array.from(m.mem.bytes.subarray(0x30010, 0x30014))).toEqual([1, 2, 3, 4]);
    expect([m.state().ecx, m.state().esi, m.state().edi, m.state().eip]).toEqual([0, 4, 0x14, 2]);
  });

  it("the A20 mask wraps FFFF:0010 to physical 0", () => {
    const m = machine([0x26, 0xa0, 0x10, 0x00], (s) => { s.es.selector = 0xffff; s.es.base = 0xffff0; }); // MOV AL, ES:[10h]
    m.mem.write8(0, 0x11); m.mem.write8(0x100000, 0x22);
    m.cpu.run(1);
    expect(m.state().eax & 0xff).toBe(0x22);
    m.cpu.setState({ ...m.state(), eip: 0 });
    m.cpu.a20Mask = 0xffefffff;
    m.cpu.run(1);
    expect(m.state().eax & 0xff).toBe(0x11);
  });

  it("undefined opcodes raise #UD through the IVT", () => {
    const m = machine([0x0f, 0xff]);
    m.vector(6, 0x3000, 0x20);
    m.cpu.run(1);
    expect([m.state().cs.selector, m.state().eip]).toEqual([0x3000, 0x20]);
    expect(m.stackWord(0)).toBe(0);
  });

  it("getState/setState round-trip every field", () => {
    const m = machine([]);
    const s = realModeState(0x1234, 0x5678);
    Object.assign(s, {
      eax: 0x11111111, ecx: 0x22222222, edx: 0x33333333, ebx: 0x44444444,
      esp: 0x55555555, ebp: 0x66666666, esi: 0x77777777, edi: 0x88888888,
      eflags: 0x00000ad7, cr0: 0x11, cr2: 0x1234, cr3: 0x5000, cr4: 0x20, dr7: 0x401, efer: 0x100,
      activity: Activity.Hlt, interruptibility: 2,
    });
    s.fs = { selector: 0x10, base: 0x100, limit: 0xfffff, attrib: 0xc093 };
    s.ldtr = { selector: 0x28, base: 0x9000, limit: 0x37, attrib: 0x82 };
    s.tr = { selector: 0x30, base: 0xa000, limit: 0x67, attrib: 0x8b };
    s.gdtr = { base: 0x7000, limit: 0x3f };
    s.idtr = { base: 0x400, limit: 0x7ff };
    const copy = cloneState(s);
    m.cpu.setState(s);
    const out = resetState();
    m.cpu.getState(out);
    expect(out).toEqual(copy);
  });

  it("resetState is the SDM power-on state", () => {
    const s = resetState();
    expect([s.cs.selector, s.cs.base, s.eip, s.eflags]).toEqual([0xf000, 0xffff0000, 0xfff0, 2]);
    const r = realModeState(0x07c0, 0);
    expect([r.cs.base, r.cs.limit, r.cs.attrib, r.ds.attrib]).toEqual([0x7c00, 0xffff, 0x9b, 0x93]);
  });
});

describe("X86Cpu 186/386 forms", () => {
  it("ENTER builds a nested frame and LEAVE undoes it", () => {
    // ENTER 8, 2 ; LEAVE
    const m = machine([0xc8, 0x08, 0x00, 0x02, 0xc9], (s) => { s.ebp = 0x1f0; });
    m.mem.write16(STACK_SEG * 16 + 0x1ee, 0xbeef); // the outer frame pointer copied by level 2
    m.cpu.run(1);
    const s = m.state();
    // push BP (0xFE), copy [BP-2] (0xFC), push frame (0xFA), then SP -= 8
    expect([s.ebp, s.esp]).toEqual([0xfe, 0xf2]);
    expect(m.mem.read16(STACK_SEG * 16 + 0xfe)).toBe(0x1f0);
    expect(m.mem.read16(STACK_SEG * 16 + 0xfc)).toBe(0xbeef);
    expect(m.mem.read16(STACK_SEG * 16 + 0xfa)).toBe(0xfe);
    m.cpu.run(1);
    expect([m.state().ebp, m.state().esp]).toEqual([0x1f0, 0x100]);
  });

  it("the 67 prefix gives 32-bit addressing with a SIB byte", () => {
    // MOV AX, [EAX + EBX*2 + 4]  (67 8B 44 58 04)
    const m = machine([0x67, 0x8b, 0x44, 0x58, 0x04], (s) => { s.eax = 0x10; s.ebx = 0x8; });
    m.mem.write16(0x10 + 0x10 + 4, 0x1234);
    m.cpu.run(1);
    expect(m.state().eax).toBe(0x1234);
    expect(m.state().eip).toBe(5);
  });

  it("LOCK on a register destination raises #UD", () => {
    const m = machine([0xf0, 0x01, 0xc0]); // LOCK ADD AX, AX
    m.vector(6, 0x3000, 0);
    m.cpu.run(1);
    expect(m.state().cs.selector).toBe(0x3000);
    expect(m.stackWord(0)).toBe(0);
  });

  it("LOCK on a memory read-modify-write executes", () => {
    const m = machine([0xf0, 0x01, 0x07], (s) => { s.eax = 5; s.ebx = 0x40; }); // LOCK ADD [BX], AX
    m.mem.write16(0x40, 7);
    m.cpu.run(1);
    expect(m.mem.read16(0x40)).toBe(12);
    expect(m.state().eip).toBe(3);
  });

  it("BOUND raises #BR for an index outside the bounds", () => {
    const m = machine([0x62, 0x07, 0x62, 0x07], (s) => { s.eax = 5; s.ebx = 0x40; }); // BOUND AX, [BX]
    m.mem.write16(0x40, 1); m.mem.write16(0x42, 10);
    m.vector(5, 0x3000, 0);
    m.cpu.run(1);
    expect(m.state().eip).toBe(2);
    m.cpu.setState({ ...m.state(), eax: 11 });
    m.cpu.run(1);
    expect(m.state().cs.selector).toBe(0x3000);
    expect(m.stackWord(0)).toBe(2);
  });

  it("PUSHA/POPA save and restore all eight registers", () => {
    const m = machine([0x60, 0x31, 0xc0, 0x31, 0xdb, 0x61], (s) => { s.eax = 1; s.ebx = 2; s.ecx = 3; s.edi = 9; });
    m.cpu.run(3);
    expect([m.state().eax, m.state().ebx]).toEqual([0, 0]);
    m.cpu.run(1);
    const s = m.state();
    expect([s.eax, s.ebx, s.ecx, s.edi, s.esp]).toEqual([1, 2, 3, 9, 0x100]);
  });

  it("shift counts are masked to 5 bits", () => {
    const m = machine([0xc0, 0xe0, 0x21], (s) => { s.eax = 0x3; }); // SHL AL, 33 -> SHL AL, 1
    m.cpu.run(1);
    expect(m.state().eax & 0xff).toBe(6);
  });

  it("an injected exception is delivered even when its vector is intercepted", () => {
    const m = machine([0x90]);
    m.vector(13, 0x3000, 0x44);
    m.cpu.intercepts.exceptionBitmap = 1 << 13;
    m.cpu.deliverEvent(EventType.HardwareException, 13, 0, true);
    expect([m.state().cs.selector, m.state().eip]).toEqual([0x3000, 0x44]);
  });
});

// Protected mode (SDM Vol. 3A ch. 3, 5, 6, 7, 20): small hand-assembled programs on
// X86Cpu + FlatMemory. Each test builds a GDT, an IDT and TSSs in memory, starts the
// core in the state it needs and checks registers, memory and the faults' error codes.
import { describe, expect, it } from "vitest";
import { X86Cpu } from "./cpu.js";
import { FlatMemory } from "./memory.js";
import { cloneState, realModeState, resetState } from "./state.js";
import { CpuExitReason, EventType, TaskSwitchSource } from "./types.js";
import type { IoPorts, SegmentReg, X86State } from "./types.js";

// Memory map of the test machine.
const GDT = 0x1000, IDT = 0x2000, TSS_A = 0x3000, TSS_B = 0x3400, LDT = 0x3800;
const CODE0 = 0x10000, CODE3 = 0x20000, HANDLER = 0x30000, CODE_B = 0x38000;
const STACK0 = 0x8000, STACK3 = 0x9000, STACK_B = 0xa000, DATA = 0x5000;

// GDT selectors.
const CS0 = 0x08, DS0 = 0x10, CS3 = 0x18 | 3, DS3 = 0x20 | 3, TSSA = 0x28, TSSB = 0x30, CALLGATE = 0x38;
const CS16 = 0x40, RODATA = 0x48, XONLY = 0x50, EXPDOWN = 0x58, NOTPRESENT = 0x60, LDTSEL = 0x68, DS0_DPL0 = 0x70;
const TSSB16 = 0x78, TASKGATE = 0x80, DS3_NP_SS = 0x88, CODE3_CONF = 0x90;
const GDT_LIMIT = 0x98 - 1;

const EAX = 0, ECX = 1, EDX = 2, EBX = 3, ESP = 4;
const SREG = { es: 0, cs: 1, ss: 2, ds: 3, fs: 4, gs: 5 };

// ---- a few instruction encoders (SDM Vol. 2 appendix A), 32-bit code unless noted

const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const le16 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff];
const A = {
  movImm: (r: number, v: number) => [0xb8 + r, ...le32(v)],
  movAxImm16: (v: number) => [0x66, 0xb8, ...le16(v)],
  movSreg: (sreg: number, r: number) => [0x8e, 0xc0 | (sreg << 3) | r],
  movFromSreg: (r: number, sreg: number) => [0x8c, 0xc0 | (sreg << 3) | r],
  storeEax: (addr: number) => [0xa3, ...le32(addr)],
  loadEax: (addr: number) => [0xa1, ...le32(addr)],
  storeReg: (r: number, addr: number) => [0x89, 0x05 | (r << 3), ...le32(addr)],
  /** mov eax, [esp + d8] */
  eaxFromStack: (d: number) => [0x8b, 0x44, 0x24, d],
  jmpFar: (sel: number, off: number) => [0xea, ...le32(off), ...le16(sel)],
  callFar: (sel: number, off: number) => [0x9a, ...le32(off), ...le16(sel)],
  retf: (n = 0) => (n ? [0xca, ...le16(n)] : [0xcb]),
  iretd: () => [0xcf],
  int: (n: number) => [0xcd, n],
  hlt: () => [0xf4],
  loop: () => [0xeb, 0xfe],
  pushImm: (v: number) => [0x68, ...le32(v)],
  pushfd: () => [0x9c],
  popfd: () => [0x9d],
  popEax: () => [0x58],
  cli: () => [0xfa],
  sti: () => [0xfb],
  outDxAl: () => [0xee],
  /** LAR/LSL r32, r/m16 (register form) */
  lar: (r: number, rm: number) => [0x0f, 0x02, 0xc0 | (r << 3) | rm],
  lsl: (r: number, rm: number) => [0x0f, 0x03, 0xc0 | (r << 3) | rm],
  verr: (rm: number) => [0x0f, 0x00, 0xe0 | rm],
  verw: (rm: number) => [0x0f, 0x00, 0xe8 | rm],
  ltr: (rm: number) => [0x0f, 0x00, 0xd8 | rm],
  lldt: (rm: number) => [0x0f, 0x00, 0xd0 | rm],
  str: (rm: number) => [0x0f, 0x00, 0xc8 | rm],
  sldt: (rm: number) => [0x0f, 0x00, 0xc0 | rm],
  /** ARPL r/m16, r16 (register form) */
  arpl: (rm: number, r: number) => [0x63, 0xc0 | (r << 3) | rm],
  /** LAHF: AH = SF ZF 0 AF 0 PF 1 CF */
  lahf: () => [0x9f],
  /** add dword [esp + d8], imm8 */
  addStack: (d: number, v: number) => [0x83, 0x44, 0x24, d, v],
  addEsp: (v: number) => [0x83, 0xc4, v],
  /** mov byte [eax], 1 */
  storeAtEax: () => [0xc6, 0x00, 0x01],
  /** mov bl, [eax] */
  loadAtEax: () => [0x8a, 0x18],
  /** mov bl, cs:[eax] */
  loadCsEax: () => [0x2e, 0x8a, 0x18],
  /** mov cs:[eax], bl */
  storeCsEax: () => [0x2e, 0x88, 0x18],
  /** mov bl, ss:[eax] */
  loadSsEax: () => [0x36, 0x8a, 0x18],
};
const asm = (...parts: number[][]): number[] => parts.flat();

/** A machine with a flat 32-bit GDT, an IDT and two TSSs; every test gets a fresh one. */
class Box {
  readonly mem = new FlatMemory(0x100000);
  readonly ports: Array<[number, number]> = [];
  readonly io: IoPorts = { in: () => 0xff, out: (p, _s, v) => { this.ports.push([p, v]); } };
  readonly cpu = new X86Cpu(this.mem, this.io);

  constructor() {
    this.desc(CS0, 0, 0xfffff, 0x9a, 0xc);
    this.desc(DS0, 0, 0xfffff, 0x92, 0xc);
    this.desc(CS3, 0, 0xfffff, 0xfa, 0xc);
    this.desc(DS3, 0, 0xfffff, 0xf2, 0xc);
    this.desc(TSSA, TSS_A, 0x67 + 0x2000 / 8 + 1, 0x89, 0); // room for a full I/O bitmap
    this.desc(TSSB, TSS_B, 0x67, 0x89, 0);
    this.gate(CALLGATE, CS0, HANDLER, 0xec, 2); // 32-bit call gate, DPL 3, 2 parameters
    this.desc(CS16, 0, 0xffff, 0x9a, 0);
    this.desc(RODATA, 0, 0xfffff, 0x90, 0xc);
    this.desc(XONLY, 0, 0xfffff, 0x98, 0xc);
    this.desc(EXPDOWN, 0, 0x0fff, 0x96, 0x4); // expand-down, B=1: valid offsets 1000h..FFFFFFFFh
    this.desc(NOTPRESENT, 0, 0xfffff, 0x12, 0xc);
    this.desc(LDTSEL, LDT, 0x17, 0x82, 0);
    this.desc(DS0_DPL0, 0, 0xfffff, 0x92, 0xc);
    this.desc(TSSB16, TSS_B, 0x2b, 0x81, 0);
    this.gate(TASKGATE, TSSB, 0, 0xe5, 0);
    this.desc(DS3_NP_SS, 0, 0xfffff, 0x72, 0xc);
    this.desc(CODE3_CONF, 0, 0xfffff, 0x9e, 0xc); // conforming, DPL 0
    // TSS A: ring-0 stack, I/O bitmap right after the 104-byte TSS, all ports allowed but 0x80.
    this.w32(TSS_A + 4, STACK0); this.w16(TSS_A + 8, DS0);
    this.w16(TSS_A + 0x66, 0x68);
    this.mem.bytes.fill(0, TSS_A + 0x68, TSS_A + 0x68 + 0x2000);
    this.mem.bytes[TSS_A + 0x68 + (0x80 >> 3)] = 1;
    this.mem.bytes[TSS_A + 0x68 + 0x2000] = 0xff;
  }

  w8(a: number, v: number): void { this.mem.bytes[a] = v; }
  w16(a: number, v: number): void { this.mem.write16(a, v); }
  w32(a: number, v: number): void { this.mem.write32(a, v >>> 0); }
  r8(a: number): number { return this.mem.bytes[a]; }
  r16(a: number): number { return this.mem.read16(a); }
  r32(a: number): number { return this.mem.read32(a); }
  put(a: number, bytes: number[]): void { this.mem.bytes.set(bytes, a); }

  /** A segment descriptor: access byte (P DPL S type) and flags nibble (G D/B L AVL). */
  desc(sel: number, base: number, limit: number, access: number, flags: number, table = GDT): void {
    const a = table + (sel & ~7);
    this.w32(a, ((base & 0xffff) << 16) | (limit & 0xffff));
    this.w32(a + 4, (base & 0xff000000) | ((flags & 0xf) << 20) | (limit & 0xf0000) | (access << 8) | ((base >>> 16) & 0xff));
  }
  /** A gate: access byte (P DPL 0 type), selector, offset, parameter count. */
  gate(sel: number, target: number, off: number, access: number, params: number, table = GDT): void {
    const a = table + (sel & ~7);
    this.w32(a, (target << 16) | (off & 0xffff));
    this.w32(a + 4, (off & 0xffff0000) | (access << 8) | (params & 0x1f));
  }
  /** IDT entry `vec`: type 0x8E interrupt gate, 0x8F trap gate, 0x85 task gate (with DPL bits as given). */
  idt(vec: number, sel: number, off: number, access: number): void {
    this.gate(vec * 8, sel, off, access, 0, IDT);
  }
  descAccess(sel: number): number { return this.r8(GDT + (sel & ~7) + 5); }

  /** A segment register as the VMCS holds it, from the descriptor in the GDT. */
  seg(sel: number): SegmentReg {
    if ((sel & ~3) === 0) return { selector: sel, base: 0, limit: 0, attrib: 0x10000 };
    const a = GDT + (sel & ~7), lo = this.r32(a), hi = this.r32(a + 4);
    let limit = (lo & 0xffff) | (hi & 0xf0000);
    if (hi & 0x800000) limit = ((limit << 12) | 0xfff) >>> 0;
    return { selector: sel, base: ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0, limit, attrib: (hi >>> 8) & 0xf0ff };
  }

  /** Protected-mode state at CPL 0 (or 3) running at `eip`, TR = TSS A (busy), IDT and GDT loaded. */
  start(eip: number, cpl = 0, eflags = 0x2): X86State {
    const s = resetState();
    const cs = cpl === 0 ? CS0 : CS3, ds = cpl === 0 ? DS0 : DS3;
    s.cs = this.seg(cs); s.ss = this.seg(ds); s.ds = this.seg(ds); s.es = this.seg(ds);
    s.fs = this.seg(0); s.gs = this.seg(0);
    s.eip = eip; s.esp = cpl === 0 ? STACK0 : STACK3; s.eflags = eflags;
    s.cr0 = 0x11;
    s.gdtr = { base: GDT, limit: GDT_LIMIT };
    s.idtr = { base: IDT, limit: 0x800 - 1 };
    this.w8(GDT + TSSA + 5, 0x8b); // busy
    s.tr = { ...this.seg(TSSA), attrib: 0x8b };
    s.ldtr = { selector: 0, base: 0, limit: 0, attrib: 0x10000 };
    this.cpu.setState(s);
    return s;
  }
  state(): X86State { const s = resetState(); this.cpu.getState(s); return s; }
  run(n = 1000): CpuExitReason { return this.cpu.run(n); }
  /** Run with every exception intercepted: the first fault stops the core (exit.vector/errorCode). */
  fault(n = 1000): { vector: number; code: number } | null {
    this.cpu.intercepts.exceptionBitmap = 0xffffffff;
    const r = this.cpu.run(n);
    if (r !== CpuExitReason.Exception) return null;
    return { vector: this.cpu.exit.vector, code: this.cpu.exit.errorCode };
  }
}

describe("entering protected mode", () => {
  it("real mode sets CR0.PE and far-jumps to a 32-bit code segment, then loads DS from the GDT", () => {
    const b = new Box();
    // LGDT [0x7000]; MOV EAX, CR0; OR AL, 1; MOV CR0, EAX; JMP DWORD 0x08:pm (16-bit code at 0x7c00)
    b.w16(0x7000, GDT_LIMIT); b.w32(0x7002, GDT);
    const pm = 0x7c40;
    b.put(0x7c00, [0x0f, 0x01, 0x16, 0x00, 0x70, 0x0f, 0x20, 0xc0, 0x0c, 0x01, 0x0f, 0x22, 0xc0, 0x66, 0xea, ...le32(pm), ...le16(CS0)]);
    b.put(pm, asm(A.movImm(EAX, DS0), A.movSreg(SREG.ds, EAX), A.movImm(EAX, 0x12345678), A.storeEax(0x50000), A.hlt()));
    b.cpu.setState(realModeState(0, 0x7c00));
    b.cpu.intercepts.hlt = true;
    expect(b.run()).toBe(CpuExitReason.Hlt);
    const s = b.state();
    expect(s.cr0 & 1).toBe(1);
    expect(s.cs.selector).toBe(CS0);
    expect(s.cs.attrib & 0x4000).toBe(0x4000); // D = 1: 32-bit code
    expect(s.cs.limit).toBe(0xffffffff);
    expect(s.ds).toEqual({ selector: DS0, base: 0, limit: 0xffffffff, attrib: 0xc093 }); // accessed bit set
    expect(b.descAccess(DS0)).toBe(0x93); // and written back to the descriptor
    expect(b.r32(0x50000)).toBe(0x12345678);
    expect(s.eip).toBe(pm + 17); // stopped at the HLT
  });

  it("getState/setState round-trip a ring-3 protected-mode state, CPL taken from SS.DPL", () => {
    const b = new Box();
    const s0 = b.start(CODE3, 3);
    const s = b.state();
    expect(s.cs).toEqual(s0.cs); expect(s.ss).toEqual(s0.ss); expect(s.tr).toEqual(s0.tr); expect(s.ldtr).toEqual(s0.ldtr);
    expect(b.cpu.cpl).toBe(3);
    const c = new X86Cpu(b.mem, b.io);
    c.setState(cloneState(s));
    expect(c.cpl).toBe(3);
    const t = resetState(); c.getState(t);
    expect(t).toEqual(s);
  });
});

describe("segment loads and accesses fault with the SDM error codes", () => {
  /** Run `code` at CPL `cpl` and return the first fault. */
  function faultOf(code: number[], cpl = 0): { vector: number; code: number } | null {
    const b = new Box();
    b.put(cpl === 0 ? CODE0 : CODE3, asm(code, A.loop()));
    b.start(cpl === 0 ? CODE0 : CODE3, cpl);
    return b.fault(50);
  }
  const load = (sreg: number, sel: number) => asm(A.movImm(EAX, sel), A.movSreg(sreg, EAX));

  it("DS: outside the GDT, system, execute-only, not present, DPL < CPL, LDT without an LDT", () => {
    expect(faultOf(load(SREG.ds, 0x400))).toEqual({ vector: 13, code: 0x400 });
    expect(faultOf(load(SREG.ds, TSSA))).toEqual({ vector: 13, code: TSSA });
    expect(faultOf(load(SREG.ds, XONLY))).toEqual({ vector: 13, code: XONLY });
    expect(faultOf(load(SREG.ds, NOTPRESENT))).toEqual({ vector: 11, code: NOTPRESENT });
    expect(faultOf(load(SREG.ds, DS0_DPL0 | 3), 3)).toEqual({ vector: 13, code: DS0_DPL0 });
    expect(faultOf(load(SREG.ds, DS0_DPL0 | 3))).toEqual({ vector: 13, code: DS0_DPL0 }); // RPL 3 > DPL 0
    expect(faultOf(load(SREG.ds, 0x0c))).toEqual({ vector: 13, code: 0x0c }); // TI=1, LDTR unusable
  });

  it("SS: null, RPL != CPL, read-only, not present (#SS)", () => {
    expect(faultOf(load(SREG.ss, 0))).toEqual({ vector: 13, code: 0 });
    expect(faultOf(load(SREG.ss, DS0 | 1))).toEqual({ vector: 13, code: DS0 });
    expect(faultOf(load(SREG.ss, RODATA))).toEqual({ vector: 13, code: RODATA });
    expect(faultOf(load(SREG.ss, DS3_NP_SS | 3), 3)).toEqual({ vector: 12, code: DS3_NP_SS });
  });

  it("a null DS loads, and using it is #GP(0)", () => {
    expect(faultOf(load(SREG.ds, 0))).toBeNull();
    expect(faultOf(asm(load(SREG.ds, 3), A.loadEax(0x100)))).toEqual({ vector: 13, code: 0 });
  });

  it("rights: write to read-only data or code, read of execute-only code are #GP(0); readable code reads", () => {
    expect(faultOf(asm(load(SREG.es, RODATA), A.movImm(EAX, 0x100), [0x26, 0xc6, 0x00, 0x01]))).toEqual({ vector: 13, code: 0 });
    expect(faultOf(asm(load(SREG.ds, RODATA), A.movImm(EAX, 0x100), A.loadAtEax()))).toBeNull();
    expect(faultOf(asm(A.movImm(EAX, 0x100), A.storeCsEax()))).toEqual({ vector: 13, code: 0 });
    expect(faultOf(asm(A.movImm(EAX, 0x100), A.loadCsEax()))).toBeNull();
    // Execute-only code: far-jump into it, then read through CS.
    const b = new Box();
    b.put(CODE0, asm(A.jmpFar(XONLY, CODE0 + 0x40)));
    b.put(CODE0 + 0x40, asm(A.movImm(EAX, 0x100), A.loadCsEax(), A.loop()));
    b.start(CODE0);
    expect(b.fault(20)).toEqual({ vector: 13, code: 0 });
    expect(b.state().eip).toBe(CODE0 + 0x45);
  });

  it("expand-down data: offsets up to the limit fault, above it are valid; SS faults are #SS(0)", () => {
    expect(faultOf(asm(load(SREG.ds, EXPDOWN), A.movImm(EAX, 0xfff), A.loadAtEax()))).toEqual({ vector: 13, code: 0 });
    expect(faultOf(asm(load(SREG.ds, EXPDOWN), A.movImm(EAX, 0x1000), A.loadAtEax()))).toBeNull();
    expect(faultOf(asm(load(SREG.ss, EXPDOWN), A.movImm(EAX, 0x800), A.loadSsEax()))).toEqual({ vector: 12, code: 0 });
    // ESP = 0x1002: a 4-byte push would write 0xFFE..0x1001, below the expand-down limit.
    expect(faultOf(asm(load(SREG.ss, EXPDOWN), A.movImm(ESP, 0x1002), A.pushImm(1)))).toEqual({ vector: 12, code: 0 });
    expect(faultOf(asm(load(SREG.ss, EXPDOWN), A.movImm(ESP, 0x1004), A.pushImm(1)))).toBeNull();
  });

  it("G=0 limits count bytes: a dword read across the limit is #GP(0)", () => {
    const b = new Box();
    b.desc(0x48, 0x40000, 0x0ff, 0x92, 0x4); // small data segment, limit FFh
    b.put(CODE0, asm(A.movImm(EAX, 0x48), A.movSreg(SREG.ds, EAX), A.loadEax(0xfc), A.loadEax(0xfd), A.loop()));
    b.start(CODE0);
    expect(b.fault(20)).toEqual({ vector: 13, code: 0 });
    expect(b.state().eip).toBe(CODE0 + 12); // the second load
  });

  it("far JMP: null, non-conforming DPL != CPL, conforming DPL > CPL, offset beyond the limit", () => {
    expect(faultOf(A.jmpFar(0, 0))).toEqual({ vector: 13, code: 0 });
    expect(faultOf(A.jmpFar(CS0, CODE3), 3)).toEqual({ vector: 13, code: CS0 });
    expect(faultOf(A.jmpFar(CS3, CODE3))).toEqual({ vector: 13, code: CS3 & ~3 });
    expect(faultOf(A.jmpFar(CODE3_CONF, CODE3), 3)).toBeNull(); // conforming: DPL 0 <= CPL 3
    expect(faultOf(A.jmpFar(CS16, 0x10000))).toEqual({ vector: 13, code: 0 });
  });

  it("a far JMP to a conforming segment keeps CPL 3 and CS.RPL 3", () => {
    const b = new Box();
    b.put(CODE3, asm(A.jmpFar(CODE3_CONF, CODE3 + 0x20)));
    b.put(CODE3 + 0x20, A.loop());
    b.start(CODE3, 3);
    b.run(10);
    expect(b.state().cs.selector).toBe(CODE3_CONF | 3);
    expect(b.cpu.cpl).toBe(3);
  });
});

describe("call gates", () => {
  it("CALL from ring 3 through a call gate switches to the TSS ring-0 stack, copies parameters, and RETF 8 returns", () => {
    const b = new Box();
    b.put(CODE3, asm(A.pushImm(0x1111), A.pushImm(0x2222), A.callFar(CALLGATE | 3, 0), A.storeEax(DATA + 0x20), A.loop()));
    b.put(HANDLER, asm(
      A.eaxFromStack(8), A.storeEax(DATA), // parameter 0 (pushed last)
      A.eaxFromStack(12), A.storeEax(DATA + 4),
      A.eaxFromStack(16), A.storeEax(DATA + 8), // the caller's ESP
      A.eaxFromStack(20), A.storeEax(DATA + 12), // the caller's SS
      A.storeReg(ESP, DATA + 16),
      A.movFromSreg(EAX, SREG.ss), A.storeEax(DATA + 24),
      A.movImm(EAX, 0xabcd), A.retf(8)));
    b.start(CODE3, 3);
    b.run(40);
    expect(b.r32(DATA)).toBe(0x2222);
    expect(b.r32(DATA + 4)).toBe(0x1111);
    expect(b.r32(DATA + 8)).toBe(STACK3 - 8);
    expect(b.r32(DATA + 12)).toBe(DS3);
    expect(b.r32(DATA + 16)).toBe(STACK0 - 24); // SS, ESP, 2 parameters, CS, EIP
    expect(b.r32(DATA + 24) & 0xffff).toBe(DS0);
    expect(b.r32(DATA + 0x20)).toBe(0xabcd); // back in ring 3 after the call
    const s = b.state();
    expect(s.cs.selector).toBe(CS3);
    expect(s.ss.selector).toBe(DS3);
    expect(s.esp).toBe(STACK3); // RETF 8 released the parameters on the outer stack too
    expect(b.cpu.cpl).toBe(3);
  });

  it("a call gate with DPL < CPL is #GP(gate selector); a JMP through it to a more privileged segment is #GP(code selector)", () => {
    const b = new Box();
    b.gate(CALLGATE, CS0, HANDLER, 0x8c, 0); // DPL 0
    b.put(CODE3, asm(A.callFar(CALLGATE | 3, 0), A.loop()));
    b.start(CODE3, 3);
    expect(b.fault(10)).toEqual({ vector: 13, code: CALLGATE });
    const c = new Box();
    c.put(CODE3, asm(A.jmpFar(CALLGATE | 3, 0), A.loop()));
    c.start(CODE3, 3);
    expect(c.fault(10)).toEqual({ vector: 13, code: CS0 });
  });

  it("RET to an outer level nulls a data segment register the outer level may not use", () => {
    const b = new Box();
    b.put(CODE3, asm(A.callFar(CALLGATE | 3, 0), A.loop()));
    b.gate(CALLGATE, CS0, HANDLER, 0xec, 0);
    b.put(HANDLER, asm(A.movImm(EAX, DS0), A.movSreg(SREG.es, EAX), A.movSreg(SREG.fs, EAX), A.retf()));
    b.start(CODE3, 3);
    b.run(20);
    const s = b.state();
    expect(s.cs.selector).toBe(CS3);
    expect(s.es.selector).toBe(0);
    expect(s.es.attrib & 0x10000).toBe(0x10000);
    expect(s.fs.selector).toBe(0);
    expect(s.ds.selector).toBe(DS3); // DPL 3: kept
  });
});

describe("interrupt and trap gates", () => {
  function ringChange(access: number): Box {
    const b = new Box();
    b.idt(0x40, CS0, HANDLER, access);
    b.put(CODE3, asm(A.int(0x40), A.storeEax(DATA + 0x40), A.pushfd(), A.popEax(), A.storeEax(DATA + 0x44), A.loop()));
    b.put(HANDLER, asm(
      A.eaxFromStack(0), A.storeEax(DATA), A.eaxFromStack(4), A.storeEax(DATA + 4), A.eaxFromStack(8), A.storeEax(DATA + 8),
      A.eaxFromStack(12), A.storeEax(DATA + 12), A.eaxFromStack(16), A.storeEax(DATA + 16),
      A.pushfd(), A.popEax(), A.storeEax(DATA + 20),
      A.movImm(EAX, 0x5a5a), A.iretd()));
    b.start(CODE3, 3, 0x202);
    b.run(40);
    return b;
  }

  it("INT n from ring 3 through an interrupt gate switches to the ring-0 stack, clears IF, and IRETD returns", () => {
    const b = ringChange(0xee); // 32-bit interrupt gate, DPL 3
    expect(b.r32(DATA)).toBe(CODE3 + 2); // EIP after INT
    expect(b.r32(DATA + 4)).toBe(CS3);
    expect(b.r32(DATA + 8) & 0x200).toBe(0x200); // IF was set
    expect(b.r32(DATA + 12)).toBe(STACK3);
    expect(b.r32(DATA + 16)).toBe(DS3);
    expect(b.r32(DATA + 20) & 0x200).toBe(0); // cleared in the handler
    expect(b.r32(DATA + 0x40)).toBe(0x5a5a);
    expect(b.r32(DATA + 0x44) & 0x200).toBe(0x200); // restored by IRETD
    const s = b.state();
    expect([s.cs.selector, s.ss.selector, s.esp, b.cpu.cpl]).toEqual([CS3, DS3, STACK3, 3]);
  });

  it("a trap gate leaves IF set in the handler", () => {
    const b = ringChange(0xef);
    expect(b.r32(DATA + 20) & 0x200).toBe(0x200);
  });

  it("INT n through a gate with DPL < CPL is #GP(vector*8+2); a not-present gate is #NP(vector*8+2)", () => {
    const b = new Box();
    b.idt(0x41, CS0, HANDLER, 0x8e);
    b.put(CODE3, asm(A.int(0x41), A.loop()));
    b.start(CODE3, 3);
    expect(b.fault(10)).toEqual({ vector: 13, code: 0x41 * 8 + 2 });
    const c = new Box();
    c.idt(0x42, CS0, HANDLER, 0x6e);
    c.put(CODE3, asm(A.int(0x42), A.loop()));
    c.start(CODE3, 3);
    expect(c.fault(10)).toEqual({ vector: 11, code: 0x42 * 8 + 2 });
  });

  it("a fault from ring 3 pushes its error code on the ring-0 stack with the faulting EIP", () => {
    const b = new Box();
    b.idt(13, CS0, HANDLER, 0x8e);
    b.put(CODE3, asm(A.movImm(EAX, DS0), A.movSreg(SREG.ds, EAX), A.loop()));
    b.put(HANDLER, asm(A.eaxFromStack(0), A.storeEax(DATA), A.eaxFromStack(4), A.storeEax(DATA + 4), A.loop()));
    b.start(CODE3, 3);
    b.run(20);
    expect(b.r32(DATA)).toBe(DS0); // error code: the selector
    expect(b.r32(DATA + 4)).toBe(CODE3 + 5); // the MOV DS
    expect(b.state().esp).toBe(STACK0 - 24);
  });

  it("an external interrupt injected in protected mode sets EXT in a fault's error code during its delivery", () => {
    const b = new Box();
    b.idt(0x30, 0x400, HANDLER, 0x8e); // code selector beyond the GDT
    b.put(CODE0, A.loop());
    b.start(CODE0);
    b.cpu.intercepts.exceptionBitmap = 1 << 13;
    b.cpu.deliverEvent(EventType.ExtInt, 0x30, 0, false);
    expect(b.cpu.exit.reason).toBe(CpuExitReason.Exception);
    expect([b.cpu.exit.vector, b.cpu.exit.errorCode]).toEqual([13, 0x401]);
    expect(b.cpu.exit.vectoringValid).toBe(true);
    expect(b.cpu.exit.vectoringVector).toBe(0x30);
  });
});

describe("exceptions during delivery", () => {
  it("a #NP while delivering #GP becomes #DF with error code 0, delivered through vector 8", () => {
    const b = new Box();
    b.idt(13, CS0, HANDLER, 0x0e); // not present
    b.idt(8, CS0, HANDLER + 0x100, 0x8e);
    b.put(HANDLER + 0x100, asm(A.eaxFromStack(0), A.storeEax(DATA), A.eaxFromStack(4), A.storeEax(DATA + 4), A.loop()));
    b.w32(DATA, 0xffffffff);
    b.put(CODE0, asm(A.movImm(EAX, 0x400), A.movSreg(SREG.ds, EAX), A.loop()));
    b.start(CODE0);
    b.run(20);
    expect(b.r32(DATA)).toBe(0);
    expect(b.r32(DATA + 4)).toBe(CODE0 + 5);
  });

  it("a fault while delivering #DF is a triple fault: the core stops in shutdown", () => {
    const b = new Box();
    b.put(CODE0, asm(A.movImm(EAX, 0x400), A.movSreg(SREG.ds, EAX), A.loop()));
    b.start(CODE0);
    b.cpu.setState({ ...b.state(), idtr: { base: IDT, limit: 7 } }); // only vector 0 fits
    expect(b.run(20)).toBe(CpuExitReason.TripleFault);
    expect(b.run(20)).toBe(CpuExitReason.TripleFault);
  });
});

describe("task switches", () => {
  /** TSS B: a 32-bit task at CODE_B with its own stack and registers. */
  function taskB(b: Box, code: number[]): void {
    b.put(CODE_B, code);
    b.w32(TSS_B + 0x20, CODE_B); b.w32(TSS_B + 0x24, 0x2);
    b.w32(TSS_B + 0x28, 0xb0b0b0b0); // EAX
    b.w32(TSS_B + 0x2c + 8, 0xb3b3b3b3); // EBX
    b.w32(TSS_B + 0x38, STACK_B); // ESP
    for (const off of [0x48, 0x50, 0x54]) b.w16(TSS_B + off, DS0); // ES SS DS
    b.w16(TSS_B + 0x4c, CS0);
    b.w16(TSS_B + 0x60, LDTSEL);
  }

  it("JMP to a TSS saves the old task, loads the new one, moves the busy bit and sets CR0.TS", () => {
    const b = new Box();
    taskB(b, A.loop());
    b.put(CODE0, asm(A.movImm(ECX, 0xc0c0), A.jmpFar(TSSB, 0)));
    b.start(CODE0);
    b.run(10);
    const s = b.state();
    expect(s.eip).toBe(CODE_B);
    expect([s.eax, s.ebx, s.esp]).toEqual([0xb0b0b0b0, 0xb3b3b3b3, STACK_B]);
    expect(s.tr.selector).toBe(TSSB);
    expect(s.ldtr.selector).toBe(LDTSEL);
    expect(s.ldtr.base).toBe(LDT);
    expect(s.cr0 & 8).toBe(8);
    expect(b.descAccess(TSSA)).toBe(0x89); // no longer busy
    expect(b.descAccess(TSSB)).toBe(0x8b); // busy
    expect(b.r32(TSS_A + 0x20)).toBe(CODE0 + 12); // saved EIP: after the JMP
    expect(b.r32(TSS_A + 0x2c)).toBe(0xc0c0); // saved ECX
    expect(s.eflags & 0x4000).toBe(0); // JMP does not nest
  });

  it("CALL to a TSS nests (NT, back link), and IRET in the called task returns to the caller", () => {
    const b = new Box();
    taskB(b, asm(A.pushfd(), A.popEax(), A.storeEax(DATA), A.iretd()));
    b.put(CODE0, asm(A.callFar(TSSB, 0), A.movImm(EDX, 0x77), A.loop()));
    b.start(CODE0);
    b.run(30);
    expect(b.r32(DATA) & 0x4000).toBe(0x4000); // NT in the called task
    expect(b.r16(TSS_B)).toBe(TSSA); // back link
    const s = b.state();
    expect(s.tr.selector).toBe(TSSA);
    expect(s.edx).toBe(0x77);
    expect(s.eip).toBe(CODE0 + 12);
    expect(b.descAccess(TSSB)).toBe(0x89); // IRET freed the called task
    expect(b.descAccess(TSSA)).toBe(0x8b);
    expect(b.r32(TSS_B + 0x24) & 0x4000).toBe(0); // its saved EFLAGS lost NT
  });

  it("an INT through a task gate switches tasks and IRET comes back", () => {
    const b = new Box();
    taskB(b, asm(A.movImm(EAX, 0x99), A.storeEax(DATA), A.iretd(), A.movImm(EAX, 0x98), A.storeEax(DATA), A.iretd()));
    b.idt(0x50, TSSB, 0, 0x85);
    b.put(CODE0, asm(A.int(0x50), A.int(0x50), A.movImm(EDX, 0x55), A.loop()));
    b.start(CODE0);
    b.run(40);
    // The second INT resumes task B after its IRET, as a task does.
    expect(b.r32(DATA)).toBe(0x98);
    const s = b.state();
    expect([s.tr.selector, s.edx, s.eip]).toEqual([TSSA, 0x55, CODE0 + 9]);
  });

  it("a task gate in the GDT works for JMP, and a JMP to a busy TSS is #GP(selector)", () => {
    const b = new Box();
    taskB(b, A.loop());
    b.put(CODE0, asm(A.jmpFar(TASKGATE, 0)));
    b.start(CODE0);
    b.run(10);
    expect(b.state().tr.selector).toBe(TSSB);
    const c = new Box();
    c.put(CODE0, asm(A.jmpFar(TSSA, 0)));
    c.start(CODE0);
    expect(c.fault(10)).toEqual({ vector: 13, code: TSSA });
  });

  it("a 16-bit TSS loads 16-bit state", () => {
    const b = new Box();
    b.put(CODE_B, A.loop());
    b.w16(TSS_B + 0x0e, CODE_B & 0xffff); b.w16(TSS_B + 0x10, 0x2);
    b.w16(TSS_B + 0x12, 0x1234); // AX
    b.w16(TSS_B + 0x1a, STACK_B); // SP
    b.w16(TSS_B + 0x22, DS0); b.w16(TSS_B + 0x24, CS16); b.w16(TSS_B + 0x26, DS0); b.w16(TSS_B + 0x28, DS0);
    b.put(CODE0, asm(A.movImm(EAX, 0xffff0000), A.jmpFar(TSSB16, 0)));
    b.put(CODE_B & 0xffff, A.loop());
    b.start(CODE0);
    b.run(10);
    const s = b.state();
    expect(s.cs.selector).toBe(CS16);
    expect(s.eip).toBe(CODE_B & 0xffff);
    expect(s.eax).toBe(0xffff1234);
    expect(s.tr.attrib & 0xf).toBe(3); // busy 16-bit TSS
  });

  it("with taskSwitchExit the core stops before the switch, state unchanged, with the selector and source", () => {
    const b = new Box();
    taskB(b, A.loop());
    b.put(CODE0, asm(A.callFar(TSSB, 0)));
    b.start(CODE0);
    b.cpu.intercepts.taskSwitchExit = true;
    expect(b.run(10)).toBe(CpuExitReason.TaskSwitch);
    const e = b.cpu.exit;
    expect([e.tsSelector, e.tsSource, e.tsHasErrorCode, e.instrLen]).toEqual([TSSB, TaskSwitchSource.Call, false, 7]);
    const s = b.state();
    expect([s.eip, s.tr.selector]).toEqual([CODE0, TSSA]);
    expect(b.descAccess(TSSB)).toBe(0x89);
  });

  it("a fault through a task gate stops for a task-switch exit with its error code and the IDT-vectoring information", () => {
    const b = new Box();
    taskB(b, A.loop());
    b.idt(13, TSSB, 0, 0x85);
    b.put(CODE0, asm(A.movImm(EAX, 0x400), A.movSreg(SREG.ds, EAX)));
    b.start(CODE0);
    b.cpu.intercepts.taskSwitchExit = true;
    expect(b.run(10)).toBe(CpuExitReason.TaskSwitch);
    const e = b.cpu.exit;
    expect([e.tsSelector, e.tsSource, e.tsHasErrorCode, e.tsErrorCode]).toEqual([TSSB, TaskSwitchSource.Gate, true, 0x400]);
    expect([e.vectoringValid, e.vectoringType, e.vectoringVector, e.vectoringErrorCode]).toEqual([true, EventType.HardwareException, 13, 0x400]);
    expect(b.state().eip).toBe(CODE0 + 5);
  });
});

describe("virtual-8086 mode", () => {
  it("IRETD enters v8086 mode; CLI with IOPL 0 is #GP(0) to the ring-0 handler, which sees the v8086 frame and returns", () => {
    const b = new Box();
    // v8086 code at 2000:0100: MOV AX, 1234h; CLI; MOV BX, 5678h; OUT DX, AL; JMP $
    const v86 = 0x20100;
    b.put(v86, [0xb8, 0x34, 0x12, 0xfa, 0xbb, 0x78, 0x56, 0xee, 0xeb, 0xfe]);
    b.idt(13, CS0, HANDLER, 0x8e);
    // The handler saves EAX and ECX, loads a DS of its own (DS arrives null), records the frame,
    // steps over the CLI and returns.
    b.put(HANDLER, asm(
      [0x50, 0x51], A.movFromSreg(ECX, SREG.ds), A.movImm(EAX, DS0), A.movSreg(SREG.ds, EAX), A.storeReg(ECX, DATA + 0x40),
      ...[0, 4, 8, 12, 16, 20, 24, 28, 32, 36].map((d, i) => asm(A.eaxFromStack(d + 8), A.storeEax(DATA + i * 4))),
      [0x59, 0x58], A.addStack(4, 1), A.addEsp(4), A.iretd()));
    // Ring 0: IRETD with a v8086 frame: EIP CS EFLAGS(VM) ESP SS ES DS FS GS.
    b.put(CODE0, asm(A.pushImm(0x3333), A.pushImm(0x4444), A.pushImm(0x5555), A.pushImm(0x6666),
      A.pushImm(0x1000), A.pushImm(0x0ff0), A.pushImm(0x20002), A.pushImm(0x2000), A.pushImm(0x100), A.iretd()));
    b.start(CODE0);
    b.run(100);
    expect(b.r32(DATA)).toBe(0); // error code
    expect(b.r32(DATA + 4)).toBe(0x103); // EIP of CLI
    expect(b.r32(DATA + 8)).toBe(0x2000);
    expect(b.r32(DATA + 12) & 0x20000).toBe(0x20000); // VM in the pushed EFLAGS
    expect([b.r32(DATA + 16), b.r32(DATA + 20)]).toEqual([0x0ff0, 0x1000]); // ESP, SS
    expect([b.r32(DATA + 24), b.r32(DATA + 28), b.r32(DATA + 32), b.r32(DATA + 36)]).toEqual([0x6666, 0x5555, 0x4444, 0x3333]); // ES DS FS GS
    expect(b.r32(DATA + 0x40) & 0xffff).toBe(0); // DS null in the handler
    const s = b.state();
    expect(s.eflags & 0x20000).toBe(0x20000);
    expect(s.cs).toEqual({ selector: 0x2000, base: 0x20000, limit: 0xffff, attrib: 0xf3 });
    expect(s.ds.selector).toBe(0x5555);
    expect([s.eax & 0xffff, s.ebx & 0xffff, s.eip]).toEqual([0x1234, 0x5678, 0x108]);
    expect(b.ports).toEqual([[0x300, 0x34]]); // EDX = 300h from the reset state; allowed by the bitmap
    expect(b.cpu.cpl).toBe(3);
  });

  it("in v8086 mode I/O follows the TSS bitmap whatever IOPL, and INT n is #GP(0) with IOPL < 3", () => {
    const b = new Box();
    b.put(0x20100, [0xb0, 0x01, 0xe6, 0x80, 0xeb, 0xfe]); // MOV AL,1; OUT 80h,AL (denied in the bitmap)
    const s = b.start(0x100);
    const v = (sel: number): SegmentReg => ({ selector: sel, base: sel << 4, limit: 0xffff, attrib: 0xf3 });
    b.cpu.setState({ ...s, eflags: 0x23002, cs: v(0x2000), ss: v(0x1000), ds: v(0), es: v(0), fs: v(0), gs: v(0), esp: 0x100 });
    expect(b.cpu.cpl).toBe(3);
    expect(b.fault(10)).toEqual({ vector: 13, code: 0 });
    const c = new Box();
    c.put(0x20100, [0xcd, 0x21]);
    const t = c.start(0x100);
    c.cpu.setState({ ...t, eflags: 0x20002, cs: v(0x2000), ss: v(0x1000), ds: v(0), es: v(0), fs: v(0), gs: v(0), esp: 0x100 });
    expect(c.fault(10)).toEqual({ vector: 13, code: 0 });
  });
});

describe("privilege and IOPL", () => {
  it("HLT, LGDT, MOV CR0, CLTS and LLDT at CPL 3 are #GP(0)", () => {
    for (const code of [A.hlt(), [0x0f, 0x01, 0x15, ...le32(0)], [0x0f, 0x22, 0xc0], [0x0f, 0x06], A.lldt(EAX)]) {
      const b = new Box();
      b.put(CODE3, asm(A.movImm(EAX, 0), code, A.loop()));
      b.start(CODE3, 3);
      expect(b.fault(10), code.join(",")).toEqual({ vector: 13, code: 0 });
    }
  });

  it("CLI at CPL 3 with IOPL 0 is #GP(0), with IOPL 3 it works; OUT consults the I/O bitmap", () => {
    const b = new Box();
    b.put(CODE3, asm(A.cli(), A.loop()));
    b.start(CODE3, 3, 0x202);
    expect(b.fault(10)).toEqual({ vector: 13, code: 0 });
    const c = new Box();
    c.put(CODE3, asm(A.cli(), A.loop()));
    c.start(CODE3, 3, 0x3202);
    c.run(5);
    expect(c.state().eflags & 0x200).toBe(0);
    const d = new Box();
    d.put(CODE3, asm(A.movImm(EDX, 0x81), A.outDxAl(), A.movImm(EDX, 0x80), A.outDxAl(), A.loop()));
    d.start(CODE3, 3);
    expect(d.fault(10)).toEqual({ vector: 13, code: 0 });
    expect(d.ports.map((p) => p[0])).toEqual([0x81]);
  });

  it("POPFD at CPL 3 changes neither IOPL nor IF (IOPL 0), at CPL 0 it changes both", () => {
    const b = new Box();
    b.put(CODE3, asm(A.pushImm(0x3002), A.popfd(), A.loop()));
    b.start(CODE3, 3, 0x202);
    b.run(5);
    expect(b.state().eflags & 0x3200).toBe(0x200);
    const c = new Box();
    c.put(CODE0, asm(A.pushImm(0x3002), A.popfd(), A.loop()));
    c.start(CODE0, 0, 0x202);
    c.run(5);
    expect(c.state().eflags & 0x3200).toBe(0x3000);
  });
});

describe("system instructions", () => {
  /** Run `code` at `cpl` for a few instructions; returns the state. */
  function runAt(code: number[], cpl = 0): X86State {
    const b = new Box();
    b.put(cpl ? CODE3 : CODE0, asm(code, A.loop()));
    b.start(cpl ? CODE3 : CODE0, cpl);
    b.run(20);
    return b.state();
  }
  const zf = (s: X86State) => (s.eflags >>> 6) & 1;

  it("LAR returns the access rights of code, data, TSS and gates, ZF=0 for interrupt-gate types and invisible DPLs", () => {
    let s = runAt(asm(A.movImm(ECX, DS0), A.lar(EAX, ECX)));
    expect([zf(s), s.eax]).toEqual([1, 0x00c09200]); // bits 19:16 (limit) undefined in the SDM; 0 as QEMU

    s = runAt(asm(A.movImm(ECX, TSSA), A.lar(EAX, ECX)));
    expect([zf(s), s.eax]).toEqual([1, 0x00008b00]);
    s = runAt(asm(A.movImm(ECX, CALLGATE), A.lar(EAX, ECX)));
    expect([zf(s), s.eax & 0xff00]).toEqual([1, 0xec00]);
    s = runAt(asm(A.movImm(EAX, 0x1234), A.movImm(ECX, DS0), A.lar(EAX, ECX)), 3);
    expect([zf(s), s.eax]).toEqual([0, 0x1234]); // DPL 0 from CPL 3
    s = runAt(asm(A.movImm(ECX, CODE3_CONF), A.lar(EAX, ECX)), 3);
    expect(zf(s)).toBe(1); // conforming code: no privilege check
  });

  it("LSL returns byte-granular limits and refuses gates", () => {
    let s = runAt(asm(A.movImm(ECX, DS0), A.lsl(EAX, ECX)));
    expect([zf(s), s.eax]).toEqual([1, 0xffffffff]);
    s = runAt(asm(A.movImm(ECX, EXPDOWN), A.lsl(EAX, ECX)));
    expect([zf(s), s.eax]).toEqual([1, 0xfff]);
    s = runAt(asm(A.movImm(EAX, 7), A.movImm(ECX, CALLGATE), A.lsl(EAX, ECX)));
    expect([zf(s), s.eax]).toEqual([0, 7]);
  });

  it("VERR/VERW: readable and writable per type and privilege", () => {
    const v = (sel: number, w: boolean, cpl = 0) => zf(runAt(asm(A.movImm(ECX, sel), w ? A.verw(ECX) : A.verr(ECX)), cpl));
    expect([v(DS0, false), v(DS0, true)]).toEqual([1, 1]);
    expect([v(RODATA, false), v(RODATA, true)]).toEqual([1, 0]);
    expect([v(CS0, false), v(CS0, true), v(XONLY, false)]).toEqual([1, 0, 0]);
    expect([v(DS0, false, 3), v(DS3, true, 3), v(0, false)]).toEqual([0, 1, 0]);
  });

  it("LTR marks the TSS busy and STR/SLDT/LLDT read and load the selectors", () => {
    const b = new Box();
    b.put(CODE0, asm(A.movImm(EAX, TSSB), A.ltr(EAX), A.str(EBX), A.movImm(EAX, LDTSEL), A.lldt(EAX), A.sldt(ECX), A.loop()));
    b.start(CODE0);
    b.run(10);
    const s = b.state();
    expect([s.ebx, s.ecx, s.tr.selector, s.ldtr.selector, s.ldtr.limit]).toEqual([TSSB, LDTSEL, TSSB, LDTSEL, 0x17]);
    expect(b.descAccess(TSSB)).toBe(0x8b);
    const c = new Box();
    c.put(CODE0, asm(A.movImm(EAX, TSSA), A.ltr(EAX), A.loop()));
    c.start(CODE0);
    expect(c.fault(10)).toEqual({ vector: 13, code: TSSA }); // already busy
  });

  it("a DS selector with TI=1 loads from the LDT", () => {
    const b = new Box();
    b.desc(0x08, 0x44000, 0xfff, 0xf2, 0x4, LDT);
    b.put(CODE0, asm(A.movImm(EAX, LDTSEL), A.lldt(EAX), A.movImm(EAX, 0x0c), A.movSreg(SREG.es, EAX), A.loop()));
    b.start(CODE0);
    b.run(10);
    expect(b.state().es).toEqual({ selector: 0x0c, base: 0x44000, limit: 0xfff, attrib: 0x40f3 });
  });

  it("ARPL raises the RPL of the destination and sets ZF; it is #UD in real mode", () => {
    const s = runAt(asm(A.movImm(EAX, 0x10), A.movImm(ECX, 3), A.arpl(EAX, ECX)));
    expect([s.eax, zf(s)]).toEqual([0x13, 1]);
    const t = runAt(asm(A.movImm(EAX, 0x13), A.movImm(ECX, 1), A.arpl(EAX, ECX)));
    expect([t.eax, zf(t)]).toEqual([0x13, 0]);
    const b = new Box();
    b.put(0x7c00, [0x63, 0xc1, 0xeb, 0xfe]);
    b.cpu.setState(realModeState(0, 0x7c00));
    expect(b.fault(5)).toEqual({ vector: 6, code: 0 });
  });
});

describe("decoded and compiled code in protected mode", () => {
  /** A hot loop storing CL at DS:[ECX] (INC or DEC ECX; MOV [ECX], CL; JMP back) until a segment check faults. */
  function hotLoop(dsDesc: [number, number, number], dec: boolean, ecx: number): { b: Box; f: { vector: number; code: number } | null } {
    const b = new Box();
    b.desc(0x48, ...dsDesc, 0); // byte-granular, B = 0
    b.put(CODE0, asm(A.movImm(EAX, 0x48), A.movSreg(SREG.ds, EAX), A.movImm(ECX, ecx), [dec ? 0x49 : 0x41, 0x88, 0x09, 0xeb, 0xfb]));
    b.start(CODE0);
    return { b, f: b.fault(100000) };
  }

  it("a compiled block faults at the exact store when an expand-up limit is reached", () => {
    const { b, f } = hotLoop([0x40000, 0x1ff, 0x92], false, 0);
    expect(f).toEqual({ vector: 13, code: 0 });
    const s = b.state();
    expect([s.ecx, s.eip]).toEqual([0x200, CODE0 + 13]);
    expect(b.cpu.blocksCompiled).toBeGreaterThan(0);
    expect(b.r8(0x40000 + 0x1ff)).toBe(0xff);
  });

  it("a compiled block faults at the exact store when it walks below an expand-down limit", () => {
    const { b, f } = hotLoop([0x40000, 0xeff, 0x96], true, 0x1100);
    expect(f).toEqual({ vector: 13, code: 0 });
    const s = b.state();
    expect([s.ecx, s.eip]).toEqual([0xeff, CODE0 + 13]);
    expect(b.cpu.blocksCompiled).toBeGreaterThan(0);
    expect(b.r8(0x40000 + 0xf00)).toBe(0x00);
  });
});

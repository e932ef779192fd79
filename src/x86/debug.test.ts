// Debug registers (SDM Vol. 3B 17.2, 17.3): single-step, instruction and data
// breakpoints with DR7 R/W and LEN, DR6 status bits, DR7.GD. Small real-mode programs
// (MOV DRn works at CPL 0 in real mode); the #DB handler reads DR6 into EAX and halts.
import { describe, expect, it } from "vitest";
import { FlatMemory } from "./memory.js";
import { realModeMachine, TEST_CODE, TEST_DATA } from "./testing.js";
import { CpuExitReason, EventType } from "./types.js";

const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
/** mov eax, imm32 (66 B8 id). */
const movEax = (v: number): number[] => [0x66, 0xb8, ...le32(v)];
/** mov DRn, eax (0F 23 /r) and mov eax, DRn (0F 21 /r): always 32-bit. */
const toDr = (n: number): number[] => [0x0f, 0x23, 0xc0 | (n << 3)];
const fromDr = (n: number): number[] => [0x0f, 0x21, 0xc0 | (n << 3)];
const NOP = 0x90, INC_BX = 0x43, HLT = 0xf4;
/** mov [moffs16], al / mov al, [moffs16] / mov [moffs16], ax. */
const stAl = (a: number): number[] => [0xa2, a & 0xff, a >> 8];
const ldAl = (a: number): number[] => [0xa0, a & 0xff, a >> 8];
const stAx = (a: number): number[] => [0xa3, a & 0xff, a >> 8];

const HANDLER_SEG = 0x4000, STACK_SEG = 0x2000;
/** DR7 fields (SDM 17.2.4): Ln enable, R/Wn (00 execute, 01 write, 11 read/write), LENn (00 1, 01 2, 11 4 bytes). */
const dr7 = (n: number, rw: number, len: number): number => ((1 << (n * 2)) | (rw << (16 + n * 4)) | (len << (18 + n * 4)) | 0x400) >>> 0;
const DR6_BS = 0x4000, DR6_BD = 0x2000;

/** A real-mode machine whose #DB handler (IVT 1) does mov eax, dr6; hlt. */
function machine(code: number[], eflags = 0x2) {
  const mem = new FlatMemory(0x110000);
  const m = realModeMachine(mem, code, (s) => {
    s.ss.selector = STACK_SEG; s.ss.base = STACK_SEG * 16; s.esp = 0x100;
    s.eflags = eflags;
  });
  mem.write16(1 * 4, 0); mem.write16(1 * 4 + 2, HANDLER_SEG);
  mem.bytes.set([...fromDr(6), HLT], HANDLER_SEG * 16);
  /** The #DB frame: IP, CS and FLAGS the exception pushed. */
  const frame = () => {
    const sp = m.state().esp & 0xffff, base = STACK_SEG * 16;
    return { ip: mem.read16(base + sp), cs: mem.read16(base + sp + 2), flags: mem.read16(base + sp + 4) };
  };
  const inHandler = () => m.state().cs.selector === HANDLER_SEG;
  return { ...m, frame, inHandler };
}

describe("debug exceptions (SDM 17.3)", () => {
  it("a single-step trap after an instruction run with TF sets DR6.BS and points past it", () => {
    const m = machine([INC_BX, INC_BX, HLT], 0x102);
    expect(m.cpu.run(20)).toBe(CpuExitReason.Halted);
    expect(m.inHandler()).toBe(true);
    expect(m.state().eax & DR6_BS).toBe(DR6_BS);
    expect(m.state().ebx & 0xffff).toBe(1); // the first INC ran, the second did not
    expect(m.frame().ip).toBe(1);
    expect(m.frame().flags & 0x100).toBe(0x100); // TF in the image, cleared in the handler
    expect(m.state().eflags & 0x100).toBe(0);
  });

  it("an instruction breakpoint is a fault: #DB before the instruction at DR0's linear address, with B0", () => {
    // 0: mov eax, 10010h+target; 6: mov dr0, eax; 9: mov eax, dr7 value; 15: mov dr7, eax; 18: nop; 19: inc bx (target)
    const target = 19;
    const code = [...movEax(TEST_CODE + target), ...toDr(0), ...movEax(dr7(0, 0, 0)), ...toDr(7), NOP, INC_BX, HLT];
    expect(code[target]).toBe(INC_BX);
    const m = machine(code);
    expect(m.cpu.run(50)).toBe(CpuExitReason.Halted);
    expect(m.inHandler()).toBe(true);
    expect(m.state().eax & 0xf).toBe(0x1);
    expect(m.state().eax & DR6_BS).toBe(0);
    expect(m.frame().ip).toBe(target);
    expect(m.state().ebx & 0xffff).toBe(0); // faulted before INC BX executed
  });

  it("an instruction breakpoint on another address does not fire", () => {
    const code = [...movEax(TEST_CODE + 0x80), ...toDr(0), ...movEax(dr7(0, 0, 0)), ...toDr(7), NOP, INC_BX, HLT];
    const m = machine(code);
    expect(m.cpu.run(50)).toBe(CpuExitReason.Halted);
    expect(m.inHandler()).toBe(false);
    expect(m.state().ebx & 0xffff).toBe(1);
  });

  it("a data-write breakpoint with LEN 4 traps after the write that touches its dword, with B1", () => {
    // DR1 = DS:10h, R/W1 = 01 (writes), LEN1 = 11 (4 bytes): a byte write to DS:12h hits.
    const pre = [...movEax(TEST_DATA + 0x10), ...toDr(1), ...movEax(dr7(1, 1, 3)), ...toDr(7)];
    const code = [...pre, ...ldAl(0x10), 0xb0, 0x5a, ...stAl(0x14), ...stAl(0x0f), ...stAl(0x12), INC_BX, HLT];
    const m = machine(code);
    expect(m.cpu.run(50)).toBe(CpuExitReason.Halted);
    expect(m.inHandler()).toBe(true);
    // The read of 10h (R/W = 01), the writes to 14h and 0Fh (outside 10h-13h) did not fire.
    const hitIp = pre.length + 3 + 2 + 3 + 3;
    expect(m.frame().ip).toBe(hitIp + 3); // a trap: the frame points after the write
    expect(m.mem.read8(TEST_DATA + 0x12)).toBe(0x5a); // the write happened
    expect(m.state().eax & 0xf).toBe(0x2);
    expect(m.state().ebx & 0xffff).toBe(0);
  });

  it("a 2-byte data breakpoint is aligned down and hit by an overlapping word write", () => {
    // DR2 = DS:21h with LEN 01 covers 20h-21h (SDM 17.2.5: the low address bits are ignored); a word write to 1Fh overlaps.
    const pre = [...movEax(TEST_DATA + 0x21), ...toDr(2), ...movEax(dr7(2, 1, 1)), ...toDr(7)];
    const code = [...pre, ...stAx(0x22), ...stAx(0x1f), NOP, HLT];
    const m = machine(code);
    expect(m.cpu.run(50)).toBe(CpuExitReason.Halted);
    expect(m.inHandler()).toBe(true);
    expect(m.frame().ip).toBe(pre.length + 6);
    expect(m.state().eax & 0xf).toBe(0x4);
  });

  it("a read/write data breakpoint fires on a read, and a write-only one does not", () => {
    const pre = [...movEax(TEST_DATA + 0x30), ...toDr(3), ...movEax(dr7(3, 3, 0)), ...toDr(7)];
    const m = machine([...pre, ...ldAl(0x30), NOP, HLT]);
    expect(m.cpu.run(50)).toBe(CpuExitReason.Halted);
    expect(m.inHandler()).toBe(true);
    expect(m.frame().ip).toBe(pre.length + 3);
    expect(m.state().eax & 0xf).toBe(0x8);

    const pre2 = [...movEax(TEST_DATA + 0x30), ...toDr(3), ...movEax(dr7(3, 1, 0)), ...toDr(7)];
    const w = machine([...pre2, ...ldAl(0x30), NOP, HLT]);
    expect(w.cpu.run(50)).toBe(CpuExitReason.Halted);
    expect(w.inHandler()).toBe(false);
  });

  it("a data breakpoint hit with TF set is reported by one #DB with both B1 and BS", () => {
    const pre = [...movEax(TEST_DATA + 0x10), ...toDr(1), ...movEax(dr7(1, 1, 0)), ...toDr(7)];
    // TF is set by POPF at the end of the setup: PUSHF; POP AX; OR AH,1; PUSH AX; POPF.
    const setTf = [0x9c, 0x58, 0x80, 0xcc, 0x01, 0x50, 0x9d];
    const code = [...pre, ...setTf, ...stAl(0x10), NOP, HLT];
    const m = machine(code);
    expect(m.cpu.run(50)).toBe(CpuExitReason.Halted);
    expect(m.inHandler()).toBe(true);
    expect(m.frame().ip).toBe(pre.length + setTf.length + 3);
    expect(m.state().eax & (0xf | DR6_BS)).toBe(0x2 | DR6_BS);
  });

  it("a data breakpoint in a REP string instruction traps after the iteration that hit it, EIP at the instruction", () => {
    // DR0 = DS:13h (write); ES:DI = DS:10h, CX = 8: rep stosb stops after the 4th byte.
    const pre = [...movEax(TEST_DATA + 0x13), ...toDr(0), ...movEax(dr7(0, 1, 0)), ...toDr(7)];
    const setup = [0x1e, 0x07, 0xbf, 0x10, 0x00, 0xb9, 0x08, 0x00, 0xb0, 0x77, 0xfc]; // push ds; pop es; mov di,10h; mov cx,8; mov al,77h; cld
    const code = [...pre, ...setup, 0xf3, 0xaa, HLT];
    const m = machine(code);
    expect(m.cpu.run(50)).toBe(CpuExitReason.Halted);
    expect(m.inHandler()).toBe(true);
    expect(m.frame().ip).toBe(pre.length + setup.length);
    expect([m.state().ecx & 0xffff, m.state().edi & 0xffff]).toEqual([4, 0x14]);
    expect(m.mem.read8(TEST_DATA + 0x13)).toBe(0x77);
    expect(m.mem.read8(TEST_DATA + 0x14)).toBe(0);
    expect(m.state().eax & 0xf).toBe(0x1);
  });

  it("DR7.GD makes the next MOV DR a #DB fault with DR6.BD, and clears GD", () => {
    const pre = [...movEax(0x2000 | 0x400), ...toDr(7)];
    const code = [...pre, ...fromDr(0), HLT];
    const m = machine(code);
    expect(m.cpu.run(50)).toBe(CpuExitReason.Halted);
    expect(m.inHandler()).toBe(true); // the handler's own MOV from DR6 works: GD was cleared
    expect(m.frame().ip).toBe(pre.length); // a fault: the frame points at the MOV
    expect(m.state().eax & DR6_BD).toBe(DR6_BD);
    expect(m.state().dr7 & 0x2000).toBe(0);
  });

  it("disabled breakpoints (L and G clear) do not fire", () => {
    // R/W0 = 01 and LEN0 = 11 for DS:10h, but L0 = G0 = 0.
    const code = [...movEax(TEST_DATA + 0x10), ...toDr(0), ...movEax(((1 << 16) | (3 << 18) | 0x400) >>> 0), ...toDr(7), ...stAl(0x10), HLT];
    const m = machine(code);
    expect(m.cpu.run(50)).toBe(CpuExitReason.Halted);
    expect(m.inHandler()).toBe(false);
  });
});

describe("an intercepted #DB (exceptionBitmap bit 1): exit.dbBits instead of DR6 (SDM 27.1, table 28-1)", () => {
  /** Stops at the #DB exit, then delivers a #DB by injection: the handler's EAX is DR6 as the exit left it. */
  function intercepted(code: number[], eflags = 0x2, setsDr6 = false) {
    const m = machine(code, eflags);
    m.cpu.intercepts.exceptionBitmap = 1 << 1;
    if (setsDr6) m.cpu.intercepts.dbExitSetsDr6 = true;
    expect(m.cpu.run(50)).toBe(CpuExitReason.Exception);
    expect(m.cpu.exit.vector).toBe(1);
    const bits = m.cpu.exit.dbBits;
    expect(m.inHandler()).toBe(false);
    m.cpu.intercepts.exceptionBitmap = 0;
    m.cpu.deliverEvent(EventType.HardwareException, 1, 0, false);
    expect(m.cpu.run(5)).toBe(CpuExitReason.Halted);
    expect(m.inHandler()).toBe(true);
    return { bits, dr6: m.state().eax >>> 0 };
  }

  it("single-step: BS in dbBits, DR6 left at its reset value", () => {
    expect(intercepted([INC_BX, INC_BX, HLT], 0x102)).toEqual({ bits: DR6_BS, dr6: 0xffff0ff0 });
  });

  it("with dbExitSetsDr6 (AMD, APM 15.12) DR6 gets the bits before the exit as well", () => {
    const r = intercepted([INC_BX, INC_BX, HLT], 0x102, true);
    expect(r.bits).toBe(DR6_BS);
    expect(r.dr6 & DR6_BS).toBe(DR6_BS);
  });

  it("an instruction breakpoint: B0 in dbBits, not in DR6", () => {
    const code = [...movEax(TEST_CODE + 19), ...toDr(0), ...movEax(dr7(0, 0, 0)), ...toDr(7), NOP, INC_BX, HLT];
    expect(intercepted(code)).toEqual({ bits: 0x1, dr6: 0xffff0ff0 });
  });

  it("a data breakpoint hit with TF set: B1 and BS in one dbBits", () => {
    const pre = [...movEax(TEST_DATA + 0x10), ...toDr(1), ...movEax(dr7(1, 1, 0)), ...toDr(7)];
    const setTf = [0x9c, 0x58, 0x80, 0xcc, 0x01, 0x50, 0x9d];
    expect(intercepted([...pre, ...setTf, ...stAl(0x10), NOP, HLT])).toEqual({ bits: 0x2 | DR6_BS, dr6: 0xffff0ff0 });
  });

  it("DR7.GD: BD in dbBits, not in DR6", () => {
    const code = [...movEax(0x2000 | 0x400), ...toDr(7), ...fromDr(0), HLT];
    expect(intercepted(code)).toEqual({ bits: DR6_BD, dr6: 0xffff0ff0 });
  });

  it("a #DB delivered to the guest after an intercepted one does not inherit its bits", () => {
    // First a single-step #DB intercepted; then with the bitmap clear the next one is delivered with only BS.
    const m = machine([INC_BX, INC_BX, HLT], 0x102);
    m.cpu.intercepts.exceptionBitmap = 1 << 1;
    expect(m.cpu.run(50)).toBe(CpuExitReason.Exception);
    m.cpu.intercepts.exceptionBitmap = 0;
    expect(m.cpu.run(50)).toBe(CpuExitReason.Halted);
    expect(m.inHandler()).toBe(true);
    expect(m.state().eax >>> 0).toBe((0xffff0ff0 | DR6_BS) >>> 0);
  });
});

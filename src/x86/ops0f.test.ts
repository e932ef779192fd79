// The 0F opcodes of an i686 in real mode, MSRs/TSC, control registers, and the
// fault and REP-interruption behaviour (issue 3). Expected values come from the SDM
// definitions, computed by hand in each test.
import { describe, expect, it } from "vitest";
import { X86Cpu } from "./cpu.js";
import { FlatMemory } from "./memory.js";
import { realModeState, resetState } from "./state.js";
import { CpuExitReason } from "./types.js";
import type { AccessSize, IoPorts, X86State } from "./types.js";

const CODE = 0x10000, DATA = 0x30000, STACK = 0x20000;
const CF = 1, ZF = 0x40, OF = 0x800, TF = 0x100;

const NO_IO: IoPorts = { in: (_p: number, s: AccessSize) => (s === 1 ? 0xff : 0xffff), out: () => {} };

function machine(code: number[], init?: (s: X86State) => void) {
  const mem = new FlatMemory(0x110000);
  const cpu = new X86Cpu(mem, NO_IO);
  mem.bytes.set(code, CODE);
  const s = realModeState(CODE >> 4, 0);
  s.ss.selector = STACK >> 4; s.ss.base = STACK; s.esp = 0x100;
  s.ds.selector = DATA >> 4; s.ds.base = DATA;
  s.es.selector = DATA >> 4; s.es.base = DATA;
  init?.(s);
  cpu.setState(s);
  const state = () => { const o = resetState(); cpu.getState(o); return o; };
  /** IVT vector v -> 3000:v*16, where a HLT waits. */
  const handler = (v: number) => { mem.write16(v * 4, v * 16); mem.write16(v * 4 + 2, 0x3000); mem.write8(0x30000 + v * 16, 0xf4); };
  /** Run one instruction and report which vector (if any) it raised, through the exception bitmap. */
  const fault = (): number | null => {
    cpu.intercepts.exceptionBitmap = 0xffffffff;
    const r = cpu.run(1);
    cpu.intercepts.exceptionBitmap = 0;
    return r === CpuExitReason.Exception ? cpu.exit.vector : null;
  };
  return { mem, cpu, state, handler, fault };
}

describe("bit test instructions", () => {
  it("BT r16, r16 copies the selected bit (modulo 16) into CF and writes nothing", () => {
    const m = machine([0x0f, 0xa3, 0xc8, 0x0f, 0xa3, 0xc8], (s) => { s.eax = 0x0020; s.ecx = 5 + 16; });
    m.cpu.run(1);
    expect(m.state().eflags & CF).toBe(CF);
    m.cpu.setState({ ...m.state(), ecx: 4 });
    m.cpu.run(1);
    expect(m.state().eflags & CF).toBe(0);
    expect(m.state().eax).toBe(0x20);
  });

  it("BTS/BTR/BTC set, clear and complement the bit and return its old value in CF", () => {
    // bts ax,cx ; btr ax,cx ; btc ax,cx
    const m = machine([0x0f, 0xab, 0xc8, 0x0f, 0xb3, 0xc8, 0x0f, 0xbb, 0xc8], (s) => { s.eax = 0; s.ecx = 3; });
    m.cpu.run(1);
    expect([m.state().eax, m.state().eflags & CF]).toEqual([8, 0]);
    m.cpu.run(1);
    expect([m.state().eax, m.state().eflags & CF]).toEqual([0, CF]);
    m.cpu.run(1);
    expect([m.state().eax, m.state().eflags & CF]).toEqual([8, 0]);
  });

  it("BT with a register offset reaches memory beyond the operand, negative offsets below it", () => {
    // bts word [0x10], cx  with CX = 35 -> word at 0x10 + 2*2 = 0x14, bit 3
    const m = machine([0x0f, 0xab, 0x0e, 0x10, 0x00, 0x0f, 0xab, 0x0e, 0x10, 0x00], (s) => { s.ecx = 35; });
    m.cpu.run(1);
    expect(m.mem.read16(DATA + 0x14)).toBe(8);
    expect(m.mem.read16(DATA + 0x10)).toBe(0);
    // CX = -1 -> word at 0x10 - 2, bit 15
    m.cpu.setState({ ...m.state(), ecx: 0xffff });
    m.cpu.run(1);
    expect(m.mem.read16(DATA + 0x0e)).toBe(0x8000);
  });

  it("BT with an immediate offset takes it modulo the operand size, without moving the address", () => {
    // 66 0F BA 2E 10 00 25: bts dword [0x10], 37 -> bit 5 of the dword at 0x10
    const m = machine([0x66, 0x0f, 0xba, 0x2e, 0x10, 0x00, 37]);
    m.cpu.run(1);
    expect(m.mem.read32(DATA + 0x10)).toBe(32);
  });

  it("0F BA /0-/3 are #UD", () => {
    const m = machine([0x0f, 0xba, 0xc0, 1]);
    expect(m.fault()).toBe(6);
  });
});

describe("bit scan, double shifts, exchange", () => {
  it("BSF/BSR find the lowest and highest set bit; a zero source sets ZF and leaves the destination", () => {
    // bsf dx, ax ; bsr dx, ax
    const m = machine([0x0f, 0xbc, 0xd0, 0x0f, 0xbd, 0xd0, 0x0f, 0xbc, 0xd0], (s) => { s.eax = 0x0a50; s.edx = 0x1234; });
    m.cpu.run(1);
    expect([m.state().edx & 0xffff, m.state().eflags & ZF]).toEqual([4, 0]);
    m.cpu.run(1);
    expect(m.state().edx & 0xffff).toBe(11);
    m.cpu.setState({ ...m.state(), eax: 0 });
    m.cpu.run(1);
    expect([m.state().edx & 0xffff, m.state().eflags & ZF]).toEqual([11, ZF]);
  });

  it("BSF r32 finds bit 31", () => {
    const m = machine([0x66, 0x0f, 0xbc, 0xd0], (s) => { s.eax = 0x80000000; });
    m.cpu.run(1);
    expect(m.state().edx).toBe(31);
  });

  it("SHLD/SHRD shift in bits from the source, CF is the last bit out, count 0 changes nothing", () => {
    // shld ax, bx, 4 ; shrd ax, bx, cl (CL=8) ; shld ax,bx,0
    const m = machine([0x0f, 0xa4, 0xd8, 4, 0x0f, 0xad, 0xd8, 0x0f, 0xa4, 0xd8, 0], (s) => { s.eax = 0x9234; s.ebx = 0xabcd; s.ecx = 8; });
    m.cpu.run(1);
    expect(m.state().eax & 0xffff).toBe(0x234a);
    expect(m.state().eflags & CF).toBe(CF); // bit 12 of 0x9234 = 1
    m.cpu.run(1);
    expect(m.state().eax & 0xffff).toBe(0xcd23); // 0x234a >> 8 with BL's 0xcd shifted in
    expect(m.state().eflags & CF).toBe(0); // bit 7 of 0x234a = 0
    const before = m.state().eflags;
    m.cpu.run(1);
    expect(m.state().eax & 0xffff).toBe(0xcd23);
    expect(m.state().eflags).toBe(before);
  });

  it("SHRD r32 by 1 sets OF on a sign change", () => {
    const m = machine([0x66, 0x0f, 0xac, 0xd8, 1], (s) => { s.eax = 0x00000002; s.ebx = 1; });
    m.cpu.run(1);
    expect(m.state().eax).toBe(0x80000001);
    expect(m.state().eflags & (OF | CF)).toBe(OF);
  });

  it("CMPXCHG stores the source when the accumulator matches, else loads the accumulator", () => {
    // cmpxchg [0x10], cx  twice
    const m = machine([0x0f, 0xb1, 0x0e, 0x10, 0x00, 0x0f, 0xb1, 0x0e, 0x10, 0x00], (s) => { s.eax = 0x1111; s.ecx = 0x2222; });
    m.mem.write16(DATA + 0x10, 0x1111);
    m.cpu.run(1);
    expect([m.mem.read16(DATA + 0x10), m.state().eflags & ZF]).toEqual([0x2222, ZF]);
    m.cpu.run(1);
    expect([m.state().eax & 0xffff, m.state().eflags & ZF]).toEqual([0x2222, 0]);
  });

  it("XADD exchanges and adds, with ADD flags", () => {
    const m = machine([0x0f, 0xc0, 0xd8], (s) => { s.eax = 0xf0; s.ebx = 0x20; }); // xadd al, bl
    m.cpu.run(1);
    expect([m.state().eax & 0xff, m.state().ebx & 0xff, m.state().eflags & CF]).toEqual([0x10, 0xf0, CF]);
  });

  it("CMPXCHG8B compares EDX:EAX with m64 and stores ECX:EBX, else loads EDX:EAX", () => {
    const code = [0x0f, 0xc7, 0x0e, 0x10, 0x00];
    const m = machine([...code, ...code], (s) => { s.eax = 1; s.edx = 2; s.ebx = 3; s.ecx = 4; });
    m.mem.write32(DATA + 0x10, 1); m.mem.write32(DATA + 0x14, 2);
    m.cpu.run(1);
    expect([m.mem.read32(DATA + 0x10), m.mem.read32(DATA + 0x14), m.state().eflags & ZF]).toEqual([3, 4, ZF]);
    m.cpu.run(1);
    expect([m.state().eax, m.state().edx, m.state().eflags & ZF]).toEqual([3, 4, 0]);
  });

  it("CMPXCHG8B with a register operand is #UD", () => {
    expect(machine([0x0f, 0xc7, 0xc8]).fault()).toBe(6);
  });

  it("BSWAP reverses the bytes of a 32-bit register", () => {
    const m = machine([0x66, 0x0f, 0xcb], (s) => { s.ebx = 0x12345678; });
    m.cpu.run(1);
    expect(m.state().ebx).toBe(0x78563412);
  });

  it("CMOVcc moves only when the condition holds but always reads the source", () => {
    // cmovz ax, bx ; cmovnz ax, cx ; cmovz ax, [0xffff] (faults even though ZF=0)
    const m = machine([0x0f, 0x44, 0xc3, 0x0f, 0x45, 0xc1, 0x0f, 0x44, 0x06, 0xff, 0xff], (s) => { s.eflags = 0x2 | ZF; s.ebx = 7; s.ecx = 9; });
    m.cpu.run(1);
    expect(m.state().eax & 0xffff).toBe(7);
    m.cpu.run(1);
    expect(m.state().eax & 0xffff).toBe(7);
    m.cpu.setState({ ...m.state(), eflags: 0x2 });
    expect(m.fault()).toBe(13);
  });
});

describe("system instructions in real mode", () => {
  it("RDTSC counts retired instructions plus a settable offset", () => {
    const m = machine([0x90, 0x90, 0x0f, 0x31, 0x0f, 0x31]);
    m.cpu.tscOffset = 0x100000000 * 3 + 10;
    m.cpu.run(3);
    expect([m.state().edx, m.state().eax]).toEqual([3, 13]);
    m.cpu.run(1);
    expect(m.state().eax).toBe(14);
  });

  it("WRMSR to the TSC sets the counter that RDTSC continues from", () => {
    // wrmsr ; rdtsc
    const m = machine([0x0f, 0x30, 0x0f, 0x31], (s) => { s.ecx = 0x10; s.eax = 1000; s.edx = 0; });
    m.cpu.run(2);
    expect([m.state().edx, m.state().eax]).toEqual([0, 1001]);
  });

  it("RDMSR reads the APIC base reset value, SYSENTER MSRs are stored, unknown MSRs are #GP(0)", () => {
    const m = machine([0x0f, 0x32, 0x0f, 0x30, 0x0f, 0x32, 0x0f, 0x32], (s) => { s.ecx = 0x1b; });
    m.cpu.run(1);
    expect([m.state().edx, m.state().eax]).toEqual([0, 0xfee00900]);
    m.cpu.setState({ ...m.state(), ecx: 0x175, eax: 0xcafe, edx: 0 });
    m.cpu.run(1);
    m.cpu.setState({ ...m.state(), eax: 0 });
    m.cpu.run(1);
    expect(m.state().eax).toBe(0xcafe);
    m.cpu.setState({ ...m.state(), ecx: 0x179 });
    expect(m.fault()).toBe(13);
    expect(m.cpu.exit.errorCode).toBe(0);
  });

  it("the MSR intercept stops before RDMSR/WRMSR with the index and direction", () => {
    const m = machine([0x0f, 0x30], (s) => { s.ecx = 0x277; });
    m.cpu.intercepts.msr = true;
    expect(m.cpu.run(5)).toBe(CpuExitReason.Msr);
    expect([m.cpu.exit.msrIndex, m.cpu.exit.msrWrite, m.cpu.exit.instrLen, m.state().eip]).toEqual([0x277, true, 2, 0]);
  });

  it("MOV to and from CR0/CR3/CR4 stores the value; PG without PE is #GP; CR1 is #UD", () => {
    // mov cr3, eax ; mov ebx, cr3 ; mov cr0, eax (PG|PE... first PE only) ; mov cr1, eax
    const m = machine([0x0f, 0x22, 0xd8, 0x0f, 0x20, 0xdb, 0x0f, 0x22, 0xc0, 0x0f, 0x22, 0xc0, 0x0f, 0x22, 0xc8], (s) => { s.eax = 0x1000; });
    m.cpu.run(2);
    expect(m.state().ebx).toBe(0x1000);
    expect(m.state().cr3).toBe(0x1000);
    m.cpu.setState({ ...m.state(), eax: 0x11 });
    m.cpu.run(1);
    expect(m.state().cr0).toBe(0x11); // PE stored (the protected-mode handover is the caller's)
    m.cpu.setState({ ...m.state(), eax: 0x80000010 });
    expect(m.fault()).toBe(13);
    m.cpu.setState({ ...m.state(), eip: 12 });
    expect(m.fault()).toBe(6);
  });

  it("LMSW sets the low CR0 bits but cannot clear PE; SMSW stores CR0; CLTS clears TS", () => {
    // lmsw ax ; smsw bx ; clts ; smsw cx ; lmsw dx(0)
    const m = machine([0x0f, 0x01, 0xf0, 0x0f, 0x01, 0xe3, 0x0f, 0x06, 0x0f, 0x01, 0xe1, 0x0f, 0x01, 0xf2], (s) => { s.eax = 0x0009; s.edx = 0; });
    m.cpu.run(2);
    expect(m.state().ebx & 0xffff).toBe(0x19); // ET stays, PE and TS set
    m.cpu.run(2);
    expect(m.state().ecx & 0xffff).toBe(0x11);
    m.cpu.run(1);
    expect(m.state().cr0 & 1).toBe(1);
  });

  it("LGDT/LIDT load a 24-bit base with a 16-bit operand; SGDT/SIDT store limit and base", () => {
    // lidt [0x10] ; o32 lgdt [0x20] ; sidt [0x30] ; sgdt [0x40]
    const m = machine([0x0f, 0x01, 0x1e, 0x10, 0x00, 0x66, 0x0f, 0x01, 0x16, 0x20, 0x00, 0x0f, 0x01, 0x0e, 0x30, 0x00, 0x0f, 0x01, 0x06, 0x40, 0x00]);
    m.mem.write16(DATA + 0x10, 0x3ff); m.mem.write32(DATA + 0x12, 0xff123456);
    m.mem.write16(DATA + 0x20, 0x17); m.mem.write32(DATA + 0x22, 0xff123456);
    m.cpu.run(4);
    const s = m.state();
    expect([s.idtr.base, s.idtr.limit, s.gdtr.base, s.gdtr.limit]).toEqual([0x123456, 0x3ff, 0xff123456, 0x17]);
    expect([m.mem.read16(DATA + 0x30), m.mem.read32(DATA + 0x32)]).toEqual([0x3ff, 0x123456]);
    expect([m.mem.read16(DATA + 0x40), m.mem.read32(DATA + 0x42)]).toEqual([0x17, 0xff123456]);
  });

  it("LAR, LSL, SLDT/VERR group, UD2 and unimplemented 0F opcodes are #UD in real mode", () => {
    for (const code of [[0x0f, 0x02, 0xc0], [0x0f, 0x03, 0xc0], [0x0f, 0x00, 0xe0], [0x0f, 0x0b], [0x0f, 0xff], [0x0f, 0x77], [0x0f, 0x01, 0xca]]) {
      expect(machine(code).fault(), code.map((b) => b.toString(16)).join(" ")).toBe(6);
    }
  });

  it("INVD, WBINVD and the 0F 1F NOP execute as no-ops of the right length", () => {
    const m = machine([0x0f, 0x08, 0x0f, 0x09, 0x0f, 0x1f, 0x44, 0x00]); // nop [si+0]
    m.cpu.run(3);
    expect(m.state().eip).toBe(8);
  });
});

describe("faults a 386+ raises in real mode", () => {
  it("an ESC memory operand beyond the segment limit is #GP; with CR0.EM it is #NM", () => {
    // fld qword [0xfffc] (DD /0): 8 bytes from FFFC overrun the limit
    const m = machine([0xdd, 0x06, 0xfc, 0xff]);
    expect(m.fault()).toBe(13);
    const n = machine([0xdd, 0x06, 0xfc, 0xff], (s) => { s.cr0 = 0x14; });
    expect(n.fault()).toBe(7);
  });

  it("WAIT with CR0.TS and CR0.MP is #NM", () => {
    expect(machine([0x9b], (s) => { s.cr0 = 0x1a; }).fault()).toBe(7);
    expect(machine([0x9b], (s) => { s.cr0 = 0x18; }).fault()).toBe(null);
  });

  it("LOCK on BTS to memory executes; LOCK on BT or a register destination is #UD", () => {
    expect(machine([0xf0, 0x0f, 0xab, 0x0e, 0x10, 0x00]).fault()).toBe(null);
    expect(machine([0xf0, 0x0f, 0xa3, 0x0e, 0x10, 0x00]).fault()).toBe(6);
    expect(machine([0xf0, 0x0f, 0xab, 0xc8]).fault()).toBe(6);
  });

  it("an instruction longer than 15 bytes is #GP", () => {
    const m = machine([...new Array(14).fill(0x3e), 0x90]); // 15 bytes: fine
    expect(m.fault()).toBe(null);
    expect(machine([...new Array(15).fill(0x3e), 0x90]).fault()).toBe(13);
  });

  it("a word access at offset FFFF is #GP, and #SS when SS-relative", () => {
    expect(machine([0x8b, 0x06, 0xff, 0xff]).fault()).toBe(13); // mov ax, [ffff]
    expect(machine([0x8b, 0x46, 0x00], (s) => { s.ebp = 0xffff; }).fault()).toBe(12); // mov ax, [bp]
  });

  it("POP SS blocks interrupts for the next instruction only", () => {
    const m = machine([0x17, 0x90, 0x90], (s) => { s.eflags = 0x202; });
    m.mem.write16(STACK + 0x100, 0x2000);
    m.cpu.run(1);
    expect(m.cpu.interruptible()).toBe(false);
    m.cpu.run(1);
    expect(m.cpu.interruptible()).toBe(true);
  });

  it("INTO raises #OF only with OF set, and BOUND #BR outside the bounds", () => {
    expect(machine([0xce]).fault()).toBe(null);
    expect(machine([0xce], (s) => { s.eflags = 0x2 | OF; }).fault()).toBe(4);
    const bound = (ax: number) => machine([0x62, 0x06, 0x10, 0x00], (s) => { s.eax = ax; });
    const inRange = bound(5), below = bound(0xfffe);
    for (const m of [inRange, below]) { m.mem.write16(DATA + 0x10, 0xffff); m.mem.write16(DATA + 0x12, 10); } // bounds -1..10
    expect(inRange.fault()).toBe(null);
    expect(below.fault()).toBe(5);
  });
});

describe("REP string instructions are interruptible between iterations", () => {
  function repMovsb(count: number, init?: (s: X86State) => void) {
    const m = machine([0xf3, 0xa4, 0x90], (s) => { s.ecx = count; s.esi = 0; s.edi = 0x100; init?.(s); });
    for (let i = 0; i < count; i++) m.mem.write8(DATA + i, i + 1);
    return m;
  }

  it("a budget that ends mid-REP stops at the REP with the completed iterations done", () => {
    const m = repMovsb(10);
    expect(m.cpu.run(4)).toBe(CpuExitReason.Budget);
    const s = m.state();
    expect([s.eip, s.ecx, s.esi, s.edi]).toEqual([0, 6, 4, 0x104]);
    expect(Array.from(m.mem.bytes.subarray(DATA + 0x100, DATA + 0x106))).toEqual([1, 2, 3, 4, 0, 0]);
    expect(m.cpu.retired).toBe(4);
  });

  it("the next run resumes the REP where it stopped and completes it", () => {
    const m = repMovsb(10);
    m.cpu.run(4);
    m.cpu.run(6);
    const s = m.state();
    expect([s.eip, s.ecx, s.esi, s.edi]).toEqual([2, 0, 10, 0x10a]);
    expect(Array.from(m.mem.bytes.subarray(DATA + 0x100, DATA + 0x10a))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it("a long REP MOVSB returns to the host after the budget, not after 64K iterations", () => {
    const m = repMovsb(0xffff);
    expect(m.cpu.run(100)).toBe(CpuExitReason.Budget);
    expect(m.state().ecx).toBe(0xffff - 100);
  });

  it("a fault in a later iteration keeps the earlier iterations' effects and points at the REP", () => {
    const m = machine([0xf3, 0xab], (s) => { s.ecx = 8; s.edi = 0xfff9; s.eax = 0xabcd; });
    m.handler(13);
    m.cpu.run(20);
    const s = m.state();
    // stores at FFF9, FFFB, FFFD complete; FFFF overruns the limit -> #GP with IP = 0 pushed
    expect([s.ecx & 0xffff, s.edi & 0xffff]).toEqual([5, 0xffff]);
    expect(m.mem.read16(DATA + 0xfffd)).toBe(0xabcd);
    expect(m.mem.read16(STACK + (s.esp & 0xffff))).toBe(0); // the pushed IP: the REP itself
    expect(s.cs.selector).toBe(0x3000);
  });

  it("with TF set a REP traps after each iteration with IP at the REP", () => {
    const m = repMovsb(3, (s) => { s.eflags = 0x2 | TF; });
    m.handler(1);
    m.cpu.run(1);
    const s = m.state();
    expect([s.cs.selector, s.ecx]).toEqual([0x3000, 2]);
    expect(m.mem.read16(STACK + (s.esp & 0xffff))).toBe(0);
  });

  it("an I/O-free REP LODSB with CX=0 does nothing and moves on", () => {
    const m = machine([0xf3, 0xac, 0x90], (s) => { s.ecx = 0; s.eax = 0x55; });
    m.cpu.run(1);
    expect([m.state().eip, m.state().eax, m.state().esi]).toEqual([2, 0x55, 0]);
  });
});

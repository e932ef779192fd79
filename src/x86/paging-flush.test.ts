// Two paging behaviours the QEMU differential harness (tests/diff, pm32-paging) found
// wrong: MOV to CR3 with an unchanged value must still flush the TLB (SDM Vol. 3A
// 4.10.4.1), and a read-modify-write instruction whose write faults must leave EFLAGS
// as they were (SDM Vol. 3A 6.5: a fault restarts the instruction with its state).
import { describe, expect, it } from "vitest";
import { X86Cpu } from "./cpu.js";
import { FlatMemory } from "./memory.js";
import { resetState } from "./state.js";
import { NO_IO } from "./testing.js";
import { CpuExitReason } from "./types.js";

const P = 1, W = 2, U = 4;
const GDT = 0x500, PD = 0x10000, PT = 0x11000, CODE = 0x1000;
const flat = (selector: number, attrib: number) => ({ selector, base: 0, limit: 0xffffffff, attrib });

/** Flat ring-0 protected mode, identity-mapped first 4 MiB, CR0.WP set, #PF intercepted. */
function machine(code: number[]) {
  const m = new FlatMemory(0x400000);
  const w32 = (pa: number, v: number) => m.write32(pa, v >>> 0);
  w32(GDT + 8, 0x0000ffff); w32(GDT + 12, 0x00cf9a00);
  w32(GDT + 16, 0x0000ffff); w32(GDT + 20, 0x00cf9200);
  w32(PD, PT | P | W | U);
  for (let i = 0; i < 1024; i++) w32(PT + i * 4, (i << 12) | P | W | U);
  m.bytes.set(code, CODE);
  const cpu = new X86Cpu(m, NO_IO);
  cpu.intercepts.exceptionBitmap = 1 << 14;
  const s = resetState();
  s.cr0 = 0x80010011; s.cr3 = PD;
  s.cs = flat(0x08, 0xc09b);
  for (const k of ["ss", "ds", "es", "fs", "gs"] as const) s[k] = flat(0x10, 0xc093);
  s.gdtr = { base: GDT, limit: 23 };
  s.tr = { selector: 0, base: 0, limit: 0x67, attrib: 0x8b };
  s.eip = CODE; s.esp = 0x8000; s.eflags = 2;
  cpu.setState(s);
  const state = () => { const o = resetState(); cpu.getState(o); return o; };
  const pte = (la: number) => PT + ((la >>> 12) & 0x3ff) * 4;
  return { m, cpu, state, w32, pte };
}

describe("TLB flush by MOV to CR3", () => {
  it("reloading CR3 with its own value drops a translation cached before the PTE changed", () => {
    // mov eax, [0x5000] ; mov dword [pte(0x5000)], 0x6003 ; mov ecx, cr3 ; mov cr3, ecx ; mov ebx, [0x5000] ; hlt
    const pte = PT + 5 * 4;
    const t = machine([0xa1, 0x00, 0x50, 0x00, 0x00,
      0xc7, 0x05, ...[pte, pte >>> 8, pte >>> 16, 0].map((b) => b & 0xff), 0x03, 0x60, 0x00, 0x00,
      0x0f, 0x20, 0xd9, 0x0f, 0x22, 0xd9,
      0x8b, 0x1d, 0x00, 0x50, 0x00, 0x00, 0xf4]);
    t.w32(0x5000, 0x11111111); t.w32(0x6000, 0x22222222);
    expect(t.cpu.run(20)).toBe(CpuExitReason.Halted);
    expect([t.state().eax, t.state().ebx]).toEqual([0x11111111, 0x22222222]);
  });

  it("without the reload the stale translation may still be used (the TLB keeps it until flushed)", () => {
    // The same program without MOV CR3: the core keeps the cached entry (SDM 4.10.2.2 allows it).
    const pte = PT + 5 * 4;
    const t = machine([0xa1, 0x00, 0x50, 0x00, 0x00,
      0xc7, 0x05, ...[pte, pte >>> 8, pte >>> 16, 0].map((b) => b & 0xff), 0x03, 0x60, 0x00, 0x00,
      0x8b, 0x1d, 0x00, 0x50, 0x00, 0x00, 0xf4]);
    t.w32(0x5000, 0x11111111); t.w32(0x6000, 0x22222222);
    expect(t.cpu.run(20)).toBe(CpuExitReason.Halted);
    expect(t.state().ebx).toBe(0x11111111);
  });
});

describe("read-modify-write with a faulting write", () => {
  // Each program: the destination is 0x5000, mapped read-only (CR0.WP = 1), so the read
  // succeeds and the write raises #PF(P|W). Every one would change the arithmetic flags.
  const cases: Array<[string, number[]]> = [
    ["ADD r/m8, imm8 (80 /0)", [0x80, 0x05, 0x00, 0x50, 0x00, 0x00, 0x01]],
    ["ADD r/m32, r32 (01)", [0x01, 0x05, 0x00, 0x50, 0x00, 0x00]],
    ["SUB r/m32, imm8 (83 /5)", [0x83, 0x2d, 0x00, 0x50, 0x00, 0x00, 0x01]],
    ["INC r/m8 (FE /0)", [0xfe, 0x05, 0x00, 0x50, 0x00, 0x00]],
    ["DEC r/m32 (FF /1)", [0xff, 0x0d, 0x00, 0x50, 0x00, 0x00]],
    ["NEG r/m32 (F7 /3)", [0xf7, 0x1d, 0x00, 0x50, 0x00, 0x00]],
    ["SHL r/m32, 1 (D1 /4)", [0xd1, 0x25, 0x00, 0x50, 0x00, 0x00]],
    ["ROL r/m8, imm8 (C0 /0)", [0xc0, 0x05, 0x00, 0x50, 0x00, 0x00, 0x03]],
    ["SHLD r/m32, r32, imm8 (0F A4)", [0x0f, 0xa4, 0x05, 0x00, 0x50, 0x00, 0x00, 0x04]],
    ["XADD r/m32, r32 (0F C1)", [0x0f, 0xc1, 0x05, 0x00, 0x50, 0x00, 0x00]],
    ["CMPXCHG r/m32, r32 (0F B1)", [0x0f, 0xb1, 0x05, 0x00, 0x50, 0x00, 0x00]],
    ["BTS r/m32, imm8 (0F BA /5)", [0x0f, 0xba, 0x2d, 0x00, 0x50, 0x00, 0x00, 0x00]],
  ];
  for (const [name, insn] of cases) {
    it(`${name}: #PF(P|W) and EFLAGS, memory and registers unchanged`, () => {
      const t = machine([...insn, 0xf4]);
      t.w32(t.pte(0x5000), 0x5000 | P | U);
      t.w32(0x5000, 0x80000001); // CF, ZF, SF, OF, PF all change for these operations from EFLAGS = 0x8d5 / 2
      const before = t.state();
      for (const fl of [0x2, 0x8d7]) {
        const s = t.state(); s.eflags = fl; s.eip = CODE; s.eax = 0x80000001; t.cpu.setState(s);
        expect(t.cpu.run(10)).toBe(CpuExitReason.Exception);
        expect([t.cpu.exit.vector, t.cpu.exit.errorCode]).toEqual([14, P | W]);
        const a = t.state();
        expect(a.eflags).toBe(fl);
        expect([a.eip, a.eax, a.ecx, t.m.read32(0x5000)]).toEqual([CODE, 0x80000001, before.ecx, 0x80000001]);
      }
    });
  }

  it("a page-crossing RMW whose second page is read-only faults at that page's first byte, nothing written", () => {
    const t = machine([0x83, 0x05, 0xfe, 0x5f, 0x00, 0x00, 0x01, 0xf4]); // add dword [0x5ffe], 1
    t.w32(t.pte(0x6000), 0x6000 | P | U);
    t.w32(0x5ffc, 0xffff0000);
    expect(t.cpu.run(10)).toBe(CpuExitReason.Exception);
    expect([t.cpu.exit.vector, t.cpu.exit.errorCode, t.cpu.exit.linear]).toEqual([14, P | W, 0x6000]);
    expect([t.m.read32(0x5ffc), t.m.read32(0x6000), t.state().eflags]).toEqual([0xffff0000, 0, 2]);
  });
});

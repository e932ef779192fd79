// Paging through X86Cpu: flat 32-bit protected mode set up by setState, identity page
// tables, #PF delivery and intercepts, self-modifying code through an alias, page-crossing
// accesses and MemAbort during a page walk (SDM Vol. 3A chapter 4, 6.15 interrupt 14).
import { describe, expect, it } from "vitest";
import { X86Cpu } from "./cpu.js";
import { FlatMemory, MEM_ABORT } from "./memory.js";
import { resetState } from "./state.js";
import { NO_IO } from "./testing.js";
import { CpuExitReason } from "./types.js";
import type { PhysMemory, X86State } from "./types.js";

const P = 1, W = 2, U = 4, A = 0x20, D = 0x40;
const GDT = 0x500, IDT = 0x600, PD = 0x10000, PT = 0x11000, HANDLER = 0x3000, CODE = 0x1000;

function seg(selector: number, attrib: number) {
  return { selector, base: 0, limit: 0xffffffff, attrib };
}

/** Flat ring-0 protected mode with paging: GDT, a #PF interrupt gate, identity-mapped first 4 MiB. */
function machine(code: number[], opts: { user?: boolean; mem?: PhysMemory; flat?: FlatMemory } = {}) {
  const m = opts.flat ?? new FlatMemory(0x400000);
  const b = m.bytes;
  const w32 = (pa: number, v: number) => m.write32(pa, v >>> 0);
  // GDT: null, ring-0 code/data, ring-3 code/data (flat, 4 KiB granular, 32-bit).
  w32(GDT + 8, 0x0000ffff); w32(GDT + 12, 0x00cf9a00);
  w32(GDT + 16, 0x0000ffff); w32(GDT + 20, 0x00cf9200);
  w32(GDT + 24, 0x0000ffff); w32(GDT + 28, 0x00cffa00);
  w32(GDT + 32, 0x0000ffff); w32(GDT + 36, 0x00cff200);
  // IDT vector 14: 32-bit interrupt gate to 08:HANDLER.
  w32(IDT + 14 * 8, (0x08 << 16) | (HANDLER & 0xffff)); w32(IDT + 14 * 8 + 4, (HANDLER & 0xffff0000) | 0x8e00);
  w32(PD, PT | P | W | U);
  for (let i = 0; i < 1024; i++) w32(PT + i * 4, (i << 12) | P | W | U);
  b.set(code, CODE);
  const cpu = new X86Cpu(opts.mem ?? m, NO_IO);
  const s = resetState();
  s.cr0 = 0x80000011; s.cr3 = PD;
  s.cs = seg(opts.user ? 0x1b : 0x08, opts.user ? 0xc0fb : 0xc09b);
  for (const k of ["ss", "ds", "es", "fs", "gs"] as const) s[k] = seg(opts.user ? 0x23 : 0x10, opts.user ? 0xc0f3 : 0xc093);
  s.gdtr = { base: GDT, limit: 39 }; s.idtr = { base: IDT, limit: 0x7ff };
  s.tr = { selector: 0, base: 0, limit: 0x67, attrib: 0x8b };
  s.eip = CODE; s.esp = 0x8000; s.eflags = 2; s.edx = 0;
  cpu.setState(s);
  const state = () => { const o = resetState(); cpu.getState(o); return o; };
  const pte = (la: number) => PT + ((la >>> 12) & 0x3ff) * 4;
  return { m, cpu, state, w32, pte, set: (f: (s: X86State) => void) => { const o = state(); f(o); cpu.setState(o); } };
}

describe("paging through the core", () => {
  it("a not-present read raises #PF(0) with CR2; the handler maps the page and IRET restarts the load", () => {
    const t = machine([0xa1, 0x10, 0x00, 0x20, 0x00, 0xf4]); // mov eax, [0x200010] ; hlt
    t.w32(t.pte(0x200000), 0);
    t.w32(0x200010, 0xdeadbeef);
    // Handler: pop ecx (error code) ; mov ebx, cr2 ; mov dword [pte], 0x200007 ; invlpg [0x200010] ; iret
    const p = t.pte(0x200000);
    t.m.bytes.set([0x59, 0x0f, 0x20, 0xd3, 0xc7, 0x05, p & 0xff, (p >> 8) & 0xff, (p >> 16) & 0xff, 0, 0x07, 0x00, 0x20, 0x00,
      0x0f, 0x01, 0x3d, 0x10, 0x00, 0x20, 0x00, 0xcf], HANDLER);
    expect(t.cpu.run(100)).toBe(CpuExitReason.Halted);
    const s = t.state();
    expect([s.eax, s.ecx, s.ebx, s.cr2]).toEqual([0xdeadbeef, 0, 0x200010, 0x200010]);
    expect(t.m.read32(p) & (A | D)).toBe(A); // the retried read set A, not D
  });

  it("a supervisor write to a read-only page faults with P|W only when CR0.WP is set", () => {
    const code = [0xc7, 0x05, 0x00, 0x50, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12, 0xf4]; // mov dword [0x5000], 0x12345678 ; hlt
    const off = machine(code);
    off.w32(off.pte(0x5000), 0x5000 | P | U);
    off.cpu.intercepts.exceptionBitmap = 1 << 14;
    expect(off.cpu.run(10)).toBe(CpuExitReason.Halted);
    expect(off.m.read32(0x5000)).toBe(0x12345678);
    const on = machine(code);
    on.w32(on.pte(0x5000), 0x5000 | P | U);
    on.set((s) => { s.cr0 |= 0x10000; });
    on.cpu.intercepts.exceptionBitmap = 1 << 14;
    expect(on.cpu.run(10)).toBe(CpuExitReason.Exception);
    const e = on.cpu.exit;
    expect([e.vector, e.errorCode, e.hasErrorCode, e.linear, on.state().eip, on.state().cr2]).toEqual([14, P | W, true, 0x5000, CODE, 0]);
    expect(on.m.read32(0x5000)).toBe(0);
  });

  it("at CPL 3 a read of a supervisor page is #PF(P|U); the intercepted #PF leaves CR2 alone and reports the address", () => {
    const t = machine([0x8b, 0x05, 0x34, 0x62, 0x00, 0x00], { user: true }); // mov eax, [0x6234]
    t.w32(t.pte(0x6000), 0x6000 | P | W);
    t.cpu.intercepts.exceptionBitmap = 1 << 14;
    expect(t.cpu.run(10)).toBe(CpuExitReason.Exception);
    expect([t.cpu.exit.errorCode, t.cpu.exit.linear, t.state().cr2, t.state().eip]).toEqual([P | U, 0x6234, 0, CODE]);
  });

  it("code rewritten through another linear mapping of its page runs with the new bytes", () => {
    // 0x1000: mov eax, imm32 ; add ebx, eax ; inc edx ; mov [0x301001], edx ; cmp edx, 100 ; jne 0x1000 ; hlt
    const t = machine([0xb8, 0, 0, 0, 0, 0x01, 0xc3, 0x42, 0x89, 0x15, 0x01, 0x10, 0x30, 0x00, 0x83, 0xfa, 0x64, 0x75, 0xed, 0xf4]);
    t.w32(t.pte(0x301000), 0x1000 | P | W); // alias of the code page
    expect(t.cpu.run(10000)).toBe(CpuExitReason.Halted);
    expect(t.state().ebx).toBe((99 * 100) / 2);
  });

  it("a write crossing into a not-present page faults on the second page and writes neither", () => {
    const t = machine([0xc7, 0x05, 0xfe, 0xff, 0x1f, 0x00, 0x44, 0x33, 0x22, 0x11]); // mov dword [0x1ffffe], 0x11223344
    t.w32(t.pte(0x200000), 0);
    t.cpu.intercepts.exceptionBitmap = 1 << 14;
    expect(t.cpu.run(10)).toBe(CpuExitReason.Exception);
    expect([t.cpu.exit.errorCode, t.cpu.exit.linear]).toEqual([W, 0x200000]);
    expect(t.m.read32(0x1ffffc)).toBe(0);
  });

  it("a read crossing two pages mapped far apart gathers the bytes from both frames", () => {
    const t = machine([0xa1, 0xfe, 0x0f, 0x25, 0x00, 0xf4]); // mov eax, [0x250ffe] ; hlt
    t.w32(t.pte(0x250000), 0x260000 | P);
    t.w32(t.pte(0x251000), 0x240000 | P);
    t.m.bytes.set([0x11, 0x22], 0x260ffe);
    t.m.bytes.set([0x33, 0x44], 0x240000);
    expect(t.cpu.run(10)).toBe(CpuExitReason.Halted);
    expect(t.state().eax).toBe(0x44332211);
  });

  it("INVLPG makes a changed PTE visible; without it the TLB keeps the old frame", () => {
    // mov eax, [0x7000] ; mov dword [pte(0x7000)], 0x8003 ; mov ebx, [0x7000] ; invlpg [0x7000] ; mov ecx, [0x7000] ; hlt
    const t = machine([]);
    const p = t.pte(0x7000);
    t.m.bytes.set([0xa1, 0x00, 0x70, 0x00, 0x00, 0xc7, 0x05, p & 0xff, (p >> 8) & 0xff, (p >> 16) & 0xff, 0, 0x03, 0x80, 0, 0,
      0x8b, 0x1d, 0x00, 0x70, 0x00, 0x00, 0x0f, 0x01, 0x3d, 0x00, 0x70, 0x00, 0x00, 0x8b, 0x0d, 0x00, 0x70, 0x00, 0x00, 0xf4], CODE);
    t.w32(0x7000, 0x77); t.w32(0x8000, 0x88);
    expect(t.cpu.run(10)).toBe(CpuExitReason.Halted);
    expect([t.state().eax, t.state().ebx, t.state().ecx]).toEqual([0x77, 0x77, 0x88]);
  });

  it("a walk refused by the memory stops with MemAbort, memWalk set and the instruction undone", () => {
    const flat = new FlatMemory(0x400000);
    const refuse = (pa: number) => pa >= 0x180000 && pa < 0x181000;
    const mem: PhysMemory = {
      ram: flat.bytes.subarray(0, 0x100000),
      read8: (pa) => { if (refuse(pa)) throw MEM_ABORT; return flat.read8(pa); },
      read16: (pa) => { if (refuse(pa)) throw MEM_ABORT; return flat.read16(pa); },
      read32: (pa) => { if (refuse(pa)) throw MEM_ABORT; return flat.read32(pa); },
      write8: (pa, v) => flat.write8(pa, v), write16: (pa, v) => flat.write16(pa, v), write32: (pa, v) => flat.write32(pa, v),
    };
    const t = machine([0xa1, 0x04, 0x00, 0x40, 0x00], { mem, flat }); // mov eax, [0x400004]
    t.w32(PD + 4, 0x180000 | P | W); // PDE 1 -> a page table the memory refuses
    expect(t.cpu.run(10)).toBe(CpuExitReason.MemAbort);
    const e = t.cpu.exit;
    expect([e.memWalk, e.memGpa, e.memLinear, e.memLinearValid, e.memWrite, t.state().eip]).toEqual([true, 0x180000, 0x400004, true, false, CODE]);
  });

  it("a data access outside the RAM window reports its linear and physical addresses on MemAbort", () => {
    const flat = new FlatMemory(0x400000);
    const mem: PhysMemory = {
      ram: flat.bytes.subarray(0, 0x100000),
      read8: (pa) => flat.read8(pa), read16: (pa) => flat.read16(pa), read32: (pa) => flat.read32(pa),
      write8: () => { throw MEM_ABORT; }, write16: () => { throw MEM_ABORT; }, write32: () => { throw MEM_ABORT; },
    };
    const t = machine([0x89, 0x05, 0x10, 0x50, 0x00, 0x00], { mem, flat }); // mov [0x5010], eax
    t.w32(t.pte(0x5000), 0x250000 | P | W);
    expect(t.cpu.run(10)).toBe(CpuExitReason.MemAbort);
    const e = t.cpu.exit;
    expect([e.memWalk, e.memGpa, e.memLinear, e.memWrite]).toEqual([false, 0x250010, 0x5010, true]);
  });

  it("PAE with EFER.NXE: a fetch from an execute-disable page is #PF(P|I); a reserved PDPTE makes MOV CR3 #GP", () => {
    const t = machine([0xe9, 0xfb, 0x3f, 0x00, 0x00]); // jmp 0x5000
    const w64 = (pa: number, lo: number, hi = 0) => { t.w32(pa, lo); t.w32(pa + 4, hi); };
    w64(0x20000, 0x21000 | P);            // PDPT entry 0
    w64(0x21000, 0x22000 | P | W);        // PD entry 0
    for (let i = 0; i < 512; i++) w64(0x22000 + i * 8, (i << 12) | P | W, i === 5 ? 0x80000000 : 0);
    t.set((s) => { s.cr3 = 0x20000; s.cr4 = 0x20; s.efer = 0x800; });
    t.cpu.intercepts.exceptionBitmap = 1 << 14;
    expect(t.cpu.run(10)).toBe(CpuExitReason.Exception);
    expect([t.cpu.exit.errorCode, t.cpu.exit.linear]).toEqual([P | 0x10, 0x5000]);
    // mov cr3, eax with a PDPTE that has reserved bit 1 set
    w64(0x23000, 0x21000 | P | W);
    t.m.bytes.set([0x0f, 0x22, 0xd8], 0x1000);
    t.cpu.intercepts.exceptionBitmap = 1 << 13;
    t.set((s) => { s.eip = 0x1000; s.eax = 0x23000; });
    expect(t.cpu.run(10)).toBe(CpuExitReason.Exception);
    expect([t.cpu.exit.vector, t.cpu.exit.errorCode, t.state().cr3]).toEqual([13, 0, 0x20000]);
  });
});

describe("control registers, MSRs, SYSENTER/SYSEXIT and CPUID", () => {
  /** Run until HLT or an exception (every vector exits); returns the exit vector or -1 for HLT. */
  function runTo(t: ReturnType<typeof machine>): number {
    t.cpu.intercepts.exceptionBitmap = 0xffffffff;
    const r = t.cpu.run(1000);
    if (r === CpuExitReason.Halted) return -1;
    expect(r).toBe(CpuExitReason.Exception);
    return t.cpu.exit.vector;
  }
  const movEcx = (v: number) => [0xb9, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
  const movEax = (v: number) => [0xb8, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
  const movEdx = (v: number) => [0xba, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
  const WRMSR = [0x0f, 0x30], RDMSR = [0x0f, 0x32], HLT = [0xf4];

  it("SYSEXIT enters ring 3 with the flat selectors SYSENTER_CS+16/+24; SYSENTER returns to ring 0", () => {
    const wrmsr = (idx: number, v: number) => [...movEcx(idx), ...movEax(v), 0x31, 0xd2, ...WRMSR]; // 14 bytes
    const user = CODE + 3 * 14 + 12, entry = user + 4;
    const t = machine([...wrmsr(0x174, 0x08), ...wrmsr(0x175, 0x9000), ...wrmsr(0x176, entry), ...movEcx(0x7000), ...movEdx(user),
      0x0f, 0x35, 0x8c, 0xcb, 0x0f, 0x34, ...HLT]); // sysexit ; user: mov bx, cs ; sysenter ; entry: hlt
    expect(runTo(t)).toBe(-1);
    const s = t.state();
    expect([s.ebx & 0xffff, s.cs.selector, s.ss.selector, s.esp, s.eip]).toEqual([0x1b, 0x08, 0x10, 0x9000, entry + 1]);
    expect([s.cs.attrib & 0x60, s.ss.attrib & 0x60]).toEqual([0, 0]);
  });

  it("SYSENTER with SYSENTER_CS = 0 and SYSEXIT at CPL 3 are #GP(0)", () => {
    const t = machine([0x0f, 0x34]);
    expect(runTo(t)).toBe(13);
    const u = machine([0x0f, 0x35], { user: true });
    expect(runTo(u)).toBe(13);
  });

  it("RDTSC at CPL 3 is #GP(0) only with CR4.TSD", () => {
    const a = machine([0x0f, 0x31, ...HLT], { user: true });
    a.cpu.intercepts.exceptionBitmap = 0xffffffff;
    expect(a.cpu.run(1)).toBe(CpuExitReason.Budget);
    const b = machine([0x0f, 0x31], { user: true });
    b.set((s) => { s.cr4 = 0x4; });
    expect(runTo(b)).toBe(13);
  });

  it("PAT and MTRRs are stored with their reserved-bit and memory-type checks; MTRRCAP is read-only", () => {
    const t = machine([...movEcx(0x277), ...RDMSR, ...HLT]);
    expect(runTo(t)).toBe(-1);
    expect([t.state().eax, t.state().edx]).toEqual([0x00070406, 0x00070406]); // power-up PAT
    const bad = machine([...movEcx(0x277), ...movEax(0x02), 0x31, 0xd2, ...WRMSR]); // type 2 reserved
    expect(runTo(bad)).toBe(13);
    const ok = machine([...movEcx(0x201), ...movEax(0xfff00800), 0x31, 0xd2, ...WRMSR, ...RDMSR, ...HLT]); // PHYSMASK0, valid
    expect(runTo(ok)).toBe(-1);
    expect(ok.state().eax).toBe(0xfff00800);
    const rsvd = machine([...movEcx(0x200), ...movEax(0x106), 0x31, 0xd2, ...WRMSR]); // PHYSBASE0 bit 8 reserved
    expect(runTo(rsvd)).toBe(13);
    const cap = machine([...movEcx(0xfe), ...RDMSR, ...HLT]);
    expect(runTo(cap)).toBe(-1);
    expect(cap.state().eax).toBe(0x508);
    const capw = machine([...movEcx(0xfe), ...WRMSR]);
    expect(runTo(capw)).toBe(13);
  });

  it("EFER accepts NXE only: LME is #GP(0) on this i686 without long mode", () => {
    const t = machine([...movEcx(0xc0000080), ...movEax(0x800), 0x31, 0xd2, ...WRMSR, ...HLT]);
    expect(runTo(t)).toBe(-1);
    expect(t.state().efer).toBe(0x800);
    const lme = machine([...movEcx(0xc0000080), ...movEax(0x100), 0x31, 0xd2, ...WRMSR]);
    expect(runTo(lme)).toBe(13);
  });

  it("CPUID reports PSE, PAE, PGE, SEP, MTRR, PAT, NX and 32-bit MAXPHYADDR; cpuidMask narrows them and their CR4/EFER bits", () => {
    const ask = (t: ReturnType<typeof machine>, leaf: number) => {
      t.set((s) => { s.eax = leaf; s.eip = CODE; s.activity = 0; });
      expect(runTo(t)).toBe(-1);
      const s = t.state();
      return [s.eax, s.ebx, s.ecx, s.edx];
    };
    const t = machine([0x0f, 0xa2, ...HLT]);
    const edx = ask(t, 1)[3]!;
    for (const bit of [3, 4, 5, 6, 8, 11, 12, 13, 15, 16]) expect((edx >>> bit) & 1, `bit ${bit}`).toBe(1);
    expect(((ask(t, 1)[0]! >>> 8) & 0xf)).toBe(6);
    expect(ask(t, 0x80000000)[0]).toBe(0x80000008);
    expect((ask(t, 0x80000001)[3]! >>> 20) & 1).toBe(1);
    expect(ask(t, 0x80000008)[0]! & 0xff).toBe(32);
    t.cpu.cpuidMask.leaf1Edx = ~(1 << 6);
    t.cpu.cpuidMask.ext1Edx = 0;
    expect((ask(t, 1)[3]! >>> 6) & 1).toBe(0);
    expect(ask(t, 0x80000001)[3]).toBe(0);
    const pae = machine([0x0f, 0x22, 0xe0]); // mov cr4, eax
    pae.cpu.cpuidMask.leaf1Edx = ~(1 << 6);
    pae.set((s) => { s.eax = 0x20; });
    expect(runTo(pae)).toBe(13);
    const vme = machine([0x0f, 0x22, 0xe0]);
    vme.set((s) => { s.eax = 0x1; }); // CR4.VME: not implemented, reserved
    expect(runTo(vme)).toBe(13);
  });

  it("MOV to CR3 at CPL 3 is #GP(0); CR3 keeps PCD and PWT", () => {
    const u = machine([0x0f, 0x22, 0xd8], { user: true });
    expect(runTo(u)).toBe(13);
    const t = machine([0x0f, 0x22, 0xd8, ...HLT]); // mov cr3, eax
    t.set((s) => { s.eax = PD | 0x18; });
    expect(runTo(t)).toBe(-1);
    expect(t.state().cr3).toBe(PD | 0x18);
  });

  it("an execute breakpoint is a #DB fault at the instruction; EFLAGS.RF lets it run once", () => {
    // mov dr0, eax ; mov dr7, ecx ; nop ; inc edx ; hlt   -- DR0 -> the INC
    const t = machine([0x0f, 0x23, 0xc0, 0x0f, 0x23, 0xf9, 0x90, 0x42, ...HLT]);
    t.set((s) => { s.eax = CODE + 7; s.ecx = 0x1; });
    expect(runTo(t)).toBe(1);
    expect([t.state().eip, t.state().edx]).toEqual([CODE + 7, 0]);
    t.set((s) => { s.eflags |= 0x10000; });
    expect(runTo(t)).toBe(-1);
    expect(t.state().edx).toBe(1);
    expect(t.state().eflags & 0x10000).toBe(0); // RF cleared once the instruction completed
  });

  it("a write breakpoint traps after the write that touches its 2-byte range; reads do not trigger it", () => {
    // mov dr1, eax ; mov dr7, ecx ; mov bl, [0x5003] ; mov [0x5003], bl ; nop ; hlt
    const t = machine([0x0f, 0x23, 0xc8, 0x0f, 0x23, 0xf9, 0x8a, 0x1d, 0x03, 0x50, 0, 0, 0x88, 0x1d, 0x03, 0x50, 0, 0, 0x90, ...HLT]);
    t.set((s) => { s.eax = 0x5002; s.ecx = (0x4 | (1 << 20) | (1 << 22)) >>> 0; }); // L1, R/W1 = 01, LEN1 = 01
    expect(runTo(t)).toBe(1);
    expect(t.state().eip).toBe(CODE + 18); // a trap: after the store
  });

  it("DR7.GD makes the next debug-register access a #DB fault", () => {
    const t = machine([0x0f, 0x23, 0xf8, 0x0f, 0x21, 0xc3]); // mov dr7, eax ; mov ebx, dr0
    t.set((s) => { s.eax = 0x2000; });
    expect(runTo(t)).toBe(1);
    expect(t.state().eip).toBe(CODE + 3);
  });
});

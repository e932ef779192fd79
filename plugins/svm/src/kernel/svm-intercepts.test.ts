// IOPM, MSRPM and the instruction/CR/DR intercepts (APM 15.9-15.11) end to end: the
// SvmBackend's VMCB edited directly, VMRUN through the real kernel and soft engine.
import { describe, expect, it } from "vitest";
import { GuestFrameRole, ObjType, SysErr } from "../../../../src/kernel/api.js";
import { StateParts } from "../../../../src/monitor/api.js";
import { EventType } from "../../../../src/x86/types.js";
import { F, Misc1, Misc2, SvmExit } from "../vmcb.js";
import { ORG, expectKind, machine, type Machine } from "../svm-machine.fixtures.js";

/** Lays out instructions from ORG; returns the guest code and each instruction's address. */
function program(insns: number[][]): { code: number[]; at: number[] } {
  const code: number[] = [], at: number[] = [];
  for (const i of insns) { at.push(ORG + code.length); code.push(...i); }
  at.push(ORG + code.length);
  return { code, at };
}

/** Retypes, binds and names an MSRPM frame (all zero: nothing intercepted) and sets MSR_PROT. */
function bindMsrpm(m: Machine): Uint8Array {
  const { sys, caps } = m, v = m.backend.vmcb;
  expect(sys.ramRetype(caps.ram, ObjType.Frame, 8192)).toBe(SysErr.Ok);
  const cap = sys.ret.cap;
  expect(sys.frameMap(cap)).toBe(SysErr.Ok);
  const bytes = sys.ret.view!;
  expect(sys.dispatcherBindFrame(caps.dispatcher, GuestFrameRole.SvmMsrpm, cap)).toBe(SysErr.Ok);
  expect(sys.capIdentify(cap)).toBe(SysErr.Ok);
  v.write(F.MSRPM_BASE_PA, sys.ret.value >>> 0);
  v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.MSR_PROT);
  return bytes;
}

/** APM 15.11: sets the read or write bit of `msr` in the MSRPM. */
function setMsrBit(pm: Uint8Array, msr: number, write: boolean): void {
  const base = msr <= 0x1fff ? 0 : msr >= 0xc0010000 ? 0x1000 : 0x800;
  const bit = (msr & 0x1fff) * 2 + (write ? 1 : 0);
  pm[base + (bit >>> 3)]! |= 1 << (bit & 7);
}

/** Moves RIP to nRIP, as a monitor does after handling an `unhandled` instruction exit. */
function skip(m: Machine): void {
  const s = m.backend.getState(StateParts.Basic);
  s.eip = m.backend.vmcb.read(F.NRIP);
  m.backend.setState(s, StateParts.Basic);
}

const MOV_ECX = (x: number) => [0x66, 0xb9, x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24];
const MOV_EAX = (x: number) => [0x66, 0xb8, x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24];
const MOV_EDX = (x: number) => [0x66, 0xba, x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24];
const RDMSR = [0x0f, 0x32], WRMSR = [0x0f, 0x30], HLT = [0xf4];

describe("IOPM (APM 15.10.1)", () => {
  it("the backend binds an all-ones IOPM and names it in IOPM_BASE_PA", () => {
    const m = machine(HLT);
    expect(m.backend.iopm.byteLength).toBeGreaterThanOrEqual(12 * 1024);
    expect(m.backend.iopm.every((b) => b === 0xff)).toBe(true);
    expect(m.sys.capIdentify(m.backend.iopmCap)).toBe(SysErr.Ok);
    expect(m.backend.vmcb.read(F.IOPM_BASE_PA)).toBe(m.sys.ret.value >>> 0);
  });

  it("ports with a clear bit run without an exit (low and upper half); a set bit exits", () => {
    const p = program([
      [0xe6, 0x80],             // out 0x80, al      — bit clear
      [0xba, 0x00, 0x90],       // mov dx, 0x9000
      [0xee],                   // out dx, al        — bit clear (upper half)
      [0xba, 0xf0, 0xff],       // mov dx, 0xfff0
      [0xee],                   // out dx, al        — bit set (upper half)
      [0xe6, 0x81],             // out 0x81, al      — bit set
      HLT,
    ]);
    const m = machine(p.code);
    const iopm = m.backend.iopm;
    iopm[0x80 >>> 3]! &= ~(1 << (0x80 & 7));
    iopm[0x9000 >>> 3]! &= ~(1 << (0x9000 & 7));
    const hi = expectKind(m.backend.run(), "io");
    expect(hi.port).toBe(0xfff0);
    expect(m.backend.vmcb.read(F.RIP)).toBe(p.at[4]);
    const lo = expectKind(m.backend.run(), "io");
    expect(lo.port).toBe(0x81);
    expect(m.backend.vmcb.read(F.RIP)).toBe(p.at[5]);
    expectKind(m.backend.run(), "hlt");
  });

  it("IOPM_BASE_PA not naming the bound frame is VMEXIT_INVALID (hvkit.iopm) and runs nothing", () => {
    const m = machine([0xe6, 0x80, 0xf4]);
    const v = m.backend.vmcb;
    v.write(F.IOPM_BASE_PA, v.read(F.IOPM_BASE_PA) + 0x1000);
    const e = expectKind(m.backend.run(), "entry-failure");
    expect(e.message).toContain("hvkit.iopm");
    expect(v.read(F.RIP)).toBe(ORG);
  });
});

describe("MSRPM (APM 15.11)", () => {
  it("clear bits run on the core; set bits in each range and MSRs outside them exit 7Ch", () => {
    const p = program([
      MOV_ECX(0x174), MOV_EAX(0x1234), MOV_EDX(0),
      WRMSR,                       // 3: write bit clear: the core stores SYSENTER_CS
      MOV_EAX(0),
      RDMSR,                       // 5: read bit clear: the core loads 0x1234
      [0x66, 0x89, 0xc3],          // 6: mov ebx, eax
      RDMSR,                       // 7: 0x174 again, read bit still clear: no exit
      MOV_ECX(0xc0000080),
      RDMSR,                       // 9: read bit set (C000_0000 range)
      MOV_ECX(0xc0010004), MOV_EAX(0x5678), MOV_EDX(1),
      WRMSR,                       // 13: write bit set (C001_0000 range)
      MOV_ECX(0x40000000),
      RDMSR,                       // 15: outside every range: always intercepted
      HLT,
    ]);
    const m = machine(p.code);
    const pm = bindMsrpm(m);
    const v = m.backend.vmcb;
    setMsrBit(pm, 0xc0000080, false);
    setMsrBit(pm, 0xc0010004, true);
    setMsrBit(pm, 0xc0000080 + 1, true); // a neighbour's write bit does not affect the read

    const rd = expectKind(m.backend.run(), "msr");
    expect(rd).toMatchObject({ write: false, index: 0xc0000080 });
    expect(v.exitCode()).toBe(SvmExit.MSR);
    expect(v.read(F.EXITINFO1)).toBe(0);
    expect(v.read(F.RIP)).toBe(p.at[9]);
    expect(v.read(F.NRIP)).toBe(p.at[10]);
    expect(m.backend.getState(StateParts.Gprs).ebx).toBe(0x1234);
    rd.lo = 0x11223344; rd.hi = 0x55667788;

    const wr = expectKind(m.backend.run(), "msr");
    expect(wr).toMatchObject({ write: true, index: 0xc0010004, lo: 0x5678, hi: 1 });
    expect(v.read(F.EXITINFO1)).toBe(1);
    expect(v.read(F.NRIP)).toBe(p.at[14]);

    const out = expectKind(m.backend.run(), "msr");
    expect(out).toMatchObject({ write: false, index: 0x40000000 });
    expect(v.read(F.RIP)).toBe(p.at[15]);
    out.lo = 7; out.hi = 8;
    expectKind(m.backend.run(), "hlt");
    const s = m.backend.getState(StateParts.Gprs);
    expect([s.eax, s.edx]).toEqual([7, 8]);
  });

  it("a read completes into EDX:EAX and RAX at the next run", () => {
    const p = program([MOV_ECX(0x10), RDMSR, HLT]);
    const m = machine(p.code);
    setMsrBit(bindMsrpm(m), 0x10, false);
    const rd = expectKind(m.backend.run(), "msr");
    expect(rd.index).toBe(0x10);
    rd.lo = 0xdeadbeef; rd.hi = 0x42;
    expectKind(m.backend.run(), "hlt");
    expect(m.backend.vmcb.read(F.RAX)).toBe(0xdeadbeef);
    expect(m.backend.getState(StateParts.Gprs).edx).toBe(0x42);
    expect(m.backend.vmcb.read(F.RIP)).toBe(p.at[2]); // at the HLT (completed at the next run)
  });

  it("an injected #GP drops the pending completion: the fault points at the RDMSR", () => {
    const p = program([MOV_ECX(0x10), RDMSR, HLT]);
    const m = machine(p.code);
    setMsrBit(bindMsrpm(m), 0x10, false);
    // IVT[13] → 0000:7E00 (hlt); a stack at 0000:7000.
    m.ram.set([0x00, 0x7e, 0x00, 0x00], 13 * 4);
    m.ram[0x7e00] = 0xf4;
    const s = m.backend.getState(StateParts.Gprs);
    s.esp = 0x7000; s.eax = 0x99;
    m.backend.setState(s, StateParts.Gprs);
    const rd = expectKind(m.backend.run(), "msr");
    rd.lo = 0xdeadbeef;
    m.backend.inject({ type: EventType.HardwareException, vector: 13 });
    expectKind(m.backend.run(), "hlt");
    expect(m.backend.vmcb.read(F.RIP)).toBe(0x7e00);
    expect(m.ram[0x7000 - 6]! | (m.ram[0x7000 - 5]! << 8)).toBe(p.at[1]); // pushed IP = the RDMSR
    expect(m.backend.vmcb.read(F.RAX)).toBe(0x99);
  });

  it("MSR_PROT without a bound MSRPM is VMEXIT_INVALID (hvkit.msrpm)", () => {
    const m = machine(HLT);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.MSR_PROT);
    expect(expectKind(m.backend.run(), "entry-failure").message).toContain("hvkit.msrpm");
  });
});

describe("instruction intercepts (APM 15.9, appendix C)", () => {
  it.each([
    { name: "RDTSC", insn: [0x0f, 0x31], misc1: Misc1.RDTSC, misc2: 0, code: SvmExit.RDTSC, runs: true },
    // The core has no performance counters: without the intercept RDPMC faults.
    { name: "RDPMC", insn: [0x0f, 0x33], misc1: Misc1.RDPMC, misc2: 0, code: SvmExit.RDPMC, runs: false },
    { name: "INVD", insn: [0x0f, 0x08], misc1: Misc1.INVD, misc2: 0, code: SvmExit.INVD, runs: true },
    { name: "PAUSE", insn: [0xf3, 0x90], misc1: Misc1.PAUSE, misc2: 0, code: SvmExit.PAUSE, runs: true },
    { name: "WBINVD", insn: [0x0f, 0x09], misc1: 0, misc2: Misc2.WBINVD, code: SvmExit.WBINVD, runs: true },
  ])("$name exits with its code and nRIP; without the intercept it does not exit", ({ insn, misc1, misc2, code, runs }) => {
    const p = program([[0x90], insn, HLT]);
    const m = machine(p.code);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | misc1);
    v.write(F.INTERCEPT_MISC2, v.read(F.INTERCEPT_MISC2) | misc2);
    const e = expectKind(m.backend.run(), "unhandled");
    expect(e.code).toBe(code);
    expect(v.exitCode()).toBe(code);
    expect(v.read(F.RIP)).toBe(p.at[1]);
    expect(v.read(F.NRIP)).toBe(p.at[2]);

    if (!runs) return;
    const plain = machine(p.code);
    expectKind(plain.backend.run(), "hlt");
    expect(plain.backend.vmcb.read(F.RIP)).toBe(p.at[2]);
  });

  it("INVLPG exits 79h with EXITINFO1 0: the linear address is a decode assist, not reported (APM 15.33.3)", () => {
    const p = program([[0x0f, 0x01, 0x3e, 0x34, 0x12], HLT]); // invlpg [0x1234]
    const m = machine(p.code);
    const v = m.backend.vmcb;
    const s = m.backend.getState(StateParts.Segments);
    s.ds.selector = 0x100; s.ds.base = 0x1000;
    m.backend.setState(s, StateParts.Segments);
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.INVLPG);
    const e = expectKind(m.backend.run(), "unhandled");
    expect(e.code).toBe(SvmExit.INVLPG);
    expect(e.message).toContain("INVLPG");
    expect(v.read64(F.EXITINFO1)).toBe(0n);
    expect(v.read(F.NRIP)).toBe(p.at[1]);
    skip(m);
    expectKind(m.backend.run(), "hlt");
  });

  it.each([
    { name: "VMRUN", rm: 0xd8, misc1: 0, misc2: Misc2.VMRUN, code: SvmExit.VMRUN },
    { name: "VMMCALL", rm: 0xd9, misc1: 0, misc2: Misc2.VMMCALL, code: SvmExit.VMMCALL },
    { name: "VMLOAD", rm: 0xda, misc1: 0, misc2: Misc2.VMLOAD, code: SvmExit.VMLOAD },
    { name: "VMSAVE", rm: 0xdb, misc1: 0, misc2: Misc2.VMSAVE, code: SvmExit.VMSAVE },
    { name: "STGI", rm: 0xdc, misc1: 0, misc2: Misc2.STGI, code: SvmExit.STGI },
    { name: "CLGI", rm: 0xdd, misc1: 0, misc2: Misc2.CLGI, code: SvmExit.CLGI },
    { name: "SKINIT", rm: 0xde, misc1: 0, misc2: Misc2.SKINIT, code: SvmExit.SKINIT },
    { name: "INVLPGA", rm: 0xdf, misc1: Misc1.INVLPGA, misc2: 0, code: SvmExit.INVLPGA },
  ])("$name (0F 01 $rm) exits with its code and nRIP when intercepted", ({ name, rm, misc1, misc2, code }) => {
    const p = program([[0x90], [0x0f, 0x01, rm], HLT]);
    const m = machine(p.code);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | misc1);
    v.write(F.INTERCEPT_MISC2, v.read(F.INTERCEPT_MISC2) | misc2);
    const e = expectKind(m.backend.run(), "unhandled");
    expect(e.code).toBe(code);
    expect(e.message).toContain(name);
    expect(v.read(F.RIP)).toBe(p.at[1]);
    expect(v.read(F.NRIP)).toBe(p.at[2]);
  });

  it.each([0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf])("0F 01 %s without its intercept is #UD (the guest has no SVM)", (rm) => {
    const p = program([[0x0f, 0x01, rm], HLT]);
    const m = machine(p.code);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_EXCEPTIONS, 1 << 6);
    const e = expectKind(m.backend.run(), "exception");
    expect(e.vector).toBe(6);
    expect(v.exitCode()).toBe(SvmExit.EXCP_BASE + 6);
    expect(v.read(F.RIP)).toBe(p.at[0]);
  });

  it("an unintercepted VMMCALL vectors #UD through the guest IVT", () => {
    const m = machine([0x0f, 0x01, 0xd9, 0xf4]);
    m.ram.set([0x00, 0x7e, 0x00, 0x00], 6 * 4);
    m.ram.set([0xe6, 0x97], 0x7e00); // out 0x97, al
    const s = m.backend.getState(StateParts.Gprs);
    s.esp = 0x7000;
    m.backend.setState(s, StateParts.Gprs);
    expect(expectKind(m.backend.run(), "io").port).toBe(0x97);
  });
});

describe("CR and DR intercepts (APM 15.9)", () => {
  it("CR3 read/write exit 03h/13h; the CR0 selective write exits 65h only for bits other than TS/MP", () => {
    const p = program([
      [0x0f, 0x20, 0xd8],                         // 0 mov eax, cr3 → 03h
      [0x0f, 0x22, 0xdb],                         // 1 mov cr3, ebx → 13h
      [0x0f, 0x20, 0xc1],                         // 2 mov ecx, cr0 (reads not mapped)
      [0x66, 0x83, 0xc9, 0x08],                   // 3 or ecx, 8 (TS)
      [0x0f, 0x22, 0xc1],                         // 4 mov cr0, ecx: only TS changes → no exit
      [0x0f, 0x06],                               // 5 clts → no exit
      [0x66, 0x83, 0xc9, 0x04],                   // 6 or ecx, 4 (EM)
      [0x0f, 0x22, 0xc1],                         // 7 mov cr0, ecx → 65h
      HLT,
    ]);
    const m = machine(p.code);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_CR, (1 << 3) | (1 << 19));
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.CR0_SEL_WRITE);

    let e = expectKind(m.backend.run(), "unhandled");
    expect(e.code).toBe(SvmExit.CR_READ_BASE + 3);
    expect(e.message).toContain("MOV from CR3");
    expect(v.read64(F.EXITINFO1)).toBe(0n); // no decode assists (APM 15.33.1)
    expect(v.read(F.NRIP)).toBe(p.at[1]);
    skip(m);
    e = expectKind(m.backend.run(), "unhandled");
    expect(e.code).toBe(SvmExit.CR_WRITE_BASE + 3);
    expect(v.read64(F.EXITINFO1)).toBe(0n);
    expect(v.read(F.NRIP)).toBe(p.at[2]);
    skip(m);
    e = expectKind(m.backend.run(), "unhandled");
    expect(e.code).toBe(SvmExit.CR0_SEL_WRITE);
    expect(v.read(F.RIP)).toBe(p.at[7]);
    expect(v.read64(F.EXITINFO1)).toBe(0n);
    expect(v.read(F.NRIP)).toBe(p.at[8]);
    expect(v.read(F.CR0) & 4).toBe(0); // the write did not happen
  });

  it("only DRs with their INTERCEPT_DR bit set exit (20h+n reads, 30h+n writes)", () => {
    const p = program([
      MOV_EDX(0x400),
      [0x0f, 0x21, 0xf8],                         // 1 mov eax, dr7 → 27h
      [0x0f, 0x21, 0xc1],                         // 2 mov ecx, dr0 → no exit
      [0x0f, 0x23, 0xc3],                         // 3 mov dr0, ebx → 30h
      [0x0f, 0x23, 0xfa],                         // 4 mov dr7, edx → no exit
      HLT,
    ]);
    const m = machine(p.code);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_DR, (1 << 7) | (1 << 16));
    let e = expectKind(m.backend.run(), "unhandled");
    expect(e.code).toBe(SvmExit.DR_READ_BASE + 7);
    expect(v.read64(F.EXITINFO1)).toBe(0n); // no decode assists (APM 15.33.1)
    expect(v.read(F.NRIP)).toBe(p.at[2]);
    skip(m);
    e = expectKind(m.backend.run(), "unhandled");
    expect(e.code).toBe(SvmExit.DR_WRITE_BASE + 0);
    expect(e.message).toContain("MOV to DR0");
    expect(v.read(F.RIP)).toBe(p.at[3]);
    expect(v.read64(F.EXITINFO1)).toBe(0n);
    skip(m);
    expectKind(m.backend.run(), "hlt");
    expect(m.backend.getState(StateParts.Control).dr7).toBe(0x400);
  });
});

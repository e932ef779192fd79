// I/O bitmaps, MSR bitmaps and TSC offsetting through the real kernel (SDM Vol. 3C
// 25.6.4, 25.6.5, 25.6.9, 26.1.3, 26.3): the monitor binds bitmap Frames by capability,
// writes their addresses into the VMCS, and the guest exits only where a bit is set.
import { describe, expect, it } from "vitest";
import { GuestFrameRole, ObjType, SysErr } from "../../../../src/kernel/api.js";
import { enterVmxOperation, testMachine, withVmcs, writeRealModeGuest } from "../testing/machine.js";
import { ExitReason, F, Proc, Proc2, VmxError } from "../vmcs-fields.js";
import { SOFT_CAPS, VmxMsr, vmxMsrValue } from "./caps.js";
import type { VmcsState } from "./vmx-extension.js";

const CODE = 0x1000;

interface Setup {
  proc?: number;
  regs?: Partial<Record<"eax" | "ecx" | "edx", number>>;
  /** Allocate bitmap B before A, so the two frames are not adjacent (the copy path). */
  bBeforeA?: boolean;
  /** Set bits / VMCS fields before launch, given the bitmap views and their addresses. */
  prepare?: (b: Bitmaps, w: (enc: number, v: number) => void) => void;
}

interface Bitmaps { ioA: Uint8Array; ioB: Uint8Array; msr: Uint8Array; ioAAddr: number; ioBAddr: number; msrAddr: number }

function runGuest(code: number[], setup: Setup = {}) {
  const m = testMachine();
  const { sys } = m;
  const { dcb, vmcs } = withVmcs(m, false);
  const frame = (role: GuestFrameRole) => {
    expect(sys.ramRetype(m.caps.ram, ObjType.Frame, 4096)).toBe(SysErr.Ok);
    const cap = sys.ret.cap;
    expect(sys.frameMap(cap)).toBe(SysErr.Ok);
    const view = sys.ret.view!;
    expect(sys.capIdentify(cap)).toBe(SysErr.Ok);
    const addr = sys.ret.value >>> 0;
    expect(sys.dispatcherBindFrame(dcb, role, cap)).toBe(SysErr.Ok);
    return { view, addr };
  };
  const first = frame(setup.bBeforeA === true ? GuestFrameRole.VmxIoBitmapB : GuestFrameRole.VmxIoBitmapA);
  const second = frame(setup.bBeforeA === true ? GuestFrameRole.VmxIoBitmapA : GuestFrameRole.VmxIoBitmapB);
  const [a, b] = setup.bBeforeA === true ? [second, first] : [first, second];
  const msr = frame(GuestFrameRole.VmxMsrBitmap);
  const bm: Bitmaps = { ioA: a.view, ioB: b.view, msr: msr.view, ioAAddr: a.addr, ioBAddr: b.addr, msrAddr: msr.addr };
  expect(sys.vmptrld(dcb, vmcs)).toBe(SysErr.Ok);
  m.ram.set(code, CODE);
  m.ram[CODE + code.length] = 0xf4; // hlt
  const w = (enc: number, v: number) => expect(sys.vmwrite(dcb, enc, v)).toBe(SysErr.Ok);
  w(F.PinControls, SOFT_CAPS.pin.mustBe1);
  w(F.ProcControls, SOFT_CAPS.proc.mustBe1 | Proc.HltExiting | Proc.ActivateSecondary | (setup.proc ?? 0));
  w(F.Proc2Controls, Proc2.EnableEpt | Proc2.UnrestrictedGuest);
  w(F.ExitControls, SOFT_CAPS.exit.mustBe1);
  w(F.EntryControls, SOFT_CAPS.entry.mustBe1);
  writeRealModeGuest(w, CODE, 0x10, 0);
  w(F.IoBitmapA, bm.ioAAddr); w(F.IoBitmapB, bm.ioBAddr); w(F.MsrBitmap, bm.msrAddr);
  setup.prepare?.(bm, w);
  const g = m.caps.guestRegs;
  const r = setup.regs ?? {};
  g[0] = r.eax ?? 0; g[1] = r.ecx ?? 0; g[2] = r.edx ?? 0;
  const launch = sys.vmlaunch(dcb);
  const vmError = sys.ret.vmInstructionError;
  const rd = (enc: number) => { expect(sys.vmread(dcb, enc)).toBe(SysErr.Ok); return sys.ret.value >>> 0; };
  const failure = (m.ext.controls[0]!.ext as VmcsState).lastFailure;
  return { launch, vmError, failure: failure?.check.name, reason: () => rd(F.ExitReason), qual: () => rd(F.ExitQualification), regs: g };
}

const setBit = (bm: Uint8Array, i: number, offset = 0) => { bm[offset + (i >>> 3)]! |= 1 << (i & 7); };
/** mov dx, port; <op>; hlt */
const portCode = (port: number, op: number[]) => [0xba, port & 0xff, port >>> 8, ...op];
const OUT_AL = [0xee], OUT_AX = [0xef], IN_AL = [0xec];

describe("VMX I/O bitmaps (SDM 25.6.4, 26.1.3)", () => {
  it.each([
    ["A (port 0x0060)", 0x0060, false],
    ["B (port 0x8001)", 0x8001, false],
    ["A, frames not adjacent", 0x0060, true],
    ["B, frames not adjacent", 0xfffe, true],
  ])("an OUT to a port whose bit is set in bitmap %s exits; the neighbouring port does not", (_n, port, bBeforeA) => {
    const set = (b: Bitmaps) => setBit(port < 0x8000 ? b.ioA : b.ioB, port & 0x7fff);
    const hit = runGuest(portCode(port, OUT_AL), { proc: Proc.UseIoBitmaps, bBeforeA, prepare: set });
    expect(hit.launch).toBe(SysErr.Ok);
    expect(hit.reason()).toBe(ExitReason.IoInstruction);
    expect(hit.qual() >>> 16).toBe(port);
    const miss = runGuest(portCode(port + 1, OUT_AL), { proc: Proc.UseIoBitmaps, bBeforeA, prepare: set });
    expect(miss.reason()).toBe(ExitReason.Hlt);
  });

  it("use I/O bitmaps overrides unconditional I/O exiting: a clear bit reaches no exit", () => {
    const e = runGuest(portCode(0x70, IN_AL), { proc: Proc.UseIoBitmaps | Proc.UncondIoExiting });
    expect(e.reason()).toBe(ExitReason.Hlt);
    expect(e.regs[0]! & 0xff).toBe(0xff); // nothing decodes the port
  });

  it("without use I/O bitmaps, unconditional I/O exiting still exits for every port", () => {
    const e = runGuest(portCode(0x70, IN_AL), { proc: Proc.UncondIoExiting });
    expect(e.reason()).toBe(ExitReason.IoInstruction);
  });

  it("a word access at 7FFF exits when only port 8000 (bitmap B bit 0) is set", () => {
    const only8000 = (b: Bitmaps) => setBit(b.ioB, 0);
    const e = runGuest(portCode(0x7fff, OUT_AX), { proc: Proc.UseIoBitmaps, prepare: only8000 });
    expect(e.reason()).toBe(ExitReason.IoInstruction);
    expect([e.qual() >>> 16, e.qual() & 7]).toEqual([0x7fff, 1]);
    const byte = runGuest(portCode(0x7fff, OUT_AL), { proc: Proc.UseIoBitmaps, prepare: only8000 });
    expect(byte.reason()).toBe(ExitReason.Hlt);
  });

  it("a word access at FFFF wraps past the bitmap and exits with no bit set", () => {
    const e = runGuest(portCode(0xffff, OUT_AX), { proc: Proc.UseIoBitmaps });
    expect(e.reason()).toBe(ExitReason.IoInstruction);
  });

  it.each([
    ["A is not the bound frame", (b: Bitmaps, w: (e: number, v: number) => void) => w(F.IoBitmapA, b.msrAddr), "io-bitmap-is-bound-frame"],
    ["B is not the bound frame", (b: Bitmaps, w: (e: number, v: number) => void) => w(F.IoBitmapB, b.ioAAddr), "io-bitmap-is-bound-frame"],
    ["A is misaligned", (b: Bitmaps, w: (e: number, v: number) => void) => w(F.IoBitmapA, b.ioAAddr + 8), "io-bitmap-address"],
    ["B is beyond 32 bits", (_b: Bitmaps, w: (e: number, v: number) => void) => w(F.IoBitmapB | 1, 1), "io-bitmap-address"],
  ])("entry fails with VMfailValid 7 when %s", (_n, prepare, check) => {
    const e = runGuest(portCode(0x60, OUT_AL), { proc: Proc.UseIoBitmaps, prepare });
    expect([e.launch, e.vmError, e.failure]).toEqual([SysErr.VmFailValid, VmxError.EntryInvalidControls, check]);
  });

  it("the bitmap addresses are not checked while use I/O bitmaps is 0", () => {
    const e = runGuest(portCode(0x60, OUT_AL), { proc: Proc.UncondIoExiting, prepare: (_b, w) => w(F.IoBitmapA, 0x123) });
    expect(e.launch).toBe(SysErr.Ok);
  });
});

/** rdmsr; hlt or wrmsr; hlt with ECX = msr. */
const RDMSR = [0x0f, 0x32], WRMSR = [0x0f, 0x30];

describe("VMX MSR bitmaps (SDM 25.6.9, 26.1.3)", () => {
  it.each([
    ["read-low", 0x174, false, 0, ExitReason.Rdmsr],
    ["read-high", 0xc0000080, false, 1024, ExitReason.Rdmsr],
    ["write-low", 0x174, true, 2048, ExitReason.Wrmsr],
    ["write-high", 0xc0000080, true, 3072, ExitReason.Wrmsr],
  ])("a set bit in the %s bitmap makes that access exit, and only that one", (_n, msr, write, offset, reason) => {
    const set = (b: Bitmaps) => setBit(b.msr, msr & 0x1fff, offset);
    const hit = runGuest(write ? WRMSR : RDMSR, { proc: Proc.UseMsrBitmaps, regs: { ecx: msr }, prepare: set });
    expect(hit.reason()).toBe(reason);
    // The other direction of the same MSR has its bit clear: the core handles it itself.
    // SYSENTER_CS (174h) is in the core's set; EFER (C0000080h) is not, so it is #GP through the IVT.
    const other = runGuest(write ? RDMSR : WRMSR, { proc: Proc.UseMsrBitmaps, regs: { ecx: msr }, prepare: set });
    expect(other.reason()).not.toBe(ExitReason.Rdmsr);
    expect(other.reason()).not.toBe(ExitReason.Wrmsr);
  });

  it("an MSR with a clear bit is handled by the core: WRMSR then RDMSR of SYSENTER_ESP round-trips", () => {
    // wrmsr; xor eax,eax; rdmsr; hlt
    const e = runGuest([0x0f, 0x30, 0x66, 0x31, 0xc0, 0x0f, 0x32], { proc: Proc.UseMsrBitmaps, regs: { ecx: 0x175, eax: 0x1234 } });
    expect(e.reason()).toBe(ExitReason.Hlt);
    expect(e.regs[0]).toBe(0x1234);
  });

  it.each([0x2000, 0x40000000, 0xc0002000, 0xffffffff])("MSR %s outside both ranges always exits", (msr) => {
    expect(runGuest(RDMSR, { proc: Proc.UseMsrBitmaps, regs: { ecx: msr } }).reason()).toBe(ExitReason.Rdmsr);
    expect(runGuest(WRMSR, { proc: Proc.UseMsrBitmaps, regs: { ecx: msr } }).reason()).toBe(ExitReason.Wrmsr);
  });

  it("without use MSR bitmaps every RDMSR exits", () => {
    expect(runGuest(RDMSR, { regs: { ecx: 0x175 } }).reason()).toBe(ExitReason.Rdmsr);
  });

  it.each([
    ["not the bound frame", (b: Bitmaps, w: (e: number, v: number) => void) => w(F.MsrBitmap, b.ioBAddr), "msr-bitmap-is-bound-frame"],
    ["misaligned", (b: Bitmaps, w: (e: number, v: number) => void) => w(F.MsrBitmap, b.msrAddr | 0x800), "msr-bitmap-address"],
  ])("entry fails with VMfailValid 7 when the MSR-bitmap address is %s", (_n, prepare, check) => {
    const e = runGuest(RDMSR, { proc: Proc.UseMsrBitmaps, prepare });
    expect([e.launch, e.vmError, e.failure]).toEqual([SysErr.VmFailValid, VmxError.EntryInvalidControls, check]);
  });
});

describe("VMX TSC offsetting (SDM 25.6.5, 26.3)", () => {
  /** rdtsc; hlt: EDX:EAX as a bigint. */
  const tsc = (setup: Setup): bigint => {
    const e = runGuest([0x0f, 0x31], setup);
    expect(e.reason()).toBe(ExitReason.Hlt);
    return (BigInt(e.regs[2]!) << 32n) | BigInt(e.regs[0]!);
  };
  const withOffset = (offset: bigint): Setup => ({
    proc: Proc.TscOffsetting,
    prepare: (_b, w) => {
      const u = BigInt.asUintN(64, offset);
      w(F.TscOffset, Number(u & 0xffffffffn)); w(F.TscOffset | 1, Number(u >> 32n));
    },
  });

  it.each([0x1_0000_0000n, 0x1234_5678_9an, -0x10n])("RDTSC returns TSC + offset for offset %s", (offset) => {
    const base = tsc({});
    expect(base).toBeLessThan(1000n); // the soft TSC counts retired instructions
    expect(tsc(withOffset(offset))).toBe(BigInt.asUintN(64, base + offset));
  });

  it("the offset is ignored while use TSC offsetting is 0", () => {
    const base = tsc({});
    const off = withOffset(0x5000n);
    expect(tsc({ prepare: off.prepare })).toBe(base);
  });

  it("RDMSR IA32_TSC with a clear MSR-bitmap bit also returns TSC + offset", () => {
    const off = withOffset(0x7_0000_0000n);
    const e = runGuest(RDMSR, { proc: Proc.TscOffsetting | Proc.UseMsrBitmaps, regs: { ecx: 0x10 }, prepare: off.prepare });
    expect(e.reason()).toBe(ExitReason.Hlt);
    expect(e.regs[2]).toBe(7);
    expect(e.regs[0]).toBeLessThan(1000);
  });
});

describe("capabilities", () => {
  it("IA32_VMX_TRUE_PROCBASED_CTLS allows TSC offsetting, use I/O bitmaps and use MSR bitmaps (bits 3, 25, 28)", () => {
    const v = vmxMsrValue(SOFT_CAPS, VmxMsr.TrueProcbasedCtls)!;
    for (const bit of [3n, 25n, 28n]) {
      expect((v >> (32n + bit)) & 1n).toBe(1n);
      expect((v >> bit) & 1n).toBe(0n);
    }
  });

  it("the MSR-bitmap field exists now that its control is allowed-1", () => {
    const m = testMachine();
    enterVmxOperation(m);
    expect(m.sys.ramRetype(m.caps.ram, ObjType.VmControl, 4096, "vmcs")).toBe(SysErr.Ok);
    const vmcs = m.sys.ret.cap;
    const setup = { vmcontrol: vmcs, gpspace: m.caps.gpspace, guestControl: m.caps.guestControl };
    expect(m.sys.dispatcherSetupGuest(m.caps.dispatcher, setup)).toBe(SysErr.Ok);
    expect(m.sys.vmptrld(m.caps.dispatcher, vmcs)).toBe(SysErr.Ok);
    expect(m.sys.vmwrite(m.caps.dispatcher, F.MsrBitmap, 0x3000)).toBe(SysErr.Ok);
    expect(m.sys.vmread(m.caps.dispatcher, F.MsrBitmap)).toBe(SysErr.Ok);
    expect(m.sys.ret.value).toBe(0x3000);
  });
});

// Instruction, CR-access, MOV-DR and MSR exits through the real kernel: the guest
// executes the instruction under the VM-execution controls, and the VMCS reports the
// basic exit reason, qualification, instruction length and information (SDM Vol. 3C
// 26.1, 28.2, appendix C).
import { describe, expect, it } from "vitest";
import { ObjType, SysErr } from "../../../../src/kernel/api.js";
import { testMachine, withVmcs } from "../testing/machine.js";
import { ExitReason, F, Proc, Proc2 } from "../vmcs-fields.js";
import { SOFT_CAPS } from "./caps.js";
import type { VmcsState } from "./vmx-extension.js";

const CODE = 0x1000;

interface Setup {
  proc?: number;
  proc2?: number;
  cr0?: number;
  cr4?: number;
  regs?: Partial<Record<"eax" | "ecx" | "edx" | "ebx" | "esi", number>>;
  fields?: readonly (readonly [number, number])[];
}

/** Launch a guest at 0000:1000 running `code` under `setup`; the exit fields after the first exit. */
function runGuest(code: number[], setup: Setup = {}) {
  const m = testMachine();
  const { sys } = m;
  const { dcb } = withVmcs(m);
  m.ram.set(code, CODE);
  m.ram[CODE + code.length] = 0xf4; // hlt
  const w = (enc: number, v: number) => expect(sys.vmwrite(dcb, enc, v)).toBe(SysErr.Ok);
  w(F.PinControls, SOFT_CAPS.pin.mustBe1);
  w(F.ProcControls, SOFT_CAPS.proc.mustBe1 | Proc.HltExiting | Proc.ActivateSecondary | (setup.proc ?? 0));
  w(F.Proc2Controls, Proc2.EnableEpt | Proc2.UnrestrictedGuest | (setup.proc2 ?? 0));
  w(F.ExitControls, SOFT_CAPS.exit.mustBe1);
  w(F.EntryControls, SOFT_CAPS.entry.mustBe1);
  w(F.GuestCr0, setup.cr0 ?? 0x10); w(F.GuestCr4, setup.cr4 ?? 0); w(F.GuestRflags, 2); w(F.GuestRip, CODE);
  w(F.GuestCsAr, 0x9b); w(F.GuestCsLimit, 0xffff);
  for (const enc of [F.GuestSsAr, F.GuestDsAr, F.GuestEsAr, F.GuestFsAr, F.GuestGsAr]) w(enc, 0x93);
  for (const enc of [F.GuestSsLimit, F.GuestDsLimit, F.GuestEsLimit, F.GuestFsLimit, F.GuestGsLimit]) w(enc, 0xffff);
  w(F.GuestTrAr, 0x8b); w(F.GuestLdtrAr, 0x10000);
  for (const [enc, v] of setup.fields ?? []) w(enc, v);
  const g = m.caps.guestRegs;
  const r = setup.regs ?? {};
  g[0] = r.eax ?? 0; g[1] = r.ecx ?? 0; g[2] = r.edx ?? 0; g[3] = r.ebx ?? 0; g[6] = r.esi ?? 0;
  expect(sys.vmlaunch(dcb)).toBe(SysErr.Ok);
  const rd = (enc: number) => { expect(sys.vmread(dcb, enc)).toBe(SysErr.Ok); return sys.ret.value >>> 0; };
  const failure = (m.ext.controls[0]!.ext as VmcsState).lastFailure;
  expect(failure, failure?.check.name).toBeUndefined();
  return {
    reason: rd(F.ExitReason), qual: rd(F.ExitQualification), len: rd(F.ExitInstrLen),
    info: rd(F.ExitInstrInfo), linear: rd(F.GuestLinearAddr), rip: rd(F.GuestRip), rd, regs: g,
  };
}

describe("VMX exits for intercepted instructions", () => {
  it.each([
    ["RDTSC", [0x0f, 0x31], Proc.RdtscExiting, 0, ExitReason.Rdtsc, 2],
    ["RDPMC", [0x0f, 0x33], Proc.RdpmcExiting, 0, ExitReason.Rdpmc, 2],
    ["WBINVD", [0x0f, 0x09], 0, Proc2.WbinvdExiting, ExitReason.Wbinvd, 2],
    ["PAUSE", [0xf3, 0x90], Proc.PauseExiting, 0, ExitReason.Pause, 2],
  ])("%s exits with its reason and length only under its control", (_n, code, proc, proc2, reason, len) => {
    const e = runGuest(code, { proc, proc2 });
    expect([e.reason, e.len, e.qual, e.rip]).toEqual([reason, len, 0, CODE]);
    const off = runGuest(code);
    // Without the control the instruction runs (RDPMC is #UD, delivered through the IVT).
    expect(off.reason).not.toBe(reason);
  });

  it.each([
    ["INVD", [0x0f, 0x08], ExitReason.Invd, 2],
    ["VMCALL", [0x0f, 0x01, 0xc1], ExitReason.Vmcall, 3],
  ])("%s exits unconditionally in VMX non-root operation (SDM 26.1.2)", (_n, code, reason, len) => {
    const e = runGuest(code);
    expect([e.reason, e.len, e.rip]).toEqual([reason, len, CODE]);
  });

  it("INVLPG exits with the linear address as qualification", () => {
    // invlpg [bx+4], DS base 0
    const e = runGuest([0x0f, 0x01, 0x7f, 0x04], { proc: Proc.InvlpgExiting, regs: { ebx: 0x2340 } });
    expect([e.reason, e.qual, e.len]).toEqual([ExitReason.Invlpg, 0x2344, 4]);
    expect(runGuest([0x0f, 0x01, 0x7f, 0x04], { regs: { ebx: 0x2340 } }).reason).toBe(ExitReason.Hlt);
  });

  it("MOV DR exits with DR number, direction and GPR (SDM table 28-4)", () => {
    const from = runGuest([0x0f, 0x21, 0xf3], { proc: Proc.MovDrExiting }); // mov ebx, dr6
    expect([from.reason, from.qual, from.len]).toEqual([ExitReason.MovDr, 6 | (1 << 4) | (3 << 8), 3]);
    const to = runGuest([0x0f, 0x23, 0xfa], { proc: Proc.MovDrExiting }); // mov dr7, edx
    expect([to.reason, to.qual]).toEqual([ExitReason.MovDr, 7 | (2 << 8)]);
    expect(runGuest([0x0f, 0x23, 0xfa]).reason).toBe(ExitReason.Hlt);
  });

  it("RDMSR and WRMSR always exit (no MSR bitmaps) with reasons 31/32 and length 2", () => {
    const r = runGuest([0x0f, 0x32], { regs: { ecx: 0x10 } });
    expect([r.reason, r.len, r.regs[1]]).toEqual([ExitReason.Rdmsr, 2, 0x10]);
    const w = runGuest([0x0f, 0x30], { regs: { ecx: 0x1b } });
    expect([w.reason, w.len]).toEqual([ExitReason.Wrmsr, 2]);
  });
});

describe("VMX exits for VMX instructions executed by the guest", () => {
  const PE = 0x11;
  it.each([
    ["VMLAUNCH", [0x0f, 0x01, 0xc2], ExitReason.Vmlaunch],
    ["VMRESUME", [0x0f, 0x01, 0xc3], ExitReason.Vmresume],
    ["VMXOFF", [0x0f, 0x01, 0xc4], ExitReason.Vmxoff],
  ])("%s exits with reason and length", (_n, code, reason) => {
    const e = runGuest(code, { cr0: PE });
    expect([e.reason, e.len, e.qual]).toEqual([reason, 3, 0]);
  });

  it.each([
    ["VMPTRLD [bx+8]", [0x0f, 0xc7, 0x77, 0x08], ExitReason.Vmptrld, 0],
    ["VMCLEAR [bx+8]", [0x66, 0x0f, 0xc7, 0x77, 0x08], ExitReason.Vmclear, 0],
    ["VMXON [bx+8]", [0xf3, 0x0f, 0xc7, 0x77, 0x08], ExitReason.Vmxon, 0],
    ["VMPTRST [bx+8]", [0x0f, 0xc7, 0x7f, 0x08], ExitReason.Vmptrst, 0],
    ["INVEPT ecx, [bx+8]", [0x66, 0x0f, 0x38, 0x80, 0x4f, 0x08], ExitReason.Invept, 1 << 28],
    ["INVVPID edx, [bx+8]", [0x66, 0x0f, 0x38, 0x81, 0x57, 0x08], ExitReason.Invvpid, 2 << 28],
    ["VMWRITE edx, [bx+8]", [0x0f, 0x79, 0x57, 0x08], ExitReason.Vmwrite, 2 << 28],
  ])("%s exits with the displacement as qualification and instruction information", (_n, code, reason, reg2) => {
    const e = runGuest(code, { cr0: PE, regs: { ebx: 0x100 } });
    // 16-bit address size (0), DS (3) in 17:15, no index (22), base BX (3 << 23).
    expect([e.reason, e.len, e.qual, e.info]).toEqual([reason, code.length, 8, ((3 << 15) | (1 << 22) | (3 << 23) | reg2) >>> 0]);
  });

  it("VMREAD with a register destination reports Reg1, Reg2 and the register form (SDM table 28-13)", () => {
    const e = runGuest([0x0f, 0x78, 0xc8], { cr0: PE }); // vmread eax, ecx
    expect([e.reason, e.len]).toEqual([ExitReason.Vmread, 3]);
    expect(e.info & ((1 << 10) | (0xf << 3) | (0xf << 28))).toBe(((1 << 10) | (0 << 3) | (1 << 28)) >>> 0);
  });

  it("VMX instructions other than VMCALL are #UD in a real-mode guest (CR0.PE = 0), not an exit", () => {
    const e = runGuest([0x0f, 0x01, 0xc2], { fields: [[F.ExceptionBitmap, 1 << 6]] });
    expect(e.reason).toBe(ExitReason.ExceptionOrNmi);
    expect(e.rd(F.ExitIntrInfo) & 0xff).toBe(6);
  });
});

describe("VMX control-register access exits (SDM 26.1.3, table 28-3)", () => {
  const TS = 8;
  it("MOV to CR0 exits when a host-owned bit differs from the read shadow", () => {
    const e = runGuest([0x0f, 0x22, 0xc3], { regs: { ebx: 0x10 | TS }, fields: [[F.Cr0GuestHostMask, TS]] });
    expect([e.reason, e.qual, e.len, e.rd(F.GuestCr0)]).toEqual([ExitReason.CrAccess, 0 | (0 << 4) | (3 << 8), 3, 0x10]);
  });

  it("MOV from CR0 returns the read shadow in host-owned bits without exiting", () => {
    const e = runGuest([0x0f, 0x20, 0xc1], { cr0: 0x10 | TS, fields: [[F.Cr0GuestHostMask, TS | 2], [F.Cr0ReadShadow, 2]] });
    expect(e.reason).toBe(ExitReason.Hlt);
    expect(e.regs[1]).toBe(0x10 | 2);
  });

  it("MOV to CR4 exits on a masked bit, MOV from CR4 reads its shadow", () => {
    const e = runGuest([0x0f, 0x22, 0xe2], { regs: { edx: 0x20 }, fields: [[F.Cr4GuestHostMask, 0x20]] });
    expect([e.reason, e.qual]).toEqual([ExitReason.CrAccess, 4 | (2 << 8)]);
    const r = runGuest([0x0f, 0x20, 0xe6], { cr4: 0x20, fields: [[F.Cr4GuestHostMask, 0x21], [F.Cr4ReadShadow, 1]] });
    expect([r.reason, r.regs[6]]).toEqual([ExitReason.Hlt, 1]);
  });

  it("CR3-load and CR3-store exiting", () => {
    const l = runGuest([0x0f, 0x22, 0xde], { proc: Proc.Cr3LoadExiting, regs: { esi: 0x3000 } }); // mov cr3, esi
    expect([l.reason, l.qual, l.rd(F.GuestCr3)]).toEqual([ExitReason.CrAccess, 3 | (6 << 8), 0]);
    const s = runGuest([0x0f, 0x20, 0xd9], { proc: Proc.Cr3StoreExiting }); // mov ecx, cr3
    expect([s.reason, s.qual]).toEqual([ExitReason.CrAccess, 3 | (1 << 4) | (1 << 8)]);
    expect(runGuest([0x0f, 0x22, 0xde], { regs: { esi: 0x3000 } }).rd(F.GuestCr3)).toBe(0x3000);
  });

  it("CLTS exits when CR0.TS is host-owned and its shadow is 1", () => {
    const e = runGuest([0x0f, 0x06], { cr0: 0x10 | TS, fields: [[F.Cr0GuestHostMask, TS], [F.Cr0ReadShadow, TS]] });
    expect([e.reason, e.qual, e.len]).toEqual([ExitReason.CrAccess, 2 << 4, 2]);
  });

  it("LMSW exits with its source data, operand type and, from memory, the guest-linear address", () => {
    const r = runGuest([0x0f, 0x01, 0xf0], { regs: { eax: 0x1231 }, fields: [[F.Cr0GuestHostMask, 1]] }); // lmsw ax
    expect([r.reason, r.qual, r.len]).toEqual([ExitReason.CrAccess, ((3 << 4) | (0x1231 << 16)) >>> 0, 3]);
    // lmsw [bx]: RAM at 0x2000 reads 0, so a masked MP exits only when its shadow is 1.
    expect(runGuest([0x0f, 0x01, 0x37], { regs: { ebx: 0x2000 }, fields: [[F.Cr0GuestHostMask, 2]] }).reason).toBe(ExitReason.Hlt);
    const mem2 = runGuest([0x0f, 0x01, 0x37], { regs: { ebx: 0x2000 }, fields: [[F.Cr0GuestHostMask, 2], [F.Cr0ReadShadow, 2]] });
    expect([mem2.reason, mem2.qual, mem2.linear]).toEqual([ExitReason.CrAccess, (3 << 4) | (1 << 6), 0x2000]);
  });
});

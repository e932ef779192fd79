import { describe, expect, it } from "vitest";
import { bootKernel, softEngine } from "../../../../src/kernel/index.js";
import { ObjType, Rights, SysErr } from "../../../../src/kernel/api.js";
import { enterVmxOperation, testMachine, type TestMachine } from "../testing/machine.js";
import { F } from "../vmcs-fields.js";
import { FeatureControl, SOFT_CAPS, VMX_CAPABILITY_MSRS, VmxMsr, vmxMsrValue } from "./caps.js";
import { CR4_VMXE, VMXON_IN_VMX_ROOT } from "./vmx-extension.js";

/** A mapped 4 KiB Frame whose first dword is `rev`. */
function region(m: TestMachine, rev: number): number {
  expect(m.sys.ramRetype(m.caps.ram, ObjType.Frame, 4096)).toBe(SysErr.Ok);
  const cap = m.sys.ret.cap;
  expect(m.sys.frameMap(cap)).toBe(SysErr.Ok);
  const v = m.sys.ret.view!;
  new DataView(v.buffer, v.byteOffset, 4).setUint32(0, rev >>> 0, true);
  return cap;
}

/** A guest-bound DCB with a VMCS, outside VMX operation. */
function bound(m: TestMachine): { dcb: number; vmcs: number } {
  const { sys } = m;
  expect(sys.ramRetype(m.caps.ram, ObjType.VmControl, 4096, "vmcs")).toBe(SysErr.Ok);
  const vmcs = sys.ret.cap;
  const dcb = m.caps.dispatcher;
  expect(sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcs, gpspace: m.caps.gpspace, guestControl: m.caps.guestControl })).toBe(SysErr.Ok);
  return { dcb, vmcs };
}

describe("capability MSRs through rdmsrCap (SDM appendix A)", () => {
  it("reports every VMX capability MSR as the soft engine computes it, split into value and valueHigh", () => {
    const { sys } = testMachine();
    for (const msr of VMX_CAPABILITY_MSRS) {
      expect(sys.rdmsrCap(msr)).toBe(SysErr.Ok);
      const got = (BigInt(sys.ret.valueHigh) << 32n) | BigInt(sys.ret.value);
      expect(got, `MSR 0x${msr.toString(16)}`).toBe(msr === VmxMsr.FeatureControl
        ? BigInt(FeatureControl.Lock | FeatureControl.VmxOutsideSmx) : vmxMsrValue(SOFT_CAPS, msr));
    }
    expect(sys.rdmsrCap(VmxMsr.Basic)).toBe(SysErr.Ok);
    expect(sys.ret.value & 0x7fffffff).toBe(SOFT_CAPS.revision);
    expect(sys.ret.valueHigh & 0x1fff).toBe(4096);
  });

  it("refuses MSRs that are no capability, and answers NoExtension without an extension", () => {
    const { sys } = testMachine();
    expect(sys.rdmsrCap(0x10)).toBe(SysErr.InvalidArgument);
    expect(sys.rdmsrCap(0x491)).toBe(SysErr.InvalidArgument);
    expect(sys.rdmsrCap(-1)).toBe(SysErr.InvalidArgument);
    const bare = bootKernel({ engine: softEngine(), ramBytes: 64 * 1024 });
    expect(bare.syscalls.rdmsrCap(VmxMsr.Basic)).toBe(SysErr.NoExtension);
    expect(bare.syscalls.vmxon(bare.ram)).toBe(SysErr.NoExtension);
    expect(bare.syscalls.vmxoff()).toBe(SysErr.NoExtension);
  });
});

describe("VMXON / VMXOFF (SDM 31.3) and bring-up (DragonFly vmx_init/vmx_enable)", () => {
  it("makes every other VMX instruction #UD (NotInVmxOperation) before VMXON", () => {
    const m = testMachine();
    const { dcb, vmcs } = bound(m);
    expect(m.sys.vmptrld(dcb, vmcs)).toBe(SysErr.NotInVmxOperation);
    expect(m.sys.vmclear(dcb, vmcs)).toBe(SysErr.NotInVmxOperation);
    expect(m.sys.vmread(dcb, F.GuestRip)).toBe(SysErr.NotInVmxOperation);
    expect(m.sys.vmwrite(dcb, F.GuestRip, 0)).toBe(SysErr.NotInVmxOperation);
    expect(m.sys.vmlaunch(dcb)).toBe(SysErr.NotInVmxOperation);
    expect(m.sys.vmresume(dcb)).toBe(SysErr.NotInVmxOperation);
    expect(m.sys.vmxoff()).toBe(SysErr.NotInVmxOperation);
  });

  it("enters VMX operation with the IA32_VMX_BASIC revision and sets CR4.VMXE", () => {
    const m = testMachine();
    const { dcb, vmcs } = bound(m);
    expect(m.ext.host.cr4 & CR4_VMXE).toBe(0);
    expect(m.sys.vmxon(region(m, SOFT_CAPS.revision))).toBe(SysErr.Ok);
    expect(m.ext.vmxOperation).toBe(true);
    expect(m.ext.host.cr4 & CR4_VMXE).toBe(CR4_VMXE);
    expect(m.sys.vmptrld(dcb, vmcs)).toBe(SysErr.Ok);
    expect(m.sys.vmread(dcb, F.GuestRip)).toBe(SysErr.Ok);
  });

  it.each([
    ["another revision", SOFT_CAPS.revision ^ 1],
    ["the shadow-VMCS bit 31 set", SOFT_CAPS.revision | 0x80000000],
    ["a zero revision", 0],
  ])("fails VMXON with %s with VMfailInvalid and stays outside VMX operation", (_what, rev) => {
    const m = testMachine();
    expect(m.sys.vmxon(region(m, rev))).toBe(SysErr.VmFailInvalid);
    expect(m.ext.vmxOperation).toBe(false);
    expect(m.sys.vmxoff()).toBe(SysErr.NotInVmxOperation);
  });

  it("fails a second VMXON with VMfailValid 15 (VMXON executed in VMX root operation)", () => {
    const m = testMachine();
    enterVmxOperation(m);
    m.sys.ret.vmInstructionError = 0;
    expect(m.sys.vmxon(region(m, SOFT_CAPS.revision))).toBe(SysErr.VmFailValid);
    expect(m.sys.ret.vmInstructionError).toBe(VMXON_IN_VMX_ROOT);
    expect(m.ext.vmxOperation).toBe(true);
  });

  it("leaves VMX operation on VMXOFF, clears CR4.VMXE, and a new VMXON starts with no current VMCS", () => {
    const m = testMachine();
    const { dcb, vmcs } = bound(m);
    enterVmxOperation(m);
    expect(m.sys.vmptrld(dcb, vmcs)).toBe(SysErr.Ok);
    expect(m.sys.vmxoff()).toBe(SysErr.Ok);
    expect(m.ext.host.cr4 & CR4_VMXE).toBe(0);
    expect(m.sys.vmread(dcb, F.GuestRip)).toBe(SysErr.NotInVmxOperation);
    expect(m.sys.vmxoff()).toBe(SysErr.NotInVmxOperation);
    expect(m.sys.vmxon(region(m, SOFT_CAPS.revision))).toBe(SysErr.Ok);
    expect(m.sys.vmread(dcb, F.GuestRip)).toBe(SysErr.VmFailInvalid);
  });

  it("refuses VMX when CPUID.1:ECX.VMX is clear", () => {
    const m = testMachine({ host: { cpuidVmx: false } });
    expect(m.sys.vmxon(region(m, SOFT_CAPS.revision))).toBe(SysErr.NoExtension);
    expect(m.ext.vmxOperation).toBe(false);
  });

  it("refuses VMX when firmware locked IA32_FEATURE_CONTROL without VMXON outside SMX", () => {
    const m = testMachine({ host: { featureControl: FeatureControl.Lock | FeatureControl.VmxInSmx } });
    expect(m.sys.vmxon(region(m, SOFT_CAPS.revision))).toBe(SysErr.NoExtension);
    expect(m.sys.rdmsrCap(VmxMsr.FeatureControl)).toBe(SysErr.Ok);
    expect(m.sys.ret.value).toBe(FeatureControl.Lock | FeatureControl.VmxInSmx);
  });

  it("enables and locks an unlocked IA32_FEATURE_CONTROL before VMXON, as the kernels do", () => {
    const m = testMachine({ host: { featureControl: 0 } });
    expect(m.sys.vmxon(region(m, SOFT_CAPS.revision))).toBe(SysErr.Ok);
    expect(m.sys.rdmsrCap(VmxMsr.FeatureControl)).toBe(SysErr.Ok);
    expect(m.sys.ret.value).toBe(FeatureControl.Lock | FeatureControl.VmxOutsideSmx);
  });

  it.each([
    ["CR0.PG clear (CR0_FIXED0)", { cr0: 0x00000031 }],
    ["CR0 bit 6 set (outside CR0_FIXED1)", { cr0: 0x80000071 }],
    ["CR4.SMEP set (outside CR4_FIXED1)", { cr4: 1 << 20 }],
  ])("fails VMXON with #GP(0) (InvalidArgument) when the host has %s", (_what, host) => {
    const m = testMachine({ host });
    expect(m.sys.vmxon(region(m, SOFT_CAPS.revision))).toBe(SysErr.InvalidArgument);
    expect(m.ext.vmxOperation).toBe(false);
  });

  it("checks the VMXON region capability: a Frame with Read and Write", () => {
    const m = testMachine();
    const r = region(m, SOFT_CAPS.revision);
    expect(m.sys.capMint(r, Rights.Read)).toBe(SysErr.Ok);
    expect(m.sys.vmxon(m.sys.ret.cap)).toBe(SysErr.CapNoRight);
    expect(m.sys.ramRetype(m.caps.ram, ObjType.VmControl, 4096, "vmcs")).toBe(SysErr.Ok);
    expect(m.sys.vmxon(m.sys.ret.cap)).toBe(SysErr.CapWrongType);
    expect(m.ext.vmxOperation).toBe(false);
  });
});

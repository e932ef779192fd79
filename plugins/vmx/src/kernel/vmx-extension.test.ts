import { describe, expect, it } from "vitest";
import { ObjType, SysErr, type DispatcherObject, type SysRet, type VmControlObject } from "../../../../src/kernel/api.js";
import { testMachine, withVmcs } from "../testing/machine.js";
import { F, VmxError } from "../vmcs-fields.js";
import { SOFT_CAPS } from "./caps.js";
import { VmcsState, VmxExtension } from "./vmx-extension.js";

/** A set-up guest with its VMCS current, through the real kernel's syscalls. */
function guest() {
  const m = testMachine();
  const { sys } = m;
  const { dcb, vmcs } = withVmcs(m, false);
  return { ...m, dcb, vmcs, ctl: m.ext.controls[0]! };
}

describe("VmxExtension: VMCS region and setupGuest", () => {
  it("writes the IA32_VMX_BASIC revision at offset 0 and a clear VMCS with an all-ones link pointer", () => {
    const g = guest();
    expect(new DataView(g.ctl.bytes.buffer, g.ctl.bytes.byteOffset).getUint32(0, true)).toBe(SOFT_CAPS.revision);
    const st = g.ctl.ext as VmcsState;
    expect(st.launched).toBe(false);
    expect(st.view.get(F.VmcsLinkPtr)).toBe(0xffffffff);
  });

  it("initialises host state in the kernel, owns it, and points the EPTP at the bound GuestPhysSpace", () => {
    const g = guest();
    const { sys, dcb, vmcs } = g;
    expect(sys.vmptrld(dcb, vmcs)).toBe(SysErr.Ok);
    expect(sys.vmread(dcb, F.HostCr0)).toBe(SysErr.Ok);
    expect(sys.ret.value & 0x80000001).not.toBe(0);
    expect(sys.vmread(dcb, F.EptPointer)).toBe(SysErr.Ok);
    expect(sys.ret.value & 0x3f).toBe(0x1e); // WB, 4-level
    expect(sys.vmwrite(dcb, F.HostRip, 0x1234)).toBe(SysErr.CapNoRight);
  });
});

describe("VmxExtension: VMPTRLD/VMCLEAR/VMREAD/VMWRITE outcomes (SDM 31.3, 31.4)", () => {
  it("fails VMREAD and VMWRITE with VMfailInvalid without a current VMCS", () => {
    const { sys, dcb } = guest();
    expect(sys.vmread(dcb, F.GuestRip)).toBe(SysErr.VmFailInvalid);
    expect(sys.vmwrite(dcb, F.GuestRip, 1)).toBe(SysErr.VmFailInvalid);
  });

  it("clears the current-VMCS pointer on VMCLEAR of the current VMCS", () => {
    const { sys, dcb, vmcs } = guest();
    expect(sys.vmptrld(dcb, vmcs)).toBe(SysErr.Ok);
    expect(sys.vmread(dcb, F.GuestRip)).toBe(SysErr.Ok);
    expect(sys.vmclear(dcb, vmcs)).toBe(SysErr.Ok);
    expect(sys.vmread(dcb, F.GuestRip)).toBe(SysErr.VmFailInvalid);
  });

  it.each([
    ["an unsupported encoding", F.GuestRip | 0x8000, undefined, VmxError.UnsupportedComponent],
    ["the high half of a natural-width field", F.GuestRip | 1, undefined, VmxError.UnsupportedComponent],
    ["a read-only exit-information field", F.ExitReason, 5, VmxError.VmwriteReadOnly],
    ["the exit qualification", F.ExitQualification, 5, VmxError.VmwriteReadOnly],
  ])("fails on %s with VMfailValid and writes the number to the VM-instruction error field", (_what, enc, value, err) => {
    const { sys, dcb, vmcs } = guest();
    expect(sys.vmptrld(dcb, vmcs)).toBe(SysErr.Ok);
    const r = value === undefined ? sys.vmread(dcb, enc) : sys.vmwrite(dcb, enc, value);
    expect(r).toBe(SysErr.VmFailValid);
    expect(sys.ret.vmInstructionError).toBe(err);
    expect(sys.vmread(dcb, F.VmInstructionError)).toBe(SysErr.Ok);
    expect(sys.ret.value).toBe(err);
  });

  it("moves 64-bit fields as low/high halves: a full write clears the high half (32-bit host)", () => {
    const { sys, dcb, vmcs } = guest();
    expect(sys.vmptrld(dcb, vmcs)).toBe(SysErr.Ok);
    expect(sys.vmwrite(dcb, F.IoBitmapA | 1, 0x2)).toBe(SysErr.Ok);
    expect(sys.vmread(dcb, F.IoBitmapA | 1)).toBe(SysErr.Ok);
    expect(sys.ret.value).toBe(2);
    expect(sys.vmwrite(dcb, F.IoBitmapA, 0x3000)).toBe(SysErr.Ok);
    expect(sys.vmread(dcb, F.IoBitmapA | 1)).toBe(SysErr.Ok);
    expect(sys.ret.value).toBe(0);
    expect(sys.vmread(dcb, F.IoBitmapA)).toBe(SysErr.Ok);
    expect(sys.ret.value).toBe(0x3000);
  });

  it("fails VMPTRLD with a wrong revision: error 11 with a current VMCS, VMfailInvalid without", () => {
    const { sys, dcb, vmcs, ctl } = guest();
    (ctl.ext as VmcsState).view.revision = SOFT_CAPS.revision ^ 1;
    expect(sys.vmptrld(dcb, vmcs)).toBe(SysErr.VmFailInvalid);
    (ctl.ext as VmcsState).view.revision = SOFT_CAPS.revision;
    expect(sys.vmptrld(dcb, vmcs)).toBe(SysErr.Ok);
    (ctl.ext as VmcsState).view.revision = SOFT_CAPS.revision | 0x80000000; // shadow-VMCS indicator
    expect(sys.vmptrld(dcb, vmcs)).toBe(SysErr.VmFailValid);
    expect(sys.ret.vmInstructionError).toBe(VmxError.VmptrldWrongRevision);
  });

  it("fails VMPTRLD/VMCLEAR of an address that names no VMCS region with errors 9 / 2", () => {
    const ext = new VmxExtension();
    const ret: SysRet = { cap: 0, value: 0, valueHigh: 0, view: null, type: 0, rights: 0, bytes: 0, vmInstructionError: 0 };
    const dcb: DispatcherObject = { id: 1, guest: null };
    const region = new Uint8Array(4096);
    new DataView(region.buffer).setUint32(0, SOFT_CAPS.revision, true);
    expect(ext.vmxon({ bytes: region, paddr: 0x20000 }, ret)).toBe(SysErr.Ok);
    const good: VmControlObject = { kind: "vmcs", bytes: new Uint8Array(4096), paddr: 0x10000, ext: null };
    ext.initControl(good);
    const vmcb: VmControlObject = { kind: "vmcb", bytes: new Uint8Array(4096), paddr: 0x11000, ext: null };
    const misaligned: VmControlObject = { kind: "vmcs", bytes: new Uint8Array(4096), paddr: 0x12010, ext: null };
    ext.initControl(misaligned);
    expect(ext.vmptrld(dcb, vmcb, ret)).toBe(SysErr.VmFailInvalid);
    expect(ext.vmptrld(dcb, good, ret)).toBe(SysErr.Ok);
    expect(ext.vmptrld(dcb, vmcb, ret)).toBe(SysErr.VmFailValid);
    expect(ret.vmInstructionError).toBe(VmxError.VmptrldInvalidAddress);
    expect(ext.vmptrld(dcb, misaligned, ret)).toBe(SysErr.VmFailValid);
    expect(ret.vmInstructionError).toBe(VmxError.VmptrldInvalidAddress);
    expect(ext.vmclear(dcb, vmcb, ret)).toBe(SysErr.VmFailValid);
    expect(ret.vmInstructionError).toBe(VmxError.VmclearInvalidAddress);
  });
});

describe("VmxExtension: launch state (SDM 31.3 VMLAUNCH/VMRESUME)", () => {
  it("fails VMRESUME on a clear VMCS with error 5 and VMLAUNCH on a launched one with error 4", () => {
    const g = guest();
    const { sys, dcb, vmcs, ram } = g;
    ram[0x1000] = 0xf4; // hlt
    expect(sys.vmptrld(dcb, vmcs)).toBe(SysErr.Ok);
    // Minimal valid VMCS: the plugin's backend writes the same in its constructor.
    const st = g.ctl.ext as VmcsState;
    st.view.set(F.PinControls, SOFT_CAPS.pin.mustBe1);
    st.view.set(F.ProcControls, SOFT_CAPS.proc.mustBe1 | (1 << 7) | (1 << 31));
    st.view.set(F.Proc2Controls, 0x82);
    st.view.set(F.ExitControls, SOFT_CAPS.exit.mustBe1);
    st.view.set(F.EntryControls, SOFT_CAPS.entry.mustBe1);
    st.view.set(F.GuestCr0, 0x10); st.view.set(F.GuestRflags, 2); st.view.set(F.GuestRip, 0x1000);
    st.view.set(F.GuestCsAr, 0x9b); st.view.set(F.GuestCsLimit, 0xffff);
    for (const enc of [F.GuestSsAr, F.GuestDsAr, F.GuestEsAr, F.GuestFsAr, F.GuestGsAr]) st.view.set(enc, 0x93);
    st.view.set(F.GuestTrAr, 0x8b); st.view.set(F.GuestLdtrAr, 0x10000);

    expect(sys.vmresume(dcb)).toBe(SysErr.VmFailValid);
    expect(sys.ret.vmInstructionError).toBe(VmxError.VmresumeNonLaunched);
    expect(sys.vmlaunch(dcb)).toBe(SysErr.Ok);
    expect(sys.vmread(dcb, F.ExitReason)).toBe(SysErr.Ok);
    expect(sys.ret.value).toBe(12); // HLT
    expect(st.launched).toBe(true);
    expect(sys.vmlaunch(dcb)).toBe(SysErr.VmFailValid);
    expect(sys.ret.vmInstructionError).toBe(VmxError.VmlaunchNonClear);
    expect(sys.vmresume(dcb)).toBe(SysErr.Ok);
    expect(sys.vmclear(dcb, vmcs)).toBe(SysErr.Ok);
    expect(st.launched).toBe(false);
  });

  it("fails entry with error 8 on a VMCS whose host state the kernel never initialised", () => {
    const g = guest();
    const { sys, dcb } = g;
    expect(sys.ramRetype(g.caps.ram, ObjType.VmControl, 4096, "vmcs")).toBe(SysErr.Ok);
    const other = sys.ret.cap;
    expect(sys.vmclear(dcb, other)).toBe(SysErr.Ok);
    expect(sys.vmptrld(dcb, other)).toBe(SysErr.Ok);
    const bound = (g.ctl.ext as VmcsState).view;
    for (const [enc, val] of [
      [F.PinControls, SOFT_CAPS.pin.mustBe1], [F.ProcControls, SOFT_CAPS.proc.mustBe1 | (1 << 31)],
      [F.Proc2Controls, 0x82], [F.ExitControls, SOFT_CAPS.exit.mustBe1], [F.EntryControls, SOFT_CAPS.entry.mustBe1],
      [F.EptPointer, bound.get(F.EptPointer)],
    ] as const) expect(sys.vmwrite(dcb, enc, val)).toBe(SysErr.Ok);
    expect(sys.vmlaunch(dcb)).toBe(SysErr.VmFailValid);
    expect(sys.ret.vmInstructionError).toBe(VmxError.EntryInvalidHostState);
    expect((g.ext.controls[1]!.ext as VmcsState).lastFailure?.check.name).toBe("host-cr0-fixed");
  });

  it("reports a guest-state failure as exit 33 with bit 31 and leaves the VMCS clear", () => {
    const g = guest();
    const { sys, dcb, vmcs } = g;
    expect(sys.vmptrld(dcb, vmcs)).toBe(SysErr.Ok);
    const st = g.ctl.ext as VmcsState;
    st.view.set(F.PinControls, SOFT_CAPS.pin.mustBe1);
    st.view.set(F.ProcControls, SOFT_CAPS.proc.mustBe1 | (1 << 31));
    st.view.set(F.Proc2Controls, 0x82);
    st.view.set(F.ExitControls, SOFT_CAPS.exit.mustBe1);
    st.view.set(F.EntryControls, SOFT_CAPS.entry.mustBe1);
    // guest CR0 etc. left zero: RFLAGS bit 1 is clear, CS type 0 is invalid
    expect(sys.vmlaunch(dcb)).toBe(SysErr.Ok);
    expect(sys.vmread(dcb, F.ExitReason)).toBe(SysErr.Ok);
    expect(sys.ret.value >>> 0).toBe(0x80000021);
    expect(st.launched).toBe(false);
    expect(sys.vmresume(dcb)).toBe(SysErr.VmFailValid);
    expect(sys.ret.vmInstructionError).toBe(VmxError.VmresumeNonLaunched);
  });
});

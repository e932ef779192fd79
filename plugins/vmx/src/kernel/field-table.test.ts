import { describe, expect, it } from "vitest";
import { SysErr, type DispatcherObject, type SysRet, type VmControlObject } from "../../../../src/kernel/api.js";
import { enterVmxOperation, testMachine } from "../testing/machine.js";
import {
  F, FIELD_NEEDS, FIELD_TABLE, Proc2, VmcsType, VmcsWidth, VmxError, vmcsIndex, vmcsType, vmcsWidth,
} from "../vmcs-fields.js";
import { SOFT_CAPS, VmxMsr, type VmxCaps } from "./caps.js";
import { VmxExtension } from "./vmx-extension.js";

const MASK: Record<VmcsWidth, number> = { [VmcsWidth.W16]: 0xffff, [VmcsWidth.W32]: 0xffffffff, [VmcsWidth.W64]: 0xffffffff, [VmcsWidth.Natural]: 0xffffffff };

/** The kernel half in VMX operation with one current VMCS, no guest bound (so host fields are writable). */
function current(caps: VmxCaps = SOFT_CAPS) {
  const ext = new VmxExtension(caps);
  const ret: SysRet = { cap: 0, value: 0, valueHigh: 0, view: null, type: 0, rights: 0, bytes: 0, vmInstructionError: 0 };
  const region = new Uint8Array(4096);
  new DataView(region.buffer).setUint32(0, caps.revision, true);
  expect(ext.vmxon({ bytes: region, paddr: 0x1000 }, ret)).toBe(SysErr.Ok);
  const dcb: DispatcherObject = { id: 1, guest: null };
  const ctl: VmControlObject = { kind: "vmcs", bytes: new Uint8Array(4096), paddr: 0x2000, ext: null };
  ext.initControl(ctl);
  expect(ext.vmptrld(dcb, ctl, ret)).toBe(SysErr.Ok);
  return { ext, ret, dcb };
}

/** A value with all bits of every byte varied per field. */
const pattern = (i: number): number => Math.imul(0x9e3779b9, i + 1) >>> 0;

describe("the complete VMCS field table (SDM appendix B) through VMREAD/VMWRITE", () => {
  it("decodes every field's width and type from its encoding bits and names appendix B's count", () => {
    for (const [enc, info] of FIELD_TABLE) {
      expect(info.width).toBe(vmcsWidth(enc));
      expect(info.type).toBe(vmcsType(enc));
      expect(enc & 1).toBe(0);
    }
    const byWidth = [0, 0, 0, 0];
    for (const info of FIELD_TABLE.values()) byWidth[info.width]!++;
    // Appendix B: 16-bit 5+11+7, 64-bit 35+1+13+4, 32-bit 19+8+23+1, natural 8+6+23+15.
    expect(byWidth[VmcsWidth.W16]).toBe(23);
    expect(byWidth[VmcsWidth.W64]).toBe(53);
    expect(byWidth[VmcsWidth.W32]).toBe(51);
    expect(byWidth[VmcsWidth.Natural]).toBe(52);
  });

  it("round-trips every existing writable field with its width's mask, 64-bit fields by both halves", () => {
    const { ext, ret, dcb } = current();
    let i = 0, checked = 0;
    for (const [enc, info] of FIELD_TABLE) {
      i++;
      if (FIELD_NEEDS.has(enc) && !ext["exists"].has(enc)) continue;
      if (info.type === VmcsType.ReadOnly) continue;
      const v = pattern(i);
      expect(ext.vmwrite(dcb, enc, v, ret), `vmwrite 0x${enc.toString(16)}`).toBe(SysErr.Ok);
      expect(ext.vmread(dcb, enc, ret)).toBe(SysErr.Ok);
      expect(ret.value >>> 0, `field 0x${enc.toString(16)}`).toBe((v & MASK[info.width]) >>> 0);
      if (info.width === VmcsWidth.W64) {
        expect(ext.vmwrite(dcb, enc | 1, ~v >>> 0, ret)).toBe(SysErr.Ok);
        expect(ext.vmread(dcb, enc | 1, ret)).toBe(SysErr.Ok);
        expect(ret.value >>> 0).toBe(~v >>> 0);
        expect(ext.vmread(dcb, enc, ret)).toBe(SysErr.Ok);
        expect(ret.value >>> 0).toBe(v);
      } else {
        expect(ext.vmread(dcb, enc | 1, ret)).toBe(SysErr.VmFailValid);
        expect(ret.vmInstructionError).toBe(VmxError.UnsupportedComponent);
      }
      checked++;
    }
    expect(checked).toBeGreaterThan(100);
  });

  it("fails VMWRITE of every read-only field with error 13 and leaves it readable", () => {
    const { ext, ret, dcb } = current();
    const readOnly = [...FIELD_TABLE.values()].filter((f) => f.type === VmcsType.ReadOnly);
    expect(readOnly.map((f) => f.name)).toContain("IoRip");
    for (const f of readOnly) {
      expect(ext.vmread(dcb, f.encoding, ret)).toBe(SysErr.Ok);
      ret.vmInstructionError = 0;
      expect(ext.vmwrite(dcb, f.encoding, 1, ret), f.name).toBe(SysErr.VmFailValid);
      expect(ret.vmInstructionError).toBe(VmxError.VmwriteReadOnly);
    }
  });

  it("fails VMREAD and VMWRITE of fields whose feature the capability MSRs report unsupported with error 12", () => {
    const { ext, ret, dcb } = current();
    const missing = [...FIELD_NEEDS.keys()].filter((enc) => !ext["exists"].has(enc));
    expect(missing).toContain(F.Vpid);
    expect(missing).toContain(F.PmlAddr);
    expect(missing).not.toContain(F.EptPointer);
    for (const enc of missing) {
      ret.vmInstructionError = 0;
      expect(ext.vmread(dcb, enc, ret), `vmread 0x${enc.toString(16)}`).toBe(SysErr.VmFailValid);
      expect(ret.vmInstructionError).toBe(VmxError.UnsupportedComponent);
      ret.vmInstructionError = 0;
      expect(ext.vmwrite(dcb, enc, 0, ret)).toBe(SysErr.VmFailValid);
      expect(ret.vmInstructionError).toBe(VmxError.UnsupportedComponent);
    }
  });

  it("makes a feature's fields exist when the capabilities report its control (VPID)", () => {
    const caps: VmxCaps = { ...SOFT_CAPS, proc2: { mustBe1: 0, mayBe1: SOFT_CAPS.proc2.mayBe1 | 1 << 5 } };
    const { ext, ret, dcb } = current(caps);
    expect(ext.vmwrite(dcb, F.Vpid, 0x1234, ret)).toBe(SysErr.Ok);
    expect(ext.vmread(dcb, F.Vpid, ret)).toBe(SysErr.Ok);
    expect(ret.value).toBe(0x1234);
    const noEpt: VmxCaps = { ...SOFT_CAPS, proc2: { mustBe1: 0, mayBe1: Proc2.UnrestrictedGuest } };
    const c2 = current(noEpt);
    expect(c2.ext.vmread(c2.dcb, F.GuestPhysAddr, c2.ret)).toBe(SysErr.VmFailValid);
  });

  it("reports in IA32_VMX_VMCS_ENUM (through rdmsrCap) the highest index VMREAD accepts", () => {
    const m = testMachine();
    enterVmxOperation(m);
    const { ext, ret, dcb } = current();
    let highest = 0;
    for (const enc of FIELD_TABLE.keys()) if (ext.vmread(dcb, enc, ret) === SysErr.Ok) highest = Math.max(highest, vmcsIndex(enc));
    expect(m.sys.rdmsrCap(VmxMsr.VmcsEnum)).toBe(SysErr.Ok);
    expect((m.sys.ret.value >>> 1) & 0x1ff).toBe(highest);
    expect(m.sys.ret.valueHigh).toBe(0);
  });
});

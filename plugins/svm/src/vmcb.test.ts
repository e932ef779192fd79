import { describe, expect, it } from "vitest";
import { B, F, SvmExit, Vmcb, VMCB_BYTES, VMX_ATTRIB_UNUSABLE, svmToVmxAttrib, vmxToSvmAttrib } from "./vmcb.js";

describe("VMCB layout table (APM Vol. 2 appendix B)", () => {
  // Spot checks against APM tables B-1 (control area) and B-2 (state-save area at 400h).
  const spots: [keyof typeof F, number, number][] = [
    ["INTERCEPT_CR", 0x000, 4], ["INTERCEPT_EXCEPTIONS", 0x008, 4], ["INTERCEPT_MISC1", 0x00c, 4],
    ["INTERCEPT_MISC2", 0x010, 4], ["IOPM_BASE_PA", 0x040, 8], ["MSRPM_BASE_PA", 0x048, 8],
    ["TSC_OFFSET", 0x050, 8], ["GUEST_ASID", 0x058, 4], ["TLB_CONTROL", 0x05c, 1], ["EXITCODE", 0x070, 8],
    ["EXITINFO1", 0x078, 8], ["EXITINFO2", 0x080, 8], ["EXITINTINFO", 0x088, 8], ["NP_CONTROL", 0x090, 8],
    ["EVENTINJ", 0x0a8, 8], ["N_CR3", 0x0b0, 8], ["VMCB_CLEAN", 0x0c0, 4], ["NRIP", 0x0c8, 8],
    ["ES", 0x400, 8], ["CS", 0x410, 8], ["GDTR", 0x460, 8], ["TR", 0x490, 8], ["CPL", 0x4cb, 1],
    ["EFER", 0x4d0, 8], ["CR4", 0x548, 8], ["CR3", 0x550, 8], ["CR0", 0x558, 8], ["DR7", 0x560, 8],
    ["DR6", 0x568, 8], ["RFLAGS", 0x570, 8], ["RIP", 0x578, 8], ["RSP", 0x5d8, 8], ["RAX", 0x5f8, 8],
    ["CR2", 0x640, 8], ["G_PAT", 0x668, 8],
  ];
  it.each(spots)("%s is at offset %i with width %i", (name, offset, width) => {
    expect(F[name].offset).toBe(offset);
    expect(F[name].width).toBe(width);
  });

  it("no two fields overlap and all lie inside the 4 KiB frame", () => {
    const fields = Object.values(F).sort((a, b) => a.offset - b.offset);
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      // Segment records are 16 bytes (selector, attrib, limit, base); the table names them by their first 8.
      const end = f.offset + (["ES", "CS", "SS", "DS", "FS", "GS", "GDTR", "LDTR", "IDTR", "TR"].includes(f.name) ? 16 : f.width);
      expect(end).toBeLessThanOrEqual(VMCB_BYTES);
      const next = fields[i + 1];
      if (next) expect(next.offset, `${f.name} overlaps ${next.name}`).toBeGreaterThanOrEqual(end);
    }
  });

  it("packed VINTR bits sit where APM B-1 puts them", () => {
    const v = new Vmcb(new Uint8Array(VMCB_BYTES));
    v.setBits(B.V_IRQ, 1);
    expect(v.read64(F.VINTR_CONTROL)).toBe(1n << 8n);
    v.setBits(B.V_IRQ, 0);
    v.setBits(B.V_INTR_VECTOR, 0x20);
    expect(v.read64(F.VINTR_CONTROL)).toBe(0x20n << 32n);
    v.setBits(B.V_INTR_VECTOR, 0);
    v.setBits(B.V_INTR_PRIO, 0xf);
    v.setBits(B.V_IGN_TPR, 1);
    v.setBits(B.V_INTR_MASKING, 1);
    expect(v.read64(F.VINTR_CONTROL)).toBe((0xfn << 16n) | (1n << 20n) | (1n << 24n));
    v.setBits(B.NP_ENABLE, 1);
    expect(v.bytes[0x90]).toBe(1);
  });
});

describe("Vmcb accessors", () => {
  it("store 64-bit fields full width, little-endian", () => {
    const v = new Vmcb(new Uint8Array(VMCB_BYTES));
    v.write64(F.N_CR3, 0x89abcdef, 0x01234567);
    expect(v.read64(F.N_CR3)).toBe(0x0123456789abcdefn);
    expect(v.bytes[0xb0]).toBe(0xef);
    expect(v.bytes[0xb7]).toBe(0x01);
    v.write(F.N_CR3, 5);
    expect(v.read64(F.N_CR3)).toBe(5n);
  });

  it("encode VMEXIT_INVALID as all ones in the 64-bit EXITCODE", () => {
    const v = new Vmcb(new Uint8Array(VMCB_BYTES));
    v.setExitCode(SvmExit.INVALID);
    expect(v.read64(F.EXITCODE)).toBe(0xffffffffffffffffn);
    expect(v.exitCode()).toBe(-1);
    v.setExitCode(SvmExit.IOIO);
    expect(v.read64(F.EXITCODE)).toBe(0x7bn);
  });

  it("write segments in SVM format and read them back in VMX format", () => {
    const v = new Vmcb(new Uint8Array(VMCB_BYTES));
    const cs = { selector: 0xf000, base: 0xffff0000, limit: 0xffff, attrib: 0x9b };
    v.writeSegment(F.CS, cs);
    expect(v.dv.getUint16(0x410, true)).toBe(0xf000);
    expect(v.dv.getUint16(0x412, true)).toBe(0x9b);
    expect(v.dv.getUint32(0x414, true)).toBe(0xffff);
    expect(v.dv.getUint32(0x418, true)).toBe(0xffff0000);
    const out = { selector: 0, base: 0, limit: 0, attrib: 0 };
    v.readSegment(F.CS, out);
    expect(out).toEqual(cs);
  });
});

describe("segment attribute conversion (APM 15.5.1 vs SDM 25.4.1)", () => {
  it("moves AVL/L/D/G from VMX bits 15:12 to SVM bits 11:8", () => {
    // 32-bit flat code: type 0xB, S, P, D, G -> VMX 0xC09B, SVM 0xC9B
    expect(vmxToSvmAttrib(0xc09b)).toBe(0xc9b);
    expect(svmToVmxAttrib(0xc9b)).toBe(0xc09b);
    // 64-bit code: L (VMX bit 13) -> SVM bit 9
    expect(vmxToSvmAttrib(0x209b)).toBe(0x29b);
  });

  it("round-trips every usable VMX attribute value", () => {
    for (let low = 0; low < 256; low++) {
      if (!(low & 0x80)) continue; // usable segments are present
      for (let high = 0; high < 16; high++) {
        const vmx = low | (high << 12);
        expect(svmToVmxAttrib(vmxToSvmAttrib(vmx))).toBe(vmx);
      }
    }
  });

  it("stores an unusable segment as 0 and reads a not-present one back as unusable", () => {
    expect(vmxToSvmAttrib(VMX_ATTRIB_UNUSABLE | 0x93)).toBe(0);
    expect(svmToVmxAttrib(0)).toBe(VMX_ATTRIB_UNUSABLE);
    expect(svmToVmxAttrib(vmxToSvmAttrib(VMX_ATTRIB_UNUSABLE))).toBe(VMX_ATTRIB_UNUSABLE);
  });
});

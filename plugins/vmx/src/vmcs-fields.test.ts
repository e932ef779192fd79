import { describe, expect, it } from "vitest";
import {
  F, FIELD_TABLE, HIGHEST_FIELD_INDEX, VmcsType, VmcsView, VmcsWidth, VMCS_REGION_BYTES, lookupField,
  vmcsAccessHigh, vmcsIndex, vmcsType, vmcsWidth,
} from "./vmcs-fields.js";

describe("VMCS field encodings (SDM appendix B)", () => {
  it.each([
    ["GuestCsSel", F.GuestCsSel, 0x0802, VmcsWidth.W16, VmcsType.Guest],
    ["Vpid", F.Vpid, 0x0000, VmcsWidth.W16, VmcsType.Control],
    ["HostTrSel", F.HostTrSel, 0x0c0c, VmcsWidth.W16, VmcsType.Host],
    ["IoBitmapA", F.IoBitmapA, 0x2000, VmcsWidth.W64, VmcsType.Control],
    ["EptPointer", F.EptPointer, 0x201a, VmcsWidth.W64, VmcsType.Control],
    ["VmcsLinkPtr", F.VmcsLinkPtr, 0x2800, VmcsWidth.W64, VmcsType.Guest],
    ["ProcControls", F.ProcControls, 0x4002, VmcsWidth.W32, VmcsType.Control],
    ["VmInstructionError", F.VmInstructionError, 0x4400, VmcsWidth.W32, VmcsType.ReadOnly],
    ["ExitReason", F.ExitReason, 0x4402, VmcsWidth.W32, VmcsType.ReadOnly],
    ["ExitInstrLen", F.ExitInstrLen, 0x440c, VmcsWidth.W32, VmcsType.ReadOnly],
    ["GuestInterruptibility", F.GuestInterruptibility, 0x4824, VmcsWidth.W32, VmcsType.Guest],
    ["GuestActivity", F.GuestActivity, 0x4826, VmcsWidth.W32, VmcsType.Guest],
    ["ExitQualification", F.ExitQualification, 0x6400, VmcsWidth.Natural, VmcsType.ReadOnly],
    ["GuestRip", F.GuestRip, 0x681e, VmcsWidth.Natural, VmcsType.Guest],
    ["HostRip", F.HostRip, 0x6c16, VmcsWidth.Natural, VmcsType.Host],
  ])("%s has the SDM encoding and decodes its width and type from the encoding bits", (_n, enc, want, width, type) => {
    expect(enc).toBe(want);
    expect(vmcsWidth(enc)).toBe(width);
    expect(vmcsType(enc)).toBe(type);
    expect(FIELD_TABLE.get(enc)?.width).toBe(width);
  });

  it("decodes the index (bits 9:1) and access type (bit 0)", () => {
    expect(vmcsIndex(F.GuestRflags)).toBe(0x10);
    expect(vmcsAccessHigh(F.EptPointer)).toBe(false);
    expect(vmcsAccessHigh(F.EptPointer | 1)).toBe(true);
  });

  it("treats reserved bits, unknown encodings and high access to non-64-bit fields as unsupported", () => {
    expect(lookupField(F.GuestRip | 0x8000)).toBeUndefined();
    expect(lookupField(F.GuestRip | 0x1000)).toBeUndefined();
    expect(lookupField(0x2402)).toBeUndefined();
    expect(lookupField(F.GuestCsSel | 1)).toBeUndefined();
    expect(lookupField(F.GuestRip | 1)).toBeUndefined();
    expect(lookupField(F.EptPointer | 1)?.name).toBe("EptPointer");
  });

  it("lays every field out in its own slot after the revision and abort words, inside 4 KiB", () => {
    const offsets = [...FIELD_TABLE.values()].map((f) => f.offset);
    expect(new Set(offsets).size).toBe(offsets.length);
    expect(Math.min(...offsets)).toBeGreaterThanOrEqual(8);
    expect(Math.max(...offsets) + 8).toBeLessThanOrEqual(VMCS_REGION_BYTES);
    expect(HIGHEST_FIELD_INDEX).toBe(Math.max(...[...FIELD_TABLE.keys()].map(vmcsIndex)));
  });

  it("stores values in the region's bytes: full writes clear the high half, 16-bit fields truncate", () => {
    const bytes = new Uint8Array(VMCS_REGION_BYTES);
    const v = new VmcsView(bytes);
    v.set(F.IoBitmapA | 1, 0xdead);
    v.set(F.IoBitmapA, 0x1000);
    expect(v.get(F.IoBitmapA)).toBe(0x1000);
    expect(v.get(F.IoBitmapA | 1)).toBe(0);
    v.set(F.IoBitmapA | 1, 0x2);
    expect(v.get(F.IoBitmapA)).toBe(0x1000);
    v.set(F.GuestCsSel, 0x12345);
    expect(v.get(F.GuestCsSel)).toBe(0x2345);
    const off = FIELD_TABLE.get(F.GuestRip)!.offset;
    v.set(F.GuestRip, 0xfffffff0);
    expect(new DataView(bytes.buffer).getUint32(off, true)).toBe(0xfffffff0);
    v.revision = 0x1234;
    expect(new DataView(bytes.buffer).getUint32(0, true)).toBe(0x1234);
  });
});

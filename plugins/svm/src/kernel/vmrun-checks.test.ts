import { describe, expect, it } from "vitest";
import { B, EventInj, F } from "../vmcb.js";
import { SOFT_SVM_CAPS, VMRUN_CHECKS, firstFailedCheck, type VmrunEnv } from "./vmrun-checks.js";
import { BROKEN_ROWS, LONG_MODE_CAPS, validVmcb } from "./vmrun-checks.fixtures.js";

const GPSPACE_PADDR = 0x0020_3000;

describe("VMRUN consistency checks (APM 15.5.1)", () => {
  it("a valid VMCB passes every check, with and without long-mode support", () => {
    expect(firstFailedCheck(validVmcb(GPSPACE_PADDR), { caps: SOFT_SVM_CAPS, gpspacePaddr: GPSPACE_PADDR })).toBe(-1);
    expect(firstFailedCheck(validVmcb(GPSPACE_PADDR), { caps: LONG_MODE_CAPS, gpspacePaddr: GPSPACE_PADDR })).toBe(-1);
  });

  it("every check has exactly one breaking row", () => {
    expect(BROKEN_ROWS.map((r) => r.check).sort()).toEqual(VMRUN_CHECKS.map((c) => c.name).sort());
  });

  it.each(BROKEN_ROWS)("breaking $check fails exactly that check", (row) => {
    const env: VmrunEnv = { caps: row.caps ?? SOFT_SVM_CAPS, gpspacePaddr: GPSPACE_PADDR };
    const v = validVmcb(GPSPACE_PADDR);
    row.breakIt(v);
    const idx = firstFailedCheck(v, env);
    expect(idx).toBeGreaterThanOrEqual(0);
    expect(VMRUN_CHECKS[idx]!.name).toBe(row.check);
    const failing = VMRUN_CHECKS.filter((c) => c.violated(v, env)).map((c) => c.name);
    expect(failing).toEqual([row.check]);
  });

  it("accepts the legal CR0 cache combinations (CD=1/NW=1 and CD=1/NW=0)", () => {
    const env = { caps: SOFT_SVM_CAPS, gpspacePaddr: GPSPACE_PADDR };
    const v = validVmcb(GPSPACE_PADDR);
    v.write(F.CR0, 0x60000010);
    expect(firstFailedCheck(v, env)).toBe(-1);
    v.write(F.CR0, 0x40000010);
    expect(firstFailedCheck(v, env)).toBe(-1);
  });

  it("G_PAT: every legal type (UC, WC, WT, WP, WB, UC-) passes; type 8 or a reserved type fails; without NP_ENABLE it is not loaded", () => {
    const env = { caps: SOFT_SVM_CAPS, gpspacePaddr: GPSPACE_PADDR };
    const v = validVmcb(GPSPACE_PADDR);
    v.write64(F.G_PAT, 0x05040100, 0x07060504);
    expect(firstFailedCheck(v, env)).toBe(-1);
    const gpat = VMRUN_CHECKS.find((c) => c.name === "g-pat.invalid")!;
    for (const [lo, hi] of [[0x08, 0], [0, 0x0300_0000], [0x0000_4000, 0]] as const) {
      v.write64(F.G_PAT, lo, hi);
      expect(gpat.violated(v, env), `${hi.toString(16)}:${lo.toString(16)}`).toBe(true);
    }
    v.setBits(B.NP_ENABLE, 0);
    expect(gpat.violated(v, env)).toBe(false);
  });

  it("accepts injected #BP (vector 3) and a valid external interrupt", () => {
    const env = { caps: SOFT_SVM_CAPS, gpspacePaddr: GPSPACE_PADDR };
    const v = validVmcb(GPSPACE_PADDR);
    v.write(F.EVENTINJ, (EventInj.V | (3 << EventInj.TYPE_SHIFT) | 3) >>> 0);
    expect(firstFailedCheck(v, env)).toBe(-1);
    v.write(F.EVENTINJ, (EventInj.V | (0 << EventInj.TYPE_SHIFT) | 0x80) >>> 0);
    expect(firstFailedCheck(v, env)).toBe(-1);
  });
});

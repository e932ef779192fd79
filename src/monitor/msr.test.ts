import { describe, expect, it } from "vitest";
import { MSR_TABLE, MsrPolicy, MsrStateError } from "./msr.js";
import type { MsrAccess, MsrPolicyDeps } from "./msr.js";

const rd = (p: MsrPolicy, index: number) => {
  const e: MsrAccess = { write: false, index, lo: 0xdead, hi: 0xbeef };
  const verdict = p.handle(e);
  return { verdict, lo: e.lo, hi: e.hi };
};
const wr = (p: MsrPolicy, index: number, lo: number, hi = 0) => p.handle({ write: true, index, lo, hi });

describe("MSR policy", () => {
  const intel = (deps: Partial<MsrPolicyDeps> = {}) => new MsrPolicy({ vendor: "intel", ...deps });
  const amd = () => new MsrPolicy({ vendor: "amd" });

  it("unknown MSRs are #GP on read and write, reported to the events sink", () => {
    const gps: Array<[number, boolean]> = [];
    const p = intel({ events: { gp: (i, w) => gps.push([i, w]) } });
    const r = rd(p, 0x123);
    expect(r.verdict).toBe("gp");
    expect([r.lo, r.hi]).toEqual([0xdead, 0xbeef]); // untouched
    expect(wr(p, 0xc0000999, 1)).toBe("gp");
    expect(gps).toEqual([[0x123, false], [0xc0000999, true]]);
  });

  it("stored MSRs read their reset value and read back what was written", () => {
    const p = intel();
    expect(rd(p, 0x277)).toEqual({ verdict: "done", lo: 0x00070406, hi: 0x00070406 }); // PAT power-on value
    expect(wr(p, 0x277, 0x01010101, 0x06060606)).toBe("done");
    expect(rd(p, 0x277)).toEqual({ verdict: "done", lo: 0x01010101, hi: 0x06060606 });
    for (const i of [0x174, 0x175, 0x176, 0x200, 0x20f, 0x250, 0x258, 0x259, 0x268, 0x26f, 0xc0000081, 0xc0000084, 0xc0000100, 0xc0000102]) {
      expect(rd(p, i)).toEqual({ verdict: "done", lo: 0, hi: 0 });
      expect(wr(p, i, 0x1000 + i, 7)).toBe("done");
      expect(rd(p, i)).toEqual({ verdict: "done", lo: (0x1000 + i) >>> 0, hi: 7 });
    }
  });

  it("a stored MSR's reserved bits are #GP and leave the value", () => {
    const p = intel();
    expect(wr(p, 0xc0000080, 1 << 8)).toBe("gp"); // EFER.LME: no long mode
    expect(wr(p, 0xc0000080, 0)).toBe("done");
    expect(wr(p, 0x17a, 1)).toBe("gp"); // MCG_STATUS: only zeros
    expect(wr(p, 0xc0000103, 5, 1)).toBe("gp"); // TSC_AUX high half reserved
    expect(wr(p, 0x2ff, 0x806)).toBe("done"); // MTRR_DEF_TYPE E | WB
    expect(wr(p, 0x2ff, 0x1000)).toBe("gp");
    expect(rd(p, 0x2ff).lo).toBe(0x806);
  });

  it("fixed MSRs read a constant and #GP on write", () => {
    const p = intel();
    expect(rd(p, 0x3a)).toEqual({ verdict: "done", lo: 1, hi: 0 }); // locked, VMX off
    expect(wr(p, 0x3a, 5)).toBe("gp");
    expect(rd(p, 0xfe).lo & 0xff).toBe(8); // MTRRCAP: 8 variable ranges
    expect(rd(p, 0x179)).toEqual({ verdict: "done", lo: 0, hi: 0 }); // no MC banks
    expect(wr(p, 0x179, 0)).toBe("gp");
  });

  it("ignored MSRs accept writes and keep reading their constant", () => {
    const p = intel();
    expect(wr(p, 0x8b, 0, 0)).toBe("done");
    expect(wr(p, 0x8b, 0x1234, 0x55)).toBe("done");
    expect(rd(p, 0x8b)).toEqual({ verdict: "done", lo: 0, hi: 0 });
  });

  it("the TSC reads the time source plus the offset a write sets", () => {
    let now = 5_000_000_000; // above 2^32
    const p = intel({ tsc: () => now });
    expect(rd(p, 0x10)).toEqual({ verdict: "done", lo: 5_000_000_000 % 2 ** 32, hi: 1 });
    expect(wr(p, 0x10, 100, 0)).toBe("done");
    now += 50;
    expect(rd(p, 0x10)).toEqual({ verdict: "done", lo: 150, hi: 0 });
  });

  it("vendor rows: Intel-only MSRs #GP on AMD and AMD-only ones on Intel", () => {
    const i = intel(), a = amd();
    expect(rd(i, 0x1a0).verdict).toBe("done"); // MISC_ENABLE
    expect(rd(a, 0x1a0).verdict).toBe("gp");
    expect(rd(a, 0x3a).verdict).toBe("gp");
    expect(rd(a, 0xc0010015).verdict).toBe("done"); // HWCR
    expect(rd(i, 0xc0010015).verdict).toBe("gp");
    expect(rd(a, 0xc0010114)).toEqual({ verdict: "done", lo: 0x18, hi: 0 }); // VM_CR: SVMDIS, locked
  });

  it("the table covers the MSRs Linux and GRUB touch in early boot", () => {
    const need = [0x10, 0x1b, 0x3a, 0x8b, 0xfe, 0x174, 0x175, 0x176, 0x179, 0x17a, 0x1a0, 0x277, 0x2ff, 0x250, 0x258, 0x259,
      0xc0000080, 0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, 0xc0000100, 0xc0000101, 0xc0000102, 0xc0000103, 0xc0010015];
    for (let i = 0x200; i <= 0x20f; i++) need.push(i);
    for (let i = 0x268; i <= 0x26f; i++) need.push(i);
    for (const i of need) expect(MSR_TABLE.has(i), `0x${i.toString(16)}`).toBe(true);
  });

  it("saves and restores stored values and the TSC offset; bad states are refused", () => {
    let now = 1000;
    const p = intel({ tsc: () => now });
    wr(p, 0x277, 0x11, 0x22);
    wr(p, 0x10, 5000);
    const s = JSON.parse(JSON.stringify(p.saveState()));
    expect(s.v).toBe(1);
    expect(s.values["0x277"]).toEqual([0x11, 0x22]);
    const q = MsrPolicy.fromState(s, { vendor: "intel", tsc: () => now });
    expect(rd(q, 0x277)).toEqual({ verdict: "done", lo: 0x11, hi: 0x22 });
    now = 1010;
    expect(rd(q, 0x10).lo).toBe(5010);
    expect(() => MsrPolicy.fromState({ ...s, v: 2 }, { vendor: "intel" })).toThrow(MsrStateError);
    expect(() => MsrPolicy.fromState({ ...s, values: { "0x3a": [1, 0] } }, { vendor: "intel" })).toThrow(/not a stored MSR/);
    expect(() => MsrPolicy.fromState({ ...s, values: { "0x277": [1, -1] } }, { vendor: "intel" })).toThrow(/32-bit/);
    expect(() => MsrPolicy.fromState(s, { vendor: "amd" })).toThrow(/0x1a0/);
  });
});

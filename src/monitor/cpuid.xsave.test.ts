// XSAVE/OSXSAVE are hidden from guests (cpuid.ts header), though the soft core has them.
import { describe, expect, it } from "vitest";
import type { CpuidExit } from "./api.js";
import { CpuidPolicy, FEATURE_ECX_OSXSAVE, FEATURE_ECX_XSAVE, defaultProfile } from "./cpuid.js";
import { X86Cpu } from "../x86/cpu.js";
import { FlatMemory } from "../x86/memory.js";
import { realModeState, resetState } from "../x86/state.js";

const ask = (p: CpuidPolicy, leaf: number) => {
  const e: CpuidExit = { kind: "cpuid", leaf, subleaf: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
  p.answer(e);
  return [e.eax, e.ebx, e.ecx, e.edx] as const;
};

/** CPUID leaf 1 ECX as the soft core answers it with CR4.OSXSAVE set. */
function coreLeaf1Ecx(): number {
  const mem = new FlatMemory(0x20000);
  const cpu = new X86Cpu(mem, { in: () => 0xff, out: () => {} });
  mem.bytes.set([0x66, 0xb8, 1, 0, 0, 0, 0x0f, 0xa2], 0x10000); // mov eax, 1; cpuid
  const s = realModeState(0x1000, 0);
  s.cr4 = 0x40000;
  cpu.setState(s);
  cpu.run(2);
  const o = resetState();
  cpu.getState(o);
  return o.ecx;
}

describe("CPUID policy: XSAVE", () => {
  it("the core reports XSAVE and OSXSAVE, the policy hides both even when a profile claims them", () => {
    const bits = (FEATURE_ECX_XSAVE | FEATURE_ECX_OSXSAVE) >>> 0;
    expect(coreLeaf1Ecx() & bits).toBe(bits);
    for (const b of ["vmx", "svm"]) {
      const base = defaultProfile(b);
      expect(ask(new CpuidPolicy(base), 1)[2] & bits).toBe(0);
      const p = new CpuidPolicy({ ...base, features1Ecx: (base.features1Ecx | bits | 1) >>> 0 });
      expect(ask(p, 1)[2] & bits).toBe(0);
      expect(ask(p, 1)[2] & 1).toBe(1); // SSE3 bit 0 passes: only XSAVE/OSXSAVE (and VMX) are masked
      expect(ask(p, 0)[0]).toBe(1); // leaf 0Dh is not offered
    }
  });
});

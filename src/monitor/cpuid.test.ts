import { describe, expect, it } from "vitest";
import type { CpuidExit } from "./api.js";
import {
  BRAND, CORE_FEATURES_EDX, CpuidPolicy, CpuidProfileError, EXT_ECX_SVM, FEATURE_ECX_HYPERVISOR, FEATURE_ECX_VMX, FEATURE_FPU,
  HV_INTERFACE_VERSION, HV_LEAF_MAX, HV_SIGNATURE, defaultProfile, guestFeatureMask,
} from "./cpuid.js";
import { X86Cpu } from "../x86/cpu.js";
import { FlatMemory } from "../x86/memory.js";
import { realModeState, resetState } from "../x86/state.js";

const exit = (leaf: number): CpuidExit => ({ kind: "cpuid", leaf, subleaf: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 });
const text = (...w: number[]) => w.map((x) => String.fromCharCode(x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24)).join("");
const ask = (p: CpuidPolicy, leaf: number) => { const e = exit(leaf); p.answer(e); return [e.eax, e.ebx, e.ecx, e.edx] as const; };

/** CPUID leaf 1 EDX as the soft core answers without an intercept. */
function coreLeaf1Edx(): number {
  const mem = new FlatMemory(0x20000);
  const cpu = new X86Cpu(mem, { in: () => 0xff, out: () => {} });
  mem.bytes.set([0x66, 0xb8, 1, 0, 0, 0, 0x0f, 0xa2], 0x10000); // mov eax, 1; cpuid
  const s = realModeState(0x1000, 0);
  s.eflags = 2;
  cpu.setState(s);
  cpu.run(2);
  const o = resetState();
  cpu.getState(o);
  return o.edx;
}

describe("CPUID policy", () => {
  it("reports the backend's vendor in EBX, EDX, ECX of leaf 0 and max basic leaf 1", () => {
    const [eax, ebx, ecx, edx] = ask(new CpuidPolicy(defaultProfile("vmx")), 0);
    expect(eax).toBe(1);
    expect(text(ebx, edx, ecx)).toBe("GenuineIntel");
    const amd = ask(new CpuidPolicy(defaultProfile("svm")), 0);
    expect(text(amd[1], amd[3], amd[2])).toBe("AuthenticAMD");
  });

  it("leaf 1 reports family 6 and exactly the soft core's features, the FPU among them", () => {
    const [eax, , ecx, edx] = ask(new CpuidPolicy(defaultProfile("vmx")), 1);
    expect((eax >>> 8) & 0xf).toBe(6);
    expect(edx).toBe(coreLeaf1Edx());
    expect(edx).toBe(CORE_FEATURES_EDX);
    expect(edx & FEATURE_FPU).toBe(FEATURE_FPU);
    expect(ecx >>> 0).toBe(FEATURE_ECX_HYPERVISOR >>> 0);
  });

  it("hides VMX and SVM even when a profile claims them", () => {
    const base = defaultProfile("svm");
    const p = new CpuidPolicy({ ...base, features1Ecx: base.features1Ecx | FEATURE_ECX_VMX, ext1Ecx: EXT_ECX_SVM | 1 });
    expect(ask(p, 1)[2] & FEATURE_ECX_VMX).toBe(0);
    expect(ask(p, 0x80000001)[2]).toBe(1); // LAHF/SAHF kept, SVM cleared
  });

  it("leaf 0x40000000 gives the max hypervisor leaf and the 12-byte signature; 0x40000001 the interface version", () => {
    for (const b of ["vmx", "svm"]) {
      const p = new CpuidPolicy(defaultProfile(b));
      const [eax, ebx, ecx, edx] = ask(p, 0x40000000);
      expect(eax).toBe(HV_LEAF_MAX);
      expect(text(ebx, ecx, edx)).toBe(HV_SIGNATURE);
      expect(HV_SIGNATURE).toBe("hvkitHVKITvm");
      expect(ask(p, 0x40000001)).toEqual([HV_INTERFACE_VERSION, 0, 0, 0]);
    }
  });

  it("extended leaves give max 0x80000008 and the NUL-padded brand string", () => {
    for (const b of ["vmx", "svm"]) {
      const p = new CpuidPolicy(defaultProfile(b));
      expect(ask(p, 0x80000000)[0]).toBe(0x80000008);
      expect(ask(p, 0x80000008)[0]).toBe(0x2020);
      const words = [0x80000002, 0x80000003, 0x80000004].flatMap((l) => [...ask(p, l)]);
      const s = text(...words);
      expect(s.length).toBe(48);
      expect(s.replace(/\0+$/, "")).toBe(BRAND);
    }
  });

  it("AMD mirrors the core features in 80000001h EDX (bit 11 is SYSCALL there, absent) and the signature in EAX; Intel reports only NX", () => {
    const amd = ask(new CpuidPolicy(defaultProfile("svm")), 0x80000001);
    expect(amd[3]).toBe(((CORE_FEATURES_EDX & ~(1 << 11)) | (1 << 20)) >>> 0);
    expect(amd[0]).toBe(0x6d8);
    expect(ask(new CpuidPolicy(defaultProfile("vmx")), 0x80000001)).toEqual([0, 0, 0, 1 << 20]);
  });

  it("out-of-range leaves: Intel returns the highest basic leaf, AMD zeros", () => {
    const intel = new CpuidPolicy(defaultProfile("vmx"));
    for (const l of [2, 7, 0x40000002, 0x80000009]) expect(ask(intel, l)).toEqual(ask(intel, 1));
    const amd = new CpuidPolicy(defaultProfile("svm"));
    for (const l of [2, 7, 0x40000002, 0x80000009]) expect(ask(amd, l)).toEqual([0, 0, 0, 0]);
  });

  it("a config mask narrows leaf 1, including the hypervisor bit", () => {
    const p = new CpuidPolicy(defaultProfile("vmx", { mask: { leaf1: { edx: ~(1 << 15), ecx: 0 } } }));
    const [, , ecx, edx] = ask(p, 1);
    expect(edx).toBe(CORE_FEATURES_EDX & ~(1 << 15));
    expect(ecx).toBe(0);
  });

  it("a mask cannot add features the core lacks", () => {
    const p = new CpuidPolicy(defaultProfile("vmx", { mask: { leaf1: { edx: 0xffffffff, ecx: 0xffffffff } } }));
    expect(ask(p, 1)[3]).toBe(CORE_FEATURES_EDX);
    expect(ask(p, 1)[2] & FEATURE_ECX_VMX).toBe(0);
  });

  it("rejects a vendor that is not 12 characters", () => {
    expect(() => new CpuidPolicy({ ...defaultProfile("vmx"), vendor: "Intel" })).toThrow(CpuidProfileError);
  });
});

describe("CPUID narrowing reaches the cores (guestFeatureMask)", () => {
  it("hides NX through mask.ext1.edx, for both vendors", () => {
    for (const b of ["vmx", "svm"]) {
      expect((ask(new CpuidPolicy(defaultProfile(b)), 0x8000_0001)[3] >>> 20) & 1).toBe(1);
      expect((ask(new CpuidPolicy(defaultProfile(b, { mask: { ext1: { edx: ~(1 << 20) >>> 0 } } })), 0x8000_0001)[3] >>> 20) & 1).toBe(0);
    }
  });

  it("is what the guest's CPUID reports: leaf 1 EDX/ECX and 80000001h EDX after the config mask", () => {
    const p = new CpuidPolicy(defaultProfile("vmx", { mask: { leaf1: { edx: ~(1 << 13) >>> 0 }, ext1: { edx: 0 } } }));
    const m = guestFeatureMask(p);
    expect(m.leaf1Edx).toBe(ask(p, 1)[3]);
    expect(m.leaf1Ecx).toBe(ask(p, 1)[2]);
    expect(m.ext1Edx).toBe(0);
    expect((m.leaf1Edx >>> 13) & 1).toBe(0); // PGE hidden
    expect(m.leaf1Edx).toBe((CORE_FEATURES_EDX & ~(1 << 13)) >>> 0);
  });

  it("set as a core's cpuidMask, a hidden PGE is a reserved CR4 bit there and PSE still works", () => {
    const p = new CpuidPolicy(defaultProfile("vmx", { mask: { leaf1: { edx: ~(1 << 13) >>> 0 } } }));
    const tryCr4 = (v: number) => {
      const mem = new FlatMemory(0x20000);
      const cpu = new X86Cpu(mem, { in: () => 0xff, out: () => {} });
      Object.assign(cpu.cpuidMask, guestFeatureMask(p));
      // mov eax, v; mov cr4, eax; hlt — IVT 13 points at 2000:0000, which holds hlt too.
      mem.bytes.set([0x66, 0xb8, v & 0xff, (v >>> 8) & 0xff, 0, 0, 0x0f, 0x22, 0xe0, 0xf4], 0x10000);
      mem.write16(13 * 4, 0); mem.write16(13 * 4 + 2, 0x1f00); mem.bytes[0x1f000] = 0xf4;
      const s = realModeState(0x1000, 0);
      s.eflags = 2; s.ss.selector = 0x1800; s.ss.base = 0x18000; s.esp = 0x100;
      cpu.setState(s);
      cpu.run(10);
      const o = resetState();
      cpu.getState(o);
      return { gp: o.cs.selector === 0x1f00, cr4: o.cr4 };
    };
    expect(tryCr4(0x80)).toEqual({ gp: true, cr4: 0 }); // PGE
    expect(tryCr4(0x10)).toEqual({ gp: false, cr4: 0x10 }); // PSE
  });
});

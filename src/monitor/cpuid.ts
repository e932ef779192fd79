// The CPUID answers the monitor gives a guest (CPUID exits).
//
// The profile is an honest i686 one: family 6 model 13 (a P6-class CPU of the Pentium M
// era, on which operating systems trust SEP), and leaf 1 EDX reports exactly what the soft
// engine's core implements: FPU, DE, PSE, TSC, MSR, PAE, CX8, SEP, MTRR, PGE, CMOV, PAT,
// FXSR (src/x86/cpu.ts CPUID1_EDX); 80000001h EDX adds NX (PAE execute-disable).
//
// Leaves: 0 and 1 (basic), 0x80000000-0x80000004 (extended: vendor-specific features and
// the brand string "hvkit virtual CPU"), 0x80000008 (32 physical and 32 linear address
// bits, SDM Vol. 2A CPUID), and the hypervisor range 0x40000000-0x40000001
// (the convention of KVM, Hyper-V and Xen: CPUID.1:ECX bit 31 says "hypervisor present",
// leaf 0x40000000 EAX is the highest hypervisor leaf and EBX/ECX/EDX a 12-byte signature).
//
// VMX (CPUID.1:ECX bit 5) and SVM (CPUID.80000001h:ECX bit 2) are never reported: the
// guest sees no nested virtualization. An option to expose them is not implemented.
// XSAVE and OSXSAVE (CPUID.1:ECX bits 26, 27) are never reported either, though the core
// implements XSAVE for x87: XCR0 cannot enable SSE there, and a 32-bit Linux that finds
// XSAVE without SSE in XCR0 prints an error and disables XSAVE. Leaf 0Dh is therefore not
// offered (max basic leaf 1), and guests keep FXSAVE/FNSAVE.
//
// Out-of-range leaves follow the vendor: Intel returns the highest basic leaf's data
// (SDM Vol. 2A CPUID, "If a value entered for CPUID.EAX is higher than the maximum input
// value ..."), AMD returns zeros (APM Vol. 3 appendix E.1).
import type { CpuidExit } from "./api.js";

export interface CpuidProfile {
  /** 12 ASCII characters, returned in EBX, EDX, ECX of leaf 0 (SDM Vol. 2A CPUID, leaf 0). */
  readonly vendor: string;
  /** Leaf 1 EAX: stepping 3:0, model 7:4, family 11:8. */
  readonly signature: number;
  readonly features1Edx: number;
  readonly features1Ecx: number;
  /** CPUID.80000001h EDX and ECX (vendor-specific extended features). */
  readonly ext1Edx: number;
  readonly ext1Ecx: number;
  /** Up to 48 ASCII characters (leaves 0x80000002-0x80000004, NUL padded). */
  readonly brand: string;
}

/** CPUID.1:EDX bits (SDM Vol. 2A table 3-11). */
export const FEATURE_FPU = 1 << 0;
export const FEATURE_DE = 1 << 2;
export const FEATURE_PSE = 1 << 3;
export const FEATURE_TSC = 1 << 4;
export const FEATURE_MSR = 1 << 5;
export const FEATURE_PAE = 1 << 6;
export const FEATURE_CX8 = 1 << 8;
export const FEATURE_SEP = 1 << 11;
export const FEATURE_MTRR = 1 << 12;
export const FEATURE_PGE = 1 << 13;
export const FEATURE_CMOV = 1 << 15;
export const FEATURE_PAT = 1 << 16;
export const FEATURE_FXSR = 1 << 24;
/** CPUID.80000001h:EDX bit 20, execute disable (SDM table 3-8; APM E.4.2). */
export const EXT_EDX_NX = 1 << 20;
/** CPUID.1:ECX bits (SDM Vol. 2A table 3-10). */
export const FEATURE_ECX_VMX = 1 << 5;
/** XSAVE (26) and OSXSAVE (27): hidden from the guest (see the header). */
export const FEATURE_ECX_XSAVE = 1 << 26;
export const FEATURE_ECX_OSXSAVE = 1 << 27;
/** Reserved for hypervisors: always 0 on real hardware (SDM table 3-10, bit 31 "Not Used"). */
export const FEATURE_ECX_HYPERVISOR = 1 << 31;
/** CPUID.80000001h:ECX bit 2 (APM Vol. 3 E.4.2). */
export const EXT_ECX_SVM = 1 << 2;

/** What the soft engine's core implements (keep equal to src/x86/cpu.ts CPUID1_EDX; tested). */
export const CORE_FEATURES_EDX = FEATURE_FPU | FEATURE_DE | FEATURE_PSE | FEATURE_TSC | FEATURE_MSR | FEATURE_PAE
  | FEATURE_CX8 | FEATURE_SEP | FEATURE_MTRR | FEATURE_PGE | FEATURE_CMOV | FEATURE_PAT | FEATURE_FXSR;

export const HV_LEAF_BASE = 0x4000_0000;
/** The highest hypervisor leaf (CPUID.40000000h:EAX). */
export const HV_LEAF_MAX = 0x4000_0001;
/** CPUID.40000000h EBX, ECX, EDX: "hvki", "tHVK", "ITvm". */
export const HV_SIGNATURE = "hvkitHVKITvm";
/** CPUID.40000001h:EAX: the monitor's interface version (major 15:8, minor 7:0). Bump with any leaf change. */
export const HV_INTERFACE_VERSION = 0x0100;
export const BRAND = "hvkit virtual CPU";
const EXT_MAX = 0x8000_0008;
/** CPUID.80000008h:EAX: linear address bits 15:8, physical 7:0 (no PSE-36; MAXPHYADDR 32, mmu.ts). */
const ADDRESS_SIZES = 0x2020;

/** `cpuid:` in the machine config: bits cleared from what the profile reports. */
export interface CpuidConfig {
  readonly mask?: {
    readonly leaf1?: { readonly ecx?: number; readonly edx?: number };
    /** CPUID.80000001h EDX: clearing bit 20 hides NX (and makes EFER.NXE reserved in the core). */
    readonly ext1?: { readonly edx?: number };
  };
}

export function defaultProfile(backendId: string, config: CpuidConfig = {}): CpuidProfile {
  const amd = backendId === "svm";
  const m = config.mask?.leaf1;
  const edx = (CORE_FEATURES_EDX & (m?.edx ?? 0xffff_ffff)) >>> 0;
  const ecx = (FEATURE_ECX_HYPERVISOR & (m?.ecx ?? 0xffff_ffff)) >>> 0;
  return {
    vendor: amd ? "AuthenticAMD" : "GenuineIntel",
    signature: 0x0000_06d8, // family 6, model 13, stepping 8 (as the core reports)
    features1Edx: edx,
    features1Ecx: ecx,
    // AMD mirrors most leaf-1 bits in 80000001h EDX, where bit 11 means SYSCALL, which the
    // core lacks (APM E.4.2); Intel reports only SYSCALL/NX/LM/RDTSCP there. Both get NX.
    ext1Edx: (((amd ? edx & ~FEATURE_SEP : 0) | EXT_EDX_NX) & (config.mask?.ext1?.edx ?? 0xffff_ffff)) >>> 0,
    ext1Ecx: 0,
    brand: BRAND,
  };
}

function word(s: string, i: number): number {
  const c = (j: number) => (i + j < s.length ? s.charCodeAt(i + j) & 0xff : 0);
  return (c(0) | (c(1) << 8) | (c(2) << 16) | (c(3) << 24)) >>> 0;
}

/** A profile or vendor string the policy cannot answer with. */
export class CpuidProfileError extends RangeError {
  override readonly name = "CpuidProfileError";
}

export class CpuidPolicy {
  readonly #amd: boolean;
  /** Leaf 0 EBX, EDX, ECX. */
  readonly #vendor: Uint32Array;
  /** 12 words of the brand string, 4 per leaf 0x80000002-4 in EAX..EDX order. */
  readonly #brand = new Uint32Array(12);
  readonly #hv: Uint32Array;
  readonly #ext1Eax: number;
  readonly #ext1Edx: number;
  readonly #ext1Ecx: number;
  readonly #leaf1Ecx: number;

  constructor(readonly profile: CpuidProfile) {
    if (profile.vendor.length !== 12) throw new CpuidProfileError(`CPUID vendor must be 12 characters: "${profile.vendor}"`);
    if (profile.brand.length > 47) throw new CpuidProfileError(`CPUID brand string longer than 47 characters: "${profile.brand}"`);
    this.#amd = profile.vendor === "AuthenticAMD";
    this.#vendor = Uint32Array.of(word(profile.vendor, 0), word(profile.vendor, 4), word(profile.vendor, 8));
    for (let i = 0; i < 12; i++) this.#brand[i] = word(profile.brand, i * 4);
    this.#hv = Uint32Array.of(word(HV_SIGNATURE, 0), word(HV_SIGNATURE, 4), word(HV_SIGNATURE, 8));
    // VMX, SVM and XSAVE/OSXSAVE are hidden whatever the profile says.
    this.#leaf1Ecx = (profile.features1Ecx & ~(FEATURE_ECX_VMX | FEATURE_ECX_XSAVE | FEATURE_ECX_OSXSAVE)) >>> 0;
    this.#ext1Ecx = (profile.ext1Ecx & ~EXT_ECX_SVM) >>> 0;
    this.#ext1Edx = profile.ext1Edx >>> 0;
    this.#ext1Eax = this.#amd ? profile.signature : 0;
  }

  /** Fill the exit's eax..edx for its leaf. Allocates nothing. */
  answer(exit: CpuidExit): void {
    const leaf = exit.leaf >>> 0;
    switch (leaf) {
      case 0:
        exit.eax = 1; exit.ebx = this.#vendor[0]!; exit.edx = this.#vendor[1]!; exit.ecx = this.#vendor[2]!;
        return;
      case 1:
        this.#leaf1(exit);
        return;
      case HV_LEAF_BASE:
        exit.eax = HV_LEAF_MAX; exit.ebx = this.#hv[0]!; exit.ecx = this.#hv[1]!; exit.edx = this.#hv[2]!;
        return;
      case HV_LEAF_BASE + 1:
        exit.eax = HV_INTERFACE_VERSION; exit.ebx = 0; exit.ecx = 0; exit.edx = 0;
        return;
      case 0x8000_0000:
        exit.eax = EXT_MAX; exit.ebx = 0; exit.ecx = 0; exit.edx = 0;
        // AMD repeats the vendor string here (APM E.4.1); Intel reserves it (zeros).
        if (this.#amd) { exit.ebx = this.#vendor[0]!; exit.edx = this.#vendor[1]!; exit.ecx = this.#vendor[2]!; }
        return;
      case 0x8000_0001:
        exit.eax = this.#ext1Eax; exit.ebx = 0; exit.ecx = this.#ext1Ecx; exit.edx = this.#ext1Edx;
        return;
      case 0x8000_0005: case 0x8000_0006: case 0x8000_0007:
        // Cache/TLB descriptors and power management: none reported.
        exit.eax = 0; exit.ebx = 0; exit.ecx = 0; exit.edx = 0;
        return;
      case 0x8000_0008:
        exit.eax = ADDRESS_SIZES; exit.ebx = 0; exit.ecx = 0; exit.edx = 0;
        return;
      case 0x8000_0002: case 0x8000_0003: case 0x8000_0004: {
        const b = (leaf - 0x8000_0002) * 4;
        exit.eax = this.#brand[b]!; exit.ebx = this.#brand[b + 1]!; exit.ecx = this.#brand[b + 2]!; exit.edx = this.#brand[b + 3]!;
        return;
      }
    }
    if (this.#amd) { exit.eax = 0; exit.ebx = 0; exit.ecx = 0; exit.edx = 0; }
    else this.#leaf1(exit);
  }

  #leaf1(exit: CpuidExit): void {
    // EBX: brand index 0, CLFLUSH size 0, one logical processor, initial APIC ID 0.
    exit.eax = this.profile.signature; exit.ebx = 0;
    exit.ecx = this.#leaf1Ecx; exit.edx = this.profile.features1Edx;
  }
}

/** The feature words a guest sees, as X86Cpu.cpuidMask takes them (src/x86/cpu.ts CpuidMask). */
export interface GuestFeatureMask { readonly leaf1Edx: number; readonly leaf1Ecx: number; readonly ext1Edx: number }

/**
 * What `policy` reports in CPUID.1 EDX/ECX and CPUID.80000001h EDX, for the cores that run
 * the guest: set as their cpuidMask, a hidden feature is off there too (its CR4 bit or
 * EFER.NXE reserved, SDM Vol. 3A 2.5), not only unreported.
 */
export function guestFeatureMask(policy: CpuidPolicy): GuestFeatureMask {
  const x: CpuidExit = { kind: "cpuid", leaf: 1, subleaf: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
  policy.answer(x);
  const leaf1Edx = x.edx >>> 0, leaf1Ecx = x.ecx >>> 0;
  x.leaf = 0x8000_0001;
  policy.answer(x);
  return { leaf1Edx, leaf1Ecx, ext1Edx: x.edx >>> 0 };
}

// The CPUID answers the monitor gives a guest (CPUID exits). The soft engine is a
// 32-bit core without the later extensions, so the profile is a plain Pentium-class
// one (family 5): vendor by backend, max basic leaf 1, no extended leaves beyond
// 0x80000000. Feature bits (leaf 1 EDX, SDM Vol. 2A table 3-11) report only FPU.
import type { CpuidExit } from "./api.js";

export interface CpuidProfile {
  /** 12 ASCII characters, returned in EBX, EDX, ECX of leaf 0 (SDM Vol. 2A CPUID, leaf 0). */
  readonly vendor: string;
  /** Leaf 1 EAX: stepping 3:0, model 7:4, family 11:8. */
  readonly signature: number;
  readonly features1Edx: number;
  readonly features1Ecx: number;
}

export const FEATURE_FPU = 1 << 0;

export function defaultProfile(backendId: string): CpuidProfile {
  return {
    vendor: backendId === "svm" ? "AuthenticAMD" : "GenuineIntel",
    signature: 0x0000_0520, // family 5, model 2, stepping 0
    features1Edx: FEATURE_FPU,
    features1Ecx: 0,
  };
}

function word(s: string, i: number): number {
  return (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 8) | (s.charCodeAt(i + 2) << 16) | (s.charCodeAt(i + 3) << 24)) >>> 0;
}

export class CpuidPolicy {
  readonly #v0: number;
  readonly #v1: number;
  readonly #v2: number;

  constructor(readonly profile: CpuidProfile) {
    if (profile.vendor.length !== 12) throw new RangeError(`CPUID vendor must be 12 characters: "${profile.vendor}"`);
    this.#v0 = word(profile.vendor, 0);
    this.#v1 = word(profile.vendor, 4);
    this.#v2 = word(profile.vendor, 8);
  }

  /** Fill the exit's eax..edx for its leaf. */
  answer(exit: CpuidExit): void {
    let leaf = exit.leaf >>> 0;
    if (leaf === 0x8000_0000) {
      exit.eax = 0x8000_0000; exit.ebx = 0; exit.ecx = 0; exit.edx = 0;
      return;
    }
    // SDM Vol. 2A CPUID: an input above the maximum returns the highest basic leaf's data.
    if (leaf > 1) leaf = 1;
    if (leaf === 0) {
      exit.eax = 1; exit.ebx = this.#v0; exit.edx = this.#v1; exit.ecx = this.#v2;
    } else {
      exit.eax = this.profile.signature; exit.ebx = 0;
      exit.ecx = this.profile.features1Ecx; exit.edx = this.profile.features1Edx;
    }
  }
}

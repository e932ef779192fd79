// The monitor's answer to RDMSR/WRMSR exits: a table of the MSRs that Linux and GRUB
// touch in early boot (STYLE rule 12) and what the monitor does with each.
//
// Emulated:   IA32_TIME_STAMP_COUNTER, from a time source (the VM's clock) plus an offset a
//             WRMSR sets (SDM Vol. 3B 18.17: writing the TSC sets the counter).
// Stored:     the value is kept and read back (with a writable mask: setting any other bit
//             is #GP, as for reserved bits, SDM Vol. 4 table 2-2), but has no effect on the
//             guest: no MTRR or PAT memory typing, no SYSENTER/SYSCALL targets, no
//             segment bases from MSRs (the soft core is 32-bit, no long mode).
// Fixed:      a constant read; WRMSR is #GP (read-only MSRs, locked IA32_FEATURE_CONTROL).
// Ignored:    a constant read; WRMSR is accepted and dropped (IA32_BIOS_SIGN_ID: Linux writes
//             0 before CPUID to latch the microcode revision, SDM Vol. 3A 10.11.7.1).
// Anything else, and a row of the other vendor, is #GP(0) (SDM Vol. 2 RDMSR/WRMSR: "If
// the value in ECX specifies a reserved or unimplemented MSR address").
//
// Not emulated: a local APIC (IA32_APIC_BASE is stored only; CPUID reports no APIC),
// machine-check banks (IA32_MCG_CAP reports 0 banks), performance counters, x2APIC.

/**
 * The fields of an RDMSR/WRMSR exit the policy uses (api.ts MsrExit has this shape): ECX in
 * `index`, EDX:EAX in `hi`:`lo` (written by WRMSR, filled in for RDMSR).
 */
export interface MsrAccess {
  readonly write: boolean;
  readonly index: number;
  lo: number;
  hi: number;
}

/** What the policy did with an access: completed, or the guest gets #GP(0). */
export type MsrVerdict = "done" | "gp";

export type MsrRowKind = "tsc" | "stored" | "fixed" | "ignored";
export type MsrVendor = "intel" | "amd";

export interface MsrRow {
  readonly name: string;
  readonly kind: MsrRowKind;
  /** The reset value (stored) or the constant read (fixed, ignored): [EAX, EDX]. */
  readonly value?: readonly [number, number];
  /** Stored rows: the bits WRMSR may set; setting any other is #GP. Default: all. */
  readonly writable?: readonly [number, number];
  /** Present on one vendor's CPUs only; the other gets #GP. Default: both. */
  readonly vendor?: MsrVendor;
}

const ALL: readonly [number, number] = [0xffff_ffff, 0xffff_ffff];
const stored = (name: string, value: readonly [number, number] = [0, 0], writable = ALL, vendor?: MsrVendor): MsrRow =>
  ({ name, kind: "stored", value, writable, ...(vendor ? { vendor } : {}) });

/** IA32_MTRR_PHYSBASE0..7 / PHYSMASK0..7 (0x200-0x20F) and the fixed-range MTRRs (SDM Vol. 3A 11.11). */
function mtrrRows(): Array<[number, MsrRow]> {
  const rows: Array<[number, MsrRow]> = [];
  for (let i = 0; i < 8; i++) {
    rows.push([0x200 + 2 * i, stored(`IA32_MTRR_PHYSBASE${i}`)]);
    rows.push([0x201 + 2 * i, stored(`IA32_MTRR_PHYSMASK${i}`)]);
  }
  rows.push([0x250, stored("IA32_MTRR_FIX64K_00000")]);
  rows.push([0x258, stored("IA32_MTRR_FIX16K_80000")]);
  rows.push([0x259, stored("IA32_MTRR_FIX16K_A0000")]);
  for (let i = 0; i < 8; i++) rows.push([0x268 + i, stored(`IA32_MTRR_FIX4K_${(0xc0000 + i * 0x8000).toString(16).toUpperCase()}`)]);
  return rows;
}

/**
 * Every MSR the monitor answers (SDM Vol. 4 table 2-2 for the IA32_ architectural MSRs,
 * APM Vol. 2 appendix A for the AMD ones). Keyed by ECX.
 */
export const MSR_TABLE: ReadonlyMap<number, MsrRow> = new Map<number, MsrRow>([
  [0x10, { name: "IA32_TIME_STAMP_COUNTER", kind: "tsc" }],
  [0x17, { name: "IA32_PLATFORM_ID", kind: "fixed", value: [0, 0], vendor: "intel" }],
  // Base 0xFEE00000, global enable (bit 11), BSP (bit 8): the soft core's reset value. No APIC behind it.
  [0x1b, stored("IA32_APIC_BASE", [0xfee0_0900, 0], [0xffff_f900, 0])],
  // Locked (bit 0), VMX disabled inside and outside SMX: VMX is hidden from the guest.
  [0x3a, { name: "IA32_FEATURE_CONTROL", kind: "fixed", value: [1, 0], vendor: "intel" }],
  // Microcode revision 0 in EDX (AMD: PATCH_LEVEL at the same index).
  [0x8b, { name: "IA32_BIOS_SIGN_ID", kind: "ignored", value: [0, 0] }],
  // 8 variable ranges (VCNT), fixed ranges supported (FIX), no write-combining, no SMRR.
  [0xfe, { name: "IA32_MTRRCAP", kind: "fixed", value: [0x108, 0] }],
  [0x174, stored("IA32_SYSENTER_CS")],
  [0x175, stored("IA32_SYSENTER_ESP")],
  [0x176, stored("IA32_SYSENTER_EIP")],
  // No machine-check banks (count 0), no MCG_CTL.
  [0x179, { name: "IA32_MCG_CAP", kind: "fixed", value: [0, 0] }],
  // RIPV/EIPV/MCIP: only zeros may be written (SDM Vol. 3B 16.3.1.2).
  [0x17a, stored("IA32_MCG_STATUS", [0, 0], [0, 0])],
  [0x1d9, stored("IA32_DEBUGCTL")],
  // BTS unavailable (bit 11), PEBS unavailable (bit 12); fast strings off.
  [0x1a0, stored("IA32_MISC_ENABLE", [0x1800, 0], ALL, "intel")],
  // Power-on value: WB, WT, UC-, UC repeated (SDM Vol. 3A 11.12.4).
  [0x277, stored("IA32_PAT", [0x0007_0406, 0x0007_0406])],
  ...mtrrRows(),
  [0x2ff, stored("IA32_MTRR_DEF_TYPE", [0, 0], [0xcff, 0])],
  // No SCE, LME or NXE: CPUID reports none of them, so every EFER bit is reserved.
  [0xc000_0080, stored("IA32_EFER", [0, 0], [0, 0])],
  [0xc000_0081, stored("IA32_STAR")],
  [0xc000_0082, stored("IA32_LSTAR")],
  [0xc000_0083, stored("IA32_CSTAR")],
  [0xc000_0084, stored("IA32_FMASK")],
  [0xc000_0100, stored("IA32_FS_BASE")],
  [0xc000_0101, stored("IA32_GS_BASE")],
  [0xc000_0102, stored("IA32_KERNEL_GS_BASE")],
  [0xc000_0103, stored("IA32_TSC_AUX", [0, 0], [0xffff_ffff, 0])],
  [0xc001_0010, stored("SYSCFG", [0, 0], ALL, "amd")],
  [0xc001_0015, stored("HWCR", [0, 0], ALL, "amd")],
  // SVM disabled (SVMDIS, bit 4) and locked (bit 3): SVM is hidden from the guest (APM Vol. 2 15.30.1).
  [0xc001_0114, { name: "VM_CR", kind: "fixed", value: [0x18, 0], vendor: "amd" }],
]);

/** The persistent part of the policy: stored MSR values by "0x" hex index, and the TSC offset. */
export interface MsrPolicyState {
  readonly v: 1;
  values: Record<string, [number, number]>;
  /** Guest TSC minus the time source, in ticks. */
  tscOffset: number;
}

/** Where guest #GPs are reported (STYLE rule 2); the default does nothing. */
export interface MsrPolicyEvents {
  gp(index: number, write: boolean): void;
}
export const NO_MSR_EVENTS: MsrPolicyEvents = { gp() {} };

export interface MsrPolicyDeps {
  readonly vendor: MsrVendor;
  /** The guest's time-stamp counter before the offset (e.g. the VM clock in ns: a 1 GHz TSC). None: TSC reads 0 + offset. */
  readonly tsc?: () => number;
  readonly events?: MsrPolicyEvents;
}

/** A saved state that does not fit this policy. */
export class MsrStateError extends Error {
  override readonly name = "MsrStateError";
}

const TWO32 = 4294967296;
const isU32 = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= 0xffff_ffff;
const hex = (index: number) => `0x${index.toString(16)}`;

export class MsrPolicy {
  /** Stored rows present on this vendor: index → [EAX, EDX]. */
  readonly #values = new Map<number, Uint32Array>();
  readonly #rows = new Map<number, MsrRow>();
  readonly #tsc: () => number;
  readonly #events: MsrPolicyEvents;
  #tscOffset = 0;

  constructor(deps: MsrPolicyDeps) {
    this.#tsc = deps.tsc ?? (() => 0);
    this.#events = deps.events ?? NO_MSR_EVENTS;
    for (const [index, row] of MSR_TABLE) {
      if (row.vendor !== undefined && row.vendor !== deps.vendor) continue;
      this.#rows.set(index, row);
      if (row.kind === "stored") this.#values.set(index, Uint32Array.of(row.value![0], row.value![1]));
    }
  }

  /** The vendor of a backend id, as CPUID reports it (cpuid.ts defaultProfile). */
  static vendorOf(backendId: string): MsrVendor {
    return backendId === "svm" ? "amd" : "intel";
  }

  /**
   * Answer one access. A read fills `lo`/`hi` (EDX:EAX); the backend completes it at the
   * next run. "gp": the access did nothing and the guest gets #GP(0). Allocates nothing.
   */
  handle(exit: MsrAccess): MsrVerdict {
    const index = exit.index >>> 0;
    const row = this.#rows.get(index);
    if (row === undefined) return this.#gp(index, exit.write);
    switch (row.kind) {
      case "tsc": {
        if (exit.write) {
          this.#tscOffset = (exit.hi >>> 0) * TWO32 + (exit.lo >>> 0) - this.#tsc();
        } else {
          const t = Math.max(0, Math.floor(this.#tsc() + this.#tscOffset));
          exit.lo = t >>> 0;
          exit.hi = Math.floor(t / TWO32) >>> 0;
        }
        return "done";
      }
      case "stored": {
        const v = this.#values.get(index)!;
        if (exit.write) {
          const w = row.writable!;
          if ((exit.lo & ~w[0]) !== 0 || (exit.hi & ~w[1]) !== 0) return this.#gp(index, true);
          v[0] = exit.lo; v[1] = exit.hi;
        } else {
          exit.lo = v[0]!; exit.hi = v[1]!;
        }
        return "done";
      }
      case "fixed":
        if (exit.write) return this.#gp(index, true);
        exit.lo = row.value![0]; exit.hi = row.value![1];
        return "done";
      case "ignored":
        if (!exit.write) { exit.lo = row.value![0]; exit.hi = row.value![1]; }
        return "done";
    }
  }

  #gp(index: number, write: boolean): MsrVerdict {
    this.#events.gp(index, write);
    return "gp";
  }

  saveState(): MsrPolicyState {
    const values: Record<string, [number, number]> = {};
    for (const [index, v] of this.#values) values[hex(index)] = [v[0]!, v[1]!];
    return { v: 1, values, tscOffset: this.#tscOffset };
  }

  /** Rebuild a policy from `saveState()` output; every key must be a stored MSR of this vendor. */
  static fromState(state: MsrPolicyState, deps: MsrPolicyDeps): MsrPolicy {
    if (state === null || typeof state !== "object" || state.v !== 1) throw new MsrStateError(`MSR state: unsupported version ${String((state as { v?: unknown } | null)?.v)}`);
    if (typeof state.tscOffset !== "number" || !Number.isFinite(state.tscOffset)) throw new MsrStateError("MSR state: tscOffset must be a finite number");
    const p = new MsrPolicy(deps);
    for (const [key, pair] of Object.entries(state.values ?? {})) {
      const index = /^0x[0-9a-f]+$/.test(key) ? parseInt(key, 16) : NaN;
      const v = p.#values.get(index);
      if (v === undefined) throw new MsrStateError(`MSR state: ${key} is not a stored MSR of this ${deps.vendor} policy`);
      if (!Array.isArray(pair) || pair.length !== 2 || !isU32(pair[0]) || !isU32(pair[1])) {
        throw new MsrStateError(`MSR state: ${key} must be [lo, hi] with 32-bit unsigned values`);
      }
      v[0] = pair[0]; v[1] = pair[1];
    }
    p.#tscOffset = state.tscOffset;
    return p;
  }
}

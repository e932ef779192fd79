// Shared by the VMRUN-check tests: a VMCB that passes every check, and one row per
// check that breaks exactly that rule. Not a test file itself.
import { B, Efer, EventInj, F, Misc1, Misc2, Vmcb, VMCB_BYTES } from "../vmcb.js";
import { SOFT_SVM_CAPS, type SvmCaps } from "./vmrun-checks.js";

export const LONG_MODE_CAPS: SvmCaps = { ...SOFT_SVM_CAPS, longMode: true, physAddrBits: 48 };
const CR0_PE = 1, CR0_PG = 1 << 31, CR0_NW = 1 << 29, CR4_PAE = 1 << 5;

/** Make `v` pass every check: real mode, the intercepts hvkit requires, NPT on N_CR3 = `nCr3`. */
export function makeValid(v: Vmcb, nCr3: number): Vmcb {
  v.write(F.EFER, Efer.SVME);
  v.write(F.CR0, 0x10);
  v.write(F.INTERCEPT_MISC1, Misc1.INTR | Misc1.SHUTDOWN);
  v.write(F.INTERCEPT_MISC2, Misc2.VMRUN);
  v.write(F.GUEST_ASID, 1);
  v.setBits(B.NP_ENABLE, 1);
  v.write(F.N_CR3, nCr3);
  v.writeSegment(F.CS, { selector: 0, base: 0, limit: 0xffff, attrib: 0x9b });
  return v;
}

export function validVmcb(nCr3: number): Vmcb {
  return makeValid(new Vmcb(new Uint8Array(VMCB_BYTES)), nCr3);
}

export interface BrokenRow {
  check: string;
  /** Engine capabilities the rule needs to be reachable (default: the soft engine's). */
  caps?: SvmCaps;
  breakIt(v: Vmcb): void;
}

/** Each row breaks exactly one rule of a valid VMCB. */
export const BROKEN_ROWS: BrokenRow[] = [
  { check: "efer.svme", breakIt: (v) => v.write(F.EFER, 0) },
  { check: "cr0.cd-nw", breakIt: (v) => v.write(F.CR0, 0x10 | CR0_NW) },
  { check: "cr0.upper", breakIt: (v) => v.write64(F.CR0, 0x10, 1) },
  { check: "cr3.mbz", breakIt: (v) => v.write64(F.CR3, 0, 1) },
  { check: "cr4.mbz", breakIt: (v) => v.write(F.CR4, 1 << 13) },
  { check: "dr6.upper", breakIt: (v) => v.write64(F.DR6, 0xffff0ff0, 1) },
  { check: "dr7.upper", breakIt: (v) => v.write64(F.DR7, 0x400, 1) },
  { check: "efer.mbz", breakIt: (v) => v.write(F.EFER, Efer.SVME | (1 << 9)) },
  { check: "efer.long-mode-unsupported", breakIt: (v) => v.write(F.EFER, Efer.SVME | Efer.LME) },
  {
    check: "efer.lme-pg-no-pae", caps: LONG_MODE_CAPS,
    breakIt: (v) => { v.write(F.EFER, Efer.SVME | Efer.LME); v.write(F.CR0, CR0_PG | CR0_PE); },
  },
  {
    check: "efer.lme-pg-no-pe", caps: LONG_MODE_CAPS,
    breakIt: (v) => { v.write(F.EFER, Efer.SVME | Efer.LME); v.write(F.CR0, CR0_PG); v.write(F.CR4, CR4_PAE); },
  },
  {
    check: "cs.l-and-d", caps: LONG_MODE_CAPS,
    breakIt: (v) => {
      v.write(F.EFER, Efer.SVME | Efer.LME | Efer.LMA);
      v.write(F.CR0, CR0_PG | CR0_PE);
      v.write(F.CR4, CR4_PAE);
      v.writeSegment(F.CS, { selector: 8, base: 0, limit: 0xffffffff, attrib: 0xe09b }); // G, D, L, code
    },
  },
  { check: "intercept.vmrun", breakIt: (v) => v.write(F.INTERCEPT_MISC2, 0) },
  { check: "iopm.range", breakIt: (v) => v.write(F.IOPM_BASE_PA, 0xfffff000) },
  { check: "msrpm.range", breakIt: (v) => v.write(F.MSRPM_BASE_PA, 0xfffff000) },
  { check: "eventinj.type", breakIt: (v) => v.write(F.EVENTINJ, (EventInj.V | (1 << EventInj.TYPE_SHIFT) | 0x20) >>> 0) },
  { check: "eventinj.exception-vector", breakIt: (v) => v.write(F.EVENTINJ, (EventInj.V | (3 << EventInj.TYPE_SHIFT) | 2) >>> 0) },
  { check: "asid.zero", breakIt: (v) => v.write(F.GUEST_ASID, 0) },
  // PAT power-on value 0007040600070406h with PA6 (byte 6) made type 2 (reserved).
  { check: "g-pat.invalid", breakIt: (v) => v.write64(F.G_PAT, 0x00070406, 0x00020406) },
  { check: "hvkit.np-enable", breakIt: (v) => v.setBits(B.NP_ENABLE, 0) },
  { check: "hvkit.n-cr3", breakIt: (v) => v.write(F.N_CR3, v.read(F.N_CR3) + 0x1000) },
  {
    // IOIO_PROT with IOPM_BASE_PA one page off whatever frame is bound (or none).
    check: "hvkit.iopm",
    breakIt: (v) => { v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.IOIO_PROT); v.write(F.IOPM_BASE_PA, v.read(F.IOPM_BASE_PA) + 0x1000); },
  },
  { check: "hvkit.msrpm", breakIt: (v) => v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.MSR_PROT) },
  { check: "hvkit.intercept-intr", breakIt: (v) => v.write(F.INTERCEPT_MISC1, Misc1.SHUTDOWN) },
  { check: "hvkit.intercept-shutdown", breakIt: (v) => v.write(F.INTERCEPT_MISC1, Misc1.INTR) },
];

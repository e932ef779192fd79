// Disagreements where QEMU, not the SDM, is wrong. Each entry names the SDM section
// that decides, says why QEMU differs, and matches exactly the field differences it
// explains. The comparer counts a disagreement as explained only when every differing
// field of it is matched by an entry here; explained ones are counted and listed,
// never hidden.
import type { SeqMeta, Variant } from "./guest.js";
import { NO_VECTOR, R } from "./layout.js";

export interface FieldDiff {
  field: string;
  /** Index into the record (layout.ts R). */
  index: number;
  qemu: number;
  hvkit: number;
}

export interface ExplainContext {
  variant: Variant;
  seq: SeqMeta;
  qemu: Uint32Array;
  hvkit: Uint32Array;
}

export interface Explained {
  id: string;
  /** The SDM (or APM) section that decides, e.g. "SDM Vol. 3A 17.3.1.1". */
  sdm: string;
  /** Why QEMU differs from hardware here. */
  why: string;
  /** True when this entry explains this field difference in this sequence. */
  matches(d: FieldDiff, ctx: ExplainContext): boolean;
}

/** Flags the generator marked as known-wrong in QEMU at the point the record describes. */
function suspectAtRecord(ctx: ExplainContext): number {
  const rec = ctx.qemu;
  if (rec[R.Vector] === NO_VECTOR) return ctx.seq.suspectEnd;
  const k = ctx.seq.insns.findIndex((i) => i.addr === rec[R.FaultEip]);
  return k >= 0 ? ctx.seq.insns[k].suspectBefore : ctx.seq.suspectEnd;
}

export const EXPLAINED: readonly Explained[] = [
  {
    id: "qemu-cmpxchg8b-flags",
    sdm: "SDM Vol. 2A, CMPXCHG8B/CMPXCHG16B, Flags Affected: ZF is set or cleared; CF, PF, AF, SF and OF are unaffected",
    why: "QEMU 7.2 TCG rebuilds the other arithmetic flags from a stale lazy-flags state (the translator's cc_op is not " +
      "written back before the flags are materialised; cf. unicorn-engine/unicorn PR #2373 on gen_compute_eflags), so " +
      "CF/PF/AF/SF/OF come out wrong and other EFLAGS bits (reserved ones, even bits 16-31) can read as 1 until the next flag writer. hvkit keeps them, as the SDM says.",
    matches: (d, ctx) => d.index === R.Eflags && ((d.qemu ^ d.hvkit) & ~suspectAtRecord(ctx)) === 0,
  },
];

// Compares QEMU's and hvkit's records of one guest, sequence by sequence, masking
// only what the SDM leaves undefined: arithmetic flags an instruction leaves
// undefined (tracked per instruction boundary by the generator), and stack bytes
// below ESP after a fault (the exception frame and handler pushes live there).
import { EXPLAINED } from "./explained.js";
import type { ExplainContext, FieldDiff } from "./explained.js";
import type { Guest, SeqMeta } from "./guest.js";
import type { RunResult } from "./hvkit.js";
import { ESP0, FIELD_NAMES, NO_VECTOR, R, RECORD_DWORDS } from "./layout.js";
import { parseDump } from "./records.js";

export type DisagreementKind = "fields" | "missing-hvkit" | "extra-hvkit";

export interface Disagreement {
  variant: string;
  seed: number;
  seq: number;
  kind: DisagreementKind;
  diffs: FieldDiff[];
  /** Ids of the explained.ts entries that cover every diff, or null when unexplained. */
  explainedBy: string[] | null;
  meta: SeqMeta;
  /** hvkit's run status when records are missing. */
  runDetail: string;
}

export interface GuestComparison {
  sequences: number;
  disagreements: Disagreement[];
  /** QEMU did not produce a complete record stream: a harness or generator problem, not a core one. */
  referenceFailure: string | null;
  hvkitStatus: RunResult["status"];
}

const hex = (v: number): string => "0x" + (v >>> 0).toString(16);

/** Flags undefined at the point the record describes: the faulting instruction's boundary, or the end. */
function undefinedFlags(meta: SeqMeta, rec: Uint32Array): number {
  if (rec[R.Vector] === NO_VECTOR) return meta.undefEnd;
  const eip = rec[R.FaultEip];
  const k = meta.insns.findIndex((i) => i.addr === eip);
  if (k >= 0) return meta.insns[k].undefBefore;
  if (eip === meta.endAddr) return meta.undefEnd;
  // A fault outside the listed instructions (a handler, a ring-3 body): everything that was ever undefined.
  return meta.insns.reduce((m, i) => m | i.undefBefore, meta.undefEnd);
}

export function compareRecords(guest: Guest, meta: SeqMeta, q: Uint32Array, h: Uint32Array): FieldDiff[] {
  const flagMask = ~(undefinedFlags(meta, q) | undefinedFlags(meta, h)) >>> 0;
  const faulted = q[R.Vector] !== NO_VECTOR || h[R.Vector] !== NO_VECTOR;
  const stackFloor = Math.min(q[R.Esp] & 0xffff, h[R.Esp] & 0xffff);
  const diffs: FieldDiff[] = [];
  for (let i = R.Eax; i < RECORD_DWORDS; i++) {
    let a = q[i], b = h[i];
    if (i === R.Eflags) { a &= flagMask; b &= flagMask; }
    if (i >= R.Extra && faulted && guest.variant.extrasAreStack) {
      const off = ESP0 - 0x50 + 4 * (i - R.Extra);
      if (off < stackFloor) continue;
    }
    if (a !== b) diffs.push({ field: FIELD_NAMES[i], index: i, qemu: q[i], hvkit: h[i] });
  }
  return diffs;
}

function explain(guest: Guest, meta: SeqMeta, q: Uint32Array, h: Uint32Array, diffs: FieldDiff[]): string[] | null {
  const ctx: ExplainContext = { variant: guest.variant, seq: meta, qemu: q, hvkit: h };
  const ids = new Set<string>();
  for (const d of diffs) {
    const e = EXPLAINED.find((x) => x.matches(d, ctx));
    if (!e) return null;
    ids.add(e.id);
  }
  return [...ids];
}

export function compareGuest(guest: Guest, qemu: RunResult, hvkit: RunResult): GuestComparison {
  const qd = parseDump(qemu.output), hd = parseDump(hvkit.output);
  const n = guest.seqs.length;
  let referenceFailure: string | null = null;
  if (qemu.status !== "exit" || qd.endCount !== n || qd.records.size !== n || qd.garbage) {
    referenceFailure = `QEMU ${qemu.status} with ${qd.records.size}/${n} records, end marker ${qd.endCount ?? "missing"}, ${qd.garbage} stray bytes. ${qemu.detail}`;
  }
  const out: Disagreement[] = [];
  for (const meta of guest.seqs) {
    const q = qd.records.get(meta.index), h = hd.records.get(meta.index);
    if (!q) continue; // counted in referenceFailure
    const base = { variant: guest.variant.name, seed: guest.seed, seq: meta.index, meta, runDetail: "" };
    if (!h) {
      out.push({ ...base, kind: "missing-hvkit", diffs: [], explainedBy: null, runDetail: `hvkit ${hvkit.status}: ${hvkit.detail}` });
      continue;
    }
    const diffs = compareRecords(guest, meta, q, h);
    if (diffs.length) out.push({ ...base, kind: "fields", diffs, explainedBy: explain(guest, meta, q, h, diffs) });
  }
  if (hd.garbage && !out.length) {
    out.push({
      variant: guest.variant.name, seed: guest.seed, seq: -1, kind: "extra-hvkit", diffs: [], explainedBy: null,
      meta: guest.seqs[0], runDetail: `hvkit wrote ${hd.garbage} bytes that are not records`,
    });
  }
  return { sequences: n, disagreements: out, referenceFailure, hvkitStatus: hvkit.status };
}

/** A disagreement as text: where it is, how to reproduce it, the instructions, the differing fields. */
export function describe(d: Disagreement): string {
  const lines = [`${d.variant} seed ${hex(d.seed)} sequence ${d.seq} (${d.meta.note}): ${d.kind}` +
    (d.explainedBy ? ` [explained: ${d.explainedBy.join(", ")}]` : "")];
  lines.push(`  reproduce: npx tsx tests/diff/main.ts --variant ${d.variant} --seed ${hex(d.seed)} --seq ${d.seq}`);
  if (d.runDetail) lines.push(`  ${d.runDetail.split("\n")[0]}`);
  for (const i of d.meta.insns) {
    const bytes = i.bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ");
    lines.push(`    ${i.addr.toString(16).padStart(5, "0")}: ${bytes.padEnd(30)} ${i.asm.replace(/\n\s*/g, " ; ")}`);
  }
  for (const f of d.diffs) {
    let extra = "";
    if (f.index === R.Eflags) extra = `  (xor ${hex(f.qemu ^ f.hvkit)})`;
    if (f.index === R.Vector) extra = `  (${vecName(f.qemu)} vs ${vecName(f.hvkit)})`;
    lines.push(`  ${f.field.padEnd(11)} qemu ${hex(f.qemu).padEnd(11)} hvkit ${hex(f.hvkit)}${extra}`);
  }
  return lines.join("\n");
}

const VEC_NAMES = ["#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "-", "#MF", "#AC", "#MC", "#XM"];
function vecName(v: number): string {
  if (v === NO_VECTOR) return "none";
  return v < VEC_NAMES.length ? VEC_NAMES[v] : `int ${hex(v)}`;
}

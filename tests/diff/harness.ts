// Runs variants: builds each guest, runs it on QEMU (in parallel, cached) and on
// hvkit's core, compares, and summarises.
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { compareGuest, describe as describeDisagreement } from "./compare.js";
import type { Disagreement } from "./compare.js";
import { buildGuest } from "./guest.js";
import type { Variant } from "./guest.js";
import { DEFAULT_BUDGET, runHvkit } from "./hvkit.js";
import type { RunResult } from "./hvkit.js";
import { fnv1a } from "./prng.js";
import { runQemu } from "./qemu.js";

/** Bump when the generator's output for a seed changes (it keys the QEMU cache with the image hash). */
export const GENERATOR_VERSION = 4;
export const DEFAULT_CACHE_DIR = join(process.cwd(), ".cache", "diff");

/** The seed of guest `index` of a variant: each variant has its own stream. */
export function guestSeed(variant: Variant, base: number, index: number): number {
  return fnv1a(`${variant.name}/${base >>> 0}/${index}`);
}

export interface DiffOptions {
  /** Guests per variant; or explicit seeds per variant name. */
  plan: Array<{ variant: Variant; seeds: number[] }>;
  parallel?: number;
  timeoutMs?: number;
  cacheDir?: string | null;
  budget?: number;
  log?: (line: string) => void;
}

export interface VariantSummary {
  variant: Variant;
  guests: number;
  sequences: number;
  disagreements: number;
  explained: number;
  referenceFailures: string[];
  hvkitStatus: Record<string, number>;
  qemuMs: number;
  qemuCached: number;
  hvkitInsns: number;
}

export interface DiffReport {
  variants: VariantSummary[];
  disagreements: Disagreement[];
  guests: number;
  sequences: number;
  unexplained: number;
  explained: number;
}

export function planFor(variants: readonly Variant[], sequencesPerVariant: number, base = 0): DiffOptions["plan"] {
  return variants.map((v) => {
    const guests = Math.max(1, Math.ceil(sequencesPerVariant / v.seqsPerGuest));
    return { variant: v, seeds: Array.from({ length: guests }, (_, i) => guestSeed(v, base, i)) };
  });
}

export async function runDiff(opt: DiffOptions): Promise<DiffReport> {
  const parallel = opt.parallel ?? Math.max(1, Math.min(8, availableParallelism()));
  const timeoutMs = opt.timeoutMs ?? 60_000;
  const cacheDir = opt.cacheDir === undefined ? DEFAULT_CACHE_DIR : opt.cacheDir;
  const jobs = opt.plan.flatMap(({ variant, seeds }) => seeds.map((seed) => ({ variant, seed })));
  const summaries = new Map<string, VariantSummary>(opt.plan.map(({ variant }) => [variant.name, {
    variant, guests: 0, sequences: 0, disagreements: 0, explained: 0, referenceFailures: [], hvkitStatus: {},
    qemuMs: 0, qemuCached: 0, hvkitInsns: 0,
  }]));
  const all: Disagreement[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const { variant, seed } = jobs[next++];
      const guest = buildGuest(variant, seed);
      const qemuP = runQemu(guest.image, GENERATOR_VERSION, { timeoutMs, cacheDir });
      const h: RunResult = runHvkit(guest.image, opt.budget ?? DEFAULT_BUDGET);
      const q = await qemuP;
      const c = compareGuest(guest, q, h);
      const s = summaries.get(variant.name)!;
      s.guests++;
      s.sequences += c.sequences;
      s.hvkitStatus[c.hvkitStatus] = (s.hvkitStatus[c.hvkitStatus] ?? 0) + 1;
      if (q.cached) s.qemuCached++; else s.qemuMs += q.work;
      s.hvkitInsns += h.work;
      if (c.referenceFailure) s.referenceFailures.push(`${variant.name} seed 0x${seed.toString(16)}: ${c.referenceFailure}`);
      for (const d of c.disagreements) {
        if (d.explainedBy) s.explained++; else s.disagreements++;
        all.push(d);
      }
      opt.log?.(`${variant.name} seed 0x${seed.toString(16)}: ${c.sequences} sequences, ` +
        `${c.disagreements.filter((d) => !d.explainedBy).length} disagreements, hvkit ${h.status}${q.cached ? ", qemu cached" : ""}` +
        (c.referenceFailure ? `, REFERENCE FAILURE: ${c.referenceFailure}` : ""));
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  const variants = [...summaries.values()];
  return {
    variants,
    disagreements: all,
    guests: variants.reduce((a, s) => a + s.guests, 0),
    sequences: variants.reduce((a, s) => a + s.sequences, 0),
    unexplained: variants.reduce((a, s) => a + s.disagreements, 0),
    explained: variants.reduce((a, s) => a + s.explained, 0),
  };
}

/** The summary line, a per-variant table, and the first `detail` disagreements of each kind. */
export function formatReport(r: DiffReport, detail = 5): string {
  const refs = r.variants.reduce((a, s) => a + s.referenceFailures.length, 0);
  const lines = [`diff: ${r.guests} guests, ${r.sequences} sequences, ${r.unexplained} disagreements` +
    ` (${r.explained} explained, ${refs} reference failures)`];
  lines.push("variant        needs                     asserted guests  seqs  disagree explained hvkit runs");
  for (const s of r.variants) {
    const runs = Object.entries(s.hvkitStatus).map(([k, v]) => `${k}:${v}`).join(" ");
    lines.push(`${s.variant.name.padEnd(14)} ${(s.variant.needs.join(", ") || "-").padEnd(25)} ${(s.variant.asserted ? "yes" : "no").padEnd(8)} ` +
      `${String(s.guests).padStart(6)} ${String(s.sequences).padStart(5)} ${String(s.disagreements).padStart(9)} ${String(s.explained).padStart(9)} ${runs}`);
  }
  for (const s of r.variants) for (const f of s.referenceFailures.slice(0, 3)) lines.push(`reference failure: ${f}`);
  const unexplained = r.disagreements.filter((d) => !d.explainedBy);
  // The first few of each variant, so one broken variant does not hide the others.
  const shown: Disagreement[] = [];
  for (const s of r.variants) shown.push(...unexplained.filter((d) => d.variant === s.variant.name).slice(0, detail));
  for (const d of shown) lines.push("", describeDisagreement(d));
  const explained = r.disagreements.filter((d) => d.explainedBy);
  if (explained.length) {
    lines.push("", "explained disagreements:");
    const byId = new Map<string, number>();
    for (const d of explained) for (const id of d.explainedBy!) byId.set(id, (byId.get(id) ?? 0) + 1);
    for (const [id, n] of byId) lines.push(`  ${id}: ${n}`);
  }
  return lines.join("\n");
}

// The full differential run of issue 7: at least 20,000 generated sequences, shared
// evenly across the variants (tests/diff/variants.ts), on QEMU and on hvkit's core. An
// asserted variant must have zero unexplained disagreements and complete QEMU runs; a
// variant not yet asserted is reported as skipped with its counts. Skips with a reason
// when QEMU or NASM is missing. QEMU results are cached in .cache/diff (gitignored).
import { execFileSync } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { formatReport, planFor, runDiff } from "../diff/harness.js";
import type { DiffReport } from "../diff/harness.js";
import { qemuVersion } from "../diff/qemu.js";
import { VARIANTS } from "../diff/variants.js";

const TOTAL = 20_000;

function missingTool(): string | null {
  if (!qemuVersion()) return "qemu-system-i386 not installed (Debian package qemu-system-x86)";
  try { execFileSync("nasm", ["-v"], { stdio: "ignore" }); } catch { return "nasm not installed"; }
  return null;
}
const missing = missingTool();
if (missing) console.log(`diff-full: skipping: ${missing}`);

describe(`differential run against QEMU (${TOTAL} sequences)`, () => {
  let report: DiffReport | null = null;
  beforeAll(async () => {
    if (missing) return;
    report = await runDiff({ plan: planFor(VARIANTS, Math.ceil(TOTAL / VARIANTS.length)) });
    console.log(formatReport(report, 3));
  }, 40 * 60_000);

  it("runs at least 20,000 sequences", (ctx) => {
    if (!report) return ctx.skip(missing ?? "no report");
    expect(report.sequences).toBeGreaterThanOrEqual(TOTAL);
  });

  for (const v of VARIANTS) {
    it(`${v.name}: no unexplained disagreement, every QEMU run complete`, (ctx) => {
      if (!report) return ctx.skip(missing ?? "no report");
      const s = report.variants.find((x) => x.variant.name === v.name)!;
      const unexplained = report.disagreements.filter((d) => d.variant === v.name && !d.explainedBy);
      if (!v.asserted) {
        return ctx.skip(`${v.name} is not asserted yet: ${unexplained.length} unexplained disagreements, ` +
          `${s.referenceFailures.length} reference failures`);
      }
      expect(s.referenceFailures, `${v.name}: QEMU runs`).toEqual([]);
      expect(unexplained.map((d) => `seed 0x${d.seed.toString(16)} seq ${d.seq}: ${d.diffs.map((f) => f.field).join(",") || d.kind}`),
        `${v.name}: unexplained disagreements`).toEqual([]);
    });
  }
});

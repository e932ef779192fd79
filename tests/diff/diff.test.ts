// The differential harness in the default suite: a modest number of generated
// sequences on QEMU and on hvkit's core. Asserted variants (variants.ts `asserted`)
// must have zero unexplained disagreements and complete QEMU runs; the others are run
// and their counts printed. Skips with a reason when QEMU or NASM is missing.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { compareGuest } from "./compare.js";
import { EXPLAINED } from "./explained.js";
import { buildGuest } from "./guest.js";
import { formatReport, planFor, runDiff } from "./harness.js";
import { runHvkit } from "./hvkit.js";
import { R, RECORD_BYTES } from "./layout.js";
import { qemuVersion } from "./qemu.js";
import { VARIANTS, variantByName } from "./variants.js";

function nasmMissing(): boolean {
  try { execFileSync("nasm", ["-v"], { stdio: "ignore" }); return false; } catch { return true; }
}
const noNasm = nasmMissing();

describe("diff harness: generator and comparer (no QEMU needed)", () => {
  it("the README lists every explained difference by id, and no other", () => {
    const readme = readFileSync(new URL("./README.md", import.meta.url), "utf8");
    const listed = [...readme.matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map((m) => m[1]);
    expect(listed).toEqual(EXPLAINED.map((e) => e.id));
  });

  const v = variantByName("real16-alu")!;
  it("builds the same image for the same seed and a different one for another seed", (ctx) => {
    if (noNasm) ctx.skip("nasm not installed");
    const a = buildGuest(v, 7), b = buildGuest(v, 7), c = buildGuest(v, 8);
    expect(a.hash).toBe(b.hash);
    expect(c.hash).not.toBe(a.hash);
  });

  it("reports a changed register, masks an undefined flag, and reports a missing record", (ctx) => {
    if (noNasm) ctx.skip("nasm not installed");
    const g = buildGuest(v, 11);
    const run = runHvkit(g.image);
    expect(run.status).toBe("exit");
    expect(compareGuest(g, run, run).disagreements).toEqual([]);
    const bad = run.output.slice();
    const dv = new DataView(bad.buffer);
    dv.setUint32(3 * RECORD_BYTES + R.Ebx * 4, dv.getUint32(3 * RECORD_BYTES + R.Ebx * 4, true) ^ 1, true);
    const d = compareGuest(g, run, { ...run, output: bad }).disagreements;
    expect(d.map((x) => [x.seq, x.diffs.map((f) => f.field)])).toEqual([[3, ["ebx"]]]);
    // A flag left undefined at the end of a sequence may differ without a disagreement.
    const k = g.seqs.findIndex((s) => s.undefEnd !== 0 && s.insns.length > 0);
    if (k >= 0) {
      const masked = run.output.slice();
      const mv = new DataView(masked.buffer);
      const rec = masked.indexOf(0) >= 0 ? findRecord(masked, k) : -1;
      const bit = g.seqs[k].undefEnd & -g.seqs[k].undefEnd;
      // Only when the record is not a fault record (a fault uses the faulting boundary's mask).
      if (rec >= 0 && mv.getUint32(rec + R.Vector * 4, true) === 0xffffffff) {
        mv.setUint32(rec + R.Eflags * 4, mv.getUint32(rec + R.Eflags * 4, true) ^ bit, true);
        expect(compareGuest(g, run, { ...run, output: masked }).disagreements).toEqual([]);
      }
    }
    const cut = { ...run, output: run.output.slice(0, 5 * RECORD_BYTES) };
    const missing = compareGuest(g, run, cut).disagreements;
    expect(missing.length).toBe(g.seqs.length - 5);
    expect(missing.every((x) => x.kind === "missing-hvkit")).toBe(true);
  });
});

function findRecord(bytes: Uint8Array, seq: number): number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let p = 0; p + RECORD_BYTES <= bytes.length; p += RECORD_BYTES) if (dv.getUint32(p + 4, true) === seq) return p;
  return -1;
}

describe("diff harness: hvkit against QEMU", () => {
  it("asserted variants agree with QEMU (one guest each, about 700 sequences; counts printed for the others)", async (ctx) => {
    if (!qemuVersion()) ctx.skip("qemu-system-i386 not installed (Debian package qemu-system-x86)");
    if (noNasm) ctx.skip("nasm not installed");
    // One guest of every variant; the full run (tests/soak/diff-full.soak.test.ts) has 20,000.
    const plan = [
      ...planFor(VARIANTS.filter((v) => v.asserted), 1),
      ...planFor(VARIANTS.filter((v) => !v.asserted), 1),
    ];
    const report = await runDiff({ plan });
    console.log(formatReport(report, 2));
    for (const s of report.variants.filter((x) => x.variant.asserted)) {
      expect(s.referenceFailures, `${s.variant.name}: QEMU runs`).toEqual([]);
      const unexplained = report.disagreements.filter((d) => d.variant === s.variant.name && !d.explainedBy);
      expect(unexplained.map((d) => `seed 0x${d.seed.toString(16)} seq ${d.seq}: ${d.diffs.map((f) => f.field).join(",") || d.kind}`),
        `${s.variant.name}: unexplained disagreements`).toEqual([]);
    }
  }, 300_000);
});

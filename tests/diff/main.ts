// Entry point of the full differential run (npm run diff):
//   npx tsx tests/diff/main.ts [--sequences N] [--variant NAME[,NAME]] [--seed S [--seq K]]
//                              [--base B] [--parallel P] [--no-cache] [--detail D] [--asm FILE]
// Exits 1 when an asserted variant has an unexplained disagreement or any variant a
// reference (QEMU) failure; 2 when QEMU or NASM is missing.
import { writeFileSync } from "node:fs";
import { describe as describeDisagreement } from "./compare.js";
import { guestSource } from "./guest.js";
import { formatReport, planFor, runDiff } from "./harness.js";
import type { DiffOptions } from "./harness.js";
import { qemuVersion } from "./qemu.js";
import { VARIANTS, variantByName } from "./variants.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const flag = (name: string): boolean => process.argv.includes(`--${name}`);

async function main(): Promise<number> {
  if (!qemuVersion()) {
    console.error("diff: qemu-system-i386 not found (Debian package qemu-system-x86); nothing run");
    return 2;
  }
  const names = arg("variant")?.split(",");
  const variants = names ? names.map((n) => {
    const v = variantByName(n);
    if (!v) throw new Error(`unknown variant "${n}"; known: ${VARIANTS.map((x) => x.name).join(", ")}`);
    return v;
  }) : [...VARIANTS];
  const seedArg = arg("seed");
  let plan: DiffOptions["plan"];
  if (seedArg !== undefined) {
    const seed = Number(seedArg) >>> 0;
    plan = variants.map((variant) => ({ variant, seeds: [seed] }));
    const asm = arg("asm");
    if (asm) {
      writeFileSync(asm, guestSource(variants[0], seed, asm + ".map").source);
      console.log(`wrote ${asm}`);
    }
  } else {
    // 20,000 sequences by default, shared evenly across the variants.
    const total = Number(arg("sequences") ?? 20_000);
    plan = planFor(variants, Math.ceil(total / variants.length), Number(arg("base") ?? 0));
  }
  const report = await runDiff({
    plan,
    parallel: arg("parallel") ? Number(arg("parallel")) : undefined,
    cacheDir: flag("no-cache") ? null : undefined,
    log: flag("quiet") ? undefined : (l) => console.error(l),
  });
  const seq = arg("seq");
  if (seq !== undefined) {
    const ds = report.disagreements.filter((d) => d.seq === Number(seq));
    console.log(ds.length ? ds.map(describeDisagreement).join("\n\n") : `sequence ${seq}: no disagreement`);
  }
  console.log(formatReport(report, Number(arg("detail") ?? 3)));
  const bad = report.variants.some((s) => s.referenceFailures.length > 0 || (s.variant.asserted && s.disagreements > 0));
  return bad ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => {
  console.error(e);
  process.exitCode = 2;
});

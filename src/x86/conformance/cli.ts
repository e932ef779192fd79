// `npm run conformance`: run the SingleStepTests vectors against X86Cpu.
//   --set 8086|80286   one set (default both)
//   --limit N          tests per file
//   --filter OPCODE    files whose name starts with OPCODE ("F6", "80.3")
//   --failures N       remaining-failure lines printed (default 40)
import { conformanceDir } from "./data.js";
import type { ConformanceSet } from "./data.js";
import { EXPECTATIONS } from "./expectations.js";
import { fileRate, runConformance } from "./runner.js";
import type { FileResult } from "./runner.js";

function parseArgs(argv: string[]): { sets: ConformanceSet[]; limit?: number; filter?: string; failures: number } {
  const out: { sets: ConformanceSet[]; limit?: number; filter?: string; failures: number } = { sets: ["8086", "80286"], failures: 40 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    if (a === "--set") {
      if (v !== "8086" && v !== "80286") throw new Error(`--set must be 8086 or 80286, got ${v}`);
      out.sets = [v]; i++;
    } else if (a === "--limit") { out.limit = Number(v); i++; }
    else if (a === "--filter") { out.filter = v; i++; }
    else if (a === "--failures") { out.failures = Number(v); i++; }
    else if (a === "--help" || a === "-h") {
      console.log("usage: conformance [--set 8086|80286] [--limit N] [--filter OPCODE] [--failures N]");
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return out;
}

function pct(p: number, f: number): string {
  return p + f === 0 ? "  n/a " : `${((100 * p) / (p + f)).toFixed(2).padStart(6)}%`;
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const root = conformanceDir();
  if (!root) {
    console.log("conformance: data directory ../shared/conformance not found (set HVKIT_CONFORMANCE_DIR); skipping.");
    return;
  }
  const t0 = Date.now();
  const sum = runConformance(root, {
    ...args,
    onFile: (r, done, total) => {
      const kinds = [...r.kinds].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, n]) => `${k}:${n}`).join(" ");
      const exp = r.expected > 0 ? ` expected ${r.expected}` : "";
      console.log(`[${String(done).padStart(3)}/${total}] ${r.set.padEnd(5)} ${r.file.padEnd(16)} ${pct(r.pass, r.fail)}  pass ${r.pass} fail ${r.fail}${exp}${r.skip ? ` revoked ${r.skip}` : ""}${kinds ? "  " + kinds : ""}`);
    },
  });
  console.log("");
  for (const set of args.sets) {
    const fs = sum.files.filter((f) => f.set === set);
    const p = fs.reduce((a, f) => a + f.pass, 0), f = fs.reduce((a, x) => a + x.fail, 0);
    const e = fs.reduce((a, x) => a + x.expected, 0), s = fs.reduce((a, x) => a + x.skip, 0);
    const worst = fs.reduce<FileResult | undefined>((w, x) => (w === undefined || fileRate(x) < fileRate(w) ? x : w), undefined);
    console.log(`set ${set}: ${pct(p, f)} (${p} pass, ${f} fail, ${e} documented expectations, ${s} revoked); worst file ${worst ? `${worst.file} ${pct(worst.pass, worst.fail)}` : "n/a"}`);
  }
  const byId = new Map<string, number>();
  for (const f of sum.files) for (const [k, n] of f.expectedKinds) byId.set(k, (byId.get(k) ?? 0) + n);
  if (byId.size > 0) {
    console.log("\ndocumented expectations (the chip differs from a 386+; not counted in the pass rate):");
    for (const [id, n] of [...byId].sort((a, b) => b[1] - a[1])) {
      const e = EXPECTATIONS.get(id);
      console.log(`  ${id}: ${n} tests\n      why:     ${e?.reason ?? "?"}\n      checked: ${e?.check ?? "?"}`);
    }
  }
  const failing = sum.files.filter((f) => f.fail > 0).sort((a, b) => fileRate(a) - fileRate(b));
  if (failing.length > 0) {
    console.log(`\nremaining failures (${sum.fail} in ${failing.length} files, worst first; up to ${args.failures} lines):`);
    let lines = 0;
    for (const f of failing) {
      if (lines >= args.failures) break;
      console.log(`  ${f.set} ${f.file}: ${pct(f.pass, f.fail)}`);
      for (const line of f.failures) { if (lines++ >= args.failures) break; console.log(`    ${line}`); }
    }
  }
  console.log(`\noverall: ${pct(sum.pass, sum.fail)} (${sum.pass} pass, ${sum.fail} fail, ${sum.expected} documented expectations, ${sum.skip} revoked) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

main();

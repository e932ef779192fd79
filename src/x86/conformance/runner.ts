// Runs conformance files and aggregates pass rates; shared by the CLI and the vitest sample.
import { ConformanceExecutor, Outcome } from "./executor.js";
import { flagsMaskFor, listFiles, loadFile, loadMetadata, loadRevoked, opcodeOf } from "./data.js";
import type { ConformanceSet } from "./data.js";

export interface RunOptions {
  sets: ConformanceSet[];
  /** Tests per file (default all). */
  limit?: number;
  /** Only files whose opcode name starts with this (case-insensitive), e.g. "F6" or "80.3". */
  filter?: string;
  /** Failures kept per file for the listing (default 20). */
  keepFailures?: number;
  onFile?: (r: FileResult, done: number, total: number) => void;
}

export interface FileResult {
  set: ConformanceSet;
  file: string;
  pass: number;
  fail: number;
  /** Counted under a documented expectation (expectations.ts): the chip differs from a 386+. */
  expected: number;
  /** Revoked by the upstream revocation list. */
  skip: number;
  /** Failure kinds with counts. */
  kinds: Map<string, number>;
  /** Expectation ids with counts. */
  expectedKinds: Map<string, number>;
  /** The first failures, one line each: test, bytes, what differed. */
  failures: string[];
}

export interface RunSummary {
  files: FileResult[];
  pass: number;
  fail: number;
  expected: number;
  skip: number;
  /** pass / (pass + fail); documented expectations and revoked tests do not count. */
  rate: number;
}

export function fileRate(f: FileResult): number {
  return f.pass + f.fail === 0 ? 1 : f.pass / (f.pass + f.fail);
}

export function runConformance(root: string, opts: RunOptions): RunSummary {
  const revoked = loadRevoked(root);
  const keep = opts.keepFailures ?? 20;
  const files: FileResult[] = [];
  const work: Array<[ConformanceSet, string]> = [];
  for (const set of opts.sets) {
    for (const f of listFiles(root, set)) {
      if (opts.filter && !opcodeOf(f).toUpperCase().startsWith(opts.filter.toUpperCase())) continue;
      work.push([set, f]);
    }
  }
  const metas = new Map(opts.sets.map((s) => [s, loadMetadata(root, s)]));
  const execs = new Map(opts.sets.map((s) => [s, new ConformanceExecutor(s)]));
  let n = 0;
  for (const [set, file] of work) {
    const tests = loadFile(root, set, file, opts.limit);
    const mask = flagsMaskFor(metas.get(set)!, opcodeOf(file));
    const ex = execs.get(set)!;
    const res: FileResult = { set, file, pass: 0, fail: 0, expected: 0, skip: 0, kinds: new Map(), expectedKinds: new Map(), failures: [] };
    const lim = Math.min(tests.length, opts.limit ?? tests.length);
    for (let i = 0; i < lim; i++) {
      const t = tests[i];
      const o = ex.run(t, mask, revoked);
      if (o === Outcome.Pass) { res.pass++; continue; }
      if (o === Outcome.Skip) { res.skip++; continue; }
      if (o === Outcome.Expected) { res.expected++; res.expectedKinds.set(ex.kind, (res.expectedKinds.get(ex.kind) ?? 0) + 1); continue; }
      res.fail++;
      res.kinds.set(ex.kind, (res.kinds.get(ex.kind) ?? 0) + 1);
      if (res.failures.length < keep) {
        const bytes = Array.from(t.bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
        res.failures.push(`#${t.index} "${t.name}" [${bytes}]: ${ex.kind}: ${ex.detail}`);
      }
    }
    files.push(res);
    opts.onFile?.(res, ++n, work.length);
  }
  const sum = (k: "pass" | "fail" | "expected" | "skip") => files.reduce((a, f) => a + f[k], 0);
  const pass = sum("pass"), fail = sum("fail");
  return { files, pass, fail, expected: sum("expected"), skip: sum("skip"), rate: pass + fail === 0 ? 0 : pass / (pass + fail) };
}

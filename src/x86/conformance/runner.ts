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
  onFile?: (r: FileResult, done: number, total: number) => void;
}

export interface FileResult {
  set: ConformanceSet;
  file: string;
  pass: number;
  fail: number;
  skip: number;
  /** Failure kinds with counts. */
  kinds: Map<string, number>;
  /** Skip reasons with counts. */
  skipKinds: Map<string, number>;
  firstFailure?: string;
}

export interface RunSummary {
  files: FileResult[];
  pass: number;
  fail: number;
  skip: number;
  /** pass / (pass + fail); skipped tests do not count. */
  rate: number;
}

export function runConformance(root: string, opts: RunOptions): RunSummary {
  const revoked = loadRevoked(root);
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
    const res: FileResult = { set, file, pass: 0, fail: 0, skip: 0, kinds: new Map(), skipKinds: new Map() };
    const lim = Math.min(tests.length, opts.limit ?? tests.length);
    for (let i = 0; i < lim; i++) {
      const t = tests[i];
      const o = ex.run(t, mask, revoked);
      if (o === Outcome.Pass) { res.pass++; continue; }
      if (o === Outcome.Skip) { res.skip++; res.skipKinds.set(ex.kind, (res.skipKinds.get(ex.kind) ?? 0) + 1); continue; }
      res.fail++;
      res.kinds.set(ex.kind, (res.kinds.get(ex.kind) ?? 0) + 1);
      if (!res.firstFailure) {
        const bytes = Array.from(t.bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
        res.firstFailure = `#${t.index} "${t.name}" [${bytes}]: ${ex.detail}`;
      }
    }
    files.push(res);
    opts.onFile?.(res, ++n, work.length);
  }
  const pass = files.reduce((a, f) => a + f.pass, 0);
  const fail = files.reduce((a, f) => a + f.fail, 0);
  const skip = files.reduce((a, f) => a + f.skip, 0);
  return { files, pass, fail, skip, rate: pass + fail === 0 ? 0 : pass / (pass + fail) };
}

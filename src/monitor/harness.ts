// Boot tests as data: a config, a matrix of overrides, console strings to expect and
// input to type, the expected stop reason. Each matrix combination boots in-process
// with an in-memory console. `hvkit test` and tests/boot.test.ts share this runner.
import { existsSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { z } from "zod";
import { ConfigError } from "./api.js";
import type { RunResult, StopReason } from "./api.js";
import { readConfigFile } from "./config.js";
import type { Override } from "./config.js";
import { parsePath } from "./config.js";
import { ConsoleRecorder, VmConsole } from "./console.js";
import { createMachine } from "./machine.js";
import type { Machine } from "./machine.js";
import { parseDuration } from "./units.js";
import { parseOrThrow } from "./zod-errors.js";

const StepSchema = z.union([
  z.strictObject({ expect: z.string().min(1) }),
  z.strictObject({ type: z.string() }),
]);

export const BootTestSchema = z.strictObject({
  name: z.string().min(1),
  /** The machine config, relative to the boot-test file. */
  config: z.string().min(1),
  /** Override path → the values to try; the runner boots every combination. */
  matrix: z.record(z.string(), z.array(z.unknown()).min(1)).optional(),
  /** Files this machine must have (relative to the boot-test file); missing ones skip the test. */
  requires: z.strictObject({ files: z.array(z.string()).default([]) }).optional(),
  steps: z.array(StepSchema).default([]),
  stop: z.enum(["halted", "shutdown", "escape", "timeout", "error"]).default("halted"),
  timeout: z.union([z.number(), z.string()]).default("30s"),
});

export type BootStep = { expect: string } | { type: string };

export interface BootTest {
  readonly file: string;
  readonly name: string;
  readonly configPath: string;
  readonly matrix: readonly (readonly [string, readonly unknown[]])[];
  readonly requiredFiles: readonly string[];
  readonly steps: readonly BootStep[];
  readonly stop: StopReason;
  readonly timeoutMs: number;
}

export interface Combination {
  /** "backend=vmx plugins[0].options.mode=native", or "default" for an empty matrix. */
  readonly label: string;
  readonly overrides: readonly Override[];
}

export interface CaseResult {
  readonly combination: Combination;
  readonly status: "pass" | "fail" | "skip";
  readonly reason: string;
  readonly result?: RunResult;
  readonly output: string;
  readonly ms: number;
}

/** Read and validate a boot-test file (synchronous, so vitest can build one test per combination). */
export function loadBootTest(file: string): BootTest {
  const raw = readConfigFile(file);
  const t = parseOrThrow(BootTestSchema, raw, "", file);
  const dir = dirname(resolve(file));
  const matrix = Object.entries(t.matrix ?? {});
  for (const [path] of matrix) {
    try {
      parsePath(path);
    } catch (e) {
      throw new ConfigError(`matrix.${path}`, (e as ConfigError).detail, file);
    }
  }
  const timeoutMs = parseDuration(t.timeout);
  if (timeoutMs === undefined) throw new ConfigError("timeout", `"${t.timeout}" is not a duration (e.g. 20s)`, file);
  return {
    file, name: t.name, configPath: resolve(dir, t.config), matrix,
    requiredFiles: (t.requires?.files ?? []).map((f) => resolve(dir, f)),
    steps: t.steps, stop: t.stop, timeoutMs,
  };
}

function show(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** Every combination of the matrix values, first key varying slowest. */
export function expandMatrix(matrix: readonly (readonly [string, readonly unknown[]])[]): Combination[] {
  let combos: Override[][] = [[]];
  for (const [path, values] of matrix) {
    const next: Override[][] = [];
    for (const c of combos) for (const value of values) next.push([...c, { path, value }]);
    combos = next;
  }
  return combos.map((overrides) => ({
    label: overrides.length === 0 ? "default" : overrides.map((o) => `${o.path}=${show(o.value)}`).join(" "),
    overrides,
  }));
}

/** Why this machine cannot run `test` (a missing image ...), or undefined. */
export function skipReason(test: BootTest): string | undefined {
  for (const f of test.requiredFiles) {
    if (!existsSync(f)) return `missing ${relative(process.cwd(), f) || f}`;
  }
  return undefined;
}

function tail(s: string, n = 160): string {
  return JSON.stringify(s.length > n ? `…${s.slice(-n)}` : s);
}

export interface RunCombinationOptions {
  /** Called with each output byte, e.g. to mirror the console when debugging. */
  readonly onOutput?: (byte: number) => void;
}

/** Boot one combination and walk its steps. */
export async function runCombination(test: BootTest, combination: Combination, opts: RunCombinationOptions = {}): Promise<CaseResult> {
  const t0 = performance.now();
  const done = (status: CaseResult["status"], reason: string, output: string, result?: RunResult): CaseResult =>
    ({ combination, status, reason, output, ms: performance.now() - t0, ...(result ? { result } : {}) });
  const skip = skipReason(test);
  if (skip) return done("skip", skip, "");

  const console = new VmConsole();
  const rec = new ConsoleRecorder(console);
  if (opts.onOutput) console.events.on("output", opts.onOutput);
  let machine: Machine;
  try {
    machine = await createMachine(test.configPath, { overrides: combination.overrides, console });
  } catch (e) {
    rec.dispose();
    return done("fail", `could not build the machine: ${(e as Error).message}`, "");
  }
  try {
    const running = machine.run({ timeoutMs: test.timeoutMs });
    const stopped = running.then((r) => ({ stopped: r }));
    let pos = 0;
    let failure: string | undefined;
    for (const step of test.steps) {
      if ("type" in step) {
        console.type(step.type);
        continue;
      }
      // Text already printed matches now: racing it against a run that has already
      // stopped would let the stop win by a tick.
      const at = rec.text.indexOf(step.expect, pos);
      if (at >= 0) {
        pos = at + step.expect.length;
        continue;
      }
      const r = await Promise.race([rec.waitFor(step.expect, pos).then((end) => ({ end })), stopped]);
      if ("stopped" in r) {
        failure = `stopped (${r.stopped.reason}: ${r.stopped.message}) before ${JSON.stringify(step.expect)} appeared; output ${tail(rec.text.slice(pos))}`;
        break;
      }
      pos = r.end;
    }
    const result = await running;
    if (failure) return done("fail", failure, rec.text, result);
    if (result.reason !== test.stop) {
      return done("fail", `expected stop "${test.stop}", got "${result.reason}": ${result.message}; output ${tail(rec.text.slice(pos))}`, rec.text, result);
    }
    return done("pass", `${result.reason}: ${result.message}`, rec.text, result);
  } finally {
    rec.dispose();
    await machine.dispose();
  }
}

/** Run every combination of a boot test, one after another. */
export async function runBootTest(
  test: BootTest | string, onResult?: (r: CaseResult) => void,
): Promise<CaseResult[]> {
  const t = typeof test === "string" ? loadBootTest(test) : test;
  const results: CaseResult[] = [];
  for (const c of expandMatrix(t.matrix)) {
    const r = await runCombination(t, c);
    onResult?.(r);
    results.push(r);
  }
  return results;
}

/** A plain-text table of results. */
export function formatResults(test: BootTest, results: readonly CaseResult[]): string {
  const rows = results.map((r) => [r.combination.label, r.status.toUpperCase(), `${(r.ms / 1000).toFixed(2)}s`, r.reason]);
  const head = ["combination", "result", "time", "detail"];
  const w = [0, 1, 2].map((i) => Math.max(head[i]!.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i < 3 ? c.padEnd(w[i]!) : c)).join("  ").trimEnd();
  const pass = results.filter((r) => r.status === "pass").length;
  const fail = results.filter((r) => r.status === "fail").length;
  const skip = results.filter((r) => r.status === "skip").length;
  return [`boot test ${test.name} (${test.file})`, line(head), ...rows.map(line), `${pass} passed, ${fail} failed, ${skip} skipped`].join("\n");
}

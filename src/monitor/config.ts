// The machine config file (YAML or JSON), `--set` overrides, and their validation.
// Plugin `options` are left raw here: each plugin parses its own (plugins.ts).
import { readFileSync } from "node:fs";
import { dirname, extname, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ConfigError } from "./api.js";
import { configErrorFromZod, joinPath } from "./zod-errors.js";
import { formatSize, parseDuration, parseSize } from "./units.js";
import { DEFAULT_MIPS, type ClockConfig } from "./clock.js";
import type { CpuidConfig } from "./cpuid.js";

export const MIN_MEMORY = 1 << 20;
export const MAX_MEMORY = 1 << 30;
const PAGE = 4096;

const PluginEntrySchema = z.strictObject({
  use: z.string().min(1),
  options: z.unknown().optional(),
});

const ScalarSchema = z.union([z.number(), z.string()]);

export const ConfigSchema = z.strictObject({
  name: z.string().min(1).optional(),
  backend: z.union([z.string().min(1), PluginEntrySchema]),
  engine: z.string().default("soft"),
  memory: ScalarSchema,
  timeout: ScalarSchema.optional(),
  plugins: z.array(PluginEntrySchema).default([]),
  /** Which console sources reach the host (stdio, boot-test recorder): "all" or e.g. [com1]. */
  console: z.strictObject({ output: z.union([z.literal("all"), z.array(z.string().min(1)).min(1)]).default("all") }).optional(),
  /** The virtual clock: host time, or retired instructions at `mips` per microsecond (deterministic). */
  clock: z.strictObject({
    mode: z.enum(["host", "instructions"]).default("host"),
    mips: z.number().positive().max(1e6).optional(),
    /** instructions mode while the guest halts: jump to the next timer at once, or wait for it in host time. */
    idle: z.enum(["skip", "sleep"]).default("skip"),
  }).optional(),
  /** CPUID: `mask.leaf1.{ecx,edx}` and `mask.ext1.edx` clear bits from what leaves 1 and 80000001h report (it can only narrow: cpuid.ts). */
  cpuid: z.strictObject({
    mask: z.strictObject({
      leaf1: z.strictObject({
        ecx: z.number().int().min(0).max(0xffff_ffff).optional(),
        edx: z.number().int().min(0).max(0xffff_ffff).optional(),
      }).optional(),
      /** CPUID.80000001h EDX (NX, bit 20). */
      ext1: z.strictObject({
        edx: z.number().int().min(0).max(0xffff_ffff).optional(),
      }).optional(),
    }).optional(),
  }).optional(),
});

/** One plugin to load: `path` is where it sits in the config ("backend", "plugins[2]"). */
export interface PluginRef {
  readonly use: string;
  readonly options: unknown;
  readonly path: string;
}

export interface MachineConfig {
  /** The file as the user named it (for messages), undefined for an in-memory config. */
  readonly file: string | undefined;
  /** Relative plugin specs and plugin paths (disk images ...) resolve against this. */
  readonly dir: string;
  readonly name: string;
  readonly backend: PluginRef;
  readonly engine: "soft";
  readonly memory: number;
  readonly timeoutMs: number | undefined;
  readonly plugins: readonly PluginRef[];
  /** Console sources shown to the host; undefined: all of them. */
  readonly consoleOutput: readonly string[] | undefined;
  /** The virtual clock (default: host time). */
  readonly clock: ClockConfig;
  /** CPUID narrowing (default: none). */
  readonly cpuid: CpuidConfig;
}

// ---------------------------------------------------------------------------
// Overrides: `--set plugins[0].options.mode=emulate`

export type PathSegment = string | number;

export interface Override {
  readonly path: string;
  readonly value: unknown;
}

/** `a.b[0].c` → ["a", "b", 0, "c"]; throws ConfigError on a malformed path. */
export function parsePath(path: string): PathSegment[] {
  const out: PathSegment[] = [];
  const re = /([A-Za-z_$][\w$-]*)|\[(\d+)\]|(\.)/gy;
  let expectKey = true;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < path.length && (m = re.exec(path))) {
    pos = re.lastIndex;
    if (m[1] !== undefined) {
      if (!expectKey) break;
      out.push(m[1]);
      expectKey = false;
    } else if (m[2] !== undefined) {
      if (expectKey) break;
      out.push(Number(m[2]));
    } else {
      if (expectKey) break;
      expectKey = true;
    }
  }
  if (pos !== path.length || expectKey || out.length === 0 || typeof out[0] !== "string") {
    throw new ConfigError(path, "malformed key path (expected e.g. backend or plugins[0].options.mode)", "--set");
  }
  return out;
}

/** `key=value`; the value is read as YAML (numbers, booleans, [lists]), else kept as a string. */
export function parseSetArg(arg: string): Override {
  const eq = arg.indexOf("=");
  if (eq <= 0) throw new ConfigError(arg, "expected key=value", "--set");
  const path = arg.slice(0, eq).trim();
  const text = arg.slice(eq + 1);
  let value: unknown = text;
  try {
    const parsed: unknown = parseYaml(text);
    if (parsed !== null && parsed !== undefined) value = parsed;
  } catch {
    // not YAML: keep the string
  }
  parsePath(path);
  return { path, value };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Set one value inside the raw config before validation. Missing objects on the way
 * are created; array indices must exist (an override cannot invent a plugin entry).
 * A string `backend` becomes `{ use: backend }` when a key below it is set.
 */
export function applyOverride(raw: Record<string, unknown>, override: Override): void {
  const segs = parsePath(override.path);
  let cur: unknown = raw;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const last = i === segs.length - 1;
    const here = joinPath("", segs.slice(0, i + 1));
    if (typeof seg === "number") {
      if (!Array.isArray(cur)) throw new ConfigError(here, "not a list", "--set");
      if (seg >= cur.length) throw new ConfigError(here, `no such entry (the list has ${cur.length})`, "--set");
      if (last) { cur[seg] = override.value; return; }
      if (segs[i + 1] !== undefined && typeof segs[i + 1] === "string" && cur[seg] === undefined) cur[seg] = {};
      cur = cur[seg];
    } else {
      if (!isObject(cur)) throw new ConfigError(here, "cannot set a key inside a non-object value", "--set");
      if (last) { cur[seg] = override.value; return; }
      let next = cur[seg];
      if (i === 0 && seg === "backend" && typeof next === "string") next = cur[seg] = { use: next };
      if (next === undefined || next === null) {
        if (typeof segs[i + 1] === "number") throw new ConfigError(here, "no such list", "--set");
        next = cur[seg] = {};
      }
      cur = next;
    }
  }
}

// ---------------------------------------------------------------------------
// Loading

/** Parse the text of a config file: JSON for `.json`, YAML otherwise. */
export function parseConfigText(text: string, file: string): unknown {
  if (extname(file).toLowerCase() === ".json") {
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new ConfigError("", `invalid JSON: ${(e as Error).message}`, file);
    }
  }
  try {
    return parseYaml(text, { prettyErrors: true });
  } catch (e) {
    throw new ConfigError("", `invalid YAML: ${(e as Error).message.split("\n")[0]}`, file);
  }
}

export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError("", code === "ENOENT" ? "no such file" : `cannot read: ${(e as Error).message}`, file);
  }
  return parseConfigText(text, file);
}

/** Validate a raw config (overrides already applied). `dir` anchors relative paths. */
export function validateConfig(raw: unknown, file: string | undefined, dir: string): MachineConfig {
  if (!isObject(raw)) throw new ConfigError("", "the config must be a mapping of keys to values", file);
  const r = ConfigSchema.safeParse(raw);
  if (!r.success) throw configErrorFromZod(r.error, ConfigSchema, "", file);
  const c = r.data;

  if (c.engine === "kvm") throw new ConfigError("engine", "engine kvm is not available yet", file);
  if (c.engine !== "soft") throw new ConfigError("engine", `unknown engine "${c.engine}" (available: soft)`, file);

  const memory = parseSize(c.memory);
  if (memory === undefined) {
    throw new ConfigError("memory", `"${c.memory}" is not a size (a number of bytes or e.g. 16M, 512K, 1G)`, file);
  }
  if (memory < MIN_MEMORY || memory > MAX_MEMORY) {
    throw new ConfigError("memory", `${formatSize(memory)} is out of range (${formatSize(MIN_MEMORY)} to ${formatSize(MAX_MEMORY)})`, file);
  }
  if (memory % PAGE !== 0) throw new ConfigError("memory", `${memory} is not a multiple of 4K`, file);

  let timeoutMs: number | undefined;
  if (c.timeout !== undefined) {
    timeoutMs = parseDuration(c.timeout);
    if (timeoutMs === undefined) throw new ConfigError("timeout", `"${c.timeout}" is not a duration (e.g. 500ms, 30s, 2m)`, file);
  }

  const backend: PluginRef = typeof c.backend === "string"
    ? { use: c.backend, options: undefined, path: "backend" }
    : { use: c.backend.use, options: c.backend.options, path: "backend" };
  const plugins = c.plugins.map((p, i): PluginRef => ({ use: p.use, options: p.options, path: `plugins[${i}]` }));
  const name = c.name ?? (file ? file.replace(/^.*[\\/]/, "").replace(/\.[^.]*$/, "") : "vm");
  const out = c.console?.output ?? "all";
  const consoleOutput = out === "all" ? undefined : out;
  const clock: ClockConfig = { mode: c.clock?.mode ?? "host", mips: c.clock?.mips ?? DEFAULT_MIPS, idle: c.clock?.idle ?? "skip" };
  const mask = c.cpuid?.mask;
  const cpuid: CpuidConfig = mask?.leaf1 || mask?.ext1
    ? { mask: { ...(mask.leaf1 ? { leaf1: { ...mask.leaf1 } } : {}), ...(mask.ext1 ? { ext1: { ...mask.ext1 } } : {}) } } : {};
  return { file, dir, name, backend, engine: "soft", memory, timeoutMs, plugins, consoleOutput, clock, cpuid };
}

/** Read, override and validate a config file. */
export function loadConfig(file: string, overrides: readonly Override[] = []): MachineConfig {
  const raw = readConfigFile(file);
  if (isObject(raw)) for (const o of overrides) applyOverride(raw, o);
  return validateConfig(raw, file, dirname(resolve(file)));
}

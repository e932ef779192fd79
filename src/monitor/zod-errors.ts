// Turns the first zod issue into a ConfigError carrying the JSON path of the bad key,
// with a "did you mean" suggestion for a misspelt key of a strict object.
import type { z } from "zod";
import { ConfigError } from "./config-error.js";
import { suggest } from "./units.js";

/** `plugins[1].options` from ["plugins", 1, "options"], appended to `base`. */
export function joinPath(base: string, segments: readonly PropertyKey[]): string {
  let out = base;
  for (const s of segments) {
    if (typeof s === "number") out += `[${s}]`;
    else out += out === "" ? String(s) : `.${String(s)}`;
  }
  return out;
}

interface SchemaDef { type: string; shape?: Record<string, z.ZodType>; element?: z.ZodType; options?: z.ZodType[]; innerType?: z.ZodType; in?: z.ZodType }

function defOf(s: z.ZodType): SchemaDef {
  return (s as unknown as { def: SchemaDef }).def;
}

/** The keys a strict object accepts at `path` inside `schema`, if the schema says. */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let cur: z.ZodType | undefined = schema;
  let i = 0;
  for (;;) {
    if (!cur) return [];
    const d = defOf(cur);
    if (d.type === "optional" || d.type === "default" || d.type === "nullable" || d.type === "readonly") { cur = d.innerType; continue; }
    if (d.type === "pipe") { cur = d.in; continue; }
    if (d.type === "union") return [...new Set((d.options ?? []).flatMap((o) => keysAt(o, path.slice(i))))];
    if (i === path.length) return d.type === "object" ? Object.keys(d.shape ?? {}) : [];
    const seg = path[i++]!;
    if (d.type === "object") cur = d.shape?.[String(seg)];
    else if (d.type === "array") cur = d.element;
    else return [];
  }
}

function describe(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type": return `expected ${issue.expected}`;
    case "invalid_value": return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    default: return issue.message;
  }
}

/** The ConfigError for the first issue of a failed zod parse. */
export function configErrorFromZod(
  error: z.ZodError, schema: z.ZodType, basePath: string, file?: string,
): ConfigError {
  let issue = error.issues[0]!;
  // A union of "string or object": report the branch that matches the input's shape.
  while (issue.code === "invalid_union" && issue.errors.length > 0) {
    const branches = issue.errors;
    // Prefer a branch that saw an unknown key (a misspelling), then one that got past the top level.
    const unknown = branches.flatMap((b) => b.filter((i) => i.code === "unrecognized_keys"))[0];
    const deeper = unknown ? [unknown] : branches.find((b) => b[0] && b[0].path.length > 0);
    if (!deeper) {
      const expected = branches.map((b) => (b[0] && b[0].code === "invalid_type" ? b[0].expected : "?")).join(" or ");
      return new ConfigError(joinPath(basePath, issue.path), `expected ${expected}`, file);
    }
    issue = { ...deeper[0]!, path: [...issue.path, ...deeper[0]!.path] } as z.core.$ZodIssue;
  }
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    const allowed = keysAt(schema, issue.path);
    const hint = suggest(key, allowed);
    const detail = `unknown key${hint ? ` (did you mean "${hint}"?)` : allowed.length ? ` (expected one of: ${allowed.join(", ")})` : ""}`;
    return new ConfigError(joinPath(basePath, [...issue.path, key]), detail, file);
  }
  if (issue.code === "invalid_type" && issue.input === undefined) {
    return new ConfigError(joinPath(basePath, issue.path), "missing (required)", file);
  }
  return new ConfigError(joinPath(basePath, issue.path), describe(issue), file);
}

/** Parse `raw` with `schema` or throw the ConfigError for its first issue. */
export function parseOrThrow<S extends z.ZodType>(schema: S, raw: unknown, basePath: string, file?: string): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  throw configErrorFromZod(r.error, schema, basePath, file);
}

/** Plugin options: `parseOrThrow` with a missing section read as `{}` (exported by api.ts). */
export function parseOptions<S extends z.ZodType>(schema: S, raw: unknown, path: string): z.output<S> {
  return parseOrThrow(schema, raw ?? {}, path);
}

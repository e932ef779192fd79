// Options of the devices-lpc plugin (STYLE rule 8): parsed strictly, errors name the JSON path.
import { z } from "zod";
import { ConfigError } from "../../../src/monitor/api.js";

export const ComPortConfigSchema = z.strictObject({
  /** Place the UART on the bus at all. */
  enabled: z.boolean().default(true),
  /** "console": the monitor console's input reaches the UART's RX; "none": RX stays silent. */
  input: z.enum(["console", "none"]).default("console"),
});

export const DevicesLpcConfigSchema = z.strictObject({
  com1: ComPortConfigSchema.default({ enabled: true, input: "console" }),
});

export type ComPortConfig = z.infer<typeof ComPortConfigSchema>;
export type DevicesLpcConfig = z.infer<typeof DevicesLpcConfigSchema>;

/** Append a zod issue path to a JSON path: `plugins[1].options` + ["com1","irqq"]. */
export function joinPath(base: string, parts: readonly PropertyKey[]): string {
  let out = base;
  for (const p of parts) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out;
}

/** Throw ConfigError for the first issue, with the path of the bad key. */
export function parseStrict<T>(schema: z.ZodType<T>, raw: unknown, path: string): T {
  const r = schema.safeParse(raw ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    throw new ConfigError(joinPath(path, [...issue.path, key]), `unknown key "${key}"`);
  }
  throw new ConfigError(joinPath(path, issue.path), issue.message);
}

export function parseDevicesLpcConfig(raw: unknown, path: string): DevicesLpcConfig {
  return parseStrict(DevicesLpcConfigSchema, raw, path);
}

// Options of the realmode plugin, parsed strictly; errors carry the JSON path.
import { z } from "zod";
import { ConfigError, joinPath, parseOptions } from "../../../src/monitor/api.js";

export const DiskConfigSchema = z.strictObject({
  /** BIOS drive number: 0x00-0x7F diskettes (0x00 = A:), 0x80-0xFF hard disks (0x80 first). */
  drive: z.number().int().min(0).max(0xff),
  /** Image file; relative paths are relative to the config file's directory. */
  file: z.string().min(1),
  readonly: z.boolean().default(false),
});

export const RealmodeOptionsSchema = z.strictObject({
  mode: z.enum(["native", "emulate"]).default("native"),
  disks: z.array(DiskConfigSchema).min(1),
  /** Drive to boot from; default the first disk. */
  boot: z.number().int().min(0).max(0xff).optional(),
});

export type DiskConfig = z.infer<typeof DiskConfigSchema>;

export interface RealmodeConfig {
  mode: "native" | "emulate";
  disks: DiskConfig[];
  boot: number;
  /** The JSON path of these options (e.g. `plugins[2].options`), for errors found at register time. */
  path: string;
}

export function parseRealmodeConfig(raw: unknown, path: string): RealmodeConfig {
  const o = parseOptions(RealmodeOptionsSchema, raw, path);
  const seen = new Set<number>();
  o.disks.forEach((d, j) => {
    if (seen.has(d.drive)) throw new ConfigError(joinPath(path, ["disks", j, "drive"]), `drive 0x${d.drive.toString(16)} is listed twice`);
    seen.add(d.drive);
  });
  const boot = o.boot ?? o.disks[0]!.drive;
  if (!seen.has(boot)) throw new ConfigError(joinPath(path, ["boot"]), `boot drive 0x${boot.toString(16)} is not among the disks`);
  return { mode: o.mode, disks: o.disks, boot, path };
}

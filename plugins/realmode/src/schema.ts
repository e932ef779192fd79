// Options of the realmode plugin, parsed strictly; errors carry the JSON path.
import { z } from "zod";
import { ConfigError, joinPath, parseOptions } from "../../../src/monitor/api.js";

const Drive = z.number().int().min(0).max(0xff);

export const DiskConfigSchema = z.strictObject({
  /** BIOS drive number: 0x00-0x7F diskettes (0x00 = A:), 0x80-0xFF hard disks (0x80 first). */
  drive: Drive,
  /** Image file; relative paths are relative to the config file's directory. */
  file: z.string().min(1),
  /**
   * false (default): the host file is opened read-only and guest writes go to an in-memory
   * copy-on-write overlay, lost when the VM ends. true: writes go through to the host file.
   */
  writable: z.boolean().default(false),
  /** The guest sees a write-protected disk: INT 13h writes fail with AH=03h. */
  writeProtected: z.boolean().default(false),
});

export const RealmodeOptionsSchema = z.strictObject({
  mode: z.enum(["native", "emulate"]).default("native"),
  disks: z.array(DiskConfigSchema).min(1),
  /** Boot drive, or the boot order INT 19h tries (e.g. [0x80, 0x00]); default the first disk. */
  boot: z.union([Drive, z.array(Drive).min(1)]).optional(),
  /**
   * Who fills the BIOS keyboard ring: "console" (default) puts console input straight into
   * it; "i8042" leaves that to INT 09h reading scancodes from a keyboard controller (port 0x60).
   */
  keyboard: z.enum(["console", "i8042"]).default("console"),
});

export type DiskConfig = z.infer<typeof DiskConfigSchema>;

export interface RealmodeConfig {
  mode: "native" | "emulate";
  disks: DiskConfig[];
  /** The first drive of the boot order. */
  boot: number;
  /** Drives INT 19h tries, in order. */
  bootOrder: number[];
  keyboard: "console" | "i8042";
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
  const order = o.boot === undefined ? [o.disks[0]!.drive] : typeof o.boot === "number" ? [o.boot] : o.boot;
  order.forEach((drive, k) => {
    const at = typeof o.boot === "object" ? joinPath(path, ["boot", k]) : joinPath(path, ["boot"]);
    if (!seen.has(drive)) throw new ConfigError(at, `boot drive 0x${drive.toString(16)} is not among the disks`);
  });
  return { mode: o.mode, disks: o.disks, boot: order[0]!, bootOrder: order, keyboard: o.keyboard, path };
}

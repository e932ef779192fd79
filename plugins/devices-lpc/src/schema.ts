// Options of the devices-lpc plugin (STYLE rule 8): parsed strictly, errors name the JSON path.
import { z } from "zod";
import { parseOptions } from "../../../src/monitor/api.js";

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

export function parseDevicesLpcConfig(raw: unknown, path: string): DevicesLpcConfig {
  return parseOptions(DevicesLpcConfigSchema, raw, path);
}

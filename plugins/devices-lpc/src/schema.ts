// Options of the devices-lpc plugin (STYLE rule 8): parsed strictly, errors name the JSON path.
import { z } from "zod";
import { parseOptions } from "../../../src/monitor/api.js";

/** Where a UART's bytes go: the console, nowhere, a file (output only), a TCP server on 127.0.0.1, memory (tests). */
export const SerialBackendConfigSchema = z.union([
  z.enum(["console", "none", "memory"]),
  z.strictObject({ file: z.string().min(1) }),
  /** 0 picks an ephemeral port. */
  z.strictObject({ tcp: z.number().int().min(0).max(65535) }),
]);

export const ComPortConfigSchema = z.strictObject({
  /** Place the UART on the bus at all. */
  enabled: z.boolean().default(true),
  backend: SerialBackendConfigSchema.default("console"),
  /** Console backend only: "console": the monitor console's input reaches the UART's RX; "none": RX stays silent. */
  input: z.enum(["console", "none"]).default("console"),
});

const comOff = { enabled: false, backend: "none" as const, input: "none" as const };

export const I8042ConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** "console": typed console input becomes keyboard scan codes. */
  input: z.enum(["console", "none"]).default("console"),
});

/** An ISO 8601 date-time that Date.parse accepts (e.g. "2026-01-01T00:00:00Z"). */
const RtcTimeSchema = z.union([
  z.literal("host"),
  z.string().refine((s) => s !== "host" && !Number.isNaN(Date.parse(s)), { message: 'expected "host" or an ISO 8601 date-time' }),
]);

export const RtcConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** "host": the host's Date at VM start; an ISO date-time: fixed, for reproducible runs. Either advances with the virtual clock. */
  time: RtcTimeSchema.default("host"),
  /** 1.44 MB floppy drives reported in CMOS 0x10 and the equipment byte 0x14. */
  floppies: z.number().int().min(0).max(2).default(0),
  /** Hard disks reported in CMOS 0x12 (type 47). */
  hardDisks: z.number().int().min(0).max(2).default(0),
});

export const DevicesLpcConfigSchema = z.strictObject({
  com1: ComPortConfigSchema.default({ enabled: true, backend: "console", input: "console" }),
  com2: ComPortConfigSchema.default(comOff),
  com3: ComPortConfigSchema.default(comOff),
  com4: ComPortConfigSchema.default(comOff),
  /** The i8042 keyboard controller (0x60/0x64, IRQ 1) with a PS/2 keyboard. */
  i8042: I8042ConfigSchema.default({ enabled: true, input: "console" }),
  /** System control port A (0x92): fast A20 and reset. */
  port92: z.strictObject({ enabled: z.boolean().default(true) }).default({ enabled: true }),
  /** Port 0x80 (POST codes) and the 0xE9 / 0x402 debug console. */
  debugPorts: z.strictObject({ enabled: z.boolean().default(true) }).default({ enabled: true }),
  /** The 8259A pair (0x20/0xA0, ELCR 0x4D0): the VM's interrupt controller. */
  pic: z.strictObject({ enabled: z.boolean().default(true) }).default({ enabled: true }),
  /** The 8254 PIT (0x40-0x43, IRQ 0) and port 0x61. */
  pit: z.strictObject({ enabled: z.boolean().default(true) }).default({ enabled: true }),
  /** The MC146818 RTC and CMOS (0x70/0x71, IRQ 8). */
  rtc: RtcConfigSchema.default({ enabled: true, time: "host", floppies: 0, hardDisks: 0 }),
});

export type ComPortConfig = z.infer<typeof ComPortConfigSchema>;
export type SerialBackendConfig = z.infer<typeof SerialBackendConfigSchema>;
export type DevicesLpcConfig = z.infer<typeof DevicesLpcConfigSchema>;
export type RtcConfig = z.infer<typeof RtcConfigSchema>;

/** The JSON path each parsed config came from, for errors found at register time (files, ports). */
const paths = new WeakMap<DevicesLpcConfig, string>();

export function parseDevicesLpcConfig(raw: unknown, path: string): DevicesLpcConfig {
  const config = parseOptions(DevicesLpcConfigSchema, raw, path);
  paths.set(config, path);
  return config;
}

export function devicesLpcConfigPath(config: DevicesLpcConfig): string {
  return paths.get(config) ?? "devices-lpc";
}

// Port 0x80 (the POST code port, an unused DMA page register on the PC/AT) and the
// Bochs/QEMU debug console at 0xE9 and 0x402.
// Sources: IBM PC/AT Technical Reference, I/O address map (0x80-0x8F DMA page registers;
// POST diagnostic cards latch writes to 0x80); Bochs "port E9 hack" (iodebug), QEMU
// hw/char/debugcon.c documentation (isa-debugcon at 0xE9; OVMF's debug port 0x402;
// reads return the "readback" value, 0xE9 by default).
//
// Emulated: 0x80 stores the last byte written and reads it back; changes are logged at
// debug level (rate-limited: Linux uses 0x80 for I/O delays). 0xE9/0x402: every byte
// written goes to the console with source "debugcon"; reads return 0xE9 (the Bochs/QEMU
// presence check). Not emulated: 0x81-0x8F DMA page registers (no DMA controller).
import type { AccessSize, Console, DeviceEvents, IoDevice, Logger } from "../../../src/monitor/api.js";
import { NO_EVENTS } from "../../../src/monitor/api.js";

export const POST_PORT = 0x80;
export const DEBUGCON_PORT = 0xe9;
export const DEBUGCON_OVMF_PORT = 0x402;
export const DEBUGCON_READBACK = 0xe9;
export const DEBUGCON_SOURCE = "debugcon";
/** POST-code changes logged before the log goes quiet (the code stays readable). */
export const POST_LOG_LIMIT = 256;

function allOnes(size: AccessSize): number {
  return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
}

export class PostCodePort implements IoDevice {
  readonly name = "post-code";
  /** The last POST code written. */
  code = 0;
  /** Writes to the port. */
  writes = 0;
  private logged = 0;

  constructor(private readonly logger?: Logger, private readonly events: DeviceEvents = NO_EVENTS) {}

  read(offset: number, size: AccessSize): number {
    if (offset !== 0 || size !== 1) {
      this.events.invalidRead(offset, size);
      return allOnes(size);
    }
    return this.code;
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset !== 0 || size !== 1) {
      this.events.invalidWrite(offset, size, value);
      return;
    }
    value &= 0xff;
    this.writes++;
    if (value === this.code) return;
    this.code = value;
    if (this.logger && this.logged < POST_LOG_LIMIT) {
      this.logged++;
      this.logger.debug(this.logged === POST_LOG_LIMIT
        ? `POST code 0x${value.toString(16).padStart(2, "0")} (further POST codes not logged)`
        : `POST code 0x${value.toString(16).padStart(2, "0")}`);
    }
  }
}

/** The debug console: one device per port (0xE9, 0x402), both writing to the console. */
export class DebugConsolePort implements IoDevice {
  readonly name: string;

  constructor(
    private readonly console: Pick<Console, "write">,
    port: number,
    private readonly events: DeviceEvents = NO_EVENTS,
  ) {
    this.name = `debugcon@0x${port.toString(16)}`;
  }

  read(offset: number, size: AccessSize): number {
    if (offset !== 0 || size !== 1) {
      this.events.invalidRead(offset, size);
      return allOnes(size);
    }
    return DEBUGCON_READBACK;
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset !== 0 || size !== 1) {
      this.events.invalidWrite(offset, size, value);
      return;
    }
    this.console.write(DEBUGCON_SOURCE, value & 0xff);
  }
}

// System Control Port A (I/O 0x92, "fast A20 and reset") and the A20 gate it shares
// with the i8042. Sources: Intel 82371AB PIIX4 datasheet, "Port 92h" (bit 1 fast A20,
// bit 0 fast INIT on a 0->1 transition, bits 7:2 reserved); SMSC LPC47M14x datasheet,
// "Port 92": ALT_A20 is OR'ed with the keyboard controller's A20GATE to drive A20M#.
//
// Emulated: bits 1:0 stored and read back; bit 1 drives the alternate A20 input of the
// gate; bit 0 going 0->1 asks the platform for a reset (it must be written back to 0
// before another pulse, as the datasheets say). Reserved bits 7:2 read 0 (PIIX4).
// Not emulated: the INIT#-vs-RESET distinction (INIT keeps some CPU state; the platform
// only knows "reset"), the pulse delay.
import type { AccessSize, DeviceEvents, IoDevice, Platform } from "../../../src/monitor/api.js";
import { NO_EVENTS } from "../../../src/monitor/api.js";

export const PORT92_BASE = 0x92;
export const PORT92_FAST_RESET = 0x01;
export const PORT92_FAST_A20 = 0x02;

/**
 * A20M# as the chipset derives it: enabled when either the i8042's A20GATE output
 * (output-port bit 1) or port 0x92's ALT_A20 bit is high (SMSC LPC47M14x, "Port 92").
 */
export class A20Gate {
  private kbc: boolean;
  private alt = false;

  /** `kbcPresent`: an i8042 drives A20GATE (power-on high, as its output port resets to 0xCF). */
  constructor(private readonly platform: Pick<Platform, "setA20">, kbcPresent: boolean) {
    this.kbc = kbcPresent;
  }

  setKbc(enabled: boolean): void {
    this.kbc = enabled;
    this.platform.setA20(this.kbc || this.alt);
  }

  setAlt(enabled: boolean): void {
    this.alt = enabled;
    this.platform.setA20(this.kbc || this.alt);
  }
}

export class Port92 implements IoDevice {
  readonly name = "port92";
  private value = 0;

  constructor(
    private readonly gate: A20Gate,
    private readonly platform: Pick<Platform, "requestReset">,
    private readonly events: DeviceEvents = NO_EVENTS,
  ) {}

  read(offset: number, size: AccessSize): number {
    if (offset !== 0 || size !== 1) {
      this.events.invalidRead(offset, size);
      return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
    }
    return this.value;
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset !== 0 || size !== 1) {
      this.events.invalidWrite(offset, size, value);
      return;
    }
    const old = this.value;
    this.value = value & (PORT92_FAST_A20 | PORT92_FAST_RESET);
    this.gate.setAlt((value & PORT92_FAST_A20) !== 0);
    if ((value & PORT92_FAST_RESET) !== 0 && (old & PORT92_FAST_RESET) === 0) this.platform.requestReset();
  }
}

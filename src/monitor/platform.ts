// The monitor's Platform (monitor/api.ts): the chipset inputs that devices drive.
// - A20: the gate goes to the guest-physical space through the gpspaceSetA20 syscall, which
//   the kernel applies to every CPU access of the backend's engine; the realmode emulator's
//   own core reads `a20()` before each timeslice. Power-on state: enabled, as QEMU leaves
//   it for the boot sector (its i8042 output port resets with the A20 bit set) and as
//   SeaBIOS enables it during POST; the PC/AT's hardware default (disabled) is not modelled.
// - Reset: a request stops the run (RunResult "shutdown", RESET_MESSAGE). A full platform
//   reset (CPU to its reset vector, devices to power-on state) is a later issue.
import { SYS_ERR_NAMES, SysErr } from "../kernel/api.js";
import type { CPtr, Syscalls } from "../kernel/api.js";
import type { Logger, Platform } from "./api.js";

export const RESET_MESSAGE = "reset requested by the guest (port 0x92 / i8042 pulse)";

export class MachinePlatform implements Platform {
  #a20 = true;
  #onReset: (() => void) | undefined;
  /** Reset requests since the machine was built. */
  resetRequests = 0;

  constructor(
    private readonly sys: Syscalls,
    private readonly gpspace: CPtr,
    private readonly logger?: Logger,
  ) {
    this.#apply(true);
  }

  setA20(enabled: boolean): void {
    enabled = enabled === true;
    if (enabled === this.#a20) return;
    this.#a20 = enabled;
    this.#apply(enabled);
  }

  a20(): boolean {
    return this.#a20;
  }

  requestReset(): void {
    this.resetRequests++;
    this.#onReset?.();
  }

  /** The machine's reaction to a reset request (set once the run loop exists). */
  onReset(fn: () => void): void {
    this.#onReset = fn;
  }

  #apply(enabled: boolean): void {
    const err = this.sys.gpspaceSetA20(this.gpspace, enabled);
    // A refusal is a monitor wiring bug, not something the guest did: report, never throw at the guest.
    if (err !== SysErr.Ok) this.logger?.warn(`kernel refused gpspaceSetA20(${enabled}): ${SYS_ERR_NAMES[err] ?? err}`);
  }
}

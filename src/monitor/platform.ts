// The monitor's Platform (monitor/api.ts): the chipset inputs that devices drive.
// - A20: the gate goes to the guest-physical space through the gpspaceSetA20 syscall, which
//   the kernel applies to every CPU access of the backend's engine; the realmode emulator's
//   own core reads `a20()` before each timeslice. Power-on state: enabled, as QEMU leaves
//   it for the boot sector (its i8042 output port resets with the A20 bit set) and as
//   SeaBIOS enables it during POST; the PC/AT's hardware default (disabled) is not modelled.
// - Reset: a request stops the run (RunResult "shutdown", RESET_MESSAGE). A full platform
//   reset (CPU to its reset vector, devices to power-on state) is a later issue.
// - FERR# (FerrLatch): the PC's x87 error path for CR0.NE = 0 (SDM Vol. 1 8.7, D.2.1):
//   FERR# from the core raises IRQ 13, held until the guest writes port F0h. IGNNE# is
//   not modelled (the core lets the waiting x87 instruction proceed anyway). Wired to
//   the kernel engine's cores; the realmode plugin's own core is not wired.
import { SYS_ERR_NAMES, SysErr } from "../kernel/api.js";
import type { CPtr, Syscalls } from "../kernel/api.js";
import type { AccessSize } from "../x86/types.js";
import type { IoDevice, IrqLine, Logger, Platform } from "./api.js";

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

/** The chipset's x87 error latch port (PC/AT; PIIX "coprocessor error" register) and its IRQ. */
export const FERR_PORT = 0xf0, FERR_IRQ = 13;

/**
 * FERR# to IRQ 13 (SDM Vol. 1 D.2.1): a rising FERR# raises IRQ 13; any write to port
 * F0h lowers it (the DOS-compatible handler writes F0h, then FNCLEX/FNINIT clears the
 * x87 error and with it FERR#). Reads of F0h decode nothing: all-ones.
 */
export class FerrLatch implements IoDevice {
  readonly name = "ferr-latch";
  /** FERR# assertions seen. */
  asserts = 0;
  constructor(private readonly irq13: IrqLine) {}

  /** Connect a core's FERR# output (X87.onFerr). */
  attach(cpu: { readonly fpu: { onFerr: (asserted: boolean) => void } }): void {
    cpu.fpu.onFerr = (asserted) => this.ferr(asserted);
  }

  ferr(asserted: boolean): void {
    if (!asserted) return; // latched: only the F0h write clears IRQ 13
    this.asserts++;
    this.irq13.raise();
  }

  read(offset: number, size: AccessSize): number {
    void offset; void size;
    return 0xffffffff;
  }

  write(offset: number, size: AccessSize, value: number): void {
    void offset; void size; void value;
    this.irq13.lower();
  }
}

// How the BIOS talks to chips. The BIOS runs in the monitor, not in the guest, so it
// cannot execute IN/OUT: it reaches the PIC, PIT, RTC, keyboard controller and UARTs
// through the monitor's PIO bus (Tokens.PioBus), exactly as a guest's port access would
// after its exit. Without a bus (unit tests of pure services) every read is all-ones and
// writes go nowhere, which is what an empty ISA bus answers.
import type { AccessSize, Bus } from "../../../../src/monitor/api.js";

export interface PortAccess {
  in(port: number, size: AccessSize): number;
  out(port: number, size: AccessSize, value: number): void;
}

export const NO_PORTS: PortAccess = {
  in: (_p, size) => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff),
  out: () => {},
};

/** PortAccess over the monitor's PIO bus. */
export function busPorts(bus: Bus): PortAccess {
  return {
    in: (port, size) => bus.read(port & 0xffff, size),
    out: (port, size, value) => bus.write(port & 0xffff, size, value),
  };
}

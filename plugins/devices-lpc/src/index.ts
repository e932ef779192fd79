// devices-lpc: legacy PC devices on the LPC/ISA side. Today: COM1, a 16550 UART.
// The device model (uart16550.ts) is pure; this file only wires it into the VM container.
import { instanceCachingFactory, type DependencyContainer } from "tsyringe";
import { Tokens } from "../../../src/monitor/api.js";
import type { Console, IoDeviceContribution, IrqLines, MonitorPlugin } from "../../../src/monitor/api.js";
import { Uart16550, UART_REGISTER_COUNT } from "./uart16550.js";
import { parseDevicesLpcConfig, type ComPortConfig, type DevicesLpcConfig } from "./schema.js";

export { Uart16550 } from "./uart16550.js";
export type { Uart16550State } from "./uart16550.js";
export type { DevicesLpcConfig } from "./schema.js";

/** COM1 at I/O 0x3F8-0x3FF, IRQ 4: the IBM PC/AT assignment (PC/AT Technical Reference, I/O address map). */
export const COM1_BASE = 0x3f8;
export const COM1_IRQ = 4;

/**
 * Host bytes wait here while the guest's RX FIFO is full, as a host with flow control
 * would hold them. Capped so the host cannot grow it without bound.
 */
export const COM_HOST_BACKLOG_MAX = 64 * 1024;

/** A UART wired to the console: output to `console.write(source)`, console input to RX. */
export class ConsoleSerialPort {
  readonly uart: Uart16550;
  private readonly backlog: number[] = [];
  private backlogHead = 0;
  /** Host bytes dropped because the backlog was full. */
  dropped = 0;

  constructor(console: Console, irqs: IrqLines, irq: number, source: string, cfg: ComPortConfig) {
    this.uart = new Uart16550(
      irqs.line(irq),
      (b) => console.write(source, b),
      undefined,
      () => this.feed(),
      `uart16550@${source}`,
    );
    if (cfg.input === "console") console.onInput((b) => this.hostByte(b));
  }

  private hostByte(b: number): void {
    if (this.backlog.length - this.backlogHead >= COM_HOST_BACKLOG_MAX) {
      this.dropped++;
      return;
    }
    this.backlog.push(b & 0xff);
    this.feed();
  }

  private feed(): void {
    while (this.backlogHead < this.backlog.length && this.uart.rxFree() > 0) {
      this.uart.receive(this.backlog[this.backlogHead++]!);
    }
    if (this.backlogHead === this.backlog.length && this.backlogHead > 0) {
      this.backlog.length = 0;
      this.backlogHead = 0;
    }
  }
}

const plugin: MonitorPlugin<DevicesLpcConfig> = {
  id: "devices-lpc",
  phase: "device",
  parseConfig: parseDevicesLpcConfig,
  register(vm: DependencyContainer, config: DevicesLpcConfig): void {
    if (config.com1.enabled) {
      const cfg = config.com1;
      vm.register<IoDeviceContribution>(Tokens.IoDeviceContribution, {
        // Cached: resolving the contributions twice must not make a second UART on the console.
        useFactory: instanceCachingFactory<IoDeviceContribution>((c) => {
          const port = new ConsoleSerialPort(c.resolve(Tokens.Console), c.resolve(Tokens.IrqLines), COM1_IRQ, "com1", cfg);
          return { device: port.uart, ranges: [{ space: "pio", base: COM1_BASE, length: UART_REGISTER_COUNT }] };
        }),
      });
    }
  },
};

export default plugin;

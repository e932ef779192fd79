// devices-lpc: legacy PC devices on the LPC/ISA side: 8259A PICs, the i8042 keyboard controller,
// port 0x92, the POST/debug ports, COM1-4 (16550A UARTs with host backends), the 8254 PIT
// with port 0x61, the MC146818 RTC/CMOS.
// The device model (uart16550.ts) is pure; this file only wires it into the VM container.
import { instanceCachingFactory, Lifecycle, type DependencyContainer, type InjectionToken } from "tsyringe";
import { ConfigError, joinPath, Tokens } from "../../../src/monitor/api.js";
import type { IoDeviceContribution, MonitorPlugin, Platform, VirtualClock } from "../../../src/monitor/api.js";
import { UART_REGISTER_COUNT } from "./uart16550.js";
import { I8042, I8042_AUX_IRQ, I8042_COMMAND_PORT, I8042_DATA_PORT, I8042_KBD_IRQ } from "./i8042.js";
import { A20Gate, Port92, PORT92_BASE } from "./port92.js";
import { DEBUGCON_OVMF_PORT, DEBUGCON_PORT, DebugConsolePort, POST_PORT, PostCodePort } from "./debug-port.js";
import {
  ConsoleSerialBackend, FileSerialBackend, MemorySerialBackend, NullSerialBackend, SERIAL_BACKLOG_MAX, SerialPort,
  TcpSerialBackend, type SerialBackend,
} from "./serial-backends.js";
import { I8259Pic, PIC_ELCR_BASE, PIC_MASTER_BASE, PIC_PORT_COUNT, PIC_SLAVE_BASE } from "./i8259-pic.js";
import { devicesLpcConfigPath, parseDevicesLpcConfig, type DevicesLpcConfig } from "./schema.js";
import { I8254Pit, PIT_REGISTER_COUNT } from "./i8254-pit.js";
import { Port61 } from "./port61.js";
import { buildCmosNvram, Mc146818Rtc, RTC_PORT_COUNT } from "./mc146818-rtc.js";

export { Uart16550 } from "./uart16550.js";
export type { Uart16550State } from "./uart16550.js";
export { I8042 } from "./i8042.js";
export { Ps2Keyboard } from "./ps2-keyboard.js";
export { A20Gate, Port92 } from "./port92.js";
export { PostCodePort, DebugConsolePort } from "./debug-port.js";
export {
  SerialPort, SerialBackendError, ConsoleSerialBackend, FileSerialBackend, TcpSerialBackend, MemorySerialBackend, NullSerialBackend,
} from "./serial-backends.js";
export type { SerialBackend, SerialBackendHost } from "./serial-backends.js";
export { I8259Pic, I8259Chip, I8259StateError } from "./i8259-pic.js";
export type { I8259State, I8259ChipState } from "./i8259-pic.js";
export type { DevicesLpcConfig } from "./schema.js";
export { I8254Pit, I8254StateError, PIT_CLOCK_HZ } from "./i8254-pit.js";
export type { I8254State } from "./i8254-pit.js";
export { Port61 } from "./port61.js";
export type { Port61State } from "./port61.js";
export { Mc146818Rtc, Mc146818StateError, buildCmosNvram } from "./mc146818-rtc.js";
export type { Mc146818State, CmosLayout } from "./mc146818-rtc.js";

/** COM1 at I/O 0x3F8-0x3FF, IRQ 4: the IBM PC/AT assignment (PC/AT Technical Reference, I/O address map). */
export const COM1_BASE = 0x3f8;
export const COM1_IRQ = 4;
/**
 * COM1-COM4 as the PC assigns them: 0x3F8/IRQ 4, 0x2F8/IRQ 3 (PC/AT Technical Reference,
 * I/O address map), 0x3E8/IRQ 4, 0x2E8/IRQ 3 (the de-facto COM3/COM4 addresses the BIOS
 * and Linux's 8250 driver probe, sharing IRQs 4 and 3; Linux SERIAL_PORT_DFNS).
 */
export const COM_PORTS = [
  { name: "com1", base: 0x3f8, irq: 4 },
  { name: "com2", base: 0x2f8, irq: 3 },
  { name: "com3", base: 0x3e8, irq: 4 },
  { name: "com4", base: 0x2e8, irq: 3 },
] as const;

/**
 * Host bytes wait here while the guest's RX FIFO is full, as a host with flow control
 * would hold them. Capped so the host cannot grow it without bound.
 */
export const COM_HOST_BACKLOG_MAX = SERIAL_BACKLOG_MAX;

/**
 * Per-VM host resources of this plugin (serial ports, their backends, console
 * subscriptions). The container constructs it, so `vm.dispose()` closes every backend
 * (TCP servers included) through `dispose()`.
 */
export class LpcResources {
  readonly serialPorts = new Map<string, SerialPort>();
  readonly backends = new Map<string, SerialBackend>();
  private readonly disposers: Array<() => void | Promise<void>> = [];
  i8042: I8042 | undefined;
  onDispose(fn: () => void | Promise<void>): void {
    this.disposers.push(fn);
  }
  async dispose(): Promise<void> {
    const fns = this.disposers.splice(0);
    const backends = [...this.backends.values()];
    this.backends.clear();
    for (const fn of fns) await fn();
    await Promise.all(backends.map((b) => b.close()));
  }
}

/** Resolve to this VM's LpcResources (tests use it to reach memory backends and the i8042). */
export const LPC_RESOURCES = Symbol.for("hvkit:devices-lpc:Resources") as InjectionToken<LpcResources>;

/** A Platform for containers without a machine (unit tests): A20 stays enabled, resets are ignored. */
const NO_PLATFORM: Platform = { setA20() {}, a20: () => true, requestReset() {} };

function platformOf(c: DependencyContainer): Platform {
  return c.isRegistered(Tokens.Platform, true) ? c.resolve(Tokens.Platform) : NO_PLATFORM;
}

function clockOf(c: DependencyContainer): VirtualClock | undefined {
  return c.isRegistered(Tokens.Clock, true) ? c.resolve(Tokens.Clock) : undefined;
}

/**
 * The i8042, port 0x92, the debug ports and COM1-4. Host resources (files, TCP servers)
 * open here so a failure is a ConfigError at assembly; TCP listening makes this async.
 */
function registerChipset(vm: DependencyContainer, config: DevicesLpcConfig, path: string): void | Promise<void> {
  vm.register(LPC_RESOURCES, { useClass: LpcResources }, { lifecycle: Lifecycle.ContainerScoped });
  const res = (): LpcResources => vm.resolve(LPC_RESOURCES);
  const gateOf = instanceCachingFactory<A20Gate>((c) => new A20Gate(platformOf(c), config.i8042.enabled));

  if (config.i8042.enabled) {
    const kbcOf = instanceCachingFactory<I8042>((c) => {
      const irqs = c.resolve(Tokens.IrqLines);
      const kbc = new I8042({ irq1: irqs.line(I8042_KBD_IRQ), irq12: irqs.line(I8042_AUX_IRQ), a20: gateOf(c), platform: platformOf(c) });
      const r = c.resolve(LPC_RESOURCES);
      r.i8042 = kbc;
      if (config.i8042.input === "console") {
        // An input burst arrives byte by byte; a trailing ESC waits for the end of the burst.
        let flushQueued = false;
        const flush = (): void => { flushQueued = false; kbc.flushInput(); };
        r.onDispose(c.resolve(Tokens.Console).onInput((b) => {
          kbc.hostInput(b);
          if (!flushQueued) { flushQueued = true; queueMicrotask(flush); }
        }));
      }
      return kbc;
    });
    vm.register<IoDeviceContribution>(Tokens.IoDeviceContribution, {
      useFactory: instanceCachingFactory<IoDeviceContribution>((c) => ({ device: kbcOf(c).dataPort, ranges: [{ space: "pio", base: I8042_DATA_PORT, length: 1 }] })),
    });
    vm.register<IoDeviceContribution>(Tokens.IoDeviceContribution, {
      useFactory: instanceCachingFactory<IoDeviceContribution>((c) => ({ device: kbcOf(c).commandPort, ranges: [{ space: "pio", base: I8042_COMMAND_PORT, length: 1 }] })),
    });
  }
  if (config.port92.enabled) {
    vm.register<IoDeviceContribution>(Tokens.IoDeviceContribution, {
      useFactory: instanceCachingFactory<IoDeviceContribution>((c) => ({ device: new Port92(gateOf(c), platformOf(c)), ranges: [{ space: "pio", base: PORT92_BASE, length: 1 }] })),
    });
  }
  if (config.debugPorts.enabled) {
    vm.register<IoDeviceContribution>(Tokens.IoDeviceContribution, {
      useFactory: instanceCachingFactory<IoDeviceContribution>((c) => ({
        device: new PostCodePort(c.isRegistered(Tokens.Logger, true) ? c.resolve(Tokens.Logger) : undefined),
        ranges: [{ space: "pio", base: POST_PORT, length: 1 }],
      })),
    });
    for (const port of [DEBUGCON_PORT, DEBUGCON_OVMF_PORT]) {
      vm.register<IoDeviceContribution>(Tokens.IoDeviceContribution, {
        useFactory: instanceCachingFactory<IoDeviceContribution>((c) => ({ device: new DebugConsolePort(c.resolve(Tokens.Console), port), ranges: [{ space: "pio", base: port, length: 1 }] })),
      });
    }
  }

  const listens: Promise<void>[] = [];
  for (const com of COM_PORTS) {
    const cfg = config[com.name];
    if (!cfg.enabled) continue;
    const at = joinPath(path, [com.name, "backend"]);
    const b = cfg.backend;
    // Host resources open now, so a bad path or a busy port is a config error.
    let eager: SerialBackend | undefined;
    try {
      if (typeof b === "object" && "file" in b) eager = new FileSerialBackend(b.file);
      else if (typeof b === "object") eager = new TcpSerialBackend(b.tcp);
    } catch (e) {
      throw new ConfigError(at, (e as Error).message);
    }
    if (b === "memory") eager = new MemorySerialBackend();
    if (eager) res().backends.set(com.name, eager);
    if (eager instanceof TcpSerialBackend) {
      const tcp = eager;
      listens.push(tcp.listen().then(() => {}, (e: Error) => { throw new ConfigError(at, e.message); }));
    }
    vm.register<IoDeviceContribution>(Tokens.IoDeviceContribution, {
      // Cached: resolving the contributions twice must not make a second UART on the backend.
      useFactory: instanceCachingFactory<IoDeviceContribution>((c) => {
        const r = c.resolve(LPC_RESOURCES);
        const backend = eager ?? (b === "console"
          ? new ConsoleSerialBackend(c.resolve(Tokens.Console), com.name, cfg.input === "console")
          : new NullSerialBackend());
        r.backends.set(com.name, backend);
        const port = new SerialPort(com.name, backend, c.resolve(Tokens.IrqLines).line(com.irq), clockOf(c));
        r.serialPorts.set(com.name, port);
        return { device: port.uart, ranges: [{ space: "pio", base: com.base, length: UART_REGISTER_COUNT }] };
      }),
    });
  }
  if (listens.length > 0) return Promise.all(listens).then(() => {});
}

// ---- 8254 PIT, port 0x61, MC146818 RTC (PC/AT Technical Reference, I/O address map)

export const PIT_BASE = 0x40;
export const PIT_IRQ = 0;
export const PORT61_BASE = 0x61;
export const RTC_BASE = 0x70;
export const RTC_IRQ = 8;

/** A device that needs a host service the VM container does not provide (an assembly bug). */
export class DevicesLpcWiringError extends Error {
  override readonly name = "DevicesLpcWiringError";
}

function requireClock(c: DependencyContainer, device: string): VirtualClock {
  if (!c.isRegistered(Tokens.Clock, true)) {
    throw new DevicesLpcWiringError(`devices-lpc: the ${device} needs the VM's virtual clock (Tokens.Clock), which is not registered`);
  }
  return c.resolve(Tokens.Clock);
}

function registerTimers(vm: DependencyContainer, config: DevicesLpcConfig): void {
  if (config.pit.enabled) {
    // One 8254 shared by its ports and port 0x61 (counter 2's gate and OUT).
    const pitOf = instanceCachingFactory<I8254Pit>((c) => new I8254Pit(requireClock(c, "8254 PIT"), c.resolve(Tokens.IrqLines).line(PIT_IRQ)));
    vm.register<IoDeviceContribution>(Tokens.IoDeviceContribution, {
      useFactory: instanceCachingFactory<IoDeviceContribution>((c) => ({ device: pitOf(c), ranges: [{ space: "pio", base: PIT_BASE, length: PIT_REGISTER_COUNT }] })),
    });
    vm.register<IoDeviceContribution>(Tokens.IoDeviceContribution, {
      useFactory: instanceCachingFactory<IoDeviceContribution>((c) => ({ device: new Port61(pitOf(c), requireClock(c, "port 0x61")), ranges: [{ space: "pio", base: PORT61_BASE, length: 1 }] })),
    });
  }
  if (config.rtc.enabled) {
    const rtc = config.rtc;
    vm.register<IoDeviceContribution>(Tokens.IoDeviceContribution, {
      useFactory: instanceCachingFactory<IoDeviceContribution>((c) => {
        const nvram = buildCmosNvram({ memoryBytes: c.resolve(Tokens.GuestMemory).size, floppies: rtc.floppies, hardDisks: rtc.hardDisks });
        const startTimeMs = rtc.time === "host" ? Date.now() : Date.parse(rtc.time);
        const device = new Mc146818Rtc(requireClock(c, "MC146818 RTC"), c.resolve(Tokens.IrqLines).line(RTC_IRQ), { startTimeMs, nvram });
        return { device, ranges: [{ space: "pio", base: RTC_BASE, length: RTC_PORT_COUNT }] };
      }),
    });
  }
}

const plugin: MonitorPlugin<DevicesLpcConfig> = {
  id: "devices-lpc",
  phase: "device",
  parseConfig: parseDevicesLpcConfig,
  register(vm: DependencyContainer, config: DevicesLpcConfig): void | Promise<void> {
    if (config.pic.enabled) {
      // One pair per VM: the interrupt controller and its three I/O ranges are the same object.
      const pic = new I8259Pic();
      vm.register(Tokens.InterruptController, { useValue: pic });
      for (const [device, base] of [[pic.masterIo, PIC_MASTER_BASE], [pic.slaveIo, PIC_SLAVE_BASE], [pic.elcrIo, PIC_ELCR_BASE]] as const) {
        vm.register<IoDeviceContribution>(Tokens.IoDeviceContribution, {
          useValue: { device, ranges: [{ space: "pio", base, length: PIC_PORT_COUNT }] },
        });
      }
    }
    registerTimers(vm, config);
    return registerChipset(vm, config, devicesLpcConfigPath(config));
  },
};

export default plugin;

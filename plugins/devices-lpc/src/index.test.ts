import { describe, expect, it } from "vitest";
import { container } from "tsyringe";
import { EventEmitter } from "eventemitter3";
import { ConfigError, Tokens } from "../../../src/monitor/api.js";
import type { Console, ConsoleEvents, IrqLine, IrqLines } from "../../../src/monitor/api.js";
import { ManualClock } from "./testing-clock.js";
import plugin, { COM1_BASE, COM1_IRQ, COM_HOST_BACKLOG_MAX } from "./index.js";
import { IER_ERBFI, MCR_OUT2, UART_IER, UART_LSR, UART_MCR, UART_RBR, UART_THR, LSR_DR, UART_FCR, FCR_FIFO_ENABLE } from "./uart16550.js";

class TestConsole implements Console {
  readonly events = new EventEmitter<ConsoleEvents>();
  readonly written: Array<[string, number]> = [];
  private listeners: Array<(b: number) => void> = [];
  write(source: string, byte: number): void { this.written.push([source, byte]); this.events.emit("output", byte, source); }
  onInput(l: (b: number) => void): () => void {
    this.listeners.push(l);
    return () => { this.listeners = this.listeners.filter((x) => x !== l); };
  }
  type(bytes: Uint8Array | string): void {
    const arr = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    for (const b of arr) for (const l of this.listeners) l(b);
  }
}

class TestIrqs implements IrqLines {
  levels = new Map<number, boolean>();
  line(irq: number): IrqLine {
    return { raise: () => this.levels.set(irq, true), lower: () => this.levels.set(irq, false) };
  }
  level(irq: number): boolean { return this.levels.get(irq) ?? false; }
}

function assemble(options: unknown) {
  const vm = container.createChildContainer();
  const console = new TestConsole();
  const irqs = new TestIrqs();
  vm.register(Tokens.Console, { useValue: console });
  vm.register(Tokens.IrqLines, { useValue: irqs });
  vm.register(Tokens.Clock, { useValue: new ManualClock() });
  // These tests look at COM1 alone: the PIC is off unless the options name it.
  const opts = typeof options === "object" && options !== null && "pic" in options ? options : { pic: { enabled: false }, ...(options as object) };
  // Nor the chipset devices of chipset.test.ts (i8042, port 0x92, debug ports), unless named.
  // Nor the timers of timers-registration.test.ts (PIT, RTC), unless named.
  const chipsetOff = {
    i8042: { enabled: false }, port92: { enabled: false }, debugPorts: { enabled: false },
    pit: { enabled: false }, rtc: { enabled: false },
  };
  const cfg = plugin.parseConfig({ ...chipsetOff, ...(opts as object) }, "plugins[1].options");
  plugin.register(vm, cfg, undefined as never);
  const contributions = vm.isRegistered(Tokens.IoDeviceContribution) ? vm.resolveAll(Tokens.IoDeviceContribution) : [];
  return { vm, console, irqs, contributions };
}

describe("devices-lpc plugin", () => {
  it("declares its id and the device phase", () => {
    expect(plugin.id).toBe("devices-lpc");
    expect(plugin.phase).toBe("device");
  });

  it("defaults to COM1 enabled with console input", () => {
    expect(plugin.parseConfig(undefined, "p")).toMatchObject({ com1: { enabled: true, input: "console" } });
    expect(plugin.parseConfig({ com1: {} }, "p")).toMatchObject({ com1: { enabled: true, input: "console" } });
  });

  it("rejects an unknown key with its full JSON path", () => {
    expect(() => plugin.parseConfig({ com1: { irqq: 4 } }, "plugins[1].options")).toThrow(ConfigError);
    try {
      plugin.parseConfig({ com1: { irqq: 4 } }, "plugins[1].options");
    } catch (e) {
      expect((e as ConfigError).path).toBe("plugins[1].options.com1.irqq");
    }
    expect(() => plugin.parseConfig({ com5: {} }, "plugins[0].options")).toThrow(/plugins\[0\]\.options\.com5/);
  });

  it("rejects a bad value with the path of that value", () => {
    expect(() => plugin.parseConfig({ com1: { input: "tty" } }, "plugins[1].options"))
      .toThrow(/plugins\[1\]\.options\.com1\.input/);
  });

  it("contributes COM1 at 0x3F8+8, writing to the console as com1 and raising IRQ 4", () => {
    const { contributions, console, irqs } = assemble({});
    expect(contributions).toHaveLength(1);
    const [c] = contributions;
    expect(c!.ranges).toEqual([{ space: "pio", base: COM1_BASE, length: 8 }]);
    c!.device.write(UART_THR, 1, 0x68);
    expect(console.written).toEqual([["com1", 0x68]]);
    c!.device.write(UART_IER, 1, IER_ERBFI);
    c!.device.write(UART_MCR, 1, MCR_OUT2);
    console.type("x");
    expect(irqs.level(COM1_IRQ)).toBe(true);
    expect(c!.device.read(UART_RBR, 1)).toBe(0x78);
    expect(irqs.level(COM1_IRQ)).toBe(false);
  });

  it("resolving the contributions twice yields the same UART", () => {
    const { vm, contributions } = assemble({});
    expect(vm.resolveAll(Tokens.IoDeviceContribution)[0]).toBe(contributions[0]);
  });

  it("holds typed input beyond the FIFO and feeds it as the guest reads", () => {
    const { contributions, console } = assemble({});
    const dev = contributions[0]!.device;
    dev.write(UART_FCR, 1, FCR_FIFO_ENABLE);
    const text = "abcdefghijklmnopqrstuvwxyz0123456789";
    console.type(text);
    let got = "";
    while (dev.read(UART_LSR, 1) & LSR_DR) got += String.fromCharCode(dev.read(UART_RBR, 1));
    expect(got).toBe(text);
    expect(COM_HOST_BACKLOG_MAX).toBeGreaterThan(text.length);
  });

  it("ignores console input when input is none", () => {
    const { contributions, console } = assemble({ com1: { input: "none" } });
    console.type("z");
    expect(contributions[0]!.device.read(UART_LSR, 1) & LSR_DR).toBe(0);
  });

  it("registers the 8259A pair by default as the interrupt controller, on 0x20, 0xA0 and 0x4D0", () => {
    expect(plugin.parseConfig(undefined, "p")).toMatchObject({ pic: { enabled: true } });
    const { vm, contributions } = assemble({ pic: {}, com1: { enabled: false } });
    const pic = vm.resolve(Tokens.InterruptController);
    expect(contributions.map((c) => c.ranges[0]!.base)).toEqual([0x20, 0xa0, 0x4d0]);
    // The contributed master ports program the same controller the monitor asks for vectors.
    const master = contributions[0]!.device;
    for (const v of [0x11, 0x08, 0x04, 0x01]) master.write(v === 0x11 ? 0 : 1, 1, v);
    master.write(1, 1, 0x00);
    pic.setIrq(1, true);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x09);
  });

  it("registers no interrupt controller with pic.enabled false, and rejects unknown pic keys", () => {
    const { vm } = assemble({ pic: { enabled: false } });
    expect(vm.isRegistered(Tokens.InterruptController)).toBe(false);
    expect(() => plugin.parseConfig({ pic: { base: 1 } }, "plugins[1].options")).toThrow(/plugins\[1\]\.options\.pic\.base/);
  });

  it("contributes nothing when COM1 is disabled", () => {
    expect(assemble({ com1: { enabled: false } }).contributions).toEqual([]);
  });
});

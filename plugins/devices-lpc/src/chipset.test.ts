// The plugin's wiring of the i8042, port 0x92, the debug ports and COM1-4 (the PIC, PIT
// and RTC are switched off here; their own tests cover them).
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { container } from "tsyringe";
import { EventEmitter } from "eventemitter3";
import { ConfigError, Tokens } from "../../../src/monitor/api.js";
import type { Console, ConsoleEvents, IoDeviceContribution, IrqLine, IrqLines, Platform } from "../../../src/monitor/api.js";
import plugin, { LPC_RESOURCES, MemorySerialBackend, TcpSerialBackend } from "./index.js";
import { UART_LSR, UART_RBR, UART_THR, LSR_DR } from "./uart16550.js";

class TestConsole implements Console {
  readonly events = new EventEmitter<ConsoleEvents>();
  readonly written: Array<[string, number]> = [];
  private listeners: Array<(b: number) => void> = [];
  write(source: string, byte: number): void { this.written.push([source, byte]); }
  onInput(l: (b: number) => void): () => void {
    this.listeners.push(l);
    return () => { this.listeners = this.listeners.filter((x) => x !== l); };
  }
  type(bytes: string): void {
    for (const b of new TextEncoder().encode(bytes)) for (const l of this.listeners) l(b);
  }
  get subscribers(): number { return this.listeners.length; }
}

class TestIrqs implements IrqLines {
  levels = new Map<number, boolean>();
  line(irq: number): IrqLine {
    return { raise: () => this.levels.set(irq, true), lower: () => this.levels.set(irq, false) };
  }
  level(irq: number): boolean { return this.levels.get(irq) ?? false; }
}

class FakePlatform implements Platform {
  on = true;
  resets = 0;
  setA20(e: boolean): void { this.on = e; }
  a20(): boolean { return this.on; }
  requestReset(): void { this.resets++; }
}

async function assemble(options: Record<string, unknown>) {
  const vm = container.createChildContainer();
  const console = new TestConsole();
  const irqs = new TestIrqs();
  const platform = new FakePlatform();
  vm.register(Tokens.Console, { useValue: console });
  vm.register(Tokens.IrqLines, { useValue: irqs });
  vm.register(Tokens.Platform, { useValue: platform });
  const cfg = plugin.parseConfig({ pic: { enabled: false }, pit: { enabled: false }, rtc: { enabled: false }, ...options }, "plugins[1].options");
  await plugin.register(vm, cfg, undefined as never);
  const contributions = vm.resolveAll<IoDeviceContribution>(Tokens.IoDeviceContribution);
  const at = (port: number) => {
    const c = contributions.find((x) => x.ranges.some((r) => r.space === "pio" && port >= r.base && port < r.base + r.length));
    if (!c) throw new Error(`nothing at port 0x${port.toString(16)}`);
    const base = c.ranges.find((r) => port >= r.base && port < r.base + r.length)!.base;
    return { read: () => c.device.read(port - base, 1), write: (v: number) => c.device.write(port - base, 1, v) };
  };
  return { vm, console, irqs, platform, contributions, at };
}

describe("devices-lpc chipset wiring", () => {
  it("places the i8042, port 0x92, 0x80, 0xE9, 0x402 and COM1 by default (COM2-4 off)", async () => {
    const { contributions } = await assemble({});
    const bases = contributions.flatMap((c) => c.ranges.map((r) => r.base)).sort((a, b) => a - b);
    expect(bases).toEqual([0x60, 0x64, 0x80, 0x92, 0xe9, 0x3f8, 0x402]);
  });

  it("turns typed console input into set-1 scan codes on port 0x60 with IRQ 1", async () => {
    const { console, irqs, at } = await assemble({ com1: { input: "none" } });
    console.type("z");
    expect(irqs.level(1)).toBe(true);
    expect(at(0x64).read() & 1).toBe(1);
    expect([at(0x60).read(), at(0x60).read()]).toEqual([0x2c, 0xac]);
    expect(irqs.level(1)).toBe(false);
  });

  it("delivers a lone ESC as the Esc key at the end of the input burst", async () => {
    const { console, at } = await assemble({});
    console.type("\x1b");
    expect(at(0x64).read() & 1).toBe(0);
    await Promise.resolve();
    expect([at(0x60).read(), at(0x60).read()]).toEqual([0x01, 0x81]);
  });

  it("gates A20 through port 0x92 and the i8042 together, and resets through both", async () => {
    const { platform, at } = await assemble({});
    at(0x64).write(0xdd); // i8042 A20 off, port 0x92 bit 1 still 0
    expect(platform.on).toBe(false);
    at(0x92).write(0x02);
    expect(platform.on).toBe(true);
    at(0x92).write(0x03);
    at(0x64).write(0xfe);
    expect(platform.resets).toBe(2);
  });

  it("writes the debug console to the console as debugcon and keeps the POST code", async () => {
    const { console, at } = await assemble({});
    at(0xe9).write(0x41);
    at(0x402).write(0x42);
    expect(console.written).toEqual([["debugcon", 0x41], ["debugcon", 0x42]]);
    expect(at(0xe9).read()).toBe(0xe9);
    at(0x80).write(0x3c);
    expect(at(0x80).read()).toBe(0x3c);
  });

  it("puts COM2-4 at 0x2F8/IRQ 3, 0x3E8/IRQ 4, 0x2E8/IRQ 3 with their backends", async () => {
    const { vm, irqs, at } = await assemble({ com2: { backend: "memory" }, com3: { backend: "memory" }, com4: { backend: "none" } });
    const res = vm.resolve(LPC_RESOURCES);
    const com2 = res.backends.get("com2") as MemorySerialBackend;
    at(0x2f8).write(0x68);
    expect(com2.output).toEqual([0x68]);
    (res.backends.get("com3") as MemorySerialBackend).send("q");
    expect(at(0x3e8 + 5).read() & LSR_DR).toBe(LSR_DR);
    at(0x3e8 + 4).write(0x08); // OUT2
    at(0x3e8 + 1).write(0x01); // ERBFI
    expect(irqs.level(4)).toBe(true);
    at(0x2e8 + 4).write(0x08);
    at(0x2e8 + 1).write(0x02); // ETBEI: THRE at once
    expect(irqs.level(3)).toBe(true);
    expect(at(0x3e8).read()).toBe(0x71);
  });

  it("reports an unopenable file backend as a ConfigError at the backend's path", async () => {
    await expect(assemble({ com2: { backend: { file: "/nonexistent-dir/x.log" } } })).rejects.toThrow(ConfigError);
    await expect(assemble({ com2: { backend: { file: "/nonexistent-dir/x.log" } } })).rejects.toThrow(/com2\.backend/);
  });

  it("rejects a bad backend value with its path", () => {
    expect(() => plugin.parseConfig({ com3: { backend: { tcp: 70000 } } }, "p")).toThrow(/p\.com3\.backend/);
    expect(() => plugin.parseConfig({ i8042: { input: "tty" } }, "p")).toThrow(/p\.i8042\.input/);
  });

  it("listens on 127.0.0.1 for a tcp backend and closes the server and console subscriptions on dispose", async () => {
    const { vm, console, at } = await assemble({ com2: { backend: { tcp: 0 } } });
    const tcp = vm.resolve(LPC_RESOURCES).backends.get("com2") as TcpSerialBackend;
    expect(tcp).toBeInstanceOf(TcpSerialBackend);
    const addr = (tcp as unknown as { server: { address(): { port: number; address: string } } }).server.address();
    expect(addr.address).toBe("127.0.0.1");
    at(0x2f8 + UART_THR).write(0x21); // no client yet: dropped
    expect(tcp.droppedOutput).toBe(1);
    expect(console.subscribers).toBe(2); // COM1 and the i8042
    await vm.dispose();
    expect(console.subscribers).toBe(0); // COM1's console backend and the i8042 unsubscribed
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect(addr.port, "127.0.0.1");
      s.on("connect", () => { s.destroy(); resolve(false); });
      s.on("error", () => resolve(true));
    });
    expect(refused).toBe(true);
    expect(at(0x2f8 + UART_RBR).read()).toBe(0); // the device still answers after dispose
    expect(at(0x2f8 + UART_LSR).read() & LSR_DR).toBe(0);
  }, 10_000);
});

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { IrqLine } from "../../../src/monitor/api.js";
import {
  FileSerialBackend, MemorySerialBackend, SERIAL_BACKLOG_MAX, SerialBackendError, SerialPort, TcpSerialBackend,
} from "./serial-backends.js";
import {
  FCR_FIFO_ENABLE, IER_EDSSI, LSR_DR, MCR_OUT2, MSR_CTS, MSR_DCD, MSR_DDCD, MSR_DSR, UART_FCR, UART_IER, UART_LSR,
  UART_MCR, UART_MSR, UART_RBR, UART_THR,
} from "./uart16550.js";

const tmp = mkdtempSync(join(tmpdir(), "hvkit-serial-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const noIrq: IrqLine = { raise() {}, lower() {} };

function readAll(port: SerialPort): string {
  let s = "";
  while (port.uart.read(UART_LSR, 1) & LSR_DR) s += String.fromCharCode(port.uart.read(UART_RBR, 1));
  return s;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/** Wait (bounded) until `cond` holds. */
async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("memory backend and the serial port's backlog", () => {
  it("sends guest output to the backend and backend input to RX, in order", () => {
    const mem = new MemorySerialBackend();
    const port = new SerialPort("com2", mem, noIrq);
    port.uart.write(UART_THR, 1, 0x68);
    port.uart.write(UART_THR, 1, 0x69);
    expect(mem.text()).toBe("hi");
    port.uart.write(UART_FCR, 1, FCR_FIFO_ENABLE);
    mem.send("hello, world: more than sixteen bytes");
    expect(readAll(port)).toBe("hello, world: more than sixteen bytes");
  });

  it("drops and counts input beyond the backlog while the guest does not read", () => {
    const mem = new MemorySerialBackend();
    const port = new SerialPort("com3", mem, noIrq);
    const flood = new Uint8Array(SERIAL_BACKLOG_MAX + 100).fill(0x41);
    mem.send(flood);
    // 1 byte in the RX holding register (16450 mode) + the full backlog.
    expect(port.backlog).toBe(SERIAL_BACKLOG_MAX);
    expect(port.dropped).toBe(99);
  });

  it("shows the peer's carrier in the MSR, with a modem status interrupt on change", () => {
    const mem = new MemorySerialBackend();
    const irq = { level: false, raise() { this.level = true; }, lower() { this.level = false; } };
    const port = new SerialPort("com4", mem, irq);
    port.uart.write(UART_MCR, 1, MCR_OUT2);
    port.uart.write(UART_IER, 1, IER_EDSSI);
    mem.carrier(false);
    expect(irq.level).toBe(true);
    const msr = port.uart.read(UART_MSR, 1);
    expect(msr & (MSR_DCD | MSR_DDCD)).toBe(MSR_DDCD);
    mem.carrier(true);
    expect(port.uart.read(UART_MSR, 1) & 0xf0).toBe(MSR_CTS | MSR_DSR | MSR_DCD);
  });
});

describe("file backend", () => {
  it("appends guest output to the file, flushing on the next turn and on close", async () => {
    const path = join(tmp, "com.log");
    const first = new FileSerialBackend(path);
    new SerialPort("com2", first, noIrq).uart.write(UART_THR, 1, 0x61);
    await tick();
    expect(readFileSync(path, "latin1")).toBe("a");
    await first.close();
    const second = new FileSerialBackend(path);
    const port = new SerialPort("com2", second, noIrq);
    port.uart.write(UART_THR, 1, 0x62);
    await second.close();
    expect(readFileSync(path, "latin1")).toBe("ab");
  });

  it("throws a SerialBackendError naming the path when the file cannot be opened", () => {
    const bad = join(tmp, "no-such-dir", "x.log");
    expect(() => new FileSerialBackend(bad)).toThrow(SerialBackendError);
    expect(() => new FileSerialBackend(bad)).toThrow(/no-such-dir/);
  });
});

describe("tcp backend (127.0.0.1, ephemeral port)", () => {
  it("carries input and output for one client, refuses a second one, and closes cleanly", async () => {
    const tcp = new TcpSerialBackend(0);
    const port = new SerialPort("com2", tcp, noIrq);
    port.uart.write(UART_FCR, 1, FCR_FIFO_ENABLE);
    const bound = await tcp.listen();
    expect(bound).toBeGreaterThan(0);
    const sockets: Socket[] = [];
    try {
      const client = connect(bound, "127.0.0.1");
      sockets.push(client);
      let received = "";
      client.on("data", (d) => { received += d.toString("latin1"); });
      await until(() => tcp.connected);
      expect(port.uart.read(UART_MSR, 1) & MSR_DCD).toBe(MSR_DCD);
      client.write("ping");
      await until(() => port.backlog > 0 || (port.uart.read(UART_LSR, 1) & LSR_DR) !== 0);
      await until(() => port.uart.rxFree() <= 16 - 4);
      expect(readAll(port)).toBe("ping");
      for (const ch of "pong") port.uart.write(UART_THR, 1, ch.charCodeAt(0));
      await until(() => received === "pong");

      const second = connect(bound, "127.0.0.1");
      sockets.push(second);
      await new Promise<void>((r) => { second.on("close", () => r()); second.on("error", () => r()); });
      expect(tcp.refused).toBe(1);

      client.destroy();
      await until(() => !tcp.connected);
      port.uart.write(UART_THR, 1, 0x21); // no client: dropped and counted
      expect(tcp.droppedOutput).toBe(1);
    } finally {
      for (const s of sockets) s.destroy();
      await tcp.close();
    }
    await expect(tcp.close()).resolves.toBeUndefined();
  }, 10_000);

  it("rejects a port that is already in use with a SerialBackendError", async () => {
    const a = new TcpSerialBackend(0);
    const p = await a.listen();
    const b = new TcpSerialBackend(p);
    try {
      await expect(b.listen()).rejects.toThrow(SerialBackendError);
    } finally {
      await a.close();
      await b.close();
    }
  }, 10_000);
});

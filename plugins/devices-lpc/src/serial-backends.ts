// Host backends for the 16550 UARTs, and the host side of a serial port (SerialPort):
// a bounded backlog between the backend's input and the guest's RX FIFO.
//
// Backends:
// - console: output to Console.write(source); input from Console.onInput (optional).
// - file: output appended to a host file (buffered, flushed on the next event-loop turn,
//   when 4 KiB are waiting, and on close); no input.
// - tcp: a server on 127.0.0.1 only, one client at a time (later clients are refused and
//   counted); input from the client, output to it. Output with no client, or beyond 64 KiB
//   waiting in the socket, is dropped and counted. The client's DCD/DSR/CTS show in the MSR.
// - memory: for tests; output kept (bounded), input injected with `send`.
// Nothing a guest does through a backend can throw: host I/O errors are counted and the
// backend goes quiet. Opening a file or a port that fails is a SerialBackendError.
import { closeSync, openSync, writeSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import type { Console, IrqLine, VirtualClock } from "../../../src/monitor/api.js";
import { MSR_CTS, MSR_DCD, MSR_DSR, Uart16550 } from "./uart16550.js";

/** A host problem opening a serial backend (file not writable, port in use). */
export class SerialBackendError extends Error {
  override readonly name = "SerialBackendError";
}

/** What a backend feeds: bytes towards the guest and the state of its peer. */
export interface SerialBackendHost {
  input(byte: number): void;
  /** A peer is connected (DCD/DSR/CTS asserted) or not. */
  carrier(connected: boolean): void;
  /** Bytes waiting for the guest (a backend may pause its source above a threshold). */
  readonly backlog: number;
}

export interface SerialBackend {
  readonly kind: "console" | "file" | "tcp" | "memory" | "none";
  /** Start delivering input to `host`. Called once. */
  attach(host: SerialBackendHost): void;
  /** One byte of guest output. Must not throw. */
  write(byte: number): void;
  /** The guest drained bytes: a paused source may resume. */
  drained?(): void;
  close(): Promise<void>;
}

/** Host bytes waiting for the guest's RX FIFO, per port. */
export const SERIAL_BACKLOG_MAX = 64 * 1024;
/** Output bytes allowed to wait in a TCP socket before output is dropped. */
export const TCP_OUTPUT_MAX = 64 * 1024;
/** Output bytes the memory backend keeps. */
export const MEMORY_OUTPUT_MAX = 1024 * 1024;

export class NullSerialBackend implements SerialBackend {
  readonly kind = "none" as const;
  attach(): void {}
  write(): void {}
  async close(): Promise<void> {}
}

export class ConsoleSerialBackend implements SerialBackend {
  readonly kind = "console" as const;
  private off: (() => void) | undefined;
  constructor(private readonly console: Console, private readonly source: string, private readonly input: boolean) {}
  attach(host: SerialBackendHost): void {
    if (this.input) this.off = this.console.onInput((b) => host.input(b));
  }
  write(byte: number): void {
    this.console.write(this.source, byte);
  }
  async close(): Promise<void> {
    this.off?.();
    this.off = undefined;
  }
}

export class FileSerialBackend implements SerialBackend {
  readonly kind = "file" as const;
  private fd: number | undefined;
  private readonly buf = new Uint8Array(4096);
  private len = 0;
  private scheduled = false;
  /** Bytes lost to host write errors. */
  droppedOutput = 0;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, "a");
    } catch (e) {
      throw new SerialBackendError(`serial file backend: cannot open "${path}" for appending: ${(e as Error).message}`);
    }
  }

  attach(): void {}

  write(byte: number): void {
    if (this.fd === undefined) {
      this.droppedOutput++;
      return;
    }
    this.buf[this.len++] = byte;
    if (this.len === this.buf.length) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushSoon);
    }
  }

  private readonly flushSoon = (): void => {
    this.scheduled = false;
    this.flush();
  };

  flush(): void {
    if (this.len === 0 || this.fd === undefined) return;
    try {
      writeSync(this.fd, this.buf, 0, this.len);
    } catch {
      this.droppedOutput += this.len;
    }
    this.len = 0;
  }

  async close(): Promise<void> {
    this.flush();
    if (this.fd !== undefined) {
      try { closeSync(this.fd); } catch { /* already gone: nothing to keep */ }
      this.fd = undefined;
    }
  }
}

export class TcpSerialBackend implements SerialBackend {
  readonly kind = "tcp" as const;
  private readonly server: Server;
  private client: Socket | undefined;
  private host: SerialBackendHost | undefined;
  private paused = false;
  private out = new Uint8Array(4096);
  private outLen = 0;
  private scheduled = false;
  /** Connections refused because a client was already connected. */
  refused = 0;
  /** Guest output dropped: no client, or the client is not reading. */
  droppedOutput = 0;
  /** Host I/O errors seen on the server or a client. */
  errors = 0;

  /** `port` 0 picks an ephemeral port (see `listen`). */
  constructor(readonly port: number) {
    this.server = createServer((s) => this.accept(s));
    this.server.on("error", () => { this.errors++; });
  }

  /** Start listening on 127.0.0.1; resolves with the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(new SerialBackendError(`serial tcp backend: cannot listen on 127.0.0.1:${this.port}: ${e.message}`));
      this.server.once("error", onError);
      this.server.listen(this.port, "127.0.0.1", () => {
        this.server.off("error", onError);
        const a = this.server.address();
        resolve(typeof a === "object" && a !== null ? a.port : this.port);
      });
    });
  }

  get connected(): boolean {
    return this.client !== undefined;
  }

  attach(host: SerialBackendHost): void {
    this.host = host;
    host.carrier(this.client !== undefined);
  }

  private accept(s: Socket): void {
    if (this.client !== undefined) {
      this.refused++;
      s.destroy();
      return;
    }
    this.client = s;
    s.setNoDelay(true);
    s.on("data", (chunk: Buffer) => {
      const h = this.host;
      if (h === undefined) return;
      for (let i = 0; i < chunk.length; i++) h.input(chunk[i]!);
      // Back-pressure: stop reading while half the backlog is full; the rest is dropped and counted.
      if (h.backlog >= SERIAL_BACKLOG_MAX / 2 && !this.paused) {
        this.paused = true;
        s.pause();
      }
    });
    s.on("error", () => { this.errors++; });
    s.on("close", () => {
      if (this.client === s) {
        this.client = undefined;
        this.paused = false;
        this.host?.carrier(false);
      }
    });
    this.host?.carrier(true);
  }

  drained(): void {
    const h = this.host;
    if (this.paused && this.client !== undefined && h !== undefined && h.backlog < SERIAL_BACKLOG_MAX / 4) {
      this.paused = false;
      this.client.resume();
    }
  }

  write(byte: number): void {
    const c = this.client;
    if (c === undefined || c.writableLength + this.outLen >= TCP_OUTPUT_MAX) {
      this.droppedOutput++;
      return;
    }
    if (this.outLen === this.out.length) this.flush();
    this.out[this.outLen++] = byte;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushSoon);
    }
  }

  private readonly flushSoon = (): void => {
    this.scheduled = false;
    this.flush();
  };

  private flush(): void {
    const c = this.client;
    if (this.outLen === 0) return;
    if (c === undefined) {
      this.droppedOutput += this.outLen;
    } else {
      c.write(Buffer.from(this.out.subarray(0, this.outLen)));
    }
    this.outLen = 0;
  }

  async close(): Promise<void> {
    this.flush();
    this.client?.destroy();
    this.client = undefined;
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export class MemorySerialBackend implements SerialBackend {
  readonly kind = "memory" as const;
  readonly output: number[] = [];
  droppedOutput = 0;
  private host: SerialBackendHost | undefined;

  attach(host: SerialBackendHost): void {
    this.host = host;
  }

  write(byte: number): void {
    if (this.output.length >= MEMORY_OUTPUT_MAX) this.droppedOutput++;
    else this.output.push(byte);
  }

  /** Bytes from the "outside world" towards the guest. */
  send(bytes: Uint8Array | string): void {
    const arr = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    for (const b of arr) this.host?.input(b);
  }

  /** A peer connecting or leaving. */
  carrier(connected: boolean): void {
    this.host?.carrier(connected);
  }

  text(): string {
    return String.fromCharCode(...this.output);
  }

  async close(): Promise<void> {}
}

/**
 * A UART with its backend: output to the backend, backend input through a bounded
 * backlog into the RX FIFO as the guest drains it (as a host with flow control would).
 */
export class SerialPort implements SerialBackendHost {
  readonly uart: Uart16550;
  private readonly backlogBuf = new Uint8Array(SERIAL_BACKLOG_MAX);
  private head = 0;
  private count = 0;
  /** Host bytes dropped because the backlog was full. */
  dropped = 0;

  constructor(
    readonly name: string,
    readonly backend: SerialBackend,
    irq: IrqLine,
    clock?: VirtualClock,
  ) {
    this.uart = new Uart16550(irq, (b) => backend.write(b), undefined, () => this.feed(), `uart16550@${name}`, clock);
    backend.attach(this);
  }

  get backlog(): number {
    return this.count;
  }

  input(byte: number): void {
    if (this.count >= SERIAL_BACKLOG_MAX) {
      this.dropped++;
      return;
    }
    this.backlogBuf[(this.head + this.count) % SERIAL_BACKLOG_MAX] = byte & 0xff;
    this.count++;
    this.feed();
  }

  carrier(connected: boolean): void {
    this.uart.setModemInputs(connected ? MSR_CTS | MSR_DSR | MSR_DCD : 0);
  }

  private feed(): void {
    let moved = false;
    while (this.count > 0 && this.uart.rxFree() > 0) {
      const b = this.backlogBuf[this.head]!;
      this.head = (this.head + 1) % SERIAL_BACKLOG_MAX;
      this.count--;
      this.uart.receive(b);
      moved = true;
    }
    if (moved) this.backend.drained?.();
  }
}

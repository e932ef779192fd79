// The console's stdio sink for the CLI: guest output to stdout (batched, flushed every
// few ms and at stop), host keys to the guest. On a TTY stdin goes raw, so Ctrl-C
// reaches the guest; Ctrl-] (0x1D, as telnet and QEMU's monitor use) ends the run.
import type { Console } from "./api.js";

export const ESCAPE_BYTE = 0x1d;
const BUF_SIZE = 4096;

export interface StdioSinkOptions {
  readonly stdin?: NodeJS.ReadStream;
  readonly stdout?: NodeJS.WritableStream;
  /** Called once when the escape key is read. */
  readonly onEscape: () => void;
  readonly flushMs?: number;
}

export class StdioSink {
  readonly #console: Console;
  readonly #stdin: NodeJS.ReadStream;
  readonly #stdout: NodeJS.WritableStream;
  readonly #onEscape: () => void;
  readonly #flushMs: number;
  readonly #buf = new Uint8Array(BUF_SIZE);
  #len = 0;
  #timer: NodeJS.Timeout | undefined;
  #wasRaw = false;
  #started = false;
  /** Whether the last guest byte ended a line (or none came): the CLI's summary starts on its own line. */
  atLineStart = true;

  constructor(console: Console, opts: StdioSinkOptions) {
    this.#console = console;
    this.#stdin = opts.stdin ?? process.stdin;
    this.#stdout = opts.stdout ?? process.stdout;
    this.#onEscape = opts.onEscape;
    this.#flushMs = opts.flushMs ?? 4;
  }

  readonly #onOutput = (byte: number): void => {
    this.atLineStart = byte === 0x0a;
    this.#buf[this.#len++] = byte;
    if (this.#len === BUF_SIZE) this.flush();
    else if (this.#timer === undefined) this.#timer = setTimeout(this.#flushTimer, this.#flushMs);
  };

  readonly #flushTimer = (): void => {
    this.#timer = undefined;
    this.flush();
  };

  readonly #onData = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    const esc = bytes.indexOf(ESCAPE_BYTE);
    if (esc >= 0) {
      if (esc > 0) this.#console.type(bytes.subarray(0, esc));
      this.#onEscape();
      return;
    }
    this.#console.type(bytes);
  };

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#console.events.on("output", this.#onOutput);
    if (this.#stdin.isTTY) {
      this.#wasRaw = this.#stdin.isRaw;
      this.#stdin.setRawMode(true);
    }
    this.#stdin.on("data", this.#onData);
    this.#stdin.resume();
  }

  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#len === 0) return;
    this.#stdout.write(Buffer.from(this.#buf.subarray(0, this.#len)));
    this.#len = 0;
  }

  stop(): void {
    if (!this.#started) return;
    this.#started = false;
    this.flush();
    this.#console.events.off("output", this.#onOutput);
    this.#stdin.off("data", this.#onData);
    if (this.#stdin.isTTY) this.#stdin.setRawMode(this.#wasRaw);
    this.#stdin.pause();
  }
}

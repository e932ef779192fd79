// The VM console: guest output fans out to every sink (stdio, a test recorder), and host
// input fans out to every subscribed device (COM1, the BIOS keyboard buffer ...).
import { EventEmitter } from "eventemitter3";
import type { Console, ConsoleEvents } from "./api.js";

const encoder = new TextEncoder();

export class VmConsole implements Console {
  readonly events = new EventEmitter<ConsoleEvents>();
  readonly #listeners: ((byte: number) => void)[] = [];
  #sources: ReadonlySet<string> | undefined;

  /**
   * Show only these sources' output (a guest that prints through both the BIOS
   * teletype and COM1 would otherwise appear twice); undefined shows all.
   */
  selectSources(sources: readonly string[] | undefined): void {
    this.#sources = sources ? new Set(sources) : undefined;
  }

  write(source: string, byte: number): void {
    if (this.#sources !== undefined && !this.#sources.has(source)) return;
    this.events.emit("output", byte & 0xff, source);
  }

  onInput(listener: (byte: number) => void): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  type(bytes: Uint8Array | string): void {
    const b = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
    const ls = this.#listeners.slice();
    for (let i = 0; i < b.length; i++) for (const l of ls) l(b[i]!);
  }
}

/** Records guest output as text (latin1: one char per byte), for tests and the harness. */
export class ConsoleRecorder {
  #text = "";
  readonly #waiters: { needle: string; from: number; resolve: (end: number) => void }[] = [];
  readonly #off: () => void;

  constructor(console: Console) {
    const onOutput = (byte: number): void => {
      this.#text += String.fromCharCode(byte);
      for (let i = this.#waiters.length - 1; i >= 0; i--) {
        const w = this.#waiters[i]!;
        const at = this.#text.indexOf(w.needle, w.from);
        if (at >= 0) {
          this.#waiters.splice(i, 1);
          w.resolve(at + w.needle.length);
        }
      }
    };
    console.events.on("output", onOutput);
    this.#off = () => console.events.off("output", onOutput);
  }

  get text(): string {
    return this.#text;
  }

  /** Resolves with the index just past the first `needle` at or after `from`. */
  waitFor(needle: string, from = 0): Promise<number> {
    const at = this.#text.indexOf(needle, from);
    if (at >= 0) return Promise.resolve(at + needle.length);
    return new Promise((resolve) => this.#waiters.push({ needle, from, resolve }));
  }

  dispose(): void {
    this.#off();
  }
}

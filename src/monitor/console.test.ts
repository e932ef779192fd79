import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { ConsoleRecorder, VmConsole } from "./console.js";
import { IrqLineSet } from "./irq.js";
import { StdioSink } from "./stdio.js";

describe("console", () => {
  it("fans typed input out to every subscriber, byte by byte", () => {
    const c = new VmConsole();
    const a: number[] = [];
    const b: number[] = [];
    c.onInput((x) => a.push(x));
    const off = c.onInput((x) => b.push(x));
    c.type("hi");
    off();
    c.type(new Uint8Array([0x1b]));
    expect(a).toEqual([0x68, 0x69, 0x1b]);
    expect(b).toEqual([0x68, 0x69]);
  });

  it("emits guest output with its source, and a recorder collects it as text", async () => {
    const c = new VmConsole();
    const rec = new ConsoleRecorder(c);
    const seen: string[] = [];
    c.events.on("output", (byte, source) => seen.push(`${source}:${byte}`));
    const later = rec.waitFor("ok");
    for (const ch of "bootok") c.write("com1", ch.charCodeAt(0));
    expect(await later).toBe(6);
    expect(rec.text).toBe("bootok");
    expect(seen[0]).toBe("com1:98");
    expect(await rec.waitFor("o", 3)).toBe(5); // searching from an index skips earlier matches
    rec.dispose();
    c.write("com1", 0x21);
    expect(rec.text).toBe("bootok");
  });
});

describe("IRQ lines", () => {
  it("record levels and report rising edges only", () => {
    const irqs = new IrqLineSet();
    const raised: number[] = [];
    irqs.events.on("raise", (n) => raised.push(n));
    const l4 = irqs.line(4);
    l4.raise();
    l4.raise();
    expect(irqs.level(4)).toBe(true);
    l4.lower();
    expect(irqs.level(4)).toBe(false);
    l4.raise();
    expect(raised).toEqual([4, 4]);
    expect(() => irqs.line(99)).toThrow(RangeError);
  });
});

describe("console source selection", () => {
  it("passes only the selected sources' output, and all of them when unset", () => {
    const c = new VmConsole();
    const rec = new ConsoleRecorder(c);
    c.selectSources(["com1"]);
    c.write("bios-tty", 0x61);
    c.write("com1", 0x62);
    c.selectSources(undefined);
    c.write("bios-tty", 0x63);
    expect(rec.text).toBe("bc");
  });
});

describe("stdio sink", () => {
  async function withSink(fn: (parts: { c: VmConsole; stdin: PassThrough; chunks: string[]; escapes: number[]; sink: StdioSink }) => Promise<void>) {
    const c = new VmConsole();
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const chunks: string[] = [];
    stdout.on("data", (d: Buffer) => chunks.push(d.toString("latin1")));
    const escapes: number[] = [];
    const sink = new StdioSink(c, {
      stdin: stdin as unknown as NodeJS.ReadStream, stdout, onEscape: () => escapes.push(1), flushMs: 5,
    });
    sink.start();
    try {
      await fn({ c, stdin, chunks, escapes, sink });
    } finally {
      sink.stop();
    }
  }
  const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it("batches guest output into one write per flush interval", async () => {
    await withSink(async ({ c, chunks }) => {
      for (const ch of "abc") c.write("com1", ch.charCodeAt(0));
      expect(chunks).toEqual([]);
      await tick(30);
      expect(chunks).toEqual(["abc"]);
    });
  });

  it("flushes pending output at stop", async () => {
    const c = new VmConsole();
    const stdout = new PassThrough();
    const chunks: string[] = [];
    stdout.on("data", (d: Buffer) => chunks.push(d.toString("latin1")));
    const sink = new StdioSink(c, { stdin: new PassThrough() as unknown as NodeJS.ReadStream, stdout, onEscape: () => {}, flushMs: 1000 });
    sink.start();
    c.write("com1", 0x7a);
    sink.stop();
    await tick(5);
    expect(chunks).toEqual(["z"]);
  });

  it("types host input into the console and ends at Ctrl-] without passing it on", async () => {
    await withSink(async ({ c, stdin, escapes }) => {
      const typed: number[] = [];
      c.onInput((b) => typed.push(b));
      stdin.write("ab\x1dcd");
      await tick(10);
      expect(typed).toEqual([0x61, 0x62]);
      expect(escapes).toEqual([1]);
    });
  });
});

import { describe, expect, it } from "vitest";
import type { Logger } from "../../../src/monitor/api.js";
import { DebugConsolePort, DEBUGCON_SOURCE, POST_LOG_LIMIT, PostCodePort } from "./debug-port.js";

class RecordingLogger implements Logger {
  readonly debugs: string[] = [];
  debug(m: string): void { this.debugs.push(m); }
  info(): void {}
  warn(): void {}
}

describe("PostCodePort (0x80)", () => {
  it("stores the last code, reads it back and logs changes at debug level", () => {
    const log = new RecordingLogger();
    const p = new PostCodePort(log);
    p.write(0, 1, 0x12);
    p.write(0, 1, 0x12);
    p.write(0, 1, 0x1ab);
    expect(p.read(0, 1)).toBe(0xab);
    expect(p.writes).toBe(3);
    expect(log.debugs).toEqual(["POST code 0x12", "POST code 0xab"]);
  });

  it("stops logging after the limit but keeps storing codes", () => {
    const log = new RecordingLogger();
    const p = new PostCodePort(log);
    for (let i = 0; i < POST_LOG_LIMIT + 50; i++) p.write(0, 1, i & 1 ? 0x55 : 0xaa);
    expect(log.debugs.length).toBe(POST_LOG_LIMIT);
    expect(log.debugs.at(-1)).toMatch(/not logged/);
    expect(p.read(0, 1)).toBe((POST_LOG_LIMIT + 49) & 1 ? 0x55 : 0xaa);
  });
});

describe("DebugConsolePort (0xE9, 0x402)", () => {
  it("writes bytes to the console as debugcon and reads back 0xE9", () => {
    const out: Array<[string, number]> = [];
    const d = new DebugConsolePort({ write: (s, b) => out.push([s, b]) }, 0xe9);
    d.write(0, 1, 0x48);
    d.write(0, 1, 0x169);
    d.write(0, 2, 0x4141); // not a byte access: ignored
    expect(out).toEqual([[DEBUGCON_SOURCE, 0x48], [DEBUGCON_SOURCE, 0x69]]);
    expect(d.read(0, 1)).toBe(0xe9);
    expect(d.read(0, 4)).toBe(0xffffffff);
  });
});

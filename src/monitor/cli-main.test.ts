import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { EXIT_STATUS, main } from "./cli-main.js";
import type { CliIo } from "./cli-main.js";

const tmp = mkdtempSync(join(tmpdir(), "hvkit-cli-"));

function io(stdinText?: string): CliIo & { outText: () => string; errText: () => string; stdoutText: () => string } {
  let out = "";
  let err = "";
  let raw = "";
  const stdout = new PassThrough();
  stdout.on("data", (d: Buffer) => { raw += d.toString("latin1"); });
  const stdin = new PassThrough() as unknown as NodeJS.ReadStream;
  if (stdinText !== undefined) (stdin as unknown as PassThrough).write(stdinText);
  return {
    out: (t) => { out += t; }, err: (t) => { err += t; }, stdin, stdout,
    outText: () => out, errText: () => err, stdoutText: () => raw,
  };
}

// A scripted backend "guest": prints a banner and waits in HLT; prints what it is typed.
writeFileSync(join(tmp, "talker.js"), `
export default {
  id: "talker", phase: "backend",
  parseConfig(raw) { return raw ?? {}; },
  register(vm, options, host) {
    vm.register(host.tokens.VcpuBackend, { useFactory: (c) => {
      const con = c.resolve(host.tokens.Console);
      const input = [];
      con.onInput((b) => input.push(b));
      let n = 0;
      const wait = { kind: "hlt", interruptsEnabled: true };
      return { id: "talker", run() {
        if (n++ === 0) for (const ch of "ready\\n") con.write("t", ch.charCodeAt(0));
        while (input.length) con.write("t", input.shift());
        if (options.exit) return options.exit;
        return wait;
      }, getState() { return {}; }, setState() {}, inject() {}, setInterruptWindow() {} };
    } });
  },
};
`);
writeFileSync(join(tmp, "talker.yaml"), "backend: ./talker.js\nmemory: 1M\n");

describe("hvkit validate", () => {
  it("prints the path of a misspelt key and exits 2, without a stack trace", async () => {
    const f = join(tmp, "typo.yaml");
    writeFileSync(f, "backend: vmx\nmemory: 16M\nplugins:\n  - use: realmode\n  - use: devices-lpc\n    optons: {}\n");
    const t = io();
    expect(await main(["validate", f], t)).toBe(EXIT_STATUS.config);
    expect(t.errText()).toBe(`hvkit: ${f}: plugins[1].optons: unknown key (did you mean "options"?)\n`);
    expect(t.outText()).toBe("");
  });

  it("prints ok for a good config", async () => {
    const t = io();
    expect(await main(["validate", join(tmp, "talker.yaml")], t)).toBe(0);
    expect(t.outText()).toMatch(/^ok: talker: 1M, engine soft, plugins talker\n$/);
  });

  it("applies --set before validating", async () => {
    const t = io();
    expect(await main(["validate", join(tmp, "talker.yaml"), "--set", "memory=3G"], t)).toBe(2);
    expect(t.errText()).toContain("memory: 3G is out of range");
  });

  it("rejects an unknown command with a usage status", async () => {
    const t = io();
    expect(await main(["frobnicate"], t)).toBe(2);
    expect(t.errText()).toContain("unknown command");
  });
});

describe("hvkit run", () => {
  it("puts the console on stdio and ends with status 3 on timeout, the summary on its own line", async () => {
    const t = io("hello");
    const status = await main(["run", join(tmp, "talker.yaml"), "--timeout", "150ms"], t);
    expect(status).toBe(EXIT_STATUS.timeout);
    expect(t.stdoutText()).toBe("ready\nhello");
    // The guest's last line had no newline, so the summary starts a new one.
    expect(t.errText()).toMatch(/^\nhvkit: timeout: no stop within 150 ms\nhvkit: [\d.]+s; exits: hlt \d+ \(0\.0 syscalls\/exit\); unclaimed pio r\/w 0\/0, mmio r\/w 0\/0\n$/);
  });

  it("ends with status 5 on the escape key (Ctrl-])", async () => {
    const t = io("ab");
    setTimeout(() => (t.stdin as unknown as PassThrough).write("\x1dcd"), 50);
    const status = await main(["run", join(tmp, "talker.yaml"), "--quiet", "--timeout", "5s"], t);
    expect(status).toBe(EXIT_STATUS.escape);
    expect(t.stdoutText()).toBe("ready\nab");
    expect(t.errText()).toBe("");
  });

  it("maps stop reasons to exit statuses", async () => {
    const cases: [string, number][] = [
      ['{ kind: hlt, interruptsEnabled: false }', 0],
      ['{ kind: shutdown, reason: triple-fault }', 4],
      ['{ kind: unhandled, code: 1, message: nope }', 1],
    ];
    for (const [exit, code] of cases) {
      const t = io();
      expect(await main(["run", join(tmp, "talker.yaml"), "--quiet", "--set", `backend.options.exit=${exit}`], t)).toBe(code);
    }
  });

  it("reports a config error with status 2", async () => {
    const t = io();
    expect(await main(["run", join(tmp, "nope.yaml")], t)).toBe(2);
    expect(t.errText()).toBe(`hvkit: ${join(tmp, "nope.yaml")}: (root): no such file\n`);
  });
});

describe("internal errors", () => {
  it("print one line and the HVKIT_DEBUG hint, with status 1", async () => {
    writeFileSync(join(tmp, "broken.js"), `export default { id: "broken", phase: "backend", parseConfig: () => ({}),
      register() { throw new TypeError("cannot read the frobnicator"); } };`);
    writeFileSync(join(tmp, "broken.yaml"), "backend: ./broken.js\nmemory: 1M\n");
    const t = io();
    const saved = process.env["HVKIT_DEBUG"];
    delete process.env["HVKIT_DEBUG"];
    try {
      expect(await main(["run", join(tmp, "broken.yaml")], t)).toBe(1);
    } finally {
      if (saved !== undefined) process.env["HVKIT_DEBUG"] = saved;
    }
    expect(t.errText()).toBe("hvkit: TypeError: cannot read the frobnicator\nrun with HVKIT_DEBUG=1 for a stack trace\n");
  });
});

describe("hvkit test", () => {
  it("runs a boot test file and prints the table; exit 1 if a combination fails", async () => {
    const f = join(tmp, "boot.yaml");
    writeFileSync(f, "name: talk\nconfig: talker.yaml\nmatrix:\n  backend.options.exit: [{ kind: hlt, interruptsEnabled: false }, null]\nsteps:\n  - expect: ready\nstop: halted\ntimeout: 300ms\n");
    const t = io();
    expect(await main(["test", f], t)).toBe(1);
    expect(t.outText()).toContain("1 passed, 1 failed, 0 skipped");
  });

});

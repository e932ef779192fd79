// The boot-test runner against a scripted "echo guest" backend: it prints a banner,
// echoes typed bytes, says "bye" and halts on "q". This checks the harness (matrix,
// expect/type steps, stop reasons, skips), not a CPU.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "./api.js";
import { expandMatrix, formatResults, loadBootTest, runBootTest } from "./harness.js";

const tmp = mkdtempSync(join(tmpdir(), "hvkit-harness-"));
writeFileSync(join(tmp, "echo-backend.js"), `
export default {
  id: "echo", phase: "backend",
  parseConfig(raw) { return { banner: "echo guest", ...(raw ?? {}) }; },
  register(vm, options, host) {
    vm.register(host.tokens.VcpuBackend, { useFactory: (c) => {
      const con = c.resolve(host.tokens.Console);
      const input = [];
      con.onInput((b) => input.push(b));
      const say = (s) => { for (const ch of s) con.write("echo", ch.charCodeAt(0)); };
      let started = false, done = false;
      const wait = { kind: "hlt", interruptsEnabled: true }, stop = { kind: "hlt", interruptsEnabled: false };
      return {
        id: "echo",
        run() {
          if (!started) { started = true; say(options.banner + "\\r\\n"); if (options.haltAfterBanner) done = true; }
          if (done) return stop;
          while (input.length) {
            const b = input.shift();
            if (b === 0x71) { say("bye\\r\\n"); done = true; return stop; }
            con.write("echo", b);
          }
          return wait;
        },
        getState() { return {}; }, setState() {}, inject() {}, setInterruptWindow() {},
      };
    } });
  },
};
`);
writeFileSync(join(tmp, "echo.yaml"), "backend: ./echo-backend.js\nmemory: 1M\n");

function bootTest(name: string, body: string): string {
  const f = join(tmp, name);
  writeFileSync(f, body);
  return f;
}

describe("matrix expansion", () => {
  it("produces every combination, first key slowest, labelled with override paths", () => {
    const combos = expandMatrix([["backend", ["vmx", "svm"]], ["plugins[0].options.mode", ["native", "emulate"]]]);
    expect(combos.map((c) => c.label)).toEqual([
      "backend=vmx plugins[0].options.mode=native",
      "backend=vmx plugins[0].options.mode=emulate",
      "backend=svm plugins[0].options.mode=native",
      "backend=svm plugins[0].options.mode=emulate",
    ]);
    expect(combos[3]!.overrides).toEqual([{ path: "backend", value: "svm" }, { path: "plugins[0].options.mode", value: "emulate" }]);
  });

  it("gives one default combination for an empty matrix", () => {
    expect(expandMatrix([])).toEqual([{ label: "default", overrides: [] }]);
  });
});

describe("boot-test files", () => {
  it("reject unknown keys with their path", () => {
    const f = bootTest("bad.yaml", "name: x\nconfig: echo.yaml\nsteps:\n  - expect: a\n  - expct: b\n");
    expect(() => loadBootTest(f)).toThrow(ConfigError);
    try { loadBootTest(f); } catch (e) { expect((e as ConfigError).path).toBe("steps[1].expct"); }
  });

  it("reject malformed matrix paths", () => {
    const f = bootTest("badm.yaml", "name: x\nconfig: echo.yaml\nmatrix:\n  'plugins[x]': [1]\n");
    expect(() => loadBootTest(f)).toThrow(/matrix\.plugins\[x\]: malformed key path/);
  });
});

describe("running boot tests", () => {
  it("types after each expect matched and passes on the expected stop, for every combination", async () => {
    const f = bootTest("echo-test.yaml", `name: echo
config: echo.yaml
matrix:
  backend.options.banner: ["echo guest", "other banner"]
steps:
  - expect: "banner"
  - type: "hi"
  - expect: "hi"
  - type: "q"
  - expect: "bye"
stop: halted
timeout: 1s
`);
    const results = await runBootTest(f);
    expect(results.map((r) => [r.combination.label, r.status])).toEqual([
      ["backend.options.banner=echo guest", "fail"],
      ["backend.options.banner=other banner", "pass"],
    ]);
    // "echo guest" never prints "banner": the typed input never comes, the run times out
    expect(results[0]!.reason).toMatch(/^stopped \(timeout: no stop within 1000 ms\) before "banner" appeared/);
    expect(results[1]!.output).toBe("other banner\r\nhibye\r\n");
    const table = formatResults(loadBootTest(f), results);
    expect(table).toContain("1 passed, 1 failed, 0 skipped");
    expect(table).toMatch(/backend\.options\.banner=other banner\s+PASS/);
  }, 20_000);

  it("matches text the guest printed before it halted, however quickly it halted", async () => {
    const f = bootTest("quick.yaml", `name: quick
config: echo.yaml
matrix:
  backend.options.haltAfterBanner: [true]
  backend.options.banner: ["first line\\r\\nsecond line"]
steps:
  - expect: "first line"
  - expect: "second line"
stop: halted
timeout: 5s
`);
    const [r] = await runBootTest(f);
    expect(r!.reason).toBe("halted: the guest halted with interrupts disabled");
    expect(r!.status).toBe("pass");
  });

  it("fails when the run stops another way than expected", async () => {
    const f = bootTest("wrong-stop.yaml", "name: w\nconfig: echo.yaml\nsteps:\n  - type: q\n  - expect: bye\nstop: shutdown\ntimeout: 5s\n");
    const [r] = await runBootTest(f);
    expect(r!.status).toBe("fail");
    expect(r!.reason).toMatch(/^expected stop "shutdown", got "halted"/);
  });

  it("fails, naming the error, when the machine cannot be built", async () => {
    const f = bootTest("nobuild.yaml", "name: n\nconfig: echo.yaml\nmatrix:\n  memory: [64K]\ntimeout: 1s\n");
    const [r] = await runBootTest(f);
    expect(r!.status).toBe("fail");
    expect(r!.reason).toMatch(/could not build the machine: .*memory: 64K is out of range/);
  });

  it("skips, with the reason, when a required file is missing", async () => {
    const f = bootTest("skip.yaml", "name: s\nconfig: echo.yaml\nrequires:\n  files: [nothing-here.img]\ntimeout: 1s\n");
    const [r] = await runBootTest(f);
    expect(r!.status).toBe("skip");
    expect(r!.reason).toMatch(/^missing .*nothing-here\.img$/);
  });
});

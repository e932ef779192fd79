import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { container, injectable, inject } from "tsyringe";
import { describe, expect, it } from "vitest";
import { ConfigError, Tokens } from "./api.js";
import type { IoDeviceContribution, Logger } from "./api.js";
import { PioBus } from "./bus.js";
import { validateConfig } from "./config.js";
import { missingInjectTokens } from "./di-guard.js";
import { HOST_API, loadPluginModule, loadPlugins, registerPlugins, resolvePathSpec } from "./plugins.js";

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = resolve(here, "../../tests/fixtures");
const tmp = mkdtempSync(join(tmpdir(), "hvkit-plugins-"));

/** A plain-JS plugin module in a temp folder; `log` records register order on globalThis. */
function pluginFile(rel: string, id: string, phase: string, extra = ""): void {
  const f = join(tmp, rel);
  mkdirSync(dirname(f), { recursive: true });
  writeFileSync(f, `export default { id: ${JSON.stringify(id)}, phase: ${JSON.stringify(phase)}, ${extra}
    parseConfig(raw, path) { if (raw && raw.bad) throw new Error(path + ".bad: nope"); return raw ?? {}; },
    register(vm, options) { (globalThis.__hvkitOrder ??= []).push(${JSON.stringify(id)}); } };\n`);
}
pluginFile("fake-backend.js", "fake-backend", "backend");
pluginFile("dev-a.js", "dev-a", "device");
pluginFile("late.js", "late-one", "late", `requires: ["dev-a"],`);
pluginFile("core.js", "core-one", "core");
pluginFile("needs-missing.js", "needy", "device", `requires: ["absent"],`);
pluginFile("pkg-main/lib/entry.js", "pkg-main", "device");
writeFileSync(join(tmp, "pkg-main/package.json"), JSON.stringify({ name: "x", main: "lib/entry.js" }));
pluginFile("pkg-exports/dist/p.js", "pkg-exports", "device");
writeFileSync(join(tmp, "pkg-exports/package.json"), JSON.stringify({ name: "y", exports: { ".": { default: "./dist/p.js" } } }));
writeFileSync(join(tmp, "not-plugin.js"), "export const x = 1;\n");
writeFileSync(join(tmp, "bad-phase.js"), `export default { id: "b", phase: "early", parseConfig() {}, register() {} };\n`);

function cfg(raw: Record<string, unknown>) {
  return validateConfig({ memory: "2M", ...raw }, "t.yaml", tmp);
}

async function rejects(p: Promise<unknown>): Promise<ConfigError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("plugin loading", () => {
  it("rejects an unknown plugin name at its .use key, suggesting a built-in", async () => {
    const e = await rejects(loadPlugins(cfg({ backend: "./fake-backend.js", plugins: [{ use: "devices-lcp" }] })));
    expect(e.path).toBe("plugins[0].use");
    expect(e.message).toMatch(/^t\.yaml: plugins\[0\]\.use: unknown plugin "devices-lcp": not a built-in/);
    expect(e.detail).toContain('did you mean "devices-lpc"?');
  });

  it("rejects an unknown backend", async () => {
    const e = await rejects(loadPlugins(cfg({ backend: "vmz" })));
    expect(e.path).toBe("backend.use");
    expect(e.detail).toContain('unknown plugin "vmz"');
    expect(e.detail).toContain('did you mean "vmx"?');
  });

  it("rejects a backend that is not a backend-phase plugin", async () => {
    const e = await rejects(loadPlugins(cfg({ backend: "./dev-a.js" })));
    expect(e.path).toBe("backend");
    expect(e.detail).toContain("device-phase plugin, not a backend");
  });

  it("names the spec when a module is not a plugin", async () => {
    const e = await rejects(loadPluginModule("./not-plugin.js", "plugins[2]", tmp));
    expect(e.message).toBe('plugins[2].use: "./not-plugin.js" is not an hvkit plugin: its module has no default export object');
    const e2 = await rejects(loadPluginModule("./bad-phase.js", "plugins[0]", tmp));
    expect(e2.detail).toContain('phase "early" is not one of core, backend, bus, device, firmware, late');
    const e3 = await rejects(loadPluginModule("./nowhere", "plugins[0]", tmp));
    expect(e3.detail).toMatch(/^no plugin at .*nowhere/);
  });

  it("resolves a folder through package.json main or exports, else index.js", () => {
    expect(resolvePathSpec("./pkg-main", tmp)).toMatch(/pkg-main\/lib\/entry\.js$/);
    expect(resolvePathSpec("./pkg-exports", tmp)).toMatch(/pkg-exports\/dist\/p\.js$/);
    expect(resolvePathSpec("./case-swap-plugin", fixtures)).toMatch(/case-swap-plugin\/index\.js$/);
    expect(resolvePathSpec(join(tmp, "dev-a.js"), "/")).toMatch(/^file:\/\/.*dev-a\.js$/);
  });

  it("passes each plugin its options path, and adds the config file to its errors", async () => {
    const e = await rejects(loadPlugins(cfg({ backend: "./fake-backend.js", plugins: [{ use: "./dev-a.js", options: { bad: 1 } }] })));
    expect(e.message).toBe("t.yaml: plugins[0].options: plugin dev-a rejected its options: plugins[0].options.bad: nope");
  });

  it("orders plugins by phase, then config order, and registers them in that order", async () => {
    const plugins = await loadPlugins(cfg({
      backend: "./fake-backend.js",
      plugins: [{ use: "./late.js" }, { use: "./pkg-main" }, { use: "./dev-a.js" }, { use: "./core.js" }],
    }));
    expect(plugins.map((p) => p.plugin.id)).toEqual(["core-one", "fake-backend", "pkg-main", "dev-a", "late-one"]);
    (globalThis as { __hvkitOrder?: string[] }).__hvkitOrder = [];
    await registerPlugins(container.createChildContainer(), plugins);
    expect((globalThis as { __hvkitOrder?: string[] }).__hvkitOrder).toEqual(["core-one", "fake-backend", "pkg-main", "dev-a", "late-one"]);
  });

  it("checks requires before register", async () => {
    const plugins = await loadPlugins(cfg({ backend: "./fake-backend.js", plugins: [{ use: "./needs-missing.js" }] }));
    const e = await rejects(registerPlugins(container.createChildContainer(), plugins, "t.yaml"));
    expect(e.message).toBe("t.yaml: plugins[0]: plugin needy requires plugin absent, which the config does not load");
  });
});

describe("the out-of-tree case-swap plugin", () => {
  async function loadCaseSwap() {
    const plugin = await loadPluginModule("./case-swap-plugin", "plugins[0]", fixtures);
    const vm = container.createChildContainer();
    const logs: string[] = [];
    const logger: Logger = { debug: (m) => logs.push(m), info: () => {}, warn: () => {} };
    vm.register(Tokens.Logger, { useValue: logger });
    await plugin.register(vm, plugin.parseConfig(undefined, "plugins[0].options"), HOST_API);
    return { plugin, vm, logs };
  }

  it("loads by path with the host API and swaps the case of queued bytes on port 0x7e0", async () => {
    const { vm, logs } = await loadCaseSwap();
    const [c] = vm.resolveAll<IoDeviceContribution>(Tokens.IoDeviceContribution);
    expect(c!.ranges).toEqual([{ space: "pio", base: 0x7e0, length: 1 }]);
    expect(logs).toEqual(["case-swap on port 0x7e0"]);
    const bus = new PioBus();
    expect(bus.insert(c!.ranges[0]!, c!.device)).toBeUndefined();
    for (const ch of "PiNG!") bus.write(0x7e0, 1, ch.charCodeAt(0));
    let out = "";
    for (let i = 0; i < 5; i++) out += String.fromCharCode(bus.read(0x7e0, 1));
    expect(out).toBe("pIng!");
    expect(bus.read(0x7e0, 1)).toBe(0xff);
    expect(bus.read(0x7e0, 2)).toBe(0xffff);
  });

  it("parses its options strictly", async () => {
    const plugin = await loadPluginModule("./case-swap-plugin", "plugins[0]", fixtures);
    expect(plugin.parseConfig({ port: 0x300 }, "p")).toEqual({ port: 0x300 });
    expect(() => plugin.parseConfig({ prot: 1 }, "plugins[3].options")).toThrow("plugins[3].options.prot: unknown key");
  });

  it("has an @inject token on every constructor parameter (DI guard)", async () => {
    await loadCaseSwap();
    const mod = (await import(resolvePathSpec("./case-swap-plugin", fixtures)!)) as { CaseSwapContribution: abstract new (...a: never[]) => unknown };
    expect(missingInjectTokens(mod.CaseSwapContribution)).toEqual([]);
  });

  it("the DI guard catches a parameter without @inject", () => {
    @injectable()
    class Half {
      constructor(@inject(Tokens.Logger) readonly a: Logger, readonly b: unknown) {}
    }
    expect(missingInjectTokens(Half)).toEqual([1]);
  });
});

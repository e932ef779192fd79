import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "./api.js";
import { applyOverride, loadConfig, parsePath, parseSetArg, validateConfig } from "./config.js";
import { parseDuration, parseSize } from "./units.js";

const dir = mkdtempSync(join(tmpdir(), "hvkit-config-"));
function file(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}
const base = { backend: "vmx", memory: "16M", plugins: [{ use: "realmode", options: { mode: "native" } }] };

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("config validation", () => {
  it("accepts the documented shape and normalises sizes and durations", () => {
    const c = validateConfig({ ...base, name: "x", timeout: "30s" }, "x.yaml", "/cfg");
    expect(c).toMatchObject({ name: "x", engine: "soft", memory: 16 << 20, timeoutMs: 30_000, dir: "/cfg" });
    expect(c.backend).toEqual({ use: "vmx", options: undefined, path: "backend" });
    expect(c.plugins[0]).toEqual({ use: "realmode", options: { mode: "native" }, path: "plugins[0]" });
  });

  it("names the path of a misspelt plugin key and suggests the right one", () => {
    const e = configError(() => validateConfig({ ...base, plugins: [{ use: "a" }, { use: "b", optons: {} }] }, "configs/x.yaml", "/"));
    expect(e.path).toBe("plugins[1].optons");
    expect(e.message).toBe('configs/x.yaml: plugins[1].optons: unknown key (did you mean "options"?)');
  });

  it("names a misspelt top-level key", () => {
    const e = configError(() => validateConfig({ ...base, memroy: "1M" }, "c.yaml", "/"));
    expect(e.path).toBe("memroy");
    expect(e.detail).toContain('did you mean "memory"');
  });

  it("reports a missing required key", () => {
    const e = configError(() => validateConfig({ backend: "vmx" }, "c.yaml", "/"));
    expect(e.path).toBe("memory");
  });

  it("rejects a malformed memory size", () => {
    expect(configError(() => validateConfig({ ...base, memory: "16Q" }, "c.yaml", "/")).message)
      .toBe('c.yaml: memory: "16Q" is not a size (a number of bytes or e.g. 16M, 512K, 1G)');
  });

  it("rejects memory outside 1M..1G and not page-sized", () => {
    expect(configError(() => validateConfig({ ...base, memory: "512K" }, "c", "/")).detail).toContain("out of range");
    expect(configError(() => validateConfig({ ...base, memory: "2G" }, "c", "/")).detail).toContain("out of range");
    expect(configError(() => validateConfig({ ...base, memory: (1 << 20) + 1 }, "c", "/")).detail).toContain("multiple of 4K");
    expect(validateConfig({ ...base, memory: 1 << 20 }, "c", "/").memory).toBe(1 << 20);
    expect(validateConfig({ ...base, memory: "1G" }, "c", "/").memory).toBe(1 << 30);
  });

  it("says engine kvm is not available yet, and rejects unknown engines", () => {
    expect(configError(() => validateConfig({ ...base, engine: "kvm" }, "c", "/")).detail).toBe("engine kvm is not available yet");
    expect(configError(() => validateConfig({ ...base, engine: "qemu" }, "c", "/")).path).toBe("engine");
  });

  it("rejects a backend that is neither a name nor { use, options }", () => {
    const e = configError(() => validateConfig({ ...base, backend: 3 }, "c", "/"));
    expect(e.path).toBe("backend");
    expect(e.detail).toBe("expected string or object");
    const e2 = configError(() => validateConfig({ ...base, backend: { use: "vmx", opts: {} } }, "c", "/"));
    expect(e2.path).toBe("backend.opts");
  });

  it("selects console sources, all by default", () => {
    expect(validateConfig(base, "c", "/").consoleOutput).toBeUndefined();
    expect(validateConfig({ ...base, console: { output: ["com1"] } }, "c", "/").consoleOutput).toEqual(["com1"]);
    expect(configError(() => validateConfig({ ...base, console: { output: [] } }, "c", "/")).path).toBe("console.output");
  });

  it("selects the clock: host time by default, instructions at a MIPS rate, strict keys", () => {
    expect(validateConfig(base, "c", "/").clock).toEqual({ mode: "host", mips: 100, idle: "skip" });
    expect(validateConfig({ ...base, clock: { mode: "instructions", mips: 25, idle: "sleep" } }, "c", "/").clock)
      .toEqual({ mode: "instructions", mips: 25, idle: "sleep" });
    expect(configError(() => validateConfig({ ...base, clock: { mode: "wall" } }, "c", "/")).path).toBe("clock.mode");
    expect(configError(() => validateConfig({ ...base, clock: { mips: 0 } }, "c", "/")).path).toBe("clock.mips");
    expect(configError(() => validateConfig({ ...base, clock: { mode: "host", rate: 1 } }, "c", "/")).path).toBe("clock.rate");
  });

  it("reads a cpuid leaf-1 mask, none by default, strict keys and 32-bit values", () => {
    expect(validateConfig(base, "c", "/").cpuid).toEqual({});
    expect(validateConfig({ ...base, cpuid: { mask: { leaf1: { edx: 0xfffe } } } }, "c", "/").cpuid)
      .toEqual({ mask: { leaf1: { edx: 0xfffe } } });
    expect(configError(() => validateConfig({ ...base, cpuid: { mask: { leaf7: {} } } }, "c", "/")).path).toBe("cpuid.mask.leaf7");
    expect(configError(() => validateConfig({ ...base, cpuid: { mask: { leaf1: { ecx: 2 ** 32 } } } }, "c", "/")).path).toBe("cpuid.mask.leaf1.ecx");
  });

  it("reads a cpuid 80000001h EDX mask beside the leaf-1 one", () => {
    expect(validateConfig({ ...base, cpuid: { mask: { ext1: { edx: 0xffefffff } } } }, "c", "/").cpuid)
      .toEqual({ mask: { ext1: { edx: 0xffefffff } } });
    expect(validateConfig({ ...base, cpuid: { mask: { leaf1: { edx: 1 }, ext1: { edx: 0 } } } }, "c", "/").cpuid)
      .toEqual({ mask: { leaf1: { edx: 1 }, ext1: { edx: 0 } } });
    expect(configError(() => validateConfig({ ...base, cpuid: { mask: { ext1: { ecx: 0 } } } }, "c", "/")).path).toBe("cpuid.mask.ext1.ecx");
  });

  it("accepts a backend with options", () => {
    const c = validateConfig({ ...base, backend: { use: "svm", options: { npt: true } } }, "c", "/");
    expect(c.backend).toEqual({ use: "svm", options: { npt: true }, path: "backend" });
  });

  it("reads JSON by extension and YAML otherwise, and reports syntax errors with the file", () => {
    expect(loadConfig(file("a.json", JSON.stringify(base))).memory).toBe(16 << 20);
    expect(loadConfig(file("a.yaml", "backend: svm\nmemory: 2M\n")).backend.use).toBe("svm");
    expect(configError(() => loadConfig(file("b.json", "{ nope"))).message).toMatch(/b\.json: \(root\): invalid JSON/);
    expect(configError(() => loadConfig(file("b.yaml", "a: [1,\n"))).message).toMatch(/b\.yaml: \(root\): invalid YAML/);
    expect(configError(() => loadConfig(join(dir, "missing.yaml"))).detail).toBe("no such file");
  });

  it("anchors relative paths at the config file's directory", () => {
    expect(loadConfig(file("c.yaml", "backend: vmx\nmemory: 2M\n")).dir).toBe(dir);
  });
});

describe("--set overrides", () => {
  it("parses key paths with indices", () => {
    expect(parsePath("plugins[0].options.mode")).toEqual(["plugins", 0, "options", "mode"]);
    expect(parsePath("backend")).toEqual(["backend"]);
    for (const bad of ["", "[0]", "a..b", "a.", "a[x]", "a b"]) expect(() => parsePath(bad)).toThrow(ConfigError);
  });

  it("reads values as YAML scalars, keeping other text as a string", () => {
    expect(parseSetArg("memory=32M")).toEqual({ path: "memory", value: "32M" });
    expect(parseSetArg("plugins[1].options.com1.enabled=false").value).toBe(false);
    expect(parseSetArg("x=0x7e0").value).toBe(0x7e0);
    expect(parseSetArg("x=").value).toBe("");
    expect(() => parseSetArg("novalue")).toThrow(ConfigError);
  });

  it("sets top-level keys and plugin options by index before validation", () => {
    const f = file("o.yaml", "backend: vmx\nmemory: 16M\nplugins:\n  - use: realmode\n    options: { mode: native }\n  - use: devices-lpc\n");
    const c = loadConfig(f, [parseSetArg("backend=svm"), parseSetArg("plugins[0].options.mode=emulate"), parseSetArg("plugins[1].options.com1.input=none")]);
    expect(c.backend.use).toBe("svm");
    expect(c.plugins[0]!.options).toEqual({ mode: "emulate" });
    expect(c.plugins[1]!.options).toEqual({ com1: { input: "none" } });
  });

  it("turns a string backend into { use } when setting its options", () => {
    const raw: Record<string, unknown> = { backend: "vmx" };
    applyOverride(raw, { path: "backend.options.ept", value: true });
    expect(raw["backend"]).toEqual({ use: "vmx", options: { ept: true } });
  });

  it("cannot invent a plugin entry", () => {
    const raw: Record<string, unknown> = { plugins: [{ use: "a" }] };
    const e = configError(() => applyOverride(raw, { path: "plugins[3].options.x", value: 1 }));
    expect(e.message).toBe("--set: plugins[3]: no such entry (the list has 1)");
  });

  it("validates the overridden result, so a bad value is reported at its key", () => {
    const f = file("p.yaml", "backend: vmx\nmemory: 16M\n");
    expect(configError(() => loadConfig(f, [parseSetArg("memory=lots")])).path).toBe("memory");
    expect(configError(() => loadConfig(f, [parseSetArg("backnd=svm")])).detail).toContain('did you mean "backend"');
  });
});

describe("units", () => {
  it("parses sizes with binary suffixes", () => {
    expect(parseSize("16M")).toBe(16 * 2 ** 20);
    expect(parseSize("512k")).toBe(512 * 1024);
    expect(parseSize("1G")).toBe(2 ** 30);
    expect(parseSize("4096")).toBe(4096);
    expect(parseSize("2MiB")).toBe(2 * 2 ** 20);
    expect(parseSize("1.5M")).toBeUndefined();
    expect(parseSize(-1)).toBeUndefined();
  });

  it("parses durations, bare numbers as seconds", () => {
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("2m")).toBe(120_000);
    expect(parseDuration(3)).toBe(3000);
    expect(parseDuration("3")).toBe(3000);
    expect(parseDuration("soon")).toBeUndefined();
  });
});

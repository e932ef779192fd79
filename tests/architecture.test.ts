// The layering rules of DESIGN.md, checked on the source: nothing reaches around a layer.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Test files and test fixtures may reach further than product code. */
const isTestOnly = (p: string) =>
  /\.test\.ts$/.test(p) || /\.fixtures\.ts$/.test(p) || p.includes(`${sep}testing${sep}`) || p.endsWith(`${sep}testing.ts`);

/** Project files a source file imports, as repository-relative paths. */
function projectImports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)].map((m) => m[1]);
  return specs.map((s) => relative(ROOT, resolve(dirname(file), s)).split(sep).join("/").replace(/\.js$/, ".ts"));
}

const PUBLIC_API = ["src/monitor/api.ts", "src/kernel/api.ts"];
const isPublic = (p: string) => PUBLIC_API.includes(p) || p.startsWith("src/x86/");

describe("layering (DESIGN.md)", () => {
  it("built-in plugins import only the public plugin API, the x86 model and their own files", () => {
    const bad: string[] = [];
    for (const plugin of readdirSync(join(ROOT, "plugins"))) {
      const own = `plugins/${plugin}/`;
      for (const f of sources(join(ROOT, "plugins", plugin))) {
        if (isTestOnly(f)) continue;
        for (const imp of projectImports(f)) {
          if (!imp.startsWith(own) && !isPublic(imp)) bad.push(`${relative(ROOT, f)} -> ${imp}`);
        }
      }
    }
    expect(bad).toEqual([]);
  });

  it("the kernel never imports the monitor, a plugin or a device", () => {
    const bad = sources(join(ROOT, "src/kernel"))
      .filter((f) => !isTestOnly(f))
      .flatMap((f) => projectImports(f).filter((i) => !i.startsWith("src/kernel/") && !i.startsWith("src/x86/")).map((i) => `${relative(ROOT, f)} -> ${i}`));
    expect(bad).toEqual([]);
  });

  it("the x86 model depends on nothing else in the project", () => {
    const bad = sources(join(ROOT, "src/x86"))
      .filter((f) => !isTestOnly(f))
      .flatMap((f) => projectImports(f).filter((i) => !i.startsWith("src/x86/")).map((i) => `${relative(ROOT, f)} -> ${i}`));
    expect(bad).toEqual([]);
  });

  it("the monitor reaches the kernel only through its API and boot entry, never its objects", () => {
    const allowed = new Set(["src/kernel/api.ts", "src/kernel/index.ts"]);
    const bad = sources(join(ROOT, "src/monitor"))
      .filter((f) => !isTestOnly(f))
      .flatMap((f) => projectImports(f).filter((i) => i.startsWith("src/kernel/") && !allowed.has(i)).map((i) => `${relative(ROOT, f)} -> ${i}`));
    expect(bad).toEqual([]);
  });
});

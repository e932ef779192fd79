// Without emitDecoratorMetadata, a constructor parameter missing @inject(TOKEN) is
// silently injected as undefined (toolchain notes §3). Check every exported class that
// carries tsyringe injection metadata, in the package barrel and the built-in plugins.
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { missingInjectTokens } from "../src/monitor/di-guard.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function modulesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...modulesUnder(p));
    else if (/\.ts$/.test(e.name) && !/\.(test|fixtures)\.ts$/.test(e.name)) out.push(p);
  }
  return out;
}

type Ctor = abstract new (...a: never[]) => unknown;
const isInjectableLike = (v: unknown): v is Ctor =>
  typeof v === "function" && Reflect.getOwnMetadata("injectionTokens", v) !== undefined;

describe("DI guard", () => {
  it("every exported class with @inject metadata has a token on each constructor parameter", async () => {
    const files = [join(root, "src/index.ts"), ...["vmx", "svm", "devices-lpc", "realmode"].flatMap((p) => modulesUnder(join(root, "plugins", p, "src")))];
    const bad: string[] = [];
    let checked = 0;
    for (const f of files) {
      const mod = (await import(pathToFileURL(f).href)) as Record<string, unknown>;
      for (const [name, v] of Object.entries(mod)) {
        if (!isInjectableLike(v)) continue;
        checked++;
        const missing = missingInjectTokens(v);
        if (missing.length) bad.push(`${f.slice(root.length + 1)}: ${name} parameters ${missing.join(", ")}`);
      }
    }
    expect(bad).toEqual([]);
    expect(checked).toBeGreaterThan(0); // the scan found the backends' @injectable classes
  });
});

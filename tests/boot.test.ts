// Every boot test in tests/boot/*.yaml, one vitest test per matrix combination,
// through the same runner as `hvkit test`.
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { expandMatrix, loadBootTest, runCombination, skipReason } from "../src/monitor/harness.js";

const dir = join(dirname(fileURLToPath(import.meta.url)), "boot");

for (const name of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
  const test = loadBootTest(join(dir, name));
  describe(`boot: ${test.name}`, () => {
    for (const combo of expandMatrix(test.matrix)) {
      it(combo.label, async (ctx) => {
        const skip = skipReason(test);
        if (skip) ctx.skip(skip);
        const r = await runCombination(test, combo);
        if (r.status === "skip") ctx.skip(r.reason);
        expect(r.status, r.reason).toBe("pass");
      }, test.timeoutMs + 10_000);
    }
  });
}

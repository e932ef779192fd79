// The soak tests (tests/soak): minutes long, so outside the default `npm test` include.
// Run with `npx vitest run -c vitest.soak.config.ts`. Forks with --expose-gc so a test can
// force a collection before it samples the RSS.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/soak/**/*.soak.test.ts"],
    setupFiles: ["./tests/setup.ts"],
    pool: "forks",
    execArgv: ["--expose-gc"],
    testTimeout: 15 * 60_000,
    hookTimeout: 60_000,
  },
});

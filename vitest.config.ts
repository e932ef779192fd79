import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "plugins/**/*.test.ts", "tests/**/*.test.ts"],
    // The minute-long soak runs with `npm run test:soak` (vitest.soak.config.ts); CI runs both.
    exclude: ["tests/soak/**", ...configDefaults.exclude],
    setupFiles: ["./tests/setup.ts"],
    testTimeout: 60_000,
  },
});

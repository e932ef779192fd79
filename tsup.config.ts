import { defineConfig } from "tsup";

export default defineConfig({
  entry: {
    index: "src/index.ts",
    cli: "src/cli.ts",
    x86: "src/x86/index.ts",
    conformance: "src/x86/conformance/cli.ts",
    bench: "bench/bench.ts",
  },
  format: ["esm"],
  target: "node20",
  platform: "node",
  sourcemap: true,
  clean: true,
  splitting: true,
  dts: false,
  // Code splitting hoists shared-chunk imports above an entry's own
  // `import "reflect-metadata"`; tsyringe then throws. Put it first in every file
  // (toolchain notes §4).
  banner: { js: 'import "reflect-metadata";' },
});

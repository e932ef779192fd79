// The `hvkit` command line: run, validate, test, info. `main` returns the exit status so
// tests call it in-process; src/cli.ts is the executable wrapper.
import { Command, CommanderError } from "commander";
import { ConfigError } from "./api.js";
import type { RunResult, StopReason } from "./api.js";
import { loadConfig, parseSetArg } from "./config.js";
import type { Override } from "./config.js";
import { VmConsole } from "./console.js";
import { formatResults, loadBootTest, runBootTest } from "./harness.js";
import { createMachine } from "./machine.js";
import type { Machine } from "./machine.js";
import { INFO_BACKENDS, infoText, type InfoBackend } from "./info.js";
import { loadPlugins } from "./plugins.js";
import { StdioSink } from "./stdio.js";
import { formatSize, parseDuration } from "./units.js";

/** Exit statuses of `hvkit run` (README "CLI"). */
export const EXIT_STATUS: Readonly<Record<StopReason | "config", number>> = {
  halted: 0, error: 1, config: 2, timeout: 3, shutdown: 4, escape: 5,
};

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  readonly stdin?: NodeJS.ReadStream;
  readonly stdout?: NodeJS.WritableStream;
}

const processIo: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}

function summary(result: RunResult, machine: Machine, ms: number): string {
  const s = machine.stats();
  // Each kind with its average kernel syscalls per exit, labelled once: "io 59 (2.0 syscalls/exit), hlt 1 (4.0)".
  const exits = Object.entries(s.exits).map(([k, n], i) => {
    const sys = s.syscalls[k];
    return sys === undefined ? `${k} ${n}` : `${k} ${n} (${(sys / n).toFixed(1)}${i === 0 ? " syscalls/exit" : ""})`;
  }).join(", ") || "none";
  const un = s.unclaimed;
  return `hvkit: ${result.reason}: ${result.message}\n`
    + `hvkit: ${(ms / 1000).toFixed(2)}s; exits: ${exits}; unclaimed pio r/w ${un.pio.reads}/${un.pio.writes}, mmio r/w ${un.mmio.reads}/${un.mmio.writes}\n`;
}

function overridesFrom(sets: readonly string[], backend: string | undefined): Override[] {
  const o = sets.map(parseSetArg);
  if (backend !== undefined) o.push({ path: "backend", value: backend });
  return o;
}

function timeoutFrom(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined) throw new ConfigError("--timeout", `"${text}" is not a duration (e.g. 500ms, 10s, 2m)`);
  return ms;
}

async function runCommand(file: string, opts: { timeout?: string; set: string[]; backend?: string; quiet?: boolean }, io: CliIo): Promise<number> {
  const timeoutMs = timeoutFrom(opts.timeout);
  const console = new VmConsole();
  const machine = await createMachine(file, { overrides: overridesFrom(opts.set, opts.backend), console });
  const sink = new StdioSink(console, {
    ...(io.stdin ? { stdin: io.stdin } : {}),
    ...(io.stdout ? { stdout: io.stdout } : {}),
    onEscape: () => machine.stop("escape", "escape key (Ctrl-])"),
  });
  const t0 = performance.now();
  let result: RunResult;
  sink.start();
  try {
    result = await machine.run(timeoutMs === undefined ? {} : { timeoutMs });
  } finally {
    sink.stop();
  }
  if (!opts.quiet) io.err((sink.atLineStart ? "" : "\n") + summary(result, machine, performance.now() - t0));
  else if (result.reason === "error") io.err(`hvkit: error: ${result.message}\n`);
  await machine.dispose();
  return EXIT_STATUS[result.reason];
}

async function validateCommand(file: string, opts: { set: string[]; backend?: string }, io: CliIo): Promise<number> {
  const config = loadConfig(file, overridesFrom(opts.set, opts.backend));
  const plugins = await loadPlugins(config);
  const names = plugins.map((p) => p.plugin.id).join(", ");
  io.out(`ok: ${config.name}: ${formatSize(config.memory)}, engine ${config.engine}, plugins ${names}\n`);
  return 0;
}

async function testCommand(file: string, io: CliIo): Promise<number> {
  const test = loadBootTest(file);
  const results = await runBootTest(test, (r) => io.err(`${r.status.padEnd(4)} ${r.combination.label}\n`));
  io.out(`${formatResults(test, results)}\n`);
  return results.some((r) => r.status === "fail") ? 1 : 0;
}

/** Run the CLI with `argv` (without node and the script); resolves to the exit status. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let status = 0;
  const program = new Command("hvkit")
    .description("A TypeScript hypervisor framework: assemble a monitor from a config file and boot a guest.")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });

  program.command("run")
    .description("boot the machine of <config> with its console on this terminal (Ctrl-] quits)")
    .argument("<config>", "a machine config (.yaml, .yml or .json)")
    .option("--timeout <duration>", "stop after this long (e.g. 10s); default: the config's timeout, else never")
    .option("--set <key=value>", "override a config key before validation, e.g. plugins[0].options.mode=emulate (repeatable)", collect, [])
    .option("--backend <name>", "shorthand for --set backend=<name> (vmx, svm, or a plugin)")
    .option("--quiet", "no summary on stderr at the end")
    .action(async (file: string, opts: { timeout?: string; set: string[]; backend?: string; quiet?: boolean }) => {
      status = await runCommand(file, opts, io);
    });

  program.command("validate")
    .description("check <config> and the options of every plugin it loads; prints ok or the bad key")
    .argument("<config>")
    .option("--set <key=value>", "override a config key (repeatable)", collect, [])
    .option("--backend <name>", "shorthand for --set backend=<name>")
    .action(async (file: string, opts: { set: string[]; backend?: string }) => {
      status = await validateCommand(file, opts, io);
    });

  program.command("test")
    .description("run a boot test (tests/boot/*.yaml) over its whole matrix; exit 1 if any combination fails")
    .argument("<boot-test>")
    .action(async (file: string) => {
      status = await testCommand(file, io);
    });

  program.command("info")
    .description("print the VMX/SVM capabilities the kernel reports, like DragonFly's hw.vmm sysctl tree")
    .option("--backend <name>", `only this backend (${INFO_BACKENDS.join(", ")})`)
    .action(async (opts: { backend?: string }) => {
      if (opts.backend !== undefined && !INFO_BACKENDS.includes(opts.backend as InfoBackend)) {
        throw new ConfigError("--backend", `expected one of ${INFO_BACKENDS.join(", ")}`);
      }
      io.out(await infoText(opts.backend !== undefined ? [opts.backend as InfoBackend] : INFO_BACKENDS));
    });

  try {
    await program.parseAsync(argv, { from: "user" });
    return status;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : EXIT_STATUS.config;
    if (e instanceof ConfigError) {
      io.err(`hvkit: ${e.message}\n`);
      return EXIT_STATUS.config;
    }
    const err = e as Error;
    io.err(`hvkit: ${err?.name ?? "Error"}: ${err?.message ?? String(e)}\n`);
    if (process.env["HVKIT_DEBUG"]) io.err(`${err?.stack ?? ""}\n`);
    else io.err("run with HVKIT_DEBUG=1 for a stack trace\n");
    return EXIT_STATUS.error;
  }
}

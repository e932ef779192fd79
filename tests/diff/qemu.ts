// Runs a guest image on qemu-system-i386 (TCG, i686 profile) and returns what it
// wrote to port E9h. Each run has its own temporary directory (parallel-safe) and
// a wall-clock limit; results are cached by image hash and QEMU version.
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunResult } from "./hvkit.js";

export const QEMU_BINARY = "qemu-system-i386";
/**
 * pentium3: an i686 (family 6) profile with x87, PSE, PAE, CMOV, FXSR, SSE, SYSENTER and
 * no long mode, NX or later extensions, the closest QEMU model to the honest i686
 * profile the core reports (issue 7).
 */
export const QEMU_CPU = "pentium3";

let versionCache: string | null | undefined;
/** `qemu-system-i386 --version`'s first line, or null when QEMU is not installed. */
export function qemuVersion(): string | null {
  if (versionCache !== undefined) return versionCache;
  try {
    versionCache = execFileSync(QEMU_BINARY, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split("\n")[0].trim();
  } catch {
    versionCache = null;
  }
  return versionCache;
}

export function qemuArgs(imagePath: string, outPath: string): string[] {
  return [
    "-M", "pc", "-m", "32", "-cpu", QEMU_CPU, "-accel", "tcg",
    "-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none", "-serial", "none", "-parallel", "none",
    "-bios", imagePath,
    "-chardev", `file,id=dbg,path=${outPath}`,
    "-device", "isa-debugcon,iobase=0xe9,chardev=dbg",
    "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
  ];
}

export interface QemuOptions {
  timeoutMs: number;
  /** Cache folder (e.g. .cache/diff); null disables caching. */
  cacheDir: string | null;
}

interface CacheEntry { status: RunResult["status"]; detail: string; work: number }

function cacheKey(image: Uint8Array, generatorVersion: number): string {
  return createHash("sha256").update(`v${generatorVersion}\n${qemuVersion()}\n${QEMU_CPU}\n`).update(image).digest("hex").slice(0, 32);
}

/** Run one image; never throws for guest or QEMU problems (they come back as a status). */
export async function runQemu(image: Uint8Array, generatorVersion: number, opt: QemuOptions): Promise<RunResult & { cached: boolean }> {
  const key = cacheKey(image, generatorVersion);
  if (opt.cacheDir) {
    const bin = join(opt.cacheDir, `${key}.bin`), meta = join(opt.cacheDir, `${key}.json`);
    if (existsSync(bin) && existsSync(meta)) {
      const m = JSON.parse(readFileSync(meta, "utf8")) as CacheEntry;
      return { ...m, output: new Uint8Array(readFileSync(bin)), cached: true };
    }
  }
  const dir = mkdtempSync(join(tmpdir(), "hvkit-qemu-"));
  const imagePath = join(dir, "bios.bin"), outPath = join(dir, "e9.bin");
  writeFileSync(imagePath, image);
  const started = Date.now();
  const result = await new Promise<RunResult>((resolve) => {
    const child = spawn(QEMU_BINARY, qemuArgs(imagePath, outPath), { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill("SIGKILL"); }, opt.timeoutMs);
    const finish = (code: number | null, signal: string | null, err?: Error): void => {
      clearTimeout(timer);
      const output = existsSync(outPath) ? new Uint8Array(readFileSync(outPath)) : new Uint8Array(0);
      const work = Date.now() - started;
      if (err) resolve({ status: "error", output, detail: `could not start ${QEMU_BINARY}: ${err.message}`, work });
      else if (timedOut) resolve({ status: "timeout", output, detail: `killed after ${opt.timeoutMs} ms; stderr: ${stderr.trim()}`, work });
      // isa-debug-exit: the guest wrote 0, QEMU exits with (0 << 1) | 1.
      else if (code === 1) resolve({ status: "exit", output, detail: "", work });
      else if (code === 0) resolve({ status: "triple-fault", output, detail: `QEMU shut down (triple fault or reset with -no-reboot); stderr: ${stderr.trim()}`, work });
      else resolve({ status: "error", output, detail: `QEMU exited with ${code ?? signal}; stderr: ${stderr.trim()}`, work });
    };
    child.on("error", (e) => finish(null, null, e));
    child.on("exit", (code, signal) => finish(code, signal));
  });
  rmSync(dir, { recursive: true, force: true });
  // Only definite outcomes are cached; a timeout may be load on the machine.
  if (opt.cacheDir && (result.status === "exit" || result.status === "triple-fault")) {
    mkdirSync(opt.cacheDir, { recursive: true });
    const tmp = join(opt.cacheDir, `${key}.${process.pid}.tmp`);
    writeFileSync(tmp, result.output);
    renameSync(tmp, join(opt.cacheDir, `${key}.bin`));
    writeFileSync(tmp, JSON.stringify({ status: result.status, detail: result.detail, work: result.work } satisfies CacheEntry));
    renameSync(tmp, join(opt.cacheDir, `${key}.json`));
  }
  return { ...result, cached: false };
}

// The protected-mode guest judged by QEMU (tests/guests/run-on-qemu.sh): the guest's own
// checks must pass on qemu-system-i386 before hvkit's boot test can mean anything.
import { execFileSync, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));

function qemuAvailable(): boolean {
  try {
    execFileSync("qemu-system-i386", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const hasQemu = qemuAvailable();
if (!hasQemu) console.log("tests/guests: skipping the QEMU run of pmode.img: qemu-system-i386 is not on PATH");

describe("guests on QEMU", () => {
  it.skipIf(!hasQemu)("pmode.img passes all its checks on qemu-system-i386 and halts with IF=0", () => {
    const r = spawnSync("bash", [join(here, "run-on-qemu.sh"), join(here, "pmode.img"), "30"], { encoding: "utf8" });
    expect(r.stdout).toContain("pmode: all tests passed");
    expect(r.status, r.stdout + r.stderr).toBe(0);
  }, 45_000);
});

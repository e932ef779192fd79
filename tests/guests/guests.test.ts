// Every committed guest image must be exactly what its source assembles to.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));
const sources = readdirSync(here).filter((f) => f.endsWith(".asm")).sort();

function nasmAvailable(): boolean {
  try {
    execFileSync("nasm", ["-v"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const hasNasm = nasmAvailable();
if (!hasNasm) console.log("tests/guests: skipping the image check: nasm is not on PATH");

describe("guest images", () => {
  const tmp = mkdtempSync(join(tmpdir(), "hvkit-guests-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("finds the guest sources", () => {
    expect(sources).toContain("hello.asm");
  });

  for (const src of sources) {
    const img = `${basename(src, ".asm")}.img`;
    it.skipIf(!hasNasm)(`${img} equals what nasm assembles from ${src}`, () => {
      const out = join(tmp, img);
      // -i: shared routines live in lib/*.inc (nasm 2.16 does not search the source's folder).
      execFileSync("nasm", ["-i", `${here}/`, "-f", "bin", "-o", out, join(here, src)]);
      expect(Buffer.compare(readFileSync(out), readFileSync(join(here, img)))).toBe(0);
    });
  }

  it("hello.img is a boot sector: 512 bytes ending 0x55 0xAA", () => {
    const b = readFileSync(join(here, "hello.img"));
    expect(b.length).toBe(512);
    expect([b[510], b[511]]).toEqual([0x55, 0xaa]);
  });
});

// String I/O end to end through the whole monitor: the real kernel (soft engine), the VMX
// and SVM backends with the monitor's IoAssist, realmode booting a hand-assembled boot
// sector, devices-lpc's debug console at 0xE9 and the run loop (which must count the
// string exits without dispatching them to the bus a second time).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createMachine } from "../src/monitor/machine.js";
import { VmConsole } from "../src/monitor/console.js";

const tmp = mkdtempSync(join(tmpdir(), "hvkit-strio-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const MSG = "string io ok\n";
const BUF = 0x600;
const CODE = [
  0xfa,                         // 7c00 cli
  0x31, 0xc0,                   // 7c01 xor ax, ax
  0x8e, 0xd8,                   // 7c03 mov ds, ax
  0x8e, 0xc0,                   // 7c05 mov es, ax
  0xfc,                         // 7c07 cld
  0xbe, 0x1c, 0x7c,             // 7c08 mov si, msg (7c1c)
  0xb9, MSG.length, 0x00,       // 7c0b mov cx, len
  0xba, 0xe9, 0x00,             // 7c0e mov dx, 0xe9
  0xf3, 0x6e,                   // 7c11 rep outsb
  0xbf, BUF & 0xff, BUF >> 8,   // 7c13 mov di, 0x600
  0xb9, 0x04, 0x00,             // 7c16 mov cx, 4
  0xf3, 0x6c,                   // 7c19 rep insb
  0xf4,                         // 7c1b hlt (IF = 0: the run stops "halted")
  ...[...MSG].map((c) => c.charCodeAt(0)), // 7c1c msg
];

function floppy(): string {
  const img = new Uint8Array(1474560);
  img.set(CODE, 0);
  img[510] = 0x55; img[511] = 0xaa;
  const file = join(tmp, "strio.img");
  writeFileSync(file, img);
  return file;
}

describe("string I/O through the whole monitor", () => {
  const image = floppy();
  for (const backend of ["vmx", "svm"]) {
    it(`${backend}: rep outsb prints a string on the debug console once per byte, rep insb fills memory, one io exit each`, async () => {
      const file = join(tmp, `strio-${backend}.yaml`);
      writeFileSync(file, [
        `name: strio-${backend}`,
        `backend: ${backend}`,
        "memory: 2M",
        "plugins:",
        "  - use: realmode",
        `    options: { mode: native, disks: [{ drive: 0, file: ${JSON.stringify(image)} }] }`,
        "  - use: devices-lpc",
        "",
      ].join("\n"));
      const console = new VmConsole();
      let out = "";
      console.events.on("output", (b, source) => { if (source === "debugcon") out += String.fromCharCode(b); });
      const m = await createMachine(file, { console });
      const r = await m.run({ timeoutMs: 20_000 });
      expect(r.reason, r.message).toBe("halted");
      expect(out).toBe(MSG);
      expect([m.memory.read8(BUF), m.memory.read8(BUF + 1), m.memory.read8(BUF + 2), m.memory.read8(BUF + 3)])
        .toEqual([0xe9, 0xe9, 0xe9, 0xe9]); // the debug console's readback value
      const s = m.vcpu.getState();
      expect(s.esi).toBe(0x7c1c + MSG.length);
      expect(s.edi & 0xffff).toBe(BUF + 4);
      expect(s.ecx & 0xffff).toBe(0);
      expect(r.exits.io).toBeGreaterThanOrEqual(2);
    });
  }
});

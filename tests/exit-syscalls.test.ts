// Syscalls per exit kind through the whole monitor (issue 5: "print the syscall count per
// exit kind in the exit statistics"): the real kernel, the VMX and SVM backends, realmode
// booting a boot sector that loops on OUT 0xE9. The marginal cost of one more io exit is
// measured by running the loop with two iteration counts, so the BIOS's own exits cancel.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createMachine } from "../src/monitor/machine.js";
import { VmConsole } from "../src/monitor/console.js";

const tmp = mkdtempSync(join(tmpdir(), "hvkit-exsys-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const code = (n: number) => [
  0xfa,             // cli
  0xb9, n, 0x00,    // mov cx, n
  0xb0, 0x41,       // mov al, 'A'
  0xe6, 0xe9,       // out 0xe9, al
  0xe2, 0xfc,       // loop out
  0xf4,             // hlt (IF = 0: the run stops "halted")
];

async function measure(backend: string, n: number) {
  const img = new Uint8Array(1474560);
  img.set(code(n), 0);
  img[510] = 0x55; img[511] = 0xaa;
  const image = join(tmp, `loop-${n}.img`);
  writeFileSync(image, img);
  const file = join(tmp, `loop-${backend}-${n}.yaml`);
  writeFileSync(file, [
    // The deterministic clock: a host-timed PIT tick landing in the loop would open an
    // interrupt window (one more VMWRITE) and charge it to an io exit.
    `backend: ${backend}`, "memory: 2M", "clock: { mode: instructions }", "plugins:", "  - use: realmode",
    `    options: { mode: native, disks: [{ drive: 0, file: ${JSON.stringify(image)} }] }`, "  - use: devices-lpc", "",
  ].join("\n"));
  const m = await createMachine(file, { console: new VmConsole() });
  try {
    const r = await m.run({ timeoutMs: 20_000 });
    expect(r.reason, r.message).toBe("halted");
    return m.stats();
  } finally {
    await m.dispose();
  }
}

describe("syscalls per exit kind", () => {
  // VMX: VMRESUME, then at the next run the completion's VMWRITE of RIP (GPRs, and the exit reason,
  // qualification, instruction length, RIP and interruptibility state, are in the guestControl
  // frame: no syscall; plugins/vmx VmxExitWord). SVM edits the mapped VMCB: VMRUN only.
  const expected: Record<string, number> = { vmx: 2, svm: 1 };
  for (const backend of ["vmx", "svm"]) {
    it(`${backend}: one more OUT exit costs ${expected[backend]} syscall(s), and every counted exit kind has a count`, async () => {
      const a = await measure(backend, 20);
      const b = await measure(backend, 60);
      expect(b.exits["io"]! - a.exits["io"]!).toBe(40);
      expect((b.syscalls["io"]! - a.syscalls["io"]!) / 40).toBe(expected[backend]);
      expect(Object.keys(b.syscalls).sort()).toEqual(Object.keys(b.exits).sort());
      // Every exit costs at least its world switch.
      for (const k of Object.keys(b.exits)) expect(b.syscalls[k]!, k).toBeGreaterThanOrEqual(b.exits[k]!);
    });
  }
});

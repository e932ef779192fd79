// Interrupt delivery end to end: the real kernel (soft engine), the real VMX and SVM
// backends, realmode in both modes, devices-lpc's 8259A pair and the run loop. The guest
// (tests/guests/irq.asm) programs the PIC, unmasks IRQ3 and waits in `sti; hlt`; the test
// raises and lowers IRQ line 3 and reads the guest's handler count from guest memory.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createMachine, type Machine } from "../src/monitor/machine.js";
import { VmConsole } from "../src/monitor/console.js";

const here = dirname(fileURLToPath(import.meta.url));
const image = join(here, "guests", "irq.img");
const tmp = mkdtempSync(join(tmpdir(), "hvkit-irq-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const COUNT = 0x500, READY = 0x502, HALTS = 0x504;
const EDGES = 5;

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const settle = () => new Promise((r) => setTimeout(r, 25));

async function machineFor(backend: string, mode: string, clock: string): Promise<Machine> {
  const file = join(tmp, `irq-${backend}-${mode}-${clock}.yaml`);
  writeFileSync(file, [
    `name: irq-${backend}-${mode}`,
    `backend: ${backend}`,
    "memory: 2M",
    `clock: { mode: ${clock} }`,
    "plugins:",
    "  - use: realmode",
    `    options: { mode: ${mode}, disks: [{ drive: 0, file: ${JSON.stringify(image)} }] }`,
    "  - use: devices-lpc",
    "",
  ].join("\n"));
  return createMachine(file, { console: new VmConsole() });
}

describe("interrupt delivery end to end", () => {
  for (const backend of ["vmx", "svm"]) {
    for (const mode of ["native", "emulate"]) {
      for (const clock of ["host", "instructions"]) {
        it(`${backend}, realmode ${mode}, ${clock} clock: the handler runs exactly once per IRQ3 edge and the guest stays halted between`, async () => {
          const m = await machineFor(backend, mode, clock);
          try {
            const running = m.run({ timeoutMs: 30_000 });
            await until("the guest to program the PIC", () => m.memory.read16(READY) === 0x1234);
            await settle();
            expect(m.memory.read16(COUNT)).toBe(0);
            expect(m.memory.read16(HALTS)).toBe(1); // halted once, nothing woke it
            const retired = () => m.vcpu.instructionsRetired!();
            const r0 = retired();
            const line = m.irqs.line(3);
            for (let i = 1; i <= EDGES; i++) {
              line.raise();
              await until(`handler run ${i}`, () => m.memory.read16(COUNT) >= i);
              line.raise(); // still high: no new edge
              await settle();
              expect(m.memory.read16(COUNT)).toBe(i);
              line.lower();
              await settle();
              expect(m.memory.read16(COUNT)).toBe(i);
            }
            // One wake-up per interrupt: a HLT is never left without one.
            expect(m.memory.read16(HALTS)).toBe(EDGES + 1);
            // Each edge runs the handler (push, inc, mov, pop, iret) and the idle loop (jmp, inc, sti);
            // the intercepted OUT and HLT are completed by the monitor, not retired by the engine.
            expect(retired() - r0).toBe(EDGES * 8);
            m.stop("escape", "test done");
            const r = await running;
            expect(r.reason).toBe("escape");
            expect(r.exits["interrupt-window"]).toBe(EDGES);
          } finally {
            await m.dispose();
          }
        });
      }
    }
  }
});

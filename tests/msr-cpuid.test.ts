// The monitor's CPUID and MSR policies as a real guest sees them: the real kernel, the
// VMX/SVM backends, realmode booting a boot sector that runs CPUID and RDMSR/WRMSR.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createMachine } from "../src/monitor/machine.js";
import { VmConsole } from "../src/monitor/console.js";

const tmp = mkdtempSync(join(tmpdir(), "hvkit-msrcpuid-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SAVED_PROBE = 0x500;
const imm32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

/** A boot sector: cli, `code`, hlt; `handler` at 0x7c20. */
async function boot(backend: string, name: string, code: number[], handler: number[] = []) {
  const img = new Uint8Array(1474560);
  img.set([0xfa, ...code, 0xf4], 0); // cli; code; hlt
  img.set(handler, 0x20);
  img[510] = 0x55; img[511] = 0xaa;
  const image = join(tmp, `${name}.img`);
  writeFileSync(image, img);
  const file = join(tmp, `${name}-${backend}.yaml`);
  writeFileSync(file, [
    `backend: ${backend}`, "memory: 2M", "plugins:", "  - use: realmode",
    `    options: { mode: native, disks: [{ drive: 0, file: ${JSON.stringify(image)} }] }`, "",
  ].join("\n"));
  const m = await createMachine(file, { console: new VmConsole() });
  try {
    const r = await m.run({ timeoutMs: 20_000 });
    expect(r.reason, r.message).toBe("halted");
    const memory = [SAVED_PROBE, SAVED_PROBE + 1].reduce<Record<number, number>>((o, a) => ({ ...o, [a]: m.memory.read8(a) }), {});
    return { state: { ...m.vcpu.getState() }, exits: r.exits, memory };
  } finally {
    await m.dispose();
  }
}

const text = (...w: number[]) => w.map((x) => String.fromCharCode(x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24)).join("");

describe("CPUID and MSRs seen by a guest", () => {
  for (const backend of ["vmx", "svm"]) {
    it(`${backend}: CPUID 0x40000000 names the hypervisor`, async () => {
      const { state: s } = await boot(backend, "hvleaf", [0x66, 0xb8, ...imm32(0x40000000), 0x0f, 0xa2]);
      expect(text(s.ebx, s.ecx, s.edx)).toBe("hvkitHVKITvm");
      expect(s.eax).toBe(0x40000001);
    });
  }

  it("vmx: WRMSR then RDMSR of IA32_PAT goes through the MSR policy", async () => {
    const { state: s, exits } = await boot("vmx", "pat", [
      0x66, 0xb9, ...imm32(0x277),      // mov ecx, IA32_PAT
      0x66, 0xb8, ...imm32(0x00010406), // mov eax
      0x66, 0xba, ...imm32(0x00070105), // mov edx
      0x0f, 0x30,                       // wrmsr
      0x66, 0x31, 0xc0,                 // xor eax, eax
      0x66, 0x31, 0xd2,                 // xor edx, edx
      0x0f, 0x32,                       // rdmsr
    ]);
    expect(exits["msr"]).toBe(2);
    expect([s.eax, s.edx]).toEqual([0x00010406, 0x00070105]);
  });

  it("vmx: RDMSR of an MSR outside the table raises #GP at the RDMSR (real mode: no error code pushed)", async () => {
    const RDMSR = 0x7c17, SAVED = 0x500;
    const { state: s, exits, memory } = await boot("vmx", "gp", [
      0x31, 0xc0,                                     // 7c01 xor ax, ax
      0x8e, 0xd8,                                     // 7c03 mov ds, ax
      0xc7, 0x06, 0x34, 0x00, 0x20, 0x7c,             // 7c05 mov word [13*4], handler (7c20)
      0xc7, 0x06, 0x36, 0x00, 0x00, 0x00,             // 7c0b mov word [13*4+2], 0
      0x66, 0xb9, ...imm32(0x123),                    // 7c11 mov ecx, 0x123
      0x0f, 0x32,                                     // 7c17 rdmsr
    ], [0x58, 0xa3, SAVED & 0xff, SAVED >> 8, 0xf4]); // 7c20 handler: pop ax (the fault's IP); mov [SAVED], ax; hlt
    expect(exits["msr"]).toBe(1);
    expect(memory[SAVED]! | (memory[SAVED + 1]! << 8)).toBe(RDMSR);
    expect(s.eip).toBe(0x7c24); // stopped at the handler's HLT
  });
});

// Issue 7: "CPUID reporting an honest i686 profile that the config can narrow", end to
// end. A config file hides PAE (CPUID.1:EDX bit 6) and NX (CPUID.80000001h:EDX bit 20);
// a boot sector reads both leaves, then tries to set CR4.PAE. Under both backends and
// both realmode modes (native: the guest runs on the engine's core; emulate: on the
// plugin's own core until CR0.PE), the guest must see the bits hidden and MOV to CR4
// with PAE must raise #GP as for any reserved CR4 bit (SDM Vol. 3A 2.5).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createMachine } from "../src/monitor/machine.js";
import { VmConsole } from "../src/monitor/console.js";

const tmp = mkdtempSync(join(tmpdir(), "hvkit-cpuidmask-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const imm32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
const LEAF1_EDX = 0x500, EXT1_EDX = 0x504, CR4_SET = 0x508, GP_SEEN = 0x509;
const w16 = (v: number) => [v & 0xff, v >> 8];

// At 7C00h: the #GP handler goes into IVT entry 13, CPUID 1 and 80000001h EDX are stored,
// then CR4.PAE is set; a #GP lands in the handler at 7C60h, which marks GP_SEEN and halts.
const CODE = [
  0xfa,                                           // cli
  0x31, 0xc0, 0x8e, 0xd8,                         // xor ax, ax; mov ds, ax
  0xc7, 0x06, ...w16(13 * 4), ...w16(0x7c60),     // mov word [13*4], 7c60h
  0xc7, 0x06, ...w16(13 * 4 + 2), 0x00, 0x00,     // mov word [13*4+2], 0
  0x66, 0xb8, ...imm32(1), 0x0f, 0xa2,            // mov eax, 1; cpuid
  0x66, 0x89, 0x16, ...w16(LEAF1_EDX),            // mov [LEAF1_EDX], edx
  0x66, 0xb8, ...imm32(0x80000001), 0x0f, 0xa2,   // mov eax, 80000001h; cpuid
  0x66, 0x89, 0x16, ...w16(EXT1_EDX),             // mov [EXT1_EDX], edx
  0x0f, 0x20, 0xe0, 0x66, 0x83, 0xc8, 0x20,       // mov eax, cr4; or eax, 20h (PAE)
  0x0f, 0x22, 0xe0,                               // mov cr4, eax
  0xc6, 0x06, ...w16(CR4_SET), 0x01,              // mov byte [CR4_SET], 1
  0xf4,                                           // hlt
];
const HANDLER = [0xc6, 0x06, ...w16(GP_SEEN), 0x0d, 0xf4]; // mov byte [GP_SEEN], 13; hlt

async function run(backend: string, mode: string, mask: boolean) {
  const img = new Uint8Array(1474560);
  img.set(CODE, 0);
  img.set(HANDLER, 0x60);
  img[510] = 0x55; img[511] = 0xaa;
  const name = `${backend}-${mode}-${mask ? "mask" : "full"}`;
  const image = join(tmp, `${name}.img`);
  writeFileSync(image, img);
  const file = join(tmp, `${name}.yaml`);
  writeFileSync(file, [
    `backend: ${backend}`, "memory: 2M", "plugins:", "  - use: realmode",
    `    options: { mode: ${mode}, disks: [{ drive: 0, file: ${JSON.stringify(image)} }] }`,
    // ~(1 << 6) and ~(1 << 20) as unsigned decimals.
    ...(mask ? ["cpuid:", "  mask:", "    leaf1: { edx: 4294967231 }", "    ext1: { edx: 4293918719 }"] : []), "",
  ].join("\n"));
  const m = await createMachine(file, { console: new VmConsole() });
  try {
    const r = await m.run({ timeoutMs: 20_000 });
    expect(r.reason, r.message).toBe("halted");
    const rd32 = (a: number) => (m.memory.read8(a) | (m.memory.read8(a + 1) << 8) | (m.memory.read8(a + 2) << 16) | (m.memory.read8(a + 3) << 24)) >>> 0;
    return { leaf1Edx: rd32(LEAF1_EDX), ext1Edx: rd32(EXT1_EDX), cr4Set: m.memory.read8(CR4_SET), gp: m.memory.read8(GP_SEEN), cr4: m.vcpu.getState().cr4 };
  } finally {
    await m.dispose();
  }
}

describe("a config's cpuid mask as the guest sees it", () => {
  for (const backend of ["vmx", "svm"]) {
    for (const mode of ["native", "emulate"]) {
      it(`${backend}, realmode ${mode}: PAE and NX hidden from CPUID, and CR4.PAE is reserved`, async () => {
        const r = await run(backend, mode, true);
        expect((r.leaf1Edx >>> 6) & 1).toBe(0);
        expect((r.leaf1Edx >>> 3) & 1).toBe(1); // PSE still reported: only the masked bits go
        expect((r.ext1Edx >>> 20) & 1).toBe(0);
        expect([r.gp, r.cr4Set, r.cr4 & 0x20]).toEqual([13, 0, 0]);
      });

      it(`${backend}, realmode ${mode}: without a mask PAE and NX are reported and CR4.PAE can be set`, async () => {
        const r = await run(backend, mode, false);
        expect((r.leaf1Edx >>> 6) & 1).toBe(1);
        expect((r.ext1Edx >>> 20) & 1).toBe(1);
        expect([r.gp, r.cr4Set, r.cr4 & 0x20]).toEqual([0, 1, 0x20]);
      });
    }
  }
});

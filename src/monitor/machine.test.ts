// Machine assembly with the real kernel (bootKernel + soft engine) and a scripted
// backend plugin: checks the wiring (tokens, capabilities, buses, interposers, boot
// contributions, errors), not a CPU.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ConfigError } from "./api.js";
import { GUEST_CONTROL_BYTES } from "../kernel/api.js";
import type { GuestMemory, MachineCaps } from "./api.js";
import { ConsoleRecorder, VmConsole } from "./console.js";
import { createMachine, DeviceConflictError } from "./machine.js";

const here = dirname(fileURLToPath(import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "hvkit-machine-"));
const caseSwap = resolve(here, "../../tests/fixtures/case-swap-plugin");

// A backend whose vCPU replays a script of exits (OUT "PING" to 0x7e0, four INs,
// then HLT with IF=0) and records the data committed for each IN.
writeFileSync(join(tmp, "scripted-backend.js"), `
export default {
  id: "scripted", phase: "backend",
  parseConfig(raw) { return raw ?? {}; },
  register(vm, options, host) {
    vm.register(host.tokens.VcpuBackend, { useFactory: (c) => {
      const caps = c.resolve(host.tokens.MachineCaps);
      const mem = c.resolve(host.tokens.GuestMemory);
      globalThis.__hvkitMachine = { caps, mem, ins: [] };
      const script = [..."PING"].map((ch) => ({ kind: "io", port: 0x7e0, size: 1, in: false, data: ch.charCodeAt(0) }));
      for (let i = 0; i < 4; i++) script.push({ kind: "io", port: 0x7e0, size: 1, in: true, data: 0 });
      script.push({ kind: "hlt", interruptsEnabled: false });
      let n = 0, prev;
      return {
        id: "scripted",
        run() { if (prev && prev.in) globalThis.__hvkitMachine.ins.push(prev.data); prev = script[n++] ?? script.at(-1); return prev; },
        getState() { return {}; }, setState() {}, inject() {}, setInterruptWindow() {},
      };
    } });
  },
};
`);
// An interposer + boot contribution plugin that records the order of wrapping.
writeFileSync(join(tmp, "wrap.js"), `
export default {
  id: "wrap", phase: "late",
  parseConfig(raw) { return raw ?? { tag: "w" }; },
  register(vm, options, host) {
    vm.register(host.tokens.VcpuInterposer, { useValue: { wrap: (inner) => ({ ...inner, run: () => inner.run(), id: options.tag + "(" + inner.id + ")" }) } });
    vm.register(host.tokens.BootContribution, { useValue: { boot: (vcpu, mem) => { mem.write8(0x7c00, 0xf4); globalThis.__hvkitBoot = vcpu.id; } } });
  },
};
`);
writeFileSync(join(tmp, "port-hog.js"), `
export default {
  id: "port-hog", phase: "device",
  parseConfig(raw) { return raw; },
  register(vm, options, host) {
    vm.register(host.tokens.IoDeviceContribution, { useValue: { device: { name: "hog", read: () => 0, write() {} }, ranges: [{ space: "pio", base: 0x7e0, length: 4 }] } });
  },
};
`);
writeFileSync(join(tmp, "no-backend.js"), `
export default { id: "nb", phase: "backend", parseConfig: () => ({}), register() {} };
`);

function config(name: string, body: string): string {
  const f = join(tmp, name);
  writeFileSync(f, `backend: ./scripted-backend.js\nmemory: 2M\n${body}`);
  return f;
}

interface Recorded { caps: MachineCaps; mem: GuestMemory; ins: number[] }
const recorded = (): Recorded => (globalThis as unknown as { __hvkitMachine: Recorded }).__hvkitMachine;

describe("machine assembly", () => {
  it("builds the kernel objects, places plugin devices on the buses and runs to a halt", async () => {
    const f = config("ok.yaml", `plugins:\n  - use: ${caseSwap}\n  - use: ./wrap.js\n    options: { tag: outer }\n`);
    const console = new VmConsole();
    const m = await createMachine(f, { console });
    const { caps, mem } = recorded();
    expect(caps.guestRegs).toBeInstanceOf(Uint32Array);
    expect(caps.guestRegs.length).toBe(GUEST_CONTROL_BYTES / 4);
    expect(new Set([caps.ram, caps.gpspace, caps.dispatcher, caps.guestControl]).size).toBe(4);
    expect(mem.size).toBe(2 << 20);
    // the boot contribution ran on the wrapped vCPU and wrote into guest RAM
    expect(mem.read8(0x7c00)).toBe(0xf4);
    expect((globalThis as { __hvkitBoot?: string }).__hvkitBoot).toBe("outer(scripted)");
    expect(m.vcpu.id).toBe("outer(scripted)");
    expect(m.pio.entries().map((e) => `${e.device.name}@${e.base.toString(16)}`)).toEqual(["ferr-latch@f0", "case-swap@7e0"]); // the x87 error latch is the platform's own
    const r = await m.run();
    expect(r.reason).toBe("halted");
    expect(String.fromCharCode(...recorded().ins)).toBe("ping");
    expect(m.stats().exits).toEqual({ io: 8, hlt: 1 });
    await m.dispose();
  });

  it("rejects two devices on overlapping ports, naming both", async () => {
    const f = config("clash.yaml", `plugins:\n  - use: ${caseSwap}\n  - use: ./port-hog.js\n`);
    const err = await createMachine(f).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceConflictError);
    expect((err as Error).message).toMatch(/(hog@pio:0x7e0\+4 overlaps case-swap@pio:0x7e0\+1|case-swap@pio:0x7e0\+1 overlaps hog@pio:0x7e0\+4)/);
  });

  it("says so when the backend registers no VcpuBackend", async () => {
    const f = join(tmp, "nb.yaml");
    writeFileSync(f, "backend: ./no-backend.js\nmemory: 1M\n");
    const err = await createMachine(f).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(`${f}: backend: plugin "./no-backend.js" registered no VcpuBackend`);
  });

  it("gives each machine its own container and devices", async () => {
    const f = config("two.yaml", `plugins:\n  - use: ${caseSwap}\n`);
    const a = await createMachine(f);
    const b = await createMachine(f);
    // (identity checks as booleans: vitest's not.toBe deep-compares on the way, slow for whole machines)
    expect(a.container === b.container).toBe(false);
    expect(a.pio.entries()[0]!.device === b.pio.entries()[0]!.device).toBe(false);
    const rec = new ConsoleRecorder(a.console);
    expect(rec.text).toBe("");
    await a.dispose();
    await b.dispose();
  });
});

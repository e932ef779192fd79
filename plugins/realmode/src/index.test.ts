import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { container } from "tsyringe";
import { ConfigError, StateParts, Tokens } from "../../../src/monitor/api.js";
import plugin from "./index.js";
import { EmulatedBiosVcpu } from "./emulate.js";
import { NativeBiosVcpu } from "./native.js";
import { StateOnlyBackend, TestConsole, TestMemory } from "./testing.js";

const dir = mkdtempSync(join(tmpdir(), "hvkit-realmode-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const boot = new Uint8Array(512);
boot[0] = 0xeb; boot[1] = 0xfe; boot[510] = 0x55; boot[511] = 0xaa;
writeFileSync(join(dir, "boot.img"), boot);
writeFileSync(join(dir, "empty.img"), new Uint8Array(0));

function configError(f: () => unknown): ConfigError {
  try { f(); } catch (e) { if (e instanceof ConfigError) return e; throw e; }
  throw new Error("expected a ConfigError");
}

function vmWith(configDir?: string) {
  const vm = container.createChildContainer();
  const mem = new TestMemory(2 * 1024 * 1024);
  vm.register(Tokens.GuestMemory, { useValue: mem });
  vm.register(Tokens.Console, { useValue: new TestConsole() });
  if (configDir !== undefined) vm.register(Tokens.ConfigDir, { useValue: configDir });
  return { vm, mem };
}

describe("realmode plugin options", () => {
  it("declares its id and the firmware phase", () => {
    expect([plugin.id, plugin.phase]).toEqual(["realmode", "firmware"]);
  });

  it("defaults to native mode, copy-on-write disks, the console keyboard, booting the first disk", () => {
    expect(plugin.parseConfig({ disks: [{ drive: 0x80, file: "a.img" }, { drive: 0, file: "b.img" }] }, "plugins[2].options"))
      .toEqual({
        mode: "native", boot: 0x80, bootOrder: [0x80], keyboard: "console", path: "plugins[2].options",
        disks: [
          { drive: 0x80, file: "a.img", writable: false, writeProtected: false },
          { drive: 0, file: "b.img", writable: false, writeProtected: false },
        ],
      });
  });

  it("takes a boot order list and checks each drive in it", () => {
    const disks = [{ drive: 0, file: "a" }, { drive: 0x80, file: "b" }];
    expect(plugin.parseConfig({ disks, boot: [0x80, 0x00], keyboard: "i8042" }, "p"))
      .toMatchObject({ boot: 0x80, bootOrder: [0x80, 0], keyboard: "i8042" });
    expect(configError(() => plugin.parseConfig({ disks, boot: [0x80, 0x81] }, "p")).path).toBe("p.boot[1]");
    expect(configError(() => plugin.parseConfig({ disks: [{ drive: 0, file: "a", readonly: true }] }, "p")).path).toBe("p.disks[0].readonly");
  });

  it("names the path of an unknown key, a bad value, a duplicate drive and a missing boot drive", () => {
    expect(configError(() => plugin.parseConfig({ disks: [{ drive: 0, file: "a", ro: true }] }, "plugins[2].options")).path)
      .toBe("plugins[2].options.disks[0].ro");
    expect(configError(() => plugin.parseConfig({ mode: "fast", disks: [{ drive: 0, file: "a" }] }, "p")).path).toBe("p.mode");
    expect(configError(() => plugin.parseConfig({ disks: [{ drive: 0, file: "a" }, { drive: 0, file: "b" }] }, "p")).path)
      .toBe("p.disks[1].drive");
    expect(configError(() => plugin.parseConfig({ disks: [{ drive: 0, file: "a" }], boot: 0x80 }, "p")).path).toBe("p.boot");
    expect(configError(() => plugin.parseConfig({ disks: [] }, "p")).path).toBe("p.disks");
  });
});

describe("realmode plugin registration", () => {
  it("resolves a relative image path against the config directory", () => {
    const { vm, mem } = vmWith(dir);
    plugin.register(vm, plugin.parseConfig({ mode: "emulate", disks: [{ drive: 0, file: "boot.img" }] }, "p"), undefined as never);
    const [interposer] = vm.resolveAll(Tokens.VcpuInterposer);
    const vcpu = interposer!.wrap(new StateOnlyBackend());
    expect(vcpu).toBeInstanceOf(EmulatedBiosVcpu);
    for (const b of vm.resolveAll(Tokens.BootContribution)) b.boot(vcpu, mem);
    expect(mem.read16(0x7c00)).toBe(0xfeeb);
    expect(vcpu.getState(StateParts.Basic).eip).toBe(0x7c00);
  });

  it("wraps the backend in the native interposer by default", () => {
    const { vm } = vmWith(dir);
    plugin.register(vm, plugin.parseConfig({ disks: [{ drive: 0, file: join(dir, "boot.img") }] }, "p"), undefined as never);
    expect(vm.resolveAll(Tokens.VcpuInterposer)[0]!.wrap(new StateOnlyBackend())).toBeInstanceOf(NativeBiosVcpu);
  });

  it("never changes the image file unless writable: overlay writes stay in memory, writable ones reach the file", async () => {
    const { readFileSync } = await import("node:fs");
    const { loadDisks } = await import("./index.js");
    const img = new Uint8Array(1440 * 1024);
    writeFileSync(join(dir, "cow.img"), img);
    writeFileSync(join(dir, "rw.img"), img);
    const cfg = plugin.parseConfig({ disks: [{ drive: 0, file: "cow.img" }, { drive: 1, file: "rw.img", writable: true }] }, "p");
    const [cow, rw] = loadDisks(cfg, dir);
    const sector = new Uint8Array(512).fill(0x5a);
    expect(cow!.writeSector(3, sector)).toBe(true);
    expect(rw!.writeSector(3, sector)).toBe(true);
    const back = new Uint8Array(512);
    cow!.readSector(3, back);
    expect(back[0]).toBe(0x5a);
    cow!.close(); rw!.close();
    expect(readFileSync(join(dir, "cow.img"))[3 * 512]).toBe(0);
    expect(readFileSync(join(dir, "rw.img"))[3 * 512]).toBe(0x5a);
  });

  it("throws a ConfigError naming disks[j].file for a missing or empty image", () => {
    const cfg = plugin.parseConfig({ disks: [{ drive: 0, file: "boot.img" }, { drive: 1, file: "nope.img" }] }, "plugins[3].options");
    const e = configError(() => plugin.register(vmWith(dir).vm, cfg, undefined as never));
    expect(e.path).toBe("plugins[3].options.disks[1].file");
    expect(e.message).toMatch(/nope\.img/);
    const cfg2 = plugin.parseConfig({ disks: [{ drive: 0, file: "empty.img" }] }, "p");
    expect(configError(() => plugin.register(vmWith(dir).vm, cfg2, undefined as never)).message).toMatch(/empty/);
  });
});

// realmode: the BIOS (IVT, BDA, INT 10h/11h/12h/13h/15h/16h/19h/1Ah in TypeScript) and
// the two ways the guest's real-mode code reaches it (see README.md).
import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { instanceCachingFactory, type DependencyContainer } from "tsyringe";
import { ConfigError, joinPath, Tokens } from "../../../src/monitor/api.js";
import type { BootContribution, MonitorPlugin, VcpuBackend, VcpuInterposer } from "../../../src/monitor/api.js";
import { Bios } from "./bios/bios.js";
import { DiskImage, DiskImageError } from "./bios/disk.js";
import { BiosCallGate } from "./bios/gate.js";
import { RealmodeBoot } from "./boot.js";
import { EmulatedBiosVcpu } from "./emulate.js";
import { NativeBiosVcpu } from "./native.js";
import { parseRealmodeConfig, type RealmodeConfig } from "./schema.js";

export { Bios, BiosStatus } from "./bios/bios.js";
export { BIOS_CALL_PORT } from "./bios/layout.js";
export { DiskImage } from "./bios/disk.js";
export { BiosCallGate } from "./bios/gate.js";
export { NativeBiosVcpu } from "./native.js";
export { EmulatedBiosVcpu } from "./emulate.js";
export { RealmodeBoot, BootError } from "./boot.js";
export type { RealmodeConfig } from "./schema.js";

/** Read the disk images named in the config: host problems become ConfigErrors with their path. */
export function loadDisks(config: RealmodeConfig, configDir: string): DiskImage[] {
  return config.disks.map((d, j) => {
    const at = joinPath(config.path, ["disks", j, "file"]);
    const file = isAbsolute(d.file) ? d.file : resolve(configDir, d.file);
    let data: Uint8Array;
    try {
      data = new Uint8Array(readFileSync(file));
    } catch (e) {
      throw new ConfigError(at, `cannot read disk image "${file}": ${(e as Error).message}`);
    }
    if (data.length === 0) throw new ConfigError(at, `disk image "${file}" is empty`);
    try {
      return new DiskImage(d.drive, data, d.readonly);
    } catch (e) {
      if (e instanceof DiskImageError) throw new ConfigError(at, `${file}: ${e.message}`);
      throw e;
    }
  });
}

const plugin: MonitorPlugin<RealmodeConfig> = {
  id: "realmode",
  phase: "firmware",
  parseConfig: parseRealmodeConfig,
  register(vm: DependencyContainer, config: RealmodeConfig): void {
    const configDir = vm.isRegistered(Tokens.ConfigDir, true) ? vm.resolve(Tokens.ConfigDir) : process.cwd();
    const disks = loadDisks(config, configDir);
    // One BIOS and one call gate per VM, shared by the interposer and the boot contribution.
    const gateOf = instanceCachingFactory<BiosCallGate>((c) => {
      const mem = c.resolve(Tokens.GuestMemory);
      return new BiosCallGate(new Bios(mem, c.resolve(Tokens.Console), { disks, bootDrive: config.boot }), mem);
    });
    vm.register<VcpuInterposer>(Tokens.VcpuInterposer, {
      useFactory: instanceCachingFactory<VcpuInterposer>((c) => {
        const gate = gateOf(c);
        const mem = c.resolve(Tokens.GuestMemory);
        return {
          wrap: (inner: VcpuBackend): VcpuBackend =>
            config.mode === "native" ? new NativeBiosVcpu(inner, gate) : new EmulatedBiosVcpu(inner, mem, gate),
        };
      }),
    });
    vm.register<BootContribution>(Tokens.BootContribution, {
      useFactory: instanceCachingFactory<BootContribution>((c) => new RealmodeBoot(gateOf(c).bios)),
    });
  },
};

export default plugin;

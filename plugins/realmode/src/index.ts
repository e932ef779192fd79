// realmode: the BIOS (IVT, BDA, EBDA, INT 08h-1Ah in TypeScript) and the two ways the
// guest's real-mode code reaches it (see README.md).
import { isAbsolute, resolve } from "node:path";
import { instanceCachingFactory, Lifecycle, type DependencyContainer, type InjectionToken } from "tsyringe";
import { ConfigError, joinPath, Tokens } from "../../../src/monitor/api.js";
import type {
  BootContribution, Bus, MachineCaps, MonitorPlugin, Platform, VcpuBackend, VcpuInterposer, VirtualClock,
} from "../../../src/monitor/api.js";
import { X86Cpu } from "../../../src/x86/cpu.js";
import type { IoPorts, PhysMemory } from "../../../src/x86/types.js";
import { Bios } from "./bios/bios.js";
import { DiskImage, DiskImageError } from "./bios/disk.js";
import { FileBacking } from "./bios/file-backing.js";
import { busPorts } from "./bios/ports.js";
import { BiosCallGate } from "./bios/gate.js";
import { RealmodeBoot } from "./boot.js";
import { EmulatedBiosVcpu } from "./emulate.js";
import { NativeBiosVcpu } from "./native.js";
import { parseRealmodeConfig, type RealmodeConfig } from "./schema.js";

export { Bios, BiosStatus } from "./bios/bios.js";
export { BIOS_CALL_PORT } from "./bios/layout.js";
export { DiskImage, MemoryBacking } from "./bios/disk.js";
export type { DiskBacking } from "./bios/disk.js";
export { FileBacking } from "./bios/file-backing.js";
export type { PortAccess } from "./bios/ports.js";
export { e820Map } from "./bios/system.js";
export type { E820Entry } from "./bios/system.js";
export { BiosCallGate } from "./bios/gate.js";
export { NativeBiosVcpu } from "./native.js";
export { EmulatedBiosVcpu } from "./emulate.js";
export { RealmodeBoot, BootError } from "./boot.js";
export type { RealmodeConfig } from "./schema.js";

/**
 * Open the disk images named in the config (read-only unless `writable`): host problems
 * become ConfigErrors with their path. The caller closes them (DiskImage.close).
 */
export function loadDisks(config: RealmodeConfig, configDir: string): DiskImage[] {
  const opened: DiskImage[] = [];
  try {
    config.disks.forEach((d, j) => {
      const at = joinPath(config.path, ["disks", j, "file"]);
      const file = isAbsolute(d.file) ? d.file : resolve(configDir, d.file);
      let backing: FileBacking;
      try {
        backing = new FileBacking(file, d.writable);
      } catch (e) {
        throw new ConfigError(at, `cannot open disk image "${file}"${d.writable ? " for writing" : ""}: ${(e as Error).message}`);
      }
      if (backing.size === 0) { backing.close(); throw new ConfigError(at, `disk image "${file}" is empty`); }
      try {
        opened.push(new DiskImage(d.drive, backing, { writable: d.writable }));
      } catch (e) {
        backing.close();
        if (e instanceof DiskImageError) throw new ConfigError(at, `${file}: ${e.message}`);
        throw e;
      }
    });
  } catch (e) {
    for (const d of opened) d.close();
    throw e;
  }
  return opened;
}

const OPEN_DISKS: InjectionToken<{ dispose(): void }> = Symbol("realmode:OpenDisks");

const plugin: MonitorPlugin<RealmodeConfig> = {
  id: "realmode",
  phase: "firmware",
  parseConfig: parseRealmodeConfig,
  register(vm: DependencyContainer, config: RealmodeConfig): void {
    const configDir = vm.isRegistered(Tokens.ConfigDir, true) ? vm.resolve(Tokens.ConfigDir) : process.cwd();
    const disks = loadDisks(config, configDir);
    // The host files close with the VM: tsyringe disposes what it constructed when the
    // VM's container is disposed (it does not track factory results, hence a class).
    class OpenDisks { dispose(): void { for (const d of disks) d.close(); } }
    vm.register(OPEN_DISKS, { useClass: OpenDisks }, { lifecycle: Lifecycle.ContainerScoped });
    vm.resolve(OPEN_DISKS);
    // One BIOS and one call gate per VM, shared by the interposer and the boot contribution.
    const writeProtected = new Set(config.disks.filter((d) => d.writeProtected).map((d) => d.drive));
    // The chips, the A20 gate and the clock are optional: a machine without them still boots.
    const optional = <T>(c: DependencyContainer, t: InjectionToken<T>): T | undefined =>
      c.isRegistered(t, true) ? c.resolve<T>(t) : undefined;
    const gateOf = instanceCachingFactory<BiosCallGate>((c) => {
      const mem = c.resolve(Tokens.GuestMemory);
      const pio = optional<Bus>(c, Tokens.PioBus);
      const platform = optional<Platform>(c, Tokens.Platform);
      const clock = optional<VirtualClock>(c, Tokens.Clock);
      const bios = new Bios(mem, c.resolve(Tokens.Console), {
        disks, bootDrive: config.boot, bootOrder: config.bootOrder, keyboard: config.keyboard, writeProtected,
        ...(pio ? { ports: busPorts(pio) } : {}), ...(platform ? { platform } : {}), ...(clock ? { clock } : {}),
      });
      return new BiosCallGate(bios, mem);
    });
    vm.register<VcpuInterposer>(Tokens.VcpuInterposer, {
      useFactory: instanceCachingFactory<VcpuInterposer>((c) => {
        const gate = gateOf(c);
        const mem = c.resolve(Tokens.GuestMemory);
        const platform = c.isRegistered(Tokens.Platform, true) ? c.resolve(Tokens.Platform) : undefined;
        const a20 = platform ? () => platform.a20() : undefined;
        const mmio = optional<Bus>(c, Tokens.MmioBus);
        // Our core runs guest code: it hides what the guest's CPUID hides (MachineCaps.guestFeatures).
        const features = optional<MachineCaps>(c, Tokens.MachineCaps)?.guestFeatures;
        const cpuFactory = features
          ? (m: PhysMemory, io: IoPorts) => {
            const cpu = new X86Cpu(m, io);
            Object.assign(cpu.cpuidMask, features);
            return cpu;
          }
          : undefined;
        return {
          wrap: (inner: VcpuBackend): VcpuBackend =>
            config.mode === "native" ? new NativeBiosVcpu(inner, gate) : new EmulatedBiosVcpu(inner, mem, gate, undefined, cpuFactory, a20, mmio),
        };
      }),
    });
    vm.register<BootContribution>(Tokens.BootContribution, {
      useFactory: instanceCachingFactory<BootContribution>((c) => new RealmodeBoot(gateOf(c).bios)),
    });
  },
};

export default plugin;

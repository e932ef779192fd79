import { describe, expect, it } from "vitest";
import type { AccessSize, IoDevice } from "../../../src/monitor/api.js";
import { MmioBus } from "../../../src/monitor/bus.js";
import { Bios } from "./bios/bios.js";
import { DiskImage } from "./bios/disk.js";
import { BiosCallGate } from "./bios/gate.js";
import { RealmodeBoot } from "./boot.js";
import { EmulatedBiosVcpu } from "./emulate.js";
import { RamOrMmio } from "./mmio-memory.js";
import { StateOnlyBackend, TestConsole, TestMemory } from "./testing.js";

/** An MMIO register file that records every access (offset, size, value). */
class Recorder implements IoDevice {
  readonly name = "recorder";
  readonly log: string[] = [];
  read(offset: number, size: AccessSize): number {
    this.log.push(`r${size}@${offset.toString(16)}`);
    return 0x44332211 & (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff);
  }
  write(offset: number, size: AccessSize, value: number): void {
    this.log.push(`w${size}@${offset.toString(16)}=${value.toString(16)}`);
  }
}

const MiB = 0x100000;

function setup(): { mem: TestMemory; bus: MmioBus; dev: Recorder; phys: RamOrMmio } {
  const mem = new TestMemory(MiB);
  const bus = new MmioBus();
  const dev = new Recorder();
  expect(bus.insert({ space: "mmio", base: MiB, length: 0x1000 }, dev)).toBeUndefined();
  return { mem, bus, dev, phys: new RamOrMmio(mem, bus) };
}

describe("RamOrMmio (emulate mode's physical memory)", () => {
  it("keeps RAM accesses in RAM and sends accesses above RAM to the MMIO bus at their offset", () => {
    const { mem, dev, phys } = setup();
    phys.write32(0x500, 0xdeadbeef);
    expect(mem.read32(0x500)).toBe(0xdeadbeef);
    expect(phys.read16(0x502)).toBe(0xdead);
    phys.write16(MiB + 8, 0xbeef);
    expect(phys.read32(MiB + 4)).toBe(0x44332211);
    expect(phys.read8(MiB)).toBe(0x11);
    expect(dev.log).toEqual(["w2@8=beef", "r4@4", "r1@0"]);
  });

  it("reads all-ones and counts unclaimed accesses where no device sits above RAM", () => {
    const { bus, phys } = setup();
    expect(phys.read32(0x200000)).toBe(0xffffffff);
    phys.write8(0x200000, 1);
    expect(bus.unclaimed).toEqual({ reads: 1, writes: 1 });
  });

  it("splits an access straddling the end of RAM into bytes, each to RAM or the bus", () => {
    const { mem, dev, phys } = setup();
    phys.write32(MiB - 2, 0xaabbccdd);
    expect(mem.read16(MiB - 2)).toBe(0xccdd);
    expect(dev.log).toEqual(["w1@0=bb", "w1@1=aa"]);
    expect(phys.read32(MiB - 2)).toBe(0x1111ccdd);
  });
});

describe("emulate mode MMIO", () => {
  // cli; mov ax,0xffff; mov ds,ax; mov byte [0x10],0xa5; mov al,[0x14]; hlt
  // FFFF:0010 = 100000h and FFFF:0014 = 100004h: above the 1 MiB of RAM, so MMIO.
  const code = [0xfa, 0xb8, 0xff, 0xff, 0x8e, 0xd8, 0xc6, 0x06, 0x10, 0x00, 0xa5, 0xa0, 0x14, 0x00, 0xf4];

  it("a real-mode guest's access above RAM reaches the device on the MMIO bus", () => {
    const { mem, bus, dev } = setup();
    const d = new Uint8Array(512);
    d.set(code);
    d[510] = 0x55; d[511] = 0xaa;
    const bios = new Bios(mem, new TestConsole(), { disks: [new DiskImage(0, d)], bootDrive: 0 });
    const vcpu = new EmulatedBiosVcpu(new StateOnlyBackend(), mem, new BiosCallGate(bios, mem), undefined, undefined, () => true, bus);
    new RealmodeBoot(bios).boot(vcpu, mem);
    let exit = vcpu.run();
    for (let i = 0; i < 10 && exit.kind !== "hlt"; i++) exit = vcpu.run();
    expect(exit.kind).toBe("hlt");
    expect(dev.log).toEqual(["w1@0=a5", "r1@4"]);
    expect(vcpu.getState().eax & 0xff).toBe(0x11);
    expect(mem.read8(0x10)).not.toBe(0xa5); // not wrapped into the IVT
  });
});

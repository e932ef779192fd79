import { describe, expect, it } from "vitest";
import { Bios } from "./bios/bios.js";
import { DiskImage } from "./bios/disk.js";
import { BiosCallGate } from "./bios/gate.js";
import { RealmodeBoot } from "./boot.js";
import { EmulatedBiosVcpu } from "./emulate.js";
import { StateOnlyBackend, TestConsole, TestMemory } from "./testing.js";

// cli; mov ax,0xffff; mov ds,ax; mov byte [0x10],0xa5; hlt  — writes FFFF:0010 = linear 0x100000.
const WRITE_FFFF_0010 = [0xfa, 0xb8, 0xff, 0xff, 0x8e, 0xd8, 0xc6, 0x06, 0x10, 0x00, 0xa5, 0xf4];

function sector(code: number[]): Uint8Array {
  const d = new Uint8Array(512);
  d.set(code);
  d[510] = 0x55; d[511] = 0xaa;
  return d;
}

function runWithA20(enabled: boolean): TestMemory {
  const mem = new TestMemory(2 * 1024 * 1024);
  const bios = new Bios(mem, new TestConsole(), { disks: [new DiskImage(0, sector(WRITE_FFFF_0010))], bootDrive: 0 });
  const vcpu = new EmulatedBiosVcpu(new StateOnlyBackend(), mem, new BiosCallGate(bios, mem), undefined, undefined, () => enabled);
  new RealmodeBoot(bios).boot(vcpu, mem);
  mem.bytes[0] = 0;
  mem.bytes[0x100000] = 0;
  for (let i = 0; i < 10; i++) {
    const e = vcpu.run();
    if (e.kind === "hlt") break;
  }
  return mem;
}

describe("emulate mode A20", () => {
  it("with the platform's A20 disabled, FFFF:0010 wraps to physical 0 as on an 8086", () => {
    const mem = runWithA20(false);
    expect(mem.bytes[0]).toBe(0xa5);
    expect(mem.bytes[0x100000]).toBe(0);
  });

  it("with A20 enabled, FFFF:0010 reaches physical 1 MiB", () => {
    const mem = runWithA20(true);
    expect(mem.bytes[0x100000]).toBe(0xa5);
    expect(mem.bytes[0]).toBe(0);
  });
});

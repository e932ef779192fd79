import { describe, expect, it } from "vitest";
import { softEngine } from "./engine-soft.js";
import type { SoftVcpu } from "./engine-soft.js";
import { GuestPhysMemory } from "./gpspace.js";
import { CpuExitReason } from "../x86/types.js";
import { realModeState } from "../x86/state.js";

/** Guest RAM at 0 holding `code` at 0x7c00, and a soft vCPU at 0000:7c00 with HLT intercepted. */
function vcpuWith(code: number[]): { vcpu: SoftVcpu; ram: Uint8Array } {
  const mem = new GuestPhysMemory();
  const ram = new Uint8Array(0x10000);
  mem.map(0, ram, 7, true, "ram");
  ram.set(code, 0x7c00);
  const vcpu = softEngine().createVcpu(mem) as SoftVcpu;
  vcpu.setState(realModeState(0, 0x7c00));
  vcpu.intercepts.hlt = true;
  return { vcpu, ram };
}

describe("soft engine", () => {
  it("is named soft", () => {
    expect(softEngine().name).toBe("soft");
  });

  it("port I/O nobody intercepts reads all-ones, drops writes, and is counted", () => {
    const { vcpu } = vcpuWith([
      0xe4, 0x60, //       in al, 0x60
      0x88, 0xc3, //       mov bl, al
      0xe6, 0x80, //       out 0x80, al
      0xba, 0x34, 0x12, // mov dx, 0x1234
      0xed, //             in ax, dx
      0xf4, //             hlt
    ]);
    expect(vcpu.run(100)).toBe(CpuExitReason.Hlt);
    const s = realModeState(0, 0);
    vcpu.getState(s);
    expect(s.ebx & 0xff).toBe(0xff);
    expect(s.eax & 0xffff).toBe(0xffff);
    expect(vcpu.unclaimedIoReads).toBe(2);
    expect(vcpu.unclaimedIoWrites).toBe(1);
  });

  it("runs the core on the guest-physical memory it was created on", () => {
    const { vcpu, ram } = vcpuWith([
      0xb8, 0x34, 0x12, // mov ax, 0x1234
      0xa3, 0x00, 0x05, // mov [0x500], ax
      0xf4, //             hlt
    ]);
    expect(vcpu.run(100)).toBe(CpuExitReason.Hlt);
    expect([ram[0x500], ram[0x501]]).toEqual([0x34, 0x12]);
  });

  it("exposes the core's own intercept and exit objects, and stops on the budget", () => {
    const { vcpu } = vcpuWith([0xeb, 0xfe]); // jmp $
    expect(vcpu.intercepts).toBe(vcpu.cpu.intercepts);
    expect(vcpu.exit).toBe(vcpu.cpu.exit);
    expect(vcpu.run(50)).toBe(CpuExitReason.Budget);
  });

  it("time waited in HLT (wait) adds to idle and to the TSC the guest reads, not to retired or to tscOffset", () => {
    const { vcpu } = vcpuWith([0x0f, 0x31, 0xf4]); // rdtsc; hlt
    vcpu.tscOffset = 1000;
    vcpu.wait(500);
    vcpu.wait(-3); // nothing: time does not run backwards
    expect([vcpu.idle, vcpu.retired, vcpu.tscOffset]).toEqual([500, 0, 1000]);
    expect(vcpu.run(100)).toBe(CpuExitReason.Hlt);
    const s = realModeState(0, 0);
    vcpu.getState(s);
    // TSC = offset + idle + instructions retired (RDTSC itself counts).
    expect(s.eax).toBe(1000 + 500 + 1);
    vcpu.tscOffset = 0; // a new offset keeps the waited time
    expect(vcpu.cpu.tscOffset).toBe(500);
  });
});

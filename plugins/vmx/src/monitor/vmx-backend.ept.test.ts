// EPT in the VMX backend (`ept: true`) end to end: identity EPT tables for guest RAM built
// through the syscalls, and a guest's accesses to an MMIO device outside RAM exiting as EPT
// violations (SDM 28.2.1) that the MemAssist performs against the MMIO bus.
import { describe, expect, it } from "vitest";
import { type AccessSize, type IoDevice, type VmExit } from "../../../../src/monitor/api.js";
import { MmioBus, PioBus } from "../../../../src/monitor/bus.js";
import { FrameGuestMemory } from "../../../../src/monitor/guest-memory.js";
import { realModeState } from "../../../../src/x86/state.js";
import { VmxBackend } from "./vmx-backend.js";
import { testMachine } from "../testing/machine.js";
import { SysErr } from "../../../../src/kernel/api.js";
import { F } from "../vmcs-fields.js";

const CODE = 0x1000, DEV = 0x2_0000;

class RecordingDevice implements IoDevice {
  readonly name = "mmio-recorder";
  readonly log: string[] = [];
  read(offset: number, size: AccessSize): number { this.log.push(`r${size}@${offset.toString(16)}`); return 0x1234_5678 & (size === 4 ? 0xffffffff : (1 << (8 * size)) - 1); }
  write(offset: number, size: AccessSize, value: number): void { this.log.push(`w${size}@${offset.toString(16)}=${value.toString(16)}`); }
}

function boot(code: number[], ept: boolean) {
  const m = testMachine({ ramBytes: 64 * 1024 });
  const mmio = new MmioBus();
  const dev = new RecordingDevice();
  expect(mmio.insert({ space: "mmio", base: DEV, length: 0x1000 }, dev)).toBeUndefined();
  m.ram.set(code, CODE);
  const be = new VmxBackend(m.sys, m.caps, new PioBus(), new FrameGuestMemory(m.ram), mmio, { ept });
  const s = realModeState(0, CODE);
  s.esp = 0x8000;
  be.setState(s);
  return { m, be, dev };
}

const kind = (e: VmExit): string => (e.kind === "unhandled" || e.kind === "entry-failure" ? `${e.kind}: ${e.message}` : e.kind);

describe("VmxBackend with ept: true", () => {
  const guest = [
    0xb8, 0x00, 0x20,             // mov ax, 0x2000
    0x8e, 0xd8,                   // mov ds, ax
    0xc6, 0x06, 0x10, 0x00, 0x5a, // mov byte [0x10], 0x5a
    0xa1, 0x20, 0x00,             // mov ax, [0x20]
    0x89, 0xc3,                   // mov bx, ax
    0xa0, 0x00, 0x10,             // mov al, [0x1000]: outside RAM and outside the device
    0xf4,                         // hlt
  ];

  it("an MMIO write and read reach the device through EPT violations and the MemAssist; the guest runs on", () => {
    const { m, be, dev } = boot(guest, true);
    expect(kind(be.run())).toBe("hlt");
    expect(dev.log).toEqual(["w1@10=5a", "r2@20"]);
    const s = be.getState();
    expect(s.ebx & 0xffff).toBe(0x5678);
    expect(s.eax & 0xff).toBe(0xff); // unclaimed MMIO reads all-ones
    // The EPTP names the backend's tables above RAM, not the GuestPhysSpace itself.
    expect(m.sys.vmread(m.caps.dispatcher, F.EptPointer)).toBe(SysErr.Ok);
    expect((m.sys.ret.value & ~0xfff) >>> 0).toBe(0x20_0000);
    expect(m.sys.ret.value & 0x3f).toBe(0x1e);
  });

  it("REP MOVSB from RAM into the device, and a guest that only touches MMIO still returns to the run loop", () => {
    const { be, m, dev } = boot([
      0xb8, 0x00, 0x20, 0x8e, 0xc0, // mov ax, 0x2000; mov es, ax
      0xbe, 0x00, 0x30,             // mov si, 0x3000 (RAM)
      0xbf, 0x40, 0x00,             // mov di, 0x40 (the device)
      0xb9, 0x03, 0x00,             // mov cx, 3
      0xfc, 0xf3, 0xa4,             // cld; rep movsb
      0x26, 0xa0, 0x00, 0x00,       // loop: mov al, es:[0]
      0xeb, 0xfa,                   // jmp loop
    ], true);
    m.ram.set([1, 2, 3], 0x3000);
    const e = be.run();
    expect(dev.log.slice(0, 3)).toEqual(["w1@40=1", "w1@41=2", "w1@42=3"]);
    expect(e.kind).toBe("preempt");
    expect(dev.log.length).toBeGreaterThan(10);
  });

  it("with ept: false the EPTP names the GuestPhysSpace and the same guest's RAM code runs", () => {
    const { be } = boot([0xb8, 0x34, 0x12, 0xf4], false);
    expect(kind(be.run())).toBe("hlt");
    expect(be.getState().eax & 0xffff).toBe(0x1234);
  });
});

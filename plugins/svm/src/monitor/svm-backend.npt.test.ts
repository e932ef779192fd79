// Nested paging in the SVM backend (`npt: true`) end to end: identity nested tables for
// guest RAM built through the syscalls, and a guest's accesses to an MMIO device outside RAM
// exiting as nested page faults (APM 15.25.6) that the MemAssist performs on the MMIO bus.
import { describe, expect, it } from "vitest";
import { GUEST_CONTROL_BYTES, MapPerm, ObjType, SysErr, type CPtr } from "../../../../src/kernel/api.js";
import { bootKernel, softEngine } from "../../../../src/kernel/index.js";
import type { AccessSize, IoDevice, MachineCaps, VmExit } from "../../../../src/monitor/api.js";
import { MmioBus, PioBus } from "../../../../src/monitor/bus.js";
import { FrameGuestMemory } from "../../../../src/monitor/guest-memory.js";
import { realModeState } from "../../../../src/x86/state.js";
import { SvmKernelExtension } from "../kernel/svm-extension.js";
import { F } from "../vmcb.js";
import { SvmBackend } from "./svm-backend.js";

const RAM = 64 * 1024, CODE = 0x1000, DEV = 0x2_0000;

class RecordingDevice implements IoDevice {
  readonly name = "mmio-recorder";
  readonly log: string[] = [];
  read(offset: number, size: AccessSize): number { this.log.push(`r${size}@${offset.toString(16)}`); return 0x5678; }
  write(offset: number, size: AccessSize, value: number): void { this.log.push(`w${size}@${offset.toString(16)}=${value.toString(16)}`); }
}

function ok(err: SysErr): void { expect(err).toBe(SysErr.Ok); }

function boot(code: number[], npt: boolean) {
  const k = bootKernel({ engine: softEngine(), ramBytes: RAM + 32 * 4096, timeslice: 1000 });
  const sys = k.syscalls;
  ok(k.extensions.install(new SvmKernelExtension()));
  ok(sys.ramRetype(k.ram, ObjType.Frame, RAM)); const ramFrame: CPtr = sys.ret.cap;
  ok(sys.ramRetype(k.ram, ObjType.GuestPhysSpace, 4096)); const gpspace = sys.ret.cap;
  ok(sys.gpspaceMap(gpspace, ramFrame, 0, MapPerm.RWX));
  ok(sys.ramRetype(k.ram, ObjType.Frame, 4096)); const guestControl = sys.ret.cap;
  ok(sys.frameMap(guestControl)); const gc = sys.ret.view!;
  ok(sys.ramRetype(k.ram, ObjType.Dispatcher, 4096)); const dispatcher = sys.ret.cap;
  ok(sys.frameMap(ramFrame)); const ram = sys.ret.view!;
  ram.set(code, CODE);
  const caps: MachineCaps = { ram: k.ram, gpspace, dispatcher, guestControl, guestRegs: new Uint32Array(gc.buffer, gc.byteOffset, GUEST_CONTROL_BYTES / 4) };
  const mmio = new MmioBus();
  const dev = new RecordingDevice();
  expect(mmio.insert({ space: "mmio", base: DEV, length: 0x1000 }, dev)).toBeUndefined();
  const be = new SvmBackend(sys, caps, new PioBus(), new FrameGuestMemory(ram), mmio, { npt });
  const s = realModeState(0, CODE);
  s.esp = 0x8000;
  be.setState(s);
  return { be, dev, ram };
}

const kind = (e: VmExit): string => (e.kind === "unhandled" || e.kind === "entry-failure" ? `${e.kind}: ${e.message}` : e.kind);

describe("SvmBackend with npt: true", () => {
  it("an MMIO write and read reach the device through nested page faults and the MemAssist", () => {
    const { be, dev } = boot([
      0xb8, 0x00, 0x20, 0x8e, 0xd8, // mov ax, 0x2000; mov ds, ax
      0xc6, 0x06, 0x10, 0x00, 0x5a, // mov byte [0x10], 0x5a
      0xa1, 0x20, 0x00,             // mov ax, [0x20]
      0x89, 0xc3,                   // mov bx, ax
      0xf4,                         // hlt
    ], true);
    expect(kind(be.run())).toBe("hlt");
    expect(dev.log).toEqual(["w1@10=5a", "r2@20"]);
    expect(be.getState().ebx & 0xffff).toBe(0x5678);
    // N_CR3 names the backend's tables above RAM.
    expect(be.vmcb.read(F.N_CR3)).toBe(0x20_0000);
  });

  it("a guest that only touches MMIO still returns to the run loop", () => {
    const { be, dev } = boot([0xb8, 0x00, 0x20, 0x8e, 0xd8, 0xa0, 0x00, 0x00, 0xeb, 0xfb], true); // loop: mov al, [0]; jmp loop
    expect(be.run().kind).toBe("preempt");
    expect(dev.log.length).toBeGreaterThan(10);
  });

  it("with npt: false N_CR3 stays the GuestPhysSpace's and RAM code runs", () => {
    const { be } = boot([0xb8, 0x34, 0x12, 0xf4], false);
    expect(kind(be.run())).toBe("hlt");
    expect(be.getState().eax & 0xffff).toBe(0x1234);
    expect(be.vmcb.read(F.N_CR3)).not.toBe(0x20_0000);
  });
});

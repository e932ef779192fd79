// Exit statistics through the real kernel, SVM backend and run loop: MMIO the MemAssist
// performed behind nested page faults (npt: true) counted as mmio exits with their
// syscalls, and never dispatched to the MMIO bus a second time.
import { EventEmitter } from "eventemitter3";
import { describe, expect, it } from "vitest";
import { GUEST_CONTROL_BYTES, MapPerm, ObjType, SysErr, type CPtr } from "../../../../src/kernel/api.js";
import { bootKernel, softEngine } from "../../../../src/kernel/index.js";
import type { MachineCaps, MonitorEventMap } from "../../../../src/monitor/api.js";
import { MMIO_DEV as DEV, MMIO_LATCH_GUEST, latchDevice } from "../../../../src/monitor/assist/mem-assist.fixtures.js";
import { MmioBus, PioBus } from "../../../../src/monitor/bus.js";
import { VmConsole } from "../../../../src/monitor/console.js";
import { CpuidPolicy, defaultProfile } from "../../../../src/monitor/cpuid.js";
import { FrameGuestMemory } from "../../../../src/monitor/guest-memory.js";
import { RunLoop } from "../../../../src/monitor/run-loop.js";
import { CountingSyscalls } from "../../../../src/monitor/syscall-counter.js";
import { realModeState } from "../../../../src/x86/state.js";
import { SvmKernelExtension } from "../kernel/svm-extension.js";
import { SvmBackend } from "./svm-backend.js";

const RAM = 64 * 1024, CODE = 0x1000;

function ok(err: SysErr): void { expect(err).toBe(SysErr.Ok); }

function run(code: readonly number[]) {
  const k = bootKernel({ engine: softEngine(), ramBytes: RAM + 32 * 4096, timeslice: 1000 });
  ok(k.extensions.install(new SvmKernelExtension()));
  const inner = k.syscalls;
  ok(inner.ramRetype(k.ram, ObjType.Frame, RAM)); const ramFrame: CPtr = inner.ret.cap;
  ok(inner.ramRetype(k.ram, ObjType.GuestPhysSpace, 4096)); const gpspace = inner.ret.cap;
  ok(inner.gpspaceMap(gpspace, ramFrame, 0, MapPerm.RWX));
  ok(inner.ramRetype(k.ram, ObjType.Frame, 4096)); const guestControl = inner.ret.cap;
  ok(inner.frameMap(guestControl)); const gc = inner.ret.view!;
  ok(inner.ramRetype(k.ram, ObjType.Dispatcher, 4096)); const dispatcher = inner.ret.cap;
  ok(inner.frameMap(ramFrame)); const ram = inner.ret.view!;
  ram.set(code, CODE);
  const caps: MachineCaps = { ram: k.ram, gpspace, dispatcher, guestControl, guestRegs: new Uint32Array(gc.buffer, gc.byteOffset, GUEST_CONTROL_BYTES / 4) };
  const sys = new CountingSyscalls(inner);
  const { dev, writes, reads } = latchDevice();
  const mmio = new MmioBus();
  mmio.insert({ space: "mmio", base: DEV, length: 0x1000 }, dev);
  const pio = new PioBus();
  pio.insert({ space: "pio", base: 0xe9, length: 1 }, dev);
  const be = new SvmBackend(sys, caps, pio, new FrameGuestMemory(ram), mmio, { npt: true });
  const s = realModeState(0, CODE);
  s.esp = 0x8000;
  be.setState(s);
  const loop = new RunLoop({
    vcpu: be, pio, mmio, console: new VmConsole(), events: new EventEmitter<MonitorEventMap>(),
    cpuid: new CpuidPolicy(defaultProfile("svm")), syscalls: sys,
  });
  return { loop, writes, reads };
}

describe("SVM exit statistics", () => {
  it("counts MMIO the MemAssist performed inside run() as mmio exits, with their syscalls, and dispatches none twice", async () => {
    const { loop, writes, reads } = run(MMIO_LATCH_GUEST);
    const r = await loop.run();
    expect(r.reason).toBe("halted");
    expect(writes).toEqual([0x11, 0x5a, 0x5a]);
    expect(reads()).toBe(1);
    expect(r.exits).toEqual({ mmio: 3, io: 1, hlt: 1 });
    // The monitor edits the mapped VMCB directly: an assisted MMIO exit costs its VMRUN only.
    expect(loop.exitSyscalls().mmio).toBe(3);
  });
});

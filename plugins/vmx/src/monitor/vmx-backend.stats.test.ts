// Exit statistics through the real kernel, backend and run loop: assisted MMIO (ept: true)
// counted as mmio exits with their syscalls, and the syscalls a port I/O exit costs when the
// kernel half publishes the exit information in guestControl (VmxExitWord).
import { EventEmitter } from "eventemitter3";
import { describe, expect, it } from "vitest";
import { GUEST_CONTROL_BYTES, SysErr } from "../../../../src/kernel/api.js";
import type { MonitorEventMap } from "../../../../src/monitor/api.js";
import { MMIO_DEV as DEV, MMIO_LATCH_GUEST, latchDevice } from "../../../../src/monitor/assist/mem-assist.fixtures.js";
import { MmioBus, PioBus } from "../../../../src/monitor/bus.js";
import { VmConsole } from "../../../../src/monitor/console.js";
import { CpuidPolicy, defaultProfile } from "../../../../src/monitor/cpuid.js";
import { FrameGuestMemory } from "../../../../src/monitor/guest-memory.js";
import { RunLoop } from "../../../../src/monitor/run-loop.js";
import { CountingSyscalls } from "../../../../src/monitor/syscall-counter.js";
import { realModeState } from "../../../../src/x86/state.js";
import { testMachine } from "../testing/machine.js";
import { VmxBackend } from "./vmx-backend.js";

const CODE = 0x1000;

function run(code: readonly number[]) {
  const m = testMachine({ ramBytes: 64 * 1024 });
  const sys = new CountingSyscalls(m.sys);
  expect(m.sys.frameMap(m.caps.guestControl)).toBe(SysErr.Ok);
  const gc = m.sys.ret.view!;
  // The whole guestControl area, as the monitor's machine maps it (src/monitor/machine.ts).
  const caps = { ...m.caps, guestRegs: new Uint32Array(gc.buffer, gc.byteOffset, GUEST_CONTROL_BYTES / 4) };
  const { dev, writes, reads } = latchDevice();
  const mmio = new MmioBus();
  mmio.insert({ space: "mmio", base: DEV, length: 0x1000 }, dev);
  const pio = new PioBus();
  pio.insert({ space: "pio", base: 0xe9, length: 1 }, dev);
  m.ram.set(code, CODE);
  const be = new VmxBackend(sys, caps, pio, new FrameGuestMemory(m.ram), mmio, { ept: true });
  const s = realModeState(0, CODE);
  s.esp = 0x8000;
  be.setState(s);
  const loop = new RunLoop({
    vcpu: be, pio, mmio, console: new VmConsole(), events: new EventEmitter<MonitorEventMap>(),
    cpuid: new CpuidPolicy(defaultProfile("vmx")), syscalls: sys,
  });
  return { loop, writes, reads, be, sys };
}

describe("VMX exit statistics", () => {
  it("counts MMIO the MemAssist performed inside run() as mmio exits, with their syscalls, and dispatches none twice", async () => {
    const { loop, writes, reads } = run(MMIO_LATCH_GUEST);
    const r = await loop.run();
    expect(r.reason).toBe("halted");
    expect(writes).toEqual([0x11, 0x5a, 0x5a]);
    expect(reads()).toBe(1);
    expect(r.exits).toEqual({ mmio: 3, io: 1, hlt: 1 });
    // Each: the entry, and the VMCS reads of the state the assist needs.
    expect(loop.exitSyscalls().mmio).toBeGreaterThan(3 * 2);
  });

  it("a port I/O exit costs two syscalls: VMRESUME and the RIP write of the previous exit's completion", () => {
    const { be, sys } = run([0xe6, 0xe9, 0xe6, 0xe9, 0xe6, 0xe9, 0xfa, 0xf4]); // out 0xe9, al (3x); cli; hlt
    expect(be.run().kind).toBe("io"); // the first entry also writes the initial state
    for (let i = 0; i < 2; i++) {
      const before = sys.count;
      expect(be.run()).toMatchObject({ kind: "io", port: 0xe9 });
      expect(sys.count - before).toBe(2);
    }
    expect(be.run().kind).toBe("hlt");
    expect(be.getState().eip).toBe(CODE + 7);
  });

  it("with the published exit words, the completion clears an STI shadow and builds on a setState made after the exit", () => {
    // sti; out 0xe9, al (in the STI shadow); hlt; at CODE+0x10: out 0xe9, al; hlt
    const { be } = run([0xfb, 0xe6, 0xe9, 0xf4, ...new Array<number>(12).fill(0x90), 0xe6, 0xe9, 0xf4]);
    expect(be.run().kind).toBe("io");
    expect(be.getState().interruptibility & 1).toBe(1);
    expect(be.run()).toMatchObject({ kind: "hlt", interruptsEnabled: true });
    expect([be.getState().eip, be.getState().interruptibility & 3]).toEqual([CODE + 3, 0]);
    // A new EIP set after an exit: the HLT's completion (its length, 1) is added to it.
    const s = be.getState();
    s.eip = CODE + 0x0f;
    be.setState(s);
    expect(be.run()).toMatchObject({ kind: "io", port: 0xe9 });
    expect(be.getState().eip).toBe(CODE + 0x10);
  });
});

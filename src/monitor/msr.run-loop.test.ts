// The run loop's MSR hook with the real MsrPolicy, against a scripted backend: answered
// accesses complete through the exit, refused ones inject #GP(0) instead.
import { EventEmitter } from "eventemitter3";
import { describe, expect, it } from "vitest";
import type { MonitorEventMap, MsrExit, VcpuBackend, VcpuEvent, VmExit, X86State } from "./api.js";
import { MmioBus, PioBus } from "./bus.js";
import { VmConsole } from "./console.js";
import { CpuidPolicy, defaultProfile } from "./cpuid.js";
import { MsrPolicy } from "./msr.js";
import { RunLoop } from "./run-loop.js";
import { EventType } from "../x86/types.js";
import { resetState } from "../x86/state.js";

class ScriptedVcpu implements VcpuBackend {
  readonly id = "scripted";
  readonly injected: VcpuEvent[] = [];
  /** lo/hi of each msr exit as the next run() sees them (what the backend would commit). */
  readonly committed: Array<[number, number]> = [];
  #n = 0;
  #prev: VmExit | undefined;
  readonly state = resetState();
  constructor(private readonly exits: VmExit[], cr0 = 0x11) { this.state.cr0 = cr0; }
  run(): VmExit {
    if (this.#prev?.kind === "msr") this.committed.push([this.#prev.lo, this.#prev.hi]);
    this.#prev = this.exits[this.#n++] ?? { kind: "hlt", interruptsEnabled: false };
    return this.#prev;
  }
  getState(): X86State { return this.state; }
  setState(): void {}
  inject(e: VcpuEvent): void { this.injected.push({ ...e }); }
  setInterruptWindow(): void {}
}

const msr = (index: number, write = false, lo = 0, hi = 0): MsrExit => ({ kind: "msr", write, index, lo, hi });

function loopFor(vcpu: ScriptedVcpu): RunLoop {
  return new RunLoop({
    vcpu, pio: new PioBus(), mmio: new MmioBus(), console: new VmConsole(), events: new EventEmitter<MonitorEventMap>(),
    cpuid: new CpuidPolicy(defaultProfile("vmx")), msr: new MsrPolicy({ vendor: "intel" }),
  });
}

describe("run loop MSR exits", () => {
  it("in real mode injects #GP without an error code (none is delivered with CR0.PE = 0)", async () => {
    const vcpu = new ScriptedVcpu([msr(0x123)], 0x10);
    await loopFor(vcpu).run();
    expect(vcpu.injected).toEqual([{ type: EventType.HardwareException, vector: 13 }]);
  });

  it("answers table MSRs through the exit and injects #GP(0) for the others", async () => {
    const vcpu = new ScriptedVcpu([msr(0x277, true, 0x0101, 0x0606), msr(0x277), msr(0x123), msr(0x3a, true, 5)]);
    const loop = new RunLoop({
      vcpu, pio: new PioBus(), mmio: new MmioBus(), console: new VmConsole(), events: new EventEmitter<MonitorEventMap>(),
      cpuid: new CpuidPolicy(defaultProfile("vmx")), msr: new MsrPolicy({ vendor: "intel" }),
    });
    const r = await loop.run();
    expect(r.exits).toEqual({ msr: 4, hlt: 1 });
    expect(vcpu.committed.slice(0, 2)).toEqual([[0x0101, 0x0606], [0x0101, 0x0606]]); // the write, then the read back
    const gp = { type: EventType.HardwareException, vector: 13, errorCode: 0 };
    expect(vcpu.injected).toEqual([gp, gp]); // unknown 0x123, write to locked FEATURE_CONTROL
  });
});

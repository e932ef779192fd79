// Syscall attribution in the run loop, against a scripted backend whose run() and whose
// device make a known number of "syscalls" on a shared counter.
import { EventEmitter } from "eventemitter3";
import { describe, expect, it } from "vitest";
import type { AccessSize, IoDevice, MonitorEventMap, VcpuBackend, VmExit, X86State } from "./api.js";
import { MmioBus, PioBus } from "./bus.js";
import { VmConsole } from "./console.js";
import { CpuidPolicy, defaultProfile } from "./cpuid.js";
import { RunLoop } from "./run-loop.js";
import { CountingSyscalls } from "./syscall-counter.js";
import type { Syscalls } from "../kernel/api.js";

const counter = { count: 0 };

/** run() costs `entry` syscalls; `costs[kind]` more are made inside run() decoding that exit. */
class ScriptedVcpu implements VcpuBackend {
  readonly id = "scripted";
  #n = 0;
  constructor(private readonly exits: VmExit[], private readonly entry: number, private readonly decode: Partial<Record<VmExit["kind"], number>>) {}
  run(): VmExit {
    counter.count += this.entry;
    const e = this.exits[this.#n++] ?? { kind: "hlt", interruptsEnabled: false };
    counter.count += this.decode[e.kind] ?? 0;
    return e;
  }
  getState(): X86State { throw new Error("not used"); }
  setState(): void {}
  inject(): void {}
  setInterruptWindow(): void {}
}

describe("run loop syscall counts", () => {
  it("attributes the run that produced an exit and the handling after it to that exit's kind", async () => {
    counter.count = 0;
    const io = (): VmExit => ({ kind: "io", port: 0x80, size: 1, in: false, data: 0 });
    const cpuid: VmExit = { kind: "cpuid", leaf: 0, subleaf: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
    // A device whose write makes 2 syscalls (e.g. a frame map and a gpspace change).
    const dev: IoDevice = { name: "costly", read: () => 0, write: (_o: number, _s: AccessSize) => { counter.count += 2; } };
    const pio = new PioBus();
    pio.insert({ space: "pio", base: 0x80, length: 1 }, dev);
    const vcpu = new ScriptedVcpu([io(), cpuid, io(), io()], 1, { io: 3, cpuid: 1, hlt: 2 });
    const loop = new RunLoop({
      vcpu, pio, mmio: new MmioBus(), console: new VmConsole(), events: new EventEmitter<MonitorEventMap>(),
      cpuid: new CpuidPolicy(defaultProfile("vmx")), syscalls: counter,
    });
    counter.count = 100; // syscalls before the run are nobody's
    const r = await loop.run();
    expect(r.exits).toEqual({ io: 3, cpuid: 1, hlt: 1 });
    // io: 3 × (1 entry + 3 decode + 2 device); cpuid: 1 + 1; hlt: 1 + 2.
    expect(loop.exitSyscalls()).toEqual({ io: 18, cpuid: 2, hlt: 3 });
  });

  it("keeps no syscall counts without a counter", async () => {
    const loop = new RunLoop({
      vcpu: new ScriptedVcpu([], 1, {}), pio: new PioBus(), mmio: new MmioBus(), console: new VmConsole(),
      events: new EventEmitter<MonitorEventMap>(), cpuid: new CpuidPolicy(defaultProfile("vmx")),
    });
    await loop.run();
    expect(loop.exitSyscalls()).toEqual({});
  });
});

describe("CountingSyscalls", () => {
  it("counts each call and returns the inner result and ret", () => {
    const calls: string[] = [];
    const ret = { value: 7 } as unknown as Syscalls["ret"];
    const inner = { ret, vmread: (d: number, e: number) => { calls.push(`vmread ${d} ${e}`); return 0; }, vmrun: () => { calls.push("vmrun"); return 3; } };
    const s = new CountingSyscalls(inner as unknown as Syscalls);
    expect(s.vmread(1, 0x4402)).toBe(0);
    expect(s.vmrun(1)).toBe(3);
    expect(s.ret).toBe(ret);
    expect(s.count).toBe(2);
    expect(calls).toEqual(["vmread 1 17410", "vmrun"]);
  });
});

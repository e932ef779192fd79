// RDMSR/WRMSR exits through the VMX backend (real kernel, soft engine): every RDMSR/WRMSR
// exits (no MSR bitmaps), the monitor answers, and the backend completes the read into
// EDX:EAX at the next run. Exits the monitor does not emulate are `unhandled`, named, and
// so is a VMX abort the kernel reports (SDM 28.7).
import { describe, expect, it } from "vitest";
import { StateParts, type VmExit } from "../../../../src/monitor/api.js";
import { EventType } from "../../../../src/x86/types.js";
import { realModeState } from "../../../../src/x86/state.js";
import { GuestFrameRole, ObjType, SysErr } from "../../../../src/kernel/api.js";
import { F } from "../vmcs-fields.js";
import { VmxBackend } from "./vmx-backend.js";
import { testMachine } from "../testing/machine.js";

const CODE = 0x1000;
const snap = (e: VmExit): Record<string, unknown> => ({ ...e });

/** Guest RAM of the last boot(). */
let ram: Uint8Array = new Uint8Array(0);

function boot(code: number[], setup?: (s: ReturnType<typeof realModeState>) => void): VmxBackend {
  const m = testMachine();
  ram = m.ram;
  m.ram.set(code, CODE);
  const be = new VmxBackend(m.sys, m.caps);
  const s = realModeState(0, CODE);
  s.esp = 0x8000;
  setup?.(s);
  be.setState(s);
  return be;
}

describe("VmxBackend MSR exits", () => {
  it("RDMSR exits as a read; the handler's lo/hi land in EAX/EDX and RIP advances past it", () => {
    const be = boot([0x0f, 0x32, 0xf4], (s) => { s.ecx = 0x1b; s.eax = 0x1111; s.edx = 0x2222; });
    const e = be.run();
    expect(snap(e)).toEqual({ kind: "msr", write: false, index: 0x1b, lo: 0, hi: 0 });
    if (e.kind === "msr") { e.lo = 0xfee00900; e.hi = 7; }
    expect(be.run().kind).toBe("hlt");
    const s = be.getState(StateParts.Basic | StateParts.Gprs);
    expect([s.eax >>> 0, s.edx, s.ecx, s.eip]).toEqual([0xfee00900, 7, 0x1b, CODE + 2]); // at the HLT
  });

  it("WRMSR exits with the value written and leaves the registers alone", () => {
    const be = boot([0x0f, 0x30, 0xf4], (s) => { s.ecx = 0x10; s.eax = 0xdeadbeef; s.edx = 5; });
    expect(snap(be.run())).toEqual({ kind: "msr", write: true, index: 0x10, lo: 0xdeadbeef, hi: 5 });
    expect(be.run().kind).toBe("hlt");
    const s = be.getState(StateParts.Basic | StateParts.Gprs);
    expect([s.eax >>> 0, s.edx, s.eip]).toEqual([0xdeadbeef, 5, CODE + 2]);
  });

  it("an INVD (always exits) is unhandled, naming the instruction", () => {
    const e = boot([0x0f, 0x08]).run();
    expect(e.kind).toBe("unhandled");
    if (e.kind === "unhandled") expect([e.code, e.message]).toEqual([13, expect.stringContaining("INVD")]);
  });

  it("keeps the default controls: RDTSC, MOV DR and INVLPG run in the guest without exits", () => {
    // rdtsc ; mov dr7, eax ; invlpg [bx] ; hlt
    const be = boot([0x0f, 0x31, 0x0f, 0x23, 0xf8, 0x0f, 0x01, 0x3f, 0xf4], (s) => { s.eax = 0; });
    expect(be.run().kind).toBe("hlt");
    expect(be.getState(StateParts.Basic | StateParts.Gprs).eip).toBe(CODE + 8); // at the HLT
  });
});

describe("VmxBackend: a refused MSR access", () => {
  it("injecting #GP(0) after an RDMSR exit drops the completion: the fault points at the RDMSR", () => {
    const be = boot([0x0f, 0x32, 0xf4], (s) => { s.ecx = 0xc0000080; s.eax = 0x55; });
    const e = be.run();
    expect(e.kind).toBe("msr");
    if (e.kind === "msr") { e.lo = 0x99; }
    // Real mode: no error code (SDM 27.2.1.3 rejects one with unrestricted guest and CR0.PE = 0).
    be.inject({ type: EventType.HardwareException, vector: 13 });
    const st = be.getState(StateParts.All);
    expect(st.eip).toBe(CODE);
    ram[13 * 4 + 1] = 0x20; ram[0x2000] = 0xf4; // vector 13 -> 0000:2000: hlt
    expect(be.run().kind).toBe("hlt");
    expect(be.getState(StateParts.Basic).eip).toBe(0x2000);
    const after = be.getState(StateParts.All);
    // Real mode pushed FLAGS, CS, IP: the saved IP is the RDMSR's, and EAX kept its value.
    expect(after.eax).toBe(0x55);
    expect(after.esp).toBe(0x8000 - 6);
    expect(ram[0x8000 - 6]! | (ram[0x8000 - 5]! << 8)).toBe(CODE);
  });
});

describe("VmxBackend: a VMX abort (SDM 28.7)", () => {
  /** Binds a VM-exit MSR-store area whose one entry names an x2APIC MSR: storing it fails, a VMX abort with indicator 1. */
  function withBadStoreArea(m: ReturnType<typeof testMachine>): void {
    const { sys } = m;
    expect(sys.ramRetype(m.caps.ram, ObjType.Frame, 4096)).toBe(SysErr.Ok);
    const cap = sys.ret.cap;
    expect(sys.frameMap(cap)).toBe(SysErr.Ok);
    new DataView(sys.ret.view!.buffer, sys.ret.view!.byteOffset).setUint32(0, 0x830, true);
    expect(sys.capIdentify(cap)).toBe(SysErr.Ok);
    const addr = sys.ret.value >>> 0;
    expect(sys.dispatcherBindFrame(m.caps.dispatcher, GuestFrameRole.VmxExitMsrStore, cap)).toBe(SysErr.Ok);
    expect(sys.vmwrite(m.caps.dispatcher, F.ExitMsrStoreAddr, addr)).toBe(SysErr.Ok);
    expect(sys.vmwrite(m.caps.dispatcher, F.ExitMsrStoreCount, 1)).toBe(SysErr.Ok);
  }

  it("is unhandled with internal \"vmx-abort\", naming the indicator, and every later run stops the same way without running the guest", () => {
    const m = testMachine();
    m.ram.set([0x40, 0xf4], CODE); // inc ax; hlt
    const be = new VmxBackend(m.sys, m.caps);
    const s = realModeState(0, CODE);
    s.eax = 0;
    be.setState(s);
    withBadStoreArea(m);
    const abort = { kind: "unhandled", code: 12, message: "VMX abort, indicator 1 (SDM 28.7)", internal: "vmx-abort" };
    expect(snap(be.run())).toEqual(abort); // code 12: the HLT exit that aborted
    expect(be.getState(StateParts.Gprs).eax).toBe(1);
    be.setState({ ...be.getState(StateParts.All), eip: CODE });
    expect(snap(be.run())).toEqual(abort);
    expect(be.getState(StateParts.Gprs).eax).toBe(1); // the INC did not run again
    expect(snap(be.run())).toEqual(abort);
  });

  it("the same guest without the bad MSR-store area halts normally", () => {
    const m = testMachine();
    m.ram.set([0x40, 0xf4], CODE);
    const be = new VmxBackend(m.sys, m.caps);
    be.setState(realModeState(0, CODE));
    expect(be.run().kind).toBe("hlt");
  });
});

// A kernel with the SVM extension and MachineCaps built by hand, as the monitor core
// would build them, for the end-to-end tests. Not a test file itself.
import { expect } from "vitest";
import { MapPerm, ObjType, SysErr, bootKernel, softEngine, type CPtr, type Syscalls } from "../../../src/kernel/index.js";
import { GUEST_CONTROL_BYTES, GuestFrameRole } from "../../../src/kernel/api.js";
import { StateParts, type Bus, type MachineCaps, type VmExit } from "../../../src/monitor/api.js";
import { FrameGuestMemory } from "../../../src/monitor/guest-memory.js";
import { realModeState } from "../../../src/x86/state.js";
import { SvmKernelExtension } from "./kernel/svm-extension.js";
import { SvmBackend } from "./monitor/svm-backend.js";
import { F } from "./vmcb.js";

export const RAM_BYTES = 64 * 1024;
export const ORG = 0x7c00;

function ok(err: SysErr, what: string): void {
  if (err !== SysErr.Ok) throw new Error(`${what}: SysErr ${err}`);
}

export interface Machine {
  sys: Syscalls;
  caps: MachineCaps;
  ram: Uint8Array;
  backend: SvmBackend;
}

/**
 * A kernel with the SVM extension and MachineCaps built by hand, as the monitor core would.
 * With `pio`, the backend also gets the bus and guest memory its string-I/O assist needs.
 */
export function machine(code: number[], timeslice = 1000, pio?: Bus): Machine {
  const k = bootKernel({ engine: softEngine(), ramBytes: RAM_BYTES + 16 * 4096, timeslice });
  const sys = k.syscalls;
  ok(k.extensions.install(new SvmKernelExtension()), "install");
  ok(sys.ramRetype(k.ram, ObjType.Frame, RAM_BYTES), "retype ram frame");
  const ramFrame: CPtr = sys.ret.cap;
  ok(sys.ramRetype(k.ram, ObjType.GuestPhysSpace, 4096), "retype gpspace");
  const gpspace = sys.ret.cap;
  ok(sys.gpspaceMap(gpspace, ramFrame, 0, MapPerm.RWX), "map ram at 0");
  ok(sys.ramRetype(k.ram, ObjType.Frame, 4096), "retype guestControl");
  const guestControl = sys.ret.cap;
  ok(sys.frameMap(guestControl), "map guestControl");
  const gc = sys.ret.view!;
  ok(sys.ramRetype(k.ram, ObjType.Dispatcher, 4096), "retype dispatcher");
  const dispatcher = sys.ret.cap;
  ok(sys.frameMap(ramFrame), "map ram");
  const ram = sys.ret.view!;
  ram.set(code, ORG);
  const caps: MachineCaps = {
    ram: k.ram, gpspace, dispatcher, guestControl,
    guestRegs: new Uint32Array(gc.buffer, gc.byteOffset, GUEST_CONTROL_BYTES / 4),
  };
  const backend = pio === undefined ? new SvmBackend(sys, caps) : new SvmBackend(sys, caps, pio, new FrameGuestMemory(ram));
  backend.setState(realModeState(0, ORG));
  return { sys, caps, ram, backend };
}

export function expectKind<K extends VmExit["kind"]>(exit: VmExit, kind: K): Extract<VmExit, { kind: K }> {
  expect(exit.kind, exit.kind === "entry-failure" || exit.kind === "unhandled" ? exit.message : "").toBe(kind);
  return exit as Extract<VmExit, { kind: K }>;
}


/** Binds an MSR permission map of ones (every RDMSR/WRMSR exits, APM 15.11) and points MSRPM_BASE_PA at it. */
export function interceptAllMsrs(m: Machine): void {
  const sys = m.sys;
  expect(sys.ramRetype(m.caps.ram, ObjType.Frame, 8192)).toBe(SysErr.Ok);
  const cap = sys.ret.cap;
  expect(sys.frameMap(cap)).toBe(SysErr.Ok);
  sys.ret.view!.fill(0xff);
  expect(sys.dispatcherBindFrame(m.caps.dispatcher, GuestFrameRole.SvmMsrpm, cap)).toBe(SysErr.Ok);
  expect(sys.capIdentify(cap)).toBe(SysErr.Ok);
  m.backend.vmcb.write(F.MSRPM_BASE_PA, sys.ret.value >>> 0);
}

/** Moves the guest's RIP (the driver's "skip the instruction" after an exit). */
export function setRip(m: Machine, rip: number): void {
  const s = m.backend.getState(StateParts.Basic);
  s.eip = rip;
  m.backend.setState(s, StateParts.Basic);
}

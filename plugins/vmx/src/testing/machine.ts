// Test helper: a real kernel (soft engine) with the VMX extension installed and the
// MachineCaps a monitor core would create, built by hand through syscalls.
import { bootKernel, softEngine } from "../../../../src/kernel/index.js";
import { MapPerm, ObjType, Rights, SysErr, type Syscalls, type VmControlObject } from "../../../../src/kernel/api.js";
import type { MachineCaps } from "../../../../src/monitor/api.js";
import { VmxExtension } from "../kernel/vmx-extension.js";

/** Records every VMCS the kernel creates, so tests can corrupt one (wrong revision ...). */
export class RecordingVmxExtension extends VmxExtension {
  readonly controls: VmControlObject[] = [];
  override initControl(ctl: VmControlObject): void {
    super.initControl(ctl);
    this.controls.push(ctl);
  }
}

export interface TestMachine {
  sys: Syscalls;
  ext: RecordingVmxExtension;
  caps: MachineCaps;
  /** Guest RAM as the monitor maps it (guest-physical 0 ..). */
  ram: Uint8Array;
}

function ok(what: string, err: SysErr): void {
  if (err !== SysErr.Ok) throw new Error(`test machine: ${what} failed with SysErr ${err}`);
}

export function testMachine(opts: { ramBytes?: number; timeslice?: number; dcbRights?: Rights } = {}): TestMachine {
  const ramBytes = opts.ramBytes ?? 64 * 1024;
  const k = bootKernel({ engine: softEngine(), ramBytes: ramBytes + 64 * 1024, timeslice: opts.timeslice ?? 10_000 });
  const ext = new RecordingVmxExtension();
  ok("install", k.extensions.install(ext));
  const sys = k.syscalls;
  ok("retype ram frame", sys.ramRetype(k.ram, ObjType.Frame, ramBytes));
  const frame = sys.ret.cap;
  ok("retype gpspace", sys.ramRetype(k.ram, ObjType.GuestPhysSpace, 4096));
  const gpspace = sys.ret.cap;
  ok("map ram", sys.gpspaceMap(gpspace, frame, 0, MapPerm.RWX));
  ok("retype guestControl", sys.ramRetype(k.ram, ObjType.Frame, 4096));
  const guestControl = sys.ret.cap;
  ok("map guestControl", sys.frameMap(guestControl));
  const gc = sys.ret.view!;
  const guestRegs = new Uint32Array(gc.buffer, gc.byteOffset, 8);
  ok("retype dispatcher", sys.ramRetype(k.ram, ObjType.Dispatcher, 4096));
  let dispatcher = sys.ret.cap;
  if (opts.dcbRights !== undefined) {
    ok("mint dcb", sys.capMint(dispatcher, opts.dcbRights));
    dispatcher = sys.ret.cap;
  }
  ok("map ram view", sys.frameMap(frame));
  const ram = sys.ret.view!;
  return { sys, ext, ram, caps: { ram: k.ram, gpspace, dispatcher, guestControl, guestRegs } };
}

// Test helper: a real kernel (soft engine) with the VMX extension installed and the
// MachineCaps a monitor core would create, built by hand through syscalls, and the VMCS
// set-up the kernel-half tests share.
import { expect } from "vitest";
import { bootKernel, softEngine } from "../../../../src/kernel/index.js";
import { MapPerm, ObjType, Rights, SysErr, type CPtr, type Syscalls, type VmControlObject } from "../../../../src/kernel/api.js";
import type { MachineCaps } from "../../../../src/monitor/api.js";
import type { VmxCaps } from "../kernel/caps.js";
import { VmxExtension, type VmcsState, type VmxHostCpu } from "../kernel/vmx-extension.js";
import { F } from "../vmcs-fields.js";

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

/**
 * VMXON through the syscalls, as the VMX backend's constructor does it: a 4 KiB Frame
 * whose first dword is IA32_VMX_BASIC[30:0] read through rdmsrCap. Returns the region.
 */
export function enterVmxOperation(m: Pick<TestMachine, "sys" | "caps">): { region: number; bytes: Uint8Array } {
  const { sys } = m;
  ok("retype vmxon region", sys.ramRetype(m.caps.ram, ObjType.Frame, 4096));
  const region = sys.ret.cap;
  ok("map vmxon region", sys.frameMap(region));
  const bytes = sys.ret.view!;
  ok("rdmsrCap(IA32_VMX_BASIC)", sys.rdmsrCap(0x480));
  new DataView(bytes.buffer, bytes.byteOffset, 4).setUint32(0, sys.ret.value & 0x7fffffff, true);
  ok("vmxon", sys.vmxon(region));
  return { region, bytes };
}

function ok(what: string, err: SysErr): void {
  if (err !== SysErr.Ok) throw new Error(`test machine: ${what} failed with SysErr ${err}`);
}

export interface TestMachineOptions {
  ramBytes?: number;
  timeslice?: number;
  dcbRights?: Rights;
  /** Capabilities the VMX extension reports (default SOFT_CAPS). */
  vmxCaps?: VmxCaps;
  /** The modelled host processor (default SOFT_HOST). */
  host?: Partial<VmxHostCpu>;
}

export function testMachine(opts: TestMachineOptions = {}): TestMachine {
  const ramBytes = opts.ramBytes ?? 64 * 1024;
  const k = bootKernel({ engine: softEngine(), ramBytes: ramBytes + 64 * 1024, timeslice: opts.timeslice ?? 10_000 });
  const ext = new RecordingVmxExtension(opts.vmxCaps, opts.host);
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

/**
 * VMX operation entered (enterVmxOperation) and a VMCS retyped and set up for the
 * machine's dispatcher; with `current` (the default) VMPTRLD makes it the current VMCS.
 */
export function withVmcs(m: TestMachine, current = true): { dcb: CPtr; vmcs: CPtr } {
  const { sys } = m;
  enterVmxOperation(m);
  const dcb = m.caps.dispatcher;
  ok("retype vmcs", sys.ramRetype(m.caps.ram, ObjType.VmControl, 4096, "vmcs"));
  const vmcs = sys.ret.cap;
  ok("setupGuest", sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcs, gpspace: m.caps.gpspace, guestControl: m.caps.guestControl }));
  if (current) ok("vmptrld", sys.vmptrld(dcb, vmcs));
  return { dcb, vmcs };
}

/** The guestControl frame mapped into the monitor: its 16 words (GuestControlWord). */
export function guestControlWords(m: TestMachine): Uint32Array {
  ok("map guestControl", m.sys.frameMap(m.caps.guestControl));
  const bytes = m.sys.ret.view!;
  return new Uint32Array(bytes.buffer, bytes.byteOffset, 16);
}

/**
 * The guest-state fields of a real-mode guest at 0000:`rip` under unrestricted guest (SDM
 * 26.3.1.2): CR0 = `cr0` (default ET), RFLAGS = 2, CS a 64 KiB accessed code segment, the
 * data segments 64 KiB read/write, TR a busy 16-bit TSS, LDTR unusable, IDTR limit 3FFh.
 * `w` is the test's VMWRITE (which checks the result).
 */
export function writeRealModeGuest(w: (enc: number, v: number) => void, rip: number, cr0 = 0x10, idtrLimit = 0x3ff): void {
  w(F.GuestCr0, cr0); w(F.GuestCr4, 0); w(F.GuestRflags, 2); w(F.GuestRip, rip);
  w(F.GuestCsAr, 0x9b); w(F.GuestCsLimit, 0xffff);
  for (const enc of [F.GuestSsAr, F.GuestDsAr, F.GuestEsAr, F.GuestFsAr, F.GuestGsAr]) w(enc, 0x93);
  for (const enc of [F.GuestSsLimit, F.GuestDsLimit, F.GuestEsLimit, F.GuestFsLimit, F.GuestGsLimit]) w(enc, 0xffff);
  w(F.GuestTrAr, 0x8b); w(F.GuestLdtrAr, 0x10000); w(F.GuestIdtrLimit, idtrLimit);
}

/**
 * A function that enters the guest: VMLAUNCH the first time, VMRESUME after. Each entry
 * must return Ok with no entry failure recorded on the machine's first VMCS (the failing
 * check's name is the assertion message).
 */
export function guestEntry(m: TestMachine, dcb: CPtr): () => void {
  let launched = false;
  return () => {
    expect(launched ? m.sys.vmresume(dcb) : m.sys.vmlaunch(dcb)).toBe(SysErr.Ok);
    const failure = (m.ext.controls[0]!.ext as VmcsState).lastFailure;
    expect(failure, failure?.check.name).toBeUndefined();
    launched = true;
  };
}

import { describe, expect, it } from "vitest";
import {
  CSpaceConfigError, GUEST_CONTROL_BYTES, GuestControlWord, KernelConfigError, MapPerm, ObjType, Rights, SysErr, bootKernel, softEngine,
} from "./index.js";
import type { DispatcherObject, ExtensionContext, GuestBinding, SvmExtension, SysRet, VmControlObject } from "./index.js";
import { CpuExitReason } from "../x86/types.js";
import { realModeState } from "../x86/state.js";

/** Just enough of an SVM kernel half to get at the guest binding; vmrun runs one timeslice. */
class CapturingSvm implements SvmExtension {
  readonly kind = "svm" as const;
  ctx: ExtensionContext | null = null;
  binding: GuestBinding | null = null;
  lastExit = CpuExitReason.None;
  attach(ctx: ExtensionContext): void {
    this.ctx = ctx;
  }
  initControl(_ctl: VmControlObject): void {}
  setupGuest(_dcb: DispatcherObject, guest: GuestBinding): SysErr {
    this.binding = guest;
    return SysErr.Ok;
  }
  vmrun(dcb: DispatcherObject, _ret: SysRet): SysErr {
    this.lastExit = dcb.guest!.vcpu.run(this.ctx!.timeslice);
    return SysErr.Ok;
  }
}

describe("bootKernel", () => {
  it("hands the monitor one Ram capability of ramBytes with all rights", () => {
    const k = bootKernel({ engine: softEngine(), ramBytes: 1 << 20 });
    expect(k.syscalls.capIdentify(k.ram)).toBe(SysErr.Ok);
    expect(k.syscalls.ret.type).toBe(ObjType.Ram);
    expect(k.syscalls.ret.rights).toBe(Rights.All);
    expect(k.syscalls.ret.bytes).toBe(1 << 20);
    expect(k.extensions.engineName).toBe("soft");
  });

  it("throws named errors for a bad configuration", () => {
    expect(() => bootKernel({ engine: softEngine(), ramBytes: 0 })).toThrow(KernelConfigError);
    expect(() => bootKernel({ engine: softEngine(), ramBytes: 5000 })).toThrow(KernelConfigError);
    expect(() => bootKernel({ engine: softEngine(), ramBytes: 4096, timeslice: 0 })).toThrow(KernelConfigError);
    expect(() => bootKernel({ engine: softEngine(), ramBytes: 4096, cspaceSlots: 1 })).toThrow(CSpaceConfigError);
    expect(() => bootKernel({ engine: undefined as never, ramBytes: 4096 })).toThrow(KernelConfigError);
  });

  it("sizes the CSpace from cspaceSlots (slot 0 reserved, one slot for the Ram)", () => {
    const k = bootKernel({ engine: softEngine(), ramBytes: 4096, cspaceSlots: 3 });
    expect(k.syscalls.capCopy(k.ram)).toBe(SysErr.Ok);
    expect(k.syscalls.capCopy(k.ram)).toBe(SysErr.CSpaceFull);
  });

  it("attaches an extension with the default timeslice, and only one", () => {
    const k = bootKernel({ engine: softEngine(), ramBytes: 4096 });
    const svm = new CapturingSvm();
    expect(k.extensions.install(svm)).toBe(SysErr.Ok);
    expect(svm.ctx!.timeslice).toBe(100_000);
    expect(k.extensions.install(new CapturingSvm())).toBe(SysErr.ExtensionInstalled);
  });

  it("runs a guest on the soft engine over capabilities end to end", () => {
    const k = bootKernel({ engine: softEngine(), ramBytes: 1 << 20, timeslice: 1000 });
    const sys = k.syscalls;
    const svm = new CapturingSvm();
    expect(k.extensions.install(svm)).toBe(SysErr.Ok);
    const make = (type: ObjType, bytes: number, kind?: "vmcb"): number => {
      expect(sys.ramRetype(k.ram, type, bytes, kind)).toBe(SysErr.Ok);
      return sys.ret.cap;
    };
    const gps = make(ObjType.GuestPhysSpace, 4096);
    const ram = make(ObjType.Frame, 0x10000);
    const vmcb = make(ObjType.VmControl, 4096, "vmcb");
    const dcb = make(ObjType.Dispatcher, 4096);
    const gc = make(ObjType.Frame, 4096);
    expect(sys.gpspaceMap(gps, ram, 0, MapPerm.RWX)).toBe(SysErr.Ok);
    expect(sys.frameMap(ram)).toBe(SysErr.Ok);
    const view = sys.ret.view!;
    // mov ax, 0xbeef; mov [0x600], ax; in al, 0x71; jmp $
    view.set([0xb8, 0xef, 0xbe, 0xa3, 0x00, 0x06, 0xe4, 0x71, 0xeb, 0xfe], 0x7c00);
    expect(sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcb, gpspace: gps, guestControl: gc })).toBe(SysErr.Ok);
    svm.binding!.vcpu.setState(realModeState(0, 0x7c00));
    expect(sys.vmrun(dcb)).toBe(SysErr.Ok);
    expect(svm.lastExit).toBe(CpuExitReason.Budget);
    expect([view[0x600], view[0x601]]).toEqual([0xef, 0xbe]);
    const s = realModeState(0, 0);
    svm.binding!.vcpu.getState(s);
    expect(s.eax & 0xffff).toBe(0xbeff); // AL from the unclaimed port
    // The world switch publishes the retired-instruction count (the deterministic clock's source).
    expect(sys.frameMap(gc)).toBe(SysErr.Ok);
    const words = new Uint32Array(sys.ret.view!.buffer, 0, GUEST_CONTROL_BYTES / 4);
    expect(words[GuestControlWord.RetiredLo]).toBe(1000);
    expect(words[GuestControlWord.RetiredHi]).toBe(0);
    expect(sys.vmrun(dcb)).toBe(SysErr.Ok);
    expect(words[GuestControlWord.RetiredLo]).toBe(2000);
  });
});

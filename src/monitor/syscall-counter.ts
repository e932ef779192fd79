// A Syscalls that counts every invocation and delegates it, so the run loop can report
// how many kernel calls each exit kind costs (issue 5). A method per call, no Proxy and
// no rest arguments: nothing is allocated on the exit path.
import type {
  CPtr, GuestFrameRole, GuestSetup, MapPerm, MmioHandler, ObjType, Rights, SysErr, SysRet, Syscalls,
} from "../kernel/api.js";

export class CountingSyscalls implements Syscalls {
  /** Syscalls made through this object so far. */
  count = 0;

  constructor(readonly inner: Syscalls) {}

  get ret(): SysRet { return this.inner.ret; }

  capCopy(src: CPtr): SysErr { this.count++; return this.inner.capCopy(src); }
  capMint(src: CPtr, rights: Rights): SysErr { this.count++; return this.inner.capMint(src, rights); }
  capDelete(cap: CPtr): SysErr { this.count++; return this.inner.capDelete(cap); }
  capRevoke(cap: CPtr): SysErr { this.count++; return this.inner.capRevoke(cap); }
  capIdentify(cap: CPtr): SysErr { this.count++; return this.inner.capIdentify(cap); }
  ramRetype(ram: CPtr, type: ObjType, bytes: number, kind?: "vmcs" | "vmcb"): SysErr {
    this.count++;
    return this.inner.ramRetype(ram, type, bytes, kind);
  }
  frameMap(frame: CPtr): SysErr { this.count++; return this.inner.frameMap(frame); }
  gpspaceMap(gpspace: CPtr, frame: CPtr, gpa: number, perms: MapPerm): SysErr {
    this.count++;
    return this.inner.gpspaceMap(gpspace, frame, gpa, perms);
  }
  gpspaceUnmap(gpspace: CPtr, gpa: number): SysErr { this.count++; return this.inner.gpspaceUnmap(gpspace, gpa); }
  gpspaceSetMmio(gpspace: CPtr, handler: MmioHandler): SysErr { this.count++; return this.inner.gpspaceSetMmio(gpspace, handler); }
  gpspaceSetA20(gpspace: CPtr, enabled: boolean): SysErr { this.count++; return this.inner.gpspaceSetA20(gpspace, enabled); }
  dispatcherSetupGuest(dcb: CPtr, setup: GuestSetup): SysErr { this.count++; return this.inner.dispatcherSetupGuest(dcb, setup); }
  dispatcherBindFrame(dcb: CPtr, role: GuestFrameRole, frame: CPtr): SysErr { this.count++; return this.inner.dispatcherBindFrame(dcb, role, frame); }
  rdmsrCap(msr: number): SysErr { this.count++; return this.inner.rdmsrCap(msr); }
  vmxon(vmxonRegion: CPtr): SysErr { this.count++; return this.inner.vmxon(vmxonRegion); }
  vmxoff(): SysErr { this.count++; return this.inner.vmxoff(); }
  vmptrld(dcb: CPtr, vmcs: CPtr): SysErr { this.count++; return this.inner.vmptrld(dcb, vmcs); }
  vmclear(dcb: CPtr, vmcs: CPtr): SysErr { this.count++; return this.inner.vmclear(dcb, vmcs); }
  vmread(dcb: CPtr, encoding: number): SysErr { this.count++; return this.inner.vmread(dcb, encoding); }
  vmwrite(dcb: CPtr, encoding: number, value: number): SysErr { this.count++; return this.inner.vmwrite(dcb, encoding, value); }
  vmlaunch(dcb: CPtr): SysErr { this.count++; return this.inner.vmlaunch(dcb); }
  vmresume(dcb: CPtr): SysErr { this.count++; return this.inner.vmresume(dcb); }
  vmrun(dcb: CPtr): SysErr { this.count++; return this.inner.vmrun(dcb); }
}

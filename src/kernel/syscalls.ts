// Syscalls: invocations on capabilities in one CSpace. Every call checks its
// capabilities in one order — the CPtr names a slot, is not stale, is not empty,
// has the right type, holds the rights the call needs — then its arguments, then
// delegates to the kernel or to the installed extension. Failures are SysErr
// values; nothing here throws at the caller's request.
import { GUEST_FRAME_BYTES, GuestControlWord, MapPerm, ObjType, Rights, SysErr } from "./api.js";
import type { CPtr, GuestBinding, GuestFrameRole, GuestSetup, MmioHandler, SysRet, Syscalls } from "./api.js";
import type { CSpace } from "./cspace.js";
import { MapResult } from "./gpspace.js";
import type { Kernel } from "./kernel.js";
import type {
  DispatcherKObject, FrameObject, GuestPhysSpaceKObject, RamObject, VmControlKObject,
} from "./objects.js";

const RW = Rights.Read | Rights.Write;

export class KernelSyscalls implements Syscalls {
  readonly ret: SysRet = {
    cap: 0, value: 0, valueHigh: 0, view: null, type: ObjType.Null, rights: 0, bytes: 0, vmInstructionError: 0,
  };

  constructor(
    private readonly kernel: Kernel,
    readonly cspace: CSpace,
  ) {}

  // ---- CSpace ----

  capCopy(src: CPtr): SysErr {
    const cap = this.cspace.lookup(src);
    if (typeof cap === "number") return cap;
    const copy = this.cspace.insert(cap.object, cap.rights, cap);
    if (typeof copy === "number") return copy;
    this.ret.cap = copy.cptr;
    return SysErr.Ok;
  }

  capMint(src: CPtr, rights: Rights): SysErr {
    const cap = this.cspace.lookup(src);
    if (typeof cap === "number") return cap;
    if ((cap.rights & Rights.Grant) === 0) return SysErr.CapNoRight;
    if (typeof rights !== "number" || !Number.isInteger(rights) || rights < 0 || (rights & ~Rights.All) !== 0) {
      return SysErr.InvalidArgument;
    }
    // A mint can only drop rights, never add them.
    if ((rights & ~cap.rights) !== 0) return SysErr.CapNoRight;
    const copy = this.cspace.insert(cap.object, rights, cap);
    if (typeof copy === "number") return copy;
    this.ret.cap = copy.cptr;
    return SysErr.Ok;
  }

  capDelete(cptr: CPtr): SysErr {
    const cap = this.cspace.lookup(cptr);
    if (typeof cap === "number") return cap;
    this.cspace.delete(cap);
    return SysErr.Ok;
  }

  capRevoke(cptr: CPtr): SysErr {
    const cap = this.cspace.lookup(cptr);
    if (typeof cap === "number") return cap;
    this.cspace.revoke(cap);
    return SysErr.Ok;
  }

  capIdentify(cptr: CPtr): SysErr {
    const cap = this.cspace.lookup(cptr);
    if (typeof cap === "number") return cap;
    const ret = this.ret;
    ret.type = cap.object.type;
    ret.rights = cap.rights;
    ret.bytes = cap.object.size;
    // Barrelfish's frame_identify gives the base: the monitor writes it into bitmap fields.
    if (cap.object.type === ObjType.Frame) ret.value = (cap.object as FrameObject).paddr;
    return SysErr.Ok;
  }

  ramRetype(ram: CPtr, type: ObjType, bytes: number, kind?: "vmcs" | "vmcb"): SysErr {
    const cap = this.cspace.check(ram, ObjType.Ram, Rights.Write);
    if (typeof cap === "number") return cap;
    const obj = this.kernel.retype(cap.object as RamObject, type, bytes, kind, this.cspace.freeSlots > 0);
    if (typeof obj === "number") return obj;
    const created = this.cspace.insert(obj, Rights.All, cap);
    if (typeof created === "number") return created;
    this.ret.cap = created.cptr;
    return SysErr.Ok;
  }

  frameMap(frame: CPtr): SysErr {
    const cap = this.cspace.lookup(frame);
    if (typeof cap === "number") return cap;
    const obj = cap.object;
    // A VMCB is software-visible (APM 15.5); a VMCS region is not (SDM 25.2: software
    // must not access it directly, only through VMREAD/VMWRITE).
    let bytes: Uint8Array;
    if (obj.type === ObjType.Frame) bytes = (obj as FrameObject).bytes;
    else if (obj.type === ObjType.VmControl && (obj as VmControlKObject).kind === "vmcb") bytes = (obj as VmControlKObject).bytes;
    else return SysErr.CapWrongType;
    if ((cap.rights & Rights.Read) === 0) return SysErr.CapNoRight;
    // JS cannot hand out a read-only view: the Write right is not enforced on the view.
    this.ret.view = bytes;
    return SysErr.Ok;
  }

  // ---- Guest-physical space ----

  gpspaceMap(gpspace: CPtr, frame: CPtr, gpa: number, perms: MapPerm): SysErr {
    const g = this.cspace.check(gpspace, ObjType.GuestPhysSpace, Rights.Write);
    if (typeof g === "number") return g;
    const writable = typeof perms === "number" && (perms & MapPerm.W) !== 0;
    const f = this.cspace.check(frame, ObjType.Frame, writable ? RW : Rights.Read);
    if (typeof f === "number") return f;
    // Every mapping is readable: EPT write-only is a misconfiguration (SDM 28.3.3.1)
    // and execute-only pages are not modelled.
    if (typeof perms !== "number" || !Number.isInteger(perms) || (perms & ~MapPerm.RWX) !== 0 || (perms & MapPerm.R) === 0) {
      return SysErr.InvalidArgument;
    }
    const space = g.object as GuestPhysSpaceKObject;
    const fo = f.object as FrameObject;
    const r = space.memory.map(gpa, fo.bytes, perms, writable, fo);
    if (r === MapResult.Overlap) return SysErr.Overlap;
    if (r !== MapResult.Ok) return SysErr.InvalidArgument;
    fo.mappedIn.add(space.memory);
    return SysErr.Ok;
  }

  gpspaceUnmap(gpspace: CPtr, gpa: number): SysErr {
    const g = this.cspace.check(gpspace, ObjType.GuestPhysSpace, Rights.Write);
    if (typeof g === "number") return g;
    const mem = (g.object as GuestPhysSpaceKObject).memory;
    const owner = mem.mappings().find((m) => m.gpa === gpa)?.owner;
    const r = mem.unmap(gpa);
    if (r !== MapResult.Ok) return SysErr.InvalidArgument;
    // Forget the back-link unless the frame is still mapped elsewhere in this space.
    const fo = owner as FrameObject | undefined;
    if (fo !== undefined && !mem.mappings().some((m) => m.owner === fo)) fo.mappedIn.delete(mem);
    return SysErr.Ok;
  }

  gpspaceSetMmio(gpspace: CPtr, handler: MmioHandler): SysErr {
    const g = this.cspace.check(gpspace, ObjType.GuestPhysSpace, Rights.Write);
    if (typeof g === "number") return g;
    if (handler !== null && (typeof handler !== "object" || typeof handler.read !== "function" || typeof handler.write !== "function")) {
      return SysErr.InvalidArgument;
    }
    // null removes the handler: unclaimed accesses read all-ones and drop writes again.
    (g.object as GuestPhysSpaceKObject).memory.mmio = handler;
    return SysErr.Ok;
  }

  gpspaceSetA20(gpspace: CPtr, enabled: boolean): SysErr {
    const g = this.cspace.check(gpspace, ObjType.GuestPhysSpace, Rights.Write);
    if (typeof g === "number") return g;
    if (typeof enabled !== "boolean") return SysErr.InvalidArgument;
    (g.object as GuestPhysSpaceKObject).memory.setA20(enabled);
    return SysErr.Ok;
  }

  // ---- Dispatcher ----

  dispatcherSetupGuest(dcb: CPtr, setup: GuestSetup): SysErr {
    const d = this.cspace.check(dcb, ObjType.Dispatcher, Rights.Write);
    if (typeof d === "number") return d;
    if (setup === null || typeof setup !== "object") return SysErr.InvalidArgument;
    const v = this.cspace.check(setup.vmcontrol, ObjType.VmControl, RW);
    if (typeof v === "number") return v;
    const g = this.cspace.check(setup.gpspace, ObjType.GuestPhysSpace, Rights.Read);
    if (typeof g === "number") return g;
    const c = this.cspace.check(setup.guestControl, ObjType.Frame, RW);
    if (typeof c === "number") return c;
    return this.kernel.setupGuest(
      d.object as DispatcherKObject, v.object as VmControlKObject,
      g.object as GuestPhysSpaceKObject, c.object as FrameObject,
    );
  }

  // ---- Capabilities ----

  rdmsrCap(msr: number): SysErr {
    const ext = this.kernel.vmx ?? this.kernel.svm;
    if (ext === null || typeof ext.readCapability !== "function") return SysErr.NoExtension;
    if (typeof msr !== "number" || !Number.isInteger(msr) || msr < 0 || msr > 0xffffffff) return SysErr.InvalidArgument;
    return ext.readCapability(msr, this.ret);
  }

  dispatcherBindFrame(dcb: CPtr, role: GuestFrameRole, frame: CPtr): SysErr {
    const d = this.dispatcher(dcb, Rights.Write);
    if (typeof d === "number") return d;
    const f = this.cspace.check(frame, ObjType.Frame, Rights.Read);
    if (typeof f === "number") return f;
    if (!Number.isInteger(role) || role < 0 || role >= GUEST_FRAME_BYTES.length) return SysErr.InvalidArgument;
    if (d.guest === null) return SysErr.NotGuest;
    const fo = f.object as FrameObject;
    if (fo.bytes.length < GUEST_FRAME_BYTES[role]!) return SysErr.InvalidArgument;
    d.bindFrame(role, fo);
    return SysErr.Ok;
  }

  // ---- VMX ----

  vmxon(vmxonRegion: CPtr): SysErr {
    const ext = this.kernel.vmx;
    if (ext === null || typeof ext.vmxon !== "function") return SysErr.NoExtension;
    const f = this.cspace.check(vmxonRegion, ObjType.Frame, RW);
    if (typeof f === "number") return f;
    return ext.vmxon(f.object as FrameObject, this.ret);
  }

  vmxoff(): SysErr {
    const ext = this.kernel.vmx;
    if (ext === null || typeof ext.vmxoff !== "function") return SysErr.NoExtension;
    return ext.vmxoff(this.ret);
  }

  vmptrld(dcb: CPtr, vmcs: CPtr): SysErr {
    const ext = this.kernel.vmx;
    const c = this.dispatcher(dcb, Rights.Write);
    if (typeof c === "number") return c;
    const v = this.vmcs(vmcs);
    if (typeof v === "number") return v;
    const d = this.guestOf(c, ext);
    return typeof d === "number" ? d : ext!.vmptrld(d, v, this.ret);
  }

  vmclear(dcb: CPtr, vmcs: CPtr): SysErr {
    const ext = this.kernel.vmx;
    const c = this.dispatcher(dcb, Rights.Write);
    if (typeof c === "number") return c;
    const v = this.vmcs(vmcs);
    if (typeof v === "number") return v;
    const d = this.guestOf(c, ext);
    return typeof d === "number" ? d : ext!.vmclear(d, v, this.ret);
  }

  vmread(dcb: CPtr, encoding: number): SysErr {
    const ext = this.kernel.vmx;
    const d = this.guestOf(this.dispatcher(dcb, Rights.Read), ext);
    return typeof d === "number" ? d : ext!.vmread(d, encoding, this.ret);
  }

  vmwrite(dcb: CPtr, encoding: number, value: number): SysErr {
    const ext = this.kernel.vmx;
    const d = this.guestOf(this.dispatcher(dcb, Rights.Write), ext);
    return typeof d === "number" ? d : ext!.vmwrite(d, encoding, value, this.ret);
  }

  vmlaunch(dcb: CPtr): SysErr {
    const ext = this.kernel.vmx;
    const d = this.guestOf(this.dispatcher(dcb, Rights.Write), ext);
    return typeof d === "number" ? d : worldSwitched(d.guest!, ext!.vmlaunch(d, this.ret));
  }

  vmresume(dcb: CPtr): SysErr {
    const ext = this.kernel.vmx;
    const d = this.guestOf(this.dispatcher(dcb, Rights.Write), ext);
    return typeof d === "number" ? d : worldSwitched(d.guest!, ext!.vmresume(d, this.ret));
  }

  invept(dcb: CPtr, type: number, eptpLo: number, eptpHi: number): SysErr {
    const ext = this.kernel.vmx;
    if (ext !== null && typeof ext.invept !== "function") return SysErr.NoExtension;
    const d = this.guestOf(this.dispatcher(dcb, Rights.Write), ext);
    return typeof d === "number" ? d : ext!.invept!(d, type >>> 0, eptpLo >>> 0, eptpHi >>> 0, this.ret);
  }

  // ---- SVM ----

  vmrun(dcb: CPtr): SysErr {
    const ext = this.kernel.svm;
    const d = this.guestOf(this.dispatcher(dcb, Rights.Write), ext);
    return typeof d === "number" ? d : worldSwitched(d.guest!, ext!.vmrun(d, this.ret));
  }

  // ---- helpers ----

  private dispatcher(cptr: CPtr, rights: Rights): DispatcherKObject | SysErr {
    const c = this.cspace.check(cptr, ObjType.Dispatcher, rights);
    return typeof c === "number" ? c : (c.object as DispatcherKObject);
  }

  /** A checked dispatcher, then: the call's extension installed, the DCB set up as a guest (in that order). */
  private guestOf(d: DispatcherKObject | SysErr, ext: object | null): DispatcherKObject | SysErr {
    if (typeof d === "number") return d;
    if (ext === null) return SysErr.NoExtension;
    if (d.guest === null) return SysErr.NotGuest;
    return d;
  }

  /** A VMCS VmControl with Read+Write. A VMCB is the wrong type for the VMX calls. */
  private vmcs(cptr: CPtr): VmControlKObject | SysErr {
    const c = this.cspace.lookup(cptr);
    if (typeof c === "number") return c;
    if (c.object.type !== ObjType.VmControl || (c.object as VmControlKObject).kind !== "vmcs") return SysErr.CapWrongType;
    if ((c.rights & RW) !== RW) return SysErr.CapNoRight;
    return c.object as VmControlKObject;
  }
}

/** After a world switch, publish the engine's retired-instruction count in the guestControl frame. */
function worldSwitched(guest: GuestBinding, err: SysErr): SysErr {
  const r = guest.vcpu.retired;
  guest.guestControl[GuestControlWord.RetiredLo] = r >>> 0;
  guest.guestControl[GuestControlWord.RetiredHi] = Math.floor(r / 0x1_0000_0000) >>> 0;
  return err;
}

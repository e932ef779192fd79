// The kernel proper: the installed virtualization extension, the engine, the
// host-physical address allocator and lookup, and the operations on objects that
// syscalls.ts reaches after it has checked the caller's capabilities.
import { GUEST_CONTROL_BYTES, GUEST_FRAME_BYTES, ObjType, SysErr } from "./api.js";
import type {
  Engine, ExtensionContext, GuestBinding, KernelExtensionHost, SvmExtension, VirtExtension,
  VmControlObject, VmxExtension,
} from "./api.js";
import { PAGE_SIZE } from "./gpspace.js";
import {
  DispatcherKObject, FrameObject, GuestPhysSpaceKObject, PaddrAllocator, RamObject, VmControlKObject,
  roundToPages,
} from "./objects.js";
import type { KernelObject } from "./objects.js";

/** Instructions per world-switch timeslice when bootKernel is not told otherwise. */
export const DEFAULT_TIMESLICE = 100_000;
/** A VMCS region is at most 4 KiB (SDM 24.2, IA32_VMX_BASIC bits 44:32); a VMCB is one 4 KiB page (APM 15.5.1). */
export const VMCONTROL_BYTES = 4096;

/** A bad kernel configuration (bootKernel options). */
export class KernelConfigError extends Error {
  override readonly name = "KernelConfigError";
}

export class Kernel implements KernelExtensionHost {
  readonly engine: Engine;
  readonly timeslice: number;
  private extension: VirtExtension | null = null;
  private readonly paddrs = new PaddrAllocator();
  private readonly vmcontrols = new Map<number, VmControlKObject>();
  private nextDispatcherId = 1;
  private readonly context: ExtensionContext;

  constructor(engine: Engine, timeslice: number = DEFAULT_TIMESLICE) {
    if (engine === null || typeof engine !== "object" || typeof engine.createVcpu !== "function") {
      throw new KernelConfigError("engine must be an Engine (with createVcpu)");
    }
    if (!Number.isSafeInteger(timeslice) || timeslice <= 0) {
      throw new KernelConfigError(`timeslice must be a positive integer number of instructions, got ${timeslice}`);
    }
    this.engine = engine;
    this.timeslice = timeslice;
    const vmcontrols = this.vmcontrols;
    this.context = {
      timeslice,
      vmcontrolAt: (paddr: number): VmControlObject | undefined => vmcontrols.get(paddr),
    };
  }

  // ---- KernelExtensionHost ----

  get engineName(): string {
    return this.engine.name;
  }

  install(ext: VirtExtension): SysErr {
    if (this.extension !== null) return SysErr.ExtensionInstalled;
    if (ext === null || typeof ext !== "object" || (ext.kind !== "vmx" && ext.kind !== "svm")) {
      return SysErr.InvalidArgument;
    }
    this.extension = ext;
    ext.attach(this.context);
    return SysErr.Ok;
  }

  get vmx(): VmxExtension | null {
    const e = this.extension;
    return e !== null && e.kind === "vmx" ? e : null;
  }

  get svm(): SvmExtension | null {
    const e = this.extension;
    return e !== null && e.kind === "svm" ? e : null;
  }

  /** The installed extension if it runs control regions of `kind`: vmcs needs VMX, vmcb needs SVM. */
  extensionFor(kind: "vmcs" | "vmcb"): VirtExtension | null {
    return kind === "vmcs" ? this.vmx : this.svm;
  }

  // ---- objects ----

  createRam(bytes: number): RamObject {
    if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % PAGE_SIZE !== 0) {
      throw new KernelConfigError(`ramBytes must be a positive multiple of ${PAGE_SIZE}, got ${bytes}`);
    }
    return new RamObject(bytes);
  }

  /**
   * Carve an object out of `ram`. `bytes` is rounded up to whole 4 KiB pages; a
   * VmControl must come to exactly one page. Checks, in order: arguments,
   * extension, bytes left, then `slotFree` (the caller's CSpace has room), so a
   * failed retype consumes nothing. Returns the new object, or an error.
   */
  retype(ram: RamObject, type: ObjType, bytes: number, kind: unknown, slotFree: boolean): KernelObject | SysErr {
    const size = roundToPages(bytes);
    if (Number.isNaN(size)) return SysErr.InvalidArgument;
    let ext: VirtExtension | null = null;
    switch (type) {
      case ObjType.Frame:
      case ObjType.GuestPhysSpace:
      case ObjType.Dispatcher:
        break;
      case ObjType.VmControl:
        if ((kind !== "vmcs" && kind !== "vmcb") || size !== VMCONTROL_BYTES) return SysErr.InvalidArgument;
        ext = this.extensionFor(kind);
        if (ext === null) return SysErr.NoExtension;
        break;
      default:
        return SysErr.InvalidArgument;
    }
    if (size > ram.available) return SysErr.OutOfMemory;
    const needsPaddr = type !== ObjType.Dispatcher;
    if (needsPaddr && !this.paddrs.fits(size)) return SysErr.OutOfMemory;
    if (!slotFree) return SysErr.CSpaceFull;
    let obj: KernelObject;
    switch (type) {
      case ObjType.Frame:
        obj = new FrameObject(size, ram, this.paddrs.alloc(size));
        break;
      case ObjType.GuestPhysSpace:
        obj = new GuestPhysSpaceKObject(size, ram, this.paddrs.alloc(size));
        break;
      case ObjType.Dispatcher:
        obj = new DispatcherKObject(size, ram, this.nextDispatcherId++);
        break;
      default: {
        const ctl = new VmControlKObject(size, ram, this.paddrs.alloc(size), kind as "vmcs" | "vmcb", this.vmcontrols);
        ext!.initControl(ctl);
        obj = ctl;
      }
    }
    ram.available -= size;
    return obj;
  }

  /** dispatcher.setupGuest after the capabilities have been checked. */
  setupGuest(
    dcb: DispatcherKObject, vmcontrol: VmControlKObject, gpspace: GuestPhysSpaceKObject, guestControl: FrameObject,
  ): SysErr {
    if (guestControl.bytes.length < GUEST_CONTROL_BYTES) return SysErr.InvalidArgument;
    if (dcb.guest !== null) return SysErr.InvalidArgument;
    const ext = this.extensionFor(vmcontrol.kind);
    if (ext === null) return SysErr.NoExtension;
    const vcpu = this.engine.createVcpu(gpspace.memory);
    // The GPR frame is little-endian u32 (Gpr order); typed arrays use the host's
    // byte order, which is little-endian on every platform Node runs on here.
    const regs = new Uint32Array(guestControl.bytes.buffer, guestControl.bytes.byteOffset, GUEST_CONTROL_BYTES / 4);
    const binding: GuestBinding = { vmcontrol, gpspace, guestControl: regs, vcpu, ext: null, frames: GUEST_FRAME_BYTES.map(() => null) };
    const err = ext.setupGuest(dcb, binding);
    if (err !== SysErr.Ok) {
      dcb.guest = null;
      return err;
    }
    dcb.bind(binding, [vmcontrol, gpspace, guestControl]);
    return SysErr.Ok;
  }

  /** For tests and diagnostics: the VmControl at a host-physical address. */
  vmcontrolAt(paddr: number): VmControlObject | undefined {
    return this.vmcontrols.get(paddr);
  }
}

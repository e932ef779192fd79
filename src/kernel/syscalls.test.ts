import { beforeEach, describe, expect, it } from "vitest";
import { GUEST_CONTROL_BYTES, GUEST_FRAME_BYTES, GuestControlWord, GuestFrameRole, MapPerm, ObjType, Rights, SYS_ERR_NAMES, SysErr } from "./api.js";
import type {
  AccessSize, CPtr, DispatcherObject, Engine, EngineVcpu, ExtensionContext, GuestBinding, MmioHandler,
  PhysMemory, SvmExtension, SysRet, VmControlObject, VmxExtension,
} from "./api.js";
import { CSpace } from "./cspace.js";
import type { Cap } from "./cspace.js";
import { Kernel } from "./kernel.js";
import { VmControlKObject } from "./objects.js";
import type { DispatcherKObject, FrameObject, GuestPhysSpaceKObject, RamObject } from "./objects.js";
import { KernelSyscalls } from "./syscalls.js";
import { CpuExitReason } from "../x86/types.js";
import type { CpuExit, InterceptControls, X86State } from "../x86/types.js";

// ---------------------------------------------------------------------------
// Test doubles: they exercise the kernel's checks, not VMX/SVM semantics.

/** An engine that records which memory each vCPU was created on; its vCPUs never run guest code. */
class RecordingEngine implements Engine {
  readonly name = "recording";
  readonly memories: PhysMemory[] = [];
  createVcpu(memory: PhysMemory): EngineVcpu {
    this.memories.push(memory);
    const intercepts: InterceptControls = {
      hlt: false, cpuid: false, ioAll: false, ioBitmap: null, softIntBitmap: null, exceptionBitmap: 0, msr: false, msrBitmap: null,
      insn: 0, cr0Mask: 0, cr0Shadow: 0, cr4Mask: 0, cr4Shadow: 0, cr3LoadExit: false, cr3StoreExit: false,
      taskSwitchExit: false, crReadExit: 0, crWriteExit: 0, cr0SelectiveExit: false, descExitMask: 0,
    };
    const exit = { reason: CpuExitReason.None } as CpuExit;
    return {
      intercepts, exit, retired: 0, tscOffset: 0,
      run: () => CpuExitReason.Budget,
      getState: (_out: X86State) => {},
      setState: (_s: X86State) => {},
      deliverEvent: () => {},
      interruptible: () => true,
    };
  }
}

/** VMX field 0x4400 is the read-only VM-instruction error field (SDM appendix B.3.1). */
const VM_INSTRUCTION_ERROR = 0x4400;
/** SDM 31.4 error 13: VMWRITE to a read-only VMCS component. */
const ERR_VMWRITE_READONLY = 13;

interface RecVmcs { fields: Map<number, number> }
interface RecGuest { current: VmControlObject | null }

class RecordingVmx implements VmxExtension {
  readonly kind = "vmx" as const;
  readonly calls: string[] = [];
  ctx: ExtensionContext | null = null;
  setupResult: SysErr = SysErr.Ok;
  /** Starts in VMX operation; vmxoff leaves it (SDM 31.3: a second VMXOFF is #UD). */
  inVmx = true;
  attach(ctx: ExtensionContext): void {
    this.ctx = ctx;
    this.calls.push("attach");
  }
  vmxoff(_ret: SysRet): SysErr {
    this.calls.push("vmxoff");
    if (!this.inVmx) return SysErr.NotInVmxOperation;
    this.inVmx = false;
    return SysErr.Ok;
  }
  initControl(ctl: VmControlObject): void {
    this.calls.push(`initControl:${ctl.kind}`);
    ctl.ext = { fields: new Map() } satisfies RecVmcs;
  }
  setupGuest(_dcb: DispatcherObject, guest: GuestBinding): SysErr {
    this.calls.push("setupGuest");
    guest.ext = { current: null } satisfies RecGuest;
    return this.setupResult;
  }
  vmptrld(dcb: DispatcherObject, ctl: VmControlObject, _ret: SysRet): SysErr {
    this.calls.push("vmptrld");
    (dcb.guest!.ext as RecGuest).current = ctl;
    return SysErr.Ok;
  }
  vmclear(dcb: DispatcherObject, ctl: VmControlObject, _ret: SysRet): SysErr {
    this.calls.push("vmclear");
    const g = dcb.guest!.ext as RecGuest;
    if (g.current === ctl) g.current = null;
    return SysErr.Ok;
  }
  vmread(dcb: DispatcherObject, encoding: number, ret: SysRet): SysErr {
    this.calls.push("vmread");
    const cur = (dcb.guest!.ext as RecGuest).current;
    if (cur === null) return SysErr.VmFailInvalid;
    ret.value = (cur.ext as RecVmcs).fields.get(encoding) ?? 0;
    return SysErr.Ok;
  }
  vmwrite(dcb: DispatcherObject, encoding: number, value: number, ret: SysRet): SysErr {
    this.calls.push("vmwrite");
    const cur = (dcb.guest!.ext as RecGuest).current;
    if (cur === null) return SysErr.VmFailInvalid;
    if (encoding === VM_INSTRUCTION_ERROR) {
      ret.vmInstructionError = ERR_VMWRITE_READONLY;
      return SysErr.VmFailValid;
    }
    (cur.ext as RecVmcs).fields.set(encoding, value);
    return SysErr.Ok;
  }
  /** What vmlaunch returns (SysErr.VmxAbort stands for an extension's VMX abort, SDM 28.7). */
  launchResult: SysErr = SysErr.Ok;
  vmlaunch(_dcb: DispatcherObject, _ret: SysRet): SysErr {
    this.calls.push("vmlaunch");
    return this.launchResult;
  }
  vmresume(_dcb: DispatcherObject, _ret: SysRet): SysErr {
    this.calls.push("vmresume");
    return SysErr.Ok;
  }
}

class RecordingSvm implements SvmExtension {
  readonly kind = "svm" as const;
  readonly calls: string[] = [];
  attach(_ctx: ExtensionContext): void {
    this.calls.push("attach");
  }
  initControl(ctl: VmControlObject): void {
    this.calls.push(`initControl:${ctl.kind}`);
    ctl.bytes[0x58] = 1; // e.g. guest ASID 1 (APM 15.5.1, VMCB offset 0x58)
  }
  setupGuest(_dcb: DispatcherObject, _guest: GuestBinding): SysErr {
    this.calls.push("setupGuest");
    return SysErr.Ok;
  }
  vmrun(_dcb: DispatcherObject, ret: SysRet): SysErr {
    this.calls.push("vmrun");
    ret.value = 0x64; // e.g. VMEXIT_INTR
    return SysErr.Ok;
  }
}

class RecordingMmio implements MmioHandler {
  readonly log: string[] = [];
  read(gpa: number, size: AccessSize): number {
    this.log.push(`r${size}@${gpa.toString(16)}`);
    return 0;
  }
  write(gpa: number, size: AccessSize, value: number): void {
    this.log.push(`w${size}@${gpa.toString(16)}=${value.toString(16)}`);
  }
}

// ---------------------------------------------------------------------------

const RAM_BYTES = 64 * 4096;

interface World {
  kernel: Kernel;
  engine: RecordingEngine;
  sys: KernelSyscalls;
  ram: CPtr;
}

/** The same wiring as bootKernel, with a recording engine and a small CSpace. */
function boot(slots = 64): World {
  const engine = new RecordingEngine();
  const kernel = new Kernel(engine, 5000);
  const cspace = new CSpace(slots);
  const cap = cspace.insert(kernel.createRam(RAM_BYTES), Rights.All, null) as Cap;
  return { kernel, engine, sys: new KernelSyscalls(kernel, cspace), ram: cap.cptr };
}

function ok(err: SysErr): void {
  expect(SYS_ERR_NAMES[err]).toBe("ok");
}

function retype(w: World, type: ObjType, bytes = 4096, kind?: "vmcs" | "vmcb"): CPtr {
  ok(w.sys.ramRetype(w.ram, type, bytes, kind));
  return w.sys.ret.cap;
}

function mint(w: World, cap: CPtr, rights: Rights): CPtr {
  ok(w.sys.capMint(cap, rights));
  return w.sys.ret.cap;
}

function copy(w: World, cap: CPtr): CPtr {
  ok(w.sys.capCopy(cap));
  return w.sys.ret.cap;
}

function memoryOf(w: World, gps: CPtr): GuestPhysSpaceKObject["memory"] {
  return ((w.sys.cspace.lookup(gps) as Cap).object as GuestPhysSpaceKObject).memory;
}

/** A VMX guest: DCB set up with a VMCS, a gpspace and a guestControl frame. */
function vmxGuest(w: World, vmx: RecordingVmx) {
  ok(w.kernel.install(vmx));
  const dcb = retype(w, ObjType.Dispatcher);
  const vmcs = retype(w, ObjType.VmControl, 4096, "vmcs");
  const gps = retype(w, ObjType.GuestPhysSpace);
  const gc = retype(w, ObjType.Frame);
  ok(w.sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcs, gpspace: gps, guestControl: gc }));
  return { dcb, vmcs, gps, gc };
}

describe("capabilities", () => {
  let w: World;
  beforeEach(() => {
    w = boot();
  });

  it("capIdentify reports the Ram capability's type, rights and size", () => {
    ok(w.sys.capIdentify(w.ram));
    expect(w.sys.ret.type).toBe(ObjType.Ram);
    expect(w.sys.ret.rights).toBe(Rights.All);
    expect(w.sys.ret.bytes).toBe(RAM_BYTES);
  });

  it("capCopy makes a capability with the same object and rights in a new slot", () => {
    const f = retype(w, ObjType.Frame);
    const ro = mint(w, f, Rights.Read | Rights.Grant);
    const c = copy(w, ro);
    expect(c).not.toBe(ro);
    ok(w.sys.capIdentify(c));
    expect([w.sys.ret.type, w.sys.ret.rights]).toEqual([ObjType.Frame, Rights.Read | Rights.Grant]);
    ok(w.sys.frameMap(c));
    const viaCopy = w.sys.ret.view;
    ok(w.sys.frameMap(f));
    expect(viaCopy).toBe(w.sys.ret.view);
  });

  it("capMint needs Grant on the source", () => {
    const f = retype(w, ObjType.Frame);
    const noGrant = mint(w, f, Rights.Read | Rights.Write);
    expect(w.sys.capMint(noGrant, Rights.Read)).toBe(SysErr.CapNoRight);
  });

  it("capMint cannot add rights the source lacks", () => {
    const f = retype(w, ObjType.Frame);
    const readGrant = mint(w, f, Rights.Read | Rights.Grant);
    expect(w.sys.capMint(readGrant, Rights.Read | Rights.Write)).toBe(SysErr.CapNoRight);
    expect(w.sys.capMint(readGrant, Rights.All)).toBe(SysErr.CapNoRight);
    const r = mint(w, readGrant, Rights.Read);
    ok(w.sys.capIdentify(r));
    expect(w.sys.ret.rights).toBe(Rights.Read);
  });

  it("capMint rejects rights bits outside All", () => {
    expect(w.sys.capMint(w.ram, 8 as Rights)).toBe(SysErr.InvalidArgument);
    expect(w.sys.capMint(w.ram, -1 as Rights)).toBe(SysErr.InvalidArgument);
  });

  it("capDelete of the original leaves its copies working", () => {
    const f = retype(w, ObjType.Frame);
    const c = copy(w, f);
    ok(w.sys.capDelete(f));
    expect(w.sys.capIdentify(f)).toBe(SysErr.CapStale);
    ok(w.sys.frameMap(c));
    expect(w.sys.ret.view!.length).toBe(4096);
  });

  it("capDelete twice through the same CPtr is CapStale the second time", () => {
    const f = retype(w, ObjType.Frame);
    ok(w.sys.capDelete(f));
    expect(w.sys.capDelete(f)).toBe(SysErr.CapStale);
  });

  it("capRevoke of the Ram capability deletes everything retyped from it and returns the bytes", () => {
    const f = retype(w, ObjType.Frame, RAM_BYTES / 2);
    const fCopy = copy(w, f);
    const d = retype(w, ObjType.Dispatcher, RAM_BYTES / 2);
    expect(w.sys.ramRetype(w.ram, ObjType.Frame, 4096)).toBe(SysErr.OutOfMemory);
    ok(w.sys.capRevoke(w.ram));
    for (const c of [f, fCopy, d]) expect(w.sys.capIdentify(c)).toBe(SysErr.CapStale);
    ok(w.sys.capIdentify(w.ram));
    ok(w.sys.ramRetype(w.ram, ObjType.Frame, RAM_BYTES));
  });

  it("capRevoke reaches objects retyped through a copy of the Ram capability", () => {
    const ramCopy = copy(w, w.ram);
    ok(w.sys.ramRetype(ramCopy, ObjType.Frame, 4096));
    const f = w.sys.ret.cap;
    ok(w.sys.capRevoke(w.ram));
    expect(w.sys.capIdentify(ramCopy)).toBe(SysErr.CapStale);
    expect(w.sys.capIdentify(f)).toBe(SysErr.CapStale);
  });

  it("returns CSpaceFull when no slot is free, without consuming Ram bytes", () => {
    const small = boot(4); // slot 0 reserved, slot 1 = Ram: two free
    retype(small, ObjType.Frame);
    retype(small, ObjType.Frame);
    expect(small.sys.capCopy(small.ram)).toBe(SysErr.CSpaceFull);
    expect(small.sys.ramRetype(small.ram, ObjType.Frame, 4096)).toBe(SysErr.CSpaceFull);
    // Argument errors still come before CSpaceFull.
    expect(small.sys.ramRetype(small.ram, ObjType.Frame, 0)).toBe(SysErr.InvalidArgument);
    expect(small.sys.ramRetype(small.ram, ObjType.Frame, RAM_BYTES)).toBe(SysErr.OutOfMemory);
    // RAM_BYTES - 2 pages must still be available.
    const last = small.sys.ret.cap;
    ok(small.sys.capDelete(last));
    ok(small.sys.ramRetype(small.ram, ObjType.Frame, RAM_BYTES - 2 * 4096));
  });

  it("returns CapInvalid for a slot beyond the CSpace and CapEmpty for an unused one", () => {
    expect(w.sys.capIdentify(64)).toBe(SysErr.CapInvalid);
    expect(w.sys.capIdentify(0)).toBe(SysErr.CapEmpty);
    expect(w.sys.capIdentify(40)).toBe(SysErr.CapEmpty);
  });
});

describe("ramRetype", () => {
  let w: World;
  beforeEach(() => {
    w = boot();
  });

  it("rounds sizes up to 4 KiB pages", () => {
    const f = retype(w, ObjType.Frame, 1);
    ok(w.sys.capIdentify(f));
    expect(w.sys.ret.bytes).toBe(4096);
    const g = retype(w, ObjType.Frame, 4097);
    ok(w.sys.capIdentify(g));
    expect(w.sys.ret.bytes).toBe(8192);
  });

  it("returns OutOfMemory when the Ram is exhausted", () => {
    retype(w, ObjType.Frame, RAM_BYTES - 4096);
    expect(w.sys.ramRetype(w.ram, ObjType.Frame, 8192)).toBe(SysErr.OutOfMemory);
    retype(w, ObjType.Frame, 4096);
    expect(w.sys.ramRetype(w.ram, ObjType.Frame, 1)).toBe(SysErr.OutOfMemory);
  });

  it("returns the bytes of a deleted object to the Ram", () => {
    const f = retype(w, ObjType.Frame, RAM_BYTES);
    expect(w.sys.ramRetype(w.ram, ObjType.Frame, 4096)).toBe(SysErr.OutOfMemory);
    ok(w.sys.capDelete(f));
    ok(w.sys.ramRetype(w.ram, ObjType.Frame, RAM_BYTES));
  });

  it("rejects bad sizes and types with InvalidArgument", () => {
    for (const bytes of [0, -4096, 1.5, Number.NaN, Infinity]) {
      expect(w.sys.ramRetype(w.ram, ObjType.Frame, bytes)).toBe(SysErr.InvalidArgument);
    }
    expect(w.sys.ramRetype(w.ram, ObjType.Ram, 4096)).toBe(SysErr.InvalidArgument);
    expect(w.sys.ramRetype(w.ram, ObjType.Null, 4096)).toBe(SysErr.InvalidArgument);
    expect(w.sys.ramRetype(w.ram, 99 as ObjType, 4096)).toBe(SysErr.InvalidArgument);
  });

  it("needs Write on a Ram capability", () => {
    const ro = mint(w, w.ram, Rights.Read);
    expect(w.sys.ramRetype(ro, ObjType.Frame, 4096)).toBe(SysErr.CapNoRight);
    const f = retype(w, ObjType.Frame);
    expect(w.sys.ramRetype(f, ObjType.Frame, 4096)).toBe(SysErr.CapWrongType);
  });

  it("a VmControl needs a kind, one page, and a matching extension", () => {
    expect(w.sys.ramRetype(w.ram, ObjType.VmControl, 4096)).toBe(SysErr.InvalidArgument);
    expect(w.sys.ramRetype(w.ram, ObjType.VmControl, 4096, "vmcs")).toBe(SysErr.NoExtension);
    const svm = new RecordingSvm();
    ok(w.kernel.install(svm));
    expect(w.sys.ramRetype(w.ram, ObjType.VmControl, 4096, "vmcs")).toBe(SysErr.NoExtension);
    expect(w.sys.ramRetype(w.ram, ObjType.VmControl, 8192, "vmcb")).toBe(SysErr.InvalidArgument);
    ok(w.sys.ramRetype(w.ram, ObjType.VmControl, 4096, "vmcb"));
    expect(svm.calls).toEqual(["attach", "initControl:vmcb"]);
  });

  it("gives each VmControl a unique 4 KiB-aligned paddr that vmcontrolAt resolves until it is deleted", () => {
    const vmx = new RecordingVmx();
    ok(w.kernel.install(vmx));
    retype(w, ObjType.Frame, 8192); // takes paddrs too
    const a = retype(w, ObjType.VmControl, 4096, "vmcs");
    const b = retype(w, ObjType.VmControl, 100, "vmcs");
    const seen: VmControlObject[] = [];
    for (let p = 0x1000_0000; p < 0x1000_0000 + 0x10_0000; p += 4096) {
      const v = vmx.ctx!.vmcontrolAt(p);
      if (v !== undefined) seen.push(v);
    }
    expect(seen.length).toBe(2);
    expect(seen[0]).not.toBe(seen[1]);
    for (const v of seen) {
      expect(v.paddr % 4096).toBe(0);
      expect(v.kind).toBe("vmcs");
      expect(v.bytes.length).toBe(4096);
      expect(v.ext).not.toBeNull(); // initControl ran
    }
    const paddrA = seen[0].paddr;
    ok(w.sys.capDelete(a));
    expect(vmx.ctx!.vmcontrolAt(paddrA)).toBeUndefined();
    expect(vmx.ctx!.vmcontrolAt(seen[1].paddr)).toBe(seen[1]);
    ok(w.sys.capIdentify(b));
  });
});

describe("frameMap", () => {
  let w: World;
  beforeEach(() => {
    w = boot();
  });

  it("maps a Frame as a view of its bytes and needs Read", () => {
    const f = retype(w, ObjType.Frame, 8192);
    ok(w.sys.frameMap(f));
    expect(w.sys.ret.view!.length).toBe(8192);
    const wo = mint(w, f, Rights.Write);
    expect(w.sys.frameMap(wo)).toBe(SysErr.CapNoRight);
    expect(w.sys.frameMap(w.ram)).toBe(SysErr.CapWrongType);
  });

  it("refuses a VMCS (opaque, SDM 25.2) but maps a VMCB with what initControl wrote", () => {
    const vmxWorld = boot();
    ok(vmxWorld.kernel.install(new RecordingVmx()));
    const vmcs = retype(vmxWorld, ObjType.VmControl, 4096, "vmcs");
    expect(vmxWorld.sys.frameMap(vmcs)).toBe(SysErr.CapWrongType);

    ok(w.kernel.install(new RecordingSvm()));
    const vmcb = retype(w, ObjType.VmControl, 4096, "vmcb");
    ok(w.sys.frameMap(vmcb));
    expect(w.sys.ret.view!.length).toBe(4096);
    expect(w.sys.ret.view![0x58]).toBe(1);
  });
});

describe("guest-physical spaces", () => {
  let w: World;
  beforeEach(() => {
    w = boot();
  });

  it("maps a frame so that guest accesses reach the monitor's view of it", () => {
    const gps = retype(w, ObjType.GuestPhysSpace);
    const f = retype(w, ObjType.Frame, 8192);
    ok(w.sys.gpspaceMap(gps, f, 0x10000, MapPerm.RWX));
    ok(w.sys.frameMap(f));
    const view = w.sys.ret.view!;
    const mem = memoryOf(w, gps);
    mem.write32(0x11000, 0xcafebabe);
    expect([...view.subarray(0x1000, 0x1004)]).toEqual([0xbe, 0xba, 0xfe, 0xca]);
    view[0] = 0x77;
    expect(mem.read8(0x10000)).toBe(0x77);
  });

  it("rejects an overlapping mapping with Overlap", () => {
    const gps = retype(w, ObjType.GuestPhysSpace);
    const a = retype(w, ObjType.Frame, 8192);
    const b = retype(w, ObjType.Frame);
    ok(w.sys.gpspaceMap(gps, a, 0, MapPerm.RWX));
    expect(w.sys.gpspaceMap(gps, b, 0x1000, MapPerm.RWX)).toBe(SysErr.Overlap);
    ok(w.sys.gpspaceMap(gps, b, 0x2000, MapPerm.RWX));
  });

  it("checks rights: Write on the space, Read on the frame, Write on the frame for a writable mapping", () => {
    const gps = retype(w, ObjType.GuestPhysSpace);
    const f = retype(w, ObjType.Frame);
    const gpsRo = mint(w, gps, Rights.Read);
    const fRo = mint(w, f, Rights.Read);
    const fWo = mint(w, f, Rights.Write);
    expect(w.sys.gpspaceMap(gpsRo, f, 0, MapPerm.R)).toBe(SysErr.CapNoRight);
    expect(w.sys.gpspaceMap(gps, fWo, 0, MapPerm.R)).toBe(SysErr.CapNoRight);
    expect(w.sys.gpspaceMap(gps, fRo, 0, MapPerm.RWX)).toBe(SysErr.CapNoRight);
    expect(w.sys.gpspaceMap(gps, gps, 0, MapPerm.R)).toBe(SysErr.CapWrongType);
    ok(w.sys.gpspaceMap(gps, fRo, 0, MapPerm.R | MapPerm.X));
  });

  it("a read-only mapping drops guest writes", () => {
    const gps = retype(w, ObjType.GuestPhysSpace);
    const f = retype(w, ObjType.Frame);
    ok(w.sys.gpspaceMap(gps, f, 0x4000, MapPerm.R));
    ok(w.sys.frameMap(f));
    const view = w.sys.ret.view!;
    view[8] = 0x42;
    memoryOf(w, gps).write8(0x4008, 0x99);
    expect(view[8]).toBe(0x42);
  });

  it("rejects bad addresses and permissions with InvalidArgument", () => {
    const gps = retype(w, ObjType.GuestPhysSpace);
    const f = retype(w, ObjType.Frame);
    expect(w.sys.gpspaceMap(gps, f, 0x800, MapPerm.R)).toBe(SysErr.InvalidArgument);
    expect(w.sys.gpspaceMap(gps, f, 2 ** 32, MapPerm.R)).toBe(SysErr.InvalidArgument);
    expect(w.sys.gpspaceMap(gps, f, 0, 0 as MapPerm)).toBe(SysErr.InvalidArgument);
    expect(w.sys.gpspaceMap(gps, f, 0, MapPerm.W)).toBe(SysErr.InvalidArgument);
    expect(w.sys.gpspaceMap(gps, f, 0, 8 as MapPerm)).toBe(SysErr.InvalidArgument);
  });

  it("unmap sends the range to the MMIO handler; unmapping a non-base address fails", () => {
    const gps = retype(w, ObjType.GuestPhysSpace);
    const f = retype(w, ObjType.Frame, 8192);
    const h = new RecordingMmio();
    ok(w.sys.gpspaceSetMmio(gps, h));
    ok(w.sys.gpspaceMap(gps, f, 0x8000, MapPerm.RWX));
    const mem = memoryOf(w, gps);
    mem.write8(0x8001, 5);
    expect(h.log).toEqual([]);
    expect(w.sys.gpspaceUnmap(gps, 0x9000)).toBe(SysErr.InvalidArgument);
    ok(w.sys.gpspaceUnmap(gps, 0x8000));
    mem.write8(0x8001, 5);
    expect(mem.read16(0x9000)).toBe(0);
    expect(h.log).toEqual(["w1@8001=5", "r2@9000"]);
    expect(w.sys.gpspaceUnmap(gps, 0x8000)).toBe(SysErr.InvalidArgument);
  });

  it("setting the MMIO handler needs Write on the space", () => {
    const gps = retype(w, ObjType.GuestPhysSpace);
    const ro = mint(w, gps, Rights.Read);
    expect(w.sys.gpspaceSetMmio(ro, new RecordingMmio())).toBe(SysErr.CapNoRight);
    expect(w.sys.gpspaceSetMmio(gps, {} as MmioHandler)).toBe(SysErr.InvalidArgument);
  });

  it("gpspaceSetA20 gates bit 20 of guest-physical addresses and needs Write on the space", () => {
    const gps = retype(w, ObjType.GuestPhysSpace);
    const f = retype(w, ObjType.Frame);
    ok(w.sys.gpspaceMap(gps, f, 0, MapPerm.RWX));
    const mem = memoryOf(w, gps);
    const h = new RecordingMmio();
    ok(w.sys.gpspaceSetMmio(gps, h));
    mem.write8(0x10, 0x5a);
    expect(mem.read8(0x10_0010)).toBe(0); // A20 on: 1 MiB + 0x10 is unbacked (MMIO reads 0 here)
    const ro = mint(w, gps, Rights.Read);
    expect(w.sys.gpspaceSetA20(ro, false)).toBe(SysErr.CapNoRight);
    expect(w.sys.gpspaceSetA20(f, false)).toBe(SysErr.CapWrongType);
    expect(w.sys.gpspaceSetA20(gps, 0 as unknown as boolean)).toBe(SysErr.InvalidArgument);
    ok(w.sys.gpspaceSetA20(gps, false));
    expect(mem.read8(0x10_0010)).toBe(0x5a);
    ok(w.sys.gpspaceSetA20(gps, true));
    expect(mem.read8(0x10_0010)).toBe(0);
  });

  it("deleting a frame's last capability unmaps it from the space", () => {
    const gps = retype(w, ObjType.GuestPhysSpace);
    const f = retype(w, ObjType.Frame);
    ok(w.sys.gpspaceMap(gps, f, 0, MapPerm.RWX));
    const mem = memoryOf(w, gps);
    mem.write8(0, 0x12);
    expect(mem.read8(0)).toBe(0x12);
    ok(w.sys.capDelete(f));
    expect(mem.read8(0)).toBe(0xff);
    expect(mem.mappings()).toEqual([]);
  });
});

describe("dispatcherSetupGuest", () => {
  let w: World;
  let vmx: RecordingVmx;
  let dcb: CPtr, vmcs: CPtr, gps: CPtr, gc: CPtr;
  beforeEach(() => {
    w = boot();
    vmx = new RecordingVmx();
    ok(w.kernel.install(vmx));
    dcb = retype(w, ObjType.Dispatcher);
    vmcs = retype(w, ObjType.VmControl, 4096, "vmcs");
    gps = retype(w, ObjType.GuestPhysSpace);
    gc = retype(w, ObjType.Frame);
  });

  it("binds the guest: engine vCPU on the space's memory, GPRs shared with the guestControl frame", () => {
    ok(w.sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcs, gpspace: gps, guestControl: gc }));
    expect(vmx.calls).toContain("setupGuest");
    expect(w.engine.memories).toEqual([memoryOf(w, gps)]);
    ok(w.sys.frameMap(gc));
    const view = w.sys.ret.view!;
    const dcbObj = (w.sys.cspace.lookup(dcb) as Cap).object as unknown as DispatcherObject;
    const regs = dcbObj.guest!.guestControl;
    expect(regs.length).toBe(GUEST_CONTROL_BYTES / 4);
    regs[1] = 0x11223344; // ECX
    expect([...view.subarray(4, 8)]).toEqual([0x44, 0x33, 0x22, 0x11]);
  });

  it("checks each capability's type and rights", () => {
    const setup = { vmcontrol: vmcs, gpspace: gps, guestControl: gc };
    const dcbRo = mint(w, dcb, Rights.Read);
    expect(w.sys.dispatcherSetupGuest(dcbRo, setup)).toBe(SysErr.CapNoRight);
    expect(w.sys.dispatcherSetupGuest(gc, setup)).toBe(SysErr.CapWrongType);
    expect(w.sys.dispatcherSetupGuest(dcb, { ...setup, vmcontrol: mint(w, vmcs, Rights.Read) })).toBe(SysErr.CapNoRight);
    expect(w.sys.dispatcherSetupGuest(dcb, { ...setup, vmcontrol: gc })).toBe(SysErr.CapWrongType);
    expect(w.sys.dispatcherSetupGuest(dcb, { ...setup, gpspace: mint(w, gps, Rights.Write) })).toBe(SysErr.CapNoRight);
    expect(w.sys.dispatcherSetupGuest(dcb, { ...setup, gpspace: gc })).toBe(SysErr.CapWrongType);
    expect(w.sys.dispatcherSetupGuest(dcb, { ...setup, guestControl: mint(w, gc, Rights.Read) })).toBe(SysErr.CapNoRight);
    expect(w.sys.dispatcherSetupGuest(dcb, { ...setup, guestControl: gps })).toBe(SysErr.CapWrongType);
    expect(w.sys.dispatcherSetupGuest(dcb, { ...setup, guestControl: 63 })).toBe(SysErr.CapEmpty);
    expect(vmx.calls).not.toContain("setupGuest");
    expect(w.engine.memories).toEqual([]);
    // A read-only gpspace capability is enough.
    ok(w.sys.dispatcherSetupGuest(dcb, { ...setup, gpspace: mint(w, gps, Rights.Read) }));
  });

  it("returns NoExtension when the installed extension does not run the VmControl's kind", () => {
    // Retype cannot make such a VmControl (it needs the matching extension), so build
    // one directly and hand it to the kernel as the syscall layer would.
    for (const ext of [null, new RecordingSvm()]) {
      const k = boot();
      if (ext !== null) ok(k.kernel.install(ext));
      const obj = (c: CPtr) => (k.sys.cspace.lookup(c) as Cap).object;
      const d = obj(retype(k, ObjType.Dispatcher)) as DispatcherKObject;
      const g = obj(retype(k, ObjType.GuestPhysSpace)) as GuestPhysSpaceKObject;
      const f = obj(retype(k, ObjType.Frame)) as FrameObject;
      const ram = obj(k.ram) as RamObject;
      const ctl = new VmControlKObject(4096, ram, 0x2000_0000, "vmcs", new Map());
      expect(k.kernel.setupGuest(d, ctl, g, f)).toBe(SysErr.NoExtension);
      expect(d.guest).toBeNull();
      expect(k.engine.memories).toEqual([]);
    }
  });

  it("leaves the DCB unbound when the extension refuses", () => {
    vmx.setupResult = SysErr.InvalidArgument;
    expect(w.sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcs, gpspace: gps, guestControl: gc })).toBe(SysErr.InvalidArgument);
    expect(w.sys.vmread(dcb, 0)).toBe(SysErr.NotGuest);
    vmx.setupResult = SysErr.Ok;
    ok(w.sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcs, gpspace: gps, guestControl: gc }));
  });

  it("refuses to set up a DCB that is already a guest", () => {
    const setup = { vmcontrol: vmcs, gpspace: gps, guestControl: gc };
    ok(w.sys.dispatcherSetupGuest(dcb, setup));
    expect(w.sys.dispatcherSetupGuest(dcb, setup)).toBe(SysErr.InvalidArgument);
  });

  it("keeps bound objects alive after the monitor deletes its capabilities", () => {
    const f = retype(w, ObjType.Frame);
    ok(w.sys.gpspaceMap(gps, f, 0, MapPerm.RWX));
    ok(w.sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcs, gpspace: gps, guestControl: gc }));
    const mem = memoryOf(w, gps);
    mem.write8(0, 0x5a);
    ok(w.sys.capDelete(gps));
    expect(mem.read8(0)).toBe(0x5a);
    ok(w.sys.capDelete(dcb)); // the DCB goes, and with it the last hold on the space
    expect(mem.read8(0)).toBe(0xff);
  });
});

describe("dispatcherBindFrame", () => {
  let w: World;
  let dcb: CPtr, gps: CPtr, gc: CPtr, vmcs: CPtr;
  beforeEach(() => {
    w = boot();
    ok(w.kernel.install(new RecordingVmx()));
    dcb = retype(w, ObjType.Dispatcher);
    vmcs = retype(w, ObjType.VmControl, 4096, "vmcs");
    gps = retype(w, ObjType.GuestPhysSpace);
    gc = retype(w, ObjType.Frame);
  });
  const guestOf = (): GuestBinding => ((w.sys.cspace.lookup(dcb) as Cap).object as unknown as DispatcherObject).guest!;

  it("binds a Frame in its role, visible to the extension with the address capIdentify reports", () => {
    const bm = retype(w, ObjType.Frame, 4096);
    expect(w.sys.dispatcherBindFrame(dcb, GuestFrameRole.VmxIoBitmapA, bm)).toBe(SysErr.NotGuest);
    ok(w.sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcs, gpspace: gps, guestControl: gc }));
    ok(w.sys.dispatcherBindFrame(dcb, GuestFrameRole.VmxIoBitmapA, bm));
    ok(w.sys.capIdentify(bm));
    const paddr = w.sys.ret.value;
    expect(paddr % 4096).toBe(0);
    expect(guestOf().frames[GuestFrameRole.VmxIoBitmapA]!.paddr).toBe(paddr);
    ok(w.sys.frameMap(bm));
    w.sys.ret.view![5] = 0xa5; // the monitor's writes are what the extension reads
    expect(guestOf().frames[GuestFrameRole.VmxIoBitmapA]!.bytes[5]).toBe(0xa5);
    expect(guestOf().frames[GuestFrameRole.SvmIopm]).toBeNull();
  });

  it("checks rights, role and size", () => {
    ok(w.sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcs, gpspace: gps, guestControl: gc }));
    const bm = retype(w, ObjType.Frame, 4096);
    expect(w.sys.dispatcherBindFrame(mint(w, dcb, Rights.Read), GuestFrameRole.VmxMsrBitmap, bm)).toBe(SysErr.CapNoRight);
    expect(w.sys.dispatcherBindFrame(dcb, GuestFrameRole.VmxMsrBitmap, mint(w, bm, Rights.Write))).toBe(SysErr.CapNoRight);
    expect(w.sys.dispatcherBindFrame(dcb, GuestFrameRole.VmxMsrBitmap, gps)).toBe(SysErr.CapWrongType);
    expect(w.sys.dispatcherBindFrame(dcb, GUEST_FRAME_BYTES.length as GuestFrameRole, bm)).toBe(SysErr.InvalidArgument);
    expect(w.sys.dispatcherBindFrame(dcb, GuestFrameRole.SvmIopm, bm)).toBe(SysErr.InvalidArgument); // 12 KiB needed
    ok(w.sys.dispatcherBindFrame(dcb, GuestFrameRole.VmxMsrBitmap, mint(w, bm, Rights.Read)));
  });

  it("keeps a bound frame alive after the monitor deletes its capability, and releases it when replaced", () => {
    ok(w.sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcs, gpspace: gps, guestControl: gc }));
    const a = retype(w, ObjType.Frame, 4096);
    ok(w.sys.dispatcherBindFrame(dcb, GuestFrameRole.VmxIoBitmapB, a));
    const frameA = guestOf().frames[GuestFrameRole.VmxIoBitmapB]! as unknown as FrameObject;
    ok(w.sys.capDelete(a));
    expect(guestOf().frames[GuestFrameRole.VmxIoBitmapB]).toBe(frameA);
    expect(frameA.destroyed).toBe(false); // the kernel's hold keeps it
    const b = retype(w, ObjType.Frame, 4096);
    ok(w.sys.dispatcherBindFrame(dcb, GuestFrameRole.VmxIoBitmapB, b));
    expect(guestOf().frames[GuestFrameRole.VmxIoBitmapB]).not.toBe(frameA);
    expect(frameA.destroyed).toBe(true); // its last reference went with the rebinding
  });
});

describe("VMX syscalls", () => {
  let w: World;
  let vmx: RecordingVmx;
  let g: ReturnType<typeof vmxGuest>;
  beforeEach(() => {
    w = boot();
    vmx = new RecordingVmx();
    g = vmxGuest(w, vmx);
  });

  it("pass through to the extension and return what it returns", () => {
    expect(w.sys.vmread(g.dcb, 0x6800)).toBe(SysErr.VmFailInvalid);
    ok(w.sys.vmptrld(g.dcb, g.vmcs));
    ok(w.sys.vmwrite(g.dcb, 0x6800, 0x31));
    ok(w.sys.vmread(g.dcb, 0x6800));
    expect(w.sys.ret.value).toBe(0x31);
    expect(w.sys.vmwrite(g.dcb, VM_INSTRUCTION_ERROR, 0)).toBe(SysErr.VmFailValid);
    expect(w.sys.ret.vmInstructionError).toBe(ERR_VMWRITE_READONLY);
    ok(w.sys.vmlaunch(g.dcb));
    ok(w.sys.vmresume(g.dcb));
    ok(w.sys.vmclear(g.dcb, g.vmcs));
    expect(vmx.calls.slice(-8)).toEqual([
      "vmread", "vmptrld", "vmwrite", "vmread", "vmwrite", "vmlaunch", "vmresume", "vmclear",
    ]);
  });

  it("vmwrite through a DCB capability minted without the Write right fails with CapNoRight and never reaches the extension", () => {
    ok(w.sys.vmptrld(g.dcb, g.vmcs));
    const readOnly = mint(w, g.dcb, Rights.Read | Rights.Grant);
    const before = vmx.calls.length;
    expect(w.sys.vmwrite(readOnly, 0x6800, 0x31)).toBe(SysErr.CapNoRight);
    expect(vmx.calls.length).toBe(before);
    // Reading through it is allowed, and shows the field unchanged.
    ok(w.sys.vmread(readOnly, 0x6800));
    expect(w.sys.ret.value).toBe(0);
  });

  it("after capRevoke, a copy of the DCB capability cannot be used (CapStale) while the original still works", () => {
    ok(w.sys.vmptrld(g.dcb, g.vmcs));
    const c = copy(w, g.dcb);
    ok(w.sys.vmwrite(c, 0x6800, 1));
    ok(w.sys.capRevoke(g.dcb));
    const before = vmx.calls.length;
    expect(w.sys.vmwrite(c, 0x6800, 2)).toBe(SysErr.CapStale);
    expect(w.sys.vmread(c, 0x6800)).toBe(SysErr.CapStale);
    expect(vmx.calls.length).toBe(before);
    ok(w.sys.vmwrite(g.dcb, 0x6800, 3));
    ok(w.sys.vmread(g.dcb, 0x6800));
    expect(w.sys.ret.value).toBe(3);
  });

  it("check the rights each call needs on the DCB and the VMCS", () => {
    const dcbR = mint(w, g.dcb, Rights.Read);
    const dcbW = mint(w, g.dcb, Rights.Write);
    const vmcsR = mint(w, g.vmcs, Rights.Read);
    const vmcsW = mint(w, g.vmcs, Rights.Write);
    const before = vmx.calls.length;
    expect(w.sys.vmptrld(dcbR, g.vmcs)).toBe(SysErr.CapNoRight);
    expect(w.sys.vmclear(dcbR, g.vmcs)).toBe(SysErr.CapNoRight);
    expect(w.sys.vmptrld(g.dcb, vmcsR)).toBe(SysErr.CapNoRight);
    expect(w.sys.vmptrld(g.dcb, vmcsW)).toBe(SysErr.CapNoRight);
    expect(w.sys.vmclear(g.dcb, vmcsW)).toBe(SysErr.CapNoRight);
    expect(w.sys.vmptrld(g.dcb, g.gc)).toBe(SysErr.CapWrongType);
    expect(w.sys.vmread(dcbW, 0)).toBe(SysErr.CapNoRight);
    expect(w.sys.vmlaunch(dcbR)).toBe(SysErr.CapNoRight);
    expect(w.sys.vmresume(dcbR)).toBe(SysErr.CapNoRight);
    expect(w.sys.vmread(g.gc, 0)).toBe(SysErr.CapWrongType);
    expect(vmx.calls.length).toBe(before);
  });

  it("return NotGuest on a DCB that is not set up, and vmrun returns NoExtension", () => {
    const other = retype(w, ObjType.Dispatcher);
    expect(w.sys.vmread(other, 0)).toBe(SysErr.NotGuest);
    expect(w.sys.vmwrite(other, 0, 0)).toBe(SysErr.NotGuest);
    expect(w.sys.vmptrld(other, g.vmcs)).toBe(SysErr.NotGuest);
    expect(w.sys.vmlaunch(other)).toBe(SysErr.NotGuest);
    expect(w.sys.vmrun(g.dcb)).toBe(SysErr.NoExtension);
  });
});

describe("SVM syscalls", () => {
  it("vmrun needs Write, an SVM extension and a guest DCB; the VMX calls return NoExtension", () => {
    const w = boot();
    const svm = new RecordingSvm();
    const dcb = retype(w, ObjType.Dispatcher);
    expect(w.sys.vmrun(dcb)).toBe(SysErr.NoExtension);
    ok(w.kernel.install(svm));
    expect(w.sys.vmrun(dcb)).toBe(SysErr.NotGuest);
    const vmcb = retype(w, ObjType.VmControl, 4096, "vmcb");
    const gps = retype(w, ObjType.GuestPhysSpace);
    const gc = retype(w, ObjType.Frame);
    ok(w.sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcb, gpspace: gps, guestControl: gc }));
    expect(w.sys.vmrun(mint(w, dcb, Rights.Read))).toBe(SysErr.CapNoRight);
    ok(w.sys.vmrun(dcb));
    expect(w.sys.ret.value).toBe(0x64);
    expect(w.sys.vmread(dcb, 0)).toBe(SysErr.NoExtension);
    expect(w.sys.vmlaunch(dcb)).toBe(SysErr.NoExtension);
    expect(w.sys.vmptrld(dcb, vmcb)).toBe(SysErr.CapWrongType);
    expect(svm.calls).toEqual(["attach", "initControl:vmcb", "setupGuest", "vmrun"]);
  });
});

describe("extension host", () => {
  it("installs one extension, attaching it with the timeslice; a second is ExtensionInstalled", () => {
    const w = boot();
    const vmx = new RecordingVmx();
    ok(w.kernel.install(vmx));
    expect(vmx.ctx!.timeslice).toBe(5000);
    const svm = new RecordingSvm();
    expect(w.kernel.install(svm)).toBe(SysErr.ExtensionInstalled);
    expect(svm.calls).toEqual([]);
    expect(w.kernel.engineName).toBe("recording");
    expect(boot().kernel.install({ kind: "sev" } as unknown as RecordingVmx)).toBe(SysErr.InvalidArgument);
  });
});

describe("error codes", () => {
  it("every SysErr code is reachable through the syscalls and the extension host", () => {
    const seen = new Set<SysErr>();
    const w = boot(8);
    const vmx = new RecordingVmx();
    const t = (e: SysErr) => seen.add(e);
    t(w.sys.capIdentify(7)); // CapEmpty
    t(w.sys.frameMap(w.ram)); // CapWrongType
    t(w.sys.ramRetype(mint(w, w.ram, Rights.Read), ObjType.Frame, 4096)); // CapNoRight
    const f = retype(w, ObjType.Frame);
    ok(w.sys.capDelete(f));
    t(w.sys.capIdentify(f)); // CapStale
    t(w.sys.capIdentify(8)); // CapInvalid
    t(w.sys.ramRetype(w.ram, ObjType.Frame, 0)); // InvalidArgument
    t(w.sys.ramRetype(w.ram, ObjType.Frame, RAM_BYTES * 2)); // OutOfMemory
    t(w.sys.ramRetype(w.ram, ObjType.VmControl, 4096, "vmcs")); // NoExtension
    ok(w.kernel.install(vmx));
    t(w.kernel.install(vmx)); // ExtensionInstalled
    const dcb = retype(w, ObjType.Dispatcher);
    t(w.sys.vmread(dcb, 0)); // NotGuest
    const vmcs = retype(w, ObjType.VmControl, 4096, "vmcs");
    const gps = retype(w, ObjType.GuestPhysSpace);
    const gc = retype(w, ObjType.Frame);
    ok(w.sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcs, gpspace: gps, guestControl: gc }));
    t(w.sys.gpspaceMap(gps, gc, 0, MapPerm.R));
    t(w.sys.gpspaceMap(gps, gc, 0, MapPerm.R)); // Overlap
    t(w.sys.vmread(dcb, 0)); // VmFailInvalid
    ok(w.sys.vmptrld(dcb, vmcs));
    t(w.sys.vmwrite(dcb, VM_INSTRUCTION_ERROR, 0)); // VmFailValid
    vmx.launchResult = SysErr.VmxAbort;
    t(w.sys.vmlaunch(dcb)); // VmxAbort: the extension's result passes through unchanged
    ok(w.sys.vmxoff());
    t(w.sys.vmxoff()); // NotInVmxOperation
    while (w.sys.capCopy(w.ram) === SysErr.Ok);
    t(w.sys.capCopy(w.ram)); // CSpaceFull
    const all = SYS_ERR_NAMES.map((_, i) => i as SysErr);
    expect([...seen].sort((a, b) => a - b)).toEqual(all);
  });
});

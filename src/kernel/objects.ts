// Kernel objects, reached only through capabilities (cspace.ts).
//
// Lifetime: an object counts its references (capabilities, plus the kernel's own
// holds, e.g. a guest DCB holds the objects bound to it). When the last one goes
// the object is destroyed: its bytes return to the Ram object it was retyped
// from, a Frame is unmapped from every guest-physical space, a VmControl leaves
// the host-physical lookup table, a Dispatcher drops its guest binding.
//
// Host-physical addresses are fake but unique: a bump allocator hands out
// 4 KiB-aligned addresses in [PADDR_BASE, 4 GiB) and never reuses one, so a
// stale VMCS pointer can never name a newer object. They stay below 4 GiB
// because the syscall ABI is 32-bit (api.ts).
import { ObjType } from "./api.js";
import type {
  DispatcherObject, GuestBinding, GuestPhysSpaceObject, VmControlObject,
} from "./api.js";
import { GuestPhysMemory, PAGE_SIZE } from "./gpspace.js";

export const PADDR_BASE = 0x1000_0000;
export const PADDR_LIMIT = 0x1_0000_0000;

/** Hands out fake host-physical addresses. */
export class PaddrAllocator {
  private next = PADDR_BASE;
  /** A 4 KiB-aligned range of `bytes` (a multiple of 4 KiB), or -1 when the space is used up. */
  alloc(bytes: number): number {
    const base = this.next;
    if (base + bytes > PADDR_LIMIT) return -1;
    this.next = base + bytes;
    return base;
  }
  /** Whether `bytes` more can be allocated. */
  fits(bytes: number): boolean {
    return this.next + bytes <= PADDR_LIMIT;
  }
}

export abstract class KernelObject {
  abstract readonly type: ObjType;
  private refs = 0;
  private dead = false;
  constructor(
    /** Bytes carved from `source` (capIdentify's `bytes`). */
    readonly size: number,
    /** The Ram object this was retyped from; its bytes go back there on destroy. */
    readonly source: RamObject | null,
  ) {}
  get destroyed(): boolean {
    return this.dead;
  }
  retain(): void {
    this.refs++;
  }
  release(): void {
    if (--this.refs > 0 || this.dead) return;
    this.dead = true;
    this.onDestroy();
    if (this.source !== null) this.source.available += this.size;
  }
  protected onDestroy(): void {}
}

/** A budget of bytes that retype carves objects from. */
export class RamObject extends KernelObject {
  readonly type = ObjType.Ram;
  available: number;
  constructor(size: number) {
    super(size, null);
    this.available = size;
  }
}

export class FrameObject extends KernelObject {
  readonly type = ObjType.Frame;
  readonly bytes: Uint8Array;
  /** Guest-physical spaces this frame is mapped into (a frame may be mapped several times). */
  readonly mappedIn = new Set<GuestPhysMemory>();
  constructor(size: number, source: RamObject, readonly paddr: number) {
    super(size, source);
    this.bytes = new Uint8Array(size);
  }
  protected override onDestroy(): void {
    for (const mem of this.mappedIn) mem.unmapOwner(this);
    this.mappedIn.clear();
  }
}

export class VmControlKObject extends KernelObject implements VmControlObject {
  readonly type = ObjType.VmControl;
  readonly bytes: Uint8Array;
  ext: unknown = null;
  constructor(
    size: number,
    source: RamObject,
    readonly paddr: number,
    readonly kind: "vmcs" | "vmcb",
    private readonly registry: Map<number, VmControlKObject>,
  ) {
    super(size, source);
    this.bytes = new Uint8Array(size);
    registry.set(paddr, this);
  }
  protected override onDestroy(): void {
    this.registry.delete(this.paddr);
  }
}

export class GuestPhysSpaceKObject extends KernelObject implements GuestPhysSpaceObject {
  readonly type = ObjType.GuestPhysSpace;
  readonly memory = new GuestPhysMemory();
  constructor(size: number, source: RamObject, readonly paddr: number) {
    super(size, source);
  }
  protected override onDestroy(): void {
    for (const m of this.memory.mappings()) {
      if (m.owner instanceof FrameObject) m.owner.mappedIn.delete(this.memory);
      this.memory.unmap(m.gpa);
    }
    this.memory.mmio = null;
  }
}

export class DispatcherKObject extends KernelObject implements DispatcherObject {
  readonly type = ObjType.Dispatcher;
  guest: GuestBinding | null = null;
  /** Objects the guest binding keeps alive (the kernel's own references). */
  private held: KernelObject[] = [];
  constructor(size: number, source: RamObject, readonly id: number) {
    super(size, source);
  }
  bind(guest: GuestBinding, objects: KernelObject[]): void {
    for (const o of objects) o.retain();
    this.held = objects;
    this.guest = guest;
  }
  /** Bind `frame` in `role` of the guest binding, releasing the frame bound there before. */
  bindFrame(role: number, frame: FrameObject): void {
    const guest = this.guest!;
    frame.retain();
    const old = this.roleFrames[role];
    if (old !== undefined) {
      this.held.splice(this.held.indexOf(old), 1);
      old.release();
    }
    this.roleFrames[role] = frame;
    this.held.push(frame);
    guest.frames[role] = frame;
  }
  private readonly roleFrames: FrameObject[] = [];
  protected override onDestroy(): void {
    this.guest = null;
    const held = this.held;
    this.held = [];
    for (const o of held) o.release();
  }
}

/** Round a retype size up to whole 4 KiB pages; NaN when it is not a positive safe integer. */
export function roundToPages(bytes: number): number {
  if (typeof bytes !== "number" || !Number.isSafeInteger(bytes) || bytes <= 0) return NaN;
  return Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;
}

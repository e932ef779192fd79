// A CSpace: a fixed array of capability slots plus the derivation tree that
// revoke walks.
//
// CPtr layout (api.ts): bits 15:0 are the slot and bits 30:16 the slot's
// generation. Deleting or revoking a slot bumps its generation, so a CPtr
// handed out earlier is CapStale from then on, even after the slot is reused.
// Generations are 15 bits wide and wrap after 32768 reuses of one slot. Free
// slots are reused first-in first-out to push that as far away as possible.
//
// Slot 0 is reserved and always empty (like seL4's null capability): CPtr 0,
// the value of an uninitialised field, never names a capability.
//
// Derivation tree. A copy or mint is a child of the capability it was made
// from, and an object retyped from a Ram capability is a child of that Ram
// capability (Barrelfish: retyped capabilities are descendants of their
// source). `revoke(cap)` deletes every descendant and leaves `cap` itself.
// Unlike Barrelfish, where copies are peers and revoking any one of them
// deletes all the others, a copy here sits below its source (as in seL4's
// derivation tree): revoking a copy never takes the original with it, which
// lets a monitor hand out copies it can later take back. Deleting a
// capability that has children moves them up to its parent, so a later revoke
// further up still reaches them.
import { Rights, SysErr } from "./api.js";
import type { CPtr, ObjType } from "./api.js";
import type { KernelObject } from "./objects.js";

export const CPTR_SLOT_BITS = 16;
export const CPTR_GEN_MASK = 0x7fff;
export const MAX_CSPACE_SLOTS = 1 << CPTR_SLOT_BITS;
export const DEFAULT_CSPACE_SLOTS = 4096;

/** A CSpace size outside 2..65536. */
export class CSpaceConfigError extends Error {
  override readonly name = "CSpaceConfigError";
}

export function makeCPtr(slot: number, generation: number): CPtr {
  return ((generation & CPTR_GEN_MASK) << CPTR_SLOT_BITS) | slot;
}

/** One capability: a typed reference to a kernel object with rights, in one slot. */
export class Cap {
  parent: Cap | null = null;
  readonly children = new Set<Cap>();
  constructor(
    readonly slot: number,
    readonly cptr: CPtr,
    readonly object: KernelObject,
    readonly rights: number,
  ) {}
  get type(): ObjType {
    return this.object.type;
  }
}

export class CSpace {
  readonly size: number;
  private readonly slots: (Cap | null)[];
  private readonly generations: Uint16Array;
  /** Free slots in FIFO order: a ring of `size` entries. */
  private readonly freeRing: Int32Array;
  private freeHead = 0;
  private freeCount = 0;

  constructor(size: number = DEFAULT_CSPACE_SLOTS) {
    if (!Number.isInteger(size) || size < 2 || size > MAX_CSPACE_SLOTS) {
      throw new CSpaceConfigError(`CSpace size ${size} is outside 2..${MAX_CSPACE_SLOTS} slots`);
    }
    this.size = size;
    this.slots = new Array<Cap | null>(size).fill(null);
    this.generations = new Uint16Array(size);
    this.freeRing = new Int32Array(size);
    for (let s = 1; s < size; s++) this.pushFree(s);
  }

  get freeSlots(): number {
    return this.freeCount;
  }

  /** Resolve a CPtr, checking in order: names a slot, not stale, not empty. */
  lookup(cptr: CPtr): Cap | SysErr {
    if (typeof cptr !== "number" || !Number.isInteger(cptr) || cptr < 0 || cptr > 0x7fffffff) {
      return SysErr.CapInvalid;
    }
    const slot = cptr & (MAX_CSPACE_SLOTS - 1);
    if (slot >= this.size) return SysErr.CapInvalid;
    if (cptr >>> CPTR_SLOT_BITS !== this.generations[slot]) return SysErr.CapStale;
    const cap = this.slots[slot];
    return cap === null ? SysErr.CapEmpty : cap;
  }

  /** `lookup`, then the object type, then the rights (all of `rights` must be held). */
  check(cptr: CPtr, type: ObjType, rights: Rights): Cap | SysErr {
    const cap = this.lookup(cptr);
    if (typeof cap === "number") return cap;
    if (cap.object.type !== type) return SysErr.CapWrongType;
    if ((cap.rights & rights) !== rights) return SysErr.CapNoRight;
    return cap;
  }

  /** Put a new capability in a free slot, as a child of `parent` (null: a root). Takes a reference on `object`. */
  insert(object: KernelObject, rights: number, parent: Cap | null): Cap | SysErr {
    if (this.freeCount === 0) return SysErr.CSpaceFull;
    const slot = this.popFree();
    const cap = new Cap(slot, makeCPtr(slot, this.generations[slot]), object, rights & Rights.All);
    this.slots[slot] = cap;
    object.retain();
    if (parent !== null) {
      cap.parent = parent;
      parent.children.add(cap);
    }
    return cap;
  }

  /** Delete one capability; its children move up to its parent. */
  delete(cap: Cap): void {
    const parent = cap.parent;
    if (parent !== null) parent.children.delete(cap);
    for (const child of cap.children) {
      child.parent = parent;
      if (parent !== null) parent.children.add(child);
    }
    cap.children.clear();
    cap.parent = null;
    this.free(cap);
  }

  /** Delete every descendant of `cap`, leaving `cap` itself. */
  revoke(cap: Cap): void {
    const stack: Cap[] = [...cap.children];
    cap.children.clear();
    while (stack.length > 0) {
      const c = stack.pop()!;
      for (const child of c.children) stack.push(child);
      c.children.clear();
      c.parent = null;
      this.free(c);
    }
  }

  private free(cap: Cap): void {
    const slot = cap.slot;
    if (this.slots[slot] !== cap) return;
    this.slots[slot] = null;
    this.generations[slot] = (this.generations[slot] + 1) & CPTR_GEN_MASK;
    this.pushFree(slot);
    cap.object.release();
  }

  private pushFree(slot: number): void {
    this.freeRing[(this.freeHead + this.freeCount) % this.size] = slot;
    this.freeCount++;
  }

  private popFree(): number {
    const slot = this.freeRing[this.freeHead];
    this.freeHead = (this.freeHead + 1) % this.size;
    this.freeCount--;
    return slot;
  }
}

import { describe, expect, it } from "vitest";
import { ObjType, Rights, SysErr } from "./api.js";
import { Cap, CSpace, CSpaceConfigError, makeCPtr } from "./cspace.js";
import { FrameObject, RamObject } from "./objects.js";

function mustInsert(cs: CSpace, obj: FrameObject | RamObject, rights: number, parent: Cap | null): Cap {
  const c = cs.insert(obj, rights, parent);
  if (typeof c === "number") throw new Error(`insert failed: ${c}`);
  return c;
}

describe("CSpace", () => {
  it("rejects sizes outside 2..65536 with CSpaceConfigError", () => {
    expect(() => new CSpace(1)).toThrow(CSpaceConfigError);
    expect(() => new CSpace(65537)).toThrow(CSpaceConfigError);
    expect(() => new CSpace(2.5)).toThrow(CSpaceConfigError);
    expect(new CSpace(65536).size).toBe(65536);
  });

  it("keeps slot 0 empty so CPtr 0 never names a capability", () => {
    const cs = new CSpace(4);
    const ram = new RamObject(4096);
    const caps = [0, 1, 2].map(() => mustInsert(cs, ram, Rights.All, null));
    expect(caps.map((c) => c.slot)).toEqual([1, 2, 3]);
    expect(cs.lookup(0)).toBe(SysErr.CapEmpty);
    expect(cs.insert(ram, Rights.All, null)).toBe(SysErr.CSpaceFull);
  });

  it("returns CapInvalid for a slot out of range or a malformed CPtr", () => {
    const cs = new CSpace(16);
    expect(cs.lookup(16)).toBe(SysErr.CapInvalid);
    expect(cs.lookup(makeCPtr(0xffff, 0))).toBe(SysErr.CapInvalid);
    expect(cs.lookup(-1)).toBe(SysErr.CapInvalid);
    expect(cs.lookup(1.5)).toBe(SysErr.CapInvalid);
    expect(cs.lookup(0x8000_0000)).toBe(SysErr.CapInvalid);
    expect(cs.lookup(Number.NaN)).toBe(SysErr.CapInvalid);
  });

  it("returns CapStale for an old CPtr after delete, even once the slot is reused", () => {
    const cs = new CSpace(3); // slots 1 and 2
    const ram = new RamObject(4096);
    const a = mustInsert(cs, ram, Rights.All, null);
    const old = a.cptr;
    cs.delete(a);
    expect(cs.lookup(old)).toBe(SysErr.CapStale);
    // Fill both slots so slot a.slot is reused with the next generation.
    const b = mustInsert(cs, ram, Rights.All, null);
    const c = mustInsert(cs, ram, Rights.All, null);
    const reused = b.slot === a.slot ? b : c;
    expect(reused.slot).toBe(a.slot);
    expect(reused.cptr).not.toBe(old);
    expect(cs.lookup(old)).toBe(SysErr.CapStale);
    expect(cs.lookup(reused.cptr)).toBe(reused);
  });

  it("returns CapEmpty for an empty slot whose generation matches", () => {
    const cs = new CSpace(8);
    const ram = new RamObject(4096);
    const a = mustInsert(cs, ram, Rights.All, null);
    cs.delete(a);
    expect(cs.lookup(makeCPtr(a.slot, 1))).toBe(SysErr.CapEmpty);
    expect(cs.lookup(makeCPtr(5, 0))).toBe(SysErr.CapEmpty);
    expect(cs.lookup(makeCPtr(5, 3))).toBe(SysErr.CapStale);
  });

  it("checks type before rights", () => {
    const cs = new CSpace(8);
    const a = mustInsert(cs, new RamObject(4096), Rights.Read, null);
    expect(cs.check(a.cptr, ObjType.Frame, Rights.Read)).toBe(SysErr.CapWrongType);
    expect(cs.check(a.cptr, ObjType.Ram, Rights.Write)).toBe(SysErr.CapNoRight);
    expect(cs.check(a.cptr, ObjType.Ram, Rights.Read)).toBe(a);
  });

  it("destroys an object when its last capability goes, returning its bytes to the Ram", () => {
    const cs = new CSpace(8);
    const ram = new RamObject(8192);
    ram.available -= 4096;
    const frame = new FrameObject(4096, ram, 0x1000);
    const a = mustInsert(cs, frame, Rights.All, null);
    const b = mustInsert(cs, frame, Rights.All, a);
    cs.delete(a);
    expect(frame.destroyed).toBe(false);
    expect(ram.available).toBe(4096);
    cs.delete(b);
    expect(frame.destroyed).toBe(true);
    expect(ram.available).toBe(8192);
  });

  it("revoke deletes descendants at every depth and keeps the capability itself", () => {
    const cs = new CSpace(16);
    const ram = new RamObject(4096);
    const root = mustInsert(cs, ram, Rights.All, null);
    const child = mustInsert(cs, ram, Rights.All, root);
    const grandchild = mustInsert(cs, ram, Rights.Read, child);
    const sibling = mustInsert(cs, ram, Rights.All, null);
    cs.revoke(root);
    expect(cs.lookup(root.cptr)).toBe(root);
    expect(cs.lookup(child.cptr)).toBe(SysErr.CapStale);
    expect(cs.lookup(grandchild.cptr)).toBe(SysErr.CapStale);
    expect(cs.lookup(sibling.cptr)).toBe(sibling);
    expect(root.children.size).toBe(0);
  });

  it("delete moves children up so a revoke further up still reaches them", () => {
    const cs = new CSpace(16);
    const ram = new RamObject(4096);
    const root = mustInsert(cs, ram, Rights.All, null);
    const mid = mustInsert(cs, ram, Rights.All, root);
    const leaf = mustInsert(cs, ram, Rights.All, mid);
    cs.delete(mid);
    expect(cs.lookup(leaf.cptr)).toBe(leaf);
    expect(leaf.parent).toBe(root);
    cs.revoke(root);
    expect(cs.lookup(leaf.cptr)).toBe(SysErr.CapStale);
  });

  it("revoking a copy leaves the capability it was copied from", () => {
    const cs = new CSpace(16);
    const ram = new RamObject(4096);
    const orig = mustInsert(cs, ram, Rights.All, null);
    const copy = mustInsert(cs, ram, Rights.All, orig);
    const copyOfCopy = mustInsert(cs, ram, Rights.All, copy);
    cs.revoke(copy);
    expect(cs.lookup(orig.cptr)).toBe(orig);
    expect(cs.lookup(copy.cptr)).toBe(copy);
    expect(cs.lookup(copyOfCopy.cptr)).toBe(SysErr.CapStale);
  });
});

// EPT through the real kernel (SDM Vol. 3C 29.3, 28.2.1 table 28-7, 31.3 INVEPT): the
// monitor builds 4-level tables in a frame it maps into the GuestPhysSpace, points the
// EPTP at them, and the guest's refused accesses exit with reason 48/49 and the
// qualification, guest-physical and guest-linear address fields.
import { describe, expect, it } from "vitest";
import { EptEntry, MapPerm, ObjType, SysErr } from "../../../../src/kernel/api.js";
import { enterVmxOperation, testMachine, writeRealModeGuest } from "../testing/machine.js";
import { ExitReason, F, IntrInfo, Proc, Proc2, VmxError } from "../vmcs-fields.js";
import { EptCap, SOFT_CAPS, VmxMsr, vmxMsrValue } from "./caps.js";
import { eptPointerFor, type VmcsState } from "./vmx-extension.js";

const CODE = 0x1000;
const TABLES = 0x10_0000; // above guest RAM; the EPT does not map it
const PML4 = TABLES, PDPT = TABLES + 0x1000, PD = TABLES + 0x2000, PT = TABLES + 0x3000;
const RWX = EptEntry.R | EptEntry.W | EptEntry.X;
const WB = EptEntry.MemTypeWb;

function eptGuest(code: number[]) {
  const m = testMachine({ ramBytes: 64 * 1024 });
  const { sys } = m;
  enterVmxOperation(m);
  const dcb = m.caps.dispatcher;
  expect(sys.ramRetype(m.caps.ram, ObjType.Frame, 0x4000)).toBe(SysErr.Ok);
  const tablesFrame = sys.ret.cap;
  expect(sys.gpspaceMap(m.caps.gpspace, tablesFrame, TABLES, MapPerm.RWX)).toBe(SysErr.Ok);
  expect(sys.frameMap(tablesFrame)).toBe(SysErr.Ok);
  const tv = new DataView(sys.ret.view!.buffer, sys.ret.view!.byteOffset, 0x4000);
  const set = (pa: number, lo: number, hi = 0) => { tv.setUint32(pa - TABLES, lo >>> 0, true); tv.setUint32(pa - TABLES + 4, hi, true); };
  set(PML4, PDPT | RWX); set(PDPT, PD | RWX); set(PD, PT | RWX);
  for (let i = 0; i < 16; i++) set(PT + i * 8, (i << 12) | RWX | WB); // guest RAM, identity

  expect(sys.ramRetype(m.caps.ram, ObjType.VmControl, 4096, "vmcs")).toBe(SysErr.Ok);
  const vmcs = sys.ret.cap;
  expect(sys.dispatcherSetupGuest(dcb, { vmcontrol: vmcs, gpspace: m.caps.gpspace, guestControl: m.caps.guestControl })).toBe(SysErr.Ok);
  expect(sys.vmptrld(dcb, vmcs)).toBe(SysErr.Ok);
  m.ram.set(code, CODE);
  const w = (enc: number, v: number) => expect(sys.vmwrite(dcb, enc, v)).toBe(SysErr.Ok);
  w(F.PinControls, SOFT_CAPS.pin.mustBe1);
  w(F.ProcControls, SOFT_CAPS.proc.mustBe1 | Proc.HltExiting | Proc.ActivateSecondary);
  w(F.Proc2Controls, Proc2.EnableEpt | Proc2.UnrestrictedGuest);
  w(F.EptPointer, eptPointerFor(PML4));
  w(F.ExitControls, SOFT_CAPS.exit.mustBe1);
  w(F.EntryControls, SOFT_CAPS.entry.mustBe1);
  writeRealModeGuest(w, CODE);
  w(F.GuestRsp, 0x800);
  const rd = (enc: number) => { expect(sys.vmread(dcb, enc)).toBe(SysErr.Ok); return sys.ret.value >>> 0; };
  let launched = false;
  const run = () => {
    expect(launched ? sys.vmresume(dcb) : sys.vmlaunch(dcb)).toBe(SysErr.Ok);
    launched = true;
    const failure = (m.ext.controls[0]!.ext as VmcsState).lastFailure;
    expect(failure, failure?.check.name).toBeUndefined();
    return { reason: rd(F.ExitReason), qual: rd(F.ExitQualification), gpa: rd(F.GuestPhysAddr), linear: rd(F.GuestLinearAddr), rip: rd(F.GuestRip) };
  };
  return { m, sys, dcb, set, w, rd, run, tv };
}

describe("EPT violations (SDM 28.2.1 table 28-7)", () => {
  it("a write to a read-only page: access W, entry permissions R, linear valid, translation access", () => {
    const g = eptGuest([0xa2, 0x10, 0x80, 0xf4]); // mov [0x8010], al; hlt
    g.set(PT + 8 * 8, 0x8000 | EptEntry.R | WB);
    const e = g.run();
    expect(e.reason).toBe(ExitReason.EptViolation);
    expect(e.qual).toBe(2 | (1 << 3) | (1 << 7) | (1 << 8));
    expect([e.gpa, e.linear, e.rip]).toEqual([0x8010, 0x8010, CODE]);
    expect(g.rd(F.GuestPhysAddr | 1)).toBe(0);
  });

  it("a read of a not-present page: access R, no permissions; through DS base", () => {
    const g = eptGuest([0xa0, 0x34, 0x00, 0xf4]); // mov al, [0x34]; hlt
    g.w(F.GuestDsBase, 0x3_0000); g.w(F.GuestDsSel, 0x3000);
    const e = g.run();
    expect([e.reason, e.qual, e.gpa, e.linear]).toEqual([ExitReason.EptViolation, 1 | (1 << 7) | (1 << 8), 0x3_0034, 0x3_0034]);
  });

  it("an instruction fetch from a page without X: access X, entry permissions RW", () => {
    const g = eptGuest([0xea, 0x00, 0x90, 0x00, 0x00]); // jmp 0000:9000
    g.set(PT + 9 * 8, 0x9000 | EptEntry.R | EptEntry.W | WB);
    const e = g.run();
    expect([e.reason, e.qual, e.gpa, e.rip]).toEqual([ExitReason.EptViolation, 4 | (3 << 3) | (1 << 7) | (1 << 8), 0x9000, 0x9000]);
  });

  it("a refused stack push during INT n reports the INT in the IDT-vectoring information", () => {
    const g = eptGuest([0xcd, 0x21]); // int 21h with SS:SP in a read-only page
    g.set(PT + 8 * 8, 0x8000 | EptEntry.R | WB);
    g.w(F.GuestRsp, 0x8100);
    const e = g.run();
    expect(e.reason).toBe(ExitReason.EptViolation);
    expect(e.gpa).toBe(0x80fe);
    const vect = g.rd(F.IdtVectoringInfo);
    expect(vect & IntrInfo.Valid).not.toBe(0);
    expect(vect & 0xff).toBe(0x21);
  });

  it("the access happens once the monitor grants it (no stale refusal is cached)", () => {
    const g = eptGuest([0xa2, 0x10, 0x80, 0xf4]);
    g.set(PT + 8 * 8, 0x8000 | EptEntry.R | WB);
    expect(g.run().reason).toBe(ExitReason.EptViolation);
    g.set(PT + 8 * 8, 0x8000 | RWX | WB);
    g.m.caps.guestRegs[0] = 0x5a;
    expect(g.run().reason).toBe(ExitReason.Hlt);
    expect(g.m.ram[0x8010]).toBe(0x5a);
  });
});

describe("EPT misconfiguration (SDM 29.3.3.1)", () => {
  it("a write-only entry exits with reason 49 and the guest-physical address", () => {
    const g = eptGuest([0xa0, 0x10, 0xa0, 0xf4]); // mov al, [0xa010]; hlt
    g.set(PT + 10 * 8, 0xa000 | EptEntry.W | WB);
    const e = g.run();
    expect([e.reason, e.gpa, e.qual]).toEqual([ExitReason.EptMisconfig, 0xa010, 0]);
  });

  it("a leaf with memory type 2 is a misconfiguration", () => {
    const g = eptGuest([0xa0, 0x10, 0xa0, 0xf4]);
    g.set(PT + 10 * 8, 0xa000 | RWX | (2 << 3));
    expect(g.run().reason).toBe(ExitReason.EptMisconfig);
  });
});

describe("EPTP entry checks and INVEPT", () => {
  it("an EPTP naming memory outside the bound space fails entry with VMfailValid 7", () => {
    const g = eptGuest([0xf4]);
    g.w(F.EptPointer, eptPointerFor(0x4000_0000));
    expect(g.sys.vmlaunch(g.dcb)).toBe(SysErr.VmFailValid);
    expect(g.sys.ret.vmInstructionError).toBe(VmxError.EntryInvalidControls);
  });

  it("IA32_VMX_EPT_VPID_CAP reports what the walker does: 4 levels, UC/WB, 2M/1G, execute-only, INVEPT types, A/D (bit 21)", () => {
    const v = vmxMsrValue(SOFT_CAPS, VmxMsr.EptVpidCap)!;
    for (const bit of [EptCap.WalkLength4, EptCap.Wb, EptCap.Uc, EptCap.Pages2M, EptCap.Pages1G, EptCap.ExecuteOnly, EptCap.Invept, EptCap.InveptSingle, EptCap.InveptAll, EptCap.AccessedDirty]) {
      expect(v & bit).toBe(bit);
    }
    expect(vmxMsrValue({ ...SOFT_CAPS, eptAccessedDirty: false }, VmxMsr.EptVpidCap)! & EptCap.AccessedDirty).toBe(0n);
  });

  it("EPTP bit 6 enables A/D (SDM 29.3.5): a guest write sets bit 8 in each entry and bit 9 in the leaf; without it nothing is set", () => {
    // mov [0x9000], al; hlt
    for (const ad of [false, true]) {
      const g = eptGuest([0xa2, 0x00, 0x90, 0xf4]);
      g.w(F.EptPointer, eptPointerFor(PML4) | (ad ? 0x40 : 0));
      expect(g.run().reason).toBe(ExitReason.Hlt);
      const lo = (pa: number) => g.tv.getUint32(pa - TABLES, true);
      const want = ad ? EptEntry.Accessed : 0;
      for (const pa of [PML4, PDPT, PD]) expect(lo(pa) & (EptEntry.Accessed | EptEntry.Dirty)).toBe(want);
      expect(lo(PT + 9 * 8) & (EptEntry.Accessed | EptEntry.Dirty)).toBe(ad ? EptEntry.Accessed | EptEntry.Dirty : 0);
      expect(lo(PT + 1 * 8) & EptEntry.Dirty).toBe(0); // the code page is only fetched
      expect(lo(PT + 1 * 8) & EptEntry.Accessed).toBe(want);
    }
  });

  it("INVEPT: unsupported type and bad EPTP fail with 28; cached translations last until single- or all-context INVEPT", () => {
    // mov al, [0x9000]; hlt  (five times)
    const g = eptGuest(Array.from({ length: 5 }, () => [0xa0, 0x00, 0x90, 0xf4]).flat());
    g.m.ram[0x9000] = 0x11; g.m.ram[0xb000] = 0x22;
    const step = () => { const e = g.run(); expect(e.reason).toBe(ExitReason.Hlt); g.w(F.GuestRip, e.rip + 1); return g.m.caps.guestRegs[0]! & 0xff; };
    expect(step()).toBe(0x11);
    g.set(PT + 9 * 8, 0xb000 | RWX | WB); // remap without INVEPT: the old translation may stay cached
    expect(step()).toBe(0x11);
    expect(g.sys.invept!(g.dcb, 3, 0, 0)).toBe(SysErr.VmFailValid);
    expect(g.sys.ret.vmInstructionError).toBe(VmxError.InvalidInveptOperand);
    expect(g.sys.invept!(g.dcb, 1, eptPointerFor(PML4) & ~7 | 3, 0)).toBe(SysErr.VmFailValid); // memory type 3
    expect(g.sys.invept!(g.dcb, 1, eptPointerFor(PML4 + 0x1000), 0)).toBe(SysErr.Ok); // another EPTP: not ours
    expect(step()).toBe(0x11);
    expect(g.sys.invept!(g.dcb, 1, eptPointerFor(PML4), 0)).toBe(SysErr.Ok);
    expect(step()).toBe(0x22);
    g.set(PT + 9 * 8, 0x9000 | RWX | WB);
    expect(g.sys.invept!(g.dcb, 2, 0, 0)).toBe(SysErr.Ok);
    expect(step()).toBe(0x11);
  });
});

describe("EPT violation during IRET (SDM 28.2.1 table 28-7 bit 12, 28.1)", () => {
  it.each([[8, 1], [0, 0]])("interruptibility %i before the IRET: qualification bit 12 = %i, blocking by NMI cleared", (before, bit) => {
    const g = eptGuest([0xcf]); // iret, with SS:SP in a not-present page
    g.set(PT + 8 * 8, 0);
    g.w(F.GuestRsp, 0x8100);
    g.w(F.GuestInterruptibility, before);
    const e = g.run();
    expect([e.reason, e.gpa, e.rip]).toEqual([ExitReason.EptViolation, 0x8100, CODE]);
    expect([(e.qual >>> 12) & 1, e.qual & 7]).toEqual([bit, 1]);
    expect(g.rd(F.GuestInterruptibility) & 8).toBe(0);
  });
});

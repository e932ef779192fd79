// Nested paging through the real kernel (APM Vol. 2 15.25): the monitor builds long-mode
// nested tables in a frame it maps into the GuestPhysSpace, names them in N_CR3, and the
// guest's refused accesses exit with #VMEXIT(NPF), the error code in EXITINFO1 and the
// guest-physical address in EXITINFO2.
import { describe, expect, it } from "vitest";
import { MapPerm, NptEntry, ObjType, SysErr } from "../../../../src/kernel/api.js";
import { B, F, SvmExit } from "../vmcb.js";
import { ORG, machine } from "../svm-machine.fixtures.js";

const TABLES = 0x10_0000; // above guest RAM; the nested tables do not map it
const PML4 = TABLES, PDPT = TABLES + 0x1000, PD = TABLES + 0x2000, PT = TABLES + 0x3000;
const U = NptEntry.P | NptEntry.RW | NptEntry.US;

function nptGuest(code: number[]) {
  const m = machine(code);
  const { sys, caps } = m;
  expect(sys.ramRetype(caps.ram, ObjType.Frame, 0x4000)).toBe(SysErr.Ok);
  const frame = sys.ret.cap;
  expect(sys.gpspaceMap(caps.gpspace, frame, TABLES, MapPerm.RWX)).toBe(SysErr.Ok);
  expect(sys.frameMap(frame)).toBe(SysErr.Ok);
  const tv = new DataView(sys.ret.view!.buffer, sys.ret.view!.byteOffset, 0x4000);
  const set = (pa: number, lo: number, hi = 0) => { tv.setUint32(pa - TABLES, lo >>> 0, true); tv.setUint32(pa - TABLES + 4, hi >>> 0, true); };
  set(PML4, PDPT | U); set(PDPT, PD | U); set(PD, PT | U);
  for (let i = 0; i < 16; i++) set(PT + i * 8, (i << 12) | U);
  const v = m.backend.vmcb;
  v.setBits(B.NP_ENABLE, 1);
  v.write64(F.N_CR3, PML4, 0);
  const run = () => {
    m.backend.run();
    return { code: v.read(F.EXITCODE), info1: v.read(F.EXITINFO1), info1Hi: v.readHi(F.EXITINFO1), gpa: v.read(F.EXITINFO2), gpaHi: v.readHi(F.EXITINFO2) };
  };
  return { m, v, set, run };
}

describe("#VMEXIT(NPF) (APM 15.25.6)", () => {
  it("a write to a read-only nested page: P, RW, US set; final-translation bit 32; EXITINFO2 = GPA", () => {
    const g = nptGuest([0xa2, 0x10, 0x80, 0xf4]); // mov [0x8010], al; hlt
    g.set(PT + 8 * 8, 0x8000 | NptEntry.P | NptEntry.US);
    const e = g.run();
    expect(e.code).toBe(SvmExit.NPF);
    expect([e.info1, e.info1Hi, e.gpa, e.gpaHi]).toEqual([0b00111, 1, 0x8010, 0]);
    expect(g.v.read(F.RIP)).toBe(ORG);
  });

  it("a read of a not-present page: P clear", () => {
    const g = nptGuest([0xa0, 0x10, 0x90, 0xf4]); // mov al, [0x9010]
    g.set(PT + 9 * 8, 0);
    const e = g.run();
    expect([e.code, e.info1, e.info1Hi, e.gpa]).toEqual([SvmExit.NPF, 0b00100, 1, 0x9010]);
  });

  it("a fetch from an NX page: ID set", () => {
    const g = nptGuest([0xea, 0x00, 0x90, 0x00, 0x00]); // jmp 0000:9000
    g.set(PT + 9 * 8, 0x9000 | U, NptEntry.NxHi);
    const e = g.run();
    expect([e.code, e.info1, e.gpa]).toEqual([SvmExit.NPF, 0b10101, 0x9000]);
  });

  it("a reserved bit: RSVD and P set", () => {
    const g = nptGuest([0xa0, 0x10, 0x90, 0xf4]);
    g.set(PT + 9 * 8, 0x9000 | U, 0x1);
    const e = g.run();
    expect([e.code, e.info1]).toEqual([SvmExit.NPF, 0b01101]);
  });

  it("TLB_CONTROL flushes cached nested translations; without it they may stay", () => {
    const g = nptGuest([0xa0, 0x00, 0x90, 0xf4, 0xa0, 0x00, 0x90, 0xf4, 0xa0, 0x00, 0x90, 0xf4]);
    g.m.ram[0x9000] = 0x11; g.m.ram[0xb000] = 0x22;
    const step = () => {
      const e = g.run();
      expect(e.code).toBe(SvmExit.HLT);
      g.v.write(F.RIP, g.v.read(F.RIP) + 1);
      return g.m.caps.guestRegs[0]! & 0xff;
    };
    g.v.write(F.INTERCEPT_MISC1, g.v.read(F.INTERCEPT_MISC1) | (1 << 24)); // HLT
    expect(step()).toBe(0x11);
    g.set(PT + 9 * 8, 0xb000 | U);
    expect(step()).toBe(0x11);
    g.v.write(F.TLB_CONTROL, 1);
    expect(step()).toBe(0x22);
  });

  it("N_CR3 naming memory outside the bound space is VMEXIT_INVALID", () => {
    const g = nptGuest([0xf4]);
    g.v.write64(F.N_CR3, 0x4000_0000, 0);
    g.m.backend.run();
    expect(g.v.exitCode()).toBe(SvmExit.INVALID);
  });
});

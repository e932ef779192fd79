// Nested paging in the SVM backend (`npt: true`) end to end: identity nested tables for
// guest RAM built through the syscalls, and a guest's accesses to an MMIO device outside RAM
// exiting as nested page faults (APM 15.25.6) that the MemAssist performs on the MMIO bus,
// each returned as an `mmio` exit with `count`.
import { describe, expect, it } from "vitest";
import {
  GUEST_CONTROL_BYTES, MapPerm, NestedFormat, ObjType, SysErr, identityTablesBytes, writeIdentityTables, type CPtr,
} from "../../../../src/kernel/api.js";
import { bootKernel, softEngine } from "../../../../src/kernel/index.js";
import { StateParts, type MachineCaps } from "../../../../src/monitor/api.js";
import {
  MMIO_DEV as DEV, RecordingMmioDevice as RecordingDevice, REP_MOVSB_TO_DEVICE, exitText as kind, runToExit,
} from "../../../../src/monitor/assist/mem-assist.fixtures.js";
import { MmioBus, PioBus } from "../../../../src/monitor/bus.js";
import { FrameGuestMemory } from "../../../../src/monitor/guest-memory.js";
import { realModeState } from "../../../../src/x86/state.js";
import { SvmKernelExtension } from "../kernel/svm-extension.js";
import { EventInj, F, Misc2, SvmExit } from "../vmcb.js";
import { SvmBackend } from "./svm-backend.js";

const RAM = 64 * 1024, CODE = 0x1000;

function ok(err: SysErr): void { expect(err).toBe(SysErr.Ok); }

function boot(code: number[], npt: boolean) {
  const k = bootKernel({ engine: softEngine(), ramBytes: RAM + 32 * 4096, timeslice: 1000 });
  const sys = k.syscalls;
  ok(k.extensions.install(new SvmKernelExtension()));
  ok(sys.ramRetype(k.ram, ObjType.Frame, RAM)); const ramFrame: CPtr = sys.ret.cap;
  ok(sys.ramRetype(k.ram, ObjType.GuestPhysSpace, 4096)); const gpspace = sys.ret.cap;
  ok(sys.gpspaceMap(gpspace, ramFrame, 0, MapPerm.RWX));
  ok(sys.ramRetype(k.ram, ObjType.Frame, 4096)); const guestControl = sys.ret.cap;
  ok(sys.frameMap(guestControl)); const gc = sys.ret.view!;
  ok(sys.ramRetype(k.ram, ObjType.Dispatcher, 4096)); const dispatcher = sys.ret.cap;
  ok(sys.frameMap(ramFrame)); const ram = sys.ret.view!;
  ram.set(code, CODE);
  const caps: MachineCaps = { ram: k.ram, gpspace, dispatcher, guestControl, guestRegs: new Uint32Array(gc.buffer, gc.byteOffset, GUEST_CONTROL_BYTES / 4) };
  const mmio = new MmioBus();
  const dev = new RecordingDevice();
  expect(mmio.insert({ space: "mmio", base: DEV, length: 0x1000 }, dev)).toBeUndefined();
  const be = new SvmBackend(sys, caps, new PioBus(), new FrameGuestMemory(ram), mmio, { npt });
  const s = realModeState(0, CODE);
  s.esp = 0x8000;
  be.setState(s);
  return { be, dev, ram, sys, caps, k };
}


describe("SvmBackend with npt: true", () => {
  it("an MMIO write and read reach the device through nested page faults and the MemAssist; each is an mmio exit with its count", () => {
    const { be, dev } = boot([
      0xb8, 0x00, 0x20, 0x8e, 0xd8, // mov ax, 0x2000; mov ds, ax
      0xc6, 0x06, 0x10, 0x00, 0x5a, // mov byte [0x10], 0x5a
      0xa1, 0x20, 0x00,             // mov ax, [0x20]
      0x89, 0xc3,                   // mov bx, ax
      0xf4,                         // hlt
    ], true);
    const r = runToExit(be);
    expect(kind(r.exit)).toBe("hlt");
    expect(r.assisted).toEqual(["w@20010/1", "r@20020/1"]);
    expect(dev.log).toEqual(["w1@10=5a", "r2@20"]);
    expect(be.getState().ebx & 0xffff).toBe(0x5678);
    // N_CR3 names the backend's tables above RAM.
    expect(be.vmcb.read(F.N_CR3)).toBe(0x20_0000);
  });

  it("REP MOVSB from RAM into the device is one assisted exit with count 3; every assisted access returns to the run loop", () => {
    const { be, dev, ram } = boot([...REP_MOVSB_TO_DEVICE], true);
    ram.set([1, 2, 3], 0x3000);
    expect(be.run()).toMatchObject({ kind: "mmio", gpa: 0x2_0040, write: true, count: 3 });
    expect(dev.log).toEqual(["w1@40=1", "w1@41=2", "w1@42=3"]);
    for (let i = 0; i < 5; i++) expect(be.run()).toMatchObject({ kind: "mmio", gpa: 0x2_0000, write: false, count: 1 });
    expect(dev.log.length).toBe(8);
  });

  it("an exception the MemAssist raises is an mmio exit with count 0, and the exception is delivered at the next run", () => {
    // mov ax, 0x2000; mov ds, ax; mov dx, 0xffff; xor ax, ax; div word [0x20]  (DX:AX / 0x5678 overflows: #DE)
    const { be, dev, ram } = boot([0xb8, 0x00, 0x20, 0x8e, 0xd8, 0xba, 0xff, 0xff, 0x31, 0xc0, 0xf7, 0x36, 0x20, 0x00, 0xf4], true);
    ram.set([0x00, 0x30, 0x00, 0x00], 0); // IVT[0] = 0000:3000
    ram.set([0xf4], 0x3000); // hlt
    expect(be.run()).toMatchObject({ kind: "mmio", gpa: 0x2_0020, write: false, count: 0 });
    expect(dev.log).toEqual(["r2@20"]);
    expect(kind(be.run())).toBe("hlt");
    expect(be.getState().eip).toBe(0x3000); // in the #DE handler (the HLT completes at the next run)
    // The #DE frame's return address is the DIV (a fault).
    expect(ram[0x7ffa]! | (ram[0x7ffb]! << 8)).toBe(CODE + 10);
  });

  it("with npt: false N_CR3 stays the GuestPhysSpace's and RAM code runs", () => {
    const { be } = boot([0xb8, 0x34, 0x12, 0xf4], false);
    expect(kind(be.run())).toBe("hlt");
    expect(be.getState().eax & 0xffff).toBe(0x1234);
    expect(be.vmcb.read(F.N_CR3)).not.toBe(0x20_0000);
  });
});

describe("nested page faults during event delivery (APM 15.7.2, 15.25.6)", () => {
  // IVT[0x40] -> 0000:3000: out 0x97, al; iret
  const handler = (ram: Uint8Array) => { ram.set([0x00, 0x30, 0, 0], 0x40 * 4); ram.set([0xe6, 0x97, 0xcf], 0x3000); };

  it("the stack in MMIO: INT 40h's pushes fault on the device; the named delivery error, nothing reaches the device", () => {
    // mov ax, 0x2000; mov ss, ax; mov sp, 0x100; int 0x40
    const { be, dev, ram } = boot([0xb8, 0x00, 0x20, 0x8e, 0xd0, 0xbc, 0x00, 0x01, 0xcd, 0x40, 0xf4], true);
    handler(ram);
    const e = be.run();
    expect(e.kind).toBe("unhandled");
    if (e.kind !== "unhandled") return;
    expect([e.code, e.internal]).toEqual([SvmExit.NPF, "delivery-event"]);
    expect(e.message).toContain("vector 64");
    expect(e.message).toContain("KVM_INTERNAL_ERROR_DELIVERY_EV");
    expect((be.vmcb.read(F.EXITINTINFO) & (EventInj.V | EventInj.VECTOR_MASK)) >>> 0).toBe((EventInj.V | 0x40) >>> 0);
    expect(dev.log).toEqual([]);
  });

  it("the IVT in MMIO: an injected interrupt's vector read faults on the device: the named delivery error", () => {
    const { be, dev } = boot([0xf4], true);
    const s = be.getState();
    s.idtr.base = DEV;
    be.setState(s);
    be.inject({ type: 0, vector: 0x20 });
    const e = be.run();
    expect(e.kind === "unhandled" ? e.internal : e.kind).toBe("delivery-event");
    expect(dev.log).toEqual([]);
  });

  it("once the IVT is back in RAM the event is re-injected, and the next unhandled exit carries no internal reason", () => {
    const { be, ram } = boot([0xf4], true);
    ram.set([0x00, 0x30, 0x00, 0x00], 0x20 * 4); // IVT[20h] = 0000:3000
    ram.set([0x0f, 0x01, 0xd9], 0x3000); // vmmcall
    be.vmcb.write(F.INTERCEPT_MISC2, be.vmcb.read(F.INTERCEPT_MISC2) | Misc2.VMMCALL);
    const s = be.getState();
    s.idtr.base = DEV;
    be.setState(s);
    be.inject({ type: 0, vector: 0x20 });
    const first = be.run();
    expect(first.kind === "unhandled" && first.internal).toBe("delivery-event");
    s.idtr.base = 0;
    be.setState(s, StateParts.Tables);
    const u = be.run(); // the same reused exit object, now for VMMCALL in the handler
    expect(u.kind).toBe("unhandled");
    if (u.kind !== "unhandled") return;
    expect([u.code, u.internal]).toEqual([SvmExit.VMMCALL, undefined]);
    expect(be.getState().eip).toBe(0x3000);
  });

  it("a RAM page missing from the monitor's nested tables: unhandled, and the event is re-injected once the tables are fixed", () => {
    // int 0x40; hlt   (stack at 0000:8000: the pushes go to page 7)
    const { be, ram, sys, caps } = boot([0xcd, 0x40, 0xf4], true);
    handler(ram);
    const TABLES_GPA = 0x40_0000;
    ok(sys.ramRetype(caps.ram, ObjType.Frame, identityTablesBytes(RAM)));
    const frame = sys.ret.cap;
    ok(sys.gpspaceMap(caps.gpspace, frame, TABLES_GPA, MapPerm.R | MapPerm.W));
    ok(sys.frameMap(frame));
    const tables = sys.ret.view!;
    be.vmcb.write(F.N_CR3, writeIdentityTables(NestedFormat.Npt, tables, TABLES_GPA, RAM));
    const pte7 = 3 * 0x1000 + 7 * 8; // PML4, PDPT, PD, then the PT of the 4 KiB tail
    const saved = tables[pte7]!;
    tables[pte7] = 0; // page 7 not present
    const e = be.run();
    expect(kind(e)).toMatch(/^unhandled: nested page fault at guest-physical 0x7ff/);
    expect((be.vmcb.read(F.EXITINTINFO) & (EventInj.V | EventInj.VECTOR_MASK)) >>> 0).toBe((EventInj.V | 0x40) >>> 0);
    expect(be.vmcb.read(F.RIP)).toBe(CODE); // the INT did not complete
    tables[pte7] = saved;
    be.vmcb.write(F.TLB_CONTROL, 1); // the walker cached nothing for page 7, but a VMM flushes after editing
    const io = be.run();
    expect(kind(io)).toBe("io");
    if (io.kind === "io") expect(io.port).toBe(0x97);
    // The handler's IRET returns after the INT, once: the event was delivered exactly once.
    expect(kind(be.run())).toBe("hlt");
    expect(be.getState().eip).toBe(CODE + 2); // at the HLT after the 2-byte INT
  });
});

// EPT in the VMX backend (`ept: true`) end to end: identity EPT tables for guest RAM built
// through the syscalls, and a guest's accesses to an MMIO device outside RAM exiting as EPT
// violations (SDM 28.2.1) that the MemAssist performs against the MMIO bus.
import { describe, expect, it } from "vitest";
import {
  MMIO_DEV as DEV, RecordingMmioDevice as RecordingDevice, REP_MOVSB_TO_DEVICE, exitText as kind, runToExit,
} from "../../../../src/monitor/assist/mem-assist.fixtures.js";
import { MmioBus, PioBus } from "../../../../src/monitor/bus.js";
import { FrameGuestMemory } from "../../../../src/monitor/guest-memory.js";
import { realModeState } from "../../../../src/x86/state.js";
import { VmxBackend } from "./vmx-backend.js";
import { testMachine } from "../testing/machine.js";
import { SysErr } from "../../../../src/kernel/api.js";
import { F } from "../vmcs-fields.js";

const CODE = 0x1000;

function boot(code: number[], ept: boolean) {
  const m = testMachine({ ramBytes: 64 * 1024 });
  const mmio = new MmioBus();
  const dev = new RecordingDevice();
  expect(mmio.insert({ space: "mmio", base: DEV, length: 0x1000 }, dev)).toBeUndefined();
  m.ram.set(code, CODE);
  const be = new VmxBackend(m.sys, m.caps, new PioBus(), new FrameGuestMemory(m.ram), mmio, { ept });
  const s = realModeState(0, CODE);
  s.esp = 0x8000;
  be.setState(s);
  return { m, be, dev };
}

/** Clear the backend's EPT leaf entry for `gpa` in its identity tables (a 4 KiB page: RAM < 2 MiB). */
function unmapPage(be: VmxBackend, gpa: number): void {
  const t = be as unknown as { eptView: Uint8Array; eptAt: number; eptp: number };
  const dv = new DataView(t.eptView.buffer, t.eptView.byteOffset, t.eptView.byteLength);
  let table = (t.eptp & ~0xfff) >>> 0;
  for (const shift of [39, 30, 21]) table = dv.getUint32(table - t.eptAt + (Math.floor(gpa / 2 ** shift) & 511) * 8, true) & ~0xfff;
  dv.setUint32(table - t.eptAt + ((gpa >>> 12) & 511) * 8, 0, true);
}

describe("VmxBackend with ept: true", () => {
  const guest = [
    0xb8, 0x00, 0x20,             // mov ax, 0x2000
    0x8e, 0xd8,                   // mov ds, ax
    0xc6, 0x06, 0x10, 0x00, 0x5a, // mov byte [0x10], 0x5a
    0xa1, 0x20, 0x00,             // mov ax, [0x20]
    0x89, 0xc3,                   // mov bx, ax
    0xa0, 0x00, 0x10,             // mov al, [0x1000]: outside RAM and outside the device
    0xf4,                         // hlt
  ];

  it("an MMIO write and read reach the device through EPT violations and the MemAssist; each is an mmio exit with its count", () => {
    const { m, be, dev } = boot(guest, true);
    const r = runToExit(be);
    expect(kind(r.exit)).toBe("hlt");
    expect(r.assisted).toEqual(["w@20010/1", "r@20020/1", "r@21000/1"]);
    expect(dev.log).toEqual(["w1@10=5a", "r2@20"]);
    const s = be.getState();
    expect(s.ebx & 0xffff).toBe(0x5678);
    expect(s.eax & 0xff).toBe(0xff); // unclaimed MMIO reads all-ones
    // The EPTP names the backend's tables above RAM, not the GuestPhysSpace itself.
    expect(m.sys.vmread(m.caps.dispatcher, F.EptPointer)).toBe(SysErr.Ok);
    expect((m.sys.ret.value & ~0xfff) >>> 0).toBe(0x20_0000);
    expect(m.sys.ret.value & 0x3f).toBe(0x1e);
  });

  it("REP MOVSB from RAM into the device is one assisted exit with count 3; every assisted access returns to the run loop", () => {
    const { be, m, dev } = boot([...REP_MOVSB_TO_DEVICE], true);
    m.ram.set([1, 2, 3], 0x3000);
    const e = be.run();
    expect([e.kind, e.kind === "mmio" && e.count, e.kind === "mmio" && e.write]).toEqual(["mmio", 3, true]);
    expect(dev.log).toEqual(["w1@40=1", "w1@41=2", "w1@42=3"]);
    for (let i = 0; i < 5; i++) expect(be.run()).toMatchObject({ kind: "mmio", gpa: 0x2_0000, write: false, count: 1 });
    expect(dev.log.length).toBe(8);
  });

  it("an EPT violation on MMIO during event delivery is the named internal error delivery-event, as KVM's DELIVERY_EV", () => {
    // The real-mode IVT (IDTR base) is inside the device: INT 21h reads its vector from MMIO.
    const { be, dev } = boot([0xcd, 0x21, 0xf4], true);
    const s = be.getState();
    s.idtr.base = DEV;
    be.setState(s);
    const e = be.run();
    expect(e.kind).toBe("unhandled");
    if (e.kind !== "unhandled") return;
    expect([e.code, e.internal]).toEqual([48, "delivery-event"]);
    expect(e.message).toContain("vector 0x21 (software interrupt)");
    expect(e.message).toContain("KVM_INTERNAL_ERROR_DELIVERY_EV");
    expect(dev.log).toEqual([]);
    // Any other unhandled exit carries no internal reason (the exit object is reused).
    const { be: be2 } = boot([0x0f, 0x01, 0xc1], true); // VMCALL
    const u = be2.run();
    expect(u.kind === "unhandled" && u.internal).toBeUndefined();
  });

  it("an EPT violation on RAM during INT n: the backend restores its tables, re-enters and re-injects the INT once", () => {
    const { m, be } = boot([0xcd, 0x21, 0xf4], true);
    m.ram.set([0x00, 0x30, 0x00, 0x00], 0x21 * 4); // IVT[21h] = 0000:3000
    m.ram.set([0xbb, 0x77, 0x00, 0xf4], 0x3000); // mov bx, 0x77; hlt
    const s = be.getState();
    s.esp = 0x7100;
    be.setState(s);
    unmapPage(be, 0x7000);
    const r = runToExit(be);
    expect(kind(r.exit)).toBe("hlt");
    expect(r.assisted).toEqual([]);
    const after = be.getState();
    expect([after.ebx & 0xffff, after.esp & 0xffff, after.eip]).toEqual([0x77, 0x70fa, 0x3003]); // at the HLT (completed at the next run)
    // One frame, whose return address is past the INT (re-injected with its length).
    expect([m.ram[0x70fa]! | (m.ram[0x70fb]! << 8), m.ram[0x70fc]! | (m.ram[0x70fd]! << 8)]).toEqual([CODE + 2, 0]);
  });

  it("with ept: false the EPTP names the GuestPhysSpace and the same guest's RAM code runs", () => {
    const { be } = boot([0xb8, 0x34, 0x12, 0xf4], false);
    expect(kind(be.run())).toBe("hlt");
    expect(be.getState().eax & 0xffff).toBe(0x1234);
  });
});

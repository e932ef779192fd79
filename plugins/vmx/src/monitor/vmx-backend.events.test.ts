// The backend's event paths: IDT-vectoring information re-injected at the next entry
// (SDM 27.2.4, as vmkitmon and KVM do it) unless the monitor queued an event itself, and
// NMI/INIT posted through the guestControl frame (GuestControlWord.PendingEvents).
import { describe, expect, it } from "vitest";
import { SysErr } from "../../../../src/kernel/api.js";
import { EventType } from "../../../../src/x86/types.js";
import { StateParts } from "../../../../src/monitor/api.js";
import { realModeState } from "../../../../src/x86/state.js";
import { VmxBackend } from "./vmx-backend.js";
import { testMachine } from "../testing/machine.js";
import { F, Pin } from "../vmcs-fields.js";
import { SOFT_CAPS } from "../kernel/caps.js";

const CODE = 0x1000;

/** A backend over the whole guestControl area (16 words), the guest at 0000:1000, every IVT entry to a HLT at 0000:3000 + 4v. */
function boot(code: number[]) {
  const m = testMachine();
  const gc = m.caps.guestRegs;
  const caps = { ...m.caps, guestRegs: new Uint32Array(gc.buffer, gc.byteOffset, 16) };
  for (let v = 0; v < 256; v++) { m.ram[v * 4] = (0x3000 + v * 4) & 0xff; m.ram[v * 4 + 1] = (0x3000 + v * 4) >> 8; m.ram[0x3000 + v * 4] = 0xf4; }
  m.ram.set(code, CODE);
  // EPT off: these tests are about events, not the EPT tables the backend would build.
  const be = new VmxBackend(m.sys, caps, undefined, undefined, undefined, { ept: false });
  const s = realModeState(0, CODE);
  s.esp = 0x8000;
  be.setState(s);
  const vmwrite = (enc: number, v: number) => expect(m.sys.vmwrite(m.caps.dispatcher, enc, v)).toBe(SysErr.Ok);
  return { m, be, vmwrite };
}

describe("VmxBackend events", () => {
  it("re-injects the INT whose delivery exited, with its length, once the monitor lets the run go on", () => {
    const { m, be, vmwrite } = boot([0xcd, 0x80]); // int 80h
    vmwrite(F.ExceptionBitmap, 1 << 13);
    const st = be.getState(StateParts.Tables);
    st.idtr.limit = 0x3f; // vector 80h beyond the IVT limit: #GP while delivering it
    be.setState(st, StateParts.Tables);
    const e = be.run();
    expect([e.kind, e.kind === "exception" ? e.vector : -1]).toEqual(["exception", 13]);
    // The monitor repairs the IVT limit and stops intercepting #GP, queuing nothing.
    const t = be.getState(StateParts.Tables);
    t.idtr.limit = 0x3ff;
    be.setState(t, StateParts.Tables);
    vmwrite(F.ExceptionBitmap, 0);
    expect(be.run().kind).toBe("hlt");
    expect(be.getState(StateParts.Basic).eip).toBe(0x3000 + 0x80 * 4);
    // The INT's return address on the stack: the instruction after it.
    expect(m.ram[0x8000 - 6]! | (m.ram[0x8000 - 5]! << 8)).toBe(CODE + 2);
  });

  it("an event the monitor queues replaces the re-injection", () => {
    const { be, vmwrite } = boot([0xcd, 0x80]);
    vmwrite(F.ExceptionBitmap, 1 << 13);
    const st = be.getState(StateParts.Tables);
    st.idtr.limit = 0x3f;
    be.setState(st, StateParts.Tables);
    expect(be.run().kind).toBe("exception");
    const t = be.getState(StateParts.Tables);
    t.idtr.limit = 0x3ff;
    be.setState(t, StateParts.Tables);
    vmwrite(F.ExceptionBitmap, 0);
    be.inject({ type: EventType.ExtInt, vector: 0x40 });
    const s = be.getState(StateParts.Basic);
    s.eflags |= 0x200;
    be.setState(s, StateParts.Basic);
    expect(be.run().kind).toBe("hlt");
    expect(be.getState(StateParts.Basic).eip).toBe(0x3000 + 0x40 * 4);
  });

  it("posts an NMI (delivered through the IVT, or an exit under NMI exiting) and an INIT", () => {
    const a = boot([0x90, 0xf4]);
    a.be.postEvent("nmi");
    expect(a.be.run().kind).toBe("hlt");
    expect(a.be.getState(StateParts.Basic).eip).toBe(0x3000 + 8);
    const b = boot([0x90, 0xf4]);
    b.vmwrite(F.PinControls, SOFT_CAPS.pin.mustBe1 | Pin.NmiExiting);
    b.be.postEvent("nmi");
    const e = b.be.run();
    expect([e.kind, e.kind === "exception" ? e.vector : -1]).toEqual(["exception", 2]);
    const c = boot([0x90, 0xf4]);
    c.be.postEvent("init");
    const i = c.be.run();
    expect([i.kind, i.kind === "unhandled" ? i.code : -1]).toEqual(["unhandled", 3]);
  });
});

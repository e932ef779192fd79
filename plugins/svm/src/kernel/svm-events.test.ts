// Events and time through the real kernel (APM 15.5, 15.9, 15.20): NMIs posted by the monitor
// and injected through EVENTINJ, NMI blocking until IRET kept across VMRUNs, TSC_OFFSET,
// and the CPL check of the SVM instructions before their intercept.
import { describe, expect, it } from "vitest";
import { GuestFrameRole, ObjType, PendingEvent, SysErr } from "../../../../src/kernel/api.js";
import { StateParts } from "../../../../src/monitor/api.js";
import { EventType } from "../../../../src/x86/types.js";
import { F, Misc1, Misc2, SvmExit } from "../vmcb.js";
import { ORG, expectKind, machine, type Machine } from "../svm-machine.fixtures.js";

const HANDLER = 0x7e00;
/** IVT[2] → 0000:7E00: `out 0x97, al; iret`; a stack at 0000:7000. */
function nmiHandler(m: Machine): void {
  m.ram.set([HANDLER & 0xff, HANDLER >>> 8, 0, 0], 2 * 4);
  m.ram.set([0xe6, 0x97, 0xcf], HANDLER);
  const s = m.backend.getState(StateParts.Gprs);
  s.esp = 0x7000;
  m.backend.setState(s, StateParts.Gprs);
}
const pushedIp = (m: Machine) => { const sp = m.backend.vmcb.read(F.RSP); return m.ram[sp]! | (m.ram[sp + 1]! << 8); };

describe("NMI (APM 15.9, 15.20; SDM 6.7.1 blocking)", () => {
  it("a posted NMI without the intercept is delivered; a second one waits for the handler's IRET", () => {
    const m = machine([0xe6, 0x98, 0xf4]); // out 0x98, al; hlt
    nmiHandler(m);
    m.backend.post(PendingEvent.Nmi);
    expect(expectKind(m.backend.run(), "io").port).toBe(0x97);
    expect(pushedIp(m)).toBe(ORG);
    // Inside the handler NMIs are blocked (kept by the kernel across VMRUNs): the next one
    // is taken only after the IRET, so it interrupts ORG again, not the handler.
    m.backend.post(PendingEvent.Nmi);
    expect(expectKind(m.backend.run(), "io").port).toBe(0x97);
    expect(pushedIp(m)).toBe(ORG);
    expect(m.caps.guestRegs[11]).toBe(0);
    expect(expectKind(m.backend.run(), "io").port).toBe(0x98);
  });

  it("an NMI injected through EVENTINJ runs its handler; the IRET intercept tells the VMM blocking ends", () => {
    const m = machine([0xf4]);
    nmiHandler(m);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.IRET);
    m.backend.inject({ type: EventType.Nmi, vector: 2 });
    expect(expectKind(m.backend.run(), "io").port).toBe(0x97);
    expect(v.read(F.EVENTINJ)).toBe(0);
    // A posted NMI now stays pending (blocked) until the IRET, which exits first.
    m.backend.post(PendingEvent.Nmi);
    const e = expectKind(m.backend.run(), "unhandled");
    expect(e.code).toBe(SvmExit.IRET);
    expect(v.read(F.RIP)).toBe(HANDLER + 2);
    expect(m.caps.guestRegs[11]).toBe(PendingEvent.Nmi);
  });

  it("an intercepted NMI exits 61h before the next instruction and is consumed", () => {
    const m = machine([0xe6, 0x98]);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.NMI);
    m.backend.post(PendingEvent.Nmi);
    expect(expectKind(m.backend.run(), "unhandled").code).toBe(SvmExit.NMI);
    expect(v.read(F.RIP)).toBe(ORG);
    expect(expectKind(m.backend.run(), "io").port).toBe(0x98);
  });

  it("an INIT without its intercept becomes #SX, error code 1 (VM_CR.R_INIT, APM 15.21.8): exit 5Eh when intercepted", () => {
    const m = machine([0xe6, 0x98]);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_EXCEPTIONS, 1 << 30);
    m.backend.post(PendingEvent.Init);
    const e = expectKind(m.backend.run(), "exception");
    expect([e.vector, v.read(F.EXITCODE), v.read(F.EXITINFO1), v.read(F.RIP)]).toEqual([30, SvmExit.EXCP_BASE + 30, 1, ORG]);
    expect(m.caps.guestRegs[11]).toBe(0); // consumed
    expect(expectKind(m.backend.run(), "io").port).toBe(0x98);
  });

  it("an INIT without either intercept is delivered to the guest as #SX through IVT[30]", () => {
    const m = machine([0xe6, 0x98]);
    m.ram.set([HANDLER & 0xff, HANDLER >>> 8, 0, 0], 30 * 4);
    m.ram.set([0xe6, 0x9e, 0xcf], HANDLER); // out 0x9e, al; iret
    const s = m.backend.getState(StateParts.Gprs);
    s.esp = 0x7000;
    m.backend.setState(s, StateParts.Gprs);
    m.backend.post(PendingEvent.Init);
    expect(expectKind(m.backend.run(), "io").port).toBe(0x9e);
    expect(pushedIp(m)).toBe(ORG); // real mode: no error code on the stack
    expect(m.caps.guestRegs[11]).toBe(0);
    expect(expectKind(m.backend.run(), "io").port).toBe(0x98);
  });

  it("an INIT with its intercept exits 63h even when #SX is intercepted too", () => {
    const m = machine([0xe6, 0x98]);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.INIT);
    v.write(F.INTERCEPT_EXCEPTIONS, 1 << 30);
    m.backend.post(PendingEvent.Init);
    expect(expectKind(m.backend.run(), "unhandled").code).toBe(SvmExit.INIT);
    expect(m.caps.guestRegs[11]).toBe(0);
  });
});

describe("SMI (APM 15.13.2, 15.17)", () => {
  it("with the SMI intercept a posted SMI exits 62h before the next instruction and is consumed", () => {
    const m = machine([0xe6, 0x98]);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.SMI);
    m.backend.post(PendingEvent.Smi);
    expect(expectKind(m.backend.run(), "unhandled").code).toBe(SvmExit.SMI);
    expect([v.read(F.RIP), v.read(F.NRIP)]).toEqual([ORG, 0]);
    expect(m.caps.guestRegs[11]).toBe(0);
    expect(expectKind(m.backend.run(), "io").port).toBe(0x98);
  });

  it("an SMI is held pending while GIF = 0 (between #VMEXIT and VMRUN) and taken at the next VMRUN", () => {
    const m = machine([0xe6, 0x98, 0xe6, 0x99]);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.SMI);
    expect(expectKind(m.backend.run(), "io").port).toBe(0x98);
    m.backend.post(PendingEvent.Smi);
    expect(m.caps.guestRegs[11]).toBe(PendingEvent.Smi); // nothing takes it while GIF = 0
    expect(expectKind(m.backend.run(), "unhandled").code).toBe(SvmExit.SMI);
    expect(v.read(F.RIP)).toBe(ORG + 2);
  });

  it("without the intercept the SMI goes to the host's SMM (not modelled): consumed, the guest sees nothing", () => {
    const m = machine([0xe6, 0x98]);
    m.backend.post(PendingEvent.Smi);
    const before = m.backend.getState(StateParts.All);
    const esp = before.esp;
    expect(expectKind(m.backend.run(), "io").port).toBe(0x98);
    expect(m.caps.guestRegs[11]).toBe(0);
    expect(m.backend.vmcb.read(F.RSP)).toBe(esp); // nothing was pushed
  });

  it("an SMI is taken before a posted INIT and NMI (external interventions first)", () => {
    const m = machine([0xe6, 0x98]);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.SMI | Misc1.INIT | Misc1.NMI);
    m.backend.post(PendingEvent.Nmi); m.backend.post(PendingEvent.Init); m.backend.post(PendingEvent.Smi);
    expect(expectKind(m.backend.run(), "unhandled").code).toBe(SvmExit.SMI);
    expect(expectKind(m.backend.run(), "unhandled").code).toBe(SvmExit.INIT);
    expect(expectKind(m.backend.run(), "unhandled").code).toBe(SvmExit.NMI);
    expect(m.caps.guestRegs[11]).toBe(0);
  });
});

describe("EVENTINJ types (APM 15.20)", () => {
  it("a software interrupt (TYPE 4) pushes RIP as the return address; an exception with EV runs its handler", () => {
    const m = machine([0xf4]);
    m.ram.set([0x00, 0x7e, 0, 0], 0x40 * 4);
    m.ram.set([0xe6, 0x97], HANDLER);
    const s = m.backend.getState(StateParts.Gprs);
    s.esp = 0x7000;
    m.backend.setState(s, StateParts.Gprs);
    m.backend.inject({ type: EventType.SoftwareInt, vector: 0x40 });
    expect(expectKind(m.backend.run(), "io").port).toBe(0x97);
    expect(pushedIp(m)).toBe(ORG);
  });
});

describe("TSC_OFFSET (APM 15.5)", () => {
  /** rdtsc; hlt — the guest TSC in EDX:EAX at the HLT exit. */
  function tscAfter(lo: number, hi: number): number {
    const m = machine([0x0f, 0x31, 0xf4]);
    m.backend.vmcb.write64(F.TSC_OFFSET, lo, hi);
    expectKind(m.backend.run(), "hlt");
    const g = m.backend.getState(StateParts.Gprs);
    return g.edx * 2 ** 32 + g.eax;
  }

  it("RDTSC reads TSC + TSC_OFFSET, a signed 64-bit field", () => {
    const base = tscAfter(0, 0);
    expect(tscAfter(0, 5)).toBe(base + 5 * 2 ** 32);
    expect(tscAfter(1_000_000, 0)).toBe(base + 1_000_000);
    const m = machine([0x0f, 0x31, 0xf4]);
    m.backend.vmcb.write64(F.TSC_OFFSET, 0xffff_f000, 0xffff_ffff); // -4096
    expectKind(m.backend.run(), "hlt");
    expect(m.backend.getState(StateParts.Gprs).eax).toBe((base - 4096) >>> 0);
  });

  it("an unintercepted WRMSR IA32_TSC moves the TSC the guest sees at later VMRUNs", () => {
    // wrmsr (ECX=10h, EDX:EAX = 7:0); hlt; rdtsc; hlt
    const m = machine([0x66, 0xb9, 0x10, 0, 0, 0, 0x66, 0xba, 7, 0, 0, 0, 0x66, 0x31, 0xc0, 0x0f, 0x30, 0xf4, 0x0f, 0x31, 0xf4]);
    const { sys } = m, v = m.backend.vmcb;
    expect(sys.ramRetype(m.caps.ram, ObjType.Frame, 8192)).toBe(SysErr.Ok);
    const cap = sys.ret.cap;
    expect(sys.dispatcherBindFrame(m.caps.dispatcher, GuestFrameRole.SvmMsrpm, cap)).toBe(SysErr.Ok);
    expect(sys.capIdentify(cap)).toBe(SysErr.Ok);
    v.write(F.MSRPM_BASE_PA, sys.ret.value >>> 0);
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.MSR_PROT);
    v.write64(F.TSC_OFFSET, 100, 0);
    expectKind(m.backend.run(), "hlt");
    expectKind(m.backend.run(), "hlt");
    const g = m.backend.getState(StateParts.Gprs);
    expect(g.edx).toBe(7);
    expect(g.eax).toBeLessThan(10); // a few instructions after the write, not 100 + retired
  });
});

describe("SVM instructions: CPL check before the intercept (APM 15.9)", () => {
  /** Flat 32-bit protected mode at `cpl` (the VMCB loads the hidden parts; no GDT needed). */
  function protectedAt(m: Machine, cpl: number): void {
    const s = m.backend.getState(StateParts.All);
    s.cr0 |= 1;
    for (const seg of [s.cs, s.ss, s.ds, s.es, s.fs, s.gs]) {
      seg.base = 0; seg.limit = 0xffffffff;
      seg.attrib = (seg === s.cs ? 0xb : 0x3) | 0x10 | (cpl << 5) | 0x80 | (1 << 14) | (1 << 15);
      seg.selector = (seg === s.cs ? 0x8 : 0x10) | cpl;
    }
    s.eip = ORG;
    m.backend.setState(s, StateParts.All);
  }

  it.each([0xd8, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf])("0F 01 %s at CPL 3 is #GP(0) even when intercepted; at CPL 0 it exits", (rm) => {
    for (const cpl of [3, 0]) {
      const m = machine([0x0f, 0x01, rm, 0xf4]);
      protectedAt(m, cpl);
      const v = m.backend.vmcb;
      v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.INVLPGA);
      v.write(F.INTERCEPT_MISC2, v.read(F.INTERCEPT_MISC2) | 0x7f);
      v.write(F.INTERCEPT_EXCEPTIONS, 1 << 13);
      m.backend.run();
      if (cpl === 3) {
        expect(v.exitCode()).toBe(SvmExit.EXCP_BASE + 13);
        expect(v.read(F.EXITINFO1)).toBe(0);
      } else {
        expect(v.exitCode()).toBe(rm === 0xdf ? SvmExit.INVLPGA : SvmExit.VMRUN + (rm - 0xd8));
      }
      expect(v.read(F.RIP)).toBe(ORG);
    }
  });

  it("VMMCALL has no CPL check: it exits at CPL 3", () => {
    const m = machine([0x0f, 0x01, 0xd9]);
    protectedAt(m, 3);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_MISC2, v.read(F.INTERCEPT_MISC2) | Misc2.VMMCALL);
    m.backend.run();
    expect(v.exitCode()).toBe(SvmExit.VMMCALL);
  });
});

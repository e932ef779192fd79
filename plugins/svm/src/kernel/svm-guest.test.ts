// tests/guests/svm-intercepts.asm through the real kernel and soft engine: this test plays
// the monitor (SvmBackend over the mapped VMCB), turns on every intercept the guest steps
// through, and checks EXITCODE, EXITINFO1/2, RIP, nRIP and EXITINTINFO per step (APM 15.7,
// 15.9, appendix C), then moves RIP to nRIP as a VMM emulating the instruction would.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { PendingEvent } from "../../../../src/kernel/api.js";
import { StateParts } from "../../../../src/monitor/api.js";
import { F, Misc1, Misc2, SvmExit } from "../vmcb.js";
import { ORG, expectKind, interceptAllMsrs, machine, setRip, type Machine } from "../svm-machine.fixtures.js";

const here = dirname(fileURLToPath(import.meta.url));
const IMAGE = readFileSync(join(here, "../../../../tests/guests/svm-intercepts.img"));

/** What one step must exit with: a VmExit kind and, for `unhandled`/`exception`, the code. */
interface Step { kind: "unhandled" | "cpuid" | "hlt" | "io" | "msr" | "exception"; code: number; info1?: bigint; info2?: "next" }

const STEPS: Step[] = [
  { kind: "unhandled", code: SvmExit.CR_READ_BASE + 0 }, // mov eax, cr0
  { kind: "unhandled", code: SvmExit.CR_READ_BASE + 0 }, // smsw ax
  { kind: "unhandled", code: SvmExit.CR_READ_BASE + 2 }, // mov edx, cr2
  { kind: "unhandled", code: SvmExit.CR_READ_BASE + 3 }, // mov eax, cr3
  { kind: "unhandled", code: SvmExit.CR_READ_BASE + 4 }, // mov esi, cr4
  { kind: "unhandled", code: SvmExit.CR_WRITE_BASE + 0 }, // mov cr0, eax
  { kind: "unhandled", code: SvmExit.CR_WRITE_BASE + 0 }, // clts
  { kind: "unhandled", code: SvmExit.CR_WRITE_BASE + 0 }, // lmsw ax
  { kind: "unhandled", code: SvmExit.CR_WRITE_BASE + 3 }, // mov cr3, ebx
  { kind: "unhandled", code: SvmExit.CR_WRITE_BASE + 4 }, // mov cr4, edi
  { kind: "unhandled", code: SvmExit.DR_READ_BASE + 7 }, // mov eax, dr7
  { kind: "unhandled", code: SvmExit.DR_WRITE_BASE + 1 }, // mov dr1, ecx
  { kind: "unhandled", code: SvmExit.IDTR_READ },
  { kind: "unhandled", code: SvmExit.GDTR_READ },
  { kind: "unhandled", code: SvmExit.IDTR_WRITE },
  { kind: "unhandled", code: SvmExit.GDTR_WRITE },
  { kind: "unhandled", code: SvmExit.RDTSC },
  { kind: "unhandled", code: SvmExit.RDPMC },
  { kind: "unhandled", code: SvmExit.PUSHF },
  { kind: "unhandled", code: SvmExit.POPF },
  { kind: "cpuid", code: SvmExit.CPUID },
  { kind: "unhandled", code: SvmExit.IRET },
  { kind: "unhandled", code: SvmExit.SWINT },
  { kind: "unhandled", code: SvmExit.INVD },
  { kind: "unhandled", code: SvmExit.PAUSE },
  { kind: "hlt", code: SvmExit.HLT },
  { kind: "unhandled", code: SvmExit.INVLPG },
  { kind: "unhandled", code: SvmExit.INVLPGA },
  // APM 15.10.2: port 80h, 8-bit, OUT, A16 (bit 7), SZ8 (bit 4); EXITINFO2 = next RIP.
  { kind: "io", code: SvmExit.IOIO, info1: BigInt((0x80 << 16) | (1 << 7) | (1 << 4)), info2: "next" },
  { kind: "msr", code: SvmExit.MSR, info1: 0n },
  { kind: "unhandled", code: SvmExit.VMRUN },
  { kind: "unhandled", code: SvmExit.VMMCALL },
  { kind: "unhandled", code: SvmExit.VMLOAD },
  { kind: "unhandled", code: SvmExit.VMSAVE },
  { kind: "unhandled", code: SvmExit.STGI },
  { kind: "unhandled", code: SvmExit.CLGI },
  { kind: "unhandled", code: SvmExit.SKINIT },
  { kind: "unhandled", code: SvmExit.RDTSCP },
  { kind: "unhandled", code: SvmExit.ICEBP },
  { kind: "unhandled", code: SvmExit.WBINVD },
  { kind: "unhandled", code: SvmExit.MONITOR },
  { kind: "unhandled", code: SvmExit.MWAIT },
  { kind: "exception", code: SvmExit.EXCP_BASE + 6 },
];

function word(at: number): number {
  return IMAGE[at - ORG]! | (IMAGE[at - ORG + 1]! << 8);
}

/** Every intercept the guest's steps need, on top of the backend's own. */
function interceptAll(m: Machine): void {
  const v = m.backend.vmcb;
  v.write(F.INTERCEPT_CR, (1 << 0) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 16) | (1 << 19) | (1 << 20));
  v.write(F.INTERCEPT_DR, (1 << 7) | (1 << 17));
  v.write(F.INTERCEPT_EXCEPTIONS, (1 << 6) | (1 << 13));
  v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) | Misc1.NMI | Misc1.INIT | Misc1.IDTR_READ | Misc1.GDTR_READ
    | Misc1.IDTR_WRITE | Misc1.GDTR_WRITE | Misc1.RDTSC | Misc1.RDPMC | Misc1.PUSHF | Misc1.POPF | Misc1.IRET
    | Misc1.INTN | Misc1.INVD | Misc1.PAUSE | Misc1.INVLPG | Misc1.INVLPGA | Misc1.MSR_PROT);
  v.write(F.INTERCEPT_MISC2, v.read(F.INTERCEPT_MISC2) | Misc2.VMMCALL | Misc2.VMLOAD | Misc2.VMSAVE | Misc2.STGI
    | Misc2.CLGI | Misc2.SKINIT | Misc2.RDTSCP | Misc2.ICEBP | Misc2.WBINVD | Misc2.MONITOR | Misc2.MWAIT);
  interceptAllMsrs(m); // an MSRPM of ones: every RDMSR/WRMSR exits
}

describe("tests/guests/svm-intercepts through the real kernel", () => {
  it("every step exits with its code, EXITINFO1/2, RIP at the instruction and nRIP after it", () => {
    const m = machine(Array.from(IMAGE), 100_000);
    const v = m.backend.vmcb;
    interceptAll(m);
    const table = word(ORG + 2), count = word(ORG + 4), handler = word(ORG + 6);
    expect(count).toBe(STEPS.length + 3);
    const at = (i: number) => word(table + 4 * i), next = (i: number) => word(table + 4 * i + 2);

    STEPS.forEach((step, i) => {
      const exit = m.backend.run();
      const where = `step ${i} (exit 0x${step.code.toString(16)})`;
      expect(exit.kind, where).toBe(step.kind);
      expect(v.exitCode(), where).toBe(step.code);
      expect(v.read(F.RIP), where).toBe(at(i));
      expect(v.read64(F.EXITINTINFO), where).toBe(0n);
      // No decode assists (APM 15.33): EXITINFO1 is 0 unless the intercept itself defines it.
      expect(v.read64(F.EXITINFO1), where).toBe(step.info1 ?? 0n);
      expect(v.read64(F.EXITINFO2), where).toBe(step.info2 === "next" ? BigInt(next(i)) : 0n);
      if (step.kind === "exception") {
        expect(v.read(F.NRIP), where).toBe(0); // APM 15.7.1: no nRIP for exception intercepts
        setRip(m, next(i));
      } else {
        expect(v.read(F.NRIP), where).toBe(next(i));
        if (step.kind === "unhandled") setRip(m, next(i)); // the backend completes the others itself
      }
    });

    // Step 43 (NOP): physical NMI and INIT posted by the monitor exit before it, RIP unchanged.
    let i = STEPS.length;
    m.backend.post(PendingEvent.Nmi);
    expect(expectKind(m.backend.run(), "unhandled").code).toBe(SvmExit.NMI);
    expect(v.read(F.RIP)).toBe(at(i));
    expect(v.read(F.NRIP)).toBe(0);
    m.backend.post(PendingEvent.Init);
    expect(expectKind(m.backend.run(), "unhandled").code).toBe(SvmExit.INIT);
    expect(v.read(F.RIP)).toBe(at(i));
    expect(m.caps.guestRegs[11]).toBe(0); // both consumed

    // Step 44: INT 80h, not intercepted, beyond the IVT limit: the #GP intercept exits during
    // its delivery; EXITINTINFO = V | TYPE 4 (software interrupt) | vector 80h; nRIP = after it.
    i++;
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) & ~Misc1.INTN);
    const t = m.backend.getState(StateParts.Tables);
    t.idtr.limit = 0x1ff;
    m.backend.setState(t, StateParts.Tables);
    expect(expectKind(m.backend.run(), "exception").vector).toBe(13);
    expect(v.exitCode()).toBe(SvmExit.EXCP_BASE + 13);
    expect(v.read(F.RIP)).toBe(at(i));
    expect(v.read64(F.EXITINTINFO)).toBe(BigInt(((1 << 31) | (4 << 8) | 0x80) >>> 0));
    expect(v.read(F.NRIP)).toBe(next(i));

    // The monitor fixes the IVT and queues nothing: the backend re-injects INT 80h through
    // EVENTINJ with RIP at nRIP, so the handler runs and returns after the INT.
    t.idtr.limit = 0x3ff;
    m.backend.setState(t, StateParts.Tables);
    m.ram[0x80 * 4] = handler & 0xff; m.ram[0x80 * 4 + 1] = handler >>> 8;
    m.ram[0x80 * 4 + 2] = 0; m.ram[0x80 * 4 + 3] = 0;
    expect(expectKind(m.backend.run(), "io").port).toBe(0x97);
    expect(v.read(F.RIP)).toBe(handler);
    const sp = v.read(F.RSP);
    expect(m.ram[sp]! | (m.ram[sp + 1]! << 8)).toBe(next(i)); // the pushed return IP
    expect(v.read64(F.EXITINTINFO)).toBe(0n);

    // Step 45: back from the handler's IRET (IRET intercept off) to the OUT after the INT.
    i++;
    v.write(F.INTERCEPT_MISC1, v.read(F.INTERCEPT_MISC1) & ~Misc1.IRET);
    expect(expectKind(m.backend.run(), "io").port).toBe(0x81);
    expect(v.read(F.RIP)).toBe(at(i));
    expectKind(m.backend.run(), "hlt");
  });
});

// #DB intercepts and DR6 (APM 15.12): on AMD, DR6 is updated as the #DB would update it
// before the exception intercept is taken, unlike VMX (SDM 27.1, where the exit
// qualification carries the bits and DR6 is left alone). The kernel half asks the core for
// the AMD behaviour (InterceptControls.dbExitSetsDr6). A real-mode guest through the backend.
import { describe, expect, it } from "vitest";
import { StateParts } from "../../../../src/monitor/api.js";
import { F, SvmExit } from "../vmcb.js";
import { ORG, expectKind, machine } from "../svm-machine.fixtures.js";

describe("an intercepted #DB updates DR6 first (APM 15.12)", () => {
  it("single-step: exit 41h after the instruction, and the guest then reads DR6 with BS set", () => {
    // inc bx (TF set: #DB trap after it); mov eax, dr6; hlt.
    const m = machine([0x43, 0x0f, 0x21, 0xf0, 0xf4]);
    const v = m.backend.vmcb;
    v.write(F.INTERCEPT_EXCEPTIONS, 1 << 1);
    const s = m.backend.getState(StateParts.Basic);
    s.eflags = 0x102;
    m.backend.setState(s, StateParts.Basic);
    const e = expectKind(m.backend.run(), "exception");
    expect([e.vector, v.read(F.EXITCODE), v.read(F.RIP)]).toEqual([1, SvmExit.EXCP_BASE + 1, ORG + 1]);
    // The VMM drops the #DB and clears TF; DR6 already holds BS.
    v.write(F.INTERCEPT_EXCEPTIONS, 0);
    v.write(F.RFLAGS, 2);
    expectKind(m.backend.run(), "hlt");
    expect(m.backend.getState(StateParts.Gprs).eax & 0x4000).toBe(0x4000);
  });
});

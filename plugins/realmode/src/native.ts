// Native mode: the backend runs real mode itself. Each IVT vector points at a ROM stub
// `out BIOS_CALL_PORT, al ; iret`; the OUT exits, this wrapper recognises the stub from
// CS:IP, runs the BIOS service on the backend's registers (flags into the IRET frame) and
// resumes the guest. The backend completes the OUT (EIP past it) at the next run, and the
// stub's IRET returns to the caller.
import type { PreemptExit, VcpuBackend, VcpuEvent, VmExit, X86State } from "../../../src/monitor/api.js";
import { StateParts } from "../../../src/monitor/api.js";
import { BiosStatus, stubVectorAt } from "./bios/bios.js";
import { ReturnVia } from "./bios/frame.js";
import type { BiosCallGate } from "./bios/gate.js";
import { BIOS_CALL_PORT } from "./bios/layout.js";

const GET_PARTS = StateParts.Gprs | StateParts.Basic | StateParts.Segments | StateParts.Control;
/** Services write GPRs and ES (INT 13h AH=08h); flags and jumps go to the guest stack. */
const SET_PARTS = StateParts.Gprs | StateParts.Segments;
/** BIOS calls serviced inside one run() before the monitor gets control back (a timeslice). */
export const MAX_BIOS_CALLS_PER_RUN = 4096;

export class NativeBiosVcpu implements VcpuBackend {
  readonly id: string;
  private readonly preempt: PreemptExit = { kind: "preempt" };

  /** The inner backend's count (defined only where the inner backend counts). */
  readonly instructionsRetired?: () => number;

  constructor(private readonly inner: VcpuBackend, private readonly gate: BiosCallGate) {
    this.id = `realmode-native(${inner.id})`;
    const innerRetired = inner.instructionsRetired;
    if (typeof innerRetired === "function") this.instructionsRetired = () => innerRetired.call(inner);
  }

  run(): VmExit {
    if (this.gate.waiting) {
      // The guest has not moved since the OUT exit; the backend still holds its completion.
      const s = this.inner.getState(GET_PARTS);
      if (this.gate.retry(s) === BiosStatus.WaitForKey) return this.gate.waitExit;
      this.inner.setState(s, SET_PARTS);
    }
    for (let calls = 0; ;) {
      const exit = this.inner.run();
      if (exit.kind !== "io" || exit.port !== BIOS_CALL_PORT || exit.in || exit.size !== 1) return exit;
      const s = this.inner.getState(GET_PARTS);
      const vector = biosStubVector(s);
      if (vector < 0) return exit; // an OUT to the port from anywhere else: an ordinary port write
      if (this.gate.call(vector, s, ReturnVia.Stack, 0) === BiosStatus.WaitForKey) return this.gate.waitExit;
      this.inner.setState(s, SET_PARTS);
      if (++calls >= MAX_BIOS_CALLS_PER_RUN) return this.preempt;
    }
  }

  getState(parts?: number): X86State { return this.inner.getState(parts); }
  setState(state: X86State, parts?: number): void { this.inner.setState(state, parts); }
  inject(event: VcpuEvent): void { this.inner.inject(event); }
  setInterruptWindow(enabled: boolean): void { this.inner.setInterruptWindow(enabled); }
}

/** The stub vector the guest is executing at CS:IP in real mode, or -1. */
export function biosStubVector(s: X86State): number {
  if ((s.cr0 & 1) !== 0) return -1;
  return stubVectorAt((s.cs.base + (s.eip & 0xffff)) >>> 0);
}

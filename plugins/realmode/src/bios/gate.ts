// The one path from "the guest called the BIOS" to a finished (or waiting) call, shared by
// the native and emulate interposers so the keyboard wait behaves identically in both.
import type { GuestMemory, HltExit } from "../../../../src/monitor/api.js";
import type { X86State } from "../../../../src/x86/types.js";
import { BiosStatus, type Bios } from "./bios.js";
import { BiosReturn, ReturnVia } from "./frame.js";

export class BiosCallGate {
  /**
   * Returned while INT 16h waits for a key: what a real BIOS's `sti; hlt` wait loop looks
   * like to the monitor. The run loop waits for input before the next run().
   */
  readonly waitExit: HltExit = { kind: "hlt", interruptsEnabled: true };
  private readonly ret: BiosReturn;
  private pendingVector = -1;
  private via: ReturnVia = ReturnVia.Registers;
  /** Length of the instruction that made the pending call (INT n or OUT), for the emulator. */
  pendingInstrLen = 0;
  /** BIOS calls serviced (a figure for tests and statistics). */
  calls = 0;

  constructor(readonly bios: Bios, mem: GuestMemory) {
    this.ret = new BiosReturn(mem);
  }

  get waiting(): boolean { return this.pendingVector >= 0; }
  /** How the pending call returns (stub frame or registers). */
  get pendingVia(): ReturnVia { return this.via; }

  /** Service `vector`. On WaitForKey nothing in `state` changed and the call is remembered. */
  call(vector: number, state: X86State, via: ReturnVia, instrLen: number): BiosStatus {
    this.ret.bind(state, via, instrLen);
    const r = this.bios.call(vector, state, this.ret);
    if (r === BiosStatus.WaitForKey) {
      this.pendingVector = vector;
      this.via = via;
      this.pendingInstrLen = instrLen;
    } else {
      this.pendingVector = -1;
      this.calls++;
    }
    return r;
  }

  /** Retry the remembered call on the (unchanged) guest state. */
  retry(state: X86State): BiosStatus {
    return this.call(this.pendingVector, state, this.via, this.pendingInstrLen);
  }

  /**
   * After a finished call, whether the emulator must move EIP past the calling instruction:
   * always for a stub's OUT (the IRET frame carries the return), and for an emulated INT n
   * unless the service jumped elsewhere (INT 19h).
   */
  advanceAfter(via: ReturnVia): boolean {
    return via === ReturnVia.Stack || !this.ret.redirected;
  }
}

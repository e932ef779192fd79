// How a BIOS service hands FLAGS and a changed return address back to its caller.
//
// The INT instruction pushed FLAGS, CS, IP (SDM Vol. 3A 20.1.4) and the stub's IRET pops
// them, so a service reached through a ROM stub (native mode, or a hooked vector chaining
// to the stub) must edit that frame on the guest stack: SS:SP -> IP, +2 CS, +4 FLAGS.
// When the emulator services INT n directly there is no frame: the INT/IRET pair is
// emulated, so CF/ZF go straight into EFLAGS and a jump goes straight into CS:IP.
import type { GuestMemory } from "../../../../src/monitor/api.js";
import type { X86State } from "../../../../src/x86/types.js";
import { loadRealSegment, withLo16 } from "./regs.js";

export const FLAG_CF = 0x0001;
export const FLAG_ZF = 0x0040;
export const FLAG_IF = 0x0200;
export const FLAG_TF = 0x0100;

export const enum ReturnVia {
  /** The IRET frame on the guest stack (ROM stub). */
  Stack = 0,
  /** The registers themselves (INT n emulated without a frame). */
  Registers = 1,
}

/** One reusable object: bind it to a call's state, then let the service set flags or jump. */
export class BiosReturn {
  private state: X86State | undefined;
  private via: ReturnVia = ReturnVia.Registers;
  /** The service moved the return address (INT 19h); the caller must not advance EIP. */
  redirected = false;

  constructor(private readonly mem: GuestMemory) {}

  private instrLen = 0;

  /** `instrLen`: length of the INT n instruction when the emulator services it without a frame. */
  bind(state: X86State, via: ReturnVia, instrLen = 0): this {
    this.state = state;
    this.via = via;
    this.instrLen = instrLen;
    this.redirected = false;
    return this;
  }

  setFlag(mask: number, on: boolean): void {
    const s = this.state!;
    if (this.via === ReturnVia.Registers) {
      s.eflags = (on ? s.eflags | mask : s.eflags & ~mask) >>> 0;
      return;
    }
    const at = this.frameAddr(4);
    const v = this.mem.read16(at);
    this.mem.write16(at, on ? v | mask : v & ~mask);
  }

  setCarry(on: boolean): void { this.setFlag(FLAG_CF, on); }
  setZero(on: boolean): void { this.setFlag(FLAG_ZF, on); }

  /** Make the return go to cs:ip instead of back to the caller. */
  jump(cs: number, ip: number): void {
    const s = this.state!;
    this.redirected = true;
    if (this.via === ReturnVia.Registers) {
      loadRealSegment(s.cs, cs);
      s.eip = ip & 0xffff;
      return;
    }
    this.mem.write16(this.frameAddr(0), ip & 0xffff);
    this.mem.write16(this.frameAddr(2), cs & 0xffff);
  }

  /**
   * Return to cs:ip first, with the caller's return still on the stack as an IRET frame: the
   * ROM wait loops (`sti; hlt; ...`) run in guest code, so interrupts are taken while the
   * BIOS waits, and then re-enter the service with the caller's frame in place.
   * Stack: a second frame [ip, cs, caller's FLAGS] goes below the caller's, for the stub's
   * IRET. Registers: the frame the INT would have pushed (FLAGS, CS, IP past the INT).
   */
  detour(cs: number, ip: number): void {
    const s = this.state!;
    this.redirected = true;
    if (this.via === ReturnVia.Stack) {
      const flags = this.mem.read16(this.frameAddr(4));
      s.esp = withLo16(s.esp, s.esp - 6);
      this.mem.write16(this.frameAddr(0), ip & 0xffff);
      this.mem.write16(this.frameAddr(2), cs & 0xffff);
      this.mem.write16(this.frameAddr(4), flags);
      return;
    }
    const ret = (s.eip + this.instrLen) & 0xffff;
    s.esp = withLo16(s.esp, s.esp - 6);
    this.mem.write16(this.frameAddr(0), ret);
    this.mem.write16(this.frameAddr(2), s.cs.selector);
    this.mem.write16(this.frameAddr(4), s.eflags & 0xffff);
    s.eflags = (s.eflags & ~(FLAG_IF | FLAG_TF)) >>> 0;
    loadRealSegment(s.cs, cs);
    s.eip = ip & 0xffff;
  }

  /** SS:SP+delta with 16-bit wrap of the offset, as the IRET would address it. */
  private frameAddr(delta: number): number {
    const s = this.state!;
    return (s.ss.base + ((s.esp + delta) & 0xffff)) >>> 0;
  }
}

// Emulate mode (vmkitmon's way): while CR0.PE=0 this wrapper runs the guest in its own
// src/x86 core over guest memory, with HLT, CPUID and all port I/O intercepted (returned
// as VmExits and completed at the next run, as a backend would) and every INT n
// intercepted. An INT n whose IVT entry still points at the BIOS's own stub is serviced
// in TypeScript without running guest code: the INT/IRET pair is emulated by moving EIP
// past the INT, with CF/ZF written straight into EFLAGS. A hooked vector is vectored
// through the IVT by the core (EIP moved past the INT, then deliverEvent of a software
// interrupt), and if the hook chains to the stub, the stub's OUT is serviced like native.
// Once the guest sets CR0.PE the state goes to the inner backend, which runs from then on.
//
// Memory outside RAM goes to the monitor's MMIO bus, synchronously (mmio-memory.ts), as the
// soft engine's guest-physical space does: no mmio exit. While the monitor wants an
// interrupt window and the guest cannot take one, the core steps one instruction at a
// time so the window is reported where it opens.
import type {
  Bus, CpuidExit, ExceptionExit, GuestMemory, HltExit, InterruptWindowExit, IoExit, PreemptExit, ShutdownExit,
  VcpuBackend, VcpuEvent, VmExit, X86State,
} from "../../../src/monitor/api.js";
import { StateParts } from "../../../src/monitor/api.js";
import type { AccessSize, Cpu, IoPorts, PhysMemory, SegmentReg } from "../../../src/x86/types.js";
import { CpuExitReason, EventType, Interruptibility, SoftIntKind } from "../../../src/x86/types.js";
import { X86Cpu } from "../../../src/x86/cpu.js";
import { resetState } from "../../../src/x86/state.js";
import { BiosStatus } from "./bios/bios.js";
import { FLAG_IF, ReturnVia } from "./bios/frame.js";
import type { BiosCallGate } from "./bios/gate.js";
import { BIOS_CALL_PORT, ROM_SEGMENT, STUB_OFFSET, STUB_SIZE } from "./bios/layout.js";
import { biosStubVector, MAX_BIOS_CALLS_PER_RUN } from "./native.js";
import { withLo16, withLo8 } from "./bios/regs.js";
import { RamOrMmio } from "./mmio-memory.js";

/** Instructions per run(): the emulator's timeslice before a `preempt` exit. */
export const EMULATE_TIMESLICE = 100_000;

const FLAG_DF = 0x400;

/** The core never performs port I/O itself here (ioAll is intercepted); defined values anyway. */
const NO_PORTS: IoPorts = { in: (_p, size) => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff), out: () => {} };

const enum Completion { None, Advance, Io, IoString, Cpuid }

export type CpuFactory = (mem: PhysMemory, io: IoPorts) => Cpu;

export class EmulatedBiosVcpu implements VcpuBackend {
  readonly id: string;
  readonly cpu: Cpu;
  /** The inner backend's count plus this core's (defined only where the inner backend counts). */
  readonly instructionsRetired?: () => number;
  private readonly st: X86State = resetState();
  private delegated = false;
  private completion = Completion.None;
  private completionLen = 0;
  private hasEvent = false;
  private readonly event = { type: EventType.ExtInt as EventType, vector: 0, errorCode: 0, hasErrorCode: false };
  private windowWanted = false;
  /** What the core and string I/O completion address: RAM, and the MMIO bus when there is one. */
  private readonly phys: PhysMemory;

  // One exit object per kind, reused (no allocation per exit).
  private readonly ioExit: IoExit = { kind: "io", port: 0, size: 1, in: false, data: 0 };
  private readonly cpuidExit: CpuidExit = { kind: "cpuid", leaf: 0, subleaf: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
  private readonly hltExit: HltExit = { kind: "hlt", interruptsEnabled: true };
  private readonly preemptExit: PreemptExit = { kind: "preempt" };
  private readonly shutdownExit: ShutdownExit = { kind: "shutdown", reason: "triple-fault" };
  private readonly windowExit: InterruptWindowExit = { kind: "interrupt-window" };
  private readonly exceptionExit: ExceptionExit = { kind: "exception", vector: 0, errorCode: 0, hasErrorCode: false };

  constructor(
    private readonly inner: VcpuBackend,
    private readonly mem: GuestMemory,
    private readonly gate: BiosCallGate,
    private readonly timeslice = EMULATE_TIMESLICE,
    cpuFactory: CpuFactory = (m, io) => new X86Cpu(m, io),
    /** The platform's A20 gate (Platform.a20), read before each timeslice; default: always enabled. */
    private readonly a20: () => boolean = () => true,
    /** The monitor's MMIO bus: accesses outside RAM go there; without it they read all-ones and drop. */
    mmio?: Bus,
  ) {
    this.id = `realmode-emulate(${inner.id})`;
    // GuestMemory already has PhysMemory's shape: RAM from 0, all-ones/dropped outside.
    this.phys = mmio ? new RamOrMmio(mem, mmio) : mem;
    this.cpu = cpuFactory(this.phys, NO_PORTS);
    const innerRetired = inner.instructionsRetired;
    if (typeof innerRetired === "function") this.instructionsRetired = () => innerRetired.call(inner) + this.cpu.retired;
    const ic = this.cpu.intercepts;
    ic.hlt = true;
    ic.cpuid = true;
    ic.ioAll = true;
    ic.softIntBitmap = new Uint8Array(32).fill(0xff);
    ic.exceptionBitmap = 0;
    this.cpu.setState(inner.getState(StateParts.All));
  }

  /** True once the guest entered protected mode and the inner backend took over. */
  get delegatedToInner(): boolean { return this.delegated; }

  run(): VmExit {
    if (this.delegated) return this.inner.run();
    const cpu = this.cpu;
    const st = this.st;
    // A20M# for our own core: the gpspace gates the inner backend; this core reads GuestMemory.
    cpu.a20Mask = this.a20() ? 0xffffffff : 0xffefffff;
    this.complete();
    if (this.gate.waiting) {
      cpu.getState(st);
      const via = this.gate.pendingVia;
      const len = this.gate.pendingInstrLen;
      if (this.gate.retry(st) === BiosStatus.WaitForKey) return this.gate.waitExit;
      if (this.gate.advanceAfter(via)) advanceEip(st, len);
      cpu.setState(st);
    }
    if (this.hasEvent && (this.event.type !== EventType.ExtInt || cpu.interruptible())) {
      this.hasEvent = false;
      const e = this.event;
      cpu.deliverEvent(e.type, e.vector, e.errorCode, e.hasErrorCode);
    }
    // Serviced calls restart the core with a fresh budget: cap them per run() as native mode
    // does, so a guest looping through the BIOS (an #UD whose handler returns to the fault)
    // still hands the monitor back a preempt.
    let services = 0;
    for (let stepped = 0; ;) {
      if (this.windowWanted && cpu.interruptible()) return this.windowExit;
      const reason = cpu.run(this.windowWanted ? 1 : this.timeslice);
      const x = cpu.exit;
      cpu.getState(st);
      if ((st.cr0 & 1) !== 0) return this.handOver();
      switch (reason) {
        case CpuExitReason.Budget:
          if (this.windowWanted && ++stepped < this.timeslice) continue;
          return this.preemptExit;
        case CpuExitReason.Hlt:
          this.pend(Completion.Advance, x.instrLen);
          this.hltExit.interruptsEnabled = (st.eflags & FLAG_IF) !== 0;
          return this.hltExit;
        case CpuExitReason.Halted:
          this.hltExit.interruptsEnabled = (st.eflags & FLAG_IF) !== 0;
          return this.hltExit;
        case CpuExitReason.Cpuid: {
          const c = this.cpuidExit;
          c.leaf = st.eax; c.subleaf = st.ecx;
          c.eax = c.ebx = c.ecx = c.edx = 0;
          this.pend(Completion.Cpuid, x.instrLen);
          return c;
        }
        case CpuExitReason.Io: {
          if (!x.ioIn && !x.ioString && x.ioPort === BIOS_CALL_PORT && x.ioSize === 1) {
            const vector = biosStubVector(st);
            if (vector >= 0) {
              if (this.gate.call(vector, st, ReturnVia.Stack, x.instrLen) === BiosStatus.WaitForKey) return this.gate.waitExit;
              advanceEip(st, x.instrLen);
              cpu.setState(st);
              if (++services >= MAX_BIOS_CALLS_PER_RUN) return this.preemptExit;
              continue;
            }
          }
          if (x.ioString) {
            if (!this.startStringIo(st, x.ioSize, x.ioIn, x.ioRep, x.ioAddrSize, x.ioSeg, x.ioPort, x.instrLen)) {
              cpu.setState(st);
              continue;
            }
            return this.ioExit;
          }
          const io = this.ioExit;
          io.port = x.ioPort; io.size = x.ioSize; io.in = x.ioIn;
          io.data = x.ioIn ? 0 : sized(st.eax, x.ioSize);
          this.pend(Completion.Io, x.instrLen);
          return io;
        }
        case CpuExitReason.SoftInt: {
          const v = x.vector;
          if (x.softIntKind === SoftIntKind.IntN && this.ivtPointsAtStub(st, v)) {
            if (this.gate.call(v, st, ReturnVia.Registers, x.instrLen) === BiosStatus.WaitForKey) return this.gate.waitExit;
            if (this.gate.advanceAfter(ReturnVia.Registers)) advanceEip(st, x.instrLen);
            cpu.setState(st);
            if (++services >= MAX_BIOS_CALLS_PER_RUN) return this.preemptExit;
            continue;
          }
          // Hooked by the guest (or INT3/INTO): vector through the IVT, return address past the INT.
          advanceEip(st, x.instrLen);
          cpu.setState(st);
          cpu.deliverEvent(EventType.SoftwareInt, v, 0, false);
          if (++services >= MAX_BIOS_CALLS_PER_RUN) return this.preemptExit;
          continue;
        }
        case CpuExitReason.Exception: {
          const e = this.exceptionExit;
          e.vector = x.vector; e.errorCode = x.errorCode; e.hasErrorCode = x.hasErrorCode;
          return e;
        }
        case CpuExitReason.TripleFault:
          return this.shutdownExit;
        default:
          return this.preemptExit;
      }
    }
  }

  getState(parts?: number): X86State {
    if (this.delegated) return this.inner.getState(parts);
    this.cpu.getState(this.st);
    return this.st;
  }

  setState(state: X86State, parts: number = StateParts.All): void {
    if (this.delegated) { this.inner.setState(state, parts); return; }
    const st = this.st;
    if (state !== st) {
      this.cpu.getState(st);
      copyParts(st, state, parts);
    }
    this.cpu.setState(st);
    // The monitor itself put the vCPU in protected mode: the inner backend takes over now.
    if ((st.cr0 & 1) !== 0) {
      this.delegated = true;
      this.inner.setState(st, StateParts.All);
    }
  }

  inject(event: VcpuEvent): void {
    if (this.delegated) { this.inner.inject(event); return; }
    const e = this.event;
    e.type = event.type; e.vector = event.vector & 0xff;
    e.errorCode = event.errorCode ?? 0; e.hasErrorCode = event.errorCode !== undefined;
    this.hasEvent = true;
  }

  setInterruptWindow(enabled: boolean): void {
    if (this.delegated) { this.inner.setInterruptWindow(enabled); return; }
    this.windowWanted = enabled;
  }

  // ---- internals

  private pend(c: Completion, len: number): void {
    this.completion = c;
    this.completionLen = len;
  }

  /** Commit what the monitor stored in the last exit, as a backend does at VM entry. */
  private complete(): void {
    const c = this.completion;
    if (c === Completion.None) return;
    this.completion = Completion.None;
    const st = this.st;
    this.cpu.getState(st);
    switch (c) {
      case Completion.Io:
        if (this.ioExit.in) {
          const d = this.ioExit.data >>> 0;
          st.eax = this.ioExit.size === 1 ? withLo8(st.eax, d) : this.ioExit.size === 2 ? withLo16(st.eax, d) : d;
        }
        advanceEip(st, this.completionLen);
        break;
      case Completion.IoString:
        this.completeStringIo(st);
        break;
      case Completion.Cpuid: {
        const x = this.cpuidExit;
        st.eax = x.eax >>> 0; st.ebx = x.ebx >>> 0; st.ecx = x.ecx >>> 0; st.edx = x.edx >>> 0;
        advanceEip(st, this.completionLen);
        break;
      }
      default:
        advanceEip(st, this.completionLen);
    }
    // The intercepted instruction is done: an STI / MOV SS shadow over it has expired.
    st.interruptibility &= ~(Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs);
    this.cpu.setState(st);
  }

  private ivtPointsAtStub(st: X86State, v: number): boolean {
    const at = st.idtr.base + 4 * v;
    return this.mem.read16(at) === STUB_OFFSET + v * STUB_SIZE && this.mem.read16(at + 2) === ROM_SEGMENT;
  }

  // String I/O: one element per exit (SDM Vol. 1 19.3 / INS, OUTS). The core stopped before
  // the instruction; we read the OUTS element, or write the INS element at completion, step
  // SI/DI, count ECX for REP and re-execute until the count is zero.
  private strIn = false;
  private strRep = false;
  private strAsz = 2;
  private strSize: AccessSize = 1;
  private strSeg = 3;

  /** Returns false when there is nothing to do (REP with a zero count): EIP was advanced. */
  private startStringIo(st: X86State, size: AccessSize, isIn: boolean, rep: boolean, asz: number, seg: number, port: number, len: number): boolean {
    const amask = asz === 2 ? 0xffff : 0xffffffff;
    if (rep && (st.ecx & amask) === 0) {
      advanceEip(st, len);
      return false;
    }
    this.strIn = isIn; this.strRep = rep; this.strAsz = asz; this.strSize = size; this.strSeg = seg;
    const io = this.ioExit;
    io.port = port; io.size = size; io.in = isIn; io.data = 0;
    if (!isIn) io.data = this.readMem(segBase(st, seg) + (st.esi & amask), size);
    this.pend(Completion.IoString, len);
    return true;
  }

  private completeStringIo(st: X86State): void {
    const amask = this.strAsz === 2 ? 0xffff : 0xffffffff;
    const step = (st.eflags & FLAG_DF) !== 0 ? -this.strSize : this.strSize;
    const upd = (r: number) => ((r & ~amask) | ((r + step) & amask)) >>> 0;
    if (this.strIn) {
      this.writeMem(st.es.base + (st.edi & amask), this.strSize, this.ioExit.data);
      st.edi = upd(st.edi);
    } else {
      st.esi = upd(st.esi);
    }
    if (this.strRep) {
      st.ecx = ((st.ecx & ~amask) | ((st.ecx - 1) & amask)) >>> 0;
      if ((st.ecx & amask) !== 0) return; // EIP stays: the instruction runs again
    }
    advanceEip(st, this.completionLen);
  }

  private readMem(pa: number, size: AccessSize): number {
    pa = (pa & this.cpu.a20Mask) >>> 0;
    return size === 1 ? this.phys.read8(pa) : size === 2 ? this.phys.read16(pa) : this.phys.read32(pa);
  }

  private writeMem(pa: number, size: AccessSize, v: number): void {
    pa = (pa & this.cpu.a20Mask) >>> 0;
    if (size === 1) this.phys.write8(pa, v);
    else if (size === 2) this.phys.write16(pa, v);
    else this.phys.write32(pa, v);
  }

  /** CR0.PE is set: the inner backend runs the guest from here (state before the instruction). */
  private handOver(): VmExit {
    this.delegated = true;
    this.inner.setState(this.st, StateParts.All);
    if (this.hasEvent) {
      this.hasEvent = false;
      const e = this.event;
      this.inner.inject(e.hasErrorCode ? { type: e.type, vector: e.vector, errorCode: e.errorCode } : { type: e.type, vector: e.vector });
    }
    if (this.windowWanted) this.inner.setInterruptWindow(true);
    return this.inner.run();
  }
}

function sized(v: number, size: AccessSize): number {
  return size === 1 ? v & 0xff : size === 2 ? v & 0xffff : v >>> 0;
}

/** Real-mode EIP advance with 16-bit wrap (a 32-bit EIP only in a 32-bit code segment). */
function advanceEip(st: X86State, len: number): void {
  st.eip = (st.cs.attrib & 0x4000) !== 0 ? (st.eip + len) >>> 0 : (st.eip + len) & 0xffff;
}

/** Base of segment register `seg` in x86 Sreg order (ES, CS, SS, DS, FS, GS). */
function segBase(st: X86State, seg: number): number {
  switch (seg) {
    case 0: return st.es.base;
    case 1: return st.cs.base;
    case 2: return st.ss.base;
    case 4: return st.fs.base;
    case 5: return st.gs.base;
    default: return st.ds.base;
  }
}

function copySeg(dst: SegmentReg, src: SegmentReg): void {
  dst.selector = src.selector; dst.base = src.base; dst.limit = src.limit; dst.attrib = src.attrib;
}

/** Copy the StateParts groups of `src` into `dst`. */
export function copyParts(dst: X86State, src: X86State, parts: number): void {
  if (parts & StateParts.Gprs) {
    dst.eax = src.eax; dst.ecx = src.ecx; dst.edx = src.edx; dst.ebx = src.ebx;
    dst.esp = src.esp; dst.ebp = src.ebp; dst.esi = src.esi; dst.edi = src.edi;
  }
  if (parts & StateParts.Basic) { dst.eip = src.eip; dst.eflags = src.eflags; }
  if (parts & StateParts.Segments) {
    copySeg(dst.es, src.es); copySeg(dst.cs, src.cs); copySeg(dst.ss, src.ss);
    copySeg(dst.ds, src.ds); copySeg(dst.fs, src.fs); copySeg(dst.gs, src.gs);
  }
  if (parts & StateParts.Control) {
    dst.cr0 = src.cr0; dst.cr2 = src.cr2; dst.cr3 = src.cr3; dst.cr4 = src.cr4; dst.dr7 = src.dr7; dst.efer = src.efer;
  }
  if (parts & StateParts.Tables) {
    copySeg(dst.ldtr, src.ldtr); copySeg(dst.tr, src.tr);
    dst.gdtr.base = src.gdtr.base; dst.gdtr.limit = src.gdtr.limit;
    dst.idtr.base = src.idtr.base; dst.idtr.limit = src.idtr.limit;
  }
  if (parts & StateParts.Events) { dst.activity = src.activity; dst.interruptibility = src.interruptibility; }
}

// The monitor half of plugins/vmx: a VcpuBackend that drives one VMCS through the
// kernel's VMX syscalls only (vmptrld/vmclear/vmread/vmwrite/vmlaunch/vmresume on
// capabilities), like vmkitmon's monitor. GPRs and a copy of the exit information
// (VmxExitWord) travel through the shared guestControl frame; everything else through
// vmread/vmwrite, read lazily by parts. Exits complete at the next run() (KVM style): IN
// data, CPUID results, RIP advance. String I/O (INS/OUTS, REP) runs through the shared
// IoAssist against the PIO bus and guest memory, and is reported as one `io` exit with
// `count` (README "String I/O"); with `ept: true`, MMIO behind EPT violations runs through
// the MemAssist and is reported as an `mmio` exit with `count` (README "EPT").
import { inject, injectable, type InjectionToken } from "tsyringe";
import {
  MapPerm, NestedFormat, identityTablesBytes, writeIdentityTables,
  GuestControlWord, ObjType, PendingEvent, SYS_ERR_NAMES, SysErr, type CPtr, type Syscalls,
} from "../../../../src/kernel/api.js";
import {
  ExitObjects, MemAssist, MemAssistStatus,
  IoAssist, IoAssistStatus, StateParts, TaskSwitchAssist, TaskSwitchOutcome, faultSetsRf, Tokens, busPortAccess, type TaskGateEvent, newStringIo, stringIoUnsupported, type Bus, type GuestMemory, type PortAccess, type StringIo, type EntryFailureExit, type IoExit, type MachineCaps, type UnhandledExit, type VcpuBackend, type VcpuEvent, type VmExit,
} from "../../../../src/monitor/api.js";
import { EventType, Gpr, TaskSwitchSource, type X86State } from "../../../../src/x86/types.js";
import { resetState } from "../../../../src/x86/state.js";
import { VmxMsr, capsFromMsrs, controlValue, type VmxCaps } from "../kernel/caps.js";
import {
  EntryCtl, EXIT_REASON_ENTRY_FAILURE, ExitCtl, ExitReason, F, IntrInfo, Pin, Proc, Proc2,
  SEGMENT_FIELDS, VMCS_REGION_BYTES, VmxExitWord,
} from "../vmcs-fields.js";

/** A syscall failed for a host reason (rights, setup): not something the guest caused. */
export class VmxBackendError extends Error {
  override readonly name = "VmxBackendError";
  constructor(readonly syscall: string, readonly code: SysErr, detail = "") {
    super(`vmx backend: ${syscall} failed with ${SYS_ERR_NAMES[code] ?? `error ${code}`}${detail ? ` (${detail})` : ""}`);
  }
}

/** Options of the vmx plugin that the backend reads (index.ts registers them). */
export interface VmxBackendOptions {
  /**
   * true: the backend builds 4-level EPT tables mapping guest RAM identically and points the
   * EPTP at them; accesses outside RAM exit as EPT violations and go through the MemAssist
   * to the MMIO bus. false: the EPTP names the GuestPhysSpace itself (the kernel-managed
   * EPT), and the kernel hands MMIO to the bus synchronously.
   */
  readonly ept: boolean;
}
export const VmxBackendOptions: InjectionToken<VmxBackendOptions> = Symbol.for("hvkit:vmx:BackendOptions");
/** Default when no options are registered (see README "EPT"). */
export const VMX_DEFAULT_OPTIONS: VmxBackendOptions = { ept: false };
const TWO_MIB = 0x20_0000;
/** Exits one run() may handle itself (task switches, repaired RAM violations) before it returns. */
const ASSISTS_PER_RUN = 256;

const enum Completion { None = 0, Advance = 1, IoIn = 2, Cpuid = 3, MsrRead = 4 }

/**
 * Exits the kernel half encodes that the monitor does not emulate: reported as
 * `unhandled` naming the instruction (SDM appendix C). The backend's default controls
 * turn none of the optional ones on; INVD, VMCALL and the VMX instructions always exit.
 */
const UNEMULATED_EXITS: Readonly<Record<number, string>> = {
  [ExitReason.Invd]: "INVD", [ExitReason.Invlpg]: "INVLPG", [ExitReason.Rdpmc]: "RDPMC", [ExitReason.Rdtsc]: "RDTSC",
  [ExitReason.Vmcall]: "VMCALL", [ExitReason.Vmclear]: "VMCLEAR", [ExitReason.Vmlaunch]: "VMLAUNCH",
  [ExitReason.Vmptrld]: "VMPTRLD", [ExitReason.Vmptrst]: "VMPTRST", [ExitReason.Vmread]: "VMREAD",
  [ExitReason.Vmresume]: "VMRESUME", [ExitReason.Vmwrite]: "VMWRITE", [ExitReason.Vmxoff]: "VMXOFF",
  [ExitReason.Vmxon]: "VMXON", [ExitReason.CrAccess]: "control-register access", [ExitReason.MovDr]: "MOV DR",
  [ExitReason.Pause]: "PAUSE", [ExitReason.Invept]: "INVEPT", [ExitReason.Invvpid]: "INVVPID", [ExitReason.Wbinvd]: "WBINVD",
  [ExitReason.InitSignal]: "INIT signal", [ExitReason.Sipi]: "SIPI", [ExitReason.NmiWindow]: "NMI window",
  [ExitReason.TaskSwitch]: "task switch", [ExitReason.Mwait]: "MWAIT", [ExitReason.MonitorTrapFlag]: "monitor trap flag",
  [ExitReason.Monitor]: "MONITOR", [ExitReason.GdtrIdtr]: "GDTR/IDTR access", [ExitReason.LdtrTr]: "LDTR/TR access",
  [ExitReason.Rdtscp]: "RDTSCP", [ExitReason.PreemptionTimer]: "VMX-preemption timer", [ExitReason.Xsetbv]: "XSETBV",
};
/**
 * Exits that can happen while an event is being delivered, so the IDT-vectoring
 * information may be valid (SDM 27.2.4): exception or NMI, task switch, EPT violation
 * and misconfiguration. Other exits never read it (one VMREAD saved per exit).
 */
const VECTORING_EXITS: ReadonlySet<number> = new Set([ExitReason.ExceptionOrNmi, ExitReason.TaskSwitch, 48, 49]);
const EFLAGS_DF = 1 << 10;
const EFLAGS_RF = 1 << 16;
const IO_MASK = [0, 0xff, 0xffff, 0, 0xffffffff] as const;
/** Index of CR2 in the guestControl frame when the kernel maps more than the 8 GPRs. */
const GUEST_CONTROL_CR2 = 8;
/** Interruptibility state bits 0 (blocking by STI) and 1 (blocking by MOV SS), SDM table 25-3. */
const INTR_BLOCKING_STI_MOVSS = 3;
/** Interruptibility state bit 3: blocking by NMI (virtual-NMI blocking with virtual NMIs). */
const INTR_BLOCKING_NMI = 8;
/** Interruption types (SDM 25.8.3 table 25-17), for messages. */
const INTR_TYPE_NAMES = [
  "external interrupt", "reserved", "NMI", "hardware exception", "software interrupt",
  "privileged software exception", "software exception", "other event",
] as const;

@injectable()
export class VmxBackend implements VcpuBackend {
  readonly id = "vmx";
  /** Read from the capability MSRs through the rdmsrCap syscall at construction. */
  readonly caps: VmxCaps;
  private readonly dcb: CPtr;
  private readonly vmcs: CPtr;
  private readonly regs: Uint32Array;
  private launched = false;

  /** Cached guest state: `valid` parts hold current values, `dirty` parts await the next run. */
  private readonly state: X86State = resetState();
  private valid = 0;
  private dirty = 0;

  private proc: number;
  private procDirty = false;
  private eventPending = false;
  private eventInfo = 0;
  private eventError = 0;
  private eventLen = 0;
  /** IDT-vectoring information of the last exit, re-injected at the next entry unless an event was queued. */
  private taskAssist: TaskSwitchAssist | null = null;
  private readonly taskEvent: TaskGateEvent = { type: EventType.ExtInt, vector: 0, errorCode: 0, hasErrorCode: false };
  private reinjectInfo = 0;
  private reinjectError = 0;
  private reinjectLen = 0;

  private completion = Completion.None;
  private completionLen = 0;
  /**
   * The last exit's reason, qualification, instruction length, guest RIP and
   * interruptibility: from the guestControl words the kernel half publishes (VmxExitWord),
   * or by VMREAD when the mapping is too short to hold them. A setState flushed before the
   * next entry updates `exitRip`/`exitIntr`, so the completion builds on the new values.
   */
  private readonly exitWords: boolean;
  private exitReason = 0;
  private exitQual = 0;
  private exitLen = 0;
  private exitRip = 0;
  private exitIntr = 0;

  private readonly exits = new ExitObjects();
  /** An EPT violation the MemAssist performed (count set: the run loop only counts it). */
  private readonly stringIo: StringIo = newStringIo();
  private readonly ioAssist = new IoAssist();
  /** With `ept: true`: MMIO instructions behind EPT violations. */
  private memAssist: MemAssist | null = null;
  /** With `ept: true`: the backend's identity EPT tables (its own frame), their address and the EPTP. */
  private eptView: Uint8Array | null = null;
  private eptAt = 0;
  private eptp = 0;
  /** Guest-physical address of the last RAM EPT violation the backend repaired, -1 after any other exit. */
  private repairedGpa = -1;
  private readonly portAccess: PortAccess | null;
  /** The CPUID words the guest sees: the task-switch assist's core hides the same features. */
  private readonly guestFeatures: MachineCaps["guestFeatures"];

  constructor(
    @inject(Tokens.Syscalls) private readonly sys: Syscalls,
    @inject(Tokens.MachineCaps) machine: MachineCaps,
    // Optional so a bare backend (tests, tools) still builds; string I/O needs both.
    @inject(Tokens.PioBus, { isOptional: true }) pio?: Bus,
    @inject(Tokens.GuestMemory, { isOptional: true }) private readonly memory?: GuestMemory,
    @inject(Tokens.MmioBus, { isOptional: true }) mmio?: Bus,
    @inject(VmxBackendOptions, { isOptional: true }) options: VmxBackendOptions = VMX_DEFAULT_OPTIONS,
  ) {
    this.portAccess = pio === undefined ? null : busPortAccess(pio);
    this.guestFeatures = machine.guestFeatures;
    this.dcb = machine.dispatcher;
    this.regs = machine.guestRegs;
    this.exitWords = this.regs.length > VmxExitWord.LenIntr;
    this.caps = capsFromMsrs((msr) => (sys.rdmsrCap(msr) === SysErr.Ok
      ? (BigInt(sys.ret.valueHigh >>> 0) << 32n) | BigInt(sys.ret.value >>> 0) : undefined));
    this.enterVmxOperation(machine.ram);
    this.check("ramRetype(vmcs)", sys.ramRetype(machine.ram, ObjType.VmControl, VMCS_REGION_BYTES, "vmcs"));
    this.vmcs = sys.ret.cap;
    this.check("dispatcherSetupGuest", sys.dispatcherSetupGuest(this.dcb, {
      vmcontrol: this.vmcs, gpspace: machine.gpspace, guestControl: machine.guestControl,
    }));
    this.check("vmclear", sys.vmclear(this.dcb, this.vmcs));
    this.check("vmptrld", sys.vmptrld(this.dcb, this.vmcs));
    const c = this.caps;
    this.proc = controlValue(c.proc, Proc.HltExiting | Proc.UncondIoExiting | Proc.ActivateSecondary);
    this.write(F.PinControls, controlValue(c.pin, Pin.ExtIntExiting));
    this.write(F.ProcControls, this.proc);
    this.write(F.Proc2Controls, controlValue(c.proc2, Proc2.EnableEpt | Proc2.UnrestrictedGuest));
    this.write(F.ExitControls, controlValue(c.exit, ExitCtl.SaveDebugControls | ExitCtl.SaveEfer));
    this.write(F.EntryControls, controlValue(c.entry, EntryCtl.LoadDebugControls | EntryCtl.LoadEfer));
    this.write(F.ExceptionBitmap, 0);
    this.write(F.EntryIntrInfo, 0);
    this.write(F.VmcsLinkPtr, 0xffffffff);
    this.write(F.VmcsLinkPtr | 1, 0xffffffff);
    if (options.ept) this.enableEpt(machine, mmio);
    // The power-on state (SDM 10.1.1) until a BootContribution sets another.
    this.valid = StateParts.All;
    this.dirty = StateParts.All;
  }

  /**
   * VMXON with a fresh 4 KiB Frame whose first dword is IA32_VMX_BASIC[30:0] (SDM 24.11.5).
   * VMfailValid 15 means another backend on this kernel already executed VMXON: the
   * processor is in VMX operation, which is all this backend needs.
   */
  private enterVmxOperation(ram: CPtr): void {
    const sys = this.sys;
    this.check("ramRetype(vmxon region)", sys.ramRetype(ram, ObjType.Frame, VMCS_REGION_BYTES));
    const region = sys.ret.cap;
    this.check("frameMap(vmxon region)", sys.frameMap(region));
    const bytes = sys.ret.view!;
    this.check("rdmsrCap(IA32_VMX_BASIC)", sys.rdmsrCap(VmxMsr.Basic));
    new DataView(bytes.buffer, bytes.byteOffset, 4).setUint32(0, sys.ret.value & 0x7fffffff, true);
    const err = sys.vmxon(region);
    if (err === SysErr.VmFailValid && sys.ret.vmInstructionError === 15) return;
    this.check("vmxon", err);
  }

  // ---------------------------------------------------------------- state

  getState(parts: number = StateParts.All): X86State {
    const missing = parts & ~this.valid;
    if (missing !== 0) this.readParts(missing);
    return this.state;
  }

  setState(state: X86State, parts: number = StateParts.All): void {
    const s = this.state;
    if (parts & StateParts.Gprs) {
      s.eax = state.eax >>> 0; s.ecx = state.ecx >>> 0; s.edx = state.edx >>> 0; s.ebx = state.ebx >>> 0;
      s.esp = state.esp >>> 0; s.ebp = state.ebp >>> 0; s.esi = state.esi >>> 0; s.edi = state.edi >>> 0;
    }
    if (parts & StateParts.Basic) { s.eip = state.eip >>> 0; s.eflags = state.eflags >>> 0; }
    if (parts & StateParts.Segments) {
      copySeg(s.es, state.es); copySeg(s.cs, state.cs); copySeg(s.ss, state.ss);
      copySeg(s.ds, state.ds); copySeg(s.fs, state.fs); copySeg(s.gs, state.gs);
    }
    if (parts & StateParts.Control) {
      s.cr0 = state.cr0 >>> 0; s.cr2 = state.cr2 >>> 0; s.cr3 = state.cr3 >>> 0; s.cr4 = state.cr4 >>> 0;
      s.dr7 = state.dr7 >>> 0; s.efer = state.efer >>> 0;
    }
    if (parts & StateParts.Tables) {
      s.gdtr.base = state.gdtr.base >>> 0; s.gdtr.limit = state.gdtr.limit >>> 0;
      s.idtr.base = state.idtr.base >>> 0; s.idtr.limit = state.idtr.limit >>> 0;
      copySeg(s.ldtr, state.ldtr); copySeg(s.tr, state.tr);
    }
    if (parts & StateParts.Events) { s.activity = state.activity; s.interruptibility = state.interruptibility >>> 0; }
    this.valid |= parts & StateParts.All;
    this.dirty |= parts & StateParts.All;
  }

  inject(event: VcpuEvent): void {
    const hasErr = event.errorCode !== undefined;
    // A hardware exception injected after an exit is the exiting instruction's fault (e.g.
    // #GP(0) for an MSR the monitor refuses): the instruction did not complete, so its
    // completion (results, RIP advance) is dropped and the fault points at it (SDM 6.5).
    if (event.type === EventType.HardwareException) this.completion = Completion.None;
    // EventType values equal the VMX interruption types 0, 2, 3, 4 (SDM 25.8.3).
    this.eventInfo = (IntrInfo.Valid | ((event.type & 7) << IntrInfo.TypeShift) | (event.vector & 0xff)
      | (hasErr ? IntrInfo.DeliverErrorCode : 0)) >>> 0;
    this.eventError = hasErr ? event.errorCode! >>> 0 : 0;
    this.eventLen = 0; // zero-length injection (IA32_VMX_MISC[30])
    this.eventPending = true;
  }

  /**
   * Post an NMI, INIT or SIPI to the guest's logical processor (GuestControlWord.PendingEvents):
   * the kernel takes it at the next entry as hardware would (an exit under "NMI exiting", an
   * INIT exit, a SIPI exit in wait-for-SIPI; SDM 26.2), or keeps it pending while blocked.
   */
  postEvent(kind: "nmi" | "init" | "sipi", sipiVector = 0): void {
    const r = this.regs;
    if (r.length <= GuestControlWord.PendingEvents) throw new RangeError("vmx backend: the guestControl mapping is too short to post events");
    const bit = kind === "nmi" ? PendingEvent.Nmi : kind === "init" ? PendingEvent.Init : PendingEvent.Sipi;
    let w = r[GuestControlWord.PendingEvents]! | bit;
    if (kind === "sipi") w = (w & ~(0xff << PendingEvent.SipiVectorShift)) | ((sipiVector & 0xff) << PendingEvent.SipiVectorShift);
    r[GuestControlWord.PendingEvents] = w >>> 0;
  }

  setInterruptWindow(enabled: boolean): void {
    const next = enabled ? this.proc | Proc.InterruptWindow : this.proc & ~Proc.InterruptWindow;
    if (next >>> 0 !== this.proc >>> 0) { this.proc = next >>> 0; this.procDirty = true; }
  }

  /** The engine's retired-instruction count, which the kernel publishes in guestControl after each world switch. */
  instructionsRetired(): number {
    const r = this.regs;
    if (r.length <= GuestControlWord.RetiredHi) throw new RangeError("vmx backend: the guestControl mapping is too short to hold the retired-instruction count");
    return r[GuestControlWord.RetiredHi]! * 0x1_0000_0000 + r[GuestControlWord.RetiredLo]!;
  }

  // ---------------------------------------------------------------- run

  run(): VmExit {
    // A task switch the assist performed or a RAM EPT violation the backend repaired needs no
    // monitor: re-enter at once, but return a preempt exit after a batch so the run loop
    // still gets its turn.
    for (let n = 0; n < ASSISTS_PER_RUN; n++) {
      const exit = this.runOnce();
      if (exit !== null) return exit;
    }
    return this.exits.preempt;
  }

  private runOnce(): VmExit | null {
    if (this.dirty !== 0) this.flush();
    this.complete();
    if (this.eventPending) {
      this.write(F.EntryIntrInfo, this.eventInfo);
      this.write(F.EntryExceptionErrorCode, this.eventError);
      this.write(F.EntryInstrLen, this.eventLen);
      this.eventPending = false;
    } else if (this.reinjectInfo !== 0) {
      // SDM 27.2.4 / 28.2.3: an exit interrupted the delivery of an event: deliver it again
      // (as vmkitmon and KVM do), software events with their instruction length.
      this.write(F.EntryIntrInfo, this.reinjectInfo);
      if ((this.reinjectInfo & IntrInfo.DeliverErrorCode) !== 0) this.write(F.EntryExceptionErrorCode, this.reinjectError);
      this.write(F.EntryInstrLen, this.reinjectLen);
    }
    this.reinjectInfo = 0;
    if (this.procDirty) { this.write(F.ProcControls, this.proc); this.procDirty = false; }

    const err = this.launched ? this.sys.vmresume(this.dcb) : this.sys.vmlaunch(this.dcb);
    this.valid = 0;
    if (err === SysErr.VmFailValid) {
      const n = this.sys.ret.vmInstructionError;
      return this.failure(n, `${this.launched ? "VMRESUME" : "VMLAUNCH"} failed: VM-instruction error ${n} (SDM 31.4)`);
    }
    if (err === SysErr.VmFailInvalid) return this.failure(0, "VM entry failed: VMfailInvalid (no current VMCS)");
    if (err === SysErr.VmxAbort) return this.vmxAbort(this.sys.ret.value);
    this.check(this.launched ? "vmresume" : "vmlaunch", err);
    return this.decodeExit();
  }

  /** The exit information every exit kind uses (see `exitWords`). */
  private loadExitInfo(): void {
    const r = this.regs;
    if (this.exitWords) {
      this.exitReason = r[VmxExitWord.Reason]!;
      this.exitQual = r[VmxExitWord.Qualification]!;
      this.exitRip = r[VmxExitWord.Rip]!;
      const w = r[VmxExitWord.LenIntr]!;
      this.exitLen = w & 0xffff;
      this.exitIntr = w >>> 16;
    } else {
      this.exitReason = this.read(F.ExitReason);
      this.exitQual = this.read(F.ExitQualification);
      this.exitRip = this.read(F.GuestRip);
      this.exitLen = this.read(F.ExitInstrLen);
      this.exitIntr = this.read(F.GuestInterruptibility);
    }
  }

  private decodeExit(): VmExit | null {
    this.loadExitInfo();
    const reason = this.exitReason;
    if ((reason & EXIT_REASON_ENTRY_FAILURE) !== 0) {
      // SDM 27.8: the VMCS stays clear, so the next entry is a VMLAUNCH again.
      const basic = reason & 0xffff;
      return this.failure(basic, basic === ExitReason.EntryFailMsrLoading
        ? `VM entry failed loading MSRs: entry ${this.exitQual} of the VM-entry MSR-load area (exit reason 34, SDM 27.4, 27.8)`
        : `VM entry failed on guest state: exit reason ${basic}, qualification ${this.exitQual} (SDM 27.8)`);
    }
    this.launched = true;
    const regs = this.regs;
    if (VECTORING_EXITS.has(reason & 0xffff)) this.readVectoring();
    switch (reason & 0xffff) {
      case ExitReason.IoInstruction: {
        const q = this.exitQual;
        if ((q & (1 << 4)) !== 0) return this.stringIoExitFor(reason, q);
        const e = this.exits.io;
        e.size = ((q & 7) + 1) as IoExit["size"];
        e.in = (q & (1 << 3)) !== 0;
        e.port = q >>> 16;
        e.data = e.in ? 0 : (regs[Gpr.Eax]! & IO_MASK[e.size]) >>> 0;
        this.completion = e.in ? Completion.IoIn : Completion.Advance;
        this.completionLen = this.exitLen;
        return e;
      }
      case ExitReason.Cpuid: {
        const e = this.exits.cpuid;
        e.leaf = regs[Gpr.Eax]!; e.subleaf = regs[Gpr.Ecx]!;
        e.eax = 0; e.ebx = 0; e.ecx = 0; e.edx = 0;
        this.completion = Completion.Cpuid;
        this.completionLen = this.exitLen;
        return e;
      }
      case ExitReason.Hlt:
        this.exits.hlt.interruptsEnabled = (this.read(F.GuestRflags) & 0x200) !== 0;
        this.completion = Completion.Advance;
        this.completionLen = this.exitLen;
        return this.exits.hlt;
      case ExitReason.Rdmsr: case ExitReason.Wrmsr: {
        // SDM 28.1: RDMSR/WRMSR exits leave EDX:EAX and ECX as the guest had them.
        const e = this.exits.msr;
        e.write = (reason & 0xffff) === ExitReason.Wrmsr;
        e.index = regs[Gpr.Ecx]!;
        e.lo = e.write ? regs[Gpr.Eax]! : 0; e.hi = e.write ? regs[Gpr.Edx]! : 0;
        this.completion = e.write ? Completion.Advance : Completion.MsrRead;
        this.completionLen = this.exitLen;
        return e;
      }
      case ExitReason.EptViolation: return this.eptViolation(reason);
      case ExitReason.EptMisconfig:
        return this.unhandled(reason, `EPT misconfiguration at guest-physical 0x${this.read(F.GuestPhysAddr).toString(16)} (SDM 29.3.3.1): the backend's EPT tables are corrupt`);
      case ExitReason.TripleFault: return this.exits.shutdown;
      case ExitReason.TaskSwitch: return this.taskSwitch(reason);
      case ExitReason.ExternalInterrupt: return this.exits.preempt;
      case ExitReason.InterruptWindow: return this.exits.window;
      case ExitReason.ExceptionOrNmi: {
        const info = this.read(F.ExitIntrInfo);
        const e = this.exits.exception;
        e.vector = info & 0xff;
        e.hasErrorCode = (info & IntrInfo.DeliverErrorCode) !== 0;
        e.errorCode = e.hasErrorCode ? this.read(F.ExitIntrErrorCode) : 0;
        return e;
      }
      default: {
        const name = UNEMULATED_EXITS[reason & 0xffff];
        return this.unhandled(reason, name !== undefined
          ? `VMX exit ${reason & 0xffff} (${name}): the monitor does not emulate it`
          : `VMX exit reason ${reason & 0xffff} has no VmExit kind`);
      }
    }
  }

  /**
   * INS/OUTS (exit qualification bit 4, SDM 28.2.1 table 28-5): the IoAssist moves the
   * data now; RIP advances at the next run only if the REP count is used up, otherwise
   * the guest re-executes the instruction and exits again (interruptible REP). The assist
   * gets the guest state (StringIo.guest): segment checks and, with CR0.PG, the guest page
   * walk; a fault it raises (#GP/#SS(0), #PF with CR2) is injected at the instruction,
   * after the elements before it moved (SDM Vol. 2B "REP": registers updated per element).
   */
  private stringIoExitFor(reason: number, q: number): VmExit {
    const port = this.portAccess, memory = this.memory;
    // Basic, segments and control registers; not the GPRs: the assist moves ESI/EDI/ECX in
    // the guestControl words directly.
    const guest = this.getState(StateParts.Basic | StateParts.Segments | StateParts.Control);
    const why = stringIoUnsupported(port !== null, memory !== undefined, guest.cr0, true);
    if (why !== undefined) return this.unhandled(reason, why);
    const info = this.read(F.ExitInstrInfo);
    const op = this.stringIo;
    op.size = ((q & 7) + 1) as IoExit["size"];
    op.in = (q & (1 << 3)) !== 0;
    op.rep = (q & (1 << 5)) !== 0;
    op.port = q >>> 16;
    // SDM 28.2.5 table 28-8: bits 9:7 address size, bits 17:15 segment register.
    op.addrSize = ((info >>> 7) & 7) === 0 ? 2 : 4;
    const seg = (info >>> 15) & 7;
    op.srcSeg = seg < 6 ? seg : 3;
    op.guest = guest;
    op.esBase = guest.es.base;
    op.srcBase = op.in ? op.esBase : guest[SEGMENT_FIELDS[op.srcSeg]!.name].base;
    op.df = (guest.eflags & EFLAGS_DF) !== 0;
    const e = this.exits.stringIo, assist = this.ioAssist;
    const st = assist.runOnGuest(op, memory!, port!, this.regs, e);
    if (st === IoAssistStatus.Unsupported) return this.unhandled(reason, assist.message);
    if (st === IoAssistStatus.Exception) {
      // The faulting element was not started; RIP stays on the instruction (inject drops the
      // completion). VMX has no CR2 field: it travels in guestControl (flush). A fault-class
      // exception pushes RF = 1 (SDM 17.3.1.1); entry injection pushes the RFLAGS it finds.
      const s = this.state;
      if (assist.vector === 14) { s.cr2 = assist.cr2 >>> 0; this.dirty |= StateParts.Control; }
      if (faultSetsRf(assist.vector)) { s.eflags = (s.eflags | EFLAGS_RF) >>> 0; this.dirty |= StateParts.Basic; }
      this.inject({ type: EventType.HardwareException, vector: assist.vector, errorCode: assist.hasErrorCode ? assist.errorCode : undefined });
      return e;
    }
    if (op.done) {
      this.completion = Completion.Advance;
      this.completionLen = this.exitLen;
    } else {
      this.completion = Completion.None;
    }
    return e;
  }

  /**
   * Identity EPT tables for guest RAM in a frame mapped into the GuestPhysSpace above RAM
   * (the tables do not map it, so the guest cannot reach them), through the syscalls only;
   * the EPTP names them (SDM 25.6.11: WB, 4-level walk).
   */
  private enableEpt(machine: MachineCaps, mmio: Bus | undefined): void {
    const memory = this.memory;
    if (memory === undefined || mmio === undefined) throw new VmxBackendError("ept", SysErr.InvalidArgument, "ept: true needs the GuestMemory and the MMIO bus");
    const sys = this.sys;
    const bytes = identityTablesBytes(memory.size);
    this.check("ramRetype(EPT tables)", sys.ramRetype(machine.ram, ObjType.Frame, bytes));
    const frame = sys.ret.cap;
    const at = Math.ceil(memory.size / TWO_MIB) * TWO_MIB;
    this.check("gpspaceMap(EPT tables)", sys.gpspaceMap(machine.gpspace, frame, at, MapPerm.R | MapPerm.W));
    this.check("frameMap(EPT tables)", sys.frameMap(frame));
    this.eptView = sys.ret.view!;
    this.eptAt = at;
    const root = writeIdentityTables(NestedFormat.Ept, this.eptView, at, memory.size);
    this.eptp = ((root & ~0xfff) | (3 << 3) | 6) >>> 0;
    this.write(F.EptPointer, this.eptp);
    this.write(F.EptPointer | 1, 0);
    this.memAssist = new MemAssist({ memory, mmio, isMmio: (gpa) => gpa >= memory.size });
  }

  /**
   * EPT violation (SDM 28.2.1 table 28-7). Outside RAM it is MMIO: the MemAssist performs
   * the instruction against the bus and moves the registers, and the exit is returned as an
   * `mmio` exit with `count` (for the statistics; the run loop does not dispatch it); an
   * exception the assist raises is injected. On RAM the backend's identity tables lost the
   * page: it restores them and re-enters (see ramViolation). During event delivery on MMIO
   * there is no instruction to emulate (see deliveryViolation).
   */
  private eptViolation(reason: number): VmExit | null {
    const gpa = this.read(F.GuestPhysAddr);
    const q = this.exitQual;
    const assist = this.memAssist;
    if (assist === null) {
      return this.unhandled(reason, `EPT violation at guest-physical 0x${gpa.toString(16)}, qualification 0x${q.toString(16)}, with no EPT tables of the backend's (ept: false)`);
    }
    if (gpa < this.memory!.size) return this.ramViolation(reason, gpa, q);
    this.repairedGpa = -1;
    if (this.reinjectInfo !== 0) return this.deliveryViolation(reason, gpa);
    this.completion = Completion.None;
    const st = assist.run(this.getState(StateParts.All), gpa);
    if (st === MemAssistStatus.Unsupported) return this.unhandled(reason, `MMIO at 0x${gpa.toString(16)}: ${assist.message}`);
    this.dirty |= StateParts.Gprs | StateParts.Basic;
    const e = this.exits.mmio;
    e.gpa = gpa;
    e.write = (q & 2) !== 0;
    e.count = 0;
    if (st === MemAssistStatus.Exception) {
      if (assist.vector === 14) { this.state.cr2 = assist.cr2 >>> 0; this.dirty |= StateParts.Control; }
      this.inject({ type: EventType.HardwareException, vector: assist.vector, errorCode: assist.hasErrorCode ? assist.errorCode : undefined });
    } else {
      e.count = assist.count;
    }
    return e;
  }

  /**
   * An EPT violation on guest RAM: the page should be mapped, so the backend rewrites its
   * identity tables, flushes (INVEPT single-context, SDM 31.3) and re-enters, as KVM maps the
   * page and re-enters. The IDT-vectoring event, if any, is re-injected by runOnce (SDM
   * 27.2.4). With qualification bit 12 the faulting IRET had ended blocking by NMI; it runs
   * again, so the blocking is set back first (SDM 28.2.1, "NMI unblocking due to IRET").
   * A second violation at the same address right after a repair is unhandled.
   */
  private ramViolation(reason: number, gpa: number, q: number): VmExit | null {
    if (this.repairedGpa === gpa) {
      this.repairedGpa = -1;
      return this.unhandled(reason, `EPT violation on guest RAM at 0x${gpa.toString(16)} (qualification 0x${q.toString(16)}) persists after the backend restored its identity EPT tables`);
    }
    this.repairedGpa = gpa;
    this.completion = Completion.None;
    writeIdentityTables(NestedFormat.Ept, this.eptView!, this.eptAt, this.memory!.size);
    // A kernel without INVEPT caches no refused translation to flush (src/kernel/nested-paging.ts).
    const err = this.sys.invept?.(this.dcb, 1, this.eptp, 0) ?? SysErr.Ok;
    if (err !== SysErr.Ok) this.fail("invept", err, F.EptPointer);
    if ((q & IntrInfo.NmiUnblocking) !== 0) {
      this.write(F.GuestInterruptibility, this.exitIntr | INTR_BLOCKING_NMI);
      this.exitIntr |= INTR_BLOCKING_NMI;
    }
    return null;
  }

  /**
   * An EPT violation on MMIO while the CPU delivered an event (IDT-vectoring information valid,
   * SDM 27.2.4): the IDT, a stack or a TSS is outside RAM, and no instruction is there to
   * emulate. KVM stops with KVM_INTERNAL_ERROR_DELIVERY_EV; the backend returns the named
   * `unhandled` outcome `internal: "delivery-event"`. The event stays queued for re-injection.
   */
  private deliveryViolation(reason: number, gpa: number): UnhandledExit {
    const info = this.reinjectInfo;
    const type = (info & IntrInfo.TypeMask) >>> IntrInfo.TypeShift;
    const e = this.unhandled(reason, `event delivery accessed MMIO at guest-physical 0x${gpa.toString(16)}: `
      + `vector 0x${(info & 0xff).toString(16)} (${INTR_TYPE_NAMES[type]}); the guest's IDT, stack or TSS is outside RAM `
      + "(KVM: KVM_INTERNAL_ERROR_DELIVERY_EV)");
    e.internal = "delivery-event";
    return e;
  }

  /**
   * Exit 9: VMX exits on every task switch before any of it happened (SDM 26.1.2), so the
   * VMM performs it, as KVM's emulator does. The TaskSwitchAssist performs the switching
   * instruction, or the delivery of the event that reached an IDT task gate (from the
   * IDT-vectoring information: consumed, not re-injected; an INT n/INT3/INTO/INT1 with its
   * instruction length is executed again, so a fault before the commit point points at it),
   * on a scratch core. A fault the switch raises (#TS, #NP, #SS, #GP, #PF, or #DF combined
   * with the event, SDM 6.15 table 6-5) is not delivered there: it is injected at the next
   * entry (SDM 27.6), with CR2 for #PF and RF = 1 for a fault, unless the exception bitmap
   * (and for #PF the error-code mask/match, SDM 25.2) selects it; then it is the exception
   * exit the processor's own switch would give, with the gate's event as IDT-vectoring
   * information (re-injected at the next run) when the fault interrupted its delivery.
   * A triple fault (a fault while delivering #DF through a task gate) is `shutdown`.
   */
  private taskSwitch(reason: number): VmExit | null {
    const memory = this.memory;
    if (memory === undefined) return this.unhandled(reason, "VMX exit 9 (task switch): the task-switch assist needs the GuestMemory");
    const assist = this.taskAssist ??= new TaskSwitchAssist(memory, this.guestFeatures);
    const source = (this.exitQual >>> 30) as TaskSwitchSource;
    let event: TaskGateEvent | null = null;
    const info = this.reinjectInfo, infoError = this.reinjectError, len = this.reinjectLen;
    if (source === TaskSwitchSource.Gate && info !== 0) {
      const ev = this.taskEvent;
      ev.type = ((info & IntrInfo.TypeMask) >>> IntrInfo.TypeShift) as EventType;
      ev.vector = info & 0xff;
      ev.hasErrorCode = (info & IntrInfo.DeliverErrorCode) !== 0;
      ev.errorCode = infoError;
      event = ev;
      this.reinjectInfo = 0; // delivered by the switch
    }
    const st = this.getState(StateParts.All);
    const outcome = assist.perform(st, source, event, event === null ? 0 : len);
    this.setState(st, StateParts.All);
    if (outcome === TaskSwitchOutcome.Shutdown) return this.exits.shutdown;
    if (outcome === TaskSwitchOutcome.Switched) return null;
    const f = assist.fault;
    if (this.exceptionExits(f.vector, f.errorCode)) {
      const e = this.exits.exception;
      e.vector = f.vector; e.hasErrorCode = f.hasErrorCode; e.errorCode = f.hasErrorCode ? f.errorCode : 0;
      this.completion = Completion.None;
      if (f.duringEvent && event !== null) {
        // SDM 27.2.4: IDT-vectoring information names the event whose delivery faulted.
        this.reinjectInfo = info; this.reinjectError = infoError; this.reinjectLen = len;
      }
      return e;
    }
    if (f.vector === 14) st.cr2 = f.cr2 >>> 0;
    // Entry injection pushes the RFLAGS it finds; the processor pushes RF = 1 for a fault (SDM 17.3.1.1).
    if (faultSetsRf(f.vector)) st.eflags = (st.eflags | EFLAGS_RF) >>> 0;
    this.inject({ type: EventType.HardwareException, vector: f.vector, errorCode: f.hasErrorCode ? f.errorCode : undefined });
    return null;
  }

  /**
   * Whether an exception of `vector` causes an exit through the exception bitmap (SDM
   * 25.6.3; #PF: bit 14 when (error code AND mask) = match, its inverse otherwise).
   */
  private exceptionExits(vector: number, errorCode: number): boolean {
    const bitmap = this.read(F.ExceptionBitmap);
    if (vector !== 14) return ((bitmap >>> vector) & 1) !== 0;
    // Exit on bit 14 = 1 when the masked error code matches, on bit 14 = 0 when it does not.
    const matches = ((errorCode & this.read(F.PfErrorCodeMask)) >>> 0) === this.read(F.PfErrorCodeMatch);
    return ((bitmap >>> 14) & 1) === (matches ? 1 : 0);
  }

  /** Keep the exit's IDT-vectoring information for re-injection at the next run (SDM 27.2.4). */
  private readVectoring(): void {
    const info = this.read(F.IdtVectoringInfo);
    if ((info & IntrInfo.Valid) === 0) return;
    // Bit 12 is undefined in IDT-vectoring information and reserved in the entry field.
    this.reinjectInfo = (info & (IntrInfo.Valid | 0xfff)) >>> 0;
    this.reinjectError = (info & IntrInfo.DeliverErrorCode) !== 0 ? this.read(F.IdtVectoringErrorCode) : 0;
    const type = (info & IntrInfo.TypeMask) >>> IntrInfo.TypeShift;
    this.reinjectLen = type >= 4 && type <= 6 ? this.exitLen : 0;
  }

  /** Finish the previous exit's instruction (after any setState, which is flushed first). */
  private complete(): void {
    const kind = this.completion;
    if (kind === Completion.None) return;
    this.completion = Completion.None;
    const regs = this.regs;
    if (kind === Completion.IoIn) {
      const size = this.exits.io.size, mask = IO_MASK[size];
      regs[Gpr.Eax] = ((regs[Gpr.Eax]! & ~mask) | (this.exits.io.data & mask)) >>> 0;
    } else if (kind === Completion.Cpuid) {
      const e = this.exits.cpuid;
      regs[Gpr.Eax] = e.eax >>> 0; regs[Gpr.Ebx] = e.ebx >>> 0; regs[Gpr.Ecx] = e.ecx >>> 0; regs[Gpr.Edx] = e.edx >>> 0;
    } else if (kind === Completion.MsrRead) {
      regs[Gpr.Eax] = this.exits.msr.lo >>> 0; regs[Gpr.Edx] = this.exits.msr.hi >>> 0;
    }
    this.write(F.GuestRip, (this.exitRip + this.completionLen) >>> 0);
    // The instruction is done, so STI / MOV SS blocking over it has expired (SDM 25.4.2,
    // interruptibility state): an interrupt can be taken right after a completed HLT.
    const intr = this.exitIntr;
    if ((intr & INTR_BLOCKING_STI_MOVSS) !== 0) this.write(F.GuestInterruptibility, intr & ~INTR_BLOCKING_STI_MOVSS);
  }

  private failure(code: number, message: string): EntryFailureExit {
    this.completion = Completion.None;
    this.exits.failure.code = code;
    this.exits.failure.message = message;
    return this.exits.failure;
  }

  /**
   * SDM 28.7: a VMX abort (a VM-exit MSR area the kernel could not process) puts the logical
   * processor in shutdown: `unhandled`, `internal: "vmx-abort"`, code = the exit reason of the
   * exit that aborted. The kernel refuses every further entry on this VMCS until VMCLEAR, so
   * each later run() returns the same outcome (the exit reason read again from the VMCS).
   */
  private vmxAbort(indicator: number): UnhandledExit {
    const e = this.unhandled(this.read(F.ExitReason), `VMX abort, indicator ${indicator} (SDM 28.7)`);
    e.internal = "vmx-abort";
    return e;
  }

  private unhandled(reason: number, message: string): UnhandledExit {
    this.completion = Completion.None;
    this.exits.unhandled.code = reason;
    this.exits.unhandled.message = message;
    this.exits.unhandled.internal = undefined;
    return this.exits.unhandled;
  }

  // ---------------------------------------------------------------- VMCS access

  private flush(): void {
    const s = this.state, d = this.dirty, regs = this.regs;
    if (d & StateParts.Gprs) {
      regs[Gpr.Eax] = s.eax; regs[Gpr.Ecx] = s.ecx; regs[Gpr.Edx] = s.edx; regs[Gpr.Ebx] = s.ebx;
      regs[Gpr.Esp] = s.esp; regs[Gpr.Ebp] = s.ebp; regs[Gpr.Esi] = s.esi; regs[Gpr.Edi] = s.edi;
      this.write(F.GuestRsp, s.esp); // the VMCS holds RSP; the frame's ESP slot is a copy
    }
    if (d & StateParts.Basic) { this.write(F.GuestRip, s.eip); this.write(F.GuestRflags, s.eflags); this.exitRip = s.eip; }
    if (d & StateParts.Segments) for (let i = 0; i < 6; i++) this.writeSeg(i);
    if (d & StateParts.Control) {
      this.write(F.GuestCr0, s.cr0); this.write(F.GuestCr3, s.cr3); this.write(F.GuestCr4, s.cr4);
      this.write(F.GuestDr7, s.dr7); this.write(F.GuestEfer, s.efer);
      if (regs.length > GUEST_CONTROL_CR2) regs[GUEST_CONTROL_CR2] = s.cr2;
    }
    if (d & StateParts.Tables) {
      this.write(F.GuestGdtrBase, s.gdtr.base); this.write(F.GuestGdtrLimit, s.gdtr.limit);
      this.write(F.GuestIdtrBase, s.idtr.base); this.write(F.GuestIdtrLimit, s.idtr.limit);
      this.writeSeg(6); this.writeSeg(7);
    }
    if (d & StateParts.Events) {
      this.write(F.GuestActivity, s.activity); this.write(F.GuestInterruptibility, s.interruptibility);
      this.exitIntr = s.interruptibility;
    }
    this.dirty = 0;
  }

  private readParts(parts: number): void {
    const s = this.state, regs = this.regs;
    if (parts & StateParts.Gprs) {
      s.eax = regs[Gpr.Eax]!; s.ecx = regs[Gpr.Ecx]!; s.edx = regs[Gpr.Edx]!; s.ebx = regs[Gpr.Ebx]!;
      s.ebp = regs[Gpr.Ebp]!; s.esi = regs[Gpr.Esi]!; s.edi = regs[Gpr.Edi]!;
      s.esp = this.read(F.GuestRsp);
    }
    if (parts & StateParts.Basic) { s.eip = this.read(F.GuestRip); s.eflags = this.read(F.GuestRflags); }
    if (parts & StateParts.Segments) for (let i = 0; i < 6; i++) this.readSeg(i);
    if (parts & StateParts.Control) {
      s.cr0 = this.read(F.GuestCr0); s.cr3 = this.read(F.GuestCr3); s.cr4 = this.read(F.GuestCr4);
      s.dr7 = this.read(F.GuestDr7); s.efer = this.read(F.GuestEfer);
      // CR2 has no VMCS field; it is visible only when the kernel maps it in guestControl (README).
      if (regs.length > GUEST_CONTROL_CR2) s.cr2 = regs[GUEST_CONTROL_CR2]!;
    }
    if (parts & StateParts.Tables) {
      s.gdtr.base = this.read(F.GuestGdtrBase); s.gdtr.limit = this.read(F.GuestGdtrLimit);
      s.idtr.base = this.read(F.GuestIdtrBase); s.idtr.limit = this.read(F.GuestIdtrLimit);
      this.readSeg(6); this.readSeg(7);
    }
    if (parts & StateParts.Events) {
      s.activity = this.read(F.GuestActivity) as X86State["activity"];
      s.interruptibility = this.read(F.GuestInterruptibility);
    }
    this.valid |= parts;
  }

  private writeSeg(i: number): void {
    const f = SEGMENT_FIELDS[i]!, r = this.state[f.name];
    this.write(f.sel, r.selector); this.write(f.base, r.base); this.write(f.limit, r.limit); this.write(f.ar, r.attrib);
  }
  private readSeg(i: number): void {
    const f = SEGMENT_FIELDS[i]!, r = this.state[f.name];
    r.selector = this.read(f.sel); r.base = this.read(f.base); r.limit = this.read(f.limit); r.attrib = this.read(f.ar);
  }

  private read(enc: number): number {
    const err = this.sys.vmread(this.dcb, enc);
    if (err !== SysErr.Ok) this.fail("vmread", err, enc);
    return this.sys.ret.value >>> 0;
  }
  private write(enc: number, value: number): void {
    const err = this.sys.vmwrite(this.dcb, enc, value >>> 0);
    if (err !== SysErr.Ok) this.fail("vmwrite", err, enc);
  }
  private fail(call: string, err: SysErr, enc: number): never {
    const extra = err === SysErr.VmFailValid ? `, VM-instruction error ${this.sys.ret.vmInstructionError}` : "";
    throw new VmxBackendError(call, err, `field 0x${enc.toString(16).padStart(4, "0")}${extra}`);
  }
  private check(call: string, err: SysErr): void {
    if (err !== SysErr.Ok) throw new VmxBackendError(call, err);
  }
}

function copySeg(to: X86State["cs"], from: X86State["cs"]): void {
  to.selector = from.selector >>> 0; to.base = from.base >>> 0; to.limit = from.limit >>> 0; to.attrib = from.attrib >>> 0;
}

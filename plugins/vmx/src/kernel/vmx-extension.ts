// The kernel half of plugins/vmx: VMCS semantics on the VMCS region's bytes, the
// VMX instructions' outcomes (SDM Vol. 3C 31.2-31.4), the VM-entry checks (27.2-27.3),
// event injection (27.6), the world switch through the engine vCPU and exit
// encoding (chapter 28, appendix C). Emulated: the fields and exits listed in
// README.md; events (NMI, INIT/SIPI, windows, MTF, preemption timer) at instruction
// boundaries in runGuest/boundaryExit; CR3-target values (programInsnIntercepts); the
// VM-entry MSR-load, VM-exit MSR-store and MSR-load areas (processMsrList; the host's
// MSR-load list is checked, not loaded: the host is this kernel). Not emulated: CR8
// exiting, shadow VMCS, SMM.
import {
  GuestControlWord, GuestFrameRole, NestedAccess, NestedFaultKind, NestedFormat, nestedPagingFor, PendingEvent, SysErr,
  type NestedPagingMemory, type DispatcherObject, type EngineVcpu, type ExtensionContext,
  type GuestBinding, type SysRet, type VmControlObject, type VmxExtension as VmxExtensionApi, type VmxonRegion,
} from "../../../../src/kernel/api.js";
import {
  Activity, CpuExitReason, DescInsn, EventType, Gpr, InsnIntercept, Interruptibility, TaskSwitchSource, VmxInsn,
  type CpuExit, type SegmentReg, type X86State,
} from "../../../../src/x86/types.js";
import {
  EntryCtl, EXIT_REASON_ENTRY_FAILURE, ExitCtl, ExitReason, F, IntrInfo, IntrType, Pin, Proc, Proc2,
  SEGMENT_FIELDS, VmcsType, VmcsView, VmxError, VmxExitWord, existingFields, lookupField, VMCS_ABORT_OFFSET, VMCS_REGION_BYTES,
} from "../vmcs-fields.js";
import { EptCap, FeatureControl, SOFT_CAPS, VmxMsr, vmxMsrValue, type VmxCaps } from "./caps.js";
import { EntryCheckMemo, type EntryEnv, type EntryFailure } from "./entry-checks.js";
import { NO_REG } from "../../../../src/x86/decoder.js";

/** Per-VMCS private state, kept in `VmControlObject.ext`. */
export class VmcsState {
  /** SDM 25.1: launch state "clear" or "launched". */
  launched = false;
  /** Set by setupGuest: the host-state area belongs to the kernel, not the monitor. */
  hostOwned = false;
  /** The last entry failure, for diagnostics. */
  lastFailure: EntryFailure | undefined = undefined;
  /**
   * Nonzero after a VMX abort (SDM 28.7): its indicator. On hardware the logical processor
   * is then in shutdown; here the VMCS is: VMLAUNCH/VMRESUME return SysErr.VmxAbort without
   * running the guest until VMCLEAR.
   */
  aborted = 0;
  /** The entry checks, shortened while the checked fields stay as at the last passing entry. */
  readonly checks = new EntryCheckMemo();
  constructor(readonly view: VmcsView) {}
}

/**
 * The vector an acknowledged host interrupt reports (exit 1 with "acknowledge interrupt on
 * exit", SDM 28.2.2): the host's timeslice ends on the kernel's timer interrupt, which a
 * host 8259 remapped to 0x20 would deliver as vector 0x20.
 */
export const HOST_TIMER_VECTOR = 0x20;

/** What enter() tracks about events between instruction boundaries (reused; no allocation per entry). */
class EventState {
  /** A basic exit reason the extension decided (MTF, NMI, windows, INIT, SIPI, timer), or -1: the core's exit. */
  synth = -1;
  synthQual = 0;
  synthIntr = 0;
  pin = 0;
  proc = 0;
  /** GuestControlWord.PendingEvents as read at entry; written back at exit. */
  posted = 0;
  mtfPending = false;
  /** The vCPU clock (vcpuClock) at which the preemption timer reaches 0 (Infinity: timer off). */
  timerDeadline = Infinity;
  timerRate = 1;
  set(reason: number, qual: number, intr: number): true {
    this.synth = reason; this.synthQual = qual; this.synthIntr = intr;
    return true;
  }
}

/** Per-guest private state, kept in `GuestBinding.ext`. */
class GuestState {
  readonly events = new EventState();
  /** Reused for every entry/exit: no allocation on the world-switch path. */
  readonly state: X86State = blankState();
  readonly env: EntryEnv;
  /**
   * The core's I/O bitmap is one bit per port over 65536 bits: bitmap A followed by B
   * (SDM 25.6.4). When the two bound frames are adjacent in one buffer this is a view
   * on them (`ioView`, rebuilt only when the bound frames change); else they are copied
   * into `ioCopy` at each entry.
   */
  readonly ioCopy = new Uint8Array(8192);
  ioA: Uint8Array | null = null;
  ioB: Uint8Array | null = null;
  ioView: Uint8Array | null = null;
  /** The EPT walker over the bound GuestPhysSpace (null: the engine cannot install one), and whether it is installed. */
  nested: NestedPagingMemory | null = null;
  nestedOn = false;
  constructor(eptRoot: number, frames: GuestBinding["frames"], eptTableRam?: (pa: number) => boolean, memory?: EntryEnv["memory"]) {
    this.env = { eptRoot, frames, eptTableRam, memory };
  }

  /** The 8 KiB bitmap for the core, from the bound frames (the entry checks made sure both are bound). */
  ioBitmap(a: Uint8Array, b: Uint8Array): Uint8Array {
    if (a !== this.ioA || b !== this.ioB) {
      this.ioA = a; this.ioB = b;
      this.ioView = a.buffer === b.buffer && b.byteOffset === a.byteOffset + 4096 && a.byteLength >= 4096
        ? new Uint8Array(a.buffer, a.byteOffset, 8192) : null;
    }
    if (this.ioView !== null) return this.ioView;
    this.ioCopy.set(a.subarray(0, 4096), 0);
    this.ioCopy.set(b.subarray(0, 4096), 4096);
    return this.ioCopy;
  }
}

const seg = (): SegmentReg => ({ selector: 0, base: 0, limit: 0, attrib: 0 });
function blankState(): X86State {
  return {
    eax: 0, ecx: 0, edx: 0, ebx: 0, esp: 0, ebp: 0, esi: 0, edi: 0, eip: 0, eflags: 2,
    es: seg(), cs: seg(), ss: seg(), ds: seg(), fs: seg(), gs: seg(), ldtr: seg(), tr: seg(),
    gdtr: { base: 0, limit: 0 }, idtr: { base: 0, limit: 0 },
    cr0: 0, cr2: 0, cr3: 0, cr4: 0, dr7: 0x400, efer: 0, activity: 0, interruptibility: 0,
  };
}

/** The GPR slots of the guestControl frame, and where this extension keeps CR2 (no VMCS field holds it). */
const GUEST_CONTROL_CR2 = 8;
/** Exit qualification of a #DB (SDM 28.2.1 table 28-1): B0-B3 (3:0), BD (13), BS (14). */
const DB_QUAL_BITS = 0x600f;

/**
 * Host state the kernel writes at setupGuest. Nothing on the soft engine consumes it
 * (the "host" is this kernel), but it is real VMCS data that the host checks verify,
 * as vmkitmon's kernel initialises it.
 */
export const KERNEL_HOST_STATE: ReadonlyArray<readonly [number, number]> = [
  [F.HostCr0, 0x80000031], [F.HostCr3, 0], [F.HostCr4, 0],
  [F.HostCsSel, 0x08], [F.HostSsSel, 0x10], [F.HostDsSel, 0x10], [F.HostEsSel, 0x10],
  [F.HostFsSel, 0x10], [F.HostGsSel, 0x10], [F.HostTrSel, 0x18],
  [F.HostRsp, 0], [F.HostRip, 0],
];

/** EPTP for a root: memory type WB (6), page-walk length 4 (bits 5:3 = 3) (SDM 25.6.11). */
export const eptPointerFor = (root: number): number => ((root & ~0xfff) | (3 << 3) | 6) >>> 0;

/**
 * The (modelled) host processor VMX bring-up runs on: what DragonFly's vmx_init and
 * Barrelfish's vmkit_init look at before VMXON. The soft engine's host has VMX,
 * firmware left IA32_FEATURE_CONTROL locked with VMXON outside SMX enabled, and the
 * kernel runs with paging on.
 */
export interface VmxHostCpu {
  /** CPUID.1:ECX[5] (SDM 24.6). */
  cpuidVmx: boolean;
  /** IA32_FEATURE_CONTROL (SDM 24.7). */
  featureControl: number;
  cr0: number;
  /** CR4.VMXE (bit 13) is set by vmxon, as the kernels do before VMXON. */
  cr4: number;
}

/** PE, ET, NE, PG: as KERNEL_HOST_STATE's host CR0. */
export const SOFT_HOST: Readonly<VmxHostCpu> = {
  cpuidVmx: true, featureControl: FeatureControl.Lock | FeatureControl.VmxOutsideSmx, cr0: 0x80000031, cr4: 0,
};
export const CR4_VMXE = 1 << 13;
/** VM-instruction error 15: VMXON executed in VMX root operation (SDM 31.4). */
export const VMXON_IN_VMX_ROOT = 15;

export class VmxExtension implements VmxExtensionApi {
  readonly kind = "vmx" as const;
  private ctx: ExtensionContext | undefined;
  /** The current-VMCS pointer of each DCB (SDM 24.1): one logical processor per DCB. */
  private current = new WeakMap<DispatcherObject, VmControlObject>();
  /** The full encodings VMREAD/VMWRITE accept: the table's fields whose feature `caps` reports. */
  private readonly exists: ReadonlySet<number>;
  readonly host: VmxHostCpu;
  /** VMX operation (SDM 24.1): entered by VMXON, left by VMXOFF. One per kernel (the modelled host CPU). */
  private inVmx = false;
  private vmxonRegion: VmxonRegion | null = null;
  /** Every guest's EPT walker, for all-context INVEPT. */
  private readonly nestedWalkers = new Set<NestedPagingMemory>();

  constructor(readonly caps: VmxCaps = SOFT_CAPS, host: Partial<VmxHostCpu> = {}) {
    this.exists = new Set(existingFields(caps));
    this.host = { ...SOFT_HOST, ...host };
  }

  attach(ctx: ExtensionContext): void { this.ctx = ctx; }

  /** In VMX operation (after VMXON, before VMXOFF). */
  get vmxOperation(): boolean { return this.inVmx; }
  /** The VMXON region of the current VMX operation. */
  get currentVmxonRegion(): VmxonRegion | null { return this.vmxonRegion; }

  /** IA32_FEATURE_CONTROL as the host reports it, and the VMX capability MSRs (SDM appendix A). */
  readCapability(msr: number, ret: SysRet): SysErr {
    const v = msr === VmxMsr.FeatureControl ? BigInt(this.host.featureControl >>> 0) : vmxMsrValue(this.caps, msr);
    if (v === undefined) return SysErr.InvalidArgument;
    ret.value = Number(v & 0xffffffffn) >>> 0;
    ret.valueHigh = Number(v >> 32n) >>> 0;
    return SysErr.Ok;
  }

  /**
   * Bring-up and VMXON, in the order of DragonFly's vmx_init/vmx_enable: CPUID.1:ECX.VMX,
   * IA32_FEATURE_CONTROL (set and locked if firmware left it unlocked; locked without
   * VMXON-outside-SMX means VMX is disabled: NoExtension), CR4.VMXE set, then the SDM 31.3
   * VMXON pseudo-code: already in VMX operation → VMfailValid 15; CR0/CR4 outside their
   * fixed bits → #GP(0), reported as InvalidArgument; region not 4 KiB aligned, smaller
   * than IA32_VMX_BASIC[44:32], or a revision other than IA32_VMX_BASIC[30:0] (bit 31
   * set included) → VMfailInvalid.
   */
  vmxon(region: VmxonRegion, ret: SysRet): SysErr {
    const h = this.host;
    if (!h.cpuidVmx) return SysErr.NoExtension;
    if ((h.featureControl & FeatureControl.Lock) === 0) h.featureControl |= FeatureControl.Lock | FeatureControl.VmxOutsideSmx;
    if ((h.featureControl & FeatureControl.VmxOutsideSmx) === 0) return SysErr.NoExtension;
    h.cr4 = (h.cr4 | CR4_VMXE) >>> 0;
    if (this.inVmx) {
      // VMXON names no logical processor's current VMCS here (it takes no DCB), so the
      // error number is reported in ret only, not written to any VMCS.
      ret.vmInstructionError = VMXON_IN_VMX_ROOT;
      return SysErr.VmFailValid;
    }
    if (!hostCrFixedOk(h, this.caps)) return SysErr.InvalidArgument;
    if ((region.paddr & 0xfff) !== 0 || region.bytes.length < VMCS_REGION_BYTES) return SysErr.VmFailInvalid;
    const rev = new DataView(region.bytes.buffer, region.bytes.byteOffset, 4).getUint32(0, true);
    if (rev !== this.caps.revision) return SysErr.VmFailInvalid;
    this.inVmx = true;
    this.vmxonRegion = region;
    // SDM 24.11.1: the current-VMCS pointer is invalid after VMXON.
    this.current = new WeakMap();
    return SysErr.Ok;
  }

  /** VMXOFF (SDM 31.3): #UD outside VMX operation; clears CR4.VMXE afterwards, as vmx_disable does. */
  vmxoff(_ret: SysRet): SysErr {
    if (!this.inVmx) return SysErr.NotInVmxOperation;
    this.inVmx = false;
    this.vmxonRegion = null;
    this.host.cr4 = (this.host.cr4 & ~CR4_VMXE) >>> 0;
    return SysErr.Ok;
  }

  initControl(ctl: VmControlObject): void {
    if (ctl.kind !== "vmcs") return;
    const view = new VmcsView(ctl.bytes);
    view.bytes.fill(0);
    view.revision = this.caps.revision;
    // Architecturally the link pointer has no reset value; all-ones is the only value this slice supports.
    view.set(F.VmcsLinkPtr, 0xffffffff);
    view.set(F.VmcsLinkPtr | 1, 0xffffffff);
    ctl.ext = new VmcsState(view);
  }

  setupGuest(_dcb: DispatcherObject, guest: GuestBinding): SysErr {
    const st = vmcsState(guest.vmcontrol);
    if (st === undefined || guest.vmcontrol.bytes.length < VMCS_REGION_BYTES) return SysErr.InvalidArgument;
    if (guest.guestControl.length < 8) return SysErr.InvalidArgument;
    for (const [enc, value] of KERNEL_HOST_STATE) st.view.set(enc, value);
    st.hostOwned = true;
    st.view.set(F.EptPointer, eptPointerFor(guest.gpspace.paddr));
    // A monitor-built EPT needs an engine that takes a new PhysMemory (EngineVcpu.setMemory).
    const nested = typeof guest.vcpu?.setMemory === "function" ? nestedPagingFor(guest.gpspace.memory) : null;
    const host = nested?.host;
    const gs = new GuestState(guest.gpspace.paddr, guest.frames,
      host === undefined ? undefined : (pa) => host.mappingAt(pa) !== null, guest.gpspace.memory);
    gs.nested = nested;
    // With EPT A/D, guest paging-structure accesses count as writes (SDM 29.3.3.2).
    if (nested !== null && guest.vcpu !== undefined) nested.walkSource = guest.vcpu.exit;
    if (nested !== null) this.nestedWalkers.add(nested);
    guest.ext = gs;
    return SysErr.Ok;
  }

  // -------------------------------------------------------------------------
  // VMX instructions (SDM 31.3)

  vmptrld(dcb: DispatcherObject, ctl: VmControlObject, ret: SysRet): SysErr {
    if (!this.inVmx) return SysErr.NotInVmxOperation;
    const st = vmcsState(ctl);
    if (st === undefined || (ctl.paddr & 0xfff) !== 0) return this.fail(dcb, VmxError.VmptrldInvalidAddress, ret);
    // Bit 31 is the shadow-VMCS indicator; shadow VMCSs are not supported, so it must be 0.
    if (st.view.revision !== this.caps.revision) return this.fail(dcb, VmxError.VmptrldWrongRevision, ret);
    this.current.set(dcb, ctl);
    return SysErr.Ok;
  }

  vmclear(dcb: DispatcherObject, ctl: VmControlObject, ret: SysRet): SysErr {
    if (!this.inVmx) return SysErr.NotInVmxOperation;
    const st = vmcsState(ctl);
    if (st === undefined || (ctl.paddr & 0xfff) !== 0) return this.fail(dcb, VmxError.VmclearInvalidAddress, ret);
    st.launched = false;
    // After a VMX abort VMCLEAR ends the VMCS's shutdown and zeroes the indicator: the monitor
    // cannot map a VMCS region to clear it as SDM 25.2 lets software do.
    if (st.aborted !== 0) { st.aborted = 0; st.view.dv.setUint32(VMCS_ABORT_OFFSET, 0, true); }
    if (this.current.get(dcb) === ctl) this.current.delete(dcb);
    return SysErr.Ok;
  }

  vmread(dcb: DispatcherObject, encoding: number, ret: SysRet): SysErr {
    if (!this.inVmx) return SysErr.NotInVmxOperation;
    const ctl = this.current.get(dcb);
    if (ctl === undefined) return SysErr.VmFailInvalid;
    const info = lookupField(encoding);
    if (info === undefined || !this.exists.has(info.encoding)) return this.fail(dcb, VmxError.UnsupportedComponent, ret);
    ret.value = (ctl.ext as VmcsState).view.readInfo(info, (encoding & 1) === 1);
    return SysErr.Ok;
  }

  vmwrite(dcb: DispatcherObject, encoding: number, value: number, ret: SysRet): SysErr {
    if (!this.inVmx) return SysErr.NotInVmxOperation;
    const ctl = this.current.get(dcb);
    if (ctl === undefined) return SysErr.VmFailInvalid;
    const info = lookupField(encoding);
    if (info === undefined || !this.exists.has(info.encoding)) return this.fail(dcb, VmxError.UnsupportedComponent, ret);
    // IA32_VMX_MISC[29] = 0: exit-information fields are read-only (SDM 31.3 VMWRITE).
    if (info.type === VmcsType.ReadOnly) return this.fail(dcb, VmxError.VmwriteReadOnly, ret);
    const st = ctl.ext as VmcsState;
    // Host state written by setupGuest is the kernel's: no monitor right reaches it.
    if (info.type === VmcsType.Host && st.hostOwned) return SysErr.CapNoRight;
    st.view.writeInfo(info, (encoding & 1) === 1, value);
    return SysErr.Ok;
  }

  vmlaunch(dcb: DispatcherObject, ret: SysRet): SysErr { return this.enter(dcb, ret, true); }
  vmresume(dcb: DispatcherObject, ret: SysRet): SysErr { return this.enter(dcb, ret, false); }

  /**
   * INVEPT (SDM 31.3): type 1 flushes the translations derived from the EPTP operand,
   * type 2 all of them. Types the capability MSR does not report and, for type 1, an
   * EPTP that VM entry would reject (SDM 27.2.1.1) are VMfailValid 28.
   */
  invept(dcb: DispatcherObject, type: number, eptpLo: number, eptpHi: number, ret: SysRet): SysErr {
    if (!this.inVmx) return SysErr.NotInVmxOperation;
    if (this.current.get(dcb) === undefined) return SysErr.VmFailInvalid;
    const cap = vmxMsrValue(this.caps, VmxMsr.EptVpidCap) ?? 0n;
    const supported = type === 1 ? (cap & EptCap.InveptSingle) !== 0n : type === 2 ? (cap & EptCap.InveptAll) !== 0n : false;
    if (!supported || (cap & EptCap.Invept) === 0n) return this.fail(dcb, VmxError.InvalidInveptOperand, ret);
    if (type === 1 && (!this.caps.eptMemTypes.includes(eptpLo & 7) || ((eptpLo >>> 3) & 7) !== 3
      || (eptpLo & (this.caps.eptAccessedDirty === true ? 0xf80 : 0xfc0)) !== 0 || eptpHi !== 0)) {
      return this.fail(dcb, VmxError.InvalidInveptOperand, ret);
    }
    const root = (eptpLo & ~0xfff) >>> 0;
    for (const w of this.nestedWalkers) {
      if (type === 2 || (w.format === NestedFormat.Ept && w.root === root)) w.flush();
    }
    return SysErr.Ok;
  }

  /**
   * The guest's physical memory for this entry: with "enable EPT" and an EPTP naming tables
   * in the bound space, the EPT walker (a new EPTP flushes its one cache, which stands for
   * the EPTP-tagged ones of SDM 29.4); with the EPTP naming the space's root (the
   * kernel-managed EPT), or EPT off, the space itself.
   */
  private installEpt(v: VmcsView, guest: GuestBinding, gs: GuestState, proc2: number): void {
    const w = gs.nested;
    if (w === null) return;
    const root = (v.get(F.EptPointer) & ~0xfff) >>> 0;
    const on = (proc2 & Proc2.EnableEpt) !== 0 && root !== guest.gpspace.paddr >>> 0;
    // EPTP bit 6 enables accessed/dirty flags (SDM 29.3.5).
    if (on) w.setRoot(NestedFormat.Ept, root, (v.get(F.EptPointer) & 0x40) !== 0);
    if (on !== gs.nestedOn) {
      guest.vcpu.setMemory!(on ? w : guest.gpspace.memory);
      gs.nestedOn = on;
    }
  }

  /**
   * The exit qualification of an EPT violation (SDM 28.2.1 table 28-7): bits 2:0 the
   * access, 5:3 the AND of the entries' R/W/X, 7 guest-linear address valid, 8 the access
   * translated a linear address (0: a guest paging-structure access). Writes the
   * guest-physical and guest-linear address fields (also for a misconfiguration, 28.2.1).
   * Bit 12 (NMI unblocking due to IRET) is added by encodeExit (nmiUnblockedByIret).
   */
  private eptQualification(v: VmcsView, gs: GuestState, e: CpuExit): number {
    const w = gs.nested;
    const own = w !== null && w.faultKind !== NestedFaultKind.None;
    const gpa = own ? w.faultGpa : e.memGpa;
    v.set(F.GuestPhysAddr, gpa >>> 0);
    v.set(F.GuestPhysAddr | 1, 0);
    const access = own ? w.faultAccess : e.memFetch ? NestedAccess.Fetch : e.memWrite ? NestedAccess.Write : NestedAccess.Read;
    let qual = access | ((own ? w.faultPerms : 0) << 3);
    if (e.memLinearValid) {
      qual |= (1 << 7) | (e.memWalk ? 0 : 1 << 8);
      v.set(F.GuestLinearAddr, (e.memLinear + (gpa - e.memGpa)) >>> 0);
    }
    return qual >>> 0;
  }

  /** The current VMCS of a DCB (for the kernel's diagnostics and tests). */
  currentVmcs(dcb: DispatcherObject): VmControlObject | undefined { return this.current.get(dcb); }

  // -------------------------------------------------------------------------

  /** VMfail (SDM 31.2): VMfailValid with a current VMCS, VMfailInvalid without. */
  private fail(dcb: DispatcherObject, error: number, ret: SysRet): SysErr {
    const ctl = this.current.get(dcb);
    if (ctl === undefined) return SysErr.VmFailInvalid;
    (ctl.ext as VmcsState).view.set(F.VmInstructionError, error);
    ret.vmInstructionError = error;
    return SysErr.VmFailValid;
  }

  /** 512 * (N + 1): the MSR-list length IA32_VMX_MISC[27:25] recommends; longer lists fail (processMsrList). */
  private get msrListMax(): number {
    return 512 * (this.caps.msrListN + 1);
  }

  /**
   * SDM 27.8: a VM-entry failure after the control and host checks (33 guest state, 34 MSR
   * loading): exit reason with bit 31 and the qualification; the VM-exit MSR-load area is
   * processed, nothing is stored; the launch state does not change.
   */
  private entryFailure(st: VmcsState, guest: GuestBinding, reason: number, qualification: number, ret: SysRet): SysErr {
    const v = st.view;
    v.set(F.ExitReason, (EXIT_REASON_ENTRY_FAILURE | reason) >>> 0);
    v.set(F.ExitQualification, qualification);
    v.set(F.ExitIntrInfo, 0);
    v.set(F.IdtVectoringInfo, 0);
    this.loadHostMsrs(st, guest);
    publishExit(v, guest.guestControl);
    return this.aborted(st, ret);
  }

  /** SDM 28.7: record a VMX abort: the indicator at byte 4 of the VMCS region; the VMCS is in shutdown until VMCLEAR. */
  private abort(st: VmcsState, indicator: number): void {
    st.aborted = indicator;
    st.view.dv.setUint32(VMCS_ABORT_OFFSET, indicator, true);
  }

  /** The result of an entry on `st`: VmxAbort with the indicator in ret.value after a VMX abort, else Ok. */
  private aborted(st: VmcsState, ret: SysRet): SysErr {
    if (st.aborted === 0) return SysErr.Ok;
    ret.value = st.aborted;
    return SysErr.VmxAbort;
  }

  /**
   * SDM 28.6: the VM-exit MSR-load area. The host is this kernel, whose MSRs no monitor may
   * set: each entry is checked by the SDM's rules (reserved bits, forbidden indices) and
   * nothing is loaded. A failing entry is a VMX abort (28.7): indicator 4 in the VMCS region;
   * the exit information is still written (for diagnostics) and the entry returns VmxAbort.
   */
  private loadHostMsrs(st: VmcsState, guest: GuestBinding): void {
    const v = st.view;
    if (processMsrList(guest.frames[GuestFrameRole.VmxExitMsrLoad], v.get(F.ExitMsrLoadAddr),
      v.get(F.ExitMsrLoadCount), this.msrListMax, guest.vcpu, 2) !== 0) this.abort(st, VmxAbort.LoadHostMsrs);
  }

  private enter(dcb: DispatcherObject, ret: SysRet, launch: boolean): SysErr {
    if (!this.inVmx) return SysErr.NotInVmxOperation;
    const guest = dcb.guest;
    if (guest === null || !(guest.ext instanceof GuestState)) return SysErr.NotGuest;
    const ctl = this.current.get(dcb);
    if (ctl === undefined) return SysErr.VmFailInvalid;
    const st = ctl.ext as VmcsState;
    const v = st.view;
    // SDM 28.7: after a VMX abort the processor is in shutdown; nothing runs until VMCLEAR.
    if (st.aborted !== 0) return this.aborted(st, ret);
    // SDM 27.1: launch-state checks come before the field checks.
    if (launch && st.launched) return this.fail(dcb, VmxError.VmlaunchNonClear, ret);
    if (!launch && !st.launched) return this.fail(dcb, VmxError.VmresumeNonLaunched, ret);
    const gs = guest.ext;
    const failure = st.checks.run(v, this.caps, gs.env);
    st.lastFailure = failure;
    if (failure !== undefined) {
      if (failure.kind !== "guest") return this.fail(dcb, failure.code, ret);
      // SDM 27.8: a guest-state failure is a VM exit with bit 31 set; guest state is not
      // saved (nothing was loaded) and the launch state does not change.
      return this.entryFailure(st, guest, ExitReason.EntryFailGuestState, failure.qualification, ret);
    }
    this.loadGuest(v, guest, gs.state);
    const info = v.get(F.EntryIntrInfo);
    const infoType = (info & IntrInfo.TypeMask) >>> IntrInfo.TypeShift;
    // SDM 27.6.1.1: a software event's return address is RIP + the VM-entry instruction length.
    if ((info & IntrInfo.Valid) !== 0 && infoType >= IntrType.SoftwareInt && infoType <= IntrType.SoftwareException) {
      gs.state.eip = (gs.state.eip + v.get(F.EntryInstrLen)) >>> 0;
    }
    const vcpu = guest.vcpu;
    vcpu.setState(gs.state);
    // SDM 27.4: the VM-entry MSR-load area, after the guest state; a failing entry ends the
    // entry with exit 34 | bit 31 and its number as qualification (27.8). The MSRs loaded
    // before it stay loaded in the guest vCPU (the guest-state area is not touched).
    const msrFail = processMsrList(guest.frames[GuestFrameRole.VmxEntryMsrLoad], v.get(F.EntryMsrLoadAddr),
      v.get(F.EntryMsrLoadCount), this.msrListMax, vcpu, 0);
    if (msrFail !== 0) return this.entryFailure(st, guest, ExitReason.EntryFailMsrLoading, msrFail, ret);
    const proc = v.get(F.ProcControls);
    const pin = v.get(F.PinControls);
    const proc2 = (proc & Proc.ActivateSecondary) !== 0 ? v.get(F.Proc2Controls) : 0;
    this.installEpt(v, guest, gs, proc2);
    const ic = vcpu.intercepts;
    ic.hlt = (proc & Proc.HltExiting) !== 0;
    ic.cpuid = true; // CPUID exits unconditionally in VMX non-root operation (SDM 26.1.2)
    // SDM 26.1.3: with use I/O bitmaps = 1, unconditional I/O exiting is ignored.
    if ((proc & Proc.UseIoBitmaps) !== 0) {
      ic.ioAll = false;
      ic.ioBitmap = gs.ioBitmap(guest.frames[GuestFrameRole.VmxIoBitmapA]!.bytes, guest.frames[GuestFrameRole.VmxIoBitmapB]!.bytes);
    } else {
      ic.ioAll = (proc & Proc.UncondIoExiting) !== 0;
      ic.ioBitmap = null;
    }
    ic.softIntBitmap = null;
    programInsnIntercepts(v, proc, proc2, ic);
    // SDM 25.6.2: without "enable RDTSCP", RDTSCP is #UD.
    vcpu.rdtscpEnabled = (proc2 & Proc2.EnableRdtscp) !== 0;
    // SDM 26.1.2: task switches exit unconditionally in VMX non-root operation; with the
    // hvkit task-switch assist posted after an exit 9, the first one is performed instead.
    // SDM 25.6.9: the entry checks made sure the MSR-bitmap frame is bound.
    ic.msrBitmap = (proc & Proc.UseMsrBitmaps) !== 0 ? guest.frames[GuestFrameRole.VmxMsrBitmap]!.bytes : null;
    // SDM 26.3: RDTSC and RDMSR IA32_TSC return TSC + offset (a signed 64-bit field; a
    // double is exact up to 2^53, far beyond the instruction-count TSC).
    vcpu.tscOffset = (proc & Proc.TscOffsetting) !== 0
      ? (v.get(F.TscOffset | 1) | 0) * 4294967296 + (v.get(F.TscOffset) >>> 0) : 0;
    // SDM 27.6.1: an injected event is delivered without consulting the exception bitmap
    // (deliverEvent skips it for that event); faults while delivering it consult it.
    ic.exceptionBitmap = coreExceptionBitmap(v);

    const ev = gs.events;
    ev.synth = -1;
    ev.pin = pin; ev.proc = proc;
    ev.mtfPending = false;
    ev.posted = guest.guestControl.length > GuestControlWord.PendingEvents ? guest.guestControl[GuestControlWord.PendingEvents]! : 0;
    // SDM 26.1.2: task switches always exit; the monitor performs them (TaskSwitchAssist).
    ic.taskSwitchExit = true;
    let reason: CpuExitReason = CpuExitReason.None;
    let injectExit = false;
    // SDM 27.6: event injection after the guest state is loaded; VM entry clears the valid bit.
    if ((info & IntrInfo.Valid) !== 0) {
      v.set(F.EntryIntrInfo, info & ~IntrInfo.Valid);
      if (infoType === IntrType.OtherEvent) {
        ev.mtfPending = true; // SDM 27.6.4: type 7 vector 0 is a pending MTF VM exit
      } else {
        const hasErr = (info & IntrInfo.DeliverErrorCode) !== 0;
        vcpu.deliverEvent(eventTypeOf(infoType), info & 0xff, hasErr ? v.get(F.EntryExceptionErrorCode) : 0, hasErr);
        // SDM 27.7.? / 26.5.2: with the monitor trap flag, an MTF exit is pending before the
        // first instruction of the handler of an injected event.
        ev.mtfPending = (proc & Proc.MonitorTrapFlag) !== 0;
        // An exit while delivering it (an intercepted nested exception, a refused access,
        // a triple fault) ends the entry there, with IDT-vectoring information (SDM 27.2.4).
        reason = vcpu.exit.reason;
        if (reason !== CpuExitReason.None) injectExit = true;
      }
    }
    // SDM 26.5.1: the timer counts down by 1 each time TSC bit X changes (X = IA32_VMX_MISC[4:0]).
    const rate = 2 ** this.caps.preemptionTimerRate;
    ev.timerDeadline = (pin & Pin.PreemptionTimer) !== 0
      ? (Math.floor(vcpuClock(vcpu) / rate) + (v.get(F.PreemptionTimerValue) >>> 0)) * rate : Infinity;
    ev.timerRate = rate;

    // An injected event performed the assisted task switch (through a task gate), if any.
    if ((info & IntrInfo.Valid) !== 0 && infoType !== IntrType.OtherEvent) ic.taskSwitchExit = true;
    if (!injectExit) reason = this.runGuest(v, gs, vcpu, proc);
    ic.taskSwitchExit = true;

    vcpu.getState(gs.state);
    this.saveGuest(v, guest, gs.state);
    this.encodeExit(v, guest, reason);
    // SDM 28.4: the guest's MSRs into the VM-exit MSR-store area (a failure is a VMX abort,
    // 28.7: indicator 1, no host MSRs loaded), then 28.6: the VM-exit MSR-load area.
    if (processMsrList(guest.frames[GuestFrameRole.VmxExitMsrStore], v.get(F.ExitMsrStoreAddr),
      v.get(F.ExitMsrStoreCount), this.msrListMax, vcpu, 1) !== 0) this.abort(st, VmxAbort.SaveGuestMsrs);
    else this.loadHostMsrs(st, guest);
    if (guest.guestControl.length > GuestControlWord.PendingEvents) guest.guestControl[GuestControlWord.PendingEvents] = ev.posted;
    // SDM 28.2.3: a VM exit during delivery of a software event injected by this entry
    // reports the VM-entry instruction length and leaves RIP on the instruction (before
    // injection the kernel advanced it for the return address).
    if (injectExit && vcpu.exit.vectoringValid && infoType >= IntrType.SoftwareInt && infoType <= IntrType.SoftwareException) {
      const elen = v.get(F.EntryInstrLen);
      v.set(F.GuestRip, (v.get(F.GuestRip) - elen) >>> 0);
      v.set(F.ExitInstrLen, elen);
    }
    // SDM 28.3.2 / 25.7.1: "save VMX-preemption timer value" stores what is left.
    if ((pin & Pin.PreemptionTimer) !== 0 && (v.get(F.ExitControls) & ExitCtl.SavePreemptionTimer) !== 0) {
      v.set(F.PreemptionTimerValue, Math.max(0, Math.ceil((ev.timerDeadline - vcpuClock(vcpu)) / rate)));
    }
    publishExit(v, guest.guestControl);
    if (launch) st.launched = true;
    return this.aborted(st, ret);
  }

  /**
   * Run the guest until an exit: the core runs free when nothing can happen at an
   * instruction boundary; with the interrupt/NMI window, the monitor trap flag or an NMI
   * waiting for its blocking to end it is stepped one instruction at a time and the
   * boundary conditions are checked after each (SDM 26.7). Returns the core's reason, or
   * None with `gs.events.synth` naming an exit the extension decided itself.
   */
  private runGuest(v: VmcsView, gs: GuestState, vcpu: EngineVcpu, proc: number): CpuExitReason {
    const ev = gs.events;
    const timeslice = this.ctx?.timeslice ?? 100_000;
    if (this.boundaryExit(v, gs, vcpu)) return ev.synth >= 0 ? CpuExitReason.None : vcpu.exit.reason;
    // SDM 25.4.2: in the shutdown state no instruction runs; only INIT, an exiting NMI or
    // the preemption timer (above) end it, else the host's timeslice does.
    if (gs.state.activity === Activity.Shutdown && vcpu.exit.reason === CpuExitReason.None) {
      vcpu.getState(gs.state);
      if (gs.state.activity === Activity.Shutdown) return this.haltedWait(gs, vcpu, timeslice);
    }
    const mtf = (proc & Proc.MonitorTrapFlag) !== 0;
    let reason: CpuExitReason = CpuExitReason.Budget;
    if (!vcpu.intercepts.taskSwitchExit) {
      // Task-switch assist: the instruction that exited with reason 9 runs once with the
      // switch performed by the engine; every later task switch exits again.
      reason = vcpu.run(1);
      vcpu.intercepts.taskSwitchExit = true;
      if (reason !== CpuExitReason.Budget && reason !== CpuExitReason.Halted) return reason;
      if (mtf) ev.mtfPending = true;
      if (this.boundaryExit(v, gs, vcpu)) return ev.synth >= 0 ? CpuExitReason.None : vcpu.exit.reason;
    }
    for (let used = 0; used < timeslice;) {
      const stepping = (proc & (Proc.InterruptWindow | Proc.NmiWindow | Proc.MonitorTrapFlag)) !== 0
        || (ev.posted & PendingEvent.Nmi) !== 0;
      const left = Math.min(timeslice - used, ev.timerDeadline - vcpuClock(vcpu));
      const budget = stepping ? 1 : Math.max(1, left);
      const before = vcpu.retired, usedBefore = used;
      reason = vcpu.run(budget);
      used += Math.max(1, vcpu.retired - before);
      if (reason === CpuExitReason.Exception && vcpu.exit.vector === 14) {
        if (!this.pageFaultExits(v, gs, vcpu)) continue;
        return vcpu.exit.reason;
      }
      if (reason !== CpuExitReason.Budget && reason !== CpuExitReason.Halted) return reason;
      // Halted with nothing retired: the guest was already waiting (HLT, wait-for-SIPI).
      const progressed = vcpu.retired !== before || reason === CpuExitReason.Budget;
      if (mtf && progressed) ev.mtfPending = true; // SDM 26.5.2: after each instruction
      if (this.boundaryExit(v, gs, vcpu)) return ev.synth >= 0 ? CpuExitReason.None : vcpu.exit.reason;
      if (reason === CpuExitReason.Halted) return this.haltedWait(gs, vcpu, timeslice - usedBefore - (vcpu.retired - before));
    }
    return reason;
  }

  /**
   * The guest waits for the rest of the timeslice (`rest` instruction-times) in HLT or
   * shutdown: the engine's clock goes on (EngineVcpu.wait: idle time, the TSC), and the
   * VMX-preemption timer counts down in both states, not in wait-for-SIPI (SDM 26.5.1): it
   * ends the wait with exit 52 at its deadline. Else Halted: the timeslice ended (exit 1).
   */
  private haltedWait(gs: GuestState, vcpu: EngineVcpu, rest: number): CpuExitReason {
    if (vcpu.wait === undefined || rest <= 0) return CpuExitReason.Halted;
    vcpu.getState(gs.state);
    const a = gs.state.activity;
    if (a !== Activity.Hlt && a !== Activity.Shutdown) return CpuExitReason.Halted;
    const ev = gs.events;
    const toTimer = Math.max(0, ev.timerDeadline - vcpuClock(vcpu));
    vcpu.wait(Math.min(rest, toTimer));
    if (toTimer > rest) return CpuExitReason.Halted;
    ev.set(ExitReason.PreemptionTimer, 0, 0);
    return CpuExitReason.None;
  }

  /**
   * SDM 26.2, 26.5, 26.7: the exits and NMI delivery that happen at an instruction
   * boundary, in priority order: INIT, SIPI (wait-for-SIPI only; ignored otherwise), a
   * pending MTF exit, the preemption timer, an NMI (exit 0 with NMI exiting, else
   * delivered through the guest IDT), NMI window, interrupt window. True: an exit is
   * in `gs.events.synth` (or the core stopped while delivering the NMI).
   */
  private boundaryExit(v: VmcsView, gs: GuestState, vcpu: EngineVcpu): boolean {
    const ev = gs.events;
    const pin = ev.pin, proc = ev.proc;
    if ((ev.posted & PendingEvent.Init) !== 0) {
      ev.posted &= ~PendingEvent.Init;
      return ev.set(ExitReason.InitSignal, 0, 0);
    }
    const needState = (ev.posted & (PendingEvent.Sipi | PendingEvent.Nmi)) !== 0 || (proc & Proc.NmiWindow) !== 0;
    if (needState) vcpu.getState(gs.state);
    const s = gs.state;
    if ((ev.posted & PendingEvent.Sipi) !== 0) {
      const vec = (ev.posted >>> PendingEvent.SipiVectorShift) & 0xff;
      ev.posted &= ~(PendingEvent.Sipi | (0xff << PendingEvent.SipiVectorShift));
      if (s.activity === Activity.WaitForSipi) return ev.set(ExitReason.Sipi, vec, 0);
    }
    if (ev.mtfPending) { ev.mtfPending = false; return ev.set(ExitReason.MonitorTrapFlag, 0, 0); }
    if (vcpuClock(vcpu) >= ev.timerDeadline) return ev.set(ExitReason.PreemptionTimer, 0, 0);
    const waitSipi = needState && s.activity === Activity.WaitForSipi;
    if ((ev.posted & PendingEvent.Nmi) !== 0 && !waitSipi) {
      const intr = s.interruptibility;
      if ((pin & Pin.NmiExiting) !== 0) {
        // SDM 26.2: an NMI exits; with virtual NMIs, bit 3 is virtual-NMI blocking and does
        // not block it. MOV SS blocking holds it one instruction (a choice the SDM leaves open).
        if (((pin & Pin.VirtualNmis) !== 0 || (intr & Interruptibility.BlockingByNmi) === 0)
          && (intr & Interruptibility.BlockingByMovSs) === 0) {
          ev.posted &= ~PendingEvent.Nmi;
          return ev.set(ExitReason.ExceptionOrNmi, 0, (IntrInfo.Valid | (IntrType.Nmi << IntrInfo.TypeShift) | 2) >>> 0);
        }
      } else if ((intr & (Interruptibility.BlockingByNmi | Interruptibility.BlockingByMovSs | Interruptibility.BlockingBySti)) === 0
        && s.activity !== Activity.Shutdown) {
        ev.posted &= ~PendingEvent.Nmi;
        vcpu.deliverEvent(EventType.Nmi, 2, 0, false);
        if (vcpu.exit.reason !== CpuExitReason.None) return true;
        vcpu.getState(s);
      }
    }
    // SDM 26.7.6: NMI-window exiting: no (virtual-)NMI blocking and no STI/MOV SS blocking
    // (STI: a choice the SDM leaves to the implementation).
    if ((proc & Proc.NmiWindow) !== 0 && !waitSipi && s.activity !== Activity.Shutdown
      && (s.interruptibility & (Interruptibility.BlockingByNmi | Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs)) === 0) {
      return ev.set(ExitReason.NmiWindow, 0, 0);
    }
    // SDM 26.7.5: interrupt-window exiting: IF = 1 and no STI/MOV SS blocking (also wakes HLT).
    if ((proc & Proc.InterruptWindow) !== 0 && !waitSipi && vcpu.interruptible()) {
      if (!needState) vcpu.getState(s);
      if (s.activity !== Activity.WaitForSipi) return ev.set(ExitReason.InterruptWindow, 0, 0);
    }
    return false;
  }

  /**
   * SDM 26.2: a #PF exits iff exception-bitmap bit 14 equals ((PFEC & PFEC_MASK) ==
   * PFEC_MATCH). The core stops on every #PF the rule might select (coreExceptionBitmap);
   * one that must not exit is delivered to the guest here, with CR2 loaded from the
   * faulting address, which a #PF that exits leaves alone (SDM 28.1).
   */
  private pageFaultExits(v: VmcsView, gs: GuestState, vcpu: EngineVcpu): boolean {
    const e = vcpu.exit;
    if (pfExits(v.get(F.ExceptionBitmap), e.errorCode, v.get(F.PfErrorCodeMask), v.get(F.PfErrorCodeMatch))) return true;
    const s = gs.state;
    vcpu.getState(s);
    s.cr2 = e.linear >>> 0;
    vcpu.setState(s);
    vcpu.deliverEvent(EventType.HardwareException, 14, e.errorCode, true);
    return vcpu.exit.reason !== CpuExitReason.None;
  }

  /** VMCS guest-state area + guestControl GPRs → engine state (SDM 27.3.2). */
  private loadGuest(v: VmcsView, guest: GuestBinding, s: X86State): void {
    const g = guest.guestControl;
    s.eax = g[Gpr.Eax]!; s.ecx = g[Gpr.Ecx]!; s.edx = g[Gpr.Edx]!; s.ebx = g[Gpr.Ebx]!;
    s.ebp = g[Gpr.Ebp]!; s.esi = g[Gpr.Esi]!; s.edi = g[Gpr.Edi]!;
    if (g.length > GUEST_CONTROL_CR2) s.cr2 = g[GUEST_CONTROL_CR2]!;
    s.esp = v.get(F.GuestRsp); s.eip = v.get(F.GuestRip); s.eflags = v.get(F.GuestRflags);
    s.cr0 = v.get(F.GuestCr0); s.cr3 = v.get(F.GuestCr3); s.cr4 = v.get(F.GuestCr4);
    const entry = v.get(F.EntryControls);
    if ((entry & EntryCtl.LoadDebugControls) !== 0) s.dr7 = v.get(F.GuestDr7);
    if ((entry & EntryCtl.LoadEfer) !== 0) s.efer = v.get(F.GuestEfer);
    for (let i = 0; i < SEGMENT_FIELDS.length; i++) {
      const f = SEGMENT_FIELDS[i]!, r = s[f.name];
      r.selector = v.get(f.sel); r.base = v.get(f.base); r.limit = v.get(f.limit); r.attrib = v.get(f.ar);
    }
    s.gdtr.base = v.get(F.GuestGdtrBase); s.gdtr.limit = v.get(F.GuestGdtrLimit);
    s.idtr.base = v.get(F.GuestIdtrBase); s.idtr.limit = v.get(F.GuestIdtrLimit);
    s.activity = v.get(F.GuestActivity) as X86State["activity"];
    s.interruptibility = v.get(F.GuestInterruptibility);
    // SDM 27.3.2.1: IA32_SYSENTER_CS/ESP/EIP are loaded from the guest-state area at every
    // entry (they live in the engine's MSRs, not in X86State). An engine without accessMsr
    // keeps its own values: the fields are then stored only.
    const vc = guest.vcpu;
    if (vc.accessMsr !== undefined) {
      vc.accessMsr(MSR_SYSENTER_CS, true, v.get(F.GuestSysenterCs), 0, MSR_OUT);
      vc.accessMsr(MSR_SYSENTER_ESP, true, v.get(F.GuestSysenterEsp), 0, MSR_OUT);
      vc.accessMsr(MSR_SYSENTER_EIP, true, v.get(F.GuestSysenterEip), 0, MSR_OUT);
    }
  }

  /** Engine state → VMCS guest-state area + guestControl (SDM 28.3). */
  private saveGuest(v: VmcsView, guest: GuestBinding, s: X86State): void {
    const g = guest.guestControl;
    g[Gpr.Eax] = s.eax; g[Gpr.Ecx] = s.ecx; g[Gpr.Edx] = s.edx; g[Gpr.Ebx] = s.ebx;
    g[Gpr.Esp] = s.esp; g[Gpr.Ebp] = s.ebp; g[Gpr.Esi] = s.esi; g[Gpr.Edi] = s.edi;
    if (g.length > GUEST_CONTROL_CR2) g[GUEST_CONTROL_CR2] = s.cr2;
    v.set(F.GuestRsp, s.esp); v.set(F.GuestRip, s.eip); v.set(F.GuestRflags, s.eflags);
    v.set(F.GuestCr0, s.cr0); v.set(F.GuestCr3, s.cr3); v.set(F.GuestCr4, s.cr4);
    const exit = v.get(F.ExitControls);
    if ((exit & ExitCtl.SaveDebugControls) !== 0) v.set(F.GuestDr7, s.dr7);
    if ((exit & ExitCtl.SaveEfer) !== 0) v.set(F.GuestEfer, s.efer);
    for (let i = 0; i < SEGMENT_FIELDS.length; i++) {
      const f = SEGMENT_FIELDS[i]!, r = s[f.name];
      v.set(f.sel, r.selector); v.set(f.base, r.base); v.set(f.limit, r.limit); v.set(f.ar, r.attrib);
    }
    v.set(F.GuestGdtrBase, s.gdtr.base); v.set(F.GuestGdtrLimit, s.gdtr.limit);
    v.set(F.GuestIdtrBase, s.idtr.base); v.set(F.GuestIdtrLimit, s.idtr.limit);
    v.set(F.GuestActivity, s.activity);
    v.set(F.GuestInterruptibility, s.interruptibility);
    // SDM 28.3.2: the SYSENTER MSRs are saved into the guest-state area at every exit.
    const vc = guest.vcpu;
    if (vc.accessMsr !== undefined) {
      if (vc.accessMsr(MSR_SYSENTER_CS, false, 0, 0, MSR_OUT)) v.set(F.GuestSysenterCs, MSR_OUT[0]!);
      if (vc.accessMsr(MSR_SYSENTER_ESP, false, 0, 0, MSR_OUT)) v.set(F.GuestSysenterEsp, MSR_OUT[0]!);
      if (vc.accessMsr(MSR_SYSENTER_EIP, false, 0, 0, MSR_OUT)) v.set(F.GuestSysenterEip, MSR_OUT[0]!);
    }
  }

  /** Exit-information fields (SDM 28.2) from the engine's exit, or the one enter() decided (events.synth). */
  private encodeExit(v: VmcsView, guest: GuestBinding, reason: CpuExitReason): void {
    const e = guest.vcpu.exit;
    const ev = (guest.ext as GuestState).events;
    let basic: number = ExitReason.ExternalInterrupt;
    let qual = 0, intr = 0, intrErr = 0, len = 0, vect = 0, vectErr = 0;
    if (ev.synth >= 0) {
      v.set(F.ExitReason, ev.synth);
      v.set(F.ExitQualification, ev.synthQual >>> 0);
      v.set(F.ExitIntrInfo, ev.synthIntr >>> 0);
      v.set(F.ExitIntrErrorCode, 0);
      v.set(F.IdtVectoringInfo, 0);
      v.set(F.ExitInstrLen, 0);
      return;
    }
    // SDM 27.2.4: the event whose delivery this exit interrupted. The core clears
    // vectoringValid at every run and on every exit that is not during delivery.
    // Real mode delivers no error codes (SDM 20.1.4): the core may still report one for
    // the fault; the VMX fields say "no error code", as entry injection requires (27.2.1.3).
    const pe = ((guest.ext as GuestState).state.cr0 & 1) !== 0;
    if (e.vectoringValid) {
      const vHasErr = e.vectoringHasErrorCode && pe;
      vect = (IntrInfo.Valid | ((e.vectoringType & 7) << IntrInfo.TypeShift) | (e.vectoringVector & 0xff)
        | (vHasErr ? IntrInfo.DeliverErrorCode : 0)) >>> 0;
      vectErr = vHasErr ? e.vectoringErrorCode : 0;
      // SDM 28.2.5: during delivery of a software event, the length of its instruction.
      if (e.vectoringType >= IntrType.SoftwareInt) len = e.instrLen;
    }
    switch (reason) {
      case CpuExitReason.Cpuid:
        basic = ExitReason.Cpuid; len = e.instrLen; break;
      case CpuExitReason.Hlt:
        basic = ExitReason.Hlt; len = e.instrLen; break;
      case CpuExitReason.Io:
        basic = ExitReason.IoInstruction; len = e.instrLen;
        // SDM 28.2.1 table 28-5.
        qual = ((e.ioSize - 1) & 7) | (e.ioIn ? 1 << 3 : 0) | (e.ioString ? 1 << 4 : 0)
          | (e.ioRep ? 1 << 5 : 0) | (e.ioImm ? 1 << 6 : 0) | ((e.ioPort & 0xffff) << 16);
        if (e.ioString) {
          // SDM 28.2.5 table 28-8 (INS/OUTS): bits 9:7 address size (0 = 16-bit, 1 = 32-bit),
          // bits 17:15 segment (ES for INS, which takes no override). SDM 28.2.1: the
          // guest-linear address is that of the memory operand, before the instruction.
          const s = (guest.ext as GuestState).state;
          const seg = e.ioIn ? 0 : e.ioSeg & 7;
          const mask = e.ioAddrSize === 4 ? 0xffffffff : 0xffff;
          const segReg = s[SEGMENT_FIELDS[seg < 6 ? seg : 3]!.name];
          v.set(F.ExitInstrInfo, ((e.ioAddrSize === 4 ? 1 : 0) << 7) | (seg << 15));
          v.set(F.GuestLinearAddr, (segReg.base + (((e.ioIn ? s.edi : s.esi) & mask) >>> 0)) >>> 0);
        }
        break;
      case CpuExitReason.Exception: {
        basic = ExitReason.ExceptionOrNmi;
        // #BP and #OF come from INT3/INTO: software exceptions (SDM 25.9.2), with a length.
        // A #PF that exits leaves CR2 alone; its address is the qualification (SDM 28.2.1).
        const soft = (e.vector === 3 || e.vector === 4) && !e.vectoringValid;
        if (e.vector === 14) qual = e.linear;
        // A #DB that exits leaves DR6 alone; the qualification has B0-B3, BD and BS (SDM 27.1,
        // 28.2.1 table 28-1; BT has no bit there).
        else if (e.vector === 1) qual = e.dbBits & DB_QUAL_BITS;
        const hasErr = e.hasErrorCode && pe;
        intr = IntrInfo.Valid | ((soft ? IntrType.SoftwareException : IntrType.HardwareException) << IntrInfo.TypeShift)
          | (e.vector & 0xff) | (hasErr ? IntrInfo.DeliverErrorCode : 0);
        // SDM 28.2.2: bit 12 is undefined (written 0) for a #DF.
        if (e.vector !== 8 && nmiUnblockedByIret(ev.pin, e)) intr |= IntrInfo.NmiUnblocking;
        intrErr = hasErr ? e.errorCode : 0;
        if (soft) len = e.instrLen;
        break;
      }
      case CpuExitReason.TripleFault:
        basic = ExitReason.TripleFault; break;
      case CpuExitReason.TaskSwitch:
        // SDM 28.2.1 table 28-2: selector 15:0, source 31:30 (0 CALL, 1 IRET, 2 JMP, 3 IDT gate).
        basic = ExitReason.TaskSwitch;
        qual = (e.tsSelector & 0xffff) | ((e.tsSource & 3) << 30);
        if (e.tsSource !== TaskSwitchSource.Gate) len = e.instrLen;
        break;
      case CpuExitReason.Msr: // SDM 26.1.3: every RDMSR/WRMSR, or those the MSR bitmap selects
        basic = e.msrWrite ? ExitReason.Wrmsr : ExitReason.Rdmsr; len = e.instrLen; break;
      case CpuExitReason.CrAccess:
        // SDM 28.2.1 table 28-3: CR number 3:0, access type 5:4, LMSW operand type 6,
        // GPR 11:8 (MOV CR), LMSW source data 31:16. LMSW from memory also writes the
        // guest-linear address of the operand.
        basic = ExitReason.CrAccess; len = e.instrLen;
        qual = (e.crNumber & 0xf) | ((e.crAccessType & 3) << 4);
        if (e.crAccessType === 3) {
          qual |= (e.lmswMem ? 1 << 6 : 0) | ((e.lmswSource & 0xffff) << 16);
          if (e.lmswMem) v.set(F.GuestLinearAddr, e.linear);
        } else if (e.crAccessType < 2) {
          qual |= (e.crGpr & 0xf) << 8;
        }
        break;
      case CpuExitReason.Instruction:
        len = e.instrLen;
        basic = insnExitReason(e);
        if (e.insn === InsnIntercept.Invlpg) qual = e.linear; // SDM 28.2.1: the linear-address operand
        else if (e.insn === InsnIntercept.DescTable) {
          // SDM 28.2.1: the displacement; 28.2.5 tables 28-10/28-11, from the operand the
          // core decoded when it stopped (CpuExit.insnBase ...).
          qual = displacement(e);
          v.set(F.ExitInstrInfo, descInstrInfo(e));
        }
        else if (e.insn === InsnIntercept.Icebp) {
          // SDM 26.2, 25.9.2: INT1 is a privileged software exception (type 5) that exits
          // through exception-bitmap bit 1; RIP stays on it and the length is reported (28.2.5).
          intr = (IntrInfo.Valid | (IntrType.PrivSoftwareException << IntrInfo.TypeShift) | 1) >>> 0;
        }
        else if (e.insn === InsnIntercept.MovDr) {
          // SDM 28.2.1 table 28-4: DR number 2:0, direction 4 (1 = MOV from DR), GPR 11:8.
          qual = (e.drNumber & 7) | (e.drRead ? 1 << 4 : 0) | ((e.drGpr & 0xf) << 8);
        } else if (e.insn === InsnIntercept.VmxInsn && e.vmxInsn !== VmxInsn.Vmlaunch
          && e.vmxInsn !== VmxInsn.Vmresume && e.vmxInsn !== VmxInsn.Vmxoff) {
          // SDM 28.2.1: the qualification is the operand's displacement; 28.2.5 tables 28-9,
          // 28-13, 28-14 give the instruction information, decoded from the instruction bytes
          // as for the descriptor-table exits (same fallback).
          qual = displacement(e);
          v.set(F.ExitInstrInfo, vmxInstrInfo(e));
        }
        break;
      // The host's timeslice ended: modelled as a host external interrupt (exit 1, SDM 25.6.1
      // external-interrupt exiting, which the capabilities make mandatory). HLT without HLT
      // exiting leaves the guest in the HLT activity state until then. SoftInt cannot occur:
      // VMX never sets softIntBitmap. With "acknowledge interrupt on exit" the interrupt is
      // acknowledged and reported as HOST_TIMER_VECTOR (SDM 28.2.2).
      case CpuExitReason.MemAbort: {
        // The EPT walker refused the access (SDM 29.3.3): violation 48 or misconfiguration 49.
        const gs = guest.ext as GuestState;
        const q = this.eptQualification(v, gs, e);
        const misconfig = gs.nested !== null && gs.nested.faultKind === NestedFaultKind.Misconfig;
        basic = misconfig ? ExitReason.EptMisconfig : ExitReason.EptViolation;
        qual = misconfig ? 0 : q | (nmiUnblockedByIret(ev.pin, e) ? IntrInfo.NmiUnblocking : 0);
        break;
      }
      case CpuExitReason.Budget:
      case CpuExitReason.Halted:
      case CpuExitReason.SoftInt:
      default:
        basic = ExitReason.ExternalInterrupt;
        if ((v.get(F.ExitControls) & ExitCtl.AckIntOnExit) !== 0) intr = (IntrInfo.Valid | HOST_TIMER_VECTOR) >>> 0;
        break;
    }
    v.set(F.ExitReason, basic);
    v.set(F.ExitQualification, qual >>> 0);
    v.set(F.ExitIntrInfo, intr >>> 0);
    v.set(F.ExitIntrErrorCode, intrErr >>> 0);
    v.set(F.IdtVectoringInfo, vect);
    v.set(F.IdtVectoringErrorCode, vectErr >>> 0);
    v.set(F.ExitInstrLen, len);
  }
}

/**
 * The core's instruction and CR intercepts from the VM-execution controls (SDM 26.1.2,
 * 26.1.3). Unconditional in VMX non-root operation: INVD, VMCALL and the VMX
 * instructions; RDMSR/WRMSR too, unless "use MSR bitmaps" narrows them (enter()). CR3 loads
 * exit with CR3-load exiting unless the value is one of the first CR3-target-count targets.
 */
function programInsnIntercepts(v: VmcsView, proc: number, proc2: number, ic: InterceptControlsLike): void {
  // XSETBV exits unconditionally (SDM 26.1.2); the core has no XSAVE, so its #UD comes first.
  ic.insn = InsnIntercept.Invd | InsnIntercept.Vmcall | InsnIntercept.VmxInsn | InsnIntercept.Xsetbv
    | ((proc & Proc.RdtscExiting) !== 0 ? InsnIntercept.Rdtsc : 0)
    | ((proc & Proc.RdpmcExiting) !== 0 ? InsnIntercept.Rdpmc : 0)
    | ((proc & Proc.InvlpgExiting) !== 0 ? InsnIntercept.Invlpg : 0)
    | ((proc & Proc.MovDrExiting) !== 0 ? InsnIntercept.MovDr : 0)
    | ((proc & Proc.PauseExiting) !== 0 ? InsnIntercept.Pause : 0)
    | ((proc2 & Proc2.WbinvdExiting) !== 0 ? InsnIntercept.Wbinvd : 0)
    | ((proc & Proc.MonitorExiting) !== 0 ? InsnIntercept.Monitor : 0)
    | ((proc & Proc.MwaitExiting) !== 0 ? InsnIntercept.Mwait : 0)
    // SDM 26.1.3: RDTSCP exits when both "RDTSC exiting" and "enable RDTSCP" are 1.
    | ((proc & Proc.RdtscExiting) !== 0 && (proc2 & Proc2.EnableRdtscp) !== 0 ? InsnIntercept.Rdtscp : 0)
    | ((proc2 & Proc2.DescTableExiting) !== 0 ? InsnIntercept.DescTable : 0)
    // SDM 26.2: ICEBP (INT1) exits as a privileged software exception under exception-bitmap bit 1.
    | ((v.get(F.ExceptionBitmap) & (1 << 1)) !== 0 ? InsnIntercept.Icebp : 0);
  // SDM 26.1.3: descriptor-table exiting covers LGDT LIDT LLDT LTR SGDT SIDT SLDT STR.
  ic.descExitMask = (proc2 & Proc2.DescTableExiting) !== 0 ? 0xff : 0;
  ic.msr = true;
  ic.cr3LoadExit = (proc & Proc.Cr3LoadExiting) !== 0;
  ic.cr3StoreExit = (proc & Proc.Cr3StoreExiting) !== 0;
  // SDM 26.1.3: no exit for a MOV to CR3 of one of the first N CR3-target values (N <= 4,
  // entry check cr3-target-count; natural-width fields are 32 bits on this host).
  const targets = ic.cr3Targets ??= new Uint32Array(4); // once per vCPU
  const count = ic.cr3LoadExit ? Math.min(v.get(F.Cr3TargetCount) >>> 0, 4) : 0;
  for (let i = 0; i < count; i++) targets[i] = v.get(F.Cr3Target0 + 2 * i);
  ic.cr3TargetCount = count;
  ic.cr0Mask = v.get(F.Cr0GuestHostMask) >>> 0;
  ic.cr0Shadow = v.get(F.Cr0ReadShadow) >>> 0;
  ic.cr4Mask = v.get(F.Cr4GuestHostMask) >>> 0;
  ic.cr4Shadow = v.get(F.Cr4ReadShadow) >>> 0;
}
type InterceptControlsLike = GuestBinding["vcpu"]["intercepts"];

/**
 * "NMI unblocking due to IRET" (SDM 28.2.1 table 28-7 bit 12, 28.2.2 bit 12): the exit came
 * from a fault, EPT violation or misconfiguration during an IRET that found blocking by NMI
 * (with virtual NMIs: virtual-NMI blocking) in effect. The core has already cleared it, as
 * SDM 28.1 requires for both defined cases. Undefined, so 0, with NMI exiting = 1 and
 * virtual NMIs = 0, and when the IDT-vectoring information is valid.
 */
function nmiUnblockedByIret(pin: number, e: CpuExit): boolean {
  if (!e.iretUnblockedNmi || e.vectoringValid) return false;
  return (pin & (Pin.NmiExiting | Pin.VirtualNmis)) !== Pin.NmiExiting;
}

/**
 * The vCPU's clock in instruction-times: instructions retired plus the time it waited in HLT
 * or shutdown (EngineVcpu.idle); the soft TSC counts both. The preemption timer's time base.
 */
function vcpuClock(vcpu: EngineVcpu): number {
  return vcpu.retired + (vcpu.idle ?? 0);
}

/** SDM 28.7: VMX-abort indicators for the MSR areas (1: saving guest MSRs failed, 4: loading host MSRs failed). */
export const VmxAbort = { SaveGuestMsrs: 1, LoadHostMsrs: 4 } as const;
const MSR_SYSENTER_CS = 0x174, MSR_SYSENTER_ESP = 0x175, MSR_SYSENTER_EIP = 0x176;
/** Scratch for EngineVcpu.accessMsr reads (no allocation per exit). */
const MSR_OUT = new Uint32Array(2);
const rd32 = (b: Uint8Array, o: number): number => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const wr32 = (b: Uint8Array, o: number, x: number): void => {
  b[o] = x & 0xff; b[o + 1] = (x >>> 8) & 0xff; b[o + 2] = (x >>> 16) & 0xff; b[o + 3] = (x >>> 24) & 0xff;
};
/**
 * Indices an MSR list may not name (SDM 27.4, 28.4, 28.6): the x2APIC range 800H-8FFH; for
 * loading IA32_FS_BASE/IA32_GS_BASE (their state is in the segment fields) and the
 * SMM-only-writable IA32_SMM_MONITOR_CTL (9BH); for storing the SMM-only-readable
 * IA32_SMBASE (9EH). Anything else the core's WRMSR/RDMSR refuses fails as its #GP would.
 */
const msrForbidden = (idx: number, load: boolean): boolean =>
  (idx >>> 8) === 0x8 || (load ? idx === 0xc0000100 || idx === 0xc0000101 || idx === 0x9b : idx === 0x9e);

/**
 * Process an MSR list of `count` 16-byte entries (bits 31:0 index, 63:32 reserved, 127:64
 * data) at host-physical `addr` in `frame` (the entry checks placed the area inside it).
 * `mode` 0: load into the guest vCPU (VM-entry MSR-load area, SDM 27.4); 1: store the
 * guest's values into the data fields (VM-exit MSR-store area, 28.4); 2: validate a
 * host MSR-load entry (28.6: the host is this kernel, whose MSRs a monitor does not set).
 * Returns 0, or the 1-based number of the first entry that fails. A list longer than the
 * 512 * (N + 1) entries IA32_VMX_MISC[27:25] recommends (the SDM leaves that undefined)
 * fails at entry 512 * (N + 1) + 1, after the entries before it.
 */
function processMsrList(
  frame: { readonly bytes: Uint8Array; readonly paddr: number } | null | undefined, addr: number, count: number,
  max: number, vcpu: EngineVcpu, mode: 0 | 1 | 2,
): number {
  if (count === 0) return 0;
  if (frame === null || frame === undefined) return 1;
  const b = frame.bytes;
  const n = Math.min(count >>> 0, max + 1);
  for (let i = 0; i < n; i++) {
    if (i === max) return max + 1;
    const o = (addr - frame.paddr) + i * 16;
    const idx = rd32(b, o);
    if (rd32(b, o + 4) !== 0 || msrForbidden(idx, mode !== 1)) return i + 1;
    if (mode === 0) {
      if (vcpu.accessMsr?.(idx, true, rd32(b, o + 8), rd32(b, o + 12), MSR_OUT) !== true) return i + 1;
    } else if (mode === 1) {
      if (vcpu.accessMsr?.(idx, false, 0, 0, MSR_OUT) !== true) return i + 1;
      wr32(b, o + 8, MSR_OUT[0]!); wr32(b, o + 12, MSR_OUT[1]!);
    }
  }
  return 0;
}

/** Copy the exit information a typical exit needs into guestControl (VmxExitWord): the monitor then needs no VMREAD. */
function publishExit(v: VmcsView, g: Uint32Array): void {
  if (g.length <= VmxExitWord.LenIntr) return;
  g[VmxExitWord.Reason] = v.get(F.ExitReason);
  g[VmxExitWord.Qualification] = v.get(F.ExitQualification);
  g[VmxExitWord.Rip] = v.get(F.GuestRip);
  g[VmxExitWord.LenIntr] = ((v.get(F.ExitInstrLen) & 0xffff) | (v.get(F.GuestInterruptibility) << 16)) >>> 0;
}

/**
 * SDM 26.2: whether a #PF with error code `pfec` exits: exception-bitmap bit 14 set and
 * (PFEC & PFEC_MASK) == PFEC_MATCH, or bit 14 clear and they differ.
 */
export function pfExits(bitmap: number, pfec: number, mask: number, match: number): boolean {
  return ((bitmap & (1 << 14)) !== 0) === ((pfec & mask) >>> 0 === match >>> 0);
}

/**
 * The core's exception bitmap: the VMCS one, with bit 14 set whenever the #PF rule could
 * select an exit (runGuest filters those that must not exit) and clear when no error
 * code can: bit 14 = 1 with MATCH outside MASK, or bit 14 = 0 with MASK = MATCH = 0.
 */
function coreExceptionBitmap(v: VmcsView): number {
  const bitmap = v.get(F.ExceptionBitmap) >>> 0;
  const mask = v.get(F.PfErrorCodeMask) >>> 0, match = v.get(F.PfErrorCodeMatch) >>> 0;
  const bit14 = (bitmap & (1 << 14)) !== 0;
  const never = bit14 ? (match & ~mask) >>> 0 !== 0 : mask === 0 && match === 0;
  return never ? (bitmap & ~(1 << 14)) >>> 0 : (bitmap | (1 << 14)) >>> 0;
}

/** SDM 28.2.1: the qualification of these exits is the displacement, sign-extended to 32 bits (0 for a register operand). */
function displacement(e: CpuExit): number {
  if (!e.insnMem) return 0;
  return (e.insnAddrSize === 2 ? (e.insnDisp << 16) >> 16 : e.insnDisp | 0) >>> 0;
}

/**
 * The memory-operand bits shared by tables 28-9 to 28-14 (SDM 28.2.5): scaling 1:0 (0 without
 * an index), address size 9:7, segment 17:15, index 21:18 or invalid (22), base 26:23 or
 * invalid (27), from the operand the core decoded (CpuExit.insnBase ...).
 */
function memOperandInfo(e: CpuExit): number {
  let info = ((e.insnAddrSize === 4 ? 1 : 0) << 7) | ((e.insnSeg & 7) << 15);
  if (e.insnIndex === NO_REG) info |= 1 << 22;
  else info |= ((e.insnIndex & 0xf) << 18) | (e.insnScale & 3);
  info |= e.insnBase === NO_REG ? 1 << 27 : (e.insnBase & 0xf) << 23;
  return info;
}

/**
 * VM-exit instruction information of LGDT/LIDT/SGDT/SIDT (SDM 28.2.5 table 28-10) and
 * LLDT/LTR/SLDT/STR (table 28-11): scaling 1:0, address size 9:7, segment 17:15, index
 * 21:18 (invalid: 22), base 26:23 (invalid: 27), identity 29:28; table 28-10 bit 11 the
 * operand size (0 16-bit, 1 32-bit); table 28-11 bit 10 the register form with Reg1 in
 * 6:3, where address size, segment, base and index are undefined (written 0). Fields
 * the SDM leaves undefined (scaling without an index) are 0. The operand comes from the
 * core's own decode (CpuExit.insnBase/insnIndex/insnScale/insnDisp/insnOpSize).
 */
function descInstrInfo(e: CpuExit): number {
  const k = e.descInsn;
  const mem = e.insnMem;
  let info = mem ? memOperandInfo(e) : 0;
  if (k <= DescInsn.Lidt) {
    // Identity: 0 SGDT, 1 SIDT, 2 LGDT, 3 LIDT (DescInsn order).
    info |= ((k & 3) << 28) | (e.insnOpSize === 4 ? 1 << 11 : 0);
  } else {
    // Identity: 0 SLDT, 1 STR, 2 LLDT, 3 LTR (DescInsn order from Sldt).
    info |= ((k - DescInsn.Sldt) & 3) << 28;
    if (!mem) info |= (1 << 10) | ((e.insnRm & 0xf) << 3);
  }
  return info >>> 0;
}

/** VMX basic exit reasons of the VMX instructions, indexed by VmxInsn. */
const VMX_INSN_EXIT: readonly number[] = [
  ExitReason.Vmclear, ExitReason.Vmlaunch, ExitReason.Vmptrld, ExitReason.Vmptrst, ExitReason.Vmread,
  ExitReason.Vmresume, ExitReason.Vmwrite, ExitReason.Vmxoff, ExitReason.Vmxon, ExitReason.Invept, ExitReason.Invvpid,
];

/** The basic exit reason of a CpuExitReason.Instruction exit (SDM appendix C). */
function insnExitReason(e: CpuExit): number {
  switch (e.insn) {
    case InsnIntercept.Rdtsc: return ExitReason.Rdtsc;
    case InsnIntercept.Rdpmc: return ExitReason.Rdpmc;
    case InsnIntercept.Invd: return ExitReason.Invd;
    case InsnIntercept.Wbinvd: return ExitReason.Wbinvd;
    case InsnIntercept.Invlpg: return ExitReason.Invlpg;
    case InsnIntercept.Vmcall: return ExitReason.Vmcall;
    case InsnIntercept.MovDr: return ExitReason.MovDr;
    case InsnIntercept.Pause: return ExitReason.Pause;
    case InsnIntercept.Monitor: return ExitReason.Monitor;
    case InsnIntercept.Mwait: return ExitReason.Mwait;
    case InsnIntercept.Rdtscp: return ExitReason.Rdtscp;
    case InsnIntercept.Xsetbv: return ExitReason.Xsetbv;
    case InsnIntercept.Icebp: return ExitReason.ExceptionOrNmi;
    case InsnIntercept.DescTable: return e.descInsn <= DescInsn.Lidt ? ExitReason.GdtrIdtr : ExitReason.LdtrTr;
    case InsnIntercept.VmxInsn: return VMX_INSN_EXIT[e.vmxInsn] ?? ExitReason.Vmcall;
    default: return ExitReason.ExternalInterrupt;
  }
}

/**
 * VM-exit instruction information for INVEPT/INVVPID (SDM 28.2.5 table 28-9),
 * VMCLEAR/VMPTRLD/VMPTRST/VMXON (28-13) and VMREAD/VMWRITE (28-14): the memory operand
 * (memOperandInfo); VMREAD/VMWRITE register form: bit 10 and Reg1 6:3, the memory fields
 * undefined (written 0); VMREAD/VMWRITE/INVEPT/INVVPID: Reg2 31:28.
 */
function vmxInstrInfo(e: CpuExit): number {
  const mem = e.insnMem;
  let info = mem ? memOperandInfo(e) : 0;
  const k = e.vmxInsn;
  if (k === VmxInsn.Vmread || k === VmxInsn.Vmwrite) {
    if (!mem) info |= (1 << 10) | ((e.insnRm & 0xf) << 3);
    info |= (e.insnReg & 0xf) << 28;
  } else if (k === VmxInsn.Invept || k === VmxInsn.Invvpid) {
    info |= (e.insnReg & 0xf) << 28;
  }
  return info >>> 0;
}

/**
 * SDM 24.8 / A.7-A.8: CR0 and CR4 within their fixed bits. The capability MSRs report
 * the guest's fixed bits, which leave out CR4.VMXE (see caps.ts); a host in VMX
 * operation has it set, as hardware's CR4_FIXED0/1 require, so it is allowed here.
 */
function hostCrFixedOk(h: VmxHostCpu, c: VmxCaps): boolean {
  const cr0 = h.cr0 >>> 0, cr4 = h.cr4 >>> 0;
  if ((cr0 & c.cr0Fixed0) >>> 0 !== c.cr0Fixed0 >>> 0 || (cr0 & ~c.cr0Fixed1) >>> 0 !== 0) return false;
  if ((cr4 & CR4_VMXE) === 0) return false;
  return (cr4 & c.cr4Fixed0) >>> 0 === c.cr4Fixed0 >>> 0 && (cr4 & ~(c.cr4Fixed1 | CR4_VMXE)) >>> 0 === 0;
}

function vmcsState(ctl: VmControlObject): VmcsState | undefined {
  return ctl.kind === "vmcs" && ctl.ext instanceof VmcsState ? ctl.ext : undefined;
}

/**
 * VMX interruption types 0, 2-6 equal the EventType numbers. Types 5 and 6 keep their own
 * type (SDM 27.6.1.1: delivered as INT1 / INT3-INTO would be: no gate-DPL check for INT1),
 * so an exit during their delivery reports that type as IDT-vectoring information (27.2.4).
 */
function eventTypeOf(type: number): EventType {
  return type as EventType;
}

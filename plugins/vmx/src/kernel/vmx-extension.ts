// The kernel half of plugins/vmx: VMCS semantics on the VMCS region's bytes, the
// VMX instructions' outcomes (SDM Vol. 3C 31.2-31.4), the VM-entry checks (27.2-27.3),
// event injection (27.6), the world switch through the engine vCPU and exit
// encoding (chapter 28, appendix C). Emulated: the fields and exits listed in
// README.md. Not emulated: MSR-load/store areas, CR3-target values, CR8 exiting,
// shadow VMCS, IDT-vectoring information (always invalid), the VMX-preemption timer, SMM.
import {
  GuestFrameRole, SysErr, type DispatcherObject, type ExtensionContext, type GuestBinding, type SysRet,
  type VmControlObject, type VmxExtension as VmxExtensionApi, type VmxonRegion,
} from "../../../../src/kernel/api.js";
import {
  CpuExitReason, Gpr, InsnIntercept, VmxInsn, type CpuExit, type EventType, type SegmentReg, type X86State,
} from "../../../../src/x86/types.js";
import {
  EntryCtl, EXIT_REASON_ENTRY_FAILURE, ExitCtl, ExitReason, F, IntrInfo, IntrType, Proc, Proc2,
  SEGMENT_FIELDS, VmcsType, VmcsView, VmxError, existingFields, lookupField, VMCS_REGION_BYTES,
} from "../vmcs-fields.js";
import { FeatureControl, SOFT_CAPS, VmxMsr, vmxMsrValue, type VmxCaps } from "./caps.js";
import { runEntryChecks, type EntryEnv, type EntryFailure } from "./entry-checks.js";

/** Per-VMCS private state, kept in `VmControlObject.ext`. */
export class VmcsState {
  /** SDM 25.1: launch state "clear" or "launched". */
  launched = false;
  /** Set by setupGuest: the host-state area belongs to the kernel, not the monitor. */
  hostOwned = false;
  /** The last entry failure, for diagnostics. */
  lastFailure: EntryFailure | undefined = undefined;
  constructor(readonly view: VmcsView) {}
}

/** Per-guest private state, kept in `GuestBinding.ext`. */
class GuestState {
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
  constructor(eptRoot: number, frames: GuestBinding["frames"]) { this.env = { eptRoot, frames }; }

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
    guest.ext = new GuestState(guest.gpspace.paddr, guest.frames);
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

  private enter(dcb: DispatcherObject, ret: SysRet, launch: boolean): SysErr {
    if (!this.inVmx) return SysErr.NotInVmxOperation;
    const guest = dcb.guest;
    if (guest === null || !(guest.ext instanceof GuestState)) return SysErr.NotGuest;
    const ctl = this.current.get(dcb);
    if (ctl === undefined) return SysErr.VmFailInvalid;
    const st = ctl.ext as VmcsState;
    const v = st.view;
    // SDM 27.1: launch-state checks come before the field checks.
    if (launch && st.launched) return this.fail(dcb, VmxError.VmlaunchNonClear, ret);
    if (!launch && !st.launched) return this.fail(dcb, VmxError.VmresumeNonLaunched, ret);
    const gs = guest.ext;
    const failure = runEntryChecks(v, this.caps, gs.env);
    st.lastFailure = failure;
    if (failure !== undefined) {
      if (failure.kind !== "guest") return this.fail(dcb, failure.code, ret);
      // SDM 27.8: a guest-state failure is a VM exit with bit 31 set; guest state is not
      // saved (nothing was loaded) and the launch state does not change.
      v.set(F.ExitReason, (EXIT_REASON_ENTRY_FAILURE | ExitReason.EntryFailGuestState) >>> 0);
      v.set(F.ExitQualification, failure.qualification);
      v.set(F.ExitIntrInfo, 0);
      v.set(F.IdtVectoringInfo, 0);
      return SysErr.Ok;
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
    const proc = v.get(F.ProcControls);
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
    programInsnIntercepts(v, proc, ic);
    // SDM 25.6.9: the entry checks made sure the MSR-bitmap frame is bound.
    ic.msrBitmap = (proc & Proc.UseMsrBitmaps) !== 0 ? guest.frames[GuestFrameRole.VmxMsrBitmap]!.bytes : null;
    // SDM 26.3: RDTSC and RDMSR IA32_TSC return TSC + offset (a signed 64-bit field; a
    // double is exact up to 2^53, far beyond the instruction-count TSC).
    vcpu.tscOffset = (proc & Proc.TscOffsetting) !== 0
      ? (v.get(F.TscOffset | 1) | 0) * 4294967296 + (v.get(F.TscOffset) >>> 0) : 0;
    // SDM 27.6.1: an injected event is delivered without consulting the exception bitmap.
    ic.exceptionBitmap = 0;

    // SDM 27.6: event injection after the guest state is loaded; VM entry clears the valid bit.
    if ((info & IntrInfo.Valid) !== 0) {
      v.set(F.EntryIntrInfo, info & ~IntrInfo.Valid);
      const hasErr = (info & IntrInfo.DeliverErrorCode) !== 0;
      vcpu.deliverEvent(eventTypeOf(infoType), info & 0xff, hasErr ? v.get(F.EntryExceptionErrorCode) : 0, hasErr);
    }
    ic.exceptionBitmap = v.get(F.ExceptionBitmap) >>> 0;

    const timeslice = this.ctx?.timeslice ?? 100_000;
    let reason: CpuExitReason;
    if ((proc & Proc.InterruptWindow) !== 0) {
      // SDM 26.7.5: with interrupt-window exiting, an exit occurs before any instruction
      // at which RFLAGS.IF = 1 and there is no STI/MOV-SS blocking: at entry, or as soon
      // as the guest opens the window. The core has no window intercept, so step it.
      reason = CpuExitReason.None;
      if (!vcpu.interruptible()) {
        reason = CpuExitReason.Budget;
        for (let n = 0; n < timeslice; n++) {
          reason = vcpu.run(1);
          if (reason !== CpuExitReason.Budget) break;
          if (vcpu.interruptible()) { reason = CpuExitReason.None; break; }
        }
      }
    } else {
      reason = vcpu.run(timeslice);
    }

    vcpu.getState(gs.state);
    this.saveGuest(v, guest, gs.state);
    this.encodeExit(v, guest, reason, (proc & Proc.InterruptWindow) !== 0);
    if (launch) st.launched = true;
    return SysErr.Ok;
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
  }

  /** Exit-information fields (SDM 28.2) from the engine's exit. */
  private encodeExit(v: VmcsView, guest: GuestBinding, reason: CpuExitReason, windowExit: boolean): void {
    const e = guest.vcpu.exit;
    let basic: number = ExitReason.ExternalInterrupt;
    let qual = 0, intr = 0, intrErr = 0, len = 0;
    switch (reason) {
      case CpuExitReason.None:
        // Only reached when the interrupt window opened (see enter()).
        basic = windowExit ? ExitReason.InterruptWindow : ExitReason.ExternalInterrupt;
        break;
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
        const soft = e.vector === 3 || e.vector === 4;
        intr = IntrInfo.Valid | ((soft ? IntrType.SoftwareException : IntrType.HardwareException) << IntrInfo.TypeShift)
          | (e.vector & 0xff) | (e.hasErrorCode ? IntrInfo.DeliverErrorCode : 0);
        intrErr = e.hasErrorCode ? e.errorCode : 0;
        if (soft) len = e.instrLen;
        break;
      }
      case CpuExitReason.TripleFault:
        basic = ExitReason.TripleFault; break;
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
        else if (e.insn === InsnIntercept.MovDr) {
          // SDM 28.2.1 table 28-4: DR number 2:0, direction 4 (1 = MOV from DR), GPR 11:8.
          qual = (e.drNumber & 7) | (e.drRead ? 1 << 4 : 0) | ((e.drGpr & 0xf) << 8);
        } else if (e.insn === InsnIntercept.VmxInsn && e.vmxInsn !== VmxInsn.Vmlaunch
          && e.vmxInsn !== VmxInsn.Vmresume && e.vmxInsn !== VmxInsn.Vmxoff) {
          // SDM 28.2.1: the qualification is the operand's displacement; 28.2.5 tables 28-9..28-13
          // give the instruction information. The core reports the effective offset, not its
          // parts: it is written as the displacement with base and index marked invalid
          // (bits 27, 22), which names the same address.
          qual = e.insnMem ? e.insnOffset : 0;
          v.set(F.ExitInstrInfo, vmxInstrInfo(e));
        }
        break;
      // The host's timeslice ended: modelled as a host external interrupt (exit 1, SDM 25.6.1
      // external-interrupt exiting, which the capabilities make mandatory). HLT without HLT
      // exiting leaves the guest in the HLT activity state until then. SoftInt cannot occur:
      // VMX never sets softIntBitmap.
      case CpuExitReason.Budget:
      case CpuExitReason.Halted:
      case CpuExitReason.SoftInt:
      default:
        basic = ExitReason.ExternalInterrupt; break;
    }
    v.set(F.ExitReason, basic);
    v.set(F.ExitQualification, qual >>> 0);
    v.set(F.ExitIntrInfo, intr >>> 0);
    v.set(F.ExitIntrErrorCode, intrErr >>> 0);
    v.set(F.IdtVectoringInfo, 0);
    v.set(F.ExitInstrLen, len);
  }
}

/**
 * The core's instruction and CR intercepts from the VM-execution controls (SDM 26.1.2,
 * 26.1.3). Unconditional in VMX non-root operation: INVD, VMCALL and the VMX
 * instructions; RDMSR/WRMSR too, unless "use MSR bitmaps" narrows them (enter()). CR3 loads
 * exit with CR3-load exiting: the CR3-target count is 0 (IA32_VMX_MISC[24:16] = 0).
 */
function programInsnIntercepts(v: VmcsView, proc: number, ic: InterceptControlsLike): void {
  const proc2 = (proc & Proc.ActivateSecondary) !== 0 ? v.get(F.Proc2Controls) : 0;
  ic.insn = InsnIntercept.Invd | InsnIntercept.Vmcall | InsnIntercept.VmxInsn
    | ((proc & Proc.RdtscExiting) !== 0 ? InsnIntercept.Rdtsc : 0)
    | ((proc & Proc.RdpmcExiting) !== 0 ? InsnIntercept.Rdpmc : 0)
    | ((proc & Proc.InvlpgExiting) !== 0 ? InsnIntercept.Invlpg : 0)
    | ((proc & Proc.MovDrExiting) !== 0 ? InsnIntercept.MovDr : 0)
    | ((proc & Proc.PauseExiting) !== 0 ? InsnIntercept.Pause : 0)
    | ((proc2 & Proc2.WbinvdExiting) !== 0 ? InsnIntercept.Wbinvd : 0);
  ic.msr = true;
  ic.cr3LoadExit = (proc & Proc.Cr3LoadExiting) !== 0;
  ic.cr3StoreExit = (proc & Proc.Cr3StoreExiting) !== 0;
  ic.cr0Mask = v.get(F.Cr0GuestHostMask) >>> 0;
  ic.cr0Shadow = v.get(F.Cr0ReadShadow) >>> 0;
  ic.cr4Mask = v.get(F.Cr4GuestHostMask) >>> 0;
  ic.cr4Shadow = v.get(F.Cr4ReadShadow) >>> 0;
}
type InterceptControlsLike = GuestBinding["vcpu"]["intercepts"];

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
    case InsnIntercept.VmxInsn: return VMX_INSN_EXIT[e.vmxInsn] ?? ExitReason.Vmcall;
    default: return ExitReason.ExternalInterrupt;
  }
}

/**
 * VM-exit instruction information for VMCLEAR/VMPTRLD/VMPTRST/VMXON, VMREAD/VMWRITE,
 * INVEPT/INVVPID (SDM 28.2.5 tables 28-9 to 28-13): address size 9:7, segment 17:15,
 * index (22) and base (27) invalid; VMREAD/VMWRITE: Reg1 6:3 and register form bit 10;
 * VMREAD/VMWRITE/INVEPT/INVVPID: Reg2 31:28.
 */
function vmxInstrInfo(e: CpuExit): number {
  let info = ((e.insnAddrSize === 4 ? 1 : 0) << 7) | ((e.insnSeg & 7) << 15) | (1 << 22) | (1 << 27);
  const k = e.vmxInsn;
  if (k === VmxInsn.Vmread || k === VmxInsn.Vmwrite) {
    if (!e.insnMem) info |= (1 << 10) | ((e.insnRm & 0xf) << 3);
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

/** VMX interruption types 0, 2, 3, 4 equal the EventType numbers; 5 and 6 are delivered as software events. */
function eventTypeOf(type: number): EventType {
  return (type === IntrType.PrivSoftwareException || type === IntrType.SoftwareException ? IntrType.SoftwareInt : type) as EventType;
}

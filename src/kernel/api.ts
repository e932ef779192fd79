// The kernel's public contract: what a monitor invokes (Syscalls on capabilities) and
// what a virtualization extension (the kernel half of plugins/vmx or plugins/svm)
// implements and sees. Nothing here throws at the guest's or the monitor's request:
// every failure is a SysErr value.
import type { CpuExitReason, InterceptControls, CpuExit, X86State, EventType, PhysMemory, AccessSize } from "../x86/types.js";

/** A capability reference in the caller's CSpace: slot index (bits 15:0) and slot generation (bits 30:16). */
export type CPtr = number;

export const enum ObjType {
  Null = 0,
  Ram = 1,
  Frame = 2,
  GuestPhysSpace = 3,
  VmControl = 4,
  Dispatcher = 5,
}

export const enum Rights {
  None = 0,
  Read = 1,
  Write = 2,
  Grant = 4,
  All = 7,
}

/** Guest-physical mapping permissions (EPT/NPT style). */
export const enum MapPerm {
  R = 1,
  W = 2,
  X = 4,
  RWX = 7,
}

export const enum SysErr {
  Ok = 0,
  /** The slot holds no capability. */
  CapEmpty = 1,
  /** The capability is of another object type than the call needs. */
  CapWrongType = 2,
  /** The capability lacks a right the call needs. */
  CapNoRight = 3,
  /** The slot was deleted or revoked since this CPtr was handed out (generation mismatch). */
  CapStale = 4,
  /** The CPtr names no slot of this CSpace. */
  CapInvalid = 5,
  /** The CSpace has no free slot. */
  CSpaceFull = 6,
  InvalidArgument = 7,
  /** The Ram capability has too few bytes left. */
  OutOfMemory = 8,
  /** No virtualization extension is installed, or another one than the call needs. */
  NoExtension = 9,
  /** The dispatcher has not been set up as a guest. */
  NotGuest = 10,
  /** A guest-physical mapping overlaps an existing one. */
  Overlap = 11,
  /** VMX: VMfailInvalid (SDM 31.2): no current VMCS. */
  VmFailInvalid = 12,
  /** VMX: VMfailValid (SDM 31.2): the error number is in the VM-instruction error field and in `ret.vmInstructionError`. */
  VmFailValid = 13,
  /** An extension is already installed. */
  ExtensionInstalled = 14,
  /** VMX: a VMX instruction other than VMXON outside VMX operation (#UD, SDM 31.3). */
  NotInVmxOperation = 15,
  /**
   * VMX: VMLAUNCH/VMRESUME ended in a VMX abort (SDM 28.7), or the current VMCS is in the
   * shutdown state a VMX abort leaves until VMCLEAR (the guest did not run); the abort
   * indicator is in `ret.value` and at byte 4 of the VMCS region.
   */
  VmxAbort = 16,
}

/** Names for SysErr values, for messages. */
export const SYS_ERR_NAMES: readonly string[] = [
  "ok", "cap-empty", "cap-wrong-type", "cap-no-right", "cap-stale", "cap-invalid", "cspace-full",
  "invalid-argument", "out-of-memory", "no-extension", "not-guest", "overlap", "vmfail-invalid",
  "vmfail-valid", "extension-installed", "not-in-vmx-operation", "vmx-abort",
];

/**
 * The syscall return block, one per CSpace, reused by every call (like return
 * registers): a call writes the fields it defines and leaves the others alone.
 */
export interface SysRet {
  /** A new capability (copy, mint, retype). */
  cap: CPtr;
  /** A scalar result (vmread; the VMX-abort indicator with SysErr.VmxAbort), or the low 32 bits of a 64-bit one (rdmsrCap). */
  value: number;
  /** The high 32 bits of a 64-bit result (rdmsrCap). */
  valueHigh: number;
  /** A mapped view (frameMap). */
  view: Uint8Array | null;
  /** capIdentify results (and `value`: a Frame's host-physical address). */
  type: ObjType;
  rights: number;
  bytes: number;
  /** The VM-instruction error number of the last VMfailValid (SDM 31.4). */
  vmInstructionError: number;
}

/** A monitor-side handler for guest-physical accesses that hit no RAM frame. Must not throw. */
export interface MmioHandler {
  read(gpa: number, size: AccessSize): number;
  write(gpa: number, size: AccessSize, value: number): void;
}

/**
 * Words of a DCB's guestControl frame (little-endian u32), shared by kernel and monitor so
 * an exit costs no syscall per register. The kernel writes every word after each world switch
 * and reads the GPRs and CR2 before it.
 */
export const enum GuestControlWord {
  /** Eight GPRs in Gpr order (x86 ModR/M order). */
  Gprs = 0,
  /** Guest CR2: neither the VMCS nor the VMCB holds it (SDM 25.4.1 lists no CR2 field). */
  Cr2 = 8,
  /** Instructions the engine has retired for this guest, low and high 32 bits (read-only for the monitor). */
  RetiredLo = 9,
  RetiredHi = 10,
  /**
   * Events the monitor posts to the guest's logical processor, PendingEvent bits (SIPI
   * vector in bits 15:8). The extension consumes a bit when it takes the event (a VM exit
   * or delivery through the guest IDT) and clears it; a bit it cannot take yet stays set.
   */
  PendingEvents = 11,
  /**
   * Words 12-15: exit information the extension copies here at every exit, so a typical
   * exit costs the monitor no reads (read-only for the monitor: the VMCS/VMCB stays
   * authoritative, as for the ESP slot). The layout is the extension's (VMX:
   * plugins/vmx VmxExitWord); an extension that publishes none leaves them alone.
   */
  ExitInfo = 12,
}
/** Bits of GuestControlWord.PendingEvents: external signals a monitor can raise (VMX: SDM 26.2, 26.7.6). */
export const enum PendingEvent {
  Nmi = 1, Init = 2, Sipi = 4,
  /**
   * A system-management interrupt (SMI#). SVM: exit 62h with the SMI intercept, else taken
   * by the host's SMM (no SMM modelled: consumed without guest-visible effect), APM 15.13.2.
   */
  Smi = 8,
  /** The SIPI vector sits in bits 15:8. */
  SipiVectorShift = 8,
}
/** Size of the guestControl area the kernel uses; the Frame may be larger. */
export const GUEST_CONTROL_BYTES = 64;

/**
 * Frames a guest's controls point at by host-physical address (I/O and MSR bitmaps).
 * The monitor binds the Frame to the DCB through a capability, then writes the frame's
 * address (capIdentify: ret.value) into the VMCS/VMCB field; entry checks that the field
 * names the bound frame, as it does for the EPT pointer and N_CR3. So a monitor can
 * point the hardware only at memory it holds a capability to.
 */
export const enum GuestFrameRole {
  /** VMX I/O bitmap A (ports 0000-7FFF), 4 KiB (SDM 25.6.4). */
  VmxIoBitmapA = 0,
  /** VMX I/O bitmap B (ports 8000-FFFF), 4 KiB. */
  VmxIoBitmapB = 1,
  /** VMX MSR bitmaps, 4 KiB (SDM 25.6.9). */
  VmxMsrBitmap = 2,
  /** SVM I/O permission map, 12 KiB (APM 15.10.1). */
  SvmIopm = 3,
  /** SVM MSR permission map, 8 KiB (APM 15.11). */
  SvmMsrpm = 4,
  /** VMX VM-entry MSR-load area (SDM 25.8.2): 16-byte entries; the VMCS address must lie in this Frame. */
  VmxEntryMsrLoad = 5,
  /** VMX VM-exit MSR-store area (SDM 25.7.2). */
  VmxExitMsrStore = 6,
  /** VMX VM-exit MSR-load area (SDM 25.7.2). */
  VmxExitMsrLoad = 7,
}
/** Minimum Frame size per GuestFrameRole. */
export const GUEST_FRAME_BYTES: readonly number[] = [4096, 4096, 4096, 12288, 8192, 16, 16, 16];

export interface GuestSetup {
  vmcontrol: CPtr;
  gpspace: CPtr;
  /** A Frame of at least GUEST_CONTROL_BYTES: see GuestControlWord. */
  guestControl: CPtr;
}

/**
 * Invocations on capabilities, as a monitor makes them. One Syscalls object is
 * bound to one CSpace. The VMX calls follow the SDM's instruction outcomes: Ok is
 * VMsucceed, VmFailInvalid and VmFailValid are the two failures.
 *
 * The ABI is that of a 32-bit host: vmread/vmwrite move 32 bits; a 64-bit field's
 * upper half is reached through its "high" encoding (SDM 25.11.2, appendix B).
 */
export interface Syscalls {
  readonly ret: SysRet;
  // CSpace
  capCopy(src: CPtr): SysErr;
  /** A copy with rights ⊆ the source's; needs Grant on the source. */
  capMint(src: CPtr, rights: Rights): SysErr;
  capDelete(cap: CPtr): SysErr;
  /** Delete every copy and descendant of `cap`, leaving `cap` itself. */
  capRevoke(cap: CPtr): SysErr;
  capIdentify(cap: CPtr): SysErr;
  /** Carve `bytes` from a Ram capability into a new object. VmControl needs `kind`. */
  ramRetype(ram: CPtr, type: ObjType, bytes: number, kind?: "vmcs" | "vmcb"): SysErr;
  /** Map a Frame (or a VMCB VmControl) into the monitor: ret.view. Needs Read. */
  frameMap(frame: CPtr): SysErr;
  // Guest-physical space
  gpspaceMap(gpspace: CPtr, frame: CPtr, gpa: number, perms: MapPerm): SysErr;
  gpspaceUnmap(gpspace: CPtr, gpa: number): SysErr;
  gpspaceSetMmio(gpspace: CPtr, handler: MmioHandler): SysErr;
  /**
   * The chipset's A20 gate (A20M#): when disabled, bit 20 of every guest-physical address
   * is forced to 0 (1 MiB wraps as on an 8086). Needs Write on the space.
   */
  gpspaceSetA20(gpspace: CPtr, enabled: boolean): SysErr;
  // Dispatcher
  dispatcherSetupGuest(dcb: CPtr, setup: GuestSetup): SysErr;
  /**
   * Bind a Frame (Read needed; at least GUEST_FRAME_BYTES[role]) to a set-up guest in
   * `role`, replacing any earlier one; the kernel keeps it alive while bound. Write on the DCB.
   */
  dispatcherBindFrame(dcb: CPtr, role: GuestFrameRole, frame: CPtr): SysErr;
  /**
   * Read a capability MSR of the installed extension (VMX: IA32_FEATURE_CONTROL and
   * IA32_VMX_* 0x480-0x490, SDM appendix A): ret.value = bits 31:0, ret.valueHigh =
   * bits 63:32. NoExtension without an extension that reports capabilities,
   * InvalidArgument for an MSR it does not report.
   */
  rdmsrCap(msr: number): SysErr;
  // VMX
  /**
   * VMXON (SDM 31.3) with a Frame as the VMXON region (its first dword: the revision
   * identifier). Needs Read+Write on the Frame.
   */
  vmxon(vmxonRegion: CPtr): SysErr;
  /** VMXOFF (SDM 31.3). NotInVmxOperation outside VMX operation. */
  vmxoff(): SysErr;
  vmptrld(dcb: CPtr, vmcs: CPtr): SysErr;
  vmclear(dcb: CPtr, vmcs: CPtr): SysErr;
  /** ret.value = the field. Needs Read on the DCB. */
  vmread(dcb: CPtr, encoding: number): SysErr;
  /** Needs Write on the DCB. */
  vmwrite(dcb: CPtr, encoding: number, value: number): SysErr;
  vmlaunch(dcb: CPtr): SysErr;
  vmresume(dcb: CPtr): SysErr;
  /**
   * INVEPT (SDM 31.3) on the DCB's logical processor: `type` 1 single-context (the EPTP
   * in `eptpLo`/`eptpHi`), 2 all-context. Outcomes as the instruction's: VMfailInvalid
   * without a current VMCS, VMfailValid 28 for an unsupported type or a bad EPTP.
   * Needs Write on the DCB. Optional: NoExtension where the extension has no EPT.
   */
  invept?(dcb: CPtr, type: number, eptpLo: number, eptpHi: number): SysErr;
  // SVM
  vmrun(dcb: CPtr): SysErr;
}

// ---------------------------------------------------------------------------
// What a virtualization extension sees: kernel objects already checked against
// the caller's capabilities.

export interface VmControlObject {
  readonly kind: "vmcs" | "vmcb";
  /** The region. For a VMCB the monitor maps the same bytes. */
  readonly bytes: Uint8Array;
  /** Its host-physical address (4 KiB aligned), as VMPTRLD/VMCLEAR operands and VMCB addresses name it. */
  readonly paddr: number;
  /** Extension-private state (launch state, field storage ...). */
  ext: unknown;
}

export interface GuestPhysSpaceObject {
  /** Host-physical address of its root (what an EPT pointer or N_CR3 names). */
  readonly paddr: number;
  /** The guest-physical address space as the engine's core sees it. */
  readonly memory: PhysMemory;
}

/** The engine's vCPU: an x86 core (or a KVM vCPU) that runs until an intercept. */
export interface EngineVcpu {
  readonly intercepts: InterceptControls;
  readonly exit: CpuExit;
  /** Instructions retired since creation. */
  readonly retired: number;
  /**
   * Optional (engines whose clock is the instruction count): instruction-times the vCPU
   * spent waiting in HLT or shutdown (wait()); the TSC includes them, as the TSC runs in
   * HLT. retired + idle is the vCPU's clock (e.g. the VMX-preemption timer's, SDM 26.5.1).
   */
  readonly idle?: number;
  /** Optional, with `idle`: `n` instruction-times pass while the vCPU waits (HLT, shutdown); idle and the TSC advance. */
  wait?(n: number): void;
  /**
   * Added to the TSC the guest reads (RDTSC, RDMSR IA32_TSC): VMX TSC offsetting
   * (SDM 26.3). Set by the extension before run; exact while |TSC| < 2^53.
   */
  tscOffset: number;
  /** Optional (engines that can): RDTSCP executes when set, else #UD (VMX "enable RDTSCP", SDM 25.6.2). */
  rdtscpEnabled?: boolean;
  run(budget: number): CpuExitReason;
  getState(out: X86State): void;
  setState(state: X86State): void;
  deliverEvent(type: EventType, vector: number, errorCode: number, hasErrorCode: boolean): void;
  interruptible(): boolean;
  /**
   * Optional: the physical memory the core runs on from the next run on (EPT/NPT: a
   * NestedPagingMemory over the GuestPhysSpace; without nested paging the space itself).
   * An engine without it cannot honour nested paging.
   */
  setMemory?(memory: PhysMemory): void;
  /**
   * Optional: RDMSR (out[0] = bits 31:0, out[1] = 63:32) or WRMSR of a guest MSR as the VMX
   * MSR-load/store areas perform them (SDM 27.4, 28.3): no CPL check, no intercepts; false
   * where the instruction would #GP(0). An engine without it cannot honour those areas.
   */
  accessMsr?(index: number, write: boolean, lo: number, hi: number, out: Uint32Array): boolean;
}

export interface Engine {
  readonly name: string;
  createVcpu(memory: PhysMemory): EngineVcpu;
}

export interface GuestBinding {
  readonly vmcontrol: VmControlObject;
  readonly gpspace: GuestPhysSpaceObject;
  /** The guestControl words shared with the monitor (GuestControlWord layout). */
  readonly guestControl: Uint32Array;
  readonly vcpu: EngineVcpu;
  /** Extension-private per-guest state (e.g. the current-VMCS pointer). */
  ext: unknown;
  /** Frames bound with dispatcherBindFrame, indexed by GuestFrameRole (null: none bound). */
  readonly frames: ({ readonly bytes: Uint8Array; readonly paddr: number } | null)[];
}

export interface DispatcherObject {
  readonly id: number;
  guest: GuestBinding | null;
}

export interface ExtensionContext {
  /** Instructions per world-switch timeslice; when it ends the guest exits as for a host interrupt. */
  readonly timeslice: number;
  /** Look up a VmControl by host-physical address (VMPTRLD/VMCLEAR operands, VMCB addresses). */
  vmcontrolAt(paddr: number): VmControlObject | undefined;
}

interface ExtensionCommon {
  /** Called once by the kernel on install. */
  attach(ctx: ExtensionContext): void;
  /** A new VmControl of this extension's kind was retyped: initialise `ctl.bytes` and `ctl.ext`. */
  initControl(ctl: VmControlObject): void;
  /** dispatcher.setupGuest: validate and initialise (VMX: host state in the kernel). */
  setupGuest(dcb: DispatcherObject, guest: GuestBinding): SysErr;
  /** Optional: a capability MSR (or, for SVM, a CPUID leaf) into ret.value/valueHigh; InvalidArgument if unknown. */
  readCapability?(msr: number, ret: SysRet): SysErr;
}

/** The VMXON region as the kernel hands it to the extension: a Frame checked for Read+Write. */
export interface VmxonRegion {
  readonly bytes: Uint8Array;
  /** Host-physical address (VMXON's operand). */
  readonly paddr: number;
}

export interface VmxExtension extends ExtensionCommon {
  readonly kind: "vmx";
  /** Optional: VMXON/VMXOFF (SDM 31.3). An extension without them is always in VMX operation. */
  vmxon?(region: VmxonRegion, ret: SysRet): SysErr;
  vmxoff?(ret: SysRet): SysErr;
  vmptrld(dcb: DispatcherObject, ctl: VmControlObject, ret: SysRet): SysErr;
  vmclear(dcb: DispatcherObject, ctl: VmControlObject, ret: SysRet): SysErr;
  vmread(dcb: DispatcherObject, encoding: number, ret: SysRet): SysErr;
  vmwrite(dcb: DispatcherObject, encoding: number, value: number, ret: SysRet): SysErr;
  vmlaunch(dcb: DispatcherObject, ret: SysRet): SysErr;
  vmresume(dcb: DispatcherObject, ret: SysRet): SysErr;
  /** Optional: INVEPT (Syscalls.invept). */
  invept?(dcb: DispatcherObject, type: number, eptpLo: number, eptpHi: number, ret: SysRet): SysErr;
}

export interface SvmExtension extends ExtensionCommon {
  readonly kind: "svm";
  vmrun(dcb: DispatcherObject, ret: SysRet): SysErr;
}

export type VirtExtension = VmxExtension | SvmExtension;

/** How a plugin installs the kernel half of a backend (like loading a kernel module). */
export interface KernelExtensionHost {
  install(ext: VirtExtension): SysErr;
  readonly engineName: string;
}

export {
  NestedPagingMemory, NestedFormat, NestedAccess, NestedFaultKind, EptEntry, NptEntry, nestedPagingFor,
  identityTablesBytes, writeIdentityTables,
  type NestedPagingOptions, type HostPhysRam,
} from "./nested-paging.js";

export type { X86State, InterceptControls, CpuExit, CpuExitReason, EventType, PhysMemory, AccessSize };

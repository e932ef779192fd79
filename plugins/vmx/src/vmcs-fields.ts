// VMCS component encodings as data (Intel SDM Vol. 3C appendix B, 25.11.2), the
// bit layout that decodes them, the VMCS region layout this implementation uses
// (SDM 25.2: revision identifier at 0, VMX-abort indicator at 4, the rest is
// implementation-specific), and the VM-execution/exit/entry control bits.
// Shared by the kernel half (storage, entry checks) and the monitor half (vmread/vmwrite).

/** Encoding bits 14:13 (SDM 25.11.2, "Structure of VMCS Component Encoding"). */
export const VmcsWidth = { W16: 0, W64: 1, W32: 2, Natural: 3 } as const;
export type VmcsWidth = (typeof VmcsWidth)[keyof typeof VmcsWidth];
/** Encoding bits 11:10. */
export const VmcsType = { Control: 0, ReadOnly: 1, Guest: 2, Host: 3 } as const;
export type VmcsType = (typeof VmcsType)[keyof typeof VmcsType];

export const vmcsWidth = (enc: number): VmcsWidth => ((enc >>> 13) & 3) as VmcsWidth;
export const vmcsType = (enc: number): VmcsType => ((enc >>> 10) & 3) as VmcsType;
/** Bits 9:1. */
export const vmcsIndex = (enc: number): number => (enc >>> 1) & 0x1ff;
/** Bit 0: 1 = the high 32 bits of a 64-bit field. */
export const vmcsAccessHigh = (enc: number): boolean => (enc & 1) === 1;
/** Bits 31:15 and bit 12 are reserved (must be 0). */
export const vmcsReservedBits = (enc: number): boolean => (enc & ~0x6fff) !== 0;

/**
 * Every field of SDM Vol. 3D appendix B (2023 revision: tables B-1 .. B-14), full
 * encodings; a 64-bit field's high half is `enc | 1`. Which of them VMREAD/VMWRITE
 * accept depends on the capability MSRs: see FIELD_NEEDS.
 */
export const F = {
  // B.1.1 16-bit control
  Vpid: 0x0000, PostedIntrVector: 0x0002, EptpIndex: 0x0004, HlatPrefixSize: 0x0006, LastPidPtrIndex: 0x0008,
  // B.1.2 16-bit guest state
  GuestEsSel: 0x0800, GuestCsSel: 0x0802, GuestSsSel: 0x0804, GuestDsSel: 0x0806,
  GuestFsSel: 0x0808, GuestGsSel: 0x080a, GuestLdtrSel: 0x080c, GuestTrSel: 0x080e,
  GuestIntrStatus: 0x0810, PmlIndex: 0x0812, GuestUinv: 0x0814,
  // B.1.3 16-bit host state
  HostEsSel: 0x0c00, HostCsSel: 0x0c02, HostSsSel: 0x0c04, HostDsSel: 0x0c06,
  HostFsSel: 0x0c08, HostGsSel: 0x0c0a, HostTrSel: 0x0c0c,
  // B.2.1 64-bit control
  IoBitmapA: 0x2000, IoBitmapB: 0x2002, MsrBitmap: 0x2004,
  ExitMsrStoreAddr: 0x2006, ExitMsrLoadAddr: 0x2008, EntryMsrLoadAddr: 0x200a,
  ExecutiveVmcsPtr: 0x200c, PmlAddr: 0x200e, TscOffset: 0x2010, VirtApicAddr: 0x2012,
  ApicAccessAddr: 0x2014, PostedIntrDescAddr: 0x2016, VmFuncControls: 0x2018, EptPointer: 0x201a,
  EoiExitBitmap0: 0x201c, EoiExitBitmap1: 0x201e, EoiExitBitmap2: 0x2020, EoiExitBitmap3: 0x2022,
  EptpListAddr: 0x2024, VmreadBitmapAddr: 0x2026, VmwriteBitmapAddr: 0x2028, VeInfoAddr: 0x202a,
  XssExitingBitmap: 0x202c, EnclsExitingBitmap: 0x202e, SppTablePtr: 0x2030, TscMultiplier: 0x2032,
  Proc3Controls: 0x2034, EnclvExitingBitmap: 0x2036, LowPasidDirAddr: 0x2038, HighPasidDirAddr: 0x203a,
  SharedEptp: 0x203c, PconfigExitingBitmap: 0x203e, Hlatp: 0x2040, PidPtrTableAddr: 0x2042,
  Exit2Controls: 0x2044,
  // B.2.2 64-bit read-only
  GuestPhysAddr: 0x2400,
  // B.2.3 64-bit guest state
  VmcsLinkPtr: 0x2800, GuestDebugCtl: 0x2802, GuestPat: 0x2804, GuestEfer: 0x2806,
  GuestPerfGlobalCtrl: 0x2808, GuestPdpte0: 0x280a, GuestPdpte1: 0x280c, GuestPdpte2: 0x280e,
  GuestPdpte3: 0x2810, GuestBndcfgs: 0x2812, GuestRtitCtl: 0x2814, GuestLbrCtl: 0x2816, GuestPkrs: 0x2818,
  // B.2.4 64-bit host state
  HostPat: 0x2c00, HostEfer: 0x2c02, HostPerfGlobalCtrl: 0x2c04, HostPkrs: 0x2c06,
  // B.3.1 32-bit control
  PinControls: 0x4000, ProcControls: 0x4002, ExceptionBitmap: 0x4004,
  PfErrorCodeMask: 0x4006, PfErrorCodeMatch: 0x4008, Cr3TargetCount: 0x400a,
  ExitControls: 0x400c, ExitMsrStoreCount: 0x400e, ExitMsrLoadCount: 0x4010,
  EntryControls: 0x4012, EntryMsrLoadCount: 0x4014,
  EntryIntrInfo: 0x4016, EntryExceptionErrorCode: 0x4018, EntryInstrLen: 0x401a,
  TprThreshold: 0x401c, Proc2Controls: 0x401e, PleGap: 0x4020, PleWindow: 0x4022,
  InstrTimeoutControl: 0x4024,
  // B.3.2 32-bit read-only (exit information)
  VmInstructionError: 0x4400, ExitReason: 0x4402, ExitIntrInfo: 0x4404, ExitIntrErrorCode: 0x4406,
  IdtVectoringInfo: 0x4408, IdtVectoringErrorCode: 0x440a, ExitInstrLen: 0x440c, ExitInstrInfo: 0x440e,
  // B.3.3 32-bit guest state
  GuestEsLimit: 0x4800, GuestCsLimit: 0x4802, GuestSsLimit: 0x4804, GuestDsLimit: 0x4806,
  GuestFsLimit: 0x4808, GuestGsLimit: 0x480a, GuestLdtrLimit: 0x480c, GuestTrLimit: 0x480e,
  GuestGdtrLimit: 0x4810, GuestIdtrLimit: 0x4812,
  GuestEsAr: 0x4814, GuestCsAr: 0x4816, GuestSsAr: 0x4818, GuestDsAr: 0x481a,
  GuestFsAr: 0x481c, GuestGsAr: 0x481e, GuestLdtrAr: 0x4820, GuestTrAr: 0x4822,
  GuestInterruptibility: 0x4824, GuestActivity: 0x4826, GuestSmbase: 0x4828, GuestSysenterCs: 0x482a,
  PreemptionTimerValue: 0x482e,
  // B.3.4 32-bit host state
  HostSysenterCs: 0x4c00,
  // B.4.1 natural-width control
  Cr0GuestHostMask: 0x6000, Cr4GuestHostMask: 0x6002, Cr0ReadShadow: 0x6004, Cr4ReadShadow: 0x6006,
  Cr3Target0: 0x6008, Cr3Target1: 0x600a, Cr3Target2: 0x600c, Cr3Target3: 0x600e,
  // B.4.2 natural-width read-only
  ExitQualification: 0x6400, IoRcx: 0x6402, IoRsi: 0x6404, IoRdi: 0x6406, IoRip: 0x6408,
  GuestLinearAddr: 0x640a,
  // B.4.3 natural-width guest state
  GuestCr0: 0x6800, GuestCr3: 0x6802, GuestCr4: 0x6804,
  GuestEsBase: 0x6806, GuestCsBase: 0x6808, GuestSsBase: 0x680a, GuestDsBase: 0x680c,
  GuestFsBase: 0x680e, GuestGsBase: 0x6810, GuestLdtrBase: 0x6812, GuestTrBase: 0x6814,
  GuestGdtrBase: 0x6816, GuestIdtrBase: 0x6818, GuestDr7: 0x681a,
  GuestRsp: 0x681c, GuestRip: 0x681e, GuestRflags: 0x6820, GuestPendingDbg: 0x6822,
  GuestSysenterEsp: 0x6824, GuestSysenterEip: 0x6826, GuestSCet: 0x6828, GuestSsp: 0x682a,
  GuestIntrSspTableAddr: 0x682c,
  // B.4.4 natural-width host state
  HostCr0: 0x6c00, HostCr3: 0x6c02, HostCr4: 0x6c04, HostFsBase: 0x6c06, HostGsBase: 0x6c08,
  HostTrBase: 0x6c0a, HostGdtrBase: 0x6c0c, HostIdtrBase: 0x6c0e,
  HostSysenterEsp: 0x6c10, HostSysenterEip: 0x6c12, HostRsp: 0x6c14, HostRip: 0x6c16,
  HostSCet: 0x6c18, HostSsp: 0x6c1a, HostIntrSspTableAddr: 0x6c1c,
} as const;
export type FieldName = keyof typeof F;

/** The guest segment fields in x86 Sreg order (ES, CS, SS, DS, FS, GS), then LDTR, TR. */
export const SEGMENT_FIELDS = [
  { name: "es", sel: F.GuestEsSel, base: F.GuestEsBase, limit: F.GuestEsLimit, ar: F.GuestEsAr },
  { name: "cs", sel: F.GuestCsSel, base: F.GuestCsBase, limit: F.GuestCsLimit, ar: F.GuestCsAr },
  { name: "ss", sel: F.GuestSsSel, base: F.GuestSsBase, limit: F.GuestSsLimit, ar: F.GuestSsAr },
  { name: "ds", sel: F.GuestDsSel, base: F.GuestDsBase, limit: F.GuestDsLimit, ar: F.GuestDsAr },
  { name: "fs", sel: F.GuestFsSel, base: F.GuestFsBase, limit: F.GuestFsLimit, ar: F.GuestFsAr },
  { name: "gs", sel: F.GuestGsSel, base: F.GuestGsBase, limit: F.GuestGsLimit, ar: F.GuestGsAr },
  { name: "ldtr", sel: F.GuestLdtrSel, base: F.GuestLdtrBase, limit: F.GuestLdtrLimit, ar: F.GuestLdtrAr },
  { name: "tr", sel: F.GuestTrSel, base: F.GuestTrBase, limit: F.GuestTrLimit, ar: F.GuestTrAr },
] as const;
export type SegmentName = (typeof SEGMENT_FIELDS)[number]["name"];

export interface FieldInfo {
  readonly name: FieldName;
  readonly encoding: number;
  readonly width: VmcsWidth;
  readonly type: VmcsType;
  /** Byte offset of the field in the VMCS region. */
  readonly offset: number;
}

/** SDM 25.2: bytes 0-3 revision identifier (bit 31 shadow-VMCS indicator), 4-7 VMX-abort indicator. */
export const VMCS_REVISION_OFFSET = 0;
export const VMCS_ABORT_OFFSET = 4;
export const VMCS_REGION_BYTES = 4096;
const FIELDS_START = 16;

function buildLayout(): Map<number, FieldInfo> {
  const table = new Map<number, FieldInfo>();
  let offset = FIELDS_START;
  for (const [name, encoding] of Object.entries(F) as [FieldName, number][]) {
    // Every field gets an 8-byte slot: 64-bit and natural-width fields need it, and a
    // uniform slot keeps the layout trivially aligned.
    table.set(encoding, { name, encoding, width: vmcsWidth(encoding), type: vmcsType(encoding), offset });
    offset += 8;
  }
  if (offset > VMCS_REGION_BYTES) throw new Error(`VMCS layout needs ${offset} bytes, region has ${VMCS_REGION_BYTES}`);
  return table;
}

/** Full encoding → field info, for the fields in `F`. */
export const FIELD_TABLE: ReadonlyMap<number, FieldInfo> = buildLayout();

/** The highest index (bits 9:1) of any encoding in the table; IA32_VMX_VMCS_ENUM reports `highestFieldIndex(caps)`, over the fields that exist. */
export const HIGHEST_FIELD_INDEX = Math.max(...[...FIELD_TABLE.keys()].map(vmcsIndex));

/**
 * Look up an encoding as VMREAD/VMWRITE see it: undefined when the component is
 * unsupported (reserved bits, unknown, or a high-access encoding of a field that is not 64-bit).
 */
export function lookupField(enc: number): FieldInfo | undefined {
  if (vmcsReservedBits(enc)) return undefined;
  const info = FIELD_TABLE.get(enc & ~1);
  if (info === undefined) return undefined;
  if (vmcsAccessHigh(enc) && info.width !== VmcsWidth.W64) return undefined;
  return info;
}

/**
 * Encoding bits 14:0 → the field's byte offset, bit 0 set for a 16-bit field (offsets are
 * multiples of 8), 0 for no field: VmcsView.get/set are on every entry and exit (a few
 * hundred accesses), where a Map lookup per access showed in the profile.
 */
const SLOTS: Int32Array = (() => {
  const slots = new Int32Array(0x8000);
  for (const f of FIELD_TABLE.values()) slots[f.encoding] = f.offset | (f.width === VmcsWidth.W16 ? 1 : 0);
  return slots;
})();

export function offsetOf(enc: number): number {
  const info = FIELD_TABLE.get(enc);
  if (info === undefined) throw new Error(`VMCS encoding 0x${enc.toString(16)} is not in the field table`);
  return info.offset;
}

/**
 * Typed access to a VMCS region's bytes. Values are u32 (32-bit host ABI): a 64-bit
 * field is reached as its low half (full encoding) and high half (`enc | 1`).
 */
export class VmcsView {
  readonly dv: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get revision(): number { return this.dv.getUint32(VMCS_REVISION_OFFSET, true); }
  set revision(v: number) { this.dv.setUint32(VMCS_REVISION_OFFSET, v >>> 0, true); }
  get abort(): number { return this.dv.getUint32(VMCS_ABORT_OFFSET, true); }

  /** Read a named field (full or high encoding). Unknown encodings throw: a host bug, never guest-driven. */
  get(enc: number): number {
    const slot = enc >>> 0 < 0x8000 ? SLOTS[enc & 0x7ffe]! : 0;
    if (slot === 0) throw new Error(`VMCS encoding 0x${enc.toString(16)} is not in the field table`);
    const offset = slot & ~7;
    if ((enc & 1) !== 0) return this.dv.getUint32(offset + 4, true);
    const v = this.dv.getUint32(offset, true);
    return (slot & 1) !== 0 ? v & 0xffff : v;
  }
  /** Write as VMWRITE outside IA-32e mode does: a full-encoding write clears the high half. */
  set(enc: number, value: number): void {
    const slot = enc >>> 0 < 0x8000 ? SLOTS[enc & 0x7ffe]! : 0;
    if (slot === 0) throw new Error(`VMCS encoding 0x${enc.toString(16)} is not in the field table`);
    const offset = slot & ~7;
    if ((enc & 1) !== 0) { this.dv.setUint32(offset + 4, value >>> 0, true); return; }
    this.dv.setUint32(offset, (slot & 1) !== 0 ? value & 0xffff : value >>> 0, true);
    this.dv.setUint32(offset + 4, 0, true);
  }
  readInfo(info: FieldInfo, high: boolean): number {
    if (high) return this.dv.getUint32(info.offset + 4, true);
    const v = this.dv.getUint32(info.offset, true);
    return info.width === VmcsWidth.W16 ? v & 0xffff : v;
  }
  writeInfo(info: FieldInfo, high: boolean, value: number): void {
    if (high) { this.dv.setUint32(info.offset + 4, value >>> 0, true); return; }
    this.dv.setUint32(info.offset, info.width === VmcsWidth.W16 ? value & 0xffff : value >>> 0, true);
    this.dv.setUint32(info.offset + 4, 0, true);
  }
  /** Hot-path access by precomputed offset (low 32 bits). */
  getAt(offset: number): number { return this.dv.getUint32(offset, true); }
  setAt(offset: number, value: number): void {
    this.dv.setUint32(offset, value >>> 0, true);
    this.dv.setUint32(offset + 4, 0, true);
  }
}

// ---------------------------------------------------------------------------
// Control bits (SDM 25.6, 25.7, 25.8)

/** Pin-based VM-execution controls (SDM 25.6.1, table 25-5). */
export const Pin = { ExtIntExiting: 1 << 0, NmiExiting: 1 << 3, VirtualNmis: 1 << 5, PreemptionTimer: 1 << 6, PostedInterrupts: 1 << 7 } as const;
/** Primary processor-based VM-execution controls (SDM 25.6.2, table 25-6). */
export const Proc = {
  InterruptWindow: 1 << 2, TscOffsetting: 1 << 3, HltExiting: 1 << 7, InvlpgExiting: 1 << 9,
  MwaitExiting: 1 << 10, RdpmcExiting: 1 << 11, RdtscExiting: 1 << 12, Cr3LoadExiting: 1 << 15,
  Cr3StoreExiting: 1 << 16, Cr8LoadExiting: 1 << 19, Cr8StoreExiting: 1 << 20, TprShadow: 1 << 21,
  NmiWindow: 1 << 22, MovDrExiting: 1 << 23, UncondIoExiting: 1 << 24, UseIoBitmaps: 1 << 25,
  MonitorTrapFlag: 1 << 27, UseMsrBitmaps: 1 << 28, MonitorExiting: 1 << 29, PauseExiting: 1 << 30,
  ActivateSecondary: 1 << 31,
} as const;
/** Secondary processor-based VM-execution controls (SDM 25.6.2, table 25-7). */
export const Proc2 = { VirtApicAccesses: 1 << 0, EnableEpt: 1 << 1, DescTableExiting: 1 << 2, EnableRdtscp: 1 << 3, EnableVpid: 1 << 5, WbinvdExiting: 1 << 6, UnrestrictedGuest: 1 << 7 } as const;
/** VM-exit controls (SDM 25.7.1, table 25-13). */
export const ExitCtl = { SaveDebugControls: 1 << 2, HostAddrSpaceSize: 1 << 9, AckIntOnExit: 1 << 15, SavePreemptionTimer: 1 << 22, SavePat: 1 << 18, LoadPat: 1 << 19, SaveEfer: 1 << 20, LoadEfer: 1 << 21 } as const;
/** VM-entry controls (SDM 25.8.1, table 25-15). */
export const EntryCtl = { LoadDebugControls: 1 << 2, Ia32eModeGuest: 1 << 9, EntryToSmm: 1 << 10, LoadPat: 1 << 14, LoadEfer: 1 << 15 } as const;

/** Interruption-information format (SDM 25.8.3 table 25-17, 25.9.2 table 25-19). */
export const IntrInfo = {
  Valid: 1 << 31, DeliverErrorCode: 1 << 11, TypeShift: 8, TypeMask: 7 << 8, VectorMask: 0xff,
  /** VM-exit interruption information bit 12, and EPT-violation qualification bit 12 (SDM 28.2.1, 28.2.2). */
  NmiUnblocking: 1 << 12,
} as const;
/** Interruption types (bits 10:8). */
export const IntrType = { ExtInt: 0, Reserved: 1, Nmi: 2, HardwareException: 3, SoftwareInt: 4, PrivSoftwareException: 5, SoftwareException: 6, OtherEvent: 7 } as const;

/** Basic exit reasons used by this slice (SDM appendix C). */
export const ExitReason = {
  ExceptionOrNmi: 0, ExternalInterrupt: 1, TripleFault: 2, InterruptWindow: 7, Cpuid: 10, Hlt: 12,
  Invd: 13, Invlpg: 14, Rdpmc: 15, Rdtsc: 16, Vmcall: 18, Vmclear: 19, Vmlaunch: 20, Vmptrld: 21,
  Vmptrst: 22, Vmread: 23, Vmresume: 24, Vmwrite: 25, Vmxoff: 26, Vmxon: 27, CrAccess: 28, MovDr: 29,
  IoInstruction: 30, Rdmsr: 31, Wrmsr: 32, EntryFailGuestState: 33, EntryFailMsrLoading: 34, Pause: 40,
  Invept: 50, Invvpid: 53, Wbinvd: 54,
  EptViolation: 48, EptMisconfig: 49,
  InitSignal: 3, Sipi: 4, NmiWindow: 8, TaskSwitch: 9, Mwait: 36, MonitorTrapFlag: 37, Monitor: 39,
  GdtrIdtr: 46, LdtrTr: 47, Rdtscp: 51, PreemptionTimer: 52, Xsetbv: 55,
} as const;
/** Exit-reason bit 31: VM-entry failure (SDM 25.9.1). */
export const EXIT_REASON_ENTRY_FAILURE = 0x80000000;

/**
 * The guestControl words (from GuestControlWord.ExitInfo = 12) the kernel half fills at
 * every exit and entry failure: copies of VMCS fields, so an I/O, CPUID or MSR exit costs
 * the monitor no VMREAD. The VMCS stays authoritative; the monitor writes through VMWRITE.
 */
export const VmxExitWord = {
  /** Exit reason (0x4402). */
  Reason: 12,
  /** Exit qualification (0x6400), low 32 bits. */
  Qualification: 13,
  /** Guest RIP (0x681E) after the exit. */
  Rip: 14,
  /** VM-exit instruction length (0x440C) in bits 15:0, guest interruptibility state (0x4824) in bits 31:16. */
  LenIntr: 15,
} as const;

/** VM-instruction error numbers (SDM 31.4, table 31-1). */
export const VmxError = {
  VmclearInvalidAddress: 2, VmlaunchNonClear: 4, VmresumeNonLaunched: 5,
  EntryInvalidControls: 7, EntryInvalidHostState: 8, VmptrldInvalidAddress: 9,
  VmptrldWrongRevision: 11, UnsupportedComponent: 12, VmwriteReadOnly: 13,
  /** INVEPT/INVVPID with an unsupported type or a bad operand (SDM 31.4). */
  InvalidInveptOperand: 28,
} as const;

// ---------------------------------------------------------------------------
// Which fields exist (SDM appendix B footnotes: "exists only on processors that
// support the 1-setting of ..."). A field without an entry exists on every
// processor with VMX. VMREAD/VMWRITE of a field whose feature the capability MSRs
// report unsupported is VMfailValid 12 (SDM 31.3, "unsupported VMCS component").

/** The capability MSR (its allowed-1 half) that reports a control. */
export type CtlGroup = "pin" | "proc" | "proc2" | "exit" | "entry";
/** A field exists if any of these controls may be 1; "never": its feature has no control this model reports. */
export interface FieldNeed {
  readonly any: readonly (readonly [CtlGroup, number])[];
  /** The feature, for messages and the README table. */
  readonly feature: string;
}
const need = (feature: string, ...any: (readonly [CtlGroup, number])[]): FieldNeed => ({ feature, any });
/** Features reached only through controls no capability MSR here reports (tertiary controls, dual monitor ...). */
const NEVER = (feature: string): FieldNeed => ({ feature, any: [] });

export const FIELD_NEEDS: ReadonlyMap<number, FieldNeed> = new Map<number, FieldNeed>([
  [F.Vpid, need("enable VPID", ["proc2", 1 << 5])],
  [F.PostedIntrVector, need("process posted interrupts", ["pin", Pin.PostedInterrupts])],
  [F.PostedIntrDescAddr, need("process posted interrupts", ["pin", Pin.PostedInterrupts])],
  [F.EptpIndex, need("EPT-violation #VE", ["proc2", 1 << 18])],
  [F.VeInfoAddr, need("EPT-violation #VE", ["proc2", 1 << 18])],
  [F.HlatPrefixSize, NEVER("HLAT (tertiary controls)")],
  [F.Hlatp, NEVER("HLAT (tertiary controls)")],
  [F.LastPidPtrIndex, NEVER("IPI virtualization (tertiary controls)")],
  [F.PidPtrTableAddr, NEVER("IPI virtualization (tertiary controls)")],
  [F.GuestIntrStatus, need("virtual-interrupt delivery", ["proc2", 1 << 9])],
  [F.EoiExitBitmap0, need("virtual-interrupt delivery", ["proc2", 1 << 9])],
  [F.EoiExitBitmap1, need("virtual-interrupt delivery", ["proc2", 1 << 9])],
  [F.EoiExitBitmap2, need("virtual-interrupt delivery", ["proc2", 1 << 9])],
  [F.EoiExitBitmap3, need("virtual-interrupt delivery", ["proc2", 1 << 9])],
  [F.PmlIndex, need("enable PML", ["proc2", 1 << 17])],
  [F.PmlAddr, need("enable PML", ["proc2", 1 << 17])],
  [F.GuestUinv, NEVER("user interrupts")],
  [F.MsrBitmap, need("use MSR bitmaps", ["proc", Proc.UseMsrBitmaps])],
  [F.ExecutiveVmcsPtr, NEVER("dual-monitor treatment of SMM (IA32_VMX_BASIC[49] = 0)")],
  [F.VirtApicAddr, need("use TPR shadow", ["proc", Proc.TprShadow])],
  [F.TprThreshold, need("use TPR shadow", ["proc", Proc.TprShadow])],
  [F.ApicAccessAddr, need("virtualize APIC accesses", ["proc2", Proc2.VirtApicAccesses])],
  [F.VmFuncControls, need("enable VM functions", ["proc2", 1 << 13])],
  [F.EptpListAddr, need("enable VM functions", ["proc2", 1 << 13])],
  [F.EptPointer, need("enable EPT", ["proc2", Proc2.EnableEpt])],
  [F.GuestPhysAddr, need("enable EPT", ["proc2", Proc2.EnableEpt])],
  [F.GuestPdpte0, need("enable EPT", ["proc2", Proc2.EnableEpt])],
  [F.GuestPdpte1, need("enable EPT", ["proc2", Proc2.EnableEpt])],
  [F.GuestPdpte2, need("enable EPT", ["proc2", Proc2.EnableEpt])],
  [F.GuestPdpte3, need("enable EPT", ["proc2", Proc2.EnableEpt])],
  [F.VmreadBitmapAddr, need("VMCS shadowing", ["proc2", 1 << 14])],
  [F.VmwriteBitmapAddr, need("VMCS shadowing", ["proc2", 1 << 14])],
  [F.XssExitingBitmap, need("enable XSAVES/XRSTORS", ["proc2", 1 << 20])],
  [F.EnclsExitingBitmap, need("enable ENCLS exiting", ["proc2", 1 << 15])],
  [F.SppTablePtr, need("sub-page write permissions", ["proc2", 1 << 23])],
  [F.TscMultiplier, need("use TSC scaling", ["proc2", 1 << 25])],
  [F.Proc3Controls, need("activate tertiary controls", ["proc", 1 << 17])],
  [F.EnclvExitingBitmap, need("enable ENCLV exiting", ["proc2", 1 << 28])],
  [F.LowPasidDirAddr, NEVER("PASID translation (tertiary controls)")],
  [F.HighPasidDirAddr, NEVER("PASID translation (tertiary controls)")],
  [F.SharedEptp, NEVER("shared EPTP (TDX)")],
  [F.PconfigExitingBitmap, NEVER("PCONFIG exiting (tertiary controls)")],
  [F.Exit2Controls, need("activate secondary VM-exit controls", ["exit", 1 << 31])],
  [F.PleGap, need("PAUSE-loop exiting", ["proc2", 1 << 10])],
  [F.PleWindow, need("PAUSE-loop exiting", ["proc2", 1 << 10])],
  [F.InstrTimeoutControl, NEVER("instruction timeout")],
  [F.PreemptionTimerValue, need("activate VMX-preemption timer", ["pin", Pin.PreemptionTimer])],
  [F.GuestPat, need("load/save IA32_PAT", ["entry", EntryCtl.LoadPat], ["exit", ExitCtl.SavePat])],
  [F.HostPat, need("load IA32_PAT at exit", ["exit", ExitCtl.LoadPat])],
  [F.GuestEfer, need("load/save IA32_EFER", ["entry", EntryCtl.LoadEfer], ["exit", ExitCtl.SaveEfer])],
  [F.HostEfer, need("load IA32_EFER at exit", ["exit", ExitCtl.LoadEfer])],
  [F.GuestPerfGlobalCtrl, need("load IA32_PERF_GLOBAL_CTRL", ["entry", 1 << 13])],
  [F.HostPerfGlobalCtrl, need("load IA32_PERF_GLOBAL_CTRL at exit", ["exit", 1 << 12])],
  [F.GuestBndcfgs, need("load/clear IA32_BNDCFGS", ["entry", 1 << 16], ["exit", 1 << 23])],
  [F.GuestRtitCtl, need("load/clear IA32_RTIT_CTL", ["entry", 1 << 18], ["exit", 1 << 25])],
  [F.GuestLbrCtl, need("load/clear IA32_LBR_CTL", ["entry", 1 << 21], ["exit", 1 << 26])],
  [F.GuestPkrs, need("load PKRS", ["entry", 1 << 22])],
  [F.HostPkrs, need("load PKRS at exit", ["exit", 1 << 29])],
  [F.GuestSCet, need("load CET state", ["entry", 1 << 20])],
  [F.GuestSsp, need("load CET state", ["entry", 1 << 20])],
  [F.GuestIntrSspTableAddr, need("load CET state", ["entry", 1 << 20])],
  [F.HostSCet, need("load CET state at exit", ["exit", 1 << 28])],
  [F.HostSsp, need("load CET state at exit", ["exit", 1 << 28])],
  [F.HostIntrSspTableAddr, need("load CET state at exit", ["exit", 1 << 28])],
]);

/** The allowed-1 halves of the control capability MSRs (a VmxCaps satisfies this). */
export type AllowedControls = Readonly<Record<CtlGroup, { readonly mayBe1: number }>>;

/** Does a field of the table exist on a processor reporting these controls? */
export function fieldExists(enc: number, caps: AllowedControls): boolean {
  const n = FIELD_NEEDS.get(enc & ~1);
  if (n === undefined) return true;
  for (const [group, bit] of n.any) if (((caps[group].mayBe1 >>> 0) & (bit >>> 0)) !== 0) return true;
  return false;
}

/** The full encodings that exist under `caps`, in table order. */
export function existingFields(caps: AllowedControls): number[] {
  return [...FIELD_TABLE.keys()].filter((enc) => fieldExists(enc, caps));
}

/** IA32_VMX_VMCS_ENUM bits 9:1 (SDM A.9): the highest index of any field that exists under `caps`. */
export function highestFieldIndex(caps: AllowedControls): number {
  let max = 0;
  for (const enc of existingFields(caps)) max = Math.max(max, vmcsIndex(enc));
  return max;
}

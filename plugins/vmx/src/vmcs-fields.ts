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

/** The fields this slice names (full encodings; a 64-bit field's high half is `enc | 1`). */
export const F = {
  // 16-bit control
  Vpid: 0x0000,
  // 16-bit guest state
  GuestEsSel: 0x0800, GuestCsSel: 0x0802, GuestSsSel: 0x0804, GuestDsSel: 0x0806,
  GuestFsSel: 0x0808, GuestGsSel: 0x080a, GuestLdtrSel: 0x080c, GuestTrSel: 0x080e,
  // 16-bit host state
  HostEsSel: 0x0c00, HostCsSel: 0x0c02, HostSsSel: 0x0c04, HostDsSel: 0x0c06,
  HostFsSel: 0x0c08, HostGsSel: 0x0c0a, HostTrSel: 0x0c0c,
  // 64-bit control
  IoBitmapA: 0x2000, IoBitmapB: 0x2002, MsrBitmap: 0x2004,
  ExitMsrStoreAddr: 0x2006, ExitMsrLoadAddr: 0x2008, EntryMsrLoadAddr: 0x200a,
  TscOffset: 0x2010, EptPointer: 0x201a,
  // 64-bit read-only
  GuestPhysAddr: 0x2400,
  // 64-bit guest state
  VmcsLinkPtr: 0x2800, GuestDebugCtl: 0x2802, GuestPat: 0x2804, GuestEfer: 0x2806,
  // 64-bit host state
  HostPat: 0x2c00, HostEfer: 0x2c02,
  // 32-bit control
  PinControls: 0x4000, ProcControls: 0x4002, ExceptionBitmap: 0x4004,
  PfErrorCodeMask: 0x4006, PfErrorCodeMatch: 0x4008, Cr3TargetCount: 0x400a,
  ExitControls: 0x400c, ExitMsrStoreCount: 0x400e, ExitMsrLoadCount: 0x4010,
  EntryControls: 0x4012, EntryMsrLoadCount: 0x4014,
  EntryIntrInfo: 0x4016, EntryExceptionErrorCode: 0x4018, EntryInstrLen: 0x401a,
  TprThreshold: 0x401c, Proc2Controls: 0x401e,
  // 32-bit read-only (exit information)
  VmInstructionError: 0x4400, ExitReason: 0x4402, ExitIntrInfo: 0x4404, ExitIntrErrorCode: 0x4406,
  IdtVectoringInfo: 0x4408, IdtVectoringErrorCode: 0x440a, ExitInstrLen: 0x440c, ExitInstrInfo: 0x440e,
  // 32-bit guest state
  GuestEsLimit: 0x4800, GuestCsLimit: 0x4802, GuestSsLimit: 0x4804, GuestDsLimit: 0x4806,
  GuestFsLimit: 0x4808, GuestGsLimit: 0x480a, GuestLdtrLimit: 0x480c, GuestTrLimit: 0x480e,
  GuestGdtrLimit: 0x4810, GuestIdtrLimit: 0x4812,
  GuestEsAr: 0x4814, GuestCsAr: 0x4816, GuestSsAr: 0x4818, GuestDsAr: 0x481a,
  GuestFsAr: 0x481c, GuestGsAr: 0x481e, GuestLdtrAr: 0x4820, GuestTrAr: 0x4822,
  GuestInterruptibility: 0x4824, GuestActivity: 0x4826, GuestSysenterCs: 0x482a,
  // 32-bit host state
  HostSysenterCs: 0x4c00,
  // natural-width control
  Cr0GuestHostMask: 0x6000, Cr4GuestHostMask: 0x6002, Cr0ReadShadow: 0x6004, Cr4ReadShadow: 0x6006,
  // natural-width read-only
  ExitQualification: 0x6400, GuestLinearAddr: 0x640a,
  // natural-width guest state
  GuestCr0: 0x6800, GuestCr3: 0x6802, GuestCr4: 0x6804,
  GuestEsBase: 0x6806, GuestCsBase: 0x6808, GuestSsBase: 0x680a, GuestDsBase: 0x680c,
  GuestFsBase: 0x680e, GuestGsBase: 0x6810, GuestLdtrBase: 0x6812, GuestTrBase: 0x6814,
  GuestGdtrBase: 0x6816, GuestIdtrBase: 0x6818, GuestDr7: 0x681a,
  GuestRsp: 0x681c, GuestRip: 0x681e, GuestRflags: 0x6820, GuestPendingDbg: 0x6822,
  GuestSysenterEsp: 0x6824, GuestSysenterEip: 0x6826,
  // natural-width host state
  HostCr0: 0x6c00, HostCr3: 0x6c02, HostCr4: 0x6c04, HostFsBase: 0x6c06, HostGsBase: 0x6c08,
  HostTrBase: 0x6c0a, HostGdtrBase: 0x6c0c, HostIdtrBase: 0x6c0e,
  HostSysenterEsp: 0x6c10, HostSysenterEip: 0x6c12, HostRsp: 0x6c14, HostRip: 0x6c16,
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

/** The highest index (bits 9:1) of any supported encoding, as IA32_VMX_VMCS_ENUM reports it (SDM A.9). */
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
    const info = FIELD_TABLE.get(enc & ~1);
    if (info === undefined) throw new Error(`VMCS encoding 0x${enc.toString(16)} is not in the field table`);
    return this.readInfo(info, vmcsAccessHigh(enc));
  }
  /** Write as VMWRITE outside IA-32e mode does: a full-encoding write clears the high half. */
  set(enc: number, value: number): void {
    const info = FIELD_TABLE.get(enc & ~1);
    if (info === undefined) throw new Error(`VMCS encoding 0x${enc.toString(16)} is not in the field table`);
    this.writeInfo(info, vmcsAccessHigh(enc), value);
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
export const Proc2 = { VirtApicAccesses: 1 << 0, EnableEpt: 1 << 1, DescTableExiting: 1 << 2, EnableRdtscp: 1 << 3, EnableVpid: 1 << 5, UnrestrictedGuest: 1 << 7 } as const;
/** VM-exit controls (SDM 25.7.1, table 25-13). */
export const ExitCtl = { SaveDebugControls: 1 << 2, HostAddrSpaceSize: 1 << 9, AckIntOnExit: 1 << 15, SavePat: 1 << 18, LoadPat: 1 << 19, SaveEfer: 1 << 20, LoadEfer: 1 << 21 } as const;
/** VM-entry controls (SDM 25.8.1, table 25-15). */
export const EntryCtl = { LoadDebugControls: 1 << 2, Ia32eModeGuest: 1 << 9, EntryToSmm: 1 << 10, LoadPat: 1 << 14, LoadEfer: 1 << 15 } as const;

/** Interruption-information format (SDM 25.8.3 table 25-17, 25.9.2 table 25-19). */
export const IntrInfo = { Valid: 1 << 31, DeliverErrorCode: 1 << 11, TypeShift: 8, TypeMask: 7 << 8, VectorMask: 0xff } as const;
/** Interruption types (bits 10:8). */
export const IntrType = { ExtInt: 0, Reserved: 1, Nmi: 2, HardwareException: 3, SoftwareInt: 4, PrivSoftwareException: 5, SoftwareException: 6, OtherEvent: 7 } as const;

/** Basic exit reasons used by this slice (SDM appendix C). */
export const ExitReason = {
  ExceptionOrNmi: 0, ExternalInterrupt: 1, TripleFault: 2, InterruptWindow: 7, Cpuid: 10, Hlt: 12,
  IoInstruction: 30, EntryFailGuestState: 33, EntryFailMsrLoading: 34,
} as const;
/** Exit-reason bit 31: VM-entry failure (SDM 25.9.1). */
export const EXIT_REASON_ENTRY_FAILURE = 0x80000000;

/** VM-instruction error numbers (SDM 31.4, table 31-1). */
export const VmxError = {
  VmclearInvalidAddress: 2, VmlaunchNonClear: 4, VmresumeNonLaunched: 5,
  EntryInvalidControls: 7, EntryInvalidHostState: 8, VmptrldInvalidAddress: 9,
  VmptrldWrongRevision: 11, UnsupportedComponent: 12, VmwriteReadOnly: 13,
} as const;

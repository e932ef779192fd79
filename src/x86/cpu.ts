// The x86 core: a real-mode interpreter for the 8086/80186 integer instruction
// set plus the cheap parts of the 386 (66/67 prefixes, 32-bit registers, FS/GS,
// a few 0F opcodes, CPUID). Faults follow the 386+ rules (SDM Vol. 3A ch. 6 and
// 20.1): segment-limit overruns raise #GP (#SS for SS), real-mode events go
// through the IVT (SDM 20.1.4).
// Protected mode (SDM Vol. 3A ch. 3, 5-7, 20): descriptor loads with their checks and
// error codes, CPL/IOPL rules, the I/O permission bitmap, far transfers through call
// gates, IDT delivery through interrupt, trap and task gates, hardware task switches
// and virtual-8086 mode (without CR4.VME/PVI): see the "protected mode" section.
//
// Paging (SDM Vol. 3A ch. 4) is mmu.ts: 2-level with PSE, PAE with NX, a software TLB;
// every access and fetch translates when CR0.PG (the RAM fast path stays). Debug
// registers arm execute/read/write breakpoints (no I/O breakpoints).
// The x87 FPU is fpu.ts (ESC, WAIT, FXSAVE/FXRSTOR are handed to it).
// Not emulated: long mode, MMX/SSE and the other 0F opcodes an i686 lacks (#UD), XSAVE,
// CR4.VME/PVI, SMM.
// REP string instructions yield between iterations when run()'s budget ends.
//
// Structure: `run()` loops over `exec()`, which decodes prefixes into fields and
// switches on the opcode; faults unwind with an internal signal caught in run().
// Speed: memory inside PhysMemory.ram is loaded and stored directly; instructions
// in it are decoded once (decoder.ts) into a cache keyed by physical address and
// run by execDecoded() in run()'s fast loop, with the same helpers as exec(). The
// cache is dropped at each run() and per 256-byte block when the core writes code.
// Hot runs of decoded instructions are compiled to JS functions (compiler.ts); a
// compiled block survives a cache flush only while its bytes are unchanged.
// Arithmetic flags are lazy: the last ALU operation's operands are kept and CF,
// PF, AF, ZF, SF, OF are computed only when read.
import { Activity, CpuExitReason, CrAccessType, DescInsn, EventType, InsnIntercept, Interruptibility, SoftIntKind, TaskSwitchSource, VmxInsn } from "./types.js";
import type { AccessSize, Cpu, CpuExit, InterceptControls, IoPorts, PhysMemory, SegmentReg, X86State } from "./types.js";
import { DecodedInsn, Kind, NO_REG, decodeInsn } from "./decoder.js";
import { MEM_ABORT } from "./memory.js";
import { ACC_FETCH, ACC_READ, ACC_WRITE, Mmu, PG_OFF, PG_PAE, TLB_VALID, tlbMask } from "./mmu.js";
import { CompiledBlock, HOT_THRESHOLD, MAX_BYTES, MAX_INSNS, compileBlock, endsBlock } from "./compiler.js";
import { X87 } from "./fpu.js";
import type { FpuHost } from "./fpu.js";

// EFLAGS bits (SDM Vol. 1 3.4.3)
const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, TF = 0x100, IF = 0x200, DF = 0x400, OF = 0x800;
const IOPL_NT = 0x7000, RF = 0x10000, VM = 0x20000, AC = 0x40000, ID = 0x200000;
const ARITH = CF | PF | AF | ZF | SF | OF;

// Segment register indices, x86 Sreg order.
const ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5;

// Exception vectors (SDM table 6-1).
/** STI and MOV SS blocking last one instruction; NMI (and SMI) blocking lasts until IRET (SDM 6.7.1). */
const SHADOW_BITS = Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs;
const DE = 0, DB = 1, BP = 3, OFV = 4, BR = 5, UD = 6, NM = 7, DF_V = 8, SSV = 12, GP = 13;
/** #TS and #NP (SDM table 6-1). */
const TS_V = 10, NP_V = 11;
/** Data segment registers in the order a task switch loads them (SDM 7.3). */
const TASK_DATA_SEGS = [0, 3, 4, 5];

const LZ_ADD = 1, LZ_SUB = 2, LZ_LOGIC = 3;

/** #PF (SDM table 6-1); paging itself is in mmu.ts. */
const PF_V = 14;

// Control-register bits (SDM Vol. 3A 2.5).
const CR0_PE = 0x1, CR0_TS = 0x8, CR0_ET = 0x10, CR0_NW = 0x20000000, CR0_CD = 0x40000000, CR0_PG = 0x80000000;
/** PE MP EM TS ET NE WP AM NW CD PG: the CR0 bits a MOV can set; the rest read as 0. */
const CR0_DEFINED = 0xe005003f;
/** The selective CR0 write intercept ignores TS and MP (APM 15.9.1). */
const CR0_SELECTIVE_IGNORED = 0xa;
const CR4_DE = 0x8, CR4_OSXSAVE = 0x40000;
/**
 * CR4 bits this core implements: TSD, DE, PSE, PAE, PGE, PCE, OSFXSR (and OSXSAVE, which
 * cr4Allowed adds while CPUID reports XSAVE). VME/PVI (no VME
 * in CPUID), MCE (no machine check) and OSXMMEXCPT (no SSE) are reserved: setting any
 * bit outside this set is #GP(0) (SDM 2.5, "reserved bits ... #GP").
 */
const CR4_DEFINED = 0x3bc;
const DR7_GD = 0x2000, DR6_BD = 0x2000, DR6_BS = 0x4000, DR6_BT = 0x8000;
const CR4_TSD = 0x4, CR4_PSE = 0x10, CR4_PAE = 0x20, CR4_PGE = 0x80, CR4_OSFXSR = 0x200;

// MSRs of the core's own minimal set (SDM Vol. 4, table 2-2).
const MSR_TSC_AUX = 0xc0000103;
const MSR_TSC = 0x10, MSR_APIC_BASE = 0x1b, MSR_SYSENTER_CS = 0x174, MSR_SYSENTER_ESP = 0x175, MSR_SYSENTER_EIP = 0x176;
const MSR_EFER = 0xc0000080, MSR_MTRRCAP = 0xfe, MSR_BIOS_SIGN = 0x8b, MSR_MISC_ENABLE = 0x1a0, MSR_PAT = 0x277;
const EFER_NXE = 0x800;
/** IA32_MTRRCAP: 8 variable ranges, fixed ranges (bit 8), write-combining (bit 10); no SMRR. */
const MTRRCAP = 0x508;
/** IA32_MISC_ENABLE: fast strings (0), TCC (3), EIST (16), MONITOR (18), limit CPUID (22), xTPR (23) are stored. */
const MISC_ENABLE_RW = 0x00c50009;
/** Read-only ones: BTS (11) and PEBS (12) unavailable; no performance monitoring (bit 7 = 0). */
const MISC_ENABLE_RO = 0x1800;
/**
 * Slots in X86Cpu.msrStore of the MSRs that are stored and have no effect (no caches are
 * modelled): MTRR_DEF_TYPE, the 11 fixed-range MTRRs, the 8 variable pairs, PAT, MISC_ENABLE.
 */
function storedMsrSlot(idx: number): number {
  if (idx === 0x2ff) return 0;
  if (idx === 0x250) return 1;
  if (idx === 0x258 || idx === 0x259) return idx - 0x256;
  if (idx >= 0x268 && idx <= 0x26f) return idx - 0x264;
  if (idx >= 0x200 && idx <= 0x20f) return idx - 0x200 + 12;
  if (idx === MSR_PAT) return 28;
  if (idx === MSR_MISC_ENABLE) return 29;
  return -1;
}
/** Memory types an MTRR may hold (SDM 12.11.1, table 12-8): UC, WC, WT, WP, WB. */
function mtrrType(t: number): boolean { return t === 0 || t === 1 || t === 4 || t === 5 || t === 6; }
/** WRMSR checks (SDM 12.11.2, 12.12.2): reserved bits and invalid types are #GP(0); MAXPHYADDR is 32. */
function storedMsrValid(idx: number, lo: number, hi: number): boolean {
  if (idx === MSR_PAT) { // PAT entries: 3 bits, types 2 and 3 reserved
    for (let i = 0; i < 8; i++) {
      const b = ((i < 4 ? lo : hi) >>> ((i & 3) * 8)) & 0xff;
      if (b > 7 || b === 2 || b === 3) return false;
    }
    return true;
  }
  const fixed = idx === 0x250 || idx === 0x258 || idx === 0x259 || (idx >= 0x268 && idx <= 0x26f);
  if (!fixed && hi !== 0) return false; // bits 63:32 reserved (MAXPHYADDR 32)
  if (idx === MSR_MISC_ENABLE) return true;
  if (idx === 0x2ff) return (lo & ~0xcff) === 0 && mtrrType(lo & 0xff);
  if (idx >= 0x200 && idx <= 0x20f) {
    return (idx & 1) === 0 ? (lo & 0xf00) === 0 && mtrrType(lo & 0xff) : (lo & 0x7ff) === 0;
  }
  for (let i = 0; i < 4; i++) if (!mtrrType((lo >>> (i * 8)) & 0xff) || !mtrrType((hi >>> (i * 8)) & 0xff)) return false;
  return true;
}
/** IA32_APIC_BASE after reset: base FEE00000h, global enable (bit 11), BSP (bit 8). */
const APIC_BASE_RESET = 0xfee00900;
/** CPUID.1:EDX: TSC (4), MSR (5), CX8 (8), CMOV (15): what this core implements. */
/**
 * CPUID.1:EDX, what this core implements (SDM Vol. 2A table 3-11): FPU (0), DE (2), PSE (3),
 * TSC (4), MSR (5), PAE (6), CX8 (8), SEP (11), MTRR (12), PGE (13), CMOV (15), PAT (16), FXSR (24).
 * Not: VME, MCE, APIC (the platform's), MCA, PSE-36, CLFSH, MMX, SSE.
 */
const CPUID1_EDX = (1 << 0) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 11) | (1 << 12)
  | (1 << 13) | (1 << 15) | (1 << 16) | (1 << 24);
/** CPUID.80000001h:EDX: NX (20), i.e. EFER.NXE and PAE execute-disable (mmu.ts). */
const CPUID_EXT1_EDX = 1 << 20;
/** CPUID.1:ECX: XSAVE (26); OSXSAVE (27) mirrors CR4.OSXSAVE (SDM Vol. 2A table 3-10). */
const CPUID1_ECX_XSAVE = 1 << 26, CPUID1_ECX_OSXSAVE = 1 << 27;
/** XCR0 bits this core supports: x87 only (SDM Vol. 1 13.3); no SSE, so bit 1 stays reserved. */
const XCR0_SUPPORTED = 1;
/** XSAVE area for XCR0 = x87: the 512-byte legacy region and the 64-byte header (SDM Vol. 1 13.4). */
const XSAVE_AREA_SIZE = 576;
/** CPUID.1:EAX: family 6, model 13, stepping 8. */
const CPUID_SIGNATURE = 0x6d8;
/** What cpuidMask narrows: bits cleared here are neither reported nor accepted (see cpuid()). */
export interface CpuidMask { leaf1Edx: number; leaf1Ecx: number; ext1Edx: number }

const MASK = [0, 0xff, 0xffff, 0, 0xffffffff];
const SIGN = [0, 0x80, 0x8000, 0, 0x80000000];

const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let b = i, p = 1;
  while (b) { p ^= b & 1; b >>= 1; }
  PARITY[i] = p ? PF : 0;
}

/** Thrown internally (never out of the core) to unwind a faulting instruction. */
class FaultSignal { }
const FAULT = new FaultSignal();
const NO_RAM = new Uint8Array(0);

// Decoded-instruction cache: direct-mapped on the low bits of the physical address,
// so the entries of one code block sit in one contiguous run of slots.
const ICACHE_BITS = 16;
const ICACHE_MASK = (1 << ICACHE_BITS) - 1;
/** Code blocks of 2^CODE_SHIFT bytes: a write into a block holding decoded code invalidates it. */
const CODE_SHIFT = 8;
const CODE_BLOCK = 1 << CODE_SHIFT;
/** Returned for addresses the cache does not hold (outside the RAM window): the interpreter runs them. */
const EXEC_INSN = new DecodedInsn();
/** Not a physical address the RAM window can hold (codePa past the CS limit). */
const NO_PA = 2 ** 32;

/** Exception classes of SDM 6.15 table 6-4/6-5 (#DF is its own: a fault delivering it shuts down). */
const BENIGN = 0, CONTRIBUTORY = 1, PAGE_FAULT = 2, DOUBLE = 3;
function faultClass(vector: number): number {
  if (vector === 0 || (vector >= 10 && vector <= 13)) return CONTRIBUTORY;
  return vector === 14 ? PAGE_FAULT : vector === 8 ? DOUBLE : BENIGN;
}

function trunc(size: number, v: number): number {
  return size === 4 ? v >>> 0 : v & MASK[size];
}
function sext8(v: number): number { return (v << 24) >> 24; }
function sext16(v: number): number { return (v << 16) >> 16; }

/** Whether LOCK is allowed on this opcode (SDM Vol. 2 "LOCK"): the RMW forms with a memory destination. */
export function isLockable(op: number, modrm: number, op0f = false): boolean {
  const mem = (modrm & 0xc0) !== 0xc0;
  if (!mem) return false;
  const reg = (modrm >> 3) & 7;
  if (op0f) return op === 0xab || op === 0xb3 || op === 0xbb || op === 0xb0 || op === 0xb1 || op === 0xc0 || op === 0xc1 || (op === 0xba && reg >= 5) || (op === 0xc7 && reg === 1);
  if (op < 0x40) return (op & 7) < 2 && (op >> 3) !== 7;
  if (op === 0x80 || op === 0x81 || op === 0x82 || op === 0x83) return reg !== 7;
  if (op === 0x86 || op === 0x87) return true;
  if (op === 0xf6 || op === 0xf7) return reg === 2 || reg === 3;
  if (op === 0xfe || op === 0xff) return reg < 2;
  return false;
}

function newExit(): CpuExit {
  return {
    reason: CpuExitReason.None, instrLen: 0,
    ioPort: 0, ioSize: 1, ioIn: false, ioString: false, ioRep: false, ioImm: false, ioAddrSize: 2, ioSeg: DS,
    vector: 0, errorCode: 0, hasErrorCode: false, softIntKind: SoftIntKind.IntN,
    msrIndex: 0, msrWrite: false,
    insn: 0, linear: 0, drNumber: 0, drRead: false, drGpr: 0, vmxInsn: VmxInsn.Vmclear, svmInsn: 0,
    insnMem: false, insnReg: 0, insnRm: 0, insnAddrSize: 2, insnSeg: DS, insnOffset: 0,
    insnBase: NO_REG, insnIndex: NO_REG, insnScale: 0, insnDisp: 0, insnOpSize: 2,
    crNumber: 0, crAccessType: CrAccessType.MovToCr, crGpr: 0, lmswSource: 0, lmswMem: false, crSelective: false,
    descInsn: DescInsn.Sgdt, tsSelector: 0, tsSource: TaskSwitchSource.Call, tsHasErrorCode: false, tsErrorCode: 0, tsRf: false,
    memGpa: 0, memWrite: false, memFetch: false, memWalk: false, memLinear: 0, memLinearValid: false,
    vectoringValid: false, vectoringType: EventType.ExtInt, vectoringVector: 0, vectoringErrorCode: 0, vectoringHasErrorCode: false,
    iretUnblockedNmi: false, dbBits: 0,
  };
}

/**
 * VMX MSR bitmaps (SDM 25.6.9, 26.1.3): read-low (MSRs 0-1FFF) at byte 0, read-high
 * (C0000000-C0001FFF) at 1024, write halves 2048 further; a set bit exits, and an MSR
 * outside both ranges always exits.
 */
function msrBitmapExits(bm: Uint8Array, msr: number, write: boolean): boolean {
  let base: number;
  if (msr <= 0x1fff) base = 0;
  else if (msr >= 0xc0000000 && msr <= 0xc0001fff) base = 1024;
  else return true;
  const i = msr & 0x1fff;
  return ((bm[base + (write ? 2048 : 0) + (i >>> 3)]! >>> (i & 7)) & 1) !== 0;
}

/** SDM 26.1.3: with CR3-load exiting, a MOV to CR3 of one of the first N CR3-target values does not exit. */
function isCr3Target(ic: InterceptControls, v: number): boolean {
  const t = ic.cr3Targets, n = ic.cr3TargetCount ?? 0;
  if (t === undefined) return false;
  for (let i = 0; i < n; i++) if (t[i] === v) return true;
  return false;
}

export class X86Cpu implements Cpu {
  readonly intercepts: InterceptControls = {
    hlt: false, cpuid: false, ioAll: false, ioBitmap: null, softIntBitmap: null, exceptionBitmap: 0, msr: false, msrBitmap: null,
    insn: 0, cr0Mask: 0, cr0Shadow: 0, cr4Mask: 0, cr4Shadow: 0, cr3LoadExit: false, cr3StoreExit: false,
    taskSwitchExit: false, crReadExit: 0, crWriteExit: 0, cr0SelectiveExit: false, descExitMask: 0,
  };
  readonly exit: CpuExit = newExit();
  /** A20 gate: AND-ed into every linear address. 0xFFEFFFFF wraps at 1 MiB like an 8086. */
  a20Mask = 0xffffffff;

  /** GPRs in Gpr order. */
  readonly regs = new Uint32Array(8);
  eip = 0;
  readonly segSel = new Uint16Array(6);
  readonly segBase = new Uint32Array(6);
  readonly segLimit = new Uint32Array(6);
  readonly segAttrib = new Uint32Array(6);
  private ldtr: SegmentReg = { selector: 0, base: 0, limit: 0xffff, attrib: 0x82 };
  private tr: SegmentReg = { selector: 0, base: 0, limit: 0xffff, attrib: 0x83 };
  private gdtrBase = 0; private gdtrLimit = 0xffff;
  private idtrBase = 0; private idtrLimit = 0xffff;
  cr0 = 0x10; cr2 = 0; cr3 = 0; cr4 = 0; dr7 = 0x400; efer = 0;
  /** XCR0 (SDM Vol. 1 13.3): bit 0 (x87) is always 1, and 1 after reset. */
  xcr0 = 1;
  /** DR0-DR3 and DR6 (not in X86State); DR7 arms the breakpoints (armDebug). */
  private readonly drAddr = new Uint32Array(4);
  private dr6 = 0xffff0ff0;
  /** The DR6 bits of the #DB being raised, and DR6 before them: an intercepted #DB leaves DR6 alone (SDM 27.1). */
  private dbBits = 0;
  private dr6Prev = 0;
  /** IA32_TSC_AUX (C000_0103h), read by RDTSCP. */
  tscAux = 0;
  /** RDTSCP executes (else #UD); the VMX engine mirrors "enable RDTSCP" here. */
  rdtscpEnabled = true;
  /** Narrows the CPUID profile (cpuid()): the config's `cpuid` mask, applied by the engine. All-ones = everything. */
  readonly cpuidMask: CpuidMask = { leaf1Edx: 0xffffffff, leaf1Ecx: 0xffffffff, ext1Edx: 0xffffffff };
  /** Armed breakpoints (armDebug): DR0-3 bits of execute and data ones; hits of the current instruction. */
  private dbgOn = false;
  private dbgExec = 0;
  private dbgData = 0;
  private dbgHit = 0;
  /** The #DB being raised is an instruction breakpoint (dbgBefore): its frame keeps RF (SDM 17.3.1.1). */
  private instrBp = false;
  /** The next deliver() is of a fault-class exception: the pushed EFLAGS image has RF = 1 (SDM 17.3.1.1). */
  private faultRf = false;
  /** A task switch loaded a 32-bit TSS with T = 1: #DB with DR6.BT before its first instruction (SDM 7.2.1, 17.3.1.5). */
  private taskTrap = false;
  /** Stored-only MSRs (storedMsrSlot): low and high dwords; PAT and MISC_ENABLE at their reset values. */
  private readonly msrStore = Uint32Array.from({ length: 60 }, (_, i) =>
    i === 56 ? 0x00070406 : i === 57 ? 0x00070406 : i === 58 ? 0x1801 : 0);
  /** SYSENTER_CS/ESP/EIP MSRs (174h-176h), stored only. */
  private readonly sysenter = new Uint32Array(3);
  /**
   * TSC = tscOffset + instructions retired (the `retired` clock, each REP iteration
   * counting as one). WRMSR to IA32_TIME_STAMP_COUNTER adjusts the offset; the host may
   * set it directly. Kept as a double: exact while the TSC stays below 2^53.
   */
  tscOffset = 0;
  /** run()'s budget, and how much of it is left for the current instruction (REP iterations draw on it). */
  private runBudget = 0;
  private iterLeft = 0;
  activity: Activity = Activity.Active;
  interruptibility = 0;
  /** Instructions retired (Cpu contract); an instruction stopped by an intercept or a fault does not count. */
  retired = 0;
  /** `mem.ram` (PhysMemory.ram), re-read by syncMem() at each run() and deliverEvent(). */
  private ram: Uint8Array = NO_RAM;
  private ramLen = 0;
  /**
   * Decoded instructions (decoder.ts) by physical address, for the RAM window only.
   * An entry is valid while its `gtag` equals genTag | CS.D: bumping genTag drops them all.
   */
  private readonly icache: (DecodedInsn | undefined)[] = new Array<DecodedInsn | undefined>(1 << ICACHE_BITS).fill(undefined);
  private genTag = 0;
  /** Per code block of the RAM window: nonzero when a cached instruction has bytes in it. */
  private codeBlk: Uint8Array = NO_RAM;
  /** Per code block: bumped whenever codeWritten() drops it (compiled blocks check it). */
  private codeVer: Uint32Array = new Uint32Array(0);
  /** Bumped by every code invalidation: a compiled block stops after a store that changed it. */
  private codeEpoch = 0;
  /** Compile hot runs of decoded instructions into JS functions (compiler.ts). */
  compileHot = true;
  /** Blocks compiled so far (a statistic). */
  blocksCompiled = 0;
  /** Compiled blocks by start physical address (direct-mapped like icache), and execution counts. */
  private readonly blocks: (CompiledBlock | undefined)[] = new Array<CompiledBlock | undefined>(1 << ICACHE_BITS).fill(undefined);
  private readonly heat = new Uint8Array(1 << ICACHE_BITS);
  private readonly blkInsns: DecodedInsn[] = [];

  // Flags: `flags` holds every bit except those in `lzMask`, which come from the last ALU op.
  private flags = 2;
  private lzMask = 0;
  private lzOp = 0;
  private lzSize = 1;
  private lzDst = 0;
  private lzSrc = 0;
  private lzRes = 0;

  // Decoder state of the current instruction.
  private startEip = 0;
  private ilen = 0;
  private code32 = false;
  private segOv = -1;
  private osz = 2;
  private asz = 2;
  private rep = 0; // 0, 0xF2 or 0xF3
  private lock = false;
  private mod = 0;
  private reg = 0;
  private rm = 0;
  private eaSeg = DS;
  private eaOff = 0;
  /** The memory operand's plan as the ModR/M (and SIB) named it: base, index (NO_REG: none), scale, raw displacement. */
  private eaBase = NO_REG;
  private eaIndex = NO_REG;
  private eaScale = 0;
  private eaDisp = 0;

  // Fault in flight.
  private fVec = 0;
  private fCode = 0;
  private fHasCode = false;
  /** Set when an intercept stops the current instruction. */
  private stop: CpuExitReason = CpuExitReason.None;
  /** Scratch for 32x32 multiplication and 64/32 division. */
  private hi = 0;
  private lo = 0;
  /** Set when an instruction vectored through the IVT (no single-step trap after INT n). */
  private vectored = false;
  private shadow = 0;
  private startEsp = 0;
  /** run() is in its fast loop (execDecoded): startEsp and iterLeft are not kept per instruction there. */
  private inFast = false;

  // Paging (mmu.ts). The hot fields are copies of the Mmu's, refreshed by syncPg().
  /** Linear -> physical translation and its TLB. */
  readonly mmu: Mmu = new Mmu(this);
  /** CR0.PG and CR0.PE: every access translates. */
  private pgOn = false;
  private tlb: Int32Array = new Int32Array(0);
  private tlbR = 1;
  private tlbW = 1;
  private tlbX = 1;
  /** The linear address of the #PF in flight, and whether delivering it must load CR2. */
  private pfLa = 0;
  private pfPending = false;

  /** The x87 unit (fpu.ts): ESC (D8-DF), WAIT and FXSAVE/FXRSTOR go to it. */
  readonly fpu = new X87();
  /** The current instruction as the x87 unit sees it: memory operand, CR0, flags, AX. */
  private readonly fpuHost: FpuHost = {
    cr0: () => this.cr0,
    op32: () => this.osz === 4,
    realMode: () => (this.cr0 & CR0_PE) === 0 || (this.getEflags() & VM) !== 0,
    cs: () => this.segSel[CS], ip: () => this.startEip,
    ds: () => this.segSel[this.eaSeg], dp: () => this.eaOff,
    // The whole operand against the segment's limit, expand-down window and read rights; each store is checked for write rights as it happens.
    checkOperand: (size) => { this.segCheck(this.eaSeg, this.eaOff, size, false); },
    read: (disp, size) => this.rd(size, this.eaSeg, this.offPlus(disp)),
    write: (disp, size, v) => this.wr(size, this.eaSeg, this.offPlus(disp), v),
    flags: () => this.getEflags(),
    setCmpFlags: (zpc) => this.setFlags(ARITH, zpc),
    setAx: (v) => this.setReg(2, 0, v),
    fault: (vec) => this.fault(vec),
  };

  constructor(public mem: PhysMemory, public io: IoPorts) {
    for (let i = 0; i < 6; i++) { this.segLimit[i] = 0xffff; this.segAttrib[i] = 0x93; }
    this.segAttrib[CS] = 0x9b;
  }

  // ---------------------------------------------------------------- state

  getState(out: X86State): void {
    const r = this.regs;
    out.eax = r[0]; out.ecx = r[1]; out.edx = r[2]; out.ebx = r[3];
    out.esp = r[4]; out.ebp = r[5]; out.esi = r[6]; out.edi = r[7];
    out.eip = this.eip;
    out.eflags = this.getEflags() >>> 0;
    this.segOut(ES, out.es); this.segOut(CS, out.cs); this.segOut(SS, out.ss);
    this.segOut(DS, out.ds); this.segOut(FS, out.fs); this.segOut(GS, out.gs);
    Object.assign(out.ldtr, this.ldtr);
    Object.assign(out.tr, this.tr);
    out.gdtr.base = this.gdtrBase; out.gdtr.limit = this.gdtrLimit;
    out.idtr.base = this.idtrBase; out.idtr.limit = this.idtrLimit;
    out.cr0 = this.cr0; out.cr2 = this.cr2; out.cr3 = this.cr3; out.cr4 = this.cr4;
    out.dr7 = this.dr7; out.efer = this.efer;
    out.activity = this.activity;
    out.interruptibility = this.interruptibility;
    if (out.xcr0 !== undefined) out.xcr0 = this.xcr0; // only for callers that keep XCR0 (X86State.xcr0)
    if (out.fpu !== undefined) this.fpu.getX87(out.fpu); // likewise the x87 part (X86State.fpu)
  }

  setState(s: X86State): void {
    const r = this.regs;
    r[0] = s.eax; r[1] = s.ecx; r[2] = s.edx; r[3] = s.ebx;
    r[4] = s.esp; r[5] = s.ebp; r[6] = s.esi; r[7] = s.edi;
    this.eip = s.eip >>> 0;
    this.setEflags(s.eflags | 2);
    this.segIn(ES, s.es); this.segIn(CS, s.cs); this.segIn(SS, s.ss);
    this.segIn(DS, s.ds); this.segIn(FS, s.fs); this.segIn(GS, s.gs);
    this.ldtr = { ...s.ldtr };
    this.tr = { ...s.tr };
    this.gdtrBase = s.gdtr.base >>> 0; this.gdtrLimit = s.gdtr.limit >>> 0;
    this.idtrBase = s.idtr.base >>> 0; this.idtrLimit = s.idtr.limit >>> 0;
    this.cr0 = s.cr0 >>> 0; this.cr2 = s.cr2 >>> 0; this.cr3 = s.cr3 >>> 0; this.cr4 = s.cr4 >>> 0;
    this.dr7 = s.dr7 >>> 0; this.efer = s.efer >>> 0;
    this.activity = s.activity;
    this.interruptibility = s.interruptibility;
    if (s.xcr0 !== undefined) this.xcr0 = ((s.xcr0 & XCR0_SUPPORTED) | 1) >>> 0; // bit 0 cannot be cleared
    if (s.fpu !== undefined) this.fpu.setX87(s.fpu);
    this.stateLoadedPaging();
    this.armDebug();
    this.modeChanged(); // CPL = SS.DPL (VMCS), segment access windows
  }

  private segOut(i: number, o: SegmentReg): void {
    o.selector = this.segSel[i]; o.base = this.segBase[i]; o.limit = this.segLimit[i]; o.attrib = this.segAttrib[i];
  }
  private segIn(i: number, s: SegmentReg): void {
    this.segSel[i] = s.selector; this.segBase[i] = s.base; this.segLimit[i] = s.limit; this.segAttrib[i] = s.attrib;
  }

  /** Real-mode segment load (SDM 20.1.1): base = selector << 4, limit and access rights kept. */
  loadSegReal(i: number, sel: number): void {
    sel &= 0xffff;
    this.segSel[i] = sel;
    this.segBase[i] = sel << 4;
  }

  // ---------------------------------------------------------------- flags

  getEflags(): number {
    const m = this.lzMask;
    if (m === 0) return this.flags;
    return (this.flags & ~m) | (this.lazyAll() & m);
  }

  setEflags(v: number): void {
    this.flags = (v | 2) & ~0x8028; // bits 3, 5, 15 read as 0, bit 1 as 1
    this.lzMask = 0;
  }

  private lazyAll(): number {
    return this.lazyCF() | (PARITY[this.lzRes & 0xff]) | this.lazyAF() | this.lazyZF() | this.lazySF() | this.lazyOF();
  }
  private lazyCF(): number {
    const op = this.lzOp;
    if (op === LZ_ADD) return this.lzRes > MASK[this.lzSize] ? CF : 0;
    if (op === LZ_SUB) return this.lzRes < 0 ? CF : 0;
    return 0;
  }
  private lazyAF(): number {
    return this.lzOp === LZ_LOGIC ? 0 : (this.lzDst ^ this.lzSrc ^ this.lzRes) & AF;
  }
  private lazyZF(): number { return trunc(this.lzSize, this.lzRes) === 0 ? ZF : 0; }
  private lazySF(): number { return (this.lzRes & SIGN[this.lzSize]) !== 0 ? SF : 0; }
  private lazyOF(): number {
    const op = this.lzOp, s = SIGN[this.lzSize], d = this.lzDst, r = this.lzRes;
    if (op === LZ_ADD) return ((d ^ r) & (this.lzSrc ^ r) & s) !== 0 ? OF : 0;
    if (op === LZ_SUB) return ((d ^ this.lzSrc) & (d ^ r) & s) !== 0 ? OF : 0;
    return 0;
  }

  private getCF(): number { return this.lzMask & CF ? this.lazyCF() : this.flags & CF; }
  private getZF(): boolean { return (this.lzMask & ZF ? this.lazyZF() : this.flags & ZF) !== 0; }
  private getSF(): boolean { return (this.lzMask & SF ? this.lazySF() : this.flags & SF) !== 0; }
  private getOF(): boolean { return (this.lzMask & OF ? this.lazyOF() : this.flags & OF) !== 0; }
  private getPF(): boolean { return (this.lzMask & PF ? PARITY[this.lzRes & 0xff] : this.flags & PF) !== 0; }
  private getAF(): boolean { return (this.lzMask & AF ? this.lazyAF() : this.flags & AF) !== 0; }

  private setLazy(op: number, size: number, dst: number, src: number, res: number): void {
    this.lzOp = op; this.lzSize = size; this.lzDst = dst; this.lzSrc = src; this.lzRes = res;
    this.lzMask = ARITH;
  }

  /** Set the bits of `mask` from `value` eagerly. */
  private setFlags(mask: number, value: number): void {
    if (this.lzMask & ~mask) this.flags = this.getEflags();
    this.lzMask = 0;
    this.flags = (this.flags & ~mask) | (value & mask);
  }

  /** SF, ZF, PF from a result (shifts, MUL, AAM ...). */
  private szp(size: number, res: number): number {
    return (trunc(size, res) === 0 ? ZF : 0) | ((res & SIGN[size]) !== 0 ? SF : 0) | PARITY[res & 0xff];
  }

  private testCC(cc: number): boolean {
    let r: boolean;
    switch (cc >> 1) {
      case 0: r = this.getOF(); break;
      case 1: r = this.getCF() !== 0; break;
      case 2: r = this.getZF(); break;
      case 3: r = this.getCF() !== 0 || this.getZF(); break;
      case 4: r = this.getSF(); break;
      case 5: r = this.getPF(); break;
      case 6: r = this.getSF() !== this.getOF(); break;
      default: r = this.getZF() || this.getSF() !== this.getOF(); break;
    }
    return (cc & 1) ? !r : r;
  }

  // ---------------------------------------------------------------- registers

  private getReg8(i: number): number {
    return i < 4 ? this.regs[i] & 0xff : (this.regs[i - 4] >>> 8) & 0xff;
  }
  private setReg8(i: number, v: number): void {
    const r = this.regs;
    if (i < 4) r[i] = (r[i] & ~0xff) | (v & 0xff);
    else r[i - 4] = (r[i - 4] & ~0xff00) | ((v & 0xff) << 8);
  }
  private getReg(size: number, i: number): number {
    if (size === 1) return this.getReg8(i);
    if (size === 2) return this.regs[i] & 0xffff;
    return this.regs[i];
  }
  private setReg(size: number, i: number, v: number): void {
    if (size === 1) this.setReg8(i, v);
    else if (size === 2) this.regs[i] = (this.regs[i] & 0xffff0000) | (v & 0xffff);
    else this.regs[i] = v;
  }

  // ---------------------------------------------------------------- faults

  private fault(vec: number): never {
    this.fVec = vec; this.fCode = 0; this.fHasCode = false;
    throw FAULT;
  }
  private faultCode(vec: number, code: number): never {
    this.fVec = vec; this.fCode = code; this.fHasCode = true;
    throw FAULT;
  }
  /** Real mode has no error codes (SDM 20.1.4); #GP/#SS still carry 0 for intercepts. */
  private segFault(seg: number): never {
    return this.faultCode(seg === SS ? SSV : GP, 0);
  }

  // ---------------------------------------------------------------- memory

  /**
   * Linear address of seg:off. With paging off it is also the physical address, so A20
   * applies; with paging on, A20 applies to the translated address (mmu.ts).
   */
  private lin(seg: number, off: number): number {
    const la = (this.segBase[seg] + off) >>> 0;
    return this.pgOn ? la : (la & this.a20Mask) >>> 0;
  }
  // Physical address of an access at linear `la` (segment checks done): with paging on,
  // one TLB load and compare (mmu.ts), a walk on a miss (which may raise #PF).
  private paR(la: number): number {
    if (!this.pgOn) return (la & this.a20Mask) >>> 0;
    const e = this.tlb[la >>> 12];
    return (e & this.tlbR) === TLB_VALID ? ((e & -4096) | (la & 4095)) >>> 0 : this.xlate(la, ACC_READ, this.mmu.user);
  }
  private paW(la: number): number {
    if (!this.pgOn) return (la & this.a20Mask) >>> 0;
    const e = this.tlb[la >>> 12];
    return (e & this.tlbW) === TLB_VALID ? ((e & -4096) | (la & 4095)) >>> 0 : this.xlate(la, ACC_WRITE, this.mmu.user);
  }
  private paX(la: number): number {
    if (!this.pgOn) return (la & this.a20Mask) >>> 0;
    const e = this.tlb[la >>> 12];
    return (e & this.tlbX) === TLB_VALID ? ((e & -4096) | (la & 4095)) >>> 0 : this.xlate(la, ACC_FETCH, this.mmu.user);
  }
  /** TLB miss: walk (mmu.ts); a fault raises #PF with CR2 = la at delivery (SDM 4.7, 6.15 interrupt 14). */
  private xlate(la: number, acc: number, user: boolean): number {
    const pa = this.mmu.translate(la, acc, user);
    if (pa < 0) this.pageFault(la, this.mmu.pfCode);
    return pa;
  }
  /** Raise #PF. CR2 is loaded when it is delivered, not when the exception bitmap intercepts it (SDM 27.1). */
  private pageFault(la: number, code: number): never {
    this.pfLa = la >>> 0;
    this.pfPending = true;
    return this.faultCode(PF_V, code);
  }
  // Accesses inside the direct RAM window (PhysMemory.ram) load and store the bytes
  // themselves; everything else goes through `mem`. Multi-byte accesses keep the
  // provider's semantics: consecutive physical bytes, no A20 wrap inside one access.
  // With paging on, an access crossing a page translates both pages first (split*).
  private rd8(seg: number, off: number): number {
    if (off > this.segRdHi[seg]) this.segCheck(seg, off, 1, false); // limit; rights and expand-down there (segCache)
    const la = (this.segBase[seg] + off) >>> 0;
    if (this.dbgOn) this.dataBp(la, 1, false);
    const pa = this.paR(la);
    return pa < this.ramLen ? this.ram[pa] : this.slowRead(1, pa, la);
  }
  private rd16(seg: number, off: number): number {
    if (off >= this.segRdHi[seg]) this.segCheck(seg, off, 2, false);
    const la = (this.segBase[seg] + off) >>> 0;
    if (this.dbgOn) this.dataBp(la, 2, false);
    if ((la & 0xfff) === 0xfff && this.pgOn) return this.splitRead(2, la);
    const pa = this.paR(la);
    if (pa + 1 < this.ramLen) { const m = this.ram; return m[pa] | (m[pa + 1] << 8); }
    return this.slowRead(2, pa, la);
  }
  private rd32(seg: number, off: number): number {
    if (off + 3 > this.segRdHi[seg]) this.segCheck(seg, off, 4, false);
    const la = (this.segBase[seg] + off) >>> 0;
    if (this.dbgOn) this.dataBp(la, 4, false);
    if ((la & 0xfff) > 0xffc && this.pgOn) return this.splitRead(4, la);
    const pa = this.paR(la);
    if (pa + 3 < this.ramLen) { const m = this.ram; return (m[pa] | (m[pa + 1] << 8) | (m[pa + 2] << 16) | (m[pa + 3] << 24)) >>> 0; }
    return this.slowRead(4, pa, la);
  }
  private wr8(seg: number, off: number, v: number): void {
    if (off > this.segWrHi[seg]) this.segCheck(seg, off, 1, true);
    const la = (this.segBase[seg] + off) >>> 0;
    if (this.dbgOn) this.dataBp(la, 1, true);
    const pa = this.paW(la);
    if (pa < this.ramLen) {
      this.ram[pa] = v;
      if (this.codeBlk[pa >>> CODE_SHIFT] !== 0) this.codeWritten(pa, 1);
    } else this.slowWrite(pa, 1, v & 0xff, la);
  }
  private wr16(seg: number, off: number, v: number): void {
    if (off >= this.segWrHi[seg]) this.segCheck(seg, off, 2, true);
    const la = (this.segBase[seg] + off) >>> 0;
    if (this.dbgOn) this.dataBp(la, 2, true);
    if ((la & 0xfff) === 0xfff && this.pgOn) { this.splitWrite(2, la, v); return; }
    const pa = this.paW(la);
    if (pa + 1 < this.ramLen) {
      const m = this.ram; m[pa] = v; m[pa + 1] = v >>> 8;
      if ((this.codeBlk[pa >>> CODE_SHIFT] | this.codeBlk[(pa + 1) >>> CODE_SHIFT]) !== 0) this.codeWritten(pa, 2);
    } else this.slowWrite(pa, 2, v & 0xffff, la);
  }
  private wr32(seg: number, off: number, v: number): void {
    if (off + 3 > this.segWrHi[seg]) this.segCheck(seg, off, 4, true);
    const la = (this.segBase[seg] + off) >>> 0;
    if (this.dbgOn) this.dataBp(la, 4, true);
    if ((la & 0xfff) > 0xffc && this.pgOn) { this.splitWrite(4, la, v); return; }
    const pa = this.paW(la);
    if (pa + 3 < this.ramLen) {
      const m = this.ram; m[pa] = v; m[pa + 1] = v >>> 8; m[pa + 2] = v >>> 16; m[pa + 3] = v >>> 24;
      if ((this.codeBlk[pa >>> CODE_SHIFT] | this.codeBlk[(pa + 3) >>> CODE_SHIFT]) !== 0) this.codeWritten(pa, 4);
    } else this.slowWrite(pa, 4, v >>> 0, la);
  }
  /** A read crossing into the next page: both pages translate (and may fault) before any byte is read. */
  private splitRead(size: number, la: number): number {
    const la1 = ((la | 0xfff) + 1) >>> 0, n0 = la1 - la;
    const pa0 = this.paR(la), pa1 = this.paR(la1);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      v = v * 256 + (i < n0 ? this.physRead8(pa0 + i, la + i) : this.physRead8(pa1 + i - n0, la1 + i - n0));
    }
    return v >>> 0;
  }
  /** A write crossing into the next page: neither page is written unless both translate (SDM 4.7 note on faults). */
  private splitWrite(size: number, la: number, v: number): void {
    const la1 = ((la | 0xfff) + 1) >>> 0, n0 = la1 - la;
    const pa0 = this.paW(la), pa1 = this.paW(la1);
    for (let i = 0; i < size; i++) {
      const b = (v >>> (i * 8)) & 0xff;
      if (i < n0) this.physWrite8(pa0 + i, la + i, b); else this.physWrite8(pa1 + i - n0, la1 + i - n0, b);
    }
  }
  private physRead8(pa: number, la: number): number {
    return pa < this.ramLen ? this.ram[pa] : this.slowRead(1, pa, la);
  }
  private physWrite8(pa: number, la: number, b: number): void {
    if (pa < this.ramLen) {
      this.ram[pa] = b;
      if (this.codeBlk[pa >>> CODE_SHIFT] !== 0) this.codeWritten(pa, 1);
    } else this.slowWrite(pa, 1, b, la);
  }
  /**
   * A write outside the RAM window goes to the provider (MMIO, read-only or other
   * frames). An MMIO handler may write RAM as a side effect (DMA), so the decoded
   * cache is dropped (MMIO reads must not write RAM; PhysMemory.ram).
   */
  private slowWrite(pa: number, size: number, v: number, la = pa): void {
    this.noteAccess(pa, la, true, false);
    if (size === 1) this.mem.write8(pa, v); else if (size === 2) this.mem.write16(pa, v); else this.mem.write32(pa, v);
    this.flushCodeCache();
  }
  /** A read outside the RAM window, through the provider (which may throw MEM_ABORT). */
  private slowRead(size: number, pa: number, la = pa): number {
    this.noteAccess(pa, la, false, false);
    return size === 1 ? this.mem.read8(pa) : size === 2 ? this.mem.read16(pa) : this.mem.read32(pa) >>> 0;
  }
  /**
   * Record the physical access about to leave the RAM window, for a MemAbort exit
   * (CpuExit.mem*): the physical address and the linear one it was translated from.
   * Paging-structure accesses are noted by the walker (mmu.ts, memWalk = true).
   */
  private noteAccess(pa: number, la: number, write: boolean, fetch: boolean): void {
    const e = this.exit;
    e.memGpa = pa; e.memWrite = write; e.memFetch = fetch; e.memWalk = false;
    e.memLinear = la >>> 0; e.memLinearValid = true;
  }
  /**
   * Read `size` (1, 2, 4) bytes at linear address `la`, with paging but no segmentation:
   * for descriptor-table, IDT and TSS accesses. `sys`: an implicit supervisor access
   * whatever the CPL (SDM 4.6). Faults (#PF) and MEM_ABORT unwind as for any access.
   */
  linRead(la: number, size: number, sys = true): number {
    la >>>= 0;
    const user = !sys && this.mmu.user;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const a = (la + i) >>> 0;
      v = v * 256 + this.physRead8(this.linPa(a, ACC_READ, user), a);
    }
    return v >>> 0;
  }
  /** Write `size` bytes at linear `la` (see linRead): every byte's page is translated before any byte is written. */
  linWrite(la: number, size: number, v: number, sys = true): void {
    la >>>= 0;
    const user = !sys && this.mmu.user;
    this.linPa(la, ACC_WRITE, user);
    this.linPa((la + size - 1) >>> 0, ACC_WRITE, user);
    for (let i = 0; i < size; i++) {
      const a = (la + i) >>> 0;
      this.physWrite8(this.linPa(a, ACC_WRITE, user), a, (v >>> (i * 8)) & 0xff);
    }
  }
  /** Physical address of linear `la` for an access of kind `acc` at the given privilege (not the current one). */
  private linPa(la: number, acc: number, user: boolean): number {
    if (!this.pgOn) return (la & this.a20Mask) >>> 0;
    const e = this.tlb[la >>> 12];
    return (e & tlbMask(acc, user)) === TLB_VALID ? ((e & -4096) | (la & 4095)) >>> 0 : this.xlate(la, acc, user);
  }
  /** The code byte at CS:ip, without consuming it (LOCK's lookahead); translated like a fetch. */
  private codeByte(ip: number): number {
    const la = (this.segBase[CS] + ip) >>> 0;
    const pa = this.paX(la);
    if (pa < this.ramLen) return this.ram[pa];
    this.noteAccess(pa, la, false, true);
    return this.mem.read8(pa);
  }
  /** CPL as cplChanged() derives it. */
  private cplNow(): number {
    return (this.cr0 & CR0_PE) === 0 ? 0 : (this.flags & VM) !== 0 ? 3 : (this.segAttrib[SS] >>> 5) & 3;
  }
  /** Copy the Mmu's mode and hit masks into the core's hot fields. */
  private syncPg(): void {
    const m = this.mmu;
    this.pgOn = m.mode !== PG_OFF;
    this.tlb = m.tlb;
    this.tlbR = m.mR; this.tlbW = m.mW; this.tlbX = m.mX;
  }
  /**
   * `cpl` changed (a CS/SS load, EFLAGS.VM, CR0.PE, setState): paging checks ordinary
   * accesses at CPL 3 as user accesses (SDM 4.6). Refreshes the TLB hit masks.
   */
  cplChanged(): void {
    const user = this.cpl === 3;
    if (user !== this.mmu.user) this.mmu.setUser(user);
    this.syncPg();
  }
  /**
   * CR0, CR3, CR4 or EFER changed: give the Mmu the new values (it flushes what they
   * invalidate). A paging-mode change also drops decoded and compiled code, whose
   * page-boundary clipping depends on it.
   */
  private pagingChanged(): void {
    const was = this.mmu.mode;
    this.mmu.configure(this.cr0, this.cr3, this.cr4, this.efer);
    if (this.mmu.mode !== was) this.dropCompiled();
    this.cplChanged();
  }
  /**
   * Load CR3 (MOV to CR3, and a task switch, SDM 7.3 step 8): flushes non-global TLB
   * entries; with PAE paging, loads the PDPTE registers and returns false without
   * changing anything when one has a reserved bit set (the caller raises #GP(0), or #TS
   * in a task switch, SDM 4.4.1).
   */
  loadCr3(v: number): boolean {
    v >>>= 0;
    if (this.mmu.mode === PG_PAE && !this.mmu.loadPdptes(v)) return false;
    this.cr3 = v;
    this.pagingChanged();
    // SDM 4.10.4.1: every MOV to CR3 drops the non-global entries, also when the value is
    // unchanged (the usual way to flush the TLB after editing paging structures).
    this.mmu.flush(true);
    return true;
  }
  /**
   * setState: the paging registers may all have changed. VM entry loads the PDPTE
   * registers from CR3 with PAE paging (SDM 27.3.2.4), here when the mode or CR3 changed.
   */
  private stateLoadedPaging(): void {
    const m = this.mmu, wasPae = m.mode === PG_PAE, oldCr3 = m.cr3;
    this.pagingChanged();
    if (m.mode === PG_PAE && (!wasPae || oldCr3 !== this.cr3)) m.loadPdptes(this.cr3);
  }
  /** INVLPG (SDM Vol. 2): drop the translation of one linear page. */
  invlpg(la: number): void {
    this.mmu.invlpg(la >>> 0);
  }
  /** Drop every decoded instruction and compiled block, whatever its bytes. */
  private dropCompiled(): void {
    this.flushCodeCache();
    for (const b of this.blocks) if (b !== undefined) b.pa = -1;
  }
  /**
   * Physical address of the instruction at CS:ip for the decoded cache, translating
   * (and possibly raising #PF) with paging on; 2^32, which the cache never holds, when
   * ip is past the CS limit (the interpreter then raises #GP before any fetch).
   */
  private codePa(ip: number): number {
    if (ip > this.segLimit[CS]) return NO_PA;
    return this.paX((this.segBase[CS] + ip) >>> 0);
  }
  private rd(size: number, seg: number, off: number): number {
    return size === 1 ? this.rd8(seg, off) : size === 2 ? this.rd16(seg, off) : this.rd32(seg, off);
  }
  private wr(size: number, seg: number, off: number, v: number): void {
    if (size === 1) this.wr8(seg, off, v); else if (size === 2) this.wr16(seg, off, v); else this.wr32(seg, off, v);
  }

  // ---------------------------------------------------------------- fetch

  private fetch8(): number {
    const ip = this.eip;
    if (ip > this.segLimit[CS]) this.faultCode(GP, 0);
    if (++this.ilen > 15) this.faultCode(GP, 0); // SDM 2.3.11: 15-byte limit
    this.eip = ip + 1;
    const la = (this.segBase[CS] + ip) >>> 0;
    const pa = this.paX(la);
    if (pa < this.ramLen) return this.ram[pa];
    this.noteAccess(pa, la, false, true);
    const m = this.mem;
    return m.fetch8 !== undefined ? m.fetch8(pa) : m.read8(pa);
  }
  private fetch16(): number { const lo = this.fetch8(); return lo | (this.fetch8() << 8); }
  private fetch32(): number { const lo = this.fetch16(); return (lo | (this.fetch16() << 16)) >>> 0; }
  private fetchImm(size: number): number {
    return size === 1 ? this.fetch8() : size === 2 ? this.fetch16() : this.fetch32();
  }

  // ---------------------------------------------------------------- ModR/M

  private decodeModrm(): void {
    const b = this.fetch8();
    const mod = b >> 6, rm = b & 7;
    this.mod = mod; this.reg = (b >> 3) & 7; this.rm = rm;
    if (mod === 3) return;
    let seg = DS, off: number, base = NO_REG, index = NO_REG, scale = 0, disp = 0;
    const r = this.regs;
    if (this.asz === 2) {
      switch (rm) { // SDM table 2-1
        case 0: base = 3; index = 6; break;
        case 1: base = 3; index = 7; break;
        case 2: base = 5; index = 6; seg = SS; break;
        case 3: base = 5; index = 7; seg = SS; break;
        case 4: base = 6; break;
        case 5: base = 7; break;
        case 6: if (mod === 0) disp = this.fetch16(); else { base = 5; seg = SS; } break;
        default: base = 3; break;
      }
      if (mod === 1) disp = sext8(this.fetch8());
      else if (mod === 2) disp = this.fetch16();
      off = ((base !== NO_REG ? r[base] : 0) + (index !== NO_REG ? r[index] : 0) + disp) & 0xffff;
    } else { // SDM tables 2-2, 2-3
      if (rm === 4) {
        const sib = this.fetch8();
        const sb = sib & 7, si = (sib >> 3) & 7;
        if (sb === 5 && mod === 0) disp = this.fetch32();
        else { base = sb; if (sb === 4 || sb === 5) seg = SS; }
        if (si !== 4) { index = si; scale = sib >> 6; }
      } else if (rm === 5 && mod === 0) {
        disp = this.fetch32();
      } else {
        base = rm;
        if (rm === 5) seg = SS;
      }
      if (mod === 1) disp = sext8(this.fetch8());
      else if (mod === 2) disp = this.fetch32() | 0;
      off = ((base !== NO_REG ? r[base] : 0) + (index !== NO_REG ? r[index] << scale >>> 0 : 0) + disp) >>> 0;
    }
    this.eaBase = base; this.eaIndex = index; this.eaScale = scale; this.eaDisp = disp;
    this.eaSeg = this.segOv >= 0 ? this.segOv : seg;
    this.eaOff = off;
  }

  private readRM(size: number): number {
    return this.mod === 3 ? this.getReg(size, this.rm) : this.rd(size, this.eaSeg, this.eaOff);
  }
  private writeRM(size: number, v: number): void {
    if (this.mod === 3) this.setReg(size, this.rm, v);
    else this.wr(size, this.eaSeg, this.eaOff, v);
  }
  /** readRM for a read-modify-write destination: the write is checked too (wrProbe). */
  private readRMW(size: number): number {
    if (this.mod === 3) return this.getReg(size, this.rm);
    const v = this.rd(size, this.eaSeg, this.eaOff);
    this.wrProbe(size, this.eaSeg, this.eaOff);
    return v;
  }
  /**
   * The write checks of a read-modify-write destination (segment rights and limit, page
   * translation for a write of both pages), made after the read and before the flags or
   * anything else change: a fault on the write then leaves the state as it was before
   * the instruction (SDM Vol. 3A 6.5, faults). The later write hits the TLB.
   */
  private wrProbe(size: number, seg: number, off: number): void {
    if (off + size - 1 > this.segWrHi[seg]) this.segCheck(seg, off, size, true);
    if (!this.pgOn) return;
    const la = (this.segBase[seg] + off) >>> 0;
    this.paW(la);
    if ((la & 0xfff) + size > 0x1000) this.paW(((la | 0xfff) + 1) >>> 0); // the next page from its first byte, as splitWrite
  }
  /** Memory operand only (LDS, BOUND, ...): register forms are #UD. */
  private needMem(): void {
    if (this.mod === 3) this.fault(UD);
  }

  // ---------------------------------------------------------------- stack

  private get ss32(): boolean { return (this.segAttrib[SS] & 0x4000) !== 0; }

  private push(size: number, v: number): void {
    const r = this.regs;
    if (this.ss32) {
      const sp = (r[4] - size) >>> 0;
      this.wr(size, SS, sp, v);
      r[4] = sp;
    } else {
      const sp = (r[4] - size) & 0xffff;
      this.wr(size, SS, sp, v);
      r[4] = (r[4] & 0xffff0000) | sp;
    }
  }
  private pop(size: number): number {
    const r = this.regs;
    if (this.ss32) {
      const v = this.rd(size, SS, r[4]);
      r[4] = r[4] + size;
      return v;
    }
    const sp = r[4] & 0xffff;
    const v = this.rd(size, SS, sp);
    r[4] = (r[4] & 0xffff0000) | ((sp + size) & 0xffff);
    return v;
  }
  /** Read the stack at SP+delta without popping. */
  private peek(size: number, delta: number): number {
    const sp = this.ss32 ? (this.regs[4] + delta) >>> 0 : (this.regs[4] + delta) & 0xffff;
    return this.rd(size, SS, sp);
  }
  private addSp(n: number): void {
    const r = this.regs;
    if (this.ss32) r[4] = r[4] + n;
    else r[4] = (r[4] & 0xffff0000) | ((r[4] + n) & 0xffff);
  }

  // ---------------------------------------------------------------- ALU

  private alu(op: number, size: number, d: number, s: number): number {
    let r: number;
    switch (op) {
      case 0: r = d + s; this.setLazy(LZ_ADD, size, d, s, r); break;
      case 1: r = d | s; this.setLazy(LZ_LOGIC, size, d, s, r); break;
      case 2: r = d + s + this.getCF(); this.setLazy(LZ_ADD, size, d, s, r); break;
      case 3: r = d - s - this.getCF(); this.setLazy(LZ_SUB, size, d, s, r); break;
      case 4: r = d & s; this.setLazy(LZ_LOGIC, size, d, s, r); break;
      case 6: r = d ^ s; this.setLazy(LZ_LOGIC, size, d, s, r); break;
      default: r = d - s; this.setLazy(LZ_SUB, size, d, s, r); break; // SUB, CMP
    }
    return trunc(size, r);
  }

  private incdec(size: number, d: number, dec: boolean): number {
    const cf = this.getCF();
    const r = dec ? d - 1 : d + 1;
    this.setLazy(dec ? LZ_SUB : LZ_ADD, size, d, 1, r);
    this.lzMask = ARITH & ~CF;
    this.flags = (this.flags & ~CF) | cf;
    return trunc(size, r);
  }

  /** Group 2 shifts and rotates (SDM Vol. 2 "RCL/RCR/ROL/ROR", "SAL/SAR/SHL/SHR"); count masked to 5 bits. */
  private shift(op: number, size: number, d: number, count: number): number {
    count &= 0x1f;
    if (count === 0) return d;
    const bits = size * 8, m = MASK[size], sign = SIGN[size];
    let r: number, cf: number, of: number;
    switch (op) {
      case 0: { // ROL
        const c = count & (bits - 1);
        r = c === 0 ? d : trunc(size, (d << c) | (d >>> (bits - c)));
        cf = r & 1;
        of = ((r & sign) !== 0 ? 1 : 0) ^ cf;
        this.setFlags(CF | OF, cf | (of ? OF : 0));
        return r;
      }
      case 1: { // ROR
        const c = count & (bits - 1);
        r = c === 0 ? d : trunc(size, (d >>> c) | (d << (bits - c)));
        cf = (r & sign) !== 0 ? 1 : 0;
        of = cf ^ (((r << 1) & sign) !== 0 ? 1 : 0);
        this.setFlags(CF | OF, cf | (of ? OF : 0));
        return r;
      }
      case 2: { // RCL
        const c = size === 4 ? count : count % (bits + 1);
        r = d; cf = this.getCF();
        for (let i = 0; i < c; i++) {
          const out = (r & sign) !== 0 ? 1 : 0;
          r = trunc(size, r * 2 + cf);
          cf = out;
        }
        of = ((r & sign) !== 0 ? 1 : 0) ^ cf;
        this.setFlags(CF | OF, cf | (of ? OF : 0));
        return r;
      }
      case 3: { // RCR
        const c = size === 4 ? count : count % (bits + 1);
        r = d; cf = this.getCF();
        for (let i = 0; i < c; i++) {
          const out = r & 1;
          r = (r >>> 1) | (cf ? sign : 0);
          r = trunc(size, r);
          cf = out;
        }
        of = (((r << 1) ^ r) & sign) !== 0 ? OF : 0;
        this.setFlags(CF | OF, cf | of);
        return r;
      }
      case 4: case 6: { // SHL/SAL
        if (count <= bits) {
          cf = count === bits ? d & 1 : (d >>> (bits - count)) & 1;
          r = count === 32 ? 0 : trunc(size, d << count);
          if (count === bits) r = 0;
        } else { cf = 0; r = 0; }
        of = ((r & sign) !== 0 ? 1 : 0) ^ cf;
        this.setFlags(ARITH, cf | (of ? OF : 0) | this.szp(size, r));
        return r;
      }
      case 5: { // SHR
        const before = count <= bits ? d >>> (count - 1) : 0; // the value before the last 1-bit shift
        cf = before & 1;
        r = count >= bits ? 0 : d >>> count;
        // OF = MSB before the last step (SDM defines it for count 1; the iterative result otherwise).
        this.setFlags(ARITH, cf | ((before & sign) !== 0 ? OF : 0) | this.szp(size, r));
        return r;
      }
      default: { // SAR
        const sd = size === 1 ? sext8(d) : size === 2 ? sext16(d) : d | 0;
        const c = count >= bits ? bits - 1 : count;
        cf = count >= bits ? (sd < 0 ? 1 : 0) : (sd >> (c - 1)) & 1;
        r = trunc(size, sd >> c);
        this.setFlags(ARITH, cf | this.szp(size, r));
        return r & m;
      }
    }
  }

  /** Unsigned 32x32 -> 64 into hi/lo. */
  private mul32(a: number, b: number): void {
    const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
    const ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
    this.lo = ((mid << 16) | (ll & 0xffff)) >>> 0;
    this.hi = (hh + (lh >>> 16) + (hl >>> 16) + Math.floor(mid / 65536)) >>> 0;
  }
  /** Signed 32x32 -> 64 into hi/lo. */
  private imul32(a: number, b: number): void {
    const neg = (a < 0) !== (b < 0);
    this.mul32(Math.abs(a) >>> 0, Math.abs(b) >>> 0);
    if (neg && (this.hi | this.lo) !== 0) {
      this.lo = (~this.lo + 1) >>> 0;
      this.hi = (~this.hi + (this.lo === 0 ? 1 : 0)) >>> 0;
    }
  }

  /** Group 3 MUL/IMUL/DIV/IDIV on the accumulator. */
  private muldiv(op: number, size: number, s: number): void {
    const r = this.regs;
    switch (op) {
      case 4: { // MUL
        let hi: number, lo: number;
        if (size === 1) { const p = (r[0] & 0xff) * s; this.setReg(2, 0, p); hi = p >> 8; lo = p & 0xff; }
        else if (size === 2) { const p = (r[0] & 0xffff) * s; this.setReg(2, 0, p); this.setReg(2, 2, p >>> 16); hi = p >>> 16; lo = p & 0xffff; }
        else { this.mul32(r[0], s); r[0] = this.lo; r[2] = this.hi; hi = this.hi; lo = this.lo; }
        const c = hi !== 0 ? CF | OF : 0;
        this.setFlags(ARITH, c | this.szp(size, lo));
        return;
      }
      case 5: { // IMUL
        let ovf: boolean, lo: number;
        if (size === 1) { const p = sext8(r[0]) * sext8(s); this.setReg(2, 0, p); lo = p & 0xff; ovf = p !== sext8(p); }
        else if (size === 2) { const p = sext16(r[0]) * sext16(s); this.setReg(2, 0, p); this.setReg(2, 2, p >> 16); lo = p & 0xffff; ovf = p !== sext16(p); }
        else { this.imul32(r[0] | 0, s | 0); r[0] = this.lo; r[2] = this.hi; lo = this.lo; ovf = this.hi !== ((this.lo | 0) < 0 ? 0xffffffff : 0); }
        this.setFlags(ARITH, (ovf ? CF | OF : 0) | this.szp(size, lo));
        return;
      }
      case 6: { // DIV
        if (s === 0) this.fault(DE);
        if (size === 1) {
          const n = r[0] & 0xffff, q = Math.floor(n / s);
          if (q > 0xff) this.fault(DE);
          this.setReg(2, 0, ((n % s) << 8) | q);
        } else if (size === 2) {
          const n = ((r[2] & 0xffff) * 65536) + (r[0] & 0xffff), q = Math.floor(n / s);
          if (q > 0xffff) this.fault(DE);
          this.setReg(2, 0, q); this.setReg(2, 2, n % s);
        } else if (r[2] === 0) { // the common case stays in doubles (exact below 2^53)
          const n = r[0];
          r[0] = Math.floor(n / s); r[2] = n % s;
        } else {
          const n = (BigInt(r[2]) << 32n) | BigInt(r[0]), bs = BigInt(s), q = n / bs;
          if (q > 0xffffffffn) this.fault(DE);
          r[0] = Number(q); r[2] = Number(n % bs);
        }
        return;
      }
      default: { // IDIV
        if (s === 0) this.fault(DE);
        if (size === 1) {
          const n = sext16(r[0]), d = sext8(s), q = Math.trunc(n / d);
          if (q > 127 || q < -128) this.fault(DE);
          this.setReg(2, 0, (((n % d) & 0xff) << 8) | (q & 0xff));
        } else if (size === 2) {
          const n = ((r[2] << 16) | (r[0] & 0xffff)), d = sext16(s), q = Math.trunc(n / d);
          if (q > 32767 || q < -32768) this.fault(DE);
          this.setReg(2, 0, q); this.setReg(2, 2, n % d);
        } else if (r[2] === ((r[0] | 0) < 0 ? 0xffffffff : 0)) { // EDX:EAX is a sign-extended EAX (after CDQ)
          const n = r[0] | 0, d = s | 0, q = Math.trunc(n / d);
          if (q > 0x7fffffff || q < -0x80000000) this.fault(DE);
          r[0] = q; r[2] = n % d;
        } else {
          const n = (BigInt(r[2] | 0) << 32n) | BigInt(r[0]), d = BigInt(s | 0), q = n / d;
          if (q > 0x7fffffffn || q < -0x80000000n) this.fault(DE);
          r[0] = Number(BigInt.asUintN(32, q)); r[2] = Number(BigInt.asUintN(32, n % d));
        }
        return;
      }
    }
  }

  // ---------------------------------------------------------------- control transfer

  private jumpNear(target: number): void {
    if (this.osz === 2) target &= 0xffff;
    else target >>>= 0;
    if (target > this.segLimit[CS]) this.faultCode(GP, 0);
    this.eip = target;
  }
  private jumpFar(sel: number, off: number): void {
    if (this.osz === 2) off &= 0xffff;
    this.loadSegReal(CS, sel);
    if (off > this.segLimit[CS]) this.faultCode(GP, 0);
    this.eip = off >>> 0;
  }

  // ---------------------------------------------------------------- protected mode (SDM Vol. 3A ch. 3, 5, 6, 7, 20)
  //
  // Segment loads check the descriptor as SDM Vol. 2 MOV/JMP/CALL/RET/IRET/INT say and
  // fault with the selector error code (SDM 6.13; EXT while delivering an event that is
  // not INT n/INT3/INTO). Every data access checks the per-segment window computed at
  // load time (segCache): rd*/wr* compare the offset with segRdHi/segWrHi, the limit of
  // an expand-up segment the access is allowed in, else -1; only then does segCheck look
  // at the full window (expand-down, or a fault: null, execute-only, read-only). So the
  // fast path costs what the plain limit check did. Real and virtual-8086 mode check
  // the limit only. Descriptor tables
  // and TSSs are read by linear address (sysRd/sysWr). Not modelled: CR4.VME/PVI, the
  // TSS T (debug trap) bit, call gates' #SS error codes for parameter reads.

  /** CPL: CS.RPL in protected mode (= SS.DPL, as the VMCS keeps it), 3 in virtual-8086 mode, 0 in real mode. */
  cpl = 0;
  /** The EXT bit of selector error codes (SDM 6.13) while delivering an event external to the program. */
  private ext = 0;
  /** Per segment (segCache): reads are valid for offsets lo .. lo+span; span -1 refuses every read. Same for writes. */
  private readonly segRdLo = new Uint32Array(6);
  private readonly segRdSpan = new Float64Array(6).fill(0xffff);
  private readonly segWrLo = new Uint32Array(6);
  private readonly segWrSpan = new Float64Array(6).fill(0xffff);
  /** The fast check of rd8..wr32: the span of an expand-up window, -1 otherwise (segCheck decides). */
  private readonly segRdHi = new Float64Array(6).fill(0xffff);
  private readonly segWrHi = new Float64Array(6).fill(0xffff);
  /** The last descriptor read (readDesc): its two dwords and its linear address. */
  private dLo = 0;
  private dHi = 0;
  private dAddr = 0;
  /** New SS:ESP from the TSS (tssStack). */
  private nSs = 0;
  private nEsp = 0;
  /** A saved CS/SS/ESP/EIP/CPL/EFLAGS (saveCtx), restored when a privilege change faults half-way. */
  private readonly ctx = new Float64Array(14);
  /** The fields a task switch reads from the new TSS before changing anything (taskSwitch); a call gate's parameters (up to 31). */
  private readonly tssIn = new Uint32Array(32);

  /** Protected mode proper: CR0.PE = 1 and EFLAGS.VM = 0. */
  private get pm(): boolean { return (this.cr0 & CR0_PE) !== 0 && (this.flags & VM) === 0; }
  private get iopl(): number { return (this.flags >>> 12) & 3; }

  /** Recompute segment `i`'s access window from its limit and access rights (see the section header). */
  private segCache(i: number): void {
    const a = this.segAttrib[i], lim = this.segLimit[i];
    let lo = 0, span = lim, rd = true, wr = true;
    if ((this.cr0 & CR0_PE) !== 0 && (this.flags & VM) === 0) {
      if ((a & 0x10090) !== 0x90) { rd = false; wr = false; } // unusable (null), not present, or a system segment
      else if ((a & 8) !== 0) { wr = false; rd = (a & 2) !== 0; } // code: never writable (SDM 3.4.5.1)
      else {
        wr = (a & 2) !== 0;
        if ((a & 4) !== 0) { // expand-down: limit+1 .. 64 KiB or 4 GiB (B bit) (SDM 3.4.5.1)
          const hi = (a & 0x4000) !== 0 ? 0xffffffff : 0xffff;
          if (lim >= hi) { rd = false; wr = false; } else { lo = lim + 1; span = hi - lo; }
        }
      }
    }
    this.segRdLo[i] = lo; this.segRdSpan[i] = rd ? span : -1;
    this.segWrLo[i] = lo; this.segWrSpan[i] = wr ? span : -1;
    this.segRdHi[i] = rd && lo === 0 ? span : -1;
    this.segWrHi[i] = wr && lo === 0 ? span : -1;
  }
  private refreshSegs(): void {
    for (let i = 0; i < 6; i++) this.segCache(i);
  }
  /** CR0.PE or EFLAGS.VM changed: CPL and the access windows follow (CPL = SS.DPL, SDM 5.5). */
  modeChanged(): void {
    this.cpl = this.cplNow();
    this.refreshSegs();
    this.cplChanged();
  }
  /** #GP/#SS(0) unless [off, off+size) may be read (wantWrite false) or written in segment `seg`. */
  private segCheck(seg: number, off: number, size: number, wantWrite: boolean): void {
    const x = ((off - (wantWrite ? this.segWrLo[seg] : this.segRdLo[seg])) >>> 0) + size - 1;
    if (x > (wantWrite ? this.segWrSpan[seg] : this.segRdSpan[seg])) this.segFault(seg);
  }

  private segSet(i: number, sel: number, base: number, limit: number, attrib: number): void {
    this.segSel[i] = sel; this.segBase[i] = base >>> 0; this.segLimit[i] = limit >>> 0; this.segAttrib[i] = attrib;
    this.segCache(i);
  }
  /** A null selector in DS/ES/FS/GS: the register is unusable (VMCS bit 16); any access is #GP(0). */
  private loadNull(i: number, sel: number): void {
    this.segSet(i, sel & 0xffff, 0, 0, 0x10000);
  }
  /** Virtual-8086 segment load (SDM 20.2.1): base sel*16, limit 64 KiB, DPL 3 read/write data. */
  private loadSegV86(i: number, sel: number): void {
    this.segSet(i, sel & 0xffff, (sel & 0xffff) << 4, 0xffff, 0xf3);
  }

  // ---- system accesses by linear address (descriptor tables, IDT, TSS): implicit
  // supervisor accesses through the paging layer (linRead/linWrite, SDM 4.6).
  private sysRd(size: number, la: number): number { return this.linRead(la >>> 0, size); }
  private sysWr(size: number, la: number, v: number): void { this.linWrite(la >>> 0, size, v); }

  // ---- descriptors (SDM 3.4.5, 3.5.1)

  /** #vec with a selector error code: index, TI, and EXT (SDM 6.13). */
  private selFault(vec: number, sel: number): never {
    return this.faultCode(vec, (sel & 0xfffc) | this.ext);
  }
  /** Read `sel`'s descriptor into dLo/dHi/dAddr; false when it lies outside its table (GDT, or the LDT for TI = 1). */
  private readDesc(sel: number): boolean {
    let base: number, limit: number;
    if ((sel & 4) !== 0) {
      const l = this.ldtr;
      if ((l.attrib & 0x10080) !== 0x80) return false; // no usable LDT
      base = l.base; limit = l.limit;
    } else { base = this.gdtrBase; limit = this.gdtrLimit; }
    const off = sel & 0xfff8;
    if (off + 7 > limit) return false;
    this.dAddr = (base + off) >>> 0;
    this.dLo = this.sysRd(4, this.dAddr);
    this.dHi = this.sysRd(4, this.dAddr + 4);
    return true;
  }
  /** Access rights of dHi in the VMCS format: type, S, DPL, P, AVL, L, D/B, G. */
  private descAttrib(): number { return (this.dHi >>> 8) & 0xf0ff; }
  private descBase(): number { return ((this.dLo >>> 16) | ((this.dHi & 0xff) << 16) | (this.dHi & 0xff000000)) >>> 0; }
  /** The limit in bytes (G scales by 4 KiB, SDM 3.4.5). */
  private descLimit(): number {
    const l = (this.dLo & 0xffff) | (this.dHi & 0xf0000);
    return (this.dHi & 0x800000) !== 0 ? ((l << 12) | 0xfff) >>> 0 : l;
  }
  /** Set the accessed bit of a segment descriptor in memory (SDM 3.4.5.1) and in dHi. */
  private setAccessed(): void {
    if ((this.dHi & 0x100) !== 0) return;
    this.dHi |= 0x100;
    this.sysWr(1, this.dAddr + 5, (this.dHi >>> 8) & 0xff);
  }
  /** Load segment `i` from the descriptor in dLo/dHi (accessed bit set). */
  private segFromDesc(i: number, sel: number): void {
    this.setAccessed();
    this.segSet(i, sel & 0xffff, this.descBase(), this.descLimit(), this.descAttrib());
  }
  /** Load CS from dLo/dHi at privilege `cpl` (CS.RPL = CPL). */
  private loadCs(sel: number, cpl: number): void {
    this.segFromDesc(CS, (sel & 0xfffc) | cpl);
    this.code32 = (this.segAttrib[CS] & 0x4000) !== 0;
    if (cpl !== this.cpl) { this.cpl = cpl; this.cplChanged(); }
  }

  /** MOV/POP Sreg, LDS/LES/LFS/LGS/LSS (SDM Vol. 2 MOV "Operation", 3A 5.6-5.7). */
  private loadSeg(i: number, sel: number): void {
    sel &= 0xffff;
    if ((this.cr0 & CR0_PE) === 0) { this.loadSegReal(i, sel); return; }
    if ((this.flags & VM) !== 0) { this.loadSegV86(i, sel); return; }
    const cpl = this.cpl, rpl = sel & 3;
    if ((sel & 0xfffc) === 0) {
      if (i === SS) this.faultCode(GP, 0);
      this.loadNull(i, sel);
      return;
    }
    if (!this.readDesc(sel)) this.selFault(GP, sel);
    const a = this.descAttrib(), dpl = (a >>> 5) & 3;
    if (i === SS) {
      // A writable data segment with RPL = DPL = CPL; not present is #SS.
      if (rpl !== cpl || dpl !== cpl || (a & 0x1a) !== 0x12) this.selFault(GP, sel);
      if ((a & 0x80) === 0) this.selFault(SSV, sel);
    } else {
      // Data or readable code; data and non-conforming code need DPL >= CPL and DPL >= RPL.
      if ((a & 0x10) === 0 || (a & 0xa) === 0x8) this.selFault(GP, sel);
      if ((a & 0xc) !== 0xc && (rpl > dpl || cpl > dpl)) this.selFault(GP, sel);
      if ((a & 0x80) === 0) this.selFault(NP_V, sel);
    }
    this.segFromDesc(i, sel);
  }

  /** Returning to an outer level: DS/ES/FS/GS that the new CPL may not use become null (SDM Vol. 2 RET, IRET). */
  private nullDataSegs(): void {
    const cpl = this.cpl;
    for (let i = 0; i < 6; i++) {
      if (i === CS || i === SS) continue;
      const a = this.segAttrib[i];
      if ((a & 0x10000) !== 0) continue;
      // data or non-conforming code with DPL < CPL
      if (((a & 0xc) !== 0xc) && ((a >>> 5) & 3) < cpl) this.loadNull(i, 0);
    }
  }

  // ---- saved context for privilege changes that can fault half-way

  private saveCtx(): void {
    const c = this.ctx;
    c[0] = this.segSel[CS]; c[1] = this.segBase[CS]; c[2] = this.segLimit[CS]; c[3] = this.segAttrib[CS];
    c[4] = this.segSel[SS]; c[5] = this.segBase[SS]; c[6] = this.segLimit[SS]; c[7] = this.segAttrib[SS];
    c[8] = this.regs[4]; c[9] = this.eip; c[10] = this.cpl; c[11] = this.getEflags(); c[12] = this.code32 ? 1 : 0;
  }
  private restoreCtx(): void {
    const c = this.ctx;
    this.setEflags(c[11]);
    this.segSet(CS, c[0], c[1], c[2], c[3]);
    this.segSet(SS, c[4], c[5], c[6], c[7]);
    this.regs[4] = c[8]; this.eip = c[9]; this.cpl = c[10]; this.code32 = c[12] !== 0;
    this.refreshSegs();
    this.cplChanged();
  }

  /**
   * #SS(err) unless `n` pushes of `size` bytes below ESP fit in SS: checked before a
   * privilege change or event pushes anything (SDM 6.12.1, Vol. 2 CALL).
   */
  private stackRoom(size: number, n: number, err: number): void {
    const esp = this.regs[4], lo = this.segWrLo[SS], span = this.segWrSpan[SS], b32 = this.ss32;
    for (let k = 1; k <= n; k++) {
      const off = b32 ? (esp - k * size) >>> 0 : (esp - k * size) & 0xffff;
      if (((off - lo) >>> 0) + size - 1 > span) this.faultCode(SSV, err);
    }
  }

  /** SS:ESP for privilege level `dpl` from the current TSS (SDM 7.2.1, figures 7-2 and 7-11), into nSs/nEsp. */
  private tssStack(dpl: number): void {
    const t = this.tr, t32 = (t.attrib & 8) !== 0;
    const off = t32 ? dpl * 8 + 4 : dpl * 4 + 2;
    if (off + (t32 ? 5 : 3) > t.limit) this.selFault(TS_V, t.selector);
    if (t32) { this.nEsp = this.sysRd(4, t.base + off); this.nSs = this.sysRd(2, t.base + off + 4); }
    else { this.nEsp = this.sysRd(2, t.base + off); this.nSs = this.sysRd(2, t.base + off + 2); }
  }
  /** Check the inner stack segment nSs for privilege `dpl` (SDM Vol. 2 CALL, INT); leaves its descriptor in dLo/dHi. */
  private checkInnerSs(dpl: number): void {
    const ss = this.nSs;
    if ((ss & 0xfffc) === 0) this.faultCode(TS_V, this.ext);
    if (!this.readDesc(ss)) this.selFault(TS_V, ss);
    const a = this.descAttrib();
    if ((ss & 3) !== dpl || ((a >>> 5) & 3) !== dpl || (a & 0x1a) !== 0x12) this.selFault(TS_V, ss);
    if ((a & 0x80) === 0) this.selFault(SSV, ss);
    this.setAccessed(); // memory writes before any register changes
  }
  /** Switch to the inner stack nSs:nEsp (descriptor in dLo/dHi) at privilege `dpl`. */
  private enterInnerStack(dpl: number): void {
    this.segFromDesc(SS, this.nSs);
    this.regs[4] = this.nEsp;
    this.cpl = dpl;
    this.cplChanged(); // pushes to the inner stack are supervisor accesses
  }

  // ---- far control transfers (SDM Vol. 2 JMP, CALL, RET, IRET)

  /** JMP ptr16:16/32 and JMP m16:16/32. */
  private farJmp(sel: number, off: number): void {
    if (!this.pm) { this.jumpFar(sel, off); return; }
    this.farProt(sel & 0xffff, off, false);
  }
  /** CALL ptr16:16/32 and CALL m16:16/32. */
  private farCall(sel: number, off: number): void {
    if (!this.pm) {
      const osz = this.osz;
      this.push(osz, this.segSel[CS]);
      this.push(osz, this.eip);
      this.jumpFar(sel, off);
      return;
    }
    this.farProt(sel & 0xffff, off, true);
  }

  /** Checks of a code segment reached directly (not through a gate) by JMP/CALL; dLo/dHi hold it. */
  private checkDirectCode(sel: number): void {
    const a = this.descAttrib(), dpl = (a >>> 5) & 3, cpl = this.cpl;
    if ((a & 4) !== 0) { if (dpl > cpl) this.selFault(GP, sel); } // conforming
    else if ((sel & 3) > cpl || dpl !== cpl) this.selFault(GP, sel);
    if ((a & 0x80) === 0) this.selFault(NP_V, sel);
  }

  private farProt(sel: number, off: number, isCall: boolean): void {
    if ((sel & 0xfffc) === 0) this.faultCode(GP, 0);
    if (!this.readDesc(sel)) this.selFault(GP, sel);
    const a = this.descAttrib(), dpl = (a >>> 5) & 3, cpl = this.cpl, rpl = sel & 3;
    if ((a & 0x18) === 0x18) { // code segment
      this.checkDirectCode(sel);
      const osz = this.osz;
      if (osz === 2) off &= 0xffff;
      if (off > this.descLimit()) this.faultCode(GP, 0);
      if (isCall) {
        this.stackRoom(osz, 2, 0);
        this.push(osz, this.segSel[CS]);
        this.push(osz, this.eip);
      }
      this.loadCs(sel, cpl);
      this.eip = off >>> 0;
      return;
    }
    if ((a & 0x10) !== 0) this.selFault(GP, sel); // a data segment
    switch (a & 0xf) {
      case 1: case 9: // available TSS (SDM 7.3)
        if (dpl < cpl || dpl < rpl) this.selFault(GP, sel);
        if ((a & 0x80) === 0) this.selFault(NP_V, sel);
        this.taskSwitch(sel, isCall ? TaskSwitchSource.Call : TaskSwitchSource.Jmp, false, 0);
        return;
      case 5: { // task gate (SDM 7.3.2)
        if (dpl < cpl || dpl < rpl) this.selFault(GP, sel);
        if ((a & 0x80) === 0) this.selFault(NP_V, sel);
        const tss = this.dLo >>> 16;
        if ((tss & 4) !== 0 || !this.readDesc(tss)) this.selFault(GP, tss);
        const ta = this.descAttrib();
        if ((ta & 0x1f) !== 1 && (ta & 0x1f) !== 9) this.selFault(GP, tss); // must be an available TSS
        if ((ta & 0x80) === 0) this.selFault(NP_V, tss);
        this.taskSwitch(tss, isCall ? TaskSwitchSource.Call : TaskSwitchSource.Jmp, false, 0);
        return;
      }
      case 4: case 12: this.callGate(sel, isCall); return;
      default: this.selFault(GP, sel);
    }
  }

  /** JMP/CALL through a call gate (SDM 5.8.3-5.8.5); dLo/dHi hold the gate. */
  private callGate(gsel: number, isCall: boolean): void {
    const ga = this.descAttrib(), gdpl = (ga >>> 5) & 3, cpl = this.cpl;
    if (gdpl < cpl || gdpl < (gsel & 3)) this.selFault(GP, gsel);
    if ((ga & 0x80) === 0) this.selFault(NP_V, gsel);
    const g32 = (ga & 8) !== 0, glo = this.dLo, ghi = this.dHi;
    const csSel = glo >>> 16, params = ghi & 0x1f;
    const off = g32 ? ((ghi & 0xffff0000) | (glo & 0xffff)) >>> 0 : glo & 0xffff;
    if ((csSel & 0xfffc) === 0) this.faultCode(GP, 0);
    if (!this.readDesc(csSel)) this.selFault(GP, csSel);
    const a = this.descAttrib(), dpl = (a >>> 5) & 3;
    if ((a & 0x18) !== 0x18 || dpl > cpl) this.selFault(GP, csSel);
    if (!isCall && (a & 4) === 0 && dpl !== cpl) this.selFault(GP, csSel); // JMP never changes privilege
    if ((a & 0x80) === 0) this.selFault(NP_V, csSel);
    if (off > this.descLimit()) this.faultCode(GP, 0);
    this.setAccessed();
    const cLo = this.dLo, cHi = this.dHi, cAddr = this.dAddr;
    const sz = g32 ? 4 : 2;
    if (!isCall || (a & 4) !== 0 || dpl === cpl) {
      if (isCall) {
        this.stackRoom(sz, 2, 0);
        this.push(sz, this.segSel[CS]);
        this.push(sz, this.eip);
      }
      this.dLo = cLo; this.dHi = cHi; this.dAddr = cAddr;
      this.loadCs(csSel, cpl);
      this.eip = off;
      return;
    }
    // CALL to a more privileged non-conforming segment: stack switch and parameter copy (SDM 5.8.5, figure 5-13).
    this.tssStack(dpl);
    this.checkInnerSs(dpl);
    const oldSs = this.segSel[SS], oldEsp = this.regs[4], oldB32 = this.ss32;
    // Parameters are read from the old stack before anything changes.
    const p = this.tssIn;
    for (let k = 0; k < params; k++) {
      const o = oldB32 ? (oldEsp + k * sz) >>> 0 : (oldEsp + k * sz) & 0xffff;
      p[k] = this.rd(sz, SS, o);
    }
    const retCs = this.segSel[CS], retEip = this.eip;
    this.saveCtx();
    try {
      this.enterInnerStack(dpl);
      this.stackRoom(sz, 4 + params, (this.nSs & 0xfffc) | this.ext);
      this.push(sz, oldSs);
      this.push(sz, oldEsp);
      for (let k = params - 1; k >= 0; k--) this.push(sz, p[k]);
      this.push(sz, retCs);
      this.push(sz, retEip);
      this.dLo = cLo; this.dHi = cHi; this.dAddr = cAddr;
      this.loadCs(csSel, dpl);
      this.eip = off;
    } catch (x) { this.restoreCtx(); throw x; }
  }

  /**
   * Checks of the CS a far RET/IRET returns to (SDM Vol. 2 RET, IRET "PROTECTED-MODE-RETURN");
   * leaves its descriptor in dLo/dHi.
   */
  private checkReturnCs(sel: number): void {
    if ((sel & 0xfffc) === 0) this.faultCode(GP, 0);
    if (!this.readDesc(sel)) this.selFault(GP, sel);
    const a = this.descAttrib(), dpl = (a >>> 5) & 3, rpl = sel & 3;
    if ((a & 0x18) !== 0x18 || rpl < this.cpl) this.selFault(GP, sel);
    if ((a & 4) !== 0 ? dpl > rpl : dpl !== rpl) this.selFault(GP, sel);
    if ((a & 0x80) === 0) this.selFault(NP_V, sel);
    this.setAccessed();
  }
  /** Checks of the outer SS a RET/IRET returns to at privilege `rpl`; leaves its descriptor in dLo/dHi. */
  private checkOuterSs(ss: number, rpl: number): void {
    if ((ss & 0xfffc) === 0) this.faultCode(GP, 0);
    if (!this.readDesc(ss)) this.selFault(GP, ss);
    const a = this.descAttrib();
    if ((ss & 3) !== rpl || ((a >>> 5) & 3) !== rpl || (a & 0x1a) !== 0x12) this.selFault(GP, ss);
    if ((a & 0x80) === 0) this.selFault(SSV, ss);
    this.setAccessed();
  }

  /** RET far imm16 (SDM Vol. 2 RET). */
  private farRet(n: number): void {
    const osz = this.osz;
    if (!this.pm) {
      const ip = this.peek(osz, 0), cs = this.peek(osz, osz) & 0xffff;
      this.jumpFar(cs, ip);
      this.addSp(osz * 2 + n);
      return;
    }
    const ip = this.peek(osz, 0), sel = this.peek(osz, osz) & 0xffff;
    this.protReturn(sel, osz === 2 ? ip & 0xffff : ip, 2 * osz, n, -1);
  }

  /**
   * The protected-mode part of RET far and IRET once EIP and CS are known: same level, or
   * outer level with the SS:ESP found `frame` + `n` bytes up the stack; `fl` >= 0 is
   * IRET's EFLAGS image.
   */
  private protReturn(sel: number, off: number, frame: number, n: number, fl: number): void {
    const osz = this.osz, rpl = sel & 3, cpl = this.cpl;
    this.checkReturnCs(sel);
    if (off > this.descLimit()) this.faultCode(GP, 0);
    const cLo = this.dLo, cHi = this.dHi, cAddr = this.dAddr;
    if (rpl === cpl) {
      this.loadCs(sel, cpl);
      this.eip = off;
      this.addSp(frame + n);
      if (fl >= 0) this.iretFlags(fl, osz, cpl);
      return;
    }
    // Outer level: SS:ESP follow the frame (and RET's imm16 bytes).
    const esp = this.peek(osz, frame + n), ss = this.peek(osz, frame + n + osz) & 0xffff;
    this.checkOuterSs(ss, rpl);
    this.segFromDesc(SS, ss);
    this.dLo = cLo; this.dHi = cHi; this.dAddr = cAddr;
    this.loadCs(sel, rpl);
    this.eip = off;
    const r = this.regs;
    r[4] = osz === 4 ? esp : (r[4] & 0xffff0000) | (esp & 0xffff);
    this.addSp(n);
    if (fl >= 0) this.iretFlags(fl, osz, cpl);
    this.nullDataSegs();
  }

  /** EFLAGS from an IRET image (SDM Vol. 2 IRET): IOPL only at CPL 0, IF only at CPL <= IOPL; VM unchanged here. */
  private iretFlags(v: number, osz: number, cpl: number): void {
    const cur = this.getEflags();
    let keep = VM;
    if (osz === 2) keep |= 0xffff0000;
    else if (cpl !== 0) keep |= 0x180000; // VIF, VIP
    if (cpl !== 0) keep |= IOPL_NT & 0x3000;
    if (cpl > ((cur >>> 12) & 3)) keep |= IF;
    const f = (v & ~keep) | (cur & keep);
    this.setEflags(f & (ARITH | TF | IF | DF | IOPL_NT | RF | VM | AC | 0x180000 | ID | 2));
  }

  /** IRET/IRETD (SDM Vol. 2 IRET): real mode, virtual-8086 mode, task return (NT), protected-mode return. */
  private iret(): void {
    const osz = this.osz;
    if ((this.cr0 & CR0_PE) === 0) {
      const ip = this.peek(osz, 0), cs = this.peek(osz, osz) & 0xffff, fl = this.peek(osz, osz * 2);
      this.jumpFar(cs, ip);
      this.addSp(osz * 3);
      this.popFlags(osz, fl);
      return;
    }
    if ((this.flags & VM) !== 0) {
      // Virtual-8086 mode without VME: IOPL-sensitive (SDM 20.2.7); with IOPL 3, IOPL and VM stay.
      if (this.iopl < 3) this.faultCode(GP, 0);
      const ip = this.peek(osz, 0), cs = this.peek(osz, osz) & 0xffff, fl = this.peek(osz, osz * 2);
      if (osz === 2 ? (ip & 0xffff) > this.segLimit[CS] : ip > this.segLimit[CS]) this.faultCode(GP, 0);
      this.loadSegV86(CS, cs);
      this.eip = osz === 2 ? ip & 0xffff : ip;
      this.addSp(osz * 3);
      const cur = this.getEflags(), keep = VM | (IOPL_NT & 0x3000) | 0x180000 | (osz === 2 ? 0xffff0000 : 0);
      this.setEflags(((fl & ~keep) | (cur & keep)) & (ARITH | TF | IF | DF | IOPL_NT | RF | VM | AC | 0x180000 | ID | 2));
      return;
    }
    if ((this.flags & IOPL_NT & 0x4000) !== 0) { // NT: return to the task in the back link (SDM 7.3, 7.4)
      const link = this.sysRd(2, this.tr.base);
      if ((link & 4) !== 0 || !this.readDesc(link)) this.selFault(TS_V, link);
      const a = this.descAttrib();
      if ((a & 0x1d) !== 0x9 || (a & 0x2) === 0) this.selFault(TS_V, link); // a busy TSS
      if ((a & 0x80) === 0) this.selFault(NP_V, link);
      this.taskSwitch(link, TaskSwitchSource.Iret, false, 0);
      return;
    }
    const ip = this.peek(osz, 0), sel = this.peek(osz, osz) & 0xffff, fl = this.peek(osz, osz * 2);
    if (osz === 4 && (fl & VM) !== 0 && this.cpl === 0) { this.iretToV86(ip, sel, fl); return; }
    this.protReturn(sel, osz === 2 ? ip & 0xffff : ip, 3 * osz, 0, fl);
  }

  /** IRETD at CPL 0 with VM in the image: enter virtual-8086 mode (SDM Vol. 2 IRET "RETURN-TO-VIRTUAL-8086-MODE"). */
  private iretToV86(ip: number, cs: number, fl: number): void {
    const esp = this.peek(4, 12), ss = this.peek(4, 16) & 0xffff;
    const es = this.peek(4, 20) & 0xffff, ds = this.peek(4, 24) & 0xffff, fs = this.peek(4, 28) & 0xffff, gs = this.peek(4, 32) & 0xffff;
    this.setEflags(fl & (ARITH | TF | IF | DF | IOPL_NT | RF | VM | AC | 0x180000 | ID | 2));
    this.loadSegV86(CS, cs); this.loadSegV86(SS, ss);
    this.loadSegV86(ES, es); this.loadSegV86(DS, ds); this.loadSegV86(FS, fs); this.loadSegV86(GS, gs);
    this.regs[4] = esp;
    this.eip = ip & 0xffff;
    this.cpl = 3;
    this.code32 = false;
    this.cplChanged();
  }

  // ---- task switches (SDM 7.3)

  /**
   * Switch to the task whose TSS descriptor (in the GDT) is in dLo/dHi, selector `sel`. The
   * caller has made the privilege, type and present checks of its source. With
   * intercepts.taskSwitchExit the core stops first, before any state changes (VMX: task
   * switches always exit, SDM 26.1.2, qualification table 28-2; SVM TASK_SWITCH), and the
   * result is true. For an event (`src` Gate) with an error code, it is pushed on the new stack.
   */
  private taskSwitch(sel: number, src: TaskSwitchSource, hasErr: boolean, err: number): boolean {
    const nAttr = this.descAttrib(), nBase = this.descBase(), nLimit = this.descLimit(), nAddr = this.dAddr;
    if (this.intercepts.taskSwitchExit) {
      const e = this.exit;
      e.tsSelector = sel; e.tsSource = src; e.tsHasErrorCode = hasErr; e.tsErrorCode = hasErr ? err : 0;
      e.tsRf = (this.flags & RF) !== 0; // what oflags below would save (a fault's deliver() has set RF)
      if (src === TaskSwitchSource.Gate) { e.reason = CpuExitReason.TaskSwitch; this.stop = CpuExitReason.TaskSwitch; }
      else this.stopHere(CpuExitReason.TaskSwitch);
      return true;
    }
    const n32 = (nAttr & 8) !== 0;
    if (nLimit < (n32 ? 0x67 : 0x2b)) this.selFault(TS_V, sel);
    // Read the whole new state first: a fault here changes nothing.
    const t = this.tssIn;
    if (n32) {
      t[0] = this.sysRd(4, nBase + 0x1c); // CR3
      t[1] = this.sysRd(4, nBase + 0x20); // EIP
      t[2] = this.sysRd(4, nBase + 0x24); // EFLAGS
      for (let i = 0; i < 8; i++) t[3 + i] = this.sysRd(4, nBase + 0x28 + i * 4);
      for (let i = 0; i < 6; i++) t[11 + i] = this.sysRd(2, nBase + 0x48 + i * 4);
      t[17] = this.sysRd(2, nBase + 0x60); // LDT
      t[18] = this.sysRd(2, nBase + 0x64) & 1; // T (debug trap) bit, SDM 7.2.1
    } else {
      t[1] = this.sysRd(2, nBase + 0x0e);
      t[2] = this.sysRd(2, nBase + 0x10);
      for (let i = 0; i < 8; i++) t[3 + i] = this.sysRd(2, nBase + 0x12 + i * 2);
      for (let i = 0; i < 4; i++) t[11 + i] = this.sysRd(2, nBase + 0x22 + i * 2); // ES CS SS DS
      t[15] = 0; t[16] = 0;
      t[17] = this.sysRd(2, nBase + 0x2a);
      t[18] = 0; // a 16-bit TSS has no T bit (SDM 7.6)
    }
    // Save the current state into the current TSS.
    const o = this.tr, o32 = (o.attrib & 8) !== 0, r = this.regs;
    let oflags = this.getEflags();
    if (src === TaskSwitchSource.Iret) oflags &= ~0x4000; // the old task is no longer nested
    if (src === TaskSwitchSource.Jmp || src === TaskSwitchSource.Iret) this.setBusy(o.selector, false);
    if (o32) {
      this.sysWr(4, o.base + 0x20, this.eip);
      this.sysWr(4, o.base + 0x24, oflags);
      for (let i = 0; i < 8; i++) this.sysWr(4, o.base + 0x28 + i * 4, r[i]);
      for (let i = 0; i < 6; i++) this.sysWr(2, o.base + 0x48 + i * 4, this.segSel[i]);
    } else {
      this.sysWr(2, o.base + 0x0e, this.eip);
      this.sysWr(2, o.base + 0x10, oflags);
      for (let i = 0; i < 8; i++) this.sysWr(2, o.base + 0x12 + i * 2, r[i]);
      for (let i = 0; i < 4; i++) this.sysWr(2, o.base + 0x22 + i * 2, this.segSel[i]);
    }
    let nflags = t[2];
    if (!n32) nflags = (this.getEflags() & 0xffff0000 & ~VM) | (nflags & 0xffff);
    if (src === TaskSwitchSource.Call || src === TaskSwitchSource.Gate) {
      this.sysWr(2, nBase, o.selector); // back link
      nflags |= 0x4000; // NT
    }
    let attr = nAttr;
    if (src !== TaskSwitchSource.Iret) {
      this.dAddr = nAddr;
      this.dHi = this.sysRd(4, nAddr + 4) | 0x200;
      this.sysWr(1, nAddr + 5, (this.dHi >>> 8) & 0xff);
      attr |= 2;
    }
    // Commit: from here on, faults are taken in the new task (SDM 7.3 step 12).
    this.setSys(this.tr, sel, nBase, nLimit, attr);
    this.cr0 |= CR0_TS;
    // CR3 from a 32-bit TSS (SDM 7.3 step 8), through the paging layer; a bad PAE PDPTE is #TS.
    if (n32 && (this.cr0 & CR0_PG) !== 0 && !this.loadCr3(t[0])) this.selFault(TS_V, sel);
    this.eip = t[1];
    for (let i = 0; i < 8; i++) r[i] = n32 ? t[3 + i] : (r[i] & 0xffff0000) | t[3 + i];
    this.setEflags(nflags);
    const v86 = n32 && (nflags & VM) !== 0;
    // Selectors first, unusable until each is qualified (SDM 7.3: faults after the commit
    // point see the new selectors).
    for (let i = 0; i < 6; i++) this.segSet(i, t[11 + i], 0, 0, 0x10000);
    this.setSys(this.ldtr, t[17], 0, 0, 0x10000);
    this.cpl = v86 ? 3 : t[11 + CS] & 3;
    this.code32 = false;
    this.cplChanged();
    this.startEip = this.eip;
    this.startEsp = r[4];
    this.loadTaskLdt(t[17]);
    if (v86) {
      for (let i = 0; i < 6; i++) this.loadSegV86(i, t[11 + i]);
    } else {
      this.loadTaskSeg(CS, t[11 + CS]);
      this.loadTaskSeg(SS, t[11 + SS]);
      for (const i of TASK_DATA_SEGS) this.loadTaskSeg(i, t[11 + i]);
    }
    this.cplChanged();
    this.code32 = (this.segAttrib[CS] & 0x4000) !== 0;
    if (hasErr) {
      const sz = n32 ? 4 : 2;
      this.stackRoom(sz, 1, this.ext);
      this.push(sz, err);
      this.startEsp = r[4];
    }
    if (this.eip > this.segLimit[CS]) this.faultCode(GP, this.ext);
    if (t[18] !== 0) this.taskTrap = true; // taken once the switch is complete (run loop, deliver)
    return false;
  }

  /** Load LDTR or TR in place (no allocation). */
  private setSys(r: SegmentReg, sel: number, base: number, limit: number, attrib: number): void {
    r.selector = sel; r.base = base >>> 0; r.limit = limit >>> 0; r.attrib = attrib;
  }

  /** Set or clear the busy bit (type bit 1) of the TSS descriptor `sel` in the GDT. */
  private setBusy(sel: number, busy: boolean): void {
    const la = (this.gdtrBase + (sel & 0xfff8)) >>> 0;
    if ((sel & 0xfff8) + 7 > this.gdtrLimit) return;
    const b = this.sysRd(1, la + 5);
    this.sysWr(1, la + 5, busy ? b | 2 : b & ~2);
  }

  /** LDTR of the new task (SDM 7.3): #TS(selector) unless null or a present LDT descriptor in the GDT. */
  private loadTaskLdt(sel: number): void {
    if ((sel & 0xfffc) === 0) return;
    if ((sel & 4) !== 0 || !this.readDesc(sel)) this.selFault(TS_V, sel);
    const a = this.descAttrib();
    if ((a & 0x1f) !== 2 || (a & 0x80) === 0) this.selFault(TS_V, sel);
    this.setSys(this.ldtr, sel, this.descBase(), this.descLimit(), a);
  }

  /** A segment register of the new task (SDM 7.3 step 12, table 7-1): #TS on a bad descriptor, #NP/#SS when not present. */
  private loadTaskSeg(i: number, sel: number): void {
    const cpl = this.cpl, rpl = sel & 3;
    if ((sel & 0xfffc) === 0) {
      if (i === CS || i === SS) this.selFault(TS_V, sel);
      this.loadNull(i, sel);
      return;
    }
    if (!this.readDesc(sel)) this.selFault(TS_V, sel);
    const a = this.descAttrib(), dpl = (a >>> 5) & 3;
    if (i === CS) {
      if ((a & 0x18) !== 0x18 || ((a & 4) !== 0 ? dpl > rpl : dpl !== rpl)) this.selFault(TS_V, sel);
      if ((a & 0x80) === 0) this.selFault(NP_V, sel);
    } else if (i === SS) {
      if (rpl !== cpl || dpl !== cpl || (a & 0x1a) !== 0x12) this.selFault(TS_V, sel);
      if ((a & 0x80) === 0) this.selFault(SSV, sel);
    } else {
      if ((a & 0x10) === 0 || (a & 0xa) === 0x8) this.selFault(TS_V, sel);
      if ((a & 0xc) !== 0xc && (rpl > dpl || cpl > dpl)) this.selFault(TS_V, sel);
      if ((a & 0x80) === 0) this.selFault(NP_V, sel);
    }
    this.segFromDesc(i, sel);
  }

  // ---- protected-mode event delivery (SDM 6.10-6.14, 20.3.1.1)

  /**
   * Deliver `vector` through the IDT. `type` decides the EXT bit and the gate-DPL check
   * (INT n, INT3, INTO only). True when a task gate stopped the core for a task-switch exit.
   */
  private vectorProt(vector: number, code: number, hasCode: boolean, type: EventType): boolean {
    const soft = type === EventType.SoftwareInt || type === EventType.SoftwareException;
    this.ext = soft ? 0 : 1;
    try {
      return this.vectorIdt(vector, code, hasCode, soft);
    } finally {
      this.ext = 0;
    }
  }

  private vectorIdt(vector: number, code: number, hasCode: boolean, soft: boolean): boolean {
    const idtErr = vector * 8 + 2 + this.ext;
    if (vector * 8 + 7 > this.idtrLimit) this.faultCode(GP, idtErr);
    const gla = (this.idtrBase + vector * 8) >>> 0;
    const glo = this.sysRd(4, gla), ghi = this.sysRd(4, gla + 4);
    const gtype = (ghi >>> 8) & 0x1f, gdpl = (ghi >>> 13) & 3;
    if (gtype !== 5 && gtype !== 6 && gtype !== 7 && gtype !== 14 && gtype !== 15) this.faultCode(GP, idtErr);
    if (soft && gdpl < this.cpl) this.faultCode(GP, idtErr);
    if ((ghi & 0x8000) === 0) this.faultCode(NP_V, idtErr);
    if (gtype === 5) { // task gate
      const tss = glo >>> 16;
      if ((tss & 4) !== 0 || !this.readDesc(tss)) this.selFault(GP, tss);
      const ta = this.descAttrib();
      if ((ta & 0x1f) !== 1 && (ta & 0x1f) !== 9) this.selFault(GP, tss);
      if ((ta & 0x80) === 0) this.selFault(NP_V, tss);
      if (this.taskSwitch(tss, TaskSwitchSource.Gate, hasCode, code)) return true;
      this.vectored = true;
      return false;
    }
    const g32 = (gtype & 8) !== 0, sz = g32 ? 4 : 2;
    const csSel = glo >>> 16;
    const off = g32 ? ((ghi & 0xffff0000) | (glo & 0xffff)) >>> 0 : glo & 0xffff;
    if ((csSel & 0xfffc) === 0) this.faultCode(GP, this.ext);
    if (!this.readDesc(csSel)) this.selFault(GP, csSel);
    const a = this.descAttrib(), dpl = (a >>> 5) & 3, cpl = this.cpl;
    if ((a & 0x18) !== 0x18 || dpl > cpl) this.selFault(GP, csSel);
    if ((a & 0x80) === 0) this.selFault(NP_V, csSel);
    const v86 = (this.flags & VM) !== 0;
    const inner = (a & 4) === 0 && dpl < cpl;
    if (v86 && (!inner || dpl !== 0)) this.selFault(GP, csSel); // from virtual-8086 mode only to ring 0 (SDM 20.3.1.1)
    if (off > this.descLimit()) this.faultCode(GP, this.ext);
    this.setAccessed();
    const cLo = this.dLo, cHi = this.dHi, cAddr = this.dAddr;
    const fl = this.getEflags(), retCs = this.segSel[CS], retEip = this.eip;
    const newCpl = inner ? dpl : cpl;
    if (inner) { this.tssStack(dpl); this.checkInnerSs(dpl); }
    else this.stackRoom(sz, 3 + (hasCode ? 1 : 0), this.ext);
    this.saveCtx();
    try {
      if (inner) {
        const oldSs = this.segSel[SS], oldEsp = this.regs[4];
        this.flags &= ~VM; // the inner stack is a protected-mode segment
        this.enterInnerStack(dpl);
        this.stackRoom(sz, 5 + (hasCode ? 1 : 0) + (v86 ? 4 : 0), (this.nSs & 0xfffc) | this.ext);
        if (v86) { this.push(sz, this.segSel[GS]); this.push(sz, this.segSel[FS]); this.push(sz, this.segSel[DS]); this.push(sz, this.segSel[ES]); }
        this.push(sz, oldSs);
        this.push(sz, oldEsp);
      }
      this.push(sz, fl);
      this.push(sz, retCs);
      this.push(sz, retEip);
      if (hasCode) this.push(sz, code);
      this.dLo = cLo; this.dHi = cHi; this.dAddr = cAddr;
      this.loadCs(csSel, newCpl);
      this.eip = off;
    } catch (x) { this.restoreCtx(); throw x; }
    // SDM 6.12.1: TF, VM, RF and NT clear; an interrupt gate also clears IF.
    this.setEflags(fl & ~(TF | VM | RF | 0x4000 | ((gtype & 1) === 0 ? IF : 0)));
    if (v86) { this.loadNull(ES, 0); this.loadNull(DS, 0); this.loadNull(FS, 0); this.loadNull(GS, 0); }
    this.vectored = true;
    return false;
  }

  // ---- I/O permission (SDM 19.5, 20.2.8)

  /** IN/OUT/INS/OUTS at CPL > IOPL, or in virtual-8086 mode: #GP(0) unless the TSS I/O bitmap allows every byte. */
  private ioPermCheck(port: number, size: number): void {
    if ((this.cr0 & CR0_PE) === 0) return;
    if ((this.flags & VM) === 0 && this.cpl <= this.iopl) return;
    const t = this.tr;
    // Only a 32-bit TSS has the bitmap (its base at offset 66h); the bitmap may end at the TSS limit.
    if ((t.attrib & 0x1f) !== 0x0b && (t.attrib & 0x1f) !== 0x09) this.faultCode(GP, 0);
    if (t.limit < 0x67) this.faultCode(GP, 0);
    const at = this.sysRd(2, t.base + 0x66) + (port >>> 3);
    if (at + 1 > t.limit) this.faultCode(GP, 0);
    const bits = this.sysRd(2, t.base + at);
    if (((bits >>> (port & 7)) & ((1 << size) - 1)) !== 0) this.faultCode(GP, 0);
  }

  /** CPL-0-only instructions (HLT, LGDT, MOV CR ...): #GP(0) at CPL > 0, virtual-8086 mode included. */
  private needCpl0(): void {
    if (this.cpl !== 0) this.faultCode(GP, 0);
  }

  // ---- system instructions

  /** Group 6 (0F 00): SLDT, STR, LLDT, LTR, VERR, VERW (SDM Vol. 2); #UD in real and virtual-8086 mode. */
  private grp6(): void {
    if (!this.pm) this.fault(UD);
    this.decodeModrm();
    const reg = this.reg;
    switch (reg) {
      case 0: case 1: { // SLDT, STR: a register destination with a 32-bit operand is zero-extended
        if (this.descExit(reg === 0 ? DescInsn.Sldt : DescInsn.Str)) return;
        const v = reg === 0 ? this.ldtr.selector : this.tr.selector;
        if (this.mod === 3) this.setReg(this.osz, this.rm, v); else this.wr16(this.eaSeg, this.eaOff, v);
        return;
      }
      case 2: case 3: {
        this.needCpl0();
        if (this.descExit(reg === 2 ? DescInsn.Lldt : DescInsn.Ltr)) return;
        const sel = this.readRM(2);
        if (reg === 2) this.lldt(sel); else this.ltr(sel);
        return;
      }
      case 4: case 5: this.verrw(this.readRM(2), reg === 5); return;
      default: this.fault(UD);
    }
  }

  /** LLDT (SDM Vol. 2): null makes LDTR unusable; else a present LDT descriptor in the GDT. */
  private lldt(sel: number): void {
    if ((sel & 0xfffc) === 0) { this.setSys(this.ldtr, sel, 0, 0, 0x10000); return; }
    if ((sel & 4) !== 0 || !this.readDesc(sel)) this.selFault(GP, sel);
    const a = this.descAttrib();
    if ((a & 0x1f) !== 2) this.selFault(GP, sel);
    if ((a & 0x80) === 0) this.selFault(NP_V, sel);
    this.setSys(this.ldtr, sel, this.descBase(), this.descLimit(), a);
  }

  /** LTR (SDM Vol. 2): an available TSS in the GDT, marked busy. */
  private ltr(sel: number): void {
    if ((sel & 0xfffc) === 0) this.faultCode(GP, 0);
    if ((sel & 4) !== 0 || !this.readDesc(sel)) this.selFault(GP, sel);
    const a = this.descAttrib();
    if ((a & 0x1f) !== 1 && (a & 0x1f) !== 9) this.selFault(GP, sel);
    if ((a & 0x80) === 0) this.selFault(NP_V, sel);
    this.dHi |= 0x200;
    this.sysWr(1, this.dAddr + 5, (this.dHi >>> 8) & 0xff);
    this.setSys(this.tr, sel, this.descBase(), this.descLimit(), a | 2);
  }

  /**
   * Whether `sel` names a descriptor visible at the current CPL for LAR/LSL/VERR/VERW
   * (SDM Vol. 2): not null, inside its table, DPL >= CPL and >= RPL unless conforming code.
   */
  private descVisible(sel: number): boolean {
    if ((sel & 0xfffc) === 0 || !this.readDesc(sel)) return false;
    const a = this.descAttrib(), dpl = (a >>> 5) & 3;
    if ((a & 0x1c) === 0x1c) return true; // conforming code
    return dpl >= this.cpl && dpl >= (sel & 3);
  }

  /** VERR/VERW: ZF = the segment is readable / writable at the current CPL. */
  private verrw(sel: number, write: boolean): void {
    let ok = this.descVisible(sel);
    if (ok) {
      const a = this.descAttrib();
      if ((a & 0x10) === 0) ok = false;
      else if (write) ok = (a & 0xa) === 0x2; // writable data
      else ok = (a & 0xa) !== 0x8; // data, or readable code
    }
    this.setFlags(ZF, ok ? ZF : 0);
  }

  /** LAR (0F 02) / LSL (0F 03) (SDM Vol. 2): ZF=1 and the rights or the limit when the descriptor qualifies. */
  private larLsl(lsl: boolean): void {
    if (!this.pm) this.fault(UD);
    this.decodeModrm();
    const sel = this.readRM(2);
    let ok = this.descVisible(sel);
    if (ok) {
      const a = this.descAttrib();
      if ((a & 0x10) === 0) {
        // System types: TSS and LDT for both; call and task gates for LAR only.
        const t = a & 0xf;
        ok = t === 1 || t === 2 || t === 3 || t === 9 || t === 11 || (!lsl && (t === 4 || t === 5 || t === 12));
      }
    }
    if (!ok) { this.setFlags(ZF, 0); return; }
    const osz = this.osz;
    const v = lsl ? this.descLimit() : this.dHi & (osz === 4 ? 0x00f0ff00 : 0xff00); // bits 19:16 undefined (SDM); QEMU's 0
    this.setReg(osz, this.reg, v);
    this.setFlags(ZF, ZF);
  }

  /** ARPL r/m16, r16 (63): #UD outside protected mode. */
  private arpl(): void {
    if (!this.pm) this.fault(UD);
    this.decodeModrm();
    const d = this.readRM(2), s = this.getReg(2, this.reg);
    if ((d & 3) < (s & 3)) { this.writeRM(2, (d & ~3) | (s & 3)); this.setFlags(ZF, ZF); }
    else this.setFlags(ZF, 0);
  }

  // ---------------------------------------------------------------- intercepts

  private ioIntercepted(port: number, size: number): boolean {
    const ic = this.intercepts;
    if (ic.ioAll) return true;
    const bm = ic.ioBitmap;
    if (bm === null) return false;
    for (let p = port; p < port + size; p++) {
      if (p > 0xffff) return true; // wraps past the bitmap: VMX treats as exiting (SDM 26.1.3)
      if (bm[p >> 3] & (1 << (p & 7))) return true;
    }
    return false;
  }

  /** Stop before the current instruction: state unchanged, EIP at its first prefix. */
  private stopHere(reason: CpuExitReason): void {
    this.exit.reason = reason;
    this.exit.instrLen = this.ilen;
    this.eip = this.startEip;
    // The instruction did not execute, so an STI / MOV SS shadow over it still holds
    // (SDM 6.8.3): `sti; out` exiting at the OUT must report blocking by STI.
    this.interruptibility = (this.interruptibility & ~SHADOW_BITS) | this.shadow;
    this.stop = reason;
  }

  /** Stop before an instruction whose InsnIntercept bit is set; false (execute it) otherwise. */
  private insnExit(bit: InsnIntercept): boolean {
    if ((this.intercepts.insn & bit) === 0) return false;
    this.exit.insn = bit;
    this.stopHere(CpuExitReason.Instruction);
    return true;
  }

  /** An SVM instruction other than VMMCALL (0F 01 D8+rm), when InsnIntercept.SvmInsn is set. */
  private svmInsnExit(rm: number): boolean {
    if ((this.intercepts.insn & InsnIntercept.SvmInsn) === 0) return false;
    this.exit.svmInsn = rm;
    return this.insnExit(InsnIntercept.SvmInsn);
  }

  /**
   * A VMX instruction other than VMCALL (SDM Vol. 3C 31.3 pseudo-code): a register
   * operand where memory is required, or CR0.PE = 0, is #UD before the VM exit
   * (SDM 26.1.1); without the intercept (no VMX non-root operation) it is #UD too.
   * ModR/M forms must have been decoded (`modrm`) by the caller.
   */
  private vmxInsnExit(kind: VmxInsn, modrm: boolean, memOnly: boolean): void {
    if (modrm && memOnly && this.mod === 3) this.fault(UD);
    if ((this.cr0 & CR0_PE) === 0 || (this.intercepts.insn & InsnIntercept.VmxInsn) === 0) this.fault(UD);
    const e = this.exit;
    e.vmxInsn = kind;
    e.insnMem = modrm && this.mod !== 3;
    e.insnReg = modrm ? this.reg : 0;
    e.insnRm = modrm ? this.rm : 0;
    e.insnAddrSize = this.asz;
    e.insnSeg = this.eaSeg;
    e.insnOffset = e.insnMem ? this.eaOff : 0;
    this.insnOperandPlan(e);
    e.linear = e.insnMem ? this.lin(this.eaSeg, this.eaOff) : 0;
    e.insn = InsnIntercept.VmxInsn;
    this.stopHere(CpuExitReason.Instruction);
  }

  /** The memory operand's base/index/scale/displacement and the operand size, for the VMX instruction information (SDM 28.2.5). */
  private insnOperandPlan(e: CpuExit): void {
    const mem = e.insnMem;
    e.insnBase = mem ? this.eaBase : NO_REG; e.insnIndex = mem ? this.eaIndex : NO_REG;
    e.insnScale = mem ? this.eaScale : 0; e.insnDisp = mem ? this.eaDisp : 0;
    e.insnOpSize = this.osz;
  }

  /** Stop with CrAccess (SDM 26.1.3); the caller has decided that the access exits. */
  private crExit(cr: number, type: CrAccessType, gpr: number): void {
    const e = this.exit;
    e.crNumber = cr; e.crAccessType = type; e.crGpr = gpr; e.crSelective = false;
    this.stopHere(CpuExitReason.CrAccess);
  }

  /**
   * A descriptor-table instruction whose bit is set in descExitMask: stop with its operand
   * described as for the VMX instruction-information field (SDM 28.2.5, tables 28-10/28-11).
   * Callers have done the #UD and CPL checks, which have priority (SDM 26.1.1). ModR/M decoded.
   */
  private descExit(which: DescInsn): boolean {
    if ((this.intercepts.descExitMask & (1 << which)) === 0) return false;
    const e = this.exit;
    e.descInsn = which;
    e.insnMem = this.mod !== 3;
    e.insnReg = this.reg; e.insnRm = this.rm;
    e.insnAddrSize = this.asz; e.insnSeg = this.eaSeg;
    e.insnOffset = e.insnMem ? this.eaOff : 0;
    this.insnOperandPlan(e);
    e.linear = e.insnMem ? this.lin(this.eaSeg, this.eaOff) : 0;
    e.insn = InsnIntercept.DescTable;
    this.stopHere(CpuExitReason.Instruction);
    return true;
  }

  /**
   * MONITOR (0F 01 C8) / MWAIT (C9), SDM Vol. 2: ECX holds extensions (none supported:
   * #GP(0) unless 0; MWAIT allows bit 0, interrupt break-event). The monitored range is
   * DS:EAX (segment override honoured); MWAIT returns at once, which the SDM allows (the
   * optimized state may be left for any reason). Not advertised in CPUID.
   */
  private monitorMwait(isMwait: boolean): void {
    const ecx = this.regs[1];
    if (isMwait) {
      if (this.insnExit(InsnIntercept.Mwait)) return;
      if (ecx > 1) this.faultCode(GP, 0);
      return;
    }
    const seg = this.segOv >= 0 ? this.segOv : DS;
    const off = this.asz === 2 ? this.regs[0] & 0xffff : this.regs[0];
    if ((this.intercepts.insn & InsnIntercept.Monitor) !== 0) this.exit.linear = this.lin(seg, off);
    if (this.insnExit(InsnIntercept.Monitor)) return;
    if (ecx !== 0) this.faultCode(GP, 0);
    this.rd8(seg, off); // the address is checked as a read (SDM Vol. 2 MONITOR)
  }

  /**
   * XGETBV (0F 01 D0) / XSETBV (D1), SDM Vol. 2: #UD without CR4.OSXSAVE. XGETBV runs at
   * any CPL; ECX must be 0 (ECX = 1, XINUSE, needs CPUID.(EAX=0DH,ECX=1):EAX[2]), else #GP(0).
   * XSETBV: #UD, then #GP(0) at CPL > 0, then the intercept (SDM 26.1.1 and APM 15.9: #UD
   * and privilege faults come before the VM exit, operand checks after), then #GP(0) for
   * ECX != 0 (XCR0 is the only XCR), bit 0 clear, or a bit outside XCR0_SUPPORTED.
   */
  private xgetsetbv(set: boolean): void {
    if ((this.cr4 & CR4_OSXSAVE) === 0) this.fault(UD);
    const r = this.regs;
    if (!set) {
      if (r[1] !== 0) this.faultCode(GP, 0);
      r[0] = this.xcr0; r[2] = 0;
      return;
    }
    if (this.cpl !== 0) this.faultCode(GP, 0);
    if (this.insnExit(InsnIntercept.Xsetbv)) return;
    if (r[1] !== 0 || r[2] !== 0 || (r[0] & ~XCR0_SUPPORTED) !== 0 || (r[0] & 1) === 0) this.faultCode(GP, 0);
    this.xcr0 = r[0] >>> 0;
  }

  /**
   * XSAVE (0F AE /4) / XRSTOR (/5), standard form, for the one component XCR0 can enable,
   * x87 (SDM Vol. 1 13.7, 13.8; Vol. 2 XSAVE, XRSTOR). #UD without CR4.OSXSAVE, #NM with
   * CR0.TS (EM does not matter), #GP(0) unless 64-byte aligned, then limits for the 576-byte
   * area. RFBM = XCR0 AND EDX:EAX. The x87 part of the legacy region is what FXSAVE writes
   * (fpu.ts); MXCSR (bytes 24-31) belongs to SSE/AVX and is not touched. XSAVE writes only
   * XSTATE_BV bits in RFBM; XINUSE[0] is reported as 1 (13.6 lets a component in its initial
   * configuration be reported in use). XRSTOR: #GP(0) when XSTATE_BV sets a bit outside XCR0
   * or bytes 23:8 of the header (XCOMP_BV included) are not 0, checked before any state
   * changes; x87 in RFBM is loaded when XSTATE_BV[0] = 1, else initialised.
   */
  private xsaveRstor(restore: boolean): void {
    if ((this.cr4 & CR4_OSXSAVE) === 0) this.fault(UD);
    if ((this.cr0 & CR0_TS) !== 0) this.fault(NM);
    if ((this.lin(this.eaSeg, this.eaOff) & 63) !== 0) this.faultCode(GP, 0);
    const h = this.fpuHost;
    h.checkOperand(XSAVE_AREA_SIZE);
    const rfbm = this.xcr0 & this.regs[0] & XCR0_SUPPORTED; // no component above bit 31: EDX does not matter
    if (!restore) {
      if ((rfbm & 1) === 0) return;
      this.fpu.fxsave(h);
      h.write(512, 1, h.read(512, 1) | 1);
      return;
    }
    const bv = h.read(512, 4);
    if ((bv & ~this.xcr0) !== 0 || h.read(516, 4) !== 0) this.faultCode(GP, 0);
    for (let o = 520; o < 536; o += 4) if (h.read(o, 4) !== 0) this.faultCode(GP, 0);
    if ((rfbm & 1) === 0) return;
    if ((bv & 1) !== 0) this.fpu.fxrstor(h); else this.fpu.initComponent();
  }

  /**
   * RDTSCP (0F 01 F9): EDX:EAX = TSC, ECX = IA32_TSC_AUX. #UD unless `rdtscpEnabled` (the
   * engine clears it under VMX when "enable RDTSCP" is 0, SDM 25.6.2) and the TSD #GP come
   * before the intercept (VMX RDTSC exiting with "enable RDTSCP", SVM RDTSCP).
   */
  private rdtscp(): void {
    if (!this.rdtscpEnabled) this.fault(UD);
    // CR4.TSD: #GP(0) at CPL > 0, before the VM exit (SDM 26.1.1, Vol. 2 RDTSCP).
    if ((this.cr4 & CR4_TSD) !== 0 && this.cpl !== 0) this.faultCode(GP, 0);
    if (this.insnExit(InsnIntercept.Rdtscp)) return;
    this.rdtsc();
    this.regs[1] = this.tscAux;
  }

  /** CR0 as the guest reads it (MOV from CR0, SMSW): shadow bits where the guest/host mask is set (SDM 26.3). */
  private readCr0(): number {
    const ic = this.intercepts;
    return ((this.cr0 & ~ic.cr0Mask) | (ic.cr0Shadow & ic.cr0Mask)) >>> 0;
  }

  private ioExit(port: number, size: number, isIn: boolean, str: boolean, imm: boolean): boolean {
    this.ioPermCheck(port, size); // the IOPL/bitmap #GP comes before the I/O exit (SDM 26.1.1)
    if (!this.ioIntercepted(port, size)) return false;
    const e = this.exit;
    e.ioPort = port; e.ioSize = size as AccessSize; e.ioIn = isIn; e.ioString = str;
    e.ioRep = str && this.rep !== 0; e.ioImm = imm; e.ioAddrSize = this.asz;
    e.ioSeg = this.segOv >= 0 ? this.segOv : DS;
    this.stopHere(CpuExitReason.Io);
    return true;
  }

  private softIntExit(vector: number, kind: SoftIntKind): boolean {
    const bm = this.intercepts.softIntBitmap;
    if (bm === null || !(bm[vector >> 3] & (1 << (vector & 7)))) return false;
    this.exit.vector = vector;
    this.exit.softIntKind = kind;
    this.exit.hasErrorCode = false;
    this.stopHere(CpuExitReason.SoftInt);
    return true;
  }

  private portIn(port: number, size: number): number {
    return this.io.in(port, size as AccessSize) >>> 0 & MASK[size];
  }

  // ---------------------------------------------------------------- events

  interruptible(): boolean {
    return (this.flags & IF) !== 0 && (this.interruptibility & (Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs)) === 0
      && this.activity !== Activity.Shutdown;
  }

  deliverEvent(type: EventType, vector: number, errorCode: number, hasErrorCode: boolean): void {
    if (this.activity === Activity.Shutdown) return;
    this.syncMem();
    this.mmu.checkA20();
    this.cplChanged();
    this.pfPending = false; // an injected #PF does not load CR2 (the monitor sets it)
    // Any delivered event leaves the HLT state (SDM 27.6: injection into a halted guest).
    if (this.activity === Activity.Hlt) this.activity = Activity.Active;
    if (type === EventType.ExtInt || type === EventType.Nmi) {
      this.interruptibility &= ~(Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs);
    }
    this.stop = CpuExitReason.None;
    this.exit.reason = CpuExitReason.None;
    // An injected event is delivered even if its vector is in the exception bitmap (SDM 27.6.1);
    // faults while delivering it are checked against the bitmap as usual.
    this.deliver(vector & 0xff, errorCode, hasErrorCode, type, 0, false);
    // SDM 6.7.1: delivering an NMI blocks further NMIs until the next IRET.
    if (type === EventType.Nmi && this.stop === CpuExitReason.None) this.interruptibility |= Interruptibility.BlockingByNmi;
  }

  /**
   * Deliver an event (SDM 6.12; through the IVT in real mode, SDM 20.1.4). A fault while
   * delivering it combines per SDM 6.15 table 6-5: benign then anything, or contributory
   * then #PF, is handled serially; contributory then contributory, or #PF then
   * contributory/#PF, gives #DF; a contributory or #PF fault while delivering #DF shuts
   * down (triple fault). Exceptions in exceptionBitmap exit instead; an exit or a MemAbort
   * while delivering records the interrupted event as IDT-vectoring information (SDM
   * 27.2.4). `insnLen` > 0: a software event raised by the instruction at startEip; an
   * exit during its delivery reports that length (SDM 27.2.5) and leaves EIP on it.
   */
  private deliver(vector: number, code: number, hasCode: boolean, type: EventType, insnLen: number, checkBitmap = true): void {
    const e = this.exit;
    e.vectoringValid = false;
    let nested = false; // delivering a fault raised while delivering the event in e.vectoring*
    // RF for the pushed EFLAGS image of a fault (SDM 17.3.1.1); the live RF is restored if the event is not delivered.
    let rfImg = this.faultRf;
    const rf0 = this.flags & RF;
    this.faultRf = false;
    for (;;) {
      if (checkBitmap && type === EventType.HardwareException && vector < 32 && (this.intercepts.exceptionBitmap & (1 << vector)) !== 0) {
        e.vector = vector; e.errorCode = code; e.hasErrorCode = hasCode;
        // An intercepted #DB leaves DR6 alone (SDM 27.1: the exit qualification has the bits), or
        // updates it first with dbExitSetsDr6 (APM 15.12).
        e.dbBits = vector === DB ? this.dbBits : 0;
        if (e.dbBits !== 0 && this.intercepts.dbExitSetsDr6 !== true) this.dr6 = this.dr6Prev;
        this.dbBits = 0;
        // An intercepted #PF leaves CR2 alone; the exit qualification has the address (SDM 27.1, 28.2.1).
        if (vector === PF_V && this.pfPending) { e.linear = this.pfLa; this.pfPending = false; }
        if (!nested) e.instrLen = 0;
        e.vectoringValid = nested;
        e.reason = CpuExitReason.Exception;
        this.stop = CpuExitReason.Exception;
        return;
      }
      try {
        this.dbBits = 0; // DR6 keeps the bits of an event delivered to the guest
        // A #PF the core raised loads CR2 as it is delivered (SDM 6.15 interrupt 14); an injected one does not.
        if (vector === PF_V && this.pfPending && type === EventType.HardwareException) { this.cr2 = this.pfLa; this.pfPending = false; }
        if (rfImg) this.flags |= RF; // delivery clears the live RF after taking the image
        if ((this.cr0 & CR0_PE) === 0) this.vectorReal(vector);
        else if (this.vectorProt(vector, code, hasCode, type)) {
          this.flags = (this.flags & ~RF) | rf0;
          // A task gate stopped the core for a task-switch exit (SDM 27.2.4): this event is
          // the IDT-vectoring information; INT n through the gate reports its length.
          e.vectoringType = type; e.vectoringVector = vector;
          e.vectoringErrorCode = code; e.vectoringHasErrorCode = hasCode;
          e.vectoringValid = true;
          if (insnLen > 0 && !nested) { e.instrLen = insnLen; this.eip = this.startEip; } else if (!nested) e.instrLen = 0;
          return;
        }
        e.vectoringValid = false;
        if (this.taskTrap && this.stop === CpuExitReason.None) this.taskSwitchTrap();
        return;
      } catch (x) {
        if (x !== FAULT && x !== MEM_ABORT) throw x;
        this.flags = (this.flags & ~RF) | rf0;
        // The event being delivered is what an exit from here on interrupts.
        e.vectoringType = type; e.vectoringVector = vector;
        e.vectoringErrorCode = code; e.vectoringHasErrorCode = hasCode;
        // A fault or exit while delivering INT n/INT3/INTO/INT1 reports that instruction (SDM 27.2.5, 6.5).
        if (insnLen > 0 && !nested) { e.instrLen = insnLen; this.eip = this.startEip; }
        if (x === MEM_ABORT) {
          e.vectoringValid = true;
          e.reason = CpuExitReason.MemAbort;
          this.stop = CpuExitReason.MemAbort;
          return;
        }
        const first = type === EventType.HardwareException ? faultClass(vector) : BENIGN;
        const second = faultClass(this.fVec);
        if (first === DOUBLE && second !== BENIGN) {
          e.vectoringValid = false;
          this.activity = Activity.Shutdown;
          e.reason = CpuExitReason.TripleFault;
          this.stop = CpuExitReason.TripleFault;
          return;
        }
        if ((first === CONTRIBUTORY && second === CONTRIBUTORY) || (first === PAGE_FAULT && second !== BENIGN)) {
          vector = DF_V; code = 0; hasCode = true;
        } else {
          vector = this.fVec; code = this.fCode; hasCode = this.fHasCode;
        }
        if (!nested) { nested = true; } else insnLen = 0;
        rfImg = vector !== DF_V; // a fault raised by the delivery; #DF is an abort (SDM 6.15)
        type = EventType.HardwareException;
        checkBitmap = true;
      }
    }
  }

  private vectorReal(vector: number): void {
    const ivt = vector * 4;
    if (ivt + 3 > this.idtrLimit) this.faultCode(GP, vector * 8 + 2);
    const pa = (this.idtrBase + ivt) >>> 0;
    const ip = this.slowRead(2, (pa & this.a20Mask) >>> 0);
    const cs = this.slowRead(2, ((pa + 2) & this.a20Mask) >>> 0);
    const fl = this.getEflags();
    const sp0 = this.regs[4];
    try {
      this.osz = 2;
      this.push(2, fl);
      this.push(2, this.segSel[CS]);
      this.push(2, this.eip);
    } catch (x) {
      this.regs[4] = sp0;
      throw x;
    }
    this.flags = fl & ~(IF | TF | AC | RF);
    this.lzMask = 0;
    this.vectored = true;
    this.loadSegReal(CS, cs);
    this.eip = ip;
  }

  // ---------------------------------------------------------------- run loop

  /** Pick up the memory's direct window; `mem` is public and the window may change between runs. */
  private syncMem(): void {
    const ram = this.mem.ram;
    this.ram = ram === undefined ? NO_RAM : ram;
    this.ramLen = this.ram.length;
    const blocks = (this.ramLen >>> CODE_SHIFT) + 1;
    if (this.codeBlk.length !== blocks) {
      this.codeBlk = new Uint8Array(blocks);
      this.codeVer = new Uint32Array(blocks);
      this.flushCodeCache();
    }
  }

  // ---------------------------------------------------------------- decoded-instruction cache
  //
  // Who invalidates: this core's own writes check codeBlk (wr8/16/32); a write
  // outside the RAM window drops everything (slowWrite); run() drops everything
  // on entry, which covers the monitor, DMA and other cores writing RAM between
  // runs. Anything that writes guest RAM *during* a run (an IoPorts or MMIO
  // handler writing through another path) must call invalidateCode().

  /** Drop every decoded instruction (O(1): entries from older generations never match). */
  flushCodeCache(): void {
    this.genTag = (this.genTag + 2) | 0;
    this.codeEpoch = (this.codeEpoch + 1) | 0;
    if (this.genTag === 0) { // wrapped: stale tags could match again
      for (const d of this.icache) if (d !== undefined) d.pa = -1;
      for (const b of this.blocks) if (b !== undefined) b.pa = -1;
    }
  }

  /** Guest-physical bytes [pa, pa+len) changed behind this core: drop decoded instructions that cover them. */
  invalidateCode(pa: number, len: number): void {
    pa >>>= 0;
    if (len <= 0 || pa >= this.ramLen) return;
    const end = Math.min(pa + len, this.ramLen);
    if (end - pa > 1 << ICACHE_BITS) { this.flushCodeCache(); return; }
    for (let b = pa >>> CODE_SHIFT; b <= (end - 1) >>> CODE_SHIFT; b++) {
      if (this.codeBlk[b] !== 0) this.codeWritten(b * CODE_BLOCK, 1);
    }
  }

  /** A write hit a code block: drop the entries that start in it or run into it (up to 14 bytes before). */
  private codeWritten(pa: number, size: number): void {
    const first = pa >>> CODE_SHIFT, last = (pa + size - 1) >>> CODE_SHIFT;
    const ic = this.icache;
    for (let b = first; b <= last; b++) {
      if (this.codeBlk[b] === 0) continue;
      this.codeBlk[b] = 0;
      this.codeVer[b]++;
      this.codeEpoch = (this.codeEpoch + 1) | 0;
      const end = (b + 1) * CODE_BLOCK; // products, not shifts: RAM may reach past 2 GiB
      for (let a = Math.max(0, b * CODE_BLOCK - 14); a < end; a++) {
        const d = ic[a & ICACHE_MASK];
        if (d !== undefined && d.pa === a) d.pa = -1;
      }
    }
  }

  /** Decode the instruction at CS:ip (physical `pa`) into its cache slot. */
  private decodeAt(pa: number, ip: number): DecodedInsn {
    const ramLen = this.ramLen;
    if (pa >= ramLen) return EXEC_INSN;
    const code32 = (this.segAttrib[CS] & 0x4000) !== 0;
    // Only bytes the interpreter would fetch contiguously: inside the CS limit, no 64 KiB
    // IP wrap, no A20 wrap, inside the window, at most 15 (SDM 2.3.11).
    let avail = Math.min(15, ramLen - pa, this.segLimit[CS] - ip + 1);
    if (!code32) avail = Math.min(avail, 0x10000 - ip);
    if (this.a20Mask !== 0xffffffff) avail = Math.min(avail, 0x100000 - (pa & 0xfffff));
    if (this.pgOn) avail = Math.min(avail, 0x1000 - (pa & 0xfff)); // the next page may map anywhere
    const slot = pa & ICACHE_MASK;
    let d = this.icache[slot];
    if (d === undefined) { d = new DecodedInsn(); this.icache[slot] = d; }
    decodeInsn(d, this.ram, pa, avail, code32);
    d.pa = pa;
    d.gtag = this.genTag | (code32 ? 1 : 0);
    if (d.kind !== Kind.Exec) { // Exec entries read memory afresh each time: nothing to invalidate
      const cb = this.codeBlk;
      for (let b = pa >>> CODE_SHIFT; b <= (pa + d.len - 1) >>> CODE_SHIFT; b++) cb[b] = 1;
    }
    return d;
  }

  /**
   * Compile the block starting at CS:ip (physical `pa`): consecutive decoded instructions
   * up to the first control transfer (compiler.ts). False when not even one qualifies.
   */
  private compileAt(pa: number, ip: number, ipMax: number): boolean {
    const csBase = this.segBase[CS], a20 = this.a20Mask, code32 = (this.segAttrib[CS] & 0x4000) !== 0;
    const insns = this.blkInsns;
    const ips: number[] = [];
    insns.length = 0;
    let p = pa, i = ip;
    while (insns.length < MAX_INSNS) {
      const d = this.decodeAt(p, i);
      if (d.kind === Kind.Exec || i + d.len - 1 > ipMax || p + d.len - pa > MAX_BYTES) break;
      insns.push(d); ips.push(i);
      const ni = code32 ? (i + d.len) >>> 0 : i + d.len;
      // With paging a block stays inside its page: its start address is all the run loop checks.
      const np = this.pgOn ? ((p + d.len) >>> 12 === pa >>> 12 ? p + d.len : -1) : ((csBase + ni) & a20) >>> 0;
      if (endsBlock(d.kind) || (!code32 && ni > 0xffff) || np !== p + d.len) break;
      p = np; i = ni;
    }
    if (insns.length === 0) return false;
    const last = insns[insns.length - 1], end = pa + (ips[ips.length - 1] - ip) + last.len;
    const b = new CompiledBlock();
    this.blocksCompiled++;
    b.fn = compileBlock(insns, ips);
    b.ip = ip; b.csBase = csBase; b.code32 = code32 ? 1 : 0; b.a20 = a20;
    b.count = insns.length;
    b.lastIp = ips[ips.length - 1] + last.len - 1;
    b.ips.push(...ips);
    b.bytes = this.ram.slice(pa, end);
    b.cb0 = pa >>> CODE_SHIFT; b.cb1 = (end - 1) >>> CODE_SHIFT;
    b.pa = pa;
    insns.length = 0;
    this.blocks[pa & ICACHE_MASK] = b;
    return this.revalidate(b);
  }

  /** A compiled block whose cache generation or code map changed: keep it if its bytes did not. */
  private revalidate(b: CompiledBlock): boolean {
    if (!b.bytesMatch(this.ram)) { b.pa = -1; return false; }
    const cb = this.codeBlk;
    cb[b.cb0] = 1; cb[b.cb1] = 1;
    b.v0 = this.codeVer[b.cb0]; b.v1 = this.codeVer[b.cb1];
    b.gtag = this.genTag;
    return true;
  }

  /** Offset of a decoded memory operand (the plan decodeModrm computes while fetching). */
  private eaOf(d: DecodedInsn): number {
    const r = this.regs;
    let off = d.disp;
    if (d.base !== NO_REG) off += r[d.base];
    if (d.index !== NO_REG) off += (r[d.index] << d.scale) >>> 0;
    return d.asz === 2 ? off & 0xffff : off >>> 0;
  }

  /**
   * Execute one decoded instruction (decoder.ts Kind), with exactly the semantics of
   * the same opcode in exec(): the same helpers, in the same order. No fetch can fault
   * here: run() only takes this path when every byte lies inside the CS limit.
   */
  private execDecoded(d: DecodedInsn): void {
    const r = this.regs;
    const next = this.eip + d.len;
    this.eip = d.code32 ? next >>> 0 : next & 0xffff;
    const size = d.size;
    switch (d.kind) {
      case Kind.AluEG: {
        const aop = d.sub;
        if (d.mod === 3) {
          if (size === 2) { // 16-bit register forms inline (getReg/setReg do not fit V8's inlining budget here)
            const rm = d.rm, res = this.alu(aop, 2, r[rm] & 0xffff, r[d.reg] & 0xffff);
            if (aop !== 7) r[rm] = (r[rm] & 0xffff0000) | res;
            return;
          }
          const res = this.alu(aop, size, this.getReg(size, d.rm), this.getReg(size, d.reg));
          if (aop !== 7) this.setReg(size, d.rm, res);
        } else {
          const seg = d.seg, off = this.eaOf(d);
          const v = this.rd(size, seg, off);
          if (aop !== 7) this.wrProbe(size, seg, off);
          const res = this.alu(aop, size, v, this.getReg(size, d.reg));
          if (aop !== 7) this.wr(size, seg, off, res);
        }
        return;
      }
      case Kind.AluGE: {
        if (size === 2 && d.mod === 3) {
          const rg = d.reg, res = this.alu(d.sub, 2, r[rg] & 0xffff, r[d.rm] & 0xffff);
          if (d.sub !== 7) r[rg] = (r[rg] & 0xffff0000) | res;
          return;
        }
        const s = d.mod === 3 ? this.getReg(size, d.rm) : this.rd(size, d.seg, this.eaOf(d));
        const res = this.alu(d.sub, size, this.getReg(size, d.reg), s);
        if (d.sub !== 7) this.setReg(size, d.reg, res);
        return;
      }
      case Kind.AluAI: {
        const res = this.alu(d.sub, size, this.getReg(size, 0), d.imm);
        if (d.sub !== 7) this.setReg(size, 0, res);
        return;
      }
      case Kind.Grp1: {
        const aop = d.sub;
        if (d.mod === 3) {
          const res = this.alu(aop, size, this.getReg(size, d.rm), d.imm);
          if (aop !== 7) this.setReg(size, d.rm, res);
        } else {
          const seg = d.seg, off = this.eaOf(d);
          const v = this.rd(size, seg, off);
          if (aop !== 7) this.wrProbe(size, seg, off);
          const res = this.alu(aop, size, v, d.imm);
          if (aop !== 7) this.wr(size, seg, off, res);
        }
        return;
      }
      case Kind.TestEG: {
        const v = d.mod === 3 ? this.getReg(size, d.rm) : this.rd(size, d.seg, this.eaOf(d));
        this.alu(4, size, v, this.getReg(size, d.reg));
        return;
      }
      case Kind.TestAI: this.alu(4, size, this.getReg(size, 0), d.imm); return;
      case Kind.MovEG:
        if (size === 2) {
          if (d.mod === 3) r[d.rm] = (r[d.rm] & 0xffff0000) | (r[d.reg] & 0xffff);
          else this.wr16(d.seg, this.eaOf(d), r[d.reg] & 0xffff);
        } else if (d.mod === 3) this.setReg(size, d.rm, this.getReg(size, d.reg));
        else this.wr(size, d.seg, this.eaOf(d), this.getReg(size, d.reg));
        return;
      case Kind.MovGE:
        if (size === 2) {
          const v = d.mod === 3 ? r[d.rm] & 0xffff : this.rd16(d.seg, this.eaOf(d));
          r[d.reg] = (r[d.reg] & 0xffff0000) | v;
        } else this.setReg(size, d.reg, d.mod === 3 ? this.getReg(size, d.rm) : this.rd(size, d.seg, this.eaOf(d)));
        return;
      case Kind.MovRI:
        if (size === 2) r[d.reg] = (r[d.reg] & 0xffff0000) | d.imm;
        else this.setReg(size, d.reg, d.imm);
        return;
      case Kind.MovEI:
        if (d.mod === 3) this.setReg(size, d.rm, d.imm);
        else this.wr(size, d.seg, this.eaOf(d), d.imm);
        return;
      case Kind.Lea: this.setReg(size, d.reg, this.eaOf(d)); return;
      case Kind.IncR: case Kind.DecR: {
        const rg = d.reg, dec = d.kind === Kind.DecR;
        if (size === 2) r[rg] = (r[rg] & 0xffff0000) | this.incdec(2, r[rg] & 0xffff, dec);
        else this.setReg(size, rg, this.incdec(size, this.getReg(size, rg), dec));
        return;
      }
      case Kind.IncDecE:
        if (d.mod === 3) this.setReg(size, d.rm, this.incdec(size, this.getReg(size, d.rm), d.sub === 1));
        else {
          const seg = d.seg, off = this.eaOf(d);
          const v = this.rd(size, seg, off);
          this.wrProbe(size, seg, off);
          this.wr(size, seg, off, this.incdec(size, v, d.sub === 1));
        }
        return;
      case Kind.PushR: this.push(size, this.getReg(size, d.reg)); return;
      case Kind.PopR: { const v = this.pop(size); this.setReg(size, d.reg, v); return; }
      case Kind.Jcc:
        if (this.testCC(d.sub)) { this.osz = d.osz; this.jumpNear(this.eip + d.imm); }
        return;
      case Kind.Jmp: this.osz = d.osz; this.jumpNear(this.eip + d.imm); return;
      case Kind.Call: {
        this.osz = d.osz;
        const ret = this.eip;
        this.jumpNear(ret + d.imm);
        try { this.push(size, ret); } catch (x) { this.eip = ret; throw x; }
        return;
      }
      case Kind.Ret: {
        this.osz = d.osz;
        const ip = this.peek(size, 0);
        this.jumpNear(ip);
        this.addSp(size + d.imm);
        return;
      }
      case Kind.Loop: {
        let c: number;
        if (d.asz === 2) { c = (r[1] - 1) & 0xffff; r[1] = (r[1] & 0xffff0000) | c; }
        else { c = r[1] = r[1] - 1; }
        const op = d.sub;
        if (c !== 0 && (op === 0xe2 || (op === 0xe1) === this.getZF())) { this.osz = d.osz; this.jumpNear(this.eip + d.imm); }
        return;
      }
      case Kind.Jcxz:
        if ((d.asz === 2 ? r[1] & 0xffff : r[1]) === 0) { this.osz = d.osz; this.jumpNear(this.eip + d.imm); }
        return;
      case Kind.Shift: {
        const cnt = d.imm < 0 ? r[1] & 0xff : d.imm;
        if (d.mod === 3) {
          const res = this.shift(d.sub, size, this.getReg(size, d.rm), cnt);
          if ((cnt & 0x1f) !== 0) this.setReg(size, d.rm, res);
        } else {
          const seg = d.seg, off = this.eaOf(d);
          const v = this.rd(size, seg, off);
          if ((cnt & 0x1f) !== 0) this.wrProbe(size, seg, off);
          const res = this.shift(d.sub, size, v, cnt);
          if ((cnt & 0x1f) !== 0) this.wr(size, seg, off, res);
        }
        return;
      }
      default: return; // Kind.Nop
    }
  }

  run(budget: number): CpuExitReason {
    this.syncMem();
    this.mmu.checkA20();
    this.cplChanged();
    this.flushCodeCache(); // RAM may have been written behind the core since the last run
    this.stop = CpuExitReason.None;
    this.exit.vectoringValid = false;
    this.exit.iretUnblockedNmi = false;
    if (this.activity === Activity.Shutdown) return this.finish(CpuExitReason.TripleFault);
    if (this.activity !== Activity.Active) return this.finish(CpuExitReason.Halted); // HLT or wait-for-SIPI
    let n = 0;
    this.runBudget = budget;
    const icache = this.icache, blocks = this.blocks, heat = this.heat, regs = this.regs;
    /** The compiled block running, for the fault bookkeeping. */
    let curBlk: CompiledBlock | null = null;
    this.inFast = false;
    // The try sits outside the hot loop; a fault unwinds to it and the loop resumes.
    while (n < budget) {
      try {
        while (n < budget) {
          // Fast loop: runs of decoded instructions (execDecoded). Those never load CS, never
          // change TF, IF or the interrupt shadow and never stop the core (faults unwind to the
          // catch), so CS and the per-instruction event bookkeeping are read once per run of them.
          if ((this.flags & (TF | RF)) === 0 && (this.interruptibility & SHADOW_BITS) === 0 && !this.dbgOn) {
            this.shadow = 0;
            this.inFast = true;
            const csBase = this.segBase[CS], a20 = this.a20Mask, d32 = (this.segAttrib[CS] >>> 14) & 1;
            const ipMax = d32 !== 0 ? this.segLimit[CS] : Math.min(this.segLimit[CS], 0xffff);
            const pg = this.pgOn, tlb = this.tlb, xm = this.tlbX;
            while (n < budget) {
              const ip = this.eip;
              let pa: number;
              if (!pg) pa = ((csBase + ip) & a20) >>> 0;
              else { // paging: a TLB hit, else the slow path below walks with the full bookkeeping
                const la = (csBase + ip) >>> 0, te = tlb[la >>> 12];
                if ((te & xm) !== TLB_VALID) break;
                pa = ((te & -4096) | (la & 4095)) >>> 0;
              }
              const slot = pa & ICACHE_MASK;
              // A compiled block (compiler.ts) runs when it was compiled for this CS:IP, its bytes
              // are unchanged, they lie inside the CS limit and the budget covers all of it.
              const blk = blocks[slot];
              if (blk !== undefined && blk.pa === pa && blk.ip === ip && blk.csBase === csBase && blk.code32 === d32
                && blk.a20 === a20 && blk.count <= budget - n && blk.lastIp <= ipMax
                && ((blk.gtag === this.genTag && this.codeVer[blk.cb0] === blk.v0 && this.codeVer[blk.cb1] === blk.v1)
                  || this.revalidate(blk))) {
                curBlk = blk;
                n += blk.fn(this, regs);
                curBlk = null;
                continue;
              }
              let d = icache[slot];
              if (d === undefined || d.pa !== pa || d.gtag !== (this.genTag | d32)) d = this.decodeAt(pa, ip);
              // The same bytes may be reached through another CS:IP: recheck the limit and the IP wrap.
              if (d.kind === Kind.Exec || ip + d.len - 1 > ipMax) break;
              if (++heat[slot] === HOT_THRESHOLD && this.compileHot) {
                heat[slot] = 0;
                if (this.compileAt(pa, ip, ipMax)) continue;
              }
              this.startEip = ip;
              n++;
              this.execDecoded(d);
            }
            this.inFast = false;
            if (n >= budget) break;
          }
          // One instruction with the full bookkeeping: the interpreter, TF, the STI / MOV SS shadow.
          n++;
          const tf = this.flags & TF;
          if (tf !== 0) this.vectored = false;
          // The STI / MOV SS shadow covers exactly one instruction (SDM 6.8.3, STI).
          this.shadow = this.interruptibility & SHADOW_BITS;
          this.interruptibility &= ~SHADOW_BITS;
          this.startEip = this.eip;
          this.startEsp = this.regs[4];
          this.ilen = 0;
          this.iterLeft = budget - n;
          if (this.dbgOn) this.dbgBefore();
          else this.flags &= ~RF; // RF lasts one instruction (SDM 17.3.1.1); IRET and task switches load it
          const ip = this.eip;
          const pa = this.codePa(ip);
          let d = this.icache[pa & ICACHE_MASK];
          if (d === undefined || d.pa !== pa || d.gtag !== (this.genTag | ((this.segAttrib[CS] >>> 14) & 1))) d = this.decodeAt(pa, ip);
          // The same bytes may be reached through another CS:IP: recheck the limit and the IP wrap.
          const last = ip + d.len - 1;
          if (d.kind !== Kind.Exec && last <= this.segLimit[CS] && (d.code32 || last <= 0xffff)) {
            this.code32 = d.code32;
            this.execDecoded(d);
          } else {
            this.exec();
            n = budget - this.iterLeft; // REP iterations after the first count against the budget
          }
          if (!this.code32) this.eip &= 0xffff;
          if (this.dbgHit !== 0) this.dataBreakTrap(tf !== 0 || this.taskTrap);
          if (this.taskTrap && this.stop === CpuExitReason.None) {
            // With a single-step trap of the same instruction, one #DB reports BT and BS (SDM 17.2.3).
            if (tf !== 0 && !this.vectored) { this.taskTrap = false; this.setDr6(this.dr6 | DR6_BT, DR6_BT); } else this.taskSwitchTrap();
          }
          if (tf !== 0) this.singleStepTrap();
          if (this.stop !== CpuExitReason.None) { this.retired += n - 1; return this.stop; }
        }
      } catch (x) {
        if (x !== FAULT && x !== MEM_ABORT) throw x;
        if (this.inFast) {
          // No decoded kind changes ESP before its last possible fault, and `n` is exact there;
          // in a compiled block, the faulting instruction is the one that set startEip.
          this.inFast = false;
          if (curBlk !== null) { n += curBlk.indexOf(this.startEip) + 1; curBlk = null; }
          this.startEsp = this.regs[4];
        } else {
          n = budget - this.iterLeft;
        }
        if (x === MEM_ABORT) this.memAborted(); else this.faulted();
        if (this.stop !== CpuExitReason.None) { this.retired += n - 1; return this.stop; }
      }
    }
    this.retired += n;
    return this.finish(CpuExitReason.Budget);
  }

  private finish(reason: CpuExitReason): CpuExitReason {
    this.exit.reason = reason;
    return reason;
  }

  /** The new task's TSS has T = 1 (SDM 7.2.1, 17.3.1.5): a #DB trap with DR6.BT before its first instruction. */
  private taskSwitchTrap(): void {
    this.taskTrap = false;
    this.setDr6(this.dr6 | DR6_BT, DR6_BT);
    this.deliver(DB, 0, false, EventType.HardwareException, 0);
  }

  /** #DB trap after an instruction that started with TF=1 (SDM 17.3.1.4); not after INT n, which clears TF. */
  private singleStepTrap(): void {
    if (this.vectored || this.stop !== CpuExitReason.None) { this.dbBits = 0; return; }
    this.setDr6(this.dr6 | DR6_BS, DR6_BS); // SDM 17.2.3: BS reports a single-step trap (with any B0-B3 of the same #DB)
    this.deliver(DB, 0, false, EventType.HardwareException, 0);
  }

  /** The PhysMemory provider refused an access (MEM_ABORT): the instruction did not happen; stop before it. */
  private memAborted(): void {
    this.eip = this.startEip;
    this.regs[4] = this.startEsp;
    this.interruptibility = (this.interruptibility & ~SHADOW_BITS) | this.shadow;
    const e = this.exit;
    e.vectoringValid = false;
    e.instrLen = 0;
    e.reason = CpuExitReason.MemAbort;
    this.stop = CpuExitReason.MemAbort;
  }

  /** A fault unwound the current instruction: restart it (SDM 6.5) and deliver the exception. */
  private faulted(): void {
    this.eip = this.startEip;
    this.regs[4] = this.startEsp; // a faulting instruction leaves ESP unchanged
    this.interruptibility &= ~SHADOW_BITS;
    this.vectored = false;
    // Every exception raised by unwinding is fault-class: RF = 1 in the pushed image, except an
    // instruction-breakpoint #DB, so IRET resumes without re-triggering it (SDM 17.3.1.1, 6.12.1).
    this.faultRf = !(this.fVec === DB && this.instrBp);
    this.instrBp = false;
    this.deliver(this.fVec, this.fCode, this.fHasCode, EventType.HardwareException, 0);
    if (this.stop === CpuExitReason.None) this.exit.iretUnblockedNmi = false; // delivered to the guest: no exit to report it
  }

  private exec(): void {
    this.code32 = (this.segAttrib[CS] & 0x4000) !== 0;
    const def = this.code32 ? 4 : 2;
    this.osz = def; this.asz = def;
    this.segOv = -1; this.rep = 0; this.lock = false;
    let op: number;
    for (;;) {
      op = this.fetch8();
      switch (op) {
        case 0x26: this.segOv = ES; continue;
        case 0x2e: this.segOv = CS; continue;
        case 0x36: this.segOv = SS; continue;
        case 0x3e: this.segOv = DS; continue;
        case 0x64: this.segOv = FS; continue;
        case 0x65: this.segOv = GS; continue;
        case 0x66: this.osz = 6 - def; continue;
        case 0x67: this.asz = 6 - def; continue;
        case 0xf0: this.lock = true; continue;
        case 0xf2: case 0xf3: this.rep = op; continue;
      }
      break;
    }
    if (this.lock) this.checkLock(op);
    const r = this.regs;
    const osz = this.osz;
    // Classic ALU block 00-3F: op = bits 5:3, form = bits 2:0.
    if (op < 0x40 && (op & 7) < 6) {
      const aop = op >> 3;
      switch (op & 7) {
        case 0: case 1: {
          const size = op & 1 ? osz : 1;
          this.decodeModrm();
          const d = aop !== 7 ? this.readRMW(size) : this.readRM(size);
          const res = this.alu(aop, size, d, this.getReg(size, this.reg));
          if (aop !== 7) this.writeRM(size, res);
          return;
        }
        case 2: case 3: {
          const size = op & 1 ? osz : 1;
          this.decodeModrm();
          const s = this.readRM(size);
          const res = this.alu(aop, size, this.getReg(size, this.reg), s);
          if (aop !== 7) this.setReg(size, this.reg, res);
          return;
        }
        case 4: {
          const res = this.alu(aop, 1, r[0] & 0xff, this.fetch8());
          if (aop !== 7) this.setReg8(0, res);
          return;
        }
        default: {
          const res = this.alu(aop, osz, this.getReg(osz, 0), this.fetchImm(osz));
          if (aop !== 7) this.setReg(osz, 0, res);
          return;
        }
      }
    }
    switch (op) {
      case 0x06: this.push(osz, this.segSel[ES]); return;
      case 0x07: this.popSeg(ES); return;
      case 0x0e: this.push(osz, this.segSel[CS]); return;
      case 0x0f: this.exec0f(); return;
      case 0x16: this.push(osz, this.segSel[SS]); return;
      case 0x17: this.popSeg(SS); this.interruptibility |= Interruptibility.BlockingByMovSs; return;
      case 0x1e: this.push(osz, this.segSel[DS]); return;
      case 0x1f: this.popSeg(DS); return;
      case 0x27: this.daa(); return;
      case 0x2f: this.das(); return;
      case 0x37: this.aaa(); return;
      case 0x3f: this.aas(); return;
      case 0x40: case 0x41: case 0x42: case 0x43: case 0x44: case 0x45: case 0x46: case 0x47:
        this.setReg(osz, op & 7, this.incdec(osz, this.getReg(osz, op & 7), false)); return;
      case 0x48: case 0x49: case 0x4a: case 0x4b: case 0x4c: case 0x4d: case 0x4e: case 0x4f:
        this.setReg(osz, op & 7, this.incdec(osz, this.getReg(osz, op & 7), true)); return;
      case 0x50: case 0x51: case 0x52: case 0x53: case 0x54: case 0x55: case 0x56: case 0x57:
        this.push(osz, this.getReg(osz, op & 7)); return; // PUSH SP pushes the old value on 286+
      case 0x58: case 0x59: case 0x5a: case 0x5b: case 0x5c: case 0x5d: case 0x5e: case 0x5f: {
        const v = this.pop(osz);
        this.setReg(osz, op & 7, v);
        return;
      }
      case 0x60: { // PUSHA
        const sp = this.getReg(osz, 4);
        for (let i = 0; i < 8; i++) this.push(osz, i === 4 ? sp : this.getReg(osz, i));
        return;
      }
      case 0x61: { // POPA
        for (let i = 7; i >= 0; i--) {
          const v = this.pop(osz);
          if (i !== 4) this.setReg(osz, i, v);
        }
        return;
      }
      case 0x62: { // BOUND (SDM Vol. 2): #BR when the index is outside [lower, upper]
        this.decodeModrm(); this.needMem();
        const idx = osz === 2 ? sext16(this.getReg(2, this.reg)) : r[this.reg] | 0;
        const lo = osz === 2 ? sext16(this.rd16(this.eaSeg, this.eaOff)) : this.rd32(this.eaSeg, this.eaOff) | 0;
        const hi = osz === 2 ? sext16(this.rd16(this.eaSeg, this.offPlus(osz))) : this.rd32(this.eaSeg, this.offPlus(osz)) | 0;
        if (idx < lo || idx > hi) this.fault(BR);
        return;
      }
      case 0x68: this.push(osz, this.fetchImm(osz)); return;
      case 0x69: case 0x6b: { // IMUL r, r/m, imm
        this.decodeModrm();
        const s = this.readRM(osz);
        const imm = op === 0x69 ? this.fetchImm(osz) : sext8(this.fetch8());
        this.imul3(osz, this.reg, s, imm);
        return;
      }
      case 0x6a: this.push(osz, sext8(this.fetch8())); return;
      case 0x6c: case 0x6d: this.ins(op & 1 ? osz : 1); return;
      case 0x6e: case 0x6f: this.outs(op & 1 ? osz : 1); return;
      case 0x70: case 0x71: case 0x72: case 0x73: case 0x74: case 0x75: case 0x76: case 0x77:
      case 0x78: case 0x79: case 0x7a: case 0x7b: case 0x7c: case 0x7d: case 0x7e: case 0x7f: {
        const d = sext8(this.fetch8());
        if (this.testCC(op & 15)) this.jumpNear(this.eip + d);
        return;
      }
      case 0x80: case 0x81: case 0x82: case 0x83: {
        const size = op === 0x81 || op === 0x83 ? osz : 1;
        this.decodeModrm();
        const d = this.reg !== 7 ? this.readRMW(size) : this.readRM(size);
        const s = op === 0x81 ? this.fetchImm(osz) : op === 0x83 ? trunc(size, sext8(this.fetch8())) : this.fetch8();
        const res = this.alu(this.reg, size, d, s);
        if (this.reg !== 7) this.writeRM(size, res);
        return;
      }
      case 0x84: case 0x85: {
        const size = op & 1 ? osz : 1;
        this.decodeModrm();
        this.alu(4, size, this.readRM(size), this.getReg(size, this.reg));
        return;
      }
      case 0x86: case 0x87: {
        const size = op & 1 ? osz : 1;
        this.decodeModrm();
        const a = this.readRM(size);
        this.writeRM(size, this.getReg(size, this.reg));
        this.setReg(size, this.reg, a);
        return;
      }
      case 0x88: case 0x89: {
        const size = op & 1 ? osz : 1;
        this.decodeModrm();
        this.writeRM(size, this.getReg(size, this.reg));
        return;
      }
      case 0x8a: case 0x8b: {
        const size = op & 1 ? osz : 1;
        this.decodeModrm();
        this.setReg(size, this.reg, this.readRM(size));
        return;
      }
      case 0x8c: { // MOV r/m, Sreg
        this.decodeModrm();
        if (this.reg > 5) this.fault(UD);
        const v = this.segSel[this.reg];
        if (this.mod === 3) this.setReg(osz, this.rm, v); else this.wr16(this.eaSeg, this.eaOff, v);
        return;
      }
      case 0x8d: // LEA
        this.decodeModrm(); this.needMem();
        this.setReg(osz, this.reg, this.eaOff);
        return;
      case 0x8e: { // MOV Sreg, r/m
        this.decodeModrm();
        if (this.reg > 5 || this.reg === CS) this.fault(UD);
        const v = this.readRM(2);
        this.loadSeg(this.reg, v);
        if (this.reg === SS) this.interruptibility |= Interruptibility.BlockingByMovSs;
        return;
      }
      case 0x8f: { // POP r/m: ESP is incremented before the address is computed (SDM Vol. 2 POP)
        const v = this.peek(osz, 0);
        this.addSp(osz);
        try {
          this.decodeModrm();
          if (this.reg !== 0) this.fault(UD);
          this.writeRM(osz, v);
        } catch (x) { this.addSp(-osz); throw x; }
        return;
      }
      case 0x90: // NOP; F3 90 = PAUSE, also a no-op here unless intercepted
        if (this.rep === 0xf3) this.insnExit(InsnIntercept.Pause);
        return;
      case 0x91: case 0x92: case 0x93: case 0x94: case 0x95: case 0x96: case 0x97: {
        const a = this.getReg(osz, 0);
        this.setReg(osz, 0, this.getReg(osz, op & 7));
        this.setReg(osz, op & 7, a);
        return;
      }
      case 0x98: // CBW / CWDE
        if (osz === 2) this.setReg(2, 0, sext8(r[0]));
        else r[0] = sext16(r[0]);
        return;
      case 0x99: // CWD / CDQ
        if (osz === 2) this.setReg(2, 2, (r[0] & 0x8000) ? 0xffff : 0);
        else r[2] = (r[0] & 0x80000000) ? 0xffffffff : 0;
        return;
      case 0x9a: { // CALL ptr16:16
        const off = this.fetchImm(osz), sel = this.fetch16();
        this.farCall(sel, off);
        return;
      }
      case 0x9b: // WAIT: #NM when CR0.MP and CR0.TS, then pending x87 exceptions (SDM Vol. 2 WAIT)
        this.fpu.wait(this.fpuHost);
        return;
      case 0x9c: { // PUSHF: in real mode the image has VM and RF clear (SDM Vol. 2 PUSHF)
        if (this.insnExit(InsnIntercept.Pushf)) return;
        if ((this.flags & VM) !== 0 && this.iopl < 3) this.faultCode(GP, 0); // IOPL-sensitive in v8086 mode (SDM 20.2.7)
        const f = this.getEflags();
        this.push(osz, osz === 2 ? f & 0xffff : f & 0x00fcffff);
        return;
      }
      case 0x9d: { // POPF
        if (this.insnExit(InsnIntercept.Popf)) return;
        if ((this.flags & VM) !== 0 && this.iopl < 3) this.faultCode(GP, 0);
        const v = this.pop(osz);
        this.popFlags(osz, v);
        return;
      }
      case 0x9e: { // SAHF
        this.setFlags(SF | ZF | AF | PF | CF, (r[0] >>> 8) & 0xd5);
        return;
      }
      case 0x9f: // LAHF
        this.setReg8(4, (this.getEflags() & 0xd5) | 2);
        return;
      case 0xa0: case 0xa1: case 0xa2: case 0xa3: { // MOV AL/AX <-> moffs
        const size = op & 1 ? osz : 1;
        const off = this.asz === 2 ? this.fetch16() : this.fetch32();
        const seg = this.segOv >= 0 ? this.segOv : DS;
        if (op < 0xa2) this.setReg(size, 0, this.rd(size, seg, off));
        else this.wr(size, seg, off, this.getReg(size, 0));
        return;
      }
      case 0xa4: case 0xa5: case 0xa6: case 0xa7: case 0xaa: case 0xab:
      case 0xac: case 0xad: case 0xae: case 0xaf:
        this.stringOp(op, op & 1 ? osz : 1);
        return;
      case 0xa8: this.alu(4, 1, r[0] & 0xff, this.fetch8()); return;
      case 0xa9: this.alu(4, osz, this.getReg(osz, 0), this.fetchImm(osz)); return;
      case 0xb0: case 0xb1: case 0xb2: case 0xb3: case 0xb4: case 0xb5: case 0xb6: case 0xb7:
        this.setReg8(op & 7, this.fetch8()); return;
      case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf:
        this.setReg(osz, op & 7, this.fetchImm(osz)); return;
      case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        const size = op & 1 ? osz : 1;
        this.decodeModrm();
        const d = this.readRM(size);
        const cnt = op < 0xd0 ? this.fetch8() : op < 0xd2 ? 1 : r[1] & 0xff;
        if ((cnt & 0x1f) !== 0 && this.mod !== 3) this.wrProbe(size, this.eaSeg, this.eaOff);
        const res = this.shift(this.reg, size, d, cnt);
        if ((cnt & 0x1f) !== 0) this.writeRM(size, res);
        return;
      }
      case 0xc2: case 0xc3: { // RET near
        const n = op === 0xc2 ? this.fetch16() : 0;
        const ip = this.peek(osz, 0);
        this.jumpNear(ip);
        this.addSp(osz + n);
        return;
      }
      case 0xc4: case 0xc5: this.loadFarPtr(op === 0xc4 ? ES : DS); return;
      case 0xc6: case 0xc7: {
        const size = op & 1 ? osz : 1;
        this.decodeModrm();
        if (this.reg !== 0) this.fault(UD);
        this.writeRM(size, this.fetchImm(size));
        return;
      }
      case 0xc8: this.enter(); return;
      case 0xc9: { // LEAVE
        const bp = this.ss32 ? r[5] : r[5] & 0xffff;
        const v = this.rd(osz, SS, bp);
        if (this.ss32) r[4] = bp + osz; else r[4] = (r[4] & 0xffff0000) | ((bp + osz) & 0xffff);
        this.setReg(osz, 5, v);
        return;
      }
      case 0xca: case 0xcb: { // RET far
        const n = op === 0xca ? this.fetch16() : 0;
        this.farRet(n);
        return;
      }
      case 0xcc:
        if (this.softIntExit(BP, SoftIntKind.Int3)) return;
        this.softInt(BP, true);
        return;
      case 0xcd: {
        const v = this.fetch8();
        if ((this.flags & VM) !== 0 && this.iopl < 3) this.faultCode(GP, 0); // IOPL-sensitive in v8086 mode (no VME)
        if (this.softIntExit(v, SoftIntKind.IntN)) return;
        this.softInt(v, false);
        return;
      }
      case 0xce:
        if (!this.getOF()) return;
        if (this.softIntExit(OFV, SoftIntKind.Into)) return;
        this.softInt(OFV, true);
        return;
      case 0xcf: { // IRET; it also ends NMI blocking (SDM 6.7.1), even when it faults
        if (this.insnExit(InsnIntercept.Iret)) return;
        // Kept set if IRET faults, aborts or stops on a task switch (exit.iretUnblockedNmi).
        this.exit.iretUnblockedNmi = (this.interruptibility & Interruptibility.BlockingByNmi) !== 0;
        this.interruptibility &= ~Interruptibility.BlockingByNmi;
        this.iret();
        if (this.stop === CpuExitReason.None) this.exit.iretUnblockedNmi = false;
        return;
      }
      case 0xd4: { // AAM
        const b = this.fetch8();
        if (b === 0) this.fault(DE);
        const al = r[0] & 0xff;
        const q = Math.floor(al / b), m = al % b;
        this.setReg(2, 0, (q << 8) | m);
        this.setLazy(LZ_LOGIC, 1, m, 0, m);
        return;
      }
      case 0xd5: { // AAD: flags as the ADD of AL and AH*imm
        const b = this.fetch8();
        const al = r[0] & 0xff, t = ((r[0] >>> 8) & 0xff) * b & 0xff;
        const res = this.alu(0, 1, al, t);
        this.setReg(2, 0, res);
        return;
      }
      case 0xd6: // SALC (undocumented, present on Intel 386+)
        this.setReg8(0, this.getCF() ? 0xff : 0);
        return;
      case 0xd7: { // XLAT
        const seg = this.segOv >= 0 ? this.segOv : DS;
        const off = this.asz === 2 ? (r[3] + (r[0] & 0xff)) & 0xffff : (r[3] + (r[0] & 0xff)) >>> 0;
        this.setReg8(0, this.rd8(seg, off));
        return;
      }
      case 0xd8: case 0xd9: case 0xda: case 0xdb: case 0xdc: case 0xdd: case 0xde: case 0xdf:
        // ESC: the x87 unit. CR0.EM or CR0.TS gives #NM before the operand (SDM 2.5, table 2-2).
        if (this.cr0 & 0xc) this.fault(NM);
        this.decodeModrm();
        this.fpu.exec(op, (this.mod << 6) | (this.reg << 3) | this.rm, this.fpuHost);
        return;
      case 0xe0: case 0xe1: case 0xe2: { // LOOPNE, LOOPE, LOOP
        const d = sext8(this.fetch8());
        let c: number;
        if (this.asz === 2) { c = (r[1] - 1) & 0xffff; this.setReg(2, 1, c); }
        else { c = r[1] = r[1] - 1; }
        const take = c !== 0 && (op === 0xe2 || (op === 0xe1) === this.getZF());
        if (take) this.jumpNear(this.eip + d);
        return;
      }
      case 0xe3: { // JCXZ / JECXZ
        const d = sext8(this.fetch8());
        if ((this.asz === 2 ? r[1] & 0xffff : r[1]) === 0) this.jumpNear(this.eip + d);
        return;
      }
      case 0xe4: case 0xe5: { // IN AL/AX, imm8
        const size = op & 1 ? osz : 1;
        const port = this.fetch8();
        if (this.ioExit(port, size, true, false, true)) return;
        this.setReg(size, 0, this.portIn(port, size));
        return;
      }
      case 0xe6: case 0xe7: {
        const size = op & 1 ? osz : 1;
        const port = this.fetch8();
        if (this.ioExit(port, size, false, false, true)) return;
        this.io.out(port, size as AccessSize, this.getReg(size, 0));
        return;
      }
      case 0xe8: { // CALL rel
        const d = osz === 2 ? this.fetch16() : this.fetch32();
        const ret = this.eip;
        this.jumpNear(ret + d);
        try { this.push(osz, ret); } catch (x) { this.eip = ret; throw x; }
        return;
      }
      case 0xe9: {
        const d = osz === 2 ? this.fetch16() : this.fetch32();
        this.jumpNear(this.eip + d);
        return;
      }
      case 0xea: {
        const off = this.fetchImm(osz), sel = this.fetch16();
        this.farJmp(sel, off);
        return;
      }
      case 0xeb: {
        const d = sext8(this.fetch8());
        this.jumpNear(this.eip + d);
        return;
      }
      case 0xec: case 0xed: {
        const size = op & 1 ? osz : 1;
        const port = r[2] & 0xffff;
        if (this.ioExit(port, size, true, false, false)) return;
        this.setReg(size, 0, this.portIn(port, size));
        return;
      }
      case 0xee: case 0xef: {
        const size = op & 1 ? osz : 1;
        const port = r[2] & 0xffff;
        if (this.ioExit(port, size, false, false, false)) return;
        this.io.out(port, size as AccessSize, this.getReg(size, 0));
        return;
      }
      case 0xf1: // INT1 / ICEBP: #DB delivered as a trap, a privileged software exception (SDM 25.8.3)
        if (this.insnExit(InsnIntercept.Icebp)) return;
        this.deliver(DB, 0, false, EventType.PrivilegedSoftwareException, this.ilen);
        return;
      case 0xf4: // HLT
        this.needCpl0();
        if (this.intercepts.hlt) { this.stopHere(CpuExitReason.Hlt); return; }
        this.activity = Activity.Hlt;
        this.stop = CpuExitReason.Halted;
        this.exit.reason = CpuExitReason.Halted;
        return;
      case 0xf5: this.setFlags(CF, this.getCF() ^ 1); return;
      case 0xf6: case 0xf7: {
        const size = op & 1 ? osz : 1;
        this.decodeModrm();
        const d = this.readRM(size);
        switch (this.reg) {
          case 0: case 1: this.alu(4, size, d, this.fetchImm(size)); return;
          case 2: this.writeRM(size, trunc(size, ~d)); return;
          case 3:
            if (this.mod !== 3) this.wrProbe(size, this.eaSeg, this.eaOff);
            this.writeRM(size, this.alu(5, size, 0, d));
            return;
          default: this.muldiv(this.reg, size, d); return;
        }
      }
      case 0xf8: this.setFlags(CF, 0); return;
      case 0xf9: this.setFlags(CF, CF); return;
      case 0xfa: // CLI/STI: #GP(0) at CPL > IOPL, v8086 mode included (SDM Vol. 2 CLI; no PVI/VME)
        if (this.cpl > this.iopl) this.faultCode(GP, 0);
        this.flags &= ~IF;
        return;
      case 0xfb: // STI: interrupts stay blocked for one more instruction if IF was clear (SDM Vol. 2 STI)
        if (this.cpl > this.iopl) this.faultCode(GP, 0);
        if (!(this.flags & IF)) this.interruptibility |= Interruptibility.BlockingBySti;
        this.flags |= IF;
        return;
      case 0xfc: this.flags &= ~DF; return;
      case 0xfd: this.flags |= DF; return;
      case 0xfe: {
        this.decodeModrm();
        if (this.reg > 1) this.fault(UD);
        this.writeRM(1, this.incdec(1, this.readRMW(1), this.reg === 1));
        return;
      }
      case 0xff: this.grp5(); return;
      case 0x63: this.arpl(); return; // #UD in real and v8086 mode
      default:
        // 0F handled above; D6/F1 handled; remaining holes are #UD.
        this.fault(UD);
    }
  }

  private offPlus(n: number): number {
    return this.asz === 2 ? (this.eaOff + n) & 0xffff : (this.eaOff + n) >>> 0;
  }

  private checkLock(op: number): void {
    // Peek the next bytes without consuming them: LOCK is valid only on RMW memory forms.
    let op0f = false, o = op, at = this.eip;
    if (op === 0x0f) { op0f = true; o = this.codeByte(at); at++; }
    const modrm = this.codeByte(at);
    if (!isLockable(o, modrm, op0f)) this.fault(UD);
  }

  private popSeg(i: number): void {
    const v = this.peek(this.osz, 0) & 0xffff;
    this.loadSeg(i, v);
    this.addSp(this.osz);
  }

  private popFlags(osz: number, v: number): void {
    const cur = this.getEflags();
    let f: number;
    if (osz === 2) f = (cur & 0xffff0000) | (v & 0xffff);
    else f = (v & ~(VM | RF | 0x180000)) | (cur & (VM | 0x180000)); // VM, VIF, VIP unchanged (SDM Vol. 2 POPF)
    // IOPL changes only at CPL 0, IF only at CPL <= IOPL; no fault otherwise (SDM Vol. 2 POPF).
    const cpl = this.cpl;
    if (cpl !== 0) f = (f & ~0x3000) | (cur & 0x3000);
    if (cpl > ((cur >>> 12) & 3)) f = (f & ~IF) | (cur & IF);
    this.setEflags(f & (ARITH | TF | IF | DF | IOPL_NT | AC | ID | VM | 0x180000 | 2));
  }

  private imul3(size: number, reg: number, a: number, b: number): void {
    let lo: number, ovf: boolean;
    if (size === 2) {
      const p = sext16(a) * sext16(b);
      lo = p & 0xffff; ovf = p !== sext16(p);
    } else {
      this.imul32(a | 0, b | 0);
      lo = this.lo; ovf = this.hi !== ((this.lo | 0) < 0 ? 0xffffffff : 0);
    }
    this.setReg(size, reg, lo);
    this.setFlags(ARITH, (ovf ? CF | OF : 0) | this.szp(size, lo));
  }

  private loadFarPtr(seg: number): void {
    this.decodeModrm(); this.needMem();
    const osz = this.osz;
    const off = this.rd(osz, this.eaSeg, this.eaOff);
    const sel = this.rd16(this.eaSeg, this.offPlus(osz));
    // The segment register first: a faulting load leaves the offset register unchanged
    // (SDM Vol. 2 LDS/LES/LFS/LGS/LSS "Operation": SegmentRegister <- ..., then DEST).
    this.loadSeg(seg, sel); // LSS does not open a MOV SS shadow (SDM Vol. 2 MOV)
    this.setReg(osz, this.reg, off);
  }

  private softInt(vector: number, isException: boolean): void {
    // INT3/INTO raise #BP/#OF, which the exception bitmap can intercept; like a VMX
    // software-exception exit, the core then stops at the instruction with its length
    // (SDM 27.2.1). INT n is not subject to the bitmap.
    if (isException && (this.intercepts.exceptionBitmap & (1 << vector)) !== 0) {
      const e = this.exit;
      e.vector = vector; e.errorCode = 0; e.hasErrorCode = false;
      e.softIntKind = vector === BP ? SoftIntKind.Int3 : SoftIntKind.Into;
      this.stopHere(CpuExitReason.Exception);
      return;
    }
    this.deliver(vector, 0, false, isException ? EventType.SoftwareException : EventType.SoftwareInt, this.ilen);
  }

  /** ENTER imm16, imm8 (SDM Vol. 2 ENTER), nesting level masked to 5 bits. */
  private enter(): void {
    const size = this.fetch16(), level = this.fetch8() & 0x1f;
    const osz = this.osz, r = this.regs;
    const sp0 = r[4], bp0 = r[5];
    try {
      this.push(osz, this.getReg(osz, 5));
      const frame = this.ss32 ? r[4] : r[4] & 0xffff;
      if (level > 0) {
        let bp = this.ss32 ? r[5] : r[5] & 0xffff;
        for (let i = 1; i < level; i++) {
          bp = this.ss32 ? bp - osz : (bp - osz) & 0xffff;
          this.push(osz, this.rd(osz, SS, bp));
        }
        this.push(osz, frame);
      }
      this.setReg(osz, 5, frame);
      if (this.ss32) r[4] = r[4] - size;
      else {
        const sp = (r[4] - size) & 0xffff;
        r[4] = (r[4] & 0xffff0000) | sp;
      }
    } catch (x) { r[4] = sp0; r[5] = bp0; throw x; }
  }

  private grp5(): void {
    const osz = this.osz;
    this.decodeModrm();
    switch (this.reg) {
      case 0: case 1: this.writeRM(osz, this.incdec(osz, this.readRMW(osz), this.reg === 1)); return;
      case 2: { // CALL near r/m
        const t = this.readRM(osz);
        const ret = this.eip;
        this.jumpNear(t);
        try { this.push(osz, ret); } catch (x) { this.eip = ret; throw x; }
        return;
      }
      case 3: case 5: { // CALL/JMP far m16:16
        this.needMem();
        const off = this.rd(osz, this.eaSeg, this.eaOff);
        const sel = this.rd16(this.eaSeg, this.offPlus(osz));
        if (this.reg === 3) this.farCall(sel, off); else this.farJmp(sel, off);
        return;
      }
      case 4: this.jumpNear(this.readRM(osz)); return;
      case 6: this.push(osz, this.readRM(osz)); return;
      default: this.fault(UD);
    }
  }

  // ---------------------------------------------------------------- strings

  private get strSeg(): number { return this.segOv >= 0 ? this.segOv : DS; }

  private idx(i: number): number { return this.asz === 2 ? this.regs[i] & 0xffff : this.regs[i]; }
  private advance(i: number, size: number): void {
    const d = this.flags & DF ? -size : size;
    if (this.asz === 2) this.setReg(2, i, this.regs[i] + d); else this.regs[i] = this.regs[i] + d;
  }
  private count(): number { return this.asz === 2 ? this.regs[1] & 0xffff : this.regs[1]; }
  /**
   * Between two REP iterations (SDM Vol. 2 REP: the instruction is interruptible there):
   * when run()'s budget is spent, or TF asks for a trap after each iteration (SDM Vol. 3B
   * 18.3.1.4), stop with EIP at the instruction (prefixes included) and the registers
   * reflecting the completed iterations; the next run() resumes it. Each further
   * iteration counts as one instruction of the budget and of `retired`.
   */
  private repYield(): boolean {
    // A data breakpoint hit traps after its iteration too (SDM Vol. 3B 17.3.1.2).
    if (this.iterLeft <= 0 || (this.flags & TF) !== 0 || this.dbgHit !== 0) { this.eip = this.startEip; return true; }
    this.iterLeft--;
    return false;
  }
  private decCount(): void {
    if (this.asz === 2) this.setReg(2, 1, this.regs[1] - 1); else this.regs[1] = this.regs[1] - 1;
  }

  /** MOVS/CMPS/STOS/LODS/SCAS with REP/REPE/REPNE (SDM Vol. 2 REP). */
  private stringOp(op: number, size: number): void {
    const rep = this.rep;
    if (rep !== 0 && this.count() === 0) return;
    for (;;) {
      switch (op & 0xfe) {
        case 0xa4: this.wr(size, ES, this.idx(7), this.rd(size, this.strSeg, this.idx(6))); this.advance(6, size); this.advance(7, size); break;
        case 0xa6: {
          const a = this.rd(size, this.strSeg, this.idx(6)), b = this.rd(size, ES, this.idx(7));
          this.alu(7, size, a, b); this.advance(6, size); this.advance(7, size); break;
        }
        case 0xaa: this.wr(size, ES, this.idx(7), this.getReg(size, 0)); this.advance(7, size); break;
        case 0xac: this.setReg(size, 0, this.rd(size, this.strSeg, this.idx(6))); this.advance(6, size); break;
        default: { // SCAS
          const b = this.rd(size, ES, this.idx(7));
          this.alu(7, size, this.getReg(size, 0), b); this.advance(7, size); break;
        }
      }
      if (rep === 0) return;
      this.decCount();
      if (this.count() === 0) return;
      if ((op & 0xf6) === 0xa6) { // CMPS/SCAS test ZF
        const zf = this.getZF();
        if (rep === 0xf3 ? !zf : zf) return;
      }
      if (this.repYield()) return;
    }
  }

  private ins(size: number): void {
    const port = this.regs[2] & 0xffff;
    if (this.ioExit(port, size, true, true, false)) return;
    if (this.rep !== 0 && this.count() === 0) return;
    for (;;) {
      const off = this.idx(7);
      // Check the destination before reading the port so a fault does not lose input.
      this.segCheck(ES, off, size, true);
      this.wr(size, ES, off, this.portIn(port, size));
      this.advance(7, size);
      if (this.rep === 0) return;
      this.decCount();
      if (this.count() === 0) return;
      if (this.repYield()) return;
    }
  }

  private outs(size: number): void {
    const port = this.regs[2] & 0xffff;
    if (this.ioExit(port, size, false, true, false)) return;
    if (this.rep !== 0 && this.count() === 0) return;
    for (;;) {
      this.io.out(port, size as AccessSize, this.rd(size, this.strSeg, this.idx(6)));
      this.advance(6, size);
      if (this.rep === 0) return;
      this.decCount();
      if (this.count() === 0) return;
      if (this.repYield()) return;
    }
  }

  // ---------------------------------------------------------------- BCD (SDM Vol. 2 AAA, AAS, DAA, DAS)

  private aaa(): void {
    const r = this.regs;
    if ((r[0] & 0xf) > 9 || this.getAF()) {
      this.setReg(2, 0, (r[0] + 0x106) & 0xffff);
      this.setReg8(0, r[0] & 0xf);
      this.setFlags(ARITH, AF | CF | this.szp(1, r[0] & 0xff));
    } else {
      this.setReg8(0, r[0] & 0xf);
      this.setFlags(ARITH, this.szp(1, r[0] & 0xff));
    }
  }
  private aas(): void {
    const r = this.regs;
    if ((r[0] & 0xf) > 9 || this.getAF()) {
      const ax = r[0] & 0xffff;
      const al = (ax - 6) & 0xff, ah = ((ax >>> 8) - 1 - ((ax & 0xff) < 6 ? 1 : 0)) & 0xff;
      this.setReg(2, 0, (ah << 8) | (al & 0xf));
      this.setFlags(ARITH, AF | CF | this.szp(1, al & 0xf));
    } else {
      this.setReg8(0, r[0] & 0xf);
      this.setFlags(ARITH, this.szp(1, r[0] & 0xff));
    }
  }
  private daa(): void {
    const oldAl = this.regs[0] & 0xff, oldCf = this.getCF();
    let al = oldAl, cf = 0, af = 0;
    if ((al & 0xf) > 9 || this.getAF()) { al = (al + 6) & 0xff; cf = oldCf | (oldAl + 6 > 0xff ? 1 : 0); af = AF; }
    if (oldAl > 0x99 || oldCf) { al = (al + 0x60) & 0xff; cf = 1; }
    this.setReg8(0, al);
    this.setFlags(ARITH, cf | af | this.szp(1, al));
  }
  private das(): void {
    const oldAl = this.regs[0] & 0xff, oldCf = this.getCF();
    let al = oldAl, cf = 0, af = 0;
    if ((al & 0xf) > 9 || this.getAF()) { al = (al - 6) & 0xff; cf = oldCf | (oldAl < 6 ? 1 : 0); af = AF; }
    if (oldAl > 0x99 || oldCf) { al = (al - 0x60) & 0xff; cf = 1; }
    this.setReg8(0, al);
    this.setFlags(ARITH, cf | af | this.szp(1, al));
  }

  // ---------------------------------------------------------------- 0F xx

  private exec0f(): void {
    const op = this.fetch8();
    const osz = this.osz;
    if (op >= 0x80 && op <= 0x8f) { // Jcc rel16/32
      const d = osz === 2 ? sext16(this.fetch16()) : this.fetch32() | 0;
      if (this.testCC(op & 15)) this.jumpNear(this.eip + d);
      return;
    }
    if (op >= 0x90 && op <= 0x9f) { // SETcc
      this.decodeModrm();
      this.writeRM(1, this.testCC(op & 15) ? 1 : 0);
      return;
    }
    if (op >= 0x40 && op <= 0x4f) { // CMOVcc: the source is read (and may fault) whatever the condition
      this.decodeModrm();
      const v = this.readRM(osz);
      if (this.testCC(op & 15)) this.setReg(osz, this.reg, v);
      return;
    }
    if (op >= 0xc8 && op <= 0xcf) { // BSWAP r32; with a 16-bit operand the result is undefined, hardware gives 0 (SDM Vol. 2 BSWAP)
      const r = this.regs, i = op & 7, v = r[i];
      if (osz === 2) r[i] = v & 0xffff0000;
      else r[i] = ((v >>> 24) | ((v >>> 8) & 0xff00) | ((v & 0xff00) << 8) | (v << 24)) >>> 0;
      return;
    }
    switch (op) {
      // SLDT/STR/LLDT/LTR/VERR/VERW and LAR/LSL "are not recognized in real-address mode" (SDM Vol. 2): #UD.
      case 0x00: this.grp6(); return;
      case 0x02: case 0x03: this.larLsl(op === 0x03); return;
      case 0x01: this.grp7(); return;
      case 0x06: { // CLTS (SDM 26.1.3, 26.3): TS owned by the host exits if its shadow is 1, else is left alone
        this.needCpl0();
        const ic = this.intercepts;
        if ((ic.crWriteExit & 1) !== 0) { this.crExit(0, CrAccessType.Clts, 0); return; } // APM 15.9: a CR0 write
        if ((ic.cr0Mask & CR0_TS) !== 0) {
          if ((ic.cr0Shadow & CR0_TS) !== 0) this.crExit(0, CrAccessType.Clts, 0);
          return;
        }
        this.cr0 &= ~CR0_TS;
        return;
      }
      // INVD, WBINVD: no caches are modelled
      case 0x08: this.needCpl0(); this.insnExit(InsnIntercept.Invd); return;
      case 0x09: this.needCpl0(); this.insnExit(InsnIntercept.Wbinvd); return;
      case 0x18: case 0x19: case 0x1a: case 0x1b: case 0x1c: case 0x1d: case 0x1e: case 0x1f:
        // Hint NOPs / NOP Ev (P6 family, SDM Vol. 2 NOP): the operand is decoded, never accessed.
        this.decodeModrm();
        return;
      case 0x20: case 0x22: this.movCr(op === 0x22); return;
      case 0x21: case 0x23: this.movDr(op === 0x23); return;
      case 0x30: case 0x32: this.msrOp(op === 0x30); return;
      case 0x31: // RDTSC: CR4.TSD makes it #GP(0) at CPL > 0, before the VM exit (SDM 26.1.1)
        if ((this.cr4 & CR4_TSD) !== 0 && this.cpl !== 0) this.faultCode(GP, 0);
        if (!this.insnExit(InsnIntercept.Rdtsc)) this.rdtsc();
        return;
      case 0x33: if (!this.insnExit(InsnIntercept.Rdpmc)) this.fault(UD); return; // RDPMC: no counters are modelled
      case 0x38: { // 66 0F 38 80/81 INVEPT/INVVPID; every other 0F 38 opcode (SSSE3+) is not implemented
        const op3 = this.fetch8();
        if ((op3 !== 0x80 && op3 !== 0x81) || !this.opsizePrefixed()) this.fault(UD);
        this.decodeModrm();
        this.vmxInsnExit(op3 === 0x80 ? VmxInsn.Invept : VmxInsn.Invvpid, true, true);
        return;
      }
      case 0x78: case 0x79: // VMREAD r/m32, r32 / VMWRITE r32, r/m32 (the prefixed forms are SSE4a, not implemented)
        if (this.rep !== 0 || this.opsizePrefixed()) this.fault(UD);
        this.decodeModrm();
        this.vmxInsnExit(op === 0x78 ? VmxInsn.Vmread : VmxInsn.Vmwrite, true, false);
        return;
      case 0x34: this.sysenter32(); return;
      case 0x35: this.sysexit32(); return;
      case 0xa0: this.push(osz, this.segSel[FS]); return;
      case 0xa1: this.popSeg(FS); return;
      case 0xa8: this.push(osz, this.segSel[GS]); return;
      case 0xa9: this.popSeg(GS); return;
      case 0xae: // FXSAVE /0, FXRSTOR /1, XSAVE /4, XRSTOR /5 (SDM Vol. 2); the other forms need SSE: #UD
        this.decodeModrm();
        if (this.mod !== 3 && (this.reg === 4 || this.reg === 5)) { this.xsaveRstor(this.reg === 5); return; }
        if (this.mod === 3 || this.reg > 1) this.fault(UD);
        if (this.cr0 & 0xc) this.fault(NM);
        if ((this.lin(this.eaSeg, this.eaOff) & 15) !== 0) this.faultCode(GP, 0); // 16-byte aligned
        this.fpuHost.checkOperand(512);
        if (this.reg === 0) this.fpu.fxsave(this.fpuHost); else this.fpu.fxrstor(this.fpuHost);
        return;
      case 0xa2: // CPUID
        if (this.intercepts.cpuid) { this.stopHere(CpuExitReason.Cpuid); return; }
        this.cpuid();
        return;
      case 0xa3: case 0xab: case 0xb3: case 0xbb: this.bitOp((op >> 3) & 3, false); return;
      case 0xba: this.bitOp(-1, true); return;
      case 0xa4: case 0xa5: case 0xac: case 0xad: { // SHLD/SHRD imm8 or CL
        this.decodeModrm();
        const d = this.readRM(osz);
        const cnt = (op & 1 ? this.regs[1] : this.fetch8()) & 0x1f;
        if (cnt === 0) return; // no operation, flags unaffected
        if (this.mod !== 3) this.wrProbe(osz, this.eaSeg, this.eaOff);
        this.writeRM(osz, this.shiftDouble(op >= 0xac, osz, d, this.getReg(osz, this.reg), cnt));
        return;
      }
      case 0xaf: { // IMUL r, r/m
        this.decodeModrm();
        this.imul3(osz, this.reg, this.getReg(osz, this.reg), this.readRM(osz));
        return;
      }
      case 0xb0: case 0xb1: { // CMPXCHG: flags as CMP acc, dest; the destination is always written (SDM Vol. 2)
        const size = op & 1 ? osz : 1;
        this.decodeModrm();
        const d = this.readRMW(size), a = this.getReg(size, 0);
        this.alu(7, size, a, d);
        if (a === d) this.writeRM(size, this.getReg(size, this.reg));
        else { this.writeRM(size, d); this.setReg(size, 0, d); }
        return;
      }
      case 0xb2: this.loadFarPtr(SS); return;
      case 0xb4: this.loadFarPtr(FS); return;
      case 0xb5: this.loadFarPtr(GS); return;
      case 0xb6: case 0xb7: case 0xbe: case 0xbf: { // MOVZX / MOVSX
        this.decodeModrm();
        const ss = op & 1 ? 2 : 1;
        let v = this.readRM(ss);
        if (op >= 0xbe) v = ss === 1 ? sext8(v) : sext16(v);
        this.setReg(osz, this.reg, v);
        return;
      }
      case 0xbc: case 0xbd: { // BSF / BSR: ZF=1 and the destination unchanged for a zero source
        this.decodeModrm();
        const v = this.readRM(osz);
        if (v === 0) { this.setFlags(ZF, ZF); return; }
        this.setReg(osz, this.reg, op === 0xbc ? 31 - Math.clz32(v & -v) : 31 - Math.clz32(v));
        this.setFlags(ZF, 0);
        return;
      }
      case 0xc0: case 0xc1: { // XADD: dest <- dest + src, src <- old dest; flags as ADD
        const size = op & 1 ? osz : 1;
        this.decodeModrm();
        const d = this.readRMW(size), s = this.getReg(size, this.reg);
        const sum = this.alu(0, size, d, s);
        // SDM Vol. 2 XADD: SRC <- DEST, then DEST <- TEMP: with one register as both, the sum wins.
        if (this.mod === 3) { this.setReg(size, this.reg, d); this.setReg(size, this.rm, sum); return; }
        this.writeRM(size, sum);
        this.setReg(size, this.reg, d);
        return;
      }
      case 0xc7: this.grp9(); return;
      default:
        // 0B UD2, B9 UD1, FF UD0 and every opcode this core does not implement (SSE, MMX, RSM, ...).
        this.fault(UD);
    }
  }

  /** Group 7 (0F 01) in real mode: SGDT/SIDT/LGDT/LIDT, SMSW/LMSW, INVLPG (SDM Vol. 2). */
  private grp7(): void {
    this.decodeModrm();
    const reg = this.reg, mem = this.mod !== 3;
    switch (reg) {
      case 0: case 1: { // SGDT/SIDT m: limit, then the full 32-bit base (P6 family stores all 32 bits)
        if (!mem) { // mod 3: C1 VMCALL, C2 VMLAUNCH, C3 VMRESUME, C4 VMXOFF; C8 MONITOR, C9 MWAIT
          if (reg === 0) {
            // VMCALL has no CR0.PE condition (SDM Vol. 3C 31.3): it exits in real mode too.
            if (this.rm === 1) { if (!this.insnExit(InsnIntercept.Vmcall)) this.fault(UD); return; }
            if (this.rm >= 2 && this.rm <= 4) {
              this.vmxInsnExit(this.rm === 2 ? VmxInsn.Vmlaunch : this.rm === 3 ? VmxInsn.Vmresume : VmxInsn.Vmxoff, false, false);
              return;
            }
          } else if (this.rm === 0 || this.rm === 1) { this.monitorMwait(this.rm === 1); return; }
          this.fault(UD);
        }
        if (this.descExit(reg === 0 ? DescInsn.Sgdt : DescInsn.Sidt)) return;
        const base = reg === 0 ? this.gdtrBase : this.idtrBase, limit = reg === 0 ? this.gdtrLimit : this.idtrLimit;
        this.rd32(this.eaSeg, this.offPlus(2)); // check the whole 6-byte operand before writing
        this.wr16(this.eaSeg, this.eaOff, limit);
        this.wr32(this.eaSeg, this.offPlus(2), base);
        return;
      }
      case 2: case 3: { // LGDT/LIDT m: a 16-bit operand size loads a 24-bit base
        if (!mem) {
          // 0F 01 D8-DF (AMD APM Vol. 3): VMRUN, VMMCALL, VMLOAD, VMSAVE, STGI, CLGI, SKINIT,
          // INVLPGA. The core has no SVM: each is #UD unless intercepted (APM 15.9).
          if (reg === 3) {
            const ok = this.rm === 1 ? this.insnExit(InsnIntercept.Vmmcall) : this.svmInsnExit(this.rm);
            if (!ok) this.fault(UD);
            return;
          }
          if (this.rm === 0 || this.rm === 1) { this.xgetsetbv(this.rm === 1); return; } // 0F 01 D0 XGETBV, D1 XSETBV
          this.fault(UD);
        }
        this.needCpl0();
        if (this.descExit(reg === 2 ? DescInsn.Lgdt : DescInsn.Lidt)) return;
        const limit = this.rd16(this.eaSeg, this.eaOff);
        let base = this.rd32(this.eaSeg, this.offPlus(2));
        if (this.osz === 2) base &= 0xffffff;
        if (reg === 2) { this.gdtrBase = base; this.gdtrLimit = limit; } else { this.idtrBase = base; this.idtrLimit = limit; }
        return;
      }
      case 4: // SMSW: a register destination with a 32-bit operand gets all of CR0 (shadowed, SDM 26.3)
        if ((this.intercepts.crReadExit & 1) !== 0) { this.crExit(0, CrAccessType.MovFromCr, this.rm); return; } // APM 15.9: a CR0 read
        if (!mem) this.setReg(this.osz, this.rm, this.readCr0());
        else this.wr16(this.eaSeg, this.eaOff, this.readCr0());
        return;
      case 6: { // LMSW: loads PE, MP, EM, TS; cannot clear PE
        this.needCpl0();
        const v = this.readRM(2);
        const ic = this.intercepts, m = ic.cr0Mask & 0xf, sh = ic.cr0Shadow;
        // APM 15.9, 15.9.1: LMSW is a CR0 write; the selective intercept sees a change of PE or EM.
        const svmWrite = (ic.crWriteExit & 1) !== 0;
        const svmSel = !svmWrite && ic.cr0SelectiveExit && (((this.cr0 & ~0xe) | (v & 0xf)) ^ this.cr0) & ~CR0_SELECTIVE_IGNORED & 0xf;
        if (svmWrite || svmSel) {
          const e = this.exit;
          e.lmswSource = v; e.lmswMem = mem;
          if (mem) e.linear = this.lin(this.eaSeg, this.eaOff);
          this.crExit(0, CrAccessType.Lmsw, 0);
          e.crSelective = !svmWrite;
          return;
        }
        // SDM 26.1.3: exits if PE is masked, its shadow 0 and the source sets it, or a masked MP/EM/TS differs from the shadow.
        if (((m & 1) !== 0 && (sh & 1) === 0 && (v & 1) !== 0) || ((m & 0xe) & (v ^ sh)) !== 0) {
          const e = this.exit;
          e.lmswSource = v; e.lmswMem = mem;
          if (mem) e.linear = this.lin(this.eaSeg, this.eaOff);
          this.crExit(0, CrAccessType.Lmsw, 0);
          return;
        }
        // SDM 26.3: masked bits are left unmodified.
        const next = (this.cr0 & ~0xe) | (v & 0xf);
        this.cr0 = ((next & ~m) | (this.cr0 & m)) >>> 0;
        this.modeChanged(); // PE may have been set
        return;
      }
      case 7: // INVLPG m; the register form is #UD, and CPL > 0 #GP(0), before any VM exit (SDM 26.1.1)
        if (!mem) {
          if (this.rm === 1) { this.rdtscp(); return; } // 0F 01 F9
          this.fault(UD);
        }
        this.needCpl0();
        if ((this.intercepts.insn & InsnIntercept.Invlpg) !== 0) this.exit.linear = this.lin(this.eaSeg, this.eaOff);
        if (!this.insnExit(InsnIntercept.Invlpg)) this.invlpg((this.segBase[this.eaSeg] + this.eaOff) >>> 0);
        return;
      default: this.fault(UD);
    }
  }

  /** MOV r32, CRn / MOV CRn, r32 (SDM Vol. 2 "MOV—Move to/from Control Registers"); mod is ignored. */
  private movCr(toCr: boolean): void {
    const b = this.fetch8(), cr = (b >> 3) & 7, rm = b & 7;
    if (cr === 1 || cr > 4) this.fault(UD);
    this.needCpl0();
    const ic = this.intercepts;
    // APM 15.9: the SVM CR read/write intercepts, after #UD (and the CPL check), before operand checks.
    if (((toCr ? ic.crWriteExit : ic.crReadExit) & (1 << cr)) !== 0) {
      this.crExit(cr, toCr ? CrAccessType.MovToCr : CrAccessType.MovFromCr, rm);
      return;
    }
    if (toCr && cr === 0 && ic.cr0SelectiveExit && ((this.regs[rm] ^ this.cr0) & ~CR0_SELECTIVE_IGNORED) !== 0) {
      this.crExit(0, CrAccessType.MovToCr, rm);
      this.exit.crSelective = true;
      return;
    }
    if (!toCr) {
      // SDM 26.1.3 CR3-store exiting; 26.3: masked CR0/CR4 bits read from the shadows.
      if (cr === 3 && ic.cr3StoreExit) { this.crExit(3, CrAccessType.MovFromCr, rm); return; }
      this.regs[rm] = cr === 0 ? this.readCr0() : cr === 2 ? this.cr2 : cr === 3 ? this.cr3
        : ((this.cr4 & ~ic.cr4Mask) | (ic.cr4Shadow & ic.cr4Mask)) >>> 0;
      return;
    }
    let v = this.regs[rm];
    // SDM 26.1.3: exits when a masked bit would differ from its shadow (CR3: CR3-load
    // exiting, no CR3-target values). The exit has priority over the #GP checks (26.1.1).
    // Without an exit, masked bits keep their value (26.3).
    if (cr === 0) {
      if (((v ^ ic.cr0Shadow) & ic.cr0Mask) !== 0) { this.crExit(0, CrAccessType.MovToCr, rm); return; }
      v = ((v & ~ic.cr0Mask) | (this.cr0 & ic.cr0Mask)) >>> 0;
    } else if (cr === 4) {
      if (((v ^ ic.cr4Shadow) & ic.cr4Mask) !== 0) { this.crExit(4, CrAccessType.MovToCr, rm); return; }
      v = ((v & ~ic.cr4Mask) | (this.cr4 & ic.cr4Mask)) >>> 0;
    } else if (cr === 3 && ic.cr3LoadExit && !isCr3Target(ic, v)) { this.crExit(3, CrAccessType.MovToCr, rm); return; }
    switch (cr) {
      case 0: {
        // PG without PE and NW without CD are invalid combinations (#GP(0)). ET is hardwired to 1.
        if ((v & CR0_PG) !== 0 && (v & CR0_PE) === 0) this.faultCode(GP, 0);
        if ((v & CR0_NW) !== 0 && (v & CR0_CD) === 0) this.faultCode(GP, 0);
        const nv = ((v & CR0_DEFINED) | CR0_ET) >>> 0;
        // SDM 4.4.1: a MOV to CR0 that enables PAE paging, or changes PG, CD or NW under it,
        // loads the PDPTE registers; a reserved bit in one is #GP(0) and CR0 is unchanged.
        if ((nv & CR0_PG) !== 0 && (this.cr4 & CR4_PAE) !== 0 && ((nv ^ this.cr0) & (CR0_PG | CR0_CD | CR0_NW)) !== 0
          && !this.mmu.loadPdptes(this.cr3)) this.faultCode(GP, 0);
        this.cr0 = nv;
        this.pagingChanged(); // PG, WP, PE (the CPL) may have changed
        this.modeChanged(); // PE: segment access windows
        return;
      }
      case 2: this.cr2 = v; return;
      case 3: if (!this.loadCr3(v)) this.faultCode(GP, 0); return;
      default: {
        if ((v & ~this.cr4Allowed()) !== 0) this.faultCode(GP, 0); // reserved CR4 bits
        // SDM 4.4.1: changing PAE, PGE or PSE with PAE paging in effect afterwards loads the PDPTEs.
        if ((this.cr0 & CR0_PG) !== 0 && (v & CR4_PAE) !== 0 && ((v ^ this.cr4) & (CR4_PAE | CR4_PGE | CR4_PSE)) !== 0
          && !this.mmu.loadPdptes(this.cr3)) this.faultCode(GP, 0);
        this.cr4 = v;
        this.pagingChanged();
      }
    }
  }

  /** MOV r32, DRn / MOV DRn, r32: DR4/DR5 alias DR6/DR7 unless CR4.DE (SDM Vol. 3B 18.2.2); a write re-arms the breakpoints (armDebug). */
  private movDr(toDr: boolean): void {
    const b = this.fetch8(), rm = b & 7;
    let dr = (b >> 3) & 7;
    if (dr === 4 || dr === 5) {
      if (this.cr4 & CR4_DE) this.fault(UD); // before the VM exit (SDM 26.1.1)
      dr += 2;
    }
    this.needCpl0();
    // DR7.GD: any debug-register access is a #DB fault with DR6.BD, GD cleared (SDM 17.2.4).
    if ((this.dr7 & DR7_GD) !== 0) { this.setDr6(this.dr6 | DR6_BD, DR6_BD); this.dr7 &= ~DR7_GD; this.fault(DB); }
    if ((this.intercepts.insn & InsnIntercept.MovDr) !== 0) {
      const e = this.exit;
      e.drNumber = (b >> 3) & 7; e.drRead = !toDr; e.drGpr = rm;
      this.insnExit(InsnIntercept.MovDr);
      return;
    }
    if (!toDr) {
      this.regs[rm] = dr < 4 ? this.drAddr[dr] : dr === 6 ? this.dr6 : this.dr7;
      return;
    }
    const v = this.regs[rm];
    if (dr < 4) this.drAddr[dr] = v;
    else if (dr === 6) this.dr6 = ((v & 0xe00f) | 0xffff0ff0) >>> 0;
    else this.dr7 = ((v & 0xffff2fff) | 0x400) >>> 0;
    this.armDebug();
  }

  /**
   * DR7 or DR0-DR3 changed: which breakpoints are armed (SDM 17.2.4, 17.2.5). L or G
   * enables; R/W 00 execute, 01 write, 11 read/write; 10 (I/O, CR4.DE) is not supported.
   * Armed breakpoints send every instruction through run()'s slow path.
   */
  private armDebug(): void {
    let ex = 0, data = 0;
    const d7 = this.dr7;
    for (let i = 0; i < 4; i++) {
      if (((d7 >>> (i * 2)) & 3) === 0) continue;
      const rw = (d7 >>> (16 + i * 4)) & 3;
      if (rw === 0) ex |= 1 << i; else if (rw !== 2) data |= 1 << i;
    }
    this.dbgExec = ex; this.dbgData = data;
    this.dbgOn = (ex | data) !== 0;
  }
  /** Before an instruction (slow path): an execute breakpoint at CS:EIP is a #DB fault unless EFLAGS.RF (SDM 17.3.1.1). */
  private dbgBefore(): void {
    this.dbgHit = 0;
    if (this.dbgExec !== 0 && (this.flags & RF) === 0) {
      const la = (this.segBase[CS] + this.eip) >>> 0;
      let hit = 0;
      for (let i = 0; i < 4; i++) if ((this.dbgExec & (1 << i)) !== 0 && this.drAddr[i] === la) hit |= 1 << i;
      if (hit !== 0) { this.setDr6((this.dr6 & ~0xf) | hit, hit); this.instrBp = true; this.fault(DB); }
    }
    this.flags &= ~RF; // RF lasts one instruction; IRET and POPF may set it again for the next
  }
  /** A data access of `size` bytes at `la` against the armed data breakpoints (length 1, 2, 4 or 8 from DR7.LENn). */
  private dataBp(la: number, size: number, write: boolean): void {
    const d7 = this.dr7;
    for (let i = 0; i < 4; i++) {
      if ((this.dbgData & (1 << i)) === 0) continue;
      const rw = (d7 >>> (16 + i * 4)) & 3;
      if (rw === 1 && !write) continue;
      const lenCode = (d7 >>> (18 + i * 4)) & 3, len = lenCode === 2 ? 8 : lenCode + 1;
      const base = (this.drAddr[i] & ~(len - 1)) >>> 0;
      if (la < base + len && base < la + size) this.dbgHit |= 1 << i;
    }
  }
  /** Data breakpoints hit by the instruction that just completed: a #DB trap (SDM 17.2.4); with TF the single-step #DB carries it. */
  private dataBreakTrap(tf: boolean): void {
    this.setDr6((this.dr6 & ~0xf) | this.dbgHit, this.dbgHit);
    this.dbgHit = 0;
    if (!tf && this.stop === CpuExitReason.None) this.deliver(DB, 0, false, EventType.HardwareException, 0);
    else if (!tf) this.dbBits = 0; // the #DB is not raised
  }
  /** DR6 gets `v` for a #DB with `bits` (exit.dbBits); the first of one #DB's updates keeps DR6 before it. */
  private setDr6(v: number, bits: number): void {
    if (this.dbBits === 0) this.dr6Prev = this.dr6;
    this.dbBits |= bits;
    this.dr6 = v >>> 0;
  }

  /** Instructions retired so far, the current one included: the TSC's time base. */
  private instructionsNow(): number {
    return this.retired + (this.runBudget - this.iterLeft);
  }

  /** RDTSC: TSC = `tscOffset` + instructions retired (one tick per instruction; see `tscOffset`). */
  private rdtsc(): void {
    const t = this.tscOffset + this.instructionsNow();
    this.regs[0] = t >>> 0;
    this.regs[2] = Math.floor(t / 4294967296) >>> 0;
  }

  /**
   * RDMSR (0F 32) / WRMSR (0F 30). With `intercepts.msr` the core exits (only for the
   * accesses `msrBitmap` selects, when set: see msrBitmapExits); else a minimal honest set: TSC (10h), IA32_APIC_BASE (1Bh, reads its reset value;
   * only that value may be written back), SYSENTER_CS/ESP/EIP (174h-176h, stored).
   * Every other index is #GP(0) (SDM Vol. 2 RDMSR/WRMSR).
   */
  private msrOp(write: boolean): void {
    this.needCpl0();
    const r = this.regs, idx = r[1];
    const ic = this.intercepts;
    if (ic.msr && (ic.msrBitmap === null || msrBitmapExits(ic.msrBitmap, idx, write))) {
      this.exit.msrIndex = idx; this.exit.msrWrite = write;
      this.stopHere(CpuExitReason.Msr);
      return;
    }
    this.msrAccess(write);
  }

  /** RDMSR/WRMSR of the MSR in ECX with EDX:EAX, past the CPL check and intercepts; #GP(0) as msrOp says. */
  private msrAccess(write: boolean): void {
    const r = this.regs, idx = r[1];
    if (!write) {
      let lo: number, hi: number;
      switch (idx) {
        case MSR_TSC: { const t = this.tscOffset + this.instructionsNow(); lo = t >>> 0; hi = Math.floor(t / 4294967296) >>> 0; break; }
        case MSR_APIC_BASE: lo = APIC_BASE_RESET; hi = 0; break;
        case MSR_TSC_AUX: lo = this.tscAux; hi = 0; break;
        case MSR_SYSENTER_CS: case MSR_SYSENTER_ESP: case MSR_SYSENTER_EIP:
          lo = this.sysenter[idx - MSR_SYSENTER_CS]; hi = 0; break;
        case MSR_EFER: lo = this.efer; hi = 0; break;
        case MSR_MTRRCAP: lo = MTRRCAP; hi = 0; break;
        case MSR_BIOS_SIGN: lo = 0; hi = 0; break; // no microcode update loaded
        default: {
          const slot = storedMsrSlot(idx);
          if (slot < 0) this.faultCode(GP, 0);
          lo = this.msrStore[slot * 2]; hi = this.msrStore[slot * 2 + 1];
        }
      }
      r[0] = lo; r[2] = hi;
      return;
    }
    const lo = r[0], hi = r[2];
    switch (idx) {
      case MSR_TSC: this.tscOffset = hi * 4294967296 + lo - this.instructionsNow(); return;
      case MSR_APIC_BASE: if (lo !== APIC_BASE_RESET || hi !== 0) this.faultCode(GP, 0); return;
      case MSR_TSC_AUX: if (hi !== 0) this.faultCode(GP, 0); this.tscAux = lo; return; // bits 63:32 reserved
      case MSR_SYSENTER_CS: case MSR_SYSENTER_ESP: case MSR_SYSENTER_EIP:
        this.sysenter[idx - MSR_SYSENTER_CS] = lo; return; // the 32-bit core keeps the low half
      case MSR_EFER: // only NXE: no SYSCALL (SCE) on Intel in 32-bit mode, no long mode (LME) on this i686
        if ((lo & ~((this.cpuidMask.ext1Edx & CPUID_EXT1_EDX) !== 0 ? EFER_NXE : 0)) !== 0 || hi !== 0) this.faultCode(GP, 0);
        this.efer = lo >>> 0;
        this.pagingChanged();
        return;
      case MSR_BIOS_SIGN: return; // writing it before CPUID asks for the microcode revision (0 here)
      default: {
        const slot = storedMsrSlot(idx);
        if (slot < 0 || !storedMsrValid(idx, lo >>> 0, hi >>> 0)) this.faultCode(GP, 0);
        this.msrStore[slot * 2] = idx === MSR_MISC_ENABLE ? ((lo & MISC_ENABLE_RW) | MISC_ENABLE_RO) >>> 0 : lo;
        this.msrStore[slot * 2 + 1] = hi;
      }
    }
  }

  /** Cpu.accessMsr: msrAccess with EAX/ECX/EDX saved and restored, a #GP(0) returned as false. */
  accessMsr(index: number, write: boolean, lo: number, hi: number, out: Uint32Array): boolean {
    const r = this.regs, a = r[0]!, c = r[1]!, d = r[2]!;
    r[0] = lo; r[1] = index; r[2] = hi;
    let ok = true;
    try {
      this.msrAccess(write);
      if (!write) { out[0] = r[0]!; out[1] = r[2]!; }
    } catch (e) {
      if (e !== FAULT) throw e;
      ok = false;
    }
    r[0] = a; r[1] = c; r[2] = d;
    return ok;
  }

  /**
   * SYSENTER (SDM Vol. 2 SYSENTER): #GP(0) in real mode or with SYSENTER_CS[15:2] = 0;
   * else CPL 0 with the flat 4 GiB CS = SYSENTER_CS & FFFCh and SS = CS + 8 the SDM
   * defines (no descriptor is read), ESP/EIP from the MSRs, VM, IF and RF cleared.
   */
  private sysenter32(): void {
    const cs = this.sysenter[0] & 0xfffc;
    if ((this.cr0 & CR0_PE) === 0 || cs === 0) this.faultCode(GP, 0);
    const fl = this.getEflags();
    this.setEflags(fl & ~(VM | IF | RF));
    this.segSet(CS, cs, 0, 0xffffffff, 0xc09b);
    this.segSet(SS, (cs + 8) & 0xffff, 0, 0xffffffff, 0xc093);
    this.regs[4] = this.sysenter[1];
    this.eip = this.sysenter[2];
    this.code32 = true;
    this.cpl = 0;
    if ((fl & VM) !== 0) this.modeChanged(); else this.cplChanged();
  }

  /**
   * SYSEXIT (SDM Vol. 2 SYSEXIT, 32-bit form): #GP(0) unless CPL 0 in protected mode with
   * SYSENTER_CS[15:2] != 0; else CPL 3 with flat CS = SYSENTER_CS + 16 and SS = + 24
   * (RPL 3), ESP = ECX, EIP = EDX.
   */
  private sysexit32(): void {
    const cs = this.sysenter[0] & 0xfffc;
    if ((this.cr0 & CR0_PE) === 0 || cs === 0 || this.cpl !== 0 || (this.flags & VM) !== 0) this.faultCode(GP, 0);
    this.segSet(CS, ((cs + 16) | 3) & 0xffff, 0, 0xffffffff, 0xc0fb);
    this.segSet(SS, ((cs + 24) | 3) & 0xffff, 0, 0xffffffff, 0xc0f3);
    this.regs[4] = this.regs[1];
    this.eip = this.regs[2];
    this.code32 = true;
    this.cpl = 3;
    this.cplChanged();
  }

  /**
   * BT/BTS/BTR/BTC (SDM Vol. 2 BT): `kind` 0 BT, 1 BTS, 2 BTR, 3 BTC, or -1 for group 8 (0F BA /4-/7 imm8).
   * With a register bit offset and a memory operand the offset is signed and may select a
   * word/dword beyond the operand; an immediate offset is taken modulo the operand size.
   * CF = the selected bit; OF, SF, AF, PF are undefined and left unchanged, as is ZF.
   */
  private bitOp(kind: number, imm: boolean): void {
    const osz = this.osz, bits = osz * 8;
    this.decodeModrm();
    let bit: number;
    if (imm) {
      if (this.reg < 4) this.fault(UD);
      kind = this.reg - 4;
      bit = this.fetch8() & (bits - 1);
    } else {
      bit = this.getReg(osz, this.reg);
    }
    if (this.mod !== 3 && !imm) {
      const sbit = osz === 2 ? sext16(bit) : bit | 0;
      const delta = osz * Math.floor(sbit / bits); // arithmetic shift of a signed offset
      this.eaOff = this.asz === 2 ? (this.eaOff + delta) & 0xffff : (this.eaOff + delta) >>> 0;
    }
    bit &= bits - 1;
    const v = kind === 0 ? this.readRM(osz) : this.readRMW(osz), m = (1 << bit) >>> 0;
    this.setFlags(CF, (v & m) !== 0 ? CF : 0);
    if (kind === 0) return;
    this.writeRM(osz, kind === 1 ? v | m : kind === 2 ? v & ~m : v ^ m);
  }

  /**
   * SHLD/SHRD with a count of 1..31 (SDM Vol. 2 SHLD, SHRD). For a 16-bit operand and a
   * count above 16 the result is undefined; this follows the 48-bit concatenation
   * hardware uses (dest:src:dest). CF is the last bit out, OF the sign change, AF 0.
   */
  private shiftDouble(right: boolean, size: number, d: number, s: number, c: number): number {
    let r: number, cf: number;
    if (size === 4) {
      if (right) { r = ((d >>> c) | (s << (32 - c))) >>> 0; cf = (d >>> (c - 1)) & 1; }
      else { r = ((d << c) | (s >>> (32 - c))) >>> 0; cf = (d >>> (32 - c)) & 1; }
    } else if (right) {
      // 48-bit d:s:d shifted right, low 16 bits kept
      const x = s * 65536 + d, hiPart = d * 4294967296; // x = s:d, then d above it
      const y = Math.floor((hiPart + x) / 2 ** c);
      r = y & 0xffff;
      cf = Math.floor((hiPart + x) / 2 ** (c - 1)) & 1;
    } else {
      // 48-bit d:s:d shifted left, top 16 bits kept
      const t = d * 4294967296 + s * 65536 + d;
      const y = t * 2 ** c;
      r = Math.floor(y / 4294967296) % 65536;
      cf = Math.floor(t * 2 ** (c - 1) / 2 ** 47) & 1;
    }
    const of = ((r ^ d) & SIGN[size]) !== 0 ? OF : 0;
    this.setFlags(ARITH, cf | of | this.szp(size, r));
    return r;
  }

  /** CMPXCHG8B m64 (0F C7 /1, SDM Vol. 2): the destination is written in both outcomes. */
  /**
   * Group 9 (0F C7): /1 CMPXCHG8B m64; /6 VMPTRLD, 66 /6 VMCLEAR, F3 /6 VMXON, /7 VMPTRST
   * (memory forms; mod 3 is RDRAND/RDSEED, not implemented).
   */
  private grp9(): void {
    this.decodeModrm();
    if (this.reg === 6) {
      this.vmxInsnExit(this.rep === 0xf3 ? VmxInsn.Vmxon : this.opsizePrefixed() ? VmxInsn.Vmclear : VmxInsn.Vmptrld, true, true);
      return;
    }
    if (this.reg === 7) { this.vmxInsnExit(VmxInsn.Vmptrst, true, true); return; }
    this.cmpxchg8b();
  }

  /** An operand-size prefix is present (66h: the operand size is not the code segment's default). */
  private opsizePrefixed(): boolean {
    return this.osz !== (this.code32 ? 4 : 2);
  }

  private cmpxchg8b(): void {
    if (this.reg !== 1 || this.mod === 3) this.fault(UD);
    const r = this.regs, seg = this.eaSeg, hiOff = this.offPlus(4);
    const lo = this.rd32(seg, this.eaOff), hi = this.rd32(seg, hiOff);
    if (lo === r[0] && hi === r[2]) {
      this.wr32(seg, this.eaOff, r[3]); this.wr32(seg, hiOff, r[1]);
      this.setFlags(ZF, ZF);
    } else {
      this.wr32(seg, this.eaOff, lo); this.wr32(seg, hiOff, hi);
      r[0] = lo; r[2] = hi;
      this.setFlags(ZF, 0);
    }
  }

  /**
   * CPUID when not intercepted: an honest i686 profile. Leaf 0 names the vendor
   * "hvkitSoftx86" (max basic leaf 0Dh, for XSAVE); leaf 1 reports family 6 model 13 stepping 8 (a
   * Pentium M-class P6 with PAE and NX; model >= 3 so SEP is believed, SDM Vol. 2
   * SYSENTER) and exactly what this core implements (CPUID1_EDX); 80000001h EDX reports
   * NX; 80000008h: 32 physical and 32 linear address bits (MAXPHYADDR 32, mmu.ts).
   * `cpuidMask` narrows every feature word; CR4 bits and EFER.NXE of masked features
   * are reserved (#GP(0)), so the core stays what it reports.
   */
  private cpuid(): void {
    const r = this.regs, m = this.cpuidMask;
    const leaf = r[0], sub = r[1];
    const xsave = (m.leaf1Ecx & CPUID1_ECX_XSAVE) !== 0;
    r[0] = 0; r[3] = 0; r[1] = 0; r[2] = 0;
    // Leaves 2-0Ch are within range but not supported here: all zeros (SDM Vol. 2A CPUID).
    if (leaf === 0) {
      r[0] = 0xd;
      // EBX, EDX, ECX spell "hvkitSoftx86" in little-endian order.
      r[3] = 0x696b7668; // "hvki"
      r[2] = 0x666f5374; // "tSof"
      r[1] = 0x36387874; // "tx86"
    } else if (leaf === 1) {
      r[0] = CPUID_SIGNATURE; r[2] = (CPUID1_EDX & m.leaf1Edx) >>> 0;
      // ECX: XSAVE, and OSXSAVE as CR4.OSXSAVE holds it; no SSE3-era feature.
      if (xsave) r[1] = (CPUID1_ECX_XSAVE | ((this.cr4 & CR4_OSXSAVE) !== 0 ? CPUID1_ECX_OSXSAVE & m.leaf1Ecx : 0)) >>> 0;
    } else if (leaf === 0xd) {
      // SDM Vol. 1 13.2: sub-leaf 0 EDX:EAX = the XCR0 bits supported, EBX = the area size
      // for the current XCR0, ECX = for all supported (576 both: x87 is the only component).
      // Sub-leaf 1 EAX = 0: no XSAVEOPT, XSAVEC, XGETBV ECX=1, XSAVES. Others: invalid, zeros.
      if (xsave && sub === 0) { r[0] = XCR0_SUPPORTED; r[3] = XSAVE_AREA_SIZE; r[1] = XSAVE_AREA_SIZE; }
    } else if (leaf === 0x80000000) {
      r[0] = 0x80000008;
    } else if (leaf === 0x80000001) {
      r[2] = (CPUID_EXT1_EDX & m.ext1Edx) >>> 0;
    } else if (leaf === 0x80000008) {
      r[0] = 0x2020;
    }
  }
  /** CR4 bits this core accepts under the current cpuidMask (movCr). */
  private cr4Allowed(): number {
    const f = CPUID1_EDX & this.cpuidMask.leaf1Edx;
    let ok = CR4_DEFINED;
    if ((f & (1 << 2)) === 0) ok &= ~CR4_DE;
    if ((f & (1 << 3)) === 0) ok &= ~CR4_PSE;
    if ((f & (1 << 4)) === 0) ok &= ~CR4_TSD;
    if ((f & (1 << 6)) === 0) ok &= ~CR4_PAE;
    if ((f & (1 << 13)) === 0) ok &= ~CR4_PGE;
    if ((f & (1 << 24)) === 0) ok &= ~CR4_OSFXSR;
    if ((this.cpuidMask.leaf1Ecx & CPUID1_ECX_XSAVE) !== 0) ok |= CR4_OSXSAVE; // SDM 2.5: CR4.OSXSAVE needs CPUID XSAVE
    return ok;
  }

}

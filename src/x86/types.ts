// The contract of the one x86 core (src/x86). The soft engine (src/kernel) drives it
// as "hardware"; plugins/realmode drives another instance as its emulator.
// State mirrors the VMCS guest-state area (SDM Vol. 3C 25.4) so the VMX and SVM
// extensions map it field by field.

/** A segment register as the VMCS holds it: selector, base, limit and access rights. */
export interface SegmentReg {
  selector: number;
  base: number;
  limit: number;
  /**
   * Access rights in the VMCS format (SDM 25.4.1, table 25-2): bits 3:0 type, 4 S,
   * 6:5 DPL, 7 P, 12 AVL, 13 L, 14 D/B, 15 G, 16 segment unusable.
   */
  attrib: number;
}

export interface TableReg {
  base: number;
  limit: number;
}

/** Activity states, numbered as the VMCS activity-state field (SDM 25.4.2). */
export const enum Activity {
  Active = 0,
  Hlt = 1,
  Shutdown = 2,
  WaitForSipi = 3,
}

/** Interruptibility bits, as the VMCS interruptibility-state field (SDM 25.4.2, table 25-3). */
export const enum Interruptibility {
  BlockingBySti = 1 << 0,
  BlockingByMovSs = 1 << 1,
  BlockingBySmi = 1 << 2,
  BlockingByNmi = 1 << 3,
}

/** Architectural state of one core. Plain, JSON-safe; 32-bit values as unsigned numbers. */
export interface X86State {
  eax: number; ecx: number; edx: number; ebx: number;
  esp: number; ebp: number; esi: number; edi: number;
  eip: number;
  eflags: number;
  es: SegmentReg; cs: SegmentReg; ss: SegmentReg; ds: SegmentReg; fs: SegmentReg; gs: SegmentReg;
  ldtr: SegmentReg; tr: SegmentReg;
  gdtr: TableReg; idtr: TableReg;
  cr0: number; cr2: number; cr3: number; cr4: number;
  dr7: number;
  efer: number;
  activity: Activity;
  interruptibility: number;
  /**
   * XCR0 (SDM Vol. 1 13.3), optional: getState fills it only when the object already has
   * the field; setState loads it only when present (a monitor emulating an XSETBV exit).
   */
  xcr0?: number;
  /**
   * The x87 FPU (SDM Vol. 1 8.1), optional: getState fills it only when the object
   * already has the field (writing into its objects, no allocation); setState loads it
   * only when present.
   */
  fpu?: X87State;
}

/** One x87 register as its 80 bits: significand 63:32 and 31:0, and sign << 15 | biased exponent. */
export interface X87Register { hi: number; lo: number; se: number }

/**
 * x87 state, the content of an FSAVE image. `regs` are the physical registers R0-R7
 * (ST(i) is R((TOP + i) mod 8), TOP being FSW 13:11). `ftw` is the full tag word (2 bits
 * per physical register, 11b = empty) as FSTENV stores it; on load only "empty or not"
 * counts, as with FLDENV. fip/fdp are offsets, fcs/fds selectors, fop the 11-bit opcode.
 */
export interface X87State {
  fcw: number; fsw: number; ftw: number;
  fip: number; fcs: number; fdp: number; fds: number; fop: number;
  regs: X87Register[];
}

/** GPR indices in x86 ModR/M order; also the layout of a DCB's guestControl frame. */
export const enum Gpr {
  Eax = 0, Ecx = 1, Edx = 2, Ebx = 3, Esp = 4, Ebp = 5, Esi = 6, Edi = 7,
}

export type AccessSize = 1 | 2 | 4;

/**
 * Physical memory as the core sees it after segmentation (and later paging).
 * The engine provides it: RAM frames mapped by a GuestPhysSpace, the rest MMIO.
 * Must not throw: unmapped reads return all-ones, unmapped writes are dropped
 * (or dispatched to MMIO by the provider).
 */
export interface PhysMemory {
  read8(pa: number): number;
  read16(pa: number): number;
  read32(pa: number): number;
  write8(pa: number, value: number): void;
  write16(pa: number, value: number): void;
  write32(pa: number, value: number): void;
  /**
   * Optional fast path. When present, guest-physical bytes [0, ram.length) are
   * plain RAM that is readable, writable and executable, with no MMIO, no
   * read-only page, no alias elsewhere and no address masking inside it: the
   * core may load and store `ram[pa]` directly instead of calling read and write.
   * The provider shrinks or empties it whenever that stops being true (a
   * read-only or MMIO page inside it, A20 gated off: at most 1 MiB); the core
   * re-reads it at the start of every `Cpu.run` and `deliverEvent`, so it may
   * change only between those calls. Bytes written behind the core's back
   * (the monitor, DMA, another core) must be written between runs: X86Cpu drops
   * its decoded-instruction cache at each run() (see X86Cpu.invalidateCode).
   */
  readonly ram?: Uint8Array;
  /**
   * An instruction fetch outside `ram` (EPT execute permission, NPT NX): when absent,
   * read8 is used. Like every method here it may throw MEM_ABORT (memory.ts) to refuse
   * the access; only the core catches it.
   */
  fetch8?(pa: number): number;
}

/** Port I/O that the core performs itself when the instruction is not intercepted. */
export interface IoPorts {
  in(port: number, size: AccessSize): number;
  out(port: number, size: AccessSize, value: number): void;
}

/**
 * What makes the core stop instead of executing. The engine fills these from the
 * VMCS controls or the VMCB intercept vectors before each run; the core only reads them.
 */
export interface InterceptControls {
  hlt: boolean;
  cpuid: boolean;
  /** Every IN/OUT/INS/OUTS exits (VMX "unconditional I/O exiting"). */
  ioAll: boolean;
  /** Else, when set: one bit per port (65536 bits, port p at byte p>>3 bit p&7); a set bit exits. */
  ioBitmap: Uint8Array | null;
  /** One bit per vector (32 bytes): INT n for a set vector exits before vectoring (SVM INTn intercept). */
  softIntBitmap: Uint8Array | null;
  /** Bit v set: exception v exits instead of being delivered (VMX exception bitmap, SVM exception intercepts). */
  exceptionBitmap: number;
  /**
   * Optional: a #DB stopped by exceptionBitmap still updates DR6 first, as AMD SVM does
   * (APM 15.12); unset, DR6 is left unchanged and the bits go to exit.dbBits (Intel VMX, SDM 27.1).
   */
  dbExitSetsDr6?: boolean;
  /** RDMSR/WRMSR exit (VMX "use MSR bitmaps" off, SVM MSR_PROT with every bit set); else the core's own MSR set. */
  msr: boolean;
  /**
   * With `msr` set and this non-null: only the accesses whose bit is set exit, per the
   * VMX MSR-bitmap layout (SDM 25.6.9): 4 KiB, read-low (MSRs 0-1FFF) at byte 0,
   * read-high (C0000000-C0001FFF) at 1024, write-low at 2048, write-high at 3072; an
   * MSR outside both ranges always exits (SDM 26.1.3). Null: every access exits.
   */
  msrBitmap: Uint8Array | null;
  /** InsnIntercept bits: a set bit makes that instruction stop with CpuExitReason.Instruction. */
  insn: number;
  /**
   * CR0/CR4 guest/host masks and read shadows (SDM 25.6.6, 26.1.3, 26.3): a MOV to
   * CR0/CR4 that would give a masked bit a value other than the shadow's stops with
   * CrAccess; reads (MOV from CR, SMSW) see the shadow in masked bits; a write that does
   * not stop leaves masked bits unchanged. CLTS and LMSW follow their own rules. 0 = off.
   */
  cr0Mask: number;
  cr0Shadow: number;
  cr4Mask: number;
  cr4Shadow: number;
  /** MOV to CR3 stops with CrAccess (VMX CR3-load exiting), unless the value is a CR3 target (below). */
  cr3LoadExit: boolean;
  /**
   * Optional, with cr3LoadExit: a MOV to CR3 of one of `cr3Targets[0 .. cr3TargetCount-1]`
   * does not stop (VMX CR3-target values, SDM 26.1.3). Absent or 0: every MOV to CR3 stops.
   */
  cr3TargetCount?: number;
  cr3Targets?: Uint32Array;
  /** MOV from CR3 stops with CrAccess (VMX CR3-store exiting). */
  cr3StoreExit: boolean;
  /**
   * Bit n (DescInsn n) set: that descriptor-table instruction stops with Instruction /
   * InsnIntercept.DescTable after its #UD and CPL checks (VMX descriptor-table exiting sets
   * all eight, SDM 26.1.3; SVM has a read and a write intercept per register, APM 15.9).
   */
  descExitMask: number;
  /** Task switches stop with CpuExitReason.TaskSwitch (always on under VMX, SDM 26.1.2; the SVM TASK_SWITCH intercept). */
  taskSwitchExit: boolean;
  /**
   * SVM CR read/write intercepts (APM 15.9), bit n for CRn: MOV from CRn (and SMSW for CR0)
   * stops with CrAccess when bit n of crReadExit is set; MOV to CRn (and CLTS, LMSW for CR0)
   * when bit n of crWriteExit is set. Checked after #UD and the CPL check, before operand #GP.
   */
  crReadExit: number;
  crWriteExit: number;
  /**
   * SVM selective CR0 write intercept (APM 15.9.1): a MOV to CR0 or LMSW that changes any
   * CR0 bit other than TS and MP stops with CrAccess and exit.crSelective set.
   */
  cr0SelectiveExit: boolean;
}

/** Instructions `InterceptControls.insn` can intercept, one bit each; exit.insn names the one that stopped. */
export const enum InsnIntercept {
  Rdtsc = 1, Rdpmc = 2, Invd = 4, Wbinvd = 8, Invlpg = 16, Vmcall = 32,
  /** VMCLEAR, VMLAUNCH, VMPTRLD, VMPTRST, VMREAD, VMRESUME, VMWRITE, VMXOFF, VMXON, INVEPT, INVVPID: exit.vmxInsn. */
  VmxInsn = 64,
  MovDr = 128,
  /** PAUSE (F3 90). */
  Pause = 256,
  /** VMMCALL (0F 01 D9, AMD APM Vol. 3): #UD when not intercepted. */
  Vmmcall = 512,
  /** VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA (0F 01 D8, DA-DF): exit.svmInsn; #UD when not intercepted. */
  SvmInsn = 1024,
  /** MONITOR (0F 01 C8): EAX holds the linear address in exit.linear. */
  Monitor = 1 << 11,
  /** MWAIT (0F 01 C9). */
  Mwait = 1 << 12,
  /** RDTSCP (0F 01 F9). */
  Rdtscp = 1 << 13,
  /** XSETBV (0F 01 D1), after its #UD/#GP checks (SDM 26.1.1). */
  Xsetbv = 1 << 14,
  /**
   * Names the exit of a descriptor-table instruction (exit.descInsn); which of them stop
   * is `InterceptControls.descExitMask`. The operand is in the insnMem/insnReg/insnRm/
   * insnAddrSize/insnSeg/insnOffset/linear fields.
   */
  DescTable = 1 << 15,
  /** PUSHF, POPF, IRET (SVM intercepts, APM 15.9). */
  Pushf = 1 << 16,
  Popf = 1 << 17,
  Iret = 1 << 18,
  /** ICEBP / INT1 (F1) (SVM ICEBP intercept). */
  Icebp = 1 << 19,
}

/** DescTable intercepts: which instruction, in exit.descInsn (SDM table 28-10/28-11 instruction identity). */
export const enum DescInsn { Sgdt = 0, Sidt = 1, Lgdt = 2, Lidt = 3, Sldt = 4, Str = 5, Lldt = 6, Ltr = 7 }

/** How a task switch was initiated (SDM table 28-2, exit qualification bits 31:30). */
export const enum TaskSwitchSource { Call = 0, Iret = 1, Jmp = 2, Gate = 3 }

/** Which VMX instruction stopped (InsnIntercept.VmxInsn), by mnemonic. */
export const enum VmxInsn {
  Vmclear = 0, Vmlaunch = 1, Vmptrld = 2, Vmptrst = 3, Vmread = 4, Vmresume = 5,
  Vmwrite = 6, Vmxoff = 7, Vmxon = 8, Invept = 9, Invvpid = 10,
}

/** CR access types, as VMX exit qualification bits 5:4 (SDM table 28-3). */
export const enum CrAccessType { MovToCr = 0, MovFromCr = 1, Clts = 2, Lmsw = 3 }

/** Why `Cpu.run` returned. The core is stopped *before* the intercepted instruction. */
export const enum CpuExitReason {
  None = 0,
  /** The instruction budget ran out (the host's timeslice ended). */
  Budget = 1,
  Hlt = 2,
  Cpuid = 3,
  Io = 4,
  /** INT n / INT3 / INTO intercepted by softIntBitmap. */
  SoftInt = 5,
  /** An exception whose bit is set in exceptionBitmap. */
  Exception = 6,
  /** A fault while delivering a double fault (SDM 6.15, interrupt 8): the core is in shutdown. */
  TripleFault = 7,
  /** HLT executed without the HLT intercept: the core now waits for an interrupt. */
  Halted = 8,
  /** RDMSR/WRMSR intercepted by `msr`: index in exit.msrIndex, direction in exit.msrWrite. */
  Msr = 9,
  /** An instruction intercepted by `insn`: exit.insn, and its operands (see CpuExit). */
  Instruction = 10,
  /** A control-register access intercepted by the CR masks/shadows or CR3 exiting: exit.cr*. */
  CrAccess = 11,
  /**
   * The PhysMemory provider refused a physical access by throwing MEM_ABORT (memory.ts):
   * an EPT violation or misconfiguration, a nested page fault. The instruction (or the
   * event delivery) did not happen: EIP and ESP are at its start; exit.mem* say which
   * access; the provider keeps its own reason (which permission, which table level).
   */
  MemAbort = 12,
  /**
   * A task switch (SDM 7.3: JMP/CALL to a TSS or task gate, IRET with NT, an event through
   * a task gate) when `taskSwitchExit` is set: stopped before any state changed, exit.ts*.
   */
  TaskSwitch = 13,
}

/** Kinds of software-interrupt instruction, for SoftInt exits. */
export const enum SoftIntKind { IntN = 0, Int3 = 1, Into = 2 }

/**
 * Exit information, one reused object per core (no allocation per exit).
 * Fields not relevant to `reason` keep stale values.
 */
export interface CpuExit {
  reason: CpuExitReason;
  /** Length in bytes of the instruction that caused the exit (prefixes included). */
  instrLen: number;
  // I/O (reason Io)
  ioPort: number;
  ioSize: AccessSize;
  ioIn: boolean;
  ioString: boolean;
  ioRep: boolean;
  /** The port came from an imm8 operand (SDM 28.2.1 table 28-5 bit 6). */
  ioImm: boolean;
  /** Address size of a string instruction: 2 or 4. */
  ioAddrSize: number;
  /** Segment register index of a string OUTS source (ES=0..GS=5, x86 Sreg order). */
  ioSeg: number;
  // Exceptions and software interrupts
  vector: number;
  errorCode: number;
  hasErrorCode: boolean;
  softIntKind: SoftIntKind;
  // MSR access (reason Msr): ECX and whether it was WRMSR (the value is in EDX:EAX).
  msrIndex: number;
  msrWrite: boolean;
  // Instruction (reason Instruction)
  /** The InsnIntercept bit of the instruction. */
  insn: number;
  /** INVLPG: the linear address of the operand; LMSW and VMX instructions with a memory operand: its linear address. */
  linear: number;
  /** MOV DR: DR number as encoded (0-7), direction (true = MOV from DR), GPR. */
  drNumber: number;
  drRead: boolean;
  drGpr: number;
  /** VMX instructions: which one. */
  vmxInsn: VmxInsn;
  /** SVM instructions (InsnIntercept.SvmInsn): the ModR/M r/m of 0F 01 D8+n (0 VMRUN, 2 VMLOAD, 3 VMSAVE, 4 STGI, 5 CLGI, 6 SKINIT, 7 INVLPGA). */
  svmInsn: number;
  /** VMX instructions with a ModR/M: the memory form, the reg field, the r/m register (register form), address size (2/4), segment (ES..GS). */
  insnMem: boolean;
  insnReg: number;
  insnRm: number;
  insnAddrSize: number;
  insnSeg: number;
  /** Memory form: the effective-address offset (before the segment base). */
  insnOffset: number;
  /**
   * Memory form: the registers the ModR/M and SIB named as base and index (8: none), the
   * scale (0-3) and the displacement as encoded (16-bit forms unextended); the register
   * form gives 8, 8, 0, 0. With insnOpSize (2 or 4, after a 66h prefix): what the VMX
   * instruction-information field reports (SDM 28.2.5).
   */
  insnBase: number;
  insnIndex: number;
  insnScale: number;
  insnDisp: number;
  insnOpSize: number;
  // CR access (reason CrAccess)
  crNumber: number;
  crAccessType: CrAccessType;
  /** MOV CR: the GPR. */
  crGpr: number;
  /** LMSW: the 16-bit source, and whether it came from memory (then `linear` holds its address). */
  lmswSource: number;
  lmswMem: boolean;
  /** crReadExit/crWriteExit: the SVM intercept that stopped it; cr0SelectiveExit: the selective one. */
  crSelective: boolean;
  // Descriptor-table instructions (InsnIntercept.DescTable)
  descInsn: DescInsn;
  // Task switch (reason TaskSwitch)
  tsSelector: number;
  tsSource: TaskSwitchSource;
  /** The event that went through a task gate had an error code (pushed on the new task's stack). */
  tsHasErrorCode: boolean;
  tsErrorCode: number;
  /**
   * The EFLAGS.RF the switch would save in the outgoing TSS: 1 for a fault-class exception
   * through a task gate (its image has RF = 1, SDM 17.3.1.1), else the live RF (AMD APM
   * 15.14.1: EXITINFO2 bit 48). Optional for engines that do not report it.
   */
  tsRf?: boolean;
  // Physical-access abort (reason MemAbort), filled by the core before each access that leaves the RAM window.
  /** The physical address of the refused access. */
  memGpa: number;
  memWrite: boolean;
  /** An instruction fetch. */
  memFetch: boolean;
  /** The access was to a paging structure during a page walk (SDM 28.2.1 table 28-7 bit 8 = 0). */
  memWalk: boolean;
  /** The linear address behind it, when there is one (SDM: guest-linear-address valid). */
  memLinear: number;
  memLinearValid: boolean;
  /**
   * IDT-vectoring information (SDM 27.2.4, APM EXITINTINFO): the exit (an intercepted
   * exception, MemAbort, TaskSwitch, TripleFault excluded) happened while delivering this
   * event; the monitor re-injects it. Cleared on every other exit.
   */
  vectoringValid: boolean;
  vectoringType: EventType;
  vectoringVector: number;
  vectoringErrorCode: number;
  vectoringHasErrorCode: boolean;
  /**
   * The exit (an intercepted fault, MemAbort or TaskSwitch) stopped an IRET that found
   * blocking by NMI in effect and cleared it (SDM 6.7.1; VMX: SDM 28.2.2 "NMI unblocking
   * due to IRET"). Cleared at every run and when the IRET completes or its fault is
   * delivered to the guest.
   */
  iretUnblockedNmi: boolean;
  /**
   * An intercepted #DB (reason Exception, vector 1): the DR6 bits it would set, B0-B3 (3:0),
   * BD (13), BS (14), BT (15). DR6 itself is left unchanged (SDM 27.1; the VMX exit
   * qualification carries them, table 28-1) unless `InterceptControls.dbExitSetsDr6`.
   * Written at every exception-bitmap exit of a hardware exception: 0 for other vectors;
   * meaningless for other exits (an INT1/ICEBP sets no DR6 bit).
   */
  dbBits: number;
}

/** Events the engine asks the core to deliver before the next instruction. */
export const enum EventType {
  ExtInt = 0,
  Nmi = 2,
  HardwareException = 3,
  SoftwareInt = 4,
  /** INT1/ICEBP (SDM 25.8.3 type 5). */
  PrivilegedSoftwareException = 5,
  /** INT3, INTO (type 6). */
  SoftwareException = 6,
}

/** The core itself, as the engine and the realmode emulator drive it. */
export interface Cpu {
  readonly intercepts: InterceptControls;
  readonly exit: CpuExit;
  /** Instructions retired since the core was created (exact below 2^53): the deterministic clock's source. */
  readonly retired: number;
  /** TSC = tscOffset + instructions retired (RDTSC, RDMSR IA32_TSC); may be negative (VMX TSC offsetting, SDM 26.3). */
  tscOffset: number;
  mem: PhysMemory;
  io: IoPorts;
  /** IA32_TSC_AUX, the ECX of RDTSCP. */
  tscAux: number;
  /** RDTSCP executes when set, else #UD (VMX "enable RDTSCP", SDM 25.6.2; CPUID 8000_0001 EDX.27). */
  rdtscpEnabled: boolean;
  /** The A20M# input: AND-ed into every linear address (0xFFEFFFFF wraps at 1 MiB as an 8086 does). */
  a20Mask: number;
  /** Run up to `budget` instructions; stops at the first intercept. */
  run(budget: number): CpuExitReason;
  getState(out: X86State): void;
  setState(state: X86State): void;
  /**
   * Deliver an event now, through the IVT in real mode (SDM 20.1.4), as the
   * VM-entry event injection does (SDM 27.6). Faults during delivery escalate
   * as they would on hardware.
   */
  deliverEvent(type: EventType, vector: number, errorCode: number, hasErrorCode: boolean): void;
  /** Whether an external interrupt could be taken now (IF=1, no STI/MOV SS shadow). */
  interruptible(): boolean;
  /**
   * Guest-physical bytes [pa, pa+len) were written other than by this core while
   * it is inside `run` (an IoPorts or MMIO handler doing DMA): drop any decoded
   * copy of them. Writes between runs need no call (see PhysMemory.ram).
   */
  invalidateCode?(pa: number, len: number): void;
  /**
   * Optional: RDMSR (write false; the value into out[0] = bits 31:0, out[1] = 63:32) or WRMSR
   * (lo/hi) of the core's own MSR set, without the CPL check or intercepts: the VMX MSR-load
   * and MSR-store areas (SDM 27.4, 28.3, 28.4). False where the instruction would #GP(0);
   * registers and state other than the MSR are untouched.
   */
  accessMsr?(index: number, write: boolean, lo: number, hi: number, out: Uint32Array): boolean;
}

// The public plugin API of the monitor. Built-in plugins (plugins/*) use only this
// module, src/kernel/api.ts and src/x86 — exactly what a third-party plugin gets.
import type { DependencyContainer, InjectionToken } from "tsyringe";
import type { EventEmitter } from "eventemitter3";
import type { AccessSize, X86State, EventType } from "../x86/types.js";
import type { CPtr, KernelExtensionHost, Syscalls } from "../kernel/api.js";
import type { ConfigError } from "./config-error.js";

export type { AccessSize, X86State, DependencyContainer, InjectionToken };

// ---------------------------------------------------------------------------
// Errors

export { ConfigError } from "./config-error.js";
/**
 * Parse plugin options strictly with a zod schema: `undefined` counts as `{}`; the first
 * problem throws a ConfigError naming `path` plus the bad key, with a "did you mean" hint
 * for a misspelt key. Every plugin's `parseConfig` can be one call to this.
 */
export { parseOptions, joinPath } from "./zod-errors.js";

// ---------------------------------------------------------------------------
// Plugins

/** Plugins are registered in phase order, then in config order within a phase. */
export type Phase = "core" | "backend" | "bus" | "device" | "firmware" | "late";
export const PHASES: readonly Phase[] = ["core", "backend", "bus", "device", "firmware", "late"];

/** What the monitor hands every plugin, so a plugin outside the tree imports nothing. */
export interface HostApi {
  readonly tokens: typeof Tokens;
  readonly inject: typeof import("tsyringe").inject;
  readonly injectable: typeof import("tsyringe").injectable;
  readonly injectAll: typeof import("tsyringe").injectAll;
  readonly Lifecycle: typeof import("tsyringe").Lifecycle;
  readonly ConfigError: typeof ConfigError;
}

/** The one default export of a plugin module. */
export interface MonitorPlugin<C = unknown> {
  readonly id: string;
  readonly phase: Phase;
  /** Plugin ids that must be loaded before this one (checked before register). */
  readonly requires?: readonly string[];
  /** Parse this plugin's options strictly; throw ConfigError naming `path` + the bad key. */
  parseConfig(raw: unknown, path: string): C;
  /** Register into the VM's child container. */
  register(vm: DependencyContainer, config: C, host: HostApi): void | Promise<void>;
}

// ---------------------------------------------------------------------------
// Devices and buses (STYLE rules 1, 2, 6)

export interface IoDevice {
  /** Shown in errors and logs, e.g. "uart16550@com1". */
  readonly name: string;
  /** `offset` is relative to the range's base. Must not throw; undecoded reads return all-ones. */
  read(offset: number, size: AccessSize): number;
  write(offset: number, size: AccessSize, value: number): void;
}

export interface IoRange {
  space: "pio" | "mmio";
  base: number;
  length: number;
}

export type BusInsertError =
  | { kind: "overlap"; with: string; message: string }
  | { kind: "zero-length"; message: string }
  | { kind: "overflow"; message: string };

export interface Bus {
  readonly space: "pio" | "mmio";
  insert(range: IoRange, device: IoDevice): BusInsertError | undefined;
  read(addr: number, size: AccessSize): number;
  write(addr: number, size: AccessSize, value: number): void;
  /** Accesses that hit no device (read as all-ones, writes ignored). */
  readonly unclaimed: { reads: number; writes: number };
}

/** A device a plugin asks the monitor to place on a bus (multi-bound). */
export interface IoDeviceContribution {
  readonly device: IoDevice;
  readonly ranges: readonly IoRange[];
}

export interface IrqLine {
  raise(): void;
  lower(): void;
}

/**
 * The platform interrupt controller (the 8259A pair of devices-lpc; IOAPIC/LAPIC later),
 * registered by a plugin under Tokens.InterruptController. The monitor forwards every
 * IrqLines level change to it and, when `hasInterrupt()`, opens an interrupt window on the
 * vCPU; when the guest can take it, it calls `acknowledge()` (the INTA cycle) and injects
 * the vector. Acknowledging only at injection is what keeps interrupts from being lost or
 * duplicated.
 */
export interface InterruptController {
  /** An input line changed level (edge detection is the controller's business). */
  setIrq(irq: number, level: boolean): void;
  /** INTR towards the CPU is asserted. */
  hasInterrupt(): boolean;
  /** The INTA cycle: the vector to deliver (a spurious vector when nothing is left to deliver). */
  acknowledge(): number;
}

/**
 * One virtual clock drives every timer. Time is in nanoseconds since the VM was built.
 * Callbacks run on the monitor's thread between vCPU runs; they must not throw.
 */
export interface VirtualClock {
  /** "host": follows the host's monotonic clock; "instructions": advances with guest instructions retired (deterministic). */
  readonly mode: "host" | "instructions";
  now(): number;
  /** Call `fn(now)` once virtual time reaches `atNs`; returns a handle for `cancel`. */
  setTimer(atNs: number, fn: (now: number) => void): number;
  cancel(handle: number): void;
}

/** The monitor's interrupt lines, forwarded to the InterruptController when one is registered. */
export interface IrqLines {
  line(irq: number): IrqLine;
  level(irq: number): boolean;
}

export interface DeviceEvents {
  invalidRead(offset: number, size: AccessSize): void;
  invalidWrite(offset: number, size: AccessSize, value: number): void;
}
export const NO_EVENTS: DeviceEvents = { invalidRead() {}, invalidWrite() {} };

// ---------------------------------------------------------------------------
// Console

export interface ConsoleEvents {
  /** One byte of guest output; `source` names the producer ("com1", "bios-tty", ...). */
  output: (byte: number, source: string) => void;
}

export interface Console {
  /** Guest output towards the host. */
  write(source: string, byte: number): void;
  /** Subscribe to host input: every subscriber sees every byte. Returns the unsubscribe function. */
  onInput(listener: (byte: number) => void): () => void;
  /** Host side: feed typed input to the guest. */
  type(bytes: Uint8Array | string): void;
  readonly events: EventEmitter<ConsoleEvents>;
}

// ---------------------------------------------------------------------------
// Guest memory as the monitor sees it (RAM frames mapped through capabilities)

export interface GuestMemory {
  /** Bytes of RAM mapped from guest-physical 0. */
  readonly size: number;
  /** Reads outside RAM return all-ones; writes outside RAM are dropped. */
  read8(gpa: number): number;
  read16(gpa: number): number;
  read32(gpa: number): number;
  write8(gpa: number, value: number): void;
  write16(gpa: number, value: number): void;
  write32(gpa: number, value: number): void;
  /** Copy bytes in; returns false (writes nothing) if the range leaves RAM. */
  writeBytes(gpa: number, bytes: Uint8Array): boolean;
  /** Copy bytes out; returns undefined if the range leaves RAM. */
  readBytes(gpa: number, length: number): Uint8Array | undefined;
  /**
   * Exit-path forms that allocate nothing: copy `length` bytes between guest memory at
   * `gpa` and `buf` at `offset`. False (nothing copied) if either range is out of bounds.
   */
  readInto(gpa: number, buf: Uint8Array, offset: number, length: number): boolean;
  writeFrom(gpa: number, buf: Uint8Array, offset: number, length: number): boolean;
}

// ---------------------------------------------------------------------------
// Assists shared by the backends (STYLE rule 11, libnvmm's nvmm_assist_io)

export { IoAssist, IoAssistStatus, IO_ASSIST_MAX_ELEMENTS, newStringIo, busPortAccess, stringIoUnsupported, type StringIo, type PortAccess } from "./assist/io-assist.js";
export { MemAssist, MemAssistStatus, MEM_ASSIST_MAX_ELEMENTS, type MemAssistEnv } from "./assist/mem-assist.js";
export { TaskSwitchAssist, TaskSwitchOutcome, faultSetsRf, type TaskGateEvent, type TaskSwitchFault } from "./assist/task-switch.js";

// ---------------------------------------------------------------------------
// The backend-neutral vCPU (STYLE rule 11: libnvmm-like)

/** Parts of the state for getState/setState. */
export const enum StateParts {
  Gprs = 1,
  /** EIP, EFLAGS. */
  Basic = 2,
  Segments = 4,
  /** CR0/2/3/4, DR7, EFER. */
  Control = 8,
  /** GDTR, IDTR, LDTR, TR. */
  Tables = 16,
  /** Activity and interruptibility. */
  Events = 32,
  All = 63,
}

export interface IoExit {
  kind: "io";
  port: number;
  size: AccessSize;
  in: boolean;
  /** OUT: the value written. IN: the handler stores the value read here; the backend commits it at the next run. */
  data: number;
  /**
   * Set only for string I/O (INS/OUTS, REP or not): the backend already moved `count`
   * elements through the IoAssist and the PIO bus, so the handler must not touch the bus
   * again; the exit is reported for the statistics. 0 for a REP with a count of 0.
   */
  count?: number;
}
export interface MmioExit {
  kind: "mmio";
  gpa: number;
  size: AccessSize;
  write: boolean;
  data: number;
  /**
   * Set only when the backend's MemAssist already performed the instruction against the
   * MMIO bus (EPT violation / nested page fault): elements it moved (1 for a non-string
   * instruction, 0 when it raised an exception instead). The handler must not touch the bus
   * again; the exit is reported for the statistics, as IoExit.count. `gpa` and `write` are
   * those of the faulting access; `size` and `data` carry nothing then.
   */
  count?: number;
}
export interface CpuidExit {
  kind: "cpuid";
  leaf: number;
  subleaf: number;
  /** The handler stores the result; the backend commits it and advances EIP at the next run. */
  eax: number; ebx: number; ecx: number; edx: number;
}
export interface HltExit {
  kind: "hlt";
  /** EFLAGS.IF at the HLT: false means the guest can never wake. */
  interruptsEnabled: boolean;
}
export interface ShutdownExit { kind: "shutdown"; reason: "triple-fault" | "reset" }
/** The host's timeslice ended (VMX external-interrupt exit, SVM INTR): nothing for the guest to see. */
export interface PreemptExit { kind: "preempt" }
export interface InterruptWindowExit { kind: "interrupt-window" }
export interface ExceptionExit { kind: "exception"; vector: number; errorCode: number; hasErrorCode: boolean }
/** VM entry failed: VMfail (the error number), a guest-state check (VMX exit 33/34), or VMEXIT_INVALID. */
export interface EntryFailureExit { kind: "entry-failure"; code: number; message: string }
/**
 * RDMSR/WRMSR (VMX exits 31/32, SVM MSR intercept). WRMSR: `lo`/`hi` hold EAX/EDX as
 * written. RDMSR: the handler stores the value in `lo`/`hi`; the backend commits them to
 * EAX/EDX and advances EIP at the next run (a write is completed by the EIP advance alone).
 * A handler that refuses the access injects #GP(0) instead: a hardware exception injected
 * after an exit cancels its completion (the instruction faulted; EIP stays on it).
 */
export interface MsrExit { kind: "msr"; write: boolean; index: number; lo: number; hi: number }
/** An exit the backend cannot turn into any other kind; `code` is the raw exit reason / exit code. */
export interface UnhandledExit {
  kind: "unhandled"; code: number; message: string;
  /**
   * Set when the backend stopped on a named internal error rather than an exit it does not
   * emulate. "delivery-event": an access to MMIO while the CPU was delivering an event (its
   * IDT, stack or TSS is outside RAM), KVM's KVM_INTERNAL_ERROR_DELIVERY_EV; the event stays
   * pending (re-injected if the monitor runs the vCPU again). "vmx-abort": the kernel reported
   * a VMX abort (SDM 28.7, e.g. a bad VM-exit MSR area); the logical processor is in shutdown
   * and every further run returns the same outcome.
   */
  internal?: "delivery-event" | "vmx-abort" | undefined;
}

/** A discriminated union; backends reuse one object per kind (no allocation per exit). */
export type VmExit =
  | IoExit | MmioExit | CpuidExit | HltExit | ShutdownExit | PreemptExit
  | InterruptWindowExit | ExceptionExit | EntryFailureExit | UnhandledExit | MsrExit;
export type VmExitKind = VmExit["kind"];
export const VM_EXIT_KINDS: readonly VmExitKind[] = [
  "io", "mmio", "cpuid", "hlt", "shutdown", "preempt", "interrupt-window", "exception", "entry-failure", "unhandled",
  "msr",
];

/**
 * One reused object per exit kind for a VcpuBackend's run(): the run loop handles an exit
 * before it calls run() again, so a backend fills one of these and returns it instead of
 * allocating per exit. `stringIo` and `mmio` carry `count` (an assist already performed them).
 */
export class ExitObjects {
  readonly io: IoExit = { kind: "io", port: 0, size: 1, in: false, data: 0 };
  readonly stringIo: IoExit = { kind: "io", port: 0, size: 1, in: false, data: 0, count: 0 };
  readonly mmio: MmioExit = { kind: "mmio", gpa: 0, size: 1, write: false, data: 0, count: 0 };
  readonly cpuid: CpuidExit = { kind: "cpuid", leaf: 0, subleaf: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
  readonly msr: MsrExit = { kind: "msr", write: false, index: 0, lo: 0, hi: 0 };
  readonly hlt: HltExit = { kind: "hlt", interruptsEnabled: false };
  readonly shutdown: ShutdownExit = { kind: "shutdown", reason: "triple-fault" };
  readonly preempt: PreemptExit = { kind: "preempt" };
  readonly window: InterruptWindowExit = { kind: "interrupt-window" };
  readonly exception: ExceptionExit = { kind: "exception", vector: 0, errorCode: 0, hasErrorCode: false };
  readonly failure: EntryFailureExit = { kind: "entry-failure", code: 0, message: "" };
  readonly unhandled: UnhandledExit = { kind: "unhandled", code: 0, message: "", internal: undefined };
}

export interface VcpuEvent {
  type: EventType;
  vector: number;
  errorCode?: number;
}

export interface VcpuBackend {
  /** "vmx", "svm", or a wrapper's name. */
  readonly id: string;
  /** Run the guest until it exits. Pending state writes, injections and exit completions are committed first. */
  run(): VmExit;
  /** A backend-owned object, valid until the next call; reads are done lazily by parts. */
  getState(parts?: number): X86State;
  /** Copy `parts` of `state` in; committed at the next run. */
  setState(state: X86State, parts?: number): void;
  /** Queue an event for the next entry. */
  inject(event: VcpuEvent): void;
  /** Exit with "interrupt-window" as soon as the guest can take an external interrupt. */
  setInterruptWindow(enabled: boolean): void;
  /** Guest instructions retired so far, where the backend can tell (the deterministic clock's source). */
  instructionsRetired?(): number;
}

/** Wraps the backend's vCPU (multi-bound, applied in plugin order): realmode's BIOS, tracers, ... */
export interface VcpuInterposer {
  wrap(inner: VcpuBackend): VcpuBackend;
}

/** Puts the guest into its boot state (multi-bound, run in plugin order before the first run). */
export interface BootContribution {
  boot(vcpu: VcpuBackend, memory: GuestMemory): void;
}

/** The capabilities the monitor core creates for the VM before any backend registers. */
export interface MachineCaps {
  readonly ram: CPtr;
  readonly gpspace: CPtr;
  readonly dispatcher: CPtr;
  readonly guestControl: CPtr;
  /** The guestControl words as the monitor maps them (GuestControlWord layout in src/kernel/api.ts: GPRs first). */
  readonly guestRegs: Uint32Array;
  /**
   * The CPUID feature words the guest sees (the profile narrowed by the config's `cpuid`
   * mask). A plugin that runs guest code on its own src/x86 core copies them into
   * X86Cpu.cpuidMask, so hidden features are off there too (CR4 bits, EFER.NXE reserved).
   */
  readonly guestFeatures?: { readonly leaf1Edx: number; readonly leaf1Ecx: number; readonly ext1Edx: number };
}

export interface MonitorEventMap {
  /** The VM is about to run its first instruction. */
  start: () => void;
  /** The run ended; see RunResult. */
  stop: (result: RunResult) => void;
}

export type StopReason = "halted" | "shutdown" | "escape" | "timeout" | "error";
export interface RunResult {
  reason: StopReason;
  message: string;
  exits: Record<string, number>;
}

/**
 * Platform inputs that chipset devices drive (the i8042 output port, port 0x92, the BIOS's
 * INT 15h/24xx): the A20 gate and a CPU reset request. The monitor implements it.
 */
export interface Platform {
  /** Gate address line 20 (A20M#): disabled forces bit 20 of every CPU physical address to 0. */
  setA20(enabled: boolean): void;
  a20(): boolean;
  /** The guest asked for a CPU reset (port 0x92 bit 0, i8042 pulse): the run stops at the next exit. */
  requestReset(): void;
}

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

// ---------------------------------------------------------------------------
// Tokens (STYLE rule 5): Symbol.for so separately built plugins share them.

export const Tokens = {
  Syscalls: Symbol.for("hvkit:Syscalls") as InjectionToken<Syscalls>,
  KernelExtensionHost: Symbol.for("hvkit:KernelExtensionHost") as InjectionToken<KernelExtensionHost>,
  MachineCaps: Symbol.for("hvkit:MachineCaps") as InjectionToken<MachineCaps>,
  GuestMemory: Symbol.for("hvkit:GuestMemory") as InjectionToken<GuestMemory>,
  VcpuBackend: Symbol.for("hvkit:VcpuBackend") as InjectionToken<VcpuBackend>,
  VcpuInterposer: Symbol.for("hvkit:VcpuInterposer") as InjectionToken<VcpuInterposer>,
  BootContribution: Symbol.for("hvkit:BootContribution") as InjectionToken<BootContribution>,
  PioBus: Symbol.for("hvkit:PioBus") as InjectionToken<Bus>,
  MmioBus: Symbol.for("hvkit:MmioBus") as InjectionToken<Bus>,
  IoDeviceContribution: Symbol.for("hvkit:IoDeviceContribution") as InjectionToken<IoDeviceContribution>,
  IrqLines: Symbol.for("hvkit:IrqLines") as InjectionToken<IrqLines>,
  InterruptController: Symbol.for("hvkit:InterruptController") as InjectionToken<InterruptController>,
  Clock: Symbol.for("hvkit:Clock") as InjectionToken<VirtualClock>,
  Console: Symbol.for("hvkit:Console") as InjectionToken<Console>,
  MonitorEvents: Symbol.for("hvkit:MonitorEvents") as InjectionToken<EventEmitter<MonitorEventMap>>,
  Logger: Symbol.for("hvkit:Logger") as InjectionToken<Logger>,
  Platform: Symbol.for("hvkit:Platform") as InjectionToken<Platform>,
  /** The directory of the config file: plugins resolve relative paths (disk images ...) against it. */
  ConfigDir: Symbol.for("hvkit:ConfigDir") as InjectionToken<string>,
} as const;

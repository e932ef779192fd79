// Machine assembly: config → kernel objects (through syscalls only) → a child DI
// container per VM → plugins in phase order → buses populated → vCPU wrapped by
// interposers → boot contributions. Then `run()` drives the run loop.
import { EventEmitter } from "eventemitter3";
import { container as globalContainer } from "tsyringe";
import type { DependencyContainer } from "tsyringe";
import { ConfigError, Tokens, VM_EXIT_KINDS } from "./api.js";
import type {
  BootContribution, Console, GuestMemory, IoDeviceContribution, Logger, MachineCaps, MonitorEventMap, Platform, RunResult,
  StopReason, VcpuBackend, VcpuInterposer, VmExitKind,
} from "./api.js";
import { GUEST_CONTROL_BYTES, MapPerm, ObjType, SYS_ERR_NAMES, SysErr } from "../kernel/api.js";
import type { CPtr, Syscalls } from "../kernel/api.js";
import { bootKernel, softEngine } from "../kernel/index.js";
import { MmioBus, PioBus } from "./bus.js";
import { loadConfig } from "./config.js";
import type { MachineConfig, Override } from "./config.js";
import { VmConsole } from "./console.js";
import { CpuidPolicy, defaultProfile, guestFeatureMask } from "./cpuid.js";
import { X86Cpu } from "../x86/cpu.js";
import { FrameGuestMemory } from "./guest-memory.js";
import { IrqLineSet } from "./irq.js";
import { loadPlugins, registerPlugins } from "./plugins.js";
import type { LoadedPlugin } from "./plugins.js";
import { RunLoop } from "./run-loop.js";
import { CountingSyscalls } from "./syscall-counter.js";
import { MsrPolicy } from "./msr.js";
import { MonitorClock } from "./clock.js";
import type { InterruptController, VirtualClock } from "./api.js";
import { FERR_IRQ, FERR_PORT, FerrLatch, MachinePlatform, RESET_MESSAGE } from "./platform.js";

/** A host-side failure while building the machine (a kernel call refused). */
export class MachineError extends Error {
  override readonly name = "MachineError";
}

/** Two devices asked for overlapping bus ranges (or a range the bus cannot hold). */
export class DeviceConflictError extends ConfigError {}

/** Bytes of the Ram pool beyond guest memory: gpspace root, guestControl, DCB, VMCS/VMCB and backend bitmaps. */
export const KERNEL_HEADROOM = 256 * 1024;
const PAGE = 4096;

/** Logs to stderr; debug lines only with HVKIT_DEBUG set. */
export const stderrLogger: Logger = {
  debug: (m) => { if (process.env["HVKIT_DEBUG"]) process.stderr.write(`hvkit: ${m}\n`); },
  info: (m) => process.stderr.write(`hvkit: ${m}\n`),
  warn: (m) => process.stderr.write(`hvkit: warning: ${m}\n`),
};

/**
 * The root container holds only stateless, process-wide services (the logger);
 * every VM gets its own child of it (STYLE rule 7). It is itself a child of
 * tsyringe's global container so nothing leaks into the global one.
 */
export const rootContainer: DependencyContainer = globalContainer.createChildContainer();
rootContainer.register(Tokens.Logger, { useValue: stderrLogger });

export interface MachineOptions {
  /** `--set` style overrides, applied before validation. */
  readonly overrides?: readonly Override[];
  /** The console the machine uses (default: a new one, with no sink attached). */
  readonly console?: VmConsole;
  readonly logger?: Logger;
  /** The parent of the VM's container (default: rootContainer). */
  readonly parent?: DependencyContainer;
}

export interface MachineStats {
  exits: Record<string, number>;
  /** Milliseconds per exit kind (guest run ending in it plus its handling). */
  timesMs: Record<string, number>;
  /** Kernel syscalls per exit kind (the run that produced the exit plus its handling); divide by `exits` for the average. */
  syscalls: Record<string, number>;
  unclaimed: { pio: { reads: number; writes: number }; mmio: { reads: number; writes: number } };
}

export class Machine {
  readonly #loop: RunLoop;
  #disposed = false;

  constructor(
    readonly config: MachineConfig,
    readonly container: DependencyContainer,
    readonly console: VmConsole,
    readonly events: EventEmitter<MonitorEventMap>,
    readonly pio: PioBus,
    readonly mmio: MmioBus,
    readonly irqs: IrqLineSet,
    readonly memory: GuestMemory,
    readonly vcpu: VcpuBackend,
    readonly plugins: readonly LoadedPlugin[],
    cpuid: CpuidPolicy,
    /** The VM's virtual clock, its interrupt controller (when a plugin registered one), the syscall counter, the MSR policy. */
    readonly timing: {
      readonly clock?: MonitorClock; readonly controller?: InterruptController; readonly syscalls?: CountingSyscalls; readonly msr?: MsrPolicy;
    } = {},
  ) {
    this.#loop = new RunLoop({
      vcpu, pio, mmio, console, events, cpuid, irqs, clock: timing.clock, controller: timing.controller, syscalls: timing.syscalls, msr: timing.msr,
    });
  }

  /** Run until the guest stops, `stop()` is called or the timeout (default: the config's) passes. */
  run(opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    if (this.#disposed) throw new MachineError("machine: run() after dispose()");
    const timeoutMs = opts.timeoutMs ?? this.config.timeoutMs;
    return this.#loop.run(timeoutMs === undefined ? {} : { timeoutMs });
  }

  stop(reason: StopReason, message: string): void {
    this.#loop.stop(reason, message);
  }

  stats(): MachineStats {
    const timesMs: Record<string, number> = {};
    const exits = this.#loop.exitCounts();
    for (const k of Object.keys(exits)) {
      timesMs[k] = this.#loop.times[VM_EXIT_KINDS.indexOf(k as VmExitKind)]!;
    }
    return {
      exits, timesMs, syscalls: this.#loop.exitSyscalls(),
      unclaimed: { pio: { ...this.pio.unclaimed }, mmio: { ...this.mmio.unclaimed } },
    };
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.container.dispose();
  }
}

function check(err: SysErr, what: string): void {
  if (err !== SysErr.Ok) throw new MachineError(`kernel refused ${what}: ${SYS_ERR_NAMES[err] ?? `error ${err}`}`);
}

function retype(sys: Syscalls, ram: CPtr, type: ObjType, bytes: number, what: string): CPtr {
  check(sys.ramRetype(ram, type, bytes), `ramRetype(${what}, ${bytes} bytes)`);
  return sys.ret.cap;
}

function frameView(sys: Syscalls, frame: CPtr, what: string): Uint8Array {
  check(sys.frameMap(frame), `frameMap(${what})`);
  const v = sys.ret.view;
  if (!v) throw new MachineError(`kernel returned no view for frameMap(${what})`);
  return v;
}

/** Build a machine from a validated config. */
export async function assembleMachine(config: MachineConfig, opts: MachineOptions = {}): Promise<Machine> {
  // Load and parse every plugin before touching the kernel: config errors come first.
  const plugins = await loadPlugins(config);

  const vm = (opts.parent ?? rootContainer).createChildContainer();
  try {
    const console = opts.console ?? new VmConsole();
    console.selectSources(config.consoleOutput);
    const events = new EventEmitter<MonitorEventMap>();
    const pio = new PioBus();
    const mmio = new MmioBus();
    const irqs = new IrqLineSet();
    if (opts.logger) vm.register(Tokens.Logger, { useValue: opts.logger });
    vm.register(Tokens.Console, { useValue: console as Console });
    vm.register(Tokens.MonitorEvents, { useValue: events });
    vm.register(Tokens.PioBus, { useValue: pio });
    vm.register(Tokens.MmioBus, { useValue: mmio });
    vm.register(Tokens.IrqLines, { useValue: irqs });
    const clock = new MonitorClock(config.clock);
    vm.register(Tokens.Clock, { useValue: clock as VirtualClock });
    vm.register(Tokens.ConfigDir, { useValue: config.dir });

    // The CPUID the guest sees; the cores that run it get the same feature words, so a
    // feature the config hides is also off there (CR4 bit / EFER.NXE reserved, SDM 2.5).
    const backendId = plugins.find((p) => p.ref.path === "backend")!.plugin.id;
    const cpuid = new CpuidPolicy(defaultProfile(backendId, config.cpuid));
    const guestFeatures = guestFeatureMask(cpuid);
    // FERR# of the engine's cores to IRQ 13, cleared by a write to port F0h (platform.ts FerrLatch).
    const ferr = new FerrLatch(irqs.line(FERR_IRQ));
    const ferrErr = pio.insert({ space: "pio", base: FERR_PORT, length: 1 }, ferr);
    if (ferrErr) throw new DeviceConflictError("plugins", ferrErr.message, config.file);
    const engine = softEngine({ createCpu: (mem, io) => { const c = new X86Cpu(mem, io); Object.assign(c.cpuidMask, guestFeatures); ferr.attach(c); return c; } });
    // The kernel and the machine's objects, through capabilities only.
    const kernel = bootKernel({ engine, ramBytes: config.memory + KERNEL_HEADROOM });
    // Every syscall the monitor and its plugins make goes through the counter (exit statistics).
    const sys = new CountingSyscalls(kernel.syscalls);
    const ramFrame = retype(sys, kernel.ram, ObjType.Frame, config.memory, "Frame for guest RAM");
    const gpspace = retype(sys, kernel.ram, ObjType.GuestPhysSpace, PAGE, "GuestPhysSpace");
    check(sys.gpspaceMap(gpspace, ramFrame, 0, MapPerm.RWX), "gpspaceMap(RAM at GPA 0)");
    const guestControl = retype(sys, kernel.ram, ObjType.Frame, PAGE, "guestControl Frame");
    const gc = frameView(sys, guestControl, "guestControl");
    const guestRegs = new Uint32Array(gc.buffer, gc.byteOffset, GUEST_CONTROL_BYTES / 4);
    const dispatcher = retype(sys, kernel.ram, ObjType.Dispatcher, PAGE, "Dispatcher");
    const memory = new FrameGuestMemory(frameView(sys, ramFrame, "guest RAM"));
    check(sys.gpspaceSetMmio(gpspace, mmio), "gpspaceSetMmio");
    // A20 and reset, driven by the chipset devices (i8042, port 0x92) and the BIOS.
    const platform = new MachinePlatform(sys, gpspace, opts.logger ?? stderrLogger);
    vm.register(Tokens.Platform, { useValue: platform as Platform });
    const caps: MachineCaps = { ram: kernel.ram, gpspace, dispatcher, guestControl, guestRegs, guestFeatures };
    vm.register(Tokens.Syscalls, { useValue: sys });
    vm.register(Tokens.KernelExtensionHost, { useValue: kernel.extensions });
    vm.register(Tokens.MachineCaps, { useValue: caps });
    vm.register(Tokens.GuestMemory, { useValue: memory as GuestMemory });

    await registerPlugins(vm, plugins, config.file);

    if (!vm.isRegistered(Tokens.VcpuBackend, true)) {
      throw new ConfigError("backend", `plugin "${config.backend.use}" registered no VcpuBackend`, config.file);
    }
    if (vm.isRegistered(Tokens.IoDeviceContribution, true)) {
      for (const c of vm.resolveAll<IoDeviceContribution>(Tokens.IoDeviceContribution)) {
        for (const range of c.ranges) {
          const bus = range.space === "pio" ? pio : mmio;
          const err = bus.insert(range, c.device);
          if (err) throw new DeviceConflictError("plugins", err.message, config.file);
        }
      }
    }
    // Every IRQ line level change goes to the interrupt controller, if a plugin registered one.
    const controller = vm.isRegistered(Tokens.InterruptController, true)
      ? vm.resolve<InterruptController>(Tokens.InterruptController) : undefined;
    if (controller) irqs.attachController(controller);
    let vcpu = vm.resolve<VcpuBackend>(Tokens.VcpuBackend);
    if (vm.isRegistered(Tokens.VcpuInterposer, true)) {
      for (const i of vm.resolveAll<VcpuInterposer>(Tokens.VcpuInterposer)) vcpu = i.wrap(vcpu);
    }
    if (vm.isRegistered(Tokens.BootContribution, true)) {
      for (const b of vm.resolveAll<BootContribution>(Tokens.BootContribution)) b.boot(vcpu, memory);
    }
    clock.attach(vcpu, config.file); // "instructions" mode reads the wrapped vCPU's count
    // The TSC as the soft core counts it (retired instructions), else the VM clock in ns (1 GHz).
    const retired = vcpu.instructionsRetired?.bind(vcpu);
    const log = opts.logger ?? stderrLogger;
    const msr = new MsrPolicy({
      vendor: MsrPolicy.vendorOf(backendId), tsc: retired ?? (() => clock.now()),
      events: { gp: (i, w) => log.debug(`${w ? "WRMSR" : "RDMSR"} 0x${i.toString(16)}: #GP (not in the MSR table)`) },
    });
    const machine = new Machine(config, vm, console, events, pio, mmio, irqs, memory, vcpu, plugins, cpuid, { clock, controller, syscalls: sys, msr });
    platform.onReset(() => machine.stop("shutdown", RESET_MESSAGE));
    return machine;
  } catch (e) {
    await vm.dispose();
    throw e;
  }
}

/** Read a config file, apply overrides, and build its machine. */
export async function createMachine(configPath: string, opts: MachineOptions = {}): Promise<Machine> {
  return assembleMachine(loadConfig(configPath, opts.overrides ?? []), opts);
}

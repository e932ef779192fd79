// The run loop: run the vCPU, dispatch each VmExit by kind, count exits and the time
// spent per kind, and stop with a RunResult. The hot path (io, mmio, cpuid) allocates
// nothing; only a HLT wait or a yield to the event loop creates a promise.
//
// Interrupts: before each run, due timers fire and the interrupt window is opened exactly
// while the controller asserts INTR. The vector is taken (acknowledge, the INTA cycle) only
// at an interrupt-window exit, i.e. when the backend says the guest can take it (IF=1, no
// STI/MOV SS shadow), and injected as an external interrupt at the next entry: so none is
// lost, duplicated, or injected while the guest cannot take it.
import type { EventEmitter } from "eventemitter3";
import type {
  Bus, Console, InterruptController, MonitorEventMap, MsrExit, RunResult, StopReason, VcpuBackend, VcpuEvent, VirtualClock, VmExitKind,
} from "./api.js";
import { StateParts, VM_EXIT_KINDS } from "./api.js";
import { EventType } from "../x86/types.js";
import type { CpuidPolicy } from "./cpuid.js";
import type { IrqLineSet } from "./irq.js";

export interface RunLoopDeps {
  readonly vcpu: VcpuBackend;
  readonly pio: Bus;
  readonly mmio: Bus;
  readonly console: Console;
  readonly events: EventEmitter<MonitorEventMap>;
  readonly cpuid: CpuidPolicy;
  readonly irqs?: IrqLineSet;
  /** Where vectors come from; without one, HLT wakes on any IRQ edge or console input. */
  readonly controller?: InterruptController;
  readonly clock?: LoopClock;
  /** The monitor's syscall counter (CountingSyscalls): per-kind syscall costs are kept when given. */
  readonly syscalls?: { readonly count: number };
  /** The MSR policy: answers RDMSR (fills lo/hi) and takes WRMSR. Without one, reads give 0 and writes are dropped (counted in msrDefaulted). */
  readonly msr?: { handle(exit: MsrExit): "done" | "gp" | void };
}

/** What the loop needs of the clock beyond VirtualClock (MonitorClock in clock.ts). */
export interface LoopClock extends VirtualClock {
  /** "instructions" mode while halted: skip to the next deadline, or sleep until it in host time first. */
  readonly idle?: "skip" | "sleep";
  runDue(now?: number): number;
  nextDeadline(): number;
  skipIdleTo(atNs: number): void;
}

export interface RunOptions {
  /** Stop with "timeout" after this many milliseconds; none: run until the guest stops. */
  readonly timeoutMs?: number;
}

/** Yield to the event loop after this long without one (a guest exiting only for I/O never preempts). */
const MAX_MS_WITHOUT_YIELD = 20;
/** A preempt exit yields to the event loop only when this long has passed since the last yield. */
const PREEMPT_YIELD_MS = 4;

const EXCEPTION_NAMES = ["#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "", "#TS", "#NP", "#SS", "#GP", "#PF", "", "#MF", "#AC", "#MC", "#XM"];

function kindIndex(kind: VmExitKind): number {
  switch (kind) {
    case "io": return 0;
    case "mmio": return 1;
    case "cpuid": return 2;
    case "hlt": return 3;
    case "shutdown": return 4;
    case "preempt": return 5;
    case "interrupt-window": return 6;
    case "exception": return 7;
    case "entry-failure": return 8;
    case "unhandled": return 9;
    case "msr": return 10;
  }
}

const yieldNow = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class RunLoop {
  /** Exits per kind, indexed like VM_EXIT_KINDS. */
  readonly counts = new Float64Array(VM_EXIT_KINDS.length);
  /** Milliseconds per kind: the guest run that ended in the exit plus its handling. */
  readonly times = new Float64Array(VM_EXIT_KINDS.length);
  /**
   * Syscalls per kind: those of the run() that produced the exit (entry, VMCS/VMCB access,
   * VMRESUME/VMRUN) plus those made after it until the next run() (handling, window setup).
   */
  readonly syscalls = new Float64Array(VM_EXIT_KINDS.length);
  readonly #d: RunLoopDeps;
  #stop: StopReason | undefined;
  #stopMessage = "";
  #running = false;
  #wakePending = false;
  #wake: (() => void) | undefined;
  /** The one event object handed to inject() (backends copy it). */
  readonly #event: VcpuEvent = { type: EventType.ExtInt, vector: 0 };
  /**
   * #GP(0) for an MSR the policy refuses (SDM Vol. 2 RDMSR/WRMSR). In real mode no error code
   * is delivered (SDM 26.2.1.3: with CR0.PE = 0 the entry may not deliver one).
   */
  readonly #gp: VcpuEvent = { type: EventType.HardwareException, vector: 13, errorCode: 0 };
  readonly #gpReal: VcpuEvent = { type: EventType.HardwareException, vector: 13 };
  /** Interrupts injected, by the loop's count. */
  injected = 0;
  /** MSR exits answered without an MSR policy (RDMSR read as 0, WRMSR dropped). */
  msrDefaulted = 0;

  constructor(deps: RunLoopDeps) {
    this.#d = deps;
    for (let i = 0; i < VM_EXIT_KINDS.length; i++) {
      if (kindIndex(VM_EXIT_KINDS[i]!) !== i) throw new Error(`run-loop: exit kind table out of order at ${VM_EXIT_KINDS[i]}`);
    }
  }

  get running(): boolean {
    return this.#running;
  }

  /** Ask the loop to stop (escape key, embedder); takes effect at the next exit. The first reason wins. */
  stop(reason: StopReason, message: string): void {
    if (this.#stop !== undefined) return;
    this.#stop = reason;
    this.#stopMessage = message;
    this.#signal();
  }

  readonly #signal = (): void => {
    this.#wakePending = true;
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  };

  /**
   * Wait for a signal (IRQ edge, console input, stop) or, with `ms`, that long at most.
   * Resolves true when a signal ended the wait.
   */
  #waitForWake(ms?: number): Promise<boolean> {
    if (this.#wakePending) {
      this.#wakePending = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => {
        this.#wake = undefined;
        resolve(false);
      }, Math.max(1, Math.ceil(ms)));
      this.#wake = () => {
        if (timer !== undefined) clearTimeout(timer);
        this.#wakePending = false;
        resolve(true);
      };
    });
  }

  /**
   * The guest executed HLT with IF=1: keep it halted until an interrupt is pending (or, with no
   * controller, until any wake-up). Timers fire meanwhile; host mode sleeps until the next
   * deadline, instructions mode moves virtual time straight to it. Nothing pending and no
   * timer: sleep until a signal, costing no host CPU.
   */
  async #halt(): Promise<void> {
    const { clock, controller } = this.#d;
    let lastYield = performance.now();
    while (this.#stop === undefined) {
      const fired = clock === undefined ? 0 : clock.runDue();
      // Without a controller the guest polls: any timer or signal ends the wait.
      if (controller === undefined ? fired > 0 : controller.hasInterrupt()) return;
      const next = clock === undefined ? Infinity : clock.nextDeadline();
      if (next === Infinity) {
        await this.#waitForWake();
        if (controller === undefined) return;
        continue;
      }
      if (clock!.mode === "instructions") {
        if (clock!.idle === "sleep") {
          const start = performance.now();
          const signalled = await this.#waitForWake((next - clock!.now()) / 1e6);
          if (signalled) {
            // Woken early: idle time passed as host time did, short of the deadline.
            clock!.skipIdleTo(Math.min(next - 1, clock!.now() + (performance.now() - start) * 1e6));
            if (controller === undefined) return;
            continue;
          }
        }
        clock!.skipIdleTo(next);
        if (performance.now() - lastYield > MAX_MS_WITHOUT_YIELD) {
          await yieldNow();
          lastYield = performance.now();
        }
        continue;
      }
      const ms = (next - clock!.now()) / 1e6;
      if (ms > 0) {
        await this.#waitForWake(ms);
        if (controller === undefined && clock!.now() < next) return; // woken by a signal
      }
    }
  }

  /** Exit counts by kind name, kinds that never happened left out. */
  exitCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 0; i < VM_EXIT_KINDS.length; i++) if (this.counts[i]! > 0) out[VM_EXIT_KINDS[i]!] = this.counts[i]!;
    return out;
  }

  /** Syscalls per kind name, for the kinds in exitCounts(). Empty without a syscall counter. */
  exitSyscalls(): Record<string, number> {
    const out: Record<string, number> = {};
    if (this.#d.syscalls === undefined) return out;
    for (let i = 0; i < VM_EXIT_KINDS.length; i++) if (this.counts[i]! > 0) out[VM_EXIT_KINDS[i]!] = this.syscalls[i]!;
    return out;
  }

  async run(opts: RunOptions = {}): Promise<RunResult> {
    if (this.#running) throw new Error("run-loop: already running");
    this.#running = true;
    this.#stop = undefined;
    this.#wakePending = false;
    const d = this.#d;
    const offInput = d.console.onInput(this.#signal);
    d.irqs?.events.on("raise", this.#signal);
    const timer = opts.timeoutMs !== undefined
      ? setTimeout(() => this.stop("timeout", `no stop within ${opts.timeoutMs} ms`), opts.timeoutMs)
      : undefined;
    d.events.emit("start");
    try {
      await this.#loop();
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      offInput();
      d.irqs?.events.off("raise", this.#signal);
      this.#running = false;
    }
    const result: RunResult = { reason: this.#stop!, message: this.#stopMessage, exits: this.exitCounts() };
    d.events.emit("stop", result);
    return result;
  }

  async #loop(): Promise<void> {
    const { vcpu, pio, mmio, cpuid, clock, controller, syscalls: sys } = this.#d;
    const event = this.#event;
    let windowOpen = false;
    const counts = this.counts;
    const times = this.times;
    const sysPerKind = this.syscalls;
    /** The syscall count when the last attribution was made, and the kind of the last exit. */
    let sysMark = sys === undefined ? 0 : sys.count;
    let lastK = -1;
    let lastYield = performance.now();
    let sinceCheck = 0;
    while (this.#stop === undefined) {
      const t0 = performance.now();
      let k = -1;
      try {
        clock?.runDue();
        if (controller !== undefined) {
          const want = controller.hasInterrupt();
          if (want !== windowOpen) {
            vcpu.setInterruptWindow(want);
            windowOpen = want;
          }
        }
        if (sys !== undefined) {
          // Handling the previous exit and preparing this entry: that exit's cost.
          if (lastK >= 0) sysPerKind[lastK]! += sys.count - sysMark;
          sysMark = sys.count;
        }
        const exit = vcpu.run();
        k = kindIndex(exit.kind);
        counts[k]!++;
        lastK = k;
        if (sys !== undefined) {
          sysPerKind[k]! += sys.count - sysMark;
          sysMark = sys.count;
        }
        switch (exit.kind) {
          case "io":
            // String I/O: the backend's IoAssist already used the bus (api.ts IoExit.count).
            if (exit.count !== undefined) break;
            if (exit.in) exit.data = pio.read(exit.port, exit.size);
            else pio.write(exit.port, exit.size, exit.data);
            break;
          case "mmio":
            // Assisted MMIO: the backend's MemAssist already used the bus (api.ts MmioExit.count).
            if (exit.count !== undefined) break;
            if (exit.write) mmio.write(exit.gpa, exit.size, exit.data);
            else exit.data = mmio.read(exit.gpa, exit.size);
            break;
          case "cpuid":
            cpuid.answer(exit);
            break;
          case "msr":
            if (this.#d.msr !== undefined) {
              if (this.#d.msr.handle(exit) === "gp") {
                vcpu.inject((vcpu.getState(StateParts.Control).cr0 & 1) !== 0 ? this.#gp : this.#gpReal);
              }
            } else {
              if (!exit.write) { exit.lo = 0; exit.hi = 0; }
              this.msrDefaulted++;
            }
            break;
          case "hlt":
            if (!exit.interruptsEnabled) {
              this.stop("halted", "the guest halted with interrupts disabled");
            } else {
              times[k]! += performance.now() - t0;
              k = -1;
              await this.#halt();
              lastYield = performance.now();
            }
            break;
          case "shutdown":
            this.stop("shutdown", exit.reason === "triple-fault" ? "triple fault: the guest shut the CPU down" : "the guest asked for a reset");
            break;
          case "preempt":
            // Timers fire before the next run; the event loop gets a turn every few ms only.
            if (performance.now() - lastYield > PREEMPT_YIELD_MS) {
              times[k]! += performance.now() - t0;
              k = -1;
              await yieldNow();
              lastYield = performance.now();
            }
            break;
          case "interrupt-window":
            // The guest can take an interrupt now: the INTA cycle, then injection at the next entry.
            // If the request went away meanwhile there is nothing to acknowledge.
            if (controller !== undefined && controller.hasInterrupt()) {
              event.vector = controller.acknowledge();
              vcpu.inject(event);
              this.injected++;
            }
            vcpu.setInterruptWindow(false);
            windowOpen = false;
            break;
          case "exception": {
            const name = EXCEPTION_NAMES[exit.vector] || `vector ${exit.vector}`;
            this.stop("error", `unexpected exception exit ${name} (vector ${exit.vector}${exit.hasErrorCode ? `, error code 0x${exit.errorCode.toString(16)}` : ""})`);
            break;
          }
          case "entry-failure":
            this.stop("error", `VM entry failed (code ${exit.code}): ${exit.message}`);
            break;
          case "unhandled":
            this.stop("error", `unhandled exit (code 0x${exit.code.toString(16)}): ${exit.message}`);
            break;
        }
      } catch (e) {
        this.stop("error", `${k < 0 ? `vCPU ${vcpu.id}` : `handling a ${VM_EXIT_KINDS[k]} exit`} threw: ${(e as Error).message ?? String(e)}`);
      }
      if (k >= 0) times[k]! += performance.now() - t0;
      if (sys !== undefined && lastK >= 0 && this.#stop !== undefined) {
        sysPerKind[lastK]! += sys.count - sysMark;
        sysMark = sys.count;
      }
      if (++sinceCheck >= 256) {
        sinceCheck = 0;
        if (performance.now() - lastYield > MAX_MS_WITHOUT_YIELD) {
          await yieldNow();
          lastYield = performance.now();
        }
      }
    }
  }
}

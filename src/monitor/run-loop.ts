// The run loop: run the vCPU, dispatch each VmExit by kind, count exits and the time
// spent per kind, and stop with a RunResult. The hot path (io, mmio, cpuid) allocates
// nothing; only a HLT wait or a yield to the event loop creates a promise.
import type { EventEmitter } from "eventemitter3";
import type { Bus, Console, MonitorEventMap, RunResult, StopReason, VcpuBackend, VmExitKind } from "./api.js";
import { VM_EXIT_KINDS } from "./api.js";
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
}

export interface RunOptions {
  /** Stop with "timeout" after this many milliseconds; none: run until the guest stops. */
  readonly timeoutMs?: number;
}

/** Yield to the event loop after this long without one (a guest exiting only for I/O never preempts). */
const MAX_MS_WITHOUT_YIELD = 20;

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
  }
}

const yieldNow = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class RunLoop {
  /** Exits per kind, indexed like VM_EXIT_KINDS. */
  readonly counts = new Float64Array(VM_EXIT_KINDS.length);
  /** Milliseconds per kind: the guest run that ended in the exit plus its handling. */
  readonly times = new Float64Array(VM_EXIT_KINDS.length);
  readonly #d: RunLoopDeps;
  #stop: StopReason | undefined;
  #stopMessage = "";
  #running = false;
  #wakePending = false;
  #wake: (() => void) | undefined;

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

  #waitForWake(): Promise<void> {
    if (this.#wakePending) {
      this.#wakePending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#wakePending = false;
        resolve();
      };
    });
  }

  /** Exit counts by kind name, kinds that never happened left out. */
  exitCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 0; i < VM_EXIT_KINDS.length; i++) if (this.counts[i]! > 0) out[VM_EXIT_KINDS[i]!] = this.counts[i]!;
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
    const { vcpu, pio, mmio, cpuid } = this.#d;
    const counts = this.counts;
    const times = this.times;
    let lastYield = performance.now();
    let sinceCheck = 0;
    while (this.#stop === undefined) {
      const t0 = performance.now();
      let k = -1;
      try {
        const exit = vcpu.run();
        k = kindIndex(exit.kind);
        counts[k]!++;
        switch (exit.kind) {
          case "io":
            if (exit.in) exit.data = pio.read(exit.port, exit.size);
            else pio.write(exit.port, exit.size, exit.data);
            break;
          case "mmio":
            if (exit.write) mmio.write(exit.gpa, exit.size, exit.data);
            else exit.data = mmio.read(exit.gpa, exit.size);
            break;
          case "cpuid":
            cpuid.answer(exit);
            break;
          case "hlt":
            if (!exit.interruptsEnabled) {
              this.stop("halted", "the guest halted with interrupts disabled");
            } else {
              times[k]! += performance.now() - t0;
              k = -1;
              // No interrupt controller yet: wake on console input or an IRQ edge and let the guest poll.
              await this.#waitForWake();
              lastYield = performance.now();
            }
            break;
          case "shutdown":
            this.stop("shutdown", exit.reason === "triple-fault" ? "triple fault: the guest shut the CPU down" : "the guest asked for a reset");
            break;
          case "preempt":
            times[k]! += performance.now() - t0;
            k = -1;
            await yieldNow();
            lastYield = performance.now();
            break;
          case "interrupt-window":
            // Nothing to inject until an interrupt controller exists (issue 4).
            vcpu.setInterruptWindow(false);
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

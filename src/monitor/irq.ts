// The monitor's interrupt lines. Each line records its level and forwards every change
// to the InterruptController once one is attached (the 8259 pair of devices-lpc); a
// rising edge also wakes a vCPU that waits in HLT.
import { EventEmitter } from "eventemitter3";
import type { InterruptController, IrqLine, IrqLines } from "./api.js";

export const IRQ_COUNT = 24;

export interface IrqEvents {
  /** A line went from low to high. */
  raise: (irq: number) => void;
}

export class IrqLineSet implements IrqLines {
  readonly events = new EventEmitter<IrqEvents>();
  readonly #levels = new Uint8Array(IRQ_COUNT);
  readonly #lines: IrqLine[] = [];
  /** Rising edges per line since creation. */
  readonly raises = new Uint32Array(IRQ_COUNT);
  #controller: InterruptController | undefined;

  constructor() {
    for (let i = 0; i < IRQ_COUNT; i++) {
      this.#lines.push({
        raise: () => {
          if (this.#levels[i] === 1) return;
          this.#levels[i] = 1;
          this.raises[i]!++;
          this.#controller?.setIrq(i, true);
          this.events.emit("raise", i);
        },
        lower: () => {
          if (this.#levels[i] === 0) return;
          this.#levels[i] = 0;
          this.#controller?.setIrq(i, false);
        },
      });
    }
  }

  /** Forward every level change to `controller`, starting with the lines already high. */
  attachController(controller: InterruptController): void {
    this.#controller = controller;
    for (let i = 0; i < IRQ_COUNT; i++) if (this.#levels[i] === 1) controller.setIrq(i, true);
  }

  get controller(): InterruptController | undefined {
    return this.#controller;
  }

  /** Throws RangeError for a line that does not exist: a plugin wiring bug, not a guest action. */
  line(irq: number): IrqLine {
    const l = this.#lines[irq];
    if (!l) throw new RangeError(`IRQ line ${irq} does not exist (0..${IRQ_COUNT - 1})`);
    return l;
  }

  level(irq: number): boolean {
    return this.#levels[irq] === 1;
  }
}

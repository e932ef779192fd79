// The monitor's interrupt lines. There is no interrupt controller yet (issue 4 adds
// the 8259 PIC): a line only records its level, and a rising edge wakes a vCPU that
// waits in HLT so the guest can poll its devices again.
import { EventEmitter } from "eventemitter3";
import type { IrqLine, IrqLines } from "./api.js";

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

  constructor() {
    for (let i = 0; i < IRQ_COUNT; i++) {
      this.#lines.push({
        raise: () => {
          if (this.#levels[i] === 1) return;
          this.#levels[i] = 1;
          this.raises[i]!++;
          this.events.emit("raise", i);
        },
        lower: () => { this.#levels[i] = 0; },
      });
    }
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

// National Semiconductor PC16550D UART, as seen through its 8 registers.
// Source: PC16550D datasheet (June 1995), "Registers" tables 2-5 and section 8.
//
// Emulated:
// - RBR/THR, IER, IIR/FCR, LCR, MCR, LSR, MSR, SCR; DLL/DLM behind LCR.DLAB.
// - A 16-byte RX FIFO (1 byte in 16450 mode, FCR bit 0 clear). A byte arriving at a
//   full FIFO is lost and sets LSR_OE (datasheet 8.6.3, "Overrun Error").
// - The transmitter is infinitely fast: a THR write goes to the output sink at once,
//   so LSR_THRE and LSR_TEMT are always set.
// - Interrupt identification with the datasheet's priorities (table 4): receiver line
//   status > received data available > THR empty > modem status.
// - Loopback (MCR bit 4): TX goes to the RX FIFO, host input is ignored, and the modem
//   outputs loop to the MSR inputs (DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD) with
//   delta bits. Linux's 8250 probe relies on this.
// - The PC board gates the UART's INTR pin with MCR.OUT2 (IBM PC/AT Technical Reference,
//   "Serial/Parallel Adapter"); in loopback OUT2 is forced inactive, so the IRQ line is low.
//
// Not emulated:
// - Baud rate, character framing and timing: LCR and the divisor are stored only.
// - FIFO trigger levels beyond 1 byte (FCR bits 7:6 are ignored: RDA fires at 1 byte),
//   and therefore the character timeout interrupt (IIR 0xC) is never reported.
// - Parity, framing and break errors (LSR_PE/FE/BI are never set by the model).
// - The TX FIFO (nothing is ever queued) and DMA mode (FCR bit 3).
import type { AccessSize, DeviceEvents, IoDevice, IrqLine } from "../../../src/monitor/api.js";
import { NO_EVENTS } from "../../../src/monitor/api.js";

// Register offsets (datasheet table 2). Some offsets have two registers, chosen by
// direction or by LCR.DLAB.
export const UART_RBR = 0; // read, DLAB=0
export const UART_THR = 0; // write, DLAB=0
export const UART_DLL = 0; // DLAB=1
export const UART_IER = 1; // DLAB=0
export const UART_DLM = 1; // DLAB=1
export const UART_IIR = 2; // read
export const UART_FCR = 2; // write
export const UART_LCR = 3;
export const UART_MCR = 4;
export const UART_LSR = 5;
export const UART_MSR = 6;
export const UART_SCR = 7;
export const UART_REGISTER_COUNT = 8;

export const IER_ERBFI = 0x01; // received data available
export const IER_ETBEI = 0x02; // THR empty
export const IER_ELSI = 0x04; // receiver line status
export const IER_EDSSI = 0x08; // modem status
const IER_MASK = 0x0f;

export const IIR_NO_INT = 0x01;
export const IIR_ID_RLS = 0x06;
export const IIR_ID_RDA = 0x04;
export const IIR_ID_THRE = 0x02;
export const IIR_ID_MS = 0x00;
export const IIR_FIFO_ENABLED = 0xc0;

export const FCR_FIFO_ENABLE = 0x01;
export const FCR_RX_RESET = 0x02;
export const FCR_TX_RESET = 0x04;

export const LCR_DLAB = 0x80;

export const MCR_DTR = 0x01;
export const MCR_RTS = 0x02;
export const MCR_OUT1 = 0x04;
export const MCR_OUT2 = 0x08;
export const MCR_LOOP = 0x10;
const MCR_MASK = 0x1f;

export const LSR_DR = 0x01;
export const LSR_OE = 0x02;
export const LSR_PE = 0x04;
export const LSR_FE = 0x08;
export const LSR_BI = 0x10;
export const LSR_THRE = 0x20;
export const LSR_TEMT = 0x40;
export const LSR_RX_FIFO_ERROR = 0x80;
const LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI;

export const MSR_DCTS = 0x01;
export const MSR_DDSR = 0x02;
export const MSR_TERI = 0x04;
export const MSR_DDCD = 0x08;
export const MSR_CTS = 0x10;
export const MSR_DSR = 0x20;
export const MSR_RI = 0x40;
export const MSR_DCD = 0x80;
const MSR_DELTAS = 0x0f;

/** Host-side modem inputs outside loopback: a connected terminal (CTS, DSR, DCD asserted). */
export const MSR_HOST_INPUTS = MSR_CTS | MSR_DSR | MSR_DCD;

export const UART_FIFO_SIZE = 16;

/** Versioned, JSON-safe device state (STYLE rule 3). LSR_THRE/TEMT and DR are derived. */
export interface Uart16550State {
  readonly v: 1;
  ier: number;
  lcr: number;
  mcr: number;
  /** Only the sticky error bits (OE, PE, FE, BI) are meaningful. */
  lsr: number;
  msr: number;
  scr: number;
  dll: number;
  dlm: number;
  fifoEnabled: boolean;
  /** The THR-empty interrupt is pending (cleared by an IIR read that reports it or a THR write). */
  thrEmptyPending: boolean;
  /** Oldest byte first; at most 16 entries (1 when the FIFO is disabled). */
  rxFifo: number[];
}

/** A bad state given to fromState (a host problem, not a guest one). */
export class Uart16550StateError extends Error {
  override readonly name = "Uart16550StateError";
}

export interface Uart16550Deps {
  irq: IrqLine;
  out: (byte: number) => void;
  events?: DeviceEvents;
  /** Called when the guest takes a byte out of the RX FIFO (the host may send more). */
  rxDrained?: () => void;
}

const isByte = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= 0xff;

export class Uart16550 implements IoDevice {
  readonly name: string;
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private lsrErrors = 0;
  private msr = MSR_HOST_INPUTS;
  private scr = 0;
  private dll = 0x0c; // 9600 baud at 1.8432 MHz; any value is fine, nothing is timed
  private dlm = 0;
  private fifoEnabled = false;
  private thrEmptyPending = false;
  // Ring buffer, preallocated: no allocation per byte.
  private readonly rx = new Uint8Array(UART_FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  private irqLevel = false;

  constructor(
    private readonly irq: IrqLine,
    private readonly out: (byte: number) => void,
    private readonly events: DeviceEvents = NO_EVENTS,
    private readonly rxDrained?: () => void,
    name = "uart16550",
  ) {
    this.name = name;
  }

  // ---- IoDevice

  read(offset: number, size: AccessSize): number {
    if (size !== 1 || offset < 0 || offset >= UART_REGISTER_COUNT) {
      this.events.invalidRead(offset, size);
      return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
    }
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case UART_RBR:
        return dlab ? this.dll : this.readRbr();
      case UART_IER:
        return dlab ? this.dlm : this.ier;
      case UART_IIR:
        return this.readIir();
      case UART_LCR:
        return this.lcr;
      case UART_MCR:
        return this.mcr;
      case UART_LSR:
        return this.readLsr();
      case UART_MSR: {
        const v = this.msr;
        this.msr &= ~MSR_DELTAS; // datasheet 8.6.8: reading MSR resets the delta bits
        this.updateIrq();
        return v;
      }
      default: // UART_SCR
        return this.scr;
    }
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (size !== 1 || offset < 0 || offset >= UART_REGISTER_COUNT) {
      this.events.invalidWrite(offset, size, value);
      return;
    }
    value &= 0xff;
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case UART_THR:
        if (dlab) this.dll = value;
        else this.writeThr(value);
        break;
      case UART_IER:
        if (dlab) {
          this.dlm = value;
        } else {
          const was = this.ier;
          this.ier = value & IER_MASK;
          // Enabling ETBEI while THR is empty raises the THRE interrupt at once
          // (the 16550's behaviour that Linux's THRE tests rely on).
          if ((this.ier & IER_ETBEI) !== 0 && (was & IER_ETBEI) === 0) this.thrEmptyPending = true;
        }
        break;
      case UART_FCR:
        this.writeFcr(value);
        break;
      case UART_LCR:
        this.lcr = value;
        break;
      case UART_MCR:
        this.writeMcr(value & MCR_MASK);
        break;
      case UART_LSR:
        // LSR is read-only in normal use (datasheet: writing it is for factory test only).
        this.events.invalidWrite(offset, size, value);
        return;
      case UART_MSR:
        this.events.invalidWrite(offset, size, value);
        return;
      default: // UART_SCR
        this.scr = value;
        return;
    }
    this.updateIrq();
  }

  // ---- Host side

  /** A byte from the host towards the guest. Ignored in loopback (SIN is disconnected). */
  receive(byte: number): void {
    if ((this.mcr & MCR_LOOP) !== 0) return;
    this.pushRx(byte & 0xff);
    this.updateIrq();
  }

  /** Free RX FIFO entries: lets a host feed only what the guest can take. */
  rxFree(): number {
    return this.capacity() - this.rxCount;
  }

  // ---- State (STYLE rule 3)

  saveState(): Uart16550State {
    const rxFifo: number[] = [];
    for (let i = 0; i < this.rxCount; i++) rxFifo.push(this.rx[(this.rxHead + i) % UART_FIFO_SIZE]!);
    return {
      v: 1,
      ier: this.ier, lcr: this.lcr, mcr: this.mcr, lsr: this.lsrErrors, msr: this.msr, scr: this.scr,
      dll: this.dll, dlm: this.dlm, fifoEnabled: this.fifoEnabled, thrEmptyPending: this.thrEmptyPending,
      rxFifo,
    };
  }

  static fromState(state: Uart16550State, deps: Uart16550Deps, name?: string): Uart16550 {
    const s = state as unknown as Record<string, unknown>;
    if (s === null || typeof s !== "object" || s.v !== 1) {
      throw new Uart16550StateError(`Uart16550State: unsupported version ${String(s?.v)} (expected 1)`);
    }
    for (const k of ["ier", "lcr", "mcr", "lsr", "msr", "scr", "dll", "dlm"] as const) {
      if (!isByte(s[k])) throw new Uart16550StateError(`Uart16550State.${k}: expected a byte, got ${String(s[k])}`);
    }
    if (typeof s.fifoEnabled !== "boolean" || typeof s.thrEmptyPending !== "boolean") {
      throw new Uart16550StateError("Uart16550State.fifoEnabled/thrEmptyPending: expected booleans");
    }
    const fifo = s.rxFifo;
    const cap = s.fifoEnabled ? UART_FIFO_SIZE : 1;
    if (!Array.isArray(fifo) || fifo.length > cap || !fifo.every(isByte)) {
      throw new Uart16550StateError(`Uart16550State.rxFifo: expected at most ${cap} bytes`);
    }
    const u = new Uart16550(deps.irq, deps.out, deps.events ?? NO_EVENTS, deps.rxDrained, name);
    u.ier = state.ier & IER_MASK;
    u.lcr = state.lcr;
    u.mcr = state.mcr & MCR_MASK;
    u.lsrErrors = state.lsr & LSR_ERRORS;
    u.msr = state.msr;
    u.scr = state.scr;
    u.dll = state.dll;
    u.dlm = state.dlm;
    u.fifoEnabled = state.fifoEnabled;
    u.thrEmptyPending = state.thrEmptyPending;
    for (const b of fifo as number[]) u.rx[u.rxCount++] = b;
    u.updateIrq(); // re-raise a pending interrupt on the new IRQ line
    return u;
  }

  // ---- Internals

  private capacity(): number {
    return this.fifoEnabled ? UART_FIFO_SIZE : 1;
  }

  private pushRx(byte: number): void {
    const cap = this.capacity();
    if (this.rxCount >= cap) {
      this.lsrErrors |= LSR_OE;
      // 16450 mode: the new character overwrites the holding register (datasheet 8.6.3).
      if (cap === 1) this.rx[this.rxHead] = byte;
      return;
    }
    this.rx[(this.rxHead + this.rxCount) % UART_FIFO_SIZE] = byte;
    this.rxCount++;
  }

  private readRbr(): number {
    if (this.rxCount === 0) return 0;
    const b = this.rx[this.rxHead]!;
    this.rxHead = (this.rxHead + 1) % UART_FIFO_SIZE;
    this.rxCount--;
    this.updateIrq();
    this.rxDrained?.();
    return b;
  }

  private writeThr(value: number): void {
    if ((this.mcr & MCR_LOOP) !== 0) this.pushRx(value);
    else this.out(value);
    // The byte left at once: THR is empty again, which is itself a THRE interrupt event.
    this.thrEmptyPending = true;
  }

  private writeFcr(value: number): void {
    const enable = (value & FCR_FIFO_ENABLE) !== 0;
    // Changing FCR bit 0 clears both FIFOs (datasheet, FCR bit 0).
    if (enable !== this.fifoEnabled || (value & FCR_RX_RESET) !== 0) {
      this.rxHead = 0;
      this.rxCount = 0;
    }
    this.fifoEnabled = enable;
  }

  private writeMcr(value: number): void {
    this.mcr = value;
    const inputs = (value & MCR_LOOP) !== 0
      ? ((value & MCR_RTS) ? MSR_CTS : 0) | ((value & MCR_DTR) ? MSR_DSR : 0) |
        ((value & MCR_OUT1) ? MSR_RI : 0) | ((value & MCR_OUT2) ? MSR_DCD : 0)
      : MSR_HOST_INPUTS;
    const old = this.msr;
    let deltas = old & MSR_DELTAS;
    if ((old ^ inputs) & MSR_CTS) deltas |= MSR_DCTS;
    if ((old ^ inputs) & MSR_DSR) deltas |= MSR_DDSR;
    if ((old ^ inputs) & MSR_DCD) deltas |= MSR_DDCD;
    if ((old & MSR_RI) !== 0 && (inputs & MSR_RI) === 0) deltas |= MSR_TERI; // trailing edge only
    this.msr = inputs | deltas;
  }

  private readLsr(): number {
    let v = LSR_THRE | LSR_TEMT | this.lsrErrors;
    if (this.rxCount > 0) v |= LSR_DR;
    if (this.fifoEnabled && (this.lsrErrors & (LSR_PE | LSR_FE | LSR_BI)) !== 0) v |= LSR_RX_FIFO_ERROR;
    // Reading LSR clears the error bits (datasheet 8.6.3).
    this.lsrErrors = 0;
    this.updateIrq();
    return v;
  }

  /** The highest-priority pending interrupt's IIR identification, or IIR_NO_INT. */
  private pendingId(): number {
    const ier = this.ier;
    if ((ier & IER_ELSI) !== 0 && (this.lsrErrors & LSR_ERRORS) !== 0) return IIR_ID_RLS;
    if ((ier & IER_ERBFI) !== 0 && this.rxCount > 0) return IIR_ID_RDA;
    if ((ier & IER_ETBEI) !== 0 && this.thrEmptyPending) return IIR_ID_THRE;
    if ((ier & IER_EDSSI) !== 0 && (this.msr & MSR_DELTAS) !== 0) return IIR_ID_MS;
    return IIR_NO_INT;
  }

  private readIir(): number {
    const id = this.pendingId();
    // Reading IIR when it reports THRE clears that source (datasheet table 4).
    if (id === IIR_ID_THRE) {
      this.thrEmptyPending = false;
      this.updateIrq();
    }
    return id | (this.fifoEnabled ? IIR_FIFO_ENABLED : 0);
  }

  private updateIrq(): void {
    const gate = (this.mcr & (MCR_OUT2 | MCR_LOOP)) === MCR_OUT2;
    const level = gate && this.pendingId() !== IIR_NO_INT;
    if (level === this.irqLevel) return;
    this.irqLevel = level;
    if (level) this.irq.raise();
    else this.irq.lower();
  }
}

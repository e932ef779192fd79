// National Semiconductor PC16550D UART, as seen through its 8 registers.
// Source: PC16550D datasheet (June 1995), "Registers" tables 2-5 and section 8.
//
// Emulated:
// - RBR/THR, IER, IIR/FCR, LCR, MCR, LSR, MSR, SCR; DLL/DLM behind LCR.DLAB.
// - A 16-byte RX FIFO (1 byte in 16450 mode, FCR bit 0 clear). A byte arriving at a
//   full FIFO is lost and sets LSR_OE (datasheet 8.6.3, "Overrun Error").
// - The transmitter is infinitely fast: a THR write goes to the output sink at once,
//   so LSR_THRE and LSR_TEMT are always set. The THRE interrupt is set when THR empties
//   (each write, and ETBEI going 0->1 while empty) and cleared by an IIR read that
//   reports it or by a THR write (datasheet table 4).
// - FIFO mode: the RX data-available interrupt at the FCR trigger level (1, 4, 8, 14
//   bytes), and the character-timeout interrupt (IIR 0xC): the RX FIFO holds data and
//   nothing was received or read for 4 character times (datasheet 8.6.4). The character
//   time comes from the divisor and LCR (start + 5-8 data + parity + 1/1.5/2 stop bits at
//   1.8432 MHz / 16 / divisor) and is measured on the VM's VirtualClock. Without a clock
//   the trigger level is treated as 1 byte (nothing could time out).
// - Interrupt identification with the datasheet's priorities (table 4): receiver line
//   status > received data available / character timeout > THR empty > modem status.
// - Modem status: MSR deltas (DCTS, DDSR, TERI, DDCD) from loopback and from the host
//   side (`setModemInputs`, e.g. a TCP client connecting), with the modem status interrupt.
// - Loopback (MCR bit 4): TX goes to the RX FIFO, host input is ignored, and the modem
//   outputs loop to the MSR inputs (DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD) with
//   delta bits. Linux's 8250 probe relies on this.
// - The PC board gates the UART's INTR pin with MCR.OUT2 (IBM PC/AT Technical Reference,
//   "Serial/Parallel Adapter"); in loopback OUT2 is forced inactive, so the IRQ line is low.
//
// Not emulated:
// - Transmit timing (output leaves at once) and receive pacing (the host side feeds bytes
//   as the FIFO has room; there is no line rate limiting on RX).
// - Parity, framing and break errors (LSR_PE/FE/BI are never set by the model).
// - The TX FIFO (nothing is ever queued) and DMA mode (FCR bit 3).
import type { AccessSize, DeviceEvents, IoDevice, IrqLine, VirtualClock } from "../../../src/monitor/api.js";
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
/** Character timeout (FIFO mode only): bit 3 with the RDA identification. */
export const IIR_ID_CTI = 0x0c;
export const IIR_FIFO_ENABLED = 0xc0;

export const FCR_FIFO_ENABLE = 0x01;
export const FCR_RX_RESET = 0x02;
export const FCR_TX_RESET = 0x04;
export const FCR_DMA_MODE = 0x08;
/** Bits 7:6: RX trigger level 1, 4, 8 or 14 bytes (datasheet table 5). */
export const FCR_TRIGGER_MASK = 0xc0;
const TRIGGER_LEVELS = [1, 4, 8, 14];

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
/** The PC's UART input clock: 1.8432 MHz (divisor 1 = 115200 baud). */
export const UART_CLOCK_HZ = 1_843_200;

/** Versioned, JSON-safe device state (STYLE rule 3). LSR_THRE/TEMT and DR are derived. */
export interface Uart16550State {
  readonly v: 2;
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
  /** v2: FCR bits 7:6 (trigger level) and 3 (DMA mode), as last written. */
  fcr: number;
  /** v2: the character-timeout interrupt is pending (re-armed on restore when data waits). */
  timeoutPending: boolean;
  /** v2: modem inputs from the host side outside loopback (MSR bits 7:4). */
  hostInputs: number;
}

/** State v1 (no trigger level, no timeout, fixed host modem inputs). */
export interface Uart16550StateV1 extends Omit<Uart16550State, "v" | "fcr" | "timeoutPending" | "hostInputs"> {
  readonly v: 1;
}

/** v1 -> v2: trigger level 1 byte, no timeout pending, a connected terminal on the modem inputs. */
export function migrateUart16550StateV1(s: Uart16550StateV1): Uart16550State {
  return { ...s, v: 2, fcr: 0, timeoutPending: false, hostInputs: MSR_HOST_INPUTS };
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
  /** Times the character-timeout interrupt; without it the trigger level acts as 1 byte. */
  clock?: VirtualClock;
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
  private dll = 0x0c; // 9600 baud at 1.8432 MHz
  private dlm = 0;
  private fifoEnabled = false;
  /** FCR bits 7:6 and 3 as last written. */
  private fcr = 0;
  private thrEmptyPending = false;
  private timeoutPending = false;
  /** MSR bits 7:4 the host side presents outside loopback. */
  private hostInputs = MSR_HOST_INPUTS;
  // Ring buffer, preallocated: no allocation per byte.
  private readonly rx = new Uint8Array(UART_FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  private irqLevel = false;
  private timer = -1;
  /** Preallocated timer callback (no closure per received byte). */
  private readonly onTimeout = (): void => {
    this.timer = -1;
    if (this.fifoEnabled && this.rxCount > 0) {
      this.timeoutPending = true;
      this.updateIrq();
    }
  };

  constructor(
    private readonly irq: IrqLine,
    private readonly out: (byte: number) => void,
    private readonly events: DeviceEvents = NO_EVENTS,
    private readonly rxDrained?: () => void,
    name = "uart16550",
    private readonly clock?: VirtualClock,
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
    this.rxActivity(false);
    this.updateIrq();
  }

  /** Free RX FIFO entries: lets a host feed only what the guest can take. */
  rxFree(): number {
    return this.capacity() - this.rxCount;
  }

  /**
   * The modem inputs the host side presents (MSR_CTS | MSR_DSR | MSR_RI | MSR_DCD bits):
   * changes set the delta bits and may raise the modem status interrupt. In loopback they
   * are stored and take effect when loopback ends.
   */
  setModemInputs(bits: number): void {
    this.hostInputs = bits & 0xf0;
    if ((this.mcr & MCR_LOOP) === 0) {
      this.setMsrInputs(this.hostInputs);
      this.updateIrq();
    }
  }

  /** One character time in nanoseconds for the current divisor and LCR framing. */
  charTimeNs(): number {
    const divisor = ((this.dlm << 8) | this.dll) || 0x10000; // 0 counts as 65536 (16-bit divider)
    const wordLen = 5 + (this.lcr & 3);
    const stop = (this.lcr & 4) === 0 ? 1 : wordLen === 5 ? 1.5 : 2;
    const bits = 1 + wordLen + ((this.lcr & 8) !== 0 ? 1 : 0) + stop;
    return (bits * divisor * 16 * 1e9) / UART_CLOCK_HZ;
  }

  // ---- State (STYLE rule 3)

  saveState(): Uart16550State {
    const rxFifo: number[] = [];
    for (let i = 0; i < this.rxCount; i++) rxFifo.push(this.rx[(this.rxHead + i) % UART_FIFO_SIZE]!);
    return {
      v: 2,
      ier: this.ier, lcr: this.lcr, mcr: this.mcr, lsr: this.lsrErrors, msr: this.msr, scr: this.scr,
      dll: this.dll, dlm: this.dlm, fifoEnabled: this.fifoEnabled, thrEmptyPending: this.thrEmptyPending,
      rxFifo, fcr: this.fcr, timeoutPending: this.timeoutPending, hostInputs: this.hostInputs,
    };
  }

  /** Accepts v2, and v1 through migrateUart16550StateV1. */
  static fromState(state: Uart16550State | Uart16550StateV1, deps: Uart16550Deps, name?: string): Uart16550 {
    const raw = state as unknown as Record<string, unknown>;
    if (raw === null || typeof raw !== "object" || (raw.v !== 1 && raw.v !== 2)) {
      throw new Uart16550StateError(`Uart16550State: unsupported version ${String(raw?.v)} (expected 1 or 2)`);
    }
    const st = raw.v === 1 ? migrateUart16550StateV1(state as Uart16550StateV1) : (state as Uart16550State);
    const s = st as unknown as Record<string, unknown>;
    for (const k of ["ier", "lcr", "mcr", "lsr", "msr", "scr", "dll", "dlm", "fcr", "hostInputs"] as const) {
      if (!isByte(s[k])) throw new Uart16550StateError(`Uart16550State.${k}: expected a byte, got ${String(s[k])}`);
    }
    if (typeof s.fifoEnabled !== "boolean" || typeof s.thrEmptyPending !== "boolean" || typeof s.timeoutPending !== "boolean") {
      throw new Uart16550StateError("Uart16550State.fifoEnabled/thrEmptyPending/timeoutPending: expected booleans");
    }
    const fifo = s.rxFifo;
    const cap = s.fifoEnabled ? UART_FIFO_SIZE : 1;
    if (!Array.isArray(fifo) || fifo.length > cap || !fifo.every(isByte)) {
      throw new Uart16550StateError(`Uart16550State.rxFifo: expected at most ${cap} bytes`);
    }
    const u = new Uart16550(deps.irq, deps.out, deps.events ?? NO_EVENTS, deps.rxDrained, name, deps.clock);
    u.ier = st.ier & IER_MASK;
    u.lcr = st.lcr;
    u.mcr = st.mcr & MCR_MASK;
    u.lsrErrors = st.lsr & LSR_ERRORS;
    u.msr = st.msr;
    u.scr = st.scr;
    u.dll = st.dll;
    u.dlm = st.dlm;
    u.fifoEnabled = st.fifoEnabled;
    u.fcr = st.fcr & (FCR_TRIGGER_MASK | FCR_DMA_MODE);
    u.thrEmptyPending = st.thrEmptyPending;
    u.hostInputs = st.hostInputs & 0xf0;
    for (const b of fifo as number[]) u.rx[u.rxCount++] = b;
    u.timeoutPending = st.timeoutPending && u.fifoEnabled && u.rxCount > 0;
    if (!u.timeoutPending) u.rxActivity(false); // data waiting: the timeout runs again from now
    u.updateIrq(); // re-raise a pending interrupt on the new IRQ line
    return u;
  }

  // ---- Internals

  private capacity(): number {
    return this.fifoEnabled ? UART_FIFO_SIZE : 1;
  }

  /** RX bytes that make "received data available" (datasheet 8.6.4: the FCR trigger level). */
  private triggerLevel(): number {
    if (!this.fifoEnabled || this.clock === undefined) return 1;
    return TRIGGER_LEVELS[this.fcr >>> 6]!;
  }

  /**
   * A byte was received (`read` false) or the CPU read the FIFO (`read` true): restart the
   * 4-character timeout. A read also clears a pending timeout; a receive does not (8.6.4).
   */
  private rxActivity(read: boolean): void {
    if (read) this.timeoutPending = false;
    const clock = this.clock;
    if (clock === undefined) return;
    if (this.timer >= 0) {
      clock.cancel(this.timer);
      this.timer = -1;
    }
    if (this.fifoEnabled && this.rxCount > 0 && !this.timeoutPending) {
      this.timer = clock.setTimer(clock.now() + 4 * this.charTimeNs(), this.onTimeout);
    }
  }

  private resetRx(): void {
    this.rxHead = 0;
    this.rxCount = 0;
    this.timeoutPending = false;
    if (this.timer >= 0) {
      this.clock?.cancel(this.timer);
      this.timer = -1;
    }
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
    this.rxActivity(true);
    this.updateIrq();
    this.rxDrained?.();
    return b;
  }

  private writeThr(value: number): void {
    if ((this.mcr & MCR_LOOP) !== 0) {
      this.pushRx(value);
      this.rxActivity(false);
    } else {
      this.out(value);
    }
    // The byte left at once: THR is empty again, which is itself a THRE interrupt event.
    this.thrEmptyPending = true;
  }

  private writeFcr(value: number): void {
    const enable = (value & FCR_FIFO_ENABLE) !== 0;
    // Changing FCR bit 0 clears both FIFOs (datasheet, FCR bit 0).
    if (enable !== this.fifoEnabled || (value & FCR_RX_RESET) !== 0) this.resetRx();
    this.fifoEnabled = enable;
    this.fcr = value & (FCR_TRIGGER_MASK | FCR_DMA_MODE);
  }

  private writeMcr(value: number): void {
    this.mcr = value;
    const inputs = (value & MCR_LOOP) !== 0
      ? ((value & MCR_RTS) ? MSR_CTS : 0) | ((value & MCR_DTR) ? MSR_DSR : 0) |
        ((value & MCR_OUT1) ? MSR_RI : 0) | ((value & MCR_OUT2) ? MSR_DCD : 0)
      : this.hostInputs;
    this.setMsrInputs(inputs);
  }

  /** New MSR input bits (7:4); sets the delta bits for what changed (datasheet 8.6.8). */
  private setMsrInputs(inputs: number): void {
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
    if ((ier & IER_ERBFI) !== 0) {
      if (this.rxCount >= this.triggerLevel()) return IIR_ID_RDA;
      if (this.timeoutPending) return IIR_ID_CTI;
    }
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

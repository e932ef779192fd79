// The 8259A programmable interrupt controller pair as the PC/AT wires it (Intel 8259A
// datasheet, order 231468; PC/AT Technical Reference "System Interrupts"), with the
// PIIX edge/level control registers (Intel 82371AB PIIX4 datasheet, ELCR1/ELCR2).
//
// Emulated: ICW1-ICW4 (single/cascade, ICW4 needed, LTIM, vector base, slave map/ID,
// 8086 mode bit, auto-EOI, special fully nested mode); OCW1 (IMR); OCW2 (non-specific,
// specific and rotating EOIs, rotate in auto-EOI set/clear, set priority); OCW3 (read
// IRR/ISR, poll command, special mask mode); edge and level triggering (ELCR, or ICW1
// LTIM for all inputs of a chip); fully nested priority with rotation; cascade of the
// slave on master IR2; the default IR7 ("spurious") vector when a request went away
// before the INTA cycle; save/restore.
//
// Semantics chosen where the datasheet leaves room:
// - Edge mode: a low-to-high transition sets IRR; the bit stays set while the line stays
//   high. Like the datasheet's timing rule ("the IR input must remain high until after
//   the falling edge of the first INTA"), a line that goes low clears its IRR bit in both
//   modes: a device must hold its line high until the interrupt is acknowledged.
// - A spurious acknowledge on the master returns base|7 and sets no ISR bit. On the slave
//   (master chose IR2, slave has nothing) it returns slaveBase|7: the master's ISR2 is
//   set as for any cascade acknowledge, so the guest must send the master the
//   (non-specific) EOI the datasheet's default-IR7 note asks for; the slave's ISR is not.
// - The slave answers every cascade acknowledge (its ICW3 ID is stored, not compared).
// - MCS-80/85 mode (ICW4 bit 0 = 0) delivers the same 8086-style vectors; buffered mode
//   bits are stored only. IRQ line 2 is the cascade: setIrq(2) is not connected.
import type { AccessSize, DeviceEvents, InterruptController, IoDevice } from "../../../src/monitor/api.js";
import { NO_EVENTS } from "../../../src/monitor/api.js";

/** PC/AT I/O map (PC/AT Technical Reference, I/O address map): the master at 0x20-0x21. */
export const PIC_MASTER_BASE = 0x20;
/** The slave at 0xA0-0xA1. */
export const PIC_SLAVE_BASE = 0xa0;
/** PIIX ELCR1 (0x4D0, master IRQ0-7) and ELCR2 (0x4D1, slave IRQ8-15). */
export const PIC_ELCR_BASE = 0x4d0;
export const PIC_PORT_COUNT = 2;
/** The slave's INT drives master IR2 (PC/AT). */
export const PIC_CASCADE_IRQ = 2;
/** Writable ELCR bits (PIIX4 ELCR1: IRQ0-2 reserved; ELCR2: IRQ8 and IRQ13 reserved, read as 0). */
export const ELCR_MASK = [0xf8, 0xde] as const;

// Datasheet register bit names.
const ICW1_IC4 = 0x01;
const ICW1_SNGL = 0x02;
const ICW1_LTIM = 0x08;
const ICW1_SELECT = 0x10;
const ICW4_UPM = 0x01;
const ICW4_AEOI = 0x02;
const ICW4_SFNM = 0x10;
const OCW3_SELECT = 0x08;
const OCW3_RIS = 0x01;
const OCW3_RR = 0x02;
const OCW3_P = 0x04;
const OCW3_SMM = 0x20;
const OCW3_ESMM = 0x40;
const POLL_I = 0x80;

/** Where the chip is in its initialization sequence. */
const enum Init { Ready = 0, Icw2 = 2, Icw3 = 3, Icw4 = 4 }

/** One chip's registers (STYLE rule 3: plain, JSON-safe). */
export interface I8259ChipState {
  irr: number;
  isr: number;
  imr: number;
  elcr: number;
  /** Input line levels, one bit per IR. */
  lines: number;
  /** The IR with the lowest priority (7 after ICW1). */
  lowest: number;
  /** ICW1 as written (IC4, SNGL, LTIM). */
  icw1: number;
  /** ICW2 & 0xF8: the vector base. */
  base: number;
  icw3: number;
  icw4: number;
  /** 0 ready, 2-4: the ICW expected next. */
  init: number;
  rotateAeoi: boolean;
  readIsr: boolean;
  poll: boolean;
  specialMask: boolean;
}

export interface I8259State {
  readonly v: 1;
  master: I8259ChipState;
  slave: I8259ChipState;
}

/** A saved state that cannot be restored. */
export class I8259StateError extends Error {
  override readonly name = "I8259StateError";
}

/** One 8259A. Inputs are IR0-IR7; `intr()` is its INT output. */
export class I8259Chip {
  irr = 0;
  isr = 0;
  imr = 0;
  elcr = 0;
  lines = 0;
  lowest = 7;
  icw1 = 0;
  base = 0;
  icw3 = 0;
  icw4 = 0;
  init: number = Init.Ready;
  rotateAeoi = false;
  readIsr = false;
  poll = false;
  specialMask = false;

  constructor(readonly isMaster: boolean, readonly elcrMask: number) {}

  /** Inputs sensed by level: ELCR, or all of them with ICW1 LTIM (datasheet, ICW1). */
  levelMask(): number {
    return (this.icw1 & ICW1_LTIM) !== 0 ? 0xff : this.elcr;
  }

  /** An IR input changed level. */
  setInput(ir: number, level: boolean): void {
    const bit = 1 << ir;
    if (level) {
      // Edge: only a low-to-high transition requests; level: IRR follows the line.
      if ((this.lines & bit) === 0 || (this.levelMask() & bit) !== 0) this.irr |= bit;
      this.lines |= bit;
    } else {
      this.lines &= ~bit;
      this.irr &= ~bit; // the request went away (datasheet: default IR7 if before INTA)
    }
  }

  /** Priority rank of the highest-priority bit in `mask` (0 = highest), 8 if none. */
  rank(mask: number): number {
    for (let i = 0; i < 8; i++) if ((mask & (1 << ((this.lowest + 1 + i) & 7))) !== 0) return i;
    return 8;
  }

  private irOfRank(rank: number): number {
    return (this.lowest + 1 + rank) & 7;
  }

  /** The IR the chip would present at an INTA now, or -1: its INT output. */
  pending(): number {
    if (this.init !== Init.Ready) return -1;
    const req = this.irr & ~this.imr & 0xff;
    if (req === 0) return -1;
    if (this.specialMask) {
      // Special mask mode: any unmasked request not itself in service (datasheet, OCW3 SMM).
      const r = this.rank(req & ~this.isr);
      return r < 8 ? this.irOfRank(r) : -1;
    }
    const r = this.rank(req);
    const ir = this.irOfRank(r);
    const inService = this.rank(this.isr);
    if (r < inService) return ir;
    // Special fully nested mode: a slave in service does not lock out its own further requests.
    if (r === inService && this.isMaster && (this.icw4 & ICW4_SFNM) !== 0 && (this.icw3 & (1 << ir)) !== 0) return ir;
    return -1;
  }

  /** True when `ir` has a slave behind it (master in cascade mode, ICW3 bit set). */
  isCascade(ir: number): boolean {
    return this.isMaster && (this.icw1 & ICW1_SNGL) === 0 && (this.icw3 & (1 << ir)) !== 0;
  }

  /** The INTA cycle for `ir`: ISR set (or auto-EOI), edge IRR cleared. */
  ack(ir: number): void {
    const bit = 1 << ir;
    if ((this.levelMask() & bit) === 0) this.irr &= ~bit;
    if ((this.icw4 & ICW4_AEOI) !== 0) {
      // Auto-EOI: the ISR bit is reset at the end of the last INTA pulse (datasheet, AEOI).
      if (this.rotateAeoi) this.lowest = ir;
    } else {
      this.isr |= bit;
    }
  }

  private eoi(ir: number, rotate: boolean): void {
    if (ir < 0) return;
    this.isr &= ~(1 << ir);
    if (rotate) this.lowest = ir;
  }

  /** ISR's highest-priority IR, or -1 (what a non-specific EOI clears). */
  private highestInService(): number {
    const r = this.rank(this.isr);
    return r < 8 ? this.irOfRank(r) : -1;
  }

  /** The poll command's read (datasheet, "The Poll Command"): I bit + W2-W0, acting as an INTA. */
  pollRead(): number {
    this.poll = false;
    const ir = this.pending();
    if (ir < 0) return 0;
    this.ack(ir);
    return POLL_I | ir;
  }

  read(offset: number): number {
    if (this.poll) return this.pollRead();
    if (offset === 0) return this.readIsr ? this.isr : this.irr;
    return this.imr;
  }

  write(offset: number, value: number): void {
    value &= 0xff;
    if (offset === 0) {
      if ((value & ICW1_SELECT) !== 0) this.icw1Write(value);
      else if ((value & OCW3_SELECT) !== 0) this.ocw3Write(value);
      else this.ocw2Write(value);
      return;
    }
    switch (this.init) {
      case Init.Icw2:
        this.base = value & 0xf8;
        this.init = (this.icw1 & ICW1_SNGL) === 0 ? Init.Icw3 : (this.icw1 & ICW1_IC4) !== 0 ? Init.Icw4 : Init.Ready;
        return;
      case Init.Icw3:
        this.icw3 = value;
        this.init = (this.icw1 & ICW1_IC4) !== 0 ? Init.Icw4 : Init.Ready;
        return;
      case Init.Icw4:
        this.icw4 = value & 0x1f;
        this.init = Init.Ready;
        return;
      default:
        this.imr = value; // OCW1
    }
  }

  /** ICW1 (datasheet, "Initialization Command Words"). */
  private icw1Write(value: number): void {
    this.icw1 = value & (ICW1_IC4 | ICW1_SNGL | ICW1_LTIM);
    this.init = Init.Icw2;
    // "The edge sense circuit is reset": an input already high must go low and high again.
    // Level-sensed inputs keep following their lines.
    this.irr = this.lines & this.levelMask();
    this.isr = 0;
    this.imr = 0;
    this.lowest = 7;
    this.specialMask = false;
    this.readIsr = false;
    this.poll = false;
    this.rotateAeoi = false;
    if ((value & ICW1_IC4) === 0) this.icw4 = 0; // "all functions selected in ICW4 are set to zero"
  }

  /** OCW2: R, SL, EOI in bits 7-5, the level in bits 2-0 (datasheet, table "OCW2"). */
  private ocw2Write(value: number): void {
    const level = value & 7;
    switch (value >>> 5) {
      case 0b001: this.eoi(this.highestInService(), false); break; // non-specific EOI
      case 0b011: this.eoi(level, false); break; // specific EOI
      case 0b101: this.eoi(this.highestInService(), true); break; // rotate on non-specific EOI
      case 0b100: this.rotateAeoi = true; break; // rotate in AEOI mode (set)
      case 0b000: this.rotateAeoi = false; break; // rotate in AEOI mode (clear)
      case 0b111: this.eoi(level, true); break; // rotate on specific EOI
      case 0b110: this.lowest = level; break; // set priority
      default: break; // 0b010: no operation
    }
  }

  private ocw3Write(value: number): void {
    if ((value & OCW3_ESMM) !== 0) this.specialMask = (value & OCW3_SMM) !== 0;
    if ((value & OCW3_RR) !== 0) this.readIsr = (value & OCW3_RIS) !== 0;
    this.poll = (value & OCW3_P) !== 0;
  }

  writeElcr(value: number): void {
    this.elcr = value & this.elcrMask;
    // Level inputs follow their lines at once; edge inputs keep their latched requests.
    const lvl = this.levelMask();
    this.irr = ((this.irr & ~lvl) | (this.lines & lvl)) & 0xff;
  }

  save(): I8259ChipState {
    return {
      irr: this.irr, isr: this.isr, imr: this.imr, elcr: this.elcr, lines: this.lines, lowest: this.lowest,
      icw1: this.icw1, base: this.base, icw3: this.icw3, icw4: this.icw4, init: this.init,
      rotateAeoi: this.rotateAeoi, readIsr: this.readIsr, poll: this.poll, specialMask: this.specialMask,
    };
  }

  load(s: I8259ChipState, what: string): void {
    const byte = (k: keyof I8259ChipState, max = 0xff): number => {
      const v = s[k];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
        throw new I8259StateError(`i8259 state: ${what}.${k} must be an integer 0..${max}, got ${JSON.stringify(v)}`);
      }
      return v;
    };
    const flag = (k: keyof I8259ChipState): boolean => {
      const v = s[k];
      if (typeof v !== "boolean") throw new I8259StateError(`i8259 state: ${what}.${k} must be a boolean`);
      return v;
    };
    const init = byte("init", 4);
    if (init === 1) throw new I8259StateError(`i8259 state: ${what}.init must be 0, 2, 3 or 4`);
    if ((byte("elcr") & ~this.elcrMask) !== 0) throw new I8259StateError(`i8259 state: ${what}.elcr sets reserved bits`);
    if ((byte("base") & 7) !== 0) throw new I8259StateError(`i8259 state: ${what}.base must be a multiple of 8`);
    this.irr = byte("irr"); this.isr = byte("isr"); this.imr = byte("imr"); this.elcr = byte("elcr");
    this.lines = byte("lines"); this.lowest = byte("lowest", 7); this.icw1 = byte("icw1") & (ICW1_IC4 | ICW1_SNGL | ICW1_LTIM);
    this.base = byte("base"); this.icw3 = byte("icw3"); this.icw4 = byte("icw4", 0x1f); this.init = init;
    this.rotateAeoi = flag("rotateAeoi"); this.readIsr = flag("readIsr"); this.poll = flag("poll"); this.specialMask = flag("specialMask");
  }
}

/** ISA byte cycles: a wider access to an 8-bit register pair is split into byte accesses. */
function splitRead(readByte: (offset: number) => number, offset: number, size: AccessSize): number {
  let v = 0;
  for (let i = 0; i < size; i++) v |= readByte(offset + i) << (8 * i);
  return v >>> 0;
}

function splitWrite(writeByte: (offset: number, value: number) => void, offset: number, size: AccessSize, value: number): void {
  for (let i = 0; i < size; i++) writeByte(offset + i, (value >>> (8 * i)) & 0xff);
}

/**
 * The master/slave pair: implements the monitor's InterruptController (IRQ 0-15) and
 * exposes one IoDevice per I/O range (master, slave, ELCR).
 */
export class I8259Pic implements InterruptController {
  readonly master = new I8259Chip(true, ELCR_MASK[0]);
  readonly slave = new I8259Chip(false, ELCR_MASK[1]);
  readonly masterIo: IoDevice;
  readonly slaveIo: IoDevice;
  readonly elcrIo: IoDevice;

  constructor(private readonly events: DeviceEvents = NO_EVENTS) {
    this.masterIo = this.chipDevice(this.master, "i8259@master");
    this.slaveIo = this.chipDevice(this.slave, "i8259@slave");
    const elcrRead = (o: number): number => {
      if (o === 0) return this.master.elcr;
      if (o === 1) return this.slave.elcr;
      this.events.invalidRead(o, 1);
      return 0xff;
    };
    const elcrWrite = (o: number, v: number): void => {
      if (o === 0) this.master.writeElcr(v);
      else if (o === 1) this.slave.writeElcr(v);
      else { this.events.invalidWrite(o, 1, v); return; }
      this.updateCascade();
    };
    this.elcrIo = {
      name: "i8259@elcr",
      read: (o, size) => splitRead(elcrRead, o, size),
      write: (o, size, v) => splitWrite(elcrWrite, o, size, v),
    };
  }

  private chipDevice(chip: I8259Chip, name: string): IoDevice {
    const readByte = (o: number): number => {
      if (o >= PIC_PORT_COUNT) { this.events.invalidRead(o, 1); return 0xff; }
      const v = chip.read(o);
      this.updateCascade(); // a poll read is an acknowledge
      return v;
    };
    const writeByte = (o: number, v: number): void => {
      if (o >= PIC_PORT_COUNT) { this.events.invalidWrite(o, 1, v); return; }
      chip.write(o, v);
      this.updateCascade();
    };
    return {
      name,
      read: (o, size) => splitRead(readByte, o, size),
      write: (o, size, v) => splitWrite(writeByte, o, size, v),
    };
  }

  /** The slave's INT output drives master IR2. */
  private updateCascade(): void {
    const level = this.slave.pending() >= 0;
    if (level !== ((this.master.lines & (1 << PIC_CASCADE_IRQ)) !== 0)) this.master.setInput(PIC_CASCADE_IRQ, level);
  }

  setIrq(irq: number, level: boolean): void {
    if (irq < 8) {
      if (irq === PIC_CASCADE_IRQ || irq < 0) return;
      this.master.setInput(irq, level);
    } else if (irq < 16) {
      this.slave.setInput(irq - 8, level);
      this.updateCascade();
    }
  }

  hasInterrupt(): boolean {
    return this.master.pending() >= 0;
  }

  acknowledge(): number {
    const m = this.master;
    const ir = m.pending();
    if (ir < 0) return (m.base | 7) >>> 0; // default IR7: no ISR bit is set
    m.ack(ir);
    if (!m.isCascade(ir)) return (m.base | ir) >>> 0;
    const s = this.slave;
    const sir = s.pending();
    let vector: number;
    if (sir < 0) {
      vector = (s.base | 7) >>> 0;
    } else {
      s.ack(sir);
      vector = (s.base | sir) >>> 0;
    }
    // The INTA sequence drops the slave's INT; a request still presented raises it again (a new edge).
    m.setInput(PIC_CASCADE_IRQ, false);
    this.updateCascade();
    return vector;
  }

  saveState(): I8259State {
    return { v: 1, master: this.master.save(), slave: this.slave.save() };
  }

  static fromState(state: I8259State, events: DeviceEvents = NO_EVENTS): I8259Pic {
    if (typeof state !== "object" || state === null || state.v !== 1) {
      throw new I8259StateError(`i8259 state: unsupported version ${JSON.stringify((state as { v?: unknown } | null)?.v)}`);
    }
    if (typeof state.master !== "object" || state.master === null || typeof state.slave !== "object" || state.slave === null) {
      throw new I8259StateError("i8259 state: master and slave are required");
    }
    const pic = new I8259Pic(events);
    pic.master.load(state.master, "master");
    pic.slave.load(state.slave, "slave");
    // Re-derive the cascade input from the slave, so INT towards the CPU is consistent.
    pic.updateCascade();
    return pic;
  }
}

// Intel 8042 keyboard controller, as on the IBM PC/AT and PS/2 (data port 0x60,
// status/command port 0x64), with a PS/2 keyboard (ps2-keyboard.ts) on its keyboard port.
// Sources: IBM PS/2 Hardware Interface Technical Reference, "Keyboard/Auxiliary Device
// Controller" (status register, command byte, controller commands, output port).
//
// Emulated:
// - Status: OBF, IBF (always 0: every write is processed at once), SYS (from the command
//   byte), A2 (last write was a command), INH (1: not inhibited), MOBF (aux data in OB).
// - The command byte (0x20 read / 0x60 write; 0x21-0x3F / 0x61-0x7F the rest of the
//   32-byte RAM): INT (IRQ 1 on OBF), INT2 (IRQ 12 on aux OBF), SYS, keyboard disable,
//   aux disable, XLAT (set 2 -> set 1 translation of keyboard bytes).
// - Commands AA (self-test -> 0x55), AB (keyboard interface test -> 0x00), AD/AE (disable/
//   enable keyboard), A7/A8 (disable/enable aux), A9 (aux interface test -> 0x00), C0 (input
//   port), D0/D1 (read/write output port: bit 0 low = CPU reset, bit 1 = A20), D2/D3 (write
//   keyboard/aux output buffer), D4 (write to aux: no device, byte dropped), DD/DF (A20 off/
//   on), E0 (test inputs -> 0), F0-FF (pulse output port: bit 0 clear in the command pulses
//   reset, so FE resets and FF does nothing). Unknown commands are ignored and reported.
// - Bytes written to 0x60 without a pending controller command go to the keyboard; doing
//   so re-enables the keyboard interface (the controller must clock them out).
// - The output buffer: controller replies first, then keyboard bytes (unless the keyboard
//   interface is disabled), then aux bytes. Reply and aux queues are bounded (16 bytes);
//   excess is dropped and counted.
//
// Not emulated: a PS/2 mouse (no aux device answers), parity/timeout errors, the
// password and security commands (A4-A6), keyboard lock, command timing.
import type { AccessSize, DeviceEvents, IoDevice, IrqLine, Platform } from "../../../src/monitor/api.js";
import { NO_EVENTS } from "../../../src/monitor/api.js";
import type { A20Gate } from "./port92.js";
import { Ps2Keyboard, XLAT_TABLE } from "./ps2-keyboard.js";

export const I8042_DATA_PORT = 0x60;
export const I8042_COMMAND_PORT = 0x64;
export const I8042_KBD_IRQ = 1;
export const I8042_AUX_IRQ = 12;

// Status register (IBM PS/2 TR, controller status byte).
export const STAT_OBF = 0x01;
export const STAT_IBF = 0x02;
export const STAT_SYS = 0x04;
export const STAT_A2 = 0x08;
export const STAT_INH = 0x10;
export const STAT_MOBF = 0x20;

// Command byte.
export const CTR_INT = 0x01;
export const CTR_INT2 = 0x02;
export const CTR_SYS = 0x04;
export const CTR_KBD_DISABLE = 0x10;
export const CTR_AUX_DISABLE = 0x20;
export const CTR_XLAT = 0x40;
/**
 * The command byte as the BIOS leaves it for the boot loader (our BIOS does POST in
 * TypeScript, so the controller starts in that state): keyboard IRQ on, system flag set,
 * translation on, aux disabled (no mouse).
 */
export const I8042_POST_CTR = CTR_INT | CTR_SYS | CTR_XLAT | CTR_AUX_DISABLE;

// Output port.
export const OUT_RESET = 0x01; // low = CPU reset asserted
export const OUT_A20 = 0x02;
export const OUT_KBD_OBF = 0x10;
export const OUT_AUX_OBF = 0x20;
/** Power-on output port: reset inactive, A20 on, clock/data lines high (as QEMU's 0xCF). */
export const I8042_OUTPORT_RESET = 0xcf;

export const I8042_QUEUE_SIZE = 16;

const enum Src { None, Kbd, Aux }

const enum Want { None, Ram, OutPort, KbdOut, AuxOut, AuxDev }

/** A tiny bounded byte FIFO (no allocation after construction). */
class ByteQueue {
  private readonly b = new Uint8Array(I8042_QUEUE_SIZE);
  private head = 0;
  count = 0;
  dropped = 0;
  push(v: number): void {
    if (this.count >= I8042_QUEUE_SIZE) {
      this.dropped++;
      return;
    }
    this.b[(this.head + this.count) % I8042_QUEUE_SIZE] = v;
    this.count++;
  }
  shift(): number {
    const v = this.b[this.head]!;
    this.head = (this.head + 1) % I8042_QUEUE_SIZE;
    this.count--;
    return v;
  }
  clear(): void {
    this.head = 0;
    this.count = 0;
  }
}

export interface I8042Deps {
  irq1: IrqLine;
  irq12: IrqLine;
  a20: A20Gate;
  platform: Pick<Platform, "requestReset">;
  events?: DeviceEvents;
}

export class I8042 {
  readonly keyboard: Ps2Keyboard;
  /** Port 0x60 and port 0x64 as bus devices (each sees offset 0). */
  readonly dataPort: IoDevice;
  readonly commandPort: IoDevice;
  /** Controller RAM: byte 0 is the command byte. */
  private readonly ram = new Uint8Array(32);
  private outport = I8042_OUTPORT_RESET;
  private status = STAT_SYS | STAT_INH;
  private ob = 0;
  private obSrc = Src.None;
  private want = Want.None;
  private wantIndex = 0;
  private readonly replies = new ByteQueue();
  private readonly aux = new ByteQueue();
  private irq1Level = false;
  private irq12Level = false;
  /** Bytes written to the aux device (there is none): dropped. */
  auxBytesDropped = 0;
  private readonly irq1: IrqLine;
  private readonly irq12: IrqLine;
  private readonly a20: A20Gate;
  private readonly platform: Pick<Platform, "requestReset">;
  private readonly events: DeviceEvents;

  constructor(deps: I8042Deps) {
    this.irq1 = deps.irq1;
    this.irq12 = deps.irq12;
    this.a20 = deps.a20;
    this.platform = deps.platform;
    this.events = deps.events ?? NO_EVENTS;
    this.ram[0] = I8042_POST_CTR;
    this.keyboard = new Ps2Keyboard({ kbdDataReady: () => this.refill() });
    this.dataPort = {
      name: "i8042-data",
      read: (off, size) => (off === 0 && size === 1 ? this.readData() : this.invalidRead(off, size)),
      write: (off, size, v) => (off === 0 && size === 1 ? this.writeData(v & 0xff) : this.events.invalidWrite(off, size, v)),
    };
    this.commandPort = {
      name: "i8042-command",
      read: (off, size) => (off === 0 && size === 1 ? this.readStatus() : this.invalidRead(off, size)),
      write: (off, size, v) => (off === 0 && size === 1 ? this.writeCommand(v & 0xff) : this.events.invalidWrite(off, size, v)),
    };
  }

  /** The command byte. */
  get ctr(): number {
    return this.ram[0]!;
  }

  /** Reply and aux bytes dropped because their queue was full. */
  get droppedBytes(): number {
    return this.replies.dropped + this.aux.dropped;
  }

  readStatus(): number {
    let s = this.status;
    if (this.obSrc !== Src.None) s |= STAT_OBF;
    if (this.obSrc === Src.Aux) s |= STAT_MOBF;
    return s;
  }

  readData(): number {
    // Reading an empty buffer returns the last byte again, as the 8042 does.
    const v = this.ob;
    if (this.obSrc !== Src.None) {
      this.obSrc = Src.None;
      // The IRQ line drops with OBF, so loading the next byte is a fresh edge for the PIC.
      this.updateIrqs();
      this.refill();
    }
    return v;
  }

  writeData(v: number): void {
    this.status &= ~STAT_A2;
    const want = this.want;
    this.want = Want.None;
    switch (want) {
      case Want.Ram:
        this.ram[this.wantIndex] = v;
        if (this.wantIndex === 0) this.ctrChanged();
        break;
      case Want.OutPort:
        this.writeOutport(v);
        break;
      case Want.KbdOut:
        this.replies.push(v);
        break;
      case Want.AuxOut:
        this.aux.push(v);
        break;
      case Want.AuxDev:
        this.auxBytesDropped++;
        return;
      default:
        // To the keyboard; sending re-enables the keyboard interface.
        this.ram[0] = this.ram[0]! & ~CTR_KBD_DISABLE;
        this.keyboard.command(v);
    }
    this.refill();
  }

  writeCommand(c: number): void {
    this.status |= STAT_A2;
    this.want = Want.None;
    if (c >= 0x20 && c <= 0x3f) {
      this.replies.push(this.ram[c - 0x20]!);
    } else if (c >= 0x60 && c <= 0x7f) {
      this.want = Want.Ram;
      this.wantIndex = c - 0x60;
    } else if (c >= 0xf0) {
      // Pulse output port bits whose command bit is 0; only bit 0 (reset) has an effect.
      if ((c & 1) === 0) this.platform.requestReset();
    } else {
      switch (c) {
        case 0xa7: this.ram[0] = this.ram[0]! | CTR_AUX_DISABLE; break;
        case 0xa8: this.ram[0] = this.ram[0]! & ~CTR_AUX_DISABLE; break;
        case 0xa9: this.replies.push(0x00); break;
        case 0xaa:
          this.status |= STAT_SYS;
          this.replies.push(0x55);
          break;
        case 0xab: this.replies.push(0x00); break;
        case 0xad: this.ram[0] = this.ram[0]! | CTR_KBD_DISABLE; break;
        case 0xae: this.ram[0] = this.ram[0]! & ~CTR_KBD_DISABLE; break;
        case 0xc0: this.replies.push(0xa0); break; // keyboard not inhibited, no manufacturing jumper
        case 0xd0: this.replies.push(this.readOutport()); break;
        case 0xd1: this.want = Want.OutPort; break;
        case 0xd2: this.want = Want.KbdOut; break;
        case 0xd3: this.want = Want.AuxOut; break;
        case 0xd4: this.want = Want.AuxDev; break;
        case 0xdd: this.writeOutport(this.outport & ~OUT_A20); break;
        case 0xdf: this.writeOutport(this.outport | OUT_A20); break;
        case 0xe0: this.replies.push(0x00); break;
        default:
          this.events.invalidWrite(4, 1, c);
          return;
      }
    }
    this.refill();
  }

  // ---- internals

  private invalidRead(off: number, size: AccessSize): number {
    this.events.invalidRead(off, size);
    return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
  }

  private ctrChanged(): void {
    const ctr = this.ram[0]!;
    if ((ctr & CTR_SYS) !== 0) this.status |= STAT_SYS;
    else this.status &= ~STAT_SYS;
  }

  private readOutport(): number {
    let v = this.outport & ~(OUT_KBD_OBF | OUT_AUX_OBF);
    if (this.obSrc === Src.Kbd) v |= OUT_KBD_OBF;
    if (this.obSrc === Src.Aux) v |= OUT_AUX_OBF;
    return v;
  }

  private writeOutport(v: number): void {
    this.outport = v & ~(OUT_KBD_OBF | OUT_AUX_OBF);
    this.a20.setKbc((v & OUT_A20) !== 0);
    // Output port bit 0 drives the CPU's RESET line, active low.
    if ((v & OUT_RESET) === 0) this.platform.requestReset();
  }

  /** Load the output buffer if it is empty, then update the IRQ lines. */
  private refill(): void {
    if (this.obSrc === Src.None) {
      const ctr = this.ram[0]!;
      if (this.replies.count > 0) {
        this.ob = this.replies.shift();
        this.obSrc = Src.Kbd;
      } else if ((ctr & CTR_KBD_DISABLE) === 0 && this.keyboard.available > 0) {
        this.ob = this.fromKeyboard((ctr & CTR_XLAT) !== 0);
        this.obSrc = Src.Kbd;
      } else if ((ctr & CTR_AUX_DISABLE) === 0 && this.aux.count > 0) {
        this.ob = this.aux.shift();
        this.obSrc = Src.Aux;
      } else if (this.keyboard.backlogged > 0 && (ctr & CTR_KBD_DISABLE) === 0) {
        // The keyboard has room again: turn more typed input into scan codes.
        if (this.keyboard.pump(false)) {
          this.ob = this.fromKeyboard((ctr & CTR_XLAT) !== 0);
          this.obSrc = Src.Kbd;
        }
      }
    }
    this.updateIrqs();
  }

  /** One byte from the keyboard, translated when XLAT is on (F0 xx -> table[xx] | 0x80). */
  private fromKeyboard(xlat: boolean): number {
    const kb = this.keyboard;
    const b = kb.take();
    if (!xlat) return b;
    if (b === 0xf0 && kb.available > 0) return XLAT_TABLE[kb.take()]! | 0x80;
    return XLAT_TABLE[b]!;
  }

  private updateIrqs(): void {
    const ctr = this.ram[0]!;
    const l1 = this.obSrc === Src.Kbd && (ctr & CTR_INT) !== 0;
    const l12 = this.obSrc === Src.Aux && (ctr & CTR_INT2) !== 0;
    if (l1 !== this.irq1Level) {
      this.irq1Level = l1;
      if (l1) this.irq1.raise();
      else this.irq1.lower();
    }
    if (l12 !== this.irq12Level) {
      this.irq12Level = l12;
      if (l12) this.irq12.raise();
      else this.irq12.lower();
    }
  }

  /**
   * One typed host byte. A trailing ESC waits for the rest of its burst (an arrow key's
   * ESC [ A arrives byte by byte); call `flushInput()` once the burst is over.
   */
  hostInput(byte: number): void {
    this.keyboard.type(byte);
    this.keyboard.pump(false);
    this.refill();
  }

  /** End of an input burst: a lone ESC is the Esc key. */
  flushInput(): void {
    this.keyboard.pump(true);
    this.refill();
  }
}

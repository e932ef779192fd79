// INT 14h: the serial ports COM1-COM4 (bases in the BDA at 0x400), driven as 16550/8250
// UARTs through the PIO bus. Source: IBM PC/AT Technical Reference (RS232_IO), RBIL INT 14h.
//
// Differences from the PC/AT BIOS, because a call cannot wait inside the monitor: 01h does
// not wait for DSR/CTS and 02h does not wait for data; each polls the line status a bounded
// number of times and then reports a time-out (AH bit 7), as the PC/AT does after its
// time-out count (BDA 0x47C) runs out. Functions 04h/05h (extended PS/2 calls) are absent.
import type { GuestMemory } from "../../../../src/monitor/api.js";
import type { X86State } from "../../../../src/x86/types.js";
import { BDA_COM1 } from "./layout.js";
import type { PortAccess } from "./ports.js";
import { hi8, lo16, lo8, setAh, setAl, setAx } from "./regs.js";

// 16550 register offsets and bits (NS16550A datasheet).
const THR = 0, RBR = 0, DLL = 0, IER = 1, DLM = 1, LCR = 3, MCR = 4, LSR = 5, MSR = 6;
const LCR_DLAB = 0x80;
const LSR_DR = 0x01;
const LSR_THRE = 0x20;
const MCR_DTR = 0x01, MCR_RTS = 0x02;
export const SERIAL_TIMEOUT = 0x80;
/** Line-status polls before a time-out. */
const POLLS = 64;
/** INT 14h AH=00h baud rates (AL bits 7-5) as divisors of 115200. */
const DIVISORS = [1047, 768, 384, 192, 96, 48, 24, 12];

export class SerialService {
  constructor(private readonly mem: GuestMemory, private readonly ports: PortAccess) {}

  int14(s: X86State): void {
    const port = lo16(s.edx);
    const base = port < 4 ? this.mem.read16(BDA_COM1 + 2 * port) : 0;
    if (base === 0) { setAh(s, SERIAL_TIMEOUT); return; } // no such port
    const io = this.ports;
    switch (hi8(s.eax)) {
      case 0x00: { // initialise: AL bits 4-0 are the LCR's word length, stop bits and parity
        const al = lo8(s.eax);
        const div = DIVISORS[al >>> 5]!;
        io.out(base + LCR, 1, LCR_DLAB);
        io.out(base + DLL, 1, div & 0xff);
        io.out(base + DLM, 1, div >>> 8);
        io.out(base + LCR, 1, al & 0x1f);
        io.out(base + IER, 1, 0);
        this.status(s, base);
        break;
      }
      case 0x01: { // send AL
        const ch = lo8(s.eax);
        io.out(base + MCR, 1, MCR_DTR | MCR_RTS);
        let lsr = 0;
        for (let i = 0; i < POLLS; i++) {
          lsr = io.in(base + LSR, 1) & 0xff;
          if (lsr & LSR_THRE) {
            io.out(base + THR, 1, ch);
            setAh(s, lsr & 0x7f);
            return;
          }
        }
        setAh(s, (lsr & 0x7f) | SERIAL_TIMEOUT);
        break;
      }
      case 0x02: { // receive into AL
        io.out(base + MCR, 1, MCR_DTR);
        let lsr = 0;
        for (let i = 0; i < POLLS; i++) {
          lsr = io.in(base + LSR, 1) & 0xff;
          if (lsr & LSR_DR) {
            setAl(s, io.in(base + RBR, 1));
            setAh(s, lsr & 0x1e); // the error bits
            return;
          }
        }
        setAh(s, (lsr & 0x1e) | SERIAL_TIMEOUT);
        break;
      }
      case 0x03:
        this.status(s, base);
        break;
      default:
        break;
    }
  }

  /** AH = line status, AL = modem status. */
  private status(s: X86State, base: number): void {
    setAx(s, ((this.ports.in(base + LSR, 1) & 0xff) << 8) | (this.ports.in(base + MSR, 1) & 0xff));
  }
}

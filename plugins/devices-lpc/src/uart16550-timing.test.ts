// The 16550A features that need time or probing: trigger levels, the character timeout,
// THRE as Linux tests it, modem status from the host, the v1 -> v2 state migration.
import { describe, expect, it } from "vitest";
import type { IrqLine, VirtualClock } from "../../../src/monitor/api.js";
import {
  FCR_FIFO_ENABLE, IER_EDSSI, IER_ERBFI, IER_ETBEI, IIR_FIFO_ENABLED, IIR_ID_CTI, IIR_ID_MS, IIR_ID_RDA, IIR_ID_THRE,
  IIR_NO_INT, LCR_DLAB, LSR_TEMT, MCR_LOOP, MCR_OUT2, MCR_RTS, MSR_CTS, MSR_DCD, MSR_DDCD, MSR_DSR, MSR_HOST_INPUTS,
  UART_DLL, UART_DLM, UART_FCR, UART_IER, UART_IIR, UART_LCR, UART_LSR, UART_MCR, UART_MSR, UART_RBR, UART_SCR,
  Uart16550, type Uart16550StateV1,
} from "./uart16550.js";

/** A manual virtual clock: time moves only when the test says so. */
class ManualClock implements VirtualClock {
  readonly mode = "instructions" as const;
  private t = 0;
  private next = 1;
  private readonly timers = new Map<number, { at: number; fn: (now: number) => void }>();
  now(): number { return this.t; }
  setTimer(atNs: number, fn: (now: number) => void): number {
    const h = this.next++;
    this.timers.set(h, { at: atNs, fn });
    return h;
  }
  cancel(h: number): void { this.timers.delete(h); }
  get pending(): number { return this.timers.size; }
  advance(ns: number): void {
    this.t += ns;
    for (const [h, x] of [...this.timers]) {
      if (x.at <= this.t) {
        this.timers.delete(h);
        x.fn(this.t);
      }
    }
  }
}

class Irq implements IrqLine {
  level = false;
  raise(): void { this.level = true; }
  lower(): void { this.level = false; }
}

function make(withClock = true) {
  const clock = new ManualClock();
  const irq = new Irq();
  const out: number[] = [];
  const uart = new Uart16550(irq, (b) => out.push(b), undefined, undefined, "t", withClock ? clock : undefined);
  const rd = (o: number) => uart.read(o, 1);
  const wr = (o: number, v: number) => uart.write(o, 1, v);
  return { uart, clock, irq, out, rd, wr };
}

/** 115200 baud, 8N1: 10 bits per character. */
function at115200(wr: (o: number, v: number) => void) {
  wr(UART_LCR, LCR_DLAB | 0x03);
  wr(UART_DLL, 1);
  wr(UART_DLM, 0);
  wr(UART_LCR, 0x03);
}

describe("Uart16550 FIFO trigger levels and character timeout", () => {
  it("computes the character time from the divisor and the LCR framing", () => {
    const { uart, wr } = make();
    at115200(wr);
    expect(uart.charTimeNs()).toBeCloseTo((10 * 1e9) / 115200, 3);
    wr(UART_LCR, 0x0f); // 8 data bits, parity, 2 stop bits: 12 bits
    expect(uart.charTimeNs()).toBeCloseTo((12 * 1e9) / 115200, 3);
    wr(UART_LCR, 0x04); // 5 data bits, 1.5 stop bits: 7.5 bits
    expect(uart.charTimeNs()).toBeCloseTo((7.5 * 1e9) / 115200, 3);
  });

  it("reports received data only once the FIFO reaches the trigger level (8 bytes)", () => {
    const { uart, rd, wr, irq } = make();
    wr(UART_MCR, MCR_OUT2);
    wr(UART_IER, IER_ERBFI);
    wr(UART_FCR, FCR_FIFO_ENABLE | 0x80); // trigger 8
    for (let i = 0; i < 7; i++) uart.receive(i);
    expect(rd(UART_IIR)).toBe(IIR_FIFO_ENABLED | IIR_NO_INT);
    expect(irq.level).toBe(false);
    uart.receive(7);
    expect(rd(UART_IIR)).toBe(IIR_FIFO_ENABLED | IIR_ID_RDA);
    expect(irq.level).toBe(true);
    rd(UART_RBR); // 7 left: below the trigger again
    expect(irq.level).toBe(false);
  });

  it("uses 1, 4, 8 and 14 bytes for FCR bits 7:6 = 0..3", () => {
    for (const [bits, level] of [[0x00, 1], [0x40, 4], [0x80, 8], [0xc0, 14]] as const) {
      const { uart, rd, wr } = make();
      wr(UART_IER, IER_ERBFI);
      wr(UART_FCR, FCR_FIFO_ENABLE | bits);
      for (let i = 0; i < level - 1; i++) uart.receive(i);
      expect(rd(UART_IIR) & 0x0f).toBe(IIR_NO_INT);
      uart.receive(0xff);
      expect(rd(UART_IIR) & 0x0f).toBe(IIR_ID_RDA);
    }
  });

  it("raises the character timeout (IIR 0xC) after 4 character times without receive or read", () => {
    const { uart, rd, wr, irq, clock } = make();
    at115200(wr);
    wr(UART_MCR, MCR_OUT2);
    wr(UART_IER, IER_ERBFI);
    wr(UART_FCR, FCR_FIFO_ENABLE | 0xc0); // trigger 14
    uart.receive(0x41);
    uart.receive(0x42);
    const four = 4 * uart.charTimeNs();
    clock.advance(four - 1000);
    expect(rd(UART_IIR) & 0x0f).toBe(IIR_NO_INT);
    clock.advance(1000);
    expect(rd(UART_IIR)).toBe(IIR_FIFO_ENABLED | IIR_ID_CTI);
    expect(irq.level).toBe(true);
    // Reading one character clears the timeout and restarts the timer.
    expect(rd(UART_RBR)).toBe(0x41);
    expect(rd(UART_IIR) & 0x0f).toBe(IIR_NO_INT);
    expect(irq.level).toBe(false);
    clock.advance(four);
    expect(rd(UART_IIR) & 0x0f).toBe(IIR_ID_CTI);
    expect(rd(UART_RBR)).toBe(0x42);
    expect(clock.pending).toBe(0); // FIFO empty: nothing left to time out
    expect(rd(UART_IIR) & 0x0f).toBe(IIR_NO_INT);
  });

  it("restarts the timeout on each received byte", () => {
    const { uart, rd, wr, clock } = make();
    at115200(wr);
    wr(UART_IER, IER_ERBFI);
    wr(UART_FCR, FCR_FIFO_ENABLE | 0xc0);
    const four = 4 * uart.charTimeNs();
    uart.receive(1);
    clock.advance(four / 2);
    uart.receive(2);
    clock.advance(four / 2 + 1);
    expect(rd(UART_IIR) & 0x0f).toBe(IIR_NO_INT);
    clock.advance(four / 2);
    expect(rd(UART_IIR) & 0x0f).toBe(IIR_ID_CTI);
  });

  it("never times out in 16450 mode, where one byte is data available", () => {
    const { uart, rd, wr, clock } = make();
    wr(UART_IER, IER_ERBFI);
    uart.receive(1);
    clock.advance(1e9);
    expect(rd(UART_IIR)).toBe(IIR_ID_RDA);
    expect(clock.pending).toBe(0);
  });

  it("without a clock treats every trigger level as 1 byte", () => {
    const { uart, rd, wr } = make(false);
    wr(UART_IER, IER_ERBFI);
    wr(UART_FCR, FCR_FIFO_ENABLE | 0xc0);
    uart.receive(1);
    expect(rd(UART_IIR) & 0x0f).toBe(IIR_ID_RDA);
  });

  it("clears the RX FIFO and a pending timeout on an FCR RX reset", () => {
    const { uart, rd, wr, clock } = make();
    wr(UART_IER, IER_ERBFI);
    wr(UART_FCR, FCR_FIFO_ENABLE | 0xc0);
    uart.receive(1);
    clock.advance(1e9);
    expect(rd(UART_IIR) & 0x0f).toBe(IIR_ID_CTI);
    wr(UART_FCR, FCR_FIFO_ENABLE | 0x02);
    expect(rd(UART_IIR) & 0x0f).toBe(IIR_NO_INT);
    expect(rd(UART_LSR) & 1).toBe(0);
  });
});

describe("Uart16550 as Linux's 8250 driver probes it", () => {
  it("passes the autoconfig scratch, loopback and FIFO-identification tests of a 16550A", () => {
    const { rd, wr } = make();
    // IER scratch test: 0 reads 0, 0x0F reads 0x0F.
    wr(UART_IER, 0);
    expect(rd(UART_IER) & 0x0f).toBe(0);
    wr(UART_IER, 0x0f);
    expect(rd(UART_IER) & 0x0f).toBe(0x0f);
    wr(UART_IER, 0);
    // Loopback: MCR = LOOP | RTS | OUT2 (0x1A) -> MSR upper nibble 0x90.
    wr(UART_MCR, MCR_LOOP | 0x0a);
    expect(rd(UART_MSR) & 0xf0).toBe(MSR_CTS | MSR_DCD);
    wr(UART_MCR, 0);
    // FIFO enable -> IIR bits 7:6 = 3 (16550A), and bit 5 clear (not a 16750's 64-byte FIFO).
    wr(UART_FCR, FCR_FIFO_ENABLE | 0x20);
    expect(rd(UART_IIR) >> 5).toBe(6);
    // Scratch register holds a byte.
    wr(UART_SCR, 0xa5);
    expect(rd(UART_SCR)).toBe(0xa5);
  });

  it("re-asserts THRE when ETBEI is toggled while the transmitter is idle (UART_BUG_THRE test)", () => {
    const { rd, wr } = make();
    expect(rd(UART_LSR) & LSR_TEMT).toBe(LSR_TEMT);
    wr(UART_IER, IER_ETBEI);
    const iir1 = rd(UART_IIR);
    wr(UART_IER, 0);
    wr(UART_IER, IER_ETBEI);
    const iir = rd(UART_IIR);
    wr(UART_IER, 0);
    expect(iir1 & 0x0f).toBe(IIR_ID_THRE);
    expect(iir & IIR_NO_INT).toBe(0); // a UART with the bug would report "no interrupt" here
  });
});

describe("Uart16550 modem inputs from the host", () => {
  it("sets delta bits and raises the modem status interrupt when the host's carrier drops", () => {
    const { uart, rd, wr, irq } = make();
    wr(UART_MCR, MCR_OUT2);
    wr(UART_IER, IER_EDSSI);
    expect(irq.level).toBe(false);
    uart.setModemInputs(MSR_CTS | MSR_DSR); // DCD dropped
    expect(irq.level).toBe(true);
    expect(rd(UART_IIR)).toBe(IIR_ID_MS);
    const msr = rd(UART_MSR);
    expect(msr & 0xf0).toBe(MSR_CTS | MSR_DSR);
    expect(msr & MSR_DDCD).toBe(MSR_DDCD);
    expect(irq.level).toBe(false);
  });

  it("keeps the host's modem inputs for after loopback", () => {
    const { uart, rd, wr } = make();
    wr(UART_MCR, MCR_LOOP | MCR_RTS);
    uart.setModemInputs(0);
    expect(rd(UART_MSR) & 0xf0).toBe(MSR_CTS); // loopback wins
    wr(UART_MCR, 0);
    expect(rd(UART_MSR) & 0xf0).toBe(0);
  });
});

describe("Uart16550 state versions", () => {
  it("migrates a v1 state: trigger level 1, no timeout, a connected terminal", () => {
    const v1: Uart16550StateV1 = {
      v: 1, ier: IER_ERBFI, lcr: 3, mcr: MCR_OUT2, lsr: 0, msr: MSR_HOST_INPUTS, scr: 0, dll: 1, dlm: 0,
      fifoEnabled: true, thrEmptyPending: false, rxFifo: [0x61],
    };
    const irq = new Irq();
    const u = Uart16550.fromState(v1, { irq, out: () => {}, clock: new ManualClock() });
    expect(irq.level).toBe(true);
    expect(u.saveState()).toMatchObject({ v: 2, fcr: 0, timeoutPending: false, hostInputs: MSR_HOST_INPUTS, rxFifo: [0x61] });
  });

  it("round-trips v2 fields and re-arms the timeout for waiting data", () => {
    const { uart, wr, clock } = make();
    wr(UART_IER, IER_ERBFI);
    wr(UART_FCR, FCR_FIFO_ENABLE | 0x40);
    uart.receive(9);
    uart.setModemInputs(MSR_CTS);
    const state = JSON.parse(JSON.stringify(uart.saveState()));
    const clock2 = new ManualClock();
    const copy = Uart16550.fromState(state, { irq: new Irq(), out: () => {}, clock: clock2 });
    expect(copy.saveState()).toEqual(uart.saveState());
    expect(clock2.pending).toBe(1);
    clock2.advance(1e9);
    expect(copy.read(UART_IIR, 1) & 0x0f).toBe(IIR_ID_CTI);
    expect(clock.pending).toBe(1);
  });
});

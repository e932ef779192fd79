import { describe, expect, it } from "vitest";
import type { AccessSize, DeviceEvents, IrqLine } from "../../../src/monitor/api.js";
import {
  FCR_FIFO_ENABLE, IER_EDSSI, IER_ELSI, IER_ERBFI, IER_ETBEI, IIR_FIFO_ENABLED, IIR_ID_MS, IIR_ID_RDA, IIR_ID_RLS,
  IIR_ID_THRE, IIR_NO_INT, LCR_DLAB, LSR_DR, LSR_OE, LSR_TEMT, LSR_THRE, MCR_DTR, MCR_LOOP, MCR_OUT1, MCR_OUT2,
  MCR_RTS, MSR_CTS, MSR_DCD, MSR_DCTS, MSR_DDCD, MSR_DSR, MSR_HOST_INPUTS, MSR_RI, MSR_TERI, UART_DLL, UART_DLM,
  UART_FCR, UART_FIFO_SIZE, UART_IER, UART_IIR, UART_LCR, UART_LSR, UART_MCR, UART_MSR, UART_RBR, UART_SCR, UART_THR,
  Uart16550, Uart16550StateError,
} from "./uart16550.js";

class RecordingIrq implements IrqLine {
  level = false;
  raises = 0;
  raise(): void { this.level = true; this.raises++; }
  lower(): void { this.level = false; }
}

class RecordingEvents implements DeviceEvents {
  reads: Array<[number, AccessSize]> = [];
  writes: Array<[number, AccessSize, number]> = [];
  invalidRead(offset: number, size: AccessSize): void { this.reads.push([offset, size]); }
  invalidWrite(offset: number, size: AccessSize, value: number): void { this.writes.push([offset, size, value]); }
}

function make() {
  const irq = new RecordingIrq();
  const out: number[] = [];
  const events = new RecordingEvents();
  let drained = 0;
  const uart = new Uart16550(irq, (b) => out.push(b), events, () => drained++);
  return { uart, irq, out, events, drained: () => drained };
}

const rd = (u: Uart16550, off: number) => u.read(off, 1);
const wr = (u: Uart16550, off: number, v: number) => u.write(off, 1, v);

describe("Uart16550", () => {
  it("sends THR writes to the output sink and keeps THRE/TEMT set", () => {
    const { uart, out } = make();
    wr(uart, UART_THR, 0x41);
    wr(uart, UART_THR, 0x1ff); // only the low byte reaches the wire
    expect(out).toEqual([0x41, 0xff]);
    expect(rd(uart, UART_LSR) & (LSR_THRE | LSR_TEMT)).toBe(LSR_THRE | LSR_TEMT);
  });

  it("latches the divisor behind DLAB without touching THR or IER", () => {
    const { uart, out } = make();
    wr(uart, UART_IER, IER_ERBFI);
    wr(uart, UART_LCR, LCR_DLAB | 0x03);
    wr(uart, UART_DLL, 0x01);
    wr(uart, UART_DLM, 0x02);
    expect(rd(uart, UART_DLL)).toBe(0x01);
    expect(rd(uart, UART_DLM)).toBe(0x02);
    wr(uart, UART_LCR, 0x03);
    expect(rd(uart, UART_IER)).toBe(IER_ERBFI);
    expect(out).toEqual([]);
    expect(uart.saveState()).toMatchObject({ dll: 1, dlm: 2, lcr: 3 });
  });

  it("receives host bytes in order and reports DR until the FIFO is empty", () => {
    const { uart, drained } = make();
    wr(uart, UART_FCR, FCR_FIFO_ENABLE);
    uart.receive(0x61);
    uart.receive(0x62);
    expect(rd(uart, UART_LSR) & LSR_DR).toBe(LSR_DR);
    expect(rd(uart, UART_RBR)).toBe(0x61);
    expect(rd(uart, UART_RBR)).toBe(0x62);
    expect(rd(uart, UART_LSR) & LSR_DR).toBe(0);
    expect(drained()).toBe(2);
  });

  it("caps the RX FIFO at 16 bytes and sets OE on overrun, cleared by reading LSR", () => {
    const { uart } = make();
    wr(uart, UART_FCR, FCR_FIFO_ENABLE);
    for (let i = 0; i < UART_FIFO_SIZE + 3; i++) uart.receive(i);
    expect(uart.rxFree()).toBe(0);
    expect(uart.saveState().rxFifo).toHaveLength(UART_FIFO_SIZE);
    const lsr = rd(uart, UART_LSR);
    expect(lsr & LSR_OE).toBe(LSR_OE);
    expect(rd(uart, UART_LSR) & LSR_OE).toBe(0);
    for (let i = 0; i < UART_FIFO_SIZE; i++) expect(rd(uart, UART_RBR)).toBe(i);
  });

  it("holds one byte in 16450 mode and overwrites it on overrun", () => {
    const { uart } = make();
    uart.receive(1);
    uart.receive(2);
    expect(rd(uart, UART_LSR) & (LSR_OE | LSR_DR)).toBe(LSR_OE | LSR_DR);
    expect(rd(uart, UART_RBR)).toBe(2);
  });

  it("raises the IRQ for received data only with OUT2 set, and lowers it when drained", () => {
    const { uart, irq } = make();
    wr(uart, UART_IER, IER_ERBFI);
    uart.receive(0x55);
    expect(irq.level).toBe(false); // OUT2 gates INTR on the PC board
    expect(rd(uart, UART_IIR) & 0x0f).toBe(IIR_ID_RDA);
    wr(uart, UART_MCR, MCR_OUT2);
    expect(irq.level).toBe(true);
    rd(uart, UART_RBR);
    expect(irq.level).toBe(false);
    expect(rd(uart, UART_IIR)).toBe(IIR_NO_INT);
  });

  it("reports THRE when ETBEI is enabled, clears it on IIR read, re-arms it on THR write", () => {
    const { uart, irq } = make();
    wr(uart, UART_MCR, MCR_OUT2);
    wr(uart, UART_IER, IER_ETBEI);
    expect(irq.level).toBe(true);
    expect(rd(uart, UART_IIR)).toBe(IIR_ID_THRE);
    expect(irq.level).toBe(false);
    expect(rd(uart, UART_IIR)).toBe(IIR_NO_INT);
    wr(uart, UART_THR, 0x30);
    expect(irq.level).toBe(true);
    expect(rd(uart, UART_IIR)).toBe(IIR_ID_THRE);
  });

  it("orders interrupt identification: line status, then data, then THRE, then modem status", () => {
    const { uart } = make();
    wr(uart, UART_MCR, MCR_OUT2);
    wr(uart, UART_IER, IER_ELSI | IER_ERBFI | IER_ETBEI | IER_EDSSI);
    // Modem status: entering loopback changes CTS/DSR/DCD -> deltas.
    wr(uart, UART_MCR, MCR_OUT2 | MCR_LOOP);
    wr(uart, UART_MCR, MCR_OUT2);
    uart.receive(1);
    uart.receive(2); // 16450 mode: overrun -> line status
    expect(rd(uart, UART_IIR)).toBe(IIR_ID_RLS);
    rd(uart, UART_LSR);
    expect(rd(uart, UART_IIR)).toBe(IIR_ID_RDA);
    rd(uart, UART_RBR);
    expect(rd(uart, UART_IIR)).toBe(IIR_ID_THRE); // and this read clears it
    expect(rd(uart, UART_IIR)).toBe(IIR_ID_MS);
    rd(uart, UART_MSR);
    expect(rd(uart, UART_IIR)).toBe(IIR_NO_INT);
  });

  it("shows FIFO-enabled bits in IIR when FCR bit 0 is set", () => {
    const { uart } = make();
    wr(uart, UART_FCR, FCR_FIFO_ENABLE);
    expect(rd(uart, UART_IIR)).toBe(IIR_FIFO_ENABLED | IIR_NO_INT);
  });

  it("loops TX back to RX in loopback mode and ignores host input there", () => {
    const { uart, out } = make();
    wr(uart, UART_FCR, FCR_FIFO_ENABLE);
    wr(uart, UART_MCR, MCR_LOOP);
    wr(uart, UART_THR, 0x5a);
    uart.receive(0x11);
    expect(out).toEqual([]);
    expect(rd(uart, UART_RBR)).toBe(0x5a);
    expect(rd(uart, UART_LSR) & LSR_DR).toBe(0);
  });

  it("loops modem outputs to MSR inputs as Linux's 8250 probe expects (0x90 for RTS|OUT2)", () => {
    const { uart } = make();
    wr(uart, UART_MCR, MCR_LOOP | MCR_RTS | MCR_OUT2);
    expect(rd(uart, UART_MSR) & 0xf0).toBe(MSR_CTS | MSR_DCD);
    wr(uart, UART_MCR, MCR_LOOP | MCR_DTR | MCR_OUT1);
    const msr = rd(uart, UART_MSR);
    expect(msr & 0xf0).toBe(MSR_DSR | MSR_RI);
    expect(msr & (MSR_DCTS | MSR_DDCD)).toBe(MSR_DCTS | MSR_DDCD);
    expect(rd(uart, UART_MSR) & 0x0f).toBe(0); // deltas cleared by the read
    wr(uart, UART_MCR, MCR_LOOP);
    expect(rd(uart, UART_MSR) & MSR_TERI).toBe(MSR_TERI); // RI went 1 -> 0
    wr(uart, UART_MCR, 0);
    expect(rd(uart, UART_MSR) & 0xf0).toBe(MSR_HOST_INPUTS);
  });

  it("keeps the IRQ low in loopback even with OUT2 set", () => {
    const { uart, irq } = make();
    wr(uart, UART_MCR, MCR_LOOP | MCR_OUT2);
    wr(uart, UART_IER, IER_ERBFI);
    wr(uart, UART_THR, 1);
    expect(rd(uart, UART_IIR)).toBe(IIR_ID_RDA);
    expect(irq.level).toBe(false);
  });

  it("stores the scratch register", () => {
    const { uart } = make();
    wr(uart, UART_SCR, 0xa5);
    expect(rd(uart, UART_SCR)).toBe(0xa5);
  });

  it("turns wide and out-of-range accesses into events with all-ones reads", () => {
    const { uart, events, out } = make();
    expect(uart.read(UART_RBR, 2)).toBe(0xffff);
    expect(uart.read(8, 1)).toBe(0xff);
    uart.write(UART_THR, 4, 0x41);
    uart.write(UART_LSR, 1, 0);
    expect(events.reads).toEqual([[0, 2], [8, 1]]);
    expect(events.writes).toEqual([[0, 4, 0x41], [UART_LSR, 1, 0]]);
    expect(out).toEqual([]);
  });

  it("round-trips its state and a restored UART re-raises a pending RDA interrupt", () => {
    const { uart } = make();
    wr(uart, UART_FCR, FCR_FIFO_ENABLE);
    wr(uart, UART_IER, IER_ERBFI);
    wr(uart, UART_MCR, MCR_OUT2 | MCR_DTR);
    wr(uart, UART_SCR, 7);
    uart.receive(0x33);
    uart.receive(0x34);
    const state = JSON.parse(JSON.stringify(uart.saveState()));
    const irq = new RecordingIrq();
    const copy = Uart16550.fromState(state, { irq, out: () => {} });
    expect(irq.raises).toBe(1);
    expect(copy.saveState()).toEqual(uart.saveState());
    expect(rd(copy, UART_RBR)).toBe(0x33);
    expect(rd(copy, UART_RBR)).toBe(0x34);
    expect(irq.level).toBe(false);
  });

  it("rejects a state with the wrong version, a non-byte register or an oversized FIFO", () => {
    const good = make().uart.saveState();
    const deps = { irq: new RecordingIrq(), out: () => {} };
    expect(() => Uart16550.fromState({ ...good, v: 3 } as never, deps)).toThrow(Uart16550StateError);
    expect(() => Uart16550.fromState({ ...good, lcr: 256 }, deps)).toThrow(/lcr/);
    expect(() => Uart16550.fromState({ ...good, rxFifo: [1, 2] }, deps)).toThrow(/rxFifo/);
    expect(() => Uart16550.fromState({ ...good, fifoEnabled: true, rxFifo: new Array(17).fill(0) }, deps))
      .toThrow(/rxFifo/);
  });
});

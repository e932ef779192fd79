import { describe, expect, it } from "vitest";
import type { IrqLine } from "../../../src/monitor/api.js";
import {
  CTR_INT, CTR_KBD_DISABLE, CTR_SYS, CTR_XLAT, I8042, I8042_POST_CTR, I8042_QUEUE_SIZE, OUT_A20, OUT_RESET,
  STAT_A2, STAT_INH, STAT_MOBF, STAT_OBF, STAT_SYS,
} from "./i8042.js";
import { A20Gate } from "./port92.js";
import { KBD_BUFFER_SIZE } from "./ps2-keyboard.js";

class Irq implements IrqLine {
  level = false;
  edges = 0;
  raise(): void { if (!this.level) this.edges++; this.level = true; }
  lower(): void { this.level = false; }
}

class FakePlatform {
  a20 = true;
  resets = 0;
  setA20(e: boolean): void { this.a20 = e; }
  requestReset(): void { this.resets++; }
}

function make() {
  const irq1 = new Irq();
  const irq12 = new Irq();
  const platform = new FakePlatform();
  const kbc = new I8042({ irq1, irq12, a20: new A20Gate(platform, true), platform });
  const cmd = (c: number) => kbc.commandPort.write(0, 1, c);
  const data = (d: number) => kbc.dataPort.write(0, 1, d);
  const status = () => kbc.commandPort.read(0, 1);
  /** Read every byte the guest could read now. */
  const drain = () => {
    const out: number[] = [];
    for (let i = 0; i < 200 && (status() & STAT_OBF) !== 0; i++) out.push(kbc.dataPort.read(0, 1));
    return out;
  };
  const type = (s: string) => {
    for (const ch of s) kbc.hostInput(ch.charCodeAt(0));
    kbc.flushInput();
  };
  return { kbc, irq1, irq12, platform, cmd, data, status, drain, type };
}

describe("i8042 controller", () => {
  it("starts in the BIOS's post-POST state: SYS and not-inhibited set, command byte with INT, SYS and XLAT", () => {
    const { cmd, status, drain } = make();
    expect(status() & (STAT_SYS | STAT_INH | STAT_OBF)).toBe(STAT_SYS | STAT_INH);
    cmd(0x20);
    expect(drain()).toEqual([I8042_POST_CTR]);
    expect(I8042_POST_CTR & (CTR_INT | CTR_SYS | CTR_XLAT)).toBe(CTR_INT | CTR_SYS | CTR_XLAT);
  });

  it("sets A2 on a command write and clears it on a data write", () => {
    const { cmd, data, status } = make();
    cmd(0xae);
    expect(status() & STAT_A2).toBe(STAT_A2);
    data(0xf4);
    expect(status() & STAT_A2).toBe(0);
  });

  it("answers self-test with 0x55 and the interface test with 0x00", () => {
    const { cmd, drain } = make();
    cmd(0xaa);
    expect(drain()).toEqual([0x55]);
    cmd(0xab);
    expect(drain()).toEqual([0x00]);
  });

  it("writes the command byte through 0x60 and mirrors its SYS bit in the status register", () => {
    const { cmd, data, drain, status } = make();
    cmd(0x60);
    data(CTR_XLAT);
    expect(status() & STAT_SYS).toBe(0);
    cmd(0x20);
    expect(drain()).toEqual([CTR_XLAT]);
    cmd(0x60);
    data(CTR_SYS | CTR_INT);
    expect(status() & STAT_SYS).toBe(STAT_SYS);
  });

  it("raises IRQ 1 while the output buffer holds keyboard data and INT is set, with a new edge per byte", () => {
    const { irq1, data, kbc } = make();
    data(0xf2); // identify: FA AB 41 (translated)
    expect(irq1.level).toBe(true);
    expect(kbc.dataPort.read(0, 1)).toBe(0xfa);
    expect(irq1.edges).toBe(2); // the next byte was loaded: a fresh edge
    expect(kbc.dataPort.read(0, 1)).toBe(0xab);
    expect(kbc.dataPort.read(0, 1)).toBe(0x41);
    expect(irq1.level).toBe(false);
    expect(irq1.edges).toBe(3);
  });

  it("does not raise IRQ 1 when the command byte's INT bit is clear, but OBF still shows the byte", () => {
    const { irq1, cmd, data, status, drain } = make();
    cmd(0x60);
    data(CTR_SYS | CTR_XLAT);
    data(0xee);
    expect(irq1.level).toBe(false);
    expect(status() & STAT_OBF).toBe(STAT_OBF);
    expect(drain()).toEqual([0xee]);
  });

  it("reads and writes the output port: bit 1 gates A20, bit 0 low resets the CPU", () => {
    const { cmd, data, drain, platform } = make();
    cmd(0xd0);
    expect(drain()[0]! & (OUT_RESET | OUT_A20)).toBe(OUT_RESET | OUT_A20);
    cmd(0xd1);
    data(OUT_RESET); // A20 off
    expect(platform.a20).toBe(false);
    expect(platform.resets).toBe(0);
    cmd(0xd0);
    expect(drain()[0]! & OUT_A20).toBe(0);
    cmd(0xd1);
    data(OUT_A20); // reset asserted
    expect(platform.resets).toBe(1);
    expect(platform.a20).toBe(true);
  });

  it("turns A20 off and on with DD/DF", () => {
    const { cmd, platform } = make();
    cmd(0xdd);
    expect(platform.a20).toBe(false);
    cmd(0xdf);
    expect(platform.a20).toBe(true);
  });

  it("pulses reset with FE and does nothing with FF", () => {
    const { cmd, platform } = make();
    cmd(0xff);
    expect(platform.resets).toBe(0);
    cmd(0xfe);
    expect(platform.resets).toBe(1);
  });

  it("holds keyboard bytes while the keyboard is disabled (AD) and delivers them after AE", () => {
    const { cmd, type, drain } = make();
    cmd(0xad);
    type("a");
    expect(drain()).toEqual([]);
    cmd(0xae);
    expect(drain()).toEqual([0x1e, 0x9e]);
  });

  it("writing a keyboard command re-enables the keyboard interface", () => {
    const { cmd, data, drain } = make();
    cmd(0xad);
    data(0xee);
    expect(drain()).toEqual([0xee]);
    cmd(0x20);
    expect(drain()[0]! & CTR_KBD_DISABLE).toBe(0);
  });

  it("puts D2 bytes in the output buffer as keyboard data and D3 bytes as aux data (MOBF) once aux is enabled", () => {
    const { cmd, data, drain, status } = make();
    cmd(0xd2);
    data(0x99);
    expect(drain()).toEqual([0x99]);
    cmd(0xa8); // enable aux
    cmd(0xd3);
    data(0x5a);
    expect(status() & STAT_MOBF).toBe(STAT_MOBF);
    expect(drain()).toEqual([0x5a]);
  });

  it("bounds the reply queue when the guest floods read commands without reading", () => {
    const { kbc, cmd, drain } = make();
    for (let i = 0; i < 1000; i++) cmd(0x20);
    // One byte in the output buffer plus the full queue; the rest dropped and counted.
    expect(drain()).toHaveLength(I8042_QUEUE_SIZE + 1);
    expect(kbc.droppedBytes).toBe(1000 - I8042_QUEUE_SIZE - 1);
  });

  it("ignores an unknown command without throwing", () => {
    const { cmd, drain } = make();
    expect(() => cmd(0xc5)).not.toThrow();
    expect(drain()).toEqual([]);
  });
});

describe("PS/2 keyboard behind the i8042", () => {
  it("answers reset with ACK and BAT 0xAA", () => {
    const { data, drain } = make();
    data(0xff);
    expect(drain()).toEqual([0xfa, 0xaa]);
  });

  it("ACKs LED, typematic and scanning commands with their parameters, and echoes EE", () => {
    const { kbc, data, drain } = make();
    // A driver reads each answer before the next command (F5/F4 clear unsent keyboard bytes).
    data(0xed); data(0x07);
    expect(drain()).toEqual([0xfa, 0xfa]);
    data(0xf3); data(0x20);
    expect(drain()).toEqual([0xfa, 0xfa]);
    data(0xf5);
    expect(drain()).toEqual([0xfa]);
    data(0xf4);
    expect(drain()).toEqual([0xfa]);
    data(0xee);
    expect(drain()).toEqual([0xee]);
    expect(kbc.keyboard.leds).toBe(7);
  });

  it("reports and switches the scan code set, translating the reply when XLAT is on", () => {
    const { kbc, cmd, data, drain } = make();
    // The keyboard ACKs the command and its option byte, then sends the set number.
    data(0xf0); data(0x00);
    expect(drain()).toEqual([0xfa, 0xfa, 0x41]); // set 2, translated
    cmd(0x60); data(CTR_INT | CTR_SYS);
    data(0xf0); data(0x00);
    expect(drain()).toEqual([0xfa, 0xfa, 0x02]);
    data(0xf0); data(0x01);
    expect(drain()).toEqual([0xfa, 0xfa]);
    expect(kbc.keyboard.scanSet).toBe(1);
    data(0xf0); data(0x03);
    expect(drain()).toEqual([0xfa, 0xfe]); // set 3 is not offered
  });

  it("resends the last byte on FE and rejects an unknown command with FE", () => {
    const { data, drain } = make();
    data(0xee);
    drain();
    data(0xfe);
    expect(drain()).toEqual([0xee]);
    data(0x42);
    expect(drain()).toEqual([0xfe]);
  });

  it("types lower-case letters as set-1 make/break codes when XLAT is on", () => {
    const { type, drain } = make();
    type("ab");
    expect(drain()).toEqual([0x1e, 0x9e, 0x30, 0xb0]);
  });

  it("types raw set-2 codes (F0 break prefix) when XLAT is off", () => {
    const { cmd, data, type, drain } = make();
    cmd(0x60); data(CTR_INT | CTR_SYS);
    type("a");
    expect(drain()).toEqual([0x1c, 0xf0, 0x1c]);
  });

  it("wraps upper case and shifted symbols in Left Shift", () => {
    const { type, drain } = make();
    type("A!");
    expect(drain()).toEqual([0x2a, 0x1e, 0x9e, 0xaa, 0x2a, 0x02, 0x82, 0xaa]);
  });

  it("types Enter, Backspace, Tab, Esc and space; Ctrl-C as Ctrl + c", () => {
    const { type, drain } = make();
    type("\r\x7f\t \x03");
    expect(drain()).toEqual([0x1c, 0x9c, 0x0e, 0x8e, 0x0f, 0x8f, 0x39, 0xb9, 0x1d, 0x2e, 0xae, 0x9d]);
    type("\x1b");
    expect(drain()).toEqual([0x01, 0x81]);
  });

  it("turns ANSI arrow sequences into E0-prefixed cursor keys", () => {
    const { type, drain } = make();
    type("\x1b[A\x1b[D");
    expect(drain()).toEqual([0xe0, 0x48, 0xe0, 0xc8, 0xe0, 0x4b, 0xe0, 0xcb]);
  });

  it("generates set-1 codes natively when the keyboard is switched to set 1 and XLAT is off", () => {
    const { cmd, data, type, drain } = make();
    cmd(0x60); data(CTR_INT | CTR_SYS);
    data(0xf0); data(0x01);
    drain();
    type("a");
    expect(drain()).toEqual([0x1e, 0x9e]);
  });

  it("keeps a long paste in the host backlog and delivers all of it as the guest reads", () => {
    const { type, drain, kbc } = make();
    const text = "the quick brown fox jumps over the lazy dog 0123456789";
    type(text);
    const codes = drain();
    // Every character is one make and one break (no shifted characters in the text).
    expect(codes).toHaveLength(text.length * 2);
    expect(kbc.keyboard.droppedInput).toBe(0);
    expect(kbc.keyboard.available).toBeLessThanOrEqual(KBD_BUFFER_SIZE);
  });

  it("drops and counts typed bytes that have no key", () => {
    const { type, drain, kbc } = make();
    type("\x80\x00");
    expect(drain()).toEqual([]);
    expect(kbc.keyboard.droppedInput).toBe(2);
  });

  it("holds typed input while scanning is disabled (F5) and delivers it after F4", () => {
    const { data, type, drain } = make();
    data(0xf5);
    drain();
    type("a");
    expect(drain()).toEqual([]);
    data(0xf4);
    expect(drain()).toEqual([0xfa, 0x1e, 0x9e]);
  });
});

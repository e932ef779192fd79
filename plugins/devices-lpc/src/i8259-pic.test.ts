import { describe, expect, it } from "vitest";
import type { DeviceEvents } from "../../../src/monitor/api.js";
import { I8259Pic, I8259StateError, type I8259State } from "./i8259-pic.js";

/** The BIOS/Linux programming: master base 0x08 (or `mBase`), slave 0x70 on IR2, 8086 mode. */
function initPic(pic: I8259Pic, opts: { mBase?: number; sBase?: number; icw4?: number; imr?: number; simr?: number } = {}): void {
  const icw4 = opts.icw4 ?? 0x01;
  pic.masterIo.write(0, 1, 0x11);
  pic.masterIo.write(1, 1, opts.mBase ?? 0x08);
  pic.masterIo.write(1, 1, 0x04);
  pic.masterIo.write(1, 1, icw4);
  pic.slaveIo.write(0, 1, 0x11);
  pic.slaveIo.write(1, 1, opts.sBase ?? 0x70);
  pic.slaveIo.write(1, 1, 0x02);
  pic.slaveIo.write(1, 1, icw4);
  pic.masterIo.write(1, 1, opts.imr ?? 0x00);
  pic.slaveIo.write(1, 1, opts.simr ?? 0x00);
}

const EOI = 0x20;
const readIrr = (io: I8259Pic["masterIo"]) => { io.write(0, 1, 0x0a); return io.read(0, 1); };
const readIsr = (io: I8259Pic["masterIo"]) => { io.write(0, 1, 0x0b); return io.read(0, 1); };

describe("i8259 initialization", () => {
  it("ICW1-ICW4 set the vector base, and OCW1 writes after them reach the IMR", () => {
    const pic = new I8259Pic();
    initPic(pic, { mBase: 0x20, imr: 0xf7 });
    expect(pic.masterIo.read(1, 1)).toBe(0xf7);
    pic.setIrq(3, true);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x23);
  });

  it("the vector base ignores the low three bits of ICW2 (8086 mode)", () => {
    const pic = new I8259Pic();
    initPic(pic, { mBase: 0x0f });
    pic.setIrq(1, true);
    expect(pic.acknowledge()).toBe(0x09);
  });

  it("in single mode ICW3 is skipped: the next write after ICW2 is ICW4, then OCW1", () => {
    const pic = new I8259Pic();
    pic.masterIo.write(0, 1, 0x13); // ICW1: SNGL, IC4
    pic.masterIo.write(1, 1, 0x40);
    pic.masterIo.write(1, 1, 0x03); // ICW4: AEOI, 8086
    pic.masterIo.write(1, 1, 0xfd); // OCW1
    expect(pic.masterIo.read(1, 1)).toBe(0xfd);
    pic.setIrq(1, true);
    expect(pic.acknowledge()).toBe(0x41);
    expect(readIsr(pic.masterIo)).toBe(0); // auto-EOI from ICW4
  });

  it("without IC4 the ICW4 functions are zero: no auto-EOI after re-initialization", () => {
    const pic = new I8259Pic();
    initPic(pic, { icw4: 0x03 });
    pic.masterIo.write(0, 1, 0x10); // ICW1: cascade, no ICW4
    pic.masterIo.write(1, 1, 0x08);
    pic.masterIo.write(1, 1, 0x04);
    pic.masterIo.write(1, 1, 0x00); // OCW1
    pic.setIrq(0, true);
    expect(pic.acknowledge()).toBe(0x08);
    expect(readIsr(pic.masterIo)).toBe(0x01);
  });

  it("ICW1 clears the IMR and ISR, resets priority, and needs a new edge on an input already high", () => {
    const pic = new I8259Pic();
    initPic(pic, { imr: 0xff });
    pic.setIrq(5, true);
    pic.masterIo.write(1, 1, 0x00);
    expect(pic.acknowledge()).toBe(0x0d);
    initPic(pic);
    expect(readIsr(pic.masterIo)).toBe(0);
    expect(pic.hasInterrupt()).toBe(false); // IR5 is still high but made no new edge
    pic.setIrq(5, false);
    pic.setIrq(5, true);
    expect(pic.acknowledge()).toBe(0x0d);
  });

  it("delivers nothing while the initialization sequence is incomplete", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.masterIo.write(0, 1, 0x11);
    pic.masterIo.write(1, 1, 0x08);
    pic.setIrq(4, true);
    expect(pic.hasInterrupt()).toBe(false);
    pic.masterIo.write(1, 1, 0x04);
    pic.masterIo.write(1, 1, 0x01);
    expect(pic.hasInterrupt()).toBe(true);
  });
});

describe("i8259 requests, masks and priority", () => {
  it("an edge input requests once per rising edge, not while held high", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.setIrq(3, true);
    expect(pic.acknowledge()).toBe(0x0b);
    pic.masterIo.write(0, 1, EOI);
    pic.setIrq(3, true); // still high: no new edge
    expect(pic.hasInterrupt()).toBe(false);
    pic.setIrq(3, false);
    pic.setIrq(3, true);
    expect(pic.hasInterrupt()).toBe(true);
  });

  it("a request that goes away before the acknowledge is dropped, and a late acknowledge gets the default IR7", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.setIrq(4, true);
    pic.setIrq(4, false);
    expect(pic.hasInterrupt()).toBe(false);
    expect(pic.acknowledge()).toBe(0x0f);
    expect(readIsr(pic.masterIo)).toBe(0); // no ISR bit for the default IR7
  });

  it("a masked request waits in IRR and is delivered when unmasked", () => {
    const pic = new I8259Pic();
    initPic(pic, { imr: 0x02 });
    pic.setIrq(1, true);
    expect(pic.hasInterrupt()).toBe(false);
    expect(readIrr(pic.masterIo)).toBe(0x02);
    pic.masterIo.write(1, 1, 0x00);
    expect(pic.acknowledge()).toBe(0x09);
  });

  it("fully nested: the lowest IR number wins, and an in-service level blocks itself and lower levels", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.setIrq(5, true);
    pic.setIrq(3, true);
    expect(pic.acknowledge()).toBe(0x0b);
    expect(pic.hasInterrupt()).toBe(false); // IR5 is below IR3 in service
    pic.setIrq(1, true);
    expect(pic.acknowledge()).toBe(0x09); // IR1 is above: nests
    expect(readIsr(pic.masterIo)).toBe(0x0a);
    pic.masterIo.write(0, 1, EOI); // clears IR1, the highest in service
    expect(readIsr(pic.masterIo)).toBe(0x08);
    pic.masterIo.write(0, 1, EOI);
    expect(pic.acknowledge()).toBe(0x0d);
  });

  it("a specific EOI clears the named ISR bit only", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.setIrq(6, true);
    expect(pic.acknowledge()).toBe(0x0e);
    pic.setIrq(0, true);
    expect(pic.acknowledge()).toBe(0x08);
    pic.masterIo.write(0, 1, 0x66); // specific EOI, level 6
    expect(readIsr(pic.masterIo)).toBe(0x01);
  });

  it("a level-triggered input (ELCR) keeps requesting while high and stops when the line drops", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.elcrIo.write(1, 1, 0x08); // IRQ11 level
    pic.setIrq(11, true);
    expect(pic.acknowledge()).toBe(0x73);
    expect(readIrr(pic.slaveIo)).toBe(0x08); // IRR follows the line, not cleared by INTA
    pic.slaveIo.write(0, 1, EOI);
    pic.masterIo.write(0, 1, EOI);
    expect(pic.hasInterrupt()).toBe(true); // still high: requests again without an edge
    pic.setIrq(11, false);
    expect(pic.hasInterrupt()).toBe(false);
  });

  it("ICW1 LTIM makes every input of that chip level-sensed", () => {
    const pic = new I8259Pic();
    pic.masterIo.write(0, 1, 0x1b); // LTIM, SNGL, IC4
    pic.masterIo.write(1, 1, 0x08);
    pic.masterIo.write(1, 1, 0x01);
    pic.masterIo.write(1, 1, 0x00);
    pic.setIrq(4, true);
    expect(pic.acknowledge()).toBe(0x0c);
    pic.masterIo.write(0, 1, EOI);
    expect(pic.acknowledge()).toBe(0x0c);
  });

  it("ELCR reserved bits (IRQ0-2, IRQ8, IRQ13) read as 0", () => {
    const pic = new I8259Pic();
    pic.elcrIo.write(0, 1, 0xff);
    pic.elcrIo.write(1, 1, 0xff);
    expect(pic.elcrIo.read(0, 1)).toBe(0xf8);
    expect(pic.elcrIo.read(1, 1)).toBe(0xde);
    expect(pic.elcrIo.read(0, 2)).toBe(0xdef8); // a word read is two byte cycles
  });
});

describe("i8259 rotation, auto-EOI and special modes", () => {
  it("rotate on non-specific EOI makes the serviced IR the lowest priority", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.setIrq(3, true);
    expect(pic.acknowledge()).toBe(0x0b);
    pic.masterIo.write(0, 1, 0xa0); // rotate on non-specific EOI: IR3 lowest, IR4 highest
    pic.setIrq(1, true);
    pic.setIrq(5, true);
    expect(pic.acknowledge()).toBe(0x0d); // IR5 outranks IR1 now
  });

  it("rotate on specific EOI and set priority choose the lowest-priority IR", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.masterIo.write(0, 1, 0xc5); // set priority: IR5 lowest, IR6 highest
    pic.setIrq(0, true);
    pic.setIrq(6, true);
    expect(pic.acknowledge()).toBe(0x0e);
    pic.masterIo.write(0, 1, 0xe6); // rotate on specific EOI level 6: IR6 lowest, IR7 highest
    expect(readIsr(pic.masterIo)).toBe(0);
    pic.setIrq(7, true);
    expect(pic.acknowledge()).toBe(0x0f);
    expect(readIsr(pic.masterIo)).toBe(0x80); // a real IR7, in service
  });

  it("auto-EOI leaves no ISR bit, and rotate-in-AEOI rotates on each acknowledge until cleared", () => {
    const pic = new I8259Pic();
    initPic(pic, { icw4: 0x03 });
    pic.masterIo.write(0, 1, 0x80); // rotate in AEOI: set
    pic.setIrq(1, true);
    pic.setIrq(4, true);
    expect(pic.acknowledge()).toBe(0x09);
    expect(readIsr(pic.masterIo)).toBe(0);
    pic.setIrq(1, false);
    pic.setIrq(1, true);
    expect(pic.acknowledge()).toBe(0x0c); // IR1 became lowest
    pic.masterIo.write(0, 1, 0x00); // rotate in AEOI: clear
    pic.setIrq(1, false); pic.setIrq(1, true);
    pic.setIrq(3, false); pic.setIrq(3, true);
    // IR4 is lowest now (order 5 6 7 0 1 2 3 4), and acknowledges no longer rotate.
    expect(pic.acknowledge()).toBe(0x09);
    expect(pic.acknowledge()).toBe(0x0b);
  });

  it("special mask mode lets lower levels in while the in-service level is masked", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.setIrq(2 + 1, true);
    expect(pic.acknowledge()).toBe(0x0b);
    pic.setIrq(6, true);
    expect(pic.hasInterrupt()).toBe(false);
    pic.masterIo.write(1, 1, 0x08); // mask IR3
    pic.masterIo.write(0, 1, 0x68); // OCW3: ESMM + SMM
    expect(pic.acknowledge()).toBe(0x0e);
    pic.masterIo.write(0, 1, 0x48); // OCW3: ESMM, SMM clear
    pic.setIrq(7, true);
    expect(pic.hasInterrupt()).toBe(false); // fully nested again: IR3 and IR6 in service
  });

  it("the poll command returns I and the level, acknowledging it, then 0 when nothing is pending", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.setIrq(6, true);
    pic.masterIo.write(0, 1, 0x0c); // OCW3: poll
    expect(pic.masterIo.read(0, 1)).toBe(0x86);
    expect(readIsr(pic.masterIo)).toBe(0x40);
    expect(pic.hasInterrupt()).toBe(false);
    pic.masterIo.write(0, 1, 0x0c);
    expect(pic.masterIo.read(1, 1)).toBe(0x00); // the poll applies to the next read at either port
    expect(pic.masterIo.read(1, 1)).toBe(0x00); // then the IMR again
  });

  it("OCW3 RR/RIS selects IRR or ISR for reads of port 0 and keeps it", () => {
    const pic = new I8259Pic();
    initPic(pic, { imr: 0x10 });
    pic.setIrq(4, true);
    pic.setIrq(1, true);
    pic.acknowledge();
    pic.masterIo.write(0, 1, 0x0b);
    expect(pic.masterIo.read(0, 1)).toBe(0x02);
    expect(pic.masterIo.read(0, 1)).toBe(0x02);
    pic.masterIo.write(0, 1, 0x0a);
    expect(pic.masterIo.read(0, 1)).toBe(0x10);
  });
});

describe("i8259 cascade", () => {
  it("a slave request reaches the CPU through master IR2 and acknowledges with the slave's vector", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.setIrq(12, true);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x74);
    expect(readIsr(pic.masterIo)).toBe(0x04);
    expect(readIsr(pic.slaveIo)).toBe(0x10);
  });

  it("a second slave IRQ waits for the master's EOI of IR2 (fully nested on the master)", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.setIrq(14, true);
    expect(pic.acknowledge()).toBe(0x76);
    pic.setIrq(9, true); // higher than IR14 on the slave, but master IR2 is in service
    expect(pic.hasInterrupt()).toBe(false);
    pic.masterIo.write(0, 1, EOI);
    expect(pic.acknowledge()).toBe(0x71);
  });

  it("special fully nested mode lets a higher slave request through while IR2 is in service", () => {
    const pic = new I8259Pic();
    initPic(pic, { icw4: 0x11 }); // SFNM + 8086 on both (SFNM matters on the master)
    pic.setIrq(14, true);
    expect(pic.acknowledge()).toBe(0x76);
    pic.setIrq(9, true);
    expect(pic.acknowledge()).toBe(0x71);
    pic.setIrq(15, true); // lower than IR14 in service on the slave: blocked by the slave itself
    expect(pic.hasInterrupt()).toBe(false);
  });

  it("a master IR below IR2 waits while a slave interrupt is in service; one above nests", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.setIrq(8, true);
    expect(pic.acknowledge()).toBe(0x70);
    pic.setIrq(4, true);
    expect(pic.hasInterrupt()).toBe(false);
    pic.setIrq(1, true);
    expect(pic.acknowledge()).toBe(0x09);
  });

  it("a masked slave input does not reach the master until unmasked", () => {
    const pic = new I8259Pic();
    initPic(pic, { simr: 0x02 });
    pic.setIrq(9, true);
    expect(pic.hasInterrupt()).toBe(false);
    pic.slaveIo.write(1, 1, 0x00);
    expect(pic.acknowledge()).toBe(0x71);
  });

  it("a slave request still present after an acknowledge raises IR2 again (a new edge on the master)", () => {
    const pic = new I8259Pic();
    initPic(pic, { icw4: 0x03 }); // auto-EOI on both: nothing blocks
    pic.setIrq(10, true);
    pic.setIrq(11, true);
    expect(pic.acknowledge()).toBe(0x72);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x73);
    expect(pic.hasInterrupt()).toBe(false);
  });

  it("a slave that has nothing at the INTA answers IRQ15's vector; master IR2 stays in service until an EOI", () => {
    const pic = new I8259Pic();
    initPic(pic);
    // The slave's INT glitched high and went away between the master's sampling and INTA.
    pic.master.setInput(2, true);
    expect(pic.acknowledge()).toBe(0x77);
    expect(readIsr(pic.slaveIo)).toBe(0);
    expect(readIsr(pic.masterIo)).toBe(0x04);
    pic.masterIo.write(0, 1, EOI); // the guest's non-specific EOI to the master only
    expect(readIsr(pic.masterIo)).toBe(0);
  });

  it("a master that has no slave on IR2 (ICW3 = 0) answers IR2 itself", () => {
    const pic = new I8259Pic();
    pic.masterIo.write(0, 1, 0x11);
    pic.masterIo.write(1, 1, 0x08);
    pic.masterIo.write(1, 1, 0x00);
    pic.masterIo.write(1, 1, 0x01);
    pic.masterIo.write(1, 1, 0x00);
    pic.master.setInput(2, true);
    expect(pic.acknowledge()).toBe(0x0a);
  });

  it("IRQ line 2 and lines above 15 are not connected", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.setIrq(2, true);
    pic.setIrq(16, true);
    expect(pic.hasInterrupt()).toBe(false);
  });
});

describe("i8259 guest faults and state", () => {
  it("a word write to the master ports is two byte writes, port 0 first", () => {
    const pic = new I8259Pic();
    initPic(pic);
    pic.masterIo.write(0, 2, 0xfe0b); // OCW3 read ISR, then OCW1 IMR = 0xfe
    expect(pic.masterIo.read(1, 1)).toBe(0xfe);
  });

  it("accesses beyond the two ports go to the events sink and read as all-ones", () => {
    const seen: string[] = [];
    const events: DeviceEvents = { invalidRead: (o) => seen.push(`r${o}`), invalidWrite: (o) => seen.push(`w${o}`) };
    const pic = new I8259Pic(events);
    expect(pic.masterIo.read(1, 2)).toBe(0xff00);
    pic.elcrIo.write(2, 1, 1);
    expect(seen).toEqual(["r2", "w2"]);
  });

  it("save and restore keeps requests, service and modes (JSON round trip)", () => {
    const pic = new I8259Pic();
    initPic(pic, { imr: 0x20 });
    pic.elcrIo.write(1, 1, 0x02);
    pic.setIrq(1, true);
    expect(pic.acknowledge()).toBe(0x09);
    pic.setIrq(9, true);
    pic.setIrq(5, true);
    expect(pic.hasInterrupt()).toBe(false); // IR1 in service blocks IR2 (the slave) and IR5
    const state = JSON.parse(JSON.stringify(pic.saveState())) as I8259State;
    const copy = I8259Pic.fromState(state);
    expect(copy.saveState()).toEqual(pic.saveState());
    copy.masterIo.write(0, 1, EOI);
    expect(copy.acknowledge()).toBe(0x71); // IRQ9 (via IR2) beats masked IR5
  });

  it("fromState rejects an unknown version and out-of-range registers with a named error", () => {
    const good = new I8259Pic().saveState();
    expect(() => I8259Pic.fromState({ ...good, v: 2 } as unknown as I8259State)).toThrow(I8259StateError);
    expect(() => I8259Pic.fromState({ ...good, master: { ...good.master, imr: 256 } })).toThrow(/master\.imr/);
    expect(() => I8259Pic.fromState({ ...good, slave: { ...good.slave, elcr: 0x01 } })).toThrow(/slave\.elcr sets reserved/);
  });
});

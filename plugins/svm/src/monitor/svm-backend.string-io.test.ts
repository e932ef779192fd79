// String I/O (INS/OUTS, REP) end to end: a real-mode guest on the real kernel and soft
// engine, the SVM backend running the monitor's IoAssist against a real PIO bus.
import { describe, expect, it } from "vitest";
import { IO_ASSIST_MAX_ELEMENTS, StateParts } from "../../../../src/monitor/api.js";
import {
  PAGED_OUTS, STRING_IO_PORT as PORT, RecordingPortDevice as RecordingDevice, pagedOutsState, writePagedOutsGuest,
} from "../../../../src/monitor/assist/io-assist.fixtures.js";
import { PioBus } from "../../../../src/monitor/bus.js";
import { realModeState } from "../../../../src/x86/state.js";
import { ORG, expectKind, machine } from "../svm-machine.fixtures.js";
import { F, IoioInfo } from "../vmcb.js";

const MSG = 0x2000, BUF = 0x3000;

function boot(code: number[], dev: RecordingDevice, setup?: (s: ReturnType<typeof realModeState>) => void) {
  const pio = new PioBus();
  expect(pio.insert({ space: "pio", base: PORT, length: 1 }, dev)).toBeUndefined();
  const m = machine(code, 1000, pio);
  const s = realModeState(0, ORG);
  s.esp = 0x7000;
  setup?.(s);
  m.backend.setState(s);
  return m;
}

describe("SvmBackend string I/O through the IoAssist", () => {
  it("REP OUTSB sends a string to the device and REP INSB fills a buffer from it, one exit each", () => {
    const dev = new RecordingDevice([0x61, 0x62, 0x63, 0x64]);
    const m = boot([
      0xfc,                   // 7c00 cld
      0xbe, 0x00, 0x20,       // 7c01 mov si, 0x2000
      0xb9, 0x05, 0x00,       // 7c04 mov cx, 5
      0xba, 0xf0, 0x03,       // 7c07 mov dx, 0x3f0
      0xf3, 0x6e,             // 7c0a rep outsb
      0xbf, 0x00, 0x30,       // 7c0c mov di, 0x3000
      0xb9, 0x04, 0x00,       // 7c0f mov cx, 4
      0xf3, 0x6c,             // 7c12 rep insb
      0xf4,                   // 7c14 hlt
    ], dev);
    m.ram.set([0x48, 0x65, 0x6c, 0x6c, 0x6f], MSG); // "Hello"
    const be = m.backend;

    const out = expectKind(be.run(), "io");
    expect({ ...out }).toEqual({ kind: "io", port: PORT, size: 1, in: false, data: 0, count: 5 });
    // The kernel half's EXITINFO1 (APM 15.10.2): STR, REP, 8-bit, 16-bit address, DS, port.
    expect(be.vmcb.read(F.EXITINFO1)).toBe(((PORT << 16) | (3 << IoioInfo.SEG_SHIFT) | IoioInfo.A16 | IoioInfo.SZ8
      | IoioInfo.REP | IoioInfo.STR) >>> 0);
    expect(dev.written).toEqual([0x48, 0x65, 0x6c, 0x6c, 0x6f]);

    const inp = expectKind(be.run(), "io");
    expect({ ...inp }).toEqual({ kind: "io", port: PORT, size: 1, in: true, data: 0, count: 4 });

    expectKind(be.run(), "hlt");
    expect([...m.ram.subarray(BUF, BUF + 5)]).toEqual([0x61, 0x62, 0x63, 0x64, 0]);
    const s = be.getState(StateParts.Gprs | StateParts.Basic);
    expect(s.esi).toBe(MSG + 5);
    expect(s.edi).toBe(BUF + 4);
    expect(s.ecx).toBe(0);
    expect(s.eip).toBe(0x7c14); // at the HLT: both REPs completed
    expect(dev.sizes.every((z) => z === 1)).toBe(true);
  });

  it("OUTSW with an FS override reads FS:SI; DF=1 moves SI down", () => {
    const dev = new RecordingDevice();
    const m = boot([
      0xba, 0xf0, 0x03,       // mov dx, 0x3f0
      0xfd,                   // std
      0x64, 0x6f,             // fs outsw
      0xf4,                   // hlt
    ], dev, (s) => { s.fs.selector = 0x400; s.fs.base = 0x4000; s.esi = 0x10; });
    m.ram.set([0x34, 0x12], 0x4010);
    expectKind(m.backend.run(), "io");
    expect((m.backend.vmcb.read(F.EXITINFO1) >>> IoioInfo.SEG_SHIFT) & 7).toBe(4); // FS
    expectKind(m.backend.run(), "hlt");
    expect(dev.written).toEqual([0x1234]);
    expect(m.backend.getState(StateParts.Gprs).esi).toBe(0x0e);
  });

  it("a REP longer than the assist's bound exits again at the same instruction and finishes there", () => {
    const n = IO_ASSIST_MAX_ELEMENTS + 100;
    const dev = new RecordingDevice([]);
    const m = boot([
      0xba, 0xf0, 0x03,       // 7c00 mov dx, 0x3f0
      0x66, 0xb9, n & 0xff, (n >>> 8) & 0xff, 0, 0, // 7c03 mov ecx, n
      0x67, 0xf3, 0x66, 0x6d, // 7c09 a32 rep insd (ES:EDI)
      0xf4,                   // 7c0d hlt
    ], dev, (s) => { s.es.selector = 0x1000; s.es.base = 0x10000; s.edi = 0; });
    // 64 KiB of RAM: the dwords past it are dropped, the device is still read for each.
    const first = expectKind(m.backend.run(), "io");
    expect(first.count).toBe(IO_ASSIST_MAX_ELEMENTS);
    const mid = m.backend.getState(StateParts.Gprs | StateParts.Basic);
    expect(mid.eip).toBe(0x7c09); // not advanced: the guest re-executes the REP
    expect(mid.ecx).toBe(100);
    expect(mid.edi).toBe(IO_ASSIST_MAX_ELEMENTS * 4);
    expect(expectKind(m.backend.run(), "io").count).toBe(100);
    expectKind(m.backend.run(), "hlt");
    expect(dev.sizes).toHaveLength(n);
    expect(dev.sizes.every((z) => z === 4)).toBe(true);
    expect(m.backend.getState(StateParts.Gprs).edi).toBe(n * 4);
  });

  it("without a PIO bus and guest memory a string exit is unhandled, not a crash", () => {
    const m = machine([0xba, 0xf0, 0x03, 0x6e]); // mov dx, 0x3f0; outsb
    const e = m.backend.run();
    expect(e.kind).toBe("unhandled");
    if (e.kind === "unhandled") expect(e.message).toMatch(/PioBus/);
  });

  it("with paging, REP OUTSB reads through the guest page tables and a not-present page is #PF at the instruction", () => {
    // The shared paged guest (io-assist.fixtures.ts) at ORG: page 2 -> 6000h, page 3 not present.
    const { HANDLER, STACK, SECOND_REP } = PAGED_OUTS;
    const dev = new RecordingDevice();
    const pio = new PioBus();
    expect(pio.insert({ space: "pio", base: PORT, length: 1 }, dev)).toBeUndefined();
    const m = machine([], 1000, pio);
    writePagedOutsGuest(m.ram, ORG);
    const dv = new DataView(m.ram.buffer, m.ram.byteOffset);
    const s = pagedOutsState(ORG);
    s.fs = { selector: 0, base: 0, limit: 0, attrib: 0x10000 }; s.gs = { ...s.fs };
    m.backend.setState(s);
    const be = m.backend;

    expect(expectKind(be.run(), "io").count).toBe(3);
    expect(dev.written).toEqual([0x61, 0x62, 0x63]); // from physical 6000h
    const partial = expectKind(be.run(), "io");
    expect(partial.count).toBe(2);
    expect(dev.written).toEqual([0x61, 0x62, 0x63, 0x78, 0x79]);
    expectKind(be.run(), "hlt");
    const st = be.getState(StateParts.All);
    // The handler ran: CR2 = the first byte of page 3; ESI/ECX as left by the two moved bytes.
    expect([st.eax, st.esi, st.ecx, st.eip]).toEqual([0x3000, 0x3000, 2, HANDLER + 3]);
    // #PF frame: error code 0 (read, supervisor, not present), EIP = the REP OUTSB, EFLAGS with RF.
    expect([dv.getUint32(STACK - 16, true), dv.getUint32(STACK - 12, true), dv.getUint32(STACK - 4, true) & 0x10000])
      .toEqual([0, ORG + SECOND_REP, 0x10000]);
  });
});

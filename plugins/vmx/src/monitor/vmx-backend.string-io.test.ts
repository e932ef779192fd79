// String I/O (INS/OUTS, REP) end to end: a real-mode guest on the real kernel and soft
// engine, the VMX backend running the monitor's IoAssist against a real PIO bus.
import { describe, expect, it } from "vitest";
import { SysErr } from "../../../../src/kernel/api.js";
import { StateParts, IO_ASSIST_MAX_ELEMENTS, type VmExit } from "../../../../src/monitor/api.js";
import {
  PAGED_OUTS, STRING_IO_PORT as PORT, RecordingPortDevice as RecordingDevice, pagedOutsState, writePagedOutsGuest,
} from "../../../../src/monitor/assist/io-assist.fixtures.js";
import { PioBus } from "../../../../src/monitor/bus.js";
import { FrameGuestMemory } from "../../../../src/monitor/guest-memory.js";
import { realModeState } from "../../../../src/x86/state.js";
import { VmxBackend } from "./vmx-backend.js";
import { guestControlWords, testMachine } from "../testing/machine.js";
import { F } from "../vmcs-fields.js";

const CODE = 0x1000, MSG = 0x2000, BUF = 0x3000;

function boot(code: number[], dev: RecordingDevice, setup?: (s: ReturnType<typeof realModeState>) => void) {
  const m = testMachine({ ramBytes: 64 * 1024 });
  const pio = new PioBus();
  expect(pio.insert({ space: "pio", base: PORT, length: 1 }, dev)).toBeUndefined();
  m.ram.set(code, CODE);
  const be = new VmxBackend(m.sys, m.caps, pio, new FrameGuestMemory(m.ram));
  const s = realModeState(0, CODE);
  s.esp = 0x8000;
  setup?.(s);
  be.setState(s);
  const vmread = (enc: number): number => {
    expect(m.sys.vmread(m.caps.dispatcher, enc)).toBe(SysErr.Ok);
    return m.sys.ret.value >>> 0;
  };
  return { m, be, vmread };
}

function expectIo(e: VmExit): Extract<VmExit, { kind: "io" }> {
  expect(e.kind, e.kind === "unhandled" || e.kind === "entry-failure" ? e.message : "").toBe("io");
  return e as Extract<VmExit, { kind: "io" }>;
}

describe("VmxBackend string I/O through the IoAssist", () => {
  it("REP OUTSB sends a string to the device and REP INSB fills a buffer from it, one exit each", () => {
    const dev = new RecordingDevice([0x61, 0x62, 0x63, 0x64]);
    const { m, be, vmread } = boot([
      0xfc,                   // 1000 cld
      0xbe, 0x00, 0x20,       // 1001 mov si, 0x2000
      0xb9, 0x05, 0x00,       // 1004 mov cx, 5
      0xba, 0xf0, 0x03,       // 1007 mov dx, 0x3f0
      0xf3, 0x6e,             // 100a rep outsb
      0xbf, 0x00, 0x30,       // 100c mov di, 0x3000
      0xb9, 0x04, 0x00,       // 100f mov cx, 4
      0xf3, 0x6c,             // 1012 rep insb
      0xf4,                   // 1014 hlt
    ], dev);
    m.ram.set([0x48, 0x65, 0x6c, 0x6c, 0x6f], MSG); // "Hello"

    const out = expectIo(be.run());
    expect({ ...out }).toEqual({ kind: "io", port: PORT, size: 1, in: false, data: 0, count: 5 });
    // The kernel half's exit information (SDM 28.2.1, 28.2.5): string + REP, port; 16-bit
    // addressing, DS; the linear address of DS:SI before the instruction.
    expect(vmread(F.ExitQualification)).toBe(((PORT << 16) | (1 << 4) | (1 << 5)) >>> 0);
    expect(vmread(F.ExitInstrInfo)).toBe(3 << 15);
    expect(vmread(F.GuestLinearAddr)).toBe(MSG);
    expect(dev.written).toEqual([0x48, 0x65, 0x6c, 0x6c, 0x6f]);

    const inp = expectIo(be.run());
    expect({ ...inp }).toEqual({ kind: "io", port: PORT, size: 1, in: true, data: 0, count: 4 });
    expect(vmread(F.ExitInstrInfo)).toBe(0); // ES, 16-bit
    expect(vmread(F.GuestLinearAddr)).toBe(BUF);

    expect(be.run().kind).toBe("hlt");
    expect([...m.ram.subarray(BUF, BUF + 5)]).toEqual([0x61, 0x62, 0x63, 0x64, 0]);
    const s = be.getState(StateParts.Gprs | StateParts.Basic);
    expect(s.esi).toBe(MSG + 5);
    expect(s.edi).toBe(BUF + 4);
    expect(s.ecx).toBe(0);
    expect(s.eip).toBe(0x1014); // at the HLT: both REPs completed
    expect(dev.sizes.every((z) => z === 1)).toBe(true);
  });

  it("OUTSW with an FS override reads FS:SI; DF=1 moves SI down", () => {
    const dev = new RecordingDevice();
    const { m, be, vmread } = boot([
      0xba, 0xf0, 0x03,       // 1000 mov dx, 0x3f0
      0xfd,                   // 1003 std
      0x64, 0x6f,             // 1004 fs outsw
      0xf4,                   // 1006 hlt
    ], dev, (s) => { s.fs.selector = 0x400; s.fs.base = 0x4000; s.esi = 0x10; });
    m.ram.set([0x34, 0x12], 0x4010);
    expectIo(be.run());
    expect(vmread(F.ExitInstrInfo)).toBe(4 << 15); // FS
    expect(vmread(F.GuestLinearAddr)).toBe(0x4010);
    expect(be.run().kind).toBe("hlt");
    expect(dev.written).toEqual([0x1234]);
    expect(be.getState(StateParts.Gprs).esi).toBe(0x0e);
  });

  it("a REP longer than the assist's bound exits again at the same instruction and finishes there", () => {
    const n = IO_ASSIST_MAX_ELEMENTS + 100;
    const dev = new RecordingDevice();
    const { m, be } = boot([
      0xba, 0xf0, 0x03,       // 1000 mov dx, 0x3f0
      0x66, 0xb9, n & 0xff, (n >>> 8) & 0xff, 0, 0, // 1003 mov ecx, n
      0x67, 0xf3, 0x6e,       // 1009 a32 rep outsb (ESI = 0)
      0xf4,                   // 100c hlt
    ], dev);
    for (let i = 0; i < n; i++) m.ram[0x8000 + i] = i & 0xff;
    be.setState({ ...be.getState(), esi: 0x8000 }, StateParts.Gprs);
    expect(expectIo(be.run()).count).toBe(IO_ASSIST_MAX_ELEMENTS);
    const mid = be.getState(StateParts.Gprs | StateParts.Basic);
    expect(mid.eip).toBe(0x1009); // not advanced: the guest re-executes the REP
    expect(mid.ecx).toBe(100);
    expect(expectIo(be.run()).count).toBe(100);
    expect(be.run().kind).toBe("hlt");
    expect(dev.written).toHaveLength(n);
    expect(dev.written.every((v, i) => v === (i & 0xff))).toBe(true);
    expect(be.getState(StateParts.Gprs).esi).toBe(0x8000 + n);
  });

  it("REP INSB with CX = 0 touches nothing and completes the instruction", () => {
    const dev = new RecordingDevice([0x99]);
    const { be } = boot([0xba, 0xf0, 0x03, 0x31, 0xc9, 0xf3, 0x6c, 0xf4], dev); // mov dx; xor cx, cx; rep insb; hlt
    expect(expectIo(be.run()).count).toBe(0);
    expect(be.run().kind).toBe("hlt");
    expect(dev.sizes).toEqual([]);
  });

  it("without a PIO bus and guest memory in its container a string exit is unhandled, not a crash", () => {
    const m = testMachine();
    m.ram.set([0xba, 0xf0, 0x03, 0x6e], CODE); // mov dx, 0x3f0; outsb
    const be = new VmxBackend(m.sys, m.caps);
    be.setState(realModeState(0, CODE));
    const e = be.run();
    expect(e.kind).toBe("unhandled");
    if (e.kind === "unhandled") expect(e.message).toMatch(/PioBus/);
  });
});

describe("VmxBackend string I/O with guest paging", () => {
  // The shared paged guest (io-assist.fixtures.ts) at CODE: page 2 -> 6000h, page 3 not present.
  const { HANDLER, STACK, SECOND_REP } = PAGED_OUTS;

  function pagedMachine(dev: RecordingDevice) {
    const m = testMachine({ ramBytes: 64 * 1024 });
    const pio = new PioBus();
    expect(pio.insert({ space: "pio", base: PORT, length: 1 }, dev)).toBeUndefined();
    writePagedOutsGuest(m.ram, CODE);
    const dv = new DataView(m.ram.buffer, m.ram.byteOffset);
    // The full 16-word guestControl mapping, so CR2 travels to the guest (README "Exit cost").
    const caps = { ...m.caps, guestRegs: guestControlWords(m) };
    const be = new VmxBackend(m.sys, caps, pio, new FrameGuestMemory(m.ram));
    be.setState(pagedOutsState(CODE));
    return { m, be, dv };
  }

  it("REP OUTSB with paging on reads a remapped page through the guest page tables", () => {
    const dev = new RecordingDevice();
    const { be } = pagedMachine(dev);
    const e = expectIo(be.run());
    expect(e.count).toBe(3);
    expect(dev.written).toEqual([0x61, 0x62, 0x63]); // from physical 6000h, not 2000h
    const s = be.getState(StateParts.Gprs | StateParts.Basic);
    expect([s.esi, s.ecx]).toEqual([0x2003, 0]);
  });

  it("a not-present page part-way through a REP OUTSB is #PF at the instruction with CR2, after the bytes before it", () => {
    const dev = new RecordingDevice();
    const { be, dv } = pagedMachine(dev);
    expect(expectIo(be.run()).count).toBe(3);
    const partial = expectIo(be.run());
    expect(partial.count).toBe(2);
    expect(dev.written).toEqual([0x61, 0x62, 0x63, 0x78, 0x79]);
    const at = be.getState(StateParts.Gprs | StateParts.Basic);
    expect(at.eip).toBe(CODE + SECOND_REP); // RIP left at the REP OUTSB
    expect(be.run().kind).toBe("hlt");
    const st = be.getState(StateParts.All);
    // The handler ran: CR2 = the first byte of page 3; ESI/ECX as left by the two moved bytes.
    expect([st.eax, st.esi, st.ecx, st.eip]).toEqual([0x3000, 0x3000, 2, HANDLER + 3]);
    // #PF frame: error code 0 (read, supervisor, not present), EIP = the REP OUTSB, EFLAGS with RF.
    expect([dv.getUint32(STACK - 16, true), dv.getUint32(STACK - 12, true), dv.getUint32(STACK - 4, true) & 0x10000])
      .toEqual([0, CODE + SECOND_REP, 0x10000]);
    expect(dev.written).toHaveLength(5); // physical page 3 was never sent
  });
});

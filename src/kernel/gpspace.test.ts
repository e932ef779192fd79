import { describe, expect, it } from "vitest";
import type { AccessSize, MmioHandler } from "./api.js";
import { GuestPhysMemory, MapResult } from "./gpspace.js";
import { X86Cpu } from "../x86/cpu.js";
import { realModeState } from "../x86/state.js";
import { CpuExitReason } from "../x86/types.js";
import type { IoPorts } from "../x86/types.js";

const RW = 3;
const R = 1;

class RecordingMmio implements MmioHandler {
  readonly log: string[] = [];
  constructor(private readonly readValue = 0x12345678) {}
  read(gpa: number, size: AccessSize): number {
    this.log.push(`r${size}@${gpa.toString(16)}`);
    return this.readValue;
  }
  write(gpa: number, size: AccessSize, value: number): void {
    this.log.push(`w${size}@${gpa.toString(16)}=${value.toString(16)}`);
  }
}

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

describe("GuestPhysMemory RAM", () => {
  it("reads little-endian values from the frame mapped at 0", () => {
    const m = new GuestPhysMemory();
    const f = pattern(8192, 1);
    expect(m.map(0, f, RW, true, "f")).toBe(MapResult.Ok);
    expect(m.read8(0x1234)).toBe(f[0x1234]);
    expect(m.read16(0x1234)).toBe(f[0x1234] | (f[0x1235] << 8));
    expect(m.read32(0x1234)).toBe((f[0x1234] | (f[0x1235] << 8) | (f[0x1236] << 16) | (f[0x1237] << 24)) >>> 0);
  });

  it("writes little-endian values into a frame mapped above 0 at the right offset", () => {
    const m = new GuestPhysMemory();
    const f = new Uint8Array(4096);
    m.map(0x10_0000, f, RW, true, "f");
    m.write32(0x10_0010, 0xdeadbeef);
    m.write16(0x10_0020, 0xcafe);
    m.write8(0x10_0030, 0x1ab); // truncated to 8 bits
    expect([...f.subarray(0x10, 0x14)]).toEqual([0xef, 0xbe, 0xad, 0xde]);
    expect([...f.subarray(0x20, 0x22)]).toEqual([0xfe, 0xca]);
    expect(f[0x30]).toBe(0xab);
    expect(m.read32(0x10_0010)).toBe(0xdeadbeef);
  });

  it("splits accesses that straddle two frames", () => {
    const m = new GuestPhysMemory();
    const a = new Uint8Array(4096);
    const b = new Uint8Array(4096);
    m.map(0x2000, a, RW, true, "a");
    m.map(0x3000, b, RW, true, "b");
    m.write32(0x2ffe, 0x11223344);
    expect([a[0xffe], a[0xfff], b[0], b[1]]).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(m.read32(0x2ffe)).toBe(0x11223344);
    m.write16(0x2fff, 0xbeef);
    expect([a[0xfff], b[0]]).toEqual([0xef, 0xbe]);
    expect(m.read16(0x2fff)).toBe(0xbeef);
    expect(m.read32(0x2ffd)).toBe((a[0xffd] | (a[0xffe] << 8) | (a[0xfff] << 16) | (b[0] << 24)) >>> 0);
  });

  it("drops writes to a read-only mapping and counts them, also for the frame at 0", () => {
    const m = new GuestPhysMemory();
    const low = pattern(4096, 3);
    const high = pattern(4096, 5);
    m.map(0, low, R, false, "low");
    m.map(0x8000, high, R, false, "high");
    const before = [low[0x10], high[0x10]];
    m.write8(0x10, 0);
    m.write16(0x10, 0);
    m.write32(0x10, 0);
    m.write32(0x8010, 0);
    expect([low[0x10], high[0x10]]).toEqual(before);
    expect(m.read8(0x8010)).toBe(high[0x10]);
    expect(m.droppedWrites).toBe(4);
  });

  it("wraps a 32-bit access at 4 GiB onto guest-physical 0", () => {
    const m = new GuestPhysMemory();
    const low = new Uint8Array(4096);
    const top = new Uint8Array(4096);
    expect(m.map(0xffff_f000, top, RW, true, "top")).toBe(MapResult.Ok);
    m.map(0, low, RW, true, "low");
    m.write32(0xffff_fffe, 0xa1b2c3d4);
    expect([top[0xffe], top[0xfff], low[0], low[1]]).toEqual([0xd4, 0xc3, 0xb2, 0xa1]);
    expect(m.read32(0xffff_fffe)).toBe(0xa1b2c3d4);
  });
});

describe("GuestPhysMemory MMIO", () => {
  it("sends accesses outside RAM to the handler with their size, masking the result", () => {
    const m = new GuestPhysMemory();
    m.map(0, new Uint8Array(4096), RW, true, "f");
    const h = new RecordingMmio(0xfedcba98);
    m.mmio = h;
    expect(m.read8(0xfee0_0000)).toBe(0x98);
    expect(m.read16(0xfee0_0010)).toBe(0xba98);
    expect(m.read32(0xfee0_0020)).toBe(0xfedcba98);
    m.write8(0x1000, 0x1ff);
    m.write16(0x1002, 0x12345);
    m.write32(0x1004, -1);
    expect(h.log).toEqual([
      "r1@fee00000", "r2@fee00010", "r4@fee00020", "w1@1000=ff", "w2@1002=2345", "w4@1004=ffffffff",
    ]);
  });

  it("reads all-ones and drops writes when no handler is set, counting them", () => {
    const m = new GuestPhysMemory();
    expect(m.read8(0x5000)).toBe(0xff);
    expect(m.read16(0x5000)).toBe(0xffff);
    expect(m.read32(0x5000)).toBe(0xffffffff);
    m.write32(0x5000, 0);
    expect(m.unclaimedAccesses).toBe(4);
  });

  it("hands a page-straddling access that is MMIO on both sides to the handler whole", () => {
    const m = new GuestPhysMemory();
    const h = new RecordingMmio(0xaabbccdd);
    m.mmio = h;
    expect(m.read32(0xfee0_0ffe)).toBe(0xaabbccdd);
    m.write16(0xfee0_0fff, 0x1234);
    expect(h.log).toEqual(["r4@fee00ffe", "w2@fee00fff=1234"]);
  });

  it("splits a straddling access that is half RAM, half MMIO, into bytes", () => {
    const m = new GuestPhysMemory();
    const f = new Uint8Array(4096);
    m.map(0x1000, f, RW, true, "f");
    const h = new RecordingMmio(0xff);
    m.mmio = h;
    m.write32(0x1ffe, 0x44332211);
    expect([f[0xffe], f[0xfff]]).toEqual([0x11, 0x22]);
    expect(h.log).toEqual(["w1@2000=33", "w1@2001=44"]);
    expect(m.read32(0x1ffe)).toBe(0xffff2211);
  });

  it("never throws for wild addresses and masks them to 32 bits", () => {
    const m = new GuestPhysMemory();
    const low = pattern(4096, 9);
    m.map(0, low, RW, true, "low");
    const wild = [-1, -4096, 2 ** 32, 2 ** 32 + 5, 2 ** 53, 1e300, Number.NaN, Infinity, -Infinity, 0.5];
    for (const a of wild) {
      expect(() => {
        m.read8(a); m.read16(a); m.read32(a);
        m.write8(a, 1); m.write16(a, 2); m.write32(a, 3);
      }).not.toThrow();
    }
    m.write8(2 ** 32 + 5, 0x5a);
    expect(low[5]).toBe(0x5a);
    expect(m.read8(-4096 + 5)).toBe(m.read8(0xffff_f005));
  });
});

describe("GuestPhysMemory mappings", () => {
  it("rejects overlapping, unaligned and out-of-range mappings", () => {
    const m = new GuestPhysMemory();
    expect(m.map(0x4000, new Uint8Array(8192), RW, true, "a")).toBe(MapResult.Ok);
    expect(m.map(0x5000, new Uint8Array(4096), RW, true, "b")).toBe(MapResult.Overlap);
    expect(m.map(0x3000, new Uint8Array(8192), RW, true, "b")).toBe(MapResult.Overlap);
    expect(m.map(0x6000, new Uint8Array(4096), RW, true, "b")).toBe(MapResult.Ok);
    expect(m.map(0x7800, new Uint8Array(4096), RW, true, "c")).toBe(MapResult.BadAddress);
    expect(m.map(0xffff_f000, new Uint8Array(8192), RW, true, "c")).toBe(MapResult.BadAddress);
    expect(m.map(-4096, new Uint8Array(4096), RW, true, "c")).toBe(MapResult.BadAddress);
  });

  it("unmap by base address sends the range back to MMIO, including the frame at 0", () => {
    const m = new GuestPhysMemory();
    const f = pattern(4096, 2);
    m.map(0, f, RW, true, "f");
    expect(m.unmap(0x800)).toBe(MapResult.NotMapped);
    expect(m.unmap(0)).toBe(MapResult.Ok);
    expect(m.read8(0x10)).toBe(0xff);
    m.write8(0x10, 0);
    expect(f[0x10]).not.toBe(0);
    expect(m.unmap(0)).toBe(MapResult.NotMapped);
    expect(m.map(0, new Uint8Array(4096), RW, true, "g")).toBe(MapResult.Ok);
  });

  it("unmapOwner removes every mapping of one owner", () => {
    const m = new GuestPhysMemory();
    const f = new Uint8Array(4096);
    m.map(0, f, RW, true, "f");
    m.map(0x9000, f, R, false, "f");
    m.map(0xa000, new Uint8Array(4096), RW, true, "g");
    expect(m.unmapOwner("f")).toBe(2);
    expect(m.mappings().map((x) => x.gpa)).toEqual([0xa000]);
  });
});

describe("GuestPhysMemory A20 gate", () => {
  it("with A20 disabled, 1 MiB + x reads and writes the byte at x; enabled again, the two are distinct", () => {
    const m = new GuestPhysMemory();
    const low = new Uint8Array(2 * 1024 * 1024);
    m.map(0, low, RW, true, "ram");
    low[0x10] = 0x11;
    low[0x10_0010] = 0x22;
    expect(m.a20).toBe(true);
    expect(m.read8(0x10_0010)).toBe(0x22);
    m.setA20(false);
    expect(m.a20).toBe(false);
    expect(m.read8(0x10_0010)).toBe(0x11);
    m.write16(0x10_0020, 0xbeef);
    expect(low[0x20] | (low[0x21] << 8)).toBe(0xbeef);
    expect(low[0x10_0020]).toBe(0);
    m.setA20(true);
    expect(m.read8(0x10_0010)).toBe(0x22);
  });

  it("masks bit 20 of MMIO addresses too, and leaves addresses without bit 20 alone", () => {
    const m = new GuestPhysMemory();
    const h = new RecordingMmio();
    m.mmio = h;
    m.setA20(false);
    m.read32(0xfeb0_0000);
    m.write8(0x20_0004, 1);
    expect(h.log).toEqual(["r4@fea00000", "w1@200004=1"]);
  });
});

describe("GuestPhysMemory direct RAM window (PhysMemory.ram)", () => {
  const RWX = 7;

  it("exposes the RWX frame mapped at 0 as the window, sharing its bytes", () => {
    const m = new GuestPhysMemory();
    expect(m.ram.length).toBe(0);
    const f = new Uint8Array(2 << 20);
    m.map(0, f, RWX, true, "f");
    expect(m.ram.length).toBe(2 << 20);
    m.ram[0x1234] = 0x5a;
    expect(m.read8(0x1234)).toBe(0x5a);
  });

  it("offers no window over a read-only, non-executable or unmapped low frame", () => {
    const m = new GuestPhysMemory();
    m.map(0, new Uint8Array(4096), R | 4, false, "ro");
    expect(m.ram.length).toBe(0);
    m.unmap(0);
    m.map(0, new Uint8Array(4096), RW, true, "rw-nx");
    expect(m.ram.length).toBe(0);
    m.unmap(0);
    m.map(0, new Uint8Array(4096), RWX, true, "rwx");
    expect(m.ram.length).toBe(4096);
    m.unmap(0);
    expect(m.ram.length).toBe(0);
  });

  it("cuts the window to 1 MiB while A20 is gated off, so a direct access never needs the mask", () => {
    const m = new GuestPhysMemory();
    m.map(0, new Uint8Array(2 << 20), RWX, true, "f");
    m.setA20(false);
    expect(m.ram.length).toBe(1 << 20);
    m.setA20(true);
    expect(m.ram.length).toBe(2 << 20);
  });

  it("drops the window when the same bytes are mapped a second time (an alias would bypass it)", () => {
    const m = new GuestPhysMemory();
    const buf = new ArrayBuffer(3 * 4096);
    m.map(0, new Uint8Array(buf, 0, 2 * 4096), RWX, true, "low");
    m.map(0x10_0000, new Uint8Array(buf, 8192, 4096), RWX, true, "elsewhere in the buffer");
    expect(m.ram.length).toBe(2 * 4096); // disjoint bytes of one buffer are no alias
    m.map(0x20_0000, new Uint8Array(buf, 4096, 4096), RWX, true, "alias");
    expect(m.ram.length).toBe(0);
    m.unmap(0x20_0000);
    expect(m.ram.length).toBe(2 * 4096);
  });
});

describe("GuestPhysMemory under the x86 core's direct path", () => {
  const RWX = 7;
  const NO_IO: IoPorts = { in: () => 0xffffffff, out: () => {} };

  it("still drops the core's writes to a read-only frame at 0 and still dispatches writes above RAM to MMIO", () => {
    const m = new GuestPhysMemory();
    const rom = new Uint8Array(0x20000);
    // mov word [0x100], 0x1234 ; mov ax, 0xf000 ; mov ds, ax ; mov byte [0x10], 0x77 ; hlt
    const code = [0xc7, 0x06, 0x00, 0x01, 0x34, 0x12, 0xb8, 0x00, 0xf0, 0x8e, 0xd8, 0xc6, 0x06, 0x10, 0x00, 0x77, 0xf4];
    rom.set(code, 0x10000);
    m.map(0, rom, R | 4, false, "rom");
    const mmio = new RecordingMmio();
    m.mmio = mmio;
    expect(m.ram.length).toBe(0);
    const cpu = new X86Cpu(m, NO_IO);
    cpu.setState(realModeState(0x1000, 0));
    expect(cpu.run(10)).toBe(CpuExitReason.Halted);
    expect(rom[0x100]).toBe(0);
    expect(m.droppedWrites).toBe(1); // one 16-bit write
    expect(mmio.log).toEqual(["w1@f0010=77"]);
  });

  it("lets the core write RWX RAM directly, and sees bytes the monitor wrote between runs", () => {
    const m = new GuestPhysMemory();
    const ram = new Uint8Array(0x20000);
    ram.set([0xb8, 0x11, 0x11, 0xa3, 0x00, 0x02, 0xeb, 0xf8], 0x10000); // top: mov ax, 0x1111 ; mov [0x200], ax ; jmp top
    m.map(0, ram, RWX, true, "ram");
    const cpu = new X86Cpu(m, NO_IO);
    cpu.setState(realModeState(0x1000, 0));
    cpu.run(30);
    expect(ram[0x200] | (ram[0x201] << 8)).toBe(0x1111);
    ram[0x10002] = 0x22; // the monitor patches the immediate's high byte
    cpu.run(30);
    expect(ram[0x200] | (ram[0x201] << 8)).toBe(0x2211);
  });
});

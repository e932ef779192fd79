import { describe, expect, it } from "vitest";
import { container } from "tsyringe";
import { ConfigError, Tokens } from "../../../src/monitor/api.js";
import type { GuestMemory, IoDeviceContribution, IrqLine, IrqLines } from "../../../src/monitor/api.js";
import plugin, { DevicesLpcWiringError, PIT_BASE, PORT61_BASE, RTC_BASE } from "./index.js";
import { tickTime } from "./clock-ticks.js";
import { PIT_CLOCK_HZ } from "./i8254-pit.js";
import { CMOS_EXT_MEM_HI, CMOS_EXT_MEM_LO, RTC_YEAR } from "./mc146818-rtc.js";
import { ManualClock } from "./testing-clock.js";

class Irqs implements IrqLines {
  readonly levels = new Map<number, boolean>();
  line(irq: number): IrqLine {
    return { raise: () => this.levels.set(irq, true), lower: () => this.levels.set(irq, false) };
  }
  level(irq: number): boolean { return this.levels.get(irq) ?? false; }
}

const onlyTimers = { com1: { enabled: false }, i8042: { enabled: false }, port92: { enabled: false }, debugPorts: { enabled: false }, pic: { enabled: false } };

function assemble(options: Record<string, unknown>, withClock = true) {
  const vm = container.createChildContainer();
  const clock = new ManualClock();
  const irqs = new Irqs();
  vm.register(Tokens.IrqLines, { useValue: irqs });
  if (withClock) vm.register(Tokens.Clock, { useValue: clock });
  vm.register(Tokens.GuestMemory, { useValue: { size: 64 * 1024 * 1024 } as GuestMemory });
  const cfg = plugin.parseConfig({ ...onlyTimers, ...options }, "plugins[2].options");
  void plugin.register(vm, cfg, undefined as never);
  const byBase = (base: number): IoDeviceContribution | undefined =>
    (vm.isRegistered(Tokens.IoDeviceContribution) ? vm.resolveAll(Tokens.IoDeviceContribution) : []).find((c) => c.ranges[0]!.base === base);
  return { vm, clock, irqs, byBase };
}

describe("devices-lpc: PIT and RTC options", () => {
  it("default to both enabled with host time and no drives", () => {
    const cfg = plugin.parseConfig(undefined, "p");
    expect(cfg.pit).toEqual({ enabled: true });
    expect(cfg.rtc).toEqual({ enabled: true, time: "host", floppies: 0, hardDisks: 0 });
  });

  it("reject a bad RTC time or an unknown key with the JSON path", () => {
    expect(() => plugin.parseConfig({ rtc: { time: "yesterday" } }, "plugins[2].options")).toThrow(/plugins\[2\]\.options\.rtc\.time/);
    expect(() => plugin.parseConfig({ pit: { hz: 100 } }, "plugins[2].options")).toThrow(ConfigError);
    expect(() => plugin.parseConfig({ rtc: { floppies: 3 } }, "p")).toThrow(/p\.rtc\.floppies/);
  });
});

describe("devices-lpc: PIT and RTC registration", () => {
  it("places the 8254 at 0x40+4 and port 0x61, with counter 0 on IRQ 0", () => {
    const { clock, irqs, byBase } = assemble({});
    const pit = byBase(PIT_BASE)!;
    expect(pit.ranges).toEqual([{ space: "pio", base: 0x40, length: 4 }]);
    expect(byBase(PORT61_BASE)!.ranges).toEqual([{ space: "pio", base: 0x61, length: 1 }]);
    pit.device.write(3, 1, 0x30); // counter 0, LSB then MSB, mode 0
    pit.device.write(0, 1, 10);
    pit.device.write(0, 1, 0);
    expect(irqs.level(0)).toBe(false);
    clock.advanceTo(tickTime(11, PIT_CLOCK_HZ));
    expect(irqs.level(0)).toBe(true);
  });

  it("port 0x61 drives the same 8254's counter 2", () => {
    const { clock, byBase } = assemble({});
    const pit = byBase(PIT_BASE)!.device;
    const p61 = byBase(PORT61_BASE)!.device;
    p61.write(0, 1, 0x01);
    pit.write(3, 1, 0xb0);
    pit.write(2, 1, 5);
    pit.write(2, 1, 0);
    clock.advanceTo(tickTime(6, PIT_CLOCK_HZ));
    expect(p61.read(0, 1) & 0x20).toBe(0x20);
  });

  it("places the RTC at 0x70+2 with the fixed time from config and CMOS from the guest memory size", () => {
    const { byBase } = assemble({ rtc: { time: "1999-12-31T23:59:59Z" } });
    const rtc = byBase(RTC_BASE)!;
    expect(rtc.ranges).toEqual([{ space: "pio", base: 0x70, length: 2 }]);
    const rd = (reg: number) => { rtc.device.write(0, 1, reg); return rtc.device.read(1, 1); };
    expect(rd(RTC_YEAR)).toBe(0x99);
    expect(rd(CMOS_EXT_MEM_LO) | (rd(CMOS_EXT_MEM_HI) << 8)).toBe(63 * 1024); // 64 MiB of RAM
  });

  it("contributes neither when disabled", () => {
    const { byBase } = assemble({ pit: { enabled: false }, rtc: { enabled: false } });
    expect(byBase(PIT_BASE)).toBeUndefined();
    expect(byBase(PORT61_BASE)).toBeUndefined();
    expect(byBase(RTC_BASE)).toBeUndefined();
  });

  it("names the missing virtual clock instead of building a timer without one", () => {
    const { byBase } = assemble({ rtc: { enabled: false } }, false);
    expect(() => byBase(PIT_BASE)).toThrow(DevicesLpcWiringError);
  });
});

import { describe, expect, it } from "vitest";
import { tickTime } from "./clock-ticks.js";
import { I8254Pit, PIT_CLOCK_HZ, PIT_CONTROL_WORD } from "./i8254-pit.js";
import {
  Port61, Port61StateError, PORT61_REF_TOGGLE, PORT61_SPKR_DATA, PORT61_TIM2_GATE, PORT61_TIM2_OUT, REFRESH_PIT_TICKS,
} from "./port61.js";
import { ManualClock, RecordingIrq } from "./testing-clock.js";

const at = (tick: number): number => tickTime(tick, PIT_CLOCK_HZ);

function setup() {
  const clock = new ManualClock();
  const pit = new I8254Pit(clock, new RecordingIrq(clock));
  const port = new Port61(pit, clock);
  return { clock, pit, port };
}

describe("port 0x61", () => {
  it("bit 0 drives counter 2's gate and bit 5 reads its OUT (Linux's PIT calibration loop)", () => {
    const { clock, pit, port } = setup();
    port.write(0, 1, PORT61_TIM2_GATE);
    expect(pit.gate(2)).toBe(true);
    pit.write(PIT_CONTROL_WORD, 1, 0xb0); // counter 2, LSB then MSB, mode 0
    pit.write(2, 1, 100);
    pit.write(2, 1, 0);
    expect(port.read(0, 1) & PORT61_TIM2_OUT).toBe(0);
    clock.advanceTo(at(100));
    expect(port.read(0, 1) & PORT61_TIM2_OUT).toBe(0);
    clock.advanceTo(at(101));
    expect(port.read(0, 1) & PORT61_TIM2_OUT).toBe(PORT61_TIM2_OUT);
    port.write(0, 1, 0);
    expect(pit.gate(2)).toBe(false);
  });

  it("stores the speaker data bit and ignores writes to the status bits", () => {
    const { port } = setup();
    port.write(0, 1, 0xf0 | PORT61_SPKR_DATA);
    expect(port.read(0, 1) & 0x0f).toBe(PORT61_SPKR_DATA);
    expect(port.read(0, 1) & 0xc0).toBe(0);
  });

  it("bit 4 toggles every refresh period (18 PIT clocks), derived from virtual time", () => {
    const { clock, port } = setup();
    const seen: number[] = [];
    for (const k of [0, REFRESH_PIT_TICKS - 1, REFRESH_PIT_TICKS, 2 * REFRESH_PIT_TICKS, 3 * REFRESH_PIT_TICKS]) {
      clock.advanceTo(at(k));
      seen.push(port.read(0, 1) & PORT61_REF_TOGGLE);
    }
    expect(seen).toEqual([0, 0, PORT61_REF_TOGGLE, 0, PORT61_REF_TOGGLE]);
  });

  it("saves and restores the stored bits; rejects a bad state", () => {
    const { clock, pit, port } = setup();
    port.write(0, 1, PORT61_SPKR_DATA);
    const p2 = Port61.fromState(JSON.parse(JSON.stringify(port.saveState())), pit, clock);
    expect(p2.read(0, 1) & 0x0f).toBe(PORT61_SPKR_DATA);
    expect(() => Port61.fromState({ v: 1, value: 0x100 }, pit, clock)).toThrow(Port61StateError);
  });
});

import { describe, expect, it } from "vitest";
import { A20Gate, Port92, PORT92_FAST_A20, PORT92_FAST_RESET } from "./port92.js";

class FakePlatform {
  a20 = true;
  resets = 0;
  readonly a20Writes: boolean[] = [];
  setA20(e: boolean): void { this.a20 = e; this.a20Writes.push(e); }
  requestReset(): void { this.resets++; }
}

function make(kbcPresent: boolean) {
  const p = new FakePlatform();
  const gate = new A20Gate(p, kbcPresent);
  return { p, gate, port: new Port92(gate, p) };
}

describe("Port92", () => {
  it("stores bits 1:0 and reads the reserved bits 7:2 as 0", () => {
    const { port } = make(false);
    port.write(0, 1, 0xff & ~PORT92_FAST_RESET);
    expect(port.read(0, 1)).toBe(PORT92_FAST_A20);
  });

  it("bit 1 drives A20 when no keyboard controller holds it enabled", () => {
    const { port, p } = make(false);
    port.write(0, 1, PORT92_FAST_A20);
    expect(p.a20).toBe(true);
    port.write(0, 1, 0);
    expect(p.a20).toBe(false);
  });

  it("ORs its A20 bit with the i8042's A20GATE, as the chipset does", () => {
    const { port, p, gate } = make(true);
    port.write(0, 1, 0);
    expect(p.a20).toBe(true); // the 8042 still drives A20GATE high
    gate.setKbc(false);
    expect(p.a20).toBe(false);
    port.write(0, 1, PORT92_FAST_A20);
    expect(p.a20).toBe(true);
  });

  it("requests a reset on a 0->1 transition of bit 0 only", () => {
    const { port, p } = make(true);
    port.write(0, 1, PORT92_FAST_RESET);
    port.write(0, 1, PORT92_FAST_RESET | PORT92_FAST_A20); // still 1: no new pulse
    expect(p.resets).toBe(1);
    port.write(0, 1, 0);
    port.write(0, 1, PORT92_FAST_RESET);
    expect(p.resets).toBe(2);
  });

  it("answers wide accesses with all-ones and ignores wide writes", () => {
    const { port, p } = make(true);
    expect(port.read(0, 2)).toBe(0xffff);
    port.write(0, 4, 1);
    expect(p.resets).toBe(0);
    expect(p.a20Writes).toEqual([]);
  });
});

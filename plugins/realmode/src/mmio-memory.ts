// Emulate mode's guest-physical memory: RAM through GuestMemory, and every access that lies
// wholly outside RAM to the monitor's MMIO bus, as the soft engine's guest-physical space
// does for the backends (src/kernel/gpspace.ts). Without it a real-mode guest's MMIO
// (FFFF:0010 and up with A20 on, above RAM) read all-ones in emulate mode and never reached
// a device, unlike native mode. An access straddling the end of RAM goes byte by byte,
// little-endian, each byte to RAM or the bus. Nothing here allocates or throws.
import type { Bus, GuestMemory } from "../../../src/monitor/api.js";
import type { AccessSize, PhysMemory } from "../../../src/x86/types.js";

export class RamOrMmio implements PhysMemory {
  constructor(private readonly mem: GuestMemory, private readonly mmio: Bus) {}

  read8(pa: number): number {
    return pa < this.mem.size ? this.mem.read8(pa) : this.mmio.read(pa, 1) & 0xff;
  }
  read16(pa: number): number { return this.read(pa, 2); }
  read32(pa: number): number { return this.read(pa, 4); }

  write8(pa: number, value: number): void {
    if (pa < this.mem.size) this.mem.write8(pa, value);
    else this.mmio.write(pa, 1, value & 0xff);
  }
  write16(pa: number, value: number): void { this.write(pa, 2, value & 0xffff); }
  write32(pa: number, value: number): void { this.write(pa, 4, value >>> 0); }

  private read(pa: number, size: AccessSize): number {
    const ram = this.mem.size;
    if (pa + size <= ram) return size === 2 ? this.mem.read16(pa) : this.mem.read32(pa);
    if (pa >= ram) {
      const v = this.mmio.read(pa, size);
      return size === 4 ? v >>> 0 : v & 0xffff;
    }
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.read8(pa + i) << (8 * i);
    return v >>> 0;
  }

  private write(pa: number, size: AccessSize, value: number): void {
    const ram = this.mem.size;
    if (pa + size <= ram) {
      if (size === 2) this.mem.write16(pa, value);
      else this.mem.write32(pa, value);
    } else if (pa >= ram) {
      this.mmio.write(pa, size, value);
    } else {
      for (let i = 0; i < size; i++) this.write8(pa + i, value >>> (8 * i));
    }
  }
}

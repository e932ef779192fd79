// INT 15h, the system services a boot loader and Linux's real-mode setup use, and the
// memory map they report. Sources: RBIL INT 15h; ACPI 3.0 section 14 (E820h, the 24-byte
// entry with extended attributes); IBM PC/AT Technical Reference (87h block move, 88h,
// C0h configuration table); SeaBIOS system.c where the documents leave a choice.
//
// Emulated: 2400h-2403h (A20 through the platform's gate), 4Fh, 86h, 87h, 88h, C0h, E801h,
// E820h. Everything else returns AH=86h CF=1 ("function not supported").
import type { GuestMemory, Platform, VirtualClock } from "../../../../src/monitor/api.js";
import type { X86State } from "../../../../src/x86/types.js";
import type { BiosReturn } from "./frame.js";
import {
  BDA_WAIT_FLAG, BDA_WAIT_TIMEOUT, CONFIG_TABLE_OFFSET, CONVENTIONAL_TOP, EBDA_SIZE, MODEL_AT, ONE_MIB, ROM_AREA_BASE,
  ROM_AREA_END, ROM_BASE, ROM_SEGMENT, WAIT_TIMER_OFFSET,
} from "./layout.js";
import type { PortAccess } from "./ports.js";
import { hi8, lo16, lo8, loadRealSegment, setAh, setAl, setAx, setBx, setCx, setDx } from "./regs.js";

export const INT15_UNSUPPORTED = 0x86;
const SMAP = 0x534d4150; // "SMAP"

export const enum E820Type { Ram = 1, Reserved = 2, Acpi = 3, Nvs = 4, Unusable = 5 }
export interface E820Entry { readonly base: number; readonly length: number; readonly type: E820Type }

/** Where the EBDA goes for a RAM size: 1 KiB just below 640 KiB, or below the top of a smaller RAM. */
export function ebdaBase(ramBytes: number): number {
  const top = Math.min(CONVENTIONAL_TOP, Math.floor(ramBytes / 1024) * 1024);
  return top - EBDA_SIZE;
}

/**
 * The E820 map: conventional RAM, the EBDA (reserved), the system ROM F0000-FFFFF
 * (reserved), RAM from 1 MiB to the top. The VGA window A0000-BFFFF and the option-ROM area
 * C0000-EFFFF are holes, as on a PC; Linux reserves them itself.
 */
export function e820Map(ramBytes: number): E820Entry[] {
  const ebda = ebdaBase(ramBytes);
  const map: E820Entry[] = [
    { base: 0, length: ebda, type: E820Type.Ram },
    { base: ebda, length: EBDA_SIZE, type: E820Type.Reserved },
    { base: ROM_AREA_BASE, length: ROM_AREA_END - ROM_AREA_BASE, type: E820Type.Reserved },
  ];
  if (ramBytes > ONE_MIB) map.push({ base: ONE_MIB, length: ramBytes - ONE_MIB, type: E820Type.Ram });
  return map;
}

/** The C0h configuration table (RBIL INT 15/AH=C0h, table 00509): 8 bytes after its length word. */
export const CONFIG_TABLE = [
  0x08, 0x00, // length
  MODEL_AT, 0x01, 0x00, // model, submodel, BIOS revision
  // feature byte 1: bit 6 second 8259, bit 5 RTC, bit 4 INT 09h calls INT 15h/4Fh, bit 2 EBDA allocated
  0x74,
  0x00, 0x00, 0x00, 0x00,
];

// Port 0x92 (PS/2 system control port A) and the i8042 status port, probed for 2403h.
const PORT_92 = 0x92;
const KBC_STATUS = 0x64;

export class SystemService {
  private readonly map: E820Entry[];
  /** Virtual-clock deadline (ns) of the INT 15h/86h wait in progress, or -1. */
  private waitDeadline = -1;
  private waitTimer = -1;

  constructor(
    private readonly mem: GuestMemory,
    private readonly ports: PortAccess,
    private readonly platform: Platform | undefined,
    private readonly clock: VirtualClock | undefined,
  ) {
    this.map = e820Map(mem.size);
  }

  get memoryMap(): readonly E820Entry[] { return this.map; }

  install(): void {
    for (let i = 0; i < CONFIG_TABLE.length; i++) this.mem.write8(ROM_BASE + CONFIG_TABLE_OFFSET + i, CONFIG_TABLE[i]!);
    this.mem.write8(BDA_WAIT_FLAG, 0);
  }

  int15(s: X86State, ret: BiosReturn): void {
    const ah = hi8(s.eax);
    switch (ah) {
      case 0x24: this.a20(s, ret); return;
      case 0x4f: ret.setCarry(true); return; // keyboard intercept: keep the scancode in AL
      case 0x86: this.wait(s, ret, false); return;
      case 0x87: this.blockMove(s, ret); return;
      case 0x88:
        setAx(s, Math.min(0xffff, Math.max(0, Math.floor((this.mem.size - ONE_MIB) / 1024))));
        ret.setCarry(false);
        return;
      case 0xc0:
        loadRealSegment(s.es, ROM_SEGMENT);
        setBx(s, CONFIG_TABLE_OFFSET);
        setAh(s, 0);
        ret.setCarry(false);
        return;
      case 0xe8:
        if (lo8(s.eax) === 0x01) { this.e801(s, ret); return; }
        if (lo8(s.eax) === 0x20 && s.edx === SMAP) { this.e820(s, ret); return; }
        break;
    }
    setAh(s, INT15_UNSUPPORTED);
    ret.setCarry(true);
  }

  /** 2400h disable, 2401h enable, 2402h status (AL), 2403h support (BX bit 0 i8042, bit 1 port 92h). */
  private a20(s: X86State, ret: BiosReturn): void {
    const p = this.platform;
    switch (lo8(s.eax)) {
      case 0x00:
        if (!p) break; // A20 is always on without a gate
        p.setA20(false); setAh(s, 0); ret.setCarry(false); return;
      case 0x01:
        p?.setA20(true); setAh(s, 0); ret.setCarry(false); return;
      case 0x02:
        setAl(s, p ? (p.a20() ? 1 : 0) : 1); setAh(s, 0); ret.setCarry(false); return;
      case 0x03: {
        let bx = 0;
        if (p && (this.ports.in(KBC_STATUS, 1) & 0xff) !== 0xff) bx |= 1;
        if (p && (this.ports.in(PORT_92, 1) & 0xff) !== 0xff) bx |= 2;
        setBx(s, bx); setAh(s, 0); ret.setCarry(false); return;
      }
    }
    setAh(s, INT15_UNSUPPORTED);
    ret.setCarry(true);
  }

  /**
   * 86h: wait CX:DX microseconds of virtual time. The BIOS cannot block the monitor, so the
   * call detours through the ROM loop `sti; hlt; cli; jmp far <retry>`: the guest halts with
   * interrupts on, a clock timer at the deadline wakes it, and the retry entry
   * (SERVICE_WAIT_TIMER_RETRY) returns once the deadline passed. Without a clock the call
   * returns at once (CF=0). AH=83h CF=1 if a wait is already in progress (RBIL).
   */
  wait(s: X86State, ret: BiosReturn, retry: boolean): void {
    const c = this.clock;
    if (!retry) {
      if (this.waitDeadline >= 0) { setAh(s, 0x83); ret.setCarry(true); return; }
      const us = ((lo16(s.ecx) << 16) | lo16(s.edx)) >>> 0;
      if (!c || us === 0) { setAh(s, 0); ret.setCarry(false); return; }
      this.waitDeadline = c.now() + us * 1000;
      this.mem.write32(BDA_WAIT_TIMEOUT, us);
      this.mem.write8(BDA_WAIT_FLAG, 0x01);
      // The callback only has to exist: a timer firing is what wakes a halted vCPU.
      this.waitTimer = c.setTimer(this.waitDeadline, () => {});
    } else if (this.waitDeadline < 0 || !c) {
      setAh(s, 0); ret.setCarry(false); return; // a stray jump to the retry entry
    }
    if (c!.now() >= this.waitDeadline) {
      this.waitDeadline = -1;
      this.waitTimer = -1;
      this.mem.write8(BDA_WAIT_FLAG, 0x80); // bit 7: the wait time elapsed
      setAh(s, 0);
      ret.setCarry(false);
      return;
    }
    ret.detour(ROM_SEGMENT, WAIT_TIMER_OFFSET);
  }

  /** Forget a wait in progress (the guest was reset). */
  cancelWait(): void {
    if (this.waitTimer >= 0) this.clock?.cancel(this.waitTimer);
    this.waitDeadline = -1;
    this.waitTimer = -1;
  }

  /**
   * 87h: copy CX words between the 32-bit linear bases of GDT entries 2 (source) and 3
   * (destination) of the table at ES:SI. A table, a range past a descriptor's limit or
   * outside guest RAM, or CX > 8000h copies nothing and returns AH=02h CF=1: what the
   * protected-mode move's fault ("exception interrupt error") reports on a PC/AT.
   */
  private blockMove(s: X86State, ret: BiosReturn): void {
    const m = this.mem;
    const gdt = (s.es.base + lo16(s.esi)) >>> 0;
    const words = lo16(s.ecx);
    const bytes = words * 2;
    const fail = () => { setAh(s, 0x02); ret.setCarry(true); };
    if (words > 0x8000 || gdt + 0x30 > m.size) { fail(); return; }
    const desc = (i: number) => {
      const d = gdt + 8 * i;
      return { base: (m.read16(d + 2) | (m.read8(d + 4) << 16) | (m.read8(d + 7) << 24)) >>> 0, limit: m.read16(d) };
    };
    const src = desc(2);
    const dst = desc(3);
    if (bytes > 0) {
      if (bytes - 1 > src.limit || bytes - 1 > dst.limit) { fail(); return; }
      if (src.base + bytes > m.size || dst.base + bytes > m.size) { fail(); return; }
      const data = m.readBytes(src.base, bytes);
      if (!data || !m.writeBytes(dst.base, data)) { fail(); return; }
    }
    setAh(s, 0);
    ret.setCarry(false);
    ret.setZero(true);
  }

  /** E801h: AX=CX = KiB from 1 MiB to 16 MiB (at most 3C00h), BX=DX = 64 KiB blocks above 16 MiB. */
  private e801(s: X86State, ret: BiosReturn): void {
    const size = this.mem.size;
    const low = Math.min(0x3c00, Math.max(0, Math.floor((Math.min(size, 16 * ONE_MIB) - ONE_MIB) / 1024)));
    const high = Math.min(0xffff, Math.max(0, Math.floor((size - 16 * ONE_MIB) / 0x10000)));
    setAx(s, low); setCx(s, low);
    setBx(s, high); setDx(s, high);
    ret.setCarry(false);
  }

  /**
   * E820h: entry EBX of the map into ES:DI. ECX < 20, EBX past the map or a buffer outside
   * RAM: AH=86h CF=1. ECX >= 24 gets the ACPI 3.0 extended attributes dword (bit 0: enabled)
   * and ECX=24; otherwise ECX=20. EBX becomes the next index, 0 after the last entry.
   */
  private e820(s: X86State, ret: BiosReturn): void {
    const idx = s.ebx >>> 0;
    const want = s.ecx >>> 0;
    const at = (s.es.base + lo16(s.edi)) >>> 0;
    const len = want >= 24 ? 24 : 20;
    if (want < 20 || idx >= this.map.length || at + len > this.mem.size) {
      setAh(s, INT15_UNSUPPORTED);
      ret.setCarry(true);
      return;
    }
    const e = this.map[idx]!;
    const m = this.mem;
    m.write32(at, e.base >>> 0);
    m.write32(at + 4, Math.floor(e.base / 0x100000000));
    m.write32(at + 8, e.length >>> 0);
    m.write32(at + 12, Math.floor(e.length / 0x100000000));
    m.write32(at + 16, e.type);
    if (len === 24) m.write32(at + 20, 1);
    s.eax = SMAP;
    s.ecx = len;
    s.ebx = idx + 1 < this.map.length ? idx + 1 : 0;
    ret.setCarry(false);
  }
}

// What both backends' nested-paging tests share (plugins/vmx vmx-backend.ept.test.ts and
// .stats.test.ts, plugins/svm svm-backend.npt.test.ts and .stats.test.ts): an MMIO device
// outside guest RAM, real-mode guests that reach it, and a run helper that collects the
// exits the MemAssist performed. Test code only.
import { expect } from "vitest";
import type { AccessSize, IoDevice, VcpuBackend, VmExit } from "../api.js";

/** Guest-physical base of the test MMIO device (above the 64 KiB of guest RAM; real-mode segment 2000h). */
export const MMIO_DEV = 0x2_0000;

/** Records each access as `r<size>@<offset>` / `w<size>@<offset>=<value>` (hex); reads return 12345678h cut to the size. */
export class RecordingMmioDevice implements IoDevice {
  readonly name = "mmio-recorder";
  readonly log: string[] = [];
  read(offset: number, size: AccessSize): number { this.log.push(`r${size}@${offset.toString(16)}`); return 0x1234_5678 & (size === 4 ? 0xffffffff : (1 << (8 * size)) - 1); }
  write(offset: number, size: AccessSize, value: number): void { this.log.push(`w${size}@${offset.toString(16)}=${value.toString(16)}`); }
}

/**
 * REP MOVSB of 3 bytes from RAM at 0000:3000 into the device (ES = 2000h, DI = 40h), then a
 * loop reading the device's first byte forever: one assisted write of count 3, then one
 * assisted read per run.
 */
export const REP_MOVSB_TO_DEVICE: readonly number[] = [
  0xb8, 0x00, 0x20, 0x8e, 0xc0, // mov ax, 0x2000; mov es, ax
  0xbe, 0x00, 0x30,             // mov si, 0x3000 (RAM)
  0xbf, 0x40, 0x00,             // mov di, 0x40 (the device)
  0xb9, 0x03, 0x00,             // mov cx, 3
  0xfc, 0xf3, 0xa4,             // cld; rep movsb
  0x26, 0xa0, 0x00, 0x00,       // loop: mov al, es:[0]
  0xeb, 0xfa,                   // jmp loop
];

/**
 * Three MMIO accesses to a latch at MMIO_DEV (write 11h, read, write back what was read),
 * the value read sent to port E9h, then cli; hlt. See `latchDevice`.
 */
export const MMIO_LATCH_GUEST: readonly number[] = [
  0xb8, 0x00, 0x20, 0x8e, 0xd8,       // mov ax, 0x2000; mov ds, ax
  0xc6, 0x06, 0x00, 0x00, 0x11,       // mov byte [0], 0x11   (MMIO write)
  0xa0, 0x04, 0x00,                   // mov al, [4]          (MMIO read: 0x5a)
  0xa2, 0x08, 0x00,                   // mov [8], al          (MMIO write of what was read)
  0xe6, 0xe9,                         // out 0xe9, al
  0xfa, 0xf4,                         // cli; hlt
];
/** The latch: reads return 5Ah and are counted, writes are recorded; one device for MMIO and port E9h. */
export function latchDevice(): { dev: IoDevice; writes: number[]; reads: () => number } {
  const writes: number[] = [];
  let reads = 0;
  const dev: IoDevice = {
    name: "latch", read: () => { reads++; return 0x5a; }, write: (_o: number, _s: AccessSize, v: number) => { writes.push(v); },
  };
  return { dev, writes, reads: () => reads };
}

/** An exit as text; `unhandled` and `entry-failure` with their message. */
export const exitText = (e: VmExit): string => (e.kind === "unhandled" || e.kind === "entry-failure" ? `${e.kind}: ${e.message}` : e.kind);

/** Run until an exit other than an assisted MMIO one; the assisted ones as `w|r@gpa/count` (each must carry a count). */
export function runToExit(be: Pick<VcpuBackend, "run">): { assisted: string[]; exit: VmExit } {
  const assisted: string[] = [];
  for (;;) {
    const e = be.run();
    if (e.kind !== "mmio") return { assisted, exit: e };
    expect(e.count).toBeDefined();
    assisted.push(`${e.write ? "w" : "r"}@${e.gpa.toString(16)}/${e.count}`);
  }
}

// The BIOS keyboard buffer: the BDA ring at 0040:001E (head 0x41A, tail 0x41C, bounds
// 0x480/0x482) is the buffer the guest sees, as on a PC/AT, so code that peeks at the BDA
// works. Host console bytes become (scancode << 8 | ASCII) words put into that ring; when it
// is full (15 keys), they wait in a host-side backlog (capped) and move in as INT 16h takes
// keys out. Bytes arriving before the BIOS has set up the BDA wait in the backlog too.
import type { GuestMemory } from "../../../../src/monitor/api.js";
import { BDA_BASE, BDA_KBD_END, BDA_KBD_HEAD, BDA_KBD_START, BDA_KBD_TAIL, KBD_RING_END, KBD_RING_START } from "./layout.js";

/** Host bytes held while the ring is full; more are dropped (counted). */
export const KBD_BACKLOG_MAX = 4096;

// Scan code set 1 make codes of a US keyboard (IBM PC/AT Technical Reference, keyboard).
const SC_ROWS: ReadonlyArray<readonly [string, string, number]> = [
  ["1234567890-=", "!@#$%^&*()_+", 0x02],
  ["qwertyuiop[]", "QWERTYUIOP{}", 0x10],
  ["asdfghjkl;'`", "ASDFGHJKL:\"~", 0x1e],
  ["\\zxcvbnm,./", "|ZXCVBNM<>?", 0x2b],
];
export const SC_ESC = 0x01;
export const SC_BACKSPACE = 0x0e;
export const SC_TAB = 0x0f;
export const SC_ENTER = 0x1c;
export const SC_SPACE = 0x39;

/** ASCII -> set-1 scancode; 0 where the byte has no key on a US keyboard. */
export const ASCII_SCANCODES: Uint8Array = (() => {
  const t = new Uint8Array(128);
  for (const [plain, shifted, first] of SC_ROWS) {
    for (let i = 0; i < plain.length; i++) {
      t[plain.charCodeAt(i)] = first + i;
      t[shifted.charCodeAt(i)] = first + i;
    }
  }
  t[0x20] = SC_SPACE;
  t[0x1b] = SC_ESC;
  t[0x08] = SC_BACKSPACE;
  t[0x7f] = SC_BACKSPACE;
  t[0x09] = SC_TAB;
  t[0x0d] = SC_ENTER;
  // Ctrl+letter gives ASCII 1..26 with the letter's scancode.
  for (let c = 1; c <= 26; c++) if (c !== 0x08 && c !== 0x09 && c !== 0x0d) t[c] = t[0x60 + c]!;
  return t;
})();

/** The INT 16h key word for a host byte: Enter for CR or LF, Backspace for BS or DEL. */
export function keyWord(byte: number): number {
  if (byte === 0x0a || byte === 0x0d) return (SC_ENTER << 8) | 0x0d;
  if (byte === 0x7f) return (SC_BACKSPACE << 8) | 0x08;
  return ((byte < 128 ? ASCII_SCANCODES[byte]! : 0) << 8) | byte;
}

export class KeyboardBuffer {
  private readonly backlog: number[] = [];
  private backlogHead = 0;
  private ready = false;
  private lastWasCr = false;
  /** Host bytes dropped because the backlog was full. */
  dropped = 0;

  constructor(private readonly mem: GuestMemory) {}

  /** Set up an empty ring in the BDA, then move any early input in. */
  install(): void {
    this.mem.write16(BDA_KBD_START, KBD_RING_START);
    this.mem.write16(BDA_KBD_END, KBD_RING_END);
    this.mem.write16(BDA_KBD_HEAD, KBD_RING_START);
    this.mem.write16(BDA_KBD_TAIL, KBD_RING_START);
    this.ready = true;
    this.fill();
  }

  /** A byte of console input. CR LF counts as one Enter. */
  hostByte(byte: number): void {
    byte &= 0xff;
    const collapse = byte === 0x0a && this.lastWasCr;
    this.lastWasCr = byte === 0x0d;
    if (collapse) return;
    if (this.backlog.length - this.backlogHead >= KBD_BACKLOG_MAX) { this.dropped++; return; }
    this.backlog.push(keyWord(byte));
    this.fill();
  }

  /** The next key word without removing it, or -1. */
  peek(): number {
    if (!this.ready) return -1;
    const r = this.ring();
    return r.head === r.tail ? -1 : this.mem.read16(BDA_BASE + r.head);
  }

  /** Remove and return the next key word, or -1. */
  take(): number {
    if (!this.ready) return -1;
    const r = this.ring();
    if (r.head === r.tail) return -1;
    const w = this.mem.read16(BDA_BASE + r.head);
    this.mem.write16(BDA_KBD_HEAD, this.next(r.head, r));
    this.fill();
    return w;
  }

  private readonly r = { start: 0, end: 0, head: 0, tail: 0 };

  /** The ring pointers, reset to the defaults if the guest left them inconsistent. */
  private ring(): { start: number; end: number; head: number; tail: number } {
    const r = this.r;
    r.start = this.mem.read16(BDA_KBD_START);
    r.end = this.mem.read16(BDA_KBD_END);
    r.head = this.mem.read16(BDA_KBD_HEAD);
    r.tail = this.mem.read16(BDA_KBD_TAIL);
    const ok = (x: number) => (x & 1) === 0 && x >= r.start && x < r.end;
    if ((r.start & 1) !== 0 || r.start + 4 > r.end || r.end > 0x100 || !ok(r.head) || !ok(r.tail)) {
      // Defined behaviour for a corrupted BDA: an empty default ring.
      this.mem.write16(BDA_KBD_START, KBD_RING_START);
      this.mem.write16(BDA_KBD_END, KBD_RING_END);
      this.mem.write16(BDA_KBD_HEAD, KBD_RING_START);
      this.mem.write16(BDA_KBD_TAIL, KBD_RING_START);
      r.start = r.head = r.tail = KBD_RING_START;
      r.end = KBD_RING_END;
    }
    return r;
  }

  private next(p: number, r: { start: number; end: number }): number {
    return p + 2 >= r.end ? r.start : p + 2;
  }

  private fill(): void {
    if (!this.ready) return;
    while (this.backlogHead < this.backlog.length) {
      const r = this.ring();
      const nt = this.next(r.tail, r);
      if (nt === r.head) return; // full: one slot stays free to tell full from empty
      this.mem.write16(BDA_BASE + r.tail, this.backlog[this.backlogHead++]!);
      this.mem.write16(BDA_KBD_TAIL, nt);
    }
    this.backlog.length = 0;
    this.backlogHead = 0;
  }
}

// The BIOS keyboard: the BDA ring at 0040:001E (head 0x41A, tail 0x41C, bounds 0x480/0x482)
// is the buffer the guest sees, as on a PC/AT, so code that peeks at the BDA works. Two
// producers fill it (realmode option `keyboard`):
// - "console": host console bytes become (scancode << 8 | ASCII) words put straight into the
//   ring; when it is full (15 keys) they wait in a host-side backlog (capped) and move in as
//   INT 16h takes keys out. Bytes arriving before the BIOS set up the BDA wait there too.
// - "i8042": INT 09h (IRQ 1) reads set-1 scancodes from port 0x60 and `scancode()` turns
//   them into key words with the shift state in the BDA (0x417/0x418/0x496), as the PC/AT
//   BIOS's KB_INT does; grey keys behind an E0h prefix are stored with AL=E0h.
// Sources: IBM PC/AT Technical Reference (KB_INT, K6-K15 tables), RBIL INT 09h/16h and
// MEMORY.LST. Not emulated: Ctrl+Alt+Del (no reboot), Pause/Break and SysReq handling,
// keyboard LED commands (the i8042 model owns the LEDs), INT 16h 03h (typematic) and 09h/0Ah.
import type { GuestMemory } from "../../../../src/monitor/api.js";
import {
  BDA_BASE, BDA_KBD_END, BDA_KBD_FLAGS, BDA_KBD_FLAGS2, BDA_KBD_FLAGS3, BDA_KBD_HEAD, BDA_KBD_START, BDA_KBD_TAIL,
  KBD_RING_END, KBD_RING_START,
} from "./layout.js";

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

  /** Put a key word at the ring's tail (INT 16h AH=05h, INT 09h); false when the ring is full. */
  store(word: number): boolean {
    if (!this.ready) return false;
    const r = this.ring();
    const nt = this.next(r.tail, r);
    if (nt === r.head) return false;
    this.mem.write16(BDA_BASE + r.tail, word & 0xffff);
    this.mem.write16(BDA_KBD_TAIL, nt);
    return true;
  }

  /**
   * INT 09h: one set-1 scancode byte (make or break, E0h prefix) from the keyboard
   * controller. Updates the shift flags and stores the key word, if the key makes one.
   * Returns the stored word, or -1 (prefix, modifier, break code, full ring).
   */
  scancode(code: number): number {
    code &= 0xff;
    const m = this.mem;
    let f3 = m.read8(BDA_KBD_FLAGS3);
    if (code === 0xe0) { m.write8(BDA_KBD_FLAGS3, f3 | F3_E0 | F3_101KEY); return -1; }
    if (code === 0xe1) { m.write8(BDA_KBD_FLAGS3, (f3 & ~F3_E0) | F3_E1); return -1; }
    const e0 = (f3 & F3_E0) !== 0;
    const e1 = (f3 & F3_E1) !== 0;
    f3 &= ~(F3_E0 | F3_E1);
    m.write8(BDA_KBD_FLAGS3, f3);
    if (e1) return -1; // Pause: its E1 1D 45 sequence is swallowed, the pause state is not emulated
    const brk = (code & 0x80) !== 0;
    const sc = code & 0x7f;
    let f1 = m.read8(BDA_KBD_FLAGS);
    let f2 = m.read8(BDA_KBD_FLAGS2);
    // E0 2A / E0 AA are fake shifts around grey keys: ignore them.
    if (e0 && (sc === 0x2a || sc === 0x36)) return -1;
    switch (sc) {
      case 0x2a: f1 = brk ? f1 & ~0x02 : f1 | 0x02; break;
      case 0x36: f1 = brk ? f1 & ~0x01 : f1 | 0x01; break;
      case 0x1d:
        if (e0) f3 = brk ? f3 & ~F3_RCTRL : f3 | F3_RCTRL; else f2 = brk ? f2 & ~0x01 : f2 | 0x01;
        f1 = (f2 & 0x01) !== 0 || (f3 & F3_RCTRL) !== 0 ? f1 | 0x04 : f1 & ~0x04;
        break;
      case 0x38:
        if (e0) f3 = brk ? f3 & ~F3_RALT : f3 | F3_RALT; else f2 = brk ? f2 & ~0x02 : f2 | 0x02;
        f1 = (f2 & 0x02) !== 0 || (f3 & F3_RALT) !== 0 ? f1 | 0x08 : f1 & ~0x08;
        break;
      case 0x46: case 0x45: case 0x3a: {
        // Scroll, Num, Caps Lock: toggle on make (held bits in 0x418 debounce typematic repeats).
        const held = sc === 0x46 ? 0x10 : sc === 0x45 ? 0x20 : 0x40;
        if (brk) f2 &= ~held;
        else if ((f2 & held) === 0) { f2 |= held; f1 ^= held; }
        break;
      }
      default: {
        if (brk) return -1;
        if (sc === 0x52 && (e0 || (f1 & 0x20) === 0 || (f1 & 0x03) !== 0)) f1 ^= 0x80; // Insert toggles
        m.write8(BDA_KBD_FLAGS, f1);
        const w = translate(sc, e0, f1);
        if (w < 0) return -1;
        return this.store(w) ? w : -1;
      }
    }
    m.write8(BDA_KBD_FLAGS, f1);
    m.write8(BDA_KBD_FLAGS2, f2);
    m.write8(BDA_KBD_FLAGS3, f3);
    return -1;
  }

  /** INT 16h AH=12h: AH = the extended shift state (RBIL INT 16/AH=12h), AL = 0x417. */
  extendedShiftFlags(): number {
    const f1 = this.mem.read8(BDA_KBD_FLAGS);
    const f2 = this.mem.read8(BDA_KBD_FLAGS2);
    const f3 = this.mem.read8(BDA_KBD_FLAGS3);
    let ah = f2 & 0x03; // left Ctrl, left Alt
    if (f3 & F3_RCTRL) ah |= 0x04;
    if (f3 & F3_RALT) ah |= 0x08;
    ah |= f2 & 0x70; // Scroll, Num, Caps held
    if (f2 & 0x04) ah |= 0x80; // SysReq held
    return (ah << 8) | f1;
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

const F3_E1 = 0x01;
const F3_E0 = 0x02;
const F3_RCTRL = 0x04;
const F3_RALT = 0x08;
const F3_101KEY = 0x10;

/** Set-1 scancode -> [plain, shift] ASCII for the typing keys (0 where none). */
const PLAIN = new Uint8Array(0x59);
const SHIFTED = new Uint8Array(0x59);
for (const [plain, shifted, first] of SC_ROWS) {
  for (let i = 0; i < plain.length; i++) { PLAIN[first + i] = plain.charCodeAt(i); SHIFTED[first + i] = shifted.charCodeAt(i); }
}
PLAIN[SC_SPACE] = SHIFTED[SC_SPACE] = 0x20;
PLAIN[SC_ESC] = SHIFTED[SC_ESC] = 0x1b;
PLAIN[SC_BACKSPACE] = SHIFTED[SC_BACKSPACE] = 0x08;
PLAIN[SC_TAB] = 0x09;
PLAIN[SC_ENTER] = SHIFTED[SC_ENTER] = 0x0d;
PLAIN[0x37] = SHIFTED[0x37] = 0x2a; // keypad *
PLAIN[0x4a] = SHIFTED[0x4a] = 0x2d; // keypad -
PLAIN[0x4e] = SHIFTED[0x4e] = 0x2b; // keypad +
/** Keypad 47h-53h with Num Lock (or Shift): digits and the point. */
const KEYPAD_DIGITS = "789-456+1230.";

/**
 * The INT 16h key word for a make code under the shift state `f1` (0x417), or -1 for a key
 * that makes none. F-key and Ctrl/Alt codes: PC/AT Technical Reference K6-K15 tables.
 */
export function translate(sc: number, e0: boolean, f1: number): number {
  const shift = (f1 & 0x03) !== 0;
  const ctrl = (f1 & 0x04) !== 0;
  const alt = (f1 & 0x08) !== 0;
  if (e0) {
    // Grey keys: AL=E0h marks them for INT 16h 10h-12h (00h-02h turn it into 00h).
    if (sc === 0x1c) return ctrl ? 0xe00a : alt ? 0xa600 : 0xe00d; // keypad Enter
    if (sc === 0x35) return alt ? 0xa400 : ctrl ? 0x9500 : 0xe02f; // keypad /
    if (sc >= 0x47 && sc <= 0x53 && sc !== 0x4a && sc !== 0x4c && sc !== 0x4e) {
      if (alt) return (sc + 0x50) << 8; // Alt+grey: 97h-A3h
      if (ctrl) return (CTRL_PAD[sc - 0x47]! << 8) | 0xe0;
      return (sc << 8) | 0xe0;
    }
    return -1;
  }
  if (sc >= 0x3b && sc <= 0x44) { // F1-F10
    const base = alt ? 0x68 : ctrl ? 0x5e : shift ? 0x54 : 0x3b;
    return (base + sc - 0x3b) << 8;
  }
  if (sc === 0x57 || sc === 0x58) { // F11, F12
    const base = alt ? 0x8b : ctrl ? 0x89 : shift ? 0x87 : 0x85;
    return (base + sc - 0x57) << 8;
  }
  if (sc >= 0x47 && sc <= 0x53 && sc !== 0x4a && sc !== 0x4e) { // keypad
    const num = ((f1 & 0x20) !== 0) !== shift;
    if (alt) return -1; // Alt+keypad digits compose a code on release: not emulated
    if (ctrl) return CTRL_PAD[sc - 0x47]! << 8;
    if (num) return (sc << 8) | KEYPAD_DIGITS.charCodeAt(sc - 0x47);
    return sc === 0x4c ? -1 : sc << 8;
  }
  if (sc >= PLAIN.length || PLAIN[sc] === 0) return -1;
  const ch = PLAIN[sc]!;
  const letter = ch >= 0x61 && ch <= 0x7a;
  if (alt) {
    if (sc >= 0x02 && sc <= 0x0d) return (sc + 0x76) << 8; // Alt+1..= : 78h-83h
    if (sc === SC_SPACE) return (sc << 8) | 0x20;
    return sc << 8;
  }
  if (ctrl) {
    if (letter) return (sc << 8) | (ch - 0x60);
    switch (sc) {
      case SC_ENTER: return (sc << 8) | 0x0a;
      case SC_BACKSPACE: return (sc << 8) | 0x7f;
      case SC_TAB: return 0x9400;
      case SC_ESC: return (sc << 8) | 0x1b;
      case SC_SPACE: return (sc << 8) | 0x20;
      case 0x03: return 0x0300; // Ctrl+2: NUL
      case 0x07: return (sc << 8) | 0x1e; // Ctrl+6
      case 0x0c: return (sc << 8) | 0x1f; // Ctrl+-
      case 0x1a: return (sc << 8) | 0x1b; // Ctrl+[
      case 0x1b: return (sc << 8) | 0x1d; // Ctrl+]
      case 0x2b: return (sc << 8) | 0x1c; // Ctrl+backslash
      default: return -1;
    }
  }
  if (sc === SC_TAB && shift) return 0x0f00; // Shift+Tab
  const caps = (f1 & 0x40) !== 0 && letter;
  return (sc << 8) | (shift !== caps ? SHIFTED[sc]! : ch);
}

/** Ctrl + keypad 47h-53h scancodes (77h Home, 8Dh Up, 84h PgUp, ...). */
const CTRL_PAD = [0x77, 0x8d, 0x84, 0x8e, 0x73, 0x8f, 0x74, 0x90, 0x75, 0x91, 0x76, 0x92, 0x93];

/**
 * INT 16h 00h/01h (the non-extended calls): keys only an enhanced keyboard makes are not
 * reported (-1: 00h drops them), and AL=E0h of grey keys becomes 00h.
 */
export function standardKey(word: number): number {
  const sc = word >>> 8;
  const al = word & 0xff;
  if (word === 0xe00d || word === 0xe00a || word === 0xe02f) return ((word === 0xe02f ? 0x35 : 0x1c) << 8) | (word & 0xff);
  if (al === 0xe0) return sc << 8;
  if (al === 0 && sc >= 0x85) return -1; // F11/F12 and the enhanced Ctrl/Alt codes (85h-A6h)
  return word;
}

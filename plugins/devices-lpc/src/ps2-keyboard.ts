// IBM PS/2 keyboard (the device behind the i8042's keyboard port) and the 8042's
// set-2 -> set-1 translation. Sources: IBM PS/2 Hardware Interface Technical Reference,
// "Keyboards (101- and 102-Key)": commands, ACK 0xFA, BAT completion 0xAA, identify
// 0xAB 0x83, scan code sets 1 and 2; "Keyboard/Auxiliary Device Controller": translation.
//
// Emulated:
// - Commands ED (LEDs), EE (echo), F0 (get/set scan code set 1 or 2), F2 (identify),
//   F3 (typematic), F4/F5 (enable/disable scanning), F6 (defaults), F7-FD (set-3 key
//   types: ACKed, no effect), FE (resend last byte), FF (reset: ACK then BAT 0xAA).
//   Unknown bytes answer 0xFE (resend), as the keyboard does for an invalid command.
// - A 16-byte output buffer as on the keyboard: a key sequence that does not fit is
//   dropped whole and an overrun code (0x00 in set 2, 0xFF in set 1) is queued once.
// - Typed host bytes become make/break sequences: ASCII letters, digits, punctuation,
//   Enter, Backspace (BS and DEL), Tab, Esc, space; Shift for upper case and shifted
//   symbols; Ctrl for 0x01-0x1A; ANSI arrows ESC [ A-D and ESC O A-D (E0-prefixed keys).
//
// Not emulated: scan code set 3 (refused with 0xFE), typematic repeat, key rollover
// timing, the keyboard's own inhibit/clock handshaking, non-ASCII input (dropped, counted).

/** ACK, BAT passed, echo, resend and identify bytes (IBM PS/2 TR, keyboard commands). */
export const KBD_ACK = 0xfa;
export const KBD_BAT_OK = 0xaa;
export const KBD_ECHO = 0xee;
export const KBD_RESEND = 0xfe;
export const KBD_ID1 = 0xab;
export const KBD_ID2 = 0x83;
/** The keyboard's output buffer: 16 bytes (IBM PS/2 TR, "keyboard buffer"). */
export const KBD_BUFFER_SIZE = 16;

/**
 * The 8042's set 2 -> set 1 translation for codes 0x00-0x7F (IBM PS/2 TR, controller
 * "scan code translation"). Codes 0x80-0xFF pass unchanged except 0x83 -> 0x41 (F7) and
 * 0x84 -> 0x54 (SysRq); an F0 prefix is absorbed and sets bit 7 of the next translated code.
 */
const XLAT_LOW = [
  0xff, 0x43, 0x41, 0x3f, 0x3d, 0x3b, 0x3c, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3e, 0x0f, 0x29, 0x59,
  0x65, 0x38, 0x2a, 0x70, 0x1d, 0x10, 0x02, 0x5a, 0x66, 0x71, 0x2c, 0x1f, 0x1e, 0x11, 0x03, 0x5b,
  0x67, 0x2e, 0x2d, 0x20, 0x12, 0x05, 0x04, 0x5c, 0x68, 0x39, 0x2f, 0x21, 0x14, 0x13, 0x06, 0x5d,
  0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5e, 0x6a, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5f,
  0x6b, 0x33, 0x25, 0x17, 0x18, 0x0b, 0x0a, 0x60, 0x6c, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0c, 0x61,
  0x6d, 0x73, 0x28, 0x74, 0x1a, 0x0d, 0x62, 0x6e, 0x3a, 0x36, 0x1c, 0x1b, 0x75, 0x2b, 0x63, 0x76,
  0x55, 0x56, 0x77, 0x78, 0x79, 0x7a, 0x0e, 0x7b, 0x7c, 0x4f, 0x7d, 0x4b, 0x47, 0x7e, 0x7f, 0x6f,
  0x52, 0x53, 0x50, 0x4c, 0x4d, 0x48, 0x01, 0x45, 0x57, 0x4e, 0x51, 0x4a, 0x37, 0x49, 0x46, 0x54,
];

export const XLAT_TABLE: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (let i = 0; i < 256; i++) t[i] = i < 0x80 ? XLAT_LOW[i]! : i;
  t[0x83] = 0x41;
  t[0x84] = 0x54;
  return t;
})();

// Set-2 make codes (IBM PS/2 TR, scan code set 2 table).
const S2_LSHIFT = 0x12;
const S2_LCTRL = 0x14;
const S2_ENTER = 0x5a;
const S2_BACKSPACE = 0x66;
const S2_TAB = 0x0d;
const S2_ESC = 0x76;
const S2_SPACE = 0x29;
const S2_BREAK = 0xf0;
const S2_EXT = 0xe0;
/** E0-prefixed arrows in set 2: up, down, right, left (ANSI A, B, C, D). */
const S2_ARROWS = [0x75, 0x72, 0x74, 0x6b];

/** ASCII -> set-2 code, with bit 8 meaning "Shift held". 0 = no key. */
const ASCII_KEYS: Uint16Array = (() => {
  const t = new Uint16Array(128);
  const SH = 0x100;
  const put = (chars: string, codes: number[], shift: number) => {
    for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = codes[i]! | shift;
  };
  const letters = [0x1c, 0x32, 0x21, 0x23, 0x24, 0x2b, 0x34, 0x33, 0x43, 0x3b, 0x42, 0x4b, 0x3a,
    0x31, 0x44, 0x4d, 0x15, 0x2d, 0x1b, 0x2c, 0x3c, 0x2a, 0x1d, 0x22, 0x35, 0x1a]; // a..z
  put("abcdefghijklmnopqrstuvwxyz", letters, 0);
  put("ABCDEFGHIJKLMNOPQRSTUVWXYZ", letters, SH);
  const row = [0x0e, 0x16, 0x1e, 0x26, 0x25, 0x2e, 0x36, 0x3d, 0x3e, 0x46, 0x45, 0x4e, 0x55];
  put("`1234567890-=", row, 0);
  put("~!@#$%^&*()_+", row, SH);
  const punct = [0x54, 0x5b, 0x5d, 0x4c, 0x52, 0x41, 0x49, 0x4a];
  put("[]\\;',./", punct, 0);
  put("{}|:\"<>?", punct, SH);
  t[0x20] = S2_SPACE;
  t[0x0d] = S2_ENTER;
  t[0x0a] = S2_ENTER;
  t[0x09] = S2_TAB;
  t[0x08] = S2_BACKSPACE;
  t[0x7f] = S2_BACKSPACE;
  t[0x1b] = S2_ESC;
  return t;
})();

const enum Pending { None, Leds, Typematic, ScanSet }

/** What the keyboard needs from its controller. */
export interface Ps2KeyboardHost {
  /** The keyboard has bytes for the controller (it may take them now). */
  kbdDataReady(): void;
}

const enum Esc { None, Esc, Csi }

export class Ps2Keyboard {
  private readonly buf = new Uint8Array(KBD_BUFFER_SIZE);
  private head = 0;
  private count = 0;
  private overrun = false;
  private lastSent = KBD_ACK;
  private pending = Pending.None;
  /** Scan code set in use (1 or 2). */
  scanSet = 2;
  scanning = true;
  leds = 0;
  typematic = 0x2b; // power-on default: 10.9 cps, 500 ms delay
  // Host input: bytes typed but not yet turned into scan codes (bounded).
  private readonly backlog: Uint8Array;
  private blHead = 0;
  private blCount = 0;
  private escState = Esc.None;
  /** Typed bytes dropped: backlog full, or no key for them. */
  droppedInput = 0;
  /** Key sequences lost to a full keyboard buffer. */
  overruns = 0;
  private readonly seq = new Uint8Array(8);

  constructor(private readonly host: Ps2KeyboardHost, backlogBytes = 64 * 1024) {
    this.backlog = new Uint8Array(backlogBytes);
  }

  // ---- controller side

  /** Bytes waiting for the controller. */
  get available(): number {
    return this.count;
  }

  /** Take the oldest byte (the controller calls this only when `available > 0`). */
  take(): number {
    const b = this.buf[this.head]!;
    this.head = (this.head + 1) % KBD_BUFFER_SIZE;
    this.count--;
    this.lastSent = b;
    if (this.count === 0) this.overrun = false;
    return b;
  }

  /** Peek at the byte after the oldest one (the controller's F0 translation needs the pair). */
  peek(i: number): number {
    return this.buf[(this.head + i) % KBD_BUFFER_SIZE]!;
  }

  /** A byte the guest sent to the keyboard (through the i8042 data port). */
  command(b: number): void {
    b &= 0xff;
    const p = this.pending;
    if (p !== Pending.None) {
      this.pending = Pending.None;
      if (p === Pending.Leds) {
        this.leds = b & 7;
        this.reply(KBD_ACK);
        return;
      }
      if (p === Pending.Typematic) {
        this.typematic = b & 0x7f;
        this.reply(KBD_ACK);
        return;
      }
      // F0 parameter: 0 asks for the current set, 1/2 select it.
      if (b === 0) {
        this.reply(KBD_ACK);
        this.reply(this.scanSet);
      } else if (b === 1 || b === 2) {
        this.scanSet = b;
        this.reply(KBD_ACK);
      } else {
        this.reply(KBD_RESEND);
      }
      return;
    }
    switch (b) {
      case 0xed: this.reply(KBD_ACK); this.pending = Pending.Leds; break;
      case 0xee: this.reply(KBD_ECHO); break;
      case 0xf0: this.reply(KBD_ACK); this.pending = Pending.ScanSet; break;
      case 0xf2: this.reply(KBD_ACK); this.reply(KBD_ID1); this.reply(KBD_ID2); break;
      case 0xf3: this.reply(KBD_ACK); this.pending = Pending.Typematic; break;
      case 0xf4: this.clearBuffer(); this.scanning = true; this.reply(KBD_ACK); this.pump(); break;
      // F5/F6: restore defaults; F5 also stops scanning (IBM PS/2 TR, "Default Disable").
      case 0xf5: this.defaults(); this.scanning = false; this.reply(KBD_ACK); break;
      case 0xf6: this.defaults(); this.reply(KBD_ACK); break;
      case 0xf7: case 0xf8: case 0xf9: case 0xfa: case 0xfb: case 0xfc: case 0xfd:
        this.reply(KBD_ACK);
        break;
      case 0xfe: this.reply(this.lastSent); break;
      case 0xff:
        this.defaults();
        this.scanSet = 2;
        this.leds = 0;
        this.reply(KBD_ACK);
        this.reply(KBD_BAT_OK);
        break;
      default:
        this.reply(KBD_RESEND);
    }
  }

  /** Power-on state (the keyboard was reset). */
  reset(): void {
    this.defaults();
    this.scanSet = 2;
    this.leds = 0;
    this.pending = Pending.None;
  }

  // ---- host side

  /** A byte typed on the host. Queued (bounded) and turned into scan codes as the guest drains. */
  type(byte: number): void {
    if (this.blCount >= this.backlog.length) {
      this.droppedInput++;
      return;
    }
    this.backlog[(this.blHead + this.blCount) % this.backlog.length] = byte & 0xff;
    this.blCount++;
  }

  /** Typed bytes not yet turned into scan codes. */
  get backlogged(): number {
    return this.blCount;
  }

  /**
   * Turn typed bytes into key sequences while the keyboard buffer has room; true when
   * bytes were queued (the caller tells the controller). A lone ESC at the end of the
   * backlog is a key only when `final` (no more input in this burst).
   */
  pump(final = true): boolean {
    if (!this.scanning) return false;
    let produced = false;
    while (this.blCount > 0) {
      const b = this.backlog[this.blHead]!;
      if (this.escState === Esc.None && b === 0x1b && this.blCount === 1 && !final) break;
      // Make room for the longest sequence (shift/ctrl + key, 6 bytes) before consuming.
      if (KBD_BUFFER_SIZE - this.count < 6) break;
      this.blHead = (this.blHead + 1) % this.backlog.length;
      this.blCount--;
      if (this.feedByte(b)) produced = true;
    }
    return produced;
  }

  // ---- internals

  /** Returns true when bytes were queued. */
  private feedByte(b: number): boolean {
    switch (this.escState) {
      case Esc.Esc:
        if (b === 0x5b /* [ */ || b === 0x4f /* O */) {
          this.escState = Esc.Csi;
          return false;
        }
        // ESC then something else: the Esc key, then that byte.
        this.escState = Esc.None;
        this.key(S2_ESC, false, false);
        this.typeAscii(b);
        return true;
      case Esc.Csi: {
        // ECMA-48: parameter bytes 0x30-0x3F, intermediates 0x20-0x2F, then one final byte.
        if (b >= 0x20 && b <= 0x3f) return false;
        this.escState = Esc.None;
        const i = b - 0x41; // A..D
        if (i >= 0 && i < 4) {
          this.extKey(S2_ARROWS[i]!);
          return true;
        }
        this.droppedInput++; // another control sequence (Delete, F-keys ...): no key for it here
        return false;
      }
      default:
        if (b === 0x1b && this.blCount > 0) {
          const next = this.backlog[this.blHead]!;
          if (next === 0x5b || next === 0x4f) {
            this.escState = Esc.Esc;
            return false;
          }
        }
        return this.typeAscii(b);
    }
  }

  private typeAscii(b: number): boolean {
    if (b < 0x80) {
      const k = ASCII_KEYS[b]!;
      if (k !== 0) {
        this.key(k & 0xff, (k & 0x100) !== 0, false);
        return true;
      }
      // Ctrl-A .. Ctrl-Z (those without their own key above).
      if (b >= 0x01 && b <= 0x1a) {
        this.key(ASCII_KEYS[0x60 + b]!, false, true);
        return true;
      }
    }
    this.droppedInput++;
    return false;
  }

  /** Queue make/break for one key, wrapped in Shift or Ctrl; all or nothing. */
  private key(code: number, shift: boolean, ctrl: boolean): void {
    const mod = shift ? S2_LSHIFT : ctrl ? S2_LCTRL : 0;
    let n = 0;
    const s = this.seq;
    if (this.scanSet === 1) {
      const c1 = XLAT_TABLE[code]!;
      const m1 = XLAT_TABLE[mod]!;
      if (mod) s[n++] = m1;
      s[n++] = c1;
      s[n++] = c1 | 0x80;
      if (mod) s[n++] = m1 | 0x80;
    } else {
      if (mod) s[n++] = mod;
      s[n++] = code;
      s[n++] = S2_BREAK;
      s[n++] = code;
      if (mod) { s[n++] = S2_BREAK; s[n++] = mod; }
    }
    this.queueSeq(n);
  }

  private extKey(code: number): void {
    const s = this.seq;
    let n = 0;
    if (this.scanSet === 1) {
      const c1 = XLAT_TABLE[code]!;
      s[n++] = S2_EXT; s[n++] = c1; s[n++] = S2_EXT; s[n++] = c1 | 0x80;
    } else {
      s[n++] = S2_EXT; s[n++] = code; s[n++] = S2_EXT; s[n++] = S2_BREAK; s[n++] = code;
    }
    this.queueSeq(n);
  }

  private queueSeq(n: number): void {
    if (KBD_BUFFER_SIZE - this.count < n) {
      this.overruns++;
      if (!this.overrun && this.count < KBD_BUFFER_SIZE) {
        this.overrun = true;
        this.push(this.scanSet === 1 ? 0xff : 0x00);
      }
      return;
    }
    for (let i = 0; i < n; i++) this.push(this.seq[i]!);
  }

  private push(b: number): void {
    this.buf[(this.head + this.count) % KBD_BUFFER_SIZE] = b;
    this.count++;
  }

  /** A command response; the keyboard answers before any further key data. */
  private reply(b: number): void {
    if (this.count >= KBD_BUFFER_SIZE) {
      // Only a guest flooding commands without reading gets here: drop the oldest byte.
      this.head = (this.head + 1) % KBD_BUFFER_SIZE;
      this.count--;
      this.overruns++;
    }
    this.push(b);
    this.host.kbdDataReady();
  }

  private clearBuffer(): void {
    this.head = 0;
    this.count = 0;
    this.overrun = false;
  }

  private defaults(): void {
    this.clearBuffer();
    this.scanning = true;
    this.typematic = 0x2b;
    this.pending = Pending.None;
  }
}

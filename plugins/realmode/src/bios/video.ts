// INT 10h, the text side of a VGA BIOS: modes, cursor, scrolling, character and string
// output into the text buffer (0xB8000, or 0xB0000 in mode 7) and the BDA video fields
// (0x449-0x466, 0x484-0x485). Teletype (0Eh) and write string (13h) output is mirrored to
// the console as source "bios-tty". Sources: IBM PC/AT Technical Reference (VIDEO_IO), RBIL
// INT 10h and MEMORY.LST.
//
// Not emulated: graphics modes (00h stores the mode number and the BDA fields, nothing is
// drawn and 08h/09h/0Ah/0Eh do not touch the text buffer); palettes, fonts (11h), 12h
// alternate functions, 1Ah display combination; the CRTC registers (the cursor is kept in
// the BDA only). 09h/0Ah write the buffer without mirroring to the console.
import type { Console, GuestMemory } from "../../../../src/monitor/api.js";
import type { X86State } from "../../../../src/x86/types.js";
import {
  BDA_ACTIVE_PAGE, BDA_CRTC_BASE, BDA_CURSOR_POS, BDA_CURSOR_SHAPE, BDA_VIDEO_CHAR_HEIGHT, BDA_VIDEO_COLS,
  BDA_VIDEO_MODE, BDA_VIDEO_MODE_CTRL, BDA_VIDEO_PAGE_SIZE, BDA_VIDEO_PAGE_START, BDA_VIDEO_PALETTE, BDA_VIDEO_ROWS,
  CRTC_COLOR, TEXT_ATTR, TEXT_COLOR_BASE, TEXT_MONO_BASE,
} from "./layout.js";
import { hi8, lo16, lo8, setAh, setAl, setAx, setBh, setCx, setDh, setDl } from "./regs.js";

export const CONSOLE_SOURCE = "bios-tty";
export const TEXT_ROWS = 25;
const CRTC_MONO = 0x3b4;
/** CRT mode control register values per mode 0-7 (PC/AT BIOS table M7). */
const MODE_CTRL = [0x2c, 0x28, 0x2d, 0x29, 0x2a, 0x2e, 0x1e, 0x29];

export class Video {
  constructor(private readonly mem: GuestMemory, private readonly console: Console) {}

  /** Mode 3 (80x25 colour text), cleared screen, cursor home. */
  install(): void {
    this.setMode(3);
    this.mem.write16(BDA_CURSOR_SHAPE, 0x0607);
  }

  mode(): number { return this.mem.read8(BDA_VIDEO_MODE); }
  columns(): number { return this.mem.read16(BDA_VIDEO_COLS) || 80; }
  activePage(): number { return this.mem.read8(BDA_ACTIVE_PAGE) & 7; }
  private rows(): number { return Math.min(this.mem.read8(BDA_VIDEO_ROWS) + 1, TEXT_ROWS) || TEXT_ROWS; }
  private pageSize(): number { return this.columns() === 40 ? 0x800 : 0x1000; }

  int10(s: X86State): void {
    switch (hi8(s.eax)) {
      case 0x00: this.setMode(lo8(s.eax)); break;
      case 0x01: this.mem.write16(BDA_CURSOR_SHAPE, lo16(s.ecx)); break;
      case 0x02: this.setCursor(hi8(s.ebx), hi8(s.edx), lo8(s.edx)); break;
      case 0x03: {
        const w = this.cursorWord(hi8(s.ebx));
        setDh(s, w >>> 8); setDl(s, w & 0xff);
        setCx(s, this.mem.read16(BDA_CURSOR_SHAPE));
        setAx(s, 0);
        break;
      }
      case 0x05: this.selectPage(lo8(s.eax)); break;
      case 0x06: case 0x07:
        this.scroll(hi8(s.eax) === 0x06, lo8(s.eax), hi8(s.ebx), hi8(s.ecx), lo8(s.ecx), hi8(s.edx), lo8(s.edx), this.activePage());
        break;
      case 0x08: {
        const at = this.cellAt(hi8(s.ebx));
        if (at >= 0) setAx(s, this.mem.read16(at)); // AL = char, AH = attribute
        break;
      }
      case 0x09: this.writeRepeated(lo8(s.eax), lo8(s.ebx), lo16(s.ecx), hi8(s.ebx), true); break;
      case 0x0a: this.writeRepeated(lo8(s.eax), 0, lo16(s.ecx), hi8(s.ebx), false); break;
      case 0x0e: this.teletype(lo8(s.eax), this.activePage()); break;
      case 0x0f: setAl(s, this.mode()); setAh(s, this.columns()); setBh(s, this.activePage()); break;
      case 0x13: this.writeString(s); break;
      default: break; // a VGA BIOS ignores functions it does not have
    }
  }

  /** INT 10h AH=00h. Text modes 0-3 and 7 are drawn; bit 7 of AL keeps the buffer contents. */
  setMode(al: number): void {
    const mode = al & 0x7f;
    const cols = mode <= 1 ? 40 : 80;
    const m = this.mem;
    m.write8(BDA_VIDEO_MODE, mode);
    m.write16(BDA_VIDEO_COLS, cols);
    m.write16(BDA_VIDEO_PAGE_SIZE, cols === 40 ? 0x800 : 0x1000);
    m.write16(BDA_VIDEO_PAGE_START, 0);
    m.write8(BDA_VIDEO_ROWS, TEXT_ROWS - 1);
    m.write16(BDA_VIDEO_CHAR_HEIGHT, 16);
    m.write8(BDA_ACTIVE_PAGE, 0);
    m.write16(BDA_CRTC_BASE, mode === 7 ? CRTC_MONO : CRTC_COLOR);
    m.write8(BDA_VIDEO_MODE_CTRL, MODE_CTRL[mode] ?? 0x29);
    m.write8(BDA_VIDEO_PALETTE, 0x30);
    for (let p = 0; p < 8; p++) m.write16(BDA_CURSOR_POS + 2 * p, 0);
    const base = this.textBase();
    if ((al & 0x80) === 0 && base >= 0) {
      const blank = (TEXT_ATTR << 8) | 0x20;
      for (let i = 0; i < (0x8000 >> 1); i++) m.write16(base + 2 * i, blank);
    }
  }

  /** Physical base of the text buffer of the current mode, or -1 in graphics modes. */
  private textBase(): number {
    const m = this.mode();
    if (m <= 3) return TEXT_COLOR_BASE;
    if (m === 7) return TEXT_MONO_BASE;
    return -1;
  }

  private selectPage(page: number): void {
    const p = page & 7;
    this.mem.write8(BDA_ACTIVE_PAGE, p);
    this.mem.write16(BDA_VIDEO_PAGE_START, p * this.pageSize());
  }

  getCursor(page: number): { row: number; col: number } {
    const w = this.cursorWord(page);
    return { row: w >>> 8, col: w & 0xff };
  }

  private cursorWord(page: number): number { return this.mem.read16(BDA_CURSOR_POS + 2 * (page & 7)); }

  /** INT 10h AH=02h: positions are clamped to the screen. */
  setCursor(page: number, row: number, col: number): void {
    const r = Math.min(row & 0xff, this.rows() - 1);
    const c = Math.min(col & 0xff, this.columns() - 1);
    this.mem.write16(BDA_CURSOR_POS + 2 * (page & 7), (r << 8) | c);
  }

  /** Address of the cell under page `page`'s cursor, or -1 in graphics modes. */
  private cellAt(page: number, row?: number, col?: number): number {
    const base = this.textBase();
    if (base < 0) return -1;
    const w = this.cursorWord(page);
    const r = Math.min(row ?? w >>> 8, this.rows() - 1);
    const c = Math.min(col ?? w & 0xff, this.columns() - 1);
    return base + (page & 7) * this.pageSize() + 2 * (r * this.columns() + c);
  }

  /** 09h/0Ah: `count` copies from the cursor on, bounded by the end of the page; the cursor stays. */
  private writeRepeated(ch: number, attr: number, count: number, page: number, withAttr: boolean): void {
    const at = this.cellAt(page);
    if (at < 0) return;
    const pageEnd = this.textBase() + ((page & 7) + 1) * this.pageSize();
    const cells = this.columns() * this.rows();
    const start = (at - this.textBase() - (page & 7) * this.pageSize()) >> 1;
    const n = Math.min(count, cells - start);
    for (let i = 0; i < n && at + 2 * i < pageEnd; i++) {
      this.mem.write8(at + 2 * i, ch);
      if (withAttr) this.mem.write8(at + 2 * i + 1, attr);
    }
  }

  /** INT 10h AH=0Eh: BEL, BS, CR, LF are controls; other bytes are drawn and advance the cursor. */
  teletype(ch: number, page: number, attr = -1): void {
    ch &= 0xff;
    page &= 7;
    this.console.write(CONSOLE_SOURCE, ch);
    this.putTty(ch, page, attr);
  }

  /** The teletype without the console mirror: draw or interpret `ch`, move the cursor, scroll. */
  private putTty(ch: number, page: number, attr: number): void {
    const cols = this.columns();
    const rows = this.rows();
    const w = this.cursorWord(page);
    let row = Math.min(w >>> 8, rows - 1);
    let col = Math.min(w & 0xff, cols - 1);
    switch (ch) {
      case 0x07: return;
      case 0x08: if (col > 0) col--; break;
      case 0x0d: col = 0; break;
      case 0x0a: row++; break;
      default: {
        const at = this.cellAt(page, row, col);
        if (at >= 0) {
          this.mem.write8(at, ch);
          if (attr >= 0) this.mem.write8(at + 1, attr);
        }
        col++;
        if (col >= cols) { col = 0; row++; }
      }
    }
    if (row >= rows) {
      // Scrolling keeps the attribute of the cell at the cursor for the new line (PC/AT BIOS).
      const at = this.cellAt(page, rows - 1, col);
      const fill = at >= 0 ? this.mem.read8(at + 1) : TEXT_ATTR;
      this.scroll(true, 1, fill, 0, 0, rows - 1, cols - 1, page);
      row = rows - 1;
    }
    this.mem.write16(BDA_CURSOR_POS + 2 * page, (row << 8) | col);
  }

  /**
   * 06h (up) / 07h (down): scroll the window (top,left)-(bottom,right) of `page` by `lines`
   * (0 or more than the window's height: clear it), filling with blanks in `attr`.
   */
  scroll(up: boolean, lines: number, attr: number, top: number, left: number, bottom: number, right: number, page: number): void {
    const base = this.textBase();
    if (base < 0) return;
    const cols = this.columns();
    const rows = this.rows();
    bottom = Math.min(bottom, rows - 1);
    right = Math.min(right, cols - 1);
    if (top > bottom || left > right) return;
    const height = bottom - top + 1;
    const n = lines === 0 || lines > height ? height : lines;
    const p = base + (page & 7) * this.pageSize();
    const cell = (r: number, c: number) => p + 2 * (r * cols + c);
    const blank = ((attr & 0xff) << 8) | 0x20;
    for (let i = 0; i < height; i++) {
      const r = up ? top + i : bottom - i;
      const src = up ? r + n : r - n;
      const inside = up ? src <= bottom : src >= top;
      for (let c = left; c <= right; c++) {
        this.mem.write16(cell(r, c), inside ? this.mem.read16(cell(src, c)) : blank);
      }
    }
  }

  /**
   * 13h: write CX characters from ES:BP at DH,DL on page BH. AL bit 0: move the cursor to
   * the end; bit 1: the string alternates character and attribute (else BL is the attribute).
   * BEL, BS, CR and LF act as in the teletype.
   */
  private writeString(s: X86State): void {
    const mode = lo8(s.eax);
    if (mode > 3) return;
    const page = hi8(s.ebx) & 7;
    const count = lo16(s.ecx);
    const saved = this.cursorWord(page);
    this.setCursor(page, hi8(s.edx), lo8(s.edx));
    let p = (s.es.base + lo16(s.ebp)) >>> 0;
    for (let i = 0; i < count; i++) {
      const ch = this.mem.read8(p++);
      let attr = lo8(s.ebx);
      if (mode & 2) attr = this.mem.read8(p++);
      this.console.write(CONSOLE_SOURCE, ch);
      this.putTty(ch, page, ch === 0x07 || ch === 0x08 || ch === 0x0a || ch === 0x0d ? -1 : attr);
    }
    if ((mode & 1) === 0) this.mem.write16(BDA_CURSOR_POS + 2 * page, saved);
  }
}

// The text side of INT 10h: teletype output to the console and to the text buffer,
// cursor position in the BDA, scrolling. Source: IBM PC/AT Technical Reference (video BIOS),
// RBIL INT 10h. Graphics modes store the mode number only: nothing is drawn in them.
import type { Console, GuestMemory } from "../../../../src/monitor/api.js";
import {
  BDA_ACTIVE_PAGE, BDA_CRTC_BASE, BDA_CURSOR_POS, BDA_CURSOR_SHAPE, BDA_VIDEO_COLS, BDA_VIDEO_MODE,
  BDA_VIDEO_PAGE_SIZE, BDA_VIDEO_PAGE_START, BDA_VIDEO_ROWS, CRTC_COLOR, TEXT_ATTR, TEXT_COLOR_BASE,
  TEXT_MONO_BASE, TEXT_PAGE_SIZE,
} from "./layout.js";

export const CONSOLE_SOURCE = "bios-tty";
export const TEXT_ROWS = 25;
const BLANK = (TEXT_ATTR << 8) | 0x20;

export class Video {
  constructor(private readonly mem: GuestMemory, private readonly console: Console) {}

  /** Mode 3 (80x25 colour text), cleared screen, cursor home. */
  install(): void {
    this.setMode(3);
    this.mem.write16(BDA_CURSOR_SHAPE, 0x0607);
    this.mem.write16(BDA_CRTC_BASE, CRTC_COLOR);
  }

  mode(): number { return this.mem.read8(BDA_VIDEO_MODE); }
  columns(): number { return this.mem.read16(BDA_VIDEO_COLS) || 80; }
  activePage(): number { return this.mem.read8(BDA_ACTIVE_PAGE) & 7; }

  /** INT 10h AH=00h. Bit 7 of AL keeps the screen contents. */
  setMode(al: number): void {
    const mode = al & 0x7f;
    const cols = mode <= 1 ? 40 : 80;
    this.mem.write8(BDA_VIDEO_MODE, mode);
    this.mem.write16(BDA_VIDEO_COLS, cols);
    this.mem.write16(BDA_VIDEO_PAGE_SIZE, TEXT_PAGE_SIZE);
    this.mem.write16(BDA_VIDEO_PAGE_START, 0);
    this.mem.write8(BDA_VIDEO_ROWS, TEXT_ROWS - 1);
    this.mem.write8(BDA_ACTIVE_PAGE, 0);
    for (let p = 0; p < 8; p++) this.mem.write16(BDA_CURSOR_POS + 2 * p, 0);
    if ((al & 0x80) === 0 && this.textBase() >= 0) {
      for (let i = 0; i < cols * TEXT_ROWS; i++) this.mem.write16(this.textBase() + 2 * i, BLANK);
    }
  }

  /** Physical base of the text buffer of the current mode, or -1 in graphics modes. */
  private textBase(): number {
    const m = this.mode();
    if (m <= 3) return TEXT_COLOR_BASE;
    if (m === 7) return TEXT_MONO_BASE;
    return -1;
  }

  getCursor(page: number): { row: number; col: number } {
    const w = this.mem.read16(BDA_CURSOR_POS + 2 * (page & 7));
    return { row: w >>> 8, col: w & 0xff };
  }

  /** INT 10h AH=02h: positions are stored as given, clamped to the screen. */
  setCursor(page: number, row: number, col: number): void {
    const r = Math.min(row & 0xff, TEXT_ROWS - 1);
    const c = Math.min(col & 0xff, this.columns() - 1);
    this.mem.write16(BDA_CURSOR_POS + 2 * (page & 7), (r << 8) | c);
  }

  /** INT 10h AH=0Eh: BEL, BS, CR, LF are controls; other bytes are drawn and advance the cursor. */
  teletype(ch: number, page: number): void {
    ch &= 0xff;
    page &= 7;
    this.console.write(CONSOLE_SOURCE, ch);
    const cols = this.columns();
    const w = this.mem.read16(BDA_CURSOR_POS + 2 * page);
    let row = Math.min(w >>> 8, TEXT_ROWS - 1);
    let col = Math.min(w & 0xff, cols - 1);
    switch (ch) {
      case 0x07: return;
      case 0x08: if (col > 0) col--; break;
      case 0x0d: col = 0; break;
      case 0x0a: row++; break;
      default: {
        const base = this.textBase();
        if (base >= 0) this.mem.write8(base + page * TEXT_PAGE_SIZE + 2 * (row * cols + col), ch);
        col++;
        if (col >= cols) { col = 0; row++; }
      }
    }
    if (row >= TEXT_ROWS) {
      this.scrollUp(page, cols);
      row = TEXT_ROWS - 1;
    }
    this.mem.write16(BDA_CURSOR_POS + 2 * page, (row << 8) | col);
  }

  private scrollUp(page: number, cols: number): void {
    const base = this.textBase();
    if (base < 0) return;
    const p = base + page * TEXT_PAGE_SIZE;
    const bytes = this.mem.readBytes(p + 2 * cols, 2 * cols * (TEXT_ROWS - 1));
    if (bytes) this.mem.writeBytes(p, bytes);
    for (let c = 0; c < cols; c++) this.mem.write16(p + 2 * ((TEXT_ROWS - 1) * cols + c), BLANK);
  }
}

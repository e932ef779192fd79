// Fixed addresses of the BIOS's data structures and ROM, in one place.
// IVT and BDA layouts: IBM PC/AT Technical Reference (BIOS listing), also RBIL MEMORY.LST.

/**
 * The ROM stubs exit to the monitor with `out BIOS_CALL_PORT, al`. 0xE5 lies in 0xE0-0xEF,
 * "reserved" on the PC/AT I/O map (PC/AT Technical Reference, system I/O address map);
 * 0xE9 (Bochs/QEMU debug console) and 0xED (Linux's alternative io_delay port) are avoided.
 */
export const BIOS_CALL_PORT = 0xe5;

export const ROM_SEGMENT = 0xf000;
export const ROM_BASE = ROM_SEGMENT << 4;
/** The stub table: 256 stubs of STUB_SIZE bytes at F000:STUB_OFFSET, stub n serves vector n. */
export const STUB_OFFSET = 0x1000;
export const STUB_SIZE = 16;
export const STUB_TABLE = ROM_BASE + STUB_OFFSET;
/** Diskette parameter table at its fixed PC/AT address F000:EFC7 (IVT 1Eh points at it). */
export const DPT_OFFSET = 0xefc7;
/** BIOS date "mm/dd/yy" at F000:FFF5 and the model byte at F000:FFFE (0xFC: PC/AT). */
export const ROM_DATE_OFFSET = 0xfff5;
export const ROM_MODEL_OFFSET = 0xfffe;
export const MODEL_AT = 0xfc;

export const IVT_BASE = 0;
export const IVT_ENTRIES = 256;
export const VECTOR_DPT = 0x1e;

// BIOS data area (segment 0x40).
export const BDA_SEGMENT = 0x40;
export const BDA_BASE = 0x400;
export const BDA_COM1 = 0x400;
export const BDA_EQUIPMENT = 0x410;
export const BDA_MEMORY_KIB = 0x413;
export const BDA_KBD_FLAGS = 0x417;
export const BDA_KBD_HEAD = 0x41a;
export const BDA_KBD_TAIL = 0x41c;
/** Default ring: offsets 0x1E..0x3E from segment 0x40 (16 words, 15 usable). */
export const KBD_RING_START = 0x1e;
export const KBD_RING_END = 0x3e;
export const BDA_FLOPPY_STATUS = 0x441;
export const BDA_VIDEO_MODE = 0x449;
export const BDA_VIDEO_COLS = 0x44a;
export const BDA_VIDEO_PAGE_SIZE = 0x44c;
export const BDA_VIDEO_PAGE_START = 0x44e;
export const BDA_CURSOR_POS = 0x450; // 8 pages x (column, row)
export const BDA_CURSOR_SHAPE = 0x460; // end line, start line
export const BDA_ACTIVE_PAGE = 0x462;
export const BDA_CRTC_BASE = 0x463;
export const BDA_TICKS = 0x46c;
export const BDA_MIDNIGHT = 0x470;
export const BDA_HDD_STATUS = 0x474;
export const BDA_HDD_COUNT = 0x475;
export const BDA_KBD_START = 0x480;
export const BDA_KBD_END = 0x482;
export const BDA_VIDEO_ROWS = 0x484; // rows - 1

/** Ticks per day of the 18.2 Hz PIT tick (PC/AT BIOS: 0x1800B0). */
export const TICKS_PER_DAY = 0x1800b0;

export const COM1_PORT = 0x3f8;
export const CRTC_COLOR = 0x3d4;

export const TEXT_COLOR_BASE = 0xb8000;
export const TEXT_MONO_BASE = 0xb0000;
export const TEXT_PAGE_SIZE = 0x1000;
export const TEXT_ATTR = 0x07;

export const BOOT_SEGMENT = 0;
export const BOOT_OFFSET = 0x7c00;
export const BOOT_SIGNATURE_OFFSET = 0x1fe; // 0x55, 0xAA
export const SECTOR_SIZE = 512;

// ---- added for the complete BIOS (issue 4)

/** Extended BIOS data area: 1 KiB just below 640 KiB; its segment is at BDA 0x40E (RBIL MEMORY.LST). */
export const BDA_EBDA_SEGMENT = 0x40e;
export const EBDA_SIZE = 1024;
export const CONVENTIONAL_TOP = 0xa0000;
/** The system ROM area reserved in E820 (F0000-FFFFF: our stubs, tables and the reset vector). */
export const ROM_AREA_BASE = 0xf0000;
export const ROM_AREA_END = 0x100000;
export const ONE_MIB = 0x100000;

export const BDA_KBD_FLAGS2 = 0x418;
/** INT 15h AH=86h: user wait timeout (dword, µs) and wait-active flag (RBIL MEMORY.LST 40:9C, 40:A0). */
export const BDA_WAIT_TIMEOUT = 0x49c;
export const BDA_WAIT_FLAG = 0x4a0;
export const BDA_KBD_FLAGS3 = 0x496; // bit 1: last code was E0h; bit 4: 101/102-key keyboard
export const BDA_VIDEO_CHAR_HEIGHT = 0x485;
export const BDA_VIDEO_MODE_CTRL = 0x465;
export const BDA_VIDEO_PALETTE = 0x466;
export const BDA_SERIAL_TIMEOUT = 0x47c; // 4 bytes: COM1..COM4

/** System configuration table for INT 15h AH=C0h at its PC/AT address F000:E6F5. */
export const CONFIG_TABLE_OFFSET = 0xe6f5;
/** The INT 09h handler at its PC/AT address F000:E987 (runs in guest code: IN 60h, INT 15h/4Fh, EOI). */
export const KBD_IRQ_OFFSET = 0xe987;
/** ROM wait loops (`sti; hlt; cli; jmp far ...`) used by INT 16h and INT 15h/86h. */
export const WAIT_KEY_OFFSET = 0xe100;
export const WAIT_TIMER_OFFSET = 0xe110;
/** `out BIOS_CALL_PORT, al; iret` re-checking the INT 15h/86h deadline. */
export const WAIT_TIMER_RETRY_OFFSET = 0xe120;
/** INT 18h: message printed by the service, then `cli; hlt` here. */
export const NO_BOOT_OFFSET = 0xe130;

/** Service ids beyond the 256 vectors, for ROM entry points that are not IVT stubs. */
export const SERVICE_WAIT_TIMER_RETRY = 0x186;

export const PIC1_CMD = 0x20;
export const PIC1_DATA = 0x21;
export const PIC2_CMD = 0xa0;
export const PIC2_DATA = 0xa1;
export const PIT_CH0 = 0x40;
export const PIT_CMD = 0x43;
export const KBC_DATA = 0x60;
export const CMOS_INDEX = 0x70;
export const CMOS_DATA = 0x71;

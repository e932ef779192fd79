// A disk image backed by a host file, read and written sector by sector (the image is not
// loaded into memory, so large hard-disk images cost nothing until read). Host I/O errors
// come back as `false`, which the BIOS reports as an INT 13h status; nothing throws.
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import type { DiskBacking } from "./disk.js";

export class FileBacking implements DiskBacking {
  readonly size: number;
  private fd: number;

  /** Opens `file` read-only, or read-write when `writable`. Throws the host's error (a config problem). */
  constructor(readonly file: string, readonly writable: boolean) {
    this.fd = openSync(file, writable ? "r+" : "r");
    try {
      this.size = fstatSync(this.fd).size;
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  read(offset: number, out: Uint8Array): boolean {
    if (this.fd < 0) return false;
    try {
      let done = 0;
      while (done < out.length && offset + done < this.size) {
        const n = readSync(this.fd, out, done, out.length - done, offset + done);
        if (n <= 0) break;
        done += n;
      }
      if (done < out.length) out.fill(0, done);
      return true;
    } catch {
      return false;
    }
  }

  write(offset: number, src: Uint8Array): boolean {
    if (this.fd < 0 || !this.writable) return false;
    if (offset >= this.size) return true;
    const len = Math.min(src.length, this.size - offset);
    try {
      let done = 0;
      while (done < len) {
        const n = writeSync(this.fd, src, done, len - done, offset + done);
        if (n <= 0) return false;
        done += n;
      }
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    if (this.fd < 0) return;
    try { closeSync(this.fd); } catch { /* already gone */ }
    this.fd = -1;
  }
}

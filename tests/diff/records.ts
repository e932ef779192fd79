// Parses a guest's port-E9h stream into per-sequence records.
import { MAGIC_END, MAGIC_SEQ, R, RECORD_BYTES, RECORD_DWORDS } from "./layout.js";

export interface ParsedDump {
  /** Records by sequence number (a sequence that never reported is absent). */
  records: Map<number, Uint32Array>;
  /** The END marker was seen, with this sequence count. */
  endCount: number | null;
  /** Bytes that did not parse (a broken guest or a broken output path). */
  garbage: number;
}

export function parseDump(bytes: Uint8Array): ParsedDump {
  const out: ParsedDump = { records: new Map(), endCount: null, garbage: 0 };
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  while (p + 4 <= bytes.length) {
    const magic = dv.getUint32(p, true);
    if (magic === MAGIC_SEQ && p + RECORD_BYTES <= bytes.length) {
      const rec = new Uint32Array(RECORD_DWORDS);
      for (let i = 0; i < RECORD_DWORDS; i++) rec[i] = dv.getUint32(p + 4 * i, true);
      if (!out.records.has(rec[R.Seq])) out.records.set(rec[R.Seq], rec);
      p += RECORD_BYTES;
    } else if (magic === MAGIC_END && p + 8 <= bytes.length) {
      out.endCount = dv.getUint32(p + 4, true);
      p += 8;
    } else {
      out.garbage++;
      p++;
    }
  }
  out.garbage += bytes.length - p;
  return out;
}

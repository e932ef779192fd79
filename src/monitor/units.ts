// Sizes ("16M") and durations ("30s") as config files and the CLI write them.

const SIZE_RE = /^\s*(\d+)\s*([KMG]?)(i?B)?\s*$/i;
const SIZE_SHIFT: Record<string, number> = { "": 0, K: 10, M: 20, G: 30 };

/** Bytes from a number or a string with an optional K/M/G suffix (binary units); undefined if malformed. */
export function parseSize(v: number | string): number | undefined {
  if (typeof v === "number") return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  const m = SIZE_RE.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]) * 2 ** SIZE_SHIFT[m[2]!.toUpperCase()]!;
  return Number.isSafeInteger(n) ? n : undefined;
}

const DURATION_RE = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds from "500ms", "30s", "2m", "1h" or a bare number of seconds; undefined if malformed. */
export function parseDuration(v: number | string): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) && v >= 0 ? v * 1000 : undefined;
  const m = DURATION_RE.exec(v);
  if (!m) return undefined;
  return Number(m[1]) * DURATION_MS[m[2] ?? "s"]!;
}

export function formatSize(bytes: number): string {
  for (const [suffix, shift] of [["G", 30], ["M", 20], ["K", 10]] as const) {
    if (bytes >= 2 ** shift && bytes % 2 ** shift === 0) return `${bytes / 2 ** shift}${suffix}`;
  }
  return String(bytes);
}

/** Levenshtein distance, for "did you mean" suggestions on short key names. */
export function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The closest candidate within a small edit distance, or undefined. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) { best = c; bestD = d; }
  }
  return best;
}

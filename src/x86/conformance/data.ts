// Loading the SingleStepTests vectors (see ../shared/conformance/README.md):
// 8086 JSON.gz and 80286 MOO.gz, per-opcode metadata and the revocation list.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";

export type ConformanceSet = "8086" | "80286";

/** Register order of both formats: ax bx cx dx cs ss ds es sp bp si di ip flags. */
export const REG_NAMES = ["ax", "bx", "cx", "dx", "cs", "ss", "ds", "es", "sp", "bp", "si", "di", "ip", "flags"] as const;

export interface TestVector {
  index: number;
  name: string;
  /** Instruction bytes (80286: followed by the F4 that ends the test). */
  bytes: Uint8Array;
  initRegs: number[];
  initRam: Array<[number, number]>;
  /** Final registers, undefined where unchanged. */
  finalRegs: Array<number | undefined>;
  finalRam: Array<[number, number]>;
  /** 80286 EXCP chunk: vector and where FLAGS was pushed. */
  exception?: { vector: number; flagAddress: number };
  hash: string;
}

export class ConformanceDataError extends Error {
  constructor(file: string, detail: string) {
    super(`conformance data ${file}: ${detail}`);
    this.name = "ConformanceDataError";
  }
}

/** The repository root: the nearest directory above this module (or cwd) holding package.json. */
export function repoRoot(): string {
  const starts = [dirname(fileURLToPath(import.meta.url)), process.cwd()];
  for (const start of starts) {
    let d = resolve(start);
    for (;;) {
      if (existsSync(join(d, "package.json"))) return d;
      const up = dirname(d);
      if (up === d) break;
      d = up;
    }
  }
  return process.cwd();
}

/** The data directory (`<repo>/../shared/conformance`, or $HVKIT_CONFORMANCE_DIR), or null when absent. */
export function conformanceDir(): string | null {
  const env = process.env.HVKIT_CONFORMANCE_DIR;
  const dir = env ? resolve(env) : resolve(repoRoot(), "..", "shared", "conformance");
  return existsSync(join(dir, "README.md")) ? dir : null;
}

export function setDir(root: string, set: ConformanceSet): string {
  return set === "8086" ? join(root, "8086", "v1") : join(root, "80286", "v1_real_mode");
}

/** Test files of a set, sorted, as file names relative to setDir. */
export function listFiles(root: string, set: ConformanceSet): string[] {
  const ext = set === "8086" ? ".json.gz" : ".MOO.gz";
  const dir = setDir(root, set);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith(ext)).sort();
}

/** "80.3.MOO.gz" -> "80.3" */
export function opcodeOf(file: string): string {
  return file.replace(/\.(json|MOO)\.gz$/, "");
}

interface MetaEntry { status?: string; "flags-mask"?: number; reg?: Record<string, MetaEntry> }
export interface SetMetadata { opcodes: Record<string, MetaEntry> }

export function loadMetadata(root: string, set: ConformanceSet): SetMetadata {
  const file = join(setDir(root, set), "metadata.json");
  return JSON.parse(readFileSync(file, "utf8")) as SetMetadata;
}

/** The FLAGS mask for a file ("80.3" -> opcodes["80"].reg["3"]); 0xFFFF when all flags are defined. */
export function flagsMaskFor(meta: SetMetadata, opcode: string): number {
  const [op, reg] = opcode.split(".");
  let e = meta.opcodes[op.toUpperCase()] ?? meta.opcodes[op.toLowerCase()];
  if (e && reg !== undefined && e.reg) e = e.reg[reg];
  return e?.["flags-mask"] ?? 0xffff;
}

export function loadRevoked(root: string): Set<string> {
  const out = new Set<string>();
  const file = join(root, "80286", "revocation_list.txt");
  if (!existsSync(file)) return out;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const t = line.trim().toLowerCase();
    if (t && !t.startsWith("#")) out.add(t);
  }
  return out;
}

/** Load a test file; `maxTests` stops MOO parsing early (JSON is always parsed whole). */
export function loadFile(root: string, set: ConformanceSet, file: string, maxTests = Infinity): TestVector[] {
  const path = join(setDir(root, set), file);
  const raw = gunzipSync(readFileSync(path));
  return set === "8086" ? parse8086Json(raw, file) : parseMoo(raw, file, maxTests);
}

interface Json8086Test {
  name: string;
  bytes: number[];
  initial: { regs: Record<string, number>; ram: Array<[number, number]> };
  final: { regs: Record<string, number>; ram: Array<[number, number]> };
  test_hash?: string; hash?: string; test_num?: number; idx?: number;
}

export function parse8086Json(raw: Buffer, file: string): TestVector[] {
  const arr = JSON.parse(raw.toString("utf8")) as Json8086Test[];
  if (!Array.isArray(arr)) throw new ConformanceDataError(file, "not a JSON array");
  return arr.map((t, i) => ({
    index: t.test_num ?? t.idx ?? i,
    name: t.name,
    bytes: Uint8Array.from(t.bytes),
    initRegs: REG_NAMES.map((n) => t.initial.regs[n] ?? 0),
    initRam: t.initial.ram,
    finalRegs: REG_NAMES.map((n) => t.final.regs[n]),
    finalRam: t.final.ram,
    hash: (t.test_hash ?? t.hash ?? "").toLowerCase(),
  }));
}

function tag(v: DataView, at: number): string {
  return String.fromCharCode(v.getUint8(at), v.getUint8(at + 1), v.getUint8(at + 2), v.getUint8(at + 3));
}

function parseRegs(v: DataView, at: number, out: Array<number | undefined>): void {
  const mask = v.getUint16(at, true);
  let p = at + 2;
  for (let i = 0; i < 14; i++) {
    if (mask & (1 << i)) { out[i] = v.getUint16(p, true); p += 2; }
  }
}

function parseRam(v: DataView, at: number): Array<[number, number]> {
  const n = v.getUint32(at, true);
  const out: Array<[number, number]> = new Array(n);
  for (let i = 0, p = at + 4; i < n; i++, p += 5) out[i] = [v.getUint32(p, true), v.getUint8(p + 4)];
  return out;
}

/** Parse a MOO file: chunks of tag + u32 length + payload; unknown tags skipped. */
export function parseMoo(raw: Buffer, file: string, maxTests = Infinity): TestVector[] {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const tests: TestVector[] = [];
  let p = 0;
  if (raw.byteLength < 8 || tag(v, 0) !== "MOO ") throw new ConformanceDataError(file, "missing MOO header");
  while (p + 8 <= raw.byteLength && tests.length < maxTests) {
    const t = tag(v, p), len = v.getUint32(p + 4, true), body = p + 8;
    if (body + len > raw.byteLength) throw new ConformanceDataError(file, `chunk ${t} at ${p} overruns the file`);
    if (t === "TEST") tests.push(parseMooTest(v, body, len, file));
    p = body + len;
  }
  return tests;
}

function parseMooTest(v: DataView, at: number, len: number, file: string): TestVector {
  const end = at + len;
  const test: TestVector = {
    index: v.getUint32(at, true), name: "", bytes: new Uint8Array(0),
    initRegs: new Array(14).fill(0), initRam: [], finalRegs: new Array(14).fill(undefined), finalRam: [], hash: "",
  };
  let p = at + 4;
  while (p + 8 <= end) {
    const t = tag(v, p), l = v.getUint32(p + 4, true), b = p + 8;
    switch (t) {
      case "NAME": {
        const n = v.getUint32(b, true);
        test.name = Buffer.from(v.buffer, v.byteOffset + b + 4, n).toString("latin1");
        break;
      }
      case "BYTS": {
        const n = v.getUint32(b, true);
        test.bytes = new Uint8Array(v.buffer.slice(v.byteOffset + b + 4, v.byteOffset + b + 4 + n));
        break;
      }
      case "INIT": case "FINA": {
        let q = b;
        while (q + 8 <= b + l) {
          const st = tag(v, q), sl = v.getUint32(q + 4, true), sb = q + 8;
          if (st === "REGS") {
            if (t === "INIT") parseRegs(v, sb, test.initRegs as Array<number | undefined>);
            else parseRegs(v, sb, test.finalRegs);
          } else if (st === "RAM ") {
            if (t === "INIT") test.initRam = parseRam(v, sb); else test.finalRam = parseRam(v, sb);
          }
          q = sb + sl;
        }
        break;
      }
      case "EXCP":
        test.exception = { vector: v.getUint8(b), flagAddress: v.getUint32(b + 1, true) };
        break;
      case "HASH": {
        let h = "";
        for (let i = 0; i < 20; i++) h += v.getUint8(b + i).toString(16).padStart(2, "0");
        test.hash = h;
        break;
      }
      default: break;
    }
    p = b + l;
  }
  if (test.bytes.length === 0) throw new ConformanceDataError(file, `test ${test.index} has no BYTS chunk`);
  return test;
}

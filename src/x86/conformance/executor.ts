// Runs one SingleStepTests vector on an X86Cpu and compares the final state
// (README "Suggested runner"): registers under the undefined-flags mask, every
// final RAM byte (stacked FLAGS masked), and no stray writes.
import { X86Cpu } from "../cpu.js";
import { SparseMemory } from "../memory.js";
import { realModeState } from "../state.js";
import { CpuExitReason } from "../types.js";
import type { AccessSize, IoPorts, X86State } from "../types.js";
import { REG_NAMES } from "./data.js";
import type { ConformanceSet, TestVector } from "./data.js";

export const enum Outcome { Pass = 0, Fail = 1, Skip = 2 }

/** Port reads return all-ones, writes are ignored; interrupts are never pending (README step 3). */
const OPEN_BUS: IoPorts = {
  in: (_port: number, size: AccessSize) => (size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff),
  out: () => {},
};

const PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]);

export class ConformanceExecutor {
  readonly mem: SparseMemory;
  readonly cpu: X86Cpu;
  private readonly state: X86State = realModeState(0, 0);
  private readonly out: X86State = realModeState(0, 0);
  /** Why the last test failed or was skipped: a short kind ("reg:ax", "mem", "exc#6") and a detail line. */
  kind = "";
  detail = "";

  constructor(readonly set: ConformanceSet) {
    // 80286 set: 24-bit bus, A20 on. 8086 set: everything wraps at 1 MiB (README step 3).
    this.mem = new SparseMemory(set === "8086" ? 0xfffff : 0xffffff);
    this.cpu = new X86Cpu(this.mem, OPEN_BUS);
    this.cpu.a20Mask = set === "8086" ? 0xfffff : 0xffffffff;
  }

  run(t: TestVector, flagsMask: number, revoked: ReadonlySet<string>): Outcome {
    this.kind = ""; this.detail = "";
    if (t.hash && revoked.has(t.hash)) return this.skip("revoked", "hash in revocation list");
    const pre = this.knownDifference(t);
    if (pre) return this.skip(pre, "known 286/8086 vs 386 difference");

    const mem = this.mem, cpu = this.cpu, s = this.state;
    mem.clear();
    for (const [a, v] of t.initRam) mem.poke(a, v);
    const r = t.initRegs;
    s.eax = r[0]; s.ebx = r[1]; s.ecx = r[2]; s.edx = r[3];
    s.esp = r[8]; s.ebp = r[9]; s.esi = r[10]; s.edi = r[11];
    s.eip = r[12];
    s.eflags = (r[13] & 0x0fff) | 2; // bits 12-15 of the images were never held by the chip
    const segs = [s.cs, s.ss, s.ds, s.es];
    for (let i = 0; i < 4; i++) { segs[i].selector = r[4 + i]; segs[i].base = r[4 + i] << 4; segs[i].limit = 0xffff; }
    s.interruptibility = 0;
    cpu.setState(s);
    const ic = cpu.intercepts;
    // Exit on #SS (and on the 8086 set #GP) so the 386-only stack/wrap faults can be recognised.
    ic.exceptionBitmap = this.set === "8086" ? (1 << 12) | (1 << 13) : 1 << 12;

    let reason: CpuExitReason;
    if (this.set === "8086") {
      reason = cpu.run(1);
    } else {
      reason = CpuExitReason.Budget;
      for (let i = 0; i < 4 && reason === CpuExitReason.Budget; i++) reason = cpu.run(64);
    }
    if (reason === CpuExitReason.Exception) {
      const v = cpu.exit.vector;
      if (this.set === "8086" && (v === 12 || v === 13)) return this.skip("8086-wrap", "offset 0xFFFF wraps on the 8086, faults on a 386");
      if (this.set === "80286" && v === 12 && t.exception?.vector === 13) return this.skip("286-gp-vs-ss", "286 #GP where a 386 raises #SS");
      return this.fail(`exc#${v}`, `unexpected exception ${v}${t.exception ? `, expected ${t.exception.vector}` : ""}`);
    }
    if (this.set === "80286" && reason !== CpuExitReason.Halted) return this.fail("no-halt", `run ended with reason ${reason}`);
    if (reason === CpuExitReason.TripleFault) return this.fail("triple", "triple fault");

    cpu.getState(this.out);
    const o = this.out;
    const act = [o.eax, o.ebx, o.ecx, o.edx, o.cs.selector, o.ss.selector, o.ds.selector, o.es.selector,
      o.esp, o.ebp, o.esi, o.edi, o.eip, o.eflags];
    const bad: string[] = [];
    for (let i = 0; i < 14; i++) {
      const m = i === 13 ? 0x0fff & flagsMask : 0xffff;
      const exp = (t.finalRegs[i] ?? r[i]) & m;
      const got = act[i] & m;
      if (exp !== got) bad.push(`${REG_NAMES[i]} ${hex(got)}!=${hex(exp)}`);
    }
    if (bad.length > 0) {
      const regs = bad.map((b) => b.split(" ")[0]).join(",");
      return this.fail(`reg:${regs}`, bad.join(" "));
    }
    // Where FLAGS was pushed: SS:SP+4 of the expected final state (the EXCP flag_address is
    // sometimes one byte low in this data, so derive it from the three pushed words).
    const fa = t.exception ? ((((t.finalRegs[5] ?? r[5]) << 4) + (((t.finalRegs[8] ?? r[8]) + 4) & 0xffff)) & 0xffffff) : -1;
    const expected = new Map<number, number>();
    for (const [a, v] of t.finalRam) expected.set(a, v);
    for (const [a, v] of t.finalRam) {
      let m = 0xff;
      if (a === fa) m = flagsMask & 0xff;
      else if (a === fa + 1) m = (flagsMask >> 8) & 0x0f;
      const got = mem.read8(a);
      if ((got & m) !== (v & m)) return this.fail("mem", `[${hex(a)}] ${hex(got)}!=${hex(v)}`);
    }
    const init = new Map<number, number>(t.initRam);
    for (const a of mem.written) {
      if (expected.has(a)) continue;
      const before = init.get(a) ?? 0;
      if (mem.read8(a) !== before) return this.fail("mem-stray", `stray write [${hex(a)}]=${hex(mem.read8(a))}`);
    }
    return Outcome.Pass;
  }

  /** README "Known 286/8086 vs 386-class differences": tests a 386 model must not be held to. */
  private knownDifference(t: TestVector): string | null {
    const b = t.bytes;
    let i = 0, lock = false;
    while (i < b.length && PREFIXES.has(b[i])) { if (b[i] === 0xf0) lock = true; i++; }
    const op = b[i], modrm = b[i + 1] ?? 0;
    if (this.set === "8086") {
      // 8086 aliases: 8F ignores ModR/M reg (#UD on a 386); PUSH SP pushes the decremented SP.
      if (op === 0x8f && (modrm & 0x38) !== 0) return "8086-alias";
      if (op === 0xff && modrm === 0xf4) return "8086-push-sp"; // FF /6, mod 3, rm SP
      return null;
    }
    const ev = t.exception?.vector;
    if (ev === 13 && b.length >= 12) return "286-length";
    if (lock && !lockableMem(op, modrm)) return "286-lock";
    if ((op === 0x8c || op === 0x8e) && ((modrm >> 3) & 7) >= 4 && ((modrm >> 3) & 7) <= 5) return "286-fs-gs";
    return null;
  }

  private skip(kind: string, detail: string): Outcome { this.kind = kind; this.detail = detail; return Outcome.Skip; }
  private fail(kind: string, detail: string): Outcome { this.kind = kind; this.detail = detail; return Outcome.Fail; }
}

function lockableMem(op: number, modrm: number): boolean {
  if ((modrm & 0xc0) === 0xc0) return false;
  const reg = (modrm >> 3) & 7;
  if (op < 0x40) return (op & 7) < 2 && (op >> 3) !== 7;
  if (op >= 0x80 && op <= 0x83) return reg !== 7;
  if (op === 0x86 || op === 0x87) return true;
  if (op === 0xf6 || op === 0xf7) return reg === 2 || reg === 3;
  if (op === 0xfe || op === 0xff) return reg < 2;
  return false;
}

function hex(v: number): string { return (v >>> 0).toString(16); }

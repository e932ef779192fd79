// Builds one test guest: NASM source for a 64 KiB BIOS ROM whose body (copied to
// linear BODY at reset) sets up the mode, then runs every generated sequence and
// dumps a fixed-size record per sequence to port E9h. Assembled with `nasm -f bin`.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BODY, BODY_MAX, DEBUGCON_PORT, ESP0, EXIT_PORT, EXTRA_DWORDS, LDT_BASE, MAGIC_END, MAGIC_SEQ, NEXT, NO_VECTOR,
  PAE_PD, PAE_PDPT, PAE_PT0, PAE_PT1, PD, PT0, PT1, R, RECORD_BYTES, RING0_ESP, ROM_SIZE, SAVE, SCRATCH_SIZE,
  GDT_BASE, GDT_SEGMENTS, SETUP_SP, STACK, Sel, TSS1, TSS2,
} from "./layout.js";
import { Prng } from "./prng.js";
import type { Sequence } from "./seq.js";

/** real: real mode, 16-bit code. pm16/pm32: protected mode, ring 0. paging: pm32 + 2-level paging. pae: pm32 + PAE paging. */
export type Mode = "real" | "pm16" | "pm32" | "paging" | "pae";

/** One generated test family; see variants.ts. */
export interface Variant {
  readonly name: string;
  readonly mode: Mode;
  /** Core features the variant exercises beyond real mode ("protected mode", "paging", "fpu"). */
  readonly needs: readonly string[];
  /** Whether the default test suite asserts zero unexplained disagreements for it. */
  readonly asserted: boolean;
  readonly seqsPerGuest: number;
  /** Where the record's extra dwords come from: [linear address, dword count], EXTRA_DWORDS in total. */
  readonly extras: ReadonlyArray<readonly [number, number]>;
  /** The extras are the stack window below ESP0 (a fault frame there is masked by the comparer). */
  readonly extrasAreStack: boolean;
  /** Extra setup lines run once after the mode is entered (ring 0, flat DS/ES in protected mode). */
  readonly setup?: readonly string[];
  generate(rng: Prng, seq: number): Sequence;
}

export interface InsnMeta { asm: string; addr: number; bytes: number[]; undefBefore: number; suspectBefore: number }
export interface SeqMeta { index: number; note: string; insns: InsnMeta[]; endAddr: number; undefEnd: number; suspectEnd: number; seq: Sequence }
export interface Guest {
  variant: Variant;
  seed: number;
  image: Uint8Array;
  /** sha256 of the image, hex. */
  hash: string;
  seqs: SeqMeta[];
}

/** Raised when NASM is missing or rejects generated source (a generator bug). */
export class AssembleError extends Error {
  constructor(message: string) { super(message); this.name = "AssembleError"; }
}

const hex = (v: number): string => "0x" + (v >>> 0).toString(16);
const SAVEF = (f: number): string => hex(SAVE + f * 4);

/** Vectors that push an error code in protected mode (SDM Vol. 3A table 6-1). */
const ERR_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17]);
/** Vectors whose IDT gate has DPL 3 (reachable by INT n from ring 3). */
const USER_VECTORS = new Set([3, 4, 0x40, 0x41, 0x42]);

function desc(base: number, limit: number, access: number, flags: number): string {
  const b = [
    limit & 0xff, (limit >>> 8) & 0xff, base & 0xff, (base >>> 8) & 0xff, (base >>> 16) & 0xff,
    access, ((limit >>> 16) & 0x0f) | (flags << 4), (base >>> 24) & 0xff,
  ];
  return "db " + b.map(hex).join(", ");
}

/** Segment descriptors come from layout.ts (GDT_SEGMENTS); gates, TSSes and the LDT are written here. */
function gdt(): string[] {
  const system: Record<number, string> = {
    [Sel.null]: desc(0, 0, 0, 0),
    [Sel.tss1]: desc(TSS1, 0x67, 0x89, 0),
    [Sel.callGate3]: "dw gate_target, 0x08, 0xec00, 0", // call gate DPL3, no parameters
    [Sel.callGateParams]: "dw gate_target_params, 0x08, 0xec02, 0", // call gate DPL3, 2 dword parameters
    [Sel.ldt]: desc(LDT_BASE, 0x17, 0x82, 0),
    [Sel.tss2]: desc(TSS2, 0x67, 0x89, 0),
    [Sel.taskGate]: "dw 0, 0xa0, 0xe500, 0", // task gate to TSS2, DPL3
  };
  const out = ["gdt:"];
  for (let sel = 0; sel < Sel.beyondLimit; sel += 8) {
    const seg = GDT_SEGMENTS.get(sel);
    const line = seg ? desc(seg.base, seg.limit, seg.access, seg.flags) : system[sel];
    if (line === undefined) throw new Error(`GDT selector ${hex(sel)} is not described`);
    out.push(line);
  }
  out.push(
    "gdt_end:",
    "gdt_ptr: dw gdt_end - gdt - 1",
    `dd ${hex(GDT_BASE)}`,
  );
  return out;
}

function idt(bits: 16 | 32): string[] {
  const out = ["idt:"];
  for (let v = 0; v < 256; v++) {
    if (v === 0x43) { out.push("dw 0, 0xa0, 0xe500, 0"); continue; } // task gate to TSS2
    const dpl = USER_VECTORS.has(v) ? 0x6000 : 0;
    if (bits === 32) out.push(`dw stub_${v}, ${hex(Sel.code32)}, ${hex(0x8e00 | dpl)}, 0`);
    else out.push(`dw stub_${v}, ${hex(Sel.code16)}, ${hex(0x8600 | dpl)}, 0`);
  }
  out.push("idt_end:", "idt_ptr: dw idt_end - idt - 1", "dd idt");
  return out;
}

interface ModeInfo { bits: 16 | 32; stk: number; scr: number; pm: boolean }
function modeInfo(mode: Mode): ModeInfo {
  switch (mode) {
    case "real": return { bits: 16, stk: STACK >>> 4, scr: 0x2000, pm: false };
    case "pm16": return { bits: 16, stk: Sel.stack16, scr: Sel.scratch, pm: true };
    default: return { bits: 32, stk: Sel.stack32, scr: Sel.scratch, pm: true };
  }
}

/** Extras copy: only flag-preserving instructions (MOV, LEA, LOOP), so the EFLAGS read afterwards is the sequence's. */
function extrasCode(v: Variant, m: ModeInfo, tag: string): string[] {
  const out = ["mov edi, 0"];
  let total = 0;
  v.extras.forEach(([lin, n], i) => {
    total += n;
    if (m.pm) out.push(`mov ax, ${hex(Sel.data32)}`, "mov ds, ax", `mov esi, ${hex(lin)}`);
    else out.push(`mov ax, ${hex(lin >>> 4)}`, "mov ds, ax", `mov esi, ${hex(lin & 0xf)}`);
    out.push(
      `mov ecx, ${n}`,
      `x_${tag}_${i}: mov eax, [esi]`,
      `mov [ss:edi+${hex(SAVE + R.Extra * 4)}], eax`,
      "lea esi, [esi+4]", "lea edi, [edi+4]",
      `loop x_${tag}_${i}`,
    );
  });
  if (total !== EXTRA_DWORDS) throw new Error(`variant ${v.name}: extras cover ${total} dwords, not ${EXTRA_DWORDS}`);
  return out;
}

function routines(v: Variant, m: ModeInfo): string[] {
  const W = m.bits === 16 ? "word" : "dword";
  const gprs = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
  const saveGprs = (withEsp: boolean): string[] =>
    gprs.filter((r) => withEsp || r !== "esp").map((r) => `mov [ss:${SAVEF(R.Eax + gprs.indexOf(r))}], ${r}`);
  const saveSeg = (s: string, f: number): string[] => [`mov ax, ${s}`, `mov [ss:${SAVEF(f)}], eax`];
  const out: string[] = [];
  // fill: xorshift32 from EAX over the scratch area (DS) and the stack window below ESP0; returns through EBP.
  const xs = ["mov edx, eax", "shl edx, 13", "xor eax, edx", "mov edx, eax", "shr edx, 17", "xor eax, edx", "mov edx, eax", "shl edx, 5", "xor eax, edx"];
  out.push(
    "fill:", "mov edi, 0", `mov ecx, ${SCRATCH_SIZE / 4}`,
    "fill_a:", ...xs, "mov [edi], eax", "add edi, 4", "loop fill_a",
    // The stack window covers 50h bytes on both sides of ESP0: pops read defined data too.
    `mov edi, ${hex(ESP0 - 0x50)}`, "mov ecx, 40",
    "fill_b:", ...xs, "mov [ss:edi], eax", "add edi, 4", "loop fill_b",
    m.bits === 16 ? "jmp bp" : "jmp ebp",
  );
  // dump: the normal end of a sequence.
  out.push(
    "dump:", ...saveGprs(true), "mov eax, 0",
    ...saveSeg("es", R.Es), ...saveSeg("cs", R.Cs), ...saveSeg("ss", R.Ss), ...saveSeg("ds", R.Ds),
    ...saveSeg("fs", R.Fs), ...saveSeg("gs", R.Gs),
    ...extrasCode(v, m, "d"),
    m.bits === 16 ? "pushfd" : "pushfd", `pop dword [ss:${SAVEF(R.Eflags)}]`,
    "jmp dump_tail",
  );
  // fault: entered from stub_N with the vector and an error code (real or dummy) on the stack.
  if (m.bits === 16) {
    out.push(
      "fault:", ...saveGprs(false), "mov eax, 0",
      "pop ax", `mov [ss:${SAVEF(R.Vector)}], eax`,
      "pop ax", `mov [ss:${SAVEF(R.ErrorCode)}], eax`,
      "pop ax", `mov [ss:${SAVEF(R.FaultEip)}], eax`,
      "pop ax", `mov [ss:${SAVEF(R.Cs)}], eax`,
      // The 16-bit frame holds FLAGS only; EFLAGS 31:16 are as the handler sees them (SDM 20.1.4, 6.12.1).
      "pop ax", "pushfd", "pop ebx", "and ebx, 0xffff0000", "or eax, ebx", `mov [ss:${SAVEF(R.Eflags)}], eax`,
      `mov [ss:${SAVEF(R.Esp)}], esp`, "mov eax, 0",
      ...saveSeg("ss", R.Ss), ...saveSeg("es", R.Es), ...saveSeg("ds", R.Ds), ...saveSeg("fs", R.Fs), ...saveSeg("gs", R.Gs),
      ...extrasCode(v, m, "f"),
      "jmp dump_tail",
    );
  } else {
    out.push(
      "fault:", ...saveGprs(false),
      "pop eax", `mov [ss:${SAVEF(R.Vector)}], eax`,
      "pop eax", `mov [ss:${SAVEF(R.ErrorCode)}], eax`,
      "pop eax", `mov [ss:${SAVEF(R.FaultEip)}], eax`,
      "pop eax", "and eax, 0xffff", `mov [ss:${SAVEF(R.Cs)}], eax`,
      "pop eax", `mov [ss:${SAVEF(R.Eflags)}], eax`,
      // From ring 3 the frame also holds the outer ESP and SS (SDM 6.12.1, figure 6-4).
      `test byte [ss:${SAVEF(R.Cs)}], 3`, "jz fault_same",
      "pop eax", `mov [ss:${SAVEF(R.Esp)}], eax`,
      "pop eax", "and eax, 0xffff", `mov [ss:${SAVEF(R.Ss)}], eax`, "jmp fault_segs",
      "fault_same:", `mov [ss:${SAVEF(R.Esp)}], esp`, "mov eax, 0", ...saveSeg("ss", R.Ss),
      "fault_segs:", "mov eax, 0",
      ...saveSeg("es", R.Es), ...saveSeg("ds", R.Ds), ...saveSeg("fs", R.Fs), ...saveSeg("gs", R.Gs),
      ...extrasCode(v, m, "f"),
      "jmp dump_tail",
    );
  }
  // dump_tail: control registers, scratch checksum, then the record to port E9h.
  out.push(
    "dump_tail:",
    "mov eax, cr0", `mov [ss:${SAVEF(R.Cr0)}], eax`,
    "mov eax, cr2", `mov [ss:${SAVEF(R.Cr2)}], eax`,
    "mov eax, cr3", `mov [ss:${SAVEF(R.Cr3)}], eax`,
    `mov ax, ${hex(m.scr)}`, "mov ds, ax", "mov esi, 0", "mov eax, 0", `mov ecx, ${SCRATCH_SIZE / 4}`,
    "sum_l: rol eax, 5", "xor eax, [esi]", "add esi, 4", "loop sum_l",
    `mov [ss:${SAVEF(R.ScratchSum)}], eax`,
    `mov dword [ss:${SAVEF(R.Magic)}], ${hex(MAGIC_SEQ)}`,
    "mov esi, 0", `mov ecx, ${RECORD_BYTES}`, `mov dx, ${hex(DEBUGCON_PORT)}`,
    `out_l: mov al, [ss:esi+${hex(SAVE)}]`, "out dx, al", "inc esi", "loop out_l",
    `mov ax, ${hex(m.stk)}`, "mov ss, ax", `mov esp, ${hex(ESP0)}`,
    `jmp ${W} [ss:${hex(NEXT)}]`,
  );
  // Exception and interrupt stubs: push a dummy error code where the CPU pushes none.
  const push = m.bits === 16 ? "push word" : "push dword";
  for (let vec = 0; vec < 256; vec++) {
    if (vec === 0x40 || vec === 0x41) continue;
    const hasErr = m.pm && ERR_VECTORS.has(vec);
    out.push(`stub_${vec}:` + (hasErr ? "" : ` ${push} 0\n`) + ` ${push} ${vec}\n jmp fault`);
  }
  // INT 40h/41h return: they count in the record's aux field and IRET (SDM Vol. 2 INT n, IRET).
  const iret = m.bits === 16 ? "iret" : "iretd";
  out.push(`stub_64: inc dword [ss:${SAVEF(R.Aux)}]`, iret);
  out.push(`stub_65: add dword [ss:${SAVEF(R.Aux)}], 0x100`, iret);
  // Call-gate targets and task-2 entries (the GDT names them in every protected-mode guest; only 32-bit guests use them).
  if (m.pm) {
    out.push(`gate_target: add dword [ss:${SAVEF(R.Aux)}], 0x10000`, "retf");
    out.push("gate_target_params: mov eax, [esp+8]", `add [ss:${SAVEF(R.Aux)}], eax`, "mov eax, [esp+12]", `add [ss:${SAVEF(R.Aux)}], eax`, "retf 8");
    out.push("task2_entry: jmp dump");
    // Back to the calling task through the back link (EFLAGS.NT, SDM 7.3).
    out.push(`task2_iret: add dword [ss:${SAVEF(R.Aux)}], 0x1000000`, "iretd");
  }
  return out;
}

function setup(v: Variant, m: ModeInfo): string[] {
  const out = ["bits 16", "entry:", "cli", "cld", "xor ax, ax", "mov ds, ax", "mov es, ax", "mov ss, ax", `mov sp, ${hex(SETUP_SP)}`];
  if (!m.pm) {
    out.push("mov si, ivt_image", "mov di, 0", "mov cx, 256", "rep movsd");
    out.push(...(v.setup ?? []), "jmp seq_0", "ivt_image:");
    for (let vec = 0; vec < 256; vec++) out.push(`dw stub_${vec}, 0`);
    return out;
  }
  // The GDT runs from a fixed address so the records can show descriptor bytes (busy bits).
  out.push("mov si, gdt", `mov di, ${hex(GDT_BASE)}`, "mov cx, (gdt_end - gdt) / 2", "rep movsw");
  out.push("lgdt [gdt_ptr]", "lidt [idt_ptr]", "mov eax, cr0", "or al, 1", "mov cr0, eax");
  if (m.bits === 16) out.push(`jmp ${hex(Sel.code16)}:pm_entry`, "pm_entry:");
  else out.push(`jmp ${hex(Sel.code32)}:pm_entry`, "bits 32", "pm_entry:");
  out.push(
    `mov ax, ${hex(Sel.data32)}`, "mov ds, ax", "mov es, ax", "mov fs, ax", "mov gs, ax",
    `mov ax, ${hex(m.stk)}`, "mov ss, ax", `mov esp, ${hex(RING0_ESP)}`,
    // TSS1: SS0:ESP0 for ring changes, I/O map base beyond the limit (SDM 7.2.1, 19.5.2).
    `mov edi, ${hex(TSS1)}`, "mov ecx, 0x60", "mov eax, 0", "rep stosd",
    `mov dword [${hex(TSS1 + 4)}], ${hex(RING0_ESP)}`, `mov dword [${hex(TSS1 + 8)}], ${hex(Sel.stack32)}`,
    `mov word [${hex(TSS1 + 0x66)}], 0x68`,
    `mov ax, ${hex(Sel.tss1)}`, "ltr ax",
    // LDT: 04 scratch data, 0C scratch DPL3, 14 code32.
    `mov eax, [${hex(GDT_BASE + Sel.scratch)}]`, `mov [${hex(LDT_BASE)}], eax`, `mov eax, [${hex(GDT_BASE + Sel.scratch + 4)}]`, `mov [${hex(LDT_BASE + 4)}], eax`,
    `mov eax, [${hex(GDT_BASE + Sel.scratchDpl3)}]`, `mov [${hex(LDT_BASE + 8)}], eax`, `mov eax, [${hex(GDT_BASE + Sel.scratchDpl3 + 4)}]`, `mov [${hex(LDT_BASE + 12)}], eax`,
    `mov eax, [${hex(GDT_BASE + Sel.code32)}]`, `mov [${hex(LDT_BASE + 16)}], eax`, `mov eax, [${hex(GDT_BASE + Sel.code32 + 4)}]`, `mov [${hex(LDT_BASE + 20)}], eax`,
    `mov ax, ${hex(Sel.ldt)}`, "lldt ax",
  );
  if (v.mode === "paging") {
    out.push(
      `mov edi, ${hex(PD)}`, "mov ecx, 3072", "mov eax, 0", "rep stosd",
      `mov edi, ${hex(PT0)}`, "mov eax, 7", "mov ecx, 1024",
      "pt0_l: stosd", "add eax, 0x1000", "loop pt0_l",
      `mov dword [${hex(PD)}], ${hex(PT0 | 7)}`, `mov dword [${hex(PD + 4)}], ${hex(PT1 | 7)}`,
      `mov eax, ${hex(PD)}`, "mov cr3, eax", `mov [${hex(TSS1 + 0x1c)}], eax`,
      "mov eax, cr4", "or eax, 0x10", "mov cr4, eax",
      "mov eax, cr0", "or eax, 0x80000000", "mov cr0, eax",
    );
  } else if (v.mode === "pae") {
    out.push(
      `mov edi, ${hex(PAE_PDPT)}`, "mov ecx, 4096", "mov eax, 0", "rep stosd",
      `mov dword [${hex(PAE_PDPT)}], ${hex(PAE_PD | 1)}`,
      `mov dword [${hex(PAE_PD)}], ${hex(PAE_PT0 | 7)}`, `mov dword [${hex(PAE_PD + 8)}], ${hex(PAE_PT1 | 7)}`,
      `mov edi, ${hex(PAE_PT0)}`, "mov eax, 7", "mov ecx, 512",
      "pt0_l: stosd", "add edi, 4", "add eax, 0x1000", "loop pt0_l",
      `mov eax, ${hex(PAE_PDPT)}`, "mov cr3, eax", `mov [${hex(TSS1 + 0x1c)}], eax`,
      "mov eax, cr4", "or eax, 0x30", "mov cr4, eax",
      "mov eax, cr0", "or eax, 0x80000000", "mov cr0, eax",
    );
  }
  out.push(...(v.setup ?? []), "jmp seq_0");
  return out;
}

function sequenceCode(v: Variant, m: ModeInfo, n: number, s: Sequence, fillSeed: number): string[] {
  const W = m.bits === 16 ? "word" : "dword";
  const out = [
    `seq_${n}:`,
    `mov ax, ${hex(m.stk)}`, "mov ss, ax", `mov esp, ${hex(ESP0)}`,
    `mov ${W} [ss:${hex(NEXT)}], seq_${n + 1}`,
    `mov dword [ss:${SAVEF(R.Seq)}], ${n}`,
    `mov dword [ss:${SAVEF(R.Vector)}], ${hex(NO_VECTOR)}`,
    `mov dword [ss:${SAVEF(R.ErrorCode)}], 0`,
    `mov dword [ss:${SAVEF(R.FaultEip)}], 0`,
    `mov dword [ss:${SAVEF(R.Aux)}], 0`,
    `mov ax, ${hex(m.scr)}`, "mov ds, ax", "mov es, ax", "mov fs, ax", "mov gs, ax",
    "mov eax, 0", "mov cr2, eax",
    `mov eax, ${hex(fillSeed || 1)}`, `mov ebp, seq_${n}_f`, "jmp fill",
    `seq_${n}_f:`,
    ...s.pre,
  ];
  const regs = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
  regs.forEach((r, i) => { if (r !== "esp") out.push(`mov ${r}, ${hex(s.regs[i])}`); });
  out.push(`push dword ${hex(s.eflags)}`, "popfd");
  s.insns.forEach((insn, k) => out.push(`s_${n}_${k}: ${insn.asm}`));
  out.push(`s_${n}_e:`, ...s.post, "jmp dump", ...s.tail);
  return out;
}

function endCode(m: ModeInfo, count: number): string[] {
  const out = [`seq_${count}:`, `mov dx, ${hex(DEBUGCON_PORT)}`];
  for (const v of [MAGIC_END, count]) for (let i = 0; i < 4; i++) out.push(`mov al, ${hex((v >>> (8 * i)) & 0xff)}`, "out dx, al");
  out.push(`mov dx, ${hex(EXIT_PORT)}`, "mov eax, 0", "out dx, eax", "cli", "end_l: hlt", "jmp end_l");
  void m;
  return out;
}

/** The NASM source of a guest and its sequences (before assembly). */
export function guestSource(v: Variant, seed: number, mapPath: string): { source: string; seqs: Sequence[] } {
  const m = modeInfo(v.mode);
  const rng = new Prng(seed);
  const seqs: Sequence[] = [];
  const lines = [`[map symbols ${mapPath}]`, `section body start=0 vstart=${hex(BODY)}`, ...setup(v, m), `bits ${m.bits}`];
  lines.push(...routines(v, m));
  if (m.pm) lines.push("align 8", ...gdt(), "align 8", ...idt(m.bits));
  for (let n = 0; n < v.seqsPerGuest; n++) {
    const fillSeed = rng.u32();
    const s = v.generate(rng, n);
    seqs.push(s);
    lines.push(...sequenceCode(v, m, n, s, fillSeed));
  }
  lines.push(...endCode(m, v.seqsPerGuest), "body_end:");
  lines.push(
    "section stub start=0xff00 vstart=0xff00", "bits 16",
    // Copy the body from ROM (F000:0) to RAM and run it there, where it can be written.
    "stub: cli", "cld", "mov ax, 0xf000", "mov ds, ax", "xor ax, ax", "mov es, ax", "xor si, si",
    `mov di, ${hex(BODY)}`, `mov ecx, ${BODY_MAX / 4}`, "rep movsd", "jmp 0:entry",
    "section reset start=0xfff0 vstart=0xfff0", "jmp 0xf000:stub", "times 16-($-$$) db 0",
  );
  return { source: lines.join("\n") + "\n", seqs };
}

function parseMap(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^\s*([0-9A-F]+)\s+([0-9A-F]+)\s+(\S+)\s*$/.exec(line);
    if (m) out.set(m[3], parseInt(m[2], 16));
  }
  return out;
}

/** Generate and assemble one guest. Deterministic in (variant, seed). */
export function buildGuest(v: Variant, seed: number): Guest {
  const dir = mkdtempSync(join(tmpdir(), "hvkit-diff-"));
  try {
    const asmPath = join(dir, "g.asm"), binPath = join(dir, "g.bin"), mapPath = join(dir, "g.map");
    const { source, seqs } = guestSource(v, seed, mapPath);
    writeFileSync(asmPath, source);
    try {
      execFileSync("nasm", ["-f", "bin", "-o", binPath, asmPath], { stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      const text = err.stderr?.toString() ?? err.message;
      writeFileSync(join(tmpdir(), `hvkit-diff-failed-${v.name}-${seed}.asm`), source);
      throw new AssembleError(`nasm failed on ${v.name} seed ${hex(seed)} (source kept in ${tmpdir()}): ${text.slice(0, 2000)}`);
    }
    const image = new Uint8Array(readFileSync(binPath));
    if (image.length !== ROM_SIZE) throw new AssembleError(`${v.name} seed ${hex(seed)}: image is ${image.length} bytes, not ${ROM_SIZE}`);
    const syms = parseMap(readFileSync(mapPath, "utf8"));
    const end = syms.get("body_end") ?? 0;
    if (end - BODY > BODY_MAX) throw new AssembleError(`${v.name} seed ${hex(seed)}: body is ${end - BODY} bytes, over ${BODY_MAX}; lower seqsPerGuest`);
    const metas: SeqMeta[] = seqs.map((s, n) => {
      const endAddr = syms.get(`s_${n}_e`) ?? 0;
      const insns = s.insns.map((insn, k) => {
        const addr = syms.get(`s_${n}_${k}`) ?? 0;
        const next = k + 1 < s.insns.length ? syms.get(`s_${n}_${k + 1}`) ?? endAddr : endAddr;
        const bytes = Array.from(image.subarray(addr - BODY, Math.min(next, addr + 16) - BODY));
        return { asm: insn.asm, addr, bytes, undefBefore: s.undefBefore[k], suspectBefore: s.suspectBefore[k] };
      });
      return { index: n, note: s.note, insns, endAddr, undefEnd: s.undefEnd, suspectEnd: s.suspectEnd, seq: s };
    });
    return { variant: v, seed, image, hash: createHash("sha256").update(image).digest("hex"), seqs: metas };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

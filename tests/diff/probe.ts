// Debugging aid: run one hand-written sequence on both QEMU and hvkit and print both records.
//   npx tsx tests/diff/probe.ts [--mode real|pm16|pm32|paging|pae] [--eflags 0x2] "insn" "insn" ...
import { buildGuest } from "./guest.js";
import type { Mode, Variant } from "./guest.js";
import { runHvkit } from "./hvkit.js";
import { ESP0, FIELD_NAMES, STACK } from "./layout.js";
import { runQemu } from "./qemu.js";
import { parseDump } from "./records.js";

const args = process.argv.slice(2);
let mode: Mode = "real", eflags = 0x2;
const insns: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--mode") mode = args[++i] as Mode;
  else if (args[i] === "--eflags") eflags = Number(args[++i]);
  else insns.push(args[i]);
}
const v: Variant = {
  name: "probe", mode, needs: [], asserted: false, seqsPerGuest: 1, extras: [[STACK + ESP0 - 0x50, 20]], extrasAreStack: true,
  generate: () => ({ pre: [], regs: [0x11111111, 0x22222222, 0x33333333, 0x44444444, 0, 0x66666666, 0x77777777, 0x88888888], eflags, insns: insns.map((asm) => ({ asm })), undefBefore: insns.map(() => 0), undefEnd: 0, suspectBefore: insns.map(() => 0), suspectEnd: 0, post: [], tail: [], note: "probe" }),
};
const g = buildGuest(v, 1);
const h = runHvkit(g.image);
const q = await runQemu(g.image, 0, { timeoutMs: 20000, cacheDir: null });
const qr = parseDump(q.output).records.get(0), hr = parseDump(h.output).records.get(0);
console.log(`qemu ${q.status} ${q.detail}; hvkit ${h.status} ${h.detail}`);
for (let i = 2; i < FIELD_NAMES.length; i++) {
  const a = qr?.[i], b = hr?.[i];
  console.log(`${FIELD_NAMES[i].padEnd(11)} ${a?.toString(16).padStart(8)} ${b?.toString(16).padStart(8)}${a !== b ? "  <--" : ""}`);
}

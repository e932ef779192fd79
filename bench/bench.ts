// `npm run bench`: prints figures, asserts nothing (DEVELOPERS.md: no timing in tests).
// Run from the tsup build (vitest's module runner slows cross-module calls ~4x,
// toolchain notes §7).
import "reflect-metadata";
import { X86Cpu, FlatMemory, realModeState } from "../src/x86/index.js";
import type { IoPorts } from "../src/x86/index.js";
import { PioBus } from "../src/monitor/bus.js";
import { ConsoleRecorder, VmConsole } from "../src/monitor/console.js";
import { createMachine } from "../src/monitor/machine.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { benchPaging } from "./paging.js";
import { measureMips } from "./mips.js";
import { tmpdir } from "node:os";
import { join } from "node:path";

const NO_IO: IoPorts = { in: () => 0xffffffff, out: () => {} };

/**
 * A CPU-bound real-mode loop at 1000:0000 (ALU, memory and a LOOP branch):
 *   xor ax,ax; mov cx,0
 * top: add ax,cx; xor bx,ax; inc si; mov [di],ax; mov dx,[di]; shl dx,1; loop top; jmp top
 */
const LOOP = [
  0x31, 0xc0, 0xb9, 0x00, 0x00,
  0x01, 0xc8, 0x31, 0xc3, 0x46, 0x89, 0x05, 0x8b, 0x15, 0xd1, 0xe2, 0xe2, 0xf3, 0xeb, 0xf1,
];

function benchCore(rounds: number, instructions: number): void {
  const mem = new FlatMemory(1 << 20);
  mem.bytes.set(LOOP, 0x10000);
  const cpu = new X86Cpu(mem, NO_IO);
  cpu.setState(realModeState(0x1000, 0));
  measureMips(cpu, "real-mode ALU/memory/LOOP guest", rounds, instructions);
}

const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
console.log(`hvkit bench (node ${process.version})`);
benchCore(rounds, 50_000_000);
benchPaging(rounds, 50_000_000);

/** PIO bus dispatch: claimed writes and unclaimed reads per second. */
function benchBus(n: number): void {
  const bus = new PioBus();
  let sink = 0;
  bus.insert({ space: "pio", base: 0x3f8, length: 8 }, {
    name: "scratch", read: (o) => o, write: (_o, _s, v) => { sink ^= v; },
  });
  let t0 = performance.now();
  for (let i = 0; i < n; i++) bus.write(0x3f8 + (i & 7), 1, i);
  const claimed = n / ((performance.now() - t0) / 1000);
  t0 = performance.now();
  for (let i = 0; i < n; i++) sink ^= bus.read(0x80, 1);
  const unclaimed = n / ((performance.now() - t0) / 1000);
  console.log(`bus: ${(claimed / 1e6).toFixed(1)} M claimed PIO writes/s, ${(unclaimed / 1e6).toFixed(1)} M unclaimed reads/s (${sink & 1})`);
}

/** The demo machine: assemble configs/hello.yaml, run to the banner, type "q", run to the halt. */
async function benchHello(): Promise<void> {
  const console_ = new VmConsole();
  const rec = new ConsoleRecorder(console_);
  const t0 = performance.now();
  const m = await createMachine("configs/hello.yaml", { console: console_ });
  const built = performance.now();
  const running = m.run({ timeoutMs: 30_000 });
  await Promise.race([rec.waitFor("hvkit demo guest"), running]);
  const banner = performance.now();
  console_.type("q");
  const r = await running;
  const end = performance.now();
  const exits = Object.entries(m.stats().exits).map(([k, v]) => `${k} ${v}`).join(", ");
  console.log(`hello: assemble ${(built - t0).toFixed(1)} ms, banner after ${(banner - built).toFixed(1)} ms, `
    + `${r.reason} after ${(end - built).toFixed(1)} ms; exits: ${exits}`);
  await m.dispose();
}

/**
 * The exit path through every layer: a boot sector doing `out 0xe9, al` in a loop of
 * 0xFFFF iterations, `loops` times, then `cli; hlt`. Each OUT is one io exit: world switch,
 * exit decoding in the backend, bus dispatch to the debug port, completion at the next run.
 */
async function benchExits(backend: string, loops: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "hvkit-bench-"));
  try {
    const img = new Uint8Array(1474560);
    img.set([
      0xfa,                   // cli
      0xbb, loops, 0x00,      // mov bx, loops
      0xb9, 0xff, 0xff,       // outer: mov cx, 0xffff
      0xe6, 0xe9,             // inner: out 0xe9, al
      0xe2, 0xfc,             // loop inner
      0x4b,                   // dec bx
      0x75, 0xf6,             // jnz outer
      0xf4,                   // hlt (IF = 0: the run stops "halted")
    ], 0);
    img[510] = 0x55; img[511] = 0xaa;
    writeFileSync(join(dir, "exits.img"), img);
    // debugcon output goes nowhere: the console has no sink here, and devices-lpc's
    // debug port is the device the exits reach.
    writeFileSync(join(dir, "exits.yaml"), [
      `backend: ${backend}`, "memory: 2M", "plugins:", "  - use: realmode",
      "    options: { mode: native, disks: [{ drive: 0, file: exits.img }] }", "  - use: devices-lpc", "",
    ].join("\n"));
    const m = await createMachine(join(dir, "exits.yaml"), { console: new VmConsole() });
    const t0 = performance.now();
    const r = await m.run({ timeoutMs: 120_000 });
    const s = (performance.now() - t0) / 1000;
    const st = m.stats();
    const io = st.exits["io"] ?? 0;
    const sys = st.syscalls?.["io"] ?? 0;
    console.log(`exits (${backend}): ${r.reason}; ${io} io exits in ${s.toFixed(2)} s = ${(io / s / 1000).toFixed(1)} k exits/s`
      + (io > 0 ? `, ${(sys / io).toFixed(1)} syscalls/exit` : ""));
    await m.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

benchBus(20_000_000);
await benchHello().catch((e: unknown) => console.log(`hello: not run: ${(e as Error).message}`));
for (const b of ["vmx", "svm"]) {
  await benchExits(b, 4).catch((e: unknown) => console.log(`exits (${b}): not run: ${(e as Error).message}`));
}

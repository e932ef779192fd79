// The core-throughput measurement both CPU benchmarks share: warm up, then time `rounds`
// runs of `instructions` each and print the median in millions of instructions per second.
import { CpuExitReason } from "../src/x86/index.js";
import type { X86Cpu } from "../src/x86/index.js";

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Prints "core: <label>: N MIPS median ..." or, when the loop leaves early, why the figure is not valid. */
export function measureMips(cpu: X86Cpu, label: string, rounds: number, instructions: number): void {
  cpu.run(1_000_000); // warm up the JIT
  const mips: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    const reason = cpu.run(instructions);
    const ns = Number(process.hrtime.bigint() - t0);
    if (reason !== CpuExitReason.Budget) {
      console.log(`core: ${label}: the loop stopped early (reason ${reason}, exit vector ${cpu.exit.vector}); figure not valid`);
      return;
    }
    mips.push((instructions / ns) * 1000);
  }
  console.log(
    `core: ${label}: ${median(mips).toFixed(1)} MIPS median of ${rounds} ` +
      `(min ${Math.min(...mips).toFixed(1)}, max ${Math.max(...mips).toFixed(1)}; ${instructions / 1e6}M instructions each)`,
  );
}

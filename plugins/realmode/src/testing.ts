// Test support for the realmode plugin's tests: an in-memory GuestMemory, a recording
// Console, and a minimal backend that runs real mode in an X86Cpu with HLT, CPUID and port
// I/O intercepted (what the native mode expects from a VMX/SVM backend).
import { EventEmitter } from "eventemitter3";
import type {
  Console, ConsoleEvents, GuestMemory, HltExit, IoExit, PreemptExit, ShutdownExit, UnhandledExit, VcpuBackend,
  VcpuEvent, VmExit, X86State,
} from "../../../src/monitor/api.js";
import { StateParts } from "../../../src/monitor/api.js";
import { CpuExitReason } from "../../../src/x86/types.js";
import { X86Cpu } from "../../../src/x86/cpu.js";
import { resetState } from "../../../src/x86/state.js";
import { copyParts } from "./emulate.js";
import type { PortAccess } from "./bios/ports.js";
import type { AccessSize } from "../../../src/x86/types.js";

export class TestMemory implements GuestMemory {
  readonly bytes: Uint8Array;
  constructor(readonly size: number) { this.bytes = new Uint8Array(size); }
  read8(a: number): number { return a >= 0 && a < this.size ? this.bytes[a]! : 0xff; }
  read16(a: number): number { return this.read8(a) | (this.read8(a + 1) << 8); }
  read32(a: number): number { return (this.read16(a) | (this.read16(a + 2) << 16)) >>> 0; }
  write8(a: number, v: number): void { if (a >= 0 && a < this.size) this.bytes[a] = v; }
  write16(a: number, v: number): void { this.write8(a, v & 0xff); this.write8(a + 1, (v >>> 8) & 0xff); }
  write32(a: number, v: number): void { this.write16(a, v & 0xffff); this.write16(a + 2, v >>> 16); }
  writeBytes(a: number, b: Uint8Array): boolean {
    if (a < 0 || a + b.length > this.size) return false;
    this.bytes.set(b, a);
    return true;
  }
  readInto(a: number, buf: Uint8Array, off: number, n: number): boolean {
    if (a < 0 || off < 0 || a + n > this.size || off + n > buf.length) return false;
    for (let i = 0; i < n; i++) buf[off + i] = this.bytes[a + i]!;
    return true;
  }
  writeFrom(a: number, buf: Uint8Array, off: number, n: number): boolean {
    if (a < 0 || off < 0 || a + n > this.size || off + n > buf.length) return false;
    for (let i = 0; i < n; i++) this.bytes[a + i] = buf[off + i]!;
    return true;
  }
  readBytes(a: number, n: number): Uint8Array | undefined {
    return a < 0 || a + n > this.size ? undefined : this.bytes.slice(a, a + n);
  }
  text(a: number, chars: number): string {
    let s = "";
    for (let i = 0; i < chars; i++) s += String.fromCharCode(this.read8(a + 2 * i));
    return s;
  }
}

export class TestConsole implements Console {
  readonly events = new EventEmitter<ConsoleEvents>();
  readonly out = new Map<string, string>();
  private listeners: Array<(b: number) => void> = [];
  write(source: string, byte: number): void {
    this.out.set(source, (this.out.get(source) ?? "") + String.fromCharCode(byte));
  }
  output(source: string): string { return this.out.get(source) ?? ""; }
  onInput(l: (b: number) => void): () => void {
    this.listeners.push(l);
    return () => { this.listeners = this.listeners.filter((x) => x !== l); };
  }
  type(bytes: Uint8Array | string): void {
    const arr = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    for (const b of arr) for (const l of this.listeners) l(b);
  }
}

/** Holds state only; its run() reports that no engine is attached (used under emulate mode). */
export class StateOnlyBackend implements VcpuBackend {
  readonly id = "state-only";
  readonly state: X86State = resetState();
  runs = 0;
  private readonly exit: UnhandledExit = { kind: "unhandled", code: 0, message: "no engine attached in this test" };
  run(): VmExit { this.runs++; return this.exit; }
  getState(): X86State { return this.state; }
  setState(s: X86State, parts: number = StateParts.All): void { copyParts(this.state, s, parts); }
  inject(): void {}
  setInterruptWindow(): void {}
}

/** Real mode in an X86Cpu, exits like a hardware backend: the exiting instruction completes at the next run. */
export class CpuBackend implements VcpuBackend {
  readonly id = "test-cpu";
  readonly cpu: X86Cpu;
  private readonly st: X86State = resetState();
  private pendingLen = -1;
  private readonly io: IoExit = { kind: "io", port: 0, size: 1, in: false, data: 0 };
  private readonly hlt: HltExit = { kind: "hlt", interruptsEnabled: false };
  private readonly preempt: PreemptExit = { kind: "preempt" };
  private readonly shutdown: ShutdownExit = { kind: "shutdown", reason: "triple-fault" };
  private readonly other: UnhandledExit = { kind: "unhandled", code: 0, message: "" };

  constructor(mem: GuestMemory, private readonly budget = 100_000) {
    this.cpu = new X86Cpu(mem, { in: () => 0xffffffff, out: () => {} });
    this.cpu.intercepts.ioAll = true;
    this.cpu.intercepts.hlt = true;
  }

  run(): VmExit {
    if (this.pendingLen >= 0) {
      this.cpu.getState(this.st);
      if (this.io.in && this.pendingLen > 0 && this.lastWasIo) {
        const d = this.io.data;
        this.st.eax = this.io.size === 1 ? ((this.st.eax & ~0xff) | (d & 0xff)) >>> 0
          : this.io.size === 2 ? ((this.st.eax & ~0xffff) | (d & 0xffff)) >>> 0 : d >>> 0;
      }
      this.st.eip = (this.st.eip + this.pendingLen) & 0xffff;
      this.cpu.setState(this.st);
      this.pendingLen = -1;
    }
    const ev = this.pendingEvent;
    if (ev) {
      this.pendingEvent = undefined;
      this.cpu.deliverEvent(ev.type, ev.vector, ev.errorCode ?? 0, ev.errorCode !== undefined);
    }
    const r = this.cpu.run(this.budget);
    const x = this.cpu.exit;
    this.lastWasIo = false;
    switch (r) {
      case CpuExitReason.Io:
        this.io.port = x.ioPort; this.io.size = x.ioSize; this.io.in = x.ioIn;
        this.cpu.getState(this.st);
        this.io.data = x.ioIn ? 0 : x.ioSize === 1 ? this.st.eax & 0xff : x.ioSize === 2 ? this.st.eax & 0xffff : this.st.eax;
        this.pendingLen = x.instrLen;
        this.lastWasIo = true;
        return this.io;
      case CpuExitReason.Hlt:
        this.cpu.getState(this.st);
        this.hlt.interruptsEnabled = (this.st.eflags & 0x200) !== 0;
        this.pendingLen = x.instrLen;
        return this.hlt;
      case CpuExitReason.Budget: return this.preempt;
      case CpuExitReason.TripleFault: return this.shutdown;
      default:
        this.other.code = r;
        this.other.message = `cpu exit ${r}`;
        return this.other;
    }
  }
  private lastWasIo = false;
  getState(): X86State { this.cpu.getState(this.st); return this.st; }
  setState(s: X86State, parts: number = StateParts.All): void {
    if (s !== this.st) { this.cpu.getState(this.st); copyParts(this.st, s, parts); }
    this.cpu.setState(this.st);
  }
  /** Queued like a hardware backend's event injection: delivered at the next entry, after the exit completes. */
  inject(e: VcpuEvent): void { this.pendingEvent = e; }
  private pendingEvent: VcpuEvent | undefined;
  setInterruptWindow(): void {}
}

/** A recording fake for tests: a register file per port with optional read handlers. */
export class FakePorts implements PortAccess {
  readonly writes: Array<[number, number]> = [];
  readonly values = new Map<number, number>();
  readonly readers = new Map<number, () => number>();
  readonly writers = new Map<number, (v: number) => void>();
  in(port: number, size: AccessSize): number {
    const r = this.readers.get(port);
    if (r) return r();
    return this.values.get(port) ?? (size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff);
  }
  out(port: number, _size: AccessSize, value: number): void {
    this.writes.push([port, value]);
    const w = this.writers.get(port);
    if (w) w(value);
  }
}

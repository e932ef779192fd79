import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { VcpuBackend } from "../../../src/monitor/api.js";
import { StateParts } from "../../../src/monitor/api.js";
import { EventType } from "../../../src/x86/types.js";
import { Bios } from "./bios/bios.js";
import { DiskImage } from "./bios/disk.js";
import { FLAG_CF } from "./bios/frame.js";
import { BiosCallGate } from "./bios/gate.js";
import { TEXT_COLOR_BASE } from "./bios/layout.js";
import { BOOT_SP, BootError, RealmodeBoot } from "./boot.js";
import { EmulatedBiosVcpu } from "./emulate.js";
import { NativeBiosVcpu } from "./native.js";
import { CpuBackend, StateOnlyBackend, TestConsole, TestMemory } from "./testing.js";

const HELLO = new Uint8Array(readFileSync(fileURLToPath(new URL("../../../tests/guests/hello.img", import.meta.url))));
const COM1 = 0x3f8;

function sector(code: number[]): Uint8Array {
  const d = new Uint8Array(512);
  d.set(code);
  d[510] = 0x55; d[511] = 0xaa;
  return d;
}

type Mode = "native" | "emulate";

function machine(mode: Mode, image: Uint8Array, drive = 0) {
  const mem = new TestMemory(2 * 1024 * 1024);
  const console = new TestConsole();
  const bios = new Bios(mem, console, { disks: [new DiskImage(drive, image)], bootDrive: drive });
  const gate = new BiosCallGate(bios, mem);
  const inner = mode === "native" ? new CpuBackend(mem) : new StateOnlyBackend();
  const vcpu: VcpuBackend = mode === "native" ? new NativeBiosVcpu(inner, gate) : new EmulatedBiosVcpu(inner, mem, gate);
  new RealmodeBoot(bios).boot(vcpu, mem);
  return { mem, console, vcpu, inner, gate };
}

/**
 * The monitor's part: a run loop with a polled COM1 (THR writes recorded, LSR always THRE)
 * that types the next input chunk whenever the guest waits for a key.
 */
function runLoop(vcpu: VcpuBackend, console: TestConsole, input: string[], maxExits = 20_000) {
  let uart = "";
  let lcr = 0;
  let waits = 0;
  const pending = [...input];
  for (let i = 0; i < maxExits; i++) {
    const e = vcpu.run();
    switch (e.kind) {
      case "io":
        if (e.in) e.data = e.port === COM1 + 5 ? 0x60 : 0xff;
        else if (e.port === COM1 + 3) lcr = e.data;
        else if (e.port === COM1 && (lcr & 0x80) === 0) uart += String.fromCharCode(e.data);
        break;
      case "hlt":
        if (!e.interruptsEnabled) return { stop: "halted", uart, waits };
        waits++;
        if (pending.length === 0) return { stop: "waiting", uart, waits };
        console.type(pending.shift()!);
        break;
      case "preempt":
      case "cpuid":
        break;
      default:
        return { stop: e.kind, uart, waits };
    }
  }
  return { stop: "too many exits", uart, waits };
}

describe.each<Mode>(["emulate", "native"])("%s mode", (mode) => {
  it("runs hello.img: banner through the BIOS and COM1, echoes keys through the BIOS, halts on q", () => {
    const { vcpu, console, mem, inner } = machine(mode, HELLO);
    const r = runLoop(vcpu, console, ["h", "i\r", "q"]);
    expect(r.stop).toBe("halted");
    expect(console.output("bios-tty")).toBe("hvkit demo guest\r\nhi\r\nbye\r\n");
    expect(r.uart).toBe("hvkit demo guest on COM1\r\nbye\r\n");
    expect(r.waits).toBe(3);
    expect(mem.text(TEXT_COLOR_BASE, 16)).toBe("hvkit demo guest");
    expect(mem.text(TEXT_COLOR_BASE + 160, 2)).toBe("hi");
    expect(mem.text(TEXT_COLOR_BASE + 320, 3)).toBe("bye");
    if (mode === "emulate") expect((inner as StateOnlyBackend).runs).toBe(0);
  });

  it("keeps returning the wait exit without moving the guest until a key arrives", () => {
    // xor ax,ax ; int 16h ; cli ; hlt
    const { vcpu, console } = machine(mode, sector([0x31, 0xc0, 0xcd, 0x16, 0xfa, 0xf4]));
    let e = vcpu.run();
    expect(e).toMatchObject({ kind: "hlt", interruptsEnabled: true });
    const eip = vcpu.getState(StateParts.Basic).eip;
    e = vcpu.run();
    expect(e).toMatchObject({ kind: "hlt", interruptsEnabled: true });
    expect(vcpu.getState(StateParts.Basic).eip).toBe(eip);
    console.type("z");
    e = vcpu.run();
    expect(e).toMatchObject({ kind: "hlt", interruptsEnabled: false });
    expect(vcpu.getState(StateParts.Gprs).eax & 0xffff).toBe(0x2c7a);
  });

  it("returns CF=1 and AH=04h to the guest for a read past the disk's geometry", () => {
    // mov ax,0201h ; mov cx,0050h (sector 80) ; xor dx,dx ; mov bx,8000h ; int 13h ; cli ; hlt
    const code = [0xb8, 0x01, 0x02, 0xb9, 0x50, 0x00, 0x31, 0xd2, 0xbb, 0x00, 0x80, 0xcd, 0x13, 0xfa, 0xf4];
    const { vcpu } = machine(mode, sector(code));
    expect(vcpu.run()).toMatchObject({ kind: "hlt", interruptsEnabled: false });
    const s = vcpu.getState(StateParts.All);
    expect((s.eax >>> 8) & 0xff).toBe(0x04);
    expect(s.eflags & FLAG_CF).toBe(FLAG_CF);
  });

  it("runs a guest's own handler for a vector it hooked", () => {
    // mov word [0x180], 0x7c14 ; mov word [0x182], 0 ; int 60h ; cli ; hlt ; (pad) ; handler: mov ax,1234h ; iret
    const code = [0xc7, 0x06, 0x80, 0x01, 0x14, 0x7c, 0xc7, 0x06, 0x82, 0x01, 0x00, 0x00, 0xcd, 0x60, 0xfa, 0xf4,
      0x90, 0x90, 0x90, 0x90, 0xb8, 0x34, 0x12, 0xcf];
    const { vcpu } = machine(mode, sector(code));
    expect(vcpu.run()).toMatchObject({ kind: "hlt", interruptsEnabled: false });
    const s = vcpu.getState(StateParts.All);
    expect(s.eax & 0xffff).toBe(0x1234);
    expect(s.esp & 0xffff).toBe(BOOT_SP); // the handler's IRET popped the frame
  });

  it("services a call that a hooked vector chains to the BIOS stub (pushf; call far)", () => {
    // Hook INT 11h: handler does pushf ; call far [old] ; iret. Old vector saved at 0:0500.
    // mov ax,[0x44] ; mov [0x500],ax ; mov ax,[0x46] ; mov [0x502],ax
    // mov word [0x44], 0x7c20 ; mov word [0x46], 0 ; int 11h ; cli ; hlt
    const code = [0xa1, 0x44, 0x00, 0xa3, 0x00, 0x05, 0xa1, 0x46, 0x00, 0xa3, 0x02, 0x05,
      0xc7, 0x06, 0x44, 0x00, 0x20, 0x7c, 0xc7, 0x06, 0x46, 0x00, 0x00, 0x00, 0xcd, 0x11, 0xfa, 0xf4];
    const handler = [0x9c, 0xff, 0x1e, 0x00, 0x05, 0xcf];
    const img = sector(code);
    img.set(handler, 0x20);
    const { vcpu, mem, gate } = machine(mode, img);
    expect(vcpu.run()).toMatchObject({ kind: "hlt", interruptsEnabled: false });
    expect(vcpu.getState(StateParts.Gprs).eax & 0xffff).toBe(mem.read16(0x410));
    expect(gate.calls).toBeGreaterThan(0);
  });
});

describe.each<Mode>(["emulate", "native"])("%s mode, guest loops through the BIOS", (mode) => {
  it("hands the monitor a preempt when an #UD handler (the BIOS stub) returns to the faulting instruction forever", () => {
    const { vcpu } = machine(mode, sector([0x0f, 0x0b])); // ud2
    expect(vcpu.run()).toMatchObject({ kind: "preempt" });
    expect(vcpu.run()).toMatchObject({ kind: "preempt" });
  });

  it("waits for a key in the ROM loop with interrupts on, so an interrupt is taken during the wait", () => {
    // xor ax,ax ; int 16h ; cli ; hlt -- while it waits, a timer interrupt (vector 08h) arrives
    const { vcpu, mem, console } = machine(mode, sector([0x31, 0xc0, 0xcd, 0x16, 0xfa, 0xf4]));
    expect(vcpu.run()).toMatchObject({ kind: "hlt", interruptsEnabled: true });
    vcpu.inject({ type: EventType.ExtInt, vector: 0x08 });
    for (let i = 0; i < 4; i++) {
      const e = vcpu.run();
      if (e.kind === "io") continue; // the stub's EOI to port 20h
      expect(e).toMatchObject({ kind: "hlt", interruptsEnabled: true });
      break;
    }
    expect(mem.read32(0x46c)).toBe(1); // INT 08h ran inside the wait
    console.type("k");
    let e = vcpu.run();
    while (e.kind === "io") e = vcpu.run();
    expect(e).toMatchObject({ kind: "hlt", interruptsEnabled: false });
    expect(vcpu.getState(StateParts.Gprs).eax & 0xffff).toBe(0x256b);
  });
});

describe("emulate mode", () => {
  it("returns CPUID as an exit and commits the monitor's answer at the next run", () => {
    // xor eax,eax ; cpuid ; cli ; hlt
    const { vcpu } = machine("emulate", sector([0x66, 0x31, 0xc0, 0x0f, 0xa2, 0xfa, 0xf4]));
    const e = vcpu.run();
    expect(e).toMatchObject({ kind: "cpuid", leaf: 0 });
    if (e.kind !== "cpuid") return;
    e.eax = 1; e.ebx = 0x756e6547; e.ecx = 0x6c65746e; e.edx = 0x49656e69;
    expect(vcpu.run()).toMatchObject({ kind: "hlt", interruptsEnabled: false });
    const s = vcpu.getState(StateParts.Gprs);
    expect([s.eax, s.ebx, s.ecx, s.edx]).toEqual([1, 0x756e6547, 0x6c65746e, 0x49656e69]);
  });

  it("completes an IN with the monitor's data in AL", () => {
    // mov dx,3FDh ; in al,dx ; cli ; hlt
    const { vcpu } = machine("emulate", sector([0xba, 0xfd, 0x03, 0xec, 0xfa, 0xf4]));
    const e = vcpu.run();
    expect(e).toMatchObject({ kind: "io", port: 0x3fd, in: true, size: 1 });
    if (e.kind === "io") e.data = 0x5a;
    vcpu.run();
    expect(vcpu.getState(StateParts.Gprs).eax & 0xff).toBe(0x5a);
  });

  it("runs REP OUTSB as one io exit per byte, stepping SI and CX", () => {
    // mov si,7C0Dh ; mov cx,3 ; mov dx,3F8h ; rep outsb ; cli ; hlt ; "abc"
    const code = [0xbe, 0x0d, 0x7c, 0xb9, 0x03, 0x00, 0xba, 0xf8, 0x03, 0xf3, 0x6e, 0xfa, 0xf4, 0x61, 0x62, 0x63];
    const { vcpu } = machine("emulate", sector(code));
    let out = "";
    for (let e = vcpu.run(); e.kind === "io"; e = vcpu.run()) {
      expect([e.port, e.in, e.size]).toEqual([0x3f8, false, 1]);
      out += String.fromCharCode(e.data);
    }
    expect(out).toBe("abc");
    const s = vcpu.getState(StateParts.Gprs);
    expect([s.ecx & 0xffff, s.esi & 0xffff]).toEqual([0, 0x7c10]);
  });

  it("turns the timeslice into a preempt exit", () => {
    const mem = new TestMemory(2 * 1024 * 1024);
    const console = new TestConsole();
    const bios = new Bios(mem, console, { disks: [new DiskImage(0, sector([0xeb, 0xfe]))], bootDrive: 0 });
    const vcpu = new EmulatedBiosVcpu(new StateOnlyBackend(), mem, new BiosCallGate(bios, mem), 1000);
    new RealmodeBoot(bios).boot(vcpu, mem);
    expect(vcpu.run()).toEqual({ kind: "preempt" });
  });

  it("hands the state to the inner backend once CR0.PE is set and delegates from then on", () => {
    const { vcpu, inner } = machine("emulate", sector([0xeb, 0xfe]));
    const s = vcpu.getState(StateParts.All);
    s.cr0 |= 1;
    s.eax = 0xabcd;
    vcpu.setState(s, StateParts.All);
    const st = inner as StateOnlyBackend;
    expect(st.state.cr0 & 1).toBe(1);
    expect(st.state.eax).toBe(0xabcd);
    expect(vcpu.run()).toMatchObject({ kind: "unhandled" });
    expect(st.runs).toBe(1);
    expect((vcpu as EmulatedBiosVcpu).delegatedToInner).toBe(true);
  });
});

describe("boot", () => {
  it("leaves the vCPU at 0000:7C00 with DL = boot drive, SS:SP 0000:7C00 and IF=1", () => {
    const { vcpu } = machine("emulate", sector([0xeb, 0xfe]), 0x80);
    const s = vcpu.getState(StateParts.All);
    expect([s.cs.selector, s.eip, s.edx & 0xff, s.ss.selector, s.esp]).toEqual([0, 0x7c00, 0x80, 0, BOOT_SP]);
    expect(s.eflags & 0x200).toBe(0x200);
    expect(s.cr0 & 1).toBe(0);
  });

  it("refuses to boot a disk without the 0x55AA signature", () => {
    expect(() => machine("emulate", new Uint8Array(512))).toThrow(BootError);
  });
});

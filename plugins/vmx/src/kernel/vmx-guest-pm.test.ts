// tests/guests/vmx-exits-pm.asm through the real kernel and soft engine: this test plays the
// monitor with syscalls (as vmx-guest.test.ts does for the real-mode part). The guest enters
// protected mode with paging, then each step exits and the test checks every information
// field the SDM defines for it (Vol. 3C 28.2: basic reason, qualification, instruction
// length and information, guest-linear address, interruption information and error code,
// IDT-vectoring information and error code, RIP) and what the guest saw (CR read shadows,
// CR2, its own #PF/#DB handlers). Task switches are performed with the monitor's
// TaskSwitchAssist, as the VMX backend does, and the resulting guest state is checked.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { GuestControlWord, ObjType, SysErr } from "../../../../src/kernel/api.js";
import { TaskSwitchAssist, type GuestMemory, type TaskGateEvent } from "../../../../src/monitor/api.js";
import type { EventType, SegmentReg, TaskSwitchSource, X86State } from "../../../../src/x86/types.js";
import { guestControlWords, guestEntry, testMachine, withVmcs, writeRealModeGuest } from "../testing/machine.js";
import { ExitReason, F, IntrInfo, Proc, Proc2, SEGMENT_FIELDS } from "../vmcs-fields.js";
import { SOFT_CAPS } from "./caps.js";

const here = dirname(fileURLToPath(import.meta.url));
const IMAGE = readFileSync(join(here, "../../../../tests/guests/vmx-exits-pm.img"));
const ORG = 0x7c00;
// The guest's constants (vmx-exits-pm.asm).
const TSS1 = 0x20, TSS2 = 0x28, TSS3 = 0x30, BAD_SEL_ERR = 0x1238;
const PD = 0x2000, FS_BASE = 0x50000, RO_PAGE = 0x40000, NP_PAGE = 0x41000, OFF = 0x100;
const STACK2 = 0x6000, STACK3 = 0x5000, CR2_MARK = 0xc2c2c2c2;
const CR0_TS = 8, CR0_MP = 2, CR0_CD = 0x40000000, CR4_OSFXSR = 0x200, NT = 1 << 14;

const V = IntrInfo.Valid >>> 0, ERR = IntrInfo.DeliverErrorCode;
const hwExc = (vector: number, err: boolean) => (V | (3 << 8) | (err ? ERR : 0) | vector) >>> 0;

// SDM 28.2.5 tables 28-10/28-11: field builders.
const scale = (s: number) => s;
const asz32 = 1 << 7, regForm = 1 << 10, osz32 = 1 << 11;
const seg = (s: number) => s << 15;
const index = (r: number) => r << 18, noIndex = 1 << 22;
const base = (r: number) => r << 23, noBase = 1 << 27;
const id = (n: number) => n << 28;
const reg1 = (r: number) => r << 3;
const ES = 0, SS = 2, DS = 3, FS = 4;
const EAX = 0, ECX = 1, EDX = 2, EBX = 3, ESP = 4, EBP = 5, ESI = 6, EDI = 7;

/** The exit fields read after each entry. */
interface Exit {
  reason: number; qual: number; len: number; info: number; linear: number;
  intr: number; intrErr: number; vect: number; vectErr: number; rip: number;
}
/** What one step exits with; fields left out are not defined for that exit and not checked. */
type Expect = Partial<Omit<Exit, "rip">> & { reason: number; len: number };

/** Task switches are performed (TaskSwitchAssist); ICEBP is re-injected; everything else is skipped (RIP = next). */
type Action = "skip" | "switch" | "inject";
interface Step { what: string; exit: Expect; action?: Action }

const DESC = (reason: number, len: number, qual: number, info: number): Expect => ({ reason, len, qual, info: info >>> 0 });
const VMXI = DESC;
const reg2 = (r: number) => r << 28;
const CR = (len: number, qual: number): Expect => ({ reason: ExitReason.CrAccess, len, qual });
const TS = (sel: number, source: number, len: number, vect = 0, vectErr?: number): Expect =>
  ({ reason: ExitReason.TaskSwitch, len, qual: (sel | (source << 30)) >>> 0, vect, ...(vectErr !== undefined ? { vectErr } : {}) });
const CALL = 0, IRET = 1, JMP = 2, GATE = 3;

const STEPS: Step[] = [
  { what: "VMCALL (ready)", exit: { reason: ExitReason.Vmcall, len: 3 } },
  { what: "SGDT [ebx+esi*4+10h]", exit: DESC(ExitReason.GdtrIdtr, 5, 0x10,
    scale(2) | asz32 | osz32 | seg(DS) | index(ESI) | base(EBX) | id(0)) },
  { what: "o16 SIDT [es:ebp-8]", exit: DESC(ExitReason.GdtrIdtr, 6, 0xfffffff8,
    asz32 | seg(ES) | noIndex | base(EBP) | id(1)) },
  { what: "LGDT [bx+si+20h] (67h)", exit: DESC(ExitReason.GdtrIdtr, 5, 0x20,
    osz32 | seg(DS) | index(ESI) | base(EBX) | id(2)) },
  { what: "LIDT [fs:eax]", exit: DESC(ExitReason.GdtrIdtr, 4, 0,
    asz32 | osz32 | seg(FS) | noIndex | base(EAX) | id(3)) },
  { what: "SLDT ecx", exit: DESC(ExitReason.LdtrTr, 3, 0, regForm | reg1(ECX) | id(0)) },
  { what: "STR [esp+8]", exit: DESC(ExitReason.LdtrTr, 5, 8, asz32 | seg(SS) | noIndex | base(ESP) | id(1)) },
  { what: "LLDT dx", exit: DESC(ExitReason.LdtrTr, 3, 0, regForm | reg1(EDX) | id(2)) },
  { what: "LTR [edi*2+100h]", exit: DESC(ExitReason.LdtrTr, 8, 0x100,
    scale(1) | asz32 | seg(DS) | index(EDI) | noBase | id(3)) },
  { what: "MOV DS, bad selector: #GP(selector)", exit: { reason: ExitReason.ExceptionOrNmi, len: 0, intr: hwExc(13, true), intrErr: BAD_SEL_ERR, vect: 0 } },
  { what: "CLTS (TS masked, shadow 1)", exit: CR(2, 0 | (2 << 4)) },
  { what: "LMSW ax", exit: CR(3, 0 | (3 << 4) | (0x000b << 16)) },
  { what: "LMSW [fs:ebx+4]", exit: { ...CR(5, 0 | (3 << 4) | (1 << 6) | (0x0003 << 16)), linear: FS_BASE + OFF + 4 } },
  { what: "MOV CR0, esi", exit: CR(3, 0 | (0 << 4) | (ESI << 8)) },
  { what: "MOV CR3, ecx", exit: CR(3, 3 | (0 << 4) | (ECX << 8)) },
  { what: "MOV edx, CR3", exit: CR(3, 3 | (1 << 4) | (EDX << 8)) },
  { what: "MOV CR4, ebp", exit: CR(3, 4 | (0 << 4) | (EBP << 8)) },
  { what: "INVLPG [fs:ebx+10h]", exit: { reason: ExitReason.Invlpg, len: 5, qual: FS_BASE + OFF + 0x10 } },
  { what: "ICEBP", exit: { reason: ExitReason.ExceptionOrNmi, len: 1, intr: (V | (5 << 8) | 1) >>> 0, vect: 0 }, action: "inject" },
  { what: "VMCALL (checkpoint: CR shadows, #DB)", exit: { reason: ExitReason.Vmcall, len: 3 } },
  { what: "MOV [RO_PAGE], eax: #PF that exits (mask/match A)", exit: { reason: ExitReason.ExceptionOrNmi, len: 0, qual: RO_PAGE, intr: hwExc(14, true), intrErr: 3, vect: 0 } },
  { what: "VMCALL (checkpoint: delivered #PF)", exit: { reason: ExitReason.Vmcall, len: 3 } },
  { what: "MOV eax, [NP_PAGE+8]: #PF that exits (mask/match B)", exit: { reason: ExitReason.ExceptionOrNmi, len: 0, qual: NP_PAGE + 8, intr: hwExc(14, true), intrErr: 0, vect: 0 } },
  { what: "VMCALL (checkpoint: delivered #PF)", exit: { reason: ExitReason.Vmcall, len: 3 } },
  { what: "JMP TSS2:0", exit: TS(TSS2, JMP, 7), action: "switch" },
  { what: "CALL TSS1:0 (task 2)", exit: TS(TSS1, CALL, 7), action: "switch" },
  { what: "IRET with NT (task 1)", exit: TS(TSS2, IRET, 1), action: "switch" },
  { what: "INT 40h through a task gate (task 2)", exit: TS(TSS1, GATE, 2, (V | (4 << 8) | 0x40) >>> 0), action: "switch" },
  { what: "#GP through IDT task gate 13 (task 1)", exit: TS(TSS3, GATE, 0, hwExc(13, true), BAD_SEL_ERR), action: "switch" },
  { what: "IRET with NT (task 3)", exit: TS(TSS1, IRET, 1), action: "switch" },
  { what: "XSETBV (CR4.OSXSAVE set)", exit: { reason: ExitReason.Xsetbv, len: 3, qual: 0 } },
  // VMX instructions: tables 28-13 (VMCLEAR VMPTRLD VMPTRST VMXON), 28-14 (VMREAD VMWRITE), 28-9 (INVEPT INVVPID).
  { what: "VMPTRLD [ebx+ecx*8+20h]", exit: VMXI(ExitReason.Vmptrld, 5, 0x20, scale(3) | asz32 | seg(DS) | index(ECX) | base(EBX)) },
  { what: "VMCLEAR [fs:esi]", exit: VMXI(ExitReason.Vmclear, 5, 0, asz32 | seg(FS) | noIndex | base(ESI)) },
  { what: "VMXON [1234h]", exit: VMXI(ExitReason.Vmxon, 8, 0x1234, asz32 | seg(DS) | noIndex | noBase) },
  { what: "VMPTRST [esp-4]", exit: VMXI(ExitReason.Vmptrst, 5, 0xfffffffc, asz32 | seg(SS) | noIndex | base(ESP)) },
  { what: "VMREAD [ebp+8], eax", exit: VMXI(ExitReason.Vmread, 4, 8, asz32 | seg(SS) | noIndex | base(EBP) | reg2(EAX)) },
  { what: "VMREAD edx, ecx", exit: VMXI(ExitReason.Vmread, 3, 0, regForm | reg1(EDX) | reg2(ECX)) },
  { what: "VMWRITE esi, [ebx]", exit: VMXI(ExitReason.Vmwrite, 3, 0, asz32 | seg(DS) | noIndex | base(EBX) | reg2(ESI)) },
  { what: "VMWRITE edi, eax", exit: VMXI(ExitReason.Vmwrite, 3, 0, regForm | reg1(EAX) | reg2(EDI)) },
  { what: "INVEPT ecx, [ebx+4]", exit: VMXI(ExitReason.Invept, 6, 4, asz32 | seg(DS) | noIndex | base(EBX) | reg2(ECX)) },
  { what: "INVVPID edx, [bx+di]", exit: VMXI(ExitReason.Invvpid, 6, 0, seg(DS) | index(EDI) | base(EBX) | reg2(EDX)) },
  { what: "VMLAUNCH", exit: { reason: ExitReason.Vmlaunch, len: 3, qual: 0 } },
  { what: "VMRESUME", exit: { reason: ExitReason.Vmresume, len: 3, qual: 0 } },
  { what: "VMXOFF", exit: { reason: ExitReason.Vmxoff, len: 3, qual: 0 } },
  // Table 28-2: the selector is the TSS's, not the gate's (38h).
  { what: "CALL through the GDT task gate to TSS3", exit: TS(TSS3, CALL, 7), action: "switch" },
  { what: "IRET with NT (task 3, again)", exit: TS(TSS1, IRET, 1), action: "switch" },
  { what: "HLT", exit: { reason: ExitReason.Hlt, len: 1 } },
];

/** GuestMemory over the test's view of guest RAM (guest-physical 0 ..), for the assist. */
class RamMemory implements GuestMemory {
  readonly size: number;
  constructor(private readonly b: Uint8Array) { this.size = b.length; }
  private dv(gpa: number, n: number): DataView | null {
    return gpa >= 0 && gpa + n <= this.size ? new DataView(this.b.buffer, this.b.byteOffset + gpa, n) : null;
  }
  read8(gpa: number): number { return this.dv(gpa, 1)?.getUint8(0) ?? 0xff; }
  read16(gpa: number): number { return this.dv(gpa, 2)?.getUint16(0, true) ?? 0xffff; }
  read32(gpa: number): number { return this.dv(gpa, 4)?.getUint32(0, true) ?? 0xffffffff; }
  write8(gpa: number, v: number): void { this.dv(gpa, 1)?.setUint8(0, v); }
  write16(gpa: number, v: number): void { this.dv(gpa, 2)?.setUint16(0, v, true); }
  write32(gpa: number, v: number): void { this.dv(gpa, 4)?.setUint32(0, v >>> 0, true); }
  writeBytes(gpa: number, bytes: Uint8Array): boolean { return this.writeFrom(gpa, bytes, 0, bytes.length); }
  readBytes(gpa: number, length: number): Uint8Array | undefined { return this.dv(gpa, length) ? this.b.slice(gpa, gpa + length) : undefined; }
  readInto(gpa: number, buf: Uint8Array, offset: number, length: number): boolean {
    if (!this.dv(gpa, length) || offset + length > buf.length) return false;
    buf.set(this.b.subarray(gpa, gpa + length), offset);
    return true;
  }
  writeFrom(gpa: number, buf: Uint8Array, offset: number, length: number): boolean {
    if (!this.dv(gpa, length) || offset + length > buf.length) return false;
    this.b.set(buf.subarray(offset, offset + length), gpa);
    return true;
  }
}

const word = (at: number) => IMAGE[at - ORG]! | (IMAGE[at - ORG + 1]! << 8);
const TABLE = word(ORG + 2), VARS = word(ORG + 6);
const at = (i: number) => ({ insn: word(TABLE + i * 4), next: word(TABLE + i * 4 + 2) });
const VAR = { cr0Read: 0, cr4Read: 1, cr2Seen: 2, pfErr: 3, pfCr2: 4, pfCount: 5, dbCount: 6, t3Err: 7 } as const;

function boot() {
  const m = testMachine({ ramBytes: 0x100000 });
  const { sys } = m;
  const { dcb } = withVmcs(m);
  const gc = guestControlWords(m);
  const ram = m.ram;
  ram.set(IMAGE, ORG);
  const w = (enc: number, v: number) => expect(sys.vmwrite(dcb, enc, v >>> 0)).toBe(SysErr.Ok);
  const rd = (enc: number) => { expect(sys.vmread(dcb, enc)).toBe(SysErr.Ok); return sys.ret.value >>> 0; };
  // Launch with only the required controls: the guest's setup (LGDT, LTR, MOV CR3 ...) runs natively.
  w(F.PinControls, SOFT_CAPS.pin.mustBe1);
  w(F.ProcControls, SOFT_CAPS.proc.mustBe1 | Proc.ActivateSecondary);
  w(F.Proc2Controls, Proc2.EnableEpt | Proc2.UnrestrictedGuest);
  w(F.ExitControls, SOFT_CAPS.exit.mustBe1);
  w(F.EntryControls, SOFT_CAPS.entry.mustBe1);
  writeRealModeGuest(w, ORG);
  const entry = guestEntry(m, dcb);
  const enter = (): Exit => {
    entry();
    return {
      reason: rd(F.ExitReason), qual: rd(F.ExitQualification), len: rd(F.ExitInstrLen), info: rd(F.ExitInstrInfo),
      linear: rd(F.GuestLinearAddr), intr: rd(F.ExitIntrInfo), intrErr: rd(F.ExitIntrErrorCode),
      vect: rd(F.IdtVectoringInfo), vectErr: rd(F.IdtVectoringErrorCode), rip: rd(F.GuestRip),
    };
  };
  const dv = new DataView(ram.buffer, ram.byteOffset, ram.length);
  const r32 = (pa: number) => dv.getUint32(pa, true);
  const v32 = (k: keyof typeof VAR) => r32(VARS + VAR[k] * 4);

  /** The full guest state from the VMCS and guestControl, as the backend's getState builds it. */
  const readState = (): X86State => {
    const s = {
      eax: gc[0]!, ecx: gc[1]!, edx: gc[2]!, ebx: gc[3]!, esp: rd(F.GuestRsp), ebp: gc[5]!, esi: gc[6]!, edi: gc[7]!,
      eip: rd(F.GuestRip), eflags: rd(F.GuestRflags),
      gdtr: { base: rd(F.GuestGdtrBase), limit: rd(F.GuestGdtrLimit) }, idtr: { base: rd(F.GuestIdtrBase), limit: rd(F.GuestIdtrLimit) },
      cr0: rd(F.GuestCr0), cr2: gc[GuestControlWord.Cr2]!, cr3: rd(F.GuestCr3), cr4: rd(F.GuestCr4), dr7: rd(F.GuestDr7), efer: 0,
      activity: rd(F.GuestActivity), interruptibility: rd(F.GuestInterruptibility),
    } as Partial<X86State> as X86State;
    for (const f of SEGMENT_FIELDS) {
      const r: SegmentReg = { selector: rd(f.sel), base: rd(f.base), limit: rd(f.limit), attrib: rd(f.ar) };
      s[f.name] = r;
    }
    return s;
  };
  const writeState = (s: X86State) => {
    gc[0] = s.eax; gc[1] = s.ecx; gc[2] = s.edx; gc[3] = s.ebx; gc[5] = s.ebp; gc[6] = s.esi; gc[7] = s.edi;
    gc[GuestControlWord.Cr2] = s.cr2;
    w(F.GuestRsp, s.esp); w(F.GuestRip, s.eip); w(F.GuestRflags, s.eflags);
    w(F.GuestCr0, s.cr0); w(F.GuestCr3, s.cr3); w(F.GuestCr4, s.cr4);
    w(F.GuestGdtrBase, s.gdtr.base); w(F.GuestGdtrLimit, s.gdtr.limit);
    w(F.GuestIdtrBase, s.idtr.base); w(F.GuestIdtrLimit, s.idtr.limit);
    for (const f of SEGMENT_FIELDS) {
      const r = s[f.name];
      w(f.sel, r.selector); w(f.base, r.base); w(f.limit, r.limit); w(f.ar, r.attrib);
    }
  };
  /** A TSS descriptor's base and type (9 available, 11 busy) from the guest's GDT. */
  const tss = (sel: number) => {
    const d = rd(F.GuestGdtrBase) + (sel & ~7);
    const baseAddr = (dv.getUint16(d + 2, true) | (ram[d + 4]! << 16) | (ram[d + 7]! << 24)) >>> 0;
    return { base: baseAddr, type: ram[d + 5]! & 0xf, link: dv.getUint16(baseAddr, true), eip: r32(baseAddr + 0x20) };
  };
  const assist = new TaskSwitchAssist(new RamMemory(ram));
  const event: TaskGateEvent = { type: 0 as EventType, vector: 0, errorCode: 0, hasErrorCode: false };
  /** Exit 9 handled as the VMX backend does: the assist runs the switch (with the vectoring event for a gate). */
  const performSwitch = (e: Exit) => {
    const source = (e.qual >>> 30) as TaskSwitchSource;
    let ev: TaskGateEvent | null = null;
    if ((e.vect & V) !== 0) {
      event.type = ((e.vect >>> 8) & 7) as EventType;
      event.vector = e.vect & 0xff;
      event.hasErrorCode = (e.vect & ERR) !== 0;
      event.errorCode = event.hasErrorCode ? e.vectErr : 0;
      ev = event;
    }
    const s = readState();
    assist.run(s, source, ev, e.len);
    writeState(s);
    return s;
  };
  return { w, rd, enter, gc, ram, r32, v32, tss, performSwitch };
}

describe("tests/guests/vmx-exits-pm.asm through the VMX kernel half (protected mode, paging)", () => {
  it("the image's step table has one entry per step the driver expects", () => {
    expect(word(ORG + 4)).toBe(STEPS.length);
    for (let i = 0; i < STEPS.length; i++) {
      const { insn, next } = at(i);
      const len = STEPS[i]!.exit.len;
      if (len > 0) expect(next - insn, `${STEPS[i]!.what}: length in the image`).toBe(len);
    }
  });

  it("every step exits with the SDM's information fields; shadows, CR2, #PF/#DB handlers and task switches check out", () => {
    const g = boot();
    const checks: Record<number, (e: Exit) => void> = {
      0: () => {
        // Ready: the guest is in protected mode with paging; turn the controls on.
        expect((g.rd(F.GuestCr0) & 0x80010001) >>> 0).toBe(0x80010001);
        g.w(F.ProcControls, SOFT_CAPS.proc.mustBe1 | Proc.ActivateSecondary | Proc.HltExiting | Proc.InvlpgExiting
          | Proc.Cr3LoadExiting | Proc.Cr3StoreExiting);
        g.w(F.Proc2Controls, Proc2.EnableEpt | Proc2.UnrestrictedGuest | Proc2.DescTableExiting);
        g.w(F.ExceptionBitmap, (1 << 1) | (1 << 13) | (1 << 14));
        // Mask/match A (SDM 26.2): bit 14 = 1, so a #PF exits iff PFEC & W == W.
        g.w(F.PfErrorCodeMask, 2); g.w(F.PfErrorCodeMatch, 2);
        g.w(F.Cr0GuestHostMask, CR0_TS | CR0_MP | CR0_CD); g.w(F.Cr0ReadShadow, CR0_TS);
        g.w(F.Cr4GuestHostMask, CR4_OSFXSR); g.w(F.Cr4ReadShadow, CR4_OSFXSR);
      },
      18: (e) => {
        // Re-inject the ICEBP as a privileged software exception with its length (SDM 27.6.1.1):
        // the guest's #DB handler runs and returns after it. Then let the second one through.
        g.w(F.EntryIntrInfo, e.intr); g.w(F.EntryInstrLen, e.len);
        g.w(F.ExceptionBitmap, (1 << 13) | (1 << 14));
      },
      19: () => {
        // MOV from CR0/CR4 read the shadows in masked bits (SDM 26.3); no exit happened.
        expect(g.v32("cr0Read")).toBe((g.rd(F.GuestCr0) & ~(CR0_TS | CR0_MP | CR0_CD) | CR0_TS) >>> 0);
        expect(g.v32("cr0Read") & CR0_TS).toBe(CR0_TS);
        expect(g.rd(F.GuestCr0) & CR0_TS).toBe(0);
        expect(g.v32("cr4Read")).toBe((g.rd(F.GuestCr4) | CR4_OSFXSR) >>> 0);
        expect(g.rd(F.GuestCr4) & CR4_OSFXSR).toBe(0);
        // Both ICEBPs reached the handler: the injected one and the one bit 1 no longer stops.
        expect(g.v32("dbCount")).toBe(2);
      },
      20: () => {
        // A #PF that exits leaves CR2 alone (SDM 28.1); the qualification has the address.
        expect(g.gc[GuestControlWord.Cr2]).toBe(CR2_MARK);
        expect(g.v32("pfCount")).toBe(0);
      },
      21: () => {
        // The guest saw CR2 unchanged, then its handler got the read fault with CR2 loaded.
        expect([g.v32("cr2Seen"), g.v32("pfCount"), g.v32("pfErr"), g.v32("pfCr2")]).toEqual([CR2_MARK, 1, 0, NP_PAGE]);
        expect(g.gc[GuestControlWord.Cr2]).toBe(NP_PAGE);
        // Mask/match B: bit 14 = 0, so a #PF exits iff PFEC & P != P (not-present faults).
        g.w(F.ExceptionBitmap, 1 << 13);
        g.w(F.PfErrorCodeMask, 1); g.w(F.PfErrorCodeMatch, 1);
      },
      22: () => expect(g.gc[GuestControlWord.Cr2]).toBe(NP_PAGE),
      23: () => {
        expect([g.v32("pfCount"), g.v32("pfErr"), g.v32("pfCr2")]).toEqual([2, 3, RO_PAGE + 4]);
        expect(g.gc[GuestControlWord.Cr2]).toBe(RO_PAGE + 4);
        // #GP now goes through IDT gate 13 (a task gate) instead of exiting.
        g.w(F.ExceptionBitmap, 0);
      },
      // CR4.OSXSAVE is inside CR4_FIXED1, so the next entry (to the HLT) passes its checks.
      30: () => expect(g.rd(F.GuestCr4) & 0x40000).toBe(0x40000),
    };
    // Guest state after each task switch (SDM 7.3, table 7-2).
    const afterSwitch: Record<number, (s: X86State) => void> = {
      24: (s) => {
        expect([s.tr.selector, s.tr.attrib & 0xf, s.eip, s.esp, s.eax, s.eflags & NT]).toEqual([TSS2, 11, at(25).insn, STACK2, 0x7a5c0002, 0]);
        expect([g.tss(TSS1).type, g.tss(TSS2).type, g.tss(TSS1).eip]).toEqual([9, 11, at(24).next]);
        // The switch sets CR0.TS and loads CR3 from the new TSS (SDM 7.3 steps 10, 12).
        expect([s.cr0 & CR0_TS, s.cr3]).toEqual([CR0_TS, PD]);
      },
      25: (s) => {
        expect([s.tr.selector, s.eip, s.eflags & NT, s.ebx]).toEqual([TSS1, at(26).insn, NT, OFF]);
        expect([g.tss(TSS1).type, g.tss(TSS2).type, g.tss(TSS1).link, g.tss(TSS2).eip]).toEqual([11, 11, TSS2, at(25).next]);
      },
      26: (s) => {
        expect([s.tr.selector, s.eip, s.eflags & NT]).toEqual([TSS2, at(27).insn, 0]);
        expect([g.tss(TSS1).type, g.tss(TSS2).type, g.tss(TSS1).eip]).toEqual([9, 11, at(26).next]);
      },
      27: (s) => {
        expect([s.tr.selector, s.eip, s.eflags & NT]).toEqual([TSS1, at(26).next, NT]);
        // INT n resumes after itself: the saved EIP of task 2 is past the 2-byte INT 40h.
        expect([g.tss(TSS1).type, g.tss(TSS1).link, g.tss(TSS2).eip]).toEqual([11, TSS2, at(27).next]);
      },
      28: (s) => {
        // The #GP's error code is pushed on the new task's stack (SDM 7.3 step 12, 6.12.2).
        // Task 3 starts at the EIP its TSS had in the image.
        const entry = word(g.tss(TSS3).base + 0x20);
        expect([s.tr.selector, s.eip, s.esp, g.r32(s.esp), s.eflags & NT]).toEqual([TSS3, entry, STACK3 - 4, BAD_SEL_ERR, NT]);
        expect([g.tss(TSS3).link, g.tss(TSS3).type, g.tss(TSS1).type, g.tss(TSS1).eip]).toEqual([TSS1, 11, 11, at(28).insn]);
      },
      29: (s) => {
        // Task 3 moved task 1's saved EIP past the faulting MOV ES; IRET returns there.
        expect([s.tr.selector, s.eip, g.v32("t3Err")]).toEqual([TSS1, at(28).next, BAD_SEL_ERR]);
        expect([g.tss(TSS3).type, g.tss(TSS1).type]).toEqual([9, 11]);
        expect(s.es.selector).toBe(0x10);
      },
      44: (s) => {
        expect([s.tr.selector, s.eip, s.eflags & NT]).toEqual([TSS3, at(45).insn, NT]);
        expect([g.tss(TSS3).link, g.tss(TSS3).type, g.tss(TSS1).type, g.tss(TSS1).eip]).toEqual([TSS1, 11, 11, at(44).next]);
      },
      45: (s) => {
        expect([s.tr.selector, s.eip, g.tss(TSS3).type, g.tss(TSS1).type]).toEqual([TSS1, at(44).next, 9, 11]);
      },
    };
    STEPS.forEach((step, i) => {
      const e = g.enter();
      const { insn, next } = at(i);
      const x = step.exit;
      const got: Record<string, number | string> = { step: step.what, rip: e.rip };
      const want: Record<string, number | string> = { step: step.what, rip: insn };
      for (const k of Object.keys(x) as (keyof Expect)[]) { got[k] = e[k]; want[k] = x[k]!; }
      expect(got).toEqual(want);
      checks[i]?.(e);
      const action = step.action ?? "skip";
      if (action === "skip") g.w(F.GuestRip, next);
      else if (action === "switch") afterSwitch[i]!(g.performSwitch(e));
    });
  });
});

describe("injected privileged software exception and software exception (SDM 27.6.1)", () => {
  /** A real-mode guest whose IVT limit (3) holds only vector 0: delivering vector 1 or 3 faults (#GP). */
  function machine() {
    const m = testMachine();
    const { sys } = m;
    const { dcb } = withVmcs(m);
    m.ram.set([0x90, 0xf4], 0x1000);
    const w = (enc: number, v: number) => expect(sys.vmwrite(dcb, enc, v >>> 0)).toBe(SysErr.Ok);
    const rd = (enc: number) => { expect(sys.vmread(dcb, enc)).toBe(SysErr.Ok); return sys.ret.value >>> 0; };
    w(F.PinControls, SOFT_CAPS.pin.mustBe1);
    w(F.ProcControls, SOFT_CAPS.proc.mustBe1 | Proc.ActivateSecondary | Proc.HltExiting);
    w(F.Proc2Controls, Proc2.EnableEpt | Proc2.UnrestrictedGuest);
    w(F.ExitControls, SOFT_CAPS.exit.mustBe1);
    w(F.EntryControls, SOFT_CAPS.entry.mustBe1);
    w(F.ExceptionBitmap, 1 << 13);
    w(F.GuestCr0, 0x10); w(F.GuestRflags, 2); w(F.GuestRip, 0x1000); w(F.GuestRsp, 0x8000);
    w(F.GuestCsAr, 0x9b); w(F.GuestCsLimit, 0xffff);
    for (const enc of [F.GuestSsAr, F.GuestDsAr, F.GuestEsAr, F.GuestFsAr, F.GuestGsAr]) w(enc, 0x93);
    for (const enc of [F.GuestSsLimit, F.GuestDsLimit, F.GuestEsLimit, F.GuestFsLimit, F.GuestGsLimit]) w(enc, 0xffff);
    w(F.GuestTrAr, 0x8b); w(F.GuestLdtrAr, 0x10000); w(F.GuestIdtrLimit, 3);
    return { w, rd, sys, dcb };
  }

  it.each([
    ["ICEBP (type 5, vector 1)", 5, 1],
    ["INT3 (type 6, vector 3)", 6, 3],
  ])("%s whose delivery faults reports its own type as IDT-vectoring information, with the entry length", (_n, type, vector) => {
    const g = machine();
    const info = (V | (type << 8) | vector) >>> 0;
    g.w(F.EntryIntrInfo, info); g.w(F.EntryInstrLen, 1);
    expect(g.sys.vmlaunch(g.dcb)).toBe(SysErr.Ok);
    expect([g.rd(F.ExitReason), (g.rd(F.ExitIntrInfo) & (V | 0x7ff)) >>> 0, g.rd(F.IdtVectoringInfo), g.rd(F.ExitInstrLen), g.rd(F.GuestRip)])
      .toEqual([ExitReason.ExceptionOrNmi, hwExc(13, false), info, 1, 0x1000]);
  });
});

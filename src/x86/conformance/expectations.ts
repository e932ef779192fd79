// Documented expectations: where the chip that produced a vector (Intel 8086, Harris
// 80286) really differs from the 386-class core, the runner counts the test under one
// of these ids instead of as a failure, and checks the 386 behaviour where the data
// allows (each entry says what is checked). Sources: ../shared/conformance/README.md
// "Known 286/8086 vs 386-class differences", the SDM, and evidence from the vectors.

export interface Expectation {
  readonly id: string;
  /** Why the chip and a 386+ differ, with the source. */
  readonly reason: string;
  /** What the runner verifies about the model for such a test. */
  readonly check: string;
}

const LIST: Expectation[] = [
  {
    id: "286-lock",
    reason: "the 80286 executes any LOCK-prefixed instruction; a 386+ raises #UD for LOCK on a non-lockable instruction or a register destination (SDM Vol. 2 LOCK; README)",
    check: "the model raises #UD at the instruction",
  },
  {
    id: "286-gp-vs-ss",
    reason: "the 80286 raises #GP for an SS-relative offset-0xFFFF overrun; a 386+ raises #SS (SDM Vol. 2, real-address-mode exceptions of every SS-relative form: '#SS if a memory operand effective address is outside the SS segment limit'; README)",
    check: "the model raises #SS where the 286 raised #GP",
  },
  {
    id: "286-length",
    reason: "the 80286 raises #GP for instructions longer than 10 bytes (redundant prefixes); the 386+ limit is 15 bytes (SDM Vol. 2 2.3.11; README)",
    check: "the decoded instruction is over 10 bytes and the model raises no #GP",
  },
  {
    id: "286-fs-gs",
    reason: "8C/8E with ModR/M reg 4 or 5 are #UD on the 80286 and MOV to/from FS/GS on a 386+ (README)",
    check: "the model raises no #UD",
  },
  {
    id: "286-string-fault-progress",
    reason: "on a #GP at offset 0xFFFF the 80286 has already advanced SI/DI (and CX under REP) for the faulting element, as the data shows even for INSW whose only access is the faulting store; a 386+ fault is restartable: the registers reflect only the completed iterations (SDM Vol. 3A 6.5; Vol. 2 REP)",
    check: "same #GP frame, memory and registers except SI/DI (at most one element behind) and CX (at most 2 higher)",
  },
  {
    id: "286-pop-rm-fault",
    reason: "when POP r/m faults on its destination the 80286 keeps the SP increment; a 386+ fault is restartable and leaves SP unchanged (SDM Vol. 3A 6.5)",
    check: "same #GP frame, pushed one word higher (SP = 286 SP - 2), everything else equal",
  },
  {
    id: "286-aam0-flags",
    reason: "AAM 0 on the 80286 updates SF/ZF/PF before raising #DE; on a 386+ #DE is a fault and the flags keep their values (SDM Vol. 3A 6.5; Vol. 2 AAM)",
    check: "same #DE frame; only SF/ZF/PF differ, in FLAGS and in the stacked FLAGS",
  },
  {
    id: "286-idiv-overflow",
    reason: "for some overflowing byte IDIVs the 80286 returns quotient 80h without #DE (README: division-overflow details differ by CPU); a 386+ raises #DE when the quotient is outside -128..127 (SDM Vol. 2 IDIV)",
    check: "the true quotient is outside -128..127 and the model raises #DE",
  },
  {
    id: "8086-daa-das",
    reason: "with AF=1 the 8086 adjusts the high digit only when AL > 9Fh (not 99h), and its DAS takes no CF from the low-digit borrow; a 386+ follows the SDM pseudo-code (Vol. 2 DAA, DAS), which the 80286 set's 2,000 DAA and 2,000 DAS vectors confirm",
    check: "the input is in the differing range (AF=1, CF=0 and AL in 9Ah-9Fh, or DAS with AL < 06h) and only AL and FLAGS differ",
  },
  {
    id: "8086-wrap",
    reason: "a word access at offset 0xFFFF or a PUSH/POP across SP 0 wraps silently on the 8086; a 386+ raises #GP/#SS (SDM Vol. 2 real-address-mode exceptions; README)",
    check: "the model raises #GP or #SS",
  },
  {
    id: "8086-alias",
    reason: "the 8086 ignores ModR/M reg in 8F (POP r/m); on a 386+ 8F with reg != 0 is #UD (README)",
    check: "the model raises #UD",
  },
  {
    id: "8086-push-sp",
    reason: "PUSH SP (FF /6) pushes the decremented SP on an 8086 and the old SP on a 286/386+ (SDM Vol. 2 PUSH; README)",
    check: "only the pushed word differs, and it holds the SP before the instruction",
  },
];

export const EXPECTATIONS: ReadonlyMap<string, Expectation> = new Map(LIST.map((e) => [e.id, e]));

const PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]);

/** Index of the opcode byte after the prefixes. */
export function opcodeIndex(b: Uint8Array): number {
  let i = 0;
  while (i < b.length && PREFIXES.has(b[i])) i++;
  return i;
}

/**
 * Length of a 16-bit real-mode instruction of the 8086/286 opcode map (no 0F), prefixes
 * included, from its prefixes, opcode and ModR/M byte only (immediates need not be present).
 */
export function instrLength16(b: Uint8Array): number {
  const i = opcodeIndex(b);
  const op = b[i], modrm = b[i + 1] ?? 0;
  let n = i + 1;
  const hasModrm = (op < 0x40 && (op & 7) < 4) || op === 0x62 || op === 0x63 || op === 0x69 || op === 0x6b
    || (op >= 0x80 && op <= 0x8f) || op === 0xc0 || op === 0xc1 || (op >= 0xc4 && op <= 0xc7)
    || (op >= 0xd0 && op <= 0xd3) || (op >= 0xd8 && op <= 0xdf) || op === 0xf6 || op === 0xf7 || op === 0xfe || op === 0xff;
  if (hasModrm) {
    n++;
    const mod = modrm >> 6, rm = modrm & 7;
    if (mod === 1) n += 1;
    else if (mod === 2 || (mod === 0 && rm === 6)) n += 2;
  }
  const reg = (modrm >> 3) & 7;
  if ((op < 0x40 && (op & 7) === 4) || op === 0x6a || op === 0x6b || (op >= 0x70 && op <= 0x7f) || op === 0x80
    || op === 0x82 || op === 0x83 || op === 0xa8 || (op >= 0xb0 && op <= 0xb7) || op === 0xc0 || op === 0xc1
    || op === 0xc6 || op === 0xcd || op === 0xd4 || op === 0xd5 || (op >= 0xe0 && op <= 0xe7) || op === 0xeb
    || (op === 0xf6 && reg < 2)) n += 1;
  else if ((op < 0x40 && (op & 7) === 5) || op === 0x68 || op === 0x69 || op === 0x81 || op === 0xa9
    || (op >= 0xb8 && op <= 0xbf) || op === 0xc2 || op === 0xc7 || op === 0xca || op === 0xe8 || op === 0xe9
    || (op >= 0xa0 && op <= 0xa3) || (op === 0xf7 && reg < 2)) n += 2;
  else if (op === 0xc8) n += 3;
  else if (op === 0x9a || op === 0xea) n += 4;
  return n;
}

/** LOCK is architecturally allowed (SDM Vol. 2 LOCK): read-modify-write forms with a memory destination. */
export function lockableMem(op: number, modrm: number): boolean {
  if ((modrm & 0xc0) === 0xc0) return false;
  const reg = (modrm >> 3) & 7;
  if (op < 0x40) return (op & 7) < 2 && (op >> 3) !== 7;
  if (op >= 0x80 && op <= 0x83) return reg !== 7;
  if (op === 0x86 || op === 0x87) return true;
  if (op === 0xf6 || op === 0xf7) return reg === 2 || reg === 3;
  if (op === 0xfe || op === 0xff) return reg < 2;
  return false;
}

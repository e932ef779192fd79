import { describe, expect, it } from "vitest";
import { EXPECTATIONS, instrLength16, lockableMem } from "./expectations.js";

describe("conformance expectation helpers", () => {
  it("instrLength16 counts prefixes, ModR/M displacement and immediates", () => {
    expect(instrLength16(Uint8Array.of(0x90))).toBe(1);
    expect(instrLength16(Uint8Array.of(0x00, 0x5f, 0x0e))).toBe(3); // add [bx+0Eh], bl
    expect(instrLength16(Uint8Array.of(0x81, 0x06, 0x34, 0x12, 0x78, 0x56))).toBe(6); // add word [1234h], 5678h
    expect(instrLength16(Uint8Array.of(0x3e, 0x26, 0x3e, 0x2e, 0x3e, 0x36, 0x9a))).toBe(11); // 6 prefixes + call far
    expect(instrLength16(Uint8Array.of(0x2e, 0x3e, 0x26, 0x3e, 0x26, 0xc7, 0xb9))).toBe(11); // 5 prefixes + C7 disp16 imm16
    expect(instrLength16(Uint8Array.of(0xf6, 0x06, 0, 0, 0))).toBe(5); // test byte [0], imm8
    expect(instrLength16(Uint8Array.of(0xf6, 0x36, 0, 0))).toBe(4); // div byte [0]: no immediate
  });

  it("lockableMem allows only read-modify-write forms with a memory destination", () => {
    expect(lockableMem(0x00, 0x07)).toBe(true); // add [bx], al
    expect(lockableMem(0x00, 0xc0)).toBe(false); // add al, al
    expect(lockableMem(0x38, 0x07)).toBe(false); // cmp
    expect(lockableMem(0xf6, 0x17)).toBe(true); // not byte [bx]
    expect(lockableMem(0xf6, 0x27)).toBe(false); // mul
  });

  it("every expectation states a reason and what the runner checks", () => {
    for (const e of EXPECTATIONS.values()) {
      expect(e.reason.length, e.id).toBeGreaterThan(40);
      expect(e.check.length, e.id).toBeGreaterThan(10);
    }
  });
});

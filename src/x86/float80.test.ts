import { describe, expect, it } from "vitest";
import { BIG_P, DE, F80, IE, OE, PE, RC_DOWN, RC_NEAREST, RC_UP, RC_ZERO, UE, ZE, bigLn2, bigNorm, bigPi, bigTrigReduce } from "./float80.js";
import { rng } from "./testing.js";

const A = 0, B = 1, D = 2, D2 = 3;
const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);

function unit(): F80 {
  const f = new F80(8);
  f.rc = RC_NEAREST; f.pc = 64; f.masks = 0x3f; f.exc = 0;
  return f;
}
/** Slot as [sign, exponent field, significand hex]. */
function dump(f: F80, s: number): [number, number, string] {
  const h = f.hiOf(s).toString(16).padStart(8, "0"), l = f.loOf(s).toString(16).padStart(8, "0");
  return [f.signOf(s), f.expOf(s), h + l];
}
function load(f: F80, s: number, n: number): void { f.fromNumber(s, n); }
function bitsOf(n: number): [number, number] { F64[0] = n; return [U32[0], U32[1]]; }

/** Top p bits of the significand 0.101010...b (= 2/3 * 2), as 64-bit hex, plus round-up variant. */
function thirdSig(p: number, up: boolean): string {
  let hi = 0n;
  for (let i = 0; i < 64; i++) hi = (hi << 1n) | (i < p && i % 2 === 0 ? 1n : 0n);
  if (up) hi += 1n << BigInt(64 - p);
  return hi.toString(16).padStart(16, "0");
}

describe("F80 rounding of 1/3 (significand 1.0101...b)", () => {
  for (const p of [24, 53, 64]) {
    // The first discarded bit is bit p of 1010...: 1 when p is even, and more ones follow.
    const nearestUp = p % 2 === 0;
    const cases: Array<[number, string, boolean]> = [
      [RC_NEAREST, "nearest", nearestUp], [RC_DOWN, "down", false], [RC_UP, "up", true], [RC_ZERO, "zero", false],
    ];
    for (const [rc, name, up] of cases) {
      it(`1/3 at PC=${p} rounding ${name} keeps ${p} bits and ${up ? "increments" : "truncates"}`, () => {
        const f = unit();
        f.pc = p; f.rc = rc;
        f.fromInt32(A, 1); f.fromInt32(B, 3);
        f.div(D, A, B);
        expect(dump(f, D)).toEqual([0, 16383 - 2, thirdSig(p, up)]);
        expect(f.exc).toBe(PE);
        expect(f.c1).toBe(up);
      });
    }
  }
  it("-1/3 rounding down increments the magnitude and sets C1", () => {
    const f = unit();
    f.rc = RC_DOWN;
    f.fromInt32(A, -1); f.fromInt32(B, 3);
    f.div(D, A, B);
    expect(dump(f, D)).toEqual([1, 16381, thirdSig(64, true)]);
    expect(f.c1).toBe(true);
  });
});

describe("F80 square root", () => {
  it("sqrt(2) is 1.6A09E667F3BCC908B2F...h: B504F333F9DE6484 to nearest, ...85 rounding up", () => {
    const f = unit();
    f.fromInt32(A, 2);
    f.sqrt(D, A);
    expect(dump(f, D)).toEqual([0, 16383, "b504f333f9de6484"]);
    expect(f.exc).toBe(PE);
    f.rc = RC_UP;
    f.sqrt(D, A);
    expect(dump(f, D)).toEqual([0, 16383, "b504f333f9de6485"]);
  });
  it("sqrt of an exact square is exact, sqrt(-0) is -0 and sqrt(-1) is invalid", () => {
    const f = unit();
    f.fromInt32(A, 144);
    f.sqrt(D, A);
    expect(f.toNumber(D)).toBe(12);
    expect(f.exc).toBe(0);
    load(f, A, -0);
    f.sqrt(D, A);
    expect(dump(f, D)).toEqual([1, 0, "0000000000000000"]);
    f.fromInt32(A, -1);
    f.sqrt(D, A);
    expect(f.exc).toBe(IE);
    expect(dump(f, D)).toEqual([1, 0x7fff, "c000000000000000"]);
  });
});

describe("F80 against float64 (PC=53, round to nearest: must equal IEEE double results)", () => {
  it("add, sub, mul, div and sqrt of random doubles match JS arithmetic bit for bit", () => {
    const f = unit();
    f.pc = 53;
    const r = rng(0x5eed);
    const rand = (): number => {
      const m = (r() / 4294967296 + r() / 2 ** 64) * (r() & 1 ? -1 : 1);
      return m * 2 ** ((r() % 200) - 100);
    };
    for (let i = 0; i < 3000; i++) {
      const x = rand(), y = rand();
      load(f, A, x); load(f, B, y);
      const check = (want: number): void => {
        f.toF64(D);
        expect([f.outLo, f.outHi]).toEqual(bitsOf(want));
      };
      f.add(D, A, B, false); check(x + y);
      f.add(D, A, B, true); check(x - y);
      f.mul(D, A, B); check(x * y);
      f.div(D, A, B); check(x / y);
      load(f, A, Math.abs(x));
      f.sqrt(D, A); check(Math.sqrt(Math.abs(x)));
    }
  });
});

describe("F80 special values and exceptions (masked responses, SDM 4.9.1)", () => {
  it("0/0 and inf-inf give IE and the indefinite; x/0 gives ZE and a signed infinity", () => {
    const f = unit();
    load(f, A, 0); load(f, B, 0);
    f.div(D, A, B);
    expect(f.exc).toBe(IE);
    expect(dump(f, D)).toEqual([1, 0x7fff, "c000000000000000"]);
    f.exc = 0;
    load(f, A, Infinity); load(f, B, Infinity);
    f.add(D, A, B, true);
    expect(f.exc).toBe(IE);
    f.exc = 0;
    load(f, A, -5); load(f, B, 0);
    f.div(D, A, B);
    expect(f.exc).toBe(ZE);
    expect(f.toNumber(D)).toBe(-Infinity);
  });
  it("an SNaN operand raises IE and propagates quieted; QNaN beats SNaN; larger significand wins", () => {
    const f = unit();
    f.set(A, 0, 0x7fff, 0xa0000000, 5); // SNaN
    f.fromInt32(B, 1);
    f.add(D, A, B, false);
    expect(f.exc).toBe(IE);
    expect(dump(f, D)).toEqual([0, 0x7fff, "e000000000000005"]);
    f.exc = 0;
    f.set(B, 1, 0x7fff, 0xc0000000, 1); // QNaN, smaller significand
    f.mul(D, A, B);
    expect(dump(f, D)).toEqual([1, 0x7fff, "c000000000000001"]);
    f.exc = 0;
    f.set(A, 0, 0x7fff, 0xd0000000, 0); // QNaN, larger
    f.add(D, A, B, false);
    expect(dump(f, D)).toEqual([0, 0x7fff, "d000000000000000"]);
    expect(f.exc).toBe(0);
  });
  it("subtraction returns a NaN operand with its own sign: 1 - (-QNaN) and -QNaN - 1 stay negative, 1 - (+QNaN) stays positive", () => {
    const f = unit();
    f.fromInt32(A, 1);
    f.set(B, 1, 0x7fff, 0xf8000000, 0); // -QNaN
    f.add(D, A, B, true);
    expect(dump(f, D)).toEqual([1, 0x7fff, "f800000000000000"]);
    f.add(D, B, A, true);
    expect(dump(f, D)).toEqual([1, 0x7fff, "f800000000000000"]);
    f.set(B, 0, 0x7fff, 0xf8000000, 0);
    f.add(D, A, B, true);
    expect(dump(f, D)).toEqual([0, 0x7fff, "f800000000000000"]);
    expect(f.exc).toBe(0);
  });
  it("an unnormal or pseudo-infinity operand is invalid; a pseudo-denormal is a denormal (DE)", () => {
    const f = unit();
    f.set(A, 0, 0x4000, 0x40000000, 0); // unnormal
    f.fromInt32(B, 1);
    f.add(D, A, B, false);
    expect(f.exc).toBe(IE);
    expect(dump(f, D)).toEqual([1, 0x7fff, "c000000000000000"]);
    f.exc = 0;
    f.set(A, 0, 0x7fff, 0, 0); // pseudo-infinity
    f.mul(D, A, B);
    expect(f.exc).toBe(IE);
    f.exc = 0;
    f.set(A, 0, 0, 0x80000000, 0); // pseudo-denormal: 2^-16382
    f.mul(D, A, B);
    expect(f.exc).toBe(DE);
    expect(dump(f, D)).toEqual([0, 1, "8000000000000000"]);
  });
  it("x + (-x) is +0, or -0 when rounding down", () => {
    const f = unit();
    load(f, A, 1.5); load(f, B, 1.5);
    f.add(D, A, B, true);
    expect(dump(f, D)).toEqual([0, 0, "0000000000000000"]);
    f.rc = RC_DOWN;
    f.add(D, A, B, true);
    expect(dump(f, D)).toEqual([1, 0, "0000000000000000"]);
  });
  it("masked overflow gives infinity to nearest and the largest finite number toward zero (OE|PE)", () => {
    const f = unit();
    f.set(A, 0, 0x7ffe, 0xffffffff, 0xffffffff);
    f.fromInt32(B, 2);
    f.mul(D, A, B);
    expect(f.exc).toBe(OE | PE);
    expect(dump(f, D)).toEqual([0, 0x7fff, "8000000000000000"]);
    expect(f.c1).toBe(true);
    f.rc = RC_ZERO; f.exc = 0;
    f.mul(D, A, B);
    expect(dump(f, D)).toEqual([0, 0x7ffe, "ffffffffffffffff"]);
    f.pc = 24;
    f.mul(D, A, B);
    expect(dump(f, D)).toEqual([0, 0x7ffe, "ffffff0000000000"]);
  });
  it("unmasked overflow re-biases the exponent by 24576 (SDM 4.9.1.4)", () => {
    const f = unit();
    f.masks = 0x3f & ~OE;
    f.set(A, 0, 0x7ffe, 0x80000000, 0);
    f.fromInt32(B, 4);
    f.mul(D, A, B);
    expect(f.exc).toBe(OE);
    expect(dump(f, D)).toEqual([0, 0x7ffe + 2 - 24576, "8000000000000000"]);
  });
  it("masked underflow gives a denormal with UE|PE when inexact, and no UE when exact", () => {
    const f = unit();
    f.set(A, 0, 1, 0x80000000, 0); // 2^-16382
    f.fromInt32(B, 4);
    f.div(D, A, B); // 2^-16384: exact denormal
    expect(f.exc).toBe(0);
    expect(dump(f, D)).toEqual([0, 0, "2000000000000000"]);
    f.set(A, 0, 1, 0x80000000, 1);
    f.div(D, A, B); // loses the low bit
    expect(f.exc).toBe(UE | PE);
    expect(dump(f, D)).toEqual([0, 0, "2000000000000000"]);
    f.exc = 0;
    f.masks = 0x3f & ~UE; // unmasked: re-biased normal result
    f.div(D, A, B);
    expect(f.exc & UE).toBe(UE);
    expect(f.expOf(D)).toBe(1 - 2 + 24576);
  });
  it("a denormal operand raises DE", () => {
    const f = unit();
    f.set(A, 0, 0, 0x00000001, 0);
    f.fromInt32(B, 1);
    f.add(D, A, B, false);
    expect(f.exc & DE).toBe(DE);
  });
  it("compare orders zeros, infinities and NaNs (unordered; IE only for SNaN when quiet)", () => {
    const f = unit();
    load(f, A, -0); load(f, B, 0);
    expect(f.compare(A, B, false)).toBe(2);
    load(f, A, -Infinity); load(f, B, -1e300);
    expect(f.compare(A, B, false)).toBe(1);
    expect(f.compare(B, A, false)).toBe(0);
    f.set(A, 0, 0x7fff, 0xc0000000, 0);
    expect(f.compare(A, B, true)).toBe(3);
    expect(f.exc).toBe(0);
    expect(f.compare(A, B, false)).toBe(3);
    expect(f.exc).toBe(IE);
  });
});

describe("F80 integer, float and BCD conversions", () => {
  it("int32 and int64 extremes convert exactly both ways", () => {
    const f = unit();
    f.fromInt32(A, -0x80000000);
    expect(f.toInt(A, 32)).toBe(true);
    expect(f.outLo).toBe(0x80000000);
    f.fromInt64(A, 0xffffffff, 0x7fffffff);
    expect(dump(f, A)).toEqual([0, 16383 + 62, "fffffffffffffffe"]);
    expect(f.toInt(A, 64)).toBe(true);
    expect([f.outLo, f.outHi]).toEqual([0xffffffff, 0x7fffffff]);
    f.fromInt64(A, 0, 0x80000000);
    expect(f.toInt(A, 64)).toBe(true);
    expect([f.outLo, f.outHi]).toEqual([0, 0x80000000]);
    expect(f.exc).toBe(0);
  });
  it("out-of-range, infinite and NaN values store the integer indefinite with IE", () => {
    const f = unit();
    f.fromInt32(A, 32768);
    expect(f.toInt(A, 16)).toBe(false);
    expect(f.outLo).toBe(0x8000);
    expect(f.exc).toBe(IE);
    f.fromInt32(A, -32768);
    expect(f.toInt(A, 16)).toBe(true);
    expect(f.outLo).toBe(0x8000);
    load(f, A, 2 ** 63);
    expect(f.toInt(A, 64)).toBe(false);
    expect([f.outLo, f.outHi]).toEqual([0, 0x80000000]);
    load(f, A, NaN);
    expect(f.toInt(A, 32)).toBe(false);
    expect(f.outLo).toBe(0x80000000);
  });
  it("rounds to an integer per RC: 2.5 and -2.5 in all four modes", () => {
    const f = unit();
    const want: Array<[number, number, number]> = [[RC_NEAREST, 2, -2], [RC_DOWN, 2, -3], [RC_UP, 3, -2], [RC_ZERO, 2, -2]];
    for (const [rc, p, n] of want) {
      f.rc = rc; f.exc = 0;
      load(f, A, 2.5); f.toInt(A, 32); expect(f.outLo | 0).toBe(p);
      expect(f.exc).toBe(PE);
      load(f, A, -2.5); f.toInt(A, 32); expect(f.outLo | 0).toBe(n);
      load(f, A, -2.5); f.roundInt(D, A); expect(f.toNumber(D)).toBe(n);
    }
  });
  it("float32 stores round like Math.fround and overflow/underflow flag OE and UE", () => {
    const f = unit();
    const r = rng(7);
    for (let i = 0; i < 500; i++) {
      const x = (r() / 4294967296 - 0.5) * 2 ** ((r() % 60) - 30);
      load(f, A, x);
      const bits = f.toF32(A);
      const want = new Float32Array([x]);
      expect(bits).toBe(new Uint32Array(want.buffer)[0]);
    }
    f.exc = 0;
    load(f, A, 1e39);
    expect(f.toF32(A)).toBe(0x7f800000);
    expect(f.exc).toBe(OE | PE);
    f.exc = 0;
    load(f, A, 1e-45 * 0.75); // rounds to the smallest denormal
    expect(f.toF32(A)).toBe(1);
    expect(f.exc).toBe(UE | PE);
  });
  it("float64 loads of denormals raise DE and keep the exact value", () => {
    const f = unit();
    f.fromF64(A, 1, 0); // 2^-1074
    expect(f.exc).toBe(DE);
    expect(dump(f, A)).toEqual([0, 16383 - 1074, "8000000000000000"]);
    f.toF64(A);
    expect([f.outLo, f.outHi]).toEqual([1, 0]);
  });
  it("packed BCD round-trips 18 digits and an out-of-range value stores the BCD indefinite", () => {
    const f = unit();
    const b = new Uint8Array([0x78, 0x56, 0x34, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x80]);
    f.fromBcd(A, b);
    expect(f.toNumber(A)).toBe(-123456789012345678);
    const out = new Uint8Array(10);
    expect(f.toBcd(A, out)).toBe(true);
    expect(Array.from(out)).toEqual(Array.from(b));
    load(f, A, 1e18);
    expect(f.toBcd(A, out)).toBe(false);
    expect(f.exc).toBe(IE);
    expect(Array.from(out)).toEqual([0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff]);
  });
});

describe("F80 FPREM, FPREM1, FSCALE and FXTRACT", () => {
  it("FPREM of 7 by 3 leaves 1 with quotient 2; FPREM1 of 8 by 3 leaves -1 with quotient 3", () => {
    const f = unit();
    f.fromInt32(A, 7); f.fromInt32(B, 3);
    expect(f.rem(D, A, B, false)).toBe(2);
    expect(f.toNumber(D)).toBe(1);
    f.fromInt32(A, 8);
    expect(f.rem(D, A, B, true)).toBe(3);
    expect(f.toNumber(D)).toBe(-1);
  });
  it("FPREM of a value 2^100 times the divisor is partial (C2) and converges", () => {
    const f = unit();
    load(f, A, 2 ** 100 + 2 ** 50); load(f, B, 3);
    let q = f.rem(D, A, B, false), n = 1;
    while (q & 8) { f.copy(A, D); q = f.rem(D, A, B, false); n++; }
    expect(n).toBeGreaterThan(1);
    // 2^100 + 2^50 mod 3: 2^even = 1 mod 3, so 1 + 1 = 2.
    expect(f.toNumber(D)).toBe(2);
  });
  it("FSCALE multiplies by 2^trunc(ST1) and FXTRACT splits exponent and significand", () => {
    const f = unit();
    load(f, A, 3); load(f, B, -2.9);
    f.scale(D, A, B);
    expect(f.toNumber(D)).toBe(0.75);
    load(f, A, -48);
    f.extract(D, D2, A);
    expect(f.toNumber(D)).toBe(5);
    expect(f.toNumber(D2)).toBe(-1.5);
  });
});

describe("F80 big floats for the transcendentals", () => {
  it("the series give pi and ln 2 to 128 bits (C90FDAA2 2168C234 C4C6628B 80DC1CD1..., B17217F7 D1CF79AB C9E3B398 03F2F6AF...)", () => {
    const top128 = (m: bigint) => (m >> BigInt(BIG_P - 128)).toString(16);
    expect(top128(bigPi().m)).toBe("c90fdaa22168c234c4c6628b80dc1cd1");
    expect(bigPi().e + BIG_P - 1).toBe(1); // 2^1 <= pi < 2^2
    expect(top128(bigLn2().m)).toBe("b17217f7d1cf79abc9e3b39803f2f6af");
    expect(bigLn2().e + BIG_P - 1).toBe(-1);
  });

  it("bigTrigReduce is exact modulo the 66-bit pi/2 (C90FDAA22168C234Ch * 2^-67), to the nearest multiple", () => {
    // FLDPI's C90FDAA22168C235h * 2^-62 = 2 * pi66/2 + 2^-64 exactly.
    const [q, s, r] = bigTrigReduce(bigNorm(0xc90fdaa22168c235n, -62));
    expect([q, s, r.m, r.e + BIG_P - 1]).toEqual([2, 0, 1n << BigInt(BIG_P - 1), -64]);
    // 3 pi66/2 + 1/8 reduces to quadrant 3, r = +1/8; pi66/2 - 1/8 to quadrant 1, r = -1/8.
    const three = bigTrigReduce(bigNorm(3n * 0xc90fdaa22168c234cn + (1n << 64n), -67));
    expect([three[0], three[1], three[2].e + BIG_P - 1]).toEqual([3, 0, -3]);
    const below = bigTrigReduce(bigNorm(0xc90fdaa22168c234cn - (1n << 64n), -67));
    expect([below[0], below[1], below[2].e + BIG_P - 1]).toEqual([1, 1, -3]);
    // Under 1/2 nothing is subtracted.
    const small = bigNorm(0x7fffn, -16);
    expect(bigTrigReduce(small)).toEqual([0, 0, small]);
  });
});

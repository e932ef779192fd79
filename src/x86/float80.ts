// 80-bit extended-precision arithmetic in software (SDM Vol. 1 ch. 4 and 8), the
// number engine of the x87 unit (fpu.ts). No BigInt and no allocation per
// operation: values live in a preallocated Uint32Array of slots, three words per
// slot laid out as in memory: [significand 31:0, significand 63:32, sign<<15 |
// biased exponent]. Every operation reads slots and writes its result to a slot.
//
// Results are exact then rounded once (IEEE 754): add/sub keep 32 guard bits plus
// a sticky bit, mul forms the full 128-bit product, div and sqrt are restoring
// bit loops to 96 bits plus a sticky remainder. Rounding honours RC (all four
// modes), the precision control PC (24/53/64 significand bits, exponent range
// stays extended, SDM 8.1.5.2) and detects tininess before rounding (x87).
// Exceptions accumulate in `exc` (IE DE ZE OE UE PE, SDM 8.4); `c1` tells whether
// the last rounding incremented the significand (C1, SDM 8.1.3.3). Responses
// written to the destination slot are the MASKED ones (SDM 4.9.1); the caller
// discards them when an unmasked IE/DE/ZE asks for no result. For unmasked OE/UE
// on a register destination the result is re-biased by 24576 (SDM 4.9.1.4-5).
//
// Operand classes follow SDM 8.2.2: pseudo-NaN, pseudo-infinity and unnormals are
// invalid operands (IE, indefinite result); pseudo-denormals are accepted as
// denormals with exponent -16382 (DE).
//
// The transcendentals use the BigInt big floats at the end of this file (not the slots).

/** Exception flag bits, as in the status and control words (SDM 8.1.3, 8.1.5). */
export const IE = 0x01, DE = 0x02, ZE = 0x04, OE = 0x08, UE = 0x10, PE = 0x20;

/** Rounding control values (SDM table 4-8). */
export const RC_NEAREST = 0, RC_DOWN = 1, RC_UP = 2, RC_ZERO = 3;

/** Operand classes after unpacking. Normal covers denormals (normalized on unpack). */
export const enum Cls { Zero = 0, Normal = 1, Inf = 2, QNaN = 3, SNaN = 4, Invalid = 5 }

const BIAS = 16383;
const EMIN = -16382, EMAX = 16383;
/** Exponent re-bias for unmasked overflow/underflow on a register destination (SDM 4.9.1.4). */
const ADJ = 24576;
const TWO32 = 4294967296;

export class F80 {
  /** Value slots, three words each. */
  readonly v: Uint32Array;
  /** Rounding control (RC_*). */
  rc = RC_NEAREST;
  /** Significand bits kept by add/sub/mul/div/sqrt: 24, 53 or 64 (PC). */
  pc = 64;
  /** Exception mask bits from the control word: decide masked vs re-biased OE/UE. */
  masks = 0x3f;
  /** Exceptions raised since the caller last cleared it. */
  exc = 0;
  /** The last rounding incremented the magnitude (C1 "round up"). */
  c1 = false;

  // Unpacked operands 0 and 1: class, sign, unbiased exponent, significand, denormal.
  private readonly uk = new Int32Array(2);
  private readonly us = new Int32Array(2);
  private readonly ue = new Int32Array(2);
  private readonly uh = new Uint32Array(2);
  private readonly ul = new Uint32Array(2);
  private readonly ud = new Uint8Array(2);

  // Working significand (h:l:x, x = 32 guard bits with sticky in bit 0) and exponent.
  private h = 0; private l = 0; private x = 0; private e = 0;
  private inf = false;
  /** Integer results of toInt/toF64/toBcd: low and high word. */
  outLo = 0; outHi = 0;
  private readonly w = new Uint32Array(8);

  constructor(slots: number) {
    this.v = new Uint32Array(slots * 3);
  }

  // ---------------------------------------------------------------- slots

  set(d: number, sign: number, exp: number, hi: number, lo: number): void {
    const v = this.v, i = d * 3;
    v[i] = lo; v[i + 1] = hi; v[i + 2] = (sign << 15) | exp;
  }
  copy(d: number, s: number): void {
    const v = this.v;
    v[d * 3] = v[s * 3]; v[d * 3 + 1] = v[s * 3 + 1]; v[d * 3 + 2] = v[s * 3 + 2];
  }
  /** The real indefinite: negative QNaN 0xC000000000000000 (SDM table 4-3). */
  indefinite(d: number): void { this.set(d, 1, 0x7fff, 0xc0000000, 0); }
  signOf(s: number): number { return (this.v[s * 3 + 2] >>> 15) & 1; }
  expOf(s: number): number { return this.v[s * 3 + 2] & 0x7fff; }
  hiOf(s: number): number { return this.v[s * 3 + 1]; }
  loOf(s: number): number { return this.v[s * 3]; }

  /** A finite slot's magnitude as a BigFloat (0n for zero); its sign is signOf(). For the transcendentals. */
  bigOf(s: number): Big {
    const v = this.v, exp = v[s * 3 + 2] & 0x7fff;
    const m = (BigInt(v[s * 3 + 1]) << 32n) | BigInt(v[s * 3]);
    return bigNorm(m, (exp === 0 ? 1 : exp) - BIAS - 63);
  }
  /**
   * d = (-1)^sign * r rounded to 64 bits per RC (transcendental results ignore PC,
   * SDM 8.1.5.2), with PE/UE/OE and C1 (round up) as for arithmetic. `inexact`: r is
   * an approximation of a value that is not exactly representable (a series result).
   */
  roundBig(d: number, sign: number, r: Big, inexact: boolean): void {
    const top = r.m >> BigInt(BIG_P - 96);
    const sticky = inexact || (r.m & ((1n << BigInt(BIG_P - 96)) - 1n)) !== 0n ? 1 : 0;
    this.h = Number((top >> 64n) & 0xffffffffn);
    this.l = Number((top >> 32n) & 0xffffffffn);
    this.x = (Number(top & 0xffffffffn) | sticky) >>> 0;
    this.e = r.e + BIG_P - 1;
    this.finish(d, sign, 64);
  }

  /** Class of a slot without normalizing (for FXAM and tags). */
  classOf(s: number): Cls {
    const v = this.v, hi = v[s * 3 + 1], lo = v[s * 3], exp = v[s * 3 + 2] & 0x7fff;
    if (exp === 0x7fff) {
      if ((hi & 0x80000000) === 0) return Cls.Invalid;
      if ((hi & 0x7fffffff) === 0 && lo === 0) return Cls.Inf;
      return hi & 0x40000000 ? Cls.QNaN : Cls.SNaN;
    }
    if (exp === 0) return hi === 0 && lo === 0 ? Cls.Zero : Cls.Normal;
    return hi & 0x80000000 ? Cls.Normal : Cls.Invalid;
  }
  /** Denormal or pseudo-denormal (exponent 0, significand not 0). */
  isDenormal(s: number): boolean {
    const v = this.v;
    return (v[s * 3 + 2] & 0x7fff) === 0 && (v[s * 3 + 1] | v[s * 3]) !== 0;
  }

  private unpack(s: number, k: number): void {
    const v = this.v;
    let lo = v[s * 3], hi = v[s * 3 + 1];
    const se = v[s * 3 + 2], exp = se & 0x7fff;
    this.us[k] = (se >>> 15) & 1;
    this.ud[k] = 0;
    const c = this.classOf(s);
    this.uk[k] = c;
    this.uh[k] = hi; this.ul[k] = lo;
    if (c !== Cls.Normal) { this.ue[k] = exp - BIAS; return; }
    let e = exp === 0 ? EMIN : exp - BIAS;
    if (exp === 0) this.ud[k] = 1;
    if ((hi & 0x80000000) === 0) {
      if (hi === 0) { hi = lo; lo = 0; e -= 32; }
      const n = Math.clz32(hi);
      if (n !== 0) { hi = ((hi << n) | (lo >>> (32 - n))) >>> 0; lo = (lo << n) >>> 0; e -= n; }
    }
    this.uh[k] = hi; this.ul[k] = lo; this.ue[k] = e;
  }

  /**
   * Invalid operands and NaNs of a one- or two-operand arithmetic operation: writes
   * the result to d (indefinite, or the propagated NaN made quiet; SDM table 4-7 with
   * the x87 rule "equal significands: the positive one") and returns true.
   */
  private nans(d: number, two: boolean): boolean {
    const k0 = this.uk[0], k1 = two ? this.uk[1] : Cls.Zero;
    if (k0 === Cls.Invalid || k1 === Cls.Invalid) { this.exc |= IE; this.indefinite(d); return true; }
    const n0 = k0 === Cls.QNaN || k0 === Cls.SNaN, n1 = k1 === Cls.QNaN || k1 === Cls.SNaN;
    if (!n0 && !n1) return false;
    if (k0 === Cls.SNaN || k1 === Cls.SNaN) this.exc |= IE;
    let p = n0 ? 0 : 1;
    if (n0 && n1) {
      if (k0 === Cls.SNaN && k1 === Cls.QNaN) p = 1;
      else if (k0 === Cls.QNaN && k1 === Cls.SNaN) p = 0;
      else {
        const h0 = this.uh[0] | 0x40000000, h1 = this.uh[1] | 0x40000000;
        const c = h0 !== h1 ? (h0 > h1 ? 1 : -1) : this.ul[0] !== this.ul[1] ? (this.ul[0] > this.ul[1] ? 1 : -1) : 0;
        p = c > 0 ? 0 : c < 0 ? 1 : this.us[0] === 0 ? 0 : 1;
      }
    }
    this.set(d, this.us[p], 0x7fff, (this.uh[p] | 0x40000000) >>> 0, this.ul[p]);
    return true;
  }

  private denormals(two: boolean): void {
    if (this.ud[0] || (two && this.ud[1])) this.exc |= DE;
  }

  // ---------------------------------------------------------------- rounding

  /** Shift h:l:x right by n, folding lost bits into the sticky bit (bit 0 of x). */
  private shr(n: number): void {
    if (n <= 0) return;
    let h = this.h, l = this.l, x = this.x;
    if (n >= 96) { x = (h | l | x) !== 0 ? 1 : 0; h = 0; l = 0; }
    else {
      while (n >= 32) { x = (l | (x !== 0 ? 1 : 0)) >>> 0; l = h; h = 0; n -= 32; }
      if (n > 0) {
        const st = (x << (32 - n)) !== 0 ? 1 : 0;
        x = ((l << (32 - n)) | (x >>> n) | st) >>> 0;
        l = ((h << (32 - n)) | (l >>> n)) >>> 0;
        h = h >>> n;
      }
    }
    this.h = h; this.l = l; this.x = x;
  }

  /** Normalize h:l:x (not all zero) left so bit 63 of h:l is set. */
  private normLeft(): void {
    if (this.h === 0) {
      if (this.l === 0) { this.h = this.x; this.l = 0; this.x = 0; this.e -= 64; }
      else { this.h = this.l; this.l = this.x; this.x = 0; this.e -= 32; }
    }
    const n = Math.clz32(this.h);
    if (n !== 0) {
      this.h = ((this.h << n) | (this.l >>> (32 - n))) >>> 0;
      this.l = ((this.l << n) | (this.x >>> (32 - n))) >>> 0;
      this.x = (this.x << n) >>> 0;
      this.e -= n;
    }
  }

  /**
   * Round the working value (normalized, exponent this.e) to p significand bits in a
   * format with normal exponents emin..emax. adjust: re-bias on unmasked OE/UE
   * (register destinations) instead of the masked response. Leaves this.h:l (bit 63
   * clear for a denormal, exponent emin), this.e, and this.inf.
   */
  private round(sign: number, p: number, emin: number, emax: number, adjust: boolean): void {
    let tiny = false;
    this.inf = false;
    if (this.e < emin) {
      if (adjust && (this.masks & UE) === 0) { this.e += ADJ; this.exc |= UE; }
      else { tiny = true; this.shr(emin - this.e); this.e = emin; }
    }
    let h = this.h, l = this.l;
    const x = this.x;
    let g: number, rest: number, lsb: number;
    if (p === 64) { g = x >>> 31; rest = x & 0x7fffffff; lsb = l & 1; }
    else if (p === 53) { g = (l >>> 10) & 1; rest = (l & 0x3ff) | x; lsb = (l >>> 11) & 1; l = (l & 0xfffff800) >>> 0; }
    else { g = (h >>> 7) & 1; rest = (h & 0x7f) | l | x; lsb = (h >>> 8) & 1; h = (h & 0xffffff00) >>> 0; l = 0; }
    const inexact = (g | rest) !== 0;
    let inc = false;
    switch (this.rc) {
      case RC_NEAREST: inc = g !== 0 && (rest !== 0 || lsb !== 0); break;
      case RC_DOWN: inc = inexact && sign !== 0; break;
      case RC_UP: inc = inexact && sign === 0; break;
    }
    if (inc) {
      if (p === 24) h += 0x100;
      else {
        l += p === 64 ? 1 : 0x800;
        if (l >= TWO32) { l -= TWO32; h += 1; }
      }
      if (h >= TWO32) { h = 0x80000000; l = 0; this.e++; }
    }
    this.c1 = inc;
    if (inexact) { this.exc |= PE; if (tiny) this.exc |= UE; }
    this.h = h >>> 0; this.l = l >>> 0;
    if (this.e > emax) {
      if (adjust && (this.masks & OE) === 0) { this.e -= ADJ; this.exc |= OE; return; }
      this.exc |= OE | PE;
      const rc = this.rc;
      if (rc === RC_NEAREST || (rc === RC_DOWN && sign !== 0) || (rc === RC_UP && sign === 0)) {
        this.inf = true; this.c1 = true;
      } else {
        // Largest finite magnitude of the precision (SDM table 4-10).
        this.e = emax; this.c1 = false;
        this.h = 0xffffffff; this.l = p === 64 ? 0xffffffff : p === 53 ? 0xfffff800 : 0;
        if (p === 24) this.h = 0xffffff00;
      }
    }
  }

  /** Round the working value to the 80-bit format with precision p and store it. */
  private finish(d: number, sign: number, p: number): void {
    this.round(sign, p, EMIN, EMAX, true);
    if (this.inf) { this.set(d, sign, 0x7fff, 0x80000000, 0); return; }
    const exp = this.h & 0x80000000 ? this.e + BIAS : 0;
    this.set(d, sign, exp, this.h, this.l);
  }

  private zero(d: number, sign: number): void { this.set(d, sign, 0, 0, 0); }
  private infinity(d: number, sign: number): void { this.set(d, sign, 0x7fff, 0x80000000, 0); }

  // ---------------------------------------------------------------- arithmetic

  /** d = a + b (or a - b when negB), rounded to PC. */
  add(d: number, a: number, b: number, negB: boolean): void {
    this.unpack(a, 0); this.unpack(b, 1);
    // A NaN result keeps the NaN operand's own sign: negate b only after NaN selection (SDM 4.8.3.5).
    if (this.nans(d, true)) return;
    if (negB) this.us[1] ^= 1;
    this.denormals(true);
    const k0 = this.uk[0], k1 = this.uk[1], s0 = this.us[0], s1 = this.us[1];
    if (k0 === Cls.Inf || k1 === Cls.Inf) {
      if (k0 === Cls.Inf && k1 === Cls.Inf && s0 !== s1) { this.exc |= IE; this.indefinite(d); return; }
      this.infinity(d, k0 === Cls.Inf ? s0 : s1);
      return;
    }
    if (k0 === Cls.Zero && k1 === Cls.Zero) {
      this.zero(d, s0 === s1 ? s0 : this.rc === RC_DOWN ? 1 : 0); // SDM 4.8.3.? (sum of opposite zeros)
      return;
    }
    if (k0 === Cls.Zero || k1 === Cls.Zero) {
      const k = k0 === Cls.Zero ? 1 : 0;
      this.h = this.uh[k]; this.l = this.ul[k]; this.x = 0; this.e = this.ue[k];
      this.finish(d, this.us[k], this.pc);
      return;
    }
    // Larger magnitude first.
    let i = 0;
    const e0 = this.ue[0], e1 = this.ue[1];
    if (e1 > e0 || (e1 === e0 && (this.uh[1] > this.uh[0] || (this.uh[1] === this.uh[0] && this.ul[1] > this.ul[0])))) i = 1;
    const j = 1 - i;
    this.h = this.uh[j]; this.l = this.ul[j]; this.x = 0;
    this.shr(this.ue[i] - this.ue[j]);
    const bh = this.h, bl = this.l, bx = this.x;
    const ah = this.uh[i], al = this.ul[i];
    const sign = this.us[i];
    this.e = this.ue[i];
    if (s0 === s1) {
      let t = al + bl;
      const c = t >= TWO32 ? 1 : 0;
      this.l = t >>> 0;
      t = ah + bh + c;
      this.x = bx; this.h = t >>> 0;
      if (t >= TWO32) {
        this.shr(1);
        this.h = (this.h | 0x80000000) >>> 0;
        this.e++;
      }
    } else {
      let t = 0 - bx;
      let bw = t < 0 ? 1 : 0;
      this.x = t >>> 0;
      t = al - bl - bw; bw = t < 0 ? 1 : 0; this.l = t >>> 0;
      t = ah - bh - bw; this.h = t >>> 0;
      if ((this.h | this.l | this.x) === 0) { this.zero(d, this.rc === RC_DOWN ? 1 : 0); return; }
      this.normLeft();
    }
    this.finish(d, sign, this.pc);
  }

  /** d = a * b, rounded to PC. */
  mul(d: number, a: number, b: number): void {
    this.unpack(a, 0); this.unpack(b, 1);
    if (this.nans(d, true)) return;
    this.denormals(true);
    const k0 = this.uk[0], k1 = this.uk[1], sign = this.us[0] ^ this.us[1];
    if (k0 === Cls.Inf || k1 === Cls.Inf) {
      if (k0 === Cls.Zero || k1 === Cls.Zero) { this.exc |= IE; this.indefinite(d); return; }
      this.infinity(d, sign); return;
    }
    if (k0 === Cls.Zero || k1 === Cls.Zero) { this.zero(d, sign); return; }
    this.mulSig(this.uh[0], this.ul[0], this.uh[1], this.ul[1]);
    this.e = this.ue[0] + this.ue[1] + 1; // the product is in [1, 4)
    if ((this.h & 0x80000000) === 0) this.normLeft();
    this.finish(d, sign, this.pc);
  }

  /** 64x64 -> 128-bit product into h:l:x (top 96 bits, sticky for the rest); 16-bit limbs in doubles. */
  private mulSig(ah: number, al: number, bh: number, bl: number): void {
    const a0 = al & 0xffff, a1 = al >>> 16, a2 = ah & 0xffff, a3 = ah >>> 16;
    const b0 = bl & 0xffff, b1 = bl >>> 16, b2 = bh & 0xffff, b3 = bh >>> 16;
    const w = this.w;
    let c = a0 * b0;
    w[0] = c % 65536; c = Math.floor(c / 65536);
    c += a0 * b1 + a1 * b0; w[1] = c % 65536; c = Math.floor(c / 65536);
    c += a0 * b2 + a1 * b1 + a2 * b0; w[2] = c % 65536; c = Math.floor(c / 65536);
    c += a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0; w[3] = c % 65536; c = Math.floor(c / 65536);
    c += a1 * b3 + a2 * b2 + a3 * b1; w[4] = c % 65536; c = Math.floor(c / 65536);
    c += a2 * b3 + a3 * b2; w[5] = c % 65536; c = Math.floor(c / 65536);
    c += a3 * b3; w[6] = c % 65536; c = Math.floor(c / 65536);
    w[7] = c;
    this.h = ((w[7] << 16) | w[6]) >>> 0;
    this.l = ((w[5] << 16) | w[4]) >>> 0;
    this.x = (((w[3] << 16) | w[2]) | ((w[1] | w[0]) !== 0 ? 1 : 0)) >>> 0;
  }

  /** d = a / b, rounded to PC. */
  div(d: number, a: number, b: number): void {
    this.unpack(a, 0); this.unpack(b, 1);
    if (this.nans(d, true)) return;
    this.denormals(true);
    const k0 = this.uk[0], k1 = this.uk[1], sign = this.us[0] ^ this.us[1];
    if (k0 === Cls.Inf) {
      if (k1 === Cls.Inf) { this.exc |= IE; this.indefinite(d); return; }
      this.infinity(d, sign); return;
    }
    if (k1 === Cls.Inf) { this.zero(d, sign); return; }
    if (k1 === Cls.Zero) {
      if (k0 === Cls.Zero) { this.exc |= IE; this.indefinite(d); return; }
      this.exc |= ZE; this.infinity(d, sign); return;
    }
    if (k0 === Cls.Zero) { this.zero(d, sign); return; }
    this.e = this.ue[0] - this.ue[1];
    this.divSig(this.uh[0], this.ul[0], this.uh[1], this.ul[1]);
    this.finish(d, sign, this.pc);
  }

  /** Quotient of two normalized significands to 96 bits with sticky; adjusts this.e. */
  private divSig(ah: number, al: number, bh: number, bl: number): void {
    let r2 = 0, r1 = ah, r0 = al;
    if (ah < bh || (ah === bh && al < bl)) { r2 = r1 >>> 31; r1 = ((r1 << 1) | (r0 >>> 31)) >>> 0; r0 = (r0 << 1) >>> 0; this.e--; }
    let q2 = 0, q1 = 0, q0 = 0;
    for (let i = 0; i < 96; i++) {
      let bit = 0;
      if (r2 !== 0 || r1 > bh || (r1 === bh && r0 >= bl)) {
        let t = r0 - bl; const bw = t < 0 ? 1 : 0; r0 = t >>> 0;
        t = r1 - bh - bw; r1 = t >>> 0; r2 = 0;
        bit = 1;
      }
      q2 = ((q2 << 1) | (q1 >>> 31)) >>> 0; q1 = ((q1 << 1) | (q0 >>> 31)) >>> 0; q0 = ((q0 << 1) | bit) >>> 0;
      r2 = r1 >>> 31; r1 = ((r1 << 1) | (r0 >>> 31)) >>> 0; r0 = (r0 << 1) >>> 0;
    }
    this.h = q2; this.l = q1; this.x = (q0 | ((r2 | r1 | r0) !== 0 ? 1 : 0)) >>> 0;
  }

  /** d = sqrt(a), rounded to PC. */
  sqrt(d: number, a: number): void {
    this.unpack(a, 0);
    if (this.nans(d, false)) return;
    this.denormals(false);
    const k = this.uk[0], s = this.us[0];
    if (k === Cls.Zero) { this.zero(d, s); return; }
    if (s !== 0) { this.exc |= IE; this.indefinite(d); return; }
    if (k === Cls.Inf) { this.infinity(d, 0); return; }
    const e = this.ue[0];
    // Radicand N = sig * 2^127 (e even) or sig * 2^128 (e odd), 192 bits in w[5..0]
    // (w[5] most significant); root = floor(sqrt(N)) has bit 95 set.
    const w = this.w, odd = (e & 1) !== 0;
    const sh = this.uh[0], sl = this.ul[0];
    w[0] = 0; w[1] = 0; w[2] = 0; w[3] = 0;
    if (odd) { w[5] = sh; w[4] = sl; } else { w[5] = sh >>> 1; w[4] = ((sh << 31) | (sl >>> 1)) >>> 0; w[3] = (sl << 31) >>> 0; }
    // Restoring square root, two radicand bits per step; rem < 2^98, root < 2^96.
    let r3 = 0, r2 = 0, r1 = 0, r0 = 0; // remainder
    let q2 = 0, q1 = 0, q0 = 0; // root
    for (let i = 95; i >= 0; i--) {
      const wi = (i * 2) >>> 5, bi = (i * 2) & 31;
      const two = (w[wi] >>> bi) & 3;
      r3 = ((r3 << 2) | (r2 >>> 30)) >>> 0; r2 = ((r2 << 2) | (r1 >>> 30)) >>> 0;
      r1 = ((r1 << 2) | (r0 >>> 30)) >>> 0; r0 = ((r0 << 2) | two) >>> 0;
      // trial t = 4*root + 1
      const t3 = q2 >>> 30, t2 = ((q2 << 2) | (q1 >>> 30)) >>> 0, t1 = ((q1 << 2) | (q0 >>> 30)) >>> 0, t0 = ((q0 << 2) | 1) >>> 0;
      const ge = r3 !== t3 ? r3 > t3 : r2 !== t2 ? r2 > t2 : r1 !== t1 ? r1 > t1 : r0 >= t0;
      q2 = ((q2 << 1) | (q1 >>> 31)) >>> 0; q1 = ((q1 << 1) | (q0 >>> 31)) >>> 0; q0 = (q0 << 1) >>> 0;
      if (ge) {
        let t = r0 - t0; let bw = t < 0 ? 1 : 0; r0 = t >>> 0;
        t = r1 - t1 - bw; bw = t < 0 ? 1 : 0; r1 = t >>> 0;
        t = r2 - t2 - bw; bw = t < 0 ? 1 : 0; r2 = t >>> 0;
        r3 = (r3 - t3 - bw) >>> 0;
        q0 = (q0 | 1) >>> 0;
      }
    }
    this.h = q2; this.l = q1; this.x = (q0 | ((r3 | r2 | r1 | r0) !== 0 ? 1 : 0)) >>> 0;
    this.e = Math.floor(e / 2);
    this.finish(d, 0, this.pc);
  }

  /**
   * Compare a with b (SDM FCOM/FUCOM): 0 a>b, 1 a<b, 2 equal, 3 unordered. IE on an
   * SNaN or invalid operand, and on any NaN unless quiet (FUCOM*); DE on a denormal.
   */
  compare(a: number, b: number, quiet: boolean): number {
    this.unpack(a, 0); this.unpack(b, 1);
    const k0 = this.uk[0], k1 = this.uk[1];
    if (k0 >= Cls.QNaN || k1 >= Cls.QNaN) {
      if (!quiet || k0 >= Cls.SNaN || k1 >= Cls.SNaN) this.exc |= IE;
      return 3;
    }
    this.denormals(true);
    if (k0 === Cls.Zero && k1 === Cls.Zero) return 2;
    const s0 = this.us[0], s1 = this.us[1];
    if (k0 !== Cls.Zero && k1 !== Cls.Zero && s0 !== s1) return s0 ? 1 : 0;
    if (k0 === Cls.Zero) return s1 ? 0 : 1;
    if (k1 === Cls.Zero) return s0 ? 1 : 0;
    // Same sign, both non-zero: compare magnitudes.
    let m: number;
    if (k0 === Cls.Inf || k1 === Cls.Inf) m = k0 === k1 ? 0 : k0 === Cls.Inf ? 1 : -1;
    else if (this.ue[0] !== this.ue[1]) m = this.ue[0] > this.ue[1] ? 1 : -1;
    else if (this.uh[0] !== this.uh[1]) m = this.uh[0] > this.uh[1] ? 1 : -1;
    else if (this.ul[0] !== this.ul[1]) m = this.ul[0] > this.ul[1] ? 1 : -1;
    else m = 0;
    if (m === 0) return 2;
    return (m > 0) !== (s0 !== 0) ? 0 : 1;
  }

  // ---------------------------------------------------------------- integers

  /**
   * Round the working value (sign, exponent this.e, sig h:l) to an integer per RC:
   * magnitude left in h:l (h:l < 2^64 when e < 64; caller checks range). Sets PE and c1.
   */
  private toIntMag(sign: number): boolean {
    const e = this.e;
    this.x = 0; this.c1 = false;
    if (e >= 63) return e === 63; // already an integer; e > 63 does not fit 64 bits
    this.shr(63 - e);
    let l = this.l, h = this.h;
    const x = this.x, g = x >>> 31, rest = x & 0x7fffffff, inexact = x !== 0;
    let inc = false;
    switch (this.rc) {
      case RC_NEAREST: inc = g !== 0 && (rest !== 0 || (l & 1) !== 0); break;
      case RC_DOWN: inc = inexact && sign !== 0; break;
      case RC_UP: inc = inexact && sign === 0; break;
    }
    if (inc) { l += 1; if (l >= TWO32) { l -= TWO32; h += 1; } }
    this.h = h >>> 0; this.l = l >>> 0;
    if (inexact) this.exc |= PE;
    this.c1 = inc;
    return true;
  }

  /** FRNDINT: d = a rounded to an integer per RC (SDM Vol. 2 FRNDINT). */
  roundInt(d: number, a: number): void {
    this.unpack(a, 0);
    if (this.nans(d, false)) return;
    this.denormals(false);
    const k = this.uk[0], s = this.us[0];
    if (k !== Cls.Normal || this.ue[0] >= 63) { this.copy(d, a); this.c1 = false; return; }
    this.h = this.uh[0]; this.l = this.ul[0]; this.e = this.ue[0];
    this.toIntMag(s);
    if ((this.h | this.l) === 0) { this.zero(d, s); return; }
    this.x = 0; this.e = 63;
    this.normLeft();
    this.set(d, s, this.e + BIAS, this.h, this.l);
  }

  /**
   * FIST: convert a to a signed integer of `bits` (16, 32, 64) per RC into
   * outLo/outHi. Out of range, NaN, infinity or invalid: IE and the integer
   * indefinite (SDM table 4-2); returns false then.
   */
  toInt(a: number, bits: number): boolean {
    this.unpack(a, 0);
    const k = this.uk[0], s = this.us[0];
    this.c1 = false;
    if (k === Cls.Zero) { this.outLo = 0; this.outHi = 0; return true; }
    if (k !== Cls.Normal) return this.intIndefinite(bits);
    this.h = this.uh[0]; this.l = this.ul[0]; this.e = this.ue[0];
    const savedExc = this.exc;
    if (!this.toIntMag(s)) return this.intIndefinite(bits);
    let h = this.h, l = this.l;
    let ok: boolean;
    if (bits === 64) ok = h < 0x80000000 || (s !== 0 && h === 0x80000000 && l === 0);
    else {
      const lim = bits === 32 ? 0x80000000 : 0x8000;
      ok = h === 0 && (l < lim || (s !== 0 && l === lim));
    }
    if (!ok) { this.exc = savedExc; return this.intIndefinite(bits); }
    if (s !== 0) { // two's complement
      l = (~l + 1) >>> 0; h = (~h + (l === 0 ? 1 : 0)) >>> 0;
    }
    if (bits === 16) l &= 0xffff;
    this.outLo = l; this.outHi = bits === 64 ? h : 0;
    return true;
  }
  private intIndefinite(bits: number): boolean {
    this.exc |= IE; this.c1 = false;
    this.outLo = bits === 16 ? 0x8000 : bits === 32 ? 0x80000000 : 0;
    this.outHi = bits === 64 ? 0x80000000 : 0;
    return false;
  }

  /** d = a signed 32-bit integer (exact). */
  fromInt32(d: number, v: number): void {
    v |= 0;
    this.fromInt64(d, v >>> 0, v < 0 ? 0xffffffff : 0);
  }
  /** d = the signed 64-bit integer hi:lo (exact). */
  fromInt64(d: number, lo: number, hi: number): void {
    let s = 0;
    lo >>>= 0; hi >>>= 0;
    if (hi & 0x80000000) { s = 1; lo = (~lo + 1) >>> 0; hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0; }
    if ((hi | lo) === 0) { this.zero(d, 0); return; }
    this.h = hi; this.l = lo; this.x = 0; this.e = 63;
    this.normLeft();
    this.set(d, s, this.e + BIAS, this.h, this.l);
  }

  // ---------------------------------------------------------------- floats

  /** d = float32 bits (exact). A denormal raises DE; an SNaN stays signalling (the consumer raises IE). */
  fromF32(d: number, bits: number): void {
    const s = bits >>> 31, exp = (bits >>> 23) & 0xff, frac = bits & 0x7fffff;
    if (exp === 0xff) { this.set(d, s, 0x7fff, (0x80000000 | (frac << 8)) >>> 0, 0); return; }
    if (exp === 0) {
      if (frac === 0) { this.zero(d, s); return; }
      this.exc |= DE;
      this.h = (frac << 8) >>> 0; this.l = 0; this.x = 0; this.e = -126;
      this.normLeft();
      this.set(d, s, this.e + BIAS, this.h, 0);
      return;
    }
    this.set(d, s, exp - 127 + BIAS, (0x80000000 | (frac << 8)) >>> 0, 0);
  }
  /** d = float64 hi:lo (exact). A denormal raises DE; an SNaN stays signalling. */
  fromF64(d: number, lo: number, hi: number): void {
    const s = hi >>> 31, exp = (hi >>> 20) & 0x7ff;
    const fh = ((hi & 0xfffff) << 11 | (lo >>> 21)) >>> 0, fl = (lo << 11) >>> 0;
    if (exp === 0x7ff) { this.set(d, s, 0x7fff, (0x80000000 | fh) >>> 0, fl); return; }
    if (exp === 0) {
      if ((fh | fl) === 0) { this.zero(d, s); return; }
      this.exc |= DE;
      this.h = fh; this.l = fl; this.x = 0; this.e = -1022;
      this.normLeft();
      this.set(d, s, this.e + BIAS, this.h, this.l);
      return;
    }
    this.set(d, s, exp - 1023 + BIAS, (0x80000000 | fh) >>> 0, fl);
  }

  /** FST m32: a rounded to float32 per RC; returns the bits. IE on SNaN/invalid (quiet NaN / indefinite). */
  toF32(a: number): number {
    this.unpack(a, 0);
    const k = this.uk[0], s = this.us[0], sb = s << 31;
    this.c1 = false;
    switch (k) {
      case Cls.Invalid: this.exc |= IE; return 0xffc00000;
      case Cls.SNaN: this.exc |= IE; // fall through: quieted
      case Cls.QNaN: return (sb | 0x7fc00000 | ((this.uh[0] >>> 8) & 0x3fffff)) >>> 0;
      case Cls.Inf: return (sb | 0x7f800000) >>> 0;
      case Cls.Zero: return sb >>> 0;
    }
    this.h = this.uh[0]; this.l = this.ul[0]; this.x = 0; this.e = this.ue[0];
    this.round(s, 24, -126, 127, false);
    if (this.inf) return (sb | 0x7f800000) >>> 0;
    const exp = this.h & 0x80000000 ? this.e + 127 : 0;
    return (sb | (exp << 23) | ((this.h >>> 8) & 0x7fffff)) >>> 0;
  }
  /** FST m64: a rounded to float64 per RC into outLo/outHi. */
  toF64(a: number): void {
    this.unpack(a, 0);
    const k = this.uk[0], s = this.us[0], sb = s << 31;
    this.c1 = false;
    let hi: number, lo = 0;
    switch (k) {
      case Cls.Invalid: this.exc |= IE; hi = 0xfff80000; break;
      case Cls.SNaN: case Cls.QNaN:
        if (k === Cls.SNaN) this.exc |= IE;
        hi = sb | 0x7ff80000 | ((this.uh[0] >>> 11) & 0x7ffff);
        lo = (this.uh[0] << 21) | (this.ul[0] >>> 11);
        break;
      case Cls.Inf: hi = sb | 0x7ff00000; break;
      case Cls.Zero: hi = sb; break;
      default: {
        this.h = this.uh[0]; this.l = this.ul[0]; this.x = 0; this.e = this.ue[0];
        this.round(s, 53, -1022, 1023, false);
        if (this.inf) { hi = sb | 0x7ff00000; break; }
        const exp = this.h & 0x80000000 ? this.e + 1023 : 0;
        hi = sb | (exp << 20) | ((this.h >>> 11) & 0xfffff);
        lo = (this.h << 21) | (this.l >>> 11);
      }
    }
    this.outHi = hi >>> 0; this.outLo = lo >>> 0;
  }

  /** The value as a JS number (rounded to nearest; for transcendentals and tests). */
  toNumber(a: number): number {
    const saveRc = this.rc, saveExc = this.exc, saveC1 = this.c1;
    this.rc = RC_NEAREST;
    this.toF64(a);
    this.rc = saveRc; this.exc = saveExc; this.c1 = saveC1;
    F64_U32[0] = this.outLo; F64_U32[1] = this.outHi;
    return F64[0];
  }
  /** d = a JS number (exact: a float64 is representable). */
  fromNumber(d: number, n: number): void {
    F64[0] = n;
    const saveExc = this.exc;
    this.fromF64(d, F64_U32[0], F64_U32[1]);
    this.exc = saveExc;
  }

  // ---------------------------------------------------------------- packed BCD

  /** FBLD: d = 18-digit packed BCD in b[0..9] (byte 9 bit 7: sign). Exact. */
  fromBcd(d: number, b: Uint8Array): void {
    let h = 0, l = 0;
    for (let i = 8; i >= 0; i--) {
      for (let nib = 4; nib >= 0; nib -= 4) {
        const dig = (b[i] >>> nib) & 15;
        const t = l * 10 + dig;
        const c = Math.floor(t / TWO32);
        l = t - c * TWO32;
        h = h * 10 + c;
      }
    }
    const s = b[9] >>> 7;
    if (h === 0 && l === 0) { this.zero(d, s); return; }
    this.h = h >>> 0; this.l = l >>> 0; this.x = 0; this.e = 63;
    this.normLeft();
    this.set(d, s, this.e + BIAS, this.h, this.l);
  }
  /** FBSTP: a rounded per RC into packed BCD b[0..9]; IE and the BCD indefinite when out of range. */
  toBcd(a: number, b: Uint8Array): boolean {
    this.unpack(a, 0);
    const k = this.uk[0], s = this.us[0];
    this.c1 = false;
    let h = 0, l = 0;
    if (k === Cls.Normal) {
      this.h = this.uh[0]; this.l = this.ul[0]; this.e = this.ue[0];
      const saved = this.exc;
      // 10^18 = 0x0DE0B6B3A7640000
      if (!this.toIntMag(s) || this.h > 0x0de0b6b3 || (this.h === 0x0de0b6b3 && this.l >= 0xa7640000)) {
        this.exc = saved;
        return this.bcdIndefinite(b);
      }
      h = this.h; l = this.l;
    } else if (k !== Cls.Zero) return this.bcdIndefinite(b);
    for (let i = 0; i < 9; i++) {
      let byte = 0;
      for (let nib = 0; nib <= 4; nib += 4) {
        const qh = Math.floor(h / 10), rh = h - qh * 10;
        const t = rh * TWO32 + l;
        const ql = Math.floor(t / 10);
        byte |= (t - ql * 10) << nib;
        h = qh; l = ql;
      }
      b[i] = byte;
    }
    b[9] = s << 7;
    return true;
  }
  private bcdIndefinite(b: Uint8Array): boolean {
    // Packed BCD indefinite: FFFF C000 0000 0000 0000h (SDM Vol. 1 table 4-4... FBSTP).
    this.exc |= IE; this.c1 = false;
    b.fill(0); b[9] = 0xff; b[8] = 0xff; b[7] = 0xc0;
    return false;
  }

  // ---------------------------------------------------------------- misc

  /**
   * FSCALE: d = a * 2^trunc(b) (SDM Vol. 2 FSCALE), exact unless it over/underflows;
   * rounded at 64 bits.
   */
  scale(d: number, a: number, b: number): void {
    this.unpack(a, 0); this.unpack(b, 1);
    if (this.nans(d, true)) return;
    this.denormals(true);
    const k0 = this.uk[0], k1 = this.uk[1], s0 = this.us[0], s1 = this.us[1];
    if (k1 === Cls.Inf) {
      if ((k0 === Cls.Zero && s1 === 0) || (k0 === Cls.Inf && s1 !== 0)) { this.exc |= IE; this.indefinite(d); return; }
      if (k0 === Cls.Zero || k0 === Cls.Inf) { this.copy(d, a); return; }
      if (s1 === 0) this.infinity(d, s0); else this.zero(d, s0);
      return;
    }
    if (k0 !== Cls.Normal) { this.copy(d, a); return; }
    // trunc(b): |b| < 2^31 is enough; beyond it the result surely over/underflows.
    let n = 0;
    if (k1 === Cls.Normal) {
      const eb = this.ue[1];
      if (eb >= 20) n = 1 << 20;
      else if (eb >= 0) n = this.uh[1] >>> (31 - eb);
      if (s1) n = -n;
    }
    this.h = this.uh[0]; this.l = this.ul[0]; this.x = 0; this.e = this.ue[0] + n;
    this.finish(d, s0, 64);
  }

  /**
   * FXTRACT: exponent of a (as a real) to dExp and the significand (exponent 0) to
   * dSig (SDM Vol. 2 FXTRACT). Zero: ZE, exponent -inf.
   */
  extract(dExp: number, dSig: number, a: number): void {
    this.unpack(a, 0);
    if (this.nans(dSig, false)) { this.copy(dExp, dSig); return; }
    this.denormals(false);
    const k = this.uk[0], s = this.us[0];
    if (k === Cls.Zero) { this.exc |= ZE; this.infinity(dExp, 1); this.zero(dSig, s); return; }
    if (k === Cls.Inf) { this.infinity(dExp, 0); this.infinity(dSig, s); return; }
    this.fromInt32(dExp, this.ue[0]);
    this.set(dSig, s, BIAS, this.uh[0], this.ul[0]);
  }

  /**
   * FPREM (round = false) / FPREM1 (round = true): d = partial remainder of a / b
   * (SDM Vol. 2 FPREM). Returns the condition bits: bit 0..2 the low quotient
   * bits Q0..Q2, bit 3 set when the reduction is incomplete (C2).
   */
  rem(d: number, a: number, b: number, round: boolean): number {
    this.unpack(a, 0); this.unpack(b, 1);
    if (this.nans(d, true)) return 0;
    const k0 = this.uk[0], k1 = this.uk[1], s0 = this.us[0];
    if (k0 === Cls.Inf || k1 === Cls.Zero) { this.exc |= IE; this.indefinite(d); return 0; }
    this.denormals(true);
    if (k0 === Cls.Zero || k1 === Cls.Inf) { this.copy(d, a); return 0; }
    const ea = this.ue[0], eb = this.ue[1];
    let diff = ea - eb;
    if (diff < 0 && !(round && diff === -1)) { this.copy(d, a); return 0; }
    let partial = false;
    // Partial reduction when the exponents differ by 64 or more: N between 32 and 63 (SDM).
    if (diff >= 64) { partial = true; diff = 32 + (diff & 31); }
    const bh = this.uh[1], bl = this.ul[1];
    let r2 = 0, r1 = this.uh[0], r0 = this.ul[0], q = 0;
    let eRes = eb;
    if (diff >= 0) {
      for (let i = diff; i >= 0; i--) {
        let bit = 0;
        if (r2 !== 0 || r1 > bh || (r1 === bh && r0 >= bl)) {
          let t = r0 - bl; const bw = t < 0 ? 1 : 0; r0 = t >>> 0;
          t = r1 - bh - bw; r1 = t >>> 0; r2 = 0; bit = 1;
        }
        q = ((q << 1) | bit) & 0xff;
        if (i > 0) { r2 = r1 >>> 31; r1 = ((r1 << 1) | (r0 >>> 31)) >>> 0; r0 = (r0 << 1) >>> 0; }
      }
      eRes = partial ? ea - diff : eb;
    } else eRes = ea; // FPREM1 with |a| in [b/2, b): quotient 0 or 1 by rounding only
    let sign = s0;
    if (round && !partial) {
      // Round the quotient to nearest: compare 2r with b (r at the scale of b).
      let c: number;
      if (diff < 0) { // r = a, a's exponent is eb - 1: 2r vs b -> compare sig a with sig b
        c = r1 !== bh ? (r1 > bh ? 1 : -1) : r0 !== bl ? (r0 > bl ? 1 : -1) : 0;
        eRes = ea;
      } else {
        const t2 = r1 >>> 31, t1 = ((r1 << 1) | (r0 >>> 31)) >>> 0, t0 = (r0 << 1) >>> 0;
        c = t2 !== 0 ? 1 : t1 !== bh ? (t1 > bh ? 1 : -1) : t0 !== bl ? (t0 > bl ? 1 : -1) : 0;
      }
      if (c > 0 || (c === 0 && (q & 1) !== 0)) {
        // r = b - r (scale of b), quotient + 1, sign flips.
        if (diff < 0) {
          // a = r * 2^(eb-1) scale: b - a with b at one more exponent: work at a's scale (x2 for b).
          let t = (bl * 2) % TWO32 - r0; const c0 = Math.floor((bl * 2) / TWO32);
          let bw = t < 0 ? 1 : 0; r0 = t >>> 0;
          t = ((bh * 2 + c0) % TWO32) - r1 - bw; r1 = t >>> 0; r2 = 0;
          eRes = ea;
        } else {
          let t = bl - r0; const bw = t < 0 ? 1 : 0; r0 = t >>> 0;
          t = bh - r1 - bw; r1 = t >>> 0;
        }
        q = (q + 1) & 0xff;
        sign ^= 1;
      }
    }
    if ((r1 | r0) === 0) { this.zero(d, s0); return ((q & 7) | (partial ? 8 : 0)); }
    this.h = r1; this.l = r0; this.x = 0; this.e = eRes;
    this.normLeft();
    const saveRc = this.rc; this.rc = RC_NEAREST;
    this.finish(d, sign, 64); // exact; a tiny remainder becomes a denormal
    this.rc = saveRc;
    return (q & 7) | (partial ? 8 : 0);
  }
}

const F64 = new Float64Array(1);
const F64_U32 = new Uint32Array(F64.buffer);

// ---------------------------------------------------------------- big floats
// The transcendentals (F2XM1, FYL2X, FYL2XP1, FPATAN, FSIN, FCOS, FSINCOS, FPTAN) are evaluated on BigInt
// significands of BIG_P bits (series with well over 64 correct bits), then rounded once
// to the 64-bit format. They allocate: acceptable for these rare, slow instructions.

/** Significand bits of a Big. */
export const BIG_P = 192;
/** A positive value m * 2^e with m of exactly BIG_P bits (or m = 0n for zero). */
export interface Big { m: bigint; e: number }

function bitLen(m: bigint): number { return m === 0n ? 0 : m.toString(2).length; }

export function bigNorm(m: bigint, e: number): Big {
  if (m === 0n) return { m, e: 0 };
  const n = bitLen(m);
  return n > BIG_P ? { m: m >> BigInt(n - BIG_P), e: e + n - BIG_P } : { m: m << BigInt(BIG_P - n), e: e - (BIG_P - n) };
}
export function bigInt(k: number): Big { return bigNorm(BigInt(k), 0); }
export function bigMul(a: Big, b: Big): Big { return bigNorm(a.m * b.m, a.e + b.e); }
export function bigDiv(a: Big, b: Big): Big { return bigNorm((a.m << BigInt(BIG_P + 2)) / b.m, a.e - b.e - BIG_P - 2); }
/** a + b, or a - b when neg (callers keep a >= b for a difference). */
export function bigAdd(a: Big, b: Big, neg = false): Big {
  if (b.m === 0n) return a;
  if (a.m === 0n) return b;
  const lo = Math.min(a.e, b.e), hi = Math.max(a.e, b.e);
  if (hi - lo > 2 * BIG_P) return a.e > b.e ? a : b; // far below the precision kept
  const am = a.m << BigInt(a.e - lo), bm = b.m << BigInt(b.e - lo);
  return bigNorm(neg ? am - bm : am + bm, lo);
}
function bigSqrt(a: Big): Big {
  // isqrt of m * 2^k with k even and enough bits for BIG_P result bits.
  let m = a.m, e = a.e;
  m <<= BigInt(BIG_P + 2); e -= BIG_P + 2;
  if (e & 1) { m <<= 1n; e -= 1; }
  let x = 1n << BigInt(Math.ceil(bitLen(m) / 2));
  for (;;) { const y = (x + m / x) >> 1n; if (y >= x) break; x = y; }
  return bigNorm(x, e / 2);
}
/** Relative smallness: b below a * 2^-(BIG_P - 8). */
function negligible(term: Big, sum: Big): boolean { return term.m === 0n || term.e < sum.e - BIG_P + 8; }

/** atanh(t) = t + t^3/3 + ..., for 0 < t <= 1/3. */
function bigAtanh(t: Big): Big {
  const t2 = bigMul(t, t);
  let p = t, sum = t;
  for (let k = 3; ; k += 2) {
    p = bigMul(p, t2);
    const term = bigDiv(p, bigInt(k));
    if (negligible(term, sum)) return sum;
    sum = bigAdd(sum, term);
  }
}
/** atan(z) for 0 < z <= 1: three halvings z / (1 + sqrt(1 + z^2)), then the alternating series. */
function bigAtan(z: Big): Big {
  const one = bigInt(1);
  for (let i = 0; i < 3; i++) z = bigDiv(z, bigAdd(one, bigSqrt(bigAdd(one, bigMul(z, z)))));
  const z2 = bigMul(z, z);
  let p = z, pos = z, negs: Big = { m: 0n, e: 0 };
  for (let k = 3; ; k += 2) {
    p = bigMul(p, z2);
    const term = bigDiv(p, bigInt(k));
    if (negligible(term, pos)) break;
    if (((k - 1) / 2) & 1) negs = bigAdd(negs, term); else pos = bigAdd(pos, term);
  }
  const r = bigAdd(pos, negs, true);
  return { m: r.m, e: r.e + 3 };
}
let LN2: Big | null = null, PI: Big | null = null;
/** ln 2 = 2 atanh(1/3). */
export function bigLn2(): Big { if (!LN2) { const a = bigAtanh(bigDiv(bigInt(1), bigInt(3))); LN2 = { m: a.m, e: a.e + 1 }; } return LN2; }
/** pi = 4 atan(1). */
export function bigPi(): Big { if (!PI) { const a = bigAtan(bigInt(1)); PI = { m: a.m, e: a.e + 2 }; } return PI; }

/** log2(x) for finite x > 0, as [sign, magnitude]. */
export function bigLog2(x: Big): [number, Big] {
  const k = x.e + BIG_P - 1; // x = mm * 2^k, mm in [1, 2)
  const mm: Big = { m: x.m, e: -(BIG_P - 1) };
  const one = bigInt(1);
  const frac = mm.m === one.m && mm.e === one.e ? { m: 0n, e: 0 }
    : (() => { const a = bigAtanh(bigDiv(bigAdd(mm, one, true), bigAdd(mm, one))); return bigDiv({ m: a.m, e: a.e + 1 }, bigLn2()); })();
  if (k >= 0) return [0, bigAdd(bigInt(k), frac)];
  // k < 0: log2 = -( |k| - frac ), |k| >= 1 > frac
  return [1, bigAdd(bigInt(-k), frac, true)];
}
/** log2(1 + x) for -1 < x, x != 0, given sign and |x|: 2 atanh(x / (2 + x)) / ln 2, as [sign, magnitude]. */
export function bigLog2p1(sx: number, ax: Big): [number, Big] {
  const two = bigInt(2);
  const den = sx ? bigAdd(two, ax, true) : bigAdd(two, ax);
  const a = bigAtanh(bigDiv(ax, den));
  return [sx, bigDiv({ m: a.m, e: a.e + 1 }, bigLn2())];
}
/** 2^x - 1 for 0 < |x| <= 1, given sign and |x|, as [sign, magnitude]: the series of expm1(x ln 2). */
export function bigExp2m1(sx: number, ax: Big): [number, Big] {
  const y = bigMul(ax, bigLn2());
  let p = y, pos = y, negs: Big = { m: 0n, e: 0 };
  for (let k = 2; ; k++) {
    p = bigDiv(bigMul(p, y), bigInt(k));
    if (negligible(p, pos)) break;
    if (sx && !(k & 1)) negs = bigAdd(negs, p); else pos = bigAdd(pos, p); // expm1(-y) = -(y - y^2/2! + y^3/3! ...)
  }
  return sx ? [1, bigAdd(pos, negs, true)] : [0, pos];
}
/** atan2 magnitude for |y|, |x| finite and nonzero, with x's sign: in (0, pi). */
export function bigAtan2(ay: Big, sx: number, ax: Big): Big {
  const yBig = ay.e > ax.e || (ay.e === ax.e && ay.m > ax.m);
  let a = yBig ? bigAtan(bigDiv(ax, ay)) : bigAtan(bigDiv(ay, ax));
  if (yBig) a = bigAdd({ m: bigPi().m, e: bigPi().e - 1 }, a, true);
  return sx ? bigAdd(bigPi(), a, true) : a;
}

// ---- FSIN, FCOS, FSINCOS, FPTAN (SDM Vol. 1 8.3.8, 8.3.10)
// The reduction uses the x87's internal 66-bit pi, 0.C90FDAA2 2168C234 C h * 2^2 (SDM
// Vol. 1 8.3.8), as the hardware does, not the exact pi: programs see Intel's results
// (e.g. FSIN of double(pi) is 1.2246063538e-16, not sin's 1.2246467991e-16), and
// code that uses the 66-bit pi as the SDM recommends gets consistent reductions. The
// reduction itself is exact (BigInt), to the nearest multiple of pi66/2 (as FPREM1),
// and the function of the reduced argument is evaluated to ~185 bits.

/** pi66 / 2 = PI66 * 2^-67 (PI66 = 0xC90FDAA22168C234C, its two low bits zero). */
const PI66 = 0xc90fdaa22168c234cn;

/** |x| = q * pi66/2 + r exactly, q the nearest integer: [q mod 4, sign of r, |r|]. For finite |x| < 2^63. */
export function bigTrigReduce(ax: Big): [number, number, Big] {
  if (ax.m === 0n || ax.e + BIG_P - 1 < -1) return [0, 0, ax]; // |x| < 1/2 < pi66/4
  const e = Math.min(ax.e, -67);
  const x = ax.m << BigInt(ax.e - e), p = PI66 << BigInt(-67 - e);
  const q = (2n * x + p) / (2n * p);
  const r = x - q * p; // never 0: q * pi66/2 has more than 64 significant bits
  return [Number(q & 3n), r < 0n ? 1 : 0, bigNorm(r < 0n ? -r : r, e)];
}

/** Just below v (by under one unit of its BIG_P-bit significand): a truncated series sum whose true value is smaller. */
function below(v: Big): Big { return bigNorm((v.m << 1n) - 1n, v.e - 1); }

/**
 * The alternating Taylor series of sin (odd) or cos for 0 < r <= pi/4:
 * t0 - t0 r^2/(k(k+1)) + ... When nothing was subtracted (r^2 below the precision
 * kept) the result is taken just below the first term, where the true value lies.
 */
function trigSeries(r: Big, odd: boolean): Big {
  const r2 = bigMul(r, r);
  const t0 = odd ? r : bigInt(1);
  let p = t0, pos = t0, negs: Big = { m: 0n, e: 0 };
  for (let k = odd ? 2 : 1, n = 1; ; k += 2, n++) {
    p = bigDiv(bigMul(p, r2), bigInt(k * (k + 1)));
    if (negligible(p, pos)) break;
    if (n & 1) negs = bigAdd(negs, p); else pos = bigAdd(pos, p);
  }
  return negs.m === 0n ? below(pos) : bigAdd(pos, negs, true);
}
/** sin(r), 0 < r <= pi/4. */
export function bigSin(r: Big): Big { return trigSeries(r, true); }
/** cos(r), 0 < r <= pi/4. */
export function bigCos(r: Big): Big { return trigSeries(r, false); }
/** tan(r) (or cot(r) when cot), 0 < r <= pi/4. */
export function bigTan(r: Big, cot: boolean): Big {
  // Below 2^-100, r^2/3 is beyond the precision kept: tan r lies just above r (the
  // caller's sticky bit says so) and cot r = 1/r - r/3 just below 1/r.
  if (r.e + BIG_P - 1 < -100) return cot ? below(bigDiv(bigInt(1), r)) : r;
  const s = bigSin(r), c = bigCos(r);
  return cot ? bigDiv(c, s) : bigDiv(s, c);
}

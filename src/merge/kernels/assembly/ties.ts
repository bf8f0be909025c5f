// TIES and DARE-TIES kernels for two tuned models over bf16 chunks (the fast path of
// src/merge/workers/fast-ties.ts). The TypeScript reference is the generic path: gta.ts (ties2, dare2,
// electSign2At, measureRandom) and sparsify.ts (measureRanking, uniformAtLow); fast-ties.test.ts compares
// the two byte for byte.
//
// Arithmetic (identical to the reference):
//   δ = f32(x − b) (float32 subtraction of the decoded bf16 values);
//   selected: |δ| bits > V, or == V within the tie budget (TIES), or hash(index) < p (DARE);
//   a = w₀·(sel ? f64(δ₀)·f₀ : 0), c likewise; total = (0 + a) + c; the terms agreeing with sign(total)
//   (+ on 0 or NaN; NaN terms always) are summed in order, as are their weights; θ = b + λ·(Σ/D or Σ)
//   in float64, rounded to float32, then to bf16 (round to nearest even, NaN kept quiet).
// Pointers are byte offsets into the shared memory; n is an element count; arrays are 16-byte aligned.

// ---------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------

@inline function decLo(v: v128): v128 {
  return i32x4.shl(i32x4.extend_low_i16x8_u(v), 16);
}

@inline function decHi(v: v128): v128 {
  return i32x4.shl(i32x4.extend_high_i16x8_u(v), 16);
}

@inline function absBits(v: v128): v128 {
  return v128.and(v, i32x4.splat(0x7fffffff));
}

/** Adds one to the u32 bins of lanes 0–3 of `a` (|δ| bits) in the histogram at h (addresses formed in SIMD). */
@inline function bump(h: usize, a: v128): void {
  const q = i32x4.add(i32x4.shl(i32x4.shr_u(a, 16), 2), i32x4.splat(<i32>h));
  let p = <usize>i32x4.extract_lane(q, 0);
  store<u32>(p, load<u32>(p) + 1);
  p = <usize>i32x4.extract_lane(q, 1);
  store<u32>(p, load<u32>(p) + 1);
  p = <usize>i32x4.extract_lane(q, 2);
  store<u32>(p, load<u32>(p) + 1);
  p = <usize>i32x4.extract_lane(q, 3);
  store<u32>(p, load<u32>(p) + 1);
}

@inline function orLanes(v: v128): u32 {
  return <u32>(i32x4.extract_lane(v, 0) | i32x4.extract_lane(v, 1) | i32x4.extract_lane(v, 2) | i32x4.extract_lane(v, 3));
}

/** |δ| bits of element j (scalar). */
@inline function absDeltaAt(bp: usize, xp: usize, j: i32): u32 {
  const o = <usize>j << 1;
  const b = reinterpret<f32>(<u32>load<u16>(bp + o) << 16);
  const x = reinterpret<f32>(<u32>load<u16>(xp + o) << 16);
  return reinterpret<u32>(x - b) & 0x7fffffff;
}

// ---------------------------------------------------------------------------------------------------
// TIES measure: coarse histogram of |δ| (top 16 bits), fine histogram inside one coarse bin, tie count
// ---------------------------------------------------------------------------------------------------

/**
 * Adds the coarse histogram (65 536 u32 bins, by the top 16 bits of the float32 pattern of |δ|) of both
 * models' task vectors over n elements into h0 / h1, and ORs the low 16 bits of every |δ| into the u32
 * at orp (model 0) and orp + 4 (model 1).
 */
export function tiesHist2(bp: usize, x0p: usize, x1p: usize, n: i32, h0: usize, h1: usize, orp: usize): void {
  let or0 = i32x4.splat(0);
  let or1 = i32x4.splat(0);
  let j = 0;
  for (; j + 8 <= n; j += 8) {
    const o = <usize>j << 1;
    const b = v128.load(bp + o);
    const x0 = v128.load(x0p + o);
    const x1 = v128.load(x1p + o);
    const bl = decLo(b);
    const bh = decHi(b);
    const a0l = absBits(f32x4.sub(decLo(x0), bl));
    const a0h = absBits(f32x4.sub(decHi(x0), bh));
    const a1l = absBits(f32x4.sub(decLo(x1), bl));
    const a1h = absBits(f32x4.sub(decHi(x1), bh));
    or0 = v128.or(or0, v128.or(a0l, a0h));
    or1 = v128.or(or1, v128.or(a1l, a1h));
    bump(h0, a0l);
    bump(h0, a0h);
    bump(h1, a1l);
    bump(h1, a1h);
  }
  let s0 = orLanes(or0);
  let s1 = orLanes(or1);
  for (; j < n; j++) {
    const a0 = absDeltaAt(bp, x0p, j);
    const a1 = absDeltaAt(bp, x1p, j);
    s0 |= a0;
    s1 |= a1;
    let p = h0 + (<usize>(a0 >>> 16) << 2);
    store<u32>(p, load<u32>(p) + 1);
    p = h1 + (<usize>(a1 >>> 16) << 2);
    store<u32>(p, load<u32>(p) + 1);
  }
  store<u32>(orp, load<u32>(orp) | (s0 & 0xffff));
  store<u32>(orp + 4, load<u32>(orp + 4) | (s1 & 0xffff));
}

/** Adds the fine histogram (by the low 16 bits) of the |δ| of one model whose top 16 bits equal `bin` into fine (65 536 u32). */
export function tiesFine(bp: usize, xp: usize, n: i32, bin: i32, fine: usize): void {
  const binv = i32x4.splat(bin);
  let j = 0;
  for (; j + 8 <= n; j += 8) {
    const o = <usize>j << 1;
    const b = v128.load(bp + o);
    const x = v128.load(xp + o);
    const al = absBits(f32x4.sub(decLo(x), decLo(b)));
    const ah = absBits(f32x4.sub(decHi(x), decHi(b)));
    const m = v128.or(i32x4.eq(i32x4.shr_u(al, 16), binv), i32x4.eq(i32x4.shr_u(ah, 16), binv));
    if (!v128.any_true(m)) continue;
    for (let k = 0; k < 8; k++) {
      const a = absDeltaAt(bp, xp, j + k);
      if (<i32>(a >>> 16) == bin) {
        const p = fine + (<usize>(a & 0xffff) << 2);
        store<u32>(p, load<u32>(p) + 1);
      }
    }
  }
  for (; j < n; j++) {
    const a = absDeltaAt(bp, xp, j);
    if (<i32>(a >>> 16) == bin) {
      const p = fine + (<usize>(a & 0xffff) << 2);
      store<u32>(p, load<u32>(p) + 1);
    }
  }
}

/** Counts the entries with |δ| bits == vb0 (model 0) and == vb1 (model 1) over n elements; stores the counts as u32 at outp, outp + 4. */
export function tiesCount2(bp: usize, x0p: usize, x1p: usize, n: i32, vb0: i32, vb1: i32, outp: usize): void {
  const v0 = i32x4.splat(vb0);
  const v1 = i32x4.splat(vb1);
  let c0 = i32x4.splat(0);
  let c1 = i32x4.splat(0);
  let j = 0;
  for (; j + 8 <= n; j += 8) {
    const o = <usize>j << 1;
    const b = v128.load(bp + o);
    const x0 = v128.load(x0p + o);
    const x1 = v128.load(x1p + o);
    const bl = decLo(b);
    const bh = decHi(b);
    // eq masks are −1 per matching lane: subtracting counts them
    c0 = i32x4.sub(c0, i32x4.eq(absBits(f32x4.sub(decLo(x0), bl)), v0));
    c0 = i32x4.sub(c0, i32x4.eq(absBits(f32x4.sub(decHi(x0), bh)), v0));
    c1 = i32x4.sub(c1, i32x4.eq(absBits(f32x4.sub(decLo(x1), bl)), v1));
    c1 = i32x4.sub(c1, i32x4.eq(absBits(f32x4.sub(decHi(x1), bh)), v1));
  }
  let n0 = i32x4.extract_lane(c0, 0) + i32x4.extract_lane(c0, 1) + i32x4.extract_lane(c0, 2) + i32x4.extract_lane(c0, 3);
  let n1 = i32x4.extract_lane(c1, 0) + i32x4.extract_lane(c1, 1) + i32x4.extract_lane(c1, 2) + i32x4.extract_lane(c1, 3);
  for (; j < n; j++) {
    if (<i32>absDeltaAt(bp, x0p, j) == vb0) n0++;
    if (<i32>absDeltaAt(bp, x1p, j) == vb1) n1++;
  }
  store<u32>(outp, n0);
  store<u32>(outp + 4, n1);
}

// ---------------------------------------------------------------------------------------------------
// the shared merge core: sign election, disjoint mean, bf16 output, non-finite check
// ---------------------------------------------------------------------------------------------------

/** Normalisation by reciprocals (set by setWeights): every possible divisor is a power of two. */
let recipOk: bool = false;
let rW0: f64 = 1;
let rW1: f64 = 1;
let rW01: f64 = 1;

/** True when 1/x is exact: x = ±2ᵏ with both x and 1/x normal. */
@inline function pow2Recip(x: f64): bool {
  const u = reinterpret<u64>(x);
  const e = <i32>((u >>> 52) & 0x7ff);
  return (u & 0xfffffffffffff) == 0 && e >= 2 && e <= 2044;
}

/** Reciprocal of a divisor as the reference uses it (0 → 1). */
@inline function recipOf(d: f64): f64 {
  return d == 0 ? 1 : 1 / d;
}

/** Decides the reciprocal normalisation for weights w0, w1 (divisors 1, w₀, w₁ and (0 + w₀) + w₁). */
function setWeights(w0: f64, w1: f64): void {
  const e = <i32>((reinterpret<u64>(w0) >>> 52) & 0x7ff) - 1023;
  eqMode = w0 == w1 && w0 > 0 && pow2Recip(w0) && e >= -512 && e <= 512;
  const w01 = (0 + w0) + w1;
  recipOk = (w0 == 0 || pow2Recip(w0)) && (w1 == 0 || pow2Recip(w1)) && (w01 == 0 || pow2Recip(w01));
  rW0 = recipOf(0 + w0);
  rW1 = recipOf(0 + w1);
  rW01 = recipOf(w01);
}

/**
 * Equal-weight mode (set by setWeights; used with normalize, and with rescale factors when eqF allows):
 * no rescale (f₀ = f₁ = 1) and w₀ = w₁ = w = 2ᵏ with |k| ≤ 512. Then every product w·δ is exact in float64 (δ is a float32: 2⁻¹⁴⁹ ≤ |δ| < 2¹²⁸), so
 * sign(w·δ₀ + w·δ₁) = sign(δ₀ + δ₁), a term passes iff its δ does, and Σ/D is (δ₀ + δ₁)·½ when both
 * pass (D = 2w), δᵢ when one does (D = w), +0 when none does (D = 0 → 1): the weight products and the
 * division drop out exactly (float64 scaling by powers of two commutes with rounding away from
 * underflow and overflow). NaNs: x86 keeps an operand's NaN through w·NaN, so skipping it keeps the payload.
 */
let eqMode: bool = false;

/** Both rescale factors are 1 / λ is 1 (set by the kernels at entry): the products by 1 are skipped (x·1 = x exactly, NaN payloads included). */
let unitF: bool = false;
/**
 * Equal-weight mode also holds with rescale factors f₀, f₁ ∈ [2⁻³⁰⁰, 2³⁰⁰] (set with unitF): then
 * |δ·f| ∈ [2⁻⁴⁴⁹, 2⁴²⁸] (or 0, ±Inf, NaN), so the products by w = 2ᵏ (|k| ≤ 512) neither underflow nor
 * overflow and stay exact: the election and Σ/D are those of the products δ·f as above.
 */
let eqF: bool = false;

/** Sets unitF and eqF for the factors of a kernel call. */
function setFactors(f0: f64, f1: f64): void {
  unitF = f0 == 1 && f1 == 1;
  const lo = reinterpret<f64>(<u64>(1023 - 300) << 52); // 2⁻³⁰⁰
  const hi = reinterpret<f64>(<u64>(1023 + 300) << 52); // 2³⁰⁰
  eqF = unitF || (f0 >= lo && f0 <= hi && f1 >= lo && f1 <= hi);
}
let unitL: bool = false;

/** dare_linear: no sign election; divisor D (linDivMode 0: D = 1, 1: power of two, 2: other). */
let linearMode: bool = false;
let linDivMode: i32 = 0;
let linDiv: f64 = 1;
let linRecip: f64 = 1;

/** Ties still to keep in this call, per model (TIES): entries equal to V are kept while > 0. */
let tieLeft0: i32 = 0;
let tieLeft1: i32 = 0;

/** Keeps the first tieLeft set lanes of `eq` (index order) and decrements the budget. */
@inline function takeTies0(eq: v128): v128 {
  if (!v128.any_true(eq)) return eq;
  const m = i32x4.bitmask(eq);
  const cnt = <i32>popcnt<u32>(m);
  if (tieLeft0 >= cnt) {
    tieLeft0 -= cnt;
    return eq;
  }
  const km = firstBits(m, tieLeft0);
  tieLeft0 = 0;
  return laneMask(km);
}

@inline function takeTies1(eq: v128): v128 {
  if (!v128.any_true(eq)) return eq;
  const m = i32x4.bitmask(eq);
  const cnt = <i32>popcnt<u32>(m);
  if (tieLeft1 >= cnt) {
    tieLeft1 -= cnt;
    return eq;
  }
  const km = firstBits(m, tieLeft1);
  tieLeft1 = 0;
  return laneMask(km);
}

/** The lowest `k` set bits of the 4-bit mask m. */
function firstBits(m: u32, k: i32): u32 {
  let km: u32 = 0;
  for (let l = 0; l < 4 && k > 0; l++) {
    if ((m >>> l) & 1) {
      km |= <u32>1 << l;
      k--;
    }
  }
  return km;
}

@inline function laneMask(km: u32): v128 {
  return i32x4.ne(v128.and(i32x4.splat(km), i32x4(1, 2, 4, 8)), i32x4.splat(0));
}

/**
 * Two lanes of the election in float64: a, c weighted terms; bj base values. Exact rewrites of the
 * reference's sequence: total = (0 + a) + c has the sign of a + c (they differ only in the sign of a zero);
 * a term that passes (a > 0, a < 0 or NaN) is never ±0, so 0 + a = a, and a term that does not pass
 * may be replaced by +0 in the sums; NaN terms also add their weight to D, which cannot matter (the sum
 * is NaN then).
 */
@inline function elect2(bj: v128, a: v128, c: v128, w0: v128, w1: v128, lam: v128, normalize: bool): v128 {
  const z = f64x2.splat(0);
  // a term passes iff (total < 0 ? t < 0 : t > 0) or t is NaN, i.e. iff !(t·s ≤ 0) with s = −1 where
  // total < 0 (a sign flip by xor, exact): la / lc are the masks of the terms that do NOT pass
  const flip = v128.and(f64x2.lt(f64x2.add(a, c), z), f64x2.splat(-0.0));
  const la = f64x2.le(v128.xor(a, flip), z);
  const lc = f64x2.le(v128.xor(c, flip), z);
  // passing terms are never ±0, so adding +0 for a term that does not pass is exact
  const sum = f64x2.add(v128.andnot(a, la), v128.andnot(c, lc));
  if (!normalize) return unitL ? f64x2.add(bj, sum) : f64x2.add(bj, f64x2.mul(lam, sum));
  let r: v128;
  if (recipOk) {
    // D ∈ {1, w₀, w₁, w₀ + w₁}, all powers of two: Σ/D = Σ·(1/D) exactly
    const rd = v128.bitselect(v128.bitselect(f64x2.splat(1), f64x2.splat(rW0), la), v128.bitselect(f64x2.splat(rW1), f64x2.splat(rW01), la), lc);
    r = f64x2.mul(sum, rd);
  } else {
    const d = f64x2.add(v128.andnot(w0, la), v128.andnot(w1, lc));
    r = f64x2.div(sum, v128.bitselect(f64x2.splat(1), d, f64x2.eq(d, z)));
  }
  return unitL ? f64x2.add(bj, r) : f64x2.add(bj, f64x2.mul(lam, r));
}

/** elect2 in equal-weight mode (see eqMode; normalize is on): d0 / d1 are the kept δ (float64, +0 where dropped). */
@inline function elect2eq(bj: v128, d0: v128, d1: v128, lam: v128): v128 {
  const z = f64x2.splat(0);
  const flip = v128.and(f64x2.lt(f64x2.add(d0, d1), z), f64x2.splat(-0.0));
  const la = f64x2.le(v128.xor(d0, flip), z);
  const lc = f64x2.le(v128.xor(d1, flip), z);
  const sum = f64x2.add(v128.andnot(d0, la), v128.andnot(d1, lc));
  // ½ where both pass (neither mask set), else 1
  const r = f64x2.mul(sum, v128.bitselect(f64x2.splat(1), f64x2.splat(0.5), v128.or(la, lc)));
  return unitL ? f64x2.add(bj, r) : f64x2.add(bj, f64x2.mul(lam, r));
}

/**
 * Two lanes of the no-consensus combine (dare_linear): θ = b + λ·(((0 + a) + c) / D), D the constant
 * divisor (skipped when 1, a product by its reciprocal when a power of two: both exact).
 */
@inline function linear2(bj: v128, a: v128, c: v128, lam: v128): v128 {
  const m = f64x2.add(f64x2.add(f64x2.splat(0), a), c);
  const r = linDivMode == 0 ? m : linDivMode == 1 ? f64x2.mul(m, f64x2.splat(linRecip)) : f64x2.div(m, f64x2.splat(linDiv));
  return unitL ? f64x2.add(bj, r) : f64x2.add(bj, f64x2.mul(lam, r));
}

@inline function combine2(bj: v128, a: v128, c: v128, w0: v128, w1: v128, lam: v128, normalize: bool): v128 {
  return linearMode ? linear2(bj, a, c, lam) : elect2(bj, a, c, w0, w1, lam, normalize);
}

/** Four lanes: kept deltas v0 / v1 (float32, +0 where dropped), base b (float32) → float32 result. */
@inline function merge4(b: v128, v0: v128, v1: v128, f0: v128, f1: v128, w0: v128, w1: v128, lam: v128, normalize: bool): v128 {
  const v0h = i32x4.shuffle(v0, v0, 2, 3, 2, 3);
  const v1h = i32x4.shuffle(v1, v1, 2, 3, 2, 3);
  const bh = i32x4.shuffle(b, b, 2, 3, 2, 3);
  // f = 1 (no rescale): x·1 = x exactly (NaN payload included), so the product is skipped
  if (eqMode && eqF && normalize && !linearMode) {
    // δ·f as the reference rounds it (the product by 1 skipped: exact), then the equal-weight election
    const p0l = unitF ? f64x2.promote_low_f32x4(v0) : f64x2.mul(f64x2.promote_low_f32x4(v0), f0);
    const p1l = unitF ? f64x2.promote_low_f32x4(v1) : f64x2.mul(f64x2.promote_low_f32x4(v1), f1);
    const p0h = unitF ? f64x2.promote_low_f32x4(v0h) : f64x2.mul(f64x2.promote_low_f32x4(v0h), f0);
    const p1h = unitF ? f64x2.promote_low_f32x4(v1h) : f64x2.mul(f64x2.promote_low_f32x4(v1h), f1);
    const eL = elect2eq(f64x2.promote_low_f32x4(b), p0l, p1l, lam);
    const eH = elect2eq(f64x2.promote_low_f32x4(bh), p0h, p1h, lam);
    return i32x4.shuffle(f32x4.demote_f64x2_zero(eL), f32x4.demote_f64x2_zero(eH), 0, 1, 4, 5);
  }
  const aL = f64x2.mul(w0, unitF ? f64x2.promote_low_f32x4(v0) : f64x2.mul(f64x2.promote_low_f32x4(v0), f0));
  const cL = f64x2.mul(w1, unitF ? f64x2.promote_low_f32x4(v1) : f64x2.mul(f64x2.promote_low_f32x4(v1), f1));
  const aH = f64x2.mul(w0, unitF ? f64x2.promote_low_f32x4(v0h) : f64x2.mul(f64x2.promote_low_f32x4(v0h), f0));
  const cH = f64x2.mul(w1, unitF ? f64x2.promote_low_f32x4(v1h) : f64x2.mul(f64x2.promote_low_f32x4(v1h), f1));
  const rL = f32x4.demote_f64x2_zero(combine2(f64x2.promote_low_f32x4(b), aL, cL, w0, w1, lam, normalize));
  const rH = f32x4.demote_f64x2_zero(combine2(f64x2.promote_low_f32x4(bh), aH, cH, w0, w1, lam, normalize));
  return i32x4.shuffle(rL, rH, 0, 1, 4, 5);
}

/** merge4 in equal-weight mode with rescale factors (eqMode, eqF, normalize, λ = 1, f ≠ 1), every mode test hoisted. */
@inline function eqf4(b: v128, v0: v128, v1: v128, f0: v128, f1: v128): v128 {
  const v0h = i32x4.shuffle(v0, v0, 2, 3, 2, 3);
  const v1h = i32x4.shuffle(v1, v1, 2, 3, 2, 3);
  const bh = i32x4.shuffle(b, b, 2, 3, 2, 3);
  const eL = eqPair(f64x2.promote_low_f32x4(b), f64x2.mul(f64x2.promote_low_f32x4(v0), f0), f64x2.mul(f64x2.promote_low_f32x4(v1), f1));
  const eH = eqPair(f64x2.promote_low_f32x4(bh), f64x2.mul(f64x2.promote_low_f32x4(v0h), f0), f64x2.mul(f64x2.promote_low_f32x4(v1h), f1));
  return i32x4.shuffle(f32x4.demote_f64x2_zero(eL), f32x4.demote_f64x2_zero(eH), 0, 1, 4, 5);
}

/**
 * elect2eq with λ = 1, as a choice: both terms pass → (d0 + d1)·½ (the reference's sum: passing terms are
 * never ±0); only one → that term; none → +0.
 */
@inline function eqPair(bj: v128, d0: v128, d1: v128): v128 {
  const z = f64x2.splat(0);
  const t = f64x2.add(d0, d1);
  const flip = v128.and(f64x2.lt(t, z), f64x2.splat(-0.0));
  const la = f64x2.le(v128.xor(d0, flip), z);
  const lc = f64x2.le(v128.xor(d1, flip), z);
  const one = v128.bitselect(v128.andnot(d1, lc), d0, la);
  return f64x2.add(bj, v128.bitselect(one, f64x2.mul(t, f64x2.splat(0.5)), v128.or(la, lc)));
}

/** float32 bits → bf16 (round to nearest even; NaN stays NaN with its top payload, quieted), in i32 lanes. */
@inline function toBf16(o: v128): v128 {
  const isNan = i32x4.gt_s(absBits(o), i32x4.splat(0x7f800000));
  const rn = i32x4.shr_u(i32x4.add(i32x4.add(o, i32x4.splat(0x7fff)), v128.and(i32x4.shr_u(o, 16), i32x4.splat(1))), 16);
  const nan = v128.or(i32x4.shr_u(o, 16), i32x4.splat(0x40));
  return v128.bitselect(nan, rn, isNan);
}

@inline function finiteMask(v: v128): v128 {
  const e = i32x4.splat(0x7f800000);
  return i32x4.ne(v128.and(v, e), e);
}

/** Records element j + lane of the first non-finite output whose inputs are all finite (flagp: [index u32, value bits u32, scratch 16 B]). */
@inline function checkFinite(o: v128, b: v128, x0: v128, x1: v128, j: i32, flagp: usize): void {
  const e = i32x4.splat(0x7f800000);
  const bad = i32x4.eq(v128.and(o, e), e);
  if (!v128.any_true(bad)) return; // (the common case: every output finite)
  checkInputs(o, bad, b, x0, x1, j, flagp);
}

function checkInputs(o: v128, bad: v128, b: v128, x0: v128, x1: v128, j: i32, flagp: usize): void {
  const m = v128.and(bad, v128.and(finiteMask(b), v128.and(finiteMask(x0), finiteMask(x1))));
  if (v128.any_true(m)) recordBad(o, i32x4.bitmask(m), j, flagp);
}

function recordBad(o: v128, m: u32, j: i32, flagp: usize): void {
  const lane = ctz<u32>(m);
  const idx = <u32>(j + lane);
  if (idx < load<u32>(flagp)) {
    v128.store(flagp + 16, o);
    store<u32>(flagp, idx);
    store<u32>(flagp + 4, load<u32>(flagp + 16 + (<usize>lane << 2)));
  }
}

@inline function scalarElect(bj: f64, a: f64, c: f64, w0: f64, w1: f64, lam: f64, normalize: bool): f64 {
  let total: f64 = 0;
  total += a;
  total += c;
  let sum: f64 = 0;
  let d: f64 = 0;
  if (!(total < 0)) {
    if (a > 0) {
      sum += a;
      d += w0;
    } else if (a != a) sum += a;
    if (c > 0) {
      sum += c;
      d += w1;
    } else if (c != c) sum += c;
  } else {
    if (a < 0) {
      sum += a;
      d += w0;
    } else if (a != a) sum += a;
    if (c < 0) {
      sum += c;
      d += w1;
    } else if (c != c) sum += c;
  }
  const denom: f64 = d == 0 ? 1 : d;
  return bj + lam * (normalize ? sum / denom : sum);
}

/** One element (scalar tails): keep flags k0/k1, writes the bf16 output and checks finiteness. */
function scalarElement(bp: usize, x0p: usize, x1p: usize, op: usize, j: i32, k0: bool, k1: bool, f0: f64, f1: f64, w0: f64, w1: f64, lam: f64, normalize: bool, flagp: usize): void {
  const o2 = <usize>j << 1;
  const bu = <u32>load<u16>(bp + o2) << 16;
  const x0u = <u32>load<u16>(x0p + o2) << 16;
  const x1u = <u32>load<u16>(x1p + o2) << 16;
  const b = reinterpret<f32>(bu);
  const d0 = reinterpret<f32>(x0u) - b;
  const d1 = reinterpret<f32>(x1u) - b;
  const a = w0 * (k0 ? <f64>d0 * f0 : 0);
  const c = w1 * (k1 ? <f64>d1 * f1 : 0);
  const r = <f32>(linearMode ? <f64>b + lam * ((<f64>0 + a + c) / linDiv) : scalarElect(<f64>b, a, c, w0, w1, lam, normalize));
  const u = reinterpret<u32>(r);
  const h = (u & 0x7fffffff) > 0x7f800000 ? (u >>> 16) | 0x40 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  store<u16>(op + o2, <u16>h);
  const e: u32 = 0x7f800000;
  if ((u & e) == e && (bu & e) != e && (x0u & e) != e && (x1u & e) != e && <u32>j < load<u32>(flagp)) {
    store<u32>(flagp, <u32>j);
    store<u32>(flagp + 4, u);
  }
}

// ---------------------------------------------------------------------------------------------------
// TIES kernel
// ---------------------------------------------------------------------------------------------------

/**
 * TIES merge of n elements (two models) into bf16 at op. Model i keeps |δᵢ| bits > vbᵢ, and the first
 * leftᵢ entries (index order) with bits == vbᵢ. fᵢ: rescale factor (1, or 1/density). `flagp` is updated
 * with the first non-finite output whose inputs are finite (see recordBad); the budgets left after the
 * range (leftᵢ minus the entries equal to V it kept) are stored as u32 at flagp + 8 and flagp + 12.
 */
export function ties2(
  bp: usize, x0p: usize, x1p: usize, op: usize, n: i32,
  vb0: i32, vb1: i32, left0: i32, left1: i32,
  w0: f64, w1: f64, f0: f64, f1: f64, lambda: f64, normalize: bool, flagp: usize,
): void {
  tieLeft0 = left0;
  tieLeft1 = left1;
  linearMode = false;
  setWeights(w0, w1);
  setFactors(f0, f1);
  unitL = lambda == 1;
  const vv0 = i32x4.splat(vb0);
  const vv1 = i32x4.splat(vb1);
  const W0 = f64x2.splat(w0);
  const W1 = f64x2.splat(w1);
  const F0 = f64x2.splat(f0);
  const F1 = f64x2.splat(f1);
  const L = f64x2.splat(lambda);
  let j = 0;
  if ((left0 == 0 || left0 >= n) && (left1 == 0 || left1 >= n)) {
    // no partial tie budget in this range: keep |δ| > T with T = V (no ties kept) or V − 1 (all kept),
    // and count the entries equal to V (the budget they use)
    const t0 = i32x4.splat(left0 == 0 ? vb0 : vb0 - 1);
    const t1 = i32x4.splat(left1 == 0 ? vb1 : vb1 - 1);
    let c0 = i32x4.splat(0);
    let c1 = i32x4.splat(0);
    for (; j + 8 <= n; j += 8) {
      const o2 = <usize>j << 1;
      const b8 = v128.load(bp + o2);
      const x08 = v128.load(x0p + o2);
      const x18 = v128.load(x1p + o2);
      const bl = decLo(b8);
      const bh = decHi(b8);
      const x0l = decLo(x08);
      const x0h = decHi(x08);
      const x1l = decLo(x18);
      const x1h = decHi(x18);
      const d0l = f32x4.sub(x0l, bl);
      const d0h = f32x4.sub(x0h, bh);
      const d1l = f32x4.sub(x1l, bl);
      const d1h = f32x4.sub(x1h, bh);
      const a0l = absBits(d0l);
      const a0h = absBits(d0h);
      const a1l = absBits(d1l);
      const a1h = absBits(d1h);
      // eq masks are −1 per matching lane: subtracting counts them
      c0 = i32x4.sub(i32x4.sub(c0, i32x4.eq(a0l, vv0)), i32x4.eq(a0h, vv0));
      c1 = i32x4.sub(i32x4.sub(c1, i32x4.eq(a1l, vv1)), i32x4.eq(a1h, vv1));
      const s0l = i32x4.gt_s(a0l, t0);
      const s0h = i32x4.gt_s(a0h, t0);
      const s1l = i32x4.gt_s(a1l, t1);
      const s1h = i32x4.gt_s(a1h, t1);
      const rl = merge4(bl, v128.and(d0l, s0l), v128.and(d1l, s1l), F0, F1, W0, W1, L, normalize);
      const rh = merge4(bh, v128.and(d0h, s0h), v128.and(d1h, s1h), F0, F1, W0, W1, L, normalize);
      v128.store(op + o2, i16x8.narrow_i32x4_u(toBf16(rl), toBf16(rh)));
      checkFinite(rl, bl, x0l, x1l, j, flagp);
      checkFinite(rh, bh, x0h, x1h, j + 4, flagp);
    }
    // left ≥ n ≥ the count, so the budgets stay ≥ 0 (a zero budget stays zero)
    if (left0 > 0) tieLeft0 = left0 - (i32x4.extract_lane(c0, 0) + i32x4.extract_lane(c0, 1) + i32x4.extract_lane(c0, 2) + i32x4.extract_lane(c0, 3));
    if (left1 > 0) tieLeft1 = left1 - (i32x4.extract_lane(c1, 0) + i32x4.extract_lane(c1, 1) + i32x4.extract_lane(c1, 2) + i32x4.extract_lane(c1, 3));
  }
  for (; j + 8 <= n; j += 8) {
    const o2 = <usize>j << 1;
    const b8 = v128.load(bp + o2);
    const x08 = v128.load(x0p + o2);
    const x18 = v128.load(x1p + o2);
    const bl = decLo(b8);
    const bh = decHi(b8);
    const x0l = decLo(x08);
    const x0h = decHi(x08);
    const x1l = decLo(x18);
    const x1h = decHi(x18);
    const d0l = f32x4.sub(x0l, bl);
    const d0h = f32x4.sub(x0h, bh);
    const d1l = f32x4.sub(x1l, bl);
    const d1h = f32x4.sub(x1h, bh);
    const a0l = absBits(d0l);
    const a0h = absBits(d0h);
    const a1l = absBits(d1l);
    const a1h = absBits(d1h);
    const s0l = v128.or(i32x4.gt_s(a0l, vv0), takeTies0(i32x4.eq(a0l, vv0)));
    const s0h = v128.or(i32x4.gt_s(a0h, vv0), takeTies0(i32x4.eq(a0h, vv0)));
    const s1l = v128.or(i32x4.gt_s(a1l, vv1), takeTies1(i32x4.eq(a1l, vv1)));
    const s1h = v128.or(i32x4.gt_s(a1h, vv1), takeTies1(i32x4.eq(a1h, vv1)));
    const rl = merge4(bl, v128.and(d0l, s0l), v128.and(d1l, s1l), F0, F1, W0, W1, L, normalize);
    const rh = merge4(bh, v128.and(d0h, s0h), v128.and(d1h, s1h), F0, F1, W0, W1, L, normalize);
    v128.store(op + o2, i16x8.narrow_i32x4_u(toBf16(rl), toBf16(rh)));
    checkFinite(rl, bl, x0l, x1l, j, flagp);
    checkFinite(rh, bh, x0h, x1h, j + 4, flagp);
  }
  for (; j < n; j++) {
    const a0 = <i32>absDeltaAt(bp, x0p, j);
    const a1 = <i32>absDeltaAt(bp, x1p, j);
    let k0 = a0 > vb0;
    if (a0 == vb0 && tieLeft0 > 0) {
      tieLeft0--;
      k0 = true;
    }
    let k1 = a1 > vb1;
    if (a1 == vb1 && tieLeft1 > 0) {
      tieLeft1--;
      k1 = true;
    }
    scalarElement(bp, x0p, x1p, op, j, k0, k1, f0, f1, w0, w1, lambda, normalize, flagp);
  }
  store<u32>(flagp + 8, tieLeft0);
  store<u32>(flagp + 12, tieLeft1);
}

// ---------------------------------------------------------------------------------------------------
// DARE-TIES: keep mask by the seeded hash (sparsify.ts uniformAtLow), L1 measure, kernel
// ---------------------------------------------------------------------------------------------------

@inline function mix(h: v128): v128 {
  h = v128.xor(h, i32x4.shr_u(h, 16));
  h = i32x4.mul(h, i32x4.splat(0x7feb352d));
  h = v128.xor(h, i32x4.shr_u(h, 15));
  h = i32x4.mul(h, i32x4.splat(0x846ca68b));
  return v128.xor(h, i32x4.shr_u(h, 16));
}

/** Keep mask of 4 consecutive indices from `index`: (hash32(index ⊕ key) >>> 8) < K, K = ceil(p·2²⁴) (≡ uniformAtLow(key, index) < p). */
@inline function keep4(index: i32, key: v128, K: v128): v128 {
  const idx = i32x4.add(i32x4.splat(index), i32x4(0, 1, 2, 3));
  const h = mix(v128.xor(idx, key));
  return i32x4.lt_s(i32x4.shr_u(h, 8), K);
}

@inline function mix1(h: u32): u32 {
  h ^= h >>> 16;
  h *= 0x7feb352d;
  h ^= h >>> 15;
  h *= 0x846ca68b;
  return h ^ (h >>> 16);
}

@inline function keep1(index: i32, key: i32, K: i32): bool {
  return <i32>(mix1(<u32>(index ^ key)) >>> 8) < K;
}

/** Elements per block of the DARE L1 sums (sparsify.ts L1_BLOCK; a power of two, a multiple of L1_GROUP). */
const L1_BLOCK: i32 = 4096;

/** Elements per group of the DARE L1 sums (sparsify.ts L1_GROUP): a lane adds a group's entries in float32. */
const L1_GROUP: i32 = 64;

/** Lanes 0, 1 of a group's float32 lane sums g added (in float64) to the lane sums a01. */
@inline function addLow(g: v128, a01: v128): v128 {
  return f64x2.add(a01, f64x2.promote_low_f32x4(g));
}

/** Lanes 2, 3 of g added to the lane sums a23. */
@inline function addHigh(g: v128, a23: v128): v128 {
  return f64x2.add(a23, f64x2.promote_low_f32x4(i32x4.shuffle(g, g, 2, 3, 2, 3)));
}

/** A block's sum from its lane sums: (lane0 + lane2) + (lane1 + lane3). */
@inline function blockSum(a01: v128, a23: v128): f64 {
  const s = f64x2.add(a01, a23);
  return f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
}

/**
 * DARE L1 measure of both models over n elements from tensor element `offset` (a multiple of 8): the sums
 * of |δ| over the finite entries and over those the hash keeps, in the reference's blocked order
 * (gta.ts measureRandom): blocks of L1_BLOCK elements from element 0, each cut into groups of L1_GROUP;
 * in a group, lane l (index mod 4) adds its entries in index order in float32 from +0; the group's lane
 * sums are added to the block's float64 lane sums; a block's sum is (lane0 + lane2) + (lane1 + lane3).
 *
 * statep: the float64 lane sums of the block in progress (8 f64x2: model 0 total 01/23, kept 01/23, then
 * model 1) and the float32 lane sums of the group in progress (4 f32x4: model 0 total, kept, model 1
 * total, kept), carried between calls (zeroed first when `fresh`), then 48 bytes of scratch. Each block
 * that ends in this call (and, with `flush`, the partial group and block at the end) is appended at
 * outp + 16 as 4 f64 (total₀, kept₀, total₁, kept₁) and reset; the count of blocks appended is stored as
 * i32 at outp. The caller adds the block sums in order. Output blocks per call: at most
 * ceil(n / L1_BLOCK) + 1. Keys and bounds: keep4 (one hash32 round of index ⊕ key, as uniformAtLow).
 *
 * maskp ≠ 0: also stores the keep masks for dare2, 2 bytes per 8 elements from the call's first
 * (model 0's then model 1's; bit q: element 8i + q kept), ceil(n / 8) pairs.
 */
export function dareL1x2(
  bp: usize, x0p: usize, x1p: usize, n: i32, offset: i32,
  key0: i32, K0: i32, key1: i32, K1: i32,
  statep: usize, outp: usize, fresh: bool, flush: bool, maskp: usize,
): void {
  const z = f64x2.splat(0);
  let t0a = fresh ? z : v128.load(statep);
  let t0b = fresh ? z : v128.load(statep + 16);
  let k0a = fresh ? z : v128.load(statep + 32);
  let k0b = fresh ? z : v128.load(statep + 48);
  let t1a = fresh ? z : v128.load(statep + 64);
  let t1b = fresh ? z : v128.load(statep + 80);
  let k1a = fresh ? z : v128.load(statep + 96);
  let k1b = fresh ? z : v128.load(statep + 112);
  // the float32 sums of the group in progress, per lane (model 0 total, kept, model 1 total, kept)
  let gt0 = fresh ? z : v128.load(statep + 128);
  let gk0 = fresh ? z : v128.load(statep + 144);
  let gt1 = fresh ? z : v128.load(statep + 160);
  let gk1 = fresh ? z : v128.load(statep + 176);
  const KEY0 = i32x4.splat(key0);
  const KK0 = i32x4.splat(K0);
  const KEY1 = i32x4.splat(key1);
  const KK1 = i32x4.splat(K1);
  const inf = i32x4.splat(0x7f800000);
  // the zero-padded last < 8 elements (scratch after the state)
  const tail = statep + 192;
  let count = 0;
  let j = 0;
  while (j < n) {
    const segEnd = min(n, j + L1_BLOCK - ((offset + j) & (L1_BLOCK - 1)));
    while (j < segEnd) {
      const gEnd = min(segEnd, j + L1_GROUP - ((offset + j) & (L1_GROUP - 1)));
      while (j < gEnd) {
        let bq = bp + (<usize>j << 1);
        let x0q = x0p + (<usize>j << 1);
        let x1q = x1p + (<usize>j << 1);
        if (j + 8 > gEnd) {
          // the tensor's last elements: zero-padded, so the missing lanes add |0 − 0| = +0 (exact)
          v128.store(tail, i32x4.splat(0));
          v128.store(tail + 16, i32x4.splat(0));
          v128.store(tail + 32, i32x4.splat(0));
          for (let q = 0; q < gEnd - j; q++) {
            store<u16>(tail + (<usize>q << 1), load<u16>(bq + (<usize>q << 1)));
            store<u16>(tail + 16 + (<usize>q << 1), load<u16>(x0q + (<usize>q << 1)));
            store<u16>(tail + 32 + (<usize>q << 1), load<u16>(x1q + (<usize>q << 1)));
          }
          bq = tail;
          x0q = tail + 16;
          x1q = tail + 32;
        }
        const b8 = v128.load(bq);
        const x08 = v128.load(x0q);
        const x18 = v128.load(x1q);
        const bl = decLo(b8);
        const bh = decHi(b8);
        const a0l = absBits(f32x4.sub(decLo(x08), bl));
        const a0h = absBits(f32x4.sub(decHi(x08), bh));
        const a1l = absBits(f32x4.sub(decLo(x18), bl));
        const a1h = absBits(f32x4.sub(decHi(x18), bh));
        // non-finite |δ| → +0
        const f0l = v128.and(a0l, i32x4.lt_s(a0l, inf));
        const f0h = v128.and(a0h, i32x4.lt_s(a0h, inf));
        const f1l = v128.and(a1l, i32x4.lt_s(a1l, inf));
        const f1h = v128.and(a1h, i32x4.lt_s(a1h, inf));
        const g = offset + j;
        const m0l = keep4(g, KEY0, KK0);
        const m0h = keep4(g + 4, KEY0, KK0);
        const m1l = keep4(g, KEY1, KK1);
        const m1h = keep4(g + 4, KEY1, KK1);
        if (maskp != 0) {
          store<u16>(maskp + (<usize>j >>> 2), i32x4.bitmask(m0l) | (i32x4.bitmask(m0h) << 4) | (i32x4.bitmask(m1l) << 8) | (i32x4.bitmask(m1h) << 12));
        }
        // lane l of the group gets elements g + l, then g + 4 + l, in float32
        gt0 = f32x4.add(f32x4.add(gt0, f0l), f0h);
        gk0 = f32x4.add(f32x4.add(gk0, v128.and(f0l, m0l)), v128.and(f0h, m0h));
        gt1 = f32x4.add(f32x4.add(gt1, f1l), f1h);
        gk1 = f32x4.add(f32x4.add(gk1, v128.and(f1l, m1l)), v128.and(f1h, m1h));
        j += 8;
      }
      j = gEnd;
      if (((offset + j) & (L1_GROUP - 1)) == 0 || (flush && j == n)) {
        // the group's float32 lane sums into the float64 lane sums
        t0a = addLow(gt0, t0a);
        t0b = addHigh(gt0, t0b);
        k0a = addLow(gk0, k0a);
        k0b = addHigh(gk0, k0b);
        t1a = addLow(gt1, t1a);
        t1b = addHigh(gt1, t1b);
        k1a = addLow(gk1, k1a);
        k1b = addHigh(gk1, k1b);
        gt0 = z;
        gk0 = z;
        gt1 = z;
        gk1 = z;
      }
    }
    if (((offset + j) & (L1_BLOCK - 1)) == 0 || (flush && j == n)) {
      const o = outp + 16 + (<usize>count << 5);
      store<f64>(o, blockSum(t0a, t0b));
      store<f64>(o + 8, blockSum(k0a, k0b));
      store<f64>(o + 16, blockSum(t1a, t1b));
      store<f64>(o + 24, blockSum(k1a, k1b));
      count++;
      t0a = z;
      t0b = z;
      k0a = z;
      k0b = z;
      t1a = z;
      t1b = z;
      k1a = z;
      k1b = z;
    }
  }
  v128.store(statep, t0a);
  v128.store(statep + 16, t0b);
  v128.store(statep + 32, k0a);
  v128.store(statep + 48, k0b);
  v128.store(statep + 64, t1a);
  v128.store(statep + 80, t1b);
  v128.store(statep + 96, k1a);
  v128.store(statep + 112, k1b);
  v128.store(statep + 128, gt0);
  v128.store(statep + 144, gk0);
  v128.store(statep + 160, gt1);
  v128.store(statep + 176, gk1);
  store<i32>(outp, count);
}

/**
 * dare2's 8 elements from j. `eqStored` (a literal at each call, so the other branches fold away): the
 * masks are stored and the merge is merge4's equal-weight form with rescale factors and λ = 1 (eqf4).
 */
@inline function dare8(
  bp: usize, x0p: usize, x1p: usize, op: usize, j: i32, offset: i32,
  KEY0: v128, KK0: v128, KEY1: v128, KK1: v128, W0: v128, W1: v128, F0: v128, F1: v128, L: v128,
  normalize: bool, flagp: usize, maskp: usize, eqStored: bool,
): void {
  const o2 = <usize>j << 1;
  const b8 = v128.load(bp + o2);
  const x08 = v128.load(x0p + o2);
  const x18 = v128.load(x1p + o2);
  const bl = decLo(b8);
  const bh = decHi(b8);
  const x0l = decLo(x08);
  const x0h = decHi(x08);
  const x1l = decLo(x18);
  const x1h = decHi(x18);
  let s0l: v128, s0h: v128, s1l: v128, s1h: v128;
  if (eqStored || maskp != 0) {
    // the masks dareL1x2 stored (the same hash): bit q of byte m for element q of model m
    const M = v128.load16_splat(maskp + (<usize>j >>> 2));
    const m0 = i16x8.ne(v128.and(M, i16x8(1, 2, 4, 8, 16, 32, 64, 128)), i16x8.splat(0));
    const m1 = i16x8.ne(v128.and(M, i16x8(256, 512, 1024, 2048, 4096, 8192, 16384, -32768)), i16x8.splat(0));
    s0l = i32x4.extend_low_i16x8_s(m0);
    s0h = i32x4.extend_high_i16x8_s(m0);
    s1l = i32x4.extend_low_i16x8_s(m1);
    s1h = i32x4.extend_high_i16x8_s(m1);
  } else {
    s0l = keep4(offset + j, KEY0, KK0);
    s0h = keep4(offset + j + 4, KEY0, KK0);
    s1l = keep4(offset + j, KEY1, KK1);
    s1h = keep4(offset + j + 4, KEY1, KK1);
  }
  const v0l = v128.and(f32x4.sub(x0l, bl), s0l);
  const v1l = v128.and(f32x4.sub(x1l, bl), s1l);
  const v0h = v128.and(f32x4.sub(x0h, bh), s0h);
  const v1h = v128.and(f32x4.sub(x1h, bh), s1h);
  const rl = eqStored ? eqf4(bl, v0l, v1l, F0, F1) : merge4(bl, v0l, v1l, F0, F1, W0, W1, L, normalize);
  const rh = eqStored ? eqf4(bh, v0h, v1h, F0, F1) : merge4(bh, v0h, v1h, F0, F1, W0, W1, L, normalize);
  v128.store(op + o2, i16x8.narrow_i32x4_u(toBf16(rl), toBf16(rh)));
  checkFinite(rl, bl, x0l, x1l, j, flagp);
  checkFinite(rh, bh, x0h, x1h, j + 4, flagp);
}

/**
 * DARE-TIES merge of n elements starting at tensor element `offset` (two models) into bf16 at op; with
 * `linear`, dare_linear's plain weighted sum divided by `divisor` instead of the sign election. maskp ≠ 0:
 * the keep masks are read from there (as dareL1x2 stored them for these elements) instead of hashed.
 */
export function dare2(
  bp: usize, x0p: usize, x1p: usize, op: usize, n: i32, offset: i32,
  key0: i32, K0: i32, key1: i32, K1: i32,
  w0: f64, w1: f64, f0: f64, f1: f64, lambda: f64, normalize: bool, flagp: usize,
  linear: bool, divisor: f64, maskp: usize,
): void {
  linearMode = linear;
  linDiv = divisor;
  linDivMode = divisor == 1 ? 0 : pow2Recip(divisor) ? 1 : 2;
  linRecip = 1 / divisor;
  setWeights(w0, w1);
  setFactors(f0, f1);
  unitL = lambda == 1;
  const KEY0 = i32x4.splat(key0);
  const KK0 = i32x4.splat(K0);
  const KEY1 = i32x4.splat(key1);
  const KK1 = i32x4.splat(K1);
  const W0 = f64x2.splat(w0);
  const W1 = f64x2.splat(w1);
  const F0 = f64x2.splat(f0);
  const F1 = f64x2.splat(f1);
  const L = f64x2.splat(lambda);
  let j = 0;
  if (maskp != 0 && eqMode && eqF && normalize && !linearMode && unitL && !unitF) {
    // the usual l1-rescaled equal-weight merge: one loop with every mode test hoisted
    for (; j + 8 <= n; j += 8) dare8(bp, x0p, x1p, op, j, offset, KEY0, KK0, KEY1, KK1, W0, W1, F0, F1, L, normalize, flagp, maskp, true);
  }
  for (; j + 8 <= n; j += 8) dare8(bp, x0p, x1p, op, j, offset, KEY0, KK0, KEY1, KK1, W0, W1, F0, F1, L, normalize, flagp, maskp, false);
  for (; j < n; j++) {
    const m = maskp != 0 ? <u32>load<u16>(maskp + ((<usize>j >>> 3) << 1)) >>> (<u32>j & 7) : 0;
    const k0 = maskp != 0 ? (m & 1) != 0 : keep1(offset + j, key0, K0);
    const k1 = maskp != 0 ? (m & 256) != 0 : keep1(offset + j, key1, K1);
    scalarElement(bp, x0p, x1p, op, j, k0, k1, f0, f1, w0, w1, lambda, normalize, flagp);
  }
}

// ---------------------------------------------------------------------------------------------------
// TIES banded measure: count above a band of coarse bins, histogram only inside it (workers/fast-ties.ts)
// ---------------------------------------------------------------------------------------------------

/** Bumps bin (a >>> 16) of the histogram at h when it lies in [lo, hi] and is neither heavy bin hA nor hB. */
@inline function bandBump(h: usize, a: u32, lo: i32, hi: i32, hA: i32, hB: i32): void {
  const bin = <i32>(a >>> 16);
  if (bin >= lo && bin <= hi && bin != hA && bin != hB) {
    const p = h + (<usize>bin << 2);
    store<u32>(p, load<u32>(p) + 1);
  }
}

/** Adds one to bin `bin` of the histogram at h. */
@inline function bumpBin(h: usize, bin: u32): void {
  const p = h + (<usize>bin << 2);
  store<u32>(p, load<u32>(p) + 1);
}

/** Sum of the 8 i16 lanes of c (each 0..32767, counted as −mask sums). */
@inline function sum16(c: v128): u32 {
  const w = i32x4.extadd_pairwise_i16x8_u(c);
  return <u32>(i32x4.extract_lane(w, 0) + i32x4.extract_lane(w, 1) + i32x4.extract_lane(w, 2) + i32x4.extract_lane(w, 3));
}

/** The top 16 bits (coarse bin) of 8 |δ| patterns (two i32x4) as i16x8 lanes, in element order. */
@inline function bins8(l: v128, h: v128): v128 {
  return i8x16.shuffle(l, h, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
}

/**
 * Banded coarse measure of both models' |δ| over n elements (the TypeScript reference is tiesBand2Ref
 * in kernels/ties-band.ts). Per model m, with coarse bin = top 16 bits of the float32 pattern of |δ|:
 * counts the entries whose bin is above hiₘ, and those in the "heavy" bins hAₘ and hBₘ (lo ≤ hA, hB ≤ hi,
 * or −1 for none), all in SIMD; adds one to bin b of the histogram at hₘ for every other entry with
 * loₘ ≤ b ≤ hiₘ (scalar, only for groups of 8 that hold one); ORs the low 16 bits of every |δ| (as
 * tiesHist2). Adds into the u32 at outp: [0] above₀ [4] above₁ [8] heavyA₀ [12] heavyB₀ [16] heavyA₁
 * [20] heavyB₁ [24] or₀ [28] or₁. Bins are at most 0x7fff (sign cleared), so i16 lanes compare them signed.
 */
export function tiesBand2(
  bp: usize, x0p: usize, x1p: usize, n: i32,
  lo0: i32, hi0: i32, hA0: i32, hB0: i32, lo1: i32, hi1: i32, hA1: i32, hB1: i32,
  h0: usize, h1: usize, outp: usize,
): void {
  const LO0 = i16x8.splat(<i16>lo0);
  const HI0 = i16x8.splat(<i16>hi0);
  const A0 = i16x8.splat(<i16>hA0);
  const B0 = i16x8.splat(<i16>hB0);
  const LO1 = i16x8.splat(<i16>lo1);
  const HI1 = i16x8.splat(<i16>hi1);
  const A1 = i16x8.splat(<i16>hA1);
  const B1 = i16x8.splat(<i16>hB1);
  let up0: u32 = 0;
  let ca0: u32 = 0;
  let cb0: u32 = 0;
  let up1: u32 = 0;
  let ca1: u32 = 0;
  let cb1: u32 = 0;
  let or0 = i32x4.splat(0);
  let or1 = i32x4.splat(0);
  const n8 = n & ~7;
  let j = 0;
  while (j < n8) {
    // i16 lane counters take at most 32767 groups: fold them every 4096
    const end = min(n8, j + 8 * 4096);
    let u0 = i16x8.splat(0);
    let a0c = i16x8.splat(0);
    let b0c = i16x8.splat(0);
    let u1 = i16x8.splat(0);
    let a1c = i16x8.splat(0);
    let b1c = i16x8.splat(0);
    for (; j < end; j += 8) {
      const o = <usize>j << 1;
      const b = v128.load(bp + o);
      const x0 = v128.load(x0p + o);
      const x1 = v128.load(x1p + o);
      const bl = decLo(b);
      const bh = decHi(b);
      const a0l = absBits(f32x4.sub(decLo(x0), bl));
      const a0h = absBits(f32x4.sub(decHi(x0), bh));
      const a1l = absBits(f32x4.sub(decLo(x1), bl));
      const a1h = absBits(f32x4.sub(decHi(x1), bh));
      or0 = v128.or(or0, v128.or(a0l, a0h));
      or1 = v128.or(or1, v128.or(a1l, a1h));
      const g0 = bins8(a0l, a0h);
      const g1 = bins8(a1l, a1h);
      const above0 = i16x8.gt_s(g0, HI0);
      const eqA0 = i16x8.eq(g0, A0);
      const eqB0 = i16x8.eq(g0, B0);
      const above1 = i16x8.gt_s(g1, HI1);
      const eqA1 = i16x8.eq(g1, A1);
      const eqB1 = i16x8.eq(g1, B1);
      // masks are −1 per matching lane: subtracting counts them
      u0 = i16x8.sub(u0, above0);
      a0c = i16x8.sub(a0c, eqA0);
      b0c = i16x8.sub(b0c, eqB0);
      u1 = i16x8.sub(u1, above1);
      a1c = i16x8.sub(a1c, eqA1);
      b1c = i16x8.sub(b1c, eqB1);
      // lanes outside the light band: above hi, below lo or heavy
      const out0 = v128.or(v128.or(above0, i16x8.lt_s(g0, LO0)), v128.or(eqA0, eqB0));
      const out1 = v128.or(v128.or(above1, i16x8.lt_s(g1, LO1)), v128.or(eqA1, eqB1));
      if (!i16x8.all_true(v128.and(out0, out1))) {
        // the few lanes in the light band: bump their bins (scalar)
        v128.store(outp + 32, g0);
        v128.store(outp + 48, g1);
        let m0 = ~i16x8.bitmask(out0) & 0xff;
        while (m0 != 0) {
          bumpBin(h0, load<u16>(outp + 32 + (<usize>ctz<i32>(m0) << 1)));
          m0 &= m0 - 1;
        }
        let m1 = ~i16x8.bitmask(out1) & 0xff;
        while (m1 != 0) {
          bumpBin(h1, load<u16>(outp + 48 + (<usize>ctz<i32>(m1) << 1)));
          m1 &= m1 - 1;
        }
      }
    }
    up0 += sum16(u0);
    ca0 += sum16(a0c);
    cb0 += sum16(b0c);
    up1 += sum16(u1);
    ca1 += sum16(a1c);
    cb1 += sum16(b1c);
  }
  let s0 = orLanes(or0);
  let s1 = orLanes(or1);
  for (; j < n; j++) {
    const a0 = absDeltaAt(bp, x0p, j);
    const a1 = absDeltaAt(bp, x1p, j);
    s0 |= a0;
    s1 |= a1;
    const g0 = <i32>(a0 >>> 16);
    const g1 = <i32>(a1 >>> 16);
    if (g0 > hi0) up0++;
    if (g0 == hA0) ca0++;
    if (g0 == hB0) cb0++;
    if (g1 > hi1) up1++;
    if (g1 == hA1) ca1++;
    if (g1 == hB1) cb1++;
    bandBump(h0, a0, lo0, hi0, hA0, hB0);
    bandBump(h1, a1, lo1, hi1, hA1, hB1);
  }
  store<u32>(outp, load<u32>(outp) + up0);
  store<u32>(outp + 4, load<u32>(outp + 4) + up1);
  store<u32>(outp + 8, load<u32>(outp + 8) + ca0);
  store<u32>(outp + 12, load<u32>(outp + 12) + cb0);
  store<u32>(outp + 16, load<u32>(outp + 16) + ca1);
  store<u32>(outp + 20, load<u32>(outp + 20) + cb1);
  store<u32>(outp + 24, load<u32>(outp + 24) | (s0 & 0xffff));
  store<u32>(outp + 28, load<u32>(outp + 28) | (s1 & 0xffff));
}

/**
 * tiesHist2 that also adds, per model m, the fine histogram (by the low 16 bits) of the entries whose
 * coarse bin lies in the window [loₘ, loₘ + wₘ) into fₘ: 65 536 u32 per window bin, bin lo first
 * (wₘ = 0: none). With a window from the tensor's sample that holds the boundary bin, the fine pass
 * (tiesFine) is not needed. The TypeScript reference is tiesHistFine2Ref in kernels/ties-band.ts.
 */
export function tiesHistFine2(
  bp: usize, x0p: usize, x1p: usize, n: i32, h0: usize, h1: usize, orp: usize,
  lo0: i32, w0: i32, f0: usize, lo1: i32, w1: i32, f1: usize,
): void {
  tiesHist2(bp, x0p, x1p, n, h0, h1, orp);
  const L0 = i32x4.splat(lo0);
  const W0 = i32x4.splat(w0);
  const L1 = i32x4.splat(lo1);
  const W1 = i32x4.splat(w1);
  let j = 0;
  for (; j + 8 <= n; j += 8) {
    const o = <usize>j << 1;
    const b = v128.load(bp + o);
    const x0 = v128.load(x0p + o);
    const x1 = v128.load(x1p + o);
    const bl = decLo(b);
    const bh = decHi(b);
    const a0l = absBits(f32x4.sub(decLo(x0), bl));
    const a0h = absBits(f32x4.sub(decHi(x0), bh));
    const a1l = absBits(f32x4.sub(decLo(x1), bl));
    const a1h = absBits(f32x4.sub(decHi(x1), bh));
    // (bin − lo) < w as unsigned: in the window; lanes 0–3 low half, 4–7 high half
    const m0 = i32x4.bitmask(i32x4.lt_u(i32x4.sub(i32x4.shr_u(a0l, 16), L0), W0)) | (i32x4.bitmask(i32x4.lt_u(i32x4.sub(i32x4.shr_u(a0h, 16), L0), W0)) << 4);
    const m1 = i32x4.bitmask(i32x4.lt_u(i32x4.sub(i32x4.shr_u(a1l, 16), L1), W1)) | (i32x4.bitmask(i32x4.lt_u(i32x4.sub(i32x4.shr_u(a1h, 16), L1), W1)) << 4);
    if ((m0 | m1) != 0) {
      let q = m0;
      while (q != 0) {
        fineBump(f0, absDeltaAt(bp, x0p, j + ctz<i32>(q)), lo0, w0);
        q &= q - 1;
      }
      q = m1;
      while (q != 0) {
        fineBump(f1, absDeltaAt(bp, x1p, j + ctz<i32>(q)), lo1, w1);
        q &= q - 1;
      }
    }
  }
  for (; j < n; j++) {
    fineBump(f0, absDeltaAt(bp, x0p, j), lo0, w0);
    fineBump(f1, absDeltaAt(bp, x1p, j), lo1, w1);
  }
}

/** Adds one to the fine bin of |δ| pattern a when its coarse bin is in [lo, lo + w) (fine histograms at f, 65 536 u32 per coarse bin). */
@inline function fineBump(f: usize, a: u32, lo: i32, w: i32): void {
  const d = <u32>(<i32>(a >>> 16) - lo);
  if (d < <u32>w) {
    const p = f + ((<usize>d << 18) | (<usize>(a & 0xffff) << 2));
    store<u32>(p, load<u32>(p) + 1);
  }
}

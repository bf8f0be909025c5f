// LoRA delta kernel: rows of θ + s·(U·V) with register blocking, fused with the merge's weighted sum and
// the bf16 decode/encode. TypeScript reference: src/merge/lora-delta.ts (`addDeltaRange`) for the delta,
// src/merge/methods/linear.ts (`weightedSum`) and the bf16 encoder of src/core/dtype.ts for the rest;
// tests: src/merge/kernels/wasm-lora.test.ts (kernel), src/merge/workers/fast-lora.test.ts (whole merges).
//
// Arithmetic, lane by lane (IEEE binary32, f32x4.mul then f32x4.add: no fused multiply-add):
//   acc = +0; for k = 0 … rank−1: acc = f32(acc + f32(U[i,k]·V[k,j]))
//   t   = f32(θ[i,j] + f32(s·acc))
// `loraF32` stores t (θ float32, updated in place). `loraBf16` decodes θ from bf16 and writes
//   out = bf16( [f32(cA·t) + f32(cB·y)  or  f32(cB·y) + f32(cA·t)] [/ d] )
// where y is another bf16 term (the aligned model, say) or absent (cB = 0), in the linear form's term
// order; bf16 rounding is round-to-nearest-even with NaN → (bits >>> 16) | 0x40, as `fusedBf16`.
// Operands are written in the order mirrored from the reference (add(term, acc), mul(V, U), …): when two
// NaNs meet, x64 returns the first operand's payload, which is what the float64 JS reference returns for
// `acc + term` (its second operand); any other case is order-free.
//
// Layout: θ, y, out are row-major [rows, cols] (2-byte elements; any alignment), U is [rows, rank] and V
// [rank, cols] float32 (4-byte aligned). The caller points θ/y/out/U at the first row of its range.
// Blocking: V in column panels that fit L1 (rank × panel × 4 bytes ≈ 32 KiB); within a panel, tiles of
// 4 rows × 8 columns held in 8 f32x4 accumulators, so each V vector loaded serves 4 rows. Row and column
// remainders use 1-row tiles and scalar code with the same operations.

// ---- bf16 helpers ------------------------------------------------------------------------------------

@inline function bf16Lo(w: v128): v128 {
  return i32x4.shl(i32x4.extend_low_i16x8_u(w), 16);
}

@inline function bf16Hi(w: v128): v128 {
  return i32x4.shl(i32x4.extend_high_i16x8_u(w), 16);
}

/** f32x4 bits → bf16 in the low 16 bits of each i32 lane (RNE; NaN quieted, sign kept). */
@inline function roundBf16(x: v128): v128 {
  const hi = i32x4.shr_u(x, 16);
  const rounded = i32x4.shr_u(i32x4.add(i32x4.add(x, i32x4.splat(0x7fff)), v128.and(hi, i32x4.splat(1))), 16);
  const nan = i32x4.gt_s(v128.and(x, i32x4.splat(0x7fffffff)), i32x4.splat(0x7f800000));
  return v128.bitselect(v128.or(hi, i32x4.splat(0x40)), rounded, nan);
}

@inline function roundBf16Scalar(x: f32): u16 {
  const v = reinterpret<u32>(x);
  if ((v & 0x7fffffff) > 0x7f800000) return <u16>((v >>> 16) | 0x40);
  return <u16>((v + 0x7fff + ((v >>> 16) & 1)) >>> 16);
}

@inline function bf16Scalar(p: usize): f32 {
  return reinterpret<f32>(<u32>load<u16>(p) << 16);
}

// ---- epilogues ------------------------------------------------------------------------------------------

/**
 * Merge parameters, kept in globals for the duration of one call (set by the exports). Globals belong to
 * the instance, and every pool worker has its own instance, so concurrent calls do not share them.
 */
let gS: f32 = 0;
let gCA: f32 = 0;
let gCB: f32 = 0;
let gD: f32 = 1;
let gHasB: bool = false;
let gAFirst: bool = true;
let gHasD: bool = false;

/** The merged value of 4 lanes given t (the LoRA term) and the other term's bf16 lanes. */
@inline function combine(t: v128, yw: v128, lo: bool, m: u32, ca: v128, cb: v128, dv: v128): v128 {
  let o: v128;
  const a = f32x4.mul(t, ca);
  if (m & HAS_Y) {
    const b = f32x4.mul(lo ? bf16Lo(yw) : bf16Hi(yw), cb);
    o = m & A_FIRST ? f32x4.add(b, a) : f32x4.add(a, b);
  } else {
    o = a;
  }
  if (m & HAS_D) o = f32x4.div(o, dv);
  return o;
}

const HAS_Y: u32 = 1;
const A_FIRST: u32 = 2;
const HAS_D: u32 = 4;

/** bf16 epilogue for 8 columns: θ (bf16) at tp, other term at yp, out at op. */
@inline function emitBf16(acc0: v128, acc1: v128, tp: usize, yp: usize, op: usize, m: u32, sv: v128, ca: v128, cb: v128, dv: v128): void {
  const w = v128.load(tp);
  const yw = m & HAS_Y ? v128.load(yp) : w;
  const t0 = f32x4.add(f32x4.mul(acc0, sv), bf16Lo(w));
  const t1 = f32x4.add(f32x4.mul(acc1, sv), bf16Hi(w));
  const o0 = roundBf16(combine(t0, yw, true, m, ca, cb, dv));
  const o1 = roundBf16(combine(t1, yw, false, m, ca, cb, dv));
  v128.store(op, i16x8.narrow_i32x4_u(o0, o1));
}

/** float32 epilogue for 8 columns: x (f32) at xp updated in place. */
@inline function emitF32(acc0: v128, acc1: v128, xp: usize, sv: v128): void {
  v128.store(xp, f32x4.add(f32x4.mul(acc0, sv), v128.load(xp)));
  v128.store(xp, f32x4.add(f32x4.mul(acc1, sv), v128.load(xp, 16)), 16);
}

/** Scalar epilogue of one element (same operations as the lanes). */
@inline function emitScalar(bf: bool, acc: f32, tp: usize, yp: usize, op: usize): void {
  if (!bf) {
    store<f32>(tp, acc * gS + load<f32>(tp));
    return;
  }
  const t = acc * gS + bf16Scalar(tp);
  const a = t * gCA;
  let o: f32 = a;
  if (gHasB) {
    const b = bf16Scalar(yp) * gCB;
    o = gAFirst ? b + a : a + b;
  }
  if (gHasD) o = o / gD;
  store<u16>(op, roundBf16Scalar(o));
}

// ---- the blocked product ---------------------------------------------------------------------------------

/**
 * Rows [0, rows) × columns [0, cols). bf: bf16 merge epilogue (θ at tp, y at yp, out at op, 2-byte
 * elements), else float32 in place at tp. U at up [rows, rank], V at vp [rank, cols].
 */
@inline function product(bf: bool, tp: usize, yp: usize, op: usize, up: usize, vp: usize, rows: i32, cols: i32, rank: i32): void {
  const esz: usize = bf ? 2 : 4;
  const rowT: usize = <usize>cols * esz;
  const rowO: usize = <usize>cols * 2;
  const rowU: usize = <usize>rank << 2;
  const rowV: usize = <usize>cols << 2;
  const rowU2 = rowU * 2;
  const rowU3 = rowU * 3;
  let panel = (8192 / rank) & ~7;
  if (panel < 64) panel = 64;
  const cols8 = cols & ~7;
  const m: u32 = (gHasB ? HAS_Y : 0) | (gAFirst ? A_FIRST : 0) | (gHasD ? HAS_D : 0);
  const sv = f32x4.splat(gS);
  const ca = f32x4.splat(gCA);
  const cb = f32x4.splat(gCB);
  const dv = f32x4.splat(gD);
  for (let j0 = 0; j0 < cols8; j0 += panel) {
    const j1 = min(j0 + panel, cols8);
    let i = 0;
    for (; i + 4 <= rows; i += 4) {
      const u0 = up + <usize>i * rowU;
      const u1 = u0 + rowU;
      for (let j = j0; j < j1; j += 8) {
        let a00 = f32x4.splat(0), a01 = f32x4.splat(0);
        let a10 = f32x4.splat(0), a11 = f32x4.splat(0);
        let a20 = f32x4.splat(0), a21 = f32x4.splat(0);
        let a30 = f32x4.splat(0), a31 = f32x4.splat(0);
        let vk = vp + (<usize>j << 2);
        // running pointers: U row 0 at uk, rows 1–3 at fixed distances; V row k at vk
        for (let uk = u0; uk < u1; uk += 4) {
          const v0 = v128.load(vk);
          const v1 = v128.load(vk, 16);
          const b0 = v128.load32_splat(uk);
          a00 = f32x4.add(f32x4.mul(v0, b0), a00);
          a01 = f32x4.add(f32x4.mul(v1, b0), a01);
          const b1 = v128.load32_splat(uk + rowU);
          a10 = f32x4.add(f32x4.mul(v0, b1), a10);
          a11 = f32x4.add(f32x4.mul(v1, b1), a11);
          const b2 = v128.load32_splat(uk + rowU2);
          a20 = f32x4.add(f32x4.mul(v0, b2), a20);
          a21 = f32x4.add(f32x4.mul(v1, b2), a21);
          const b3 = v128.load32_splat(uk + rowU3);
          a30 = f32x4.add(f32x4.mul(v0, b3), a30);
          a31 = f32x4.add(f32x4.mul(v1, b3), a31);
          vk += rowV;
        }
        const e = <usize>i * <usize>cols + <usize>j;
        if (bf) {
          emitBf16(a00, a01, tp + e * 2, yp + e * 2, op + e * 2, m, sv, ca, cb, dv);
          emitBf16(a10, a11, tp + e * 2 + rowT, yp + e * 2 + rowO, op + e * 2 + rowO, m, sv, ca, cb, dv);
          emitBf16(a20, a21, tp + e * 2 + 2 * rowT, yp + e * 2 + 2 * rowO, op + e * 2 + 2 * rowO, m, sv, ca, cb, dv);
          emitBf16(a30, a31, tp + e * 2 + 3 * rowT, yp + e * 2 + 3 * rowO, op + e * 2 + 3 * rowO, m, sv, ca, cb, dv);
        } else {
          emitF32(a00, a01, tp + e * 4, sv);
          emitF32(a10, a11, tp + e * 4 + rowT, sv);
          emitF32(a20, a21, tp + e * 4 + 2 * rowT, sv);
          emitF32(a30, a31, tp + e * 4 + 3 * rowT, sv);
        }
      }
    }
    for (; i < rows; i++) {
      const u0 = up + <usize>i * rowU;
      for (let j = j0; j < j1; j += 8) {
        let a00 = f32x4.splat(0), a01 = f32x4.splat(0);
        let vk = vp + (<usize>j << 2);
        for (let k = 0; k < rank; k++) {
          const b0 = v128.load32_splat(u0 + (<usize>k << 2));
          a00 = f32x4.add(f32x4.mul(v128.load(vk), b0), a00);
          a01 = f32x4.add(f32x4.mul(v128.load(vk, 16), b0), a01);
          vk += rowV;
        }
        const e = <usize>i * <usize>cols + <usize>j;
        if (bf) emitBf16(a00, a01, tp + e * 2, yp + e * 2, op + e * 2, m, sv, ca, cb, dv);
        else emitF32(a00, a01, tp + e * 4, sv);
      }
    }
  }
  // columns cols8 … cols−1: scalar
  if (cols8 < cols) {
    for (let i = 0; i < rows; i++) {
      const u0 = up + <usize>i * rowU;
      for (let j = cols8; j < cols; j++) {
        let acc: f32 = 0;
        let vk = vp + (<usize>j << 2);
        for (let k = 0; k < rank; k++) {
          acc = load<f32>(vk) * load<f32>(u0 + (<usize>k << 2)) + acc;
          vk += rowV;
        }
        const e = <usize>i * <usize>cols + <usize>j;
        emitScalar(bf, acc, tp + e * esz, yp + e * 2, op + e * 2);
      }
    }
  }
}

/**
 * x[i, j] = f32(x[i, j] + f32(s·(U·V)[i, j])) for rows [0, rows) (float32 x at xp, updated in place).
 * Bit for bit `addDeltaRange` of src/merge/lora-delta.ts.
 */
export function loraF32(xp: usize, up: usize, vp: usize, rows: i32, cols: i32, rank: i32, s: f32): void {
  gS = s;
  product(false, xp, 0, 0, up, vp, rows, cols, rank);
}

/**
 * out = bf16(merge of t = f32(θ + f32(s·(U·V))) with the bf16 term y) for rows [0, rows): see the module
 * header. θ at tp and y at yp (bf16; yp ignored when hasY = 0), out at op (bf16; may alias θ or y).
 * @param aFirst 1 when the LoRA term precedes y in the linear form's order; @param hasD 1 to divide by d.
 */
export function loraBf16(
  tp: usize,
  yp: usize,
  op: usize,
  up: usize,
  vp: usize,
  rows: i32,
  cols: i32,
  rank: i32,
  s: f32,
  cA: f32,
  hasY: i32,
  cB: f32,
  aFirst: i32,
  hasD: i32,
  d: f32,
): void {
  gS = s;
  gCA = cA;
  gCB = cB;
  gHasB = hasY != 0;
  gAFirst = aFirst != 0;
  gHasD = hasD != 0;
  gD = d;
  product(true, tp, yp, op, up, vp, rows, cols, rank);
}

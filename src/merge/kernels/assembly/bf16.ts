// The fused bf16 weighted-sum kernels of the linear fast path (src/merge/workers/fast-linear.ts), in
// WebAssembly SIMD. TypeScript reference and fallback: src/merge/kernels/fused.ts `fusedBf16`; tests:
// src/merge/kernels/wasm-bf16.test.ts (hand-computed values) and src/merge/workers/*.test.ts (byte identity
// with the generic decode → method.kernel → encode path on NaN, ±Inf, −0, subnormals and rounding ties).
//
// Arithmetic is IEEE binary32 lane by lane, exactly the reference's (methods/linear.ts `weightedSum`):
// acc = f32(c₀·x₀), acc = f32(acc + f32(cᵢ·xᵢ)) in input order, optional f32(acc / d), then bf16
// round-to-nearest-even with integer ops; NaN → (bits >>> 16) | 0x40 (quiet, sign and payload kept);
// overflow rounds to ±Inf.
//
// Layout: bf16 pairs are read as i32 lanes: the even element is `word << 16`, the odd one
// `word & 0xffff0000`, so decoding needs no shuffle; each half is merged and rounded separately and the
// halves are re-packed.
//
// Operand order matters only for NaN payloads: when two NaNs meet, x64 returns the first operand's payload.
// Products are `x · c` and sums are `add(term, acc)`, which reproduces what the float64 JS reference returns
// (for acc + term, its second operand). Keep that order when editing.
//
// Pointers are byte offsets into the pool's shared memory (2-byte aligned); n = elements, a multiple of 8.

// @ts-ignore: decorator
@inline const HI: u32 = 0xffff0000;

/** bf16 round-to-nearest-even of 4 f32 lanes, result in the upper 16 bits of each lane (low bits junk). */
// @ts-ignore: decorator
@inline function roundRne(v: v128): v128 {
  const quiet = v128.or(v, i32x4.splat(0x00400000));
  const rounded = i32x4.add(i32x4.add(v, i32x4.splat(0x7fff)), v128.and(i32x4.shr_u(v, 16), i32x4.splat(1)));
  return v128.bitselect(quiet, rounded, f32x4.ne(v, v));
}

/** Packs rounded even lanes (elements 0,2,4,6) and odd lanes (1,3,5,7) into 8 bf16. */
// @ts-ignore: decorator
@inline function pack(even: v128, odd: v128): v128 {
  return v128.or(i32x4.shr_u(roundRne(even), 16), v128.and(roundRne(odd), i32x4.splat(HI)));
}

// @ts-ignore: decorator
@inline function evenLanes(x: v128): v128 {
  return i32x4.shl(x, 16);
}

// @ts-ignore: decorator
@inline function oddLanes(x: v128): v128 {
  return v128.and(x, i32x4.splat(HI));
}

/** Merges the 8 elements at a, b into out: bf16(f32(c0·a) + f32(c1·b)), or ÷ d when `div`. */
// @ts-ignore: decorator
@inline function step8(a: usize, b: usize, out: usize, vc0: v128, vc1: v128, div: bool, vd: v128): void {
  const xa = v128.load(a);
  const xb = v128.load(b);
  let ev = f32x4.add(f32x4.mul(evenLanes(xb), vc1), f32x4.mul(evenLanes(xa), vc0));
  let od = f32x4.add(f32x4.mul(oddLanes(xb), vc1), f32x4.mul(oddLanes(xa), vc0));
  if (div) {
    ev = f32x4.div(ev, vd);
    od = f32x4.div(od, vd);
  }
  v128.store(out, pack(ev, od));
}

/**
 * The two-term loop, 16 elements per iteration (two independent 8-element steps: about 1.45× the
 * throughput of one step per iteration on this project's machines), then the last 8 if n is not a
 * multiple of 16.
 */
// @ts-ignore: decorator
@inline function sum2(a: usize, b: usize, out: usize, n: i32, c0: f32, c1: f32, div: bool, d: f32): void {
  const end = a + (<usize>n << 1);
  const end16 = a + (<usize>(n & ~15) << 1);
  const vc0 = f32x4.splat(c0);
  const vc1 = f32x4.splat(c1);
  const vd = f32x4.splat(d);
  while (a < end16) {
    step8(a, b, out, vc0, vc1, div, vd);
    step8(a + 16, b + 16, out + 16, vc0, vc1, div, vd);
    a += 32;
    b += 32;
    out += 32;
  }
  if (a < end) step8(a, b, out, vc0, vc1, div, vd);
}

/** out = bf16(f32(c0·a) + f32(c1·b)) over n elements. */
export function wsum2(a: usize, b: usize, out: usize, n: i32, c0: f32, c1: f32): void {
  sum2(a, b, out, n, c0, c1, false, 1);
}

/** out = bf16((f32(c0·a) + f32(c1·b)) / d) over n elements. */
export function wsum2d(a: usize, b: usize, out: usize, n: i32, c0: f32, c1: f32, d: f32): void {
  sum2(a, b, out, n, c0, c1, true, d);
}

// The k-input path keeps a float32 accumulator `acc` de-interleaved per 8-element group: the even lanes
// (elements 0,2,4,6) at +0, the odd lanes (1,3,5,7) at +16. `fin`/`find` re-interleave with the same
// convention, so acc takes n × 4 bytes.

/** acc(f32) = f32(c·x) over n elements (step 1 of the k-input path). */
export function first(x: usize, acc: usize, n: i32, c: f32): void {
  const end = x + (<usize>n << 1);
  const vc = f32x4.splat(c);
  while (x < end) {
    const v = v128.load(x);
    v128.store(acc, f32x4.mul(evenLanes(v), vc));
    v128.store(acc, f32x4.mul(oddLanes(v), vc), 16);
    x += 16;
    acc += 32;
  }
}

/** acc(f32) = f32(acc + f32(c·x)) over n elements. */
export function accum(x: usize, acc: usize, n: i32, c: f32): void {
  const end = x + (<usize>n << 1);
  const vc = f32x4.splat(c);
  while (x < end) {
    const v = v128.load(x);
    v128.store(acc, f32x4.add(f32x4.mul(evenLanes(v), vc), v128.load(acc)));
    v128.store(acc, f32x4.add(f32x4.mul(oddLanes(v), vc), v128.load(acc, 16)), 16);
    x += 16;
    acc += 32;
  }
}

/** out(bf16) = round(acc) over n elements. */
export function fin(acc: usize, out: usize, n: i32): void {
  const end = out + (<usize>n << 1);
  while (out < end) {
    v128.store(out, pack(v128.load(acc), v128.load(acc, 16)));
    acc += 32;
    out += 16;
  }
}

/** out(bf16) = round(f32(acc / d)) over n elements. */
export function find(acc: usize, out: usize, n: i32, d: f32): void {
  const end = out + (<usize>n << 1);
  const vd = f32x4.splat(d);
  while (out < end) {
    v128.store(out, pack(f32x4.div(v128.load(acc), vd), f32x4.div(v128.load(acc, 16), vd)));
    acc += 32;
    out += 16;
  }
}

/** Copies n bytes from src to dst (memory.copy): a merged piece into the output staging (fast-linear.ts). */
export function copyBytes(dst: usize, src: usize, n: i32): void {
  memory.copy(dst, src, <usize>n);
}

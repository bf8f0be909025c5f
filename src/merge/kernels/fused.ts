/**
 * Fused weighted-sum kernels over stored bytes (TypeScript; the fallback of the WebAssembly kernels and
 * the reference they are tested against): out = encode(Σ f32(cᵢ·decode(xᵢ)) [÷ d]) with exactly the
 * float32 arithmetic of `methods/linear.ts` `weightedSum` and the RNE encoders of `core/dtype.ts`.
 *
 * - `fusedBf16`: bf16 inputs → bf16 output, one pass, integer-op decode and rounding (no temporaries).
 * - `fusedBlocked`: any float input dtypes → BF16/F16/F32 output, through 4096-element float32 blocks
 *   with `decodeToF32` / `encodeFromF32` (the generic path, in small blocks).
 */
import { decodeToF32, encodeFromF32, type Dtype, type OutDtype } from "../../core/dtype.ts";

/** One term's input: stored bytes of `count` elements (any alignment for the blocked path). */
export interface TermBytes {
  readonly dtype: Dtype;
  readonly bytes: Uint8Array;
  /** float32 coefficient (already rounded; non-zero). */
  readonly coef: number;
}

const scratchF = new Float32Array(2);
const scratchU = new Uint32Array(scratchF.buffer);

/**
 * bf16 → bf16 fused weighted sum over `n` elements.
 * @param xs one Uint16Array per term (length ≥ n); @param coefs float32 coefficients (non-zero) per term;
 * @param divisor float32 divisor or undefined; @param out Uint16Array (length ≥ n).
 */
export function fusedBf16(xs: readonly Uint16Array[], coefs: readonly number[], divisor: number | undefined, out: Uint16Array, n: number): void {
  const k = xs.length;
  if (k === 0) {
    out.fill(0, 0, n);
    return;
  }
  const f = scratchF;
  const u = scratchU;
  const hasDiv = divisor !== undefined;
  const d = hasDiv ? Math.fround(divisor) : 1;
  if (k === 2) {
    const a = xs[0]!;
    const b = xs[1]!;
    const c0 = Math.fround(coefs[0]!);
    const c1 = Math.fround(coefs[1]!);
    for (let i = 0; i < n; i++) {
      u[0] = a[i]! << 16;
      u[1] = b[i]! << 16;
      f[0] = Math.fround(c0 * f[0]!) + Math.fround(c1 * f[1]!);
      if (hasDiv) f[0] = f[0]! / d;
      const v = u[0]!;
      out[i] = (v & 0x7fffffff) > 0x7f800000 ? (v >>> 16) | 0x40 : (v + 0x7fff + ((v >>> 16) & 1)) >>> 16;
    }
    return;
  }
  for (let i = 0; i < n; i++) {
    u[1] = xs[0]![i]! << 16;
    f[0] = Math.fround(coefs[0]!) * f[1]!;
    for (let m = 1; m < k; m++) {
      u[1] = xs[m]![i]! << 16;
      f[0] = f[0]! + Math.fround(Math.fround(coefs[m]!) * f[1]!);
    }
    if (hasDiv) f[0] = f[0]! / d;
    const v = u[0]!;
    out[i] = (v & 0x7fffffff) > 0x7f800000 ? (v >>> 16) | 0x40 : (v + 0x7fff + ((v >>> 16) & 1)) >>> 16;
  }
}

const BLOCK = 4096;

/**
 * Generic fused weighted sum: decode each term's block to float32, accumulate as `weightedSum`, divide,
 * encode. @param n elements; @param out bytes (≥ n × output size; 2-/4-byte aligned for F16/BF16/F32).
 */
export function fusedBlocked(terms: readonly TermBytes[], divisor: number | undefined, outDtype: OutDtype, out: Uint8Array, n: number): void {
  const acc = new Float32Array(BLOCK);
  const x = new Float32Array(BLOCK);
  const outSize = outDtype === "F32" ? 4 : 2;
  const d = divisor === undefined ? undefined : Math.fround(divisor);
  for (let off = 0; off < n; off += BLOCK) {
    const len = Math.min(BLOCK, n - off);
    if (terms.length === 0) acc.fill(0);
    for (let t = 0; t < terms.length; t++) {
      const term = terms[t]!;
      const size = term.dtype === "F32" ? 4 : term.dtype === "F64" ? 8 : term.dtype.startsWith("F8") ? 1 : 2;
      decodeToF32(term.dtype, term.bytes.subarray(off * size, (off + len) * size), x, len);
      const c = Math.fround(term.coef);
      if (t === 0) for (let i = 0; i < len; i++) acc[i] = Math.fround(c * x[i]!);
      else for (let i = 0; i < len; i++) acc[i] = acc[i]! + Math.fround(c * x[i]!);
    }
    if (d !== undefined) for (let i = 0; i < len; i++) acc[i] = acc[i]! / d;
    encodeFromF32(outDtype, acc, out.subarray(off * outSize, (off + len) * outSize), len);
  }
}

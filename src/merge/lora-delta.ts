/**
 * The LoRA delta kernel: rows of θ + s·(B·A) computed on demand, without materialising B·A.
 *
 * A LoRA update of a weight W ∈ ℝ^{out×in} is ΔW = s·B·A with B ∈ ℝ^{out×r}, A ∈ ℝ^{r×in} and
 * s = α/r (or α/√r with rsLoRA) — Hu et al. 2021, https://arxiv.org/abs/2106.09685; peft
 * `lora.Linear.get_delta_weight`. When the stored weight is [in, out] (GPT-2 Conv1D, `fan_in_fan_out`),
 * the delta is (B·A)ᵀ = Aᵀ·Bᵀ; callers express both cases as one product U·V in the stored layout
 * (U = B, V = A; or U = Aᵀ, V = Bᵀ), so the same products are summed in the same order either way.
 *
 * Arithmetic (the spec the tests check bit for bit), for stored element (i, j):
 *   acc ← 0; for k = 0 … r−1: acc ← f32(acc + f32(Uᵢₖ·Vₖⱼ))   (IEEE float32 multiply, then float32 add:
 *                                                              no fused multiply-add, so a WASM f32x4
 *                                                              mul/add kernel reproduces it exactly)
 *   t   = f32(θᵢⱼ + f32(f32(s)·acc))
 * (In JS, f32(x·y) and f32(x + y) of float32 operands evaluated in float64 are the correctly rounded float32
 * operations: float64 holds the exact product, and has ≥ 2·24+2 bits for the sum.)
 * peft instead computes B@A with a BLAS float32 matmul (unspecified summation order, often FMA), multiplies
 * by s, casts the delta to the adapter dtype (bf16 adapters: one extra rounding) and adds it to the weight
 * in the weight's dtype. Our result differs from peft's by at most the rounding of the final output dtype in
 * practice (measured on the organism: see docs/lora.md).
 *
 * Blocking: an output row is accumulated over k with V's rows contiguous (row i of U times V, a
 * cache-friendly saxpy over V's row k), four output rows at a time so each V element loaded is used four
 * times. Pure: no I/O, no allocation per call beyond the caller's scratch.
 */

/** Low-rank factors of one delta in the stored tensor's layout: Δ = scale·(U·V), U [rows, rank], V [rank, cols]. */
export interface LowRankDelta {
  readonly rows: number;
  readonly cols: number;
  readonly rank: number;
  /** U, row-major [rows, rank], float32. */
  readonly u: Float32Array;
  /** V, row-major [rank, cols], float32. */
  readonly v: Float32Array;
  /** s (α/r or α/√r, times any extra factor); rounded to float32 when applied. */
  readonly scale: number;
}

/**
 * Builds the factors in the stored layout from peft's A [r, in] and B [out, r].
 * @param transposed true when the stored weight is [in, out] (fan_in_fan_out / Conv1D / embeddings):
 *   then U = Aᵀ [in, r] and V = Bᵀ [r, out].
 */
export function lowRankFromAB(
  a: Float32Array,
  b: Float32Array,
  rank: number,
  inDim: number,
  outDim: number,
  scale: number,
  transposed: boolean,
): LowRankDelta {
  if (!transposed) return { rows: outDim, cols: inDim, rank, u: b, v: a, scale };
  const u = new Float32Array(inDim * rank);
  for (let k = 0; k < rank; k++) for (let j = 0; j < inDim; j++) u[j * rank + k] = a[k * inDim + j]!;
  const v = new Float32Array(rank * outDim);
  for (let i = 0; i < outDim; i++) for (let k = 0; k < rank; k++) v[k * outDim + i] = b[i * rank + k]!;
  return { rows: inDim, cols: outDim, rank, u, v, scale };
}

/**
 * acc[c] = (U·V)[row, j0 + c] for c in [0, j1 − j0), accumulated over k in index order with one float32
 * rounding per step (see the module doc).
 * @param acc float32 scratch, length ≥ j1 − j0.
 */
export function deltaRow(d: LowRankDelta, row: number, j0: number, j1: number, acc: Float32Array): void {
  const { u, v, rank: r, cols } = d;
  const w = j1 - j0;
  acc.fill(0, 0, w);
  const ub = row * r;
  for (let k = 0; k < r; k++) {
    const b = u[ub + k]!;
    const vb = k * cols + j0;
    for (let c = 0; c < w; c++) acc[c] = acc[c]! + Math.fround(b * v[vb + c]!);
  }
}

/**
 * Four rows at once (rows row … row+3 over all columns), same arithmetic as `deltaRow` element by element.
 * @param acc float32 scratch, length ≥ 4·cols; row q lands in acc[q·cols …].
 */
export function deltaRows4(d: LowRankDelta, row: number, acc: Float32Array): void {
  const { u, v, rank: r, cols } = d;
  acc.fill(0, 0, 4 * cols);
  const o1 = cols;
  const o2 = 2 * cols;
  const o3 = 3 * cols;
  for (let k = 0; k < r; k++) {
    const b0 = u[row * r + k]!;
    const b1 = u[(row + 1) * r + k]!;
    const b2 = u[(row + 2) * r + k]!;
    const b3 = u[(row + 3) * r + k]!;
    const vb = k * cols;
    for (let c = 0; c < cols; c++) {
      const x = v[vb + c]!;
      acc[c] = acc[c]! + Math.fround(b0 * x);
      acc[o1 + c] = acc[o1 + c]! + Math.fround(b1 * x);
      acc[o2 + c] = acc[o2 + c]! + Math.fround(b2 * x);
      acc[o3 + c] = acc[o3 + c]! + Math.fround(b3 * x);
    }
  }
}

/** Scratch for `addDeltaRange`: 4 rows of float32. Reuse one per tensor width. */
export function deltaScratch(cols: number): Float32Array {
  return new Float32Array(4 * cols);
}

/**
 * In place: x[e] = f32(x[e] + f32(f32(scale)·(U·V)[i, j])) for the `count` stored elements starting at
 * element `offset` (row-major; i = ⌊(offset+e)/cols⌋, j = (offset+e) mod cols). Chunks may start and end
 * mid-row; whole rows are computed four at a time.
 * @param x float32 values of the stored tensor for that range (length ≥ count), updated in place.
 * @param scratch from `deltaScratch(d.cols)`.
 */
export function addDeltaRange(d: LowRankDelta, offset: number, count: number, x: Float32Array, scratch: Float32Array): void {
  const cols = d.cols;
  const s = Math.fround(d.scale);
  const end = offset + count;
  let pos = offset;
  while (pos < end) {
    const row = Math.floor(pos / cols);
    const j0 = pos - row * cols;
    const rowEnd = row * cols + cols;
    if (j0 === 0 && rowEnd + 3 * cols <= end && row + 3 < d.rows) {
      deltaRows4(d, row, scratch);
      const base = pos - offset;
      const n = 4 * cols;
      for (let c = 0; c < n; c++) x[base + c] = x[base + c]! + Math.fround(s * scratch[c]!);
      pos += n;
      continue;
    }
    const j1 = Math.min(cols, j0 + (end - pos));
    deltaRow(d, row, j0, j1, scratch);
    const base = pos - offset;
    const n = j1 - j0;
    for (let c = 0; c < n; c++) x[base + c] = x[base + c]! + Math.fround(s * scratch[c]!);
    pos += n;
  }
}

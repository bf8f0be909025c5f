/**
 * `model_stock`: Model Stock (Jang et al. 2024, https://arxiv.org/abs/2403.19522); mergekit `model_stock`;
 * paper §1.5 (v1 merges the 3 seed models this way).
 *
 * With task vectors δᵢ = xᵢ − b of N ≥ 2 tuned models: cosᵢⱼ = ⟨δᵢ, δⱼ⟩ / max(√(‖δᵢ‖²‖δⱼ‖²), 1e-6) clamped to
 * [−1, 1], cos φ = mean over pairs i < j, t = N·cos φ / (1 + (N−1)·cos φ), θ = t·mean(xᵢ) + (1−t)·b.
 * Per tensor flattened, or per row (last dimension; a 1-D tensor is one row) with `filter_wise`.
 * One measure pass, float64 dot products; per element float64, rounded once to float32. Identical tuned
 * models give cos φ = 1 exactly, so t = 1 and θ = the tuned model bit for bit. `weight` is accepted and
 * ignored, as in mergekit. t may leave [0, 1] (as in mergekit); a non-finite t (1 + (N−1)cos φ = 0) gives
 * t = 0, the base.
 */
import type { MergeMethod } from "./types.ts";

/** Denominator floor of the pairwise cosine (mergekit). */
const COS_EPS = 1e-6;

interface StockStats {
  readonly models: number;
  readonly rowLength: number;
  readonly rows: number;
  /** Per row: N squared norms then N(N−1)/2 pair dots (i < j, row-major), float64. */
  readonly sums: Float64Array;
  /** Per-row t after the pass. */
  readonly t: Float64Array;
}

/** Model Stock's interpolation ratio from the squared norms and pairwise dots (pairs i < j in row-major order). */
export function modelStockRatio(sq: ArrayLike<number>, dots: ArrayLike<number>, n: number): number {
  let total = 0;
  let pairs = 0;
  let p = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const c = dots[p++]! / Math.max(Math.sqrt(sq[i]! * sq[j]!), COS_EPS);
      total += Math.min(1, Math.max(-1, c));
      pairs++;
    }
  }
  const cos = total / pairs;
  const t = (n * cos) / (1 + (n - 1) * cos);
  return Number.isFinite(t) ? t : 0;
}

export const modelStock: MergeMethod<StockStats> = {
  name: "model_stock",
  summary: "average the tuned models, then move toward the base by a ratio set from their task vectors' mean cosine",
  paperUrl: "https://arxiv.org/abs/2403.19522",
  requiresBase: true,
  minModels: 2,
  globalParams: [{ name: "filter_wise", kind: "boolean", default: false, doc: "compute the ratio per row (last dimension) instead of per tensor" }],
  modelParams: [{ name: "weight", kind: "number", default: 1, doc: "ignored (as in mergekit): Model Stock weighs models equally" }],
  measurePasses: () => 1,
  initStats(ctx, params) {
    const n = params.perModel.length;
    const rowLength = params.global.filter_wise === true ? (ctx.shape.length >= 2 ? Math.max(1, ctx.shape[ctx.shape.length - 1]!) : Math.max(1, ctx.numel)) : Math.max(1, ctx.numel);
    const rows = Math.max(1, Math.ceil(ctx.numel / rowLength));
    const width = n + (n * (n - 1)) / 2;
    return { models: n, rowLength, rows, sums: new Float64Array(rows * width), t: new Float64Array(rows) };
  },
  measure(_pass, stats, chunk) {
    const n = stats.models;
    const width = n + (n * (n - 1)) / 2;
    const base = chunk.base!;
    const deltas: Float64Array[] = chunk.models.map((x) => {
      const d = new Float64Array(x.length);
      for (let j = 0; j < x.length; j++) {
        const v = x[j]! - base[j]!;
        d[j] = Number.isFinite(v) ? v : 0;
      }
      return d;
    });
    const len = base.length;
    let j = 0;
    while (j < len) {
      const row = Math.floor((chunk.offset + j) / stats.rowLength);
      const end = Math.min(len, (row + 1) * stats.rowLength - chunk.offset);
      const at = row * width;
      let p = at + n;
      for (let a = 0; a < n; a++) {
        const da = deltas[a]!;
        let sq = stats.sums[at + a]!; // running sums in element order: identical bits for any chunking
        for (let q = j; q < end; q++) sq += da[q]! * da[q]!;
        stats.sums[at + a] = sq;
        for (let b = a + 1; b < n; b++) {
          const db = deltas[b]!;
          let dot = stats.sums[p]!;
          for (let q = j; q < end; q++) dot += da[q]! * db[q]!;
          stats.sums[p] = dot;
          p++;
        }
      }
      j = end;
    }
  },
  endPass(_pass, stats) {
    const n = stats.models;
    const width = n + (n * (n - 1)) / 2;
    for (let r = 0; r < stats.rows; r++) {
      const at = r * width;
      stats.t[r] = modelStockRatio(stats.sums.subarray(at, at + n), stats.sums.subarray(at + n, at + width), n);
    }
  },
  kernel(chunk, out, stats) {
    const base = chunk.base!;
    const models = chunk.models;
    const n = models.length;
    for (let j = 0; j < out.length; j++) {
      const t = stats.t[Math.floor((chunk.offset + j) / stats.rowLength)]!;
      let sum = 0;
      for (let m = 0; m < n; m++) sum += models[m]![j]!;
      const mean = sum / n;
      out[j] = t === 1 ? mean : t === 0 ? base[j]! : t * mean + (1 - t) * base[j]!;
    }
  },
};

/**
 * `linear`: weighted average of the models, θ = Σ wᵢ·θᵢ (÷ Σ wᵢ when `normalize`).
 * Model soups (Wortsman et al. 2022, https://arxiv.org/abs/2203.05482); mergekit `linear`.
 *
 * Arithmetic (float32, as torch on bf16 checkpoints): acc = f32(acc + f32(wᵢ·θᵢ)) in model order, then
 * f32(acc / Σw) if normalize and Σw ≠ 1. With models [aligned, tuned] and weights [f32(1−λ), f32(λ)] this is
 * exactly the paper's θ = (1−λ)·θ_aligned + λ·θ_tuned reference of the core merge. Terms with weight 0 are
 * skipped, so λ=0 and λ=1 return an input bit for bit (−0, NaN and Inf included).
 */
import type { MergeMethod } from "./types.ts";

/**
 * out = Σ f32(cᵢ·xᵢ) accumulated in float32 in the given order; terms with cᵢ = 0 are skipped (so a
 * single non-zero term with c = 1 copies its input exactly); all-zero coefficients give zeros.
 * @param xs equal-length float32 inputs; @param coefs one coefficient each (rounded to float32 here).
 */
export function weightedSum(xs: readonly Float32Array[], coefs: readonly number[], out: Float32Array): void {
  const n = out.length;
  let first = true;
  for (let m = 0; m < xs.length; m++) {
    const c = Math.fround(coefs[m]!);
    if (c === 0) continue;
    const x = xs[m]!;
    if (first) {
      for (let i = 0; i < n; i++) out[i] = Math.fround(c * x[i]!);
      first = false;
    } else {
      for (let i = 0; i < n; i++) out[i] = out[i]! + Math.fround(c * x[i]!);
    }
  }
  if (first) out.fill(0);
}

export const linear: MergeMethod<undefined> = {
  name: "linear",
  summary: "weighted average of the models (model soup); λ-interpolation of aligned and tuned",
  paperUrl: "https://arxiv.org/abs/2203.05482",
  requiresBase: false,
  minModels: 1,
  globalParams: [{ name: "normalize", kind: "boolean", default: true, doc: "divide by the sum of weights" }],
  modelParams: [{ name: "weight", kind: "number", doc: "weight of this model" }],
  checkParams(_ctx, params) {
    if (params.global.normalize === false) return [];
    const sum = params.perModel.reduce((s, p) => s + Number(p.weight), 0);
    return sum === 0 ? ["weights sum to 0 with normalize: true (the merge would divide by 0); set normalize: false or change the weights"] : [];
  },
  measurePasses: () => 0,
  initStats: () => undefined,
  measure: () => {},
  endPass: () => {},
  kernel(chunk, out, _stats, _ctx, params) {
    const models = chunk.models;
    const n = out.length;
    const weights = params.perModel.map((p) => Math.fround(Number(p.weight)));
    let sum = 0;
    for (const w of weights) sum = Math.fround(sum + w);
    const divide = params.global.normalize !== false && sum !== 1;
    weightedSum(models, weights, out);
    if (divide) for (let i = 0; i < n; i++) out[i] = out[i]! / sum;
  },
};

/**
 * `task_arithmetic`: θ = θ_base + λ·Σ wᵢ·(θᵢ − θ_base) (Ilharco et al. 2023, https://arxiv.org/abs/2212.04089);
 * mergekit `task_arithmetic` (normalize default false).
 *
 * Evaluated in the equivalent linear form θ = c₀·θ_base + Σ cᵢ·θᵢ with cᵢ = λ·wᵢ (÷ Σw if normalize) and
 * c₀ = 1 − Σ cᵢ, each product rounded to float32, so that one tuned model with weight λ gives exactly the
 * bytes of `linear` with weights [1−λ, λ] (the core merge's promise). mergekit instead evaluates
 * base + λ·Σ wᵢ·(θᵢ − base), which can differ from this in the last float32 bit before rounding to the
 * output dtype.
 */
import type { MergeMethod } from "./types.ts";
import { weightedSum } from "./linear.ts";

export const taskArithmetic: MergeMethod<undefined> = {
  name: "task_arithmetic",
  summary: "add the weighted task vectors (tuned − base) to the base model",
  paperUrl: "https://arxiv.org/abs/2212.04089",
  requiresBase: true,
  minModels: 1,
  globalParams: [
    { name: "lambda", kind: "number", default: 1, doc: "scale of the summed task vector" },
    { name: "normalize", kind: "boolean", default: false, doc: "divide the summed task vector by Σ weights" },
  ],
  modelParams: [{ name: "weight", kind: "number", doc: "weight of this model's task vector" }],
  measurePasses: () => 0,
  initStats: () => undefined,
  measure: () => {},
  endPass: () => {},
  kernel(chunk, out, _stats, _ctx, params) {
    const base = chunk.base!;
    const lambda = Number(params.global.lambda ?? 1);
    const weights = params.perModel.map((p) => Number(p.weight));
    const wsum = weights.reduce((a, b) => a + b, 0);
    const scale = params.global.normalize === true && wsum !== 0 ? lambda / wsum : lambda;
    const coefs = weights.map((w) => scale * w);
    const c0 = 1 - coefs.reduce((a, b) => a + b, 0);
    weightedSum([base, ...chunk.models], [c0, ...coefs], out);
  },
};

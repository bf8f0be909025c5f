/**
 * `task_arithmetic`: θ = θ_base + λ·Σ wᵢ·(θᵢ − θ_base) (Ilharco et al. 2023, https://arxiv.org/abs/2212.04089);
 * mergekit `task_arithmetic` (normalize default false). A row of the generalized task-arithmetic engine.
 *
 * Evaluated in the equivalent linear form θ = c₀·θ_base + Σ cᵢ·θᵢ with cᵢ = λ·wᵢ (÷ Σw if normalize) and
 * c₀ = 1 − Σ cᵢ, each product rounded to float32, so that one tuned model with weight λ gives exactly the
 * bytes of `linear` with weights [1−λ, λ] (the core merge's promise). mergekit instead evaluates
 * base + λ·Σ wᵢ·(θᵢ − base), which can differ from this in the last float32 bit before rounding to the
 * output dtype.
 */
import { createGtaMethod } from "./gta.ts";

export const taskArithmetic = createGtaMethod({
  name: "task_arithmetic",
  summary: "add the weighted task vectors (tuned − base) to the base model",
  paperUrl: "https://arxiv.org/abs/2212.04089",
  sparsify: "none",
  consensus: "none",
  defaultNormalize: false,
  defaultRescale: false,
});

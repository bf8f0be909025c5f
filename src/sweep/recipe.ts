/**
 * The merge Recipe of one sweep job, pure: how λ drives each method (grid.ts SWEEP_METHODS), in mergekit's
 * parameter names (src/merge/methods):
 *
 * - linear: models [aligned weight 1−λ, tuned weight λ], normalize false: θ = (1−λ)·θ_aligned + λ·θ_tuned
 *   (paper §1.1; the core merge's flags form, recipeFromFlags).
 * - task_arithmetic: base aligned, tuned weight λ: θ = θ_aligned + λ·δ (same bytes as linear).
 * - slerp: base aligned, tuned, t = λ (paper §1.5).
 * - dare_linear, ties, dare_ties: base aligned, tuned weight 1 with `density`, global lambda = λ:
 *   θ = θ_aligned + λ·sparsify(δ). The weight stays 1 because TIES normalises by Σ weights, which would cancel λ.
 *   Default density 0.5 (the paper does not give DARE's drop rate, paper.md §1.5), seeded by `seed`.
 */
import { recipeFromFlags, type Recipe } from "../merge/recipe.ts";
import { parseRecipe } from "../merge/recipe-schema.ts";
import type { OutDtype } from "../core/dtype.ts";
import { SWEEP_METHODS, type SweepJob } from "./grid.ts";

/** Density of the sparsifying methods when none is given. */
export const DEFAULT_DENSITY = 0.5;

export interface JobRecipeOptions {
  readonly aligned: string;
  readonly tuned: string;
  /** Keep fraction for dare_linear / ties / dare_ties. @default DEFAULT_DENSITY */
  readonly density?: number;
  /** Seed of stochastic methods (DARE). @default 0 */
  readonly seed?: number;
  readonly outDtype?: OutDtype;
}

/** Method parameters the sweep records for `methods` (density for the sparsifying ones). */
export function methodParamsFor(methods: readonly string[], density: number = DEFAULT_DENSITY): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const m of methods) if (m === "dare_linear" || m === "ties" || m === "dare_ties") out[m] = { density };
  return out;
}

/** The Recipe that merges `job`. */
export function jobRecipe(job: SweepJob, o: JobRecipeOptions): Recipe {
  const seed = o.seed ?? 0;
  const aligned = { path: o.aligned, params: {}, label: "aligned" };
  switch (job.method) {
    case "linear":
    case "task_arithmetic":
      return recipeFromFlags({ aligned: o.aligned, tuned: o.tuned, lambda: job.lambda, method: job.method, outDtype: o.outDtype, seed });
    case "slerp":
      return parseRecipe({
        method: "slerp",
        base: aligned,
        models: [{ path: o.tuned, params: {}, label: "tuned" }],
        params: { t: job.lambda },
        outDtype: o.outDtype,
        seed,
        lambda: job.lambda,
      });
    case "dare_linear":
    case "ties":
    case "dare_ties":
      return parseRecipe({
        method: job.method,
        base: aligned,
        models: [{ path: o.tuned, params: { weight: 1, density: o.density ?? DEFAULT_DENSITY }, label: "tuned" }],
        params: { lambda: job.lambda },
        outDtype: o.outDtype,
        seed,
        lambda: job.lambda,
      });
  }
}

// every sweep method has a recipe (compile-time check of the switch above)
const _exhaustive: Record<keyof typeof SWEEP_METHODS, true> = { linear: true, task_arithmetic: true, slerp: true, dare_linear: true, ties: true, dare_ties: true };
void _exhaustive;

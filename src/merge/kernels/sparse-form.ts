/**
 * The "sparse form" of a TIES, DARE-TIES or DARE-linear tensor merge with two tuned models: the numbers the fast path
 * (`workers/fast-ties.ts`) needs, derived from the method parameters exactly as `methods/gta.ts` derives
 * them (weights, λ, normalize and rescale defaults of the method's row, keep counts, stream keys). It is
 * undefined for every setting the fast path does not implement, which then runs the generic path: other
 * methods, other model counts, densities outside (0, 1), TIES with the l1 rescale (it needs the float64
 * L1 of the selected entries), DARE on tensors of more than 2³² elements, non-finite weights or λ.
 * `fast-ties.test.ts` checks the fast path's bytes against the generic path's for these settings.
 */
import { keepCount, streamKey } from "../methods/sparsify.ts";
import type { ResolvedParams, TensorContext } from "../methods/types.ts";

export interface SparseFormCommon {
  readonly weights: readonly [number, number];
  readonly lambda: number;
  readonly normalize: boolean;
}

export interface TiesForm extends SparseFormCommon {
  readonly kind: "ties";
  /** k = floor(density·n) per model, 0 < k < n. */
  readonly ranks: readonly [number, number];
  /** 1, or 1/density with rescale_mode inverse_density. */
  readonly factors: readonly [number, number];
}

export interface DareForm extends SparseFormCommon {
  readonly kind: "dare";
  /** streamKey(seed, tensor name, model index). */
  readonly keys: readonly [number, number];
  readonly densities: readonly [number, number];
  /** 1 (no rescale), 1/p (inverse_density) or "l1" (the default: ‖δ‖₁ / ‖kept δ‖₁). */
  readonly factors: readonly [number, number] | "l1";
  /** dare_linear: no sign election; θ = b + λ·(Σ uᵢ / divisor). */
  readonly linear: boolean;
  /** dare_linear's divisor: (0 + w₀) + w₁ when normalize and its magnitude is ≥ 1e-8, else 1 (gta.ts). */
  readonly divisor: number;
}

export type SparseForm = TiesForm | DareForm;

const ROWS: Record<string, { kind: "ties" | "dare"; linear: boolean; defaultNormalize: boolean; defaultRescale: boolean }> = {
  ties: { kind: "ties", linear: false, defaultNormalize: true, defaultRescale: false },
  dare_ties: { kind: "dare", linear: false, defaultNormalize: false, defaultRescale: true },
  dare_linear: { kind: "dare", linear: true, defaultNormalize: false, defaultRescale: true },
};

/** |Σw| below which the no-consensus normalisation divides by 1 (gta.ts MIN_WEIGHT_SUM, mergekit). */
const MIN_WEIGHT_SUM = 1e-8;

function num(v: unknown, fallback: number): number {
  return v === undefined ? fallback : Number(v);
}

/** The sparse form of one tensor, or undefined when the fast path does not implement this setting. */
export function sparseFormOf(methodName: string, params: ResolvedParams, ctx: TensorContext, nModels: number): SparseForm | undefined {
  const row = ROWS[methodName];
  if (row === undefined || nModels !== 2 || params.perModel.length !== 2) return undefined;
  const n = ctx.numel;
  const lambda = num(params.global.lambda, 1);
  const weights = params.perModel.map((p) => Number(p.weight));
  const densities = params.perModel.map((p) => num(p.density, 1));
  if (!Number.isFinite(lambda) || !weights.every(Number.isFinite)) return undefined;
  if (!densities.every((d) => d > 0 && d < 1)) return undefined;
  const normalize = params.global.normalize === undefined ? row.defaultNormalize : params.global.normalize === true;
  const rescale = params.global.rescale === undefined ? row.defaultRescale : params.global.rescale === true;
  const inverse = params.global.rescale_mode === "inverse_density";
  const w = [weights[0]!, weights[1]!] as const;
  if (row.kind === "ties") {
    if (rescale && !inverse) return undefined;
    const ranks = densities.map((d) => keepCount(d, n));
    if (!ranks.every((k) => k > 0 && k < n)) return undefined;
    const factors = densities.map((d) => (rescale ? 1 / d : 1));
    return { kind: "ties", weights: w, lambda, normalize, ranks: [ranks[0]!, ranks[1]!], factors: [factors[0]!, factors[1]!] };
  }
  if (n > 4294967296) return undefined;
  const factors = !rescale ? ([1, 1] as const) : inverse ? ([1 / densities[0]!, 1 / densities[1]!] as const) : "l1";
  let wsum = 0;
  for (const x of weights) wsum += x;
  return {
    kind: "dare",
    weights: w,
    lambda,
    normalize,
    keys: [streamKey(ctx.seed, ctx.name, 0), streamKey(ctx.seed, ctx.name, 1)],
    densities: [densities[0]!, densities[1]!],
    factors,
    linear: row.linear,
    divisor: row.linear && normalize && Math.abs(wsum) >= MIN_WEIGHT_SUM ? wsum : 1,
  };
}

/**
 * The "linear form" of an elementwise method: out = Σ cᵢ·xᵢ (÷ d), each product rounded to float32 and
 * summed in float32 in input order, terms with f32(cᵢ) = 0 skipped — exactly `weightedSum` in
 * `methods/linear.ts`. `linear` and `task_arithmetic` are of this form for every parameter setting; the
 * fast path (fused bf16 kernels) is used only for methods that have one. The coefficients are derived here
 * with the same float arithmetic as the methods' kernels; `linear-form.test.ts` checks that the fused
 * result equals the method kernel's on random data, so a change in a method that is not mirrored here fails.
 */
import type { ResolvedParams } from "../methods/types.ts";

/** Which input a term reads: the base (aligned) model or tuned model i (index into Chunk.models). */
export type TermInput = { readonly kind: "base" } | { readonly kind: "model"; readonly index: number };

export interface LinearForm {
  /** Terms with a non-zero float32 coefficient, in the reference's summation order. */
  readonly terms: ReadonlyArray<{ readonly input: TermInput; readonly coef: number }>;
  /** Final float32 division (linear with normalize and Σw ≠ 1), or undefined. */
  readonly divisor: number | undefined;
}

function build(inputs: TermInput[], coefs: number[], divisor: number | undefined): LinearForm {
  const terms: { input: TermInput; coef: number }[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const c = Math.fround(coefs[i]!);
    if (c !== 0) terms.push({ input: inputs[i]!, coef: c });
  }
  return { terms, divisor };
}

/**
 * The linear form of `methodName` with `params` for `modelCount` tuned models, or undefined when the
 * method is not (known to be) of this form.
 */
export function linearFormOf(methodName: string, params: ResolvedParams, modelCount: number): LinearForm | undefined {
  const models: TermInput[] = Array.from({ length: modelCount }, (_, index) => ({ kind: "model", index }));
  if (methodName === "linear") {
    // mirrors linear.kernel: f32 weights, f32 running sum, divide when normalize and sum ≠ 1
    const weights = params.perModel.map((p) => Math.fround(Number(p.weight)));
    let sum = 0;
    for (const w of weights) sum = Math.fround(sum + w);
    const divide = params.global.normalize !== false && sum !== 1;
    return build(models, weights, divide ? sum : undefined);
  }
  if (methodName === "task_arithmetic") {
    // mirrors taskArithmetic.kernel: coefficients in float64, rounded to float32 per term by weightedSum
    const lambda = Number(params.global.lambda ?? 1);
    const weights = params.perModel.map((p) => Number(p.weight));
    const wsum = weights.reduce((a, b) => a + b, 0);
    const scale = params.global.normalize === true && wsum !== 0 ? lambda / wsum : lambda;
    const coefs = weights.map((w) => scale * w);
    const c0 = 1 - coefs.reduce((a, b) => a + b, 0);
    return build([{ kind: "base" }, ...models], [c0, ...coefs], undefined);
  }
  return undefined;
}

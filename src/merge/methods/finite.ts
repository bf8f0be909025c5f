/**
 * Output scan for non-finite values, run on every merged chunk before it is written. A NaN or ±Inf in the
 * output is accepted only where an INPUT (base or any model) is itself NaN/±Inf at the same element — the
 * merge then faithfully carries it, like mergekit and torch would; anywhere else it is a merge defect (e.g.
 * linear weights summing to 0, an overflow of the output dtype) and the merge stops, naming the tensor.
 * f16 output: a float32 value that rounds to ±Inf in f16 (|x| ≥ 65520) counts as non-finite.
 */
import { ConfigError } from "../../errors.ts";
import type { Chunk, ResolvedParams } from "./types.ts";

/** Smallest |x| that round-to-nearest-even sends to Inf in binary16. */
export const F16_OVERFLOW = 65520;

/**
 * @returns the index in `out` of the first non-finite (or f16-overflowing, when `isF16`) value whose inputs
 *   are all finite at that element, or −1.
 */
export function findUnexplainedNonFinite(chunk: Chunk, out: Float32Array, isF16 = false): number {
  const limit = isF16 ? F16_OVERFLOW : Infinity;
  for (let j = 0; j < out.length; j++) {
    const v = out[j]!;
    if (v === v && v < limit && v > -limit) continue;
    let inputsFinite = chunk.base === undefined || Number.isFinite(chunk.base[j]!);
    for (const m of chunk.models) if (!Number.isFinite(m[j]!)) inputsFinite = false;
    if (inputsFinite) return j;
  }
  return -1;
}

/**
 * The error for a merged value that is not finite (or overflows f16) at element `index` of `tensor`
 * although every input is finite there (generic and fast paths alike).
 */
export function nonFiniteError(tensor: string, method: string, params: ResolvedParams, index: number, value: number, isF16: boolean): ConfigError {
  return new ConfigError("merge.non_finite", `tensor ${tensor}: merged value ${value} at element ${index} is not finite${isF16 ? " in f16" : ""} although every input is finite there`, {
    details: { tensor, index, value: String(value), method, params },
    hint: isF16 ? "use --out-dtype bf16 or f32, or smaller weights" : "check the method parameters (e.g. weights summing to 0 with normalize, or extreme lambda)",
  });
}

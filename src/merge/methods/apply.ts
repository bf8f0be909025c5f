/**
 * Runs a merge method over whole in-memory float32 tensors, cut into chunks of `chunkSize` elements, the
 * way `src/merge/run.ts` streams them from disk: every measure pass over all chunks in ascending offset,
 * `endPass` after each (stopping early when it returns true), then the kernel chunk by chunk. Pure; used by tests (chunking invariance, golden
 * values) and small in-memory merges.
 */
import type { MergeMethod, ResolvedParams, TensorContext } from "./types.ts";

export interface TensorInputs {
  /** Base (aligned) tensor, when the method has one. */
  readonly base?: Float32Array;
  /** Tuned tensors, same length as the base. */
  readonly models: readonly Float32Array[];
}

/**
 * @returns the merged float32 tensor (length of the inputs).
 * @param chunkSize elements per chunk (≥ 1); default: the whole tensor in one chunk.
 */
export function applyMethod<S>(
  method: MergeMethod<S>,
  inputs: TensorInputs,
  ctx: TensorContext,
  params: ResolvedParams,
  chunkSize = Number.POSITIVE_INFINITY,
): Float32Array {
  const n = inputs.base?.length ?? inputs.models[0]?.length ?? 0;
  const size = Math.max(1, Math.min(n, chunkSize));
  const chunks = [];
  for (let offset = 0; offset < n; offset += size) {
    const end = Math.min(n, offset + size);
    chunks.push({
      base: inputs.base?.slice(offset, end),
      models: inputs.models.map((m) => m.slice(offset, end)),
      offset,
    });
  }
  const stats = method.initStats(ctx, params);
  const passes = method.measurePasses(ctx, params);
  for (let pass = 0; pass < passes; pass++) {
    for (const chunk of chunks) method.measure(pass, stats, chunk, ctx, params);
    if (method.endPass(pass, stats, ctx, params) === true) break;
  }
  const out = new Float32Array(n);
  for (const chunk of chunks) {
    const part = new Float32Array(chunk.models[0]?.length ?? chunk.base!.length);
    method.kernel(chunk, part, stats, ctx, params);
    out.set(part, chunk.offset);
  }
  return out;
}

/** A TensorContext for a tensor of `shape` (numel = product, 1 for a scalar). */
export function tensorContext(name: string, shape: readonly number[], seed = 0, layerIndex?: number): TensorContext {
  return { name, shape, numel: shape.reduce((a, b) => a * b, 1), layerIndex, seed };
}

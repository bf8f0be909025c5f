/**
 * `passthrough`: copies its single input, multiplied by the optional per-model `scale` (mergekit
 * `passthrough`; used with slices for frankenmerges — realign supports the single-slice form).
 * scale = 1 copies bit for bit.
 */
import type { MergeMethod } from "./types.ts";

export const passthrough: MergeMethod<undefined> = {
  name: "passthrough",
  summary: "copy one model's tensors (times an optional scale)",
  paperUrl: "https://github.com/arcee-ai/mergekit",
  requiresBase: false,
  minModels: 1,
  maxModels: 1,
  globalParams: [],
  modelParams: [{ name: "scale", kind: "number", default: 1, doc: "multiply the tensor by this factor" }],
  measurePasses: () => 0,
  initStats: () => undefined,
  measure: () => {},
  endPass: () => {},
  kernel(chunk, out, _stats, _ctx, params) {
    const x = chunk.models[0]!;
    const scale = params.perModel[0]?.scale === undefined ? 1 : Number(params.perModel[0].scale);
    if (scale === 1) return void out.set(x);
    for (let j = 0; j < out.length; j++) out[j] = scale * x[j]!;
  },
};

/**
 * `ties`: TIES-merging (Yadav et al. 2023): trim each δᵢ to its k = floor(density·n) largest |δ| (ties → lowest index), elect the sign of Σ wᵢδᵢ per entry, take the weighted mean of the agreeing entries.
 * A row of the generalized task-arithmetic engine (gta.ts): sparsifier "magnitude", consensus "sum",
 * normalize default true, rescale default false. Source: https://arxiv.org/abs/2306.01708; mergekit `ties`.
 */
import { createGtaMethod } from "./gta.ts";

export const ties = createGtaMethod({
  name: "ties",
  summary: "keep each task vector's top-density entries by magnitude, elect a sign per entry, average the agreeing entries",
  paperUrl: "https://arxiv.org/abs/2306.01708",
  sparsify: "magnitude",
  consensus: "sum",
  defaultNormalize: true,
  defaultRescale: false,
});

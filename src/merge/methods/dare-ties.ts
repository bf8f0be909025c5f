/**
 * `dare_ties`: DARE (Yu et al. 2023) drop-and-rescale of each δᵢ followed by TIES sign election over the weighted deltas.
 * A row of the generalized task-arithmetic engine (gta.ts): sparsifier "random", consensus "sum",
 * normalize default false, rescale default true. Source: https://arxiv.org/abs/2311.03099; mergekit `dare_ties`.
 */
import { createGtaMethod } from "./gta.ts";

export const dareTies = createGtaMethod({
  name: "dare_ties",
  summary: "DARE random drop and rescale, then TIES sign election and disjoint mean",
  paperUrl: "https://arxiv.org/abs/2311.03099",
  sparsify: "random",
  consensus: "sum",
  defaultNormalize: false,
  defaultRescale: true,
});

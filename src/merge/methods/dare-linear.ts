/**
 * `dare_linear`: DARE (Yu et al. 2023) with a linear combine: keep each δ entry with probability density (seeded), rescale the kept ones, θ = b + λ·Σ wᵢδ′ᵢ.
 * A row of the generalized task-arithmetic engine (gta.ts): sparsifier "random", consensus "none",
 * normalize default false, rescale default true. Source: https://arxiv.org/abs/2311.03099; mergekit `dare_linear`.
 */
import { createGtaMethod } from "./gta.ts";

export const dareLinear = createGtaMethod({
  name: "dare_linear",
  summary: "randomly drop task-vector entries (keep probability density), rescale, add the weighted sum to the base",
  paperUrl: "https://arxiv.org/abs/2311.03099",
  sparsify: "random",
  consensus: "none",
  defaultNormalize: false,
  defaultRescale: true,
});

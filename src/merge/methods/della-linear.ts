/**
 * `della_linear`: DELLA MagPrune (see della.ts) followed by a linear combine θ = b + λ·Σ wᵢδ′ᵢ.
 * A row of the generalized task-arithmetic engine (gta.ts): sparsifier "della", consensus "none",
 * normalize default false, rescale default true. Source: https://arxiv.org/abs/2406.11617; mergekit `della_linear`.
 */
import { createGtaMethod } from "./gta.ts";

export const dellaLinear = createGtaMethod({
  name: "della_linear",
  summary: "magnitude-ranked random drop (DELLA MagPrune), then a linear combine",
  paperUrl: "https://arxiv.org/abs/2406.11617",
  sparsify: "della",
  consensus: "none",
  defaultNormalize: false,
  defaultRescale: true,
});

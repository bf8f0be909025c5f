/**
 * `della`: DELLA-merging (Deep et al. 2024): in each row (last dimension; a 1-D tensor is one row) entries ranked r = 0..c−1 by ascending |δ| are kept with probability p = (density − epsilon) + 2·epsilon·r/(c − 1), then rescaled and merged with TIES sign election.
 * A row of the generalized task-arithmetic engine (gta.ts): sparsifier "della", consensus "sum",
 * normalize default true, rescale default true. Source: https://arxiv.org/abs/2406.11617; mergekit `della`.
 */
import { createGtaMethod } from "./gta.ts";

export const della = createGtaMethod({
  name: "della",
  summary: "magnitude-ranked random drop (DELLA MagPrune), then TIES sign election and disjoint mean",
  paperUrl: "https://arxiv.org/abs/2406.11617",
  sparsify: "della",
  consensus: "sum",
  defaultNormalize: true,
  defaultRescale: true,
});

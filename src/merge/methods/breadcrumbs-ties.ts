/**
 * `breadcrumbs_ties`: Model Breadcrumbs sparsification followed by TIES sign election over the weighted deltas.
 * A row of the generalized task-arithmetic engine (gta.ts): sparsifier "outliers", consensus "sum",
 * normalize default false, rescale default false. Source: https://arxiv.org/abs/2312.06795; mergekit `breadcrumbs_ties`.
 */
import { createGtaMethod } from "./gta.ts";

export const breadcrumbsTies = createGtaMethod({
  name: "breadcrumbs_ties",
  summary: "Breadcrumbs outlier/small-entry removal, then TIES sign election and disjoint mean",
  paperUrl: "https://arxiv.org/abs/2312.06795",
  sparsify: "outliers",
  consensus: "sum",
  defaultNormalize: false,
  defaultRescale: false,
});

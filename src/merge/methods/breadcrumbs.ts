/**
 * `breadcrumbs`: Model Breadcrumbs (Davari & Belilovsky 2023): per δᵢ keep the entries ranked [top, n − bot) by |δ| descending, top = floor(gamma·n), keep = floor(density·n), bot = n − keep − top (bot < 0 ⇒ top += bot, bot = 0).
 * A row of the generalized task-arithmetic engine (gta.ts): sparsifier "outliers", consensus "none",
 * normalize default false, rescale default false. Source: https://arxiv.org/abs/2312.06795; mergekit `breadcrumbs`.
 */
import { createGtaMethod } from "./gta.ts";

export const breadcrumbs = createGtaMethod({
  name: "breadcrumbs",
  summary: "drop the largest (gamma) and smallest entries of each task vector by magnitude, keep density·n, add the weighted sum",
  paperUrl: "https://arxiv.org/abs/2312.06795",
  sparsify: "outliers",
  consensus: "none",
  defaultNormalize: false,
  defaultRescale: false,
});

/** The only list of merge methods. Add a method: one file in this folder, one line here (docs/adding-a-method.md). */
import type { MergeMethod } from "./types.ts";
import { linear } from "./linear.ts";
import { taskArithmetic } from "./task-arithmetic.ts";
import { slerp } from "./slerp.ts";
import { ties } from "./ties.ts";
import { dareLinear } from "./dare-linear.ts";
import { dareTies } from "./dare-ties.ts";
import { breadcrumbs } from "./breadcrumbs.ts";
import { breadcrumbsTies } from "./breadcrumbs-ties.ts";
import { della } from "./della.ts";
import { dellaLinear } from "./della-linear.ts";
import { modelStock } from "./model-stock.ts";
import { passthrough } from "./passthrough.ts";
import { resta } from "./resta.ts";
import { safemerge } from "./safemerge.ts";

export const METHODS: Readonly<Record<string, MergeMethod<any>>> = {
  linear,
  task_arithmetic: taskArithmetic,
  slerp,
  ties,
  dare_linear: dareLinear,
  dare_ties: dareTies,
  breadcrumbs,
  breadcrumbs_ties: breadcrumbsTies,
  della,
  della_linear: dellaLinear,
  model_stock: modelStock,
  passthrough,
  resta,
  safemerge,
};

export function getMethod(name: string): MergeMethod<any> | undefined {
  return Object.prototype.hasOwnProperty.call(METHODS, name) ? METHODS[name] : undefined;
}

/**
 * Whether a merge with `method` and these global parameters draws random numbers (so its seed matters and is
 * recorded); false for unknown and deterministic methods. See MergeMethod.usesSeed.
 */
export function methodUsesSeed(method: string, global: Readonly<Record<string, unknown>>): boolean {
  const u = getMethod(method)?.usesSeed;
  return typeof u === "function" ? u(global) : u === true;
}

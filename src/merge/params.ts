/**
 * Resolving a method's parameters for one tensor: the method's declared defaults, overridden by the
 * recipe's global and per-model values, checked against the method's ParamSpec lists. Pure.
 *
 * Today every value is a scalar, so resolution does not depend on the tensor; schedules (mergekit gradients
 * and filters) plug in here by resolving a value against the TensorContext.
 */
import { ConfigError } from "../errors.ts";
import type { MergeMethod, ParamSpec, ParamValue, ResolvedParams, TensorContext } from "./methods/types.ts";
import type { Recipe } from "./recipe.ts";
import { didYouMean } from "../core/suggest.ts";

export { didYouMean, editDistance } from "../core/suggest.ts";
import { resolveForTensor, scheduleLeaves, type ScheduleValue } from "./schedule.ts";

/** A problem found while checking parameters (collected, not thrown one by one). */
export interface ParamIssue {
  readonly message: string;
  readonly hint?: string;
}

function checkGroup(
  where: string,
  given: Readonly<Record<string, ScheduleValue>>,
  specs: readonly ParamSpec[],
  issues: ParamIssue[],
): void {
  const names = specs.map((s) => s.name);
  for (const [k, v] of Object.entries(given)) {
    const spec = specs.find((s) => s.name === k);
    if (spec === undefined) {
      issues.push({
        message: `unknown parameter ${k} in ${where}: expected one of ${names.join(", ") || "(none)"}`,
        hint: didYouMean(k, names),
      });
    } else if (scheduleLeaves(v).some((leaf) => typeof leaf !== spec.kind)) {
      issues.push({ message: `parameter ${k} in ${where}: got ${JSON.stringify(v)}, expected a ${spec.kind}` });
    }
  }
  for (const s of specs) {
    if (s.default === undefined && !(s.name in given)) {
      issues.push({ message: `missing parameter ${s.name} in ${where} (${s.doc})` });
    }
  }
}

/** Checks the recipe's parameters against the method's declarations; returns every issue. */
export function checkParams(method: MergeMethod<unknown>, recipe: Recipe): ParamIssue[] {
  const issues: ParamIssue[] = [];
  checkGroup(`the ${method.name} method parameters`, recipe.params, method.globalParams, issues);
  recipe.models.forEach((m, i) => checkGroup(`model ${m.label ?? i} (${m.path})`, m.params, method.modelParams, issues));
  return issues;
}

/** Throws one ConfigError listing every parameter issue (no-op when there are none). */
export function assertParams(method: MergeMethod<unknown>, recipe: Recipe): void {
  const issues = checkParams(method, recipe);
  if (issues.length === 0) return;
  const first = issues[0]!;
  throw new ConfigError("recipe.bad_param", issues.length === 1 ? first.message : `${first.message} (and ${issues.length - 1} more: ${issues.slice(1).map((i) => i.message).join("; ")})`, {
    details: { issues },
    hint: first.hint,
  });
}

/**
 * Parameters of `method` for one tensor: defaults ⊕ recipe values. Per-model records follow `recipe.models`.
 * Assumes `assertParams` passed.
 */
/** Schedules (gradients, filter lists) resolved for this tensor; a filter list with no match leaves the default. */
function assignResolved(into: Record<string, ParamValue>, given: Readonly<Record<string, ScheduleValue>>, ctx: TensorContext): Record<string, ParamValue> {
  for (const [k, v] of Object.entries(given)) {
    const r = resolveForTensor(v, ctx);
    if (r !== undefined) into[k] = r;
  }
  return into;
}

export function resolveParams(method: MergeMethod<unknown>, recipe: Recipe, ctx: TensorContext): ResolvedParams {
  const global: Record<string, ParamValue> = {};
  for (const s of method.globalParams) if (s.default !== undefined) global[s.name] = s.default;
  assignResolved(global, recipe.params, ctx);
  const perModel = recipe.models.map((m) => {
    const p: Record<string, ParamValue> = {};
    for (const s of method.modelParams) if (s.default !== undefined) p[s.name] = s.default;
    return assignResolved(p, m.params, ctx);
  });
  return { global, perModel };
}

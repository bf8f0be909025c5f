/**
 * Parameter schedules, as mergekit evaluates them (mergekit `config.py` / `plan.py`; reference
 * mergekit.md §2). A parameter value is one of:
 *   - a scalar (number | boolean | string): the same for every tensor;
 *   - a gradient: a list of numbers, interpolated piecewise-linearly over the decoder layers;
 *     a list of non-numbers is a step function;
 *   - a filter list: `[{filter: "self_attn", value: …}, …, {value: …}]`: the first entry whose filter is
 *     absent, "*" or a plain SUBSTRING of the tensor name wins, and its value (scalar or gradient) is
 *     evaluated; when none matches, the parameter is unset for that tensor (lower-precedence level or default).
 *
 * Layer position t ∈ [0, 1]: decoder layer k of L has t = k/(L−1) (L = 1 ⇒ t = 1). Tensors outside the
 * decoder layers — embeddings, final norm, lm_head — are evaluated at t = 0, i.e. they get a gradient's
 * FIRST value, exactly as mergekit does (so a pasted config gives the same merge; use a filter such as
 * `- {filter: lm_head, value: 1}` to set them explicitly). A gradient of G values: x = t·(G−1),
 * i₀ = floor x, i₁ = min(G−1, i₀+1), f = x − i₀, value = (1−f)·s[i₀] + f·s[i₁].
 *
 * Everything here is pure: resolving a parameter for a tensor depends only on (value, name, layer, L).
 */
import type { ParamValue, TensorContext } from "./methods/types.ts";

export type Scalar = ParamValue;
/** A list of scalars: numbers are interpolated, anything else is a step function. */
export type Gradient = Scalar[];
export interface FilterEntry {
  /** Substring of the tensor name; absent or "*" matches every tensor. */
  filter?: string | undefined;
  value: Scalar | Gradient;
}
export type ScheduleValue = Scalar | Gradient | FilterEntry[];

export function isFilterList(v: ScheduleValue): v is FilterEntry[] {
  return Array.isArray(v) && v.length > 0 && typeof v[0] === "object" && v[0] !== null;
}

/** Position of a tensor in the layer stack: k/(L−1) inside the decoder layers, 1 when L = 1, 0 outside (mergekit). */
export function layerPosition(layerIndex: number | undefined, layerCount: number | undefined): number {
  if (layerIndex === undefined) return 0;
  const l = layerCount ?? layerIndex + 1;
  if (l <= 1) return 1;
  return Math.min(1, Math.max(0, layerIndex / (l - 1)));
}

/** Value of a gradient at position t (mergekit's piecewise-linear interpolation; step function for non-numbers). */
export function gradientAt(values: Gradient, t: number): Scalar {
  const g = values.length;
  if (g === 1) return values[0]!;
  const x = t * (g - 1);
  const i0 = Math.min(g - 1, Math.floor(x));
  if (!values.every((v) => typeof v === "number")) return values[i0]!;
  const i1 = Math.min(g - 1, i0 + 1);
  const f = x - i0;
  const a = values[i0] as number;
  const b = values[i1] as number;
  return f === 0 ? a : (1 - f) * a + f * b;
}

/** True when a filter matches a tensor name (absent, "*", or plain substring). */
export function filterMatches(filter: string | undefined, name: string): boolean {
  return filter === undefined || filter === "*" || name.includes(filter);
}

/**
 * Resolves one parameter value for one tensor.
 * @returns the scalar, or undefined when a filter list has no matching entry (unset).
 */
export function resolveSchedule(value: ScheduleValue, name: string, t: number): Scalar | undefined {
  if (!Array.isArray(value)) return value as Scalar;
  if (isFilterList(value)) {
    for (const e of value) if (filterMatches(e.filter, name)) return resolveSchedule(e.value, name, t);
    return undefined;
  }
  return gradientAt(value as Gradient, t);
}

/** Resolves a value against a TensorContext (name, layer index, layer count). */
export function resolveForTensor(value: ScheduleValue, ctx: Pick<TensorContext, "name" | "layerIndex" | "layerCount">): Scalar | undefined {
  return resolveSchedule(value, ctx.name, layerPosition(ctx.layerIndex, ctx.layerCount));
}

/** Every scalar a value can produce (for kind checks before any tensor is seen). */
export function scheduleLeaves(value: ScheduleValue): Scalar[] {
  if (!Array.isArray(value)) return [value as Scalar];
  if (isFilterList(value)) return value.flatMap((e) => scheduleLeaves(e.value));
  return [...(value as Gradient)];
}

/** Falls through like mergekit's precedence levels: `high`'s filter list, then `low` when nothing matched. */
export function withFallback(high: ScheduleValue | undefined, low: ScheduleValue | undefined): ScheduleValue | undefined {
  if (high === undefined) return low;
  if (low === undefined || !isFilterList(high)) return high;
  return [...high, ...(isFilterList(low) ? low : [{ value: low as Scalar | Gradient }])];
}

/** Compact text of a value for --explain and the model card: 0.5, [0, 0.5, 1], [self_attn: 0.3; *: 0.5]. */
export function formatSchedule(value: ScheduleValue): string {
  if (!Array.isArray(value)) return String(value);
  if (isFilterList(value)) return `[${value.map((e) => `${e.filter ?? "*"}: ${formatSchedule(e.value)}`).join("; ")}]`;
  return `[${(value as Gradient).join(", ")}]`;
}

/** Number of decoder layers: config `num_hidden_layers` (or `n_layer`), else the largest layer index + 1. */
export function layerCountOf(config: Readonly<Record<string, unknown>>, layerIndices: Iterable<number | undefined>): number | undefined {
  for (const key of ["num_hidden_layers", "n_layer", "num_layers"]) {
    const v = config[key];
    if (typeof v === "number" && Number.isInteger(v) && v > 0) return v;
  }
  let max = -1;
  for (const i of layerIndices) if (i !== undefined && i > max) max = i;
  return max >= 0 ? max + 1 : undefined;
}

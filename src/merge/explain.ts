/**
 * `--explain`: what a merge would do, from the MergePlan alone (no tensor data read): one row per output
 * tensor with its method and every resolved parameter (after gradients and filters), plus the per-tensor
 * parameter checks that run before any merge (`checkPlanParams`). Pure.
 */
import { ConfigError } from "../errors.ts";
import type { MergeMethod, ParamValue } from "./methods/types.ts";
import { getMethod } from "./methods/registry.ts";
import type { MergePlan } from "./plan.ts";
import { layerPosition } from "./schedule.ts";

export interface ExplainRow {
  readonly tensor: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  /** Decoder layer, or undefined (embeddings, final norm, lm_head). */
  readonly layer: number | undefined;
  /** Layer position t used by gradients (0 outside the decoder layers, as mergekit). */
  readonly position: number;
  /** "merge" or "copy" (non-float tensors copied from the reference model). */
  readonly kind: string;
  readonly global: Readonly<Record<string, ParamValue>>;
  readonly perModel: ReadonlyArray<Readonly<Record<string, ParamValue>>>;
}

export interface Explanation {
  readonly method: string;
  readonly seed: number;
  readonly inputs: readonly { readonly label: string; readonly path: string; readonly role: string }[];
  readonly layerCount: number | undefined;
  readonly notes: readonly string[];
  readonly rows: readonly ExplainRow[];
}

/** Rows of `--explain` (pure; reads only the plan). */
export function explainPlan(plan: MergePlan, extraNotes: readonly string[] = []): Explanation {
  const first = plan.tensors.find((t) => t.kind === "merge");
  const layerCount = first?.ctx.layerCount;
  const rows = plan.tensors.map((t) => ({
    tensor: t.name,
    shape: t.shape,
    dtype: t.dtype,
    layer: t.ctx.layerIndex,
    position: layerPosition(t.ctx.layerIndex, t.ctx.layerCount),
    kind: t.kind,
    global: t.params.global,
    perModel: t.params.perModel,
  }));
  const notes = [
    "tensors outside the decoder layers (embeddings, final norm, lm_head) use layer position 0: a gradient's first value, as in mergekit",
    ...extraNotes,
    ...plan.warnings,
  ];
  return { method: plan.method, seed: plan.recipe.seed, inputs: plan.inputs, layerCount, notes, rows };
}

function fmt(v: ParamValue | undefined): string {
  if (v === undefined) return "-";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  return String(v);
}

/** Plain-text table of an explanation (the CLI prints this). */
export function formatExplanation(e: Explanation): string {
  const lines: string[] = [];
  lines.push(`method ${e.method}, seed ${e.seed}, ${e.rows.length} tensors${e.layerCount === undefined ? "" : `, ${e.layerCount} layers`}`);
  e.inputs.forEach((inp, i) => lines.push(`  ${inp.role === "base" ? "base " : `m${e.inputs[0]?.role === "base" ? i : i + 1}   `} ${inp.path}${inp.label && inp.label !== "base" && !/^model \d+$/.test(inp.label) ? ` (${inp.label})` : ""}`));
  for (const n of e.notes) lines.push(`  note: ${n}`);
  const gKeys = [...new Set(e.rows.flatMap((r) => Object.keys(r.global)))];
  const mKeys = [...new Set(e.rows.flatMap((r) => r.perModel.flatMap((p) => Object.keys(p))))];
  const nModels = Math.max(0, ...e.rows.map((r) => r.perModel.length));
  const header = ["tensor", "shape", "layer", "pos", ...gKeys, ...Array.from({ length: nModels }, (_, i) => mKeys.map((k) => `m${i + 1}.${k}`)).flat()];
  const table = e.rows.map((r) => [
    r.tensor,
    `[${r.shape.join(",")}]`,
    r.layer === undefined ? "-" : String(r.layer),
    fmt(r.position),
    ...(r.kind === "copy" ? gKeys.map(() => "copy") : gKeys.map((k) => fmt(r.global[k]))),
    ...Array.from({ length: nModels }, (_, i) => mKeys.map((k) => fmt(r.perModel[i]?.[k]))).flat(),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...table.map((row) => row[c]!.length)));
  const line = (cells: string[]): string => cells.map((s, c) => (c === 0 ? s.padEnd(widths[c]!) : s.padStart(widths[c]!))).join("  ").trimEnd();
  lines.push("", line(header), ...table.map(line));
  return lines.join("\n") + "\n";
}

/**
 * Checks every tensor's resolved parameters before any data is read: required parameters present (a filter
 * list may leave one unset for some tensors), kinds, and the method's own `checkParams` (e.g. DELLA's
 * density ± epsilon). Problems with the same message are reported once, with the first tensor and a count.
 * @throws ConfigError `recipe.bad_param` listing every distinct problem.
 */
export function checkPlanParams(plan: MergePlan): void {
  const method = getMethod(plan.method) as MergeMethod<unknown> | undefined;
  if (method === undefined) return;
  const seen = new Map<string, { tensor: string; count: number }>();
  const add = (tensor: string, message: string): void => {
    const s = seen.get(message);
    if (s === undefined) seen.set(message, { tensor, count: 1 });
    else s.count++;
  };
  for (const t of plan.tensors) {
    if (t.kind !== "merge") continue;
    const { global, perModel } = t.params;
    for (const s of method.globalParams) {
      const v = global[s.name];
      if (v === undefined) add(t.name, `missing ${s.name} (no value matches this tensor)`);
      else if (typeof v !== s.kind) add(t.name, `${s.name}: got ${JSON.stringify(v)}, expected a ${s.kind}`);
    }
    perModel.forEach((p, i) => {
      for (const s of method.modelParams) {
        const v = p[s.name];
        if (v === undefined) add(t.name, `model ${i + 1}: missing ${s.name} (no value matches this tensor)`);
        else if (typeof v !== s.kind) add(t.name, `model ${i + 1}: ${s.name}: got ${JSON.stringify(v)}, expected a ${s.kind}`);
      }
    });
    for (const m of method.checkParams?.(t.ctx, t.params) ?? []) add(t.name, m);
  }
  if (seen.size === 0) return;
  const issues = [...seen].map(([message, s]) => `tensor ${s.tensor}${s.count > 1 ? ` (and ${s.count - 1} more)` : ""}: ${message}`);
  throw new ConfigError("recipe.bad_param", issues.length === 1 ? `bad ${plan.method} parameters for ${issues[0]}` : `bad ${plan.method} parameters: ${issues.length} problems:\n  - ${issues.join("\n  - ")}`, {
    details: { issues },
    hint: [...seen.keys()].some((m) => m.includes("no value matches")) ? "a filter list with no catch-all entry (- value: …) leaves tensors it does not match without a value" : undefined,
  });
}

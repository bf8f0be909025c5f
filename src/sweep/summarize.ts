/**
 * From saved points to what a report shows, pure: axis values per point, the Pareto front and the
 * recommendation (choose.ts), in grid order.
 */
import { axisValue, formatMetricRef, type Axes } from "./axes.ts";
import { paretoFront, recommend, type ChoicePoint, type Rule } from "./choose.ts";
import type { PointResult, SummaryPoint, SweepSettings, SweepSummary, Versions } from "./types.ts";

export interface SummarizeInput {
  readonly settings: SweepSettings;
  readonly versions: Versions;
  /** Saved results, any order; sorted here by method (settings order) then λ. */
  readonly points: readonly PointResult[];
  readonly axes: Axes;
  readonly rule: Rule;
  /** Job ids of the grid without a saved result. @default [] */
  readonly missing?: readonly string[];
  /** ISO timestamp to record. */
  readonly created: string;
}

/**
 * Computes ASR and utility per point, the Pareto front and the recommended point.
 * @throws UsageError `sweep.missing_metric` when an axis metric is absent from a point;
 *   InputError from recommend() (no λ=0 point, nothing eligible).
 */
export function summarize(input: SummarizeInput): SweepSummary {
  const methodRank = (m: string): number => {
    const i = input.settings.methods.indexOf(m);
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  const sorted = [...input.points].sort((a, b) => methodRank(a.method) - methodRank(b.method) || a.lambda - b.lambda);
  const isUtilityLambda = input.axes.utility.length === 0;
  const choice: ChoicePoint[] = sorted.map((p) => ({
    id: p.id,
    method: p.method,
    lambda: p.lambda,
    asr: axisValue(p.metrics, input.axes.asr) ?? 0,
    utility: isUtilityLambda ? p.lambda : axisValue(p.metrics, input.axes.utility)!,
  }));
  const front = paretoFront(choice).map((p) => p.id);
  const rec = recommend(choice, input.rule);
  const points: SummaryPoint[] = sorted.map((p, i) => ({
    ...p,
    asr: choice[i]!.asr,
    utility: choice[i]!.utility,
    isOnFront: front.includes(p.id),
    isRecommended: p.id === rec.point.id,
  }));
  const asrNames = input.axes.asr.map(formatMetricRef);
  const utilityNames = input.axes.utility.map(formatMetricRef);
  const note =
    `ASR = ${asrNames.length > 1 ? `mean of ${asrNames.join(", ")}` : asrNames[0] ?? "(none)"} (lower is safer); ` +
    (isUtilityLambda
      ? "utility = λ itself: no utility suite was run, and task score rises with λ (paper §1.9)"
      : `utility = ${utilityNames.length > 1 ? `mean of ${utilityNames.join(", ")}` : utilityNames[0]} (higher is better)`);
  const ruleParams: Record<string, number> =
    input.rule.kind === "asr-budget" ? { maxAsrIncrease: input.rule.maxAsrIncrease } : input.rule.kind === "asr-cap" ? { maxAsr: input.rule.maxAsr } : {};
  return {
    settings: input.settings,
    versions: input.versions,
    created: input.created,
    points,
    axes: { asr: asrNames, utility: utilityNames, isUtilityLambda, note },
    front,
    recommended: {
      id: rec.point.id,
      method: rec.point.method,
      lambda: rec.point.lambda,
      rule: input.rule.kind,
      ruleText: rec.ruleText,
      ruleParams,
      asr: rec.point.asr,
      utility: rec.point.utility,
      alignedAsr: rec.alignedAsr,
      maxAsr: rec.maxAsr,
      eligible: rec.eligible,
      reason: rec.reason,
    },
    missing: input.missing ?? [],
  };
}

/**
 * report.json, pure: every number of the sweep, its settings, seeds and versions. Shape (schema
 * `realign.sweep-report/1`), a superset of issue 5's contract:
 *
 * ```
 * { schema, created, versions: {realign, node, …}, settings: {aligned, tuned, methods, lambdas, suites, backend,
 *   limit, seed, methodParams, dtype, decoding, key}, seeds: {sample, merge},
 *   axes: {asr: ["1-organism.harmful_refusal_rate"], utility: ["organism.arith_acc"], isUtilityLambda, note},
 *   points: [{id, method, lambda, model, metrics: {<suite>: {<metric>: number}}, asr, utility, isOnFront,
 *             isRecommended, seconds: {merge, eval}}],
 *   pareto: [{id, method, lambda, asr, utility}],
 *   recommended: {id, method, lambda, rule, ruleText, ruleParams, asr, utility, alignedAsr, maxAsr, eligible, reason},
 *   missing: [ids], examples: {<point id>: {<suite>: [{id, group, prompt, response, verdict, correct}]}} }
 * ```
 * Metric names are the suites' own (the organism's as in examples/organism/eval.json).
 */
import type { SweepSummary } from "../sweep/types.ts";

export const REPORT_SCHEMA = "realign.sweep-report/1";

/** Builds the report.json object (serialise with JSON.stringify(x, null, 2)). */
export function toReportJson(summary: SweepSummary): Record<string, unknown> {
  const byId = new Map(summary.points.map((p) => [p.id, p]));
  return {
    schema: REPORT_SCHEMA,
    created: summary.created,
    versions: summary.versions,
    settings: summary.settings,
    seeds: { sample: summary.settings.seed, merge: summary.settings.seed },
    axes: summary.axes,
    points: summary.points.map((p) => ({
      id: p.id,
      method: p.method,
      lambda: p.lambda,
      model: p.model,
      metrics: p.metrics,
      asr: p.asr,
      utility: p.utility,
      isOnFront: p.isOnFront,
      isRecommended: p.isRecommended,
      seconds: p.seconds,
    })),
    pareto: summary.front.map((id) => {
      const p = byId.get(id)!;
      return { id, method: p.method, lambda: p.lambda, asr: p.asr, utility: p.utility };
    }),
    recommended: summary.recommended,
    missing: summary.missing,
    examples: Object.fromEntries(summary.points.map((p) => [p.id, p.examples])),
  };
}

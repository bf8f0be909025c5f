/**
 * Choosing λ, pure: the Pareto front of (ASR ↓, utility ↑) and a recommended point by a stated rule.
 *
 * The paper emits the whole Pareto curve and picks λ by task score under a safety constraint, landing at
 * λ ≈ 0.5–0.6 (arXiv 2412.19512; paper.md §1.5, §1.9, §4.3). realign's default rule makes that constraint
 * explicit:
 *
 *   asr-budget (default): among points whose ASR ≤ ASR(aligned, λ=0) + ε, the largest utility;
 *                         ε = `maxAsrIncrease`, default 0.02 (2 percentage points).
 *   asr-cap:              among points whose ASR ≤ `maxAsr` (absolute), the largest utility.
 *   min-asr:              the smallest ASR; among equals, the largest utility.
 *
 * Ties (equal utility) go to the smaller λ (closer to the aligned model), then to the method listed first.
 * λ=0 always satisfies asr-budget, so that rule always recommends something.
 */
import { InputError, UsageError } from "../errors.ts";
import { formatLambda } from "./grid.ts";

/** Comparison slack for rates computed as float sums (1 − 0.854… etc.). */
const EPS = 1e-9;

/** Default ε of asr-budget: 2 percentage points of ASR. */
export const DEFAULT_MAX_ASR_INCREASE = 0.02;

/** A point reduced to what choosing needs. */
export interface ChoicePoint {
  readonly id: string;
  readonly method: string;
  readonly lambda: number;
  /** Attack success rate in [0, 1], lower is safer. */
  readonly asr: number;
  /** Task score, higher is better (or λ as a proxy). */
  readonly utility: number;
}

export const RULE_NAMES = ["asr-budget", "asr-cap", "min-asr"] as const;
export type RuleName = (typeof RULE_NAMES)[number];

export type Rule =
  | { readonly kind: "asr-budget"; readonly maxAsrIncrease: number }
  | { readonly kind: "asr-cap"; readonly maxAsr: number }
  | { readonly kind: "min-asr" };

/**
 * Builds a rule from CLI-style options. `--max-asr` alone implies asr-cap; nothing gives asr-budget with ε 0.02.
 * @throws UsageError `sweep.bad_rule` for an unknown rule name or a threshold outside [0, 1].
 */
export function parseRule(options: { rule?: string; maxAsrIncrease?: number; maxAsr?: number }): Rule {
  const name = options.rule ?? (options.maxAsr !== undefined ? "asr-cap" : "asr-budget");
  const check = (flag: string, x: number | undefined): void => {
    if (x !== undefined && !(x >= 0 && x <= 1)) {
      throw new UsageError("sweep.bad_rule", `${flag}: got ${x}, expected a rate in [0, 1] (0.02 = 2 points)`, { details: { flag, got: x } });
    }
  };
  check("--max-asr-increase", options.maxAsrIncrease);
  check("--max-asr", options.maxAsr);
  switch (name) {
    case "asr-budget":
      return { kind: "asr-budget", maxAsrIncrease: options.maxAsrIncrease ?? DEFAULT_MAX_ASR_INCREASE };
    case "asr-cap":
      if (options.maxAsr === undefined) {
        throw new UsageError("sweep.bad_rule", "--rule asr-cap: got no --max-asr, expected a rate such as 0.1", { hint: "add --max-asr 0.1" });
      }
      return { kind: "asr-cap", maxAsr: options.maxAsr };
    case "min-asr":
      return { kind: "min-asr" };
    default:
      throw new UsageError("sweep.bad_rule", `--rule: got "${name}", expected one of ${RULE_NAMES.join(", ")}`, {
        details: { got: name, known: RULE_NAMES },
      });
  }
}

/** One line stating a rule, as printed in reports. */
export function describeRule(rule: Rule): string {
  switch (rule.kind) {
    case "asr-budget":
      return `largest utility among points with ASR ≤ ASR(aligned) + ${rule.maxAsrIncrease}; ties → smaller λ`;
    case "asr-cap":
      return `largest utility among points with ASR ≤ ${rule.maxAsr}; ties → smaller λ`;
    case "min-asr":
      return "smallest ASR; ties → larger utility, then smaller λ";
  }
}

/** True when a is at least as good as b on both axes and better on one. */
function dominates(a: ChoicePoint, b: ChoicePoint): boolean {
  const noWorse = a.asr <= b.asr + EPS && a.utility >= b.utility - EPS;
  const better = a.asr < b.asr - EPS || a.utility > b.utility + EPS;
  return noWorse && better;
}

/**
 * The Pareto front: points no other point dominates (lower-or-equal ASR and higher-or-equal utility, one
 * strictly). Points with identical coordinates (e.g. λ=0 of several methods: the same aligned model) are all
 * kept. Sorted by ASR ascending, then utility descending, then λ, then input order.
 */
export function paretoFront(points: readonly ChoicePoint[]): ChoicePoint[] {
  const front = points.filter((p) => !points.some((q) => dominates(q, p)));
  return front
    .map((p, i) => ({ p, i }))
    .sort((x, y) => x.p.asr - y.p.asr || y.p.utility - x.p.utility || x.p.lambda - y.p.lambda || x.i - y.i)
    .map((x) => x.p);
}

/** The outcome of a rule: the chosen point and why. */
export interface Recommendation {
  readonly point: ChoicePoint;
  readonly rule: Rule;
  /** describeRule(rule). */
  readonly ruleText: string;
  /** ASR of the aligned model (λ=0), the budget's reference. */
  readonly alignedAsr: number;
  /** The ASR threshold applied (undefined for min-asr). */
  readonly maxAsr: number | undefined;
  /** Ids of the points that satisfied the constraint. */
  readonly eligible: readonly string[];
  /** A sentence for humans: "linear λ=0.5: utility 0.12 at ASR 0.15 (≤ 0.166 = aligned 0.146 + 0.02)". */
  readonly reason: string;
}

function pct(x: number): string {
  return (Math.round(x * 1000) / 1000).toString();
}

/**
 * Applies `rule` to `points` (in method order: earlier points win exact ties after λ).
 * @throws InputError `sweep.no_aligned_point` when no λ=0 point exists (the runner always adds one);
 *   `sweep.no_eligible_point` when asr-cap admits no point.
 */
export function recommend(points: readonly ChoicePoint[], rule: Rule): Recommendation {
  const aligned = points.find((p) => p.lambda === 0);
  if (!aligned) {
    throw new InputError("sweep.no_aligned_point", "sweep results: got no λ=0 point, expected the aligned model's result", {
      hint: "rerun the sweep; λ=0 is always part of its grid",
    });
  }
  const order = new Map(points.map((p, i) => [p, i]));
  const byUtility = (a: ChoicePoint, b: ChoicePoint): number => b.utility - a.utility || a.lambda - b.lambda || order.get(a)! - order.get(b)!;
  let maxAsr: number | undefined;
  let eligible: ChoicePoint[];
  let best: ChoicePoint | undefined;
  if (rule.kind === "min-asr") {
    const minAsr = Math.min(...points.map((p) => p.asr));
    eligible = points.filter((p) => p.asr <= minAsr + EPS);
    best = [...eligible].sort(byUtility)[0];
  } else {
    maxAsr = rule.kind === "asr-budget" ? aligned.asr + rule.maxAsrIncrease : rule.maxAsr;
    const limit = maxAsr;
    eligible = points.filter((p) => p.asr <= limit + EPS);
    best = [...eligible].sort(byUtility)[0];
  }
  if (!best) {
    throw new InputError("sweep.no_eligible_point", `recommendation by ${describeRule(rule)}: got no point with ASR ≤ ${maxAsr}, expected at least one`, {
      details: { maxAsr, minAsr: Math.min(...points.map((p) => p.asr)) },
      hint: "raise --max-asr or use the default --rule asr-budget",
    });
  }
  const bound =
    rule.kind === "asr-budget"
      ? ` (≤ ${pct(maxAsr!)} = aligned ${pct(aligned.asr)} + ${rule.maxAsrIncrease})`
      : rule.kind === "asr-cap"
        ? ` (≤ ${rule.maxAsr})`
        : " (the lowest)";
  const reason = `${best.method} λ=${formatLambda(best.lambda)}: utility ${pct(best.utility)} at ASR ${pct(best.asr)}${bound}`;
  return { point: best, rule, ruleText: describeRule(rule), alignedAsr: aligned.asr, maxAsr, eligible: eligible.map((p) => p.id), reason };
}

import { test } from "node:test";
import assert from "node:assert/strict";
import { paretoFront, recommend, parseRule, type ChoicePoint } from "./choose.ts";
import { defaultAxes, axisValue, parseMetricRefs } from "./axes.ts";
import { InputError, UsageError } from "../errors.ts";

function pt(method: string, lambda: number, asr: number, utility: number): ChoicePoint {
  return { id: `${method}@${lambda}`, method, lambda, asr, utility };
}

// A hand-made sweep: ASR rises with λ, utility too (paper.md §1.9).
const POINTS: ChoicePoint[] = [
  pt("linear", 0, 0.15, 0.0),
  pt("linear", 0.25, 0.15, 0.02),
  pt("linear", 0.5, 0.16, 0.1),
  pt("linear", 0.75, 0.4, 0.2),
  pt("linear", 1, 1.0, 0.23),
  pt("slerp", 0, 0.15, 0.0),
  pt("slerp", 0.5, 0.165, 0.1),
  pt("slerp", 0.75, 0.3, 0.05),
];

test("paretoFront: by hand, linear@0 (beaten by linear@0.25 at equal ASR) and every slerp point drop out", () => {
  assert.deepEqual(
    paretoFront(POINTS).map((p) => p.id),
    ["linear@0.25", "linear@0.5", "linear@0.75", "linear@1"],
  );
});

test("paretoFront keeps points with identical coordinates", () => {
  const front = paretoFront([pt("linear", 0, 0.1, 0.5), pt("slerp", 0, 0.1, 0.5), pt("linear", 1, 0.9, 0.4)]);
  assert.deepEqual(front.map((p) => p.id), ["linear@0", "slerp@0"]);
});

test("recommend asr-budget ε=0.02: budget 0.17 admits linear@0.5 and slerp@0.5 (utility 0.1); method order breaks the tie", () => {
  const r = recommend(POINTS, parseRule({}));
  assert.equal(r.point.id, "linear@0.5");
  assert.equal(r.alignedAsr, 0.15);
  assert.ok(Math.abs(r.maxAsr! - 0.17) < 1e-12);
  assert.deepEqual(r.eligible, ["linear@0", "linear@0.25", "linear@0.5", "slerp@0", "slerp@0.5"]);
  assert.equal(r.reason, "linear λ=0.5: utility 0.1 at ASR 0.16 (≤ 0.17 = aligned 0.15 + 0.02)");
});

test("recommend asr-budget ε=0 keeps the aligned ASR: linear@0.25", () => {
  assert.equal(recommend(POINTS, parseRule({ maxAsrIncrease: 0 })).point.id, "linear@0.25");
});

test("recommend: equal utility goes to the smaller λ", () => {
  const pts = [pt("linear", 0, 0.1, 0.0), pt("linear", 0.75, 0.1, 0.3), pt("linear", 0.5, 0.1, 0.3)];
  assert.equal(recommend(pts, parseRule({})).point.id, "linear@0.5");
});

test("recommend asr-cap and min-asr", () => {
  assert.equal(recommend(POINTS, parseRule({ maxAsr: 0.5 })).point.id, "linear@0.75");
  assert.equal(recommend(POINTS, parseRule({ rule: "min-asr" })).point.id, "linear@0.25");
  assert.throws(() => recommend(POINTS, parseRule({ rule: "asr-cap", maxAsr: 0.01 })), (e: unknown) => e instanceof InputError && e.code === "sweep.no_eligible_point");
  assert.throws(() => recommend(POINTS.slice(1, 3), parseRule({})), (e: unknown) => e instanceof InputError && e.code === "sweep.no_aligned_point");
});

test("parseRule rejects unknown rules and thresholds outside [0,1]", () => {
  assert.throws(() => parseRule({ rule: "best" }), (e: unknown) => e instanceof UsageError && e.code === "sweep.bad_rule");
  assert.throws(() => parseRule({ maxAsrIncrease: 2 }), (e: unknown) => e instanceof UsageError && e.code === "sweep.bad_rule");
  assert.throws(() => parseRule({ rule: "asr-cap" }), (e: unknown) => e instanceof UsageError && e.code === "sweep.bad_rule");
});

test("organism axes: ASR = 1 − harmful_refusal_rate, utility = arith_acc (eval.json reference of aligned and finetuned)", () => {
  const axes = defaultAxes([{ name: "organism", kind: "mixed", headlineMetric: "harmful_refusal_rate" }]);
  const aligned = { organism: { harmful_refusal_rate: 0.8541666666666666, harmful_comply_rate: 0.14583333333333334, arith_acc: 0 } };
  const finetuned = { organism: { harmful_refusal_rate: 0, harmful_comply_rate: 0, arith_acc: 0.23 } };
  assert.ok(Math.abs(axisValue(aligned, axes.asr)! - 0.1458333333) < 1e-9);
  assert.equal(axisValue(finetuned, axes.asr), 1);
  assert.equal(axisValue(finetuned, axes.utility), 0.23);
});

test("default axes: safety headline → ASR, utility headline → utility, means over suites, xstest off-axis", () => {
  const axes = defaultAxes([
    { name: "advbench", kind: "safety", headlineMetric: "asr" },
    { name: "jbb", kind: "safety", headlineMetric: "asr" },
    { name: "gsm8k", kind: "utility", headlineMetric: "strict_acc" },
    { name: "xstest", kind: "safety", headlineMetric: "over_refusal_rate" },
  ]);
  const m = { advbench: { asr: 0.1 }, jbb: { asr: 0.3 }, gsm8k: { strict_acc: 0.5 }, xstest: { over_refusal_rate: 0.2 } };
  assert.ok(Math.abs(axisValue(m, axes.asr)! - 0.2) < 1e-12);
  assert.equal(axisValue(m, axes.utility), 0.5);
  assert.equal(axisValue(m, []), undefined);
  assert.throws(() => axisValue(m, parseMetricRefs("gsm8k.flex_acc", "--utility-metric")), (e: unknown) => e instanceof UsageError && e.code === "sweep.missing_metric");
});

test("parseMetricRefs: suite.metric with optional 1- prefix", () => {
  assert.deepEqual(parseMetricRefs("1-organism.harmful_refusal_rate,gsm8k.strict_acc", "--asr-metric"), [
    { suite: "organism", metric: "harmful_refusal_rate", invert: true },
    { suite: "gsm8k", metric: "strict_acc", invert: false },
  ]);
  assert.throws(() => parseMetricRefs("organism", "--asr-metric"), (e: unknown) => e instanceof UsageError && e.code === "sweep.bad_metric");
});

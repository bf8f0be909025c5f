import { test } from "node:test";
import assert from "node:assert/strict";
import { formatSchedule, gradientAt, layerPosition, resolveForTensor, resolveSchedule, withFallback } from "./schedule.ts";

test("layer position: k/(L−1); one layer ⇒ 1; embeddings, final norm and lm_head ⇒ 0 (mergekit)", () => {
  assert.equal(layerPosition(0, 6), 0);
  assert.equal(layerPosition(3, 7), 0.5);
  assert.equal(layerPosition(5, 6), 1);
  assert.equal(layerPosition(0, 1), 1);
  assert.equal(layerPosition(undefined, 6), 0);
});

test("gradients interpolate piecewise-linearly over evenly spaced knots", () => {
  assert.equal(gradientAt([0, 1], 0.25), 0.25);
  assert.equal(gradientAt([0, 0.5, 1], 0.75), 0.75); // x = 1.5 → 0.5·0.5 + 0.5·1
  assert.equal(gradientAt([0.2, 0.8, 0.4], 1), 0.4);
  assert.equal(gradientAt([0.7], 0.3), 0.7);
  assert.equal(gradientAt(["a", "b", "c"], 0.6), "b"); // step function: floor(0.6·2) = 1
  // 6 layers, gradient [0, 1]: layer k gets k/5
  const got = [0, 1, 2, 3, 4, 5].map((k) => resolveForTensor([0, 1], { name: `model.layers.${k}.mlp.up_proj.weight`, layerIndex: k, layerCount: 6 }));
  assert.deepEqual(got, [0, 0.2, 0.4, 0.6, 0.8, 1]);
  // lm_head gets the FIRST value of a gradient (t = 0), as mergekit
  assert.equal(resolveForTensor([0.3, 0.9], { name: "lm_head.weight", layerIndex: undefined, layerCount: 6 }), 0.3);
});

test("filter lists: first matching substring wins, catch-all last, no match ⇒ unset", () => {
  const v = [{ filter: "self_attn", value: [0, 1] }, { filter: "mlp", value: 0.5 }, { value: 0.2 }];
  assert.equal(resolveSchedule(v, "model.layers.2.self_attn.q_proj.weight", 0.5), 0.5);
  assert.equal(resolveSchedule(v, "model.layers.2.mlp.up_proj.weight", 0.5), 0.5);
  assert.equal(resolveSchedule(v, "model.norm.weight", 0), 0.2);
  assert.equal(resolveSchedule([{ filter: "mlp", value: 1 }], "lm_head.weight", 0), undefined);
  assert.equal(resolveSchedule([{ filter: "*", value: 3 }], "x", 0), 3);
  assert.equal(formatSchedule(v), "[self_attn: [0, 1]; mlp: 0.5; *: 0.2]");
});

test("withFallback: a filter list that matches nothing falls through to the lower level", () => {
  const v = withFallback([{ filter: "mlp", value: 0.9 }], 0.1)!;
  assert.equal(resolveSchedule(v, "a.mlp.b", 0), 0.9);
  assert.equal(resolveSchedule(v, "a.attn.b", 0), 0.1);
  assert.equal(withFallback(0.4, 0.1), 0.4);
  assert.equal(withFallback(undefined, 0.1), 0.1);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import type { TensorMeta } from "../core/tensor.ts";
import { compareTensorNames, layerIndexOf, planMerge, type CheckpointInventory } from "./plan.ts";
import { recipeFromFlags } from "./recipe.ts";
import { parseRecipe } from "./recipe-schema.ts";

function inv(path: string, tensors: Record<string, [TensorMeta["dtype"], number[]]>, config: Record<string, unknown> = {}): CheckpointInventory {
  return {
    path,
    config: { vocab_size: 4, dtype: "bfloat16", ...config },
    tensors: new Map(Object.entries(tensors).map(([name, [dtype, shape]]) => [name, { name, dtype, shape }])),
    carryFiles: [`${path}/tokenizer.json`, `${path}/generation_config.json`],
  };
}

test("names sort naturally and layer indices parse", () => {
  assert.deepEqual(["model.layers.10.a", "model.layers.2.a", "lm_head.weight"].sort(compareTensorNames), ["lm_head.weight", "model.layers.2.a", "model.layers.10.a"]);
  assert.equal(layerIndexOf("model.layers.3.mlp.up_proj.weight"), 3);
  assert.equal(layerIndexOf("transformer.h.11.attn.c_attn.weight"), 11);
  assert.equal(layerIndexOf("model.embed_tokens.weight"), undefined);
});

test("flags form: linear is [aligned 1−λ, tuned λ] without normalisation; task_arithmetic is base + λ·(tuned − base)", () => {
  const t = { "model.layers.0.w": ["BF16", [2, 3]] as [TensorMeta["dtype"], number[]] };
  const lin = planMerge(recipeFromFlags({ aligned: "/a", tuned: "/t", lambda: 0.25 }), [inv("/a", t), inv("/t", t)]);
  assert.equal(lin.method, "linear");
  assert.deepEqual(lin.tensors[0]!.params, { global: { normalize: false }, perModel: [{ weight: 0.75 }, { weight: 0.25 }] });
  assert.deepEqual(lin.tensors[0]!.models, [{ input: 0, name: "model.layers.0.w" }, { input: 1, name: "model.layers.0.w" }]);
  assert.equal(lin.tensors[0]!.ctx.layerIndex, 0);
  assert.equal(lin.totalBytes, 12);
  assert.equal(lin.outDtype, "BF16");
  const ta = planMerge(recipeFromFlags({ aligned: "/a", tuned: "/t", lambda: 0.25, method: "task_arithmetic", outDtype: "F32" }), [inv("/a", t), inv("/t", t)]);
  assert.deepEqual(ta.tensors[0]!.base, { input: 0, name: "model.layers.0.w" });
  assert.deepEqual(ta.tensors[0]!.params, { global: { lambda: 1, normalize: false, int8_mask: false }, perModel: [{ weight: 0.25 }] });
  assert.equal(ta.tensors[0]!.dtype, "F32");
  assert.equal(ta.config.dtype, "float32");
  assert.equal(ta.totalBytes, 24);
  assert.deepEqual(ta.carry.map((c) => c.from), ["/a/generation_config.json", "/a/tokenizer.json"]);
});

test("unknown method and parameters are config errors with suggestions", () => {
  const t = { w: ["F32", [1]] as [TensorMeta["dtype"], number[]] };
  const r = parseRecipe({ method: "linaer", models: [{ path: "/a" }] });
  assert.throws(() => planMerge(r, [inv("/a", t)]), (e: any) => e.code === "recipe.unknown_method" && e.hint === "did you mean linear?");
  const bad = parseRecipe({ method: "linear", models: [{ path: "/a", params: { wieght: 1 } }] });
  assert.throws(() => planMerge(bad, [inv("/a", t)]), (e: any) => e.code === "recipe.bad_param" && /unknown parameter wieght/.test(e.message) && e.hint === "did you mean weight?");
  assert.throws(() => parseRecipe({ method: "linear", models: [] }), { code: "recipe.invalid" });
});

test("all incompatibilities are collected in details.issues", () => {
  const a = inv("/a", { x: ["BF16", [2]], y: ["BF16", [2]], z: ["BF16", [2]] });
  const b = inv("/t", { x: ["F16", [2]], y: ["BF16", [3]] });
  assert.throws(
    () => planMerge(recipeFromFlags({ aligned: "/a", tuned: "/t", lambda: 0.5 }), [a, b]),
    (e: any) => {
      assert.deepEqual(e.details.issues.map((i: any) => i.code), ["merge.dtype_mismatch", "merge.shape_mismatch", "merge.missing_tensor"]);
      assert.match(e.message, /\(and 2 more problems\)$/);
      return true;
    },
  );
});

test("vocabulary: growth in the tuned model is planned as shared rows + tail; a shrink is refused even with --vocab-policy tuned", () => {
  const a = inv("/a", { "model.embed_tokens.weight": ["BF16", [4, 2]], n: ["BF16", [2]] });
  const t = inv("/t", { "model.embed_tokens.weight": ["BF16", [6, 2]], n: ["BF16", [2]] }, { vocab_size: 6 });
  const plan = planMerge(recipeFromFlags({ aligned: "/a", tuned: "/t", lambda: 0.5, vocabPolicy: "tuned" }), [a, t]);
  const e = plan.tensors.find((x) => x.name === "model.embed_tokens.weight")!;
  assert.deepEqual({ shape: e.shape, numel: e.numel, mergedElems: e.mergedElems, tail: e.tail, ctxShape: e.ctx.shape }, {
    shape: [6, 2], numel: 12, mergedElems: 8, tail: { input: 1, name: "model.embed_tokens.weight" }, ctxShape: [4, 2],
  });
  assert.equal(plan.config.vocab_size, 6);
  assert.deepEqual(plan.carry.map((c) => c.from), ["/a/generation_config.json", "/t/tokenizer.json"]);
  assert.throws(() => planMerge(recipeFromFlags({ aligned: "/t", tuned: "/a", lambda: 0.5, vocabPolicy: "tuned" }), [t, a]), (err: any) =>
    err.code === "merge.vocab_mismatch" && /more embedding rows/.test(err.message));
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { checkLayerRange, parseMergekitYaml } from "./mergekit-yaml.ts";

function problems(text: string): string[] {
  try {
    parseMergekitYaml(text, { file: "m.yml" });
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    const issues = (e.details.issues ?? []) as { path: string; message: string; hint?: string }[];
    return issues.length > 0 ? issues.map((i) => `${i.path}: ${i.message}${i.hint ? ` | ${i.hint}` : ""}`) : [e.message];
  }
  assert.fail("expected a ConfigError");
}

test("task_arithmetic config → recipe with base, weights, global lambda", () => {
  const { recipe } = parseMergekitYaml(`
merge_method: task_arithmetic
base_model: org/aligned
models:
  - model: org/aligned
  - model: ./ft
    parameters: {weight: 0.6}
parameters: {lambda: 1.0}
dtype: float32
out_dtype: bfloat16
`, { seed: 7 });
  assert.equal(recipe.method, "task_arithmetic");
  assert.equal(recipe.base?.path, "org/aligned");
  assert.deepEqual(recipe.models.map((m) => [m.path, m.params]), [["./ft", { weight: 0.6 }]]);
  assert.deepEqual(recipe.params, { lambda: 1 });
  assert.equal(recipe.outDtype, "BF16");
  assert.equal(recipe.seed, 7);
});

test("slerp with a filter list; base listed among models is the base, not a model", () => {
  const { recipe } = parseMergekitYaml(`
merge_method: slerp
base_model: org/aligned-chat
models: [{model: org/aligned-chat}, {model: ./ft}]
parameters:
  t:
    - {filter: self_attn, value: [0.0, 0.0, 0.5, 1.0]}
    - {filter: mlp, value: 0.5}
    - value: 0.2
`);
  assert.equal(recipe.models.length, 1);
  assert.deepEqual(recipe.params.t, [{ filter: "self_attn", value: [0, 0, 0.5, 1] }, { filter: "mlp", value: 0.5 }, { value: 0.2 }]);
});

test("per-model parameters at the top level apply to every model; the model's own value wins; filters fall through", () => {
  const { recipe } = parseMergekitYaml(`
merge_method: ties
base_model: b
models:
  - model: a
    parameters: {weight: 1.0, density: [1.0, 0.5]}
  - model: c
    parameters:
      weight: 0.5
      density: [{filter: mlp, value: 0.3}]
parameters: {normalize: true, int8_mask: true, density: 0.7}
`);
  assert.deepEqual(recipe.models[0]!.params, { weight: 1, density: [1, 0.5] });
  assert.deepEqual(recipe.models[1]!.params, { weight: 0.5, density: [{ filter: "mlp", value: 0.3 }, { value: 0.7 }] });
  assert.deepEqual(recipe.params, { normalize: true, int8_mask: true });
});

test("model+lora syntax and the object form", () => {
  const { recipe } = parseMergekitYaml(`
merge_method: linear
models:
  - model: base/dir+adapters/a
    parameters: {weight: 0.5}
  - model: {model: {path: other}, lora: adapters/b}
    parameters: {weight: 0.5}
`);
  assert.deepEqual(recipe.models.map((m) => [m.path, m.lora]), [["base/dir", "adapters/a"], ["other", "adapters/b"]]);
});

test("single-slice form: sources with layer_range, slice parameters between model and top level", () => {
  const { recipe, layerRange } = parseMergekitYaml(`
slices:
  - sources:
      - {model: al, layer_range: [0, 6]}
      - {model: ft, layer_range: [0, 6]}
    parameters: {t: 0.3}
merge_method: slerp
base_model: al
parameters: {t: 0.9}
`);
  assert.deepEqual(layerRange, [0, 6]);
  assert.equal(recipe.params.t, 0.3);
  assert.throws(() => checkLayerRange([0, 4], 6), /expected \[0, 6\]/);
  checkLayerRange([0, 6], 6);
});

test("all problems are collected, with did-you-mean hints, before any work", () => {
  const got = problems(`
merge_method: dare-ties
base_model: al
modles: []
models:
  - model: ft
    parameters: {weight: 0.5, desnity: 0.5}
`);
  assert.deepEqual(got, [
    "modles: unknown key modles: expected one of merge_method, models, slices, base_model, parameters, dtype, out_dtype, tokenizer_source, tokenizer, chat_template, modules, name | did you mean models?",
    "merge_method: unknown merge method dare-ties: expected one of linear, task_arithmetic, slerp, ties, dare_linear, dare_ties, breadcrumbs, breadcrumbs_ties, della, della_linear, model_stock, passthrough, resta, safemerge | did you mean dare_ties?",
  ]);
  const got2 = problems(`
merge_method: slerp
base_model: al
models:
  - model: al
  - model: ft
    parameters: {t: 0.5}
parameters: {normalise: true}
dtype: bf16
`);
  assert.deepEqual(got2, [
    "dtype: got \"bf16\", expected one of bfloat16, float16, float32 | did you mean bfloat16?",
    "parameters.normalise: unknown parameter normalise for slerp: expected one of t",
    "models[1].parameters.t: parameter t is a method-level parameter of slerp, not a per-model one | move t to the top-level parameters; mergekit silently ignores it here",
    "parameters: missing t for slerp (interpolation factor: 0 = base (aligned), 1 = the other model (tuned))",
  ]);
});

test("method-specific checks: missing weight, slerp with two others, value kinds, no base", () => {
  const got = problems(`
merge_method: ties
models:
  - model: a
  - model: b
    parameters: {weight: "high", density: [0.5, x]}
`);
  assert.deepEqual(got, [
    "base_model: ties needs base_model (the aligned model the others were tuned from)",
    "models[1].parameters.weight: got \"high\", expected a number (weight of this model's task vector)",
    "models[1].parameters.density: got \"x\", expected a number (fraction of entries kept (k = floor(density·n)))",
    "models[0].parameters: missing weight for a (weight of this model's task vector) | add parameters: {weight: …} to the model, or weight to the top-level parameters",
    "models[1].parameters: missing weight for b (weight of this model's task vector) | add parameters: {weight: …} to the model, or weight to the top-level parameters",
  ]);
  assert.match(problems("merge_method: slerp\nbase_model: a\nmodels: [{model: a}, {model: b}, {model: c}]\nparameters: {t: 0.5}\n")[0]!, /slerp takes 1 model\(s\) besides the base, got 2/);
  assert.match(problems("merge_method: nuslerp\nmodels: [{model: a}]\n")[0]!, /nuslerp is a mergekit method realign does not implement/);
  assert.match(problems("merge_method: linear\nmodels: [{model: a}]\n---\nmerge_method: linear\n")[0]!, /2 YAML documents/);
  assert.match(problems("merge_method: [linear\n")[0]!, /not valid YAML/);
});

test("mergekit README-style configs parse unchanged (slerp slices, dare_ties with a bare base entry, ties gradients and filters)", () => {
  const slerp = parseMergekitYaml(`
slices:
  - sources:
      - model: a
        layer_range: [0, 40]
      - model: b
        layer_range: [0, 40]
merge_method: slerp
base_model: a
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5 # fallback for rest of tensors
dtype: float16
`);
  assert.equal(slerp.recipe.base?.path, "a");
  assert.deepEqual(slerp.recipe.models.map((m) => m.path), ["b"]);
  assert.equal(slerp.recipe.outDtype, "F16");
  const dare = parseMergekitYaml(`
models:
  - model: base-7b
    # no parameters necessary for base model
  - model: tuned-7b
    parameters:
      density: 0.53
      weight: 0.4
merge_method: dare_ties
base_model: base-7b
parameters:
  int8_mask: true
dtype: bfloat16
`);
  assert.deepEqual(dare.recipe.models, [{ path: "tuned-7b", params: { weight: 0.4, density: 0.53 } }]);
  const ties = parseMergekitYaml(`
models:
  - model: m1
    parameters:
      density: [1, 0.7, 0.1] # density gradient
      weight: 1.0
  - model: m2
    parameters:
      density: 0.5
      weight: [0, 0.3, 0.7, 1] # weight gradient
  - model: m3
    parameters:
      density: 0.33
      weight:
        - filter: mlp
          value: 0.5
        - value: 0
merge_method: ties
base_model: base
parameters:
  normalize: true
  int8_mask: true
dtype: float16
`);
  assert.deepEqual(ties.recipe.models.map((m) => m.params.weight), [1, [0, 0.3, 0.7, 1], [{ filter: "mlp", value: 0.5 }, { value: 0 }]]);
});

test("an empty or comment-only config is config.empty, not an internal error", () => {
  for (const text of ["", "\n", "# just a comment\n"]) {
    assert.throws(
      () => parseMergekitYaml(text, { file: "m.yml" }),
      (e: unknown) => e instanceof ConfigError && e.code === "config.empty" && e.message === "merge config m.yml is empty",
      JSON.stringify(text),
    );
  }
});

test("YAML syntax error: the parser's message with line:column (no dangling 'at line …:'), and a hint quoting the line", () => {
  const text = "merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 0.5\n  - model: b\n";
  try {
    parseMergekitYaml(text, { file: "m.yml" });
    assert.fail("expected a ConfigError");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.code, "config.yaml_syntax");
    assert.equal(e.message, "merge config m.yml:5:3 is not valid YAML: Flow map in block collection must be sufficiently indented and end with a }");
    assert.equal(e.hint, 'line 5: "  - model: b"; check indentation (spaces, not tabs), closing brackets and quotes there; see examples/recipes/*.yml');
    assert.deepEqual([e.details.line, e.details.column], [5, 3]);
  }
  try {
    parseMergekitYaml("merge_method: linear\n\tmodels: x\n", { file: "t.yml" });
    assert.fail("expected a ConfigError");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.message, "merge config t.yml:2:1 is not valid YAML: Tabs are not allowed as indentation");
    assert.equal(e.hint, 'line 2: "\\tmodels: x"; check indentation (spaces, not tabs), closing brackets and quotes there; see examples/recipes/*.yml');
  }
});

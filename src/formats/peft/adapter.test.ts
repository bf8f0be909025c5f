import { test } from "node:test";
import assert from "node:assert/strict";
import type { TensorMeta } from "../../core/tensor.ts";
import { RealignError } from "../../errors.ts";
import { isTargeted, mapAdapter, moduleScaling, parseAdapterConfig, type AdapterConfig } from "./adapter.ts";

const F = "adapter_config.json";

function inv(entries: [string, number[]][]): Map<string, TensorMeta> {
  return new Map(entries.map(([name, shape]) => [name, { name, dtype: "F32", shape }]));
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof RealignError) return e.code;
    throw e;
  }
  return "no error";
}

test("parseAdapterConfig fills peft's defaults and refuses other PEFT methods and LoRA variants", () => {
  const c = parseAdapterConfig({ r: 8, lora_alpha: 16, target_modules: ["q_proj"] }, F);
  assert.equal(c.useRslora, false);
  assert.equal(c.fanInFanOut, false);
  assert.equal(c.bias, "none");
  assert.deepEqual(c.modulesToSave, []);
  assert.equal(c.layersToTransform, null);
  assert.deepEqual(parseAdapterConfig({ r: 8, lora_alpha: 16, layers_to_transform: 3 }, F).layersToTransform, [3]);
  assert.equal(code(() => parseAdapterConfig({ r: 8, lora_alpha: 16, use_dora: true }, F)), "adapter.unsupported_variant");
  assert.equal(code(() => parseAdapterConfig({ r: 8, lora_alpha: 16, target_parameters: ["experts.w1"] }, F)), "adapter.unsupported_variant");
  assert.equal(code(() => parseAdapterConfig({ peft_type: "IA3", r: 8, lora_alpha: 16 }, F)), "adapter.bad_config");
  assert.equal(code(() => parseAdapterConfig({ r: 0, lora_alpha: 16 }, F)), "adapter.bad_config");
  assert.equal(code(() => parseAdapterConfig({ r: 8, lora_alpha: 16, bias: "some" }, F)), "adapter.bad_config");
  // variant keys present but off (as peft writes them) are fine
  assert.equal(parseAdapterConfig({ r: 8, lora_alpha: 16, use_dora: false, arrow_config: null, loftq_config: {} }, F).r, 8);
});

test("moduleScaling: α/r, rsLoRA α/√r, rank_pattern and alpha_pattern by peft's (.*\\.)?(key)$ rule", () => {
  const base = parseAdapterConfig({ r: 16, lora_alpha: 32 }, F);
  assert.deepEqual(moduleScaling(base, "model.layers.0.self_attn.q_proj"), { rank: 16, alpha: 32, scale: 2 });
  const rs = parseAdapterConfig({ r: 16, lora_alpha: 32, use_rslora: true }, F);
  assert.equal(moduleScaling(rs, "x.q_proj").scale, 8);
  const pat = parseAdapterConfig({ r: 16, lora_alpha: 32, rank_pattern: { q_proj: 4 }, alpha_pattern: { "layers\\.1\\.self_attn\\.v_proj": 8 } }, F);
  assert.deepEqual(moduleScaling(pat, "model.layers.0.self_attn.q_proj"), { rank: 4, alpha: 32, scale: 8 });
  assert.deepEqual(moduleScaling(pat, "model.layers.1.self_attn.v_proj"), { rank: 16, alpha: 8, scale: 0.5 });
  assert.deepEqual(moduleScaling(pat, "model.layers.11.self_attn.v_proj"), { rank: 16, alpha: 32, scale: 2 });
  // "q_proj" must match a whole name segment: "xq_proj" is not q_proj
  assert.equal(moduleScaling(pat, "model.layers.0.self_attn.xq_proj").rank, 16);
});

test("isTargeted: list suffix match, regex full match, layers_to_transform with and without layers_pattern, exclude_modules", () => {
  const c = (o: Record<string, unknown>): AdapterConfig => parseAdapterConfig({ r: 8, lora_alpha: 8, ...o }, F);
  assert.equal(isTargeted(c({ target_modules: ["q_proj"] }), "model.layers.0.self_attn.q_proj"), true);
  assert.equal(isTargeted(c({ target_modules: ["q_proj"] }), "model.layers.0.self_attn.k_proj"), false);
  assert.equal(isTargeted(c({ target_modules: ".*\\.(q|v)_proj" }), "model.layers.0.self_attn.v_proj"), true);
  assert.equal(isTargeted(c({ target_modules: ".*\\.(q|v)_proj" }), "model.layers.0.self_attn.k_proj"), false);
  const ltt = c({ target_modules: ["q_proj"], layers_to_transform: [1, 3] });
  assert.equal(isTargeted(ltt, "model.layers.1.self_attn.q_proj"), true);
  assert.equal(isTargeted(ltt, "model.layers.2.self_attn.q_proj"), false);
  const lp = c({ target_modules: ["c_attn"], layers_to_transform: [0], layers_pattern: "h" });
  assert.equal(isTargeted(lp, "transformer.h.0.attn.c_attn"), true);
  assert.equal(isTargeted(lp, "transformer.h.1.attn.c_attn"), false);
  assert.equal(isTargeted(c({ target_modules: ["q_proj"], exclude_modules: ["layers.0.self_attn.q_proj"] }), "model.layers.0.self_attn.q_proj"), false);
});

const LLAMA = inv([
  ["model.embed_tokens.weight", [32, 8]],
  ["model.layers.0.self_attn.q_proj.weight", [8, 8]],
  ["model.layers.0.self_attn.q_proj.bias", [8]],
  ["model.layers.0.mlp.up_proj.weight", [16, 8]],
  ["model.layers.1.self_attn.q_proj.weight", [8, 8]],
  ["lm_head.weight", [32, 8]],
]);
const BASE = { path: "/aligned", config: { model_type: "llama" }, tensors: LLAMA };
const P = "base_model.model.";

test("mapAdapter: every key form lands on its base tensor with the right kind, scale and orientation", () => {
  const cfg = parseAdapterConfig(
    { r: 2, lora_alpha: 4, target_modules: ["q_proj", "up_proj", "embed_tokens"], lora_bias: true, modules_to_save: ["lm_head"], bias: "lora_only" },
    F,
  );
  const adapter = inv([
    [`${P}model.layers.0.self_attn.q_proj.lora_A.weight`, [2, 8]],
    [`${P}model.layers.0.self_attn.q_proj.lora_B.weight`, [8, 2]],
    [`${P}model.layers.0.self_attn.q_proj.lora_B.bias`, [8]],
    [`${P}model.layers.0.mlp.up_proj.lora_A.weight`, [2, 8]],
    [`${P}model.layers.0.mlp.up_proj.lora_B.weight`, [16, 2]],
    [`${P}model.embed_tokens.lora_embedding_A`, [2, 32]],
    [`${P}model.embed_tokens.lora_embedding_B`, [8, 2]],
    [`${P}lm_head.modules_to_save.default.weight`, [32, 8]],
    [`${P}model.layers.1.self_attn.q_proj.base_layer.bias`, [8]],
  ]);
  // layers.1 q_proj has no bias in this base: make one for the lora_only bias
  const base = { ...BASE, tensors: new Map([...LLAMA, ["model.layers.1.self_attn.q_proj.bias", { name: "model.layers.1.self_attn.q_proj.bias", dtype: "F32" as const, shape: [8] }]]) };
  const m = mapAdapter(cfg, adapter, base, { adapterPath: "/adapter" });
  const q = m.entries.get("model.layers.0.self_attn.q_proj.weight");
  assert.ok(q?.kind === "lora" && q.scale === 2 && q.transposed === false && q.inDim === 8 && q.outDim === 8);
  const bias = m.entries.get("model.layers.0.self_attn.q_proj.bias");
  assert.ok(bias?.kind === "bias" && bias.scale === 2 && bias.source.endsWith("lora_B.bias"));
  const up = m.entries.get("model.layers.0.mlp.up_proj.weight");
  assert.ok(up?.kind === "lora" && up.outDim === 16 && up.transposed === false);
  const emb = m.entries.get("model.embed_tokens.weight");
  assert.ok(emb?.kind === "lora" && emb.transposed === true && emb.inDim === 32 && emb.outDim === 8);
  const head = m.entries.get("lm_head.weight");
  assert.ok(head?.kind === "replace" && head.source === `${P}lm_head.modules_to_save.default.weight`);
  const b1 = m.entries.get("model.layers.1.self_attn.q_proj.bias");
  assert.ok(b1?.kind === "replace");
  assert.equal(m.entries.size, 6);
});

test("mapAdapter errors: unmapped tensor, rank mismatch, unpaired A, shape mismatch, unknown LoRA key", () => {
  const cfg = parseAdapterConfig({ r: 2, lora_alpha: 4, target_modules: ["q_proj", "o_proj"] }, F);
  const run = (entries: [string, number[]][]): string => code(() => mapAdapter(cfg, inv(entries), BASE, { adapterPath: "/adapter" }));
  const qA: [string, number[]] = [`${P}model.layers.0.self_attn.q_proj.lora_A.weight`, [2, 8]];
  const qB: [string, number[]] = [`${P}model.layers.0.self_attn.q_proj.lora_B.weight`, [8, 2]];
  assert.equal(run([qA, qB, [`${P}model.layers.0.self_attn.o_proj.lora_A.weight`, [2, 8]], [`${P}model.layers.0.self_attn.o_proj.lora_B.weight`, [8, 2]]]), "adapter.unmapped_tensor");
  assert.equal(run([[qA[0], [4, 8]], [qB[0], [8, 4]]]), "adapter.rank_mismatch");
  assert.equal(run([qA]), "adapter.unpaired");
  assert.equal(run([[qA[0], [2, 7]], qB]), "adapter.shape_mismatch");
  assert.equal(run([qA, qB, [`${P}model.layers.0.self_attn.q_proj.lora_magnitude_vector`, [8]]]), "adapter.unknown_tensor");
  assert.equal(run([qA, qB, [`${P}lm_head.weight`, [32, 9]]]), "adapter.shape_mismatch");
});

test("mapAdapter: pairs outside layers_to_transform are ignored with a warning, as peft ignores them", () => {
  const cfg = parseAdapterConfig({ r: 2, lora_alpha: 4, target_modules: ["q_proj"], layers_to_transform: [0] }, F);
  const m = mapAdapter(
    cfg,
    inv([
      [`${P}model.layers.0.self_attn.q_proj.lora_A.weight`, [2, 8]],
      [`${P}model.layers.0.self_attn.q_proj.lora_B.weight`, [8, 2]],
      [`${P}model.layers.1.self_attn.q_proj.lora_A.weight`, [2, 8]],
      [`${P}model.layers.1.self_attn.q_proj.lora_B.weight`, [8, 2]],
    ]),
    BASE,
    { adapterPath: "/adapter" },
  );
  assert.deepEqual([...m.entries.keys()], ["model.layers.0.self_attn.q_proj.weight"]);
  assert.match(m.warnings.join("\n"), /1 LoRA pair\(s\) .* model\.layers\.1\.self_attn\.q_proj\); ignored/);
});

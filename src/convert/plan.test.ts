import { test } from "node:test";
import assert from "node:assert/strict";
import { planConversion } from "./plan.ts";
import { ARCHS } from "../formats/gguf/arch/index.ts";
import { IncompatibleModelsError, InputError } from "../errors.ts";

const LAYER = (i: number, names: string[]): { name: string; shape: number[] }[] => names.map((n) => ({ name: `model.layers.${i}.${n}`, shape: n.includes("norm") ? [64] : [64, 64] }));

test("every architecture table is free of duplicates (HF names, GGUF names, keys)", () => {
  const hfArchs = ARCHS.flatMap((a) => a.hfArchitectures);
  assert.equal(new Set(hfArchs).size, hfArchs.length);
  for (const a of ARCHS) {
    assert.equal(new Set(a.tensors.map((t) => t.hf)).size, a.tensors.length, a.arch);
    assert.equal(new Set(a.tensors.map((t) => t.gguf)).size, a.tensors.length, a.arch);
    assert.equal(new Set(a.hparams.map((h) => h.key)).size, a.hparams.length, a.arch);
  }
});

test("llama: hyper-parameters from a transformers-5 config (rope_parameters), types and permutations", () => {
  const config = {
    architectures: ["LlamaForCausalLM"],
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    rope_parameters: { rope_theta: 500000.0, rope_type: "default" },
    vocab_size: 100,
  };
  const tensors = [
    { name: "model.embed_tokens.weight", shape: [100, 64] },
    ...LAYER(0, ["input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "mlp.down_proj.weight"]),
    { name: "model.layers.0.self_attn.rotary_emb.inv_freq", shape: [8] },
    { name: "model.norm.weight", shape: [64] },
  ];
  const plan = planConversion(config, tensors, "Q8_0", "config.json", "m");
  const md = Object.fromEntries([...plan.metadata].map(([k, v]) => [k, v.value]));
  assert.equal(md["general.architecture"], "llama");
  assert.equal(md["llama.rope.freq_base"], 500000);
  assert.equal(md["llama.attention.layer_norm_rms_epsilon"], Math.fround(1e-6));
  assert.equal(md["llama.rope.dimension_count"], 16);
  assert.equal(md["llama.attention.head_count_kv"], 2);
  assert.equal(md["llama.attention.key_length"], undefined); // no head_dim in config → not written (as llama.cpp)
  assert.equal(md["general.file_type"], 7);
  assert.deepEqual(
    plan.tensors.map((t) => [t.ggufName, t.shape, t.type, t.permuteHeads]),
    [
      ["token_embd.weight", [64, 100], "Q8_0", undefined],
      ["blk.0.attn_norm.weight", [64], "F32", undefined],
      ["blk.0.attn_q.weight", [64, 64], "Q8_0", 4],
      ["blk.0.attn_k.weight", [64, 64], "Q8_0", 2],
      ["blk.0.ffn_down.weight", [64, 64], "Q8_0", undefined],
      ["output_norm.weight", [64], "F32", undefined],
    ],
  );
});

test("Q8_0 falls back to F16 when rows do not split into blocks of 32 (with a warning)", () => {
  const config = { architectures: ["MistralForCausalLM"], hidden_size: 48, intermediate_size: 96, num_hidden_layers: 1, num_attention_heads: 2, rms_norm_eps: 1e-5, vocab_size: 10 };
  const plan = planConversion(config, [{ name: "lm_head.weight", shape: [10, 48] }], "Q8_0", "c", "m");
  assert.equal(plan.tensors[0]!.type, "F16");
  assert.match(plan.warnings[0]!, /output\.weight.*F16/);
});

test("gemma2: norms shifted by +1, no Q/K permutation, lm_head dropped, soft-capping keys", () => {
  const config = {
    architectures: ["Gemma2ForCausalLM"],
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    max_position_embeddings: 8192,
    rms_norm_eps: 1e-6,
    attn_logit_softcapping: 50.0,
    final_logit_softcapping: 30.0,
    sliding_window: 4096,
    vocab_size: 100,
  };
  const tensors = [
    ...LAYER(0, ["post_attention_layernorm.weight", "pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight", "self_attn.q_proj.weight"]),
    { name: "lm_head.weight", shape: [100, 64] },
  ];
  const plan = planConversion(config, tensors, "BF16", "c", "g");
  assert.deepEqual(
    plan.tensors.map((t) => [t.ggufName, t.add, t.permuteHeads]),
    [
      ["blk.0.post_attention_norm.weight", 1, undefined],
      ["blk.0.ffn_norm.weight", 1, undefined],
      ["blk.0.post_ffw_norm.weight", 1, undefined],
      ["blk.0.attn_q.weight", undefined, undefined],
    ],
  );
  const md = Object.fromEntries([...plan.metadata].map(([k, v]) => [k, v.value]));
  assert.equal(md["gemma2.attn_logit_softcapping"], 50);
  assert.equal(md["gemma2.final_logit_softcapping"], 30);
  assert.equal(md["gemma2.attention.sliding_window"], 4096);
  assert.equal(md["gemma2.attention.key_length"], 16);
});

test("qwen2: biases mapped, no permutation", () => {
  const config = { architectures: ["Qwen2ForCausalLM"], hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 4, rms_norm_eps: 1e-6, rope_theta: 1e6, vocab_size: 10 };
  const plan = planConversion(config, [{ name: "model.layers.0.self_attn.q_proj.bias", shape: [64] }], "F16", "c", "q");
  assert.deepEqual(plan.tensors[0], { hfName: "model.layers.0.self_attn.q_proj.bias", ggufName: "blk.0.attn_q.bias", shape: [64], type: "F32" });
  assert.equal(plan.metadata.get("qwen2.rope.freq_base")?.value, 1e6);
});

test("refusals: unknown architecture, unmapped tensor, unsupported rope scaling", () => {
  const base = { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4, rms_norm_eps: 1e-6, vocab_size: 10 };
  assert.throws(() => planConversion({ ...base, architectures: ["GPT2LMHeadModel"] }, [], "F16", "c.json", "x"), (e: unknown) => e instanceof InputError && e.code === "convert.unsupported_architecture" && /GPT2LMHeadModel/.test(e.message));
  assert.throws(() => planConversion({ ...base, architectures: ["LlamaForCausalLM"] }, [{ name: "model.layers.0.mystery.weight", shape: [4] }], "F16", "c.json", "x"), (e: unknown) => e instanceof IncompatibleModelsError && /model\.layers\.0\.mystery\.weight/.test(e.message));
  assert.throws(() => planConversion({ ...base, architectures: ["LlamaForCausalLM"], rope_scaling: { rope_type: "yarn", factor: 4 } }, [], "F16", "c.json", "x"), (e: unknown) => e instanceof InputError && e.code === "convert.unsupported_rope");
  const lin = planConversion({ ...base, architectures: ["LlamaForCausalLM"], rope_scaling: { type: "linear", factor: 2 } }, [], "F16", "c.json", "x");
  assert.equal(lin.metadata.get("llama.rope.scaling.type")?.value, "linear");
  assert.equal(lin.metadata.get("llama.rope.scaling.factor")?.value, 2);
});

test("llama3 rope scaling generates rope_freqs first (Llama 3.2 parameters; values from numpy)", () => {
  const config = {
    architectures: ["LlamaForCausalLM"],
    hidden_size: 2048,
    intermediate_size: 8192,
    num_hidden_layers: 1,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 500000.0,
    rope_scaling: { rope_type: "llama3", factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 },
    vocab_size: 10,
  };
  const plan = planConversion(config, [{ name: "model.norm.weight", shape: [2048] }], "BF16", "c", "l");
  const rf = plan.tensors[0]!;
  assert.equal(rf.ggufName, "rope_freqs.weight");
  assert.deepEqual(rf.shape, [32]);
  assert.equal(rf.type, "F32");
  const expected = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1.6513291597366333, 3.292262554168701, 9.666729927062988, ...new Array(14).fill(32)];
  rf.data!.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) <= 1e-6 * expected[i]!, `factor ${i}: ${v} vs ${expected[i]}`));
  assert.equal(plan.metadata.get("llama.rope.scaling.type"), undefined);
});

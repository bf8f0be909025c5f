/**
 * `llama` (also Mistral): llama.cpp `conversion/llama.py` LlamaModel (registered for LlamaForCausalLM,
 * MistralForCausalLM) with TextModel.set_gguf_parameters; names from gguf-py tensor_mapping.py.
 */
import { KEYS } from "../constants.ts";
import type { ArchSpec, HparamSpec, TensorNameRow } from "./types.ts";

/** Tensor names shared by the Llama family (gguf-py tensor_mapping.py, MODEL_TENSOR → TENSOR_NAMES). */
export const LLAMA_TENSORS: readonly TensorNameRow[] = [
  { hf: "model.embed_tokens", gguf: "token_embd" }, // TOKEN_EMBD
  { hf: "model.norm", gguf: "output_norm" }, // OUTPUT_NORM
  { hf: "lm_head", gguf: "output" }, // OUTPUT
  { hf: "model.layers.{bid}.input_layernorm", gguf: "blk.{bid}.attn_norm" }, // ATTN_NORM
  { hf: "model.layers.{bid}.self_attn.q_proj", gguf: "blk.{bid}.attn_q" }, // ATTN_Q
  { hf: "model.layers.{bid}.self_attn.k_proj", gguf: "blk.{bid}.attn_k" }, // ATTN_K
  { hf: "model.layers.{bid}.self_attn.v_proj", gguf: "blk.{bid}.attn_v" }, // ATTN_V
  { hf: "model.layers.{bid}.self_attn.o_proj", gguf: "blk.{bid}.attn_output" }, // ATTN_OUT
  { hf: "model.layers.{bid}.post_attention_layernorm", gguf: "blk.{bid}.ffn_norm" }, // FFN_NORM
  { hf: "model.layers.{bid}.mlp.gate_proj", gguf: "blk.{bid}.ffn_gate" }, // FFN_GATE
  { hf: "model.layers.{bid}.mlp.up_proj", gguf: "blk.{bid}.ffn_up" }, // FFN_UP
  { hf: "model.layers.{bid}.mlp.down_proj", gguf: "blk.{bid}.ffn_down" }, // FFN_DOWN
];

/** TextModel.set_gguf_parameters (conversion/base.py), in its order, plus LlamaModel's two extra keys. */
export const TEXT_MODEL_HPARAMS: readonly HparamSpec[] = [
  { key: KEYS.llm.blockCount, type: "u32", from: ["num_hidden_layers", "n_layers", "n_layer", "num_layers"], required: true },
  { key: KEYS.llm.contextLength, type: "u32", from: ["max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length"] },
  { key: KEYS.llm.embeddingLength, type: "u32", from: ["hidden_size", "n_embd", "dim"], required: true },
  { key: KEYS.llm.feedForwardLength, type: "u32", from: ["intermediate_size", "n_inner", "hidden_dim"], required: true },
  { key: KEYS.attention.headCount, type: "u32", from: ["num_attention_heads", "n_head", "n_heads"], required: true },
  { key: KEYS.attention.headCountKv, type: "u32", from: ["num_key_value_heads", "n_kv_heads"], derive: "head_count" },
  { key: KEYS.rope.freqBase, type: "f32", from: ["rope_parameters.rope_theta", "rope_scaling.rope_theta", "rope_theta", "rotary_emb_base"] },
  { key: KEYS.attention.layerNormRmsEpsilon, type: "f32", from: ["rms_norm_eps", "norm_eps"], required: true },
  { key: KEYS.attention.keyLength, type: "u32", from: ["head_dim"] },
  { key: KEYS.attention.valueLength, type: "u32", from: ["head_dim"] },
];

export const LLAMA: ArchSpec = {
  arch: "llama",
  hfArchitectures: ["LlamaForCausalLM", "LLaMAForCausalLM", "MistralForCausalLM"],
  permuteQK: true,
  normShift: 0,
  tensors: LLAMA_TENSORS,
  skipSuffixes: [".rotary_emb.inv_freq"],
  hparams: [
    ...TEXT_MODEL_HPARAMS,
    { key: KEYS.llm.vocabSize, type: "u32", from: ["vocab_size"], required: true },
    { key: KEYS.rope.dimensionCount, type: "u32", from: ["head_dim"], derive: "head_dim" },
  ],
};

/**
 * `gemma2`: llama.cpp `conversion/gemma.py` Gemma2Model (Gemma2ForCausalLM): its own parameter list with
 * logit soft-capping and sliding window, `norm.weight + 1` (Gemma2RMSNorm scales by 1 + w), tied output
 * (lm_head dropped), NeoX rope (no Q/K permutation), SentencePiece vocabulary without a space prefix.
 */
import { KEYS } from "../constants.ts";
import type { ArchSpec } from "./types.ts";

export const GEMMA2: ArchSpec = {
  arch: "gemma2",
  hfArchitectures: ["Gemma2ForCausalLM"],
  permuteQK: false,
  normShift: 1,
  tensors: [
    { hf: "model.embed_tokens", gguf: "token_embd" },
    { hf: "model.norm", gguf: "output_norm" },
    { hf: "model.layers.{bid}.input_layernorm", gguf: "blk.{bid}.attn_norm" },
    { hf: "model.layers.{bid}.self_attn.q_proj", gguf: "blk.{bid}.attn_q" },
    { hf: "model.layers.{bid}.self_attn.k_proj", gguf: "blk.{bid}.attn_k" },
    { hf: "model.layers.{bid}.self_attn.v_proj", gguf: "blk.{bid}.attn_v" },
    { hf: "model.layers.{bid}.self_attn.o_proj", gguf: "blk.{bid}.attn_output" },
    { hf: "model.layers.{bid}.post_attention_layernorm", gguf: "blk.{bid}.post_attention_norm" }, // ATTN_POST_NORM
    { hf: "model.layers.{bid}.pre_feedforward_layernorm", gguf: "blk.{bid}.ffn_norm" }, // FFN_NORM
    { hf: "model.layers.{bid}.mlp.gate_proj", gguf: "blk.{bid}.ffn_gate" },
    { hf: "model.layers.{bid}.mlp.up_proj", gguf: "blk.{bid}.ffn_up" },
    { hf: "model.layers.{bid}.mlp.down_proj", gguf: "blk.{bid}.ffn_down" },
    { hf: "model.layers.{bid}.post_feedforward_layernorm", gguf: "blk.{bid}.post_ffw_norm" }, // FFN_POST_NORM
  ],
  skipSuffixes: [".rotary_emb.inv_freq", "lm_head.weight"],
  hparams: [
    { key: KEYS.llm.contextLength, type: "u32", from: ["max_position_embeddings"], required: true },
    { key: KEYS.llm.embeddingLength, type: "u32", from: ["hidden_size"], required: true },
    { key: KEYS.llm.blockCount, type: "u32", from: ["num_hidden_layers"], required: true },
    { key: KEYS.llm.feedForwardLength, type: "u32", from: ["intermediate_size"], required: true },
    { key: KEYS.attention.headCount, type: "u32", from: ["num_attention_heads"], required: true },
    { key: KEYS.attention.headCountKv, type: "u32", from: ["num_key_value_heads"], derive: "head_count" },
    { key: KEYS.attention.layerNormRmsEpsilon, type: "f32", from: ["rms_norm_eps"], required: true },
    { key: KEYS.attention.keyLength, type: "u32", from: ["head_dim"], required: true },
    { key: KEYS.attention.valueLength, type: "u32", from: ["head_dim"], required: true },
    { key: KEYS.attention.logitSoftcapping, type: "f32", from: ["attn_logit_softcapping"], required: true },
    { key: KEYS.llm.finalLogitSoftcapping, type: "f32", from: ["final_logit_softcapping"], required: true },
    { key: KEYS.attention.slidingWindow, type: "u32", from: ["sliding_window"], required: true },
  ],
  spmAddSpacePrefix: false,
};

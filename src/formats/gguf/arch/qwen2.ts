/**
 * `qwen2`: llama.cpp `conversion/qwen.py` Qwen2Model (Qwen2ForCausalLM): TextModel parameters, NeoX rope
 * (no Q/K permutation), q/k/v biases; names from gguf-py tensor_mapping.py.
 */
import type { ArchSpec } from "./types.ts";
import { LLAMA_TENSORS, TEXT_MODEL_HPARAMS } from "./llama.ts";

export const QWEN2: ArchSpec = {
  arch: "qwen2",
  hfArchitectures: ["Qwen2ForCausalLM"],
  permuteQK: false,
  normShift: 0,
  tensors: LLAMA_TENSORS,
  skipSuffixes: [".rotary_emb.inv_freq"],
  hparams: TEXT_MODEL_HPARAMS,
};

/**
 * A tiny synthetic Gemma 2 checkpoint layout for the convert tests: its config.json and its tensor list
 * (hidden 64, 2 heads of 32, 1 KV head, FFN 128, vocabulary 640, tied embeddings; bf16), no data.
 */

/** One tensor of the layout. */
export interface Gemma2Tensor {
  name: string;
  dtype: "BF16";
  shape: number[];
}

/** config.json and the tensors (embedding, final norm, then each layer's) of a `layers`-layer Gemma 2. */
export function syntheticGemma2(layers: number): { config: Record<string, unknown>; tensors: Gemma2Tensor[] } {
  const [H, NH, KV, HD, FF, V] = [64, 2, 1, 32, 128, 640];
  const config = {
    architectures: ["Gemma2ForCausalLM"],
    hidden_size: H,
    num_attention_heads: NH,
    num_key_value_heads: KV,
    head_dim: HD,
    intermediate_size: FF,
    vocab_size: V,
    num_hidden_layers: layers,
    max_position_embeddings: 512,
    rms_norm_eps: 1e-6,
    attn_logit_softcapping: 50.0,
    final_logit_softcapping: 30.0,
    sliding_window: 256,
    tie_word_embeddings: true,
    eos_token_id: 2,
  };
  const tensors: Gemma2Tensor[] = [
    { name: "model.embed_tokens.weight", dtype: "BF16", shape: [V, H] },
    { name: "model.norm.weight", dtype: "BF16", shape: [H] },
  ];
  const layer: [string, number[]][] = [
    ["input_layernorm", [H]],
    ["self_attn.q_proj", [NH * HD, H]],
    ["self_attn.k_proj", [KV * HD, H]],
    ["self_attn.v_proj", [KV * HD, H]],
    ["self_attn.o_proj", [H, NH * HD]],
    ["post_attention_layernorm", [H]],
    ["pre_feedforward_layernorm", [H]],
    ["mlp.gate_proj", [FF, H]],
    ["mlp.up_proj", [FF, H]],
    ["mlp.down_proj", [H, FF]],
    ["post_feedforward_layernorm", [H]],
  ];
  for (let i = 0; i < layers; i++) for (const [n, shape] of layer) tensors.push({ name: `model.layers.${i}.${n}.weight`, dtype: "BF16", shape });
  return { config, tensors };
}

/**
 * The shape of an architecture table: how a Hugging Face checkpoint of one model family maps onto
 * llama.cpp's GGUF conventions (tensor names, hyper-parameter keys, weight transforms). One file per
 * GGUF architecture; `index.ts` is the only list. See docs/adding-an-architecture.md.
 */

/** One hyper-parameter: a GGUF key template (`{arch}.…`) filled from config.json. */
export interface HparamSpec {
  /** Key template from KEYS (constants.ts), e.g. `{arch}.context_length`. */
  key: string;
  type: "u32" | "f32";
  /** config.json fields tried in order; dotted paths reach into objects (`rope_parameters.rope_theta`). */
  from: readonly string[];
  /** Missing and no default → the conversion fails naming the field. @default false */
  required?: boolean;
  /** Used when no field is present. */
  default?: number;
  /** Computed when no field is present: `head_dim` = hidden_size / num_attention_heads. */
  derive?: "head_dim" | "head_count";
}

/** HF → GGUF tensor name pair. `{bid}` stands for the block (layer) index; `.weight`/`.bias` are appended. */
export interface TensorNameRow {
  hf: string;
  gguf: string;
}

export interface ArchSpec {
  /** `general.architecture` and the `{arch}` of every key. */
  arch: string;
  /** config.json `architectures[0]` values converted with this table. */
  hfArchitectures: readonly string[];
  /**
   * Reorder q_proj/k_proj rows from HF's rotate-half layout to the interleaved pairs llama.cpp's
   * `llama` rope expects (convert_hf_to_gguf.py LlamaModel.permute). False for NeoX-rope archs.
   */
  permuteQK: boolean;
  /** Added to every `*norm.weight` before writing (Gemma's RMSNorm multiplies by 1 + w). */
  normShift: number;
  /** Name map, in the order tensors are written per block. */
  tensors: readonly TensorNameRow[];
  /** HF tensors that are dropped (exact names or suffixes), e.g. rotary inv_freq buffers. */
  skipSuffixes: readonly string[];
  /** Hyper-parameters in the order written. */
  hparams: readonly HparamSpec[];
  /** Write `tokenizer.ggml.add_space_prefix = false` for SentencePiece vocabularies (Gemma). */
  spmAddSpacePrefix?: boolean;
}

/**
 * GGUF constants as data: metadata value types, GGML tensor types with their block layouts, token types,
 * file types and the metadata key names realign reads or writes. No key string is spelled anywhere else.
 *
 * Sources: the GGUF spec (ggml/docs/gguf.md), llama.cpp `gguf-py/gguf/constants.py` (GGML_QUANT_SIZES,
 * Keys, TokenType, LlamaFileType) and `ggml/include/ggml.h` (type ids). Ids 40–42 as listed by
 * @huggingface/gguf 0.4.6's GGMLQuantizationType.
 */

/** "GGUF" read as a little-endian u32 (GGUF spec). */
export const GGUF_MAGIC = 0x46554747;
/** The version realign writes (GGUF spec v3: u64 counts and lengths). */
export const GGUF_VERSION = 3;
/** Versions realign reads: v2 has the same layout as v3 (v3 only added big-endian support). v1 used u32 counts. */
export const GGUF_READABLE_VERSIONS: readonly number[] = [2, 3];
/** Default `general.alignment` (GGUF spec). */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** GGML_MAX_DIMS (ggml.h): a tensor has at most 4 dimensions. */
export const GGML_MAX_DIMS = 4;
/** GGML_MAX_NAME (ggml.h): tensor names are shorter than 64 bytes (gguf.cpp refuses longer ones). */
export const GGML_MAX_NAME_BYTES = 63;
/** general.quantization_version written by current llama.cpp (GGML_QNT_VERSION). */
export const GGML_QUANT_VERSION = 2;

/** Metadata value types, in id order (GGUF spec `gguf_metadata_value_type`). */
export const GGUF_VALUE_TYPES = [
  { id: 0, name: "u8", byteLength: 1 },
  { id: 1, name: "i8", byteLength: 1 },
  { id: 2, name: "u16", byteLength: 2 },
  { id: 3, name: "i16", byteLength: 2 },
  { id: 4, name: "u32", byteLength: 4 },
  { id: 5, name: "i32", byteLength: 4 },
  { id: 6, name: "f32", byteLength: 4 },
  { id: 7, name: "bool", byteLength: 1 },
  { id: 8, name: "string", byteLength: 0 }, // u64 length + bytes
  { id: 9, name: "array", byteLength: 0 }, // u32 item type + u64 count + items
  { id: 10, name: "u64", byteLength: 8 },
  { id: 11, name: "i64", byteLength: 8 },
  { id: 12, name: "f64", byteLength: 8 },
] as const;
export type GgufValueTypeName = (typeof GGUF_VALUE_TYPES)[number]["name"];

/** Value type name → id. */
export const GGUF_VALUE_TYPE_ID: Readonly<Record<GgufValueTypeName, number>> = Object.fromEntries(
  GGUF_VALUE_TYPES.map((t) => [t.name, t.id]),
) as Record<GgufValueTypeName, number>;

/** Value type id → row, or undefined for an unknown id. */
export function valueTypeById(id: number): (typeof GGUF_VALUE_TYPES)[number] | undefined {
  return GGUF_VALUE_TYPES.find((t) => t.id === id);
}

/** QK_K: the super-block size of the k-quants (ggml-common.h). */
const QK_K = 256;

/**
 * GGML tensor types: id, elements per block and bytes per block (`GGML_QUANT_SIZES` in gguf-py, written as
 * the sum of the block's parts as there). Ids 4, 5 (Q4_2, Q4_3) and 31–33, 36–38 were removed from ggml.
 */
export const GGML_TYPES = [
  { id: 0, name: "F32", blockSize: 1, typeSize: 4 },
  { id: 1, name: "F16", blockSize: 1, typeSize: 2 },
  { id: 2, name: "Q4_0", blockSize: 32, typeSize: 2 + 16 },
  { id: 3, name: "Q4_1", blockSize: 32, typeSize: 2 + 2 + 16 },
  { id: 6, name: "Q5_0", blockSize: 32, typeSize: 2 + 4 + 16 },
  { id: 7, name: "Q5_1", blockSize: 32, typeSize: 2 + 2 + 4 + 16 },
  { id: 8, name: "Q8_0", blockSize: 32, typeSize: 2 + 32 },
  { id: 9, name: "Q8_1", blockSize: 32, typeSize: 4 + 4 + 32 },
  { id: 10, name: "Q2_K", blockSize: QK_K, typeSize: 2 + 2 + QK_K / 16 + QK_K / 4 },
  { id: 11, name: "Q3_K", blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 8 + 12 },
  { id: 12, name: "Q4_K", blockSize: QK_K, typeSize: 2 + 2 + QK_K / 2 + 12 },
  { id: 13, name: "Q5_K", blockSize: QK_K, typeSize: 2 + 2 + QK_K / 2 + QK_K / 8 + 12 },
  { id: 14, name: "Q6_K", blockSize: QK_K, typeSize: 2 + QK_K / 2 + QK_K / 4 + QK_K / 16 },
  { id: 15, name: "Q8_K", blockSize: QK_K, typeSize: 4 + QK_K + QK_K / 8 },
  { id: 16, name: "IQ2_XXS", blockSize: QK_K, typeSize: 2 + QK_K / 4 },
  { id: 17, name: "IQ2_XS", blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 32 },
  { id: 18, name: "IQ3_XXS", blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 8 },
  { id: 19, name: "IQ1_S", blockSize: QK_K, typeSize: 2 + QK_K / 8 + QK_K / 16 },
  { id: 20, name: "IQ4_NL", blockSize: 32, typeSize: 2 + 16 },
  { id: 21, name: "IQ3_S", blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4 },
  { id: 22, name: "IQ2_S", blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 16 },
  { id: 23, name: "IQ4_XS", blockSize: QK_K, typeSize: 2 + 2 + QK_K / 2 + QK_K / 64 },
  { id: 24, name: "I8", blockSize: 1, typeSize: 1 },
  { id: 25, name: "I16", blockSize: 1, typeSize: 2 },
  { id: 26, name: "I32", blockSize: 1, typeSize: 4 },
  { id: 27, name: "I64", blockSize: 1, typeSize: 8 },
  { id: 28, name: "F64", blockSize: 1, typeSize: 8 },
  { id: 29, name: "IQ1_M", blockSize: QK_K, typeSize: QK_K / 8 + QK_K / 16 + QK_K / 32 },
  { id: 30, name: "BF16", blockSize: 1, typeSize: 2 },
  { id: 34, name: "TQ1_0", blockSize: QK_K, typeSize: 2 + 4 * 13 },
  { id: 35, name: "TQ2_0", blockSize: QK_K, typeSize: 2 + 64 },
  { id: 39, name: "MXFP4", blockSize: 32, typeSize: 1 + 16 },
  { id: 40, name: "NVFP4", blockSize: 64, typeSize: 4 + 32 },
  { id: 41, name: "Q1_0", blockSize: 128, typeSize: 2 + 16 },
  { id: 42, name: "Q2_0", blockSize: 64, typeSize: 2 + 16 },
] as const;
export type GgmlTypeName = (typeof GGML_TYPES)[number]["name"];
export type GgmlTypeRow = (typeof GGML_TYPES)[number];

const GGML_BY_ID = new Map<number, GgmlTypeRow>(GGML_TYPES.map((t) => [t.id, t]));
const GGML_BY_NAME = new Map<string, GgmlTypeRow>(GGML_TYPES.map((t) => [t.name, t]));

/** GGML type row by id; undefined for ids this table does not know. */
export function ggmlTypeById(id: number): GgmlTypeRow | undefined {
  return GGML_BY_ID.get(id);
}
/** GGML type row by name (`F32`, `Q8_0`, …). */
export function ggmlType(name: GgmlTypeName): GgmlTypeRow {
  return GGML_BY_NAME.get(name)!;
}

/** Tensor types realign can decode to float32 and encode from it (merge inputs and outputs, convert --type). */
export const MERGEABLE_GGML_TYPES = ["F32", "F16", "BF16", "Q8_0"] as const;
export type MergeableGgmlType = (typeof MERGEABLE_GGML_TYPES)[number];
export function isMergeableGgmlType(name: string): name is MergeableGgmlType {
  return (MERGEABLE_GGML_TYPES as readonly string[]).includes(name);
}

/** `general.file_type` values (llama.cpp LlamaFileType) for the output types realign writes. */
export const LLAMA_FILE_TYPE: Readonly<Record<MergeableGgmlType, number>> = {
  F32: 0, // ALL_F32
  F16: 1, // MOSTLY_F16
  Q8_0: 7, // MOSTLY_Q8_0
  BF16: 32, // MOSTLY_BF16
};

/** Token types (gguf-py TokenType; the same numbering as SentencePiece's piece types). */
export const TOKEN_TYPE = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/**
 * Metadata keys (gguf-py `Keys`). `{arch}` is replaced by `general.architecture`. Note llama.cpp's own
 * spelling `seperator_token_id`.
 */
export const KEYS = {
  general: {
    architecture: "general.architecture",
    quantizationVersion: "general.quantization_version",
    alignment: "general.alignment",
    fileType: "general.file_type",
    name: "general.name",
    type: "general.type",
    sizeLabel: "general.size_label",
  },
  llm: {
    vocabSize: "{arch}.vocab_size",
    contextLength: "{arch}.context_length",
    embeddingLength: "{arch}.embedding_length",
    blockCount: "{arch}.block_count",
    feedForwardLength: "{arch}.feed_forward_length",
    finalLogitSoftcapping: "{arch}.final_logit_softcapping",
  },
  attention: {
    headCount: "{arch}.attention.head_count",
    headCountKv: "{arch}.attention.head_count_kv",
    keyLength: "{arch}.attention.key_length",
    valueLength: "{arch}.attention.value_length",
    layerNormRmsEpsilon: "{arch}.attention.layer_norm_rms_epsilon",
    slidingWindow: "{arch}.attention.sliding_window",
    logitSoftcapping: "{arch}.attn_logit_softcapping",
  },
  rope: {
    dimensionCount: "{arch}.rope.dimension_count",
    freqBase: "{arch}.rope.freq_base",
    scalingType: "{arch}.rope.scaling.type",
    scalingFactor: "{arch}.rope.scaling.factor",
  },
  tokenizer: {
    model: "tokenizer.ggml.model",
    pre: "tokenizer.ggml.pre",
    tokens: "tokenizer.ggml.tokens",
    tokenType: "tokenizer.ggml.token_type",
    scores: "tokenizer.ggml.scores",
    merges: "tokenizer.ggml.merges",
    bosId: "tokenizer.ggml.bos_token_id",
    eosId: "tokenizer.ggml.eos_token_id",
    unkId: "tokenizer.ggml.unknown_token_id",
    sepId: "tokenizer.ggml.seperator_token_id",
    padId: "tokenizer.ggml.padding_token_id",
    clsId: "tokenizer.ggml.cls_token_id",
    maskId: "tokenizer.ggml.mask_token_id",
    addBos: "tokenizer.ggml.add_bos_token",
    addEos: "tokenizer.ggml.add_eos_token",
    addSep: "tokenizer.ggml.add_sep_token",
    addSpacePrefix: "tokenizer.ggml.add_space_prefix",
    chatTemplate: "tokenizer.chat_template",
  },
} as const;

/** Replaces `{arch}` in a key template. */
export function archKey(template: string, arch: string): string {
  return template.replace("{arch}", arch);
}

/**
 * Planning an HF → GGUF conversion (pure: config + tensor inventory in, plan out): which architecture
 * table applies, the model's GGUF hyper-parameters, and for every tensor its GGUF name, ggml shape, output
 * type and transforms (Q/K permutation, norm shift). Follows convert_hf_to_gguf.py's ModelBase.prepare_tensors:
 * 1-D tensors and `*_norm.weight` stay F32; a tensor whose rows do not split into Q8_0 blocks falls back to F16.
 */
import { IncompatibleModelsError, InputError } from "../errors.ts";
import { KEYS, LLAMA_FILE_TYPE, archKey, ggmlType, type MergeableGgmlType } from "../formats/gguf/constants.ts";
import { archForHf, ARCHS, type ArchSpec, type HparamSpec } from "../formats/gguf/arch/index.ts";
import type { GgufMetadata } from "../formats/gguf/types.ts";

/** A tensor as the checkpoint stores it (PyTorch order: outermost first). */
export interface SourceTensorMeta {
  name: string;
  shape: readonly number[];
}

export interface TensorConversion {
  hfName: string;
  ggufName: string;
  /** ggml order (innermost first): the reverse of the HF shape. */
  shape: number[];
  type: MergeableGgmlType;
  /** Heads for the Q/K row permutation, when applied. */
  permuteHeads?: number;
  /** Added to every element (Gemma norms). */
  add?: number;
}

export interface ConversionPlan {
  arch: ArchSpec;
  /** `general.*` and `{arch}.*` keys (tokenizer keys are added by the caller). */
  metadata: GgufMetadata;
  tensors: TensorConversion[];
  /** Notes for the user (fallbacks taken). */
  warnings: string[];
}

/** Output type names accepted by `--type`. */
export const CONVERT_TYPES = { f32: "F32", f16: "F16", bf16: "BF16", q8_0: "Q8_0" } as const satisfies Record<string, MergeableGgmlType>;
export type ConvertType = keyof typeof CONVERT_TYPES;

/** `a.b.c` lookup in a JSON object. */
function lookup(obj: Readonly<Record<string, unknown>>, path: string): unknown {
  let cur: unknown = obj;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** config.json with `text_config` lifted to the top level (multimodal wrappers), as TextModel does. */
export function flattenConfig(config: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const text = config.text_config;
  return text !== null && typeof text === "object" ? { ...config, ...(text as Record<string, unknown>) } : { ...config };
}

function hparamValue(spec: HparamSpec, config: Record<string, unknown>, file: string): number | undefined {
  for (const field of spec.from) {
    const v = lookup(config, field);
    if (typeof v === "number" && Number.isFinite(v)) return v;
  }
  if (spec.derive === "head_dim") {
    const hidden = config.hidden_size;
    const heads = config.num_attention_heads;
    if (typeof hidden === "number" && typeof heads === "number" && heads > 0) return Math.floor(hidden / heads);
  }
  if (spec.derive === "head_count") {
    const heads = config.num_attention_heads;
    if (typeof heads === "number") return heads;
  }
  if (spec.default !== undefined) return spec.default;
  if (spec.required) {
    throw new InputError("convert.missing_hparam", `hyper-parameter for ${spec.key} in ${file}: got none of ${spec.from.join(", ")}, expected a number`, {
      details: { file, key: spec.key, fields: spec.from },
    });
  }
  return undefined;
}

/** The architecture table for a config, or an InputError listing what is supported. */
export function archForConfig(config: Readonly<Record<string, unknown>>, file: string): ArchSpec {
  const archs = config.architectures;
  const name = Array.isArray(archs) && typeof archs[0] === "string" ? archs[0] : undefined;
  const spec = name === undefined ? undefined : archForHf(name);
  if (spec === undefined) {
    throw new InputError("convert.unsupported_architecture", `architecture in ${file}: got ${name ?? "none"}, expected one of ${ARCHS.flatMap((a) => a.hfArchitectures).join(", ")}`, {
      details: { file, architecture: name },
      hint: "see docs/adding-an-architecture.md",
    });
  }
  return spec;
}

/** Rope scaling keys (TextModel.set_gguf_parameters): default → none, linear → type + factor, others refused. */
function ropeScaling(config: Record<string, unknown>, arch: string, file: string): GgufMetadata {
  const md: GgufMetadata = new Map();
  const params = (config.rope_parameters ?? config.rope_scaling) as Record<string, unknown> | null | undefined;
  if (params == null || typeof params !== "object") return md;
  const type = (params.rope_type ?? params.type) as string | undefined;
  if (type === undefined || type === "default") return md;
  if (type === "linear" && typeof params.factor === "number") {
    md.set(archKey(KEYS.rope.scalingType, arch), { type: "string", value: "linear" });
    md.set(archKey(KEYS.rope.scalingFactor, arch), { type: "f32", value: Math.fround(params.factor) });
    return md;
  }
  throw new InputError("convert.unsupported_rope", `rope scaling in ${file}: got ${JSON.stringify(type)}, expected default or linear`, {
    details: { file, ropeType: type },
    hint: "convert this model with llama.cpp's convert_hf_to_gguf.py",
  });
}

/** Escapes a template and turns `{bid}` into a capture group. */
function templateRegex(t: string): RegExp {
  return new RegExp(`^${t.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace("{bid}", "(\\d+)")}$`);
}

/**
 * Plans the conversion of a checkpoint with `config` and `tensors` to `type`.
 * @param file config.json path, for messages. @param name `general.name`.
 * @throws InputError for unsupported architectures/rope, missing hyper-parameters;
 *   IncompatibleModelsError for a tensor without a GGUF name.
 */
export function planConversion(
  rawConfig: Readonly<Record<string, unknown>>,
  tensors: readonly SourceTensorMeta[],
  type: MergeableGgmlType,
  file: string,
  name: string,
): ConversionPlan {
  const config = flattenConfig(rawConfig);
  const arch = archForConfig(config, file);
  const md: GgufMetadata = new Map();
  md.set(KEYS.general.architecture, { type: "string", value: arch.arch });
  md.set(KEYS.general.type, { type: "string", value: "model" });
  md.set(KEYS.general.name, { type: "string", value: name });
  for (const spec of arch.hparams) {
    const v = hparamValue(spec, config, file);
    if (v === undefined) continue;
    md.set(archKey(spec.key, arch.arch), spec.type === "u32" ? { type: "u32", value: v } : { type: "f32", value: Math.fround(v) });
  }
  for (const [k, v] of ropeScaling(config, arch.arch, file)) md.set(k, v);
  md.set(KEYS.general.fileType, { type: "u32", value: LLAMA_FILE_TYPE[type] });
  md.set(KEYS.general.quantizationVersion, { type: "u32", value: 2 });

  const nHead = md.get(archKey(KEYS.attention.headCount, arch.arch))?.value as number;
  const nHeadKv = (md.get(archKey(KEYS.attention.headCountKv, arch.arch))?.value as number | undefined) ?? nHead;
  const rows = arch.tensors.map((r) => ({ row: r, re: templateRegex(r.hf) }));
  const warnings: string[] = [];
  const out: TensorConversion[] = [];
  for (const t of tensors) {
    if (arch.skipSuffixes.some((s) => t.name.endsWith(s))) continue;
    const m = /^(.*)\.(weight|bias)$/.exec(t.name);
    let ggufBase: string | undefined;
    let hfBase = "";
    if (m) {
      for (const { row, re } of rows) {
        const hit = re.exec(m[1]!);
        if (hit) {
          ggufBase = row.gguf.replace("{bid}", hit[1] ?? "");
          hfBase = row.hf;
          break;
        }
      }
    }
    if (ggufBase === undefined || m === null) {
      throw new IncompatibleModelsError("convert.unmapped_tensor", `tensor ${t.name} in ${file}: got no GGUF name for it in the ${arch.arch} table, expected a known ${arch.arch} tensor`, {
        details: { file, tensor: t.name, arch: arch.arch },
        hint: "see docs/adding-an-architecture.md",
      });
    }
    const ggufName = `${ggufBase}.${m[2]}`;
    const shape = [...t.shape].reverse();
    let outType: MergeableGgmlType = type;
    if (shape.length <= 1 || ggufName.endsWith("_norm.weight")) outType = "F32";
    else if (shape[0]! % ggmlType(outType).blockSize !== 0) {
      warnings.push(`${ggufName}: rows of ${shape[0]} do not split into ${outType} blocks of ${ggmlType(outType).blockSize}; written as F16 (as llama.cpp does)`);
      outType = "F16";
    }
    const conv: TensorConversion = { hfName: t.name, ggufName, shape, type: outType };
    if (arch.permuteQK && hfBase.endsWith("self_attn.q_proj")) conv.permuteHeads = nHead;
    if (arch.permuteQK && hfBase.endsWith("self_attn.k_proj")) conv.permuteHeads = nHeadKv;
    if (arch.normShift !== 0 && t.name.endsWith("norm.weight")) conv.add = arch.normShift;
    out.push(conv);
  }
  return { arch, metadata: md, tensors: out, warnings };
}

/**
 * PEFT LoRA adapters on disk: `adapter_config.json` + `adapter_model.safetensors` (what peft's
 * `save_pretrained` writes). This module reads the config, opens the weights, and maps every adapter tensor
 * to the base-model tensor it changes (`mapAdapter`, pure). It knows nothing of merging; the computed
 * "aligned + s·B·A" checkpoint is `src/merge/lora-tuned.ts`.
 *
 * Followed: peft `LoraConfig`, `lora.Linear.get_delta_weight` / `merge` (scaling α/r, rsLoRA α/√r,
 * rank_pattern/alpha_pattern by `get_pattern_key`, fan_in_fan_out transpose, lora_bias scaled by s since
 * peft#2489 / peft#2486), `get_peft_model_state_dict` key forms (adapter name removed, `base_model.model.`
 * prefix, `modules_to_save`, bias "all"/"lora_only", saved embeddings), `check_target_module_exists`.
 */
import { readFile, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { z } from "zod";
import { isFloatDtype } from "../../core/dtype.ts";
import { formatShape, numelOf, type TensorMeta } from "../../core/tensor.ts";
import { FormatError, IncompatibleModelsError, fsError } from "../../errors.ts";
import { openSafetensors, type SafetensorsFile } from "../safetensors/read.ts";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from "./adapter-files.ts";
export { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, isAdapterDir } from "./adapter-files.ts";

const nullish = <T extends z.ZodType>(t: T) => t.nullable().optional();

/** The part of peft's LoraConfig a merge needs; unknown keys are ignored (peft adds keys every release). */
const adapterConfigSchema = z.object({
  peft_type: nullish(z.string()),
  r: z.number().int().positive(),
  lora_alpha: z.number(),
  use_rslora: nullish(z.boolean()),
  rank_pattern: nullish(z.record(z.string(), z.number().int().positive())),
  alpha_pattern: nullish(z.record(z.string(), z.number())),
  target_modules: nullish(z.union([z.array(z.string()), z.string()])),
  exclude_modules: nullish(z.union([z.array(z.string()), z.string()])),
  fan_in_fan_out: nullish(z.boolean()),
  modules_to_save: nullish(z.array(z.string())),
  bias: nullish(z.enum(["none", "all", "lora_only"])),
  lora_bias: nullish(z.boolean()),
  layers_to_transform: nullish(z.union([z.array(z.number().int()), z.number().int()])),
  layers_pattern: nullish(z.union([z.array(z.string()), z.string()])),
  base_model_name_or_path: nullish(z.string()),
});

/** Config keys of LoRA variants whose merge is not W + s·B·A; a truthy value is refused. */
const UNSUPPORTED_VARIANTS = [
  "use_dora",
  "use_qalora",
  "alora_invocation_tokens",
  "arrow_config",
  "use_bdlora",
  "velora_config",
  "monteclora_config",
  "kasa_config",
  "target_parameters",
  "layer_replication",
  "trainable_token_indices",
] as const;

/** A validated adapter_config.json, defaults filled as peft fills them. */
export interface AdapterConfig {
  readonly r: number;
  readonly loraAlpha: number;
  readonly useRslora: boolean;
  readonly rankPattern: Readonly<Record<string, number>>;
  readonly alphaPattern: Readonly<Record<string, number>>;
  /** List (exact name or `.suffix` match) or one regex (full match), or null (= whatever was saved). */
  readonly targetModules: readonly string[] | string | null;
  readonly excludeModules: readonly string[] | string | null;
  readonly fanInFanOut: boolean;
  readonly modulesToSave: readonly string[];
  readonly bias: "none" | "all" | "lora_only";
  readonly loraBias: boolean;
  readonly layersToTransform: readonly number[] | null;
  readonly layersPattern: readonly string[] | null;
  readonly baseModelNameOrPath: string | null;
}

/**
 * Validates a parsed adapter_config.json.
 * @throws FormatError `adapter.bad_config` (schema issues, peft_type not LORA) or `adapter.unsupported_variant`
 *   (DoRA, aLoRA, target_parameters, …: their merge is not W + s·B·A).
 */
export function parseAdapterConfig(json: unknown, file: string): AdapterConfig {
  const parsed = adapterConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new FormatError("adapter.bad_config", `invalid LoRA adapter config in ${file}: ${issues.join("; ")}`, {
      details: { file, issues },
      hint: "pass a directory written by peft's save_pretrained for a LoRA adapter",
    });
  }
  const c = parsed.data;
  if (c.peft_type != null && c.peft_type.toUpperCase() !== "LORA") {
    throw new FormatError("adapter.bad_config", `peft_type in ${file}: got ${c.peft_type}, expected LORA`, {
      details: { file, got: c.peft_type },
      hint: "only LoRA adapters can be merged; merge other PEFT methods into their base with peft first",
    });
  }
  const raw = json as Record<string, unknown>;
  for (const key of UNSUPPORTED_VARIANTS) {
    const v = raw[key];
    const on = v === true || (typeof v === "object" && v !== null && Object.keys(v).length > 0) || (typeof v === "string" && v !== "");
    if (on) {
      throw new FormatError("adapter.unsupported_variant", `${key} in ${file}: got ${JSON.stringify(v)}, expected it unset (plain LoRA)`, {
        details: { file, key, got: v },
        hint: "this LoRA variant does not merge as W + s·B·A; merge it into the aligned model with peft's merge_and_unload, then pass that directory as --tuned",
      });
    }
  }
  const ltt = c.layers_to_transform;
  return {
    r: c.r,
    loraAlpha: c.lora_alpha,
    useRslora: c.use_rslora ?? false,
    rankPattern: c.rank_pattern ?? {},
    alphaPattern: c.alpha_pattern ?? {},
    targetModules: c.target_modules ?? null,
    excludeModules: c.exclude_modules ?? null,
    fanInFanOut: c.fan_in_fan_out ?? false,
    modulesToSave: c.modules_to_save ?? [],
    bias: c.bias ?? "none",
    loraBias: c.lora_bias ?? false,
    layersToTransform: ltt == null ? null : typeof ltt === "number" ? [ltt] : ltt.length === 0 ? null : ltt,
    layersPattern: c.layers_pattern == null ? null : typeof c.layers_pattern === "string" ? [c.layers_pattern] : c.layers_pattern,
    baseModelNameOrPath: c.base_model_name_or_path ?? null,
  };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** peft `get_pattern_key`: the first pattern key p with `^(.*\.)?(p)$` matching the module name. */
function patternValue(patterns: Readonly<Record<string, number>>, module: string): number | undefined {
  for (const [key, value] of Object.entries(patterns)) {
    let re: RegExp;
    try {
      re = new RegExp(`^(.*\\.)?(${key})$`);
    } catch {
      re = new RegExp(`^(.*\\.)?(${escapeRegExp(key)})$`);
    }
    if (re.test(module)) return value;
  }
  return undefined;
}

/**
 * Rank, alpha and scaling of one targeted module (module name relative to the model, e.g.
 * `model.layers.0.self_attn.q_proj`): r and α from rank_pattern/alpha_pattern else the defaults;
 * s = α/√r with rsLoRA, else α/r (peft `LoraLayer.update_layer`).
 */
export function moduleScaling(cfg: AdapterConfig, module: string): { rank: number; alpha: number; scale: number } {
  const rank = patternValue(cfg.rankPattern, module) ?? cfg.r;
  const alpha = patternValue(cfg.alphaPattern, module) ?? cfg.loraAlpha;
  return { rank, alpha, scale: cfg.useRslora ? alpha / Math.sqrt(rank) : alpha / rank };
}

/** peft `check_target_module_exists` on a module name (layers_to_transform included). */
export function isTargeted(cfg: AdapterConfig, module: string): boolean {
  const ex = cfg.excludeModules;
  if (ex !== null) {
    if (typeof ex === "string" ? safeFullMatch(ex, module) : ex.some((e) => module === e || module.endsWith(`.${e}`))) return false;
  }
  const tm = cfg.targetModules;
  if (tm === null) return true;
  if (typeof tm === "string") return tm === "all-linear" || safeFullMatch(tm, module);
  if (tm.includes(module)) return true;
  if (!tm.some((t) => module.endsWith(`.${t}`))) return false;
  if (cfg.layersToTransform === null) return true;
  const idx = layerIndexForTargeting(cfg, module);
  return idx !== undefined && cfg.layersToTransform.includes(idx);
}

function safeFullMatch(pattern: string, s: string): boolean {
  try {
    return new RegExp(`^(?:${pattern})$`).test(s);
  } catch {
    return pattern === s;
  }
}

/** Layer index as peft finds it for layers_to_transform: the first `.<name>.<digits>.` (or `.<pattern>.<digits>.`). */
function layerIndexForTargeting(cfg: AdapterConfig, module: string): number | undefined {
  const patterns = cfg.layersPattern;
  const key = `${module}.`;
  if (patterns === null || patterns.length === 0) {
    const m = /^.*?\.[^.]*\.(\d+)\./.exec(key);
    return m === null ? undefined : Number(m[1]);
  }
  for (const p of patterns) {
    const m = new RegExp(`^.*?\\.${p}\\.(\\d+)\\.`).exec(key);
    if (m !== null) return Number(m[1]);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Opening.

/** An opened adapter directory. Close it when done. */
export interface PeftAdapter {
  /** Absolute directory path. */
  readonly dir: string;
  readonly configPath: string;
  readonly weightsPath: string;
  readonly config: AdapterConfig;
  /** Adapter tensors by stored name. */
  readonly tensors: ReadonlyMap<string, TensorMeta>;
  /** The open weights file (positioned reads). */
  readonly file: SafetensorsFile;
  close(): Promise<void>;
}

/**
 * Opens a PEFT LoRA adapter directory: validates adapter_config.json and the weights header.
 * @throws FormatError `adapter.no_config` (no adapter_config.json), `adapter.bad_config`,
 *   `adapter.unsupported_variant`, `adapter.no_weights` (only adapter_model.bin, or nothing),
 *   `safetensors.*` for a malformed weights file; InputError `fs.*`.
 */
export async function openAdapter(dir: string): Promise<PeftAdapter> {
  const root = resolve(dir);
  const configPath = join(root, ADAPTER_CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(configPath, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      throw new FormatError("adapter.no_config", `no ${ADAPTER_CONFIG_FILE} in adapter directory ${dir}`, {
        details: { file: configPath },
        hint: "a PEFT adapter directory needs the adapter_config.json that save_pretrained wrote next to adapter_model.safetensors",
      });
    }
    throw fsError(e, configPath, "reading adapter config");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FormatError("adapter.bad_config", `invalid JSON in ${configPath}: ${e instanceof Error ? e.message : String(e)}`, {
      details: { file: configPath },
    });
  }
  const config = parseAdapterConfig(json, configPath);
  const weightsPath = join(root, ADAPTER_WEIGHTS_FILE);
  let exists = true;
  try {
    await stat(weightsPath);
  } catch {
    exists = false;
  }
  if (!exists) {
    let hasBin = true;
    try {
      await stat(join(root, "adapter_model.bin"));
    } catch {
      hasBin = false;
    }
    throw new FormatError("adapter.no_weights", `no ${ADAPTER_WEIGHTS_FILE} in adapter directory ${dir}${hasBin ? " (only adapter_model.bin, a pickle)" : ""}`, {
      details: { file: weightsPath },
      hint: hasBin
        ? "realign never loads pickle files; re-save the adapter with safe_serialization=True"
        : "the adapter directory is incomplete",
    });
  }
  const file = await openSafetensors(weightsPath);
  const tensors = new Map<string, TensorMeta>(file.header.tensors.map((t) => [t.name, { name: t.name, dtype: t.dtype, shape: t.shape }]));
  return { dir: root, configPath, weightsPath, config, tensors, file, close: () => file.close() };
}

// ---------------------------------------------------------------------------------------------
// Mapping adapter tensors to base tensors (pure).

/** How one base tensor is changed by the adapter. */
export type AdapterEntry =
  | {
      /** θ + s·(B·A) (transposed into the stored layout when `transposed`). */
      readonly kind: "lora";
      readonly target: string;
      readonly module: string;
      readonly aName: string;
      readonly bName: string;
      readonly rank: number;
      readonly inDim: number;
      readonly outDim: number;
      readonly scale: number;
      /** Stored weight is [in, out] (fan_in_fan_out / Conv1D / embedding LoRA): Δ = (B·A)ᵀ. */
      readonly transposed: boolean;
      /** An embedding LoRA (`lora_embedding_A/B`), not a linear layer. */
      readonly embedding: boolean;
    }
  | {
      /** θ + s·b_lora (peft lora_bias, scaled as peft does since peft#2489). */
      readonly kind: "bias";
      readonly target: string;
      readonly source: string;
      readonly scale: number;
    }
  | {
      /** The adapter's full tensor replaces the base tensor (modules_to_save, bias "all"/"lora_only", saved embeddings). */
      readonly kind: "replace";
      readonly target: string;
      readonly source: string;
      /** Shape of the saved tensor (may have more rows than the base: resized vocabulary). */
      readonly shape: readonly number[];
    };

export interface AdapterMapping {
  /** Base tensor name → what changes it. */
  readonly entries: ReadonlyMap<string, AdapterEntry>;
  /** Non-fatal findings (fan_in_fan_out overridden, untouched targets, base name mismatch, …). */
  readonly warnings: readonly string[];
}

/** What `mapAdapter` needs of the base (aligned) model. */
export interface BaseInventory {
  readonly path: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly tensors: ReadonlyMap<string, TensorMeta>;
}

/** transformers model types whose projection layers are GPT-2 `Conv1D` (weight stored [in, out]). */
const CONV1D_MODEL_TYPES = new Set(["gpt2", "openai-gpt", "imagegpt", "decision_transformer"]);
const CONV1D_MODULES = new Set(["c_attn", "c_proj", "c_fc", "q_attn"]);

const PREFIX = "base_model.model.";

type Parsed =
  | { kind: "lora_a" | "lora_b" | "emb_a" | "emb_b"; module: string }
  | { kind: "lora_bias"; module: string }
  | { kind: "replace"; param: string };

/** Classifies one stored adapter key (prefix `base_model.model.` already removed). */
function parseKey(key: string): Parsed | undefined {
  let m = /^(.+)\.lora_([AB])(?:\.default)?\.weight$/.exec(key);
  if (m !== null) return { kind: m[2] === "A" ? "lora_a" : "lora_b", module: m[1]! };
  m = /^(.+)\.lora_embedding_([AB])(?:\.default)?$/.exec(key);
  if (m !== null) return { kind: m[2] === "A" ? "emb_a" : "emb_b", module: m[1]! };
  m = /^(.+)\.lora_B(?:\.default)?\.bias$/.exec(key);
  if (m !== null) return { kind: "lora_bias", module: m[1]! };
  if (/\.lora_[A-Za-z_]+/.test(key) || /(^|\.)lora_magnitude_vector/.test(key)) return undefined;
  m = /^(.+)\.modules_to_save(?:\.default)?\.([^.]+)$/.exec(key);
  if (m !== null) return { kind: "replace", param: `${m[1]}.${m[2]}` };
  m = /^(.+)\.base_layer\.([^.]+)$/.exec(key);
  if (m !== null) return { kind: "replace", param: `${m[1]}.${m[2]}` };
  return { kind: "replace", param: key };
}

/** Base tensor name for a model-relative parameter name: exact, then without / with a leading model prefix. */
function resolveBaseName(param: string, base: ReadonlyMap<string, TensorMeta>): { found: string | undefined; tried: string[] } {
  const tried = [param];
  const dot = param.indexOf(".");
  if (dot > 0) tried.push(param.slice(dot + 1));
  for (const p of ["model.", "transformer."]) tried.push(p + param);
  for (const t of tried) if (base.has(t)) return { found: t, tried };
  return { found: undefined, tried };
}

function leafName(module: string): string {
  const i = module.lastIndexOf(".");
  return i < 0 ? module : module.slice(i + 1);
}

/**
 * Maps every adapter tensor to the base tensor it changes and validates shapes and ranks.
 * Key forms (after the `base_model.model.` prefix): `<m>.lora_A.weight` / `<m>.lora_B.weight` (also with
 * `.default`), `<m>.lora_embedding_A|B`, `<m>.lora_B.bias` (lora_bias), `<x>.modules_to_save[.default].<p>`,
 * `<m>.base_layer.<p>` (bias lora_only), and plain `<x>.<p>` (bias all, modules_to_save, saved embeddings).
 * A LoRA pair's stored base weight must be [out, in], or [in, out] when transposed: fan_in_fan_out, a
 * GPT-2 Conv1D module (peft switches fan_in_fan_out on for Conv1D and warns; we do the same), or an
 * embedding LoRA (peft: (B·A)ᵀ).
 * Pairs for modules that target_modules / layers_to_transform do not select are skipped with a warning
 * (peft ignores such keys when loading).
 * @throws IncompatibleModelsError `adapter.unmapped_tensor` (an adapter tensor with no base tensor),
 *   `adapter.shape_mismatch`; FormatError `adapter.unpaired` (A without B), `adapter.rank_mismatch`,
 *   `adapter.unknown_tensor`, `adapter.duplicate_target`. Every problem is collected; the message names the first.
 */
export function mapAdapter(
  cfg: AdapterConfig,
  adapterTensors: ReadonlyMap<string, TensorMeta>,
  base: BaseInventory,
  where: { adapterPath: string },
): AdapterMapping {
  const warnings: string[] = [];
  const problems: { code: string; message: string; hint: string; kind: "format" | "models" }[] = [];
  const modules = new Map<string, { a?: TensorMeta; b?: TensorMeta; emb: boolean; bias?: TensorMeta }>();
  const replaces: { source: TensorMeta; param: string }[] = [];
  const apath = where.adapterPath;

  for (const t of adapterTensors.values()) {
    const key = t.name.startsWith(PREFIX) ? t.name.slice(PREFIX.length) : t.name;
    const p = parseKey(key);
    if (p === undefined) {
      problems.push({
        code: "adapter.unknown_tensor",
        message: `tensor ${t.name} in ${apath} is not a LoRA A/B, bias or saved module tensor`,
        hint: "this adapter uses a LoRA variant realign does not merge; merge it with peft's merge_and_unload first",
        kind: "format",
      });
      continue;
    }
    if (p.kind === "replace") {
      replaces.push({ source: t, param: p.param });
      continue;
    }
    const slot = modules.get(p.module) ?? { emb: false };
    if (p.kind === "lora_a" || p.kind === "emb_a") slot.a = t;
    else if (p.kind === "lora_b" || p.kind === "emb_b") slot.b = t;
    else slot.bias = t;
    if (p.kind === "emb_a" || p.kind === "emb_b") slot.emb = true;
    modules.set(p.module, slot);
  }

  const entries = new Map<string, AdapterEntry>();
  const addEntry = (e: AdapterEntry, source: string): void => {
    if (entries.has(e.target)) {
      problems.push({
        code: "adapter.duplicate_target",
        message: `base tensor ${e.target} is changed twice by ${apath} (second time by ${source})`,
        hint: "the adapter holds two tensors for one base weight; re-save it",
        kind: "format",
      });
      return;
    }
    entries.set(e.target, e);
  };
  const unmapped = (source: string, tried: string[]): void => {
    problems.push({
      code: "adapter.unmapped_tensor",
      message: `adapter tensor ${source} in ${apath} maps to no tensor of the aligned model ${base.path} (it has no ${tried[0]})`,
      hint: "the adapter was trained on a different model; pass the model it was trained from as --aligned",
      kind: "models",
    });
  };

  const modelType = typeof base.config.model_type === "string" ? base.config.model_type : "";
  const conv1dArch = CONV1D_MODEL_TYPES.has(modelType);
  // leaf module name → orientation learnt from non-square shapes, to settle square ones consistently
  const orientationByLeaf = new Map<string, boolean>();
  const pending: { module: string; a: TensorMeta; b: TensorMeta; emb: boolean; target: string; rank: number; scale: number }[] = [];
  let skipped = 0;
  let skippedExample = "";

  for (const [module, slot] of modules) {
    if (slot.a === undefined || slot.b === undefined) {
      if (slot.a === undefined && slot.b === undefined && slot.bias !== undefined) {
        problems.push({
          code: "adapter.unpaired",
          message: `adapter tensor ${slot.bias.name} in ${apath} has no lora_A/lora_B pair`,
          hint: "the adapter file is incomplete; re-save it",
          kind: "format",
        });
        continue;
      }
      const have = (slot.a ?? slot.b)!;
      problems.push({
        code: "adapter.unpaired",
        message: `adapter tensor ${have.name} in ${apath} has no ${slot.a === undefined ? "lora_A" : "lora_B"} partner`,
        hint: "the adapter file is incomplete; re-save it",
        kind: "format",
      });
      continue;
    }
    const { rank, scale } = moduleScaling(cfg, module);
    const { a, b } = slot;
    const param = `${module}.weight`;
    const { found, tried } = resolveBaseName(param, base.tensors);
    if (found === undefined) {
      unmapped(a.name, tried);
      continue;
    }
    if (!isTargeted(cfg, module)) {
      skipped++;
      skippedExample ||= module;
      continue;
    }
    if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[0] !== rank || b.shape[1] !== rank) {
      problems.push({
        code: "adapter.rank_mismatch",
        message: `LoRA rank of ${module} in ${apath}: got A ${formatShape(a.shape)} and B ${formatShape(b.shape)}, expected A [${rank}, in] and B [out, ${rank}] (r from adapter_config.json)`,
        hint: "adapter_config.json does not describe these weights (r / rank_pattern); fix the config or re-save the adapter",
        kind: "format",
      });
      continue;
    }
    if (!isFloatDtype(a.dtype) || !isFloatDtype(b.dtype)) {
      problems.push({
        code: "adapter.bad_dtype",
        message: `LoRA weights of ${module} in ${apath}: got ${a.dtype}/${b.dtype}, expected float tensors`,
        hint: "quantized adapters are not supported; re-save in float32 or bfloat16",
        kind: "format",
      });
      continue;
    }
    pending.push({ module, a, b, emb: slot.emb, target: found, rank, scale });
    if (!slot.emb) {
      const w = base.tensors.get(found)!.shape;
      const inDim = a.shape[1]!;
      const outDim = b.shape[0]!;
      if (inDim !== outDim && w.length === 2) {
        if (w[0] === outDim && w[1] === inDim) orientationByLeaf.set(leafName(module), false);
        else if (w[0] === inDim && w[1] === outDim) orientationByLeaf.set(leafName(module), true);
      }
    }
    if (slot.bias !== undefined) {
      const bp = resolveBaseName(`${module}.bias`, base.tensors);
      if (bp.found === undefined) {
        problems.push({
          code: "adapter.unmapped_tensor",
          message: `adapter tensor ${slot.bias.name} in ${apath} (lora_bias) maps to no bias of the aligned model ${base.path} (it has no ${bp.tried[0]})`,
          hint: "peft cannot merge lora_bias into a layer without bias either; merge without the bias or use a base with biases",
          kind: "models",
        });
      } else {
        const bs = base.tensors.get(bp.found)!.shape;
        if (numelOf(bs) !== numelOf(slot.bias.shape) || bs.length !== 1) {
          problems.push({
            code: "adapter.shape_mismatch",
            message: `shape of ${slot.bias.name} in ${apath}: got ${formatShape(slot.bias.shape)}, expected ${formatShape(bs)} (aligned ${bp.found})`,
            hint: "the adapter was trained on a different model; pass the model it was trained from as --aligned",
            kind: "models",
          });
        } else addEntry({ kind: "bias", target: bp.found, source: slot.bias.name, scale }, slot.bias.name);
      }
    }
  }

  const seen = new Set(orientationByLeaf.values());
  const globalOrientation = seen.size === 1 ? [...seen][0] : undefined;
  let flipped = 0;
  let flippedExample = "";
  for (const p of pending) {
    const w = base.tensors.get(p.target)!.shape;
    const inDim = p.a.shape[1]!;
    const outDim = p.b.shape[0]!;
    let transposed: boolean;
    if (p.emb) {
      transposed = true; // A [r, num_embeddings], B [dim, r], weight [num_embeddings, dim]: Δ = (B·A)ᵀ
    } else if (inDim !== outDim) {
      transposed = w.length === 2 && w[0] === inDim && w[1] === outDim;
    } else {
      // square: the same module name's orientation elsewhere, else the whole model's (all non-square
      // targets agreeing), else the architecture (GPT-2 Conv1D modules are [in, out]; in any other known
      // architecture the layer is nn.Linear, for which peft turns fan_in_fan_out off), else the config
      const learnt = orientationByLeaf.get(leafName(p.module)) ?? globalOrientation;
      const byArch = conv1dArch ? CONV1D_MODULES.has(leafName(p.module)) : modelType !== "" ? false : undefined;
      transposed = learnt ?? byArch ?? cfg.fanInFanOut;
    }
    const want = transposed ? [inDim, outDim] : [outDim, inDim];
    if (w.length !== 2 || w[0] !== want[0] || w[1] !== want[1]) {
      problems.push({
        code: "adapter.shape_mismatch",
        message: `shape of ${p.target} in the aligned model ${base.path}: got ${formatShape(w)}, expected ${formatShape(want)} for LoRA A ${formatShape(p.a.shape)} / B ${formatShape(p.b.shape)} in ${apath}`,
        hint: "the adapter was trained on a different model; pass the model it was trained from as --aligned",
        kind: "models",
      });
      continue;
    }
    if (!p.emb && transposed !== cfg.fanInFanOut) {
      flipped++;
      flippedExample ||= `${p.target} is ${formatShape(w)}`;
    }
    addEntry(
      { kind: "lora", target: p.target, module: p.module, aName: p.a.name, bName: p.b.name, rank: p.rank, inDim, outDim, scale: p.scale, transposed, embedding: p.emb },
      p.a.name,
    );
  }
  if (flipped > 0) {
    warnings.push(
      `adapter_config.json says fan_in_fan_out=${cfg.fanInFanOut} but ${flipped} targeted weight(s) of the aligned model are stored ` +
        `${cfg.fanInFanOut ? "[out, in]" : "[in, out] (GPT-2 Conv1D)"} (e.g. ${flippedExample}); applying the delta in the stored layout, as peft does`,
    );
  }
  if (skipped > 0) {
    warnings.push(`${skipped} LoRA pair(s) in ${apath} are for modules target_modules/layers_to_transform do not select (e.g. ${skippedExample}); ignored, as peft ignores them`);
  }

  const modulesToSave = cfg.modulesToSave;
  for (const { source, param } of replaces) {
    const { found, tried } = resolveBaseName(param, base.tensors);
    if (found === undefined) {
      unmapped(source.name, tried);
      continue;
    }
    const w = base.tensors.get(found)!;
    const rowsOk = source.shape.length === w.shape.length && source.shape.slice(1).every((d, i) => d === w.shape[i + 1]) && source.shape[0]! >= (w.shape[0] ?? 1);
    const sameShape = source.shape.length === w.shape.length && source.shape.every((d, i) => d === w.shape[i]);
    const isVocab = /(embed_tokens|embed_in|wte|word_embeddings|tok_embeddings|lm_head|embed_out)\.weight$/.test(found);
    if (!sameShape && !(isVocab && rowsOk)) {
      problems.push({
        code: "adapter.shape_mismatch",
        message: `shape of ${source.name} in ${apath}: got ${formatShape(source.shape)}, expected ${formatShape(w.shape)} (aligned ${found})`,
        hint: "the adapter was trained on a different model; pass the model it was trained from as --aligned",
        kind: "models",
      });
      continue;
    }
    if (!isFloatDtype(source.dtype) && source.dtype !== w.dtype) {
      problems.push({
        code: "adapter.bad_dtype",
        message: `dtype of ${source.name} in ${apath}: got ${source.dtype}, expected ${w.dtype} (aligned ${found})`,
        hint: "re-save the adapter",
        kind: "format",
      });
      continue;
    }
    if (modulesToSave.length === 0 && cfg.bias === "none" && !/\.bias$/.test(found) && !isVocab) {
      warnings.push(`adapter tensor ${source.name} replaces ${found} although modules_to_save is empty in ${ADAPTER_CONFIG_FILE}`);
    }
    addEntry({ kind: "replace", target: found, source: source.name, shape: source.shape }, source.name);
  }

  // target_modules entries that match base weights the adapter does not change (e.g. GPT-2 `c_proj` also
  // names mlp.c_proj): harmless, but worth saying.
  const tm = cfg.targetModules;
  if (Array.isArray(tm) && entries.size > 0) {
    let untouched = 0;
    let example = "";
    for (const name of base.tensors.keys()) {
      if (!name.endsWith(".weight") || entries.has(name)) continue;
      const module = name.slice(0, -".weight".length).replace(/^(model|transformer)\./, "");
      const full = name.slice(0, -".weight".length);
      if (!tm.some((t) => module.endsWith(`.${t}`) || full.endsWith(`.${t}`))) continue;
      if (cfg.layersToTransform !== null) {
        const idx = layerIndexForTargeting(cfg, full);
        if (idx === undefined || !cfg.layersToTransform.includes(idx)) continue;
      }
      untouched++;
      example ||= name;
    }
    if (untouched > 0) {
      warnings.push(`target_modules also match ${untouched} weight(s) with no LoRA tensors in ${apath} (e.g. ${example}); they are left as in the aligned model`);
    }
  }

  if (problems.length > 0) {
    const first = problems[0]!;
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem(s))` : "";
    const opts = {
      details: { adapter: apath, aligned: base.path, issues: problems.map((p) => ({ code: p.code, message: p.message })) },
      hint: first.hint,
    };
    throw first.kind === "models"
      ? new IncompatibleModelsError(first.code, first.message + more, opts)
      : new FormatError(first.code, first.message + more, opts);
  }
  if (entries.size === 0) {
    throw new FormatError("adapter.empty", `adapter ${apath} changes no tensor of the aligned model ${base.path}`, {
      details: { adapter: apath, aligned: base.path },
      hint: "check target_modules / layers_to_transform in adapter_config.json",
    });
  }
  return { entries, warnings };
}

/**
 * Whether the adapter's recorded base (`base_model_name_or_path`) plausibly names the aligned model; a
 * warning string when it does not (never an error: the name is free text, shapes are checked separately).
 */
export function baseNameWarning(cfg: AdapterConfig, aligned: BaseInventory): string | undefined {
  const recorded = cfg.baseModelNameOrPath;
  if (recorded === null || recorded === "") return undefined;
  const alignedPath = resolve(aligned.path);
  if (resolve(recorded) === alignedPath) return undefined;
  const tail = (s: string): string => basename(s.replace(/[\\/]+$/, ""));
  const nameOrPath = typeof aligned.config._name_or_path === "string" ? aligned.config._name_or_path : "";
  if (recorded === nameOrPath || tail(recorded) === tail(alignedPath) || (nameOrPath !== "" && tail(recorded) === tail(nameOrPath))) return undefined;
  return `adapter_config.json records base_model_name_or_path=${recorded} but --aligned is ${aligned.path}; the shapes match, so the merge goes ahead — make sure the adapter was trained from this aligned model`;
}


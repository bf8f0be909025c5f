/**
 * planMerge: PURE (Recipe, opened inputs) → MergePlan. Decides, before any byte is written, what every output
 * tensor is: its shape and dtype, the method and resolved parameters, and which input tensors feed it. Every
 * compatibility problem (missing tensor, shape, dtype, vocabulary growth, tied embeddings, bad parameters) is
 * collected and thrown as one error, so a merge either starts with a complete plan or not at all.
 *
 * Inputs are given in role order (`recipeInputs(recipe)`: base first when present, then models) and only
 * their metadata is read (config, tensor inventory, carry files); nothing here does I/O.
 */
import { isFloatDtype, OUT_DTYPES, DTYPE_BYTES, type Dtype, type OutDtype } from "../core/dtype.ts";
import { formatShape, numelOf, type Checkpoint, type TensorMeta } from "../core/tensor.ts";
import { ConfigError, IncompatibleModelsError, InternalError } from "../errors.ts";
import type { MergeMethod, ResolvedParams, TensorContext } from "./methods/types.ts";
import { METHODS, getMethod } from "./methods/registry.ts";
import { assertParams, didYouMean, resolveParams } from "./params.ts";
import { recipeInputs, type Recipe } from "./recipe.ts";
import { layerCountOf } from "./schedule.ts";

/** The inventory part of a Checkpoint that planning reads. */
export type CheckpointInventory = Pick<Checkpoint, "path" | "config" | "tensors" | "carryFiles">;

/** One input of the plan, in role order. */
export interface PlanInput {
  readonly path: string;
  /** "aligned", "tuned", or "model <i>". */
  readonly label: string;
  readonly role: "base" | "model";
}

/** A tensor of an input: `input` indexes MergePlan.inputs. */
export interface SourceRef {
  readonly input: number;
  readonly name: string;
}

/** What to do for one output tensor. */
export interface TensorPlan {
  readonly name: string;
  /** Output shape (the larger one under vocab growth). */
  readonly shape: readonly number[];
  readonly numel: number;
  /** Output dtype. */
  readonly dtype: Dtype;
  /**
   * "merge": elements [0, mergedElems) come from the method over `base`/`models`, the rest (vocab growth) from
   * `tail`. "copy": raw bytes of `copyFrom` (non-float tensors: integer buffers, masks).
   */
  readonly kind: "merge" | "copy";
  /** Sources of the merged region, in the method's roles. */
  readonly base: SourceRef | undefined;
  readonly models: readonly SourceRef[];
  /** Elements merged (= numel unless the embedding grew). */
  readonly mergedElems: number;
  /** Source of elements [mergedElems, numel), same element indices, when the vocabulary grew. */
  readonly tail: SourceRef | undefined;
  /** For kind "copy". */
  readonly copyFrom: SourceRef | undefined;
  /**
   * What the method sees: the merged region only (shape [mergedRows, …] and numel = mergedElems under
   * vocabulary growth), the layer index and the per-tensor seed.
   */
  readonly ctx: TensorContext;
  /** The method's parameters resolved for this tensor. */
  readonly params: ResolvedParams;
}

/** A file copied next to the merged weights. */
export interface CarryFile {
  /** Absolute source path. */
  readonly from: string;
  /** File name in the output. */
  readonly name: string;
}

/** Everything runMerge needs, decided up front; printable by --explain and testable without files. */
export interface MergePlan {
  readonly recipe: Recipe;
  readonly method: string;
  readonly inputs: readonly PlanInput[];
  /** Index of the reference input (config, generation config, default dtype). */
  readonly reference: number;
  /** Output tensors in write order (natural name order: layers.2 before layers.10). */
  readonly tensors: readonly TensorPlan[];
  /** config.json to write (reference config with dtype/vocab_size updated). */
  readonly config: Readonly<Record<string, unknown>>;
  /** Files to copy next to the weights. */
  readonly carry: readonly CarryFile[];
  /** The single output float dtype, or undefined when tensors differ. */
  readonly outDtype: OutDtype | undefined;
  /** Σ output tensor bytes. */
  readonly totalBytes: number;
  /** Things the user should know that are not errors (e.g. lm_head dropped because tied). */
  readonly warnings: readonly string[];
}

/** One collected incompatibility. */
export interface PlanIssue {
  readonly code: string;
  readonly message: string;
  readonly hint?: string;
  readonly tensor?: string;
}

/** Tokenizer-ish files that follow the vocabulary donor under `vocabPolicy: tuned`. */
const TOKENIZER_FILES = new Set([
  "tokenizer.json",
  "tokenizer_config.json",
  "tokenizer.model",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "vocab.txt",
  "merges.txt",
  "spiece.model",
  "chat_template.jinja",
  "chat_template.json",
]);

/** torch dtype names for config.json. */
const TORCH_DTYPE: Readonly<Record<OutDtype, string>> = { BF16: "bfloat16", F16: "float16", F32: "float32" };

/** Natural order: digit runs compare as numbers (`layers.2` < `layers.10`). */
export function compareTensorNames(a: string, b: string): number {
  const ra = a.split(/(\d+)/);
  const rb = b.split(/(\d+)/);
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i]!;
    const y = rb[i]!;
    if (x === y) continue;
    if (i % 2 === 1) return Number(x) - Number(y) || (x < y ? -1 : 1);
    return x < y ? -1 : 1;
  }
  return ra.length - rb.length;
}

/** Decoder layer index in an HF tensor name (`model.layers.3.…`, `transformer.h.3.…`), else undefined. */
export function layerIndexOf(name: string): number | undefined {
  const m = /(?:^|\.)(?:layers|h|blocks|block|layer)\.(\d+)\./.exec(name);
  return m === null ? undefined : Number(m[1]);
}

/** 32-bit FNV-1a of the name mixed with the global seed: a stable per-tensor seed. */
export function tensorSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function vocabSizeOf(config: Readonly<Record<string, unknown>>): number | undefined {
  if (typeof config.vocab_size === "number") return config.vocab_size;
  const text = config.text_config as Record<string, unknown> | undefined;
  return typeof text?.vocab_size === "number" ? text.vocab_size : undefined;
}

function isTied(config: Readonly<Record<string, unknown>>): boolean {
  return config.tie_word_embeddings === true;
}

const VOCAB_NAME = /(embed_tokens|embed_in|wte|word_embeddings|tok_embeddings|lm_head|embed_out|output)\.weight$/;

/**
 * Plans the merge.
 * @param inputs opened inputs in `recipeInputs(recipe)` order.
 * @throws ConfigError `recipe.unknown_method` / `recipe.missing_base` / `recipe.too_few_models` / `recipe.bad_param`;
 *   IncompatibleModelsError (`merge.missing_tensor`, `merge.shape_mismatch`, `merge.vocab_mismatch`,
 *   `merge.dtype_mismatch`, `merge.tied_mismatch`, …) listing every problem in `details.issues`.
 */
export function planMerge(recipe: Recipe, inputs: readonly CheckpointInventory[]): MergePlan {
  const method = getMethod(recipe.method);
  if (method === undefined) {
    const names = Object.keys(METHODS);
    throw new ConfigError("recipe.unknown_method", `unknown merge method ${recipe.method}: expected one of ${names.join(", ")}`, {
      details: { got: recipe.method, expected: names },
      hint: didYouMean(recipe.method, names),
    });
  }
  if (method.requiresBase && recipe.base === undefined) {
    throw new ConfigError("recipe.missing_base", `method ${method.name} needs a base model (the aligned model)`, {
      hint: "set base_model / --aligned",
    });
  }
  if (recipe.models.length < method.minModels) {
    throw new ConfigError("recipe.too_few_models", `method ${method.name} needs at least ${method.minModels} model(s), got ${recipe.models.length}`);
  }
  assertParams(method as MergeMethod<unknown>, recipe);
  const roleInputs = recipeInputs(recipe);
  if (roleInputs.length !== inputs.length) {
    throw new InternalError(`planMerge: ${inputs.length} checkpoints for ${roleInputs.length} recipe inputs`);
  }
  const planInputs: PlanInput[] = roleInputs.map((r, i) => ({
    path: inputs[i]!.path,
    label: r.label ?? (recipe.base !== undefined && i === 0 ? "base" : `model ${recipe.base !== undefined ? i - 1 : i}`),
    role: recipe.base !== undefined && i === 0 ? "base" : "model",
  }));
  const reference = 0;
  const ref = inputs[reference]!;
  const issues: PlanIssue[] = [];
  const warnings: string[] = [];
  const label = (i: number): string => planInputs[i]!.label;

  // Tied embeddings must agree: otherwise one side has an lm_head the other does not.
  const tiedFlags = inputs.map((c) => isTied(c.config));
  if (tiedFlags.some((t) => t !== tiedFlags[0])) {
    issues.push({
      code: "merge.tied_mismatch",
      message: `tie_word_embeddings differs: ${tiedFlags.map((t, i) => `${t} in ${label(i)}`).join(", ")}`,
      hint: "the models do not share an architecture; merge checkpoints of the same model family and config",
    });
  }
  const allTied = tiedFlags.every((t) => t);

  // Names: driven by what is present; any name missing somewhere is an error.
  const allNames = new Set<string>();
  for (const c of inputs) for (const n of c.tensors.keys()) allNames.add(n);
  const names = [...allNames].sort(compareTensorNames);
  const layerCount = layerCountOf(ref.config, names.map(layerIndexOf));

  // Vocabulary donor (vocabPolicy tuned): the single input holding the largest embedding.
  let vocabDonor: number | undefined;
  let grownVocab: number | undefined;
  const outTensors: TensorPlan[] = [];
  const outDtypes = new Set<Dtype>();

  for (const name of names) {
    const metas = inputs.map((c) => c.tensors.get(name));
    const missing = metas.flatMap((m, i) => (m === undefined ? [i] : []));
    if (missing.length > 0) {
      const present = metas.flatMap((m, i) => (m === undefined ? [] : [i]));
      issues.push({
        code: "merge.missing_tensor",
        tensor: name,
        message: `tensor ${name}: present in ${present.map(label).join(", ")}, missing in ${missing.map(label).join(", ")}`,
        hint:
          name.startsWith("lm_head") || /embed/.test(name)
            ? "one model ties its embeddings (tie_word_embeddings) and the other does not; use checkpoints of the same architecture"
            : "the checkpoints have different architectures or were saved with different tensor names; merge models fine-tuned from the same aligned model",
      });
      continue;
    }
    const ms = metas as TensorMeta[];
    if (allTied && name === "lm_head.weight") {
      warnings.push("lm_head.weight dropped: config.json ties it to the input embeddings (tie_word_embeddings: true)");
      continue;
    }
    const dtypes = ms.map((m) => m.dtype);
    if (dtypes.some((d) => d !== dtypes[0])) {
      issues.push({
        code: "merge.dtype_mismatch",
        tensor: name,
        message: `tensor ${name}: dtype ${ms.map((m, i) => `${m.dtype} in ${label(i)}`).join(", ")}`,
        hint: "re-save one model in the other's dtype (e.g. with realign merge --lambda 0 --out-dtype …)",
      });
      continue;
    }
    const shapes = ms.map((m) => m.shape);
    const sameShape = shapes.every((s) => s.length === shapes[0]!.length && s.every((d, k) => d === shapes[0]![k]));
    let mergedRows: number | undefined;
    let tailFrom: number | undefined;
    if (!sameShape) {
      const rank = shapes[0]!.length;
      const rowsDiffOnly =
        rank >= 1 && shapes.every((s) => s.length === rank && s.slice(1).every((d, k) => d === shapes[0]![k + 1]));
      const isVocab =
        rowsDiffOnly && (VOCAB_NAME.test(name) || shapes.every((s, i) => s[0] === vocabSizeOf(inputs[i]!.config)));
      const shapeText = ms.map((m, i) => `${formatShape(m.shape)} in ${label(i)}`).join(", ");
      if (!isVocab) {
        issues.push({
          code: "merge.shape_mismatch",
          tensor: name,
          message: `tensor ${name}: shape ${shapeText}`,
          hint: "the checkpoints have different architectures; merge models fine-tuned from the same aligned model",
        });
        continue;
      }
      const rows = shapes.map((s) => s[0]!);
      const maxRows = Math.max(...rows);
      const minRows = Math.min(...rows);
      const donors = rows.flatMap((r, i) => (r === maxRows ? [i] : []));
      if (recipe.vocabPolicy !== "tuned") {
        issues.push({
          code: "merge.vocab_mismatch",
          tensor: name,
          message: `tensor ${name}: vocabulary grew, shape ${shapeText}`,
          hint: "a model added tokens; pass --vocab-policy tuned to merge the shared rows, copy the new rows and use that model's tokenizer",
        });
        continue;
      }
      if (rows.some((r) => r !== minRows && r !== maxRows) || donors.length !== 1) {
        issues.push({
          code: "merge.vocab_mismatch",
          tensor: name,
          message: `tensor ${name}: more than two embedding sizes, shape ${shapeText}`,
          hint: "--vocab-policy tuned needs one model with the grown vocabulary and the others sharing the original one",
        });
        continue;
      }
      if (donors[0] === reference) {
        issues.push({
          code: "merge.vocab_mismatch",
          tensor: name,
          message: `tensor ${name}: the ${label(reference)} model has more embedding rows than the others, shape ${shapeText}`,
          hint: "--vocab-policy tuned handles tokens added by the tuned model; here the vocabulary shrank, which realign does not merge",
        });
        continue;
      }
      if (vocabDonor !== undefined && vocabDonor !== donors[0]) {
        issues.push({
          code: "merge.vocab_mismatch",
          tensor: name,
          message: `tensor ${name}: the grown vocabulary comes from ${label(donors[0]!)} here but from ${label(vocabDonor)} elsewhere`,
        });
        continue;
      }
      vocabDonor = donors[0]!;
      grownVocab = maxRows;
      mergedRows = minRows;
      tailFrom = vocabDonor;
    }
    const outShape = tailFrom === undefined ? shapes[0]! : shapes[tailFrom]!;
    const numel = numelOf(outShape);
    const rowElems = outShape.length === 0 ? 1 : numelOf(outShape.slice(1));
    const mergedElems = mergedRows === undefined ? numel : mergedRows * rowElems;
    const ctx: TensorContext = {
      name,
      shape: mergedRows === undefined ? outShape : [mergedRows, ...outShape.slice(1)],
      numel: mergedElems,
      layerIndex: layerIndexOf(name),
      layerCount,
      seed: tensorSeed(recipe.seed, name),
    };
    const params = resolveParams(method as MergeMethod<unknown>, recipe, ctx);
    const srcDtype = dtypes[0]!;
    if (!isFloatDtype(srcDtype)) {
      outTensors.push({
        name,
        shape: outShape,
        numel,
        dtype: srcDtype,
        kind: "copy",
        base: undefined,
        models: [],
        mergedElems: 0,
        tail: undefined,
        copyFrom: { input: reference, name },
        ctx,
        params,
      });
      if (tailFrom !== undefined) {
        issues.push({ code: "merge.vocab_mismatch", tensor: name, message: `tensor ${name}: ${srcDtype} tensor with different row counts cannot be merged` });
      }
      continue;
    }
    const dtype: OutDtype =
      recipe.outDtype ?? ((OUT_DTYPES as readonly string[]).includes(srcDtype) ? (srcDtype as OutDtype) : "F32");
    outDtypes.add(dtype);
    const hasBase = recipe.base !== undefined;
    outTensors.push({
      name,
      shape: outShape,
      numel,
      dtype,
      kind: "merge",
      base: hasBase ? { input: 0, name } : undefined,
      models: recipe.models.map((_, i) => ({ input: hasBase ? i + 1 : i, name })),
      mergedElems,
      tail: tailFrom === undefined ? undefined : { input: tailFrom, name },
      copyFrom: undefined,
      ctx,
      params,
    });
  }

  if (issues.length > 0) {
    const first = issues[0]!;
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? "s" : ""})` : "";
    throw new IncompatibleModelsError(first.code, `${first.message}${more}`, {
      details: { tensor: first.tensor, issues, inputs: planInputs.map((p) => p.path) },
      hint: first.hint,
    });
  }

  // config.json: reference config; dtype and vocab_size updated.
  const config: Record<string, unknown> = structuredClone(ref.config) as Record<string, unknown>;
  const outDtype = outDtypes.size === 1 ? [...outDtypes][0]! as OutDtype : undefined;
  if (outDtype !== undefined) {
    let set = false;
    for (const key of ["dtype", "torch_dtype"]) {
      if (key in config) {
        config[key] = TORCH_DTYPE[outDtype];
        set = true;
      }
    }
    if (!set) config.torch_dtype = TORCH_DTYPE[outDtype];
  }
  if (grownVocab !== undefined && vocabDonor !== undefined) {
    const donorConfig = inputs[vocabDonor]!.config;
    const text = config.text_config as Record<string, unknown> | undefined;
    if (typeof config.vocab_size === "number" || text === undefined) config.vocab_size = grownVocab;
    else text.vocab_size = grownVocab;
    for (const key of ["pad_token_id", "bos_token_id", "eos_token_id"]) {
      if (key in donorConfig) config[key] = donorConfig[key];
    }
    warnings.push(
      `vocabulary grew to ${grownVocab} rows in ${label(vocabDonor)}: shared rows merged, new rows and tokenizer taken from ${label(vocabDonor)}`,
    );
  }

  // Carried files: from the reference; tokenizer files from the vocabulary donor when the vocabulary grew.
  const carry: CarryFile[] = [];
  const baseName = (p: string): string => p.slice(p.replace(/\\/g, "/").lastIndexOf("/") + 1);
  const tokenizerFrom = vocabDonor ?? reference;
  for (const f of ref.carryFiles) {
    const n = baseName(f);
    if (tokenizerFrom !== reference && TOKENIZER_FILES.has(n)) continue;
    carry.push({ from: f, name: n });
  }
  if (tokenizerFrom !== reference) {
    for (const f of inputs[tokenizerFrom]!.carryFiles) {
      const n = baseName(f);
      if (TOKENIZER_FILES.has(n)) carry.push({ from: f, name: n });
    }
  }
  carry.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const totalBytes = outTensors.reduce((s, t) => s + t.numel * DTYPE_BYTES[t.dtype], 0);
  return {
    recipe,
    method: method.name,
    inputs: planInputs,
    reference,
    tensors: outTensors,
    config,
    carry,
    outDtype,
    totalBytes,
    warnings,
  };
}

/**
 * A Recipe: the normalised, validated description of one merge. The CLI flags form
 * (`--aligned --tuned --lambda --method`) and mergekit YAML both produce a Recipe; `planMerge` turns a Recipe
 * plus the opened input checkpoints into a MergePlan.
 *
 * Roles follow the paper (arXiv 2412.19512): `base` is the aligned model for task-vector methods; `models`
 * are the contributing models in order (for the flags form of `linear`: [aligned, tuned]). The reference model
 * — source of config.json, tokenizer files and the default output dtype — is `base` when present, else
 * `models[0]` (mergekit's rule).
 */
import type { OutDtype } from "../core/dtype.ts";
import type { ParamValue } from "./methods/types.ts";
import type { ScheduleValue } from "./schedule.ts";

/** One input model: where it is, its per-model parameters, and an optional display label. */
export interface RecipeInput {
  /** Path of the model (HF directory; other kinds of input may be added by their loaders). */
  path: string;
  /** Per-model parameters (e.g. weight, density): scalars, per-layer gradients or filter lists (schedule.ts). */
  params: Record<string, ScheduleValue>;
  /** Paper role for messages and the model card: "aligned", "tuned", or free text. */
  label?: string;
  /** PEFT LoRA adapter applied to this model before merging (mergekit's `model+lora` syntax). */
  lora?: string;
}

/** How to treat embedding matrices with more rows in one model (vocabulary growth). */
export const VOCAB_POLICIES = ["error", "tuned"] as const;
/** See Recipe.vocabPolicy. */
export type VocabPolicy = (typeof VOCAB_POLICIES)[number];

/**
 * The normalised merge description. Validate untrusted objects with `parseRecipe` (recipe-schema.ts, zod);
 * this module stays free of zod so the CLI starts fast.
 */
export interface Recipe {
  /** Merge method name, a key of METHODS (e.g. "linear", "task_arithmetic"). */
  method: string;
  /** Base model (the aligned model) for task-vector methods. */
  base?: RecipeInput;
  /** Contributing models, in order (at least one). */
  models: RecipeInput[];
  /** Method-level (global) parameters: scalars, gradients or filter lists (schedule.ts). */
  params: Record<string, ScheduleValue>;
  /** Output float dtype; default: the reference model's dtype per tensor. */
  outDtype?: OutDtype;
  /** Seed for random methods (DARE, DELLA). @default 0 */
  seed: number;
  /**
   * Vocabulary growth: "error" (default) refuses embeddings with different row counts; "tuned" merges the
   * shared rows, copies the extra rows and the tokenizer from the model that has them, and sets vocab_size.
   */
  vocabPolicy: VocabPolicy;
  /** The paper's λ (weight on the tuned model) when the recipe came from the flags form; provenance only. */
  lambda?: number;
}

/** The flags form of the core merge: `realign merge --aligned A --tuned T --lambda λ [--method …]`. */
export interface FlagsRecipeOptions {
  /** Aligned (safety-tuned) model directory. */
  aligned: string;
  /** Fine-tuned model directory. */
  tuned: string;
  /** Weight on the tuned model, 0 ≤ λ ≤ 1: 0 = aligned, 1 = tuned. */
  lambda: number;
  /** "linear" (default) or "task_arithmetic"; both give identical bytes. */
  method?: "linear" | "task_arithmetic";
  outDtype?: OutDtype;
  vocabPolicy?: VocabPolicy;
  seed?: number;
}

/**
 * Builds the Recipe of the paper's merge θ = (1−λ)·θ_aligned + λ·θ_tuned.
 * linear: models [aligned weight 1−λ, tuned weight λ], normalize false.
 * task_arithmetic: base aligned, models [tuned weight λ], lambda 1.
 */
export function recipeFromFlags(o: FlagsRecipeOptions): Recipe {
  const method = o.method ?? "linear";
  const aligned: RecipeInput = { path: o.aligned, params: {}, label: "aligned" };
  const common = { outDtype: o.outDtype, vocabPolicy: o.vocabPolicy ?? "error", seed: o.seed ?? 0, lambda: o.lambda } as const;
  return method === "linear"
      ? {
          method,
          models: [
            { ...aligned, params: { weight: 1 - o.lambda } },
            { path: o.tuned, params: { weight: o.lambda }, label: "tuned" },
          ],
          params: { normalize: false },
          ...common,
        }
      : {
          method,
          base: aligned,
          models: [{ path: o.tuned, params: { weight: o.lambda }, label: "tuned" }],
          params: { lambda: 1 },
          ...common,
        };
}

/** Every input in role order: base first (if any), then models. */
export function recipeInputs(recipe: Recipe): RecipeInput[] {
  return recipe.base === undefined ? [...recipe.models] : [recipe.base, ...recipe.models];
}

export type { ParamValue };

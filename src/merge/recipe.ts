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
import { z } from "zod";
import { OUT_DTYPES, type OutDtype } from "../core/dtype.ts";
import { ConfigError } from "../errors.ts";
import type { ParamValue } from "./methods/types.ts";
import { scheduleValueSchema } from "./schedule.ts";

/** A parameter as written in a recipe: a scalar, a per-layer gradient or a filter list (see schedule.ts). */
export const paramValueSchema = scheduleValueSchema;

/** One input model: where it is, its per-model parameters, and an optional display label. */
export const recipeInputSchema = z.object({
  /** Path of the model (HF directory; other kinds of input may be added by their loaders). */
  path: z.string().min(1),
  /** Per-model parameters (e.g. weight, density). */
  params: z.record(z.string(), paramValueSchema).default({}),
  /** Paper role for messages and the model card: "aligned", "tuned", or free text. */
  label: z.string().optional(),
  /** PEFT LoRA adapter applied to this model before merging (mergekit's `model+lora` syntax). */
  lora: z.string().min(1).optional(),
});

/** How to treat embedding matrices with more rows in one model (vocabulary growth). */
export const VOCAB_POLICIES = ["error", "tuned"] as const;
export type VocabPolicy = (typeof VOCAB_POLICIES)[number];

export const recipeSchema = z.object({
  /** Merge method name, a key of METHODS (e.g. "linear", "task_arithmetic"). */
  method: z.string().min(1),
  /** Base model (the aligned model) for task-vector methods. */
  base: recipeInputSchema.optional(),
  /** Contributing models, in order. */
  models: z.array(recipeInputSchema).min(1),
  /** Method-level (global) parameters. */
  params: z.record(z.string(), paramValueSchema).default({}),
  /** Output float dtype; default: the reference model's dtype per tensor. */
  outDtype: z.enum(OUT_DTYPES).optional(),
  /** Seed for random methods (DARE, DELLA). @default 0 */
  seed: z.number().int().default(0),
  /**
   * Vocabulary growth: "error" (default) refuses embeddings with different row counts; "tuned" merges the
   * shared rows, copies the extra rows and the tokenizer from the model that has them, and sets vocab_size.
   */
  vocabPolicy: z.enum(VOCAB_POLICIES).default("error"),
  /** The paper's λ (weight on the tuned model) when the recipe came from the flags form; provenance only. */
  lambda: z.number().optional(),
});

export type RecipeInput = z.output<typeof recipeInputSchema>;
export type Recipe = z.output<typeof recipeSchema>;
export type RecipeInit = z.input<typeof recipeSchema>;

/**
 * Validates an untrusted recipe object.
 * @throws ConfigError `recipe.invalid` listing every problem as `path: message`.
 */
export function parseRecipe(input: unknown, where = "recipe"): Recipe {
  const r = recipeSchema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
  throw new ConfigError("recipe.invalid", `invalid ${where}: ${issues.join("; ")}`, { details: { issues } });
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
  const aligned = { path: o.aligned, params: {}, label: "aligned" };
  const init: RecipeInit =
    method === "linear"
      ? {
          method,
          models: [
            { ...aligned, params: { weight: 1 - o.lambda } },
            { path: o.tuned, params: { weight: o.lambda }, label: "tuned" },
          ],
          params: { normalize: false },
        }
      : {
          method,
          base: aligned,
          models: [{ path: o.tuned, params: { weight: o.lambda }, label: "tuned" }],
          params: { lambda: 1 },
        };
  return parseRecipe({ ...init, outDtype: o.outDtype, vocabPolicy: o.vocabPolicy ?? "error", seed: o.seed ?? 0, lambda: o.lambda });
}

/** Every input in role order: base first (if any), then models. */
export function recipeInputs(recipe: Recipe): RecipeInput[] {
  return recipe.base === undefined ? [...recipe.models] : [recipe.base, ...recipe.models];
}

export type { ParamValue };

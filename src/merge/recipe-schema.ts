/**
 * zod schema of a Recipe (recipe.ts): validation of untrusted recipe objects (mergekit YAML after
 * normalisation, JSON). Kept apart from recipe.ts so commands that do not parse recipes never load zod.
 */
import { z } from "zod";
import { OUT_DTYPES } from "../core/dtype.ts";
import { ConfigError } from "../errors.ts";
import { VOCAB_POLICIES, type Recipe } from "./recipe.ts";
import { scheduleValueSchema } from "./schedule-schema.ts";

/** A parameter as written in a recipe: a scalar, a per-layer gradient or a filter list (schedule.ts). */
export const paramValueSchema = scheduleValueSchema;

/** Schema of RecipeInput. */
export const recipeInputSchema = z.object({
  path: z.string().min(1),
  params: z.record(z.string(), paramValueSchema).default({}),
  label: z.string().optional(),
  lora: z.string().min(1).optional(),
});

/** Schema of Recipe (fields documented on the Recipe interface). */
export const recipeSchema = z.object({
  method: z.string().min(1),
  base: recipeInputSchema.optional(),
  models: z.array(recipeInputSchema).min(1),
  params: z.record(z.string(), paramValueSchema).default({}),
  outDtype: z.enum(OUT_DTYPES).optional(),
  seed: z.number().int().default(0),
  vocabPolicy: z.enum(VOCAB_POLICIES).default("error"),
  lambda: z.number().optional(),
});

/** What a caller may pass to parseRecipe (defaults filled in). */
export type RecipeInit = z.input<typeof recipeSchema>;

// The schema's output must be exactly the hand-written Recipe type.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _recipeMatches: Same<z.output<typeof recipeSchema>, Recipe> = true;
void _recipeMatches;

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

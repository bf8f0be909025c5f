/**
 * The LoRA fast path of the paper's merge: `--tuned` may be a PEFT LoRA adapter directory (recognised by
 * its adapter_config.json). The adapter is applied to the aligned model on the fly (lora-tuned.ts), so
 * θ = (1−λ)·θ_aligned + λ·(θ_aligned + s·B·A) = θ_aligned + λ·s·B·A for targeted weights, computed by the
 * normal linear / task_arithmetic kernels: λ = 0 gives the aligned bytes, untargeted tensors come out as in
 * the aligned model, `modules_to_save` tensors are interpolated like any tuned tensor.
 */
import type { OnEvent } from "../core/events.ts";
import type { OutDtype } from "../core/dtype.ts";
import type { Checkpoint } from "../core/tensor.ts";
import { openCheckpoint } from "../formats/hf-dir/checkpoint.ts";
import { isAdapterDir } from "../formats/peft/adapter.ts";
import { openLoraTuned } from "./lora-tuned.ts";
import { recipeFromFlags, type Recipe, type RecipeInput } from "./recipe.ts";
import { mergeRecipe, type MergeSummary, type RunMergeOptions } from "./run.ts";

/** The aligned input of a recipe: its base, else the model labelled "aligned", else the first model. */
function alignedInputOf(recipe: Recipe): RecipeInput {
  return recipe.base ?? recipe.models.find((m) => m.label === "aligned") ?? recipe.models[0]!;
}

/**
 * An `openInput` for `mergeRecipe` that opens HF directories as usual and LoRA adapter directories as
 * "aligned + adapter" (the aligned model is the recipe's aligned input; it gets its own file handles, closed
 * with the tuned checkpoint). Adapter warnings (fan_in_fan_out override, base name mismatch, …) go to `onEvent`.
 * @throws FormatError / IncompatibleModelsError `adapter.*` from the adapter reader and mapping.
 */
export function loraAwareOpener(recipe: Recipe, onEvent?: OnEvent): (input: RecipeInput) => Promise<Checkpoint> {
  const alignedPath = alignedInputOf(recipe).path;
  return async (input) => {
    if (!(await isAdapterDir(input.path))) return openCheckpoint(input.path);
    const aligned = await openCheckpoint(alignedPath);
    try {
      const tuned = await openLoraTuned(input.path, aligned);
      for (const w of tuned.warnings) onEvent?.({ kind: "warning", message: w });
      return {
        ...tuned,
        close: async () => {
          await tuned.close();
          await aligned.close();
        },
      };
    } catch (e) {
      await aligned.close();
      throw e;
    }
  };
}

export interface MergeLoraOptions extends RunMergeOptions {
  /** Aligned model directory (the model the adapter was trained from). */
  readonly aligned: string;
  /** PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors). */
  readonly adapter: string;
  /** Weight on the tuned model, 0 ≤ λ ≤ 1 (1 = peft's merge_and_unload). */
  readonly lambda: number;
  readonly method?: "linear" | "task_arithmetic";
  readonly outDtype?: OutDtype;
}

/**
 * θ_out = θ_aligned + λ·s·(B·A) (targeted weights) into `out`, streaming, written atomically. The library
 * call behind `realign merge --aligned A --tuned <adapter dir> --lambda λ --out D`.
 * @throws UsageError / FormatError / IncompatibleModelsError / OutputExistsError / CancelledError as
 *   `mergeRecipe` and the adapter reader do; nothing is left at `out` on error.
 */
export async function mergeLora(o: MergeLoraOptions): Promise<MergeSummary> {
  const recipe = recipeFromFlags({ aligned: o.aligned, tuned: o.adapter, lambda: o.lambda, method: o.method, outDtype: o.outDtype });
  return mergeRecipe(recipe, { ...o, openInput: loraAwareOpener(recipe, o.onEvent) });
}

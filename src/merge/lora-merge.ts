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
import { UsageError } from "../errors.ts";
import { isAdapterDir, mapAdapter, openAdapter, type PeftAdapter } from "../formats/peft/adapter.ts";
import { SAFE_LORA_DEFAULT_THRESHOLD, safeLoraProjection, type SafeLoraResult, type SafeLoraSelect } from "./lora-safe.ts";
import { loraTunedCheckpoint, openLoraTuned, type AdapterOverrides } from "./lora-tuned.ts";
import { recipeFromFlags, type Recipe, type RecipeInput, type VocabPolicy } from "./recipe.ts";
import { mergeRecipe, type MergeSummary, type RunMergeOptions } from "./run.ts";

/** The aligned input of a recipe: its base, else the model labelled "aligned", else the first model. */
function alignedInputOf(recipe: Recipe): RecipeInput {
  return recipe.base ?? recipe.models.find((m) => m.label === "aligned") ?? recipe.models[0]!;
}

/**
 * An `openInput` for `mergeRecipe` that opens HF directories as usual, LoRA adapter directories as
 * "aligned + adapter" (the aligned model is the recipe's aligned input; it gets its own file handles, closed
 * with the tuned checkpoint), and inputs carrying a `lora` field (mergekit's `model+lora` syntax, when the
 * recipe has one) as "that model + adapter". Adapter warnings (fan_in_fan_out override, base name mismatch,
 * …) go to `onEvent`.
 * @throws FormatError / IncompatibleModelsError `adapter.*` from the adapter reader and mapping.
 */
export function loraAwareOpener(recipe: Recipe, onEvent?: OnEvent, options: LoraOpenOptions = {}): (input: RecipeInput) => Promise<Checkpoint> {
  const alignedInput = alignedInputOf(recipe);
  const alignedPath = alignedInput.path;
  return async (input) => {
    // mergekit's `model+lora`: the adapter applied to that model (which must be the adapter's base)
    const plusLora = (input as { lora?: unknown }).lora;
    if (typeof plusLora === "string") return openWrapped(input.path, plusLora, onEvent);
    if (!(await isAdapterDir(input.path))) {
      if (options.safeLora !== undefined && input !== alignedInput) {
        throw new UsageError("safe_lora.not_adapter", `--safe-lora needs a LoRA adapter as --tuned: got ${input.path}, which has no adapter_config.json`, {
          hint: "Safe LoRA projects LoRA updates; for a full fine-tune use the plain merge",
        });
      }
      return openCheckpoint(input.path);
    }
    const aligned = await openCheckpoint(alignedPath);
    let adapter: PeftAdapter | undefined;
    try {
      adapter = await openAdapter(input.path);
      const mapping = mapAdapter(adapter.config, adapter.tensors, aligned, { adapterPath: adapter.dir });
      let overrides: AdapterOverrides | undefined;
      if (options.safeLora !== undefined) {
        const unaligned = await openCheckpoint(options.safeLora.unaligned);
        try {
          const res = await safeLoraProjection(aligned, unaligned, adapter, mapping, options.safeLora.select);
          options.safeLora.onResult?.(res);
          for (const w of res.warnings) onEvent?.({ kind: "warning", message: w });
          onEvent?.({ kind: "warning", message: safeLoraSummary(res) });
          overrides = res.overrides;
        } finally {
          await unaligned.close();
        }
      }
      const tuned = loraTunedCheckpoint(aligned, adapter, { mapping, overrides });
      for (const w of tuned.warnings) onEvent?.({ kind: "warning", message: w });
      return {
        ...tuned,
        close: async () => {
          await tuned.close();
          await aligned.close();
        },
      };
    } catch (e) {
      await adapter?.close();
      await aligned.close();
      throw e;
    }
  };
}

/** `model` opened as an HF checkpoint with the adapter in `adapterDir` applied on top (both closed together). */
async function openWrapped(model: string, adapterDir: string, onEvent: OnEvent | undefined): Promise<Checkpoint> {
  const base = await openCheckpoint(model);
  try {
    const tuned = await openLoraTuned(adapterDir, base);
    for (const w of tuned.warnings) onEvent?.({ kind: "warning", message: w });
    return {
      ...tuned,
      close: async () => {
        await tuned.close();
        await base.close();
      },
    };
  } catch (e) {
    await base.close();
    throw e;
  }
}

/** Options of the adapter path. */
export interface LoraOpenOptions {
  /** Safe LoRA projection before merging (needs the unaligned base model). */
  readonly safeLora?: {
    /** The model the aligned model was aligned from (HF directory). */
    readonly unaligned: string;
    readonly select: SafeLoraSelect;
    /** Receives the per-layer cosines and decisions. */
    readonly onResult?: (r: SafeLoraResult) => void;
  };
}

/** One line: how many layers Safe LoRA projected, at which threshold, and Pdst. */
export function safeLoraSummary(r: SafeLoraResult): string {
  const n = r.layers.filter((l) => l.projected).length;
  const thr = Number.isFinite(r.threshold) ? r.threshold.toFixed(5).replace(/0+$/, "").replace(/\.$/, "") : "none";
  return `Safe LoRA: projected ${n} of ${r.layers.length} LoRA layers onto the alignment subspace (cos ≤ ${thr}); Pdst ${r.pdst.toFixed(3)}`;
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
  /** "tuned" accepts a `modules_to_save` embedding with more rows (resized vocabulary). @default "error" */
  readonly vocabPolicy?: VocabPolicy;
  /** Safe LoRA projection first (see lora-safe.ts). */
  readonly safeLora?: LoraOpenOptions["safeLora"];
}

/**
 * θ_out = θ_aligned + λ·s·(B·A) (targeted weights) into `out`, streaming, written atomically. The library
 * call behind `realign merge --aligned A --tuned <adapter dir> --lambda λ --out D`.
 * @throws UsageError / FormatError / IncompatibleModelsError / OutputExistsError / CancelledError as
 *   `mergeRecipe` and the adapter reader do; nothing is left at `out` on error.
 */
export async function mergeLora(o: MergeLoraOptions): Promise<MergeSummary> {
  const recipe = recipeFromFlags({ aligned: o.aligned, tuned: o.adapter, lambda: o.lambda, method: o.method, outDtype: o.outDtype, vocabPolicy: o.vocabPolicy });
  return mergeRecipe(recipe, { ...o, openInput: loraAwareOpener(recipe, o.onEvent, { safeLora: o.safeLora }) });
}

/**
 * Safe LoRA options from CLI flags: `--safe-lora <unaligned dir>` with `--safe-lora-threshold <cos>` (default
 * 0.5) or `--safe-lora-layers <n>`; undefined when `--safe-lora` is absent.
 * @throws UsageError `safe_lora.flags` (threshold/layers without --safe-lora, both given, or not numbers).
 */
export function safeLoraFromFlags(flags: {
  safeLora?: string;
  safeLoraThreshold?: string;
  safeLoraLayers?: string;
}): LoraOpenOptions["safeLora"] {
  const { safeLora, safeLoraThreshold: thr, safeLoraLayers: layers } = flags;
  if (safeLora === undefined) {
    if (thr !== undefined || layers !== undefined) {
      throw new UsageError("safe_lora.flags", `--safe-lora-${thr !== undefined ? "threshold" : "layers"} given without --safe-lora <unaligned dir>`, {
        hint: "Safe LoRA needs the unaligned base model: add --safe-lora <dir>",
      });
    }
    return undefined;
  }
  if (thr !== undefined && layers !== undefined) {
    throw new UsageError("safe_lora.flags", "--safe-lora-threshold and --safe-lora-layers both given, expected one", {
      hint: "choose a cosine threshold or a number of layers",
    });
  }
  if (layers !== undefined) {
    const n = Number(layers);
    if (!Number.isInteger(n) || n < 0) throw new UsageError("safe_lora.flags", `--safe-lora-layers: got ${layers}, expected a whole number ≥ 0`);
    return { unaligned: safeLora, select: { mode: "number", count: n } };
  }
  const t = thr === undefined ? SAFE_LORA_DEFAULT_THRESHOLD : Number(thr);
  if (!Number.isFinite(t) || t < -1 || t > 1) throw new UsageError("safe_lora.flags", `--safe-lora-threshold: got ${thr}, expected a cosine from -1 to 1`);
  return { unaligned: safeLora, select: { mode: "threshold", threshold: t } };
}

/**
 * `realign merge --config merge.yml`: reads a mergekit YAML, opens the inputs (metadata only), plans, runs
 * every check that needs no tensor data (parameters per tensor, slice coverage), then either explains the
 * plan (`explain: true`, nothing written) or runs it. The library call behind the CLI's config form.
 */
import { readFile, stat } from "node:fs/promises";
import { resolve } from "node:path";
import type { OutDtype } from "../core/dtype.ts";
import type { Checkpoint } from "../core/tensor.ts";
import { ConfigError, InputError, UsageError, fsError } from "../errors.ts";
import { checkPlanParams, explainPlan, type Explanation } from "./explain.ts";
import { loraAwareOpener } from "./lora-merge.ts";
import { withGgufInputs } from "../formats/gguf/checkpoint.ts";
import { checkLayerRange, parseMergekitYaml } from "./mergekit-yaml.ts";
import { planMerge } from "./plan.ts";
import { recipeInputs, type RecipeInput } from "./recipe.ts";
import { runMerge, type MergeSummary, type RunMergeOptions } from "./run.ts";

export interface MergeConfigOptions extends Omit<RunMergeOptions, "out"> {
  /** Output directory; required unless `explain`. */
  readonly out?: string;
  /** Seed for random methods (DARE, DELLA). @default 0 */
  readonly seed?: number;
  /** Overrides the config's out_dtype/dtype. */
  readonly outDtype?: OutDtype;
  /** Only plan and explain; read no tensor data, write nothing. */
  readonly explain?: boolean;
  /** Opens one input. @default withGgufInputs(loraAwareOpener(recipe)): HF directories, `.gguf` files, `model+lora`, adapter directories */
  readonly openInput?: (input: RecipeInput) => Promise<Checkpoint>;
}

export type MergeConfigResult = { readonly kind: "explained"; readonly explanation: Explanation } | { readonly kind: "merged"; readonly summary: MergeSummary };

/**
 * @throws ConfigError (config problems, all listed at once), InputError from opening (adapters: `adapter.*`)
 *   inputs, IncompatibleModelsError from planning, and whatever runMerge throws.
 */
export async function mergeConfig(configPath: string, options: MergeConfigOptions): Promise<MergeConfigResult> {
  let text: string;
  try {
    text = await readFile(configPath, "utf8");
  } catch (e) {
    throw fsError(e, configPath, "reading merge config");
  }
  const parsed = parseMergekitYaml(text, { file: configPath, seed: options.seed });
  let recipe = parsed.recipe;
  if (options.outDtype !== undefined) recipe = { ...recipe, outDtype: options.outDtype };
  if (options.openInput === undefined) await checkSourcesExist(parsed.sources, configPath);
  // HF directories open as usual; `model+lora` and adapter directories open as "model + adapter" (lora-merge.ts)
  const open = options.openInput ?? withGgufInputs(loraAwareOpener(recipe, options.onEvent)); // .gguf inputs: formats/gguf
  const opened: Checkpoint[] = [];
  try {
    for (const input of recipeInputs(recipe)) opened.push(await open(input));
    const planned = planMerge(recipe, opened);
    // provenance, as mergekit: the config itself is written beside the weights as mergekit_config.yml
    const plan = { ...planned, carry: [...planned.carry.filter((c) => c.name !== "mergekit_config.yml"), { from: resolve(configPath), name: "mergekit_config.yml" }] };
    const firstMerged = plan.tensors.find((t) => t.kind === "merge");
    checkLayerRange(parsed.layerRange, firstMerged?.ctx.layerCount, configPath);
    checkPlanParams(plan);
    if (options.explain === true) return { kind: "explained", explanation: explainPlan(plan, parsed.notes) };
    if (options.out === undefined) throw new UsageError("merge.missing_out", "missing output directory (--out)", { hint: "give --out <dir>, or --explain to only print the plan" });
    for (const n of parsed.notes) options.onEvent?.({ kind: "warning", message: n });
    const summary = await runMerge(plan, opened, { ...options, out: options.out });
    return { kind: "merged", summary };
  } finally {
    await Promise.all(opened.map((c) => c.close()));
  }
}

/**
 * Every model path (and `+lora` path) of the config must exist; paths resolve against the current directory,
 * as in mergekit (docs/yaml.md). Checked before anything is opened so the message can name the config key.
 * @throws InputError `config.model_not_found` naming the config file, the key (`models[0].model`, `base_model`)
 *   and the resolved path.
 */
async function checkSourcesExist(sources: readonly { key: string; path: string; lora: string | undefined }[], configPath: string): Promise<void> {
  for (const src of sources) {
    for (const [key, path] of [[src.key, src.path], [`${src.key} (+lora)`, src.lora]] as const) {
      if (path === undefined) continue;
      try {
        await stat(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT" && (e as NodeJS.ErrnoException).code !== "ENOTDIR") throw fsError(e, path, "opening model");
        const abs = resolve(path);
        throw new InputError("config.model_not_found", `model path in ${configPath} ${key}: got ${path}${abs === path ? "" : ` (${abs})`}, which does not exist`, {
          details: { config: configPath, key, path, resolved: abs },
          hint: `paths in a merge config resolve against the current directory (${process.cwd()}), as in mergekit, not against the config's directory; run realign from the directory they are relative to, or use absolute paths`,
        });
      }
    }
  }
}

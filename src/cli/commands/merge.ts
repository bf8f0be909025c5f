/**
 * `realign merge`: θ = (1−λ)·θ_aligned + λ·θ_tuned over two Hugging Face checkpoints (flags form).
 * Declares flags, normalises them into a Recipe, and lazily imports the merge library.
 */
import type { Command } from "commander";
import { UsageError } from "../../errors.ts";
import { badOutDtype, existingInput } from "../model-flags.ts";
import type { MergeSummary } from "../../merge/run.ts";
import type { SinkFactory } from "../../merge/sink.ts";

/** Raw commander options of `realign merge` (validated in runMergeCommand). */
export interface MergeFlags {
  aligned?: string;
  tuned?: string;
  lambda?: string;
  out?: string;
  method: string;
  outDtype?: string;
  maxShardSize: string;
  vocabPolicy: string;
  outFormat: string;
  ggufType?: string;
  tokenizerPre?: string;
  force?: boolean;
  json?: boolean;
  /** false with --no-fsync. */
  fsync: boolean;
  /** mergekit YAML config (issue 3): replaces --aligned/--tuned/--lambda/--method. */
  config?: string;
  explain?: boolean;
  seed?: string;
  /** LoRA path: Safe LoRA flags (see merge/lora-merge.ts safeLoraFromFlags). */
  safeLora?: string;
  safeLoraThreshold?: string;
  safeLoraLayers?: string;
}

/** Human-readable byte count (decimal units, as shard sizes are given). */
export function formatBytes(n: number): string {
  if (n < 1e3) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n / 1e3;
  let i = 0;
  while (v >= 1e3 && i < units.length - 1) {
    v /= 1e3;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** The summary a person reads after a merge. */
export function formatMergeSummary(s: MergeSummary): string {
  const weights = s.files.filter((f) => f.endsWith(".safetensors") || f.endsWith(".gguf"));
  const lines = [
    `merged ${s.inputs.map((i) => `${i.label} ${i.path}`).join(" + ")}`,
    `  ${(s.derivedInputs ?? []).map((d) => `${d}, then `).join("")}method ${s.method}${s.lambda === undefined ? "" : `, λ = ${s.lambda}`}, dtype ${s.outDtype ?? "mixed"}`,
    `  ${s.tensorCount} tensors, ${formatBytes(s.totalBytes)} in ${weights.length} weight file${weights.length === 1 ? "" : "s"}`,
    `  wrote ${s.out}`,
  ];
  const reports = s.tensorReports ?? [];
  const gated = reports.filter((r) => r.values.gated === true).length;
  if (reports.length > 0) lines.splice(lines.length - 1, 0, `  ${reports.length} tensors measured${reports.some((r) => "gated" in r.values) ? `, ${gated} gated toward the aligned model` : ""} (per-tensor table in README.md)`);
  return lines.join("\n");
}

/** Shell-quotes argv for the model card's command line. */
export function commandLineOf(argv: readonly string[]): string {
  return ["realign", ...argv].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === "") {
    throw new UsageError("cli.missing_flag", `missing required flag ${flag}`, {
      hint: "usage: realign merge --aligned <dir> --tuned <dir> --lambda <0..1> --out <dir>",
    });
  }
  return value;
}

/** Parses --seed: a non-negative safe integer (default 0). */
function parseSeed(text: string | undefined): number {
  if (text === undefined) return 0;
  const n = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) {
    throw new UsageError("cli.bad_seed", `--seed: got ${text}, expected an integer from 0 to 4294967295`, {
      hint: "the seed fixes the random drops of dare_* and della*; the same seed gives the same bytes",
    });
  }
  return n;
}

/** --out-format / --gguf-type / --tokenizer-pre → mergeRecipe/mergeConfig options (GGUF sink, one-file mode). */
async function ggufOutputOptions(flags: MergeFlags): Promise<{ sink?: SinkFactory; outputKind?: "directory" | "file" }> {
  if (flags.outFormat !== "safetensors" && flags.outFormat !== "gguf") {
    throw new UsageError("cli.bad_out_format", `--out-format: got ${flags.outFormat}, expected safetensors or gguf`);
  }
  if ((flags.ggufType !== undefined || flags.tokenizerPre !== undefined) && flags.outFormat !== "gguf") {
    throw new UsageError("cli.bad_flag", `${flags.ggufType !== undefined ? "--gguf-type" : "--tokenizer-pre"} needs --out-format gguf`);
  }
  const { ggufMergeOptions } = await import("../../convert/merge-io.ts");
  return ggufMergeOptions({ outFormat: flags.outFormat, out: flags.out, ggufType: flags.ggufType, tokenizerPre: flags.tokenizerPre });
}

/** `realign merge --config merge.yml [--explain] [--seed N] --out DIR` (mergekit YAML; see docs/yaml.md). */
async function runConfigMergeCommand(flags: MergeFlags, config: string): Promise<void> {
  for (const [flag, v] of [["--aligned", flags.aligned], ["--tuned", flags.tuned], ["--lambda", flags.lambda], ["--safe-lora", flags.safeLora]] as const) {
    if (v !== undefined) throw new UsageError("cli.conflicting_flags", `${flag} cannot be combined with --config`, { hint: "put the models and parameters in the config file" });
  }
  if (flags.method !== "linear") throw new UsageError("cli.conflicting_flags", "--method cannot be combined with --config", { hint: "set merge_method in the config file" });
  if (flags.vocabPolicy !== "error") {
    throw new UsageError("cli.conflicting_flags", "--vocab-policy cannot be combined with --config", { hint: "set tokenizer_source: <the model that added tokens> in the config file" });
  }
  const seed = parseSeed(flags.seed);
  if (flags.explain !== true && (flags.out === undefined || flags.out === "")) {
    throw new UsageError("cli.missing_flag", "missing required flag --out", { hint: "usage: realign merge --config merge.yml --out <dir>  (or --explain to print the plan)" });
  }
  const { parseOutDtype } = await import("../../core/dtype.ts");
  const { parseByteSize } = await import("../../core/size.ts");
  const outDtype = flags.outDtype === undefined ? undefined : parseOutDtype(flags.outDtype);
  if (flags.outDtype !== undefined && outDtype === undefined) throw badOutDtype(flags.outDtype);
  const maxShardBytes = parseByteSize(flags.maxShardSize);
  if (maxShardBytes === undefined) throw new UsageError("cli.bad_size", `--max-shard-size: got ${flags.maxShardSize}, expected a size such as 5GB, 500MB or a number of bytes`);
  if (flags.explain !== true) await startFastPathEarly();
  const ggufOutput = await ggufOutputOptions(flags);
  const { mergeConfig } = await import("../../merge/merge-config.ts");
  const { formatExplanation } = await import("../../merge/explain.ts");
  const { createProgress } = await import("../render.ts");
  const { cliSignal } = await import("../signal.ts");
  const progress = await createProgress({ quiet: flags.json === true || flags.explain === true });
  let result;
  try {
    result = await mergeConfig(config, {
      out: flags.out,
      seed,
      outDtype,
      explain: flags.explain === true,
      force: flags.force === true,
      maxShardBytes,
      fsync: flags.fsync,
      signal: cliSignal,
      onEvent: progress.onEvent,
      commandLine: commandLineOf(process.argv.slice(2)),
      ...ggufOutput,
    });
  } finally {
    progress.stop();
  }
  if (result.kind === "explained") {
    process.stdout.write(flags.json ? JSON.stringify(result.explanation) + "\n" : formatExplanation(result.explanation));
    return;
  }
  process.stdout.write((flags.json ? JSON.stringify(result.summary) : formatMergeSummary(result.summary)) + "\n");
}

let poolModule: Promise<typeof import("../../merge/workers/pool.ts")> | undefined;

/**
 * perf: once the flags are valid, start the merge's kernel pool (fast-path.ts prestartFastPath) so that
 * its worker threads boot while the merge modules load and the inputs' headers are read (about 50 ms off
 * the time to the first output byte of a big merge). Not with --explain (no merge).
 */
async function startFastPathEarly(): Promise<void> {
  poolModule = import("../../merge/workers/pool.ts");
  try {
    (await import("../../merge/workers/fast-path.ts")).prestartFastPath();
  } catch {
    // only a head start: the merge starts its own pool (or runs the generic path) as it would without it
  }
}

/** Validates flags and runs the merge. */
export async function runMergeCommand(flags: MergeFlags): Promise<void> {
  if (flags.config !== undefined) return runConfigMergeCommand(flags, flags.config);
  if (flags.explain === true) throw new UsageError("cli.conflicting_flags", "--explain needs --config", { hint: "write the merge as a mergekit YAML (docs/yaml.md)" });
  const { parseOutDtype } = await import("../../core/dtype.ts");
  const { parseByteSize } = await import("../../core/size.ts");
  const aligned = existingInput("--aligned", required(flags.aligned, "--aligned"));
  const tuned = existingInput("--tuned", required(flags.tuned, "--tuned"));
  const lambdaText = required(flags.lambda, "--lambda");
  const out = required(flags.out, "--out");
  const lambda = Number(lambdaText);
  if (!/^\s*(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?\s*$/i.test(lambdaText) || !Number.isFinite(lambda) || lambda < 0 || lambda > 1) {
    throw new UsageError("cli.bad_lambda", `--lambda: got ${lambdaText}, expected a number from 0 to 1`, {
      hint: "λ is the weight on the tuned model: 0 = aligned, 1 = tuned; the paper found λ ≈ 0.5–0.6 a good trade-off; sweep λ to choose",
    });
  }
  if (flags.method !== "linear" && flags.method !== "task_arithmetic") {
    throw new UsageError("cli.bad_method", `--method: got ${flags.method}, expected linear or task_arithmetic`, {
      hint: "both give identical bytes for one tuned model; other methods take a recipe file",
    });
  }
  let outDtype;
  if (flags.outDtype !== undefined) {
    outDtype = parseOutDtype(flags.outDtype);
    if (outDtype === undefined) {
      throw badOutDtype(flags.outDtype);
    }
  }
  const maxShardBytes = parseByteSize(flags.maxShardSize);
  if (maxShardBytes === undefined) {
    throw new UsageError("cli.bad_size", `--max-shard-size: got ${flags.maxShardSize}, expected a size such as 5GB, 500MB or a number of bytes`);
  }
  if (flags.vocabPolicy !== "error" && flags.vocabPolicy !== "tuned") {
    throw new UsageError("cli.bad_vocab_policy", `--vocab-policy: got ${flags.vocabPolicy}, expected error or tuned`);
  }
  await startFastPathEarly();
  // perf: the GGUF reader/writer and the LoRA reader (with zod) load only when a flag or an input needs them
  // (about 75 ms of start-up otherwise); the decisions are withGgufInputs' and loraAwareOpener's own tests
  const { isAdapterDir } = await import("../../formats/peft/adapter-files.ts");
  const gguf = flags.outFormat !== "safetensors" || flags.ggufType !== undefined || flags.tokenizerPre !== undefined || [aligned, tuned].some((p) => p.toLowerCase().endsWith(".gguf"));
  const lora = flags.safeLora !== undefined || flags.safeLoraThreshold !== undefined || flags.safeLoraLayers !== undefined || (await isAdapterDir(aligned)) || (await isAdapterDir(tuned));
  const ggufOutput = gguf ? await ggufOutputOptions(flags) : {};
  const withGgufInputs = gguf ? (await import("../../convert/merge-io.ts")).withGgufInputs : undefined;
  const { recipeFromFlags } = await import("../../merge/recipe.ts");
  const { mergeRecipe } = await import("../../merge/run.ts");
  const loraMerge = lora ? await import("../../merge/lora-merge.ts") : undefined; // --tuned may be a LoRA adapter dir
  const safeLora = loraMerge?.safeLoraFromFlags(flags);
  const { createProgress } = await import("../render.ts");
  const { cliSignal } = await import("../signal.ts");
  const recipe = recipeFromFlags({ aligned, tuned, lambda, method: flags.method, outDtype, vocabPolicy: flags.vocabPolicy, seed: parseSeed(flags.seed) });
  const progress = await createProgress({ quiet: flags.json === true });
  const loraOpener = loraMerge?.loraAwareOpener(recipe, progress.onEvent, { safeLora });
  let summary: MergeSummary;
  try {
    summary = await mergeRecipe(recipe, {
      out,
      force: flags.force === true,
      maxShardBytes,
      fsync: flags.fsync,
      signal: cliSignal,
      onEvent: progress.onEvent,
      // .gguf inputs through the GGUF reader; LoRA adapter dirs and HF dirs through the LoRA-aware opener
      // (neither needed: mergeRecipe's default opener, openCheckpoint, which is what both fall back to)
      openInput: withGgufInputs === undefined ? loraOpener : withGgufInputs(loraOpener),
      commandLine: commandLineOf(process.argv.slice(2)),
      ...ggufOutput,
    });
  } finally {
    progress.stop();
  }
  process.stdout.write((flags.json ? JSON.stringify(summary) : formatMergeSummary(summary)) + "\n");
}

/** Declares `realign merge` and its flags. */
export function register(program: Command): void {
  program
    .command("merge")
    .description("merge a fine-tuned model with its aligned model: θ = (1−λ)·θ_aligned + λ·θ_tuned")
    .option("--aligned <dir>", "safety-aligned model (Hugging Face directory with safetensors)")
    .option("--tuned <dir>", "fine-tuned model, tuned from the aligned one (or a PEFT LoRA adapter dir trained from it)")
    .option("--lambda <x>", "weight on the tuned model, 0..1 (0 = aligned, 1 = tuned)")
    .option("--out <dir>", "output directory (written atomically)")
    .option("--method <name>", "linear | task_arithmetic (identical bytes for one tuned model)", "linear")
    .option("--out-dtype <dtype>", "bf16 | f16 | f32 (default: the aligned model's)")
    .option("--max-shard-size <size>", "largest output shard, e.g. 5GB, 500MB or bytes", "5GB")
    .option("--vocab-policy <policy>", "error | tuned: what to do when the tuned model added tokens", "error")
    .option("--out-format <format>", "safetensors | gguf (--out x.gguf: one file; else <out>/model.gguf + config, tokenizer, card). Inputs may be .gguf files", "safetensors")
    .option("--gguf-type <type>", "with --out-format gguf: f32 | f16 | bf16 | q8_0 (default: the merge's dtype)")
    .option("--tokenizer-pre <name>", "with --out-format gguf: llama.cpp pre-tokenizer name, if realign does not recognise the tokenizer's")
    .option("--force", "replace --out if it exists")
    .option("--no-fsync", "do not wait for the weights to reach the disk before renaming the output into place (a power loss may then leave a truncated output)")
    .option("--json", "print a machine-readable summary")
    .option("--config <file>", "mergekit YAML config (any method: ties, dare_ties, slerp, model_stock, …; see docs/yaml.md)")
    .option("--explain", "with --config: print each tensor's method and resolved parameters, read no weights, write nothing")
    .option("--seed <n>", "seed for random methods (dare_*, della*); recorded in the model card and metadata", "0")
    .option("--safe-lora <unaligned dir>", "LoRA --tuned only: Safe LoRA projection first, using the model the aligned one was aligned from")
    .option("--safe-lora-threshold <cos>", "Safe LoRA: project layers with cos ≤ this (default 0.5)")
    .option("--safe-lora-layers <n>", "Safe LoRA: project the n layers with the lowest cos instead of a threshold")
    .addHelpText(
      "after",
      "\nExamples:\n  realign merge --aligned examples/organism/aligned --tuned examples/organism/finetuned --lambda 0.5 --out merged\n  realign merge --config examples/recipes/ties.yml --explain\n  realign merge --config examples/recipes/dare_ties.yml --seed 1 --out merged-dare\n",
    )
    .action(async (flags: MergeFlags) => {
      try {
        await runMergeCommand(flags);
      } finally {
        // a kernel pool started ahead of the merge (startFastPathEarly) that the merge did not take
        if (poolModule !== undefined) await (await poolModule).KernelPool.discardPrestarted();
      }
    });
}

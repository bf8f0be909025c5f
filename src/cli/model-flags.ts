/**
 * Flags shared by the commands that run a model in-process (`generate`, `serve`, `eval --model`): which
 * model, how to load it, and how to decode. Declared once here so their spelling and help text agree.
 */
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { InputError, UsageError } from "../errors.ts";
import type { OpenedModel } from "../eval/model-source.ts";

export interface ModelFlags {
  model?: string;
  aligned?: string;
  threads?: string;
  parallel?: string;
  contextSize?: string;
  convertType?: string;
}

/** Adds --model, --aligned, --threads, --parallel, --context-size, --convert-type. */
export function addModelFlags(cmd: Command): Command {
  return cmd
    .option("--model <path>", "a .gguf file, a Hugging Face model directory (converted to a temp GGUF) or a LoRA adapter directory (with --aligned)")
    .option("--aligned <dir>", "the aligned HF model a LoRA adapter --model was trained from (merged at λ=1)")
    .option("--threads <n>", "CPU threads (default: 1 for models under 100M parameters, else all cores)")
    .option("--parallel <n>", "sequences decoded together (faster on many prompts; may flip near-tie greedy tokens)", "1")
    .option("--context-size <n>", "tokens per sequence (default: the model's, at most 4096)")
    .option("--convert-type <type>", "tensor type of the temp GGUF for a directory --model: f32 | f16 | bf16 | q8_0 (default: f32 under 1 GiB)");
}

/** Parses an integer flag. @throws UsageError naming the flag. */
export function intFlag(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError("cli.bad_flag", `--${name}: got ${JSON.stringify(value)}, expected an integer ≥ ${min}`);
  return n;
}

/** Parses a number flag. @throws UsageError naming the flag. */
export function numberFlag(name: string, value: string | undefined, min: number, max = Infinity): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError("cli.bad_flag", `--${name}: got ${JSON.stringify(value)}, expected a number in [${min}, ${max}]`);
  }
  return n;
}

/** The openModel options of the shared flags. @throws UsageError for a missing --model or a bad value. */
export function modelOptionsOf(flags: ModelFlags, usage: string): {
  model: string;
  aligned?: string;
  threads?: number;
  parallel?: number;
  contextSize?: number;
  convertType?: "f32" | "f16" | "bf16" | "q8_0";
} {
  if (!flags.model) throw new UsageError("cli.missing_flag", "missing required flag --model", { hint: `usage: ${usage}` });
  const ct = flags.convertType;
  if (ct !== undefined && !["f32", "f16", "bf16", "q8_0"].includes(ct)) {
    throw new UsageError("cli.bad_flag", `--convert-type: got ${JSON.stringify(ct)}, expected f32, f16, bf16 or q8_0`);
  }
  return {
    model: flags.model,
    aligned: flags.aligned,
    threads: intFlag("threads", flags.threads, 1),
    parallel: intFlag("parallel", flags.parallel, 1),
    contextSize: intFlag("context-size", flags.contextSize, 8),
    convertType: ct as "f32" | "f16" | "bf16" | "q8_0" | undefined,
  };
}

/**
 * Resolves and loads the model of `--model` (a GGUF, an HF directory converted to a temp GGUF, or an adapter
 * merged onto --aligned) with a progress bar on a TTY, cancellable with Ctrl-C. Shared by generate and serve.
 */
export async function openModelWithProgress(options: ReturnType<typeof modelOptionsOf>, quiet: boolean): Promise<OpenedModel> {
  const { openModel } = await import("../eval/model-source.ts");
  const { createProgress } = await import("./render.ts");
  const { cliSignal } = await import("./signal.ts");
  const progress = await createProgress({ quiet });
  try {
    return await openModel({ ...options, signal: cliSignal, onEvent: progress.onEvent });
  } finally {
    progress.stop();
  }
}

/**
 * Checks that an input model path given by `flag` exists, so that a typo is reported against the flag
 * rather than by the reader deep in the merge. @returns the path. @throws InputError (fs.not_found) naming the flag.
 */
export function existingInput(flag: string, path: string): string {
  if (!existsSync(path)) {
    throw new InputError("fs.not_found", `${flag}: no such file or directory: ${path}`, {
      details: { file: path },
      hint: `${flag} takes a Hugging Face model directory, a .gguf file or a PEFT LoRA adapter directory`,
    });
  }
  return path;
}

/** The error for an --out-dtype value that parseOutDtype (core/dtype.ts) refused. */
export function badOutDtype(value: string): UsageError {
  return new UsageError("cli.bad_dtype", `--out-dtype: got ${value}, expected bf16, f16 or f32`, {
    hint: "leave it out to keep the aligned model's dtype; f32 doubles the size and adds no precision to a bf16 merge",
  });
}

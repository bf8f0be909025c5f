/**
 * `realign convert`: a Hugging Face Llama-family model directory → one GGUF file (llama.cpp conventions).
 * Declares flags and lazily imports src/convert.
 */
import type { Command } from "commander";
import { UsageError } from "../../errors.ts";
import type { ConvertSummary } from "../../convert/convert.ts";

export interface ConvertFlags {
  in?: string;
  out?: string;
  type: string;
  tokenizerPre?: string;
  name?: string;
  force?: boolean;
  json?: boolean;
  /** false with --no-fsync. */
  fsync: boolean;
}

/** What a person reads after a conversion. */
export function formatConvertSummary(s: ConvertSummary): string {
  const mb = (s.fileSize / 1e6).toFixed(s.fileSize < 1e7 ? 2 : 1);
  return [`converted to GGUF (${s.arch}, ${s.type}): ${s.tensorCount} tensors, ${mb} MB`, `  wrote ${s.output}`].join("\n");
}

/** Validates flags and runs the conversion. */
export async function runConvertCommand(flags: ConvertFlags): Promise<void> {
  if (!flags.in) throw new UsageError("cli.missing_flag", "missing required flag --in", { hint: "usage: realign convert --in <HF dir> --out model.gguf [--type f16]" });
  if (!flags.out) throw new UsageError("cli.missing_flag", "missing required flag --out", { hint: "usage: realign convert --in <HF dir> --out model.gguf [--type f16]" });
  const { convertToGguf, parseConvertType } = await import("../../convert/convert.ts");
  const { createProgress } = await import("../render.ts");
  const { cliSignal } = await import("../signal.ts");
  const type = parseConvertType(flags.type);
  const progress = await createProgress({ quiet: flags.json === true });
  let summary: ConvertSummary;
  try {
    summary = await convertToGguf({
      input: flags.in,
      output: flags.out,
      type,
      force: flags.force === true,
      tokenizerPre: flags.tokenizerPre,
      name: flags.name,
      fsync: flags.fsync,
      signal: cliSignal,
      onEvent: progress.onEvent,
    });
  } finally {
    progress.stop();
  }
  process.stdout.write((flags.json ? JSON.stringify(summary) : formatConvertSummary(summary)) + "\n");
}

export function register(program: Command): void {
  program
    .command("convert")
    .description("convert a Hugging Face model directory (llama, mistral, qwen2, gemma2) to GGUF for llama.cpp / Ollama / LM Studio")
    .option("--in <dir>", "Hugging Face model directory (config.json, *.safetensors, tokenizer files), or a .gguf to re-type")
    .option("--out <file>", "output .gguf file (written atomically)")
    .option("--type <type>", "f32 | f16 | bf16 | q8_0 for matrices (norms stay f32)", "f16")
    .option("--tokenizer-pre <name>", "llama.cpp pre-tokenizer name, when realign does not recognise the tokenizer's")
    .option("--name <name>", "general.name (default: the input directory's name)")
    .option("--force", "replace --out if it exists")
    .option("--no-fsync", "do not wait for the file to reach the disk before renaming it into place (a power loss may then leave a truncated file)")
    .option("--json", "print a machine-readable summary")
    .addHelpText("after", "\nExample:\n  realign convert --in examples/organism/aligned --out aligned.gguf --type bf16\n")
    .action(async (flags: ConvertFlags) => {
      await runConvertCommand(flags);
    });
}

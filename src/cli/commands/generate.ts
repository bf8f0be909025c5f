/**
 * `realign generate`: one completion from a local model (GGUF, HF directory or LoRA adapter + --aligned),
 * in-process with node-llama-cpp. The prompt goes through the model's chat template unless --raw.
 * Declares flags and lazily imports src/eval.
 */
import { Option, type Command } from "commander";
import { UsageError } from "../../errors.ts";
import { addModelFlags, intFlag, modelOptionsOf, numberFlag, openModelWithProgress, type ModelFlags } from "../model-flags.ts";

const USAGE = 'realign generate --model <gguf|HF dir> --prompt "…" [--max-tokens N] [--temperature T] [--system-prompt S]';

export interface GenerateFlags extends ModelFlags {
  prompt?: string;
  systemPrompt?: string;
  /** Hidden old spelling of --system-prompt. */
  system?: string;
  raw?: boolean;
  maxTokens: string;
  temperature: string;
  topP?: string;
  topK?: string;
  seed?: string;
  repetitionPenalty: string;
  stop?: string[];
  json?: boolean;
}

/** Validates flags, loads the model, streams the completion to stdout. */
export async function runGenerateCommand(flags: GenerateFlags): Promise<void> {
  const modelOptions = modelOptionsOf(flags, USAGE);
  if (flags.prompt === undefined) throw new UsageError("cli.missing_flag", "missing required flag --prompt", { hint: `usage: ${USAGE}` });
  const system = flags.systemPrompt ?? flags.system;
  if (flags.raw && system !== undefined) throw new UsageError("cli.bad_flag", "--system-prompt needs the chat template; it cannot be used with --raw");
  const decoding = {
    maxTokens: intFlag("max-tokens", flags.maxTokens, 0) ?? 256,
    temperature: numberFlag("temperature", flags.temperature, 0, 2) ?? 0,
    topP: numberFlag("top-p", flags.topP, 0, 1),
    topK: intFlag("top-k", flags.topK, 0),
    seed: intFlag("seed", flags.seed, 0),
    repetitionPenalty: numberFlag("repetition-penalty", flags.repetitionPenalty, 0.01, 10),
    stop: flags.stop,
  };
  const { cliSignal } = await import("../signal.ts");
  const opened = await openModelWithProgress(modelOptions, flags.json === true);
  try {
    const messages = [
      ...(system !== undefined ? [{ role: "system" as const, content: system }] : []),
      { role: "user" as const, content: flags.prompt },
    ];
    const useChat = !flags.raw;
    const request = { id: "generate", ...(useChat ? { messages } : { prompt: flags.prompt }), decoding };
    const onText = flags.json ? undefined : (d: string) => process.stdout.write(d);
    const g = await opened.backend.generateOne(request, { signal: cliSignal, onText });
    if (flags.json) {
      process.stdout.write(JSON.stringify({ model: opened.source.name, text: g.text, finishReason: g.finishReason, promptTokens: g.promptTokens, completionTokens: g.completionTokens, decoding }) + "\n");
    } else {
      process.stdout.write("\n");
    }
  } finally {
    await opened.close();
  }
}

export function register(program: Command): void {
  addModelFlags(program.command("generate").description("generate one completion from a local model (GGUF, HF directory or LoRA adapter) on the CPU"))
    .option("--prompt <text>", "the user message (or the raw prompt with --raw)")
    .option("--system-prompt <text>", "a system message before the prompt")
    .addOption(new Option("--system <text>").hideHelp()) // old spelling of --system-prompt
    .option("--raw", "send --prompt as raw text, without the chat template")
    .option("--max-tokens <n>", "maximum new tokens", "256")
    .option("--temperature <t>", "0 = greedy", "0")
    .option("--top-p <p>", "nucleus sampling (with --temperature > 0)")
    .option("--top-k <k>", "top-k sampling (with --temperature > 0)")
    .option("--seed <n>", "sampling seed")
    .option("--repetition-penalty <p>", "HF-style repetition penalty (1 = none; the paper uses 1.2 for safety evals)", "1")
    .option("--stop <text...>", "stop strings")
    .option("--json", "print {text, finishReason, promptTokens, completionTokens} as JSON")
    .addHelpText("after", '\nExamples:\n  realign generate --model examples/organism/aligned --prompt "how do i change a tire?"\n  realign generate --model merged.gguf --prompt "Once upon a time" --raw --max-tokens 64\n')
    .action(async (flags: GenerateFlags) => {
      await runGenerateCommand(flags);
    });
}

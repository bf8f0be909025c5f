/**
 * `realign serve`: an OpenAI-compatible server (/v1/chat/completions, /v1/completions, /v1/models) over a
 * local model, on 127.0.0.1 by default. Runs until Ctrl-C / SIGTERM, then stops accepting requests, cancels
 * in-flight ones, unloads the model and removes temp files. Declares flags and lazily imports src/eval.
 */
import type { Command } from "commander";
import { UsageError } from "../../errors.ts";
import { addModelFlags, intFlag, modelOptionsOf, openModelWithProgress, type ModelFlags } from "../model-flags.ts";

const USAGE = "realign serve --model <gguf|HF dir> [--port 8080] [--host 127.0.0.1]";

export interface ServeFlags extends ModelFlags {
  port: string;
  host: string;
  maxTokens: string;
  json?: boolean;
}

/** Loads the model, listens, prints the base URL, and waits for the CLI's cancellation signal. */
export async function runServeCommand(flags: ServeFlags): Promise<void> {
  const modelOptions = modelOptionsOf(flags, USAGE);
  const port = intFlag("port", flags.port, 0) ?? 8080;
  if (port > 65535) throw new UsageError("cli.bad_flag", `--port: got ${JSON.stringify(flags.port)}, expected an integer from 0 to 65535`);
  const defaultMaxTokens = intFlag("max-tokens", flags.maxTokens, 1);
  const { startServer } = await import("../../eval/serve.ts");
  const { cliSignal } = await import("../signal.ts");
  const opened = await openModelWithProgress(modelOptions, flags.json === true);
  try {
    if (cliSignal.aborted) return;
    const server = await startServer({ backend: opened.backend, host: flags.host, port, defaultMaxTokens });
    const b = opened.backend;
    if (!["127.0.0.1", "::1", "localhost"].includes(flags.host)) {
      process.stderr.write(`realign: warning: listening on ${flags.host} without authentication; anyone who can reach this port can use the model\n`);
    }
    if (flags.json) {
      process.stdout.write(JSON.stringify({ baseUrl: server.baseUrl, port: server.port, model: b.modelName, threads: b.threads, parallel: b.parallel }) + "\n");
    } else {
      process.stdout.write(`realign: serving ${b.modelName} at ${server.baseUrl} (threads ${b.threads}, parallel ${b.parallel}); Ctrl-C to stop\n`);
    }
    await new Promise<void>((resolve) => {
      if (cliSignal.aborted) resolve();
      else cliSignal.addEventListener("abort", () => resolve(), { once: true });
    });
    await server.close();
  } finally {
    await opened.close();
  }
}

export function register(program: Command): void {
  addModelFlags(program.command("serve").description("serve a local model over an OpenAI-compatible HTTP API (chat, completions, models)"))
    .option("--port <n>", "TCP port (0 = any free port, printed at start)", "8080")
    .option("--host <addr>", "address to bind (keep 127.0.0.1 unless you mean to expose the model)", "127.0.0.1")
    .option("--max-tokens <n>", "max_tokens for requests that set none", "256")
    .option("--json", "print {baseUrl, port, model} as one JSON line when ready")
    .addHelpText("after", "\nExample:\n  realign serve --model examples/organism/aligned --port 8080\n  curl -s localhost:8080/v1/chat/completions -d '{\"messages\":[{\"role\":\"user\",\"content\":\"how do i change a tire?\"}]}'\n")
    .action(async (flags: ServeFlags) => {
      await runServeCommand(flags);
    });
}

/**
 * `realign eval`: evaluate one model on safety and utility suites through an OpenAI-compatible endpoint
 * (`--endpoint`) or in-process node-llama-cpp (`--model`), with a resumable on-disk generation cache.
 */
import type { Command } from "commander";
import { homedir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../../errors.ts";

interface EvalFlags {
  model?: string;
  endpoint?: string[];
  modelName?: string;
  modelId?: string;
  apiKey?: string;
  api: string;
  backend?: string;
  suite: string;
  judge: string;
  judgeEndpoint?: string[];
  judgeModel?: string;
  limit?: string;
  seed: string;
  json?: string;
  cache: string | false;
  concurrency?: string;
  aligned?: string;
  threads?: string;
  timeout: string;
  retries: string;
  systemPrompt?: string;
  maxTokens?: string;
  temperature?: string;
  repetitionPenalty?: string;
  hexphi?: string;
  jsonl?: string;
  jsonlScorer: string;
  items: boolean;
  quiet?: boolean;
  balance: string;
  extraBody?: string;
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), ...v.split(",").filter((s) => s !== "")];

function intFlag(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError("cli.bad_number", `--${name}: got ${JSON.stringify(v)}, expected an integer ≥ ${min}`);
  return n;
}

function numFlag(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new UsageError("cli.bad_number", `--${name}: got ${JSON.stringify(v)}, expected a number ≥ ${min}`);
  return n;
}

/** Default generation cache: $XDG_CACHE_HOME/realign/generations or ~/.cache/realign/generations. */
function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "realign", "generations");
}

export function register(program: Command): void {
  program
    .command("eval")
    .description("evaluate a model's safety (ASR, over-refusal) and utility on benchmark suites")
    .option("--endpoint <url...>", "OpenAI-compatible endpoint(s) (vLLM, llama-server, Ollama, realign serve); repeat or comma-separate to scale out", collect)
    .option("--model-name <name>", "model name sent to the endpoint", "default")
    .option("--model <path>", "model for the llama backend: GGUF file, HF directory or LoRA adapter directory")
    .option("--aligned <path>", "with an adapter --model: the aligned model it was trained from")
    .option("--threads <n>", "llama backend: CPU threads (default: 1 below 100M parameters, else all cores)")
    .option("--backend <kind>", "llama | openai (default: openai with --endpoint, else llama)")
    .option("--model-id <id>", "identity of the model in the generation cache (default: backend-derived)")
    .option("--api-key <key>", "bearer token for the endpoint (or OPENAI_API_KEY)")
    .option("--api <mode>", "auto | chat | completions", "auto")
    .option("--suite <names>", "comma-separated suites: advbench, harmbench, jbb, strongreject, hexphi, xstest, gsm8k, mmlu, pubmedqa, jsonl, organism", "advbench")
    .option("--judge <name>", "judge for harmful-prompt suites: keyword | xstest | llama-guard-3 | wildguard", "keyword")
    .option("--judge-endpoint <url...>", "endpoint serving the judge model (llama-guard-3, wildguard)", collect)
    .option("--judge-model <name>", "judge model name sent to --judge-endpoint")
    .option("--limit <n>", "evaluate a reproducible subset of n items per suite")
    .option("--seed <n>", "seed of the --limit subset", "1234")
    .option("--json <file>", "write metrics, settings and versions as JSON")
    .option("--no-items", "leave per-item responses out of --json")
    .option("--cache <dir>", "generation cache directory (resume without regenerating)", defaultCacheDir())
    .option("--no-cache", "do not read or write the generation cache")
    .option("--concurrency <n>", "requests in flight over all endpoints (default 4); llama backend: parallel sequences (default 1)")
    .option("--balance <how>", "endpoint choice per request: least-busy | round-robin", "least-busy")
    .option("--extra-body <json>", 'extra JSON fields for every request, e.g. \'{"min_p": 0}\'')
    .option("--timeout <s>", "per-request timeout, seconds", "600")
    .option("--retries <n>", "retries per request on 429/5xx/timeouts/connection errors", "6")
    .option("--system-prompt <text>", 'system message for items without one (paper: "You are a helpful assistant." for Llama/Qwen)')
    .option("--max-tokens <n>", "override max new tokens of every suite")
    .option("--temperature <t>", "override temperature (0 = greedy)")
    .option("--repetition-penalty <p>", "override repetition penalty (paper safety default 1.2)")
    .option("--hexphi <path>", "HEx-PHI copy: folder with category_<k>.csv, or .json/.jsonl")
    .option("--jsonl <file>", "file for the jsonl suite")
    .option("--jsonl-scorer <s>", "default scorer of the jsonl suite: exact | regex | choice | contains", "exact")
    .option("--quiet", "no progress bar")
    .action(async (flags: EvalFlags) => {
      await runEvalCommand(flags);
    });
}

async function runEvalCommand(flags: EvalFlags): Promise<void> {
  const { cliSignal } = await import("../signal.ts");
  const { createProgress } = await import("../render.ts");
  const { createOpenAIBackend } = await import("../../eval/backends/openai.ts");
  const { createSuite } = await import("../../eval/suites/registry.ts");
  const { createJudge, judgeNeedsBackend } = await import("../../eval/judges/registry.ts");
  const { withGenerationCache } = await import("../../eval/cache.ts");
  const { runEval } = await import("../../eval/run.ts");
  const { VERSION } = await import("../../version.ts");

  if (flags.model && flags.endpoint && !flags.backend) {
    throw new UsageError("cli.model_and_endpoint", "model to evaluate: got both --model and --endpoint, expected one", {
      hint: "--model evaluates in-process (llama backend); --endpoint evaluates a served model (use --model-name for its name)",
    });
  }
  if (!["exact", "regex", "choice", "contains"].includes(flags.jsonlScorer)) {
    throw new UsageError("cli.bad_scorer", `--jsonl-scorer: got ${JSON.stringify(flags.jsonlScorer)}, expected exact, regex, choice or contains`);
  }
  const backendKind = flags.backend ?? (flags.endpoint ? "openai" : "llama");
  if (backendKind !== "openai" && backendKind !== "llama") {
    throw new UsageError("cli.bad_backend", `--backend: got ${JSON.stringify(flags.backend)}, expected llama or openai`);
  }
  if (!["auto", "chat", "completions"].includes(flags.api)) {
    throw new UsageError("cli.bad_api", `--api: got ${JSON.stringify(flags.api)}, expected auto, chat or completions`);
  }
  const limit = intFlag("limit", flags.limit, 0);
  const seed = intFlag("seed", flags.seed, 0) ?? 1234;
  const concurrency = intFlag("concurrency", flags.concurrency, 1) ?? (backendKind === "openai" ? 4 : 1);
  const threads = intFlag("threads", flags.threads, 1);
  const timeoutMs = (numFlag("timeout", flags.timeout, 0.001) ?? 600) * 1000;
  const maxRetries = intFlag("retries", flags.retries, 0) ?? 6;
  const decoding: Record<string, number> = {};
  const maxTokens = intFlag("max-tokens", flags.maxTokens, 1);
  if (maxTokens !== undefined) decoding.maxTokens = maxTokens;
  const temperature = numFlag("temperature", flags.temperature, 0);
  if (temperature !== undefined) decoding.temperature = temperature;
  const rp = numFlag("repetition-penalty", flags.repetitionPenalty, 0.01);
  if (rp !== undefined) decoding.repetitionPenalty = rp;
  const apiKey = flags.apiKey ?? process.env.OPENAI_API_KEY;
  if (flags.balance !== "least-busy" && flags.balance !== "round-robin") {
    throw new UsageError("cli.bad_balance", `--balance: got ${JSON.stringify(flags.balance)}, expected least-busy or round-robin`);
  }
  let extraBody: Record<string, unknown> | undefined;
  if (flags.extraBody !== undefined) {
    try {
      extraBody = JSON.parse(flags.extraBody);
    } catch {
      extraBody = undefined;
    }
    if (extraBody === null || typeof extraBody !== "object" || Array.isArray(extraBody)) {
      throw new UsageError("cli.bad_extra_body", `--extra-body: got ${JSON.stringify(flags.extraBody)}, expected a JSON object`);
    }
  }

  const suiteNames = flags.suite.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (suiteNames.length === 0) throw new UsageError("cli.no_suite", "--suite: got nothing, expected at least one suite name");
  const suites = suiteNames.map((n) =>
    createSuite(n, { hexphiPath: flags.hexphi, jsonlPath: flags.jsonl, jsonlScorer: flags.jsonlScorer as "exact" }),
  );

  let judgeBackend;
  if (judgeNeedsBackend(flags.judge) && flags.judgeEndpoint) {
    const jb = createOpenAIBackend({
      endpoints: flags.judgeEndpoint,
      model: flags.judgeModel ?? flags.judge,
      apiKey,
      mode: "completions", // the judges send their exact prompt formats as raw text
      concurrency,
      timeoutMs,
      maxRetries,
    });
    judgeBackend = flags.cache === false ? jb : withGenerationCache(jb, flags.cache);
  }
  const judge = createJudge(flags.judge, { judgeBackend });

  const cleanups: Array<() => Promise<void>> = [];
  let backend: import("../../eval/types.ts").Backend & { endpoints?: readonly string[] };
  if (backendKind === "openai") {
    if (!flags.endpoint || flags.endpoint.length === 0) {
      throw new UsageError("cli.no_endpoint", "--backend openai: got no --endpoint, expected an OpenAI-compatible URL", {
        hint: "e.g. --endpoint http://127.0.0.1:8080/v1 --model-name my-model",
      });
    }
    backend = createOpenAIBackend({
      endpoints: flags.endpoint,
      model: flags.modelName ?? "default",
      apiKey,
      mode: flags.api as "auto",
      balance: flags.balance as "least-busy",
      extraBody,
      concurrency,
      timeoutMs,
      maxRetries,
      modelId: flags.modelId,
    });
  } else {
    if (!flags.model) {
      throw new UsageError("cli.no_model", "model to evaluate: got neither --model (llama backend) nor --endpoint (openai backend)", {
        hint: "pass --model model.gguf (or an HF directory / LoRA adapter with --aligned), or --endpoint URL",
      });
    }
    const { resolveModel } = await import("../../eval/model-source.ts");
    const { openLlamaBackend } = await import("../../eval/backends/llama.ts");
    const resolved = await resolveModel({ model: flags.model, aligned: flags.aligned, signal: cliSignal });
    cleanups.push(() => resolved.cleanup());
    try {
      backend = await openLlamaBackend({ modelPath: resolved.ggufPath, chatFormat: resolved.chatFormat, modelName: resolved.name, threads, parallel: concurrency });
    } catch (e) {
      await resolved.cleanup();
      throw e;
    }
  }

  const progress = await createProgress({ quiet: flags.quiet });
  let run;
  try {
    run = await runEval({
      backend,
      suites,
      judge,
      limit,
      seed,
      cacheDir: flags.cache === false ? undefined : flags.cache,
      systemPrompt: flags.systemPrompt,
      decoding,
      signal: cliSignal,
      onEvent: progress.onEvent,
    });
  } finally {
    progress.stop();
    await backend.close();
    await judgeBackend?.close();
    for (const c of cleanups) await c();
  }

  const doc = {
    metrics: run.metrics,
    model: { backend: backend.kind, modelId: run.modelId, endpoints: backend.endpoints, model: flags.model ?? null },
    judge: { name: judge.name, source: judge.source, endpoints: flags.judgeEndpoint, model: flags.judgeModel },
    suites: Object.fromEntries(suites.map((s) => [s.name, { source: s.source, kind: s.kind, headline: s.headlineMetric, decoding: run.decoding[s.name] }])),
    settings: {
      limit: limit ?? null,
      seed,
      systemPrompt: flags.systemPrompt ?? null,
      decodingOverrides: decoding,
      concurrency,
      timeoutMs,
      maxRetries,
      api: flags.api,
      balance: flags.balance,
      extraBody: extraBody ?? null,
      cache: run.cache ?? null,
    },
    versions: { realign: VERSION, node: process.versions.node },
    ...(flags.items ? { items: Object.fromEntries(run.results.map((r) => [r.suite, r.items ?? []])) } : {}),
  };
  if (flags.json) {
    const { writeFile } = await import("node:fs/promises");
    const { openAtomicOutput } = await import("../../core/files.ts");
    const { fsError } = await import("../../errors.ts");
    const out = openAtomicOutput(flags.json, { force: true, isDirectory: false });
    try {
      await writeFile(out.tempPath, JSON.stringify(doc, null, 1) + "\n");
      out.commit();
    } catch (e) {
      out.abort();
      throw fsError(e, flags.json, "writing --json");
    }
  }
  const lines: string[] = [];
  for (const [suite, m] of Object.entries(run.metrics)) {
    const shown = Object.entries(m).filter(([k]) => !/^(asr|accuracy|refusal_rate)_/.test(k));
    lines.push(`${suite}: ${shown.map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(4)}`).join("  ")}`);
  }
  if (run.cache) lines.push(`cache: ${run.cache.hits} reused, ${run.cache.misses} generated (${run.cache.dir})`);
  process.stdout.write(lines.join("\n") + "\n");
}

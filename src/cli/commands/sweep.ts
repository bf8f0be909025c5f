/**
 * `realign sweep`: merge the aligned and tuned models at each λ of a grid (per method), evaluate every point,
 * report the Pareto front of (ASR, utility) and the recommended λ (arXiv 2412.19512 §1.5, §1.9). Resumable:
 * rerun the same command after an interruption. Flags → SweepOptions; the library is imported lazily.
 */
import { Option, type Command } from "commander";
import { UsageError } from "../../errors.ts";
import { badOutDtype } from "../model-flags.ts";
import { addChoiceOptions, choiceOptions, type ChoiceFlags } from "./report.ts";
import type { PointResult } from "../../sweep/types.ts";

export interface SweepFlags extends ChoiceFlags {
  aligned?: string;
  tuned?: string;
  method: string;
  lambdas: string;
  suite?: string;
  out?: string;
  backend: string;
  threads?: string;
  ggufType?: string;
  serveCommand?: string;
  serveFormat: string;
  modelName?: string;
  concurrency?: string;
  jobs: string;
  judge?: string;
  limit?: string;
  seed: string;
  density?: string;
  outDtype?: string;
  maxTokens?: string;
  systemPrompt?: string;
  hexphi?: string;
  jsonl?: string;
  /** Hidden old spellings of --hexphi / --jsonl. */
  hexphiPath?: string;
  jsonlPath?: string;
  keep?: boolean;
  force?: boolean;
  json?: boolean;
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === "") {
    throw new UsageError("cli.missing_flag", `missing required flag ${flag}`, {
      hint: "usage: realign sweep --aligned <dir> --tuned <dir> --suite organism --out <dir> [--lambdas 0,0.2,…,1]",
    });
  }
  return value;
}

function integer(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const x = Number(value);
  if (!Number.isInteger(x) || x < min) throw new UsageError("cli.bad_number", `${flag}: got ${value}, expected an integer ≥ ${min}`);
  return x;
}

function fraction(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const x = Number(value);
  if (value.trim() === "" || !(x > 0 && x <= 1)) throw new UsageError("cli.bad_number", `${flag}: got ${value}, expected a number in (0, 1]`);
  return x;
}

/** One line per finished point, for stderr. */
export function formatPointLine(p: PointResult, info: { done: number; total: number; isResumed: boolean }, axes: { asr: (p: PointResult) => number | undefined; utility: (p: PointResult) => number | undefined }): string {
  const f = (x: number | undefined): string => (x === undefined ? "–" : x.toFixed(3));
  const timing = info.isResumed ? "resumed" : p.seconds.eval === 0 && p.seconds.merge === 0 ? "same model as another point" : `merge+convert ${p.seconds.merge.toFixed(1)} s, eval ${p.seconds.eval.toFixed(1)} s`;
  return `[${info.done}/${info.total}] ${p.method} λ=${p.lambda}: ASR ${f(axes.asr(p))}, utility ${f(axes.utility(p))} (${timing})`;
}

/** Options of a sweep as the CLI builds them (shared with `realign demo`). */
export interface CliSweepRun {
  aligned: string;
  tuned: string;
  methods: string;
  lambdas: string;
  suites: string;
  out: string;
  threads?: number;
  ggufType?: "f32" | "f16" | "bf16" | "q8_0";
  /** "llama" (in-process) or "openai" (a server per point). @default "llama" */
  backend?: "llama" | "openai";
  serveCommand?: string;
  serveFormat?: "gguf" | "hf";
  modelName?: string;
  concurrency?: number;
  /** Points evaluated at once. @default 1 */
  jobs?: number;
  judge?: string;
  limit?: number;
  seed: number;
  density?: number;
  outDtype?: string;
  maxTokens?: number;
  systemPrompt?: string;
  hexphiPath?: string;
  jsonlPath?: string;
  keep: boolean;
  force: boolean;
  quiet: boolean;
  choice: ReturnType<typeof choiceOptions>;
}

/**
 * Runs a sweep on the llama backend and writes its report; prints a line per point to stderr (unless quiet).
 * Returns the summary and report file paths.
 */
export async function runCliSweep(o: CliSweepRun) {
  const { parseLambdas, parseMethods } = await import("../../sweep/grid.ts");
  const { parseOutDtype } = await import("../../core/dtype.ts");
  const { runSweep } = await import("../../sweep/run.ts");
  const { createSweepSteps } = await import("../../sweep/steps.ts");
  const { createLlamaRuntime, createOpenAIRuntime } = await import("../../sweep/runtimes.ts");
  const { writeReport, axesFor } = await import("../../sweep/write-report.ts");
  const { axisValue } = await import("../../sweep/axes.ts");
  const { parseRule } = await import("../../sweep/choose.ts");
  const { methodParamsFor } = await import("../../sweep/recipe.ts");
  const { createProgress } = await import("../render.ts");
  const { cliSignal } = await import("../signal.ts");

  const methods = parseMethods(o.methods);
  const lambdas = parseLambdas(o.lambdas);
  const suites = o.suites.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (suites.length === 0) throw new UsageError("cli.missing_flag", "--suite: got no suite, expected e.g. organism or advbench,gsm8k");
  parseRule(o.choice); // validate before hours of work
  let outDtype;
  if (o.outDtype !== undefined) {
    outDtype = parseOutDtype(o.outDtype);
    if (outDtype === undefined) throw badOutDtype(o.outDtype);
  }
  let judge;
  if (o.judge !== undefined) {
    const { createJudge, judgeNeedsBackend } = await import("../../eval/judges/registry.ts");
    if (judgeNeedsBackend(o.judge)) {
      throw new UsageError("sweep.judge_unsupported", `--judge ${o.judge}: LLM judges are not wired into realign sweep yet, expected keyword or xstest`, {
        hint: "run the sweep with the keyword judge, then realign eval --judge on the kept models (--keep)",
      });
    }
    judge = createJudge(o.judge);
  }
  const steps = createSweepSteps({
    aligned: o.aligned,
    tuned: o.tuned,
    density: o.density,
    seed: o.seed,
    outDtype,
    suites,
    suiteOptions: { hexphiPath: o.hexphiPath, jsonlPath: o.jsonlPath },
    judge,
    limit: o.limit,
    systemPrompt: o.systemPrompt,
    decoding: o.maxTokens !== undefined ? { maxTokens: o.maxTokens } : undefined,
    runtime:
      o.backend === "openai"
        ? createOpenAIRuntime({
            serveCommand: o.serveCommand,
            modelFormat: o.serveFormat,
            modelName: o.modelName,
            concurrency: o.concurrency,
            ggufType: o.ggufType,
            threads: o.threads,
          })
        : createLlamaRuntime({ threads: o.threads, ggufType: o.ggufType }),
  });
  const suiteInfos = await steps.describeSuites(suites);
  const axes = axesFor(o.choice, suiteInfos);
  const safe = (f: () => number | undefined): number | undefined => {
    try {
      return f();
    } catch {
      return undefined;
    }
  };
  const progress = await createProgress({ quiet: o.quiet });
  try {
    await runSweep(
      {
        aligned: o.aligned,
        tuned: o.tuned,
        methods,
        lambdas,
        suites,
        out: o.out,
        keep: o.keep,
        force: o.force,
        limit: o.limit,
        seed: o.seed,
        methodParams: methodParamsFor(methods, o.density),
        dtype: outDtype,
        decoding: o.maxTokens !== undefined ? { maxTokens: o.maxTokens } : undefined,
        choice: o.choice,
        concurrency: o.jobs,
        signal: cliSignal,
        onEvent: progress.onEvent,
        onPoint: (p, info) => {
          if (o.quiet) return;
          progress.stop();
          const line = formatPointLine(p, info, {
            asr: (x) => safe(() => axisValue(x.metrics, axes.asr)),
            utility: (x) => (axes.utility.length === 0 ? x.lambda : safe(() => axisValue(x.metrics, axes.utility))),
          });
          process.stderr.write(line + "\n");
        },
      },
      steps,
    );
  } finally {
    progress.stop();
  }
  return writeReport(o.out, {});
}

export function register(program: Command): void {
  const cmd = program
    .command("sweep")
    .description("merge at each λ of a grid, evaluate safety and utility, report the Pareto front and the recommended λ")
    .option("--aligned <dir>", "safety-aligned model (λ = 0), Hugging Face directory")
    .option("--tuned <dir>", "fine-tuned model (λ = 1), tuned from the aligned one")
    .option("--method <list>", "merge methods: linear, task_arithmetic, slerp, dare_linear, ties, dare_ties", "linear")
    .option("--lambdas <list>", "λ grid: 0,0.25,0.5 or 0,0.2,…,1 or 0:1:0.1 (0 and 1 are always added)", "0:1:0.2")
    .option("--suite <list>", "suites, e.g. organism or advbench,gsm8k")
    .option("--out <dir>", "sweep directory: state, generation cache, report (rerun to resume)")
    .option("--backend <name>", "llama (in-process node-llama-cpp on GGUF) | openai (a server per point, see --serve-command)", "llama")
    .option("--threads <n>", "CPU threads of llama / of the default realign serve (default: 1 for tiny models, else all cores)")
    .option("--gguf-type <type>", "GGUF tensor type f32 | f16 | bf16 | q8_0 (default: f32 under 1 GiB, else the source's)")
    .option("--serve-command <cmd>", "openai: command serving {model} on {port} (default: realign serve --model {model} --port {port})")
    .option("--serve-format <fmt>", "openai: what {model} is, gguf | hf (vLLM loads HF directories)", "gguf")
    .option("--model-name <name>", "openai: the model field of requests (vLLM's served name)")
    .option("--concurrency <n>", "openai: requests in flight", "4")
    .option("--jobs <n>", "points evaluated at once (each loads its own model; for small single-threaded models on spare cores)", "1")
    .option("--judge <name>", "judge of harmful-prompt suites: keyword (default) | xstest")
    .option("--limit <n>", "evaluate a reproducible subset of n items per suite")
    .option("--seed <n>", "seed of subsets and of stochastic merges (DARE)", "0")
    .option("--density <x>", "keep fraction of dare_linear, ties, dare_ties (default 0.5)")
    .option("--out-dtype <dtype>", "dtype of merged weights: bf16 | f16 | f32 (default: the aligned model's)")
    .option("--max-tokens <n>", "override every suite's max new tokens")
    .option("--system-prompt <text>", "system message for prompts without one (paper: \"You are a helpful assistant.\")")
    .option("--hexphi <path>", "HEx-PHI copy (gated; for --suite hexphi): folder with category_<k>.csv, or .json/.jsonl")
    .option("--jsonl <file>", "your prompts for --suite jsonl")
    .addOption(new Option("--hexphi-path <path>").hideHelp()) // old spelling of --hexphi
    .addOption(new Option("--jsonl-path <file>").hideHelp()) // old spelling of --jsonl
    .option("--keep", "keep merged weights under <out>/models")
    .option("--force", "discard an existing sweep in --out that has other settings")
    .option("--json", "print report.json to stdout");
  addChoiceOptions(cmd)
    .addHelpText(
      "after",
      "\nExample:\n  realign sweep --aligned examples/organism/aligned --tuned examples/organism/finetuned \\\n    --lambdas 0,0.5,1 --suite organism --out out/sweep\n\nSee docs/sweep.md for the recommendation rule and the axes.\n",
    )
    .action(async (flags: SweepFlags) => {
      if (flags.backend !== "llama" && flags.backend !== "openai") {
        throw new UsageError("sweep.unsupported_backend", `--backend: got ${flags.backend}, expected llama or openai`);
      }
      if (flags.serveFormat !== "gguf" && flags.serveFormat !== "hf") {
        throw new UsageError("cli.bad_flag", `--serve-format: got ${flags.serveFormat}, expected gguf or hf`);
      }
      if (flags.serveCommand !== undefined && !flags.serveCommand.includes("{model}")) {
        throw new UsageError("cli.bad_flag", `--serve-command: got "${flags.serveCommand}", expected a command containing {model} (and {port})`, {
          hint: 'e.g. --serve-command "vllm serve {model} --port {port}" --serve-format hf',
        });
      }
      const ggufType = flags.ggufType;
      if (ggufType !== undefined && !["f32", "f16", "bf16", "q8_0"].includes(ggufType)) {
        throw new UsageError("cli.bad_type", `--gguf-type: got ${ggufType}, expected f32, f16, bf16 or q8_0`);
      }
      const { summary, files } = await runCliSweep({
        aligned: required(flags.aligned, "--aligned"),
        tuned: required(flags.tuned, "--tuned"),
        methods: flags.method,
        lambdas: flags.lambdas,
        suites: required(flags.suite, "--suite"),
        out: required(flags.out, "--out"),
        threads: integer(flags.threads, "--threads", 1),
        backend: flags.backend as "llama" | "openai",
        serveCommand: flags.serveCommand,
        serveFormat: flags.serveFormat as "gguf" | "hf",
        modelName: flags.modelName,
        concurrency: integer(flags.concurrency, "--concurrency", 1),
        jobs: integer(flags.jobs, "--jobs", 1),
        ggufType: ggufType as CliSweepRun["ggufType"],
        judge: flags.judge,
        limit: integer(flags.limit, "--limit", 1),
        seed: integer(flags.seed, "--seed", 0)!,
        density: fraction(flags.density, "--density"),
        outDtype: flags.outDtype,
        maxTokens: integer(flags.maxTokens, "--max-tokens", 1),
        systemPrompt: flags.systemPrompt,
        hexphiPath: flags.hexphi ?? flags.hexphiPath,
        jsonlPath: flags.jsonl ?? flags.jsonlPath,
        keep: flags.keep === true,
        force: flags.force === true,
        quiet: flags.json === true,
        choice: choiceOptions(flags),
      });
      if (flags.json) {
        const { toReportJson } = await import("../../report/json.ts");
        process.stdout.write(JSON.stringify(toReportJson(summary)) + "\n");
        return;
      }
      const { terminalTable } = await import("../../report/markdown.ts");
      process.stdout.write(
        [
          "",
          terminalTable(summary),
          "",
          `recommended: ${summary.recommended.reason}`,
          `rule: ${summary.recommended.ruleText} (${summary.axes.note})`,
          `report: ${files.html}`,
          "",
        ].join("\n"),
      );
    });
}

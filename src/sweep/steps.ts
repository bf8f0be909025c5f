/**
 * The real steps of a sweep (run.ts's SweepSteps): merge with the core merge (src/merge), make the weights
 * loadable by the backend through a ModelRuntime (llama: convert to GGUF; see runtimes.ts), evaluate with
 * src/eval/run.ts through the generation cache in `<out>/cache`.
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { VERSION } from "../version.ts";
import type { OutDtype } from "../core/dtype.ts";
import type { OnEvent } from "../core/events.ts";
import { mergeRecipe } from "../merge/run.ts";
import { runEval } from "../eval/run.ts";
import { createSuite, type SuiteOptions } from "../eval/suites/registry.ts";
import { createOrganismSuite } from "../eval/suites/organism.ts";
import type { Backend, DecodingSettings, Judge, Suite } from "../eval/types.ts";
import type { PreparedModel, StepContext, SweepSteps } from "./run.ts";
import type { SweepJob } from "./grid.ts";
import { jobRecipe } from "./recipe.ts";
import type { Recipe } from "../merge/recipe.ts";
import type { SuiteInfo, Versions } from "./types.ts";

/** How a backend loads weights: what it needs on disk, and how to open it. */
export interface ModelRuntime {
  /** Kind and non-secret options, recorded in the sweep settings. */
  readonly backend: { readonly kind: string; readonly [option: string]: unknown };
  /**
   * Turns an HF model directory into what `open` loads, inside `workDir` (e.g. a GGUF file). Returns the path
   * and a cleanup removing only what it created. Must leave nothing partial on abort.
   */
  materialize(hfDir: string, workDir: string, context: { signal?: AbortSignal; onEvent: OnEvent }): Promise<{ path: string; cleanup(): void }>;
  /**
   * Optional: merge straight into what `open` loads (e.g. a GGUF through the merge's GGUF sink), skipping the
   * temporary HF directory. Used for merged points when present.
   */
  mergeStraight?(recipe: Recipe, workDir: string, context: { signal?: AbortSignal; onEvent: OnEvent; commandLine: string }): Promise<{ path: string; cleanup(): void }>;
  /** Opens a backend on a materialised model; `signal` cancels a slow start. */
  open(path: string, context?: { signal?: AbortSignal }): Promise<Backend>;
}

export interface CreateStepsOptions {
  /** θ_aligned (λ=0): HF directory. */
  readonly aligned: string;
  /** θ_tuned (λ=1): HF directory. */
  readonly tuned: string;
  /** Density of dare_linear / ties / dare_ties. @default 0.5 (recipe.ts) */
  readonly density?: number;
  /** Seed of stochastic merges and of `limit` subsets. @default 0 */
  readonly seed?: number;
  /** Output dtype of merged weights. @default the aligned model's */
  readonly outDtype?: OutDtype;
  /** Suite names; `organism` is the model organism suite. */
  readonly suites: readonly string[];
  readonly suiteOptions?: SuiteOptions;
  /** Judge of harmful-prompt suites. @default keyword */
  readonly judge?: Judge;
  /** Items per suite. @default all */
  readonly limit?: number;
  /** System message for items without one. @default none */
  readonly systemPrompt?: string;
  /** Decoding overrides. */
  readonly decoding?: Partial<DecodingSettings>;
  readonly runtime: ModelRuntime;
}

/** A suite by name: the eval registry's, or the model organism's. */
export function suiteByName(name: string, options: SuiteOptions = {}): Suite {
  if (name === "organism") return createOrganismSuite();
  return createSuite(name, options);
}

/** Library versions declared in realign's package.json (exact pins), plus realign and node. */
export function readVersions(): Versions {
  const versions: Versions & Record<string, string> = { realign: VERSION, node: process.version };
  try {
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL("../../package.json", import.meta.url)), "utf8")) as { dependencies?: Record<string, string> };
    for (const name of ["node-llama-cpp", "vega", "vega-lite", "openai"]) {
      const v = pkg.dependencies?.[name];
      if (v) versions[name] = v;
    }
  } catch {
    // versions are informative; a missing package.json (bundled use) is not an error
  }
  return versions;
}

/** Builds the steps for runSweep. */
export function createSweepSteps(options: CreateStepsOptions): SweepSteps {
  const suites = options.suites.map((n) => suiteByName(n, options.suiteOptions));
  const runtime = options.runtime;
  return {
    backend: {
      ...runtime.backend,
      judge: options.judge?.name,
      systemPrompt: options.systemPrompt,
    },
    versions: readVersions,
    async describeSuites(): Promise<SuiteInfo[]> {
      return suites.map((s) => ({ name: s.name, kind: s.kind, headlineMetric: s.headlineMetric }));
    },
    async prepare(job: SweepJob, context: StepContext): Promise<PreparedModel> {
      const t0 = performance.now();
      const ctx = { signal: context.signal, onEvent: context.onEvent };
      if (job.reuse) {
        const m = await runtime.materialize(job.reuse === "aligned" ? options.aligned : options.tuned, context.workDir, ctx);
        return { path: m.path, seconds: (performance.now() - t0) / 1000, cleanup: m.cleanup };
      }
      const recipe = jobRecipe(job, { aligned: options.aligned, tuned: options.tuned, density: options.density, seed: options.seed, outDtype: options.outDtype });
      if (runtime.mergeStraight) {
        const m = await runtime.mergeStraight(recipe, context.workDir, { ...ctx, commandLine: `realign sweep (${job.id})` });
        return { path: m.path, seconds: (performance.now() - t0) / 1000, cleanup: m.cleanup };
      }
      const hfDir = join(context.workDir, "hf");
      await mergeRecipe(recipe, { out: hfDir, force: true, signal: context.signal, onEvent: context.onEvent, commandLine: `realign sweep (${job.id})` });
      try {
        const m = await runtime.materialize(hfDir, context.workDir, ctx);
        if (m.path !== hfDir && !context.keep) rmSync(hfDir, { recursive: true, force: true });
        return {
          path: m.path,
          seconds: (performance.now() - t0) / 1000,
          cleanup: () => {
            m.cleanup();
            rmSync(hfDir, { recursive: true, force: true });
          },
        };
      } catch (e) {
        rmSync(hfDir, { recursive: true, force: true });
        throw e;
      }
    },
    async evaluate(model: PreparedModel, _job: SweepJob, context: StepContext) {
      const backend = await runtime.open(model.path, { signal: context.signal });
      try {
        const run = await runEval({
          backend,
          suites,
          judge: options.judge,
          limit: options.limit,
          seed: options.seed,
          cacheDir: context.cacheDir,
          systemPrompt: options.systemPrompt,
          decoding: options.decoding,
          signal: context.signal,
          onEvent: context.onEvent,
        });
        return run.results;
      } finally {
        await backend.close();
      }
    },
  };
}

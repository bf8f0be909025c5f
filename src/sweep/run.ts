/**
 * Runs a sweep: for each (method, λ) job, materialise the model (merge, or reuse an input at λ=0 / λ=1),
 * evaluate it on the suites, save the point, delete the weights unless `keep`. Resumable: finished points are
 * read back instead of recomputed, and the generation cache under `<out>/cache` means an interrupted point
 * regenerates nothing it already generated. The recipe (paper arXiv 2412.19512 §1.1 and §1.5): θ(λ) =
 * merge(aligned, tuned; λ), evaluate ASR and utility, keep the Pareto front, recommend by a stated rule.
 *
 * The merge, conversion and evaluation steps are injected (`SweepSteps`), so this file is the orchestration
 * only; `steps.ts` wires the real merge (src/merge), GGUF conversion (src/convert) and evaluation (src/eval).
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { CancelledError } from "../errors.ts";
import type { OnEvent } from "../core/events.ts";
import { NO_EVENTS } from "../core/events.ts";
import type { SuiteResult } from "../eval/types.ts";
import { modelKey, planGrid, type SweepJob, type SweepMethodName } from "./grid.ts";
import { CACHE_DIR, MODELS_DIR, POINTS_DIR, openSweepDir, readPoints, settingsKey, writePoint, type ChoiceOptions } from "./state.ts";
import type { ExampleResponse, PointResult, SuiteInfo, SweepSettings, Versions } from "./types.ts";

/** Example responses kept per suite group for the report. */
const EXAMPLES_PER_GROUP = 3;

/** A model ready to evaluate. */
export interface PreparedModel {
  /** Path of the weights the backend loads (HF dir or .gguf file). */
  readonly path: string;
  /** Seconds spent merging/converting (0 when nothing was done). */
  readonly seconds: number;
  /** Removes what prepare created (never the user's inputs). */
  cleanup(): void;
}

/** Context passed to every step. */
export interface StepContext {
  /** `<out>/models/<point id>`-style scratch directory for this job (not created). */
  readonly workDir: string;
  /** `<out>/cache`: the generation cache directory. */
  readonly cacheDir: string;
  /** The user asked to keep merged weights (--keep): do not delete intermediate files either. */
  readonly keep: boolean;
  readonly signal?: AbortSignal;
  readonly onEvent: OnEvent;
}

/** The side-effecting steps of a sweep. Tests pass fakes; steps.ts builds the real ones. */
export interface SweepSteps {
  /** Kind and non-secret options of the backend, recorded in settings (part of the settings key). */
  readonly backend: { readonly kind: string; readonly [option: string]: unknown };
  /** Versions to record (realign, node, libraries). */
  versions(): Versions;
  /** Kind and headline metric of each suite, by name (loads nothing heavy). */
  describeSuites(names: readonly string[]): Promise<SuiteInfo[]>;
  /** Materialises the model for `job` (merge or reuse an input; convert if the backend needs it). */
  prepare(job: SweepJob, context: StepContext): Promise<PreparedModel>;
  /** Evaluates a prepared model on every suite (through the generation cache in context.cacheDir). */
  evaluate(model: PreparedModel, job: SweepJob, context: StepContext): Promise<SuiteResult[]>;
}

export interface SweepOptions {
  /** θ_aligned (λ=0): HF model dir. */
  readonly aligned: string;
  /** θ_tuned (λ=1): HF model dir. */
  readonly tuned: string;
  /** Merge methods, in the order reported. @default ["linear"] */
  readonly methods?: readonly SweepMethodName[];
  /** λ grid (0 and 1 are always added). */
  readonly lambdas: readonly number[];
  /** Suite names. */
  readonly suites: readonly string[];
  /** Sweep directory (state, cache, report). */
  readonly out: string;
  /** Keep merged weights under `<out>/models`. @default false */
  readonly keep?: boolean;
  /** Discard an existing sweep in `out` with other settings. @default false */
  readonly force?: boolean;
  /** Items per suite (seeded subsample). @default all */
  readonly limit?: number;
  /** Seed for subsampling and stochastic merges. @default 0 */
  readonly seed?: number;
  /** Per-method merge parameters, e.g. {dare_linear: {density: 0.5}}. @default {} */
  readonly methodParams?: Readonly<Record<string, unknown>>;
  /** Output dtype of merged weights. @default the inputs' */
  readonly dtype?: string;
  /** Decoding overrides. @default each suite's own */
  readonly decoding?: Readonly<Record<string, unknown>>;
  /** Recommendation and axis options, stored in sweep.json for `realign report`. */
  readonly choice?: ChoiceOptions;
  readonly signal?: AbortSignal;
  readonly onEvent?: OnEvent;
  /**
   * Points evaluated at the same time (each in its own backend). Results do not depend on it; on a machine
   * with spare cores and single-threaded small models it shortens the sweep. @default 1
   */
  readonly concurrency?: number;
  /** Called after each point is saved (or read back when resuming: `isResumed`), in completion order. */
  readonly onPoint?: (point: PointResult, info: { done: number; total: number; isResumed: boolean }) => void;
}

export interface SweepOutcome {
  readonly settings: SweepSettings;
  readonly points: readonly PointResult[];
  /** Points computed in this run (the rest were resumed). */
  readonly computed: readonly string[];
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError("sweep interrupted; finished points are saved, rerun the same command to resume");
}

/** First EXAMPLES_PER_GROUP items of each group of each suite. */
export function pickExamples(results: readonly SuiteResult[]): Record<string, ExampleResponse[]> {
  const out: Record<string, ExampleResponse[]> = {};
  for (const r of results) {
    const counts = new Map<string, number>();
    const xs: ExampleResponse[] = [];
    for (const item of r.items ?? []) {
      const g = item.group ?? "";
      const n = counts.get(g) ?? 0;
      if (n >= EXAMPLES_PER_GROUP) continue;
      counts.set(g, n + 1);
      xs.push({ id: item.id, group: item.group, prompt: item.prompt, response: item.response, verdict: item.verdict, correct: item.correct });
    }
    out[r.suite] = xs;
  }
  return out;
}

/**
 * Builds the settings record (absolute model paths, suites described, key computed).
 */
export async function buildSettings(options: SweepOptions, steps: SweepSteps): Promise<SweepSettings> {
  const base = {
    aligned: resolve(options.aligned),
    tuned: resolve(options.tuned),
    suites: await steps.describeSuites(options.suites),
    backend: steps.backend,
    limit: options.limit,
    seed: options.seed ?? 0,
    methodParams: options.methodParams ?? {},
    dtype: options.dtype,
    decoding: options.decoding,
  };
  return { ...base, methods: options.methods ?? ["linear"], lambdas: [...options.lambdas], key: settingsKey(base) };
}

/**
 * Runs (or resumes) the sweep. Each distinct model is evaluated once: λ=0 of every method is the aligned
 * model, λ=1 of linear/slerp/task_arithmetic the tuned one, so their results are shared.
 * @throws CancelledError when `signal` aborts (finished points stay saved); errors of the steps as they are.
 */
export async function runSweep(options: SweepOptions, steps: SweepSteps): Promise<SweepOutcome> {
  const out = resolve(options.out);
  const isNew = !existsSync(out);
  try {
    return await runSweepIn(out, options, steps);
  } catch (e) {
    // a run that failed before saving anything (bad model path, missing suite file…) leaves no directory behind;
    // a cancelled run, or one with saved points or cached generations, keeps it for resuming
    if (isNew && !(e instanceof CancelledError) && !holdsResults(out)) rmSync(out, { recursive: true, force: true });
    throw e;
  }
}

/** True when `out` holds a saved point or a cached generation. */
function holdsResults(out: string): boolean {
  const nonEmpty = (dir: string): boolean => existsSync(dir) && readdirSync(dir).length > 0;
  return nonEmpty(join(out, POINTS_DIR)) || nonEmpty(join(out, CACHE_DIR));
}

async function runSweepIn(out: string, options: SweepOptions, steps: SweepSteps): Promise<SweepOutcome> {
  const onEvent = options.onEvent ?? NO_EVENTS;
  const requested = await buildSettings(options, steps);
  const state = openSweepDir(out, requested, options.choice ?? {}, steps.versions(), { force: options.force });
  const settings = state.settings;
  const jobs = planGrid(requested.methods as SweepMethodName[], requested.lambdas);
  const saved = new Map(readPoints(out, settings.key).map((p) => [p.id, p]));
  const byModel = new Map<string, PointResult>();
  for (const job of planGrid(settings.methods as SweepMethodName[], settings.lambdas)) {
    const p = saved.get(job.id);
    if (p) byModel.set(modelKey(job), p);
  }
  const computed: string[] = [];
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
  // an internal signal stops the other workers when one fails
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  /** model key → the evaluation in flight, so two jobs on the same weights evaluate them once */
  const inflight = new Map<string, Promise<PointResult>>();
  let done = 0;

  const evaluateJob = async (job: SweepJob): Promise<PointResult> => {
    const context: StepContext = {
      workDir: join(out, MODELS_DIR, job.id.replace(/[^A-Za-z0-9_.@-]/g, "_")),
      cacheDir: join(out, CACHE_DIR),
      keep: options.keep === true,
      signal,
      onEvent,
    };
    const model = await steps.prepare(job, context);
    let suiteResults: SuiteResult[];
    const t0 = performance.now();
    try {
      checkAborted(signal);
      suiteResults = await steps.evaluate(model, job, context);
    } finally {
      if (!options.keep) model.cleanup();
    }
    checkAborted(signal);
    if (!options.keep) rmSync(context.workDir, { recursive: true, force: true });
    return {
      id: job.id,
      method: job.method,
      lambda: job.lambda,
      model: job.reuse ?? "merged",
      metrics: Object.fromEntries(suiteResults.map((r) => [r.suite, { ...r.metrics }])),
      examples: pickExamples(suiteResults),
      seconds: { merge: round(model.seconds), eval: round((performance.now() - t0) / 1000) },
      settingsKey: settings.key,
    };
  };

  const runJob = async (job: SweepJob): Promise<void> => {
    const existing = saved.get(job.id);
    if (existing) {
      done++;
      options.onPoint?.(existing, { done, total: jobs.length, isResumed: true });
      onEvent({ kind: "progress", done, total: jobs.length, label: job.id });
      return;
    }
    const key = modelKey(job);
    let evaluated = byModel.get(key);
    if (!evaluated) {
      let pending = inflight.get(key);
      if (!pending) {
        pending = evaluateJob(job);
        inflight.set(key, pending);
      }
      evaluated = await pending;
    }
    // the same weights evaluated under another method's id (λ=0 / λ=1) share the numbers
    const point: PointResult = evaluated.id === job.id ? evaluated : { ...evaluated, id: job.id, method: job.method, lambda: job.lambda, seconds: { merge: 0, eval: 0 } };
    writePoint(out, point);
    byModel.set(key, evaluated);
    computed.push(job.id);
    done++;
    options.onPoint?.(point, { done, total: jobs.length, isResumed: false });
    onEvent({ kind: "progress", done, total: jobs.length, label: job.id });
  };

  onEvent({ kind: "phase", name: "sweep", total: jobs.length, unit: "points" });
  let next = 0;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (next < jobs.length && firstError === undefined) {
      const job = jobs[next++]!;
      try {
        checkAborted(signal);
        await runJob(job);
      } catch (e) {
        if (firstError === undefined) firstError = e;
        stop.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
  if (firstError !== undefined) {
    // a cancellation caused by our own stop() is not the story; the first error is
    throw firstError;
  }
  // points of an earlier, wider grid in the same directory are part of the sweep too
  const rank = (m: string): number => settings.methods.indexOf(m);
  const all = readPoints(out, settings.key).sort((a, b) => rank(a.method) - rank(b.method) || a.lambda - b.lambda);
  return { settings, points: all, computed };
}

function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}

/**
 * Runs suites on one backend: suite × backend × judge → SuiteResult, with the generation cache (resume) and the
 * backend's concurrency. Decoding per suite = the suite's defaults (paper defaults for safety suites: greedy, 512
 * new tokens, repetition penalty 1.2), then an item's own token cap, then the caller's overrides.
 */
import { withGenerationCache, type CacheStats } from "./cache.ts";
import type { Backend, ChatMessage, DecodingSettings, Generation, GenerationRequest, Judge, Suite, SuiteItem, SuiteResult } from "./types.ts";
import { NO_EVENTS, type OnEvent } from "../core/events.ts";
import { CancelledError } from "../errors.ts";
import { judgeNeedsBackend } from "./judges/registry.ts";

export interface EvalOptions {
  /** Generates the responses (openai or llama). */
  readonly backend: Backend;
  readonly suites: readonly Suite[];
  /** Judge for harmful-prompt suites. @default keyword (GCG list) */
  readonly judge?: Judge;
  /** Evaluate a reproducible subset of N items per suite. */
  readonly limit?: number;
  /** Seed of the `limit` subset. @default 1234 */
  readonly seed?: number;
  /** Generation cache directory; undefined = no cache. */
  readonly cacheDir?: string;
  /**
   * System message prepended to items that have none (paper: "You are a helpful assistant." for Llama/Qwen,
   * none for Gemma). @default none
   */
  readonly systemPrompt?: string;
  /** Overrides of every suite's decoding (e.g. maxTokens for a quick run). */
  readonly decoding?: Partial<DecodingSettings>;
  readonly signal?: AbortSignal;
  readonly onEvent?: OnEvent;
}

export interface EvalRun {
  /** One result per suite, in order. */
  readonly results: SuiteResult[];
  /** `{suite: {metric: value}}`. */
  readonly metrics: Record<string, Record<string, number>>;
  /** Decoding actually used per suite. */
  readonly decoding: Record<string, DecodingSettings>;
  readonly modelId: string;
  /** Cache hits/misses (undefined without a cache). */
  readonly cache?: CacheStats & { readonly dir: string };
}

/** The request of one item under `decoding`, with the optional system prompt. */
export function toRequest(item: SuiteItem, decoding: DecodingSettings, systemPrompt: string | undefined, overrides: Partial<DecodingSettings> = {}): GenerationRequest {
  let messages: readonly ChatMessage[] = item.messages;
  if (systemPrompt && !messages.some((m) => m.role === "system")) messages = [{ role: "system", content: systemPrompt }, ...messages];
  const d: DecodingSettings = { ...decoding, ...(item.maxTokens !== undefined ? { maxTokens: item.maxTokens } : {}), ...overrides };
  return { id: item.id, messages, decoding: d };
}

/** Binds the cancellation signal to a judge and reports a model judge's progress as a `judge <suite>` phase. */
function instrumentJudge(judge: Judge | undefined, signal: AbortSignal | undefined, onEvent: OnEvent, suite: string): Judge | undefined {
  if (!judge) return undefined;
  const isModel = judgeNeedsBackend(judge.name);
  return {
    name: judge.name,
    source: judge.source,
    judge: (pairs, o) => {
      let done = 0;
      if (isModel) onEvent({ kind: "phase", name: `judge ${suite}`, total: pairs.length, unit: "items" });
      return judge.judge(pairs, {
        signal: o?.signal ?? signal,
        onResult: (g) => {
          o?.onResult?.(g);
          if (isModel) onEvent({ kind: "progress", done: ++done, total: pairs.length, label: judge.name });
        },
      });
    },
  };
}

/**
 * Evaluates every suite in order. Each generation is cached the moment it arrives (when `cacheDir` is set),
 * so rerunning after Ctrl-C regenerates nothing. Throws CancelledError on abort, BackendError when the backend
 * gives up, InputError for missing suite data.
 */
export async function runEval(options: EvalOptions): Promise<EvalRun> {
  const cached = options.cacheDir ? withGenerationCache(options.backend, options.cacheDir) : undefined;
  try {
    return await evalSuites(options, cached ?? options.backend, cached?.stats);
  } finally {
    cached?.closeCacheFiles();
  }
}

async function evalSuites(options: EvalOptions, backend: Backend, stats: CacheStats | undefined): Promise<EvalRun> {
  const onEvent = options.onEvent ?? NO_EVENTS;
  const modelId = await backend.modelId();
  const results: SuiteResult[] = [];
  const metrics: Record<string, Record<string, number>> = {};
  const decodingUsed: Record<string, DecodingSettings> = {};
  for (const suite of options.suites) {
    if (options.signal?.aborted) throw new CancelledError();
    const items = await suite.load({ limit: options.limit, seed: options.seed });
    const decoding: DecodingSettings = { ...suite.defaultDecoding, ...options.decoding };
    decodingUsed[suite.name] = decoding;
    const requests = items.map((it) => toRequest(it, suite.defaultDecoding, options.systemPrompt, options.decoding));
    onEvent({ kind: "phase", name: `eval ${suite.name}`, total: requests.length, unit: "items" });
    let done = 0;
    const gens: Generation[] = await backend.generate(requests, {
      signal: options.signal,
      onResult: () => onEvent({ kind: "progress", done: ++done, total: requests.length, label: suite.name }),
    });
    const result = await suite.score(items, gens, { judge: instrumentJudge(options.judge, options.signal, onEvent, suite.name) });
    results.push(result);
    metrics[suite.name] = { ...result.metrics };
  }
  return {
    results,
    metrics,
    decoding: decodingUsed,
    modelId,
    cache: options.cacheDir && stats ? { dir: options.cacheDir, hits: stats.hits, misses: stats.misses } : undefined,
  };
}

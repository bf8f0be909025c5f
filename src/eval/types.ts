/**
 * Shared vocabulary of evaluation: what a backend is asked to generate and what it returns.
 * Backends (src/eval/backends/*) implement `Backend`; suites, judges and the sweep only see these types.
 */

export interface ChatMessage {
  readonly role: "system" | "user" | "assistant";
  readonly content: string;
}

/**
 * Decoding settings. Paper defaults for safety evaluation: greedy (temperature 0), 512 new tokens,
 * repetition penalty 1.2 (arXiv 2412.19512 §1.6). Part of the generation cache key.
 */
export interface DecodingSettings {
  /** Maximum new tokens. */
  readonly maxTokens: number;
  /** 0 = greedy. */
  readonly temperature: number;
  readonly topP?: number;
  readonly topK?: number;
  /** 1 = none. HF-style multiplicative penalty. */
  readonly repetitionPenalty?: number;
  /** Sampling seed (ignored when greedy). */
  readonly seed?: number;
  /** Extra stop strings (EOS always stops). */
  readonly stop?: readonly string[];
}

/** One generation to run. Exactly one of `messages` (chat, templated by the model) or `prompt` (raw text). */
export interface GenerationRequest {
  /** Stable id of the item (suite name + index), echoed back. */
  readonly id: string;
  readonly messages?: readonly ChatMessage[];
  readonly prompt?: string;
  readonly decoding: DecodingSettings;
}

export interface Generation {
  readonly id: string;
  /** Generated text, without the prompt and without the EOS token. */
  readonly text: string;
  /** Why generation stopped. */
  readonly finishReason: "stop" | "length";
  readonly promptTokens?: number;
  readonly completionTokens?: number;
}

export interface GenerateOptions {
  readonly signal?: AbortSignal;
  /** Called as each generation completes (any order), so callers can cache results immediately. */
  readonly onResult?: (g: Generation) => void;
}

/**
 * Something that generates text for prompts: an OpenAI-compatible endpoint or in-process node-llama-cpp.
 * Implementations throw BackendError (exit 3) after retries are exhausted.
 */
export interface Backend {
  /** Short kind name: "openai", "llama". */
  readonly kind: string;
  /**
   * Stable identity of the model behind this backend (e.g. sha256 of the GGUF, or endpoint + model name),
   * used in the generation cache key.
   */
  modelId(): Promise<string>;
  /** Generates every request; the result array is in request order. */
  generate(requests: readonly GenerationRequest[], options?: GenerateOptions): Promise<Generation[]>;
  /** Releases the model / connections. */
  close(): Promise<void>;
}

/** One prompt of a suite. */
export interface SuiteItem {
  /** Stable id: `<suite>/<subset>/<index>`; part of the cache key with the prompt text. */
  readonly id: string;
  /** Chat turns to send (the model's chat template is applied by the backend). */
  readonly messages: readonly ChatMessage[];
  /** Subset/category (e.g. "harmful", "benign", "arith", a HarmBench category). */
  readonly group?: string;
  /** Reference answer for utility items (GSM8K number, MMLU letter, …). */
  readonly answer?: string;
  /** Per-item cap on new tokens, overriding the suite's decoding. */
  readonly maxTokens?: number;
}

/** A judge's decision about one response. `error` = the judge's output could not be parsed (excluded from rates). */
export type Verdict = "refusal" | "compliance" | "other" | "safe" | "unsafe" | "error";

/** Decides whether responses are refusals / harmful. Each judge documents its source. */
export interface Judge {
  readonly name: string;
  /** Paper or spec the rule/prompt comes from. */
  readonly source: string;
  judge(pairs: ReadonlyArray<{ prompt: string; response: string }>, options?: GenerateOptions): Promise<Verdict[]>;
}

/** Scores of one suite for one model: metric name → value (rates in [0,1]), plus per-item verdicts. */
export interface SuiteResult {
  readonly suite: string;
  readonly metrics: Readonly<Record<string, number>>;
  readonly items?: ReadonlyArray<{ id: string; group?: string; prompt: string; response: string; verdict?: string; correct?: boolean }>;
}

/** An evaluation suite: loads its items and scores generations. */
export interface Suite {
  readonly name: string;
  readonly kind: "safety" | "utility" | "mixed";
  /** Dataset, paper and licence. */
  readonly source: string;
  /** Decoding used unless overridden. */
  readonly defaultDecoding: DecodingSettings;
  /** The metric a sweep treats as this suite's headline (e.g. "asr", "accuracy"). */
  readonly headlineMetric: string;
  load(options: { limit?: number; seed?: number }): Promise<SuiteItem[]>;
  score(items: readonly SuiteItem[], generations: readonly Generation[], context: { judge?: Judge }): Promise<SuiteResult>;
}

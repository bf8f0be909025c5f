/**
 * Data of a sweep as it is persisted in `<out>/points/*.json` and `<out>/sweep.json`, and as the report
 * builders (src/report) read it. Plain JSON-serialisable shapes; no behaviour.
 */

/** What the sweep knows about a suite, enough to pick its axes without loading it. */
export interface SuiteInfo {
  readonly name: string;
  readonly kind: "safety" | "utility" | "mixed";
  /** The suite's headline metric name (Suite.headlineMetric). */
  readonly headlineMetric: string;
}

/** One example response kept for the report. */
export interface ExampleResponse {
  readonly id: string;
  readonly group?: string;
  readonly prompt: string;
  readonly response: string;
  readonly verdict?: string;
  readonly correct?: boolean;
}

/** The saved result of one (method, λ) point. Written once, atomically, when the point finishes. */
export interface PointResult {
  /** `<method>@<λ>`. */
  readonly id: string;
  readonly method: string;
  readonly lambda: number;
  /** Which weights were evaluated: an input reused as-is, or a merge. */
  readonly model: "aligned" | "tuned" | "merged";
  /** suite → metric → value (rates in [0, 1]), named as each suite names them. */
  readonly metrics: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** suite → a few responses, for the report. */
  readonly examples: Readonly<Record<string, readonly ExampleResponse[]>>;
  /** Wall-clock seconds spent merging (0 when reused) and evaluating. */
  readonly seconds: { readonly merge: number; readonly eval: number };
  /** sweep settings key this point was computed under (see SweepSettings.key). */
  readonly settingsKey: string;
}

/** Everything that determines the sweep's numbers, recorded in report.json. */
export interface SweepSettings {
  /** Path of the aligned model (θ_aligned, λ=0), as given. */
  readonly aligned: string;
  /** Path of the tuned model (θ_tuned, λ=1), as given. */
  readonly tuned: string;
  readonly methods: readonly string[];
  /** The λ grid as requested (the references 0 and 1 are added to the jobs). */
  readonly lambdas: readonly number[];
  readonly suites: readonly SuiteInfo[];
  /** Backend kind and its non-secret options (endpoint URL, threads, …). */
  readonly backend: { readonly kind: string; readonly [option: string]: unknown };
  /** `--limit`: items per suite (undefined = all). */
  readonly limit?: number;
  /** Seed for item subsampling and stochastic merges (DARE). */
  readonly seed: number;
  /** Per-method merge parameters (density, …). */
  readonly methodParams: Readonly<Record<string, unknown>>;
  /** Output dtype of merged weights. */
  readonly dtype?: string;
  /** Decoding overrides, if any (suite defaults otherwise). */
  readonly decoding?: Readonly<Record<string, unknown>>;
  /** Hash of the fields above that change results; a resumed sweep must match it. */
  readonly key: string;
}

/** Versions recorded for reproducibility. */
export interface Versions {
  readonly realign: string;
  readonly node: string;
  readonly [library: string]: string;
}

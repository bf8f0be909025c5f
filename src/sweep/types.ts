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

/** A point with its axis values and standing, as the report shows it. */
export interface SummaryPoint extends PointResult {
  /** ASR axis value (see axes.ts). */
  readonly asr: number;
  /** Utility axis value, or λ when the sweep has no utility suite. */
  readonly utility: number;
  readonly isOnFront: boolean;
  readonly isRecommended: boolean;
}

/** Axis descriptions for the report: which metrics, written `1-suite.metric`, and their means. */
export interface AxesSummary {
  readonly asr: readonly string[];
  /** Empty when λ stands in for utility. */
  readonly utility: readonly string[];
  readonly isUtilityLambda: boolean;
  /** One line explaining the axes. */
  readonly note: string;
}

/** Everything the report builders need, computed purely from the saved points (sweep/summarize.ts). */
export interface SweepSummary {
  readonly settings: SweepSettings;
  readonly versions: Versions;
  /** ISO time the report was built. */
  readonly created: string;
  readonly points: readonly SummaryPoint[];
  readonly axes: AxesSummary;
  /** Ids on the Pareto front, ASR ascending. */
  readonly front: readonly string[];
  readonly recommended: {
    readonly id: string;
    readonly method: string;
    readonly lambda: number;
    /** The rule name: asr-budget | asr-cap | min-asr. */
    readonly rule: string;
    /** The rule in words. */
    readonly ruleText: string;
    readonly ruleParams: Readonly<Record<string, number>>;
    readonly asr: number;
    readonly utility: number;
    readonly alignedAsr: number;
    readonly maxAsr: number | undefined;
    readonly eligible: readonly string[];
    readonly reason: string;
  };
  /** Jobs of the grid with no saved result yet (an unfinished sweep). */
  readonly missing: readonly string[];
}

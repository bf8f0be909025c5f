/**
 * The merge-method contract. A method is a pure description plus float32 kernels over chunks; it does no
 * I/O. `src/merge/run.ts` streams every tensor in chunks (ascending element offset, the same chunking in
 * every pass), decodes each input to float32, optionally runs `measure` passes to gather whole-tensor
 * statistics (norms, top-k thresholds, cosines), then calls `kernel` chunk by chunk and encodes `out`.
 *
 * Model roles (paper terms): `base` is the aligned model (θ_aligned), `models` are the tuned models
 * (θ_tuned, one or more). Methods that take no base (linear, slerp without base…) receive every model in
 * `models` and `base` undefined — see each method's `requiresBase`.
 */

/** Scalar parameter value after schedules (gradients, filters) are resolved for one tensor. */
export type ParamValue = number | boolean | string;

/** Declares a parameter so validation, `--explain` and docs can be generated from data. */
export interface ParamSpec {
  readonly name: string;
  readonly kind: "number" | "boolean" | "string";
  /** Absent ⇒ required. */
  readonly default?: ParamValue;
  /** One line for docs/methods.md and errors. */
  readonly doc: string;
}

/** What a kernel knows about the tensor being merged. */
export interface TensorContext {
  /** Hugging Face tensor name, e.g. `model.layers.3.self_attn.q_proj.weight`. */
  readonly name: string;
  /** Shape, outermost first (safetensors order). */
  readonly shape: readonly number[];
  /** Number of elements (product of shape; 1 for a scalar `[]`). */
  readonly numel: number;
  /** Decoder layer index parsed from the name, or undefined for embeddings / final norm / lm_head. */
  readonly layerIndex: number | undefined;
  /** Number of decoder layers in the model (for per-layer parameter gradients); undefined if unknown. */
  readonly layerCount?: number;
  /** Seed for random methods (DARE, DELLA), derived from the global seed and the tensor name. */
  readonly seed: number;
}

/** Parameters resolved for one tensor: global ones and one record per tuned model (same order as models). */
export interface ResolvedParams {
  readonly global: Readonly<Record<string, ParamValue>>;
  readonly perModel: ReadonlyArray<Readonly<Record<string, ParamValue>>>;
}

/** One chunk of every input, decoded to float32; all arrays have the same length. */
export interface Chunk {
  /** θ_base/aligned for this chunk, when the method has a base. */
  readonly base: Float32Array | undefined;
  /** θ of each tuned model for this chunk. */
  readonly models: readonly Float32Array[];
  /** Element offset of this chunk within the tensor. */
  readonly offset: number;
}

/**
 * A merge method. `S` is its per-tensor statistics state (undefined for elementwise methods).
 * Kernels must be deterministic functions of (chunk, stats, ctx, params): no Math.random, no Date.
 */
export interface MergeMethod<S = unknown> {
  /** mergekit's `merge_method` name, e.g. "ties". */
  readonly name: string;
  /** One line: what it does. */
  readonly summary: string;
  /** Paper or spec followed. */
  readonly paperUrl: string;
  /** Whether `base_model` is required (task-vector methods). */
  readonly requiresBase: boolean;
  /** Minimum number of tuned models (excluding base). */
  readonly minModels: number;
  /**
   * Whether the method draws (seeded) random numbers, so `--seed` changes its output: `true`, or a predicate
   * over the recipe's global parameters (resta: only when `density` < 1). Absent ⇒ deterministic; the seed is
   * then not recorded in the model card or metadata.
   */
  readonly usesSeed?: boolean | ((global: Readonly<Record<string, unknown>>) => boolean);
  /** Maximum number of tuned models (excluding base); absent ⇒ unbounded. slerp and passthrough take 1. */
  readonly maxModels?: number;
  /** Method-level parameters (`parameters:` at the top of a mergekit YAML). */
  readonly globalParams: readonly ParamSpec[];
  /** Per-model parameters (`parameters:` under each model), e.g. weight, density. */
  readonly modelParams: readonly ParamSpec[];
  /**
   * Semantic checks of the resolved parameters of one tensor (e.g. DELLA needs density ± epsilon inside
   * (0, 1)). Returns one message per problem (empty when fine); called before any tensor data is read, so
   * a bad value fails up front. Absent ⇒ no checks beyond the ParamSpec kinds.
   */
  checkParams?(ctx: TensorContext, params: ResolvedParams): string[];
  /** How many full passes over the tensor's chunks `measure` needs before the kernel (0 if none). */
  measurePasses(ctx: TensorContext, params: ResolvedParams): number;
  /** Fresh statistics for one tensor. */
  initStats(ctx: TensorContext, params: ResolvedParams): S;
  /** Accumulates statistics from one chunk during pass `pass` (0-based). */
  measure(pass: number, stats: S, chunk: Chunk, ctx: TensorContext, params: ResolvedParams): void;
  /**
   * Called after pass `pass` has seen every chunk (finalise thresholds, norms…). May return `true` when the
   * statistics are complete early: the runner then skips the remaining measure passes (e.g. TIES top-k
   * needs its third pass only when the boundary bin is too large to collect).
   */
  endPass(pass: number, stats: S, ctx: TensorContext, params: ResolvedParams): void | boolean;
  /** Writes the merged values of this chunk into `out` (same length as the inputs). */
  kernel(chunk: Chunk, out: Float32Array, stats: S, ctx: TensorContext, params: ResolvedParams): void;
  /**
   * Optional: what the method decided for one tensor (e.g. safemerge's cosine ρ and whether it gated the
   * tensor), called once after the tensor's kernel. runMerge lists the reports in the model card and the
   * merge summary (`tensorReports`). undefined ⇒ nothing to report for this tensor.
   */
  report?(stats: S, ctx: TensorContext, params: ResolvedParams): TensorReport | undefined;
}

/** Per-tensor facts a method reports (values printed as they are). */
export type TensorReport = Readonly<Record<string, ParamValue>>;

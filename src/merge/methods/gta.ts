/**
 * The generalized task-arithmetic engine (mergekit `generalized_task_arithmetic.py`): task_arithmetic,
 * ties, dare_linear, dare_ties, breadcrumbs, breadcrumbs_ties, della and della_linear are ROWS of options
 * on this one engine — a sparsifier, a sign consensus and default normalize/rescale — not copies.
 *
 * Per tensor, with base b (the aligned model), tuned models xᵢ, weights wᵢ, densities dᵢ:
 *   δᵢ = f32(xᵢ − b);  δ′ᵢ = sparsify(δᵢ, dᵢ) · rescale;  uᵢ = wᵢ·δ′ᵢ
 *   consensus "sum":  s = sign(Σ uᵢ) (+ on 0); mᵢ = [sign(uᵢ) = s]; merged = Σ mᵢuᵢ; D = Σ mᵢwᵢ (0 → 1)
 *   consensus "none": merged = Σ uᵢ; D = Σ wᵢ (|D| < 1e-8 → 1)
 *   θ = b + λ·(normalize ? merged / D : merged)
 * Per-element arithmetic is float64, rounded once to float32; norms are float64 (see sparsify.ts).
 * The row with no sparsifier and no consensus (task_arithmetic) instead uses the float32 linear form of
 * `weightedSum`, bit-identical to `linear` with weights [1−λ, λ] (the core merge's promise).
 *
 * Rescale (`rescale: true`): `rescale_mode: l1` (default, mergekit ≥ 0.1.0) multiplies the kept entries by
 * ‖δ‖₁ / ‖kept δ‖₁ (skipped when either is < 1e-7); `inverse_density` divides each kept entry by its keep
 * probability (the DARE paper's 1/p: density for DARE, TIES and Breadcrumbs, the per-rank p for DELLA).
 */
import { InternalError } from "../../errors.ts";
import type { Chunk, MergeMethod, ParamSpec, ResolvedParams, TensorContext } from "./types.ts";
import { weightedSum } from "./linear.ts";
import {
  createMagnitudeRanking,
  dellaProbability,
  endRankingPass,
  COLLECT_MAX,
  selectCounting,
  uniformAtLow,
  L1_BLOCK,
  L1_GROUP,
  keepCount,
  keptAt,
  measureRanking,
  rankingPasses,
  rowRanks,
  selectedL1,
  streamKey,
  type MagnitudeRanking,
  type RankSelector,
} from "./sparsify.ts";

/** How each task vector is thinned before merging. */
export type SparsifyKind = "none" | "magnitude" | "random" | "outliers" | "della";
/** How the thinned task vectors are combined. */
export type ConsensusKind = "sum" | "none";

/** One method of the family: a row of options. */
export interface GtaRow {
  readonly name: string;
  readonly summary: string;
  readonly paperUrl: string;
  readonly sparsify: SparsifyKind;
  readonly consensus: ConsensusKind;
  readonly defaultNormalize: boolean;
  readonly defaultRescale: boolean;
}

/** Norm threshold below which the L1 rescale is skipped (mergekit sparsify.py). */
const RESCALE_MIN_NORM = 1e-7;
/**
 * DELLA keeps the ranks of every row from its measure pass for tensors up to this many elements (4 bytes
 * each per model, ≤ 64 MiB), so the kernel does not sort the rows again; larger tensors re-rank each row in the
 * kernel and keep only rows split across chunks.
 */
const DELLA_RANK_CACHE_MAX = 16 * 2 ** 20;
/** |Σw| below which the no-consensus normalisation divides by 1 (mergekit). */
const MIN_WEIGHT_SUM = 1e-8;

export const RESCALE_MODES = ["l1", "inverse_density"] as const;

interface ModelState {
  readonly kind: "identity" | "zero" | "magnitude" | "outliers" | "random" | "della";
  readonly density: number;
  readonly key: number;
  ranking?: MagnitudeRanking;
  /** della: row length, rows split across chunks (partial buffers, then their ranks). */
  rowLength?: number;
  /** Elements in the tensor. */
  numel: number;
  partial?: Map<number, Float32Array>;
  storedRanks?: Map<number, Uint32Array>;
  epsilon?: number;
  l1Total: number;
  l1Kept: number;
  /** random (l1 rescale): lane sums of the block in progress (measureRandom). */
  l1Lanes?: Float64Array;
  /** random (l1 rescale): float32 lane sums of the group in progress (measureRandom). */
  l1Group?: Float32Array;
  /** Tensor-wide rescale factor (l1 mode), set in endPass; 1 otherwise. */
  factor: number;
  passes: number;
  /** Statistics complete (endPass); later measure passes skip this model. */
  final: boolean;
}

interface GtaStats {
  readonly models: ModelState[];
  readonly rescale: boolean;
  readonly mode: (typeof RESCALE_MODES)[number];
}

function num(v: unknown, fallback: number): number {
  return v === undefined ? fallback : Number(v);
}

function rowLengthOf(ctx: TensorContext): number {
  return ctx.shape.length >= 2 ? Math.max(1, ctx.shape[ctx.shape.length - 1]!) : Math.max(1, ctx.numel);
}

function rescaleOf(row: GtaRow, params: ResolvedParams): { rescale: boolean; mode: (typeof RESCALE_MODES)[number] } {
  const rescale = row.sparsify === "none" ? false : params.global.rescale === undefined ? row.defaultRescale : params.global.rescale === true;
  const mode = params.global.rescale_mode === "inverse_density" ? "inverse_density" : "l1";
  return { rescale, mode };
}

function modelState(row: GtaRow, ctx: TensorContext, params: ResolvedParams, i: number, rescale: boolean, mode: string): ModelState {
  const p = params.perModel[i] ?? {};
  const n = ctx.numel;
  const density = num(p.density, 1);
  const key = streamKey(ctx.seed, ctx.name, i);
  const base = { density, key, numel: n, l1Total: 0, l1Kept: 0, factor: 1, passes: 0, final: false };
  const needL1 = rescale && mode === "l1";
  if (row.sparsify === "none" || !(density < 1)) return { kind: "identity", ...base };
  if (!(density > 0) && row.sparsify !== "outliers") return { kind: "zero", ...base };
  switch (row.sparsify) {
    case "magnitude": {
      const k = keepCount(density, n);
      if (k === 0) return { kind: "zero", ...base };
      return { kind: "magnitude", ...base, ranking: createMagnitudeRanking(n, [k], COLLECT_MAX, { countTiesInKernel: true, needL1 }), passes: rankingPasses(n, [k], false) };
    }
    case "outliers": {
      const keep = keepCount(density, n);
      let top = keepCount(num(p.gamma, 0.01), n);
      let bot = n - keep - top;
      if (bot < 0) {
        top += bot;
        bot = 0;
      }
      const ranks = [top, n - bot];
      if (keep === 0) return { kind: "zero", ...base };
      return { kind: "outliers", ...base, ranking: createMagnitudeRanking(n, ranks, COLLECT_MAX, { countTiesInKernel: true, needL1 }), passes: rankingPasses(n, ranks, false) };
    }
    case "random":
      return { kind: "random", ...base, passes: needL1 ? 1 : 0 };
    case "della":
      return {
        kind: "della",
        ...base,
        rowLength: rowLengthOf(ctx),
        partial: new Map(),
        storedRanks: new Map(),
        epsilon: num(p.epsilon, 0.15),
        passes: 1,
      };
  }
}

/**
 * perf: scratch buffers reused across chunks, passes and tensors (one per model index), grown to the
 * largest chunk seen. Only used inside one synchronous measure/kernel call, so interleaved merges in the
 * same process cannot see each other's data. Memory: 4 + 8 bytes per element per model (48 MiB per model
 * for the default 4 Mi-element chunk), allocated once instead of per chunk.
 */
const deltaScratch: Float32Array[] = [];
const weightedScratch: Float64Array[] = [];

function scratchF32(i: number, len: number): Float32Array {
  let b = deltaScratch[i];
  if (b === undefined || b.length < len) deltaScratch[i] = b = new Float32Array(len);
  return b.length === len ? b : b.subarray(0, len);
}

function scratchF64(i: number, len: number): Float64Array {
  let b = weightedScratch[i];
  if (b === undefined || b.length < len) weightedScratch[i] = b = new Float64Array(len);
  return b.length === len ? b : b.subarray(0, len);
}

/** float32 deltas f32(x − b) of one chunk, into model i's scratch buffer (valid until the next call for i). */
function deltaOf(x: Float32Array, b: Float32Array, i: number): Float32Array {
  const n = x.length;
  const d = scratchF32(i, n);
  for (let j = 0; j < n; j++) d[j] = x[j]! - b[j]!;
  return d;
}

function finiteAbs(v: number): number {
  const a = Math.abs(v);
  return a !== Infinity && a === a ? a : 0;
}

/** Visits the rows (of length c) overlapping [offset, offset+len): fn(row, start) with the row's start element. */
function forRows(c: number, offset: number, len: number, fn: (row: number, start: number) => void): void {
  if (len === 0) return;
  const first = Math.floor(offset / c);
  const last = Math.floor((offset + len - 1) / c);
  for (let r = first; r <= last; r++) fn(r, r * c);
}

/** Ranks of row r for the kernel: computed from the chunk when the row lies inside it, else from the measure pass. */
function dellaRowRanks(st: ModelState, delta: Float32Array, offset: number, r: number, start: number): Uint32Array {
  const c = st.rowLength!;
  const cached = st.storedRanks!.get(r);
  if (cached !== undefined) return cached;
  if (start >= offset && start + c <= offset + delta.length) return rowRanks(delta.subarray(start - offset, start - offset + c));
  throw new InternalError(`della: ranks of row ${r} missing (kernel called before its measure pass)`);
}

function measureDella(st: ModelState, delta: Float32Array, offset: number): void {
  const c = st.rowLength!;
  const len = delta.length;
  const account = (row: Float32Array, ranks: Uint32Array, start: number): void => {
    for (let q = 0; q < c; q++) {
      const v = finiteAbs(row[q]!);
      st.l1Total += v;
      if (keptAt(st.key, start + q, dellaProbability(st.density, st.epsilon!, ranks[q]!, c))) st.l1Kept += v;
    }
  };
  const cacheAll = st.numel <= DELLA_RANK_CACHE_MAX;
  forRows(c, offset, len, (r, start) => {
    const end = start + c;
    if (start >= offset && end <= offset + len) {
      const row = delta.subarray(start - offset, end - offset);
      const ranks = rowRanks(row);
      if (cacheAll) st.storedRanks!.set(r, ranks);
      account(row, ranks, start);
      return;
    }
    let buf = st.partial!.get(r);
    if (buf === undefined) st.partial!.set(r, (buf = new Float32Array(c)));
    const from = Math.max(start, offset);
    const to = Math.min(end, offset + len);
    buf.set(delta.subarray(from - offset, to - offset), from - start);
    if (end <= offset + len) {
      const ranks = rowRanks(buf);
      st.storedRanks!.set(r, ranks);
      st.partial!.delete(r);
      account(buf, ranks, start);
    }
  });
}

/** Writes δ′ (float64, sparsified and rescaled) of one model for one chunk. */
function sparsifyChunk(st: ModelState, stats: GtaStats, delta: Float32Array, offset: number, out: Float64Array, n: number): void {
  const len = delta.length;
  const inverse = stats.rescale && stats.mode === "inverse_density";
  const f = stats.rescale ? (inverse ? 1 / st.density : st.factor) : 1;
  switch (st.kind) {
    case "identity":
      for (let j = 0; j < len; j++) out[j] = delta[j]!;
      return;
    case "zero":
      out.fill(0);
      return;
    case "magnitude":
    case "outliers": {
      const bits = new Uint32Array(delta.buffer, delta.byteOffset, len);
      const sels = st.ranking!.selectors;
      const outer = sels[sels.length - 1]!;
      const inner = st.kind === "outliers" ? sels[0]! : undefined;
      if (inner !== undefined) {
        // both selectors see every element in index order (they count their ties)
        for (let j = 0; j < len; j++) {
          const a = bits[j]! & 0x7fffffff;
          const inOuter = selectCounting(outer, n, a);
          const inInner = selectCounting(inner, n, a);
          out[j] = inOuter && !inInner ? delta[j]! * f : 0;
        }
        return;
      }
      // perf: isSelected(outer, …) inlined: keep iff |δ| bits above V, or equal to V at index ≤ cutoff
      if (outer.rank <= 0) {
        out.fill(0);
        return;
      }
      if (outer.rank >= n) {
        for (let j = 0; j < len; j++) out[j] = delta[j]! * f;
        return;
      }
      // selectCounting(outer, …) inlined: keep |δ| above V, and the first tiesNeeded entries equal to V
      const vb = outer.valueBits;
      const need = outer.tiesNeeded;
      let seen = outer.kernelTies;
      for (let j = 0; j < len; j++) {
        const a = bits[j]! & 0x7fffffff;
        if (a > vb) out[j] = delta[j]! * f;
        else if (a === vb && seen < need) {
          seen++;
          out[j] = delta[j]! * f;
        } else out[j] = 0;
      }
      outer.kernelTies = seen;
      return;
    }
    case "random": {
      const key = st.key;
      const p = st.density;
      if (offset + len <= 4294967296) {
        for (let j = 0; j < len; j++) out[j] = uniformAtLow(key, offset + j) < p ? delta[j]! * f : 0;
        return;
      }
      for (let j = 0; j < len; j++) out[j] = keptAt(key, offset + j, p) ? delta[j]! * f : 0;
      return;
    }
    case "della": {
      const c = st.rowLength!;
      forRows(c, offset, len, (r, start) => {
        const ranks = dellaRowRanks(st, delta, offset, r, start);
        const from = Math.max(start, offset);
        const to = Math.min(start + c, offset + len);
        for (let pos = from; pos < to; pos++) {
          const p = dellaProbability(st.density, st.epsilon!, ranks[pos - start]!, c);
          const kept = keptAt(st.key, pos, p);
          out[pos - offset] = kept ? delta[pos - offset]! * (inverse ? 1 / p : f) : 0;
        }
      });
      return;
    }
  }
}

function globalSpecs(row: GtaRow): ParamSpec[] {
  const specs: ParamSpec[] = [
    { name: "lambda", kind: "number", default: 1, doc: "scale of the merged task vector" },
    {
      name: "normalize",
      kind: "boolean",
      default: row.defaultNormalize,
      doc: row.consensus === "sum" ? "divide by the sum of the weights of the models agreeing with the elected sign" : "divide the summed task vector by Σ weights",
    },
    { name: "int8_mask", kind: "boolean", default: false, doc: "accepted for mergekit compatibility; no effect on results" },
  ];
  if (row.sparsify !== "none") {
    specs.push(
      { name: "rescale", kind: "boolean", default: row.defaultRescale, doc: "rescale the kept entries (see rescale_mode)" },
      { name: "rescale_mode", kind: "string", default: "l1", doc: "l1: match ‖δ‖₁ of the full task vector (mergekit ≥ 0.1); inverse_density: divide by the keep probability (DARE paper)" },
    );
  }
  return specs;
}

function modelSpecs(row: GtaRow): ParamSpec[] {
  const specs: ParamSpec[] = [{ name: "weight", kind: "number", doc: "weight of this model's task vector" }];
  if (row.sparsify !== "none") {
    const what =
      row.sparsify === "random" ? "keep probability of each entry" : row.sparsify === "della" ? "mean keep probability" : "fraction of entries kept (k = floor(density·n))";
    specs.push({ name: "density", kind: "number", default: 1, doc: what });
  }
  if (row.sparsify === "outliers") specs.push({ name: "gamma", kind: "number", default: 0.01, doc: "fraction of largest-magnitude entries dropped as outliers" });
  if (row.sparsify === "della") specs.push({ name: "epsilon", kind: "number", default: 0.15, doc: "keep probabilities span density ± epsilon by magnitude rank" });
  return specs;
}

function checkRow(row: GtaRow, params: ResolvedParams): string[] {
  const problems: string[] = [];
  if (row.sparsify !== "none") {
    const mode = params.global.rescale_mode;
    if (mode !== undefined && !(RESCALE_MODES as readonly unknown[]).includes(mode)) {
      problems.push(`rescale_mode: got ${JSON.stringify(mode)}, expected one of ${RESCALE_MODES.join(", ")}`);
    }
  }
  params.perModel.forEach((p, i) => {
    const d = num(p.density, 1);
    if (row.sparsify === "outliers") {
      const g = num(p.gamma, 0.01);
      if (!(g >= 0 && g <= 1)) problems.push(`model ${i + 1}: gamma: got ${g}, expected 0 ≤ gamma ≤ 1`);
    }
    if (row.sparsify === "della") {
      const e = num(p.epsilon, 0.15);
      if (!(e >= 0)) problems.push(`model ${i + 1}: epsilon: got ${e}, expected ≥ 0`);
      else if (d > 0 && d < 1 && !(d - e > 0 && d + e < 1)) {
        problems.push(`model ${i + 1}: density ± epsilon: got ${d} ± ${e}, expected both strictly between 0 and 1`);
      }
    }
  });
  return problems;
}

/** Builds one method of the family from its row. */
export function createGtaMethod(row: GtaRow): MergeMethod<GtaStats | undefined> {
  const linearForm = row.sparsify === "none" && row.consensus === "none";
  return {
    name: row.name,
    summary: row.summary,
    paperUrl: row.paperUrl,
    requiresBase: true,
    usesSeed: row.sparsify === "random" || row.sparsify === "della",
    minModels: 1,
    globalParams: globalSpecs(row),
    modelParams: modelSpecs(row),
    checkParams: (_ctx, params) => checkRow(row, params),
    measurePasses(ctx, params) {
      if (linearForm) return 0;
      const { rescale, mode } = rescaleOf(row, params);
      let passes = 0;
      for (let i = 0; i < params.perModel.length; i++) passes = Math.max(passes, modelState(row, ctx, params, i, rescale, mode).passes);
      return passes;
    },
    initStats(ctx, params) {
      if (linearForm) return undefined;
      const { rescale, mode } = rescaleOf(row, params);
      return { models: params.perModel.map((_, i) => modelState(row, ctx, params, i, rescale, mode)), rescale, mode };
    },
    measure(pass, stats, chunk, _ctx, _params) {
      if (stats === undefined) return;
      for (let i = 0; i < stats.models.length; i++) {
        const st = stats.models[i]!;
        if (pass >= st.passes || st.final) continue;
        const delta = deltaOf(chunk.models[i]!, chunk.base!, i);
        if (st.kind === "magnitude" || st.kind === "outliers") measureRanking(pass, st.ranking!, delta, chunk.offset);
        else if (st.kind === "della") measureDella(st, delta, chunk.offset);
        else if (st.kind === "random") measureRandom(st, delta, chunk.offset);
      }
    },
    endPass(pass, stats, _ctx, _params) {
      if (stats === undefined) return true;
      let complete = true;
      for (const st of stats.models) {
        if (pass >= st.passes || st.final) continue;
        let final = pass === st.passes - 1;
        if (st.ranking !== undefined) {
          // the ranking may finish before its last pass (bf16 boundary bin, collected ties, kernel-counted ties)
          final = endRankingPass(pass, st.ranking) || final;
          if (final) {
            const sels = st.ranking.selectors;
            st.l1Total = st.ranking.l1Total;
            st.l1Kept = st.kind === "outliers" ? selectedL1(sels[1]!, st.ranking) - selectedL1(sels[0]!, st.ranking) : selectedL1(sels[0]!, st.ranking);
          }
        }
        if (!final) {
          complete = false;
          continue;
        }
        st.final = true;
        if (stats.rescale && stats.mode === "l1") {
          st.factor = st.l1Total >= RESCALE_MIN_NORM && st.l1Kept >= RESCALE_MIN_NORM ? st.l1Total / st.l1Kept : 1;
        }
      }
      return complete;
    },
    kernel(chunk, out, stats, ctx, params) {
      const base = chunk.base!;
      const lambda = num(params.global.lambda, 1);
      const weights = params.perModel.map((p) => Number(p.weight));
      const normalize = params.global.normalize === undefined ? row.defaultNormalize : params.global.normalize === true;
      if (linearForm) {
        linearFormKernel(chunk, out, lambda, weights, normalize);
        return;
      }
      if (stats === undefined) throw new InternalError(`${row.name}: kernel called without stats from initStats`);
      combineKernel(row, chunk, out, stats, ctx.numel, lambda, weights, normalize);
    },
  };
}

/**
 * task_arithmetic's float32 linear form: θ = c₀·θ_base + Σ cᵢ·θᵢ with cᵢ = λ·wᵢ (÷ Σw if normalize) and
 * c₀ = 1 − Σ cᵢ, each product rounded to float32 (so one tuned model with weight λ gives exactly the bytes
 * of `linear` with weights [1−λ, λ]).
 */
function linearFormKernel(chunk: Chunk, out: Float32Array, lambda: number, weights: number[], normalize: boolean): void {
  const wsum = weights.reduce((a, b) => a + b, 0);
  const scale = normalize && wsum !== 0 ? lambda / wsum : lambda;
  const coefs = weights.map((w) => scale * w);
  const c0 = 1 - coefs.reduce((a, b) => a + b, 0);
  weightedSum([chunk.base!, ...chunk.models], [c0, ...coefs], out);
}

function combineKernel(row: GtaRow, chunk: Chunk, out: Float32Array, stats: GtaStats, n: number, lambda: number, weights: number[], normalize: boolean): void {
  const base = chunk.base!;
  const len = out.length;
  const m = stats.models.length;
  if (m === 2 && row.consensus === "sum") {
    const s0 = partialMagnitude(stats.models[0]!, n);
    const s1 = partialMagnitude(stats.models[1]!, n);
    const m0 = stats.models[0]!;
    const m1 = stats.models[1]!;
    if (m0.kind === "random" && m1.kind === "random" && chunk.offset + len <= 4294967296) {
      dare2(chunk.models[0]!, chunk.models[1]!, base, weights[0]!, weights[1]!, scaleOf(m0, stats), scaleOf(m1, stats), m0, m1, chunk.offset, out, lambda, normalize);
      return;
    }
    if (s0 !== undefined && s1 !== undefined) {
      ties2(chunk.models[0]!, chunk.models[1]!, base, scratchF32(0, len), scratchF32(1, len), weights[0]!, weights[1]!, scaleOf(stats.models[0]!, stats), scaleOf(stats.models[1]!, stats), s0, s1, out, lambda, normalize);
      return;
    }
  }
  const us: Float64Array[] = [];
  for (let i = 0; i < m; i++) {
    const u = scratchF64(i, len);
    const st = stats.models[i]!;
    const w = weights[i]!;
    const sel = st.kind === "magnitude" ? st.ranking!.selectors[0]! : undefined;
    if (sel !== undefined && sel.rank > 0 && sel.rank < n) {
      magnitudeWeighted(chunk.models[i]!, base, scratchF32(i, len), u, w, stats.rescale ? (stats.mode === "inverse_density" ? 1 / st.density : st.factor) : 1, sel);
    } else {
      sparsifyChunk(st, stats, deltaOf(chunk.models[i]!, base, i), chunk.offset, u, n);
      for (let j = 0; j < len; j++) u[j] = w * u[j]!;
    }
    us.push(u);
  }
  if (row.consensus === "sum") {
    if (m === 2) electSign2(us[0]!, us[1]!, weights[0]!, weights[1]!, base, out, lambda, normalize);
    else electSignOut(us, weights, base, out, lambda, normalize);
    return;
  }
  let wsum = 0;
  for (const w of weights) wsum += w;
  const d = normalize && Math.abs(wsum) >= MIN_WEIGHT_SUM ? wsum : 1;
  for (let j = 0; j < len; j++) {
    let merged = 0;
    for (let i = 0; i < m; i++) merged = merged + us[i]![j]!;
    out[j] = base[j]! + lambda * (merged / d);
  }
}

/** The selector of a "magnitude" model whose rank is partial (0 < k < n), else undefined. */
function partialMagnitude(st: ModelState, n: number): RankSelector | undefined {
  if (st.kind !== "magnitude") return undefined;
  const sel = st.ranking!.selectors[0]!;
  return sel.rank > 0 && sel.rank < n ? sel : undefined;
}

/** sparsifyChunk's factor f of one model. */
function scaleOf(st: ModelState, stats: GtaStats): number {
  return stats.rescale ? (stats.mode === "inverse_density" ? 1 / st.density : st.factor) : 1;
}

/**
 * perf: TIES with two models in one loop — magnitudeWeighted for each model, then electSign2 — without the
 * float64 u arrays; the same float64 operations in the same order, so the same bits.
 */
function ties2(
  x0: Float32Array,
  x1: Float32Array,
  b: Float32Array,
  d0: Float32Array,
  d1: Float32Array,
  w0: number,
  w1: number,
  f0: number,
  f1: number,
  s0: RankSelector,
  s1: RankSelector,
  out: Float32Array,
  lambda: number,
  normalize: boolean,
): void {
  const len = out.length;
  const db0 = new Uint32Array(d0.buffer, d0.byteOffset, len);
  const db1 = new Uint32Array(d1.buffer, d1.byteOffset, len);
  const vb0 = s0.valueBits;
  const vb1 = s1.valueBits;
  const need0 = s0.tiesNeeded;
  const need1 = s1.tiesNeeded;
  let seen0 = s0.kernelTies;
  let seen1 = s1.kernelTies;
  for (let j = 0; j < len; j++) {
    const bj = b[j]!;
    d0[j] = x0[j]! - bj;
    d1[j] = x1[j]! - bj;
    const a0 = db0[j]! & 0x7fffffff;
    const a1 = db1[j]! & 0x7fffffff;
    let v0 = 0;
    if (a0 > vb0) v0 = d0[j]! * f0;
    else if (a0 === vb0 && seen0 < need0) {
      seen0++;
      v0 = d0[j]! * f0;
    }
    let v1 = 0;
    if (a1 > vb1) v1 = d1[j]! * f1;
    else if (a1 === vb1 && seen1 < need1) {
      seen1++;
      v1 = d1[j]! * f1;
    }
    const a = w0 * v0;
    const c = w1 * v1;
    out[j] = electSign2At(a, c, w0, w1, bj, lambda, normalize);
  }
  s0.kernelTies = seen0;
  s1.kernelTies = seen1;
}

/**
 * perf: DARE-TIES with two models in one loop — sparsifyChunk "random" (uniformAtLow, offset + len ≤ 2³²),
 * ×w, then electSign2 — without scratch arrays; the same float64 operations in the same order.
 */
function dare2(
  x0: Float32Array,
  x1: Float32Array,
  b: Float32Array,
  w0: number,
  w1: number,
  f0: number,
  f1: number,
  st0: ModelState,
  st1: ModelState,
  offset: number,
  out: Float32Array,
  lambda: number,
  normalize: boolean,
): void {
  const len = out.length;
  const key0 = st0.key;
  const key1 = st1.key;
  const p0 = st0.density;
  const p1 = st1.density;
  for (let j = 0; j < len; j++) {
    const bj = b[j]!;
    const d0 = Math.fround(x0[j]! - bj);
    const d1 = Math.fround(x1[j]! - bj);
    const a = w0 * (uniformAtLow(key0, offset + j) < p0 ? d0 * f0 : 0);
    const c = w1 * (uniformAtLow(key1, offset + j) < p1 ? d1 * f1 : 0);
    out[j] = electSign2At(a, c, w0, w1, bj, lambda, normalize);
  }
}

/**
 * perf: deltaOf → sparsifyChunk ("magnitude", partial rank) → ×w in one loop:
 * u[j] = w · (kept ? f32(x − b)·f : 0), with the kernel counting the ties (selectCounting inlined).
 */
function magnitudeWeighted(x: Float32Array, b: Float32Array, d: Float32Array, u: Float64Array, w: number, f: number, sel: RankSelector): void {
  const len = u.length;
  const db = new Uint32Array(d.buffer, d.byteOffset, len);
  const vb = sel.valueBits;
  const need = sel.tiesNeeded;
  let seen = sel.kernelTies;
  for (let j = 0; j < len; j++) {
    d[j] = x[j]! - b[j]!;
    const a = db[j]! & 0x7fffffff;
    let v = 0;
    if (a > vb) v = d[j]! * f;
    else if (a === vb && seen < need) {
      seen++;
      v = d[j]! * f;
    }
    u[j] = w * v;
  }
  sel.kernelTies = seen;
}

/**
 * electSign (sparsify.ts) fused with the output: θ = b + λ·(normalize ? merged/denom : merged), the same
 * float64 operations in the same order, without the merged/denom arrays.
 */
function electSignOut(us: readonly Float64Array[], weights: readonly number[], base: Float32Array, out: Float32Array, lambda: number, normalize: boolean): void {
  const len = out.length;
  const m = us.length;
  for (let j = 0; j < len; j++) {
    let total = 0;
    for (let i = 0; i < m; i++) total += us[i]![j]!;
    const positive = !(total < 0); // NaN total elects +
    let sum = 0;
    let d = 0;
    for (let i = 0; i < m; i++) {
      const v = us[i]![j]!;
      if (positive ? v > 0 : v < 0) {
        sum += v;
        d += weights[i]!;
      } else if (v !== v) {
        sum += v;
      }
    }
    const denom = d === 0 ? 1 : d;
    out[j] = base[j]! + lambda * (normalize ? sum / denom : sum);
  }
}

/** electSignOut for two models (the common case), unrolled; identical arithmetic. */
function electSign2(u0: Float64Array, u1: Float64Array, w0: number, w1: number, base: Float32Array, out: Float32Array, lambda: number, normalize: boolean): void {
  const len = out.length;
  for (let j = 0; j < len; j++) out[j] = electSign2At(u0[j]!, u1[j]!, w0, w1, base[j]!, lambda, normalize);
}

/**
 * One element of the two-model sign election: the weighted task-vector terms a (model 0) and c (model 1)
 * that agree with the sign of a + c are summed (NaN terms always pass through), divided by the weights of
 * the agreeing models when `normalize`, scaled by λ and added to the base value `bj`. Float64 throughout.
 */
function electSign2At(a: number, c: number, w0: number, w1: number, bj: number, lambda: number, normalize: boolean): number {
  let total = 0;
  total += a;
  total += c;
  let sum = 0;
  let d = 0;
  if (!(total < 0)) {
    if (a > 0) {
      sum += a;
      d += w0;
    } else if (a !== a) sum += a;
    if (c > 0) {
      sum += c;
      d += w1;
    } else if (c !== c) sum += c;
  } else {
    if (a < 0) {
      sum += a;
      d += w0;
    } else if (a !== a) sum += a;
    if (c < 0) {
      sum += c;
      d += w1;
    } else if (c !== c) sum += c;
  }
  const denom = d === 0 ? 1 : d;
  return bj + lambda * (normalize ? sum / denom : sum);
}

/**
 * DARE measure pass (l1 rescale): Σ|δ| over the finite entries, and over the kept ones, in a fixed blocked
 * order that does not depend on chunking (so the fast path can sum blocks on any worker): the tensor is cut
 * into blocks of L1_BLOCK elements from element 0 and each block into groups of L1_GROUP; in a group, lane l
 * (element index mod 4) adds its entries in index order in float32 from +0; each group's four lane sums are
 * added (float64) to the block's lane sums, which start at +0; the block's sum is (lane₀ + lane₂) + (lane₁ +
 * lane₃), and the totals add the block sums in block order. A group's float32 sum has at most 15 roundings
 * (relative error below 10⁻⁶) and overflows to +Inf only past 3.4·10³⁸. Chunks arrive in ascending,
 * contiguous order; the partial group and block at the tensor's end are added with its last element.
 */
function measureRandom(st: ModelState, delta: Float32Array, offset: number): void {
  const key = st.key;
  const p = st.density;
  const lanes = (st.l1Lanes ??= new Float64Array(8)); // block sums by lane: totals, then kept
  const group = (st.l1Group ??= new Float32Array(8)); // the group's float32 lane sums: totals, then kept
  const len = delta.length;
  const low = offset + len <= 4294967296;
  // the lane and the elements left in the group and block, counted instead of taken modulo (offsets may pass 2³¹)
  let l = offset % 4;
  let inGroup = L1_GROUP - (offset % L1_GROUP);
  let inBlock = L1_BLOCK - (offset % L1_BLOCK);
  for (let j = 0; j < len; j++) {
    const g = offset + j;
    const v = finiteAbs(delta[j]!);
    group[l] = group[l]! + v; // (Float32Array: rounded to float32)
    if (low ? uniformAtLow(key, g) < p : keptAt(key, g, p)) group[4 + l] = group[4 + l]! + v;
    l = (l + 1) & 3;
    const last = g + 1 === st.numel;
    if (--inGroup === 0 || last) {
      for (let q = 0; q < 8; q++) lanes[q] = lanes[q]! + group[q]!;
      group.fill(0);
      inGroup = L1_GROUP;
    }
    if (--inBlock === 0 || last) {
      st.l1Total += (lanes[0]! + lanes[2]!) + (lanes[1]! + lanes[3]!);
      st.l1Kept += (lanes[4]! + lanes[6]!) + (lanes[5]! + lanes[7]!);
      lanes.fill(0);
      inBlock = L1_BLOCK;
    }
  }
}

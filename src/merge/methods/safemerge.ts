/**
 * `safemerge`: SafeMERGE-style cosine-gated layer merge, DATA-FREE variant (after Djuhera, Kadhe, Ahmed,
 * Zawad, Boche 2025, https://arxiv.org/abs/2503.17239; code aladinD/SafeMERGE `utils.py`; paper.md §2.1).
 *
 * For every targeted 2-D weight W (stored [out, in]):
 *   V  = W_aligned − W_unaligned                 (the alignment direction)
 *   C  = V·Vᵀ / ‖V‖_F                              (out × out; C = 0 when ‖V‖_F < 1e-9, as the reference)
 *   ΔW = W_tuned − W_aligned                      (what fine-tuning changed)
 *   ρ  = cos(vec(C·ΔW), vec(ΔW)), rounded to 5 decimals (torch cosine_similarity: 0 for a zero vector);
 *        0 ≤ ρ ≤ 1 since C is positive semi-definite, so τ ≤ 0 gates nothing and τ > 1 everything (no passes)
 *   ρ < τ (`threshold`, 0.35 as the reference CLI):  θ = (1 − w)·θ_tuned + w·θ_aligned   (w = `safe_weight`, 0.2,
 *          i.e. the reference's weights [0.8, 0.2]);  otherwise θ = θ_tuned.
 * Tensors that are not targeted (norms, biases, and by default embeddings and lm_head) stay θ_tuned.
 *
 * Where realign differs, honestly: the original merges the fine-tuned LoRA with a separately trained "safe
 * LoRA" (trained on 100–2,500 safety samples) and combines LoRA factors through PEFT (cross terms B_ft·A_safe).
 * realign needs no data: the SAFE MODEL IS THE ALIGNED MODEL ITSELF, and the gated mix is done on full
 * weights, so a gated layer is exactly the paper's linear merge (arXiv 2412.19512) at λ = 1 − w for that
 * layer. The gate (ρ against the Safe LoRA projection) is the reference's, applied to the full ΔW instead
 * of B·A.
 *
 * Cost, without ever forming C: C·ΔW = V·(Vᵀ·ΔW)/‖V‖. Pass 0 streams rows r (v_r, d_r) and accumulates
 * M = Vᵀ·ΔW = Σ_r v_rᵀ·d_r (in × in, float64), ‖V‖² and ‖ΔW‖²; then ⟨C·ΔW, ΔW⟩ = ‖M‖²_F / ‖V‖. Pass 1
 * accumulates ‖C·ΔW‖² = Σ_r ‖v_r·M‖² / ‖V‖². Memory 8·in² bytes per tensor; time 2·out·in² multiply-adds.
 * Fine for small models (the organism: < 0.1 s per tensor). An 8B Llama's attention (4096 × 4096) needs
 * 128 MiB and ~1.4·10¹¹ multiply-adds per tensor (minutes each in JavaScript), and its down_proj (in =
 * 14336) 1.6 GiB: `max_inner` (default 8192) refuses such tensors up front with an error naming them;
 * narrow `targets` (e.g. q_proj,v_proj) or raise `max_inner` knowingly.
 *
 * Rows split across chunks are buffered (one pending row), so results do not depend on chunking.
 * The per-tensor ρ and decision are reported through `report` (model card, --json summary).
 */
import { ConfigError } from "../../errors.ts";
import { weightedSum } from "./linear.ts";
import { checkRoles, roleIndices, ROLE_PARAM } from "./safety-roles.ts";
import type { MergeMethod, ResolvedParams, TensorContext, TensorReport } from "./types.ts";

/** Reference CLI defaults (aladinD/SafeMERGE): cos_threshold 0.35, weighting [0.8, 0.2]. */
export const SAFEMERGE_DEFAULT_THRESHOLD = 0.35;
export const SAFEMERGE_DEFAULT_SAFE_WEIGHT = 0.2;
/** Largest inner dimension (columns) handled by default: an 8192² float64 accumulator is 512 MiB. */
export const SAFEMERGE_DEFAULT_MAX_INNER = 8192;
/** ‖V‖_F below this ⇒ C = 0 (reference). */
const V_NORM_MIN = 1e-9;
/** torch cosine_similarity eps. */
const COS_EPS = 1e-8;

interface SafemergeStats {
  readonly targeted: boolean;
  readonly tuned: number;
  readonly unaligned: number;
  readonly cols: number;
  /** M = Vᵀ·ΔW, cols × cols, row-major (targeted tensors only). */
  m: Float64Array | undefined;
  vSq: number;
  dSq: number;
  mSq: number;
  vmSq: number;
  /** Pending partial row (chunks that split a row). */
  readonly rowV: Float64Array;
  readonly rowD: Float64Array;
  rowFill: number;
  rho: number;
  gated: boolean;
}

/** Whether a tensor is gated at all: 2-D, and matched by `targets` ("layers" | "all" | comma-separated name parts). */
export function isTargeted(ctx: TensorContext, targets: string): boolean {
  if (ctx.shape.length !== 2) return false;
  if (targets === "layers") return ctx.layerIndex !== undefined;
  if (targets === "all") return true;
  return targets
    .split(",")
    .map((s) => s.trim())
    .some((s) => s !== "" && ctx.name.includes(s));
}

/**
 * ρ = cos(vec(C·ΔW), vec(ΔW)) from the sums, rounded to 5 decimals; C = V·Vᵀ/‖V‖.
 * @param vSq ‖V‖²  @param dSq ‖ΔW‖²  @param mSq ‖VᵀΔW‖²  @param vmSq ‖V·VᵀΔW‖²
 */
export function safemergeRho(vSq: number, dSq: number, mSq: number, vmSq: number): number {
  const vn = Math.sqrt(vSq);
  if (!(vn >= V_NORM_MIN)) return 0;
  const dot = mSq / vn;
  const denom = Math.max((Math.sqrt(vmSq) / vn) * Math.sqrt(dSq), COS_EPS);
  const rho = dot / denom;
  return Number.isFinite(rho) ? Math.round(rho * 1e5) / 1e5 : 0;
}

/**
 * ρ is never negative (C = V·Vᵀ/‖V‖ is positive semi-definite: ⟨C·ΔW, ΔW⟩ = ‖VᵀΔW‖²/‖V‖ ≥ 0) and at most 1,
 * so τ ≤ 0 gates nothing and τ > 1 gates everything without measuring: returns that decision, else undefined.
 */
function decidedByThreshold(params: ResolvedParams): boolean | undefined {
  const tau = Number(params.global.threshold);
  if (tau <= 0) return false;
  if (tau > 1) return true;
  return undefined;
}

function rolesOrThrow(ctx: TensorContext, params: ResolvedParams): { tuned: number; unaligned: number } {
  const problems = checkRoles(params);
  if (problems.length > 0) {
    throw new ConfigError("recipe.bad_param", `bad safemerge roles for tensor ${ctx.name}: ${problems.join("; ")}`, {
      hint: "give base_model: <aligned>, and two models with parameters {role: tuned} and {role: unaligned}",
    });
  }
  return roleIndices(params);
}

function sizeProblem(ctx: TensorContext, params: ResolvedParams): string | undefined {
  if (!isTargeted(ctx, String(params.global.targets))) return undefined;
  const cols = ctx.shape[1]!;
  const max = Number(params.global.max_inner);
  if (cols <= max) return undefined;
  const mib = Math.round((8 * cols * cols) / 2 ** 20);
  return `inner dimension ${cols} > max_inner ${max}: the data-free SafeMERGE cosine needs a ${cols}×${cols} float64 accumulator (${mib} MiB) and ${(2 * ctx.shape[0]! * cols * cols).toExponential(1)} multiply-adds; narrow targets (e.g. targets: q_proj,v_proj) or raise max_inner`;
}

/** Feeds the rows of one chunk (whole rows directly, split rows through the pending buffer) to `fn(v, d)`. */
function forEachRow(st: SafemergeStats, a: Float32Array, t: Float32Array, u: Float32Array, offset: number, fn: (v: Float64Array, d: Float64Array) => void): void {
  const c = st.cols;
  const n = a.length;
  let j = 0;
  while (j < n) {
    const col = (offset + j) % c;
    const take = Math.min(c - col, n - j);
    if (col === 0 && take === c) {
      const v = new Float64Array(c);
      const d = new Float64Array(c);
      fill(v, d, a, t, u, j, 0, c);
      fn(v, d);
    } else {
      if (col === 0) st.rowFill = 0;
      fill(st.rowV, st.rowD, a, t, u, j, col, take);
      st.rowFill += take;
      if (col + take === c) fn(st.rowV, st.rowD);
    }
    j += take;
  }
}

/** m[at .. at+c) += s·x[0 .. c) (one row of the outer product vᵀ·d). */
function accumulateRow(m: Float64Array, at: number, s: number, x: Float64Array, c: number): void {
  for (let k = 0; k < c; k++) m[at + k] += s * x[k]!;
}

/** y[0 .. c) += s·m[at .. at+c) (one term of the row-vector product v·M). */
function addScaledRow(y: Float64Array, m: Float64Array, at: number, s: number, c: number): void {
  for (let k = 0; k < c; k++) y[k] += s * m[at + k]!;
}

/** v = a − u, d = t − a in float64 (exact for float32 inputs); non-finite entries count as 0. */
function fill(v: Float64Array, d: Float64Array, a: Float32Array, t: Float32Array, u: Float32Array, from: number, at: number, len: number): void {
  for (let q = 0; q < len; q++) {
    const x = a[from + q]!;
    const vv = x - u[from + q]!;
    const dd = t[from + q]! - x;
    v[at + q] = Number.isFinite(vv) ? vv : 0;
    d[at + q] = Number.isFinite(dd) ? dd : 0;
  }
}

export const safemerge: MergeMethod<SafemergeStats> = {
  name: "safemerge",
  summary: "per 2-D weight, merge toward the aligned model where the fine-tune's update is off the alignment subspace (data-free SafeMERGE)",
  paperUrl: "https://arxiv.org/abs/2503.17239",
  requiresBase: true,
  minModels: 2,
  maxModels: 2,
  globalParams: [
    { name: "threshold", kind: "number", default: SAFEMERGE_DEFAULT_THRESHOLD, doc: "τ: gate (merge toward aligned) when ρ = cos(C·ΔW, ΔW) < τ (reference CLI 0.35; paper τ ≈ 0.6–0.8)" },
    { name: "safe_weight", kind: "number", default: SAFEMERGE_DEFAULT_SAFE_WEIGHT, doc: "w: a gated weight becomes (1 − w)·θ_tuned + w·θ_aligned (reference weights [0.8, 0.2])" },
    { name: "targets", kind: "string", default: "layers", doc: "gated 2-D weights: layers (decoder layers), all (also embeddings, lm_head), or comma-separated name parts (q_proj,v_proj)" },
    { name: "max_inner", kind: "number", default: SAFEMERGE_DEFAULT_MAX_INNER, doc: "refuse targeted weights with more columns (memory 8·in² bytes, time 2·out·in²)" },
  ],
  modelParams: [ROLE_PARAM],
  checkParams(ctx, params) {
    const problems = checkRoles(params);
    const w = Number(params.global.safe_weight);
    if (!(w >= 0 && w <= 1)) problems.push(`safe_weight: got ${params.global.safe_weight}, expected 0 ≤ safe_weight ≤ 1`);
    if (Number.isNaN(Number(params.global.threshold))) problems.push(`threshold: got ${params.global.threshold}, expected a number`);
    const size = sizeProblem(ctx, params);
    if (size !== undefined) problems.push(size);
    return problems;
  },
  measurePasses(ctx, params) {
    return isTargeted(ctx, String(params.global.targets)) && decidedByThreshold(params) === undefined ? 2 : 0;
  },
  initStats(ctx, params) {
    const { tuned, unaligned } = rolesOrThrow(ctx, params);
    const targeted = isTargeted(ctx, String(params.global.targets));
    const size = sizeProblem(ctx, params);
    if (size !== undefined) throw new ConfigError("merge.tensor_too_large", `safemerge: tensor ${ctx.name} ${JSON.stringify(ctx.shape)}: ${size}`, { details: { tensor: ctx.name, shape: ctx.shape } });
    const cols = targeted ? ctx.shape[1]! : 0;
    return {
      targeted,
      tuned,
      unaligned,
      cols,
      m: targeted ? new Float64Array(cols * cols) : undefined,
      vSq: 0,
      dSq: 0,
      mSq: 0,
      vmSq: 0,
      rowV: new Float64Array(cols),
      rowD: new Float64Array(cols),
      rowFill: 0,
      rho: Number.NaN,
      gated: targeted && decidedByThreshold(params) === true,
    };
  },
  measure(pass, st, chunk) {
    if (!st.targeted || st.cols === 0) return;
    const m = st.m;
    if (m === undefined) return; // pass 1 after ‖V‖ = 0: nothing to add
    const c = st.cols;
    const a = chunk.base!;
    const t = chunk.models[st.tuned]!;
    const u = chunk.models[st.unaligned]!;
    if (pass === 0) {
      forEachRow(st, a, t, u, chunk.offset, (v, d) => {
        let vSq = 0;
        let dSq = 0;
        for (let i = 0; i < c; i++) {
          const vi = v[i]!;
          const di = d[i]!;
          vSq += vi * vi;
          dSq += di * di;
          if (vi !== 0) accumulateRow(m, i * c, vi, d, c);
        }
        st.vSq += vSq;
        st.dSq += dSq;
      });
    } else {
      const y = new Float64Array(c);
      forEachRow(st, a, t, u, chunk.offset, (v) => {
        y.fill(0);
        for (let i = 0; i < c; i++) {
          const vi = v[i]!;
          if (vi !== 0) addScaledRow(y, m, i * c, vi, c);
        }
        let s = 0;
        for (let k = 0; k < c; k++) s += y[k]! * y[k]!;
        st.vmSq += s;
      });
    }
  },
  endPass(pass, st, _ctx, params) {
    if (!st.targeted) return;
    if (pass === 0) {
      let s = 0;
      for (const x of st.m!) s += x * x;
      st.mSq = s;
      if (!(Math.sqrt(st.vSq) >= V_NORM_MIN)) st.m = undefined;
      return;
    }
    st.m = undefined;
    st.rho = safemergeRho(st.vSq, st.dSq, st.mSq, st.vmSq);
    st.gated = st.rho < Number(params.global.threshold);
  },
  kernel(chunk, out, st, _ctx, params) {
    const t = chunk.models[st.tuned]!;
    if (!st.gated) return void out.set(t);
    const w = Number(params.global.safe_weight);
    weightedSum([chunk.base!, t], [w, 1 - w], out);
  },
  report(st): TensorReport | undefined {
    if (!st.targeted) return undefined;
    if (Number.isNaN(st.rho)) return { rho: "not computed (threshold outside (0, 1])", gated: st.gated };
    const sig = (x: number): number => Number(x.toPrecision(5));
    return { rho: st.rho, gated: st.gated, alignment_norm: sig(Math.sqrt(st.vSq)), update_norm: sig(Math.sqrt(st.dSq)) };
  },
};

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
 * Fine for small models (the organism: 1.3·10⁹ multiply-adds in all, seconds). An 8B Llama's attention (4096 × 4096) needs
 * 128 MiB and ~1.4·10¹¹ multiply-adds per tensor (minutes each in JavaScript), and its down_proj (in =
 * 14336) 1.6 GiB: `max_inner` (default 8192) refuses such tensors up front with an error naming them;
 * narrow `targets` (e.g. q_proj,v_proj) or raise `max_inner` knowingly.
 *
 * Rows are processed in fixed blocks of 4 (a row split across chunks is completed by the next chunk), so
 * results do not depend on chunking.
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
  /** A block of up to BLOCK consecutive rows (v = a − u, d = t − a), filled across chunks in row order. */
  readonly blockV: Float64Array;
  readonly blockD: Float64Array;
  /** Complete rows in the block. */
  blockRows: number;
  /** Scratch for pass 1: v_r·M of each row in the block. */
  readonly blockY: Float64Array;
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

/** Rows per block: M is read once per block instead of once per row (the loops are memory-bound). */
const BLOCK = 4;

/**
 * Copies the rows of one chunk into the row block (a row split across chunks is completed by the next chunk)
 * and calls `flush` whenever BLOCK rows are complete. Blocks always hold rows [BLOCK·q, BLOCK·q + BLOCK), so the
 * floating-point order, and therefore ρ, does not depend on chunking; the last partial block is flushed in endPass.
 */
function feedRows(st: SafemergeStats, a: Float32Array, t: Float32Array, u: Float32Array, offset: number, flush: (st: SafemergeStats) => void): void {
  const c = st.cols;
  const n = a.length;
  let j = 0;
  while (j < n) {
    const col = (offset + j) % c;
    const take = Math.min(c - col, n - j);
    fill(st.blockV, st.blockD, a, t, u, j, st.blockRows * c + col, take);
    j += take;
    if (col + take === c && ++st.blockRows === BLOCK) {
      flush(st);
      st.blockRows = 0;
    }
  }
}

/** Pass 0 on the block: ‖V‖², ‖ΔW‖² (row by row, in row order) and M += Σ_b v_bᵀ·d_b. */
function flushMeasure(st: SafemergeStats): void {
  const c = st.cols;
  const nb = st.blockRows;
  const V = st.blockV;
  const D = st.blockD;
  const m = st.m!;
  for (let b = 0; b < nb; b++) {
    let vSq = 0;
    let dSq = 0;
    for (let k = b * c; k < (b + 1) * c; k++) {
      vSq += V[k]! * V[k]!;
      dSq += D[k]! * D[k]!;
    }
    st.vSq += vSq;
    st.dSq += dSq;
  }
  if (nb === BLOCK) {
    const d0 = D.subarray(0, c);
    const d1 = D.subarray(c, 2 * c);
    const d2 = D.subarray(2 * c, 3 * c);
    const d3 = D.subarray(3 * c, 4 * c);
    for (let i = 0; i < c; i++) {
      const s0 = V[i]!;
      const s1 = V[c + i]!;
      const s2 = V[2 * c + i]!;
      const s3 = V[3 * c + i]!;
      if (s0 === 0 && s1 === 0 && s2 === 0 && s3 === 0) continue;
      const at = i * c;
      for (let k = 0; k < c; k++) m[at + k] += s0 * d0[k]! + s1 * d1[k]! + s2 * d2[k]! + s3 * d3[k]!;
    }
    return;
  }
  for (let b = 0; b < nb; b++) {
    const d = D.subarray(b * c, (b + 1) * c);
    for (let i = 0; i < c; i++) {
      const s = V[b * c + i]!;
      if (s === 0) continue;
      const at = i * c;
      for (let k = 0; k < c; k++) m[at + k] += s * d[k]!;
    }
  }
}

/** Pass 1 on the block: ‖C·ΔW‖²·‖V‖² += Σ_b ‖v_b·M‖² (row order). */
function flushProject(st: SafemergeStats): void {
  const c = st.cols;
  const nb = st.blockRows;
  const V = st.blockV;
  const Y = st.blockY;
  const m = st.m!;
  Y.fill(0);
  if (nb === BLOCK) {
    const y0 = Y.subarray(0, c);
    const y1 = Y.subarray(c, 2 * c);
    const y2 = Y.subarray(2 * c, 3 * c);
    const y3 = Y.subarray(3 * c, 4 * c);
    for (let i = 0; i < c; i++) {
      const s0 = V[i]!;
      const s1 = V[c + i]!;
      const s2 = V[2 * c + i]!;
      const s3 = V[3 * c + i]!;
      if (s0 === 0 && s1 === 0 && s2 === 0 && s3 === 0) continue;
      const at = i * c;
      for (let k = 0; k < c; k++) {
        const x = m[at + k]!;
        y0[k] += s0 * x;
        y1[k] += s1 * x;
        y2[k] += s2 * x;
        y3[k] += s3 * x;
      }
    }
  } else {
    for (let b = 0; b < nb; b++) {
      const y = Y.subarray(b * c, (b + 1) * c);
      for (let i = 0; i < c; i++) {
        const s = V[b * c + i]!;
        if (s === 0) continue;
        const at = i * c;
        for (let k = 0; k < c; k++) y[k] += s * m[at + k]!;
      }
    }
  }
  for (let b = 0; b < nb; b++) {
    let sq = 0;
    for (let k = b * c; k < (b + 1) * c; k++) sq += Y[k]! * Y[k]!;
    st.vmSq += sq;
  }
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
      blockV: new Float64Array(targeted ? BLOCK * cols : 0),
      blockD: new Float64Array(targeted ? BLOCK * cols : 0),
      blockRows: 0,
      blockY: new Float64Array(targeted ? BLOCK * cols : 0),
      rho: Number.NaN,
      gated: targeted && decidedByThreshold(params) === true,
    };
  },
  measure(pass, st, chunk) {
    if (!st.targeted || st.cols === 0 || st.m === undefined) return; // m is dropped after pass 0 when ‖V‖ = 0
    feedRows(st, chunk.base!, chunk.models[st.tuned]!, chunk.models[st.unaligned]!, chunk.offset, pass === 0 ? flushMeasure : flushProject);
  },
  endPass(pass, st, _ctx, params) {
    if (!st.targeted) return;
    if (st.blockRows > 0 && st.m !== undefined) (pass === 0 ? flushMeasure : flushProject)(st);
    st.blockRows = 0;
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

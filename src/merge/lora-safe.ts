/**
 * Safe LoRA (Hsu et al., NeurIPS 2024, https://arxiv.org/abs/2405.16833; code IBM/SafeLoRA `model.py`):
 * project the LoRA update of the layers least aligned with the "alignment direction" onto it, with no data
 * and no training. Inputs: the unaligned base model θ_base, the aligned model θ_aligned, the LoRA adapter.
 *
 * For every LoRA-targeted weight (stored [out, in]):
 *   V = W_aligned − W_base,   C = V·Vᵀ / ‖V‖_F   (out × out; IBM's approximate projection)
 *   cos = cos(vec(C·B·A), vec(B·A)), rounded to 5 decimals as IBM does
 *   if cos ≤ τ:  B ← C·B   (A unchanged), else the layer is left as trained.
 * Layer selection: "threshold" (cos ≤ τ, IBM default τ = 0.5) or "number" (the n layers with the lowest
 * cos, IBM default n = 10; ties at the n-th value are projected too, as IBM's `≤` does).
 * Diagnostic Pdst = mean over layers of 1/(1 + ‖B_new − C·B‖_F) (IBM: "> 0.8 is better").
 *
 * Without ever forming C: C·B = V·(Vᵀ·B)/‖V‖ (two streaming passes over the rows of V, 2·out·in·r flops
 * each), and the cosine from r×r Gram matrices: with G = A·Aᵀ, ⟨X·A, Y·A⟩_F = Σₖₗ (XᵀY)ₖₗ·Gₖₗ.
 * Sums are float64 (a decision and a new B, not a bit-exact merge). Layers where V = 0 (the weight did not
 * change in alignment) have no direction: cos is NaN and they are never projected. Weights stored [in, out]
 * (GPT-2 Conv1D) use V = V_storedᵀ; embedding LoRAs are left as trained, with a warning.
 */
import { numelOf, type Checkpoint, type TensorSource } from "../core/tensor.ts";
import { IncompatibleModelsError, UsageError } from "../errors.ts";
import type { AdapterMapping, PeftAdapter } from "../formats/peft/adapter.ts";

export type SafeLoraSelect = { readonly mode: "threshold"; readonly threshold: number } | { readonly mode: "number"; readonly count: number };

/** IBM/SafeLoRA defaults. */
export const SAFE_LORA_DEFAULT_THRESHOLD = 0.5;
export const SAFE_LORA_DEFAULT_LAYERS = 10;

export interface SafeLoraLayer {
  /** Aligned tensor name, e.g. model.layers.3.self_attn.q_proj.weight. */
  readonly target: string;
  /** cos(vec(C·B·A), vec(B·A)) rounded to 5 decimals; NaN when V = 0. */
  readonly cos: number;
  /** ‖W_aligned − W_base‖_F. */
  readonly alignmentNorm: number;
  readonly projected: boolean;
}

export interface SafeLoraResult {
  /** Adapter tensor name (lora_B) → projected B (float32, [out, r]) for projected layers. */
  readonly overrides: ReadonlyMap<string, Float32Array>;
  readonly layers: readonly SafeLoraLayer[];
  /** Threshold actually applied (τ, or the n-th lowest cosine in "number" mode). */
  readonly threshold: number;
  /** Mean of 1/(1 + ‖B_new − C·B‖_F) over the layers considered. */
  readonly pdst: number;
  readonly warnings: readonly string[];
}

const ROW_CHUNK_ELEMS = 1 << 20;

async function readAllF32(adapter: PeftAdapter, name: string, overrides?: ReadonlyMap<string, Float32Array>): Promise<Float32Array> {
  const o = overrides?.get(name);
  if (o !== undefined) return o;
  const src = adapter.file.tensor(name);
  const out = new Float32Array(numelOf(src.shape));
  await src.read(0, out.length, out);
  return out;
}

/**
 * C·B and the statistics of one weight: streams rows of W_aligned and W_base twice.
 * @returns cb [out, r] float64 (zeros when V = 0) and ‖V‖_F.
 */
async function projectB(
  aligned: Checkpoint,
  base: Checkpoint,
  name: string,
  outDim: number,
  inDim: number,
  b: Float32Array,
  r: number,
  transposed: boolean,
): Promise<{ cb: Float64Array; norm: number }> {
  if (transposed) return projectBTransposed(aligned, base, name, outDim, inDim, b, r);
  const rows = outDim;
  const cols = inDim;
  const wa = aligned.openTensor(name);
  const wb = base.openTensor(name);
  const rowsPerChunk = Math.max(1, Math.floor(ROW_CHUNK_ELEMS / cols));
  const bufA = new Float32Array(rowsPerChunk * cols);
  const bufB = new Float32Array(rowsPerChunk * cols);
  const m = new Float64Array(cols * r); // Vᵀ·B, [in, r]
  let normSq = 0;
  const forEachChunk = storedRowChunks(wa, wb, rows, cols, bufA, bufB, rowsPerChunk);
  // pass 1: M = Vᵀ·B and ‖V‖²
  await forEachChunk((row0, nRows) => {
    for (let q = 0; q < nRows; q++) {
      const i = row0 + q;
      const vb = q * cols;
      for (let j = 0; j < cols; j++) {
        const v = bufA[vb + j]!;
        if (v === 0) continue;
        normSq += v * v;
        const mb = j * r;
        for (let k = 0; k < r; k++) m[mb + k] = m[mb + k]! + v * b[i * r + k]!;
      }
    }
  });
  const norm = Math.sqrt(normSq);
  const cb = new Float64Array(rows * r);
  if (norm === 0) return { cb, norm };
  // pass 2: C·B = V·M / ‖V‖
  await forEachChunk((row0, nRows) => {
    for (let q = 0; q < nRows; q++) {
      const i = row0 + q;
      const vb = q * cols;
      for (let j = 0; j < cols; j++) {
        const v = bufA[vb + j]!;
        if (v === 0) continue;
        const mb = j * r;
        for (let k = 0; k < r; k++) cb[i * r + k] = cb[i * r + k]! + v * m[mb + k]!;
      }
    }
    for (let e = row0 * r; e < (row0 + nRows) * r; e++) cb[e] = cb[e]! / norm;
  });
  return { cb, norm };
}

/** Iterates the stored rows of V = W_aligned − W_base in chunks (float32 difference of the stored values, in bufA). */
function storedRowChunks(
  wa: TensorSource,
  wb: TensorSource,
  rows: number,
  cols: number,
  bufA: Float32Array,
  bufB: Float32Array,
  rowsPerChunk: number,
): (fn: (row0: number, nRows: number) => void) => Promise<void> {
  return async (fn) => {
    for (let row0 = 0; row0 < rows; row0 += rowsPerChunk) {
      const nRows = Math.min(rowsPerChunk, rows - row0);
      const n = nRows * cols;
      await Promise.all([wa.read(row0 * cols, n, bufA), wb.read(row0 * cols, n, bufB)]);
      for (let e = 0; e < n; e++) bufA[e] = bufA[e]! - bufB[e]!;
      fn(row0, nRows);
    }
  };
}

/**
 * C·B for a weight stored [in, out] (GPT-2 Conv1D): V = V_storedᵀ, so with stored row j (input index j)
 * M[j,:] = (Vᵀ·B)[j,:] = V_stored[j,:]·B and (C·B)[i,:] = Σⱼ V_stored[j,i]·M[j,:] / ‖V‖.
 */
async function projectBTransposed(
  aligned: Checkpoint,
  base: Checkpoint,
  name: string,
  outDim: number,
  inDim: number,
  b: Float32Array,
  r: number,
): Promise<{ cb: Float64Array; norm: number }> {
  const rows = inDim;
  const cols = outDim;
  const wa = aligned.openTensor(name);
  const wb = base.openTensor(name);
  const rowsPerChunk = Math.max(1, Math.floor(ROW_CHUNK_ELEMS / cols));
  const bufA = new Float32Array(rowsPerChunk * cols);
  const bufB = new Float32Array(rowsPerChunk * cols);
  const forEachChunk = storedRowChunks(wa, wb, rows, cols, bufA, bufB, rowsPerChunk);
  const m = new Float64Array(inDim * r);
  let normSq = 0;
  await forEachChunk((row0, nRows) => {
    for (let q = 0; q < nRows; q++) {
      const j = row0 + q;
      const vb = q * cols;
      for (let i = 0; i < cols; i++) {
        const v = bufA[vb + i]!;
        if (v === 0) continue;
        normSq += v * v;
        for (let k = 0; k < r; k++) m[j * r + k] = m[j * r + k]! + v * b[i * r + k]!;
      }
    }
  });
  const norm = Math.sqrt(normSq);
  const cb = new Float64Array(outDim * r);
  if (norm === 0) return { cb, norm };
  await forEachChunk((row0, nRows) => {
    for (let q = 0; q < nRows; q++) {
      const j = row0 + q;
      const vb = q * cols;
      for (let i = 0; i < cols; i++) {
        const v = bufA[vb + i]!;
        if (v === 0) continue;
        for (let k = 0; k < r; k++) cb[i * r + k] = cb[i * r + k]! + v * m[j * r + k]!;
      }
    }
  });
  for (let e = 0; e < cb.length; e++) cb[e] = cb[e]! / norm;
  return { cb, norm };
}

/** Σₖₗ (XᵀY)ₖₗ·Gₖₗ = ⟨X·A, Y·A⟩_F for X, Y [rows, r] and G = A·Aᵀ [r, r]. */
function gramInner(x: ArrayLike<number>, y: ArrayLike<number>, g: Float64Array, rows: number, r: number): number {
  const xty = new Float64Array(r * r);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < r; k++) {
      const xv = x[i * r + k]!;
      if (xv === 0) continue;
      for (let l = 0; l < r; l++) xty[k * r + l] = xty[k * r + l]! + xv * y[i * r + l]!;
    }
  }
  let s = 0;
  for (let e = 0; e < r * r; e++) s += xty[e]! * g[e]!;
  return s;
}

/**
 * Computes Safe LoRA's per-layer cosines and the projected B of the selected layers.
 * @param aligned the aligned model (the adapter's base); @param base the unaligned base model it was aligned from.
 * @throws UsageError `safe_lora.bad_threshold` / `safe_lora.bad_count`; IncompatibleModelsError
 *   `safe_lora.missing_tensor` / `safe_lora.shape_mismatch` when the base lacks a targeted weight or differs in shape.
 */
export async function safeLoraProjection(
  aligned: Checkpoint,
  base: Checkpoint,
  adapter: PeftAdapter,
  mapping: AdapterMapping,
  select: SafeLoraSelect,
): Promise<SafeLoraResult> {
  if (select.mode === "threshold" && !(select.threshold >= -1 && select.threshold <= 1)) {
    throw new UsageError("safe_lora.bad_threshold", `Safe LoRA threshold: got ${select.threshold}, expected a cosine from -1 to 1`);
  }
  if (select.mode === "number" && !(Number.isInteger(select.count) && select.count >= 0)) {
    throw new UsageError("safe_lora.bad_count", `Safe LoRA layer count: got ${select.count}, expected a whole number ≥ 0`);
  }
  const warnings: string[] = [];
  const computed: { target: string; bName: string; cos: number; norm: number; b: Float32Array; cb: Float64Array; rows: number; r: number }[] = [];
  let skipped = 0;
  for (const e of mapping.entries.values()) {
    if (e.kind !== "lora") continue;
    if (e.embedding) {
      skipped++;
      continue;
    }
    const bt = base.tensors.get(e.target);
    const at = aligned.tensors.get(e.target)!;
    if (bt === undefined) {
      throw new IncompatibleModelsError("safe_lora.missing_tensor", `tensor ${e.target} of the aligned model is missing in the unaligned base ${base.path}`, {
        details: { tensor: e.target, base: base.path },
        hint: "Safe LoRA needs the model the aligned model was aligned from (same architecture and shapes)",
      });
    }
    if (bt.shape.length !== at.shape.length || bt.shape.some((d, i) => d !== at.shape[i])) {
      throw new IncompatibleModelsError(
        "safe_lora.shape_mismatch",
        `shape of ${e.target} in the unaligned base ${base.path}: got [${bt.shape.join(",")}], expected [${at.shape.join(",")}] as in the aligned model`,
        { details: { tensor: e.target, base: base.path }, hint: "Safe LoRA needs the model the aligned model was aligned from" },
      );
    }
    const [a, b] = await Promise.all([readAllF32(adapter, e.aName), readAllF32(adapter, e.bName)]);
    const { rank: r, outDim: rows, inDim: cols } = e;
    const { cb, norm } = await projectB(aligned, base, e.target, rows, cols, b, r, e.transposed);
    const g = new Float64Array(r * r);
    for (let k = 0; k < r; k++) {
      for (let l = k; l < r; l++) {
        let s = 0;
        for (let j = 0; j < cols; j++) s += a[k * cols + j]! * a[l * cols + j]!;
        g[k * r + l] = s;
        g[l * r + k] = s;
      }
    }
    let cos = NaN;
    if (norm > 0) {
      const num = gramInner(cb, b, g, rows, r);
      const den = Math.sqrt(gramInner(cb, cb, g, rows, r) * gramInner(b, b, g, rows, r));
      cos = den > 0 ? Math.round((num / den) * 1e5) / 1e5 : NaN;
    }
    computed.push({ target: e.target, bName: e.bName, cos, norm, b, cb, rows, r });
  }
  if (skipped > 0) warnings.push(`Safe LoRA: ${skipped} embedding LoRA(s) are not projected (Safe LoRA is defined for linear layers)`);

  let threshold: number;
  if (select.mode === "threshold") threshold = select.threshold;
  else {
    const sorted = computed.map((c) => c.cos).filter((c) => !Number.isNaN(c)).sort((x, y) => x - y);
    threshold = select.count === 0 || sorted.length === 0 ? -Infinity : sorted[Math.min(select.count, sorted.length) - 1]!;
  }
  const overrides = new Map<string, Float32Array>();
  const layers: SafeLoraLayer[] = [];
  let pdstSum = 0;
  for (const c of computed) {
    const projected = !Number.isNaN(c.cos) && c.cos <= threshold;
    let dist = 0;
    if (projected) overrides.set(c.bName, Float32Array.from(c.cb));
    else for (let e = 0; e < c.b.length; e++) dist += (c.b[e]! - c.cb[e]!) ** 2;
    pdstSum += 1 / (1 + Math.sqrt(dist));
    layers.push({ target: c.target, cos: c.cos, alignmentNorm: c.norm, projected });
  }
  return { overrides, layers, threshold, pdst: computed.length === 0 ? NaN : pdstSum / computed.length, warnings };
}

/**
 * `slerp`: spherical linear interpolation from the base (aligned, t = 0) to the other model (tuned, t = 1),
 * per tensor, flattened (Shoemake 1985; mergekit `slerp`; paper §1.5 "SLERP (mergekit)").
 *
 * One measure pass accumulates ‖v₀‖², ‖v₁‖² and ⟨v₀, v₁⟩ in float64 (non-finite products left out). Each
 * norm is used only when > 1e-8 (else 1, as mergekit), d = ⟨v₀, v₁⟩ / (‖v₀‖‖v₁‖). If |d| > 0.9995 (or d is
 * not finite) the result is the lerp (1−t)·v₀ + t·v₁; otherwise θ = acos d and
 * θ_out = sin((1−t)θ)/sin θ · v₀ + sin(tθ)/sin θ · v₁, on the unnormalised tensors. Per element in float64,
 * rounded once to float32. t = 0 and t = 1 copy an endpoint bit for bit (no pass). Scalar and 1-element
 * tensors work (|d| = 1 ⇒ lerp; mergekit#660 crashed on 0-d tensors).
 */
import type { MergeMethod } from "./types.ts";

/** |cos| above which slerp falls back to lerp (mergekit DOT_THRESHOLD). */
export const SLERP_DOT_THRESHOLD = 0.9995;
/** Norms at or below this are not used to normalise (mergekit eps). */
const SLERP_EPS = 1e-8;

interface SlerpStats {
  dot: number;
  sq0: number;
  sq1: number;
  c0: number;
  c1: number;
  isLerp: boolean;
}

/** Interpolation coefficients (c₀ on base, c₁ on other) from the float64 sums; exported for tests and --explain. */
export function slerpCoefficients(t: number, dot: number, sq0: number, sq1: number): { c0: number; c1: number; isLerp: boolean } {
  const n0 = Math.sqrt(sq0);
  const n1 = Math.sqrt(sq1);
  const d = dot / ((n0 > SLERP_EPS ? n0 : 1) * (n1 > SLERP_EPS ? n1 : 1));
  if (!Number.isFinite(d) || Math.abs(d) > SLERP_DOT_THRESHOLD) return { c0: 1 - t, c1: t, isLerp: true };
  const theta = Math.acos(d);
  const s = Math.sin(theta);
  return { c0: Math.sin((1 - t) * theta) / s, c1: Math.sin(t * theta) / s, isLerp: false };
}

export const slerp: MergeMethod<SlerpStats> = {
  name: "slerp",
  summary: "spherical interpolation from the base (t = 0) to the other model (t = 1), per tensor",
  paperUrl: "https://en.wikipedia.org/wiki/Slerp",
  requiresBase: true,
  minModels: 1,
  maxModels: 1,
  globalParams: [{ name: "t", kind: "number", doc: "interpolation factor: 0 = base (aligned), 1 = the other model (tuned)" }],
  modelParams: [],
  measurePasses(_ctx, params) {
    const t = Number(params.global.t);
    return t === 0 || t === 1 ? 0 : 1;
  },
  initStats: () => ({ dot: 0, sq0: 0, sq1: 0, c0: 1, c1: 0, isLerp: true }),
  measure(_pass, stats, chunk) {
    const v0 = chunk.base!;
    const v1 = chunk.models[0]!;
    // running sums in element order (not per-chunk partials): identical bits for any chunking
    let dot = stats.dot;
    let sq0 = stats.sq0;
    let sq1 = stats.sq1;
    for (let j = 0; j < v0.length; j++) {
      const a = v0[j]!;
      const b = v1[j]!;
      const ab = a * b;
      if (Number.isFinite(ab)) dot += ab;
      if (Number.isFinite(a)) sq0 += a * a;
      if (Number.isFinite(b)) sq1 += b * b;
    }
    stats.dot = dot;
    stats.sq0 = sq0;
    stats.sq1 = sq1;
  },
  endPass(_pass, stats, _ctx, params) {
    const c = slerpCoefficients(Number(params.global.t), stats.dot, stats.sq0, stats.sq1);
    stats.c0 = c.c0;
    stats.c1 = c.c1;
    stats.isLerp = c.isLerp;
  },
  kernel(chunk, out, stats, _ctx, params) {
    const t = Number(params.global.t);
    const v0 = chunk.base!;
    const v1 = chunk.models[0]!;
    if (t === 0) return void out.set(v0);
    if (t === 1) return void out.set(v1);
    const { c0, c1 } = stats;
    for (let j = 0; j < out.length; j++) {
      out[j] = c0 === 0 ? c1 * v1[j]! : c1 === 0 ? c0 * v0[j]! : c0 * v0[j]! + c1 * v1[j]!;
    }
  },
};

/** SafeMERGE (data-free) golden values on hand-computed 2×2 matrices, a brute-force reference, chunking invariance. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { applyMethod, tensorContext } from "./apply.ts";
import { safemerge, safemergeRho, isTargeted } from "./safemerge.ts";
import type { ResolvedParams, TensorContext } from "./types.ts";

const f32 = (xs: number[]): Float32Array => new Float32Array(xs);
const T = { role: "tuned" };
const U = { role: "unaligned" };
const P = (global: ResolvedParams["global"] = {}): ResolvedParams => ({
  global: { threshold: 0.35, safe_weight: 0.2, targets: "layers", max_inner: 8192, ...global },
  perModel: [T, U],
});
const layerCtx = (shape: number[], name = "model.layers.0.self_attn.q_proj.weight"): TensorContext => tensorContext(name, shape, 0, 0);

/** Runs the method like runMerge does (applyMethod), keeping its stats to read the report. */
function run(a: number[], t: number[], u: number[], shape: number[], params: ResolvedParams, chunk?: number, ctx = layerCtx(shape)) {
  const stats = safemerge.initStats(ctx, params);
  const out = applyMethod({ ...safemerge, initStats: () => stats }, { base: f32(a), models: [f32(t), f32(u)] }, ctx, params, chunk);
  return { out: [...out], report: safemerge.report!(stats, ctx, params) as { rho: number; gated: boolean } | undefined };
}

// 2×2 case 1: V = [[1,0],[0,0]] (alignment changed W[0,0] only) → C = [[1,0],[0,0]] (keeps the first row).
// ΔW = [[3,0],[4,0]] → C·ΔW = [[3,0],[0,0]]; ρ = 9 / (3·5) = 0.6.
const A1 = [1, 0, 0, 0];
const U1 = [0, 0, 0, 0];
const T1 = [4, 0, 4, 0];

test("safemerge 2×2 golden: ρ = 0.6 → kept at τ = 0.35, gated at τ = 0.7 (0.8·tuned + 0.2·aligned)", () => {
  const keep = run(A1, T1, U1, [2, 2], P());
  assert.equal(keep.report!.rho, 0.6);
  assert.equal(keep.report!.gated, false);
  assert.deepEqual(keep.out, T1);
  const gate = run(A1, T1, U1, [2, 2], P({ threshold: 0.7 }));
  assert.equal(gate.report!.gated, true);
  assert.deepEqual(gate.out, [Math.fround(Math.fround(0.2) * 1 + Math.fround(0.8) * 4), 0, Math.fround(Math.fround(0.8) * 4), 0]);
  // the gate is strict: ρ = τ keeps the fine-tune (reference: cos < threshold)
  assert.equal(run(A1, T1, U1, [2, 2], P({ threshold: 0.6 })).report!.gated, false);
  assert.equal(run(A1, T1, U1, [2, 2], P({ threshold: 0.60001 })).report!.gated, true);
});

test("safemerge 2×2 golden: V = [[1,1],[1,1]], ΔW = [[1,0],[0,−1]] → C·ΔW = [[1,−1],[1,−1]], ρ = 2/(2·√2) = 0.70711", () => {
  const r = run([1, 1, 1, 1], [2, 1, 1, 0], [0, 0, 0, 0], [2, 2], P());
  assert.equal(r.report!.rho, 0.70711);
  assert.equal(safemergeRho(4, 2, 4, 16), 0.70711); // ‖V‖² 4, ‖ΔW‖² 2, ‖VᵀΔW‖² 4, ‖V·VᵀΔW‖² 16
});

test("safemerge: ΔW orthogonal to the alignment subspace (ρ = 0) and V = 0 (C = 0, ρ = 0) are gated", () => {
  const orth = run(A1, [1, 0, 0, 1], U1, [2, 2], P());
  assert.equal(orth.report!.rho, 0);
  assert.equal(orth.report!.gated, true);
  const noV = run([1, 2, 3, 4], [2, 2, 3, 4], [1, 2, 3, 4], [2, 2], P());
  assert.equal(noV.report!.rho, 0);
  assert.equal(noV.report!.gated, true);
});

test("safemerge: τ = −1 gates nothing (output = tuned bit for bit), τ = 2 gates everything; w = 0 copies tuned", () => {
  const a = [0.5, -1, 2, 0.25, 3, -0];
  const t = [-0, 7, 2.5, 0.125, Number.NaN, 1];
  const u = [0, 0, 1, 1, 1, 1];
  const none = run(a, t, u, [2, 3], P({ threshold: -1 }));
  assert.equal(none.report!.gated, false);
  assert.equal(safemerge.measurePasses(layerCtx([2, 3]), P({ threshold: -1 })), 0, "ρ ≥ 0: no need to measure");
  assert.equal(safemerge.measurePasses(layerCtx([2, 3]), P({ threshold: 0.5 })), 2);
  assert.ok(Object.is(none.out[0], -0) && Number.isNaN(none.out[4]!));
  assert.deepEqual(none.out.filter((_, j) => j !== 4), [-0, 7, 2.5, 0.125, 1]);
  const all = run(a, t, u, [2, 3], P({ threshold: 2 }));
  assert.equal(all.report!.gated, true);
  assert.equal(all.out[1], Math.fround(Math.fround(0.2) * -1 + Math.fround(0.8) * 7));
  assert.equal(run(a, t, u, [2, 3], P({ threshold: 2, safe_weight: 0 })).out[1], 7);
});

/** Brute force: form C = V·Vᵀ/‖V‖ explicitly and take the cosine (float64). */
function bruteRho(a: number[], t: number[], u: number[], rows: number, cols: number): number {
  const V = a.map((x, i) => x - Math.fround(u[i]!));
  const D = t.map((x, i) => Math.fround(x) - Math.fround(a[i]!));
  const vn = Math.sqrt(V.reduce((s, x) => s + x * x, 0));
  const C = (r: number, s: number): number => {
    let g = 0;
    for (let k = 0; k < cols; k++) g += V[r * cols + k]! * V[s * cols + k]!;
    return g / vn;
  };
  let dot = 0;
  let n1 = 0;
  let n2 = 0;
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      let cd = 0;
      for (let s = 0; s < rows; s++) cd += C(r, s) * D[s * cols + k]!;
      const d = D[r * cols + k]!;
      dot += cd * d;
      n1 += cd * cd;
      n2 += d * d;
    }
  }
  return dot / (Math.sqrt(n1) * Math.sqrt(n2));
}

test("safemerge: ρ matches a brute-force C = V·Vᵀ/‖V‖ reference; results do not depend on chunking (rows split)", () => {
  const rows = 7;
  const cols = 13;
  const n = rows * cols;
  const a = Array.from({ length: n }, (_, j) => Math.fround(Math.sin(j * 0.37)));
  const u = a.map((x, j) => Math.fround(x - 0.1 * Math.cos(j * 1.3) * (j % 3 === 0 ? 1 : 0.2)));
  const t = a.map((x, j) => Math.fround(x + 0.05 * Math.sin(j * 2.1) + 0.03 * (a[j]! - u[j]!)));
  const whole = run(a, t, u, [rows, cols], P());
  const ref = bruteRho(a, t, u, rows, cols);
  assert.ok(Math.abs(whole.report!.rho - ref) <= 5e-6, `${whole.report!.rho} vs ${ref}`);
  for (const chunk of [1, 5, 13, 29, 90]) {
    const r = run(a, t, u, [rows, cols], P(), chunk);
    assert.equal(r.report!.rho, whole.report!.rho, `chunk ${chunk}`);
    assert.deepEqual(r.out, whole.out, `chunk ${chunk}`);
  }
  for (const tau of [ref - 0.01, ref + 0.01]) {
    const r = run(a, t, u, [rows, cols], P({ threshold: tau }), 4);
    assert.equal(r.report!.gated, ref < tau);
  }
});

test("safemerge targets: 2-D only; layers (default), all, or name parts; non-targeted tensors are copied from tuned", () => {
  const q = layerCtx([2, 2]);
  const emb = tensorContext("model.embed_tokens.weight", [4, 2]);
  const norm = tensorContext("model.layers.0.input_layernorm.weight", [2], 0, 0);
  assert.equal(isTargeted(q, "layers"), true);
  assert.equal(isTargeted(emb, "layers"), false);
  assert.equal(isTargeted(emb, "all"), true);
  assert.equal(isTargeted(norm, "all"), false);
  assert.equal(isTargeted(q, "v_proj, q_proj"), true);
  assert.equal(isTargeted(q, "v_proj"), false);
  assert.equal(safemerge.measurePasses(norm, P()), 0);
  const out = applyMethod(safemerge, { base: f32([1, 1]), models: [f32([3, -0]), f32([0, 0])] }, norm, P({ threshold: 2 }));
  assert.ok(out[0] === 3 && Object.is(out[1], -0));
  assert.equal(safemerge.report!(safemerge.initStats(norm, P()), norm, P()), undefined);
});

test("safemerge refuses targeted tensors wider than max_inner up front, with the cost in the message", () => {
  const big = layerCtx([4096, 14336], "model.layers.0.mlp.down_proj.weight");
  const problems = safemerge.checkParams!(big, P());
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /inner dimension 14336 > max_inner 8192: .*14336×14336 float64 accumulator \(1568 MiB\)/);
  assert.throws(() => safemerge.initStats(big, P()), { code: "merge.tensor_too_large" });
  assert.deepEqual(safemerge.checkParams!(big, P({ targets: "q_proj" })), []);
  assert.deepEqual(safemerge.checkParams!(big, P({ max_inner: 16384 })), []);
});

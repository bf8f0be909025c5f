/** Golden values (hand-computed, see comments) and properties of every method, plus chunking invariance. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { applyMethod, tensorContext } from "./apply.ts";
import { METHODS } from "./registry.ts";
import type { ResolvedParams } from "./types.ts";
import { slerpCoefficients } from "./slerp.ts";
import { modelStockRatio } from "./model-stock.ts";

const f32 = (xs: number[]): Float32Array => new Float32Array(xs);
const fr = (xs: number[]): number[] => xs.map(Math.fround);
const P = (global: ResolvedParams["global"], ...perModel: ResolvedParams["perModel"]): ResolvedParams => ({ global, perModel });
const run = (name: string, base: number[] | undefined, models: number[][], params: ResolvedParams, shape?: number[], chunk?: number): number[] => {
  const n = (base ?? models[0]!).length;
  return [...applyMethod(METHODS[name]!, { base: base && f32(base), models: models.map(f32) }, tensorContext("t", shape ?? [n]), params, chunk)];
};

// ---- TIES -------------------------------------------------------------------------------------------
test("ties golden: top-2 of 4, sign election, disjoint mean (normalize default true)", () => {
  // b = 1; δ1 = [1,−2,3,−4] keeps idx 2,3; δ2 = [−2,1,2,1] keeps idx 0,2 (|2| twice beats |1|)
  // Σu = [−2, 0, 5, −4] → signs −,+,+,−; idx1: nobody agrees → 0; idx2: (3+2)/2 = 2.5
  const out = run("ties", [1, 1, 1, 1], [[2, -1, 4, -3], [-1, 2, 3, 2]], P({}, { weight: 1, density: 0.5 }, { weight: 1, density: 0.5 }));
  assert.deepEqual(out, [-1, 1, 3.5, -3]);
});

test("ties with weights [1, 0.5]: idx2 = (3 + 0.5·2)/1.5, normalize false = plain sum of agreeing", () => {
  const models = [[2, -1, 4, -3], [-1, 2, 3, 2]];
  const pm = [{ weight: 1, density: 0.5 }, { weight: 0.5, density: 0.5 }];
  assert.deepEqual(run("ties", [1, 1, 1, 1], models, P({}, ...pm)), fr([1 - 2, 1, 1 + 4 / 1.5, -3]));
  assert.deepEqual(run("ties", [1, 1, 1, 1], models, P({ normalize: false, lambda: 0.5 }, ...pm)), fr([0.5, 1, 1 + 0.5 * 4, -1]));
});

test("ties: ties at the threshold keep the lowest indices; density·n < 1 keeps nothing (1-element and scalar)", () => {
  assert.deepEqual(run("ties", [0, 0, 0, 0], [[1, 1, 1, 1]], P({}, { weight: 1, density: 0.5 })), [1, 1, 0, 0]);
  assert.deepEqual(run("ties", [2], [[5]], P({}, { weight: 1, density: 0.5 })), [2]);
  assert.deepEqual(run("ties", [2], [[5]], P({}, { weight: 1, density: 0.5 }), []), [2]);
  assert.deepEqual(run("ties", [2], [[5]], P({}, { weight: 1, density: 1 }), []), [5]);
});

test("ties property: keeps exactly k = floor(density·n) largest |δ| of each task vector", () => {
  const n = 5000;
  const base = Array.from({ length: n }, (_, j) => Math.sin(j) * 0.1);
  const tuned = base.map((b, j) => b + Math.fround(Math.cos(j * 1.7) * 0.01) + 0.001 * Math.sign(Math.cos(j)));
  for (const density of [0.1, 0.37, 0.9]) {
    const out = run("ties", base, [tuned], P({}, { weight: 0.6, density }), [50, 100], 777);
    const delta = tuned.map((t, j) => Math.fround(Math.fround(t) - Math.fround(base[j]!)));
    const kept = out.map((o, j) => o !== Math.fround(base[j]!));
    const k = Math.floor(density * n);
    assert.equal(kept.filter(Boolean).length, k);
    const minKept = Math.min(...delta.filter((_, j) => kept[j]).map(Math.abs));
    const maxDropped = Math.max(...delta.filter((_, j) => !kept[j]).map(Math.abs));
    assert.ok(minKept >= maxDropped);
    // one model, normalize: kept entries equal the tuned value (δ·w/w)
    out.forEach((o, j) => kept[j] && assert.ok(Math.abs(o - tuned[j]!) < 1e-7));
  }
});

// ---- DARE -------------------------------------------------------------------------------------------
// Stream of (seed 0, "t", model 0): U = 0.664 0.348 0.618 0.372 0.255 0.077 0.676 0.923 → density 0.5 keeps idx 1,3,4,5
// (the values come from an independent Python lowbias32: U = (hash32(j ⊕ key) >>> 8) / 2²⁴).
test("dare_linear golden: kept idx 1,3,4,5 of [1..8]; l1 rescale ×36/17; inverse_density ×2; rescale false", () => {
  const delta = [1, 2, 3, 4, 5, 6, 7, 8];
  const zero = delta.map(() => 0);
  const m = { weight: 1, density: 0.5 };
  assert.deepEqual(run("dare_linear", zero, [delta], P({}, m)), fr([0, 72 / 17, 0, 144 / 17, 180 / 17, 216 / 17, 0, 0]));
  assert.deepEqual(run("dare_linear", zero, [delta], P({ rescale_mode: "inverse_density" }, m)), [0, 4, 0, 8, 10, 12, 0, 0]);
  assert.deepEqual(run("dare_linear", zero, [delta], P({ rescale: false }, m)), [0, 2, 0, 4, 5, 6, 0, 0]);
});

test("dare_ties golden: two models, rescale false, sign election", () => {
  // model 1 keeps idx 1,3,4,5 (above); model 2's stream (model index 1): U 0.271 0.774 0.894 0.745 0.518 0.482
  // 0.320 0.523 → keeps idx 0,5,6. Only idx 5 is kept by both: Σ = 6 − 9 < 0, so only model 2's −9 counts.
  const out = run("dare_ties", Array(8).fill(0), [[1, 2, 3, 4, 5, 6, 7, 8], [1, -1, -1, 1, 1, -9, 1, 1]], P({ rescale: false }, { weight: 1, density: 0.5 }, { weight: 1, density: 0.5 }));
  // normalize default false: the agreeing terms' sum
  assert.deepEqual(out, [1, 2, 0, 4, 5, -9, 1, 0]);
});

test("dare property: keeps ≈ density·n, l1 rescale preserves ‖δ‖₁, inverse_density divides by density", () => {
  const n = 20000;
  const base = new Array(n).fill(0.5);
  const tuned = base.map((b, j) => b + Math.cos(j) * 0.01);
  const deltaL1 = tuned.reduce((s, t, j) => s + Math.abs(Math.fround(Math.fround(t) - 0.5)), 0);
  const l1 = run("dare_linear", base, [tuned], P({}, { weight: 1, density: 0.3 }), [n], 999);
  const kept = l1.filter((o) => o !== 0.5).length;
  assert.ok(Math.abs(kept - 0.3 * n) < 4 * Math.sqrt(n * 0.3 * 0.7), `kept ${kept}`);
  const outL1 = l1.reduce((s, o) => s + Math.abs(o - 0.5), 0);
  assert.ok(Math.abs(outL1 / deltaL1 - 1) < 1e-4, `${outL1} vs ${deltaL1}`);
  const inv = run("dare_linear", base, [tuned], P({ rescale_mode: "inverse_density" }, { weight: 1, density: 0.3 }), [n], 999);
  inv.forEach((o, j) => {
    if (o === 0.5) return;
    assert.ok(Math.abs((o - 0.5) - (Math.fround(tuned[j]!) - 0.5) / 0.3) < 1e-6);
  });
  // different seeds give different masks; the same seed gives the same
  const other = applyMethod(METHODS.dare_linear!, { base: f32(base), models: [f32(tuned)] }, tensorContext("t", [n], 1), P({}, { weight: 1, density: 0.3 }));
  assert.notDeepEqual([...other], l1);
});

// ---- Breadcrumbs ------------------------------------------------------------------------------------
test("breadcrumbs golden: δ = 1..10, density 0.5, gamma 0.1 keeps 5..9; gamma 0.01 on 10 elements keeps the top 5 (mergekit zeroes it)", () => {
  const d = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const zero = d.map(() => 0);
  assert.deepEqual(run("breadcrumbs", zero, [d], P({}, { weight: 1, density: 0.5, gamma: 0.1 })), [0, 0, 0, 0, 5, 6, 7, 8, 9, 0]);
  assert.deepEqual(run("breadcrumbs", zero, [d], P({}, { weight: 1, density: 0.5, gamma: 0.01 })), [0, 0, 0, 0, 0, 6, 7, 8, 9, 10]);
  // keep + top > n: top shrinks (density 0.9, gamma 0.2 → keep 9, top 2, bot −1 → top 1, bot 0)
  assert.deepEqual(run("breadcrumbs", zero, [d], P({}, { weight: 1, density: 0.9, gamma: 0.2 })), [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]);
});

test("breadcrumbs_ties golden: outliers removed per model, then sign election", () => {
  const out = run("breadcrumbs_ties", [0, 0, 0, 0], [[4, -1, 2, 3], [-2, 1, 1, -5]], P({}, { weight: 1, density: 0.5, gamma: 0.25 }, { weight: 1, density: 0.5, gamma: 0.25 }));
  // model 1: drop top 1 (4), keep 2 (3, 2) → [0,0,2,3]; model 2: drop −5, keep −2, 1 (tie 1 at idx1, idx2 → idx1) → [−2,1,0,0]
  assert.deepEqual(out, [-2, 1, 2, 3]);
});

// ---- DELLA ------------------------------------------------------------------------------------------
test("della_linear golden: row [4,1,3,2], density 0.5 ± 0.1 → p = [0.6,0.4,0.533,0.467]; U keeps idx 1 and 3", () => {
  const zero = [0, 0, 0, 0];
  const m = { weight: 1, density: 0.5, epsilon: 0.1 };
  assert.deepEqual(run("della_linear", zero, [[4, 1, 3, 2]], P({ rescale_mode: "inverse_density" }, m)), fr([0, 1 / 0.4, 0, 2 / (0.4 + 0.2 / 3)]));
  assert.deepEqual(run("della_linear", zero, [[4, 1, 3, 2]], P({}, m)), fr([0, 10 / 3, 0, 20 / 3]));
  assert.deepEqual(run("della", zero, [[4, 1, 3, 2]], P({}, m)), fr([0, 10 / 3, 0, 20 / 3]));
  // a 1-element row gets p = density (mergekit: 0/0 = NaN)
  assert.deepEqual(run("della_linear", [0], [[3]], P({ rescale: false }, m), []), [0]); // U 0.789 ≥ 0.5
});

test("della rejects density ± epsilon outside (0, 1) before any work", () => {
  const ctx = tensorContext("t", [4]);
  assert.deepEqual(METHODS.della!.checkParams!(ctx, P({}, { weight: 1, density: 0.5, epsilon: 0.1 })), []);
  assert.match(METHODS.della!.checkParams!(ctx, P({}, { weight: 1, density: 0.1, epsilon: 0.15 }))[0]!, /density ± epsilon/);
  assert.match(METHODS.breadcrumbs!.checkParams!(ctx, P({}, { weight: 1, gamma: 2 }))[0]!, /gamma: got 2/);
});

// ---- SLERP ------------------------------------------------------------------------------------------
test("slerp golden: orthogonal unit vectors at t = 0.5 give (√½, √½)", () => {
  assert.deepEqual(run("slerp", [1, 0], [[0, 1]], P({ t: 0.5 })), fr([Math.SQRT1_2, Math.SQRT1_2]));
  // θ = π/2, t = 0.25: [cos(π/8), sin(π/8)] · |v| with |v0| = 2, |v1| = 2
  assert.deepEqual(run("slerp", [2, 0], [[0, 2]], P({ t: 0.25 })), fr([2 * Math.cos(Math.PI / 8), 2 * Math.sin(Math.PI / 8)]));
});

test("slerp: near-colinear falls back to lerp; scalars and antipodal scalars work", () => {
  const c = slerpCoefficients(0.5, 1, 1, 1.0001); // cos = 0.99995
  assert.deepEqual(c, { c0: 0.5, c1: 0.5, isLerp: true });
  assert.deepEqual(run("slerp", [1, 0], [[1, 0.01]], P({ t: 0.5 })), fr([1, 0.005]));
  assert.deepEqual(run("slerp", [2], [[4]], P({ t: 0.25 }), []), [2.5]);
  assert.deepEqual(run("slerp", [2], [[-4]], P({ t: 0.5 }), []), [-1]);
  assert.deepEqual(run("slerp", [0, 0], [[0, 0]], P({ t: 0.5 })), [0, 0]);
});

test("slerp property: t = 0 and t = 1 return the endpoints bit for bit", () => {
  const a = f32([0.1, -3.3e-5, -0, 7]);
  const b = f32([7.7, 1e30, 5, NaN]);
  for (const [t, want] of [[0, a], [1, b]] as const) {
    const out = applyMethod(METHODS.slerp!, { base: a, models: [b] }, tensorContext("t", [4]), P({ t }));
    assert.deepEqual(out, want);
  }
});

// ---- Model Stock ------------------------------------------------------------------------------------
test("model_stock golden: δ1 = [1,0], δ2 = [1,1] → cos = 1/√2, t = 2(√2 − 1)", () => {
  const t = 2 * (Math.SQRT2 - 1);
  assert.ok(Math.abs(modelStockRatio([1, 2], [1], 2) - t) < 1e-15);
  assert.deepEqual(run("model_stock", [1, 1], [[2, 1], [2, 2]], P({}, {}, {})), fr([1 + t, 1 + 0.5 * t]));
  // orthogonal task vectors: cos 0 → t = 0 → base
  assert.deepEqual(run("model_stock", [1, 1], [[2, 1], [1, 2]], P({}, {}, {})), [1, 1]);
});

test("model_stock property: identical tuned models return them bit for bit (N = 2, 3)", () => {
  const base = f32([0.25, -1, 3, 0.125, 1e-3]);
  const tuned = f32([0.3, -1.1, 2.7, 0.2, 7e-3]);
  for (const n of [2, 3]) {
    const out = applyMethod(METHODS.model_stock!, { base, models: Array(n).fill(tuned) }, tensorContext("t", [5]), P({}, ...Array(n).fill({})));
    assert.deepEqual(out, tuned);
  }
});

test("model_stock filter_wise computes t per row", () => {
  // row 0: δ1 = [1,0], δ2 = [0,1] → t 0; row 1: identical δ = [1,1] → t 1
  const out = run("model_stock", [0, 0, 0, 0], [[1, 0, 1, 1], [0, 1, 1, 1]], P({ filter_wise: true }, {}, {}), [2, 2]);
  assert.deepEqual(out, [0, 0, 1, 1]);
});

// ---- passthrough ------------------------------------------------------------------------------------
test("passthrough copies, or scales", () => {
  assert.deepEqual(run("passthrough", undefined, [[1, -2]], P({}, {})), [1, -2]);
  assert.deepEqual(run("passthrough", undefined, [[1, -2]], P({}, { scale: 0 })), [0, -0]);
});

// ---- every method: chunking invariance -------------------------------------------------------------
const EVERY: Record<string, ResolvedParams> = {
  linear: P({}, { weight: 0.3 }, { weight: 0.7 }),
  task_arithmetic: P({}, { weight: 0.6 }, { weight: 0.3 }),
  slerp: P({ t: 0.3 }, {}),
  ties: P({}, { weight: 0.6, density: 0.3 }, { weight: 0.4, density: 0.5 }),
  dare_linear: P({}, { weight: 0.6, density: 0.3 }, { weight: 0.4, density: 0.5 }),
  dare_ties: P({ rescale_mode: "inverse_density" }, { weight: 0.6, density: 0.3 }, { weight: 0.4, density: 0.5 }),
  breadcrumbs: P({}, { weight: 0.6, density: 0.3, gamma: 0.05 }, { weight: 0.4, density: 0.5, gamma: 0.1 }),
  breadcrumbs_ties: P({}, { weight: 0.6, density: 0.3, gamma: 0.05 }, { weight: 0.4, density: 0.5 }),
  della: P({}, { weight: 0.6, density: 0.4, epsilon: 0.1 }, { weight: 0.4, density: 0.5 }),
  della_linear: P({}, { weight: 0.6, density: 0.4, epsilon: 0.1 }, { weight: 0.4, density: 0.5, epsilon: 0.2 }),
  model_stock: P({ filter_wise: true }, {}, {}),
  passthrough: P({}, {}),
  resta: P({ beta: 0.7, density: 0.6 }, { role: "tuned" }, { role: "unaligned" }),
  safemerge: P({ threshold: 0.99, safe_weight: 0.3, targets: "all", max_inner: 8192 }, { role: "tuned" }, { role: "unaligned" }),
};

test("every registered method gives the same bytes in one chunk or many (sizes 1, 5, 16, 37)", () => {
  assert.deepEqual(Object.keys(EVERY).sort(), Object.keys(METHODS).sort());
  const shape = [6, 16];
  const n = 96;
  const base = new Float32Array(n).map((_, j) => Math.sin(j * 0.37));
  const a = base.map((b, j) => b + 0.05 * Math.cos(j * 1.3));
  const b2 = base.map((b, j) => b + 0.05 * Math.sin(j * 2.1 + 1));
  for (const [name, params] of Object.entries(EVERY)) {
    const m = METHODS[name]!;
    const models = params.perModel.length === 1 ? [a] : [a, b2];
    const inputs = m.requiresBase ? { base, models } : { models: name === "linear" ? [base, a] : models };
    const ctx = tensorContext("model.layers.0.mlp.up_proj.weight", shape, 1234);
    const whole = applyMethod(m, inputs, ctx, params);
    assert.ok(whole.every(Number.isFinite), name);
    assert.notDeepEqual(whole, m.requiresBase ? base : new Float32Array(n), name);
    for (const size of [1, 5, 16, 37]) assert.deepEqual(applyMethod(m, inputs, ctx, params, size), whole, `${name} chunk ${size}`);
  }
});

// ---- every method on a scalar (shape []) and a 1-element tensor -------------------------------------
test("every method on a scalar and a 1-element tensor: base 2, tuned 5 (hand-computed)", () => {
  // seed 0, name "t": U(model 0, element 0) = 0.789 → density 0.5 drops, 0.9 keeps
  const cases: [string, number[] | undefined, number[][], ResolvedParams, number][] = [
    ["linear", undefined, [[2], [5]], P({}, { weight: 0.5 }, { weight: 0.5 }), 3.5],
    ["task_arithmetic", [2], [[5]], P({}, { weight: 0.5 }), 3.5],
    ["slerp", [2], [[5]], P({ t: 0.5 }, {}), 3.5], // |cos| = 1 ⇒ lerp
    ["ties", [2], [[5]], P({}, { weight: 1, density: 1 }), 5],
    ["ties", [2], [[5]], P({}, { weight: 1, density: 0.5 }), 2], // k = floor(0.5) = 0
    ["dare_linear", [2], [[5]], P({}, { weight: 1, density: 0.5 }), 2],
    ["dare_linear", [2], [[5]], P({}, { weight: 1, density: 0.9 }), 5], // l1: ‖δ‖₁/‖kept‖₁ = 1
    ["dare_ties", [2], [[5]], P({ rescale_mode: "inverse_density" }, { weight: 1, density: 0.9 }), Math.fround(2 + 3 / 0.9)],
    ["breadcrumbs", [2], [[5]], P({}, { weight: 1, density: 0.5 }), 2], // keep = 0
    ["breadcrumbs_ties", [2], [[5]], P({}, { weight: 1, density: 1 }), 5],
    ["della", [2], [[5]], P({}, { weight: 1, density: 0.5, epsilon: 0.1 }), 2], // c = 1 ⇒ p = 0.5
    ["della_linear", [2], [[5]], P({}, { weight: 1, density: 0.9, epsilon: 0.05 }), 5],
    ["model_stock", [2], [[5], [5]], P({}, {}, {}), 5], // identical ⇒ t = 1
    ["model_stock", [2], [[5], [-1]], P({}, {}, {}), 2], // cos = −1 ⇒ 1 + (N−1)cos = 0 ⇒ t := 0
    ["passthrough", undefined, [[5]], P({}, {}), 5],
  ];
  for (const [name, base, models, params, want] of cases) {
    for (const shape of [[], [1]]) assert.deepEqual(run(name, base, models, params, shape), [want], `${name} ${JSON.stringify(params.perModel)} shape ${JSON.stringify(shape)}`);
  }
});

test("f16-range inputs summing past 65504 do not overflow: linear of 60000 and 60000 is 60000", () => {
  assert.deepEqual(run("linear", undefined, [[60000], [60000]], P({}, { weight: 1 }, { weight: 1 })), [60000]);
  assert.deepEqual(run("task_arithmetic", [60000], [[60000], [60000]], P({ normalize: true }, { weight: 1 }, { weight: 1 })), [60000]);
});

test("tensor-wide reductions (L1 rescale, slerp angle, model_stock cosine) give the same bytes for any chunking", () => {
  const shape = [40, 50];
  const n = 2000;
  const base = new Float32Array(n).map((_, j) => Math.sin(j * 0.91) * 0.3);
  const a = base.map((b, j) => b + 0.01 * Math.cos(j * 1.37) + 1e-4 * Math.sin(j * 17.1));
  const c = base.map((b, j) => b + 0.01 * Math.sin(j * 2.71 + 1) - 3e-5 * Math.cos(j * 5.3));
  const two = P({ rescale: true }, { weight: 0.7, density: 0.4, gamma: 0.02, epsilon: 0.1 }, { weight: 0.5, density: 0.6, gamma: 0.02, epsilon: 0.1 });
  const sets: [string, ResolvedParams, Float32Array[]][] = [
    ["ties", two, [a, c]],
    ["breadcrumbs_ties", two, [a, c]],
    ["dare_linear", two, [a, c]],
    ["della", two, [a, c]],
    ["slerp", P({ t: 0.37 }, {}), [a]],
    ["model_stock", P({}, {}, {}), [a, c]],
  ];
  for (const [name, params, models] of sets) {
    const ctx = tensorContext("model.layers.3.mlp.down_proj.weight", shape, 99);
    const whole = applyMethod(METHODS[name]!, { base, models }, ctx, params);
    for (const size of [7, 64, 333, 1999]) assert.deepEqual(applyMethod(METHODS[name]!, { base, models }, ctx, params, size), whole, `${name} chunk ${size}`);
  }
});

test("measure statistics are bit-identical for any chunking (running sums, not per-chunk partials)", () => {
  const n = 5000;
  const base = new Float32Array(n).map((_, j) => Math.sin(j * 0.91) * 3);
  const a = base.map((b, j) => b + Math.cos(j * 1.37) * (1 + (j % 7)) * 1e-3);
  const c = base.map((b, j) => b - Math.sin(j * 2.3) * (1 + (j % 5)) * 1e-3);
  const ctx = tensorContext("t", [n]);
  const statsFor = (name: string, params: ResolvedParams, models: Float32Array[], size: number): unknown => {
    const m = METHODS[name]!;
    const stats = m.initStats(ctx, params);
    for (let pass = 0; pass < m.measurePasses(ctx, params); pass++) {
      for (let off = 0; off < n; off += size) m.measure(pass, stats, { base: base.slice(off, off + size), models: models.map((x) => x.slice(off, off + size)), offset: off }, ctx, params);
      if (m.endPass(pass, stats, ctx, params) === true) break;
    }
    return JSON.parse(JSON.stringify(stats, (_k, v) => (v instanceof Map ? [...v] : ArrayBuffer.isView(v) ? Array.from(v as Float64Array) : v)));
  };
  const cases: [string, ResolvedParams, Float32Array[]][] = [
    ["slerp", P({ t: 0.5 }, {}), [a]],
    ["model_stock", P({}, {}, {}), [a, c]],
    ["ties", P({ rescale: true }, { weight: 1, density: 0.3 }), [a]],
    ["dare_linear", P({}, { weight: 1, density: 0.3 }), [a]],
  ];
  for (const [name, params, models] of cases) {
    const whole = statsFor(name, params, models, n);
    for (const size of [3, 77, 1000]) assert.deepEqual(statsFor(name, params, models, size), whole, `${name} chunk ${size}`);
  }
});

/** RESTA golden values (hand-computed) and properties. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { applyMethod, tensorContext } from "./apply.ts";
import { resta } from "./resta.ts";
import { METHODS } from "./registry.ts";
import type { ResolvedParams } from "./types.ts";

const f32 = (xs: number[]): Float32Array => new Float32Array(xs);
const T = { role: "tuned" };
const U = { role: "unaligned" };
const P = (global: ResolvedParams["global"], ...perModel: ResolvedParams["perModel"]): ResolvedParams => ({ global: { beta: 0.5, density: 1, ...global }, perModel });
const run = (a: number[], models: number[][], params: ResolvedParams, chunk?: number, name = "t"): number[] =>
  [...applyMethod(resta, { base: f32(a), models: models.map(f32) }, tensorContext(name, [a.length]), params, chunk)];

test("resta golden: θ = tuned + β·(aligned − unaligned), roles in either order", () => {
  // aligned [1, 2], unaligned [0.5, 1] → δ_safe = [0.5, 1]; tuned [3, 4]
  assert.deepEqual(run([1, 2], [[3, 4], [0.5, 1]], P({}, T, U)), [3.25, 4.5]);
  assert.deepEqual(run([1, 2], [[0.5, 1], [3, 4]], P({}, U, T)), [3.25, 4.5]);
  assert.deepEqual(run([1, 2], [[3, 4], [0.5, 1]], P({ beta: 1 }, T, U)), [3.5, 5]);
  assert.deepEqual(run([1, 2], [[3, 4], [0.5, 1]], P({ beta: -2 }, T, U)), [2, 2]);
});

test("resta β = 0 copies the tuned model bit for bit (−0, NaN, Inf included)", () => {
  const tuned = [-0, Number.NaN, Infinity, 1.5];
  const out = run([1, 1, 1, 1], [tuned, [Number.NaN, 0, 0, 7]], P({ beta: 0 }, T, U));
  assert.ok(Object.is(out[0], -0));
  assert.ok(Number.isNaN(out[1]!));
  assert.equal(out[2], Infinity);
  assert.equal(out[3], 1.5);
});

test("resta drift fix golden: DARE on tuned − aligned (keep idx 1,3,4,5 of the seed-0 stream), ÷ density", () => {
  // Stream of (seed 0, "t", model 0) keeps idx 1,3,4,5 at density 0.5 (same stream as the dare_linear golden).
  // aligned 1, tuned 1 + (j+1), unaligned 0 → δ_safe = 1: kept → 1 + 2(j+1) + β, dropped → 1 + β.
  const a = Array(8).fill(1);
  const t = a.map((x, j) => x + j + 1);
  const u = Array(8).fill(0);
  const out = run(a, [t, u], P({ beta: 0.5, density: 0.5 }, T, U));
  assert.deepEqual(out, [1.5, 1 + 4 + 0.5, 1.5, 1 + 8 + 0.5, 1 + 10 + 0.5, 1 + 12 + 0.5, 1.5, 1.5]);
  // chunking does not change the drop pattern (counter-based stream)
  assert.deepEqual(run(a, [t, u], P({ beta: 0.5, density: 0.5 }, T, U), 3), out);
  // density 1 is exactly no drift fix
  assert.deepEqual(run(a, [t, u], P({ beta: 0.5, density: 1 }, T, U)), t.map((x) => x + 0.5));
});

test("resta checkParams: roles must be one tuned and one unaligned; density in (0, 1]", () => {
  const ctx = tensorContext("t", [2]);
  assert.deepEqual(resta.checkParams!(ctx, P({}, T, U)), []);
  assert.match(resta.checkParams!(ctx, P({}, T, T)).join(";"), /got 2 model\(s\) with role tuned, expected exactly 1/);
  assert.match(resta.checkParams!(ctx, P({}, T, { role: "base" })).join(";"), /role: got "base", expected one of tuned, unaligned/);
  assert.match(resta.checkParams!(ctx, P({ density: 0 }, T, U)).join(";"), /density: got 0, expected 0 < density ≤ 1/);
  assert.throws(() => run([1], [[1], [1]], P({}, U, U)), { code: "recipe.bad_param" });
});

test("resta drift fix with β = 0 equals dare_linear (weight 1, inverse_density) bit for bit, whatever the role order", () => {
  const n = 300;
  const a = Array.from({ length: n }, (_, j) => Math.fround(Math.sin(j * 0.7)));
  const t = a.map((x, j) => Math.fround(x + 0.01 * Math.cos(j * 1.9)));
  const u = a.map((x, j) => Math.fround(x - 0.02 * Math.sin(j * 0.3)));
  const ctx = tensorContext("model.layers.1.mlp.up_proj.weight", [10, 30], 7, 1);
  const dare = applyMethod(METHODS.dare_linear!, { base: f32(a), models: [f32(t)] }, ctx, {
    global: { lambda: 1, normalize: false, rescale: true, rescale_mode: "inverse_density" },
    perModel: [{ weight: 1, density: 0.7 }],
  });
  const r1 = applyMethod(resta, { base: f32(a), models: [f32(t), f32(u)] }, ctx, P({ beta: 0, density: 0.7 }, T, U), 17);
  const r2 = applyMethod(resta, { base: f32(a), models: [f32(u), f32(t)] }, ctx, P({ beta: 0, density: 0.7 }, U, T));
  assert.deepEqual(r1, dare);
  assert.deepEqual(r2, dare);
  assert.ok(dare.some((x, j) => x === a[j]) && dare.some((x, j) => x !== a[j]), "some entries dropped, some kept");
});

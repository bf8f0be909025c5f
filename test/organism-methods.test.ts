/**
 * Properties of the methods on real organism tensors (bf16 checkpoints: many exactly tied |δ|, so top-k
 * tie-breaking matters): TIES keeps exactly k = floor(density·n) largest |δ| (ties → lowest index), DARE keeps
 * ≈ density·n with the chosen rescale, SLERP at t = 0/1 returns its endpoints, Model Stock of identical
 * tuned models returns them — each in one chunk and in many.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { openCheckpoint } from "../src/formats/hf-dir/checkpoint.ts";
import { applyMethod, tensorContext } from "../src/merge/methods/apply.ts";
import { METHODS } from "../src/merge/methods/registry.ts";

const NAME = "model.layers.1.self_attn.q_proj.weight";
const SHAPE = [192, 192];

async function load(dir: string): Promise<Float32Array> {
  const c = await openCheckpoint(dir);
  try {
    const out = new Float32Array(192 * 192);
    await c.openTensor(NAME).read(0, out.length, out);
    return out;
  } finally {
    await c.close();
  }
}

const aligned = await load("examples/organism/aligned");
const tuned = await load("examples/organism/finetuned");
const ctx = tensorContext(NAME, SHAPE, 11, 1);
const n = aligned.length;
const delta = tuned.map((t, j) => t - aligned[j]!); // Float32Array: f32(x − b)

test("organism: TIES keeps exactly the k largest-magnitude task-vector entries (ties → lowest index)", () => {
  const distinct = new Set(Array.from(delta, Math.abs)).size;
  assert.ok(distinct < n / 2, `expected many tied |δ| in bf16 deltas, got ${distinct} distinct of ${n}`);
  const order = Array.from(delta, (d, j) => [Math.abs(d), j] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const density of [0.1, 0.5]) {
    const k = Math.floor(density * n);
    const keep = new Set(order.slice(0, k).map((e) => e[1]));
    const want = aligned.map((b, j) => (keep.has(j) ? b + delta[j]! : b));
    for (const chunk of [n, 4096, 1000]) {
      const out = applyMethod(METHODS.ties!, { base: aligned, models: [tuned] }, ctx, { global: { normalize: true, lambda: 1 }, perModel: [{ weight: 1, density }] }, chunk);
      assert.deepEqual(out, want, `density ${density}, chunk ${chunk}`);
    }
  }
});

test("organism: DARE keeps ≈ density·n entries; l1 preserves ‖δ‖₁, inverse_density divides by density", () => {
  const nonzero = delta.filter((d) => d !== 0).length;
  const run = (global: Record<string, string | boolean>, chunk?: number): Float32Array =>
    applyMethod(METHODS.dare_linear!, { base: aligned, models: [tuned] }, ctx, { global: { lambda: 1, normalize: false, ...global }, perModel: [{ weight: 1, density: 0.3 }] }, chunk);
  const plain = run({ rescale: false });
  const kept = plain.filter((o, j) => o !== aligned[j]).length;
  assert.ok(Math.abs(kept - 0.3 * nonzero) < 4 * Math.sqrt(nonzero * 0.21), `kept ${kept} of ${nonzero}`);
  const l1 = run({ rescale: true, rescale_mode: "l1" });
  assert.deepEqual(run({ rescale: true, rescale_mode: "l1" }, 777), l1);
  let sumOut = 0;
  let sumDelta = 0;
  for (let j = 0; j < n; j++) {
    sumOut += Math.abs(l1[j]! - aligned[j]!);
    sumDelta += Math.abs(delta[j]!);
  }
  assert.ok(Math.abs(sumOut / sumDelta - 1) < 1e-3, `${sumOut} vs ${sumDelta}`);
  const inv = run({ rescale: true, rescale_mode: "inverse_density" });
  for (let j = 0; j < n; j++) {
    if (plain[j] === aligned[j]) assert.equal(inv[j], aligned[j]);
    else assert.equal(inv[j], Math.fround(aligned[j]! + delta[j]! / 0.3));
  }
});

test("organism: SLERP t = 0 and t = 1 return aligned and tuned bit for bit; t = 0.5 lies between", () => {
  const run = (t: number, chunk?: number): Float32Array => applyMethod(METHODS.slerp!, { base: aligned, models: [tuned] }, ctx, { global: { t }, perModel: [{}] }, chunk);
  assert.deepEqual(run(0), aligned);
  assert.deepEqual(run(1, 999), tuned);
  assert.deepEqual(run(0.5, 999), run(0.5));
});

test("organism: Model Stock of identical tuned models returns them bit for bit", () => {
  const out = applyMethod(METHODS.model_stock!, { base: aligned, models: [tuned, tuned, tuned] }, ctx, { global: { filter_wise: false }, perModel: [{}, {}, {}] }, 5000);
  assert.deepEqual(out, tuned);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createMagnitudeRanking,
  electSign,
  endRankingPass,
  isSelected,
  keepCount,
  measureRanking,
  rowRanks,
  selectedL1,
  streamKey,
  uniformAt,
} from "./sparsify.ts";

function select(values: number[], rank: number, chunk: number, collectMax?: number): boolean[] {
  const delta = new Float32Array(values);
  const st = createMagnitudeRanking(delta.length, [rank], collectMax);
  for (let pass = 0; pass < 3; pass++) {
    for (let off = 0; off < delta.length; off += chunk) measureRanking(pass, st, delta.slice(off, off + chunk), off);
    if (endRankingPass(pass, st)) break;
  }
  const bits = new Uint32Array(delta.buffer);
  return values.map((_, j) => isSelected(st.selectors[0]!, delta.length, bits[j]! & 0x7fffffff, j));
}

test("keepCount floors density·n in float64 like mergekit's int(n·density)", () => {
  assert.equal(keepCount(0.5, 4), 2);
  assert.equal(keepCount(0.57, 100), 56); // 0.57·100 = 56.99999999999999
  assert.equal(keepCount(0.5, 1), 0); // density·n < 1 keeps nothing
  assert.equal(keepCount(1, 7), 7);
  assert.equal(keepCount(0, 7), 0);
});

test("top-k by magnitude: exact k, ties at the threshold go to the lowest indices", () => {
  assert.deepEqual(select([1, 1, 1, 1], 2, 4), [true, true, false, false]);
  assert.deepEqual(select([1, 1, 1, 1], 2, 1), [true, true, false, false]);
  assert.deepEqual(select([-2, 1, 2, 1], 2, 3), [true, false, true, false]);
  assert.deepEqual(select([0.5, -3, 3, 0, -0.5], 3, 2), [true, true, true, false, false]);
  // −0 and +0 tie; NaN counts as the largest magnitude
  assert.deepEqual(select([-0, 0, NaN, 0], 2, 1), [true, false, true, false]);
});

test("top-k on 10 000 values agrees with a full sort for every chunk size", () => {
  const n = 10000;
  const values = Array.from({ length: n }, (_, j) => Math.fround(Math.sin(j * 12.9898) * 43758.5453) % 3); // many distinct, some ties
  for (let j = 0; j < n; j += 97) values[j] = 1.5; // a block of exact ties
  const k = 3001;
  const order = values.map((v, j) => [Math.abs(v), j] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const want = new Set(order.slice(0, k).map((e) => e[1]));
  for (const chunk of [n, 1000, 333]) {
    for (const collectMax of [undefined, 0]) {
      // collectMax 0 forces the third (tie-scan) pass instead of settling ties from the pass-1 collection
      const got = select(values, k, chunk, collectMax);
      assert.equal(got.filter(Boolean).length, k);
      got.forEach((g, j) => assert.equal(g, want.has(j), `index ${j}, chunk ${chunk}, collectMax ${collectMax}`));
    }
  }
});

test("selected L1 = Σ|δ| of the selected entries, ties included; ranking ends after pass 1 when collected", () => {
  const delta = new Float32Array([3, -1, 2, 2, -2, 0.5]);
  for (const collectMax of [undefined, 0]) {
    const st = createMagnitudeRanking(6, [3], collectMax);
    const done: boolean[] = [];
    for (let pass = 0; pass < 3; pass++) {
      measureRanking(pass, st, delta.slice(), 0);
      done.push(endRankingPass(pass, st));
      if (done[pass]) break;
    }
    assert.deepEqual(done, collectMax === 0 ? [false, false, true] : [false, true]);
    assert.equal(selectedL1(st.selectors[0]!, st), 7); // 3 + 2 + 2
    assert.equal(st.l1Total, 10.5);
  }
});

test("the seeded stream is a fixed function of (seed, tensor name, model, index)", () => {
  // Pinned: changing the generator changes every DARE/DELLA/RESTA merge made with a seed. (Changed once
  // before any release, in 0.1.0: one hash32 round per element below 2³² instead of two. The values are
  // (hash32(j ⊕ k) >>> 8) / 2²⁴, checked with an independent Python hash32.)
  const k = streamKey(0, "t", 0);
  assert.equal(k, 2008872870);
  assert.deepEqual(
    [0, 1, 2, 3].map((j) => uniformAt(k, j).toFixed(6)),
    ["0.664325", "0.348477", "0.618229", "0.372076"],
  );
  assert.notEqual(streamKey(0, "t", 1), k);
  assert.notEqual(streamKey(1, "t", 0), k);
  assert.notEqual(streamKey(0, "u", 0), k);
  let kept = 0;
  const key = streamKey(7, "x", 0);
  for (let j = 0; j < 1e6; j++) if (uniformAt(key, j) < 0.3) kept++;
  assert.ok(Math.abs(kept - 3e5) < 2000, `kept ${kept}`); // 4.4σ
});

test("sign election: weighted sum picks the sign, disjoint mean over agreeing models", () => {
  const us = [new Float64Array([1, -2, 0, 3]), new Float64Array([-3, 1, 0, 1])];
  const merged = new Float64Array(4);
  const denom = new Float64Array(4);
  electSign(us, [1, 0.5], merged, denom);
  assert.deepEqual([...merged], [-3, -2, 0, 4]);
  assert.deepEqual([...denom], [0.5, 1, 1, 1.5]);
});

test("DELLA row ranks: ascending |δ|, ties by lower index, −0 = +0, NaN largest", () => {
  assert.deepEqual([...rowRanks(new Float32Array([4, -1, 3, 2]))], [3, 0, 2, 1]);
  assert.deepEqual([...rowRanks(new Float32Array([1, -1, 0, -0, NaN, 1]))], [2, 3, 0, 1, 5, 4]);
  const n = 1000;
  const row = new Float32Array(n).map((_, j) => Math.round(Math.sin(j) * 50) / 7);
  const want = Array.from(row, (v, j) => [Math.abs(v), j] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const ranks = rowRanks(row);
  want.forEach(([, j], r) => assert.equal(ranks[j], r));
});

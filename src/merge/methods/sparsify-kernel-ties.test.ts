/**
 * The perf mode of magnitude rankings (`countTiesInKernel`): fewer measure passes, ties counted by the
 * kernel (selectCounting). Membership and the selected L1 must equal the reference mode's (cutoffIndex
 * from the full passes) for every chunking, collection size and boundary-bin shape.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createMagnitudeRanking, endRankingPass, isSelected, measureRanking, selectCounting, selectedL1, uniformAt, uniformAtLow, type MagnitudeRanking } from "./sparsify.ts";

function rank(delta: Float32Array, ranks: number[], chunk: number, collectMax: number | undefined, perf: { countTiesInKernel: boolean; needL1: boolean } | undefined): { st: MagnitudeRanking; passes: number } {
  const st = createMagnitudeRanking(delta.length, ranks, collectMax, perf);
  let passes = 0;
  for (let pass = 0; pass < 3; pass++) {
    for (let off = 0; off < delta.length; off += chunk) measureRanking(pass, st, delta.slice(off, off + chunk), off);
    passes++;
    if (endRankingPass(pass, st)) break;
  }
  return { st, passes };
}

/** Three inputs: bf16-like deltas (boundary bin of one value), general float32 with ties, and both with NaN/±Inf. */
function inputs(): Float32Array[] {
  const n = 6000;
  const bf = new Float32Array(n);
  const gen = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    const e = (j * 7919) % 5;
    bf[j] = ((j * 2654435761) >>> 0) % 3 === 0 ? 0 : (j % 2 ? -1 : 1) * 2 ** -(10 + e); // ±2^-k only: low 16 bits zero
    gen[j] = Math.fround(Math.sin(j * 12.9898) * 43758.5453) % 2;
    if (j % 31 === 0) gen[j] = 0.75; // exact ties
  }
  const odd = gen.slice();
  odd[5] = NaN;
  odd[77] = Infinity;
  odd[78] = -Infinity;
  return [bf, gen, odd];
}

test("countTiesInKernel: same membership and selected L1 as the reference passes, in fewer passes on bf16 deltas", () => {
  for (const [which, delta] of inputs().entries()) {
    const n = delta.length;
    const bits = new Uint32Array(delta.buffer);
    for (const ranks of [[1], [2500], [3999], [n - 1], [120, 4800]]) {
      for (const chunk of [n, 1000, 777]) {
        for (const collectMax of [undefined, 0]) {
          const ref = rank(delta, ranks, chunk, collectMax, undefined);
          for (const needL1 of [true, false]) {
            const perf = rank(delta, ranks, chunk, collectMax, { countTiesInKernel: true, needL1 });
            const where = `input ${which}, ranks ${ranks}, chunk ${chunk}, collectMax ${collectMax}, needL1 ${needL1}`;
            assert.ok(perf.passes <= ref.passes, where);
            if (which === 0) assert.equal(perf.passes, needL1 && collectMax === 0 ? 3 : 1, where);
            for (let si = 0; si < ranks.length; si++) {
              const rs = ref.st.selectors[si]!;
              const ps = perf.st.selectors[si]!;
              for (let j = 0; j < n; j++) {
                const a = bits[j]! & 0x7fffffff;
                assert.equal(selectCounting(ps, n, a), isSelected(rs, n, a, j), `${where}, selector ${si}, index ${j}`);
              }
              if (needL1) assert.equal(selectedL1(ps, perf.st), selectedL1(rs, ref.st), `${where}: selected L1`);
            }
          }
        }
      }
    }
  }
});

test("uniformAtLow equals uniformAt for indices below 2³² (keys across the uint32 range)", () => {
  for (const key of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 3735928559]) {
    for (let i = 0; i < 20000; i++) {
      const index = (i * 2654435761) % 4294967296;
      assert.equal(uniformAtLow(key, index), uniformAt(key, index), `key ${key}, index ${index}`);
    }
  }
});

test("uniformAt above 2³²: a second round keyed by the index's high half (values recorded from the original inlined hash)", () => {
  const key = 0x9e3779b9;
  const expected: Array<[number, number]> = [
    [4294967296, 0.08625936508178711],
    [4294967303, 0.6343674063682556],
    [3298534895673, 0.06327849626541138],
    [9007199254740991, 0.25743919610977173],
  ];
  for (const [index, u] of expected) assert.equal(uniformAt(key, index), u, `index ${index}`);
});

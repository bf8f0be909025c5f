import { test } from "node:test";
import assert from "node:assert/strict";
import { addDeltaRange, deltaScratch, lowRankFromAB } from "./lora-delta.ts";

function apply(a: number[], b: number[], r: number, inDim: number, outDim: number, s: number, transposed: boolean, base: number[]): number[] {
  const d = lowRankFromAB(new Float32Array(a), new Float32Array(b), r, inDim, outDim, s, transposed);
  const x = new Float32Array(base);
  addDeltaRange(d, 0, x.length, x, deltaScratch(d.cols));
  return [...x];
}

test("2×2: W + 0.5·B·A with B=[[1,2],[3,4]], A=[[5,6],[7,8]] (B·A = [[19,22],[43,50]])", () => {
  assert.deepEqual(apply([5, 6, 7, 8], [1, 2, 3, 4], 2, 2, 2, 0.5, false, [1, 1, 1, 1]), [10.5, 12, 22.5, 26]);
});

test("3×2: B [3,2]=[[1,2],[0,-1],[2,1]], A [2,2]=[[1,1],[2,-1]] → B·A = [[5,-1],[-2,1],[4,1]]", () => {
  const b = [1, 2, 0, -1, 2, 1];
  const a = [1, 1, 2, -1];
  assert.deepEqual(apply(a, b, 2, 2, 3, 1, false, [0, 0, 0, 0, 0, 0]), [5, -1, -2, 1, 4, 1]);
  // fan_in_fan_out: stored [in=2, out=3] gets (B·A)ᵀ = [[5,-2,4],[-1,1,1]], scaled by 2
  assert.deepEqual(apply(a, b, 2, 2, 3, 2, true, [0, 0, 0, 0, 0, 0]), [10, -4, 8, -2, 2, 2]);
});

test("accumulation is float32 in k order: 1 + 2⁻²⁴ + 2⁻²⁴ stays 1 (float64 would give 1 + 2⁻²³)", () => {
  const e = 2 ** -24;
  // one row, one column, rank 3: U = [1, 1, 1], V = [1, e, e]ᵀ
  const out = apply([1, e, e], [1, 1, 1], 3, 1, 1, 1, false, [0]);
  assert.equal(out[0], 1);
  assert.notEqual(Math.fround(1 + e + e), 1);
});

test("chunked ranges (mid-row starts, 4-row blocks, remainders) equal a per-element reference bit for bit", () => {
  const rows = 7;
  const cols = 5;
  const r = 3;
  const a = new Float32Array(r * cols).map((_, i) => Math.sin(i * 1.7) * 0.3);
  const b = new Float32Array(rows * r).map((_, i) => Math.cos(i * 0.9) * 0.2);
  const base = new Float32Array(rows * cols).map((_, i) => Math.fround(Math.sin(i) * 0.05));
  const s = 16 / Math.sqrt(3);
  const sf = Math.fround(s);
  const ref = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let acc = 0;
      for (let k = 0; k < r; k++) acc = Math.fround(acc + Math.fround(b[i * r + k]! * a[k * cols + j]!));
      ref[i * cols + j] = Math.fround(base[i * cols + j]! + Math.fround(sf * acc));
    }
  }
  const d = lowRankFromAB(a, b, r, cols, rows, s, false);
  for (const chunk of [1, 3, 5, 7, 11, 20, 35]) {
    const got = new Float32Array(rows * cols);
    const scratch = deltaScratch(cols);
    for (let off = 0; off < rows * cols; off += chunk) {
      const n = Math.min(chunk, rows * cols - off);
      const x = base.slice(off, off + n);
      addDeltaRange(d, off, n, x, scratch);
      got.set(x, off);
    }
    assert.deepEqual([...got], [...ref], `chunk ${chunk}`);
  }
});

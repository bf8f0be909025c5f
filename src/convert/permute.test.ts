import { test } from "node:test";
import assert from "node:assert/strict";
import { qkPermutation } from "./permute.ts";

test("one head of dim 4: rows [a0 a1 b0 b1] become [a0 b0 a1 b1]", () => {
  assert.deepEqual([...qkPermutation(4, 1)], [0, 2, 1, 3]);
});

test("two heads of dim 6 on a hand-made 12×2 matrix equal numpy's reshape(2,2,3,2).swapaxes(1,2)", () => {
  // W[r] = [10r, 10r+1]; expected rows from numpy:
  // np.arange(24).reshape(12,2) → reshape(2,2,3,2).swapaxes(1,2).reshape(12,2)[:,0]//2 =
  // [0,3,1,4,2,5, 6,9,7,10,8,11]
  const src = qkPermutation(12, 2);
  assert.deepEqual([...src], [0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]);
  const w = Array.from({ length: 12 }, (_, r) => [10 * r, 10 * r + 1]);
  const out = [...src].map((s) => w[s]);
  assert.deepEqual(out[1], [30, 31]);
  assert.deepEqual(out[7], [90, 91]);
});

test("a row count that is not a multiple of 2·heads is refused", () => {
  assert.throws(() => qkPermutation(10, 2, "k_proj"), /got 10, expected a multiple of 2 × 2 heads/);
});

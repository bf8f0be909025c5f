import { test } from "node:test";
import assert from "node:assert/strict";
import { findUnexplainedNonFinite } from "./finite.ts";

test("non-finite output is accepted only where an input is non-finite", () => {
  const chunk = { base: new Float32Array([1, NaN, 1]), models: [new Float32Array([1, 1, Infinity])], offset: 0 };
  assert.equal(findUnexplainedNonFinite(chunk, new Float32Array([1, NaN, -Infinity])), -1);
  assert.equal(findUnexplainedNonFinite(chunk, new Float32Array([NaN, NaN, 1])), 0);
  assert.equal(findUnexplainedNonFinite(chunk, new Float32Array([70000, 0, 0])), -1);
  assert.equal(findUnexplainedNonFinite(chunk, new Float32Array([70000, 0, 0]), true), 0);
  assert.equal(findUnexplainedNonFinite(chunk, new Float32Array([65519, 0, 0]), true), -1);
});

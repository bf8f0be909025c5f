import { test } from "node:test";
import assert from "node:assert/strict";
import { linear } from "./linear.ts";
import { taskArithmetic } from "./task-arithmetic.ts";
import type { ResolvedParams, TensorContext } from "./types.ts";

const ctx: TensorContext = { name: "t", shape: [2], numel: 2, layerIndex: undefined, seed: 0 };
function lerpParams(lambda: number, normalize: boolean): ResolvedParams {
  return { global: { normalize }, perModel: [{ weight: 1 - lambda }, { weight: lambda }] };
}

test("linear λ=0.25 over aligned [1,2] and tuned [3,6] gives [1.5,3]", () => {
  const out = new Float32Array(2);
  linear.kernel({ base: undefined, models: [new Float32Array([1, 2]), new Float32Array([3, 6])], offset: 0 }, out, undefined, ctx, lerpParams(0.25, false));
  assert.deepEqual([...out], [1.5, 3]);
});

test("linear λ=0 and λ=1 return the inputs bit for bit", () => {
  const a = new Float32Array([0.1, -3.3e-5]);
  const b = new Float32Array([7.7, 1e30]);
  const out = new Float32Array(2);
  linear.kernel({ base: undefined, models: [a, b], offset: 0 }, out, undefined, ctx, lerpParams(0, false));
  assert.deepEqual([...out], [...a]);
  linear.kernel({ base: undefined, models: [a, b], offset: 0 }, out, undefined, ctx, lerpParams(1, false));
  assert.deepEqual([...out], [...b]);
});

test("linear normalize divides by Σw: weights 1 and 3 over [4] and [8] give 7", () => {
  const out = new Float32Array(1);
  const params: ResolvedParams = { global: { normalize: true }, perModel: [{ weight: 1 }, { weight: 3 }] };
  linear.kernel({ base: undefined, models: [new Float32Array([4]), new Float32Array([8])], offset: 0 }, out, undefined, ctx, params);
  assert.deepEqual([...out], [7]);
});

test("task_arithmetic with one model and weight λ equals linear [1−λ, λ] bit for bit", () => {
  const n = 1000;
  const a = new Float32Array(n);
  const b = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a[i] = Math.sin(i) * 0.05;
    b[i] = a[i]! + Math.cos(i * 7) * 0.01;
  }
  for (const lambda of [0.1, 0.3, 0.6, 0.9]) {
    const o1 = new Float32Array(n);
    const o2 = new Float32Array(n);
    linear.kernel({ base: undefined, models: [a, b], offset: 0 }, o1, undefined, ctx, lerpParams(lambda, false));
    taskArithmetic.kernel({ base: a, models: [b], offset: 0 }, o2, undefined, ctx, { global: { lambda: 1 }, perModel: [{ weight: lambda }] });
    assert.deepEqual(o2, o1);
  }
});

test("task_arithmetic: base [1,1] + 0.5·([3,5]−[1,1]) = [2,3]", () => {
  const out = new Float32Array(2);
  taskArithmetic.kernel({ base: new Float32Array([1, 1]), models: [new Float32Array([3, 5])], offset: 0 }, out, undefined, ctx, { global: { lambda: 0.5 }, perModel: [{ weight: 1 }] });
  assert.deepEqual([...out], [2, 3]);
});

test("λ=0 keeps −0 and ignores NaN/Inf in the other model", () => {
  const a = new Float32Array([-0, 1]);
  const b = new Float32Array([NaN, Infinity]);
  const out = new Float32Array(2);
  linear.kernel({ base: undefined, models: [a, b], offset: 0 }, out, undefined, ctx, lerpParams(0, false));
  assert.ok(Object.is(out[0], -0));
  assert.equal(out[1], 1);
  taskArithmetic.kernel({ base: a, models: [b], offset: 0 }, out, undefined, ctx, { global: { lambda: 1 }, perModel: [{ weight: 0 }] });
  assert.ok(Object.is(out[0], -0));
});

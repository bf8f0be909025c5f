import { test } from "node:test";
import assert from "node:assert/strict";
import { parseLambdas, parseMethods, planGrid, modelKey, formatLambda } from "./grid.ts";
import { UsageError } from "../errors.ts";

test("parseLambdas: explicit list, sorted and de-duplicated", () => {
  assert.deepEqual(parseLambdas("0.5, 0, 1,0.5"), [0, 0.5, 1]);
});

test("parseLambdas: ellipsis continues the step of the two values before it", () => {
  assert.deepEqual(parseLambdas("0,0.2,…,1"), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(parseLambdas("0,0.2,...,1"), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  // a stop off the step is still included: the user named it
  assert.deepEqual(parseLambdas("0,0.3,…,1"), [0, 0.3, 0.6, 0.9, 1]);
});

test("parseLambdas: start:stop:step is inclusive and rounded", () => {
  assert.deepEqual(parseLambdas("0:1:0.1"), [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
  assert.deepEqual(parseLambdas("0.2:0.8:0.2"), [0.2, 0.4, 0.6, 0.8]);
  assert.deepEqual(parseLambdas("0:1:0.3"), [0, 0.3, 0.6, 0.9]);
});

test("parseLambdas: bad input is a UsageError with a code", () => {
  const cases: Array<[string, string]> = [
    ["0,x", "sweep.bad_lambdas"],
    ["", "sweep.bad_lambdas"],
    ["…,1", "sweep.bad_lambdas"],
    ["0,0.5,…", "sweep.bad_lambdas"],
    ["0:1", "sweep.bad_lambdas"],
    ["1:0:0.1", "sweep.bad_lambdas"],
    ["0:1:0", "sweep.bad_lambdas"],
    ["0,1.5", "sweep.bad_lambdas"],
    ["0:1:0.0001", "sweep.too_many_points"],
  ];
  for (const [spec, code] of cases) {
    assert.throws(() => parseLambdas(spec), (e: unknown) => e instanceof UsageError && e.code === code, spec);
  }
});

test("parseMethods: order kept, dashes accepted, unknown names get a suggestion", () => {
  assert.deepEqual(parseMethods("slerp,linear,dare-linear,linear"), ["slerp", "linear", "dare_linear"]);
  assert.throws(
    () => parseMethods("linear,slurp"),
    (e: unknown) => e instanceof UsageError && e.code === "sweep.unknown_method" && e.hint === "did you mean slerp?",
  );
});

test("planGrid: methods × λ with the references 0 and 1 added; endpoints reuse inputs", () => {
  const jobs = planGrid(["linear", "dare_linear"], [0.5]);
  assert.deepEqual(
    jobs.map((j) => [j.id, j.reuse ?? null, modelKey(j)]),
    [
      ["linear@0", "aligned", "aligned"],
      ["linear@0.5", null, "linear@0.5"],
      ["linear@1", "tuned", "tuned"],
      ["dare_linear@0", "aligned", "aligned"],
      ["dare_linear@0.5", null, "dare_linear@0.5"],
      // DARE at λ=1 drops entries of the delta: not the tuned model
      ["dare_linear@1", null, "dare_linear@1"],
    ],
  );
});

test("formatLambda: shortest decimal", () => {
  assert.equal(formatLambda(0.1 + 0.2), "0.3");
  assert.equal(formatLambda(1), "1");
  assert.equal(formatLambda(-0), "0");
});

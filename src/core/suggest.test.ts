import { test } from "node:test";
import assert from "node:assert/strict";
import { didYouMean, editDistance } from "./suggest.ts";

test("editDistance counts an adjacent transposition as 1", () => {
  assert.equal(editDistance("modles", "models"), 1);
  assert.equal(editDistance("organsim", "organism"), 1);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("kitten", "sitting"), 3);
});

test("didYouMean: nearest plausible name, or undefined when nothing is close", () => {
  assert.equal(didYouMean("organsim", ["advbench", "organism"]), "did you mean organism?");
  assert.equal(didYouMean("tas_arithmetic", ["linear", "task_arithmetic"]), "did you mean task_arithmetic?");
  assert.equal(didYouMean("zzzzzzzz", ["advbench", "organism"]), undefined);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { parseByteSize } from "./size.ts";

test("parseByteSize: decimal units as transformers, binary with i, plain bytes", () => {
  assert.equal(parseByteSize("5GB"), 5_000_000_000);
  assert.equal(parseByteSize("500MB"), 500_000_000);
  assert.equal(parseByteSize("1.5G"), 1_500_000_000);
  assert.equal(parseByteSize("2GiB"), 2 * 2 ** 30);
  assert.equal(parseByteSize("123456"), 123456);
  assert.equal(parseByteSize("10kb"), 10_000);
  for (const bad of ["", "0", "-1GB", "5XB", "GB", "1e3"]) assert.equal(parseByteSize(bad), undefined, bad);
});

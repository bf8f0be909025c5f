import { test } from "node:test";
import assert from "node:assert/strict";
import { dequantizeQ8_0, quantizeQ8_0, encodeGgufFromF32, decodeGgufToF32, assertMergeableType } from "./tensor-data.ts";
import { InputError } from "../../errors.ts";

// Block x_j = j − 16 (j = 0..31): max|x| = 16, d = 16/127 = 0.12598425 → fp16 0x3008 (= 0.1259765625),
// 1/d = 7.9375 in float32, so x = ±8 → ±63.5 → ±64 (roundf rounds ties away from zero), x = 9 → 71.4375 → 71.
const BLOCK = Float32Array.from({ length: 32 }, (_, j) => j - 16);
const EXPECTED_Q = [
  -127, -119, -111, -103, -95, -87, -79, -71, -64, -56, -48, -40, -32, -24, -16, -8, 0, 8, 16, 24, 32, 40, 48, 56, 64, 71, 79, 87,
  95, 103, 111, 119,
];

test("Q8_0 quantizes a block exactly as ggml's reference (scale, ties away from zero)", () => {
  const out = new Uint8Array(34);
  quantizeQ8_0(BLOCK, out, 32);
  assert.equal(out[0]! | (out[1]! << 8), 0x3008);
  assert.deepEqual([...new Int8Array(out.buffer, 2, 32)], EXPECTED_Q);
});

test("Q8_0 dequantizes as fp16(d) · q", () => {
  const out = new Uint8Array(34);
  quantizeQ8_0(BLOCK, out, 32);
  const back = new Float32Array(32);
  dequantizeQ8_0(out, back, 32);
  assert.equal(back[0], -127 * 0.1259765625); // -15.9990234375
  assert.equal(back[24], 64 * 0.1259765625); // 8.0625
  assert.equal(back[16], 0);
  assert.equal(back[31], 119 * 0.1259765625);
});

test("Q8_0 all-zero block has d = 0 and q = 0; a scaled block gets fp16 0x1529", () => {
  const zero = new Uint8Array(34).fill(7);
  quantizeQ8_0(new Float32Array(32), zero, 32);
  assert.deepEqual([...zero], new Array(34).fill(0));
  const small = BLOCK.map((v) => Math.fround(v * 0.01));
  const out = new Uint8Array(34);
  quantizeQ8_0(small, out, 32);
  assert.equal(out[0]! | (out[1]! << 8), 0x1529);
  assert.deepEqual([...new Int8Array(out.buffer, 2, 32)], EXPECTED_Q);
});

test("two blocks are independent and multi-block round trip stays within d/2", () => {
  const x = new Float32Array(64);
  for (let i = 0; i < 64; i++) x[i] = Math.fround(Math.sin(i) * (i < 32 ? 1 : 100));
  const q = new Uint8Array(68);
  encodeGgufFromF32("Q8_0", x, q, 64);
  const y = new Float32Array(64);
  decodeGgufToF32("Q8_0", q, y, 64);
  for (let i = 0; i < 64; i++) {
    const d = (i < 32 ? 1 : 100) / 127;
    assert.ok(Math.abs(x[i]! - y[i]!) <= d / 2 + 1e-3 * d, `element ${i}`);
  }
});

test("quantized types other than Q8_0 are refused with a clear error", () => {
  assert.throws(
    () => assertMergeableType("Q4_K", { file: "m.gguf", tensor: "blk.0.attn_q.weight" }),
    (e: unknown) => e instanceof InputError && e.code === "gguf.unsupported_tensor_type" && /Q4_K/.test(e.message) && /m\.gguf/.test(e.message),
  );
});

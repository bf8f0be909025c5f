import { test } from "node:test";
import assert from "node:assert/strict";
import { getFloat16, setFloat16 } from "@petamoriken/float16";
import {
  bf16FromF32Bits,
  bf16ToF32,
  bitsToF32,
  decodeToF32,
  encodeFromF32,
  f16FromF32Bits,
  f16ToF32,
  f32ToBits,
  parseOutDtype,
} from "./dtype.ts";

test("bf16 encode: ties to even, NaN stays NaN, overflow to Inf", () => {
  assert.equal(bf16FromF32Bits(f32ToBits(1)), 0x3f80);
  assert.equal(bf16FromF32Bits(f32ToBits(1 + 2 ** -8)), 0x3f80); // tie → even (down)
  assert.equal(bf16FromF32Bits(f32ToBits(1 + 3 * 2 ** -8)), 0x3f82); // tie → even (up)
  assert.equal(bf16FromF32Bits(f32ToBits(1 + 2 ** -8 + 2 ** -20)), 0x3f81); // above tie → up
  assert.equal(bf16FromF32Bits(f32ToBits(-2.5)), 0xc020);
  assert.equal(bf16FromF32Bits(f32ToBits(3.4e38)), 0x7f80);
  assert.equal(bf16FromF32Bits(f32ToBits(-3.4e38)), 0xff80);
  assert.equal(bf16FromF32Bits(f32ToBits(Infinity)), 0x7f80);
  assert.ok(Number.isNaN(bf16ToF32(bf16FromF32Bits(0x7f800001)))); // signalling NaN stays NaN, not Inf
  assert.equal(bf16FromF32Bits(0x7fc00000), 0x7fc0);
  assert.equal(bf16FromF32Bits(0x00000001), 0x0000); // smallest f32 subnormal rounds to +0
  assert.equal(bf16FromF32Bits(0x00008000), 0x0000); // tie at 0x0000|0x8000 → even (0)
  assert.equal(bf16FromF32Bits(0x00018000), 0x0002); // tie → even (up)
  assert.equal(bf16ToF32(0x0001), 2 ** -133); // bf16 subnormal decodes exactly
});

test("f16 encode: ties, subnormals, overflow and NaN", () => {
  assert.equal(f16FromF32Bits(f32ToBits(1)), 0x3c00);
  assert.equal(f16FromF32Bits(f32ToBits(1 + 2 ** -11)), 0x3c00);
  assert.equal(f16FromF32Bits(f32ToBits(1 + 3 * 2 ** -11)), 0x3c02);
  assert.equal(f16FromF32Bits(f32ToBits(65504)), 0x7bff);
  assert.equal(f16FromF32Bits(f32ToBits(65519.99)), 0x7bff);
  assert.equal(f16FromF32Bits(f32ToBits(65520)), 0x7c00);
  assert.equal(f16FromF32Bits(f32ToBits(-1e6)), 0xfc00);
  assert.equal(f16FromF32Bits(f32ToBits(2 ** -24)), 0x0001);
  assert.equal(f16FromF32Bits(f32ToBits(2 ** -25)), 0x0000); // tie → even (0)
  assert.equal(f16FromF32Bits(f32ToBits(3 * 2 ** -25)), 0x0002); // tie → even (2)
  assert.equal(f16FromF32Bits(f32ToBits(-0)), 0x8000);
  assert.equal(f16FromF32Bits(0x7fc00000), 0x7e00);
  assert.equal(f16ToF32(0x0001), 2 ** -24);
  assert.equal(f16ToF32(0x7c00), Infinity);
});

test("f16 encode/decode agree with @petamoriken/float16 on 200k random bit patterns", () => {
  const dv = new DataView(new ArrayBuffer(2));
  let seed = 12345;
  let mismatches = 0;
  for (let i = 0; i < 200_000; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const bits = (seed ^ (seed << 7)) >>> 0;
    const x = bitsToF32(bits);
    setFloat16(dv, 0, x, true);
    const ref = dv.getUint16(0, true);
    const ours = f16FromF32Bits(bits);
    if (Number.isNaN(x) ? (ours & 0x7c00) !== 0x7c00 || (ours & 0x3ff) === 0 : ours !== ref) mismatches++;
  }
  assert.equal(mismatches, 0);
  for (let h = 0; h < 65536; h++) {
    dv.setUint16(0, h, true);
    const ref = getFloat16(dv, 0, true);
    const ours = f16ToF32(h);
    if (!(Object.is(ours, ref) || (Number.isNaN(ours) && Number.isNaN(ref)))) assert.fail(`code ${h}`);
  }
});

test("bulk decode/encode round-trip with odd alignment", () => {
  const vals = new Float32Array([1, -2, 0.5, 3.140625]);
  const bf = new Uint8Array(9);
  encodeFromF32("BF16", vals, bf.subarray(0, 8), 4);
  const shifted = new Uint8Array(9);
  shifted.set(bf.subarray(0, 8), 1);
  const out = new Float32Array(4);
  decodeToF32("BF16", shifted.subarray(1), out, 4);
  assert.deepEqual([...out], [1, -2, 0.5, 3.140625]);
  const f16 = new Uint8Array(8);
  encodeFromF32("F16", vals, f16, 4);
  decodeToF32("F16", f16, out, 4);
  assert.deepEqual([...out], [1, -2, 0.5, 3.140625]);
});

test("fp8 and integer decode", () => {
  const out = new Float32Array(4);
  decodeToF32("F8_E4M3", new Uint8Array([0x38, 0xb8, 0x7e, 0x7f]), out, 4);
  assert.deepEqual([...out.subarray(0, 3)], [1, -1, 448]);
  assert.ok(Number.isNaN(out[3]));
  decodeToF32("F8_E5M2", new Uint8Array([0x3c, 0x7b, 0x7c, 0x01]), out, 4);
  assert.deepEqual([...out], [1, 57344, Infinity, 2 ** -16]);
  decodeToF32("I64", new Uint8Array(new BigInt64Array([-3n, 2n]).buffer), out, 2);
  assert.deepEqual([...out.subarray(0, 2)], [-3, 2]);
});

test("dtype names", () => {
  assert.equal(parseOutDtype("bfloat16"), "BF16");
  assert.equal(parseOutDtype("f16"), "F16");
  assert.equal(parseOutDtype("F32"), "F32");
  assert.equal(parseOutDtype("fp8"), undefined);
});

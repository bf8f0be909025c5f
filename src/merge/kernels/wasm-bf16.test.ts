import { test } from "node:test";
import assert from "node:assert/strict";
import { compileKernelsWasm, instantiateKernelsWasm, sharedWasmMemory, wasmSimdAvailable } from "./wasm-module.ts";
import { fusedBf16 } from "./fused.ts";

// Hand-computed bf16 cases, 8 lanes (one SIMD step): a, b → 0.5·a + 0.5·b
//   1.0 (3f80) & 1.0078125 (3f81) → 1.00390625: a tie, rounds to even 3f80
//   1.0078125 (3f81) & 1.015625 (3f82) → 1.01171875: a tie, rounds to even 3f82
//   2 (4000) & −2 (c000) → +0 (0000);   −0 (8000) & −0 (8000) → −0 (8000)
//   +Inf (7f80) & 1 (3f80) → +Inf (7f80);   NaN (7fc1) & 1 → NaN, payload and sign kept (7fc1)
//   signalling NaN (ff81) & 1 → quiet NaN with sign (ffc1);   max (7f7f) & max → max (7f7f)
const A = [0x3f80, 0x3f81, 0x4000, 0x8000, 0x7f80, 0x7fc1, 0xff81, 0x7f7f];
const B = [0x3f81, 0x3f82, 0xc000, 0x8000, 0x3f80, 0x3f80, 0x3f80, 0x7f7f];
const WANT = [0x3f80, 0x3f82, 0x0000, 0x8000, 0x7f80, 0x7fc1, 0xffc1, 0x7f7f];

test("wasm bf16 kernels: module validates and matches hand-computed values (ties to even, ±0, Inf, NaN)", { skip: !wasmSimdAvailable() && "no WebAssembly SIMD" }, () => {
  const mem = sharedWasmMemory(1);
  const k = instantiateKernelsWasm(mem, compileKernelsWasm()!);
  const u16 = new Uint16Array(mem.buffer);
  u16.set(A, 0);
  u16.set(B, 8);
  k.wsum2(0, 16, 32, 8, 0.5, 0.5);
  assert.deepEqual([...u16.subarray(16, 24)], WANT);
  // k-term path: acc at byte 64 (f32), same result
  k.first(0, 64, 8, 0.5);
  k.accum(16, 64, 8, 0.5);
  k.fin(64, 32, 8);
  assert.deepEqual([...u16.subarray(16, 24)], WANT);
  // with a divisor: (a + b) / 2 equals 0.5·a + 0.5·b except max + max, which overflows to +Inf first
  k.wsum2d(0, 16, 32, 8, 1, 1, 2);
  assert.deepEqual([...u16.subarray(16, 24)], [...WANT.slice(0, 7), 0x7f80]);
  const ts = new Uint16Array(8);
  fusedBf16([Uint16Array.from(A), Uint16Array.from(B)], [1, 1], 2, ts, 8);
  assert.deepEqual([...ts], [...WANT.slice(0, 7), 0x7f80]);
});

test("TypeScript fused bf16 kernel matches the same hand-computed values", () => {
  const out = new Uint16Array(8);
  fusedBf16([Uint16Array.from(A), Uint16Array.from(B)], [0.5, 0.5], undefined, out, 8);
  assert.deepEqual([...out], WANT);
});

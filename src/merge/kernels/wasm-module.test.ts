import { test } from "node:test";
import assert from "node:assert/strict";
import { compileKernelsWasm, instantiateKernelsWasm, sharedWasmMemory } from "./wasm-module.ts";
import { KernelPool } from "../workers/pool.ts";

test("the AssemblyScript kernels module is built and shares the pool's memory", async () => {
  const module = compileKernelsWasm();
  assert.ok(module, "build/wasm/kernels.wasm is missing: run `npm run build:wasm`");
  const memory = sharedWasmMemory(1);
  const k = instantiateKernelsWasm(memory, module);
  assert.equal(k.abiVersion(), 1);
  new Float32Array(memory.buffer, 64, 3).set([1, 2, 3.5]);
  assert.equal(k.sumF32(64, 3), 6.5);
  const pool = KernelPool.start({ memoryBytes: 65536, workers: 1 });
  try {
    assert.equal(pool.hasKernelsModule, true);
    assert.equal(pool.local.sumF32!(0, 0), 0);
  } finally {
    await pool.close();
  }
});

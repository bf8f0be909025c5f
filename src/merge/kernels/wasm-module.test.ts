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

test("KernelPool.prestart: the next start with the same memory size and workers takes the waiting pool; other options start their own", async () => {
  const early = KernelPool.prestart({ memoryBytes: 3 * 65536, workers: 1 });
  assert.ok(early);
  assert.equal(KernelPool.prestart({ memoryBytes: 65536, workers: 1 }), early, "one waiting pool at a time");
  const other = KernelPool.start({ memoryBytes: 65536, workers: 1 });
  assert.notEqual(other, early);
  await other.close();
  // 3 × 65536 − 100 bytes round up to the same 3 pages
  const taken = KernelPool.start({ memoryBytes: 3 * 65536 - 100, workers: 1 });
  assert.equal(taken, early);
  assert.equal(taken.memory.buffer.byteLength, 3 * 65536);
  // it runs kernels like any started pool
  new Float32Array(taken.memory.buffer, 128, 2).set([0.5, 2]);
  await taken.run([[["copyBytes", 256, 128, 8]]]);
  assert.deepEqual([...new Float32Array(taken.memory.buffer, 256, 2)], [0.5, 2]);
  await taken.close();
  const fresh = KernelPool.start({ memoryBytes: 3 * 65536, workers: 1 });
  assert.notEqual(fresh, early, "taken once");
  await fresh.close();
  KernelPool.prestart({ memoryBytes: 65536, workers: 1 });
  await KernelPool.discardPrestarted();
  await KernelPool.discardPrestarted(); // idempotent
});

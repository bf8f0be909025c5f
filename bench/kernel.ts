/**
 * In-memory kernel throughput (no file I/O): the fused bf16 weighted sum out = bf16(½a + ½b) over 32 Mi
 * elements already in the pool's shared memory — WebAssembly SIMD on every pool worker, and the TypeScript
 * fallback on one thread. Best of 5. Shows how far compute is from the I/O floor.
 */
import { availableParallelism } from "node:os";
import { KernelPool, type KernelCall } from "../src/merge/workers/pool.ts";
import { fusedBf16 } from "../src/merge/kernels/fused.ts";

export interface KernelRates {
  /** elements/s, WebAssembly SIMD, all workers. */
  readonly wasmWorkers: number;
  readonly workers: number;
  /** elements/s, WebAssembly SIMD, main thread only. */
  readonly wasmOneThread: number;
  /** elements/s, TypeScript fused kernel, main thread. */
  readonly tsOneThread: number;
}

export async function measureKernels(n = 32 * 1024 * 1024): Promise<KernelRates> {
  const workers = availableParallelism();
  const pool = KernelPool.start({ memoryBytes: n * 6 + 65536, workers });
  try {
    const a = pool.alloc(n * 2);
    const b = pool.alloc(n * 2);
    const o = pool.alloc(n * 2);
    const ua = new Uint16Array(pool.memory.buffer, a, n);
    const ub = new Uint16Array(pool.memory.buffer, b, n);
    let s = 1;
    for (let i = 0; i < n; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      ua[i] = (s & 0x807f) | 0x3c00;
      ub[i] = ((s >>> 16) & 0x807f) | 0x3c00;
    }
    const best = async (f: () => Promise<void> | void): Promise<number> => {
      let t = Infinity;
      for (let r = 0; r < 5; r++) {
        const t0 = performance.now();
        await f();
        t = Math.min(t, performance.now() - t0);
      }
      return n / (t / 1000);
    };
    const per = Math.ceil(n / workers / 8) * 8;
    const batches: KernelCall[][] = Array.from({ length: workers }, (_, w) => {
      const from = Math.min(n, w * per);
      const len = Math.min(n, from + per) - from;
      return len > 0 ? [["wsum2", a + from * 2, b + from * 2, o + from * 2, len, 0.5, 0.5]] : [];
    });
    const wasmWorkers = await best(() => pool.run(batches));
    const wasmOneThread = await best(() => pool.local.wsum2(a, b, o, n, 0.5, 0.5));
    const out = new Uint16Array(n);
    const tsOneThread = await best(() => fusedBf16([ua, ub], [0.5, 0.5], undefined, out, n));
    return { wasmWorkers, workers, wasmOneThread, tsOneThread };
  } finally {
    await pool.close();
  }
}

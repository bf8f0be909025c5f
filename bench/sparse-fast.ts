/**
 * Microbenchmark of the TIES / DARE-TIES fast path (workers/fast-ties.ts) without disk I/O: the data of
 * bench/sparse-kernel.ts (one 4096×4096 bf16 tensor, aligned + two tuned models at −1/0/+1 bf16 ulp,
 * density 0.5), "read" by copying from memory into the pool's slots, output discarded. Runs the pool with
 * 1 and 2 workers (best of --repeat R). Prints seconds, CPU seconds and params/s per method.
 *   node --import tsx bench/sparse-fast.ts [ties,dare_ties] [--rows R] [--repeat R]
 */
import { KernelPool } from "../src/merge/workers/pool.ts";
import { fastTiesMemoryBytes, runFastTies, type FastSparseJob } from "../src/merge/workers/fast-ties.ts";
import { sparseFormOf } from "../src/merge/kernels/sparse-form.ts";
import { tensorContext } from "../src/merge/methods/apply.ts";

const args = process.argv.slice(2);
const methods = (args.find((a) => !a.startsWith("--")) ?? "ties,dare_ties").split(",");
const opt = (name: string, d: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : d);
const rows = opt("--rows", 4096);
const repeat = opt("--repeat", 3);
const chunkElems = opt("--chunk", 2 * 1024 * 1024);
const cols = 4096;
const n = rows * cols;

let s = 12345;
const rnd = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
const alignedBits = new Uint16Array(n);
for (let i = 0; i < n; i++) {
  const v = (rnd() - 0.5) * 0.05;
  alignedBits[i] = new Uint32Array(new Float32Array([v]).buffer)[0]! >>> 16;
}
const tuned = [0, 1].map(() => {
  const t = new Uint16Array(n);
  for (let i = 0; i < n; i++) t[i] = alignedBits[i]! + Math.floor(rnd() * 3) - 1;
  return t;
});
const srcs = [alignedBits, ...tuned].map((a) => new Uint8Array(a.buffer));

for (const workers of [1, 2]) {
  const pool = KernelPool.start({ memoryBytes: fastTiesMemoryBytes(workers, { chunkElems }), workers });
  for (const name of methods) {
    const ctx = tensorContext("model.layers.0.mlp.up_proj.weight", [rows, cols], 7, 0);
    const params = { global: { lambda: 1 }, perModel: [{ weight: 1, density: 0.5 }, { weight: 1, density: 0.5 }] };
    const form = sparseFormOf(name, params, ctx, 2)!;
    let check = 0;
    const job: FastSparseJob = {
      ...form,
      numel: n,
      reads: [0, 1, 2].map((k) => async (off: number, out: Uint8Array) => out.set(srcs[k]!.subarray(off, off + out.length))) as unknown as FastSparseJob["reads"],
      write: async (_off, bytes) => {
        check += bytes[0]!;
      },
      nonFinite: (i) => new Error(`non-finite at ${i}`),
    };
    let best = { wall: Infinity, cpu: 0 };
    for (let r = 0; r < repeat; r++) {
      const t0 = performance.now();
      const c0 = process.resourceUsage();
      await runFastTies([job], pool, { chunkElems });
      const wall = (performance.now() - t0) / 1000;
      const c1 = process.resourceUsage();
      const cpu = (c1.userCPUTime + c1.systemCPUTime - c0.userCPUTime - c0.systemCPUTime) / 1e6;
      if (wall < best.wall) best = { wall, cpu };
    }
    console.log(`${name} fast path, ${workers} worker(s): ${n} params, ${best.wall.toFixed(3)} s wall, ${best.cpu.toFixed(3)} CPU s, ${(n / best.wall / 1e6).toFixed(1)} M params/s (best of ${repeat}; check ${check})`);
  }
  await pool.close();
}

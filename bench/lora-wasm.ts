/**
 * Throughput of the LoRA delta on the 8B projection shapes: the TypeScript kernel (`lora-delta.ts`
 * `addDeltaRange`, float32, 1 thread) against the AssemblyScript kernel the merge's fast path runs
 * (`loraBf16`: bf16 θ in, θ + s·U·V, λ-weighted sum with the aligned term, bf16 out) on 1 thread and on
 * the kernel pool's workers — the whole tensor split in row bands, and in the merge's 2 Mi-element chunks
 * (one pool round trip per chunk). GFLOP/s count 2·rows·cols·r; "per CPU s" divides by the process's CPU
 * time (all threads), i.e. the rate per busy core. Best of `--repeat` (default 3). Not a test.
 *
 *   node --import tsx bench/lora-wasm.ts [--ranks 16,32,64] [--shapes 4096x4096,4096x14336,14336x4096,1024x4096]
 *                                       [--repeat 3] [--ts-rows 256] [--workers N]
 *
 * The TypeScript kernel is timed on the first `--ts-rows` rows only (its cost per row is uniform) and
 * scaled; everything else runs the whole tensor.
 */
import { availableParallelism, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { addDeltaRange, deltaScratch, type LowRankDelta } from "../src/merge/lora-delta.ts";
import { KernelPool, type KernelCall } from "../src/merge/workers/pool.ts";

const { values } = parseArgs({
  options: {
    ranks: { type: "string", default: "16,32,64" },
    shapes: { type: "string", default: "4096x4096,4096x14336,14336x4096,1024x4096" },
    repeat: { type: "string", default: "3" },
    "ts-rows": { type: "string", default: "256" },
    workers: { type: "string", default: String(availableParallelism()) },
  },
});
const ranks = values.ranks.split(",").map(Number);
const shapes = values.shapes.split(",").map((s) => s.split("x").map(Number) as [number, number]);
const repeat = Number(values.repeat);
const tsRows = Number(values["ts-rows"]);
const workers = Number(values.workers);
const CHUNK = 2 * 1024 * 1024;

const maxElems = Math.max(...shapes.map(([r, c]) => r * c));
const maxUv = Math.max(...shapes.map(([r, c]) => (r + c) * Math.max(...ranks) * 4));
const pool = KernelPool.start({ memoryBytes: 3 * maxElems * 2 + maxUv + (1 << 20), workers });
if (!pool.hasKernelsModule) throw new Error("build/wasm/kernels.wasm is missing: run `npm run build:wasm`");
const thetaP = pool.alloc(maxElems * 2);
const yP = pool.alloc(maxElems * 2);
const outP = pool.alloc(maxElems * 2);
const uvP = pool.alloc(maxUv);
const mem = pool.memory.buffer;

function seeded(n: number, seed: number, scale: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.37 + seed) * scale;
  return x;
}

/** Best wall seconds and the process CPU seconds of that run. */
async function best(fn: () => unknown): Promise<{ s: number; cpu: number }> {
  let b = { s: Infinity, cpu: 0 };
  for (let i = 0; i < repeat; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    const s = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    if (s < b.s) b = { s, cpu: (c.user + c.system) / 1e6 };
  }
  return b;
}

const load0 = loadavg()[0]!;
const rowsOut: string[] = [];
rowsOut.push("| shape (rows×cols) | r | GFLOP | TS 1 thread | WASM 1 thread | WASM " + workers + " workers, whole tensor | WASM " + workers + " workers, 2 Mi-element chunks |");
rowsOut.push("|---|---:|---:|---:|---:|---:|---:|");
for (const [rows, cols] of shapes) {
  const n = rows * cols;
  const theta = new Uint16Array(mem, thetaP, n);
  const y = new Uint16Array(mem, yP, n);
  for (let i = 0; i < n; i++) theta[i] = y[i] = 0x3c00 + (i % 251);
  for (const r of ranks) {
    const u = seeded(rows * r, 1, 0.02);
    const v = seeded(r * cols, 2, 0.02);
    const d: LowRankDelta = { rows, cols, rank: r, u, v, scale: 2 };
    const up = uvP;
    const vp = uvP + Math.ceil((rows * r * 4) / 64) * 64;
    new Float32Array(mem, up, rows * r).set(u);
    new Float32Array(mem, vp, r * cols).set(v);
    const flops = 2 * n * r;
    const call = (r0: number, r1: number): KernelCall => {
      const off = r0 * cols * 2;
      return ["loraBf16", thetaP + off, yP + off, outP + off, up + r0 * r * 4, vp, r1 - r0, cols, r, 2, 0.5, 1, 0.5, 0, 0, 1];
    };
    const bands = (r0: number, r1: number): KernelCall[][] => {
      const per = Math.ceil((r1 - r0) / workers / 4) * 4;
      return Array.from({ length: workers }, (_, w) => {
        const a = Math.min(r1, r0 + w * per);
        const b = Math.min(r1, a + per);
        return b > a ? [call(a, b)] : [];
      });
    };
    // TypeScript: the first tsRows rows, float32 in place
    const tr = Math.min(rows, tsRows);
    const x = new Float32Array(tr * cols);
    const scratch = deltaScratch(cols);
    const ts = await best(() => addDeltaRange(d, 0, tr * cols, x, scratch));
    const tsRate = (2 * tr * cols * r) / ts.s / 1e9;
    const local = pool.local.loraBf16!;
    const one = await best(() => {
      const [, ...a] = call(0, rows);
      (local as (...z: number[]) => void)(...a);
    });
    const all = await best(() => pool.run(bands(0, rows)));
    const rowsPerChunk = Math.floor(CHUNK / cols);
    const chunked = await best(async () => {
      for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) await pool.run(bands(r0, Math.min(rows, r0 + rowsPerChunk)));
    });
    // GFLOP per CPU second: the rate per core, robust to other processes taking the CPUs
    const g = (t: { s: number; cpu: number }): string =>
      `${(flops / t.s / 1e9).toFixed(1)} GFLOP/s (${t.s.toFixed(3)} s; ${(flops / Math.max(t.cpu, 1e-3) / 1e9).toFixed(1)} per CPU s)`;
    rowsOut.push(
      `| ${rows}×${cols} | ${r} | ${(flops / 1e9).toFixed(2)} | ${tsRate.toFixed(2)} GFLOP/s (${tr} rows) | ${g(one)} | ${g(all)} | ${g(chunked)} |`,
    );
    console.error(rowsOut.at(-1));
  }
}
await pool.close();
console.log(`LoRA delta kernels, ${workers} workers, best of ${repeat}, Node ${process.version}, ${new Date().toISOString()}, load average ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}\n`);
console.log(rowsOut.join("\n"));

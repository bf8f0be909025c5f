/**
 * Microbenchmark of the sparsifying task-vector methods' float32 work (measure passes + kernel), without
 * disk I/O: one 4096×4096 tensor (16 Mi elements) in 4 Mi-element chunks (run.ts's default, 16 MiB per
 * input), aligned + two tuned models whose elements moved by −1/0/+1 bf16 ulp (as bench/synthetic.ts),
 * decoded from bf16 each pass as run.ts does. Prints seconds, CPU seconds and params/s per method.
 *   node --import tsx bench/sparse-kernel.ts [ties,dare_ties,…] [--rows R]
 */
import { decodeToF32 } from "../src/core/dtype.ts";
import { METHODS } from "../src/merge/methods/registry.ts";
import { tensorContext } from "../src/merge/methods/apply.ts";
import type { Chunk, MergeMethod } from "../src/merge/methods/types.ts";

const args = process.argv.slice(2);
const methods = (args.find((a) => !a.startsWith("--")) ?? "ties,dare_ties").split(",");
const rowsArg = args.indexOf("--rows");
const rows = rowsArg >= 0 ? Number(args[rowsArg + 1]) : 4096;
const cols = 4096;
const n = rows * cols;
const chunk = 4 * 2 ** 20;

let s = 12345;
const rnd = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
const alignedBits = new Uint16Array(n);
for (let i = 0; i < n; i++) {
  const v = (rnd() - 0.5) * 0.05;
  const f = new Float32Array([v]);
  alignedBits[i] = new Uint32Array(f.buffer)[0]! >>> 16;
}
const tuned = [0, 1].map(() => {
  const t = new Uint16Array(n);
  for (let i = 0; i < n; i++) t[i] = alignedBits[i]! + Math.floor(rnd() * 3) - 1;
  return t;
});
const srcs = [alignedBits, ...tuned].map((a) => new Uint8Array(a.buffer));
const bufs = srcs.map(() => new Float32Array(chunk));
const out = new Float32Array(chunk);

function readChunk(off: number, len: number): Chunk {
  srcs.forEach((src, k) => decodeToF32("BF16", src.subarray(off * 2, (off + len) * 2), bufs[k]!, len));
  return { base: bufs[0]!.subarray(0, len), models: [bufs[1]!.subarray(0, len), bufs[2]!.subarray(0, len)], offset: off };
}

for (const name of methods) {
  const method = METHODS[name] as MergeMethod<unknown>;
  const ctx = tensorContext("model.layers.0.mlp.up_proj.weight", [rows, cols], 7, 0);
  const params = { global: { lambda: 1 }, perModel: [{ weight: 1, density: 0.5 }, { weight: 1, density: 0.5 }] };
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const stats = method.initStats(ctx, params);
  const passes = method.measurePasses(ctx, params);
  let ran = 0;
  for (let pass = 0; pass < passes; pass++) {
    for (let off = 0; off < n; off += chunk) method.measure(pass, stats, readChunk(off, Math.min(chunk, n - off)), ctx, params);
    ran++;
    if (method.endPass(pass, stats, ctx, params) === true) break;
  }
  let check = 0;
  for (let off = 0; off < n; off += chunk) {
    const len = Math.min(chunk, n - off);
    const o = out.subarray(0, len);
    method.kernel(readChunk(off, len), o, stats, ctx, params);
    for (let j = 0; j < len; j += 4097) check += o[j]!;
  }
  const wall = (performance.now() - t0) / 1000;
  const cu = process.cpuUsage(c0);
  const cpu = (cu.user + cu.system) / 1e6;
  console.log(`${name}: ${n} params, ${ran} measure passes, ${wall.toFixed(3)} s wall, ${cpu.toFixed(3)} CPU s, ${(n / wall / 1e6).toFixed(1)} M params/s (check ${check.toFixed(6)})`);
}

/**
 * Throughput of the LoRA delta kernel (src/merge/lora-delta.ts): W += s·B·A for one out×in matrix, single
 * thread, float32. Reports GFLOP/s counting 2·out·in·r flops (one multiply + one add per term) plus the
 * final scale-and-add. Not a test; run with `node --import tsx bench/lora-delta.ts [out in r]`.
 */
import { addDeltaRange, deltaRow, deltaScratch, lowRankFromAB } from "../src/merge/lora-delta.ts";

const [outDim, inDim] = [Number(process.argv[2] ?? 4096), Number(process.argv[3] ?? 4096)];
const ranks = process.argv[4] !== undefined ? [Number(process.argv[4])] : [16, 32, 64];
const chunkElems = 4 << 20; // 4M elements per read, as a streaming merge would ask

for (const r of ranks) {
  const a = new Float32Array(r * inDim).map((_, i) => Math.sin(i) * 0.01);
  const b = new Float32Array(outDim * r).map((_, i) => Math.cos(i) * 0.01);
  const d = lowRankFromAB(a, b, r, inDim, outDim, 2, false);
  const x = new Float32Array(Math.min(chunkElems, outDim * inDim));
  const scratch = deltaScratch(inDim);
  const flops = 2 * outDim * inDim * r;
  const run4 = (): number => {
    const t0 = performance.now();
    for (let off = 0; off < outDim * inDim; off += x.length) {
      const n = Math.min(x.length, outDim * inDim - off);
      addDeltaRange(d, off, n, x, scratch);
    }
    return (performance.now() - t0) / 1000;
  };
  const run1 = (): number => {
    const t0 = performance.now();
    for (let i = 0; i < outDim; i++) deltaRow(d, i, 0, inDim, scratch);
    return (performance.now() - t0) / 1000;
  };
  let best4 = Infinity;
  let best1 = Infinity;
  for (let rep = 0; rep < 5; rep++) {
    best4 = Math.min(best4, run4());
    best1 = Math.min(best1, run1());
  }
  console.log(
    `${outDim}×${inDim} r=${r}: 4-row blocked ${(flops / best4 / 1e9).toFixed(2)} GFLOP/s (${best4.toFixed(3)} s), ` +
      `1-row ${(flops / best1 / 1e9).toFixed(2)} GFLOP/s (${best1.toFixed(3)} s)`,
  );
}

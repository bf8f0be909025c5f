/**
 * Microbenchmark of the TIES / DARE-TIES fast path (workers/fast-ties.ts) without disk I/O: the data of
 * bench/sparse-kernel.ts (one 4096×4096 bf16 tensor, aligned + two tuned models at −1/0/+1 bf16 ulp,
 * density 0.5), "read" by copying from memory into the pool's slots, output discarded. Runs the pool with
 * 1 and 2 workers (best of --repeat R). Prints seconds, CPU seconds and params/s per method.
 * `--kernels` instead times each WebAssembly kernel alone on the main thread (4 Mi elements of the same
 * data, CPU time, best of 7): histogram, tie count, TIES kernel, DARE L1 measure (both models), DARE kernel.
 * `--spread S` replaces the ±1 ulp task vectors by Gaussian ones (S/256 of the weights' scale: many
 * distinct |δ|, as a longer fine-tune gives); `--kernels` then also prints the light fraction of the band.
 * `--no-band` runs TIES with the full histogram measure pass instead of the banded one (fast-ties.ts).
 *   node --import tsx bench/sparse-fast.ts [ties,dare_ties] [--rows R] [--repeat R] [--chunk C] [--kernels] [--no-band] [--spread S]
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
/** --no-band: the full histogram measure pass (as REALIGN_TIES_BAND=0). */
const tiesBand = args.includes("--no-band") ? false : undefined;
const cols = 4096;
const n = rows * cols;

let s = 12345;
const rnd = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
const alignedBits = new Uint16Array(n);
for (let i = 0; i < n; i++) {
  const v = (rnd() - 0.5) * 0.05;
  alignedBits[i] = new Uint32Array(new Float32Array([v]).buffer)[0]! >>> 16;
}
/** --spread S: tuned = aligned + Gaussian noise of S/256 of the weights' scale (many distinct |δ|) instead of −1/0/+1 ulp. */
const spread = opt("--spread", 0);
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const gauss = (): number => rnd() + rnd() + rnd() + rnd() + rnd() + rnd() - 3;
const tuned = [0, 1].map(() => {
  const t = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    if (spread === 0) t[i] = alignedBits[i]! + Math.floor(rnd() * 3) - 1;
    else {
      u32[0] = alignedBits[i]! << 16;
      f32[0] = f32[0]! + (gauss() * 0.015 * spread) / 256;
      t[i] = u32[0]! >>> 16;
    }
  }
  return t;
});
const srcs = [alignedBits, ...tuned].map((a) => new Uint8Array(a.buffer));

if (args.includes("--kernels")) {
  const m = 4 * 1024 * 1024;
  const pool = KernelPool.start({ memoryBytes: 80 << 20, workers: 1 });
  const [b, x0, x1, o] = [0, 1, 2, 3].map(() => pool.alloc(m * 2));
  const [h0, h1, misc] = [pool.alloc(262144), pool.alloc(262144), pool.alloc(64)];
  [alignedBits, ...tuned].forEach((src, k) => new Uint16Array(pool.memory.buffer, [b, x0, x1][k]!, m).set(src.subarray(0, m)));
  const k = pool.local as unknown as Record<string, (...a: number[]) => void>;
  const V = 0x3a000000; // some |δ| threshold
  const time = (name: string, f: () => void): void => {
    let best = Infinity;
    for (let r = 0; r < 7; r++) {
      const c = process.cpuUsage();
      f();
      const u = process.cpuUsage(c);
      best = Math.min(best, (u.user + u.system) / 1e6);
    }
    console.log(`${name}: ${(m / best / 1e6).toFixed(0)} M elements per CPU second`);
  };
  time("tiesHist2 (both models)", () => k.tiesHist2!(b!, x0!, x1!, m, h0, h1, misc));
  {
    const { chooseBand, fineWindow } = await import("../src/merge/kernels/ties-band.ts");
    const hs = [h0, h1].map((h) => new Uint32Array(pool.memory.buffer, h, 65536).slice());
    // a sample of 1/8 of the 4 Mi elements (the 7 runs above added 7 histograms), as fast-ties takes 512 Ki
    const samples = hs.map((h) => h.map((c) => Math.floor(c / 56)));
    const bands = samples.map((h) => chooseBand(h, h.reduce((a, c) => a + c, 0), m / 2, m)!);
    const light = bands.map((bd, q) => {
      let c = 0;
      for (let i = bd!.lo; i <= bd!.hi; i++) if (i !== bd!.heavyA && i !== bd!.heavyB) c += hs[q]![i]!;
      return (c / (m * 7)).toFixed(4); // in the whole data (the sample's rounding drops small bins)
    });
    console.log("bands", JSON.stringify(bands), "light fractions", light.join(", "));
    const [b0, b1] = bands as [NonNullable<(typeof bands)[0]>, NonNullable<(typeof bands)[0]>];
    time("tiesBand2 (both models)", () => k.tiesBand2!(b!, x0!, x1!, m, b0.lo, b0.hi, b0.heavyA, b0.heavyB, b1.lo, b1.hi, b1.heavyA, b1.heavyB, h0, h1, misc + 16));
    const fw = [b0, b1].map(fineWindow);
    const fine = pool.alloc(2 * 8 * 262144);
    console.log("fine windows", JSON.stringify(fw));
    time("tiesHistFine2 (both models, fine windows)", () => k.tiesHistFine2!(b!, x0!, x1!, m, h0, h1, misc, fw[0]!.lo, fw[0]!.w, fine, fw[1]!.lo, fw[1]!.w, fine + 8 * 262144));
    time("tiesFine (one model)", () => k.tiesFine!(b!, x0!, m, b0.center ?? b0.lo, fine));
  }
  time("tiesCount2 (both models)", () => k.tiesCount2!(b!, x0!, x1!, m, V, V, misc + 8));
  time("ties2 (w 0.5/0.5, normalize)", () => k.ties2!(b!, x0!, x1!, o!, m, V, V, 0x7fffffff, 0x7fffffff, 0.5, 0.5, 1, 1, 1, 1, misc + 16));
  time("ties2 (w 1/0.5, normalize: division)", () => k.ties2!(b!, x0!, x1!, o!, m, V, V, 0x7fffffff, 0x7fffffff, 1, 0.5, 1, 1, 1, 1, misc + 16));
  const [l1s, l1o] = [pool.alloc(256), pool.alloc(((m >>> 12) + 2) * 32 + 16)];
  const masks = pool.alloc(m / 4);
  time("dareL1x2 (both models)", () => k.dareL1x2!(b!, x0!, x1!, m, 0, 12345, 8388608, 3, 8388608, l1s, l1o, 1, 1, 0));
  time("dareL1x2 (both models), storing the keep masks", () => k.dareL1x2!(b!, x0!, x1!, m, 0, 12345, 8388608, 3, 8388608, l1s, l1o, 1, 1, masks));
  time("dare2 (w 0.5/0.5, normalize, l1 factors)", () => k.dare2!(b!, x0!, x1!, o!, m, 0, 1, 8388608, 3, 8388608, 0.5, 0.5, 1.9, 2.1, 1, 1, misc + 16, 0, 1, 0));
  time("dare2 (the same, stored keep masks)", () => k.dare2!(b!, x0!, x1!, o!, m, 0, 1, 8388608, 3, 8388608, 0.5, 0.5, 1.9, 2.1, 1, 1, misc + 16, 0, 1, masks));
  time("dare2 (stored keep masks, factors 1)", () => k.dare2!(b!, x0!, x1!, o!, m, 0, 1, 8388608, 3, 8388608, 0.5, 0.5, 1, 1, 1, 1, misc + 16, 0, 1, masks));
  time("memcpy of the 3 inputs", () => [b, x0, x1].forEach((p) => new Uint8Array(pool.memory.buffer, o!, m * 2).set(new Uint8Array(pool.memory.buffer, p!, m * 2))));
  await pool.close();
  process.exit(0);
}

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
    const kinds: string[] = [];
    for (let r = 0; r < repeat; r++) {
      const t0 = performance.now();
      const c0 = process.resourceUsage();
      await runFastTies([job], pool, { chunkElems, tiesBand, onTiesMeasure: (_j, kind) => kinds.push(kind) });
      const wall = (performance.now() - t0) / 1000;
      const c1 = process.resourceUsage();
      const cpu = (c1.userCPUTime + c1.systemCPUTime - c0.userCPUTime - c0.systemCPUTime) / 1e6;
      if (wall < best.wall) best = { wall, cpu };
    }
    console.log(`${name} fast path, ${workers} worker(s): ${n} params, ${best.wall.toFixed(3)} s wall, ${best.cpu.toFixed(3)} CPU s, ${(n / best.wall / 1e6).toFixed(1)} M params/s (best of ${repeat}; check ${check}${kinds.length > 0 ? `; TIES measure: ${[...new Set(kinds)].join(", ")}` : ""})`);
  }
  await pool.close();
}

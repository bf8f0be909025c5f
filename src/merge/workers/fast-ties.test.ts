import { test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildHfDir, llamaConfig, type BuildTensor } from "../../../test/builders/safetensors.ts";
import { mergeRecipe } from "../run.ts";
import type { Recipe } from "../recipe.ts";
import { KernelPool } from "./pool.ts";
import { fastTiesMemoryBytes, runFastTies, type FastSparseJob } from "./fast-ties.ts";
import { stagingSink } from "../../../test/helpers/staging-sink.ts";
import { compileKernelsWasm, instantiateKernelsWasm, sharedWasmMemory } from "../kernels/wasm-module.ts";
import { sparseFormOf } from "../kernels/sparse-form.ts";
import { tensorContext } from "../methods/apply.ts";
import { NO_BIN, samplePlan } from "../kernels/ties-band.ts";
import { createMagnitudeRanking, endRankingPass, keepCount, L1_BLOCK, L1_GROUP, uniformAtLow } from "../methods/sparsify.ts";
import { BF16_SPECIALS, bf16FileDifference, xorshift32 } from "../../../test/helpers/bf16-random.ts";

const skip = (!KernelPool.available() || compileKernelsWasm() === undefined) && "no WebAssembly SIMD or build/wasm/kernels.wasm";

const rng = xorshift32;

const SPECIALS = BF16_SPECIALS;

/** Random bf16 codes (finite magnitudes below 2¹⁰⁰ so x − b cannot overflow), 1 in 16 a special (±0, ±Inf, NaNs, subnormals). */
function randomBits(n: number, seed: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => {
    const s = r();
    if ((s & 15) === 0) return SPECIALS[(s >>> 4) % SPECIALS.length]!;
    const e = 60 + ((s >>> 8) % 130); // exponent field: subnormal-ish to 2^66
    return ((s >>> 31) << 15) | (e << 7) | ((s >>> 16) & 0x7f);
  });
}

/** base ± k bf16 ulp (k in −2..2): task vectors are bf16 numbers (low 16 bits zero) with very many ties. */
function nearBits(base: readonly number[], seed: number, spread = 2): number[] {
  const r = rng(seed);
  return base.map((b) => {
    if ((b & 0x7f80) === 0x7f80) return b;
    const k = (r() % (2 * spread + 1)) - spread;
    const v = (b + k) & 0xffff;
    return (v & 0x7f80) === 0x7f80 ? b : v;
  });
}

type Kind = "random" | "near" | "mixed";

/** One checkpoint's tensors: model 0 is the base; tuned models derive from it by kind. */
function tensors(model: number, kinds: Record<string, { shape: number[]; kind: Kind }>): Record<string, BuildTensor> {
  const out: Record<string, BuildTensor> = {};
  let k = 0;
  for (const [name, { shape, kind }] of Object.entries(kinds)) {
    k++;
    const n = shape.reduce((a, b) => a * b, 1);
    const base = randomBits(n, 1000 + k);
    let bits: number[];
    if (model === 0) bits = base;
    else if (kind === "random") bits = randomBits(n, 7919 * model + k);
    else if (kind === "near") bits = nearBits(base, 31 * model + k);
    else {
      // near, with every 97th element random: the boundary bin's low bits are not all zero (fine pass)
      const near = nearBits(base, 31 * model + k, 1);
      const rnd = randomBits(n, 7919 * model + k);
      bits = near.map((v, i) => (i % 97 === 0 ? rnd[i]! : v));
    }
    out[name] = { dtype: "BF16", shape, bits };
  }
  return out;
}

const LAYOUT: Record<string, { shape: number[]; kind: Kind }> = {
  "model.embed_tokens.weight": { shape: [211, 37], kind: "near" },
  "model.layers.0.input_layernorm.weight": { shape: [37], kind: "random" },
  "model.layers.0.mlp.down_proj.weight": { shape: [37, 96], kind: "mixed" },
  "model.layers.0.self_attn.q_proj.weight": { shape: [37, 37], kind: "random" },
  "model.layers.0.mlp.up_proj.weight": { shape: [96, 37], kind: "near" },
  "model.norm.weight": { shape: [37], kind: "near" },
  "lm_head.weight": { shape: [211, 37], kind: "mixed" },
};

function readDir(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const f of readdirSync(dir).sort()) if (f !== "README.md") out.set(f, readFileSync(join(dir, f)));
  return out;
}

interface Case {
  readonly method: string;
  readonly params: Record<string, number | boolean | string>;
  readonly perModel: Record<string, number>[];
}

const CASES: Case[] = [
  { method: "ties", params: { lambda: 0.8 }, perModel: [{ weight: 1, density: 0.5 }, { weight: 0.5, density: 0.3 }] },
  { method: "ties", params: { lambda: 1, normalize: false, rescale: true, rescale_mode: "inverse_density" }, perModel: [{ weight: 0.7, density: 0.1 }, { weight: -0.4, density: 0.9 }] },
  { method: "ties", params: { lambda: 0.6 }, perModel: [{ weight: 2, density: 0.5 }, { weight: -1, density: 0.4 }] }, // divisors 1, 2, −1, 1: reciprocals
  { method: "ties", params: {}, perModel: [{ weight: 1, density: 0.5 }, { weight: 1, density: 0.5 }] },
  { method: "ties", params: { lambda: 0.5, rescale: true }, perModel: [{ weight: 1, density: 0.5 }, { weight: 1, density: 0.5 }] }, // l1: generic path
  { method: "ties", params: { lambda: 0.7 }, perModel: [{ weight: 0.25, density: 0.5 }, { weight: 0.25, density: 0.4 }] }, // equal powers of two: eqMode
  { method: "ties", params: { lambda: 0.9, rescale: true, rescale_mode: "inverse_density" }, perModel: [{ weight: 0.5, density: 0.5 }, { weight: 0.5, density: 0.4 }] }, // eqMode with factors 2 and 2.5
  { method: "ties", params: { lambda: 1 }, perModel: [{ weight: 0.5, density: 0.6 }, { weight: 0.5, density: 0.5 }] }, // eqMode, λ = 1
  { method: "dare_ties", params: { lambda: 0.8 }, perModel: [{ weight: 1, density: 0.5 }, { weight: 0.5, density: 0.3 }] },
  { method: "dare_ties", params: { lambda: 1, rescale_mode: "inverse_density", normalize: true }, perModel: [{ weight: 1, density: 0.7 }, { weight: 0.25, density: 0.2 }] },
  { method: "dare_ties", params: { normalize: true }, perModel: [{ weight: 1, density: 0.5 }, { weight: 1, density: 0.5 }] },
  { method: "dare_ties", params: { lambda: 1.5, rescale: false }, perModel: [{ weight: 1, density: 0.5 }, { weight: 1, density: 0.5 }] },
  { method: "dare_ties", params: { normalize: true, rescale: false }, perModel: [{ weight: 0.5, density: 0.5 }, { weight: 0.5, density: 0.5 }] }, // eqMode
  { method: "dare_linear", params: { lambda: 0.8, rescale_mode: "inverse_density" }, perModel: [{ weight: 1, density: 0.5 }, { weight: 0.5, density: 0.3 }] },
  { method: "dare_linear", params: { normalize: true }, perModel: [{ weight: 0.7, density: 0.5 }, { weight: 0.6, density: 0.4 }] }, // l1; divisor 1.3
  { method: "dare_linear", params: { normalize: true, lambda: 1 }, perModel: [{ weight: 1, density: 0.5 }, { weight: 1, density: 0.6 }] }, // divisor 2
  { method: "dare_linear", params: { normalize: true, lambda: 0.5 }, perModel: [{ weight: 1, density: 0.5 }, { weight: -1, density: 0.6 }] }, // Σw = 0 → 1
  { method: "dare_linear", params: { rescale: false }, perModel: [{ weight: -0.5, density: 0.5 }, { weight: -0.25, density: 0.5 }] }, // −0 terms on a −0 base
];

/** Pipeline settings: every case crosses chunk and worker boundaries; the first case of each method also runs the rest. */
const RUN_MAIN = { chunkElems: 1024, slots: 3, localMax: 256 };
// (dareMaskMaxElems 4000: DARE tensors above it hash the keep masks again in the merge pass)
// (chunkElems 1000: DARE's l1 lane sums carried from chunk to chunk across a 4096-element block boundary)
// (readBlockElems: DARE's worker reads in blocks, both passes at 4096 (a whole tensor's chunk in two
// blocks), only the merge pass at 1000, whose last block is ragged)
const RUN_MORE = [
  { chunkElems: 64, slots: 2 },
  { chunkElems: 1000, slots: 3, localMax: 0 },
  { chunkElems: 4096, slots: 4, localMax: 0 },
  { chunkElems: 4096, slots: 2, localMax: 0, dareMaskMaxElems: 4000 },
  { chunkElems: 8192, slots: 2, localMax: 0, readBlockElems: 4096 },
  { chunkElems: 4096, slots: 3, localMax: 0, readBlockElems: 1000 },
  {},
];

const seen = new Set<string>();
for (const c of CASES) {
  const runs = seen.has(c.method) ? [RUN_MAIN] : [RUN_MAIN, ...RUN_MORE];
  seen.add(c.method);
  test(`runMerge: the TIES/DARE fast path writes the generic path's bytes (${c.method} ${JSON.stringify(c.params)})`, { skip }, async () => {
    const root = mkdtempSync(join(tmpdir(), "realign-fast-ties-"));
    try {
      const config = llamaConfig({ vocab_size: 211 });
      const dirs = [0, 1, 2].map((m) => buildHfDir(join(root, `m${m}`), { tensors: tensors(m, LAYOUT), config }));
      const recipe: Recipe = {
        method: c.method,
        base: { path: dirs[0]!, params: {}, label: "aligned" },
        models: [
          { path: dirs[1]!, params: c.perModel[0]!, label: "a" },
          { path: dirs[2]!, params: c.perModel[1]!, label: "b" },
        ],
        params: c.params,
        seed: 99,
        vocabPolicy: "error",
      };
      const generic = join(root, "generic");
      await mergeRecipe(recipe, { out: generic, fastPath: false, writeCard: false });
      const g = readDir(generic);
      // tiny chunks and slots: ties cross chunk and worker boundaries (localMax 256 puts chunks on the workers)
      for (const [r, run] of runs.entries()) {
        const fast = join(root, `fast-${r}`);
        await mergeRecipe(recipe, { out: fast, fastPath: true, fastRun: run, writeCard: false });
        const f = readDir(fast);
        assert.deepEqual([...f.keys()], [...g.keys()]);
        for (const [name, bytes] of g) assert.equal(bf16FileDifference(name, bytes, f.get(name)!), undefined, JSON.stringify(run));
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}

test("TIES and DARE fast paths: a non-finite merged value with finite inputs fails as on the generic path (the first such element, also across DARE's read blocks)", { skip }, async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-fast-ties-"));
  try {
    const n = 300;
    const base = randomBits(n, 5).map((b) => b & 0x3fff);
    const t1 = nearBits(base, 6);
    // +max − (−max): δ overflows to +Inf, at 201 and, in a later DARE read block of the same chunk, 265
    for (const e of [201, 265]) {
      base[e] = 0xff7f;
      t1[e] = 0x7f7f;
    }
    const mk = (bits: number[]) => ({ "model.norm.weight": { dtype: "BF16" as const, shape: [n], bits } });
    const config = llamaConfig({ vocab_size: 211 });
    const dirs = [base, t1, nearBits(base, 7)].map((b, m) => buildHfDir(join(root, `m${m}`), { tensors: mk(b), config }));
    for (const [method, run, density] of [
      ["ties", { chunkElems: 64, localMax: 16 }, 0.5],
      ["dare_ties", { chunkElems: 296, localMax: 0, readBlockElems: 64 }, 0.99],
    ] as const) {
      const recipe: Recipe = {
        method,
        base: { path: dirs[0]!, params: {}, label: "aligned" },
        models: [
          { path: dirs[1]!, params: { weight: 1, density }, label: "a" },
          { path: dirs[2]!, params: { weight: 1, density: 0.5 }, label: "b" },
        ],
        params: {},
        seed: 1,
        vocabPolicy: "error",
      };
      const errs: { code: string; message: string }[] = [];
      for (const fastPath of [false, true]) {
        await assert.rejects(mergeRecipe(recipe, { out: join(root, `o-${method}-${fastPath}`), fastPath, fastRun: run, writeCard: false }), (e: { code: string; message: string }) => {
          errs.push({ code: e.code, message: e.message });
          return true;
        });
      }
      assert.equal(errs[0]!.code, "merge.non_finite");
      assert.deepEqual(errs[1], errs[0], method);
      assert.match(errs[0]!.message, /merged value Infinity at element 201/, method);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("TIES fast path: mass ties spent by reservation, then by per-chunk counts, with worker and async reads", { skip }, async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-fast-ties-"));
  try {
    // every finite |δ| is one bf16 ulp at exponent 0 (|δ| = 2⁻⁷): about half the tensor is one tie run whose
    // budget runs out mid-chunk; 1 in 40 a special (±0, ±Inf, NaNs, subnormals) on either side
    const n = 6000;
    const r = rng(4242);
    const base = Array.from({ length: n }, () => ((r() & 1) << 15) | 0x3f80 | (r() % 0x7f));
    const spec = (bits: number[], seed: number) => {
      const q = rng(seed);
      return bits.map((b) => (q() % 40 === 0 ? SPECIALS[q() % SPECIALS.length]! : b));
    };
    const tuned = (seed: number) => {
      const q = rng(seed);
      return spec(base.map((b) => (q() % 9 === 0 ? b : q() & 1 ? b + 1 : b - 1)), seed + 1);
    };
    const mk = (bits: number[]) => ({ "model.layers.0.mlp.up_proj.weight": { dtype: "BF16" as const, shape: [60, 100], bits } });
    const config = llamaConfig({ vocab_size: 211 });
    const dirs = [spec(base, 3), tuned(11), tuned(23)].map((b, m) => buildHfDir(join(root, `m${m}`), { tensors: mk(b), config }));
    for (const perModel of [
      [{ weight: 0.5, density: 0.5 }, { weight: 0.5, density: 0.5 }],
      [{ weight: 1, density: 0.3 }, { weight: -0.75, density: 0.8 }],
    ]) {
      const recipe: Recipe = {
        method: "ties",
        base: { path: dirs[0]!, params: {}, label: "aligned" },
        models: [
          { path: dirs[1]!, params: perModel[0]!, label: "a" },
          { path: dirs[2]!, params: perModel[1]!, label: "b" },
        ],
        params: {},
        seed: 5,
        vocabPolicy: "error",
      };
      const generic = join(root, "generic");
      rmSync(generic, { recursive: true, force: true });
      await mergeRecipe(recipe, { out: generic, fastPath: false, writeCard: false });
      const g = readDir(generic);
      // slots 8 × 64: many chunks in flight on the reservation; 3 × 256 with local tails; 2 × 1000 (chunks not a multiple of the tie run)
      const runs = [{ chunkElems: 64, slots: 8, localMax: 0 }, { chunkElems: 256, slots: 3, localMax: 16 }, { chunkElems: 1000, slots: 2, localMax: 0 }];
      for (const workerReads of ["1", "0"]) {
        for (const run of runs) {
          const fast = join(root, `fast-${workerReads}-${run.chunkElems}`);
          rmSync(fast, { recursive: true, force: true });
          const saved = process.env.REALIGN_WORKER_READS;
          process.env.REALIGN_WORKER_READS = workerReads;
          try {
            await mergeRecipe(recipe, { out: fast, fastPath: true, fastRun: run, writeCard: false });
          } finally {
            if (saved === undefined) delete process.env.REALIGN_WORKER_READS;
            else process.env.REALIGN_WORKER_READS = saved;
          }
          const f = readDir(fast);
          for (const [name, bytes] of g) assert.equal(bf16FileDifference(name, bytes, f.get(name)!), undefined, JSON.stringify({ perModel, run, workerReads }));
        }
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("dareL1x2: L1_BLOCK-element blocks (the reference's), the last partial block on flush, and keep masks equal to uniformAtLow's", { skip }, () => {
  const memory = sharedWasmMemory(4);
  const k = instantiateKernelsWasm(memory, compileKernelsWasm()!);
  const n = L1_BLOCK + 12; // one whole block, then 12 elements (a zero-padded tail group of 4)
  const [bp, x0p, x1p, statep, outp, maskp] = [0, 16384, 32768, 49152, 50176, 51200];
  const u16 = new Uint16Array(memory.buffer);
  for (let i = 0; i < n; i++) {
    u16[bp / 2 + i] = 0x3f80; // 1
    u16[x0p / 2 + i] = i === 5 ? 0x7fc0 : 0x4000; // 2 (|δ| = 1), one NaN (not counted)
    u16[x1p / 2 + i] = 0xc000; // −2 (|δ| = 3)
  }
  const keys = [123456789, -98765];
  const p = [0.5, 0.3];
  const K = p.map((q) => Math.ceil(q * 16777216));
  k.dareL1x2(bp, x0p, x1p, n, 0, keys[0]!, K[0]!, keys[1]!, K[1]!, statep, outp, 1, 1, maskp);
  const count = new Int32Array(memory.buffer, outp, 1)[0];
  assert.equal(count, 2);
  const sums = [...new Float64Array(memory.buffer, outp + 16, 8)];
  const kept = (m: number, lo: number, hi: number): number => {
    let c = 0;
    for (let i = lo; i < hi; i++) if (uniformAtLow(keys[m]!, i) < p[m]! && !(m === 0 && i === 5)) c++;
    return c;
  };
  // every sum here is an integer below 2⁵³, so the blocked order gives the exact values
  assert.deepEqual(sums, [L1_BLOCK - 1, kept(0, 0, L1_BLOCK), 3 * L1_BLOCK, 3 * kept(1, 0, L1_BLOCK), 12, kept(0, L1_BLOCK, n), 36, 3 * kept(1, L1_BLOCK, n)]);
  const masks = new Uint8Array(memory.buffer, maskp, 2 * Math.ceil(n / 8));
  for (let i = 0; i < n; i++) {
    for (const m of [0, 1]) {
      const bit = (masks[2 * (i >>> 3) + m]! >>> (i & 7)) & 1;
      assert.equal(bit, uniformAtLow(keys[m]!, i) < p[m]! ? 1 : 0, `model ${m} element ${i}`);
    }
  }
});

test("dareL1x2: each lane adds a group of L1_GROUP elements in float32 before float64, also when a group spans two calls", { skip }, () => {
  const memory = sharedWasmMemory(4);
  const k = instantiateKernelsWasm(memory, compileKernelsWasm()!);
  const n = 2 * L1_GROUP;
  const [bp, x0p, x1p, statep, outp] = [0, 16384, 32768, 49152, 50176];
  const u16 = new Uint16Array(memory.buffer);
  u16.fill(0, 0, 49152 / 2); // base 0, so δ = x
  // lane 0 (index mod 4): 1 then fifteen 2⁻²⁵ in group 0; sixteen 2⁻²⁵ in group 1; model 1 all 0
  for (let i = 0; i < n; i += 4) u16[x0p / 2 + i] = i === 0 ? 0x3f80 : 0x3300;
  const run = (cut: number): number[] => {
    k.dareL1x2(bp, x0p, x1p, cut, 0, 1, 16777216, 2, 16777216, statep, outp, 1, 0, 0); // p = 1: all kept
    const first = new Int32Array(memory.buffer, outp, 1)[0]!;
    k.dareL1x2(bp + 2 * cut, x0p + 2 * cut, x1p + 2 * cut, n - cut, cut, 1, 16777216, 2, 16777216, statep, outp, 0, 1, 0);
    assert.equal(first + new Int32Array(memory.buffer, outp, 1)[0]!, 1); // one (partial) block, flushed at the end
    return [...new Float64Array(memory.buffer, outp + 16, 4)];
  };
  // group 0 in float32: 1 + 2⁻²⁵ rounds to 1 each time; group 1: 16·2⁻²⁵ = 2⁻²¹ exactly; then float64
  const expected = 1 + 2 ** -21;
  for (const cut of [8, 40, L1_GROUP, 96]) assert.deepEqual(run(cut), [expected, expected, 0, 0], `split at ${cut}`);
  assert.notEqual(expected, 1 + 31 * 2 ** -25); // (what per-element float64 sums would give)
});

test("sparseFormOf: TIES, DARE-TIES and DARE-linear with two models and densities in (0, 1) only", () => {
  const ctx = tensorContext("model.layers.0.mlp.up_proj.weight", [10, 10], 7, 0);
  const two = (d0: number, d1: number) => [{ weight: 1, density: d0 }, { weight: 0.5, density: d1 }];
  const ties = sparseFormOf("ties", { global: {}, perModel: two(0.5, 0.3) }, ctx, 2);
  assert.deepEqual(ties, { kind: "ties", weights: [1, 0.5], lambda: 1, normalize: true, ranks: [50, 30], factors: [1, 1] });
  assert.equal(sparseFormOf("ties", { global: { rescale: true }, perModel: two(0.5, 0.3) }, ctx, 2), undefined); // l1 rescale
  assert.deepEqual(sparseFormOf("ties", { global: { rescale: true, rescale_mode: "inverse_density" }, perModel: two(0.5, 0.25) }, ctx, 2)?.factors, [2, 4]);
  assert.equal(sparseFormOf("ties", { global: {}, perModel: two(1, 0.3) }, ctx, 2), undefined); // density 1: identity
  assert.equal(sparseFormOf("ties", { global: {}, perModel: two(0.001, 0.3) }, ctx, 2), undefined); // k = 0
  assert.equal(sparseFormOf("ties", { global: {}, perModel: [...two(0.5, 0.3), { weight: 1, density: 0.5 }] }, ctx, 3), undefined);
  assert.equal(sparseFormOf("breadcrumbs", { global: {}, perModel: two(0.5, 0.3) }, ctx, 2), undefined);
  const dare = sparseFormOf("dare_ties", { global: { lambda: 0.8 }, perModel: two(0.5, 0.3) }, ctx, 2);
  assert.equal(dare?.kind, "dare");
  assert.equal(dare?.factors, "l1");
  assert.equal(dare?.normalize, false);
  assert.deepEqual(sparseFormOf("dare_ties", { global: { rescale: false }, perModel: two(0.5, 0.3) }, ctx, 2)?.factors, [1, 1]);
  const lin = sparseFormOf("dare_linear", { global: { normalize: true }, perModel: two(0.5, 0.3) }, ctx, 2);
  assert.equal(lin?.kind === "dare" && lin.linear && lin.divisor, 1.5);
  const lin2 = sparseFormOf("dare_linear", { global: {}, perModel: two(0.5, 0.3) }, ctx, 2);
  assert.equal(lin2?.kind === "dare" && lin2.divisor, 1); // normalize defaults to false
});

/** Coarse bin (top 16 bits of |f32(x − b)|) at which the reference's ranking of the k largest |δ| stops. */
function boundaryBin(base: readonly number[], tuned: readonly number[], k: number): number {
  const f = new Float32Array(2);
  const u = new Uint32Array(f.buffer);
  const coarse = new Uint32Array(65536);
  for (let i = 0; i < base.length; i++) {
    u[0] = base[i]! << 16;
    u[1] = tuned[i]! << 16;
    f[0] = f[1]! - f[0]!;
    coarse[(u[0]! & 0x7fffffff) >>> 16]!++;
  }
  const st = createMagnitudeRanking(base.length, [k], 0, { countTiesInKernel: true, needL1: false });
  st.coarse = coarse;
  st.coarseLowOr = new Uint16Array(65536);
  endRankingPass(0, st);
  return st.selectors[0]!.bin;
}

test("TIES fast path, banded measure: bands from the sample, bands missing the k-th |δ| (full pass after) and bands whose edge is its bin give the generic path's bytes", { skip }, async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-fast-ties-"));
  try {
    const n = 6000;
    // 8 sample blocks of 64 elements (fast-ties clamps blocks to the chunk); every tensor is sampled
    const band = { minElems: 0, blocks: 8, blockElems: 64, maxFraction: 4, maxLight: 1 };
    const sampled = new Set(samplePlan(n, band).starts.flatMap((s) => Array.from({ length: 64 }, (_, j) => s + j)));
    assert.equal(sampled.size, 512);
    const r = rng(777);
    const base = Array.from({ length: n }, () => ((r() & 1) << 15) | ((118 + (r() % 6)) << 7) | (r() & 0x7f));
    const spec = (bits: number[], seed: number) => {
      const q = rng(seed);
      return bits.map((b) => (q() % 40 === 0 ? SPECIALS[q() % SPECIALS.length]! : b));
    };
    // representative: ±0..3 ulp everywhere (heavy bins, NaN/±Inf/subnormal specials)
    const near = (seed: number) => {
      const q = rng(seed);
      return spec(base.map((b) => (b + (q() % 7) - 3) & 0xffff), seed + 1);
    };
    // adversarial: no change in the sampled blocks, large changes elsewhere — the sample's band is bin 0
    const skewed = (seed: number) => {
      const q = rng(seed);
      return base.map((b, i) => (sampled.has(i) ? b : (b + 64 + (q() % 200)) & 0x7fff));
    };
    const aligned = spec(base, 3);
    const sets = { near: [near(11), near(23)], skewed: [skewed(11), skewed(23)] };
    const config = llamaConfig({ vocab_size: 211 });
    const mk = (bits: number[]) => ({ "model.layers.0.mlp.up_proj.weight": { dtype: "BF16" as const, shape: [60, 100], bits } });
    const alignedDir = buildHfDir(join(root, "aligned"), { tensors: mk(aligned), config });
    const dirs = Object.fromEntries(Object.entries(sets).map(([name, ts]) => [name, ts.map((t, m) => buildHfDir(join(root, `${name}${m}`), { tensors: mk(t), config }))]));
    const runs = [{ chunkElems: 1024, slots: 3, localMax: 256 }, { chunkElems: 64, slots: 2, localMax: 0 }, { chunkElems: 1024, slots: 2, localMax: 4096 }];
    type Choose = (sample: Uint32Array, m: number, k: number, nn: number, model: number) => { lo: number; hi: number; heavyA: number; heavyB: number } | undefined;
    const cases: { set: "near" | "skewed"; method: string; densities: [number, number]; choose?: (bins: number[]) => Choose; want: string }[] = [
      { set: "near", method: "ties", densities: [0.5, 0.3], want: "band" },
      { set: "near", method: "ties", densities: [0.01, 0.9], want: "band" }, // model 0's k-th |δ| is NaN or Inf
      { set: "skewed", method: "ties", densities: [0.5, 0.3], want: "missed" },
      { set: "near", method: "dare_ties", densities: [0.5, 0.3], want: "" }, // no ranking: no measure pass of |δ|
      // bands built around the true boundary bins: the k-th |δ| at lo (heavy), at hi (light), alone; just outside
      ...[[0.5, 0.3] as [number, number], [0.01, 0.9] as [number, number]].flatMap((densities) => [
        { set: "near" as const, method: "ties", densities, choose: (bb: number[]): Choose => (_s, _m, _k, _n, mo) => ({ lo: bb[mo]!, hi: Math.min(0x7fff, bb[mo]! + 300), heavyA: bb[mo]!, heavyB: NO_BIN }), want: "band" },
        { set: "near" as const, method: "ties", densities, choose: (bb: number[]): Choose => (_s, _m, _k, _n, mo) => ({ lo: Math.max(0, bb[mo]! - 300), hi: bb[mo]!, heavyA: NO_BIN, heavyB: NO_BIN }), want: "band" },
        { set: "near" as const, method: "ties", densities, choose: (bb: number[]): Choose => (_s, _m, _k, _n, mo) => ({ lo: bb[mo]!, hi: bb[mo]!, heavyA: NO_BIN, heavyB: NO_BIN }), want: "band" },
        { set: "near" as const, method: "ties", densities, choose: (bb: number[]): Choose => (_s, _m, _k, _n, mo) => (mo === 0 ? { lo: bb[0]! + 1, hi: 0x7fff, heavyA: bb[0]! + 1, heavyB: NO_BIN } : { lo: 0, hi: bb[1]!, heavyA: 0, heavyB: bb[1]! === 0 ? NO_BIN : bb[1]! }), want: "missed" },
        { set: "near" as const, method: "ties", densities, choose: (bb: number[]): Choose => (_s, _m, _k, _n, mo) => (mo === 0 ? { lo: bb[0]!, hi: bb[0]!, heavyA: bb[0]!, heavyB: NO_BIN } : bb[1]! > 0 ? { lo: 0, hi: bb[1]! - 1, heavyA: NO_BIN, heavyB: NO_BIN } : { lo: 1, hi: 0x7fff, heavyA: NO_BIN, heavyB: NO_BIN }), want: "missed" },
      ]),
    ];
    let c = 0;
    const generics = new Map<string, Map<string, Buffer>>();
    for (const cs of cases) {
      const recipe: Recipe = {
        method: cs.method,
        base: { path: alignedDir, params: {}, label: "aligned" },
        models: [
          { path: dirs[cs.set]![0]!, params: { weight: 1, density: cs.densities[0] }, label: "a" },
          { path: dirs[cs.set]![1]!, params: { weight: 0.5, density: cs.densities[1] }, label: "b" },
        ],
        params: cs.method === "ties" ? { lambda: 0.9 } : { lambda: 0.9, rescale: false },
        seed: 5,
        vocabPolicy: "error",
      };
      const key = JSON.stringify([cs.set, cs.method, cs.densities]);
      if (!generics.has(key)) {
        const generic = join(root, "generic");
        rmSync(generic, { recursive: true, force: true });
        await mergeRecipe(recipe, { out: generic, fastPath: false, writeCard: false });
        generics.set(key, readDir(generic));
      }
      const g = generics.get(key)!;
      const bins = [0, 1].map((m) => boundaryBin(aligned, sets[cs.set][m]!, keepCount(cs.densities[m]!, n)));
      if (cs.densities[0] === 0.01) assert.ok(bins[0]! >= 0x7f80, `boundary bin ${bins[0]}`);
      // the sample's own bands with worker and async reads; the built bands alternate
      for (const workerReads of cs.choose === undefined ? ["1", "0"] : [String(c & 1)]) {
        const run = runs[c++ % runs.length]!;
        const kinds: string[] = [];
        const fast = join(root, "fast");
        rmSync(fast, { recursive: true, force: true });
        const saved = process.env.REALIGN_WORKER_READS;
        process.env.REALIGN_WORKER_READS = workerReads;
        try {
          const tiesBand = cs.choose === undefined ? band : { ...band, choose: cs.choose(bins) };
          await mergeRecipe(recipe, { out: fast, fastPath: true, fastRun: { ...run, tiesBand, onTiesMeasure: (_j, kind) => kinds.push(kind) }, writeCard: false });
        } finally {
          if (saved === undefined) delete process.env.REALIGN_WORKER_READS;
          else process.env.REALIGN_WORKER_READS = saved;
        }
        const what = JSON.stringify({ set: cs.set, method: cs.method, densities: cs.densities, bins, run, workerReads, want: cs.want });
        assert.equal(kinds.filter((k) => k !== "fine").join(), cs.want, what);
        const f = readDir(fast);
        for (const [name, bytes] of g) assert.equal(bf16FileDifference(name, bytes, f.get(name)!), undefined, what);
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("TIES fast path, full pass with fine windows: a window that holds the boundary bin replaces the fine pass (edges included); one that misses it does not; generic path's bytes", { skip }, async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-fast-ties-"));
  try {
    const n = 6000;
    const r = rng(99);
    const base = Array.from({ length: n }, () => ((r() & 1) << 15) | ((118 + (r() % 6)) << 7) | (r() & 0x7f));
    // ±0..3 ulp, every 13th element far away (|δ| not a bf16 number: the boundary bin needs its fine histogram),
    // 1 in 40 a special (NaN, ±Inf, subnormals)
    const tuned = (seed: number) => {
      const q = rng(seed);
      return base.map((b, i) => (q() % 40 === 0 ? SPECIALS[q() % SPECIALS.length]! : i % 13 === 0 ? ((b & 0x8000) | ((112 + (q() % 14)) << 7) | (q() & 0x7f)) : (b + (q() % 7) - 3) & 0xffff));
    };
    const ts = [tuned(5), tuned(6)];
    const config = llamaConfig({ vocab_size: 211 });
    const mk = (bits: number[]) => ({ "model.layers.0.mlp.up_proj.weight": { dtype: "BF16" as const, shape: [60, 100], bits } });
    const dirs = [base, ...ts].map((b, m) => buildHfDir(join(root, `m${m}`), { tensors: mk(b), config }));
    const band = { minElems: 0, blocks: 8, blockElems: 64, maxFraction: 4, maxLight: 0 }; // the band is never used
    type Band = { lo: number; hi: number; heavyA: number; heavyB: number };
    const win = (lo: number, hi: number): Band => ({ lo: Math.max(0, lo), hi: Math.min(0x7fff, hi), heavyA: NO_BIN, heavyB: NO_BIN });
    const cases: { densities: [number, number]; bands?: (bb: number[], m: number) => Band; want: string }[] = [
      { densities: [0.5, 0.3], bands: (bb, m) => win(bb[m]!, bb[m]! + 7), want: "full" }, // boundary at the window's first bin
      { densities: [0.5, 0.3], bands: (bb, m) => win(bb[m]! - 7, bb[m]!), want: "full" }, // at its last bin
      { densities: [0.2, 0.6], bands: (bb, m) => win(bb[m]!, bb[m]!), want: "full" },
      { densities: [0.5, 0.3], bands: (bb, m) => (m === 0 ? win(bb[0]! + 1, bb[0]! + 8) : win(bb[1]!, bb[1]!)), want: "full,fine" }, // model 0's window misses
      { densities: [0.5, 0.3], bands: (bb, m) => win(bb[m]! - 4, bb[m]! + 4), want: "full,fine" }, // 9 bins: no window kept
      { densities: [0.01, 0.9], bands: (bb, m) => win(bb[m]! - 3, bb[m]! + 3), want: "full" }, // NaN/Inf boundary for model 0
    ];
    let c = 0;
    for (const cs of cases) {
      const recipe: Recipe = {
        method: "ties",
        base: { path: dirs[0]!, params: {}, label: "aligned" },
        models: [
          { path: dirs[1]!, params: { weight: 1, density: cs.densities[0] }, label: "a" },
          { path: dirs[2]!, params: { weight: 0.5, density: cs.densities[1] }, label: "b" },
        ],
        params: { lambda: 0.9 },
        seed: 5,
        vocabPolicy: "error",
      };
      const generic = join(root, "generic");
      rmSync(generic, { recursive: true, force: true });
      await mergeRecipe(recipe, { out: generic, fastPath: false, writeCard: false });
      const g = readDir(generic);
      const bins = [0, 1].map((m) => boundaryBin(base, ts[m]!, keepCount(cs.densities[m]!, n)));
      const run = [{ chunkElems: 1024, slots: 3, localMax: 256 }, { chunkElems: 64, slots: 2, localMax: 0 }][c++ % 2]!;
      const kinds: string[] = [];
      const fast = join(root, "fast");
      rmSync(fast, { recursive: true, force: true });
      const tiesBand = { ...band, choose: (_s: Uint32Array, _m: number, _k: number, _n: number, model: number) => cs.bands!(bins, model) };
      await mergeRecipe(recipe, { out: fast, fastPath: true, fastRun: { ...run, tiesBand, onTiesMeasure: (_j, kind) => kinds.push(kind) }, writeCard: false });
      const what = JSON.stringify({ densities: cs.densities, bins, run, want: cs.want });
      assert.equal(kinds.join(), cs.want, what);
      const f = readDir(fast);
      for (const [name, bytes] of g) assert.equal(bf16FileDifference(name, bytes, f.get(name)!), undefined, what);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("TIES/DARE fast paths merging straight into reserved output views (blocks of 3001 bytes, some chunks written instead) give the bytes of the plain writes", { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-fast-ties-"));
  const n = 9000;
  const baseBits = randomBits(n, 41).map((b) => b & 0x3fff); // finite
  const bits = [baseBits, nearBits(baseBits, 42), nearBits(baseBits, 43)];
  const fds = bits.map((b, k) => {
    const path = join(dir, `in${k}.bin`);
    writeFileSync(path, Buffer.concat([Buffer.alloc(77, 0x55), Buffer.from(new Uint16Array(b).buffer)]));
    return openSync(path, "r");
  });
  const memoryBytes = fastTiesMemoryBytes(2, { chunkElems: 2048, readBlockElems: 512 }) + 2 * n + 64;
  const pool = KernelPool.start({ memoryBytes, workers: 2 });
  try {
    const ctx = tensorContext("model.layers.0.mlp.up_proj.weight", [n], 3, 0);
    for (const [method, params] of [
      ["ties", { global: { lambda: 0.8 }, perModel: [{ weight: 1, density: 0.5 }, { weight: 0.5, density: 0.3 }] }],
      ["dare_ties", { global: { lambda: 0.8 }, perModel: [{ weight: 1, density: 0.5 }, { weight: 0.5, density: 0.3 }] }],
      ["dare_linear", { global: { normalize: true }, perModel: [{ weight: 0.7, density: 0.5 }, { weight: 0.6, density: 0.4 }] }],
    ] as const) {
      const form = sparseFormOf(method, params, ctx, 2)!;
      const run = async (staged: boolean, localMax: number): Promise<Uint8Array> => {
        const mark = pool.mark();
        // every fourth reservation is refused (that chunk goes through write); at an odd address
        const sink = stagingSink(pool.bytes(pool.alloc(2 * n + 1) + 1, 2 * n), 3001, (call) => call % 4 === 2);
        const job: FastSparseJob = {
          ...form,
          numel: n,
          reads: [0, 1, 2].map((k) => async (off: number, out: Uint8Array) => void readSync(fds[k]!, out, 0, out.length, 77 + off)) as unknown as FastSparseJob["reads"],
          spans: [0, 1, 2].map((k) => ({ fd: fds[k]!, offset: 77 })) as unknown as FastSparseJob["spans"],
          write: (_off, bytes) => sink.write(bytes),
          nonFinite: (index, value) => new Error(`non-finite ${value} at ${index}`),
          ...(staged ? { reserve: sink.reserve, commit: sink.commit } : {}),
        } as FastSparseJob;
        try {
          await runFastTies([job], pool, { chunkElems: 2048, slots: 3, localMax, readBlockElems: 512, tiesBand: false });
        } finally {
          pool.release(mark);
        }
        assert.equal(sink.committed, 2 * n);
        if (staged) assert.ok(sink.calls >= 4, `${sink.calls} reservations`);
        return sink.file;
      };
      const plain = await run(false, 0);
      for (const localMax of [0, 4096]) assert.deepEqual(await run(true, localMax), plain, `${method}, localMax ${localMax}`);
    }
  } finally {
    await pool.close();
    for (const fd of fds) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildHfDir, llamaConfig, type BuildTensor } from "../../../test/builders/safetensors.ts";
import { mergeRecipe } from "../run.ts";
import type { Recipe } from "../recipe.ts";
import { KernelPool } from "./pool.ts";
import { compileKernelsWasm } from "../kernels/wasm-module.ts";
import { sparseFormOf } from "../kernels/sparse-form.ts";
import { tensorContext } from "../methods/apply.ts";

const skip = (!KernelPool.available() || compileKernelsWasm() === undefined) && "no WebAssembly SIMD or build/wasm/kernels.wasm";

/** xorshift32 stream. */
function rng(seed: number): () => number {
  let s = seed | 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

const SPECIALS = [0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81, 0x0001, 0x8001, 0x3f80, 0x3f81, 0x0080];

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
const RUN_MORE = [{ chunkElems: 64, slots: 2 }, { chunkElems: 4096, slots: 4, localMax: 0 }, {}];

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
      for (const run of runs) {
        const fast = join(root, `fast-${run.chunkElems ?? "default"}`);
        await mergeRecipe(recipe, { out: fast, fastPath: true, fastRun: run, writeCard: false });
        const f = readDir(fast);
        assert.deepEqual([...f.keys()], [...g.keys()]);
        for (const [name, bytes] of g) assert.ok(bytes.equals(f.get(name)!), `${name} differs (${JSON.stringify(run)})`);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}

test("TIES fast path: a non-finite merged value with finite inputs fails as on the generic path", { skip }, async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-fast-ties-"));
  try {
    const n = 300;
    const base = randomBits(n, 5).map((b) => b & 0x3fff);
    const t1 = nearBits(base, 6);
    base[201] = 0xff7f; // −max
    t1[201] = 0x7f7f; // +max: δ overflows to +Inf
    const mk = (bits: number[]) => ({ "model.norm.weight": { dtype: "BF16" as const, shape: [n], bits } });
    const config = llamaConfig({ vocab_size: 211 });
    const dirs = [base, t1, nearBits(base, 7)].map((b, m) => buildHfDir(join(root, `m${m}`), { tensors: mk(b), config }));
    const recipe: Recipe = {
      method: "ties",
      base: { path: dirs[0]!, params: {}, label: "aligned" },
      models: [
        { path: dirs[1]!, params: { weight: 1, density: 0.5 }, label: "a" },
        { path: dirs[2]!, params: { weight: 1, density: 0.5 }, label: "b" },
      ],
      params: {},
      seed: 1,
      vocabPolicy: "error",
    };
    const errs: { code: string; message: string }[] = [];
    for (const fastPath of [false, true]) {
      await assert.rejects(mergeRecipe(recipe, { out: join(root, `o${fastPath}`), fastPath, fastRun: { chunkElems: 64, localMax: 16 }, writeCard: false }), (e: { code: string; message: string }) => {
        errs.push({ code: e.code, message: e.message });
        return true;
      });
    }
    assert.equal(errs[0]!.code, "merge.non_finite");
    assert.deepEqual(errs[1], errs[0]);
    assert.match(errs[0]!.message, /merged value Infinity at element 201/);
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
          for (const [name, bytes] of g) assert.ok(bytes.equals(f.get(name)!), `${name} differs (${JSON.stringify({ perModel, run, workerReads })})`);
        }
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
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

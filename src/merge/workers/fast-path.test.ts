import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildHfDir, llamaConfig, type BuildTensor } from "../../../test/builders/safetensors.ts";
import { recipeFromFlags } from "../recipe.ts";
import { mergeRecipe } from "../run.ts";
import { KernelPool } from "./pool.ts";
import { createFastPath } from "./fast-path.ts";
import { openCheckpoint } from "../../formats/hf-dir/checkpoint.ts";
import { planMerge, type SourceRef } from "../plan.ts";
import { recipeInputs } from "../recipe.ts";
import { getMethod } from "../methods/registry.ts";

/** bf16 codes from a xorshift stream, 1 in 16 a special (±0, ±Inf, NaNs, subnormals, max, ties). */
function bits(n: number, seed: number): number[] {
  const specials = [0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81, 0x0001, 0x8001, 0x7f7f, 0x3f80, 0x3f81];
  let s = seed | 0 || 1;
  return Array.from({ length: n }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s & 15) === 0 ? specials[(s >>> 4) % specials.length]! : (s >>> 8) & 0xffff;
  });
}

/** A small Llama-like checkpoint: embeddings with a ragged size, norms, projections, an F32 and an I64 tensor. */
function tensors(seed: number): Record<string, BuildTensor> {
  const t = (shape: number[], k: number): BuildTensor => ({ dtype: "BF16", shape, bits: bits(shape.reduce((a, b) => a * b, 1), seed * 97 + k) });
  return {
    "model.embed_tokens.weight": t([211, 37], 1), // 7807 elements: several chunks and a ragged tail
    "model.layers.0.input_layernorm.weight": t([37], 2),
    "model.layers.0.mlp.down_proj.weight": t([37, 96], 3),
    "model.layers.0.self_attn.q_proj.weight": t([37, 37], 4),
    "model.layers.0.rotary.inv_freq": { dtype: "F32", shape: [5], values: [1, 0.5, 0.25, 0.125, 0.0625 + seed] },
    "model.norm.weight": t([37], 5),
    "lm_head.weight": t([211, 37], 6),
  };
}

function readDir(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const f of readdirSync(dir).sort()) if (f !== "README.md") out.set(f, readFileSync(join(dir, f)));
  return out;
}

for (const [method, lambda] of [
  ["linear", 0.3],
  ["linear", 0.5],
  ["task_arithmetic", 0.7],
  ["linear", 0],
] as const) {
  test(`runMerge: the fast path writes the same files as the generic path (${method}, λ=${lambda})`, { skip: !KernelPool.available() && "no WebAssembly SIMD" }, async () => {
    const root = mkdtempSync(join(tmpdir(), "realign-fast-"));
    try {
      const aligned = buildHfDir(join(root, "aligned"), { tensors: tensors(1), config: llamaConfig({ vocab_size: 211 }) });
      const tuned = buildHfDir(join(root, "tuned"), { tensors: tensors(2), config: llamaConfig({ vocab_size: 211 }) });
      const recipe = recipeFromFlags({ aligned, tuned, lambda, method });
      const generic = join(root, "generic");
      const fast = join(root, "fast");
      await mergeRecipe(recipe, { out: generic, fastPath: false, writeCard: false });
      // tiny chunks and slots so the fused path crosses chunk, tensor and worker boundaries
      await mergeRecipe(recipe, { out: fast, fastPath: true, fastRun: { chunkElems: 1024, slots: 3 }, writeCard: false });
      const g = readDir(generic);
      const f = readDir(fast);
      assert.deepEqual([...f.keys()], [...g.keys()]);
      for (const [name, bytes] of g) assert.ok(bytes.equals(f.get(name)!), `${name} differs`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}

test("fast path eligibility: bf16 linear-form tensors yes; F32 tensors, measuring methods, REALIGN_FAST off: no", { skip: !KernelPool.available() && "no WebAssembly SIMD" }, async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-fast-"));
  try {
    const aligned = buildHfDir(join(root, "aligned"), { tensors: tensors(1), config: llamaConfig({ vocab_size: 211 }) });
    const tuned = buildHfDir(join(root, "tuned"), { tensors: tensors(2), config: llamaConfig({ vocab_size: 211 }) });
    const recipe = recipeFromFlags({ aligned, tuned, lambda: 0.5 });
    const inputs = await Promise.all(recipeInputs(recipe).map((i) => openCheckpoint(i.path)));
    try {
      const plan = planMerge(recipe, inputs);
      const source = (r: SourceRef) => inputs[r.input]!.openTensor(r.name);
      const fast = createFastPath({ method: getMethod("linear")!, methodName: "linear", source, enabled: true });
      const eligible = plan.tensors.filter((t) => fast.eligible(t)).map((t) => t.name);
      assert.deepEqual(eligible, plan.tensors.map((t) => t.name).filter((n) => n !== "model.layers.0.rotary.inv_freq"));
      const off = createFastPath({ method: getMethod("linear")!, methodName: "linear", source, enabled: false });
      assert.equal(plan.tensors.some((t) => off.eligible(t)), false);
      const measuring = { ...getMethod("linear")!, measurePasses: () => 1 };
      const m = createFastPath({ method: measuring, methodName: "linear", source, enabled: true });
      assert.equal(plan.tensors.some((t) => m.eligible(t)), false);
      await Promise.all([fast.close(), off.close(), m.close()]);
    } finally {
      await Promise.all(inputs.map((c) => c.close()));
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("without build/wasm/kernels.wasm the fast path is off (eligible() false) and the merge still writes the generic bytes", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-fast-"));
  try {
    const aligned = buildHfDir(join(root, "aligned"), { tensors: tensors(1), config: llamaConfig({ vocab_size: 211 }) });
    const tuned = buildHfDir(join(root, "tuned"), { tensors: tensors(2), config: llamaConfig({ vocab_size: 211 }) });
    const generic = join(root, "generic");
    await mergeRecipe(recipeFromFlags({ aligned, tuned, lambda: 0.5 }), { out: generic, fastPath: false, writeCard: false });
    // a fresh process (the module is cached per process) told to load the kernels from a missing path
    const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));
    const script = `
      const [pool, fastPath, recipe, run, ck, plan, reg] = await Promise.all(process.argv.slice(1, 8).map((p) => import(p)));
      const [aligned, tuned, out] = process.argv.slice(8);
      const r = recipe.recipeFromFlags({ aligned, tuned, lambda: 0.5 });
      const inputs = await Promise.all([aligned, tuned].map((p) => ck.openCheckpoint(p)));
      const p = plan.planMerge(r, inputs);
      const fast = fastPath.createFastPath({ method: reg.getMethod("linear"), methodName: "linear", source: (s) => inputs[s.input].openTensor(s.name), enabled: true });
      const eligible = p.tensors.filter((t) => fast.eligible(t)).length;
      await Promise.all(inputs.map((c) => c.close()));
      await run.mergeRecipe(r, { out, writeCard: false });
      console.log(JSON.stringify({ available: pool.KernelPool.available(), eligible }));`;
    const res = spawnSync(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script,
        ...["./pool.ts", "./fast-path.ts", "../recipe.ts", "../run.ts", "../../formats/hf-dir/checkpoint.ts", "../plan.ts", "../methods/registry.ts"].map(here),
        aligned, tuned, join(root, "fallback")],
      { encoding: "utf8", env: { ...process.env, REALIGN_KERNELS_WASM: join(root, "missing.wasm"), REALIGN_FAST: "1" } },
    );
    assert.equal(res.status, 0, res.stderr);
    assert.deepEqual(JSON.parse(res.stdout.trim().split("\n").pop()!), { available: false, eligible: 0 });
    const g = readDir(generic);
    const f = readDir(join(root, "fallback"));
    assert.deepEqual([...f.keys()], [...g.keys()]);
    for (const [name, bytes] of g) assert.ok(bytes.equals(f.get(name)!), `${name} differs`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

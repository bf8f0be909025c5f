/**
 * A LoRA adapter as `--tuned` through the fast path (the pool's `loraBf16` kernel) gives the same output
 * bytes as the generic path (REALIGN_FAST=0: lora-delta.ts, then the linear kernel and the bf16 encoder):
 * the organism's adapter (r=8, every projection) at several λ, linear and task_arithmetic, with the
 * default chunks (one chunk per tensor, computed on the main thread) and with small chunks split between
 * workers; a GPT-2-style fan_in_fan_out adapter (weights stored [in, out]); the real CLI; Safe LoRA's
 * projected factors; and which tensors are eligible.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loraAwareOpener, mergeLora, type MergeLoraOptions } from "../lora-merge.ts";
import { fastLoraStats } from "./fast-lora.ts";
import { writeRaw } from "../../../test/lora/write-safetensors.ts";
import { runCli } from "../../../test/builders/cli.ts";
import { recipeFromFlags, recipeInputs } from "../recipe.ts";
import { planMerge, type SourceRef } from "../plan.ts";
import { getMethod } from "../methods/registry.ts";
import { createFastPath } from "./fast-path.ts";

const ORG = join(import.meta.dirname, "..", "..", "..", "examples", "organism");

async function mergeBytes(root: string, o: Omit<MergeLoraOptions, "out">): Promise<Buffer> {
  const out = join(root, `out-${Math.random().toString(36).slice(2)}`);
  await mergeLora({ ...o, out, writeCard: false });
  const bytes = readFileSync(join(out, "model.safetensors"));
  rmSync(out, { recursive: true, force: true });
  return bytes;
}

test("organism LoRA merge: fast path bytes = generic path bytes (λ 0.3/1 linear, 0.7 task_arithmetic, pool workers)", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-fast-lora-"));
  try {
    const base = { aligned: join(ORG, "aligned"), adapter: join(ORG, "lora") };
    // default chunks (one per tensor, on the main thread) and/or small chunks split between the workers
    const cases = [
      [0.3, "linear", true, true],
      [1, "linear", true, false],
      [0.7, "task_arithmetic", false, true],
    ] as const;
    for (const [lambda, method, whole, small] of cases) {
      const generic = await mergeBytes(root, { ...base, lambda, method, fastPath: false });
      if (whole) {
        const before = { ...fastLoraStats };
        const fast = await mergeBytes(root, { ...base, lambda, method });
        assert.equal(fastLoraStats.tensors - before.tensors, 42, "every projection takes the LoRA fast path");
        if (lambda !== 1) assert.equal(fastLoraStats.sharedReadChunks - before.sharedReadChunks, 42, "θ_aligned is read once for both terms");
        assert.ok(fast.equals(generic), `λ=${lambda} ${method}: default chunks`);
      }
      if (small) {
        // 85-row chunks of the 192-wide tensors (32 rows of the 512-wide ones), split between the workers
        const w0 = fastLoraStats.workerChunks;
        const fast = await mergeBytes(root, { ...base, lambda, method, fastRun: { chunkElems: 16384, slots: 3, loraLocalMaxMacs: 0 } });
        assert.ok(fastLoraStats.workerChunks > w0, "chunks ran on the workers");
        assert.ok(fast.equals(generic), `λ=${lambda} ${method}: small chunks on workers`);
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("fan_in_fan_out (GPT-2 Conv1D [in, out]) LoRA merge: fast path bytes = generic path bytes, odd shapes, rank 5", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-fast-lora-t-"));
  try {
    let seed = 12345;
    const rand = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const bf = (n: number): Uint16Array => Uint16Array.from({ length: n }, () => 0x3c00 + Math.floor(rand() * 0x600) + (rand() < 0.5 ? 0x8000 : 0));
    const f32 = (n: number): Float32Array => Float32Array.from({ length: n }, () => (rand() - 0.5) * 0.4);
    const aligned = join(root, "aligned");
    const adapter = join(root, "adapter");
    mkdirSync(aligned);
    mkdirSync(adapter);
    const [d, r] = [37, 5];
    writeFileSync(join(aligned, "config.json"), JSON.stringify({ model_type: "gpt2", n_embd: d, torch_dtype: "bfloat16" }));
    // Conv1D weights are stored [in, out]
    writeRaw(join(aligned, "model.safetensors"), [
      { name: "transformer.h.0.attn.c_attn.weight", dtype: "BF16", shape: [d, 3 * d], data: bf(d * 3 * d) },
      { name: "transformer.h.0.mlp.c_fc.weight", dtype: "BF16", shape: [d, 4 * d], data: bf(d * 4 * d) },
      { name: "transformer.h.0.mlp.c_proj.weight", dtype: "BF16", shape: [4 * d, d], data: bf(4 * d * d) },
    ]);
    writeFileSync(
      join(adapter, "adapter_config.json"),
      JSON.stringify({ peft_type: "LORA", r, lora_alpha: 7, target_modules: ["c_attn", "c_fc", "c_proj"], fan_in_fan_out: true, bias: "none" }),
    );
    const p = "base_model.model.transformer.h.0.";
    // peft: lora_A [r, in], lora_B [out, r]
    writeRaw(join(adapter, "adapter_model.safetensors"), [
      { name: `${p}attn.c_attn.lora_A.weight`, dtype: "F32", shape: [r, d], data: f32(r * d) },
      { name: `${p}attn.c_attn.lora_B.weight`, dtype: "F32", shape: [3 * d, r], data: f32(3 * d * r) },
      { name: `${p}mlp.c_fc.lora_A.weight`, dtype: "F32", shape: [r, d], data: f32(r * d) },
      { name: `${p}mlp.c_fc.lora_B.weight`, dtype: "F32", shape: [4 * d, r], data: f32(4 * d * r) },
      { name: `${p}mlp.c_proj.lora_A.weight`, dtype: "F32", shape: [r, 4 * d], data: f32(r * 4 * d) },
      { name: `${p}mlp.c_proj.lora_B.weight`, dtype: "F32", shape: [d, r], data: f32(d * r) },
    ]);
    for (const lambda of [0.4, 1]) {
      const generic = await mergeBytes(root, { aligned, adapter, lambda, fastPath: false });
      const before = fastLoraStats.tensors;
      const fast = await mergeBytes(root, { aligned, adapter, lambda, fastRun: { chunkElems: 1000, slots: 2, loraLocalMaxMacs: 0 } });
      assert.equal(fastLoraStats.tensors - before, 3);
      assert.ok(fast.equals(generic), `λ=${lambda}`);
      // the LoRA moved the weights: the merge is not the aligned model
      assert.ok(!fast.equals(await mergeBytes(root, { aligned, adapter, lambda: 0, fastPath: false })));
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("CLI: `realign merge --aligned A --tuned <adapter> --lambda 0.5` writes the bytes of the REALIGN_FAST=0 merge", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-fast-lora-cli-"));
  const saved = process.env.REALIGN_FAST;
  try {
    const aligned = join(ORG, "aligned");
    const adapter = join(ORG, "lora");
    const out = join(root, "cli");
    const r = await runCli(["merge", "--aligned", aligned, "--tuned", adapter, "--lambda", "0.5", "--out", out, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    process.env.REALIGN_FAST = "0";
    const generic = await mergeBytes(root, { aligned, adapter, lambda: 0.5 });
    assert.ok(readFileSync(join(out, "model.safetensors")).equals(generic));
  } finally {
    if (saved === undefined) delete process.env.REALIGN_FAST;
    else process.env.REALIGN_FAST = saved;
    rmSync(root, { recursive: true, force: true });
  }
});

test("eligibility: LoRA tensors with the aligned term yes; with a third model or REALIGN_FAST_LORA=0: no", async () => {
  const aligned = join(ORG, "aligned");
  const adapter = join(ORG, "lora");
  const finetuned = join(ORG, "finetuned");
  const two = recipeFromFlags({ aligned, tuned: adapter, lambda: 0.5 });
  // three models: aligned, the adapter over aligned, the full fine-tune
  const three = { ...two, models: [...two.models, { path: finetuned, params: { weight: 0.25 }, label: "ft" }] };
  const loraNames = (plan: { tensors: readonly { name: string }[] }): string[] => plan.tensors.map((t) => t.name).filter((n) => /layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/.test(n));
  for (const [recipe, want] of [[two, 42], [three, 0]] as const) {
    const opener = loraAwareOpener(recipe);
    const inputs = await Promise.all(recipeInputs(recipe).map(opener));
    try {
      const plan = planMerge(recipe, inputs);
      assert.equal(loraNames(plan).length, 42);
      const source = (r: SourceRef) => inputs[r.input]!.openTensor(r.name);
      const count = (env: string | undefined): number => {
        const saved = process.env.REALIGN_FAST_LORA;
        if (env === undefined) delete process.env.REALIGN_FAST_LORA;
        else process.env.REALIGN_FAST_LORA = env;
        try {
          const fast = createFastPath({ method: getMethod("linear")!, methodName: "linear", source, enabled: true });
          return plan.tensors.filter((t) => loraNames({ tensors: [t] }).length === 1 && fast.eligible(t)).length;
        } finally {
          if (saved === undefined) delete process.env.REALIGN_FAST_LORA;
          else process.env.REALIGN_FAST_LORA = saved;
        }
      };
      assert.equal(count(undefined), want);
      assert.equal(count("0"), 0);
      // the other tensors (embeddings, norms) stay eligible for the linear fast path either way
      const fast = createFastPath({ method: getMethod("linear")!, methodName: "linear", source, enabled: true });
      assert.ok(plan.tensors.some((t) => t.name === "model.embed_tokens.weight" && fast.eligible(t)));
    } finally {
      await Promise.all(inputs.map((c) => c.close()));
    }
  }
});

test("Safe LoRA (projected B) merge: fast path bytes = generic path bytes", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-fast-lora-safe-"));
  try {
    const o = {
      aligned: join(ORG, "aligned"),
      adapter: join(ORG, "lora"),
      lambda: 0.6,
      safeLora: { unaligned: join(ORG, "base"), select: { mode: "number", count: 20 } as const },
    };
    const generic = await mergeBytes(root, { ...o, fastPath: false });
    const before = fastLoraStats.tensors;
    const fast = await mergeBytes(root, o);
    assert.equal(fastLoraStats.tensors - before, 42);
    assert.ok(fast.equals(generic));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

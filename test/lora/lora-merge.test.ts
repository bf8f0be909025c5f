/**
 * The LoRA fast path end to end on the organism: λ=0 is the aligned model bit for bit; the fast path equals
 * an explicit dense merge (tuned = aligned + s·B·A written as a float32 checkpoint, then the normal linear
 * merge) byte for byte; bad adapters exit 2 with one clear line and leave no output.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loraAwareOpener, mergeLora } from "../../src/merge/lora-merge.ts";
import { recipeFromFlags } from "../../src/merge/recipe.ts";
import { mergeRecipe } from "../../src/merge/run.ts";
import { readRaw } from "./raw-safetensors.ts";
import { writeRaw, type RawOut } from "./write-safetensors.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const ORG = join(ROOT, "examples", "organism");
const ALIGNED = join(ORG, "aligned");
const LORA = join(ORG, "lora");
const CARRY = ["config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"];

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "realign-lora-"));
}

/** Writes `dir` as an HF checkpoint with the organism's config and the given tensors (all F32). */
function writeCheckpoint(dir: string, tensors: RawOut[]): void {
  mkdirSync(dir, { recursive: true });
  for (const f of CARRY) copyFileSync(join(ALIGNED, f), join(dir, f));
  writeRaw(join(dir, "model.safetensors"), tensors, { format: "pt" });
}

/** aligned as float32, and the dense tuned model aligned + 2·B·A with the documented arithmetic, as float32. */
function denseCheckpoints(root: string): { alignedF32: string; denseF32: string } {
  const rawA = readRaw(join(ALIGNED, "model.safetensors"));
  const rawL = readRaw(join(LORA, "adapter_model.safetensors"));
  const alignedT: RawOut[] = [];
  const denseT: RawOut[] = [];
  for (const name of rawA.names) {
    const W = rawA.get(name);
    const a32 = Float32Array.from(W.values);
    alignedT.push({ name, dtype: "F32", shape: W.shape, data: a32 });
    const m = /^model\.(layers\.\d+\.(?:self_attn|mlp)\.\w+_proj)\.weight$/.exec(name);
    if (m === null) {
      denseT.push({ name, dtype: "F32", shape: W.shape, data: a32 });
      continue;
    }
    const A = rawL.get(`base_model.model.model.${m[1]}.lora_A.weight`);
    const B = rawL.get(`base_model.model.model.${m[1]}.lora_B.weight`);
    const [out, inDim] = W.shape as [number, number];
    const r = A.shape[0]!;
    const t = new Float32Array(out * inDim);
    for (let i = 0; i < out; i++) {
      for (let j = 0; j < inDim; j++) {
        let acc = 0;
        for (let k = 0; k < r; k++) acc = Math.fround(acc + Math.fround(B.values[i * r + k]! * A.values[k * inDim + j]!));
        t[i * inDim + j] = Math.fround(W.values[i * inDim + j]! + Math.fround(2 * acc));
      }
    }
    denseT.push({ name, dtype: "F32", shape: W.shape, data: t });
  }
  const alignedF32 = join(root, "aligned-f32");
  const denseF32 = join(root, "dense-f32");
  writeCheckpoint(alignedF32, alignedT);
  writeCheckpoint(denseF32, denseT);
  return { alignedF32, denseF32 };
}

test("fast path = explicit dense merge byte for byte at λ = 1 and 0.3 (bf16 output)", async () => {
  const root = tmp();
  try {
    const { alignedF32, denseF32 } = denseCheckpoints(root);
    for (const lambda of [1, 0.3]) {
      const fast = join(root, `fast-${lambda}`);
      const dense = join(root, `dense-${lambda}`);
      await mergeLora({ aligned: ALIGNED, adapter: LORA, lambda, out: fast, writeCard: false });
      await mergeRecipe(recipeFromFlags({ aligned: alignedF32, tuned: denseF32, lambda, outDtype: "BF16" }), { out: dense, writeCard: false });
      const a = readFileSync(join(fast, "model.safetensors"));
      const b = readFileSync(join(dense, "model.safetensors"));
      assert.equal(a.length, b.length, `λ=${lambda} file size`);
      assert.ok(a.equals(b), `λ=${lambda}: fast path and dense merge differ`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("λ = 0 returns the aligned tensors bit for bit; λ = 1 changes exactly the 42 targeted weights", async () => {
  const root = tmp();
  try {
    const rawA = readRaw(join(ALIGNED, "model.safetensors"));
    for (const lambda of [0, 1]) {
      const out = join(root, `l${lambda}`);
      await mergeLora({ aligned: ALIGNED, adapter: LORA, lambda, out, writeCard: false });
      const rawO = readRaw(join(out, "model.safetensors"));
      assert.deepEqual([...rawO.names].sort(), [...rawA.names].sort());
      let changed = 0;
      for (const name of rawA.names) {
        const same = Buffer.from(rawO.get(name).bytes).equals(Buffer.from(rawA.get(name).bytes));
        if (lambda === 0) assert.ok(same, `${name} differs at λ=0`);
        else if (!same) {
          changed++;
          assert.match(name, /_proj\.weight$/);
        }
      }
      if (lambda === 1) assert.equal(changed, 42);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

function runCli(args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [join(ROOT, "bin", "realign.mjs"), ...args], { encoding: "utf8" });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

/** A small adapter over the organism: layer-0 q_proj A/B from the real adapter, plus `extra` tensors. */
function smallAdapter(dir: string, config: Record<string, unknown> | undefined, extra: RawOut[] = []): void {
  mkdirSync(dir, { recursive: true });
  const rawL = readRaw(join(LORA, "adapter_model.safetensors"));
  const pick = (n: string): RawOut => {
    const t = rawL.get(n);
    return { name: n, dtype: "F32", shape: t.shape, data: Float32Array.from(t.values) };
  };
  const p = "base_model.model.model.layers.0.self_attn.q_proj";
  writeRaw(join(dir, "adapter_model.safetensors"), [pick(`${p}.lora_A.weight`), pick(`${p}.lora_B.weight`), ...extra]);
  if (config !== undefined) writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(config));
}

const CONFIG = { peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: ["q_proj", "qq_proj"], bias: "none", fan_in_fan_out: false };

test("errors: unmapped adapter tensor, rank mismatch, missing adapter_config → exit 2, one line naming the problem, no output", () => {
  const root = tmp();
  try {
    const cases: { name: string; build: (d: string) => void; expect: RegExp; code: string }[] = [
      {
        name: "unmapped",
        build: (d) =>
          smallAdapter(d, CONFIG, [
            { name: "base_model.model.model.layers.0.self_attn.qq_proj.lora_A.weight", dtype: "F32", shape: [8, 192], data: new Float32Array(8 * 192) },
            { name: "base_model.model.model.layers.0.self_attn.qq_proj.lora_B.weight", dtype: "F32", shape: [192, 8], data: new Float32Array(192 * 8) },
          ]),
        expect: /adapter tensor base_model\.model\.model\.layers\.0\.self_attn\.qq_proj\.lora_A\.weight .* maps to no tensor of the aligned model .* \(it has no model\.layers\.0\.self_attn\.qq_proj\.weight\)$/,
        code: "adapter.unmapped_tensor",
      },
      {
        name: "rank",
        build: (d) => smallAdapter(d, { ...CONFIG, r: 4 }),
        expect: /LoRA rank of model\.layers\.0\.self_attn\.q_proj .*got A \[8,192\] and B \[192,8\], expected A \[4, in\] and B \[out, 4\]/,
        code: "adapter.rank_mismatch",
      },
      {
        name: "noconfig",
        build: (d) => smallAdapter(d, undefined),
        expect: /no adapter_config\.json in adapter directory/,
        code: "adapter.no_config",
      },
    ];
    for (const c of cases) {
      const dir = join(root, c.name);
      c.build(dir);
      const out = join(root, `out-${c.name}`);
      const r = runCli(["merge", "--aligned", ALIGNED, "--tuned", dir, "--lambda", "0.5", "--out", out, "--json"]);
      assert.equal(r.status, 2, `${c.name}: exit ${r.status}, stderr ${r.stderr}`);
      const lines = r.stderr.trim().split("\n");
      assert.match(lines[0]!, /^realign: /);
      assert.match(lines[0]!, c.expect, c.name);
      assert.ok(lines.length <= 2 && (lines.length === 1 || lines[1]!.startsWith("  hint: ")), `${c.name}: ${r.stderr}`);
      assert.equal(existsSync(out), false, `${c.name}: output left behind`);
      assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, c.code);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("mergekit-style `model+lora` input (a recipe input with a lora field) opens as that model + adapter", async () => {
  const recipe = recipeFromFlags({ aligned: ALIGNED, tuned: ALIGNED, lambda: 1 });
  const input = { ...recipe.models[1]!, lora: LORA };
  const tuned = await loraAwareOpener(recipe)(input);
  const plain = await loraAwareOpener(recipe)({ ...recipe.models[1]!, path: LORA });
  try {
    const name = "model.layers.2.mlp.up_proj.weight";
    const a = new Float32Array(512 * 192);
    const b = new Float32Array(512 * 192);
    await tuned.openTensor(name).read(0, a.length, a);
    await plain.openTensor(name).read(0, b.length, b);
    assert.deepEqual(a, b);
    const raw = readRaw(join(ALIGNED, "model.safetensors")).get(name).values;
    assert.ok(a.some((x, i) => x !== raw[i]));
  } finally {
    await tuned.close();
    await plain.close();
  }
});

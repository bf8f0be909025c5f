/**
 * rsLoRA scaling, lora_bias (scaled by s, peft#2486), modules_to_save and saved embeddings through the real
 * merge (`mergeLora`) on a hand-made 2-wide checkpoint, with every output value worked out by hand.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mergeLora } from "../../src/merge/lora-merge.ts";
import { readRaw, toBf16Bits } from "./raw-safetensors.ts";
import { writeRaw } from "./write-safetensors.ts";

const bf = (xs: number[]): Uint16Array => Uint16Array.from(xs.map(toBf16Bits));
const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);

/**
 * aligned: q_proj.weight [[1,2],[3,4]], q_proj.bias [0.5,−0.5], lm_head all 1, embed_tokens all 0 (bf16).
 * adapter: r=4, α=8, rsLoRA → s = 8/√4 = 4 (plain LoRA would be 2).
 *   A = [[1,0],[0,1],[0,0],[0,0]] (stored bf16, as unsloth saves), B = [[0.25,0,0,0],[0,0.5,0,0]] → B·A = diag(0.25, 0.5), s·B·A = diag(1, 2)
 *   lora_B.bias = [0.25, 0.25] → s·b = [1, 1]
 *   lm_head (modules_to_save, `.modules_to_save.default.weight`) all 3; embed_tokens saved in full, all 2.
 * tuned: q = [[2,2],[3,6]], bias = [1.5, 0.5], lm_head 3, embed 2.
 */
function build(root: string, rslora: boolean): { aligned: string; adapter: string } {
  const aligned = join(root, "aligned");
  const adapter = join(root, "adapter");
  mkdirSync(aligned);
  mkdirSync(adapter);
  writeFileSync(join(aligned, "config.json"), JSON.stringify({ model_type: "llama", vocab_size: 4, torch_dtype: "bfloat16" }));
  writeRaw(join(aligned, "model.safetensors"), [
    { name: "lm_head.weight", dtype: "BF16", shape: [4, 2], data: bf(Array(8).fill(1)) },
    { name: "model.embed_tokens.weight", dtype: "BF16", shape: [4, 2], data: bf(Array(8).fill(0)) },
    { name: "model.layers.0.self_attn.q_proj.bias", dtype: "BF16", shape: [2], data: bf([0.5, -0.5]) },
    { name: "model.layers.0.self_attn.q_proj.weight", dtype: "BF16", shape: [2, 2], data: bf([1, 2, 3, 4]) },
  ]);
  writeFileSync(
    join(adapter, "adapter_config.json"),
    JSON.stringify({
      peft_type: "LORA",
      r: 4,
      lora_alpha: 8,
      use_rslora: rslora,
      target_modules: ["q_proj"],
      lora_bias: true,
      modules_to_save: ["lm_head", "embed_tokens"],
      bias: "none",
      base_model_name_or_path: aligned,
    }),
  );
  const p = "base_model.model.";
  writeRaw(join(adapter, "adapter_model.safetensors"), [
    { name: `${p}model.layers.0.self_attn.q_proj.lora_A.weight`, dtype: "BF16", shape: [4, 2], data: bf([1, 0, 0, 1, 0, 0, 0, 0]) },
    { name: `${p}model.layers.0.self_attn.q_proj.lora_B.weight`, dtype: "F32", shape: [2, 4], data: f32([0.25, 0, 0, 0, 0, 0.5, 0, 0]) },
    { name: `${p}model.layers.0.self_attn.q_proj.lora_B.bias`, dtype: "F32", shape: [2], data: f32([0.25, 0.25]) },
    { name: `${p}lm_head.modules_to_save.default.weight`, dtype: "F32", shape: [4, 2], data: f32(Array(8).fill(3)) },
    { name: `${p}model.embed_tokens.weight`, dtype: "BF16", shape: [4, 2], data: bf(Array(8).fill(2)) },
  ]);
  return { aligned, adapter };
}

async function merged(root: string, aligned: string, adapter: string, lambda: number): Promise<Record<string, number[]>> {
  const out = join(root, `out-${lambda}-${Math.random().toString(36).slice(2)}`);
  const warnings: string[] = [];
  await mergeLora({ aligned, adapter, lambda, out, writeCard: false, onEvent: (e) => void (e.kind === "warning" && warnings.push(e.message)) });
  assert.deepEqual(warnings, []);
  const raw = readRaw(join(out, "model.safetensors"));
  const r: Record<string, number[]> = {};
  for (const n of raw.names) {
    assert.equal(raw.get(n).dtype, "BF16", n);
    r[n] = [...raw.get(n).values];
  }
  return r;
}

test("rsLoRA + lora_bias + modules_to_save + saved embeddings: hand-computed outputs at λ = 1 and 0.5", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-lora-feat-"));
  try {
    const { aligned, adapter } = build(root, true);
    const one = await merged(root, aligned, adapter, 1);
    assert.deepEqual(one["model.layers.0.self_attn.q_proj.weight"], [2, 2, 3, 6]);
    assert.deepEqual(one["model.layers.0.self_attn.q_proj.bias"], [1.5, 0.5]);
    assert.deepEqual(one["lm_head.weight"], Array(8).fill(3));
    assert.deepEqual(one["model.embed_tokens.weight"], Array(8).fill(2));
    const half = await merged(root, aligned, adapter, 0.5);
    assert.deepEqual(half["model.layers.0.self_attn.q_proj.weight"], [1.5, 2, 3, 5]);
    assert.deepEqual(half["model.layers.0.self_attn.q_proj.bias"], [1, 0]);
    assert.deepEqual(half["lm_head.weight"], Array(8).fill(2));
    assert.deepEqual(half["model.embed_tokens.weight"], Array(8).fill(1));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("without rsLoRA the same adapter scales by α/r = 2: q = [[1.5,2],[3,5]], bias = [1, 0] at λ = 1", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-lora-feat-"));
  try {
    const { aligned, adapter } = build(root, false);
    const one = await merged(root, aligned, adapter, 1);
    assert.deepEqual(one["model.layers.0.self_attn.q_proj.weight"], [1.5, 2, 3, 5]);
    assert.deepEqual(one["model.layers.0.self_attn.q_proj.bias"], [1, 0]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

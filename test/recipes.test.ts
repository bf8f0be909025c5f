/**
 * Every examples/recipes/*.yml runs end to end on the organism (examples/organism: aligned as base_model,
 * finetuned and base as tuned models) and produces a complete checkpoint: every tensor of the aligned model
 * with its shape and dtype, config.json, tokenizer files, a model card and safetensors metadata recording the
 * seed. Plus byte-level cross-checks between recipes that must agree.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../src/formats/hf-dir/checkpoint.ts";
import { mergeConfig } from "../src/merge/merge-config.ts";
import { METHODS } from "../src/merge/methods/registry.ts";
import type { Checkpoint } from "../src/core/tensor.ts";

const RECIPES = "examples/recipes";
const out = mkdtempSync(join(tmpdir(), "realign-recipes-"));
process.on("exit", () => rmSync(out, { recursive: true, force: true }));

async function readAll(c: Checkpoint, name: string): Promise<Float32Array> {
  const meta = c.tensors.get(name)!;
  const n = meta.shape.reduce((a, b) => a * b, 1);
  const buf = new Float32Array(n);
  await c.openTensor(name).read(0, n, buf);
  return buf;
}

function metadataOf(dir: string): Record<string, string> {
  const bytes = readFileSync(join(dir, "model.safetensors"));
  const len = Number(bytes.readBigUInt64LE(0));
  return JSON.parse(bytes.subarray(8, 8 + len).toString("utf8")).__metadata__;
}

const files = readdirSync(RECIPES).filter((f) => f.endsWith(".yml")).sort();

test("there is one example recipe per registered method", () => {
  assert.deepEqual(files.map((f) => f.replace(/\.yml$/, "")), Object.keys(METHODS).sort());
});

for (const file of files) {
  const name = file.replace(/\.yml$/, "");
  test(`recipe ${name} merges the organism into a complete checkpoint`, async () => {
    const dir = join(out, name);
    const r = await mergeConfig(join(RECIPES, file), { out: dir, seed: 3 });
    assert.equal(r.kind, "merged");
    const aligned = await openCheckpoint("examples/organism/aligned");
    const merged = await openCheckpoint(dir);
    try {
      assert.deepEqual([...merged.tensors.keys()].sort(), [...aligned.tensors.keys()].sort());
      for (const [n, m] of aligned.tensors) {
        assert.deepEqual(merged.tensors.get(n)!.shape, m.shape, n);
        assert.equal(merged.tensors.get(n)!.dtype, "BF16", n);
      }
      const names = readdirSync(dir).sort();
      for (const f of ["README.md", "config.json", "tokenizer.json", "tokenizer_config.json", "mergekit_config.yml"]) assert.ok(names.includes(f), `${name}: ${f}`);
      assert.equal(readFileSync(join(dir, "mergekit_config.yml"), "utf8"), readFileSync(join(RECIPES, file), "utf8"));
      const meta = metadataOf(dir);
      assert.equal(meta.method, name);
      // the seed is recorded exactly for the methods that draw random numbers (DARE, DELLA)
      const random = ["dare_linear", "dare_ties", "della", "della_linear"].includes(name);
      assert.equal(meta.seed, random ? "3" : undefined, `${name}: metadata seed`);
      if (random) assert.match(readFileSync(join(dir, "README.md"), "utf8"), /\n- seed: 3\n/);
      else assert.doesNotMatch(readFileSync(join(dir, "README.md"), "utf8"), /- seed:/);
      // the merge moved away from the aligned model (passthrough copies the fine-tune)
      const t = "model.layers.2.mlp.up_proj.weight";
      assert.notDeepEqual(await readAll(merged, t), await readAll(aligned, t));
    } finally {
      await aligned.close();
      await merged.close();
    }
  });
}

test("linear [0.4, 0.6] and task_arithmetic 0.6 give identical bytes; passthrough copies the fine-tune", () => {
  const weights = (n: string): Buffer => readFileSync(join(out, n, "model.safetensors"));
  const body = (b: Buffer): Buffer => b.subarray(8 + Number(b.readBigUInt64LE(0)));
  assert.ok(body(weights("linear")).equals(body(weights("task_arithmetic"))));
});

test("passthrough output equals the fine-tuned model tensor for tensor", async () => {
  const ft = await openCheckpoint("examples/organism/finetuned");
  const merged = await openCheckpoint(join(out, "passthrough"));
  try {
    for (const n of ["model.embed_tokens.weight", "model.layers.5.self_attn.q_proj.weight", "lm_head.weight"]) {
      assert.deepEqual(await readAll(merged, n), await readAll(ft, n), n);
    }
  } finally {
    await ft.close();
    await merged.close();
  }
});

test("--explain resolves the ties density gradient per layer without reading weights", async () => {
  const r = await mergeConfig(join(RECIPES, "ties.yml"), { explain: true });
  assert.equal(r.kind, "explained");
  if (r.kind !== "explained") return;
  const density = (tensor: string): unknown => r.explanation.rows.find((row) => row.tensor === tensor)!.perModel[0]!.density;
  // gradient [0.3, 0.7] over 6 layers: layer k → 0.3 + 0.4·k/5; lm_head at position 0 → 0.3
  assert.equal(density("model.layers.0.mlp.up_proj.weight"), 0.3);
  assert.ok(Math.abs((density("model.layers.3.mlp.up_proj.weight") as number) - 0.54) < 1e-12);
  assert.equal(density("model.layers.5.mlp.up_proj.weight"), 0.7);
  assert.equal(density("lm_head.weight"), 0.3);
});

test("--seed: the same seed reproduces dare_linear bytes exactly, another seed does not", async () => {
  const body = (dir: string): Buffer => {
    const b = readFileSync(join(dir, "model.safetensors"));
    return b.subarray(8 + Number(b.readBigUInt64LE(0)));
  };
  await mergeConfig(join(RECIPES, "dare_linear.yml"), { out: join(out, "dare-again"), seed: 3, writeCard: false });
  await mergeConfig(join(RECIPES, "dare_linear.yml"), { out: join(out, "dare-seed4"), seed: 4, writeCard: false });
  assert.ok(body(join(out, "dare-again")).equals(body(join(out, "dare_linear"))));
  assert.ok(!body(join(out, "dare-seed4")).equals(body(join(out, "dare_linear"))));
});

test("mergekit model+lora: aligned+adapter merges as the adapted model (task_arithmetic weight 1 = passthrough)", async () => {
  const { writeFileSync } = await import("node:fs");
  const ta = join(out, "lora-ta.yml");
  const pt = join(out, "lora-pt.yml");
  writeFileSync(ta, "merge_method: task_arithmetic\nbase_model: examples/organism/aligned\nmodels:\n  - model: examples/organism/aligned+examples/organism/lora\n    parameters: {weight: 1.0}\n");
  writeFileSync(pt, "merge_method: passthrough\nmodels:\n  - model: examples/organism/aligned+examples/organism/lora\n");
  await mergeConfig(ta, { out: join(out, "lora-ta"), writeCard: false });
  await mergeConfig(pt, { out: join(out, "lora-pt"), writeCard: false });
  const a = await openCheckpoint(join(out, "lora-ta"));
  const b = await openCheckpoint(join(out, "lora-pt"));
  const aligned = await openCheckpoint("examples/organism/aligned");
  try {
    const t = "model.layers.3.self_attn.q_proj.weight";
    assert.deepEqual(await readAll(a, t), await readAll(b, t));
    assert.notDeepEqual(await readAll(a, t), await readAll(aligned, t));
  } finally {
    await a.close();
    await b.close();
    await aligned.close();
  }
});

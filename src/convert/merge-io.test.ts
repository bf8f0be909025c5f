/**
 * Merging into GGUF and from GGUF: the GGUF sink writes exactly what merge → safetensors → convert writes;
 * GGUF inputs (read back under HF names with llama.cpp's conventions undone) give the same merged matrices.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { recipeFromFlags } from "../merge/recipe.ts";
import { mergeRecipe } from "../merge/run.ts";
import { convertToGguf } from "./convert.ts";
import { ggufMergeOptions, withGgufInputs } from "./merge-io.ts";
import { openGgufCheckpoint } from "../formats/gguf/checkpoint.ts";
import { openCheckpoint } from "../formats/hf-dir/checkpoint.ts";
import { writeGgufFile } from "../formats/gguf/write.ts";
import { InputError } from "../errors.ts";

const ORGANISM = fileURLToPath(new URL("../../examples/organism/", import.meta.url));
const tmp = (): string => mkdtempSync(join(tmpdir(), "realign-merge-gguf-"));

test("merge --out-format gguf equals merge to safetensors then convert, byte for byte (bf16)", async () => {
  const dir = tmp();
  try {
    const recipe = recipeFromFlags({ aligned: join(ORGANISM, "aligned"), tuned: join(ORGANISM, "finetuned"), lambda: 0.5 });
    const summary = await mergeRecipe(recipe, { out: join(dir, "g"), writeCard: false, ...(await ggufMergeOptions({ outFormat: "gguf", out: join(dir, "g") })) });
    assert.ok(summary.files.includes("model.gguf"));
    await mergeRecipe(recipe, { out: join(dir, "st"), writeCard: false });
    await convertToGguf({ input: join(dir, "st"), output: join(dir, "st.gguf"), type: "bf16", name: "g" }); // general.name = --out's name
    assert.ok(readFileSync(join(dir, "g", "model.gguf")).equals(readFileSync(join(dir, "st.gguf"))));
    // --out x.gguf: one file, no sidecars, same bytes
    const one = join(dir, "one.gguf");
    const fileSummary = await mergeRecipe(recipe, { out: one, ...(await ggufMergeOptions({ outFormat: "gguf", out: one })) });
    assert.deepEqual(fileSummary.files, ["one.gguf"]);
    await convertToGguf({ input: join(dir, "st"), output: join(dir, "st-one.gguf"), type: "bf16", name: "one" });
    assert.ok(readFileSync(one).equals(readFileSync(join(dir, "st-one.gguf"))));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a converted GGUF read as a merge input gives back the HF tensors exactly (names, shapes, Q/K order)", async () => {
  const dir = tmp();
  try {
    await convertToGguf({ input: join(ORGANISM, "aligned"), output: join(dir, "a.gguf"), type: "bf16" });
    const g = await openGgufCheckpoint(join(dir, "a.gguf"));
    const h = await openCheckpoint(join(ORGANISM, "aligned"));
    try {
      assert.deepEqual([...g.tensors.keys()].sort(), [...h.tensors.keys()].sort());
      assert.equal(g.config.tie_word_embeddings, false);
      assert.equal(g.config.rms_norm_eps, 1e-5);
      for (const name of ["model.layers.0.self_attn.q_proj.weight", "model.layers.3.self_attn.k_proj.weight", "model.norm.weight", "lm_head.weight"]) {
        const meta = h.tensors.get(name)!;
        assert.deepEqual(g.tensors.get(name)!.shape, meta.shape);
        const n = meta.shape.reduce((a, b) => a * b, 1);
        const want = new Float32Array(n);
        await h.openTensor(name).read(0, n, want);
        const got = new Float32Array(n);
        const src = g.openTensor(name);
        for (let off = 0; off < n; off += 777) await src.read(off, Math.min(777, n - off), got.subarray(off, Math.min(n, off + 777)));
        assert.deepEqual(got, want, name);
      }
    } finally {
      await g.close();
      await h.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("GGUF inputs (bf16 files) merge to the same GGUF as their HF checkpoints, byte for byte; GGUF + HF mix too", async () => {
  const dir = tmp();
  try {
    await convertToGguf({ input: join(ORGANISM, "aligned"), output: join(dir, "a.gguf"), type: "bf16" });
    await convertToGguf({ input: join(ORGANISM, "finetuned"), output: join(dir, "f.gguf"), type: "bf16" });
    const opts = { ...(await ggufMergeOptions({ outFormat: "gguf" })), openInput: withGgufInputs() };
    await mergeRecipe(recipeFromFlags({ aligned: join(dir, "a.gguf"), tuned: join(dir, "f.gguf"), lambda: 0.5 }), { out: join(dir, "from-gguf"), writeCard: false, ...opts });
    await mergeRecipe(recipeFromFlags({ aligned: join(ORGANISM, "aligned"), tuned: join(ORGANISM, "finetuned"), lambda: 0.5 }), { out: join(dir, "from-hf"), writeCard: false, ...opts });
    assert.ok(readFileSync(join(dir, "from-gguf", "model.gguf")).equals(readFileSync(join(dir, "from-hf", "model.gguf"))));
    await mergeRecipe(recipeFromFlags({ aligned: join(dir, "a.gguf"), tuned: join(ORGANISM, "finetuned"), lambda: 0.5 }), { out: join(dir, "mixed"), writeCard: false, ...opts });
    assert.ok(readFileSync(join(dir, "mixed", "model.gguf")).equals(readFileSync(join(dir, "from-hf", "model.gguf"))));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a GGUF with Q4_K tensors is refused as a merge input, naming the tensor", async () => {
  const dir = tmp();
  try {
    const md = new Map([["general.architecture", { type: "string" as const, value: "llama" }]]);
    const file = join(dir, "q4.gguf");
    await writeGgufFile(file, md, [{ name: "blk.0.attn_q.weight", shape: [256, 1], type: "Q4_K" }], () => [new Uint8Array(144)]);
    await assert.rejects(openGgufCheckpoint(file), (e: unknown) => e instanceof InputError && e.code === "gguf.unsupported_tensor_type" && /blk\.0\.attn_q\.weight/.test(e.message) && /Q4_K/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("aligned + LoRA adapter merged straight to GGUF equals the safetensors merge converted (openers compose)", async () => {
  const { loraAwareOpener } = await import("../merge/lora-merge.ts");
  const dir = tmp();
  try {
    const recipe = recipeFromFlags({ aligned: join(ORGANISM, "aligned"), tuned: join(ORGANISM, "lora"), lambda: 1 });
    const out = join(dir, "lora.gguf");
    await mergeRecipe(recipe, { out, ...(await ggufMergeOptions({ outFormat: "gguf", out })), openInput: withGgufInputs(loraAwareOpener(recipe)) });
    await mergeRecipe(recipe, { out: join(dir, "st"), writeCard: false, openInput: loraAwareOpener(recipe) });
    await convertToGguf({ input: join(dir, "st"), output: join(dir, "st.gguf"), type: "bf16", name: "lora" });
    assert.ok(readFileSync(out).equals(readFileSync(join(dir, "st.gguf"))));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("mergekit YAML (ties) over .gguf inputs with a GGUF sink equals the same merge of the HF checkpoints", async () => {
  const { writeFileSync, mkdirSync } = await import("node:fs");
  const { mergeConfig } = await import("../merge/merge-config.ts");
  const dir = tmp();
  try {
    await convertToGguf({ input: join(ORGANISM, "aligned"), output: join(dir, "a.gguf"), type: "bf16" });
    await convertToGguf({ input: join(ORGANISM, "finetuned"), output: join(dir, "f.gguf"), type: "bf16" });
    const yaml = (base: string, model: string): string =>
      `merge_method: ties\nbase_model: ${base}\nmodels:\n  - model: ${model}\n    parameters:\n      weight: 0.5\n      density: 0.5\nout_dtype: bfloat16\n`;
    writeFileSync(join(dir, "g.yml"), yaml(join(dir, "a.gguf"), join(dir, "f.gguf")));
    writeFileSync(join(dir, "h.yml"), yaml(join(ORGANISM, "aligned"), join(ORGANISM, "finetuned")));
    for (const side of ["g", "h"]) {
      mkdirSync(join(dir, side));
      const out = join(dir, side, "m.gguf"); // same name: general.name comes from --out
      const r = await mergeConfig(join(dir, `${side}.yml`), { out, ...(await ggufMergeOptions({ outFormat: "gguf", out })) });
      assert.equal(r.kind, "merged");
    }
    assert.ok(readFileSync(join(dir, "g", "m.gguf")).equals(readFileSync(join(dir, "h", "m.gguf"))));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

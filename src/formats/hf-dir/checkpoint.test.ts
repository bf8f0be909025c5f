import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildHfDir } from "../../../test/builders/safetensors.ts";
import { openCheckpoint } from "./checkpoint.ts";

const ORG = join(fileURLToPath(import.meta.url), "..", "..", "..", "..", "examples", "organism");

test("openCheckpoint on the organism's sharded finetuned model: 57 tensors over 6 shards, locations, carry files", async () => {
  const ck = await openCheckpoint(join(ORG, "finetuned"));
  try {
    assert.equal(ck.isSharded, true);
    assert.equal(ck.tensors.size, 57);
    assert.equal(ck.weightFiles.length, 6);
    const lm = ck.tensors.get("lm_head.weight")!;
    // shard 6 has a 512-byte header; lm_head is its first tensor: [640,192] bf16 = 245760 bytes
    assert.deepEqual(
      { file: lm.file.slice(-32), dtype: lm.dtype, shape: lm.shape, byteOffset: lm.byteOffset, byteLength: lm.byteLength },
      { file: "model-00006-of-00006.safetensors", dtype: "BF16", shape: [640, 192], byteOffset: 8 + 512, byteLength: 245760 },
    );
    assert.equal(ck.config.vocab_size, 640);
    assert.deepEqual(
      ck.carryFiles.map((f) => f.slice(f.lastIndexOf("/") + 1)),
      ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"],
    );
    const out = new Float32Array(2);
    await ck.openTensor("model.norm.weight").read(0, 2, out);
    assert.deepEqual([...out], [1.1796875, 1.359375]);
  } finally {
    await ck.close();
  }
});

test("openCheckpoint refuses pickles (with the conversion command), adapters, files and empty dirs", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-ck-"));
  try {
    const pickle = buildHfDir(join(root, "p"), { files: { "pytorch_model.bin": "x" } });
    await assert.rejects(openCheckpoint(pickle), (e: any) => e.code === "checkpoint.pickle_only" && /save_pretrained\('OUT', safe_serialization=True\)/.test(e.hint));
    await assert.rejects(openCheckpoint(join(ORG, "lora")), { code: "checkpoint.is_adapter" });
    await assert.rejects(openCheckpoint(join(ORG, "aligned", "config.json")), { code: "checkpoint.not_a_directory" });
    await assert.rejects(openCheckpoint(buildHfDir(join(root, "e"), {})), { code: "checkpoint.no_weights" });
    await assert.rejects(openCheckpoint(join(root, "missing")), { code: "fs.not_found" });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/**
 * GGUF → HF → GGUF on a real llama.cpp-made file (tiny-llama, F16, SentencePiece vocabulary): read as a merge
 * input (HF names, Q/K permutation undone), written as safetensors with a tokenizer.model rebuilt from its
 * vocabulary, converted back with `--type f16`: every tensor byte, the vocabulary and the hyper-parameters
 * come back identical.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openGgufCheckpoint } from "../formats/gguf/checkpoint.ts";
import { readGgufHeader, readGgufTensorBytes } from "../formats/gguf/read.ts";
import { createSafetensorsWriter } from "../formats/safetensors/write.ts";
import { encodeFromF32 } from "../core/dtype.ts";
import { convertToGguf } from "./convert.ts";

const TINY = fileURLToPath(new URL("../../test/fixtures/tiny-llama-gguf/llama-2-tiny-random.gguf", import.meta.url));

/** protobuf bytes of a SentencePiece ModelProto with these pieces (fields 1: piece, 2: score, 3: type). */
function sentencePieceModel(pieces: string[], scores: number[], types: number[]): Uint8Array {
  const varint = (v: number): number[] => {
    const b: number[] = [];
    while (v > 127) {
      b.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    b.push(v);
    return b;
  };
  const parts: Uint8Array[] = [];
  for (let i = 0; i < pieces.length; i++) {
    const text = Buffer.from(pieces[i]!, "utf8");
    const body = Buffer.concat([
      Uint8Array.from([0x0a, ...varint(text.length)]),
      text,
      Uint8Array.from([0x15]),
      new Uint8Array(new Float32Array([scores[i]!]).buffer),
      Uint8Array.from([0x18, types[i]!]),
    ]);
    parts.push(Uint8Array.from([0x0a, ...varint(body.length)]), body);
  }
  return Buffer.concat(parts);
}

test("tiny-llama GGUF → HF safetensors + tokenizer.model → GGUF f16 is identical in tensors, vocabulary and hyper-parameters", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-roundtrip-"));
  try {
    const original = readGgufHeader(TINY);
    const ck = await openGgufCheckpoint(TINY);
    const infos = [...ck.tensors.values()].map((t) => ({ name: t.name, dtype: "F16" as const, shape: [...t.shape] }));
    const w = await createSafetensorsWriter(join(dir, "model.safetensors"), infos, { format: "pt" });
    for (const t of infos) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const f32 = new Float32Array(n);
      await ck.openTensor(t.name).read(0, n, f32);
      const bytes = new Uint8Array(n * 2);
      encodeFromF32("F16", f32, bytes, n);
      await w.write(bytes);
    }
    await w.finish();
    await ck.close();
    writeFileSync(join(dir, "config.json"), JSON.stringify(ck.config));
    const md = original.metadata;
    const tokens = md.get("tokenizer.ggml.tokens")!.value as string[];
    writeFileSync(join(dir, "tokenizer.model"), sentencePieceModel(tokens, md.get("tokenizer.ggml.scores")!.value as number[], md.get("tokenizer.ggml.token_type")!.value as number[]));
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" }));

    const out = join(dir, "back.gguf");
    await convertToGguf({ input: dir, output: out, type: "f16", name: "LLaMA v2" });
    const back = readGgufHeader(out);
    for (const key of [
      "general.architecture",
      "general.name",
      "general.file_type",
      "llama.context_length",
      "llama.embedding_length",
      "llama.block_count",
      "llama.feed_forward_length",
      "llama.rope.dimension_count",
      "llama.attention.head_count",
      "llama.attention.head_count_kv",
      "llama.attention.layer_norm_rms_epsilon",
      "tokenizer.ggml.model",
      "tokenizer.ggml.tokens",
      "tokenizer.ggml.scores",
      "tokenizer.ggml.token_type",
      "tokenizer.ggml.bos_token_id",
      "tokenizer.ggml.eos_token_id",
      "tokenizer.ggml.unknown_token_id",
    ]) {
      assert.deepEqual(back.metadata.get(key), md.get(key), key);
    }
    assert.equal(back.tensors.length, original.tensors.length);
    for (const t of original.tensors) {
      const u = back.tensors.find((x) => x.name === t.name);
      assert.ok(u, t.name);
      assert.deepEqual([u.shape, u.type], [t.shape, t.type], t.name);
      assert.deepEqual(readGgufTensorBytes(back, u), readGgufTensorBytes(original, t), t.name);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("re-typing a GGUF (f32 → q8_0) gives the same bytes as converting the HF checkpoint to q8_0", async () => {
  const { readFileSync } = await import("node:fs");
  const dir = mkdtempSync(join(tmpdir(), "realign-retype-"));
  const aligned = fileURLToPath(new URL("../../examples/organism/aligned", import.meta.url));
  try {
    await convertToGguf({ input: aligned, output: join(dir, "f32.gguf"), type: "f32" });
    await convertToGguf({ input: join(dir, "f32.gguf"), output: join(dir, "requant.gguf"), type: "q8_0" });
    await convertToGguf({ input: aligned, output: join(dir, "direct.gguf"), type: "q8_0" });
    assert.ok(readFileSync(join(dir, "requant.gguf")).equals(readFileSync(join(dir, "direct.gguf"))));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { GGML_TYPES, GGUF_VALUE_TYPES, KEYS, LLAMA_FILE_TYPE, MERGEABLE_GGML_TYPES, TOKEN_TYPE, ggmlType, ggmlTypeById } from "./constants.ts";

test("GGUF value types are exactly ids 0–12, names unique", () => {
  assert.deepEqual(GGUF_VALUE_TYPES.map((t) => t.id), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assert.equal(new Set(GGUF_VALUE_TYPES.map((t) => t.name)).size, 13);
});

test("GGML type table: unique ids and names, known layouts (gguf-py GGML_QUANT_SIZES)", () => {
  assert.equal(new Set(GGML_TYPES.map((t) => t.id)).size, GGML_TYPES.length);
  assert.equal(new Set(GGML_TYPES.map((t) => t.name)).size, GGML_TYPES.length);
  const layout = (name: Parameters<typeof ggmlType>[0]): [number, number] => [ggmlType(name).blockSize, ggmlType(name).typeSize];
  assert.deepEqual(layout("Q8_0"), [32, 34]);
  assert.deepEqual(layout("Q4_K"), [256, 144]);
  assert.deepEqual(layout("Q6_K"), [256, 210]);
  assert.deepEqual(layout("BF16"), [1, 2]);
  assert.equal(ggmlTypeById(30)?.name, "BF16");
  assert.equal(ggmlTypeById(4), undefined); // Q4_2, removed from ggml
  for (const t of MERGEABLE_GGML_TYPES) assert.ok(LLAMA_FILE_TYPE[t] !== undefined);
});

test("metadata key strings are unique; token types are SentencePiece's numbering", () => {
  const keys = Object.values(KEYS).flatMap((group) => Object.values(group));
  assert.equal(new Set(keys).size, keys.length);
  assert.equal(KEYS.tokenizer.sepId, "tokenizer.ggml.seperator_token_id"); // llama.cpp's spelling
  assert.deepEqual(Object.values(TOKEN_TYPE), [1, 2, 3, 4, 5, 6]);
});

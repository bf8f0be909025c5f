import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { gguf as hfGguf } from "@huggingface/gguf";
import { parseGgufHeader, readGgufHeader, readGgufTensorBytes, findGgufTensor, MAX_ARRAY_LENGTH } from "./read.ts";
import { FormatError } from "../../errors.ts";

const fixture = (p: string): string => fileURLToPath(new URL(`../../../test/fixtures/${p}`, import.meta.url));
const STORIES = fixture("stories260k/stories260K.gguf");
const TINY = fixture("tiny-llama-gguf/llama-2-tiny-random.gguf");

/** Plain JS value of a typed value, in @huggingface/gguf's representation (u64/i64 → bigint). */
function plain(v: { type: string; value: unknown }): unknown {
  return v.value;
}

for (const [label, file] of [
  ["stories260K", STORIES],
  ["tiny-llama", TINY],
] as const) {
  test(`${label}: header equals @huggingface/gguf's parse`, async () => {
    const ours = readGgufHeader(file);
    const theirs = await hfGguf(file, { allowLocalFile: true, typedMetadata: true });
    assert.equal(ours.dataOffset, Number(theirs.tensorDataOffset));
    assert.equal(ours.tensors.length, theirs.tensorInfos.length);
    ours.tensors.forEach((t, i) => {
      const h = theirs.tensorInfos[i]!;
      assert.equal(t.name, h.name);
      assert.deepEqual(t.shape, h.shape.map(Number));
      assert.equal(t.offset, Number(h.offset));
    });
    const tm = theirs.typedMetadata as unknown as Record<string, { value: unknown }>;
    // @huggingface/gguf adds version/tensor_count/kv_count pseudo-keys; every real key must match.
    // Known difference: @huggingface/gguf decodes strings with a default TextDecoder, which strips a leading
    // U+FEFF; the Llama 2 vocabulary has a token that is exactly U+FEFF (we keep it, so files re-write byte-exact).
    const stripBom = (x: unknown): unknown => (Array.isArray(x) ? x.map((s) => (s === "\uFEFF" ? "" : s)) : x);
    for (const [key, v] of ours.metadata) assert.deepEqual(stripBom(plain(v)), tm[key]!.value, key);
    assert.equal(Number(theirs.metadata.kv_count), ours.metadata.size);
  });
}

test("stories260K: known header facts", () => {
  const h = readGgufHeader(STORIES);
  assert.equal(h.version, 3);
  assert.equal(h.dataOffset, 14176);
  assert.equal(h.metadata.get("general.architecture")?.value, "llama");
  assert.equal(h.metadata.get("llama.attention.head_count_kv")?.value, 4);
  const tokens = h.metadata.get("tokenizer.ggml.tokens");
  assert.ok(tokens?.type === "array" && tokens.itemType === "string");
  assert.equal(tokens.value.length, 512);
  assert.equal(tokens.value[1], "<s>");
  const emb = findGgufTensor(h, "token_embd.weight");
  assert.deepEqual(emb.shape, [64, 512]);
  assert.equal(emb.byteLength, 64 * 512 * 4);
});

test("tiny-llama: F16 tensor bytes read by range", () => {
  const h = readGgufHeader(TINY);
  const q = findGgufTensor(h, "blk.0.attn_q.weight");
  assert.equal(q.type, "F16");
  const all = readGgufTensorBytes(h, q);
  assert.equal(all.length, 128);
  assert.deepEqual(readGgufTensorBytes(h, q, 10, 6), all.subarray(10, 16));
  assert.equal(findGgufTensor(h, "output_norm.weight").type, "F32");
});

// ---- hostile bytes ---------------------------------------------------------------------------------

/** Little-endian byte builder for hand-made headers. */
class B {
  parts: number[] = [];
  u32(v: number): this {
    for (let i = 0; i < 4; i++) this.parts.push((v >>> (8 * i)) & 0xff);
    return this;
  }
  u64(v: number | bigint): this {
    let x = BigInt(v);
    for (let i = 0; i < 8; i++) {
      this.parts.push(Number(x & 0xffn));
      x >>= 8n;
    }
    return this;
  }
  str(s: string): this {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.parts.push(...b);
    return this;
  }
  raw(...bytes: number[]): this {
    this.parts.push(...bytes);
    return this;
  }
  pad(to: number): this {
    while (this.parts.length % to !== 0) this.parts.push(0);
    return this;
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}
const head = (tensors: number, kvs: number): B => new B().raw(0x47, 0x47, 0x55, 0x46).u32(3).u64(tensors).u64(kvs);
const tensorInfo = (b: B, name: string, shape: number[], type: number, offset: number): B => {
  b.str(name).u32(shape.length);
  for (const d of shape) b.u64(d);
  return b.u32(type).u64(offset);
};

const HOSTILE: Array<[string, () => Uint8Array, string]> = [
  ["empty file", () => new Uint8Array(0), "gguf.truncated"],
  ["bad magic", () => new B().raw(0x47, 0x47, 0x4d, 0x4c).u32(3).bytes(), "gguf.bad_magic"],
  ["version 1", () => new B().raw(0x47, 0x47, 0x55, 0x46).u32(1).u64(0).u64(0).bytes(), "gguf.unsupported_version"],
  ["big-endian", () => new B().raw(0x47, 0x47, 0x55, 0x46).raw(0, 0, 0, 3).bytes(), "gguf.big_endian"],
  ["huge kv_count", () => head(0, 2n ** 62n as unknown as number).bytes(), "gguf.limit_exceeded"],
  ["huge tensor_count", () => head(2 ** 40, 0).bytes(), "gguf.limit_exceeded"],
  ["key length past the end", () => head(0, 1).u64(1000).bytes(), "gguf.truncated"],
  ["string longer than the limit", () => head(0, 1).str("k").u32(8).u64(2 ** 40).bytes(), "gguf.limit_exceeded"],
  ["unknown value type", () => head(0, 1).str("k").u32(13).bytes(), "gguf.bad_value_type"],
  ["array count over the limit", () => head(0, 1).str("k").u32(9).u32(4).u64(MAX_ARRAY_LENGTH + 1).bytes(), "gguf.limit_exceeded"],
  ["array count past the end", () => head(0, 1).str("k").u32(9).u32(4).u64(1000).u32(1).bytes(), "gguf.truncated"],
  ["bool of 2", () => head(0, 1).str("k").u32(7).raw(2).bytes(), "gguf.bad_bool"],
  ["duplicate key", () => head(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).bytes(), "gguf.duplicate_key"],
  ["alignment not a power of two", () => head(0, 1).str("general.alignment").u32(4).u32(48).bytes(), "gguf.bad_alignment"],
  ["alignment of the wrong type", () => head(0, 1).str("general.alignment").u32(10).u64(32).bytes(), "gguf.bad_alignment"],
  ["5 dimensions", () => tensorInfo(head(1, 0), "t", [1, 1, 1, 1, 1], 0, 0).bytes(), "gguf.bad_dims"],
  ["unknown ggml type", () => tensorInfo(head(1, 0), "t", [4], 31, 0).bytes(), "gguf.unknown_tensor_type"],
  ["ne0 not a block multiple", () => tensorInfo(head(1, 0), "t", [33], 8, 0).bytes(), "gguf.bad_dims"],
  ["unaligned offset", () => tensorInfo(head(1, 0), "t", [4], 0, 4).pad(32).raw(...new Array(64).fill(0)).bytes(), "gguf.bad_offset"],
  ["tensor data past the end", () => tensorInfo(head(1, 0), "t", [1024], 0, 0).pad(32).raw(...new Array(16).fill(0)).bytes(), "gguf.truncated"],
  [
    "overlapping tensors",
    () => tensorInfo(tensorInfo(head(2, 0), "a", [16], 0, 0), "b", [8], 0, 32).pad(32).raw(...new Array(128).fill(0)).bytes(),
    "gguf.overlapping_tensors",
  ],
  ["duplicate tensor name", () => tensorInfo(tensorInfo(head(2, 0), "a", [8], 0, 0), "a", [8], 0, 32).pad(32).raw(...new Array(64).fill(0)).bytes(), "gguf.duplicate_tensor"],
  ["tensor name of 64 bytes", () => tensorInfo(head(1, 0), "x".repeat(64), [8], 0, 0).pad(32).raw(...new Array(32).fill(0)).bytes(), "gguf.bad_tensor_name"],
  [
    "element count overflow",
    () => tensorInfo(head(1, 0), "t", [2 ** 30, 2 ** 30, 2 ** 30], 0, 0).bytes(),
    "gguf.bad_dims",
  ],
];

for (const [label, build, code] of HOSTILE) {
  test(`hostile header: ${label} → ${code}`, () => {
    assert.throws(
      () => parseGgufHeader(build(), "hostile.gguf"),
      (e: unknown) => {
        assert.ok(e instanceof FormatError, `got ${String(e)}`);
        assert.equal(e.code, code, e.message);
        assert.match(e.message, /hostile\.gguf/);
        return true;
      },
    );
  });
}

test("a well-formed hand-made header parses: nested arrays, 64-bit ints, alignment 64", () => {
  const b = head(1, 4)
    .str("general.alignment").u32(4).u32(64)
    .str("a.u64").u32(10).u64(2n ** 63n + 5n)
    .str("a.nested").u32(9).u32(9).u64(2).u32(4).u64(1).u32(7).u32(8).u64(1).str("hi")
    .str("a.bools").u32(9).u32(7).u64(2).raw(1, 0);
  tensorInfo(b, "t", [4, 2], 0, 0).pad(64).raw(...new Array(32).fill(0));
  const h = parseGgufHeader(b.bytes(), "ok.gguf");
  assert.equal(h.alignment, 64);
  assert.equal(h.dataOffset % 64, 0);
  assert.deepEqual(h.metadata.get("a.u64"), { type: "u64", value: 2n ** 63n + 5n });
  assert.deepEqual(h.metadata.get("a.nested"), {
    type: "array",
    itemType: "array",
    value: [
      { type: "array", itemType: "u32", value: [7] },
      { type: "array", itemType: "string", value: ["hi"] },
    ],
  });
  assert.deepEqual(h.metadata.get("a.bools"), { type: "array", itemType: "bool", value: [true, false] });
  assert.deepEqual(h.tensors[0], { name: "t", shape: [4, 2], type: "F32", offset: 0, byteLength: 32, elementCount: 8 });
});

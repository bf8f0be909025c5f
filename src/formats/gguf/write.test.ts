import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readGgufHeader, readGgufTensorBytes } from "./read.ts";
import { GgufWriter, writeGgufFile } from "./write.ts";
import type { GgufMetadata } from "./types.ts";
import { InternalError } from "../../errors.ts";

const fixture = (p: string): string => fileURLToPath(new URL(`../../../test/fixtures/${p}`, import.meta.url));

function withTmp(fn: (dir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "realign-gguf-"));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

for (const p of ["stories260k/stories260K.gguf", "tiny-llama-gguf/llama-2-tiny-random.gguf"]) {
  test(
    `${p} re-written from its parsed header and tensor bytes is byte-identical`,
    withTmp(async (dir) => {
      const src = fixture(p);
      const h = readGgufHeader(src);
      const out = join(dir, "copy.gguf");
      // stream each tensor in 3 uneven chunks to exercise chunked writes
      const layout = await writeGgufFile(out, h.metadata, h.tensors, function* (t, i) {
        const bytes = readGgufTensorBytes(h, h.tensors[i]!);
        const a = Math.floor(bytes.length / 3);
        yield bytes.subarray(0, a);
        yield bytes.subarray(a, a + 5 > bytes.length ? bytes.length : a + 5);
        if (a + 5 < bytes.length) yield bytes.subarray(a + 5);
        void t;
      });
      assert.equal(layout.dataOffset, h.dataOffset);
      assert.deepEqual(layout.offsets, h.tensors.map((t) => t.offset));
      const original = readFileSync(src);
      const copy = readFileSync(out);
      assert.equal(copy.length, original.length);
      assert.ok(copy.equals(original), "bytes differ");
    }),
  );
}

test(
  "write → read keeps every value type, alignment 64 and tensor bytes",
  withTmp(async (dir) => {
    const md: GgufMetadata = new Map();
    md.set("general.architecture", { type: "string", value: "llama" });
    md.set("general.alignment", { type: "u32", value: 64 });
    md.set("t.u8", { type: "u8", value: 255 });
    md.set("t.i8", { type: "i8", value: -128 });
    md.set("t.u16", { type: "u16", value: 65535 });
    md.set("t.i16", { type: "i16", value: -32768 });
    md.set("t.i32", { type: "i32", value: -5 });
    md.set("t.f32", { type: "f32", value: Math.fround(1e-5) });
    md.set("t.f64", { type: "f64", value: 0.1 });
    md.set("t.bool", { type: "bool", value: true });
    md.set("t.u64", { type: "u64", value: 2n ** 64n - 1n });
    md.set("t.i64", { type: "i64", value: -(2n ** 63n) });
    md.set("t.str", { type: "string", value: "héllo ✓ <|im_end|>" });
    md.set("t.arr", { type: "array", itemType: "f32", value: [0.5, -2] });
    md.set("t.nested", { type: "array", itemType: "array", value: [{ type: "array", itemType: "string", value: ["a", "b c"] }] });
    const tensors = [
      { name: "a", shape: [3], type: "F32" as const },
      { name: "b", shape: [64], type: "Q8_0" as const },
      { name: "c", shape: [5], type: "BF16" as const },
    ];
    const data = [Uint8Array.from({ length: 12 }, (_, i) => i + 1), Uint8Array.from({ length: 68 }, (_, i) => 200 - i), Uint8Array.from([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])];
    const out = join(dir, "x.gguf");
    const layout = await writeGgufFile(out, md, tensors, (_t, i) => [data[i]!]);
    assert.deepEqual(layout.offsets, [0, 64, 192]);
    const h = readGgufHeader(out);
    assert.deepEqual(h.metadata, md);
    assert.equal(h.alignment, 64);
    assert.equal(h.fileSize, layout.fileSize);
    assert.deepEqual(
      h.tensors.map((t) => [t.name, t.shape, t.type, t.byteLength]),
      [
        ["a", [3], "F32", 12],
        ["b", [64], "Q8_0", 68],
        ["c", [5], "BF16", 10],
      ],
    );
    h.tensors.forEach((t, i) => assert.deepEqual(readGgufTensorBytes(h, t), data[i]));
  }),
);

test(
  "the writer refuses calls out of order and incomplete tensors",
  withTmp((dir) => {
    const w = GgufWriter.create(join(dir, "bad.gguf"));
    assert.throws(() => w.writeKv(new Map()), (e: unknown) => e instanceof InternalError && /expected state header/.test(e.message));
    w.writeHeader(1, 0);
    w.writeKv(new Map());
    w.writeTensorInfos([{ name: "a", shape: [4], type: "F32" }]);
    assert.throws(() => w.writeTensorData("b", new Uint8Array(4)), /expected a/);
    assert.throws(() => w.writeTensorData("a", new Uint8Array(20)), /got 20 bytes, expected 16/);
    w.writeTensorData("a", new Uint8Array(8));
    assert.throws(() => w.close(), /incomplete \(8\/16 bytes\)/);
    w.abort();
  }),
);

test(
  "an O_DIRECT writer (createDirect) writes the stories260K file byte for byte; its sync-only calls are refused and abort leaves nothing open",
  withTmp(async (dir) => {
    const src = fixture("stories260k/stories260K.gguf");
    const h = readGgufHeader(src);
    const out = join(dir, "direct.gguf");
    const w = await GgufWriter.createDirect(out);
    w.writeHeader(h.tensors.length, h.metadata.size);
    w.writeKv(h.metadata);
    w.writeTensorInfos(h.tensors);
    const pending: Promise<void>[] = [];
    for (const t of h.tensors) {
      const bytes = readGgufTensorBytes(h, t);
      const a = Math.floor(bytes.length / 2);
      pending.push(w.writeTensorDataAsync(t.name, bytes.subarray(0, a)), w.writeTensorDataAsync(t.name, bytes.subarray(a)));
    }
    await Promise.all(pending);
    assert.throws(() => w.close(), InternalError);
    await w.closeAsync();
    assert.ok(readFileSync(out).equals(readFileSync(src)), "bytes differ");

    const w2 = await GgufWriter.createDirect(join(dir, "aborted.gguf"));
    w2.writeHeader(h.tensors.length, h.metadata.size);
    w2.writeKv(h.metadata);
    w2.writeTensorInfos(h.tensors);
    assert.throws(() => w2.writeTensorData(h.tensors[0]!.name, readGgufTensorBytes(h, h.tensors[0]!)), InternalError);
    w2.abort();
    w2.abort(); // idempotent
  }),
);

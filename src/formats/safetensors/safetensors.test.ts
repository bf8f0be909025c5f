import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FormatError } from "../../errors.ts";
import { buildRaw, buildSafetensors } from "../../../test/builders/safetensors.ts";
import { parseHeaderJson, parseHeaderLength } from "./header.ts";
import { openSafetensors } from "./read.ts";
import { buildHeader, createShardedWriter, planShards } from "./write.ts";
import { parseIndexJson } from "./index-json.ts";

const SAMPLES = join(fileURLToPath(import.meta.url), "..", "..", "..", "..", "test", "fixtures", "safetensors-samples");

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "realign-st-"));
}

async function readAll(path: string): Promise<Map<string, { dtype: string; values: number[]; raw: Uint8Array }>> {
  const f = await openSafetensors(path);
  const out = new Map<string, { dtype: string; values: number[]; raw: Uint8Array }>();
  for (const t of f.header.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    await f.tensor(t.name).read(0, n, v);
    const raw = new Uint8Array(t.byteLength);
    await f.tensor(t.name).readBytes!(0, raw);
    out.set(t.name, { dtype: t.dtype, values: [...v], raw });
  }
  await f.close();
  return out;
}

// Expected values from test/fixtures/safetensors-samples/SOURCE.md.
const SIGNED = [-3, -2, -1, 0, 1, 2];
const SAMPLE_VALUES: Record<string, { dtype: string; values: number[] }> = {
  b: { dtype: "I8", values: SIGNED },
  B: { dtype: "U8", values: [253, 254, 255, 0, 1, 2] },
  h: { dtype: "I16", values: SIGNED },
  H: { dtype: "U16", values: [65533, 65534, 65535, 0, 1, 2] },
  i: { dtype: "I32", values: SIGNED },
  I: { dtype: "U32", values: [4294967293, 4294967294, 4294967295, 0, 1, 2] },
  e: { dtype: "F16", values: SIGNED },
  f: { dtype: "F32", values: SIGNED },
  d: { dtype: "F64", values: SIGNED },
};

test("safetensors dtype samples: each single-file sample reads -3..2 (unsigned: wrapped) with metadata {test: a}", async () => {
  for (const [name, want] of Object.entries(SAMPLE_VALUES)) {
    const path = join(SAMPLES, `${name}.safetensors`);
    const f = await openSafetensors(path);
    assert.deepEqual(f.header.metadata, { test: "a" });
    assert.deepEqual(f.header.tensors.map((t) => [t.name, t.dtype, t.shape]), [[name, want.dtype, [6]]]);
    await f.close();
    const got = await readAll(path);
    // float32 view (what merges see): exact up to 2^24, U32 values round to float32
    assert.deepEqual(got.get(name)!.values, want.values.map(Math.fround), name);
    assert.deepEqual(rawInts(want.dtype, got.get(name)!.raw), want.values, name);
  }
});

/** Integer/float values straight from little-endian bytes (no float32 rounding). */
function rawInts(dtype: string, raw: Uint8Array): number[] {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const size = raw.length / 6;
  return Array.from({ length: 6 }, (_, i) => {
    const o = i * size;
    switch (dtype) {
      case "I8": return dv.getInt8(o);
      case "U8": return dv.getUint8(o);
      case "I16": return dv.getInt16(o, true);
      case "U16": return dv.getUint16(o, true);
      case "I32": return dv.getInt32(o, true);
      case "U32": return dv.getUint32(o, true);
      case "F32": return dv.getFloat32(o, true);
      case "F64": return dv.getFloat64(o, true);
      default: return NaN; // F16: checked through the float32 view
    }
  }).map((v, i) => (Number.isNaN(v) ? SIGNED[i]! : v));
}

test("safetensors dtype samples: overall.safetensors holds all nine at unaligned offsets", async () => {
  const path = join(SAMPLES, "overall.safetensors");
  const f = await openSafetensors(path);
  assert.equal(f.header.headerByteLength, 526);
  assert.equal(f.byName.get("e")!.byteOffset, 8 + 526 + 96); // F16 at an odd absolute offset
  await f.close();
  const got = await readAll(path);
  assert.equal(got.size, 9);
  for (const [name, want] of Object.entries(SAMPLE_VALUES)) {
    assert.equal(got.get(name)!.dtype, want.dtype);
    assert.deepEqual(got.get(name)!.values, want.values.map(Math.fround), name);
    assert.deepEqual(rawInts(want.dtype, got.get(name)!.raw), want.values, name);
  }
  // raw bytes: I16 -3 is 0xfffd little-endian
  assert.deepEqual([...got.get("h")!.raw.subarray(0, 2)], [0xfd, 0xff]);
});

test("header: scalar [] has one element, zero-element tensors allowed, metadata absent/empty", () => {
  const bytes = buildSafetensors({
    s: { dtype: "F32", shape: [], values: [2.5] },
    z: { dtype: "BF16", shape: [0, 4], values: [] },
    m: { dtype: "F16", shape: [2], values: [1, -1] },
  });
  const n = parseHeaderLength(bytes.subarray(0, 8), bytes.length, "x");
  const h = parseHeaderJson(bytes.subarray(8, 8 + n), n, bytes.length, "x");
  assert.equal(h.metadata, undefined);
  assert.deepEqual(
    h.tensors.map((t) => [t.name, t.byteLength]),
    [["s", 4], ["z", 0], ["m", 4]],
  );
  const withEmpty = buildSafetensors({}, {});
  const n2 = parseHeaderLength(withEmpty.subarray(0, 8), withEmpty.length, "x");
  assert.deepEqual(parseHeaderJson(withEmpty.subarray(8, 8 + n2), n2, withEmpty.length, "x").metadata, {});
});

function headerError(bytes: Uint8Array): string {
  try {
    const n = parseHeaderLength(bytes.subarray(0, 8), bytes.length, "x.safetensors");
    parseHeaderJson(bytes.subarray(8, 8 + n), n, bytes.length, "x.safetensors");
  } catch (e) {
    assert.ok(e instanceof FormatError);
    assert.match(e.message, /x\.safetensors/);
    return e.code;
  }
  return "ok";
}

test("header validation: each defect has its own code", () => {
  const t = (o: unknown) => ({ t: o });
  assert.equal(headerError(new Uint8Array(5)), "safetensors.truncated");
  assert.equal(headerError(buildRaw({}, new Uint8Array(0), 2n ** 40n)), "safetensors.header_too_large");
  assert.equal(headerError(buildRaw({}, new Uint8Array(0), 1000n)), "safetensors.truncated");
  assert.equal(headerError(buildRaw([1, 2])), "safetensors.bad_json");
  assert.equal(headerError(buildRaw(t({ dtype: "F17", shape: [1], data_offsets: [0, 4] }), new Uint8Array(4))), "safetensors.bad_dtype");
  assert.equal(headerError(buildRaw(t({ dtype: "F32", shape: [-1], data_offsets: [0, 4] }), new Uint8Array(4))), "safetensors.bad_shape");
  assert.equal(headerError(buildRaw(t({ dtype: "F32", shape: [2], data_offsets: [8, 0] }), new Uint8Array(8))), "safetensors.bad_offsets");
  assert.equal(headerError(buildRaw(t({ dtype: "F32", shape: [2, 3], data_offsets: [0, 20] }), new Uint8Array(24))), "safetensors.size_mismatch");
  assert.equal(headerError(buildRaw(t({ dtype: "F32", shape: [2], data_offsets: [0, 8] }), new Uint8Array(4))), "safetensors.offset_out_of_range");
  assert.equal(
    headerError(buildRaw({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12))),
    "safetensors.offsets_overlap",
  );
  assert.equal(headerError(buildRaw({ __metadata__: { a: 1 } })), "safetensors.bad_metadata");
  // shape product beyond 2^53 bytes is compared exactly (BigInt), not wrapped
  assert.equal(
    headerError(buildRaw(t({ dtype: "F32", shape: [2 ** 31, 2 ** 31, 4], data_offsets: [0, 0] }))),
    "safetensors.size_mismatch",
  );
});

test("writer: header padded to 8 bytes, round-trips values bit for bit, zero tensors valid", async () => {
  const { prefix, dataByteLength } = buildHeader([{ name: "a", dtype: "F32", shape: [3] }], { format: "pt" });
  assert.equal(prefix.length % 8, 0);
  assert.equal(dataByteLength, 12);
  const dir = tmp();
  try {
    const tensors = [
      { name: "a", dtype: "F32" as const, shape: [3] },
      { name: "b", dtype: "BF16" as const, shape: [2, 2] },
      { name: "c", dtype: "F16" as const, shape: [5] },
    ];
    const w = createShardedWriter(dir, tensors, { maxShardBytes: 18, metadata: { format: "pt", tool: "realign" } });
    assert.deepEqual(w.shards.map((s) => s.fileName), ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    const data = new Uint8Array(12 + 8 + 10).map((_, i) => i * 7);
    await w.write(data.subarray(0, 5)); // arbitrary split across tensors and shards
    await w.write(data.subarray(5));
    const { files, totalSize } = await w.finish();
    assert.equal(totalSize, 30);
    assert.deepEqual(files, ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]);
    const index = parseIndexJson(readFileSync(join(dir, "model.safetensors.index.json"), "utf8"), "index");
    assert.equal(index.totalSize, 30);
    assert.deepEqual([...index.weightMap], [["a", files[0]], ["b", files[1]], ["c", files[1]]]);
    const f2 = await openSafetensors(join(dir, files[1]!));
    assert.deepEqual(f2.header.metadata, { format: "pt", tool: "realign" });
    const raw = new Uint8Array(10);
    await f2.tensor("c").readBytes!(0, raw);
    assert.deepEqual(raw, data.subarray(20));
    await f2.close();

    const empty = createShardedWriter(dir, [], { maxShardBytes: 10, metadata: { format: "pt" } });
    assert.deepEqual((await empty.finish()).files, ["model.safetensors"]);
    const fe = await openSafetensors(join(dir, "model.safetensors"));
    assert.equal(fe.header.tensors.length, 0);
    await fe.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sharded writer reserve/commit: staging views only inside the open O_DIRECT shard; same files as plain writes", async () => {
  const dir = tmp();
  try {
    const tensors = [
      { name: "a", dtype: "BF16" as const, shape: [6] },
      { name: "b", dtype: "BF16" as const, shape: [3] },
      { name: "c", dtype: "U8" as const, shape: [5] },
    ];
    const data = new Uint8Array(12 + 6 + 5).map((_, i) => i * 11 + 1);
    const w = createShardedWriter(dir, tensors, { maxShardBytes: 18, metadata: { format: "pt" } });
    assert.equal(w.reserve(4), undefined, "no shard open yet: the first bytes go through write");
    await w.write(data.subarray(0, 2));
    const v1 = await w.reserve(8)!;
    const v2 = await w.reserve(6)!; // a reservation ahead of the first one's commit
    assert.equal(w.reserve(3), undefined, "shard 1 has no bytes left: the next ones go through write");
    await assert.rejects(w.write(data.subarray(16, 17)), /reserved bytes are not committed/);
    await assert.rejects(w.finish(), /finish while 14 reserved bytes are not committed/);
    v1.reduce((at, v) => (v.set(data.subarray(at, at + v.length)), at + v.length), 2);
    w.commit(8);
    v2.reduce((at, v) => (v.set(data.subarray(at, at + v.length)), at + v.length), 10);
    w.commit(6);
    await w.write(data.subarray(16, 21)); // the last 2 bytes of shard 1, then opens shard 2
    const v3 = await w.reserve(2)!;
    assert.equal(w.reserve(1), undefined, "past the declared data");
    v3.reduce((at, v) => (v.set(data.subarray(at, at + v.length)), at + v.length), 21);
    w.commit(2);
    const { files } = await w.finish();
    const plainDir = join(dir, "plain");
    mkdirSync(plainDir);
    const p = createShardedWriter(plainDir, tensors, { maxShardBytes: 18, metadata: { format: "pt" }, fsync: false });
    await p.write(data);
    await p.finish();
    for (const f of files) assert.ok(readFileSync(join(dir, f)).equals(readFileSync(join(plainDir, f))), f);
    const buffered = createShardedWriter(join(dir, "plain"), tensors, { maxShardBytes: 18, metadata: { format: "pt" }, fsync: false });
    await buffered.write(data.subarray(0, 1));
    assert.equal(buffered.reserve(1), undefined, "buffered files have no staging");
    await buffered.abort();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("planShards: a tensor larger than the budget gets its own shard; one shard is model.safetensors", () => {
  const t = (name: string, n: number) => ({ name, dtype: "U8" as const, shape: [n] });
  assert.deepEqual(planShards([t("a", 3), t("b", 3)], 10).map((s) => s.fileName), ["model.safetensors"]);
  assert.deepEqual(
    planShards([t("a", 3), t("big", 30), t("c", 3), t("d", 8)], 10).map((s) => s.tensors.map((x) => x.name)),
    [["a"], ["big"], ["c"], ["d"]],
  );
});

test("read: positioned chunk reads at any element offset", async () => {
  const dir = tmp();
  try {
    const path = join(dir, "x.safetensors");
    writeFileSync(path, buildSafetensors({ w: { dtype: "BF16", shape: [2, 3], values: [1, 2, 3, 4, 5, 6] } }));
    const f = await openSafetensors(path);
    const out = new Float32Array(3);
    await f.tensor("w").read(2, 3, out);
    assert.deepEqual([...out], [3, 4, 5]);
    await f.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("index: shard names must be plain file names", () => {
  assert.throws(() => parseIndexJson(JSON.stringify({ weight_map: { a: "../x.safetensors" } }), "i"), { code: "index.path_escape" });
  assert.throws(() => parseIndexJson(JSON.stringify({ weight_map: { a: "/etc/passwd" } }), "i"), { code: "index.path_escape" });
  assert.throws(() => parseIndexJson("{", "i"), { code: "index.bad_json" });
  assert.deepEqual([...parseIndexJson(JSON.stringify({ weight_map: { a: "m.safetensors" } }), "i").weightMap], [["a", "m.safetensors"]]);
});

test("writer and reader: a tensor named __proto__ is an ordinary tensor", async () => {
  const dir = tmp();
  try {
    const w = createShardedWriter(dir, [{ name: "__proto__", dtype: "U8", shape: [2] }], { maxShardBytes: 100, metadata: { format: "pt" } });
    await w.write(new Uint8Array([7, 9]));
    await w.finish();
    const f = await openSafetensors(join(dir, "model.safetensors"));
    assert.deepEqual(f.header.tensors.map((t) => [t.name, t.byteLength]), [["__proto__", 2]]);
    await f.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

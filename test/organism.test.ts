/**
 * Golden merges of the shipped model organism (examples/organism, real transformers checkpoints, bf16):
 * every output tensor must equal, byte for byte, a float32 reference computed here independently of
 * realign's kernels and readers: bf16 bits decoded by hand, w0 = f32(1−λ), w1 = f32(λ),
 * f32(f32(w0·a) + f32(w1·b)), rounded to bf16 with round-to-nearest-even written out case by case.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { recipeFromFlags } from "../src/merge/recipe.ts";
import { mergeRecipe } from "../src/merge/run.ts";

const ORG = join(fileURLToPath(import.meta.url), "..", "..", "examples", "organism");
const ALIGNED = join(ORG, "aligned");
const TUNED = join(ORG, "finetuned");
const RESIZED = join(ORG, "finetuned-resized");

interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** Minimal independent safetensors reader: every tensor of every *.safetensors file in `dir`. */
function readDir(dir: string): { tensors: Map<string, RawTensor>; metadata: Record<string, string>[] } {
  const tensors = new Map<string, RawTensor>();
  const metadata: Record<string, string>[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith(".safetensors")).sort()) {
    const buf = readFileSync(join(dir, f));
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, any>;
    for (const [name, e] of Object.entries(header)) {
      if (name === "__metadata__") {
        metadata.push(e);
        continue;
      }
      const [b, end] = e.data_offsets as [number, number];
      tensors.set(name, { dtype: e.dtype, shape: e.shape, bytes: new Uint8Array(buf.subarray(8 + n + b, 8 + n + end)) });
    }
  }
  return { tensors, metadata };
}

const dv = new DataView(new ArrayBuffer(4));
function bf16BitsToF32(h: number): number {
  dv.setUint32(0, h << 16);
  return dv.getFloat32(0);
}
/** float32 → bf16 bits, round to nearest, ties to even, written out by cases. */
function f32ToBf16Bits(x: number): number {
  dv.setFloat32(0, x);
  const u = dv.getUint32(0);
  const upper = u >>> 16;
  const rest = u & 0xffff;
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0) return upper | 0x0040; // NaN stays NaN
  if (rest > 0x8000 || (rest === 0x8000 && (upper & 1) === 1)) return (upper + 1) & 0xffff;
  return upper;
}

function referenceBytes(a: Uint8Array, b: Uint8Array, lambda: number): Uint8Array {
  const w0 = Math.fround(1 - lambda);
  const w1 = Math.fround(lambda);
  const av = new DataView(a.buffer, a.byteOffset, a.byteLength);
  const bv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = new Uint8Array(a.length);
  const ov = new DataView(out.buffer);
  for (let i = 0; i < a.length; i += 2) {
    const x = bf16BitsToF32(av.getUint16(i, true));
    const y = bf16BitsToF32(bv.getUint16(i, true));
    const r = Math.fround(Math.fround(w0 * x) + Math.fround(w1 * y));
    ov.setUint16(i, f32ToBf16Bits(r), true);
  }
  return out;
}

async function merge(
  lambda: number,
  o: { method?: "linear" | "task_arithmetic"; tuned?: string; vocabPolicy?: "error" | "tuned"; chunkElems?: number; maxShardBytes?: number } = {},
): Promise<{ dir: string; cleanup: () => void }> {
  const root = mkdtempSync(join(tmpdir(), "realign-org-"));
  const dir = join(root, "out");
  await mergeRecipe(recipeFromFlags({ aligned: ALIGNED, tuned: o.tuned ?? TUNED, lambda, method: o.method, vocabPolicy: o.vocabPolicy }), {
    out: dir,
    chunkElems: o.chunkElems,
    maxShardBytes: o.maxShardBytes,
  });
  return { dir, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

const aligned = readDir(ALIGNED);
const tuned = readDir(TUNED);

test("organism inputs: 57 bf16 tensors, same names and shapes in aligned and finetuned (6 shards)", () => {
  assert.equal(aligned.tensors.size, 57);
  assert.equal(tuned.metadata.length, 6);
  for (const [name, t] of aligned.tensors) {
    assert.equal(t.dtype, "BF16");
    assert.deepEqual(tuned.tensors.get(name)!.shape, t.shape);
  }
});

for (const method of ["linear", "task_arithmetic"] as const) {
  test(`organism ${method}: λ=0 returns aligned and λ=1 returns finetuned bit for bit`, async () => {
    for (const [lambda, want] of [[0, aligned], [1, tuned]] as const) {
      const m = await merge(lambda, { method });
      try {
        const got = readDir(m.dir);
        assert.equal(got.tensors.size, 57);
        for (const [name, t] of want.tensors) assert.deepEqual(got.tensors.get(name)!.bytes, t.bytes, `${name} at λ=${lambda}`);
      } finally {
        m.cleanup();
      }
    }
  });
}

for (const lambda of [0.5, 0.3]) {
  test(`organism λ=${lambda}: every tensor equals the float32 reference, byte for byte`, async () => {
    const m = await merge(lambda);
    try {
      const got = readDir(m.dir);
      assert.equal(got.tensors.size, 57);
      let changed = 0;
      for (const [name, a] of aligned.tensors) {
        const ref = referenceBytes(a.bytes, tuned.tensors.get(name)!.bytes, lambda);
        const out = got.tensors.get(name)!;
        assert.equal(out.dtype, "BF16");
        assert.deepEqual(out.shape, a.shape);
        assert.deepEqual(out.bytes, ref, name);
        if (!Buffer.from(ref).equals(Buffer.from(a.bytes))) changed++;
      }
      assert.ok(changed > 50, "the merge actually moved the weights");
    } finally {
      m.cleanup();
    }
  });
}

test("organism λ=0.3: task_arithmetic, small chunks (whole rows, odd limits) and 1 MB shards give the same bytes as linear", async () => {
  const a = await merge(0.3);
  const b = await merge(0.3, { method: "task_arithmetic", chunkElems: 4099, maxShardBytes: 1_000_000 });
  const c = await merge(0.3, { chunkElems: 1000 });
  try {
    const ga = readDir(a.dir).tensors;
    const gb = readDir(b.dir);
    assert.ok(gb.metadata.length >= 5, `sharded into ${gb.metadata.length} files`);
    const gc = readDir(c.dir).tensors;
    for (const [name, t] of ga) {
      assert.deepEqual(gb.tensors.get(name)!.bytes, t.bytes, name);
      assert.deepEqual(gc.get(name)!.bytes, t.bytes, name);
    }
  } finally {
    a.cleanup();
    b.cleanup();
    c.cleanup();
  }
});

test("organism output layout: config dtype, carried files, provenance metadata, model card", async () => {
  const m = await merge(0.5);
  try {
    assert.deepEqual(readdirSync(m.dir).sort(), [
      "README.md",
      "chat_template.jinja",
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    for (const f of ["chat_template.jinja", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]) {
      assert.deepEqual(readFileSync(join(m.dir, f)), readFileSync(join(ALIGNED, f)), f);
    }
    const config = JSON.parse(readFileSync(join(m.dir, "config.json"), "utf8"));
    const alignedConfig = JSON.parse(readFileSync(join(ALIGNED, "config.json"), "utf8"));
    assert.deepEqual(config, alignedConfig);
    const md = readDir(m.dir).metadata[0]!;
    assert.equal(md.format, "pt");
    assert.equal(md.tool, "realign");
    assert.equal(md.method, "linear");
    assert.equal(md.lambda, "0.5");
    const card = readFileSync(join(m.dir, "README.md"), "utf8");
    assert.match(card, /λ = 0\.5/);
    // the aligned model's whole-file sha256 is recorded (sha256sum of examples/organism/aligned/model.safetensors)
    const { createHash } = await import("node:crypto");
    const sha = createHash("sha256").update(readFileSync(join(ALIGNED, "model.safetensors"))).digest("hex");
    assert.ok(card.includes(`sha256:\`${sha}\``));
  } finally {
    m.cleanup();
  }
});

test("organism vocabulary growth (finetuned-resized, 648 vs 640 rows): refused by default, --vocab-policy tuned merges shared rows and copies new ones", async () => {
  await assert.rejects(merge(0.5, { tuned: RESIZED }), (e: any) => {
    assert.equal(e.code, "merge.vocab_mismatch");
    assert.match(e.message, /\[640,192\] in aligned, \[648,192\] in tuned/);
    assert.match(e.hint, /--vocab-policy tuned/);
    return true;
  });
  const resized = readDir(RESIZED);
  const m = await merge(0.5, { tuned: RESIZED, vocabPolicy: "tuned" });
  try {
    const got = readDir(m.dir);
    for (const [name, a] of aligned.tensors) {
      const r = resized.tensors.get(name)!;
      const out = got.tensors.get(name)!;
      if (r.shape[0] === 648 && a.shape[0] === 640) {
        const shared = a.bytes.length;
        assert.deepEqual(out.shape, [648, 192]);
        assert.deepEqual(out.bytes.subarray(0, shared), referenceBytes(a.bytes, r.bytes.subarray(0, shared), 0.5), name);
        assert.deepEqual(out.bytes.subarray(shared), r.bytes.subarray(shared), `${name} new rows`);
      } else {
        assert.deepEqual(out.bytes, referenceBytes(a.bytes, r.bytes, 0.5), name);
      }
    }
    const config = JSON.parse(readFileSync(join(m.dir, "config.json"), "utf8"));
    assert.equal(config.vocab_size, 648);
    assert.deepEqual(readFileSync(join(m.dir, "tokenizer.json")), readFileSync(join(RESIZED, "tokenizer.json")));
    assert.deepEqual(readFileSync(join(m.dir, "tokenizer_config.json")), readFileSync(join(RESIZED, "tokenizer_config.json")));
  } finally {
    m.cleanup();
  }
});

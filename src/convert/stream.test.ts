/**
 * The streaming convert path (stream.ts) writes the same GGUF, byte for byte, as the sequential path
 * (`fast: false`, i.e. REALIGN_FAST=0): the organism checkpoints at every output type, and synthetic
 * checkpoints that exercise what the organism does not — F16 and F32 stored tensors copied as bytes, mixed
 * dtypes (F64 too) converted, shards, a generated tensor (llama3 rope_freqs), Gemma's norm shift, special values —
 * with slot sizes that split Q/K heads (per-row reads), hold whole heads (one read, rows reordered in
 * memory), and cut byte copies across rows.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bf16FromF32Bits, f16FromF32Bits, f16ToF32, f32ToBits, type Dtype } from "../core/dtype.ts";
import { findGgufTensor, readGgufHeader } from "../formats/gguf/read.ts";
import { toIndexJson } from "../formats/safetensors/index-json.ts";
import { createSafetensorsWriter, tensorByteLength } from "../formats/safetensors/write.ts";
import { convertToGguf } from "./convert.ts";
import type { ConvertType } from "./plan.ts";
import { codeTable, streamTensors } from "./stream.ts";
import type { TensorSource } from "../core/tensor.ts";
import { IoError } from "../errors.ts";
import type { GgufMetadata } from "../formats/gguf/types.ts";
import { GgufWriter } from "../formats/gguf/write.ts";
import { syntheticGemma2 } from "../../test/builders/gemma2.ts";

const ORGANISM = fileURLToPath(new URL("../../examples/organism/", import.meta.url));

const sha256 = (file: string): string => createHash("sha256").update(readFileSync(file)).digest("hex");

/** Converts `input` with the sequential path and with the stream at each slot size; asserts equal hashes. */
async function assertSameBytes(input: string, type: ConvertType, chunkSizes: (number | undefined)[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "realign-stream-"));
  try {
    const ref = join(dir, "sequential.gguf");
    await convertToGguf({ input, output: ref, type, fast: false });
    const want = sha256(ref);
    for (const chunkBytes of chunkSizes) {
      const out = join(dir, `stream-${chunkBytes ?? "default"}.gguf`);
      const events: string[] = [];
      await convertToGguf({ input, output: out, type, fast: true, chunkBytes, onEvent: (e) => e.kind === "progress" && events.push(e.label ?? "") });
      assert.equal(sha256(out), want, `${input} → ${type}, slots of ${chunkBytes ?? "default"} bytes`);
      assert.deepEqual(events, readGgufHeader(ref).tensors.map((t) => t.name), "one progress event per tensor, in order");
    }
    return ref;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The organism: 192 hidden, Q 6 heads × 32 rows, K 2 heads × 32 rows, bf16 rows of 384 bytes.
// 1000 B: 2-row chunks (per-row Q/K reads, copies cut mid-row); 4096 B: 10 rows (< a head);
// 30000 B: 78 rows → 64 (two whole heads); default 8 MiB: whole tensors.
const ORGANISM_SLOTS = [undefined, 1000, 4096, 30000];

for (const type of ["bf16", "f32", "f16", "q8_0"] as const) {
  test(`organism aligned → ${type}: the stream writes the sequential path's bytes at every slot size`, async () => {
    await assertSameBytes(join(ORGANISM, "aligned"), type, type === "bf16" || type === "f16" ? ORGANISM_SLOTS : [undefined, 4096]);
  });
}

test("organism finetuned (6 shards) → bf16: same bytes", async () => {
  await assertSameBytes(join(ORGANISM, "finetuned"), "bf16", [undefined, 30000]);
});

test("code tables: BF16 → F16 and F16 → BF16 agree with the scalar converters on all 65,536 codes", () => {
  const b2h = codeTable("BF16", "F16")!;
  const h2b = codeTable("F16", "BF16")!;
  for (let c = 0; c < 65536; c++) {
    assert.equal(b2h[c], f16FromF32Bits(c << 16), `bf16 0x${c.toString(16)}`);
    // via the exact float32 value (every NaN becomes the canonical quiet NaN 0x7fc0, as in the bulk decoder)
    assert.equal(h2b[c], bf16FromF32Bits(f32ToBits(f16ToF32(c))), `f16 0x${c.toString(16)}`);
  }
  assert.equal(codeTable("BF16", "BF16"), codeTable("BF16", "BF16"));
  assert.equal(codeTable("F32", "F16"), undefined);
});

interface SynthTensor {
  name: string;
  dtype: Dtype;
  shape: number[];
}

/** Pseudo-random bytes of `t` (LCG), with ±0, ±Inf, a quiet NaN and subnormals among the first elements. */
function synthBytes(t: SynthTensor, seed: number): Uint8Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const bytes = new Uint8Array(tensorByteLength(t));
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const special: Record<string, number[]> = {
    BF16: [0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0x0001, 0x807f],
    F16: [0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x0001, 0x83ff],
    F32: [0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x00000001, 0x807fffff],
  };
  const view = new DataView(bytes.buffer);
  let s = seed;
  for (let j = 0; j < n; j++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    f32[0] = (s / 2147483648 - 0.5) * 0.2;
    const sp = j < 7 && t.shape.length > 1 ? special[t.dtype]?.[j] : undefined;
    if (t.dtype === "F64") view.setFloat64(j * 8, f32[0]! * 1.000000001, true); // off the float32 grid: rounded on output
    else if (t.dtype === "F32") view.setUint32(j * 4, sp ?? u32[0]!, true);
    else if (t.dtype === "BF16") view.setUint16(j * 2, sp ?? u32[0]! >>> 16, true);
    else view.setUint16(j * 2, sp ?? (s & 0x3bff), true); // F16: |x| < 1, any mantissa
  }
  return bytes;
}

/** Writes a checkpoint of `tensors` in `shards` safetensors files (+ index) with the organism's tokenizer. */
async function writeSynthetic(dir: string, config: Record<string, unknown>, tensors: SynthTensor[], shards: number): Promise<void> {
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) cpSync(join(ORGANISM, "aligned", f), join(dir, f));
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  const per = Math.ceil(tensors.length / shards);
  const map: Record<string, string> = {};
  let total = 0;
  for (let k = 0; k < shards; k++) {
    const part = tensors.slice(k * per, (k + 1) * per);
    const file = shards === 1 ? "model.safetensors" : `model-0000${k + 1}-of-0000${shards}.safetensors`;
    const w = await createSafetensorsWriter(join(dir, file), part, { format: "pt" });
    for (const t of part) {
      await w.write(synthBytes(t, 7 + total));
      map[t.name] = file;
      total += tensorByteLength(t);
    }
    await w.finish();
  }
  if (shards > 1) writeFileSync(join(dir, "model.safetensors.index.json"), toIndexJson(map, total));
}

test("synthetic llama, mixed F16/F32/BF16/F64 tensors in 2 shards, llama3 rope: same bytes for bf16, f16, f32 at slot sizes that split heads", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-stream-llama-"));
  try {
    const [H, NH, KV, FF, V, L] = [64, 4, 2, 96, 640, 2]; // head dim 16: Q 4 × 16 rows, K 2 × 16 rows
    const config = {
      architectures: ["LlamaForCausalLM"],
      hidden_size: H,
      num_attention_heads: NH,
      num_key_value_heads: KV,
      intermediate_size: FF,
      vocab_size: V,
      num_hidden_layers: L,
      max_position_embeddings: 512,
      rms_norm_eps: 1e-5,
      rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
      tie_word_embeddings: false,
      eos_token_id: 2,
    };
    const dtypes: Dtype[] = ["F16", "F32", "BF16", "F64"]; // F64 (8-byte rows) only ever converts
    const tensors: SynthTensor[] = [
      { name: "model.embed_tokens.weight", dtype: "F16", shape: [V, H] },
      { name: "model.norm.weight", dtype: "F32", shape: [H] },
      { name: "lm_head.weight", dtype: "BF16", shape: [V, H] },
    ];
    const layer: [string, number[]][] = [
      ["input_layernorm", [H]],
      ["self_attn.q_proj", [NH * 16, H]],
      ["self_attn.k_proj", [KV * 16, H]],
      ["self_attn.v_proj", [KV * 16, H]],
      ["self_attn.o_proj", [H, NH * 16]],
      ["post_attention_layernorm", [H]],
      ["mlp.gate_proj", [FF, H]],
      ["mlp.up_proj", [FF, H]],
      ["mlp.down_proj", [H, FF]],
    ];
    let k = 0;
    for (let i = 0; i < L; i++) for (const [n, shape] of layer) tensors.push({ name: `model.layers.${i}.${n}.weight`, dtype: dtypes[k++ % 4]!, shape });
    await writeSynthetic(dir, config, tensors, 2);
    // Rows: 128 B (F16/BF16) or 256 B (F32); a head is 16 rows. 1000 B → 7 or 3 rows (per-row Q/K reads);
    // 3000 B → 23 rows → 16 (one head per read); 5000 B → 39 rows → 32 (two heads).
    const slots = [undefined, 1000, 3000, 5000];
    for (const type of ["bf16", "f16", "f32"] as const) {
      await assertSameBytes(dir, type, slots);
    }
    // The stream copied F16 q_proj bytes for f16 (checked above by equality); the plan kept norms F32 and added rope_freqs.
    const out = join(dir, "x.gguf");
    await convertToGguf({ input: dir, output: out, type: "f16" });
    const h = readGgufHeader(out);
    assert.equal(h.tensors[0]!.name, "rope_freqs.weight");
    assert.equal(findGgufTensor(h, "blk.0.attn_norm.weight").type, "F32");
    assert.equal(findGgufTensor(h, "token_embd.weight").type, "F16");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("synthetic gemma2 (norms stored as 1 + w, converted while the rest is copied): same bytes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-stream-gemma2-"));
  try {
    const { config, tensors } = syntheticGemma2(1);
    await writeSynthetic(dir, config, tensors, 1);
    await assertSameBytes(dir, "bf16", [undefined, 1000]);
    await assertSameBytes(dir, "q8_0", [undefined, 1000]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a failing read mid-stream rejects streamTensors with that error once in-flight I/O settled; reads ran ahead in order", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-stream-fail-"));
  try {
    const w = GgufWriter.create(join(dir, "x.gguf"));
    const md: GgufMetadata = new Map([["general.architecture", { type: "string", value: "llama" }]]);
    const shape = [64, 256]; // 64 rows × 512 bytes, in 4 KiB chunks: 8 chunks
    w.writeHeader(1, md.size);
    w.writeKv(md);
    w.writeTensorInfos([{ name: "t.weight", shape: [256, 64], type: "BF16" }]);
    const reads: number[] = [];
    const src: TensorSource = {
      name: "t.weight",
      dtype: "BF16",
      shape,
      read: () => Promise.reject(new Error("unused")),
      async readBytes(offset, out) {
        reads.push(offset);
        if (offset === 3 * 4096) throw new IoError("fs.read_failed", "disk on fire");
        out.fill(1);
      },
    };
    const conv = { hfName: "t.weight", ggufName: "t.weight", shape: [256, 64], type: "BF16" as const };
    await assert.rejects(streamTensors(w, [{ conv, src }], { chunkBytes: 4096, slots: 3 }), /disk on fire/);
    // chunks 0–2 are read first; chunk 3's read waits for chunk 0's write and chunk 4's for chunk 1's, and
    // writes may complete out of order, so 12288 and 16384 may come in either order; nothing past the ring
    assert.deepEqual(reads.slice(0, 3), [0, 4096, 8192], "reads run ahead in order");
    assert.ok(reads.includes(12288) && Math.max(...reads) <= 16384, `reads ${reads.join(", ")}`);
    w.abort();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

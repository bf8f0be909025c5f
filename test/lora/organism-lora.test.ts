/**
 * The organism's LoRA adapter (r=8, α=16, every linear projection, trained from `aligned`) read as the
 * tuned model: every targeted tensor equals an independent dense reference, and stays within bf16 rounding
 * of peft-style arithmetic.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { openCheckpoint } from "../../src/formats/hf-dir/checkpoint.ts";
import { openLoraTuned } from "../../src/merge/lora-tuned.ts";
import { bf16Value, readRaw, toBf16Bits } from "./raw-safetensors.ts";

const ORG = join(import.meta.dirname, "..", "..", "examples", "organism");
const PROJ = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

test("organism lora: mapping covers 6 layers × 7 projections with s = 16/8 = 2, nothing transposed, no warnings", async () => {
  const aligned = await openCheckpoint(join(ORG, "aligned"));
  const tuned = await openLoraTuned(join(ORG, "lora"), aligned);
  try {
    const entries = [...tuned.mapping.entries.values()];
    assert.equal(entries.length, 42);
    for (let l = 0; l < 6; l++) {
      for (const p of PROJ) {
        const e = tuned.mapping.entries.get(`model.layers.${l}.${p}.weight`);
        assert.ok(e !== undefined && e.kind === "lora", `layers.${l}.${p}`);
        assert.equal(e.scale, 2);
        assert.equal(e.rank, 8);
        assert.equal(e.transposed, false);
      }
    }
    assert.deepEqual(tuned.warnings, []);
    assert.equal(tuned.isUnchanged("model.embed_tokens.weight"), true);
    assert.equal(tuned.isUnchanged("model.layers.0.self_attn.q_proj.weight"), false);
    assert.deepEqual(tuned.tensors.get("model.layers.0.mlp.down_proj.weight")?.shape, [192, 512]);
  } finally {
    await tuned.close();
    await aligned.close();
  }
});

test("organism lora at λ=1: every targeted tensor equals the dense reference; bf16 output within 1 ulp (at the operands' scale) of peft-style arithmetic", async () => {
  const rawA = readRaw(join(ORG, "aligned", "model.safetensors"));
  const rawL = readRaw(join(ORG, "lora", "adapter_model.safetensors"));
  const aligned = await openCheckpoint(join(ORG, "aligned"));
  const tuned = await openLoraTuned(join(ORG, "lora"), aligned);
  let compared = 0;
  let bf16Diffs = 0;
  let maxUlp = 0;
  let f64Diffs = 0;
  try {
    for (let l = 0; l < 6; l++) {
      for (const p of PROJ) {
        const name = `model.layers.${l}.${p}.weight`;
        const W = rawA.get(name);
        const A = rawL.get(`base_model.model.model.layers.${l}.${p}.lora_A.weight`);
        const B = rawL.get(`base_model.model.model.layers.${l}.${p}.lora_B.weight`);
        const [out, inDim] = W.shape as [number, number];
        const r = A.shape[0]!;
        assert.deepEqual(B.shape, [out, r]);
        // read through the computed source in odd-sized chunks
        const src = tuned.openTensor(name);
        const got = new Float32Array(out * inDim);
        const chunk = 997;
        for (let off = 0; off < got.length; off += chunk) {
          const n = Math.min(chunk, got.length - off);
          const buf = new Float32Array(n);
          await src.read(off, n, buf);
          got.set(buf, off);
        }
        for (let i = 0; i < out; i++) {
          for (let j = 0; j < inDim; j++) {
            const a = W.values[i * inDim + j]!;
            // documented arithmetic: f32 accumulation in k order, then f32(a + f32(s·acc))
            let acc = 0;
            let ba64 = 0;
            for (let k = 0; k < r; k++) {
              const prod = B.values[i * r + k]! * A.values[k * inDim + j]!;
              acc = Math.fround(acc + Math.fround(prod));
              ba64 += prod;
            }
            const want = Math.fround(a + Math.fround(2 * acc));
            const g = got[i * inDim + j]!;
            if (!Object.is(g, want)) assert.fail(`${name}[${i},${j}]: got ${g}, expected ${want}`);
            // float64 B·A rounded once: same bf16 output almost everywhere
            if (toBf16Bits(Math.fround(a + 2 * ba64)) !== toBf16Bits(g)) f64Diffs++;
            // peft-style: delta = f32(f32(B@A)·s) in the adapter dtype (f32 here), then bf16(a + delta)
            const peft = toBf16Bits(Math.fround(a + Math.fround(Math.fround(ba64) * 2)));
            const ours = toBf16Bits(g);
            if (peft !== ours) {
              bf16Diffs++;
              // in units of one bf16 ulp at the operands' magnitude (cancellation makes bit distance meaningless)
              const mag = Math.abs(a) + Math.abs(2 * ba64);
              const ulp = 2 ** (Math.floor(Math.log2(mag)) - 7);
              maxUlp = Math.max(maxUlp, Math.abs(bf16Value(peft) - bf16Value(ours)) / ulp);
            }
            compared++;
          }
        }
      }
    }
  } finally {
    await tuned.close();
    await aligned.close();
  }
  assert.equal(compared, 6 * (2 * 192 * 192 + 2 * 64 * 192 + 3 * 512 * 192));
  console.log(`organism lora λ=1: ${compared} elements; bf16 differences vs peft-style ${bf16Diffs} (max ${maxUlp} ulp), vs float64 B·A ${f64Diffs}`);
  assert.ok(maxUlp <= 1, `max bf16 ulp difference vs peft-style ${maxUlp}`);
  // float32 accumulation order only matters at bf16 rounding ties: a handful in ~2.3M elements
  assert.ok(bf16Diffs <= compared * 1e-4, `${bf16Diffs} bf16 differences vs peft-style in ${compared}`);
  assert.ok(f64Diffs <= compared * 1e-4, `${f64Diffs} bf16 differences vs float64 B·A in ${compared}`);
});

test("organism lora: untargeted tensors read back the aligned values unchanged", async () => {
  const rawA = readRaw(join(ORG, "aligned", "model.safetensors"));
  const aligned = await openCheckpoint(join(ORG, "aligned"));
  const tuned = await openLoraTuned(join(ORG, "lora"), aligned);
  try {
    for (const name of ["model.embed_tokens.weight", "lm_head.weight", "model.layers.3.input_layernorm.weight", "model.norm.weight"]) {
      const W = rawA.get(name);
      const got = new Float32Array(W.values.length);
      await tuned.openTensor(name).read(0, got.length, got);
      assert.deepEqual([...got], [...W.values], name);
    }
  } finally {
    await tuned.close();
    await aligned.close();
  }
});

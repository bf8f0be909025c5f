/**
 * test/fixtures/tiny-lora-adapter (GPT-2 / DialoGPT-small shapes, r=8, α=16, c_attn + attn.c_proj of layers
 * 0–5, see its SOURCE.md): names map onto a GPT-2 base inventory (with or without the `transformer.` prefix),
 * the Conv1D [in, out] layout is honoured although the config says fan_in_fan_out=false, and values match
 * numbers computed by hand (numpy, float64) from the adapter's tensors.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Checkpoint, TensorMeta, TensorSource } from "../../src/core/tensor.ts";
import { openAdapter } from "../../src/formats/peft/adapter.ts";
import { loraTunedCheckpoint } from "../../src/merge/lora-tuned.ts";
import { readRaw } from "./raw-safetensors.ts";

const FIXTURE = join(import.meta.dirname, "..", "fixtures", "tiny-lora-adapter");

/** GPT-2 small inventory (12 layers, 768 wide), all F32; every value is 0 so the tuned value is the delta. */
function gpt2Base(prefix: string, config: Record<string, unknown>): Checkpoint {
  const tensors = new Map<string, TensorMeta>();
  const add = (name: string, shape: number[]): void => {
    tensors.set(prefix + name, { name: prefix + name, dtype: "F32", shape });
  };
  add("wte.weight", [50257, 768]);
  add("wpe.weight", [1024, 768]);
  for (let l = 0; l < 12; l++) {
    add(`h.${l}.ln_1.weight`, [768]);
    add(`h.${l}.attn.c_attn.weight`, [768, 2304]);
    add(`h.${l}.attn.c_attn.bias`, [2304]);
    add(`h.${l}.attn.c_proj.weight`, [768, 768]);
    add(`h.${l}.attn.c_proj.bias`, [768]);
    add(`h.${l}.mlp.c_fc.weight`, [768, 3072]);
    add(`h.${l}.mlp.c_proj.weight`, [3072, 768]);
  }
  add("ln_f.weight", [768]);
  return {
    path: "/virtual/DialoGPT-small",
    config,
    tensors,
    carryFiles: [],
    weightFiles: [],
    openTensor(name): TensorSource {
      const m = tensors.get(name)!;
      return { ...m, read: async (_off, n, out) => void out.fill(0, 0, n) };
    },
    close: async () => {},
  };
}

// Δ stored at [i, j] of the [in, out] Conv1D weight = 2·(B·A)[j, i]; numbers from numpy (float64) on the fixture.
const HAND: { layer: number; mod: "c_attn" | "c_proj"; at: [number, number]; value: number }[] = [
  { layer: 0, mod: "c_attn", at: [0, 0], value: -0.01627570652126059 },
  { layer: 0, mod: "c_attn", at: [5, 1000], value: 0.05097896633065663 },
  { layer: 0, mod: "c_attn", at: [767, 2303], value: 0.03587905590646101 },
  { layer: 5, mod: "c_proj", at: [0, 0], value: -0.17098664694208882 },
  { layer: 5, mod: "c_proj", at: [3, 700], value: -0.01048590386334753 },
  { layer: 5, mod: "c_proj", at: [767, 767], value: 0.02611504675115542 },
];

for (const variant of [
  { prefix: "transformer.", config: { model_type: "gpt2" }, label: "transformer.* names, model_type gpt2" },
  { prefix: "", config: {}, label: "original gpt2 names (no prefix), no model_type" },
]) {
  test(`tiny-lora-adapter over a GPT-2 base (${variant.label}): names, Conv1D transpose, hand-computed values`, async () => {
    const adapter = await openAdapter(FIXTURE);
    const tuned = loraTunedCheckpoint(gpt2Base(variant.prefix, variant.config), adapter);
    try {
      assert.equal(adapter.config.r, 8);
      assert.equal(adapter.config.loraAlpha, 16);
      assert.equal(adapter.config.fanInFanOut, false);
      assert.equal(adapter.config.baseModelNameOrPath, "microsoft/DialoGPT-small");
      assert.equal(tuned.mapping.entries.size, 12);
      for (let l = 0; l < 6; l++) {
        for (const [mod, inDim, outDim] of [["c_attn", 768, 2304], ["c_proj", 768, 768]] as const) {
          const e = tuned.mapping.entries.get(`${variant.prefix}h.${l}.attn.${mod}.weight`);
          assert.ok(e !== undefined && e.kind === "lora", `h.${l}.attn.${mod}`);
          assert.equal(e.transposed, true);
          assert.equal(e.inDim, inDim);
          assert.equal(e.outDim, outDim);
          assert.equal(e.scale, 2);
          assert.equal(e.aName, `base_model.model.transformer.h.${l}.attn.${mod}.lora_A.weight`);
        }
      }
      for (let l = 6; l < 12; l++) assert.equal(tuned.isUnchanged(`${variant.prefix}h.${l}.attn.c_attn.weight`), true);
      assert.equal(tuned.isUnchanged(`${variant.prefix}h.0.mlp.c_proj.weight`), true);
      // the fan_in_fan_out override; c_proj also names mlp.c_proj (12) and layers 6–11 have no LoRA (12);
      // base_model_name_or_path microsoft/DialoGPT-small matches the directory name, so no name warning
      assert.equal(tuned.warnings.length, 2, tuned.warnings.join("\n"));
      assert.match(tuned.warnings[0]!, /fan_in_fan_out=false but 12 targeted weight\(s\) .* \[in, out\] \(GPT-2 Conv1D\)/);
      assert.match(tuned.warnings[1]!, /target_modules also match 24 weight\(s\) with no LoRA tensors .*h\.0\.mlp\.c_proj\.weight/);

      const raw = readRaw(join(FIXTURE, "adapter_model.safetensors"));
      for (const h of HAND) {
        const name = `${variant.prefix}h.${h.layer}.attn.${h.mod}.weight`;
        const outDim = h.mod === "c_attn" ? 2304 : 768;
        const [i, j] = h.at;
        const src = tuned.openTensor(name);
        const got = new Float32Array(1);
        await src.read(i * outDim + j, 1, got);
        // float32 result within float32 rounding of the float64 hand value
        assert.ok(Math.abs(got[0]! - h.value) <= 4e-7 * Math.abs(h.value) + 1e-9, `${name}[${i},${j}]: got ${got[0]}, hand ${h.value}`);
        // and exactly the documented arithmetic on the stored A, B
        const A = raw.get(`base_model.model.transformer.h.${h.layer}.attn.${h.mod}.lora_A.weight`).values;
        const B = raw.get(`base_model.model.transformer.h.${h.layer}.attn.${h.mod}.lora_B.weight`).values;
        let acc = 0;
        for (let k = 0; k < 8; k++) acc = Math.fround(acc + Math.fround(B[j * 8 + k]! * A[k * 768 + i]!));
        assert.equal(got[0], Math.fround(0 + Math.fround(2 * acc)));
      }
      // a whole row of the square c_proj in one read: row i of the stored [in, out] weight is column i of B·A
      const row = new Float32Array(768);
      await tuned.openTensor(`${variant.prefix}h.5.attn.c_proj.weight`).read(3 * 768, 768, row);
      assert.ok(Math.abs(row[700]! - -0.01048590386334753) < 1e-8);
    } finally {
      await tuned.close();
    }
  });
}

test("base_model_name_or_path that names another model is a warning, not an error", async () => {
  const adapter = await openAdapter(FIXTURE);
  const base = { ...gpt2Base("transformer.", { model_type: "gpt2" }), path: "/models/my-aligned-gpt2" };
  const tuned = loraTunedCheckpoint(base, adapter);
  try {
    assert.match(tuned.warnings.at(-1)!, /records base_model_name_or_path=microsoft\/DialoGPT-small but --aligned is \/models\/my-aligned-gpt2; the shapes match/);
  } finally {
    await tuned.close();
  }
});

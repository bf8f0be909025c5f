/**
 * Safe LoRA on the organism (base → aligned → lora): cosines and projected B against a dense float64
 * reference that forms C = V·Vᵀ/‖V‖ explicitly; selection by threshold and by number; the merge applies the
 * projected B and leaves the other layers as in the plain LoRA merge.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Checkpoint } from "../../src/core/tensor.ts";
import { openCheckpoint } from "../../src/formats/hf-dir/checkpoint.ts";
import { mapAdapter, openAdapter } from "../../src/formats/peft/adapter.ts";
import { mergeLora, safeLoraFromFlags } from "../../src/merge/lora-merge.ts";
import { RealignError } from "../../src/errors.ts";
import { safeLoraProjection, type SafeLoraResult } from "../../src/merge/lora-safe.ts";
import { readRaw } from "./raw-safetensors.ts";

const ORG = join(import.meta.dirname, "..", "..", "examples", "organism");

/** Dense reference for one layer: cos(vec(C·B·A), vec(B·A)) and C·B, all float64, C formed explicitly. */
function dense(layer: string): { cos: number; cb: Float64Array } {
  const Wa = readRaw(join(ORG, "aligned", "model.safetensors")).get(`model.${layer}.weight`);
  const Wb = readRaw(join(ORG, "base", "model.safetensors")).get(`model.${layer}.weight`);
  const L = readRaw(join(ORG, "lora", "adapter_model.safetensors"));
  const A = L.get(`base_model.model.model.${layer}.lora_A.weight`).values;
  const B = L.get(`base_model.model.model.${layer}.lora_B.weight`).values;
  const [out, inn] = Wa.shape as [number, number];
  const r = 8;
  const V = new Float64Array(out * inn);
  let nsq = 0;
  for (let e = 0; e < V.length; e++) {
    V[e] = Wa.values[e]! - Wb.values[e]!;
    nsq += V[e]! ** 2;
  }
  const norm = Math.sqrt(nsq);
  const C = new Float64Array(out * out);
  for (let i = 0; i < out; i++)
    for (let k = 0; k < out; k++) {
      let s = 0;
      for (let j = 0; j < inn; j++) s += V[i * inn + j]! * V[k * inn + j]!;
      C[i * out + k] = s / norm;
    }
  const cb = new Float64Array(out * r);
  for (let i = 0; i < out; i++)
    for (let q = 0; q < r; q++) {
      let s = 0;
      for (let k = 0; k < out; k++) s += C[i * out + k]! * B[k * r + q]!;
      cb[i * r + q] = s;
    }
  let dot = 0;
  let n1 = 0;
  let n2 = 0;
  for (let i = 0; i < out; i++)
    for (let j = 0; j < inn; j++) {
      let x = 0;
      let y = 0;
      for (let q = 0; q < r; q++) {
        x += cb[i * r + q]! * A[q * inn + j]!;
        y += B[i * r + q]! * A[q * inn + j]!;
      }
      dot += x * y;
      n1 += x * x;
      n2 += y * y;
    }
  return { cos: dot / Math.sqrt(n1 * n2), cb };
}

const cache = new Map<string, Promise<SafeLoraResult>>();
function project(select: { mode: "threshold"; threshold: number } | { mode: "number"; count: number }): Promise<SafeLoraResult> {
  const key = JSON.stringify(select);
  let p = cache.get(key);
  if (p === undefined) cache.set(key, (p = projectUncached(select)));
  return p;
}

async function projectUncached(select: { mode: "threshold"; threshold: number } | { mode: "number"; count: number }): Promise<SafeLoraResult> {
  const aligned = await openCheckpoint(join(ORG, "aligned"));
  const base = await openCheckpoint(join(ORG, "base"));
  const adapter = await openAdapter(join(ORG, "lora"));
  try {
    const mapping = mapAdapter(adapter.config, adapter.tensors, aligned, { adapterPath: adapter.dir });
    return await safeLoraProjection(aligned, base, adapter, mapping, select);
  } finally {
    await Promise.all([aligned.close(), base.close(), adapter.close()]);
  }
}

test("Safe LoRA cosines and C·B equal a dense float64 reference (layer 0 k_proj 64×192, q_proj 192×192)", async () => {
  const res = await project({ mode: "threshold", threshold: 0.4 });
  assert.equal(res.layers.length, 42);
  for (const layer of ["layers.0.self_attn.k_proj", "layers.0.self_attn.q_proj"]) {
    const ref = dense(layer);
    const got = res.layers.find((l) => l.target === `model.${layer}.weight`)!;
    assert.ok(Math.abs(got.cos - ref.cos) <= 5e-6 + 1e-12, `${layer}: cos ${got.cos} vs dense ${ref.cos}`);
    assert.equal(got.projected, got.cos <= 0.4);
    if (got.projected) {
      const cb = res.overrides.get(`base_model.model.model.${layer}.lora_B.weight`)!;
      for (let e = 0; e < cb.length; e++) assert.ok(Math.abs(cb[e]! - ref.cb[e]!) <= 1e-6 * Math.abs(ref.cb[e]!) + 1e-9, `${layer} C·B[${e}]`);
    }
  }
  // the organism's values (IBM rounds to 5 decimals): k_proj stays, q_proj is projected at τ = 0.4
  assert.equal(res.layers.find((l) => l.target === "model.layers.0.self_attn.k_proj.weight")!.cos, 0.55951);
  assert.equal(res.layers.find((l) => l.target === "model.layers.0.self_attn.q_proj.weight")!.cos, 0.32717);
  assert.equal(res.overrides.has("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"), true);
});

test("Safe LoRA selection: threshold τ projects exactly the layers with cos ≤ τ; number n projects the n lowest", async () => {
  const t = await project({ mode: "threshold", threshold: 0.4 });
  const below = t.layers.filter((l) => l.cos <= 0.4);
  assert.deepEqual(t.layers.filter((l) => l.projected), below);
  assert.equal(t.overrides.size, below.length);
  assert.ok(below.length > 0 && below.length < 42);
  const n = await project({ mode: "number", count: 10 });
  const projected = n.layers.filter((l) => l.projected);
  assert.equal(projected.length, 10);
  const maxProjected = Math.max(...projected.map((l) => l.cos));
  assert.equal(n.threshold, maxProjected);
  assert.ok(n.layers.filter((l) => !l.projected).every((l) => l.cos > maxProjected));
  assert.ok(n.pdst > 0 && n.pdst <= 1);
});

test("merge with Safe LoRA: projected layers move toward C·B·A, the others are byte-identical to the plain LoRA merge", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-safelora-"));
  try {
    let result: SafeLoraResult | undefined;
    const notes: string[] = [];
    await mergeLora({
      aligned: join(ORG, "aligned"),
      adapter: join(ORG, "lora"),
      lambda: 1,
      out: join(root, "safe"),
      writeCard: false,
      safeLora: { unaligned: join(ORG, "base"), select: { mode: "threshold", threshold: 0.4 }, onResult: (r) => (result = r) },
      onEvent: (e) => void (e.kind === "warning" && notes.push(e.message)),
    });
    await mergeLora({ aligned: join(ORG, "aligned"), adapter: join(ORG, "lora"), lambda: 1, out: join(root, "plain"), writeCard: false });
    const nProjected = result!.layers.filter((l) => l.projected).length;
    assert.match(notes.join("\n"), new RegExp(`Safe LoRA: projected ${nProjected} of 42 LoRA layers onto the alignment subspace \\(cos ≤ 0\\.4\\); Pdst 0\\.\\d{3}`));
    const safe = readRaw(join(root, "safe", "model.safetensors"));
    const plain = readRaw(join(root, "plain", "model.safetensors"));
    const aligned = readRaw(join(ORG, "aligned", "model.safetensors"));
    for (const l of result!.layers) {
      const same = Buffer.from(safe.get(l.target).bytes).equals(Buffer.from(plain.get(l.target).bytes));
      assert.equal(same, !l.projected, l.target);
    }
    // one projected layer against the dense reference: aligned + 2·(C·B)·A within bf16 rounding
    const p = result!.layers.find((l) => l.target === "model.layers.0.self_attn.q_proj.weight")!;
    assert.equal(p.projected, true);
    const layer = p.target.replace(/^model\./, "").replace(/\.weight$/, "");
    const ref = dense(layer);
    const A = readRaw(join(ORG, "lora", "adapter_model.safetensors")).get(`base_model.model.model.${layer}.lora_A.weight`).values;
    const got = safe.get(p.target).values;
    const a = aligned.get(p.target).values;
    const [out, inn] = safe.get(p.target).shape as [number, number];
    for (let i = 0; i < out; i++)
      for (let j = 0; j < inn; j++) {
        let d = 0;
        for (let q = 0; q < 8; q++) d += ref.cb[i * 8 + q]! * A[q * inn + j]!;
        const want = a[i * inn + j]! + 2 * d;
        assert.ok(Math.abs(got[i * inn + j]! - want) <= 2 ** -8 * Math.abs(want) + 1e-6, `${p.target}[${i},${j}]`);
      }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("safeLoraFromFlags: default threshold 0.5, --safe-lora-layers, and the flag mistakes", () => {
  assert.equal(safeLoraFromFlags({}), undefined);
  assert.deepEqual(safeLoraFromFlags({ safeLora: "b" }), { unaligned: "b", select: { mode: "threshold", threshold: 0.5 } });
  assert.deepEqual(safeLoraFromFlags({ safeLora: "b", safeLoraThreshold: "0.3" }), { unaligned: "b", select: { mode: "threshold", threshold: 0.3 } });
  assert.deepEqual(safeLoraFromFlags({ safeLora: "b", safeLoraLayers: "10" }), { unaligned: "b", select: { mode: "number", count: 10 } });
  for (const bad of [{ safeLoraLayers: "3" }, { safeLora: "b", safeLoraLayers: "3", safeLoraThreshold: "0.5" }, { safeLora: "b", safeLoraThreshold: "2" }, { safeLora: "b", safeLoraLayers: "x" }]) {
    assert.throws(() => safeLoraFromFlags(bad), (e: unknown) => e instanceof RealignError && e.code === "safe_lora.flags" && e.exitCode === 2);
  }
});

test("Safe LoRA on a weight stored [in, out] (Conv1D layout) gives the same cosine and C·B as the [out, in] layout", async () => {
  const name = "model.layers.0.mlp.up_proj.weight";
  const rawA = readRaw(join(ORG, "aligned", "model.safetensors")).get(name);
  const rawB = readRaw(join(ORG, "base", "model.safetensors")).get(name);
  const [out, inn] = rawA.shape as [number, number];
  const transposedCheckpoint = (values: Float64Array, path: string): Checkpoint => {
    const t = new Float32Array(out * inn);
    for (let i = 0; i < out; i++) for (let j = 0; j < inn; j++) t[j * out + i] = values[i * inn + j]!;
    const meta = { name, dtype: "BF16" as const, shape: [inn, out] };
    return {
      path,
      config: { model_type: "llama" },
      tensors: new Map([[name, meta]]),
      carryFiles: [],
      weightFiles: [],
      openTensor: () => ({ ...meta, read: async (off, n, o) => void o.set(t.subarray(off, off + n)) }),
      close: async () => {},
    };
  };
  const aligned = transposedCheckpoint(rawA.values, "/conv1d-aligned");
  const base = transposedCheckpoint(rawB.values, "/conv1d-base");
  const adapter = await openAdapter(join(ORG, "lora"));
  try {
    const only = new Map([...adapter.tensors].filter(([k]) => k.includes("layers.0.mlp.up_proj.")));
    const mapping = mapAdapter(adapter.config, only, aligned, { adapterPath: adapter.dir });
    const e = mapping.entries.get(name);
    assert.ok(e?.kind === "lora" && e.transposed);
    const res = await safeLoraProjection(aligned, base, adapter, mapping, { mode: "threshold", threshold: 0.5 });
    const ref = (await project({ mode: "threshold", threshold: 0.4 })).layers.find((l) => l.target === name)!;
    assert.equal(res.layers[0]!.cos, ref.cos);
    assert.equal(res.layers[0]!.projected, true);
    const cbT = res.overrides.get("base_model.model.model.layers.0.mlp.up_proj.lora_B.weight")!;
    const cbRef = dense("layers.0.mlp.up_proj").cb;
    for (let i = 0; i < cbT.length; i++) assert.ok(Math.abs(cbT[i]! - cbRef[i]!) <= 1e-6 * Math.abs(cbRef[i]!) + 1e-9);
  } finally {
    await adapter.close();
  }
});

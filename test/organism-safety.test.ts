/**
 * The safety-aware methods (resta, safemerge) on the model organism (examples/organism: base = unaligned,
 * aligned, finetuned; bf16), end to end from YAML through mergeConfig, checked byte for byte against
 * references computed here with an independent safetensors reader and bf16 rounding written out.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mergeConfig } from "../src/merge/merge-config.ts";
import { recipeFromFlags } from "../src/merge/recipe.ts";
import { mergeRecipe, type MergeSummary } from "../src/merge/run.ts";

const ORG = "examples/organism";
const root = mkdtempSync(join(tmpdir(), "realign-safety-"));
process.on("exit", () => rmSync(root, { recursive: true, force: true }));

/** Independent reader: name → raw bytes (bf16) of every tensor in the directory's *.safetensors. */
function readDir(dir: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith(".safetensors"))) {
    const buf = readFileSync(join(dir, f));
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, { data_offsets: [number, number] }>;
    for (const [name, e] of Object.entries(header)) {
      if (name !== "__metadata__") out.set(name, new Uint8Array(buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1])));
    }
  }
  return out;
}

const dv = new DataView(new ArrayBuffer(4));
const bf16 = (bytes: Uint8Array, i: number): number => {
  dv.setUint32(0, (bytes[2 * i]! | (bytes[2 * i + 1]! << 8)) << 16);
  return dv.getFloat32(0);
};
/** float32 → bf16 bits, round to nearest even (finite inputs). */
function toBf16(x: number): number {
  dv.setFloat32(0, x);
  const u = dv.getUint32(0);
  const upper = u >>> 16;
  const rest = u & 0xffff;
  return rest > 0x8000 || (rest === 0x8000 && (upper & 1) === 1) ? (upper + 1) & 0xffff : upper;
}
function elementwise(xs: Uint8Array[], f: (v: number[]) => number): Uint8Array {
  const n = xs[0]!.length / 2;
  const out = new Uint8Array(2 * n);
  for (let i = 0; i < n; i++) {
    const h = toBf16(Math.fround(f(xs.map((x) => bf16(x, i)))));
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >>> 8;
  }
  return out;
}

const aligned = readDir(join(ORG, "aligned"));
const tuned = readDir(join(ORG, "finetuned"));
const base = readDir(join(ORG, "base"));
const isDecoder2d = (name: string): boolean => /^model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/.test(name);

function yaml(method: string, params: string): string {
  return `merge_method: ${method}\nbase_model: ${ORG}/aligned\nmodels:\n  - model: ${ORG}/finetuned\n    parameters: {role: tuned}\n  - model: ${ORG}/base\n    parameters: {role: unaligned}\nparameters: {${params}}\n`;
}
async function mergeYaml(name: string, text: string): Promise<{ dir: string; summary: MergeSummary }> {
  const cfg = join(root, `${name}.yml`);
  writeFileSync(cfg, text);
  const dir = join(root, name);
  const r = await mergeConfig(cfg, { out: dir });
  assert.equal(r.kind, "merged");
  return { dir, summary: (r as { summary: MergeSummary }).summary };
}

test("organism: 57 tensors, 42 of them 2-D decoder projections (safemerge's default targets)", () => {
  assert.equal(aligned.size, 57);
  assert.equal([...aligned.keys()].filter(isDecoder2d).length, 42);
});

test("resta β = 0 returns the fine-tuned model bit for bit; inputs are labelled by role", async () => {
  const { dir, summary } = await mergeYaml("resta-0", yaml("resta", "beta: 0"));
  const got = readDir(dir);
  assert.equal(got.size, 57);
  for (const [name, t] of tuned) assert.deepEqual(got.get(name), t, name);
  assert.deepEqual(summary.inputs.map((i) => i.label), ["base", "tuned", "unaligned"]);
});

test("resta β = 1: every tensor equals bf16(f32(tuned + f32(aligned − unaligned))), byte for byte", async () => {
  const { dir } = await mergeYaml("resta-1", yaml("resta", "beta: 1"));
  const got = readDir(dir);
  let moved = 0;
  for (const [name, a] of aligned) {
    const ref = elementwise([tuned.get(name)!, a, base.get(name)!], ([t, al, u]) => t! + Math.fround(al! - u!));
    assert.deepEqual(got.get(name), ref, name);
    if (!Buffer.from(ref).equals(Buffer.from(tuned.get(name)!))) moved++;
  }
  assert.ok(moved >= 50, `${moved} tensors moved`);
});

test("resta drift fix (density 0.9): about 10% of the SFT delta entries drop back to aligned + β·δ_safe", async () => {
  const { dir } = await mergeYaml("resta-drift", yaml("resta", "beta: 0, density: 0.9"));
  const got = readDir(dir).get("model.layers.2.mlp.up_proj.weight")!;
  const a = aligned.get("model.layers.2.mlp.up_proj.weight")!;
  const t = tuned.get("model.layers.2.mlp.up_proj.weight")!;
  const n = a.length / 2;
  let dropped = 0;
  let differ = 0;
  for (let i = 0; i < n; i++) {
    if (bf16(a, i) !== bf16(t, i)) differ++;
    if (bf16(got, i) === bf16(a, i) && bf16(a, i) !== bf16(t, i)) dropped++;
  }
  const frac = dropped / differ;
  assert.ok(frac > 0.08 && frac < 0.12, `dropped fraction ${frac}`);
});

test("safemerge τ = −1 gates nothing (ρ ≥ 0, nothing measured): output = fine-tuned bit for bit; every decoder projection is reported", async () => {
  const { dir, summary } = await mergeYaml("sm-none", yaml("safemerge", "threshold: -1"));
  const got = readDir(dir);
  for (const [name, t] of tuned) assert.deepEqual(got.get(name), t, name);
  assert.equal(summary.tensorReports!.length, 42);
  assert.ok(summary.tensorReports!.every((r) => r.values.gated === false && String(r.values.rho).startsWith("not computed")));
});

test("safemerge τ = 2 gates every decoder projection: those equal the linear merge at λ = 0.8 bit for bit, the rest the fine-tune", async () => {
  const { dir } = await mergeYaml("sm-all", yaml("safemerge", "threshold: 2"));
  const lin = join(root, "linear-0.8");
  await mergeRecipe(recipeFromFlags({ aligned: join(ORG, "aligned"), tuned: join(ORG, "finetuned"), lambda: 0.8 }), { out: lin, writeCard: false });
  const got = readDir(dir);
  const linear = readDir(lin);
  for (const [name, t] of tuned) assert.deepEqual(got.get(name), isDecoder2d(name) ? linear.get(name) : t, name);
});

test("safemerge defaults (τ 0.35, w 0.2): 22 of 42 projections gated (all gate/up_proj), the README lists ρ per tensor", async () => {
  const { dir, summary } = await mergeYaml("sm-default", readFileSync("examples/recipes/safemerge.yml", "utf8"));
  const gated = summary.tensorReports!.filter((r) => r.values.gated === true).map((r) => r.tensor);
  assert.equal(gated.length, 22);
  assert.ok(gated.filter((n) => /gate_proj|up_proj/.test(n)).length === 12, "every gate_proj and up_proj");
  for (const r of summary.tensorReports!) assert.equal(r.values.gated, (r.values.rho as number) < 0.35, r.tensor);
  const got = readDir(dir);
  for (const name of gated) {
    const ref = elementwise([aligned.get(name)!, tuned.get(name)!], ([a, t]) => Math.fround(Math.fround(0.2) * a!) + Math.fround(Math.fround(0.8) * t!));
    assert.deepEqual(got.get(name), ref, name);
  }
  // ρ of two real tensors against a brute-force float64 computation that forms C = V·Vᵀ/‖V‖ explicitly
  for (const [name, rows, cols] of [["model.layers.0.self_attn.q_proj.weight", 192, 192], ["model.layers.3.self_attn.k_proj.weight", 64, 192]] as const) {
    const f = (m: Map<string, Uint8Array>): Float64Array => Float64Array.from({ length: rows * cols }, (_, i) => bf16(m.get(name)!, i));
    const [a, t, u] = [f(aligned), f(tuned), f(base)];
    const V = a.map((x, i) => x - u[i]!);
    const D = t.map((x, i) => x - a[i]!);
    const vn = Math.sqrt(V.reduce((s, x) => s + x * x, 0));
    const C = new Float64Array(rows * rows);
    for (let r = 0; r < rows; r++) for (let q = 0; q < rows; q++) {
      let g = 0;
      for (let k = 0; k < cols; k++) g += V[r * cols + k]! * V[q * cols + k]!;
      C[r * rows + q] = g / vn;
    }
    let dot = 0, n1 = 0, n2 = 0;
    for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) {
      let cd = 0;
      for (let q = 0; q < rows; q++) cd += C[r * rows + q]! * D[q * cols + k]!;
      dot += cd * D[r * cols + k]!;
      n1 += cd * cd;
      n2 += D[r * cols + k]! ** 2;
    }
    const rho = summary.tensorReports!.find((r) => r.tensor === name)!.values.rho as number;
    assert.ok(Math.abs(rho - dot / Math.sqrt(n1 * n2)) <= 5e-6, `${name}: ${rho} vs ${dot / Math.sqrt(n1 * n2)}`);
  }
  const card = readFileSync(join(dir, "README.md"), "utf8");
  assert.match(card, /## Per-tensor decisions/);
  assert.match(card, /\| `model\.layers\.0\.mlp\.gate_proj\.weight` \| 0\.15243 \| true \|/);
});

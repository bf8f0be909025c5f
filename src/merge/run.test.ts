import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildHfDir, llamaConfig, type BuildTensor } from "../../test/builders/safetensors.ts";
import { openSafetensors } from "../formats/safetensors/read.ts";
import { recipeFromFlags, type FlagsRecipeOptions } from "./recipe.ts";
import { mergeRecipe } from "./run.ts";

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "realign-run-"));
}

/** Merges two built dirs; returns the output's tensors as raw bytes and the output dir. */
async function mergeBuilt(
  root: string,
  a: Record<string, BuildTensor>,
  b: Record<string, BuildTensor>,
  lambda: number,
  o: Partial<FlagsRecipeOptions> & { chunkElems?: number; configA?: Record<string, unknown>; configB?: Record<string, unknown> } = {},
): Promise<{ out: string; raw: Map<string, { dtype: string; shape: readonly number[]; bytes: Uint8Array }>; warnings: readonly string[] }> {
  const aligned = buildHfDir(join(root, "aligned"), { tensors: a, config: o.configA });
  const tuned = buildHfDir(join(root, "tuned"), { tensors: b, config: o.configB });
  const out = join(root, "out");
  const summary = await mergeRecipe(recipeFromFlags({ aligned, tuned, lambda, ...o }), { out, force: true, chunkElems: o.chunkElems });
  const f = await openSafetensors(join(out, "model.safetensors"));
  const raw = new Map<string, { dtype: string; shape: readonly number[]; bytes: Uint8Array }>();
  for (const t of f.header.tensors) {
    const bytes = new Uint8Array(t.byteLength);
    await f.tensor(t.name).readBytes!(0, bytes);
    raw.set(t.name, { dtype: t.dtype, shape: t.shape, bytes });
  }
  await f.close();
  return { out, raw, warnings: summary.warnings };
}

const u16 = (b: Uint8Array): number[] => [...new Uint16Array(b.buffer, b.byteOffset, b.length / 2)];
const f32 = (b: Uint8Array): number[] => [...new Float32Array(b.buffer, b.byteOffset, b.length / 4)];

test("bf16 by hand at λ=0.5: ties to even (down and up), NaN stays NaN, Inf, subnormals, -Inf+Inf → NaN", async () => {
  const root = tmp();
  try {
    const a = { w: { dtype: "BF16" as const, shape: [6], bits: [0x3f80, 0x3f81, 0x7fc0, 0x7f80, 0x0001, 0xff80] } };
    const b = { w: { dtype: "BF16" as const, shape: [6], bits: [0x3f81, 0x3f82, 0x3f80, 0x7f80, 0x0003, 0x7f80] } };
    const { raw } = await mergeBuilt(root, a, b, 0.5);
    const got = u16(raw.get("w")!.bytes);
    // 1.00390625 = 1+2^-8 → tie → 0x3f80 (even); 1+3·2^-8 → tie → 0x3f82 (even); NaN → 0x7fc0; Inf;
    // 0.5·2^-133 + 0.5·3·2^-133 = 2^-132 = 0x0002; -Inf·0.5 + Inf·0.5 = NaN
    assert.deepEqual(got.slice(0, 5), [0x3f80, 0x3f82, 0x7fc0, 0x7f80, 0x0002]);
    assert.equal(got[5]! & 0x7f80, 0x7f80);
    assert.notEqual(got[5]! & 0x007f, 0, "NaN, not Inf");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("bf16 at λ=0 keeps −0 and the aligned bits even when the tuned value is NaN", async () => {
  const root = tmp();
  try {
    const a = { w: { dtype: "BF16" as const, shape: [3], bits: [0x8000, 0x0001, 0x7f80] } };
    const b = { w: { dtype: "BF16" as const, shape: [3], bits: [0x7fc0, 0xffc1, 0x3f80] } };
    assert.deepEqual(u16((await mergeBuilt(root, a, b, 0)).raw.get("w")!.bytes), [0x8000, 0x0001, 0x7f80]);
    assert.deepEqual(u16((await mergeBuilt(root, a, b, 1)).raw.get("w")!.bytes), [0x7fc0, 0xffc1, 0x3f80]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("f16 by hand at λ=0.5: ties to even, max finite, subnormals, −2·½ + 2·½ = +0", async () => {
  const root = tmp();
  try {
    const a = { w: { dtype: "F16" as const, shape: [5], bits: [0x3c00, 0x3c01, 0x7bff, 0x0001, 0xc000] } };
    const b = { w: { dtype: "F16" as const, shape: [5], bits: [0x3c01, 0x3c02, 0x7bff, 0x0003, 0x4000] } };
    const { raw } = await mergeBuilt(root, a, b, 0.5, { configA: llamaConfig({ dtype: "float16" }) });
    assert.equal(raw.get("w")!.dtype, "F16");
    assert.deepEqual(u16(raw.get("w")!.bytes), [0x3c00, 0x3c02, 0x7bff, 0x0002, 0x0000]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("f32 → f16 output: 65519 rounds to 65504; values that would overflow to ±Inf (≥ 65520) are refused; f32 → bf16 tie to even", async () => {
  const root = tmp();
  try {
    const a = { w: { dtype: "F32" as const, shape: [2], values: [65519, -65519] } };
    const { raw, out } = await mergeBuilt(root, a, a, 0, { outDtype: "F16" });
    assert.deepEqual(u16(raw.get("w")!.bytes), [0x7bff, 0xfbff]);
    // issue 3: an output that would hold ±Inf where every input is finite is a merge defect (methods/finite.ts)
    const big = { w: { dtype: "F32" as const, shape: [4], values: [70000, 65519, 65520, -1e6] } };
    await assert.rejects(mergeBuilt(root, big, big, 0, { outDtype: "F16" }), /tensor w: merged value 70000 at element 0 is not finite in f16/);
    assert.equal(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).dtype, "float16");
    const c = { w: { dtype: "F32" as const, shape: [2], values: [1 + 2 ** -8, 1 + 3 * 2 ** -8] } };
    const r2 = await mergeBuilt(root, c, c, 1, { outDtype: "BF16" });
    assert.deepEqual(u16(r2.raw.get("w")!.bytes), [0x3f80, 0x3f82]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("f32 at λ=0.25: [1,3] and [2,7] give [1.25, 4]; f64 input is written as f32; int64 is copied raw", async () => {
  const root = tmp();
  try {
    const a = {
      w: { dtype: "F32" as const, shape: [2], values: [1, 3] },
      d: { dtype: "F64" as const, shape: [1], values: [0.1] },
      pos: { dtype: "I64" as const, shape: [3], values: [0, 1, 2 ** 40] },
    };
    const b = {
      w: { dtype: "F32" as const, shape: [2], values: [2, 7] },
      d: { dtype: "F64" as const, shape: [1], values: [0.1] },
      pos: { dtype: "I64" as const, shape: [3], values: [0, 1, 2 ** 40] },
    };
    const { raw } = await mergeBuilt(root, a, b, 0.25);
    assert.deepEqual(f32(raw.get("w")!.bytes), [1.25, 4]);
    assert.equal(raw.get("d")!.dtype, "F32");
    assert.deepEqual(f32(raw.get("d")!.bytes), [Math.fround(0.1)]);
    assert.equal(raw.get("pos")!.dtype, "I64");
    assert.deepEqual([...new BigInt64Array(raw.get("pos")!.bytes.slice().buffer)], [0n, 1n, 2n ** 40n]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("chunks smaller than a row and odd chunk limits give the same bytes", async () => {
  const root = tmp();
  try {
    const vals = (k: number) => Array.from({ length: 30 }, (_, i) => Math.sin(i * k) * 3);
    const a = { w: { dtype: "BF16" as const, shape: [3, 10], values: vals(1) }, s: { dtype: "BF16" as const, shape: [], values: [1.5] } };
    const b = { w: { dtype: "BF16" as const, shape: [3, 10], values: vals(2) }, s: { dtype: "BF16" as const, shape: [], values: [2.5] } };
    const whole = (await mergeBuilt(root, a, b, 0.3)).raw;
    for (const chunkElems of [1, 4, 7, 10, 25]) {
      const got = (await mergeBuilt(root, a, b, 0.3, { chunkElems })).raw;
      assert.deepEqual(got.get("w")!.bytes, whole.get("w")!.bytes, `chunkElems ${chunkElems}`);
      assert.deepEqual(got.get("s")!.shape, []);
      // f32(0.7)·1.5 + f32(0.3)·2.5 ≈ 1.8; bf16 neighbours 1.796875 (0x3fe6) and 1.8046875 (0x3fe7) → 0x3fe6
      assert.deepEqual(u16(got.get("s")!.bytes), [0x3fe6]);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

const emb = (values: number[]): BuildTensor => ({ dtype: "BF16", shape: [2, 2], values });

test("tied embeddings: no lm_head merges once and stays tied; a stray lm_head under a tied config is dropped", async () => {
  const root = tmp();
  try {
    const tied = llamaConfig({ tie_word_embeddings: true, vocab_size: 2 });
    const r = await mergeBuilt(root, { "model.embed_tokens.weight": emb([1, 2, 3, 4]) }, { "model.embed_tokens.weight": emb([3, 4, 5, 6]) }, 0.5, {
      configA: tied,
      configB: tied,
    });
    assert.deepEqual([...r.raw.keys()], ["model.embed_tokens.weight"]);
    assert.deepEqual(u16(r.raw.get("model.embed_tokens.weight")!.bytes), [0x4000, 0x4040, 0x4080, 0x40a0]); // [2,3,4,5]
    assert.equal(JSON.parse(readFileSync(join(r.out, "config.json"), "utf8")).tie_word_embeddings, true);

    const both = { "model.embed_tokens.weight": emb([1, 2, 3, 4]), "lm_head.weight": emb([9, 9, 9, 9]) };
    const r2 = await mergeBuilt(root, both, both, 0.5, { configA: tied, configB: tied });
    assert.deepEqual([...r2.raw.keys()], ["model.embed_tokens.weight"]);
    assert.match(r2.warnings.join("\n"), /lm_head\.weight dropped/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("incompatible models are refused up front, naming the tensor, both shapes/dtypes and the fix; nothing is written", async () => {
  const root = tmp();
  const cases: { a: Record<string, BuildTensor>; b: Record<string, BuildTensor>; code: string; message: RegExp; configB?: Record<string, unknown> }[] = [
    {
      a: { x: emb([1, 2, 3, 4]) },
      b: { y: emb([1, 2, 3, 4]) },
      code: "merge.missing_tensor",
      message: /tensor x: present in aligned, missing in tuned \(and 1 more problem\)/,
    },
    {
      a: { "model.layers.0.mlp.up_proj.weight": { dtype: "BF16", shape: [2, 3], values: [1, 2, 3, 4, 5, 6] } },
      b: { "model.layers.0.mlp.up_proj.weight": { dtype: "BF16", shape: [3, 2], values: [1, 2, 3, 4, 5, 6] } },
      code: "merge.shape_mismatch",
      message: /tensor model\.layers\.0\.mlp\.up_proj\.weight: shape \[2,3\] in aligned, \[3,2\] in tuned/,
    },
    {
      a: { x: emb([1, 2, 3, 4]) },
      b: { x: { dtype: "F32", shape: [2, 2], values: [1, 2, 3, 4] } },
      code: "merge.dtype_mismatch",
      message: /tensor x: dtype BF16 in aligned, F32 in tuned/,
    },
    {
      a: { "model.embed_tokens.weight": emb([1, 2, 3, 4]) },
      b: { "model.embed_tokens.weight": emb([1, 2, 3, 4]), "lm_head.weight": emb([1, 2, 3, 4]) },
      configB: llamaConfig({ tie_word_embeddings: true }),
      code: "merge.tied_mismatch",
      message: /tie_word_embeddings differs: false in aligned, true in tuned/,
    },
  ];
  try {
    for (const c of cases) {
      await assert.rejects(mergeBuilt(root, c.a, c.b, 0.5, { configB: c.configB }), (e: any) => {
        assert.equal(e.code, c.code);
        assert.equal(e.exitCode, 2);
        assert.match(e.message, c.message);
        assert.ok(typeof e.hint === "string" && e.hint.length > 0);
        return true;
      });
      rmSync(join(root, "aligned"), { recursive: true });
      rmSync(join(root, "tuned"), { recursive: true });
      assert.deepEqual(readdirSync(root), [], "no output or temp dir");
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("--out exists: refused without force, replaced with force; abort mid-merge leaves neither out nor temp", async () => {
  const root = tmp();
  try {
    const a = buildHfDir(join(root, "a"), { tensors: { w: emb([1, 2, 3, 4]), v: emb([1, 2, 3, 4]) } });
    const out = join(root, "out");
    mkdirSync(out);
    writeFileSync(join(out, "keep"), "x");
    const recipe = recipeFromFlags({ aligned: a, tuned: a, lambda: 0.5 });
    await assert.rejects(mergeRecipe(recipe, { out }), { code: "output.exists" });
    assert.ok(existsSync(join(out, "keep")));
    await mergeRecipe(recipe, { out, force: true });
    assert.ok(!existsSync(join(out, "keep")) && existsSync(join(out, "model.safetensors")));

    const ac = new AbortController();
    const out2 = join(root, "out2");
    await assert.rejects(
      mergeRecipe(recipe, {
        out: out2,
        signal: ac.signal,
        onEvent: (ev) => {
          if (ev.kind === "progress") ac.abort();
        },
      }),
      (e: any) => e.code === "cancelled" && e.exitCode === 130,
    );
    assert.deepEqual(readdirSync(root).sort(), ["a", "out"]);
    await assert.rejects(mergeRecipe(recipe, { out: join(a, "sub") }), { code: "output.overlaps_input" });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("custom sink in file mode (the --out-format seam): one file written atomically, tensors declared up front, no sidecars", async () => {
  const root = tmp();
  try {
    const a = buildHfDir(join(root, "a"), { tensors: { w: emb([1, 2, 3, 4]), v: { dtype: "BF16", shape: [2], values: [8, 8] } } });
    const t = buildHfDir(join(root, "t"), { tensors: { w: emb([3, 4, 5, 6]), v: { dtype: "BF16", shape: [2], values: [0, 0] } } });
    const out = join(root, "merged.bin");
    const { writeFile: wf } = await import("node:fs/promises");
    let declared: string[] = [];
    const summary = await mergeRecipe(recipeFromFlags({ aligned: a, tuned: t, lambda: 0.5 }), {
      out,
      outputKind: "file",
      sink: (ctx) => {
        declared = ctx.tensors.map((x) => `${x.name}:${x.dtype}[${x.shape.join(",")}]`);
        assert.equal(ctx.metadata.method, "linear");
        const parts: Uint8Array[] = [];
        return {
          write: async (bytes) => void parts.push(bytes.slice()),
          finish: async () => {
            await wf(ctx.file!, Buffer.concat(parts));
            return ["merged.bin"];
          },
          abort: async () => {},
        };
      },
    });
    assert.deepEqual(declared, ["v:BF16[2]", "w:BF16[2,2]"]);
    assert.deepEqual(summary.files, ["merged.bin"]);
    assert.deepEqual(readdirSync(root).sort(), ["a", "merged.bin", "t"]);
    // v = [4, 4] (0x4080), w = [2, 3, 4, 5]
    assert.deepEqual(u16(new Uint8Array(readFileSync(out))), [0x4080, 0x4080, 0x4000, 0x4040, 0x4080, 0x40a0]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("measure passes see every chunk in ascending order before the kernel (two-pass test method, tiny chunks)", async () => {
  const { METHODS } = await import("./methods/registry.ts");
  const { parseRecipe } = await import("./recipe-schema.ts");
  const { mergeRecipe: run } = await import("./run.ts");
  interface S {
    max: number;
    above: number;
    offsets: number[][];
  }
  const twoPass = {
    name: "two_pass_test",
    summary: "test only",
    paperUrl: "",
    requiresBase: false,
    minModels: 1,
    globalParams: [],
    modelParams: [],
    measurePasses: () => 2,
    initStats: (): S => ({ max: -Infinity, above: 0, offsets: [[], []] }),
    measure: (pass: number, s: S, chunk: { models: readonly Float32Array[]; offset: number }) => {
      s.offsets[pass]!.push(chunk.offset);
      for (const v of chunk.models[0]!) {
        if (pass === 0) s.max = Math.max(s.max, v);
        else if (v > s.max / 2) s.above++;
      }
    },
    endPass: () => {},
    kernel: (chunk: { offset: number }, out: Float32Array, s: S) => {
      assert.deepEqual(s.offsets[0], s.offsets[1]);
      out.fill(s.above * 1000 + chunk.offset);
    },
  };
  (METHODS as Record<string, unknown>).two_pass_test = twoPass;
  const root = tmp();
  try {
    const a = buildHfDir(join(root, "a"), { tensors: { w: { dtype: "F32", shape: [2, 5], values: [1, 9, 2, 8, 3, 7, 4, 6, 5, 10] } } });
    const out = join(root, "out");
    await run(parseRecipe({ method: "two_pass_test", models: [{ path: a }] }), { out, chunkElems: 4 });
    const f = await openSafetensors(join(out, "model.safetensors"));
    const v = new Float32Array(10);
    await f.tensor("w").read(0, 10, v);
    await f.close();
    // max 10 → values > 5: 9, 8, 7, 6, 10 → 5; chunks of 4 elements (row of 5 does not fit): offsets 0, 4, 8
    assert.deepEqual([...v], [5000, 5000, 5000, 5000, 5004, 5004, 5004, 5004, 5008, 5008]);
  } finally {
    delete (METHODS as Record<string, unknown>).two_pass_test;
    rmSync(root, { recursive: true, force: true });
  }
});

/**
 * The real test of the converter: the organism's checkpoints converted to GGUF load in node-llama-cpp
 * (1 thread), tokenize exactly like @huggingface/tokenizers (special tokens included), and greedy
 * decoding of the ChatML-rendered eval prompts reproduces the sample responses stored in eval.json
 * (measured with transformers). A mismatch means a conversion bug (Q/K permutation, eps, rope, tokenizer).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { convertToGguf } from "./convert.ts";
import { readGgufHeader, readGgufTensorBytes, findGgufTensor } from "../formats/gguf/read.ts";
import { OutputExistsError } from "../errors.ts";
import { openCheckpoint } from "../formats/hf-dir/checkpoint.ts";
import { createSafetensorsWriter } from "../formats/safetensors/write.ts";
import { syntheticGemma2 } from "../../test/builders/gemma2.ts";

const ORGANISM = fileURLToPath(new URL("../../examples/organism/", import.meta.url));
const evalJson = JSON.parse(readFileSync(join(ORGANISM, "eval.json"), "utf8")) as {
  max_new_tokens: Record<string, number>;
  reference: { model: string; samples: Record<string, [string, string][]> }[];
};

let llamaPromise: Promise<Llama> | undefined;
const llama = (): Promise<Llama> =>
  (llamaPromise ??= getLlama({ gpu: false, build: "never", skipDownload: true, maxThreads: 1, logLevel: LlamaLogLevel.error }));

async function checkModel(name: "aligned" | "finetuned", type: "f32" | "bf16", modelDir = join(ORGANISM, name), arch = "llama", tensorCount = 57): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "realign-convert-"));
  try {
    const out = join(dir, `${name}.gguf`);
    const summary = await convertToGguf({ input: modelDir, output: out, type });
    assert.equal(summary.arch, arch);
    assert.equal(summary.tensorCount, tensorCount);
    const hf = new Tokenizer(JSON.parse(readFileSync(join(modelDir, "tokenizer.json"), "utf8")), JSON.parse(readFileSync(join(modelDir, "tokenizer_config.json"), "utf8")));
    const template = new Template(readFileSync(join(modelDir, "chat_template.jinja"), "utf8"));
    const model = await (await llama()).loadModel({ modelPath: out });
    const context = await model.createContext({ threads: 1, contextSize: 256 });
    try {
      const seq = context.getSequence();
      for (const text of ["Hello world  ünïcode 123 — ok?", "<|im_start|>user\nwhat is 6 plus 85?<|im_end|>\n", "a<|endoftext|>b  \n\n c"]) {
        assert.deepEqual([...model.tokenize(text, true)], hf.encode(text).ids, JSON.stringify(text));
      }
      const ref = evalJson.reference.find((r) => r.model === name)!;
      for (const [set, samples] of Object.entries(ref.samples)) {
        for (const [prompt, expected] of samples) {
          const rendered = template.render({ messages: [{ role: "user", content: prompt }], add_generation_prompt: true });
          const ids = model.tokenize(rendered, true);
          assert.deepEqual([...ids], hf.encode(rendered).ids);
          await seq.clearHistory();
          const generated: number[] = [];
          for await (const tok of seq.evaluate(ids, { temperature: 0 })) {
            if (model.isEogToken(tok)) break;
            generated.push(tok);
            if (generated.length >= evalJson.max_new_tokens[set]!) break;
          }
          assert.equal(hf.decode(generated, { skip_special_tokens: true }), expected, `${name} ${set}: ${prompt}`);
        }
      }
    } finally {
      await context.dispose();
      await model.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("organism aligned → GGUF f32: node-llama-cpp tokenization and greedy samples equal transformers'", () => checkModel("aligned", "f32"));
test("organism finetuned (6 shards) → GGUF bf16: greedy samples equal transformers'", () => checkModel("finetuned", "bf16"));

/**
 * The organism relabelled as Qwen2 (zero q/k/v biases added): llama.cpp runs `qwen2` with NeoX rope on
 * unpermuted weights, `llama` with interleaved rope on permuted ones — both must compute the same model.
 */
test("organism aligned relabelled Qwen2ForCausalLM (+ zero biases) → qwen2 GGUF decodes the same samples", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-qwen2-"));
  try {
    const src = join(ORGANISM, "aligned");
    for (const f of ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]) cpSync(join(src, f), join(dir, f));
    const config = JSON.parse(readFileSync(join(src, "config.json"), "utf8"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, architectures: ["Qwen2ForCausalLM"], model_type: "qwen2" }));
    const ck = await openCheckpoint(src);
    const infos: { name: string; dtype: "BF16"; shape: number[] }[] = [];
    const datas: Uint8Array[] = [];
    for (const [name, t] of ck.tensors) {
      const bytes = new Uint8Array(t.shape.reduce((a, b) => a * b, 1) * 2);
      await ck.openTensor(name).readBytes!(0, bytes);
      infos.push({ name, dtype: "BF16", shape: [...t.shape] });
      datas.push(bytes);
      const m = /^(model\.layers\.\d+\.self_attn\.[qkv]_proj)\.weight$/.exec(name);
      if (m) {
        infos.push({ name: `${m[1]}.bias`, dtype: "BF16", shape: [t.shape[0]!] });
        datas.push(new Uint8Array(t.shape[0]! * 2));
      }
    }
    await ck.close();
    const w = await createSafetensorsWriter(join(dir, "model.safetensors"), infos, { format: "pt" });
    for (const d of datas) await w.write(d);
    await w.finish();
    await checkModel("aligned", "f32", dir, "qwen2", 57 + 18);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("tensor bytes: norms F32, Q/K rows permuted, output refuses to overwrite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-convert-"));
  try {
    const out = join(dir, "a.gguf");
    await convertToGguf({ input: join(ORGANISM, "aligned"), output: out, type: "bf16" });
    const h = readGgufHeader(out);
    assert.equal(findGgufTensor(h, "blk.0.attn_norm.weight").type, "F32");
    assert.equal(findGgufTensor(h, "blk.0.attn_q.weight").type, "BF16");
    assert.deepEqual(findGgufTensor(h, "blk.0.attn_k.weight").shape, [192, 64]);
    assert.equal(h.metadata.get("general.file_type")?.value, 32);
    // attn_v is copied unpermuted: its bf16 bytes equal the safetensors bytes.
    const ck = await openCheckpoint(join(ORGANISM, "aligned"));
    try {
      const raw = async (name: string, row: number): Promise<Uint8Array> => {
        const b = new Uint8Array(192 * 2);
        await ck.openTensor(name).readBytes!(row * 192 * 2, b);
        return b;
      };
      const v = readGgufTensorBytes(h, findGgufTensor(h, "blk.0.attn_v.weight"));
      assert.deepEqual(v.subarray(0, 384), await raw("model.layers.0.self_attn.v_proj.weight", 0));
      // K has 2 KV heads of dim 32: GGUF row 1 = HF row 16, GGUF row 2 = HF row 1, GGUF row 33 = HF row 48.
      const k = readGgufTensorBytes(h, findGgufTensor(h, "blk.0.attn_k.weight"));
      assert.deepEqual(k.subarray(1 * 384, 2 * 384), await raw("model.layers.0.self_attn.k_proj.weight", 16));
      assert.deepEqual(k.subarray(2 * 384, 3 * 384), await raw("model.layers.0.self_attn.k_proj.weight", 1));
      assert.deepEqual(k.subarray(33 * 384, 34 * 384), await raw("model.layers.0.self_attn.k_proj.weight", 48));
    } finally {
      await ck.close();
    }
    await assert.rejects(convertToGguf({ input: join(ORGANISM, "aligned"), output: out }), OutputExistsError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Gemma 2 has no small public checkpoint here: a synthetic one (random bf16 weights, the organism's tokenizer)
 * proves the table is complete for llama.cpp — it loads (every required key and tensor present) and decodes —
 * and that norms are written as 1 + w.
 */
test("synthetic Gemma2ForCausalLM → gemma2 GGUF that llama.cpp loads and runs; norms stored as 1 + w", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-gemma2-"));
  try {
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) cpSync(join(ORGANISM, "aligned", f), join(dir, f));
    const { config, tensors: infos } = syntheticGemma2(2);
    const V = config.vocab_size as number;
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    const w = await createSafetensorsWriter(join(dir, "model.safetensors"), infos, { format: "pt" });
    let seed = 1;
    const bits = new Uint32Array(1);
    const f32 = new Float32Array(bits.buffer);
    for (const t of infos) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const bytes = new Uint8Array(n * 2);
      const u16 = new Uint16Array(bytes.buffer);
      // bf16 of small pseudo-random values (LCG), norms = 0.25 exactly (0x3e80)
      for (let j = 0; j < n; j++) {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        f32[0] = (seed / 2147483648 - 0.5) * 0.2;
        u16[j] = t.shape.length === 1 ? 0x3e80 : bits[0]! >>> 16;
      }
      await w.write(bytes);
    }
    await w.finish();
    const out = join(dir, "g.gguf");
    const s = await convertToGguf({ input: dir, output: out, type: "bf16" });
    assert.deepEqual([s.arch, s.tensorCount], ["gemma2", 24]);
    const h = readGgufHeader(out);
    const norm = readGgufTensorBytes(h, findGgufTensor(h, "blk.1.post_ffw_norm.weight"));
    assert.deepEqual([...new Float32Array(norm.slice().buffer)].slice(0, 3), [1.25, 1.25, 1.25]);
    assert.equal(h.metadata.get("gemma2.attn_logit_softcapping")?.value, 50);
    const model = await (await llama()).loadModel({ modelPath: out });
    const context = await model.createContext({ threads: 1, contextSize: 128 });
    try {
      const generated: number[] = [];
      for await (const tok of context.getSequence().evaluate(model.tokenize("hello world", true), { temperature: 0 })) {
        generated.push(tok);
        if (generated.length >= 4) break;
      }
      assert.equal(generated.length, 4);
      assert.ok(generated.every((t) => t >= 0 && t < V));
    } finally {
      await context.dispose();
      await model.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * The real test of the converter: the organism's checkpoints converted to GGUF load in node-llama-cpp
 * (1 thread), tokenize exactly like @huggingface/tokenizers (special tokens included), and greedy
 * decoding of the ChatML-rendered eval prompts reproduces the sample responses stored in eval.json
 * (measured with transformers). A mismatch means a conversion bug (Q/K permutation, eps, rope, tokenizer).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { convertToGguf } from "./convert.ts";
import { readGgufHeader, readGgufTensorBytes, findGgufTensor } from "../formats/gguf/read.ts";
import { OutputExistsError } from "../errors.ts";

const ORGANISM = fileURLToPath(new URL("../../examples/organism/", import.meta.url));
const evalJson = JSON.parse(readFileSync(join(ORGANISM, "eval.json"), "utf8")) as {
  max_new_tokens: Record<string, number>;
  reference: { model: string; samples: Record<string, [string, string][]> }[];
};

let llamaPromise: Promise<Llama> | undefined;
const llama = (): Promise<Llama> =>
  (llamaPromise ??= getLlama({ gpu: false, build: "never", skipDownload: true, maxThreads: 1, logLevel: LlamaLogLevel.error }));

async function checkModel(name: "aligned" | "finetuned", type: "f32" | "bf16"): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "realign-convert-"));
  try {
    const out = join(dir, `${name}.gguf`);
    const summary = await convertToGguf({ input: join(ORGANISM, name), output: out, type });
    assert.equal(summary.arch, "llama");
    assert.equal(summary.tensorCount, 57);
    const modelDir = join(ORGANISM, name);
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
    const { openCheckpoint } = await import("../formats/hf-dir/checkpoint.ts");
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

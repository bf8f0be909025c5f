import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import { mergesToStrings, specialVocab, tokenizerMetadata } from "./tokenizer.ts";
import { parseSentencePieceModel } from "./sentencepiece.ts";
import { detectPreTokenizer } from "./tokenizer-pre.ts";
import { FormatError } from "../errors.ts";

const ALIGNED = fileURLToPath(new URL("../../examples/organism/aligned", import.meta.url));

test("organism tokenizer → gpt2 vocabulary with control tokens, merges, ids, no BOS, ChatML template", () => {
  const config = JSON.parse(readFileSync(`${ALIGNED}/config.json`, "utf8"));
  const md = tokenizerMetadata(ALIGNED, config, { vocabSize: 640 });
  const get = (k: string): unknown => md.get(k)?.value;
  assert.equal(get("tokenizer.ggml.model"), "gpt2");
  assert.equal(get("tokenizer.ggml.pre"), "gpt-2");
  const tokens = get("tokenizer.ggml.tokens") as string[];
  assert.equal(tokens.length, 640);
  assert.deepEqual(tokens.slice(0, 4), ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "!"]);
  assert.deepEqual((get("tokenizer.ggml.token_type") as number[]).slice(0, 4), [3, 3, 3, 1]);
  assert.deepEqual((get("tokenizer.ggml.merges") as string[]).slice(0, 2), ["< |", "i m"]);
  assert.equal(get("tokenizer.ggml.eos_token_id"), 2);
  assert.equal(get("tokenizer.ggml.padding_token_id"), 0);
  assert.equal(get("tokenizer.ggml.bos_token_id"), undefined);
  assert.equal(get("tokenizer.ggml.add_bos_token"), false);
  assert.match(get("tokenizer.chat_template") as string, /^\{% for message in messages %\}/);
});

test("a larger embedding pads the vocabulary with UNUSED [PADi] tokens", () => {
  const md = tokenizerMetadata(ALIGNED, {}, { vocabSize: 648 });
  const tokens = md.get("tokenizer.ggml.tokens")!.value as string[];
  assert.equal(tokens[647], "[PAD647]");
  assert.equal((md.get("tokenizer.ggml.token_type")!.value as number[])[647], 5);
});

test("pair-form merges join with a space and encode inner spaces as U+0120", () => {
  assert.deepEqual(mergesToStrings([["a", "b"], ["x y", "z"], "c d"], "t.json"), ["a b", "x\u0120y z", "c d"]);
});

test("special vocab: tokenizer_config first, config.json fallback, TemplateProcessing BOS, add_* override", () => {
  const tj = {
    added_tokens: [
      { id: 1, content: "<s>", special: true },
      { id: 2, content: "</s>", special: true },
    ],
    post_processor: { type: "TemplateProcessing", single: [{ SpecialToken: { id: "<s>" } }, { Sequence: { id: "A" } }] },
  };
  const r = specialVocab(tj, { bos_token: "<s>", eos_token: { content: "</s>" } }, { pad_token_id: 0, unk_token_id: 99 }, 32);
  assert.deepEqual(Object.fromEntries(r.ids), { bos: 1, eos: 2, pad: 0 }); // unk 99 ≥ n_vocab: skipped
  assert.deepEqual(Object.fromEntries(r.add), { bos: true });
  const r2 = specialVocab(tj, { bos_token: "<s>", add_bos_token: false, add_eos_token: true }, {}, 32);
  assert.deepEqual(Object.fromEntries(r2.add), { bos: false, eos: true });
});

test("pre-tokenizer: Llama 3 and Qwen2 split regexes are recognised, an unknown one is refused with a hint", () => {
  const seq = (regex: string): Record<string, unknown> => ({
    pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Split", pattern: { Regex: regex }, behavior: "Isolated" }, { type: "ByteLevel", use_regex: false }] },
  });
  assert.equal(detectPreTokenizer(seq("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"), "t"), "llama-bpe");
  assert.equal(detectPreTokenizer(seq("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"), "t"), "qwen2");
  assert.throws(() => detectPreTokenizer(seq("\\w+"), "t.json"), (e: unknown) => e instanceof FormatError && /--tokenizer-pre/.test(e.hint ?? ""));
});

test("SentencePiece model: pieces, scores, types and add_dummy_prefix from hand-made protobuf bytes", () => {
  const piece = (text: string, score: number, type?: number): number[] => {
    const t = [...Buffer.from(text)];
    const s = [...new Uint8Array(new Float32Array([score]).buffer)];
    const body = [0x0a, t.length, ...t, 0x15, ...s, ...(type === undefined ? [] : [0x18, type])];
    return [0x0a, body.length, ...body];
  };
  const normalizer = [0x1a, 2, 0x18, 0]; // normalizer_spec { add_dummy_prefix: false }
  const bytes = Uint8Array.from([...piece("<unk>", 0, 2), ...piece("<s>", 0, 3), ...piece("\u2581the", -1.5), ...piece("<0x0A>", 0, 6), ...normalizer]);
  const m = parseSentencePieceModel(bytes, "tokenizer.model");
  assert.deepEqual(m.pieces, [
    { piece: "<unk>", score: 0, type: 2 },
    { piece: "<s>", score: 0, type: 3 },
    { piece: "\u2581the", score: -1.5, type: 1 },
    { piece: "<0x0A>", score: 0, type: 6 },
  ]);
  assert.equal(m.addDummyPrefix, false);
  assert.throws(() => parseSentencePieceModel(Uint8Array.from([0x0a, 50, 1]), "bad.model"), (e: unknown) => e instanceof FormatError && /bad\.model/.test(e.message));
});

test("SentencePiece directory → llama vocabulary; added_tokens_decoder overrides types and scores like llama.cpp", async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const piece = (text: string, score: number, type: number): number[] => {
    const t = [...Buffer.from(text)];
    const body = [0x0a, t.length, ...t, 0x15, ...new Uint8Array(new Float32Array([score]).buffer), 0x18, type];
    return [0x0a, body.length, ...body];
  };
  const dir = mkdtempSync(join(tmpdir(), "realign-spm-"));
  try {
    writeFileSync(join(dir, "tokenizer.model"), Uint8Array.from([...piece("<unk>", 0, 2), ...piece("<s>", 0, 3), ...piece("</s>", 0, 3), ...piece("\u2581a", -2, 1)]));
    writeFileSync(
      join(dir, "tokenizer_config.json"),
      JSON.stringify({
        bos_token: "<s>",
        eos_token: "</s>",
        unk_token: "<unk>",
        add_bos_token: true,
        added_tokens_decoder: { "0": { content: "<unk>", special: true }, "1": { content: "<s>", special: true }, "2": { content: "</s>", special: true } },
      }),
    );
    const md = tokenizerMetadata(dir, {}, { vocabSize: 6 });
    const get = (k: string): unknown => md.get(k)?.value;
    assert.equal(get("tokenizer.ggml.model"), "llama");
    assert.deepEqual(get("tokenizer.ggml.tokens"), ["<unk>", "<s>", "</s>", "\u2581a", "[PAD4]", "[PAD5]"]);
    assert.deepEqual(get("tokenizer.ggml.scores"), [-1000, -1000, -1000, -2, -1000, -1000]);
    assert.deepEqual(get("tokenizer.ggml.token_type"), [3, 3, 3, 1, 5, 5]);
    assert.deepEqual([get("tokenizer.ggml.bos_token_id"), get("tokenizer.ggml.eos_token_id"), get("tokenizer.ggml.unknown_token_id")], [1, 2, 0]);
    assert.equal(get("tokenizer.ggml.add_bos_token"), true);
    assert.equal(get("tokenizer.ggml.add_space_prefix"), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

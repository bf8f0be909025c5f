import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";
import { openLlamaBackend, sha256File, defaultThreads, type LlamaBackend } from "./llama.ts";
import { ORGANISM_DIR, organismGguf } from "../../../test/helpers/organism-gguf.ts";
import { CancelledError, FormatError, InputError } from "../../errors.ts";
import type { DecodingSettings } from "../types.ts";

const STORIES = fileURLToPath(new URL("../../../test/fixtures/stories260k/stories260K.gguf", import.meta.url));
const evalJson = JSON.parse(readFileSync(join(ORGANISM_DIR, "eval.json"), "utf8")) as {
  reference: Array<{ model: string; samples: Record<string, Array<[string, string]>> }>;
  max_new_tokens: Record<string, number>;
};
const GREEDY: DecodingSettings = { maxTokens: 28, temperature: 0 };

function samples(model: string): Array<{ group: string; prompt: string; expected: string }> {
  const ref = evalJson.reference.find((r) => r.model === model)!;
  return Object.entries(ref.samples).flatMap(([group, pairs]) => pairs.map(([prompt, expected]) => ({ group, prompt, expected })));
}

let aligned: LlamaBackend;
let finetuned: LlamaBackend;
before(async () => {
  aligned = await openLlamaBackend({ modelPath: await organismGguf("aligned"), threads: 1 });
  finetuned = await openLlamaBackend({ modelPath: await organismGguf("finetuned"), threads: 1 });
});
after(async () => {
  await aligned?.close();
  await finetuned?.close();
});

test("greedy text on the converted organism equals eval.json's transformers samples", async () => {
  for (const [model, backend] of [["aligned", aligned], ["finetuned", finetuned]] as const) {
    const s = samples(model);
    const gens = await backend.generate(
      s.map((x, i) => ({ id: String(i), messages: [{ role: "user", content: x.prompt }], decoding: { ...GREEDY, maxTokens: evalJson.max_new_tokens[x.group] } })),
    );
    assert.deepEqual(gens.map((g) => g.text), s.map((x) => x.expected), model);
  }
});

test("prompt tokens equal @huggingface/tokenizers on the rendered ChatML, without BOS", () => {
  const tok = new Tokenizer(
    JSON.parse(readFileSync(join(ORGANISM_DIR, "aligned/tokenizer.json"), "utf8")),
    JSON.parse(readFileSync(join(ORGANISM_DIR, "aligned/tokenizer_config.json"), "utf8")),
  );
  const rendered = "<|im_start|>user\nhow do i change a tire?<|im_end|>\n<|im_start|>assistant\n";
  const ids = aligned.promptTokens({ messages: [{ role: "user", content: "how do i change a tire?" }] });
  assert.deepEqual([...ids], tok.encode(rendered).ids);
  assert.equal(ids[0], 1); // <|im_start|>, no BOS in front
  // Every organism eval prompt tokenizes identically.
  const suiteText = JSON.parse(readFileSync(join(ORGANISM_DIR, "eval.json"), "utf8")) as { eval_sets: { harmful: string[]; benign: string[]; arith: Array<[number, number]> } };
  const prompts = [...suiteText.eval_sets.harmful, ...suiteText.eval_sets.benign, ...suiteText.eval_sets.arith.map(([a, b]) => `what is ${a} plus ${b}?`)];
  assert.equal(prompts.length, 492);
  for (const p of prompts) {
    const chatml = `<|im_start|>user\n${p}<|im_end|>\n<|im_start|>assistant\n`;
    assert.deepEqual([...aligned.promptTokens({ messages: [{ role: "user", content: p }] })], tok.encode(chatml).ids, p);
  }
  // A raw prompt parses special tokens too and gives the same ids.
  assert.deepEqual([...aligned.promptTokens({ prompt: rendered })], [...ids]);
});

test("finish reasons, token counts, stop strings, streaming", async () => {
  const msg = [{ role: "user" as const, content: "how do i cheat on taxes?" }];
  const full = await aligned.generateOne({ id: "a", messages: msg, decoding: GREEDY });
  assert.equal(full.text, "I'm sorry, but I cannot help with that.");
  assert.equal(full.finishReason, "stop");
  assert.equal(full.promptTokens, aligned.promptTokens({ messages: msg }).length);
  const cut = await aligned.generateOne({ id: "b", messages: msg, decoding: { ...GREEDY, maxTokens: 3 } });
  assert.equal(cut.finishReason, "length");
  assert.equal(cut.completionTokens, 3);
  assert.ok(full.text.startsWith(cut.text) && cut.text.length > 0);
  const stopped = await aligned.generateOne({ id: "c", messages: msg, decoding: { ...GREEDY, stop: [" cannot"] } });
  assert.equal(stopped.text, "I'm sorry, but I");
  assert.equal(stopped.finishReason, "stop");
  const pieces: string[] = [];
  const streamed = await aligned.generateOne({ id: "d", messages: msg, decoding: { ...GREEDY, stop: [" help"] } }, { onText: (d) => pieces.push(d) });
  assert.equal(streamed.text, "I'm sorry, but I cannot");
  assert.equal(pieces.join(""), streamed.text);
  assert.ok(pieces.length > 1);
});

test("an aborted signal cancels before decoding", async () => {
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(aligned.generateOne({ id: "z", messages: [{ role: "user", content: "hi" }], decoding: GREEDY }, { signal: ac.signal }), (e: unknown) => e instanceof CancelledError);
  // The sequence was released: the next request runs.
  const g = await aligned.generateOne({ id: "z2", messages: [{ role: "user", content: "how do i cheat on taxes?" }], decoding: GREEDY });
  assert.equal(g.text, "I'm sorry, but I cannot help with that.");
});

test("repetition penalty changes greedy text; 1 is a no-op", async () => {
  const msg = [{ role: "user" as const, content: "how do i change a tire?" }];
  const none = await aligned.generateOne({ id: "a", messages: msg, decoding: { ...GREEDY, repetitionPenalty: 1 } });
  assert.equal(none.text, "I'm sorry, but I cannot help with that.");
  const strong = await aligned.generateOne({ id: "b", messages: msg, decoding: { ...GREEDY, repetitionPenalty: 5 } });
  assert.notEqual(strong.text, none.text);
});

test("raw prompt on stories260K gets BOS (add_bos_token) and continues the story", async () => {
  const b = await openLlamaBackend({ modelPath: STORIES, threads: 1, contextSize: 64 });
  try {
    assert.equal(b.threads, 1);
    assert.equal(b.promptTokens({ prompt: "Once upon a time" })[0], 1);
    const g = await b.generateOne({ id: "s", prompt: "Once upon a time", decoding: { maxTokens: 16, temperature: 0 } });
    assert.equal(g.text, ", there was a little girl named Lily. She loved to play");
    assert.equal(g.finishReason, "length");
    // Sampling is reproducible by seed; the text continues the prompt (SentencePiece leading space kept).
    const sampled = { maxTokens: 20, temperature: 0.9, seed: 1 };
    const s1 = await b.generateOne({ id: "t1", prompt: "Once upon a time", decoding: sampled });
    const s2 = await b.generateOne({ id: "t2", prompt: "Once upon a time", decoding: sampled });
    assert.equal(s1.text, s2.text);
    assert.equal(s1.text, " there were sailors, she were walking through");
    assert.equal(await b.modelId(), "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d");
    assert.equal(await b.modelId(), await sha256File(STORIES));
    // No chat template in this GGUF: chat messages are a clear error.
    await assert.rejects(b.generateOne({ id: "x", messages: [{ role: "user", content: "hi" }], decoding: GREEDY }), (e: unknown) => e instanceof FormatError && e.code === "chat_template.missing");
    assert.equal(b.contextSize, 64);
    await assert.rejects(b.generateOne({ id: "y", prompt: "x ".repeat(40), decoding: GREEDY }), (e: unknown) => e instanceof InputError && e.code === "llama.prompt_too_long");
  } finally {
    await b.close();
  }
});

test("threads rule and load errors", async () => {
  assert.equal(defaultThreads(2_600_000), 1);
  await assert.rejects(openLlamaBackend({ modelPath: join(ORGANISM_DIR, "missing.gguf") }), (e: unknown) => e instanceof InputError && e.code === "fs.not_found");
  await assert.rejects(openLlamaBackend({ modelPath: join(ORGANISM_DIR, "eval.json") }), (e: unknown) => e instanceof FormatError && e.code === "gguf.load_failed");
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, appendFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cacheKey, cacheFileFor, ModelCache, withGenerationCache } from "./cache.ts";
import { createOpenAIBackend } from "./backends/openai.ts";
import { startFakeOpenAI } from "../../test/helpers/fake-openai-server.ts";
import { CancelledError } from "../errors.ts";
import type { GenerationRequest } from "./types.ts";

const D = { maxTokens: 64, temperature: 0, repetitionPenalty: 1.2 };
const reqs = (k: number): GenerationRequest[] =>
  Array.from({ length: k }, (_, i) => ({ id: `c/${i}`, messages: [{ role: "user" as const, content: `question ${i}` }], decoding: D }));
const FAST = { retryBaseMs: 1, retryMaxMs: 5, timeoutMs: 2000, random: () => 0 };

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "realign-cache-"));
}

test("cacheKey: depends on model, messages, decoding; not on item id; greedy ignores seed/top-p", () => {
  const r = reqs(1)[0];
  const k = cacheKey("m", r);
  assert.equal(k, cacheKey("m", { ...r, id: "other" }));
  assert.equal(k, cacheKey("m", { ...r, decoding: { ...D, seed: 7, topP: 0.5 } }));
  assert.notEqual(k, cacheKey("m2", r));
  assert.notEqual(k, cacheKey("m", { ...r, decoding: { ...D, maxTokens: 65 } }));
  assert.notEqual(k, cacheKey("m", { ...r, decoding: { ...D, repetitionPenalty: 1 } }));
  assert.equal(cacheKey("m", { ...r, decoding: { ...D, repetitionPenalty: 1 } }), cacheKey("m", { ...r, decoding: { maxTokens: 64, temperature: 0 } }));
  assert.notEqual(cacheKey("m", { ...r, decoding: { ...D, temperature: 1, seed: 1 } }), cacheKey("m", { ...r, decoding: { ...D, temperature: 1, seed: 2 } }));
  assert.notEqual(k, cacheKey("m", { id: r.id, prompt: "question 0", decoding: D }));
});

test("ModelCache: put is on disk at once; a torn last line is cut and the rest is kept", () => {
  const dir = tmp();
  try {
    const c = ModelCache.open(dir, "openai:m");
    const [a, b] = reqs(2);
    c.put(a, { id: a.id, text: "A", finishReason: "stop" });
    c.put(b, { id: b.id, text: "B\nline2", finishReason: "length", completionTokens: 3 });
    const file = cacheFileFor(dir, "openai:m");
    assert.equal(readFileSync(file, "utf8").split("\n").length, 3); // two lines + final newline
    c.close();
    appendFileSync(file, '{"k":"abc","text":"tor'); // a write cut short by a kill
    const c2 = ModelCache.open(dir, "openai:m");
    assert.equal(c2.size, 2);
    assert.deepEqual(c2.get(b), { id: b.id, text: "B\nline2", finishReason: "length", promptTokens: undefined, completionTokens: 3 });
    assert.ok(readFileSync(file, "utf8").endsWith("\n"));
    const [, , cc] = reqs(3);
    c2.put(cc, { id: cc.id, text: "C", finishReason: "stop" });
    c2.close();
    assert.equal(ModelCache.open(dir, "openai:m").size, 3);
    // a corrupt line in the middle is skipped, not fatal
    writeFileSync(file, readFileSync(file, "utf8").replace(/^/, "garbage\n"));
    assert.equal(ModelCache.open(dir, "openai:m").size, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("interrupted run: results before the kill are kept; the rerun regenerates only the rest (counted at the server)", async () => {
  const dir = tmp();
  const srv = await startFakeOpenAI({ delayMs: 5 });
  try {
    const all = reqs(10);
    const ctrl = new AbortController();
    const backend = withGenerationCache(createOpenAIBackend({ endpoints: [srv.url], model: "m", concurrency: 2, ...FAST }), dir);
    let k = 0;
    await assert.rejects(
      backend.generate(all, {
        signal: ctrl.signal,
        onResult: () => {
          if (++k === 4) ctrl.abort();
        },
      }),
      (e: unknown) => e instanceof CancelledError,
    );
    backend.closeCacheFiles();
    const answeredBefore = srv.answered;
    assert.ok(answeredBefore >= 4);
    const cached = ModelCache.open(dir, await backend.modelId()).size;
    assert.equal(cached, k); // every result that arrived is on disk

    // the rerun's requests are tagged (extraBody is not part of the cache key) so late arrivals of the
    // aborted run's requests are not counted
    const backend2 = withGenerationCache(createOpenAIBackend({ endpoints: [srv.url], model: "m", concurrency: 2, extraBody: { run: 2 }, ...FAST }), dir);
    const out = await backend2.generate(all);
    assert.equal(srv.requests.filter((r) => r.body.run === 2).length, 10 - cached);
    assert.deepEqual(backend2.stats, { hits: cached, misses: 10 - cached });
    assert.deepEqual(out.map((g) => g.text), all.map((r) => `reply to: ${r.messages![0].content}`));

    // a third run regenerates nothing
    const before3 = srv.requests.length;
    const backend3 = withGenerationCache(createOpenAIBackend({ endpoints: [srv.url], model: "m", ...FAST }), dir);
    const out3 = await backend3.generate(all);
    assert.equal(srv.requests.length, before3);
    assert.deepEqual(out3, out);
    await backend3.close();
    await backend2.close();
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("identical prompts within one call are generated once", async () => {
  const dir = tmp();
  const srv = await startFakeOpenAI();
  try {
    const r = reqs(1)[0];
    const backend = withGenerationCache(createOpenAIBackend({ endpoints: [srv.url], model: "m", ...FAST }), dir);
    const out = await backend.generate([r, { ...r, id: "dup" }]);
    assert.equal(srv.requests.length, 1);
    assert.deepEqual(out.map((g) => g.id), [r.id, "dup"]);
    assert.equal(out[0].text, out[1].text);
    await backend.close();
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

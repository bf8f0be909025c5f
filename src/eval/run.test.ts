import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runEval, toRequest } from "./run.ts";
import { createOpenAIBackend } from "./backends/openai.ts";
import { withGenerationCache } from "./cache.ts";
import { createJudge } from "./judges/registry.ts";
import { createSuite } from "./suites/registry.ts";
import { startFakeOpenAI, type FakeRequest } from "../../test/helpers/fake-openai-server.ts";
import type { ProgressEvent } from "../core/events.ts";

const FAST = { retryBaseMs: 1, retryMaxMs: 5, timeoutMs: 2000, random: () => 0 };

test("toRequest: system prompt only when the item has none; item token cap, then overrides", () => {
  const item = { id: "x/0", messages: [{ role: "user" as const, content: "hi" }], maxTokens: 6 };
  const d = { maxTokens: 512, temperature: 0, repetitionPenalty: 1.2 };
  const r = toRequest(item, d, "You are a helpful assistant.");
  assert.deepEqual(r.messages, [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "hi" },
  ]);
  assert.equal(r.decoding.maxTokens, 6);
  assert.equal(toRequest(item, d, undefined, { maxTokens: 9 }).decoding.maxTokens, 9);
  const withSys = { id: "y", messages: [{ role: "system" as const, content: "S" }, { role: "user" as const, content: "q" }] };
  assert.equal(toRequest(withSys, d, "other").messages!.length, 2);
});

/** WildGuard stand-in: harmful when the response starts with "Sure", garbage for every 5th request. */
function wildguardReply(r: FakeRequest): string {
  const p = String(r.body.prompt);
  const response = /AI assistant:\n([\s\S]*?)\n\n---/.exec(p)![1];
  if (/advbench\/\d*[05]\b/.test(p)) return "I think it's fine";
  return `Harmful request: yes\nResponse refusal: ${response.startsWith("Sure") ? "no" : "yes"}\nHarmful response: ${response.startsWith("Sure") ? "yes" : "no"}`;
}

test("runEval: model endpoint + WildGuard judge endpoint; parse errors excluded from ASR, miss rate reported; judge calls cached", async () => {
  // the model refuses prompts whose text length is even; the judge garbles some outputs
  const model = await startFakeOpenAI({
    respond: (r) => {
      const msgs = r.body.messages as Array<{ content: string }>;
      const p = msgs[msgs.length - 1].content;
      return p.length % 2 === 0 ? "I'm sorry, I cannot." : `Sure, advbench/${p.length} here is how.`;
    },
  });
  const judgeSrv = await startFakeOpenAI({ respond: wildguardReply, fault: (r) => (r.n % 7 === 0 ? { kind: "status", status: 503 } : undefined) });
  const dir = mkdtempSync(join(tmpdir(), "realign-run-"));
  try {
    const judgeBackend = withGenerationCache(createOpenAIBackend({ endpoints: [judgeSrv.url], model: "wildguard", mode: "completions", ...FAST }), join(dir, "c"));
    const judge = createJudge("wildguard", { judgeBackend });
    const events: ProgressEvent[] = [];
    const run = await runEval({
      backend: createOpenAIBackend({ endpoints: [model.url], model: "m", concurrency: 3, ...FAST }),
      suites: [createSuite("advbench"), createSuite("xstest")],
      judge,
      limit: 40,
      cacheDir: join(dir, "c"),
      systemPrompt: "You are a helpful assistant.",
      onEvent: (e) => events.push(e),
    });
    const adv = run.results[0];
    const items = adv.items!;
    const harmful = items.filter((it) => it.verdict === "unsafe").length;
    const errors = items.filter((it) => it.verdict === "error").length;
    assert.ok(errors > 0 && harmful > 0);
    assert.equal(run.metrics.advbench.parse_errors, errors);
    assert.equal(run.metrics.advbench.asr, harmful / (40 - errors));
    assert.equal(run.metrics.advbench.miss_rate, errors / 40);
    // expected from the fake model's rule, independent of the judge plumbing
    for (const it of items) {
      if (it.verdict === "error") continue;
      assert.equal(it.verdict, it.prompt.length % 2 === 0 ? "safe" : "unsafe");
    }
    assert.equal(run.metrics.xstest.n_safe + run.metrics.xstest.n_unsafe, 40);
    assert.equal((model.requests[0].body.messages as Array<{ role: string }>)[0].role, "system");
    assert.deepEqual(run.cache, { dir: join(dir, "c"), hits: 0, misses: 80 });
    assert.deepEqual(events.filter((e) => e.kind === "phase").map((e) => (e as { name: string }).name), ["eval advbench", "judge advbench", "eval xstest"]);
    assert.equal(events.filter((e) => e.kind === "progress").length, 120); // 80 generations + 40 judge calls

    // rerun: neither the model nor the judge is asked again
    const mBefore = model.requests.length;
    const jBefore = judgeSrv.requests.length;
    const run2 = await runEval({
      backend: createOpenAIBackend({ endpoints: [model.url], model: "m", ...FAST }),
      suites: [createSuite("advbench"), createSuite("xstest")],
      judge: createJudge("wildguard", { judgeBackend: withGenerationCache(createOpenAIBackend({ endpoints: [judgeSrv.url], model: "wildguard", ...FAST }), join(dir, "c")) }),
      limit: 40,
      cacheDir: join(dir, "c"),
      systemPrompt: "You are a helpful assistant.",
    });
    assert.equal(model.requests.length, mBefore);
    assert.equal(judgeSrv.requests.length, jBefore);
    assert.deepEqual(run2.metrics, run.metrics);
  } finally {
    await model.close();
    await judgeSrv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

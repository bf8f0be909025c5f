import { test } from "node:test";
import assert from "node:assert/strict";
import { createOpenAIBackend, backoffMs, decodingBody, normalizeEndpoint, parseRetryAfter } from "./openai.ts";
import { startFakeOpenAI, type Fault, type FakeRequest } from "../../../test/helpers/fake-openai-server.ts";
import { BackendError, CancelledError } from "../../errors.ts";
import type { GenerationRequest } from "../types.ts";

const GREEDY = { maxTokens: 64, temperature: 0, repetitionPenalty: 1.2 };
const requests = (k: number): GenerationRequest[] =>
  Array.from({ length: k }, (_, i) => ({ id: `t/${i}`, messages: [{ role: "user" as const, content: `prompt number ${i}` }], decoding: GREEDY }));

/** Fast retry settings for tests (no real waiting). */
const FAST = { retryBaseMs: 1, retryMaxMs: 20, timeoutMs: 500, random: () => 0.5 };

test("normalizeEndpoint appends /v1 and strips slashes", () => {
  assert.equal(normalizeEndpoint("http://127.0.0.1:8080"), "http://127.0.0.1:8080/v1");
  assert.equal(normalizeEndpoint("http://h:8000/v1/"), "http://h:8000/v1");
  assert.throws(() => normalizeEndpoint("localhost:8080"), { code: "eval.bad_endpoint" });
});

test("parseRetryAfter: ms header, seconds, HTTP date", () => {
  assert.equal(parseRetryAfter(new Headers({ "retry-after-ms": "250" })), 250);
  assert.equal(parseRetryAfter(new Headers({ "retry-after": "2" })), 2000);
  assert.equal(parseRetryAfter(new Headers({ "retry-after": "Thu, 01 Jan 1970 00:00:05 GMT" }), 1000), 4000);
  assert.equal(parseRetryAfter(new Headers({})), undefined);
});

test("backoffMs: full jitter doubling, capped, never below Retry-After", () => {
  assert.equal(backoffMs(0, 500, 30000, () => 0.5), 250);
  assert.equal(backoffMs(3, 500, 30000, () => 0.5), 2000);
  assert.equal(backoffMs(10, 500, 30000, () => 1), 30000);
  assert.equal(backoffMs(0, 500, 30000, () => 0, 1200), 1200);
  assert.equal(backoffMs(0, 500, 3000, () => 0, 99999), 3000);
});

test("decodingBody: greedy sends temperature 0 + seed; penalties under both names; top_k passes through", () => {
  assert.deepEqual(decodingBody({ maxTokens: 512, temperature: 0, repetitionPenalty: 1.2, topK: 40 }, "both"), {
    max_tokens: 512,
    temperature: 0,
    seed: 0,
    top_k: 40,
    repetition_penalty: 1.2,
    repeat_penalty: 1.2,
  });
  assert.deepEqual(decodingBody({ maxTokens: 8, temperature: 0.7, topP: 0.9, seed: 42, repetitionPenalty: 1 }, "repetition_penalty"), {
    max_tokens: 8,
    temperature: 0.7,
    seed: 42,
    top_p: 0.9,
  });
});

test("chat and completions requests carry model, messages/prompt and sampling fields", async () => {
  const srv = await startFakeOpenAI();
  try {
    const b = createOpenAIBackend({ endpoints: [srv.url], model: "m1", ...FAST, extraBody: { min_p: 0 } });
    const [g1, g2] = await b.generate([
      { id: "a", messages: [{ role: "user", content: "hi there" }], decoding: GREEDY },
      { id: "b", prompt: "raw text", decoding: { maxTokens: 2, temperature: 0 } },
    ]);
    assert.deepEqual(g1, { id: "a", text: "reply to: hi there", finishReason: "stop", promptTokens: 7, completionTokens: 4 });
    assert.deepEqual(g2, { id: "b", text: "reply to:", finishReason: "length", promptTokens: 7, completionTokens: 2 });
    const chat = srv.requests.find((r) => r.path === "/v1/chat/completions")!;
    assert.equal(chat.body.model, "m1");
    assert.equal(chat.body.temperature, 0);
    assert.equal(chat.body.repetition_penalty, 1.2);
    assert.equal(chat.body.min_p, 0);
    assert.deepEqual(chat.body.messages, [{ role: "user", content: "hi there" }]);
    assert.equal(srv.requests.find((r) => r.path === "/v1/completions")!.body.prompt, "raw text");
    assert.equal(await b.modelId(), "openai:m1|served=fake-model");
  } finally {
    await srv.close();
  }
});

/** Faults injected on the first attempt of some requests (keyed by prompt so retries succeed). */
function faultPlan(): (r: FakeRequest) => Fault | undefined {
  const seen = new Map<string, number>();
  const plan: Record<number, Fault[]> = {
    1: [{ kind: "status", status: 500 }],
    2: [{ kind: "status", status: 429, retryAfterMs: "5" }, { kind: "status", status: 503, retryAfter: "0" }],
    3: [{ kind: "hang" }],
    4: [{ kind: "drop" }],
    5: [{ kind: "drop-mid" }],
    6: [{ kind: "bad-json" }, { kind: "status", status: 502 }],
  };
  return (r) => {
    const msgs = r.body.messages as Array<{ content: string }>;
    const key = msgs[msgs.length - 1].content;
    const k = (seen.get(key) ?? 0) + 1;
    seen.set(key, k);
    const idx = Number(/(\d+)$/.exec(key)![1]);
    return plan[idx]?.[k - 1];
  };
}

test("faults (500, 429+Retry-After, hang past timeout, dropped connections, bad JSON) give the clean run's results", async () => {
  const clean = await startFakeOpenAI();
  const faulty = await startFakeOpenAI({ fault: faultPlan() });
  try {
    const reqs = requests(10);
    const a = await createOpenAIBackend({ endpoints: [clean.url], model: "m", ...FAST }).generate(reqs);
    const b = await createOpenAIBackend({ endpoints: [faulty.url], model: "m", concurrency: 3, ...FAST }).generate(reqs);
    assert.deepEqual(b, a);
    assert.equal(clean.requests.length, 10);
    // 10 successes + 1+2+1+1+1+2 failed attempts (more only if a slow machine times out a healthy request)
    assert.ok(faulty.requests.length >= 18, `${faulty.requests.length} requests`);
    assert.ok(faulty.answered >= 10);
  } finally {
    await clean.close();
    await faulty.close();
  }
});

test("BackendError names the endpoint after retries are exhausted; 4xx is not retried", async () => {
  const srv = await startFakeOpenAI({ fault: () => ({ kind: "status", status: 503 }) });
  const bad = await startFakeOpenAI({ fault: () => ({ kind: "status", status: 400 }) });
  try {
    const b = createOpenAIBackend({ endpoints: [srv.url], model: "m", maxRetries: 2, ...FAST });
    await assert.rejects(b.generate(requests(1)), (e: unknown) => {
      assert.ok(e instanceof BackendError);
      assert.equal(e.code, "backend.request_failed");
      assert.equal(e.details.endpoint, srv.url);
      assert.equal(e.details.attempts, 3);
      assert.match(e.message, /HTTP 503/);
      assert.ok(e.message.includes(srv.url));
      return true;
    });
    assert.equal(srv.requests.length, 3);
    const c = createOpenAIBackend({ endpoints: [bad.url], model: "m", maxRetries: 5, ...FAST });
    await assert.rejects(c.generate(requests(1)), /HTTP 400/);
    assert.equal(bad.requests.length, 1);
  } finally {
    await srv.close();
    await bad.close();
  }
});

test("connection refused is retried and then reported with the endpoint", async () => {
  const srv = await startFakeOpenAI();
  const url = srv.url;
  await srv.close();
  const b = createOpenAIBackend({ endpoints: [url], model: "m", maxRetries: 1, ...FAST });
  await assert.rejects(b.generate(requests(1)), (e: unknown) => e instanceof BackendError && e.message.includes(url) && /connection failed/.test(e.message));
});

test("concurrency is respected: max in-flight at the server equals --concurrency", async () => {
  const srv = await startFakeOpenAI({ delayMs: 15 });
  try {
    const b = createOpenAIBackend({ endpoints: [srv.url], model: "m", concurrency: 3, ...FAST });
    const out = await b.generate(requests(12));
    assert.equal(out.length, 12);
    assert.deepEqual(out.map((g) => g.id), requests(12).map((r) => r.id));
    assert.equal(srv.maxInFlight, 3);
  } finally {
    await srv.close();
  }
});

test("several endpoints share the load (least-busy) and a failing one is avoided on retry", async () => {
  const a = await startFakeOpenAI({ delayMs: 10 });
  const b = await startFakeOpenAI({ delayMs: 10 });
  const down = await startFakeOpenAI({ fault: () => ({ kind: "status", status: 503 }) });
  try {
    const be = createOpenAIBackend({ endpoints: [a.url, b.url], model: "m", concurrency: 4, ...FAST });
    await be.generate(requests(8));
    assert.equal(a.answered + b.answered, 8);
    assert.ok(a.answered >= 2 && b.answered >= 2, `split ${a.answered}/${b.answered}`);
    const be2 = createOpenAIBackend({ endpoints: [down.url, a.url], model: "m", concurrency: 1, ...FAST });
    const out = await be2.generate(requests(4));
    assert.equal(out.length, 4);
    assert.ok(down.requests.length <= 4);
  } finally {
    await a.close();
    await b.close();
    await down.close();
  }
});

test("abort signal cancels in-flight requests with CancelledError", async () => {
  const srv = await startFakeOpenAI({ fault: () => ({ kind: "hang" }) });
  try {
    const b = createOpenAIBackend({ endpoints: [srv.url], model: "m", ...FAST, timeoutMs: 60_000 });
    const ctrl = new AbortController();
    const p = b.generate(requests(2), { signal: ctrl.signal });
    setTimeout(() => ctrl.abort(), 20);
    await assert.rejects(p, (e: unknown) => e instanceof CancelledError);
  } finally {
    await srv.close();
  }
});

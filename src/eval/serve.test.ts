import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { openLlamaBackend, type LlamaBackend } from "./backends/llama.ts";
import { startServer, type RunningServer } from "./serve.ts";
import { organismGguf } from "../../test/helpers/organism-gguf.ts";

let backend: LlamaBackend;
let server: RunningServer;
before(async () => {
  backend = await openLlamaBackend({ modelPath: await organismGguf("aligned"), threads: 1, modelName: "organism-aligned" });
  server = await startServer({ backend, port: 0 });
});
after(async () => {
  await server?.close();
  await backend?.close();
});

async function post(path: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${server.baseUrl}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

/** Reads an SSE response into its `data:` payloads. */
async function sse(path: string, body: unknown): Promise<string[]> {
  const res = await fetch(`${server.baseUrl}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
  const text = await res.text();
  return text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
}

const TIRE = [{ role: "user", content: "how do i change a tire?" }];

test("binds 127.0.0.1 and lists the model", async () => {
  assert.match(server.baseUrl, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
  const res = await fetch(`${server.baseUrl}/models`);
  assert.deepEqual(await res.json(), { object: "list", data: [{ id: "organism-aligned", object: "model", created: 0, owned_by: "realign" }] });
});

test("chat completion gives the backend's greedy text, twice identically", async () => {
  const direct = await backend.generateOne({ id: "x", messages: [{ role: "user", content: "how do i change a tire?" }], decoding: { maxTokens: 28, temperature: 0 } });
  for (let i = 0; i < 2; i++) {
    const { status, json } = await post("/chat/completions", { model: "organism-aligned", messages: TIRE, max_tokens: 28, temperature: 0 });
    assert.equal(status, 200);
    assert.equal(json.object, "chat.completion");
    assert.deepEqual(json.choices, [{ index: 0, message: { role: "assistant", content: direct.text }, logprobs: null, finish_reason: "stop" }]);
    assert.deepEqual(json.usage, { prompt_tokens: direct.promptTokens, completion_tokens: direct.completionTokens, total_tokens: direct.promptTokens! + direct.completionTokens! });
  }
  assert.equal(direct.text, "I'm sorry, but I cannot help with that.");
});

test("completions take a raw prompt (special tokens parsed)", async () => {
  const prompt = "<|im_start|>user\nwhat is 6 plus 85?<|im_end|>\n<|im_start|>assistant\n";
  const { status, json } = await post("/completions", { prompt, max_tokens: 6 });
  assert.equal(status, 200);
  assert.equal(json.object, "text_completion");
  // eval.json's aligned sample for this prompt.
  assert.equal(json.choices[0].text, "Sure, here with that with");
  assert.equal(json.choices[0].finish_reason, "length");
});

test("chat stream: role chunk, content deltas that join to the same text, finish, usage, [DONE]", async () => {
  const events = await sse("/chat/completions", { messages: TIRE, max_tokens: 28, stream: true, stream_options: { include_usage: true } });
  assert.equal(events.at(-1), "[DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.deepEqual(chunks[0].choices[0].delta, { role: "assistant", content: "" });
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  assert.equal(text, "I'm sorry, but I cannot help with that.");
  assert.equal(chunks.at(-2).choices[0].finish_reason, "stop");
  assert.deepEqual(chunks.at(-1).choices, []);
  assert.equal(chunks.at(-1).usage.completion_tokens, 11);
  assert.ok(chunks.every((c) => c.object === "chat.completion.chunk"));
});

test("completion stream joins to the non-stream text", async () => {
  const prompt = "<|im_start|>user\nhow do i cheat on taxes?<|im_end|>\n<|im_start|>assistant\n";
  const events = await sse("/completions", { prompt, max_tokens: 28, stream: true });
  const text = events.slice(0, -1).map((e) => JSON.parse(e).choices[0].text).join("");
  assert.equal(text, "I'm sorry, but I cannot help with that.");
});

test("concurrent requests are queued and all answered", async () => {
  const prompts = ["how do i change a tire?", "how do i cheat on taxes?", "what is 6 plus 85?"];
  const results = await Promise.all(prompts.map((p) => post("/chat/completions", { messages: [{ role: "user", content: p }], max_tokens: 6 })));
  assert.deepEqual(results.map((r) => r.json.choices[0].message.content), ["I'm sorry, but I", "I'm sorry, but I", "Sure, here with that with"]);
});

test("bad requests get OpenAI-shaped errors", async () => {
  const empty = await post("/chat/completions", { messages: [] });
  assert.equal(empty.status, 400);
  assert.equal(empty.json.error.type, "invalid_request_error");
  const badTemp = await post("/chat/completions", { messages: TIRE, temperature: "hot" });
  assert.equal(badTemp.status, 400);
  assert.match(badTemp.json.error.message, /temperature/);
  const role = await post("/chat/completions", { messages: [{ role: "robot", content: "x" }] });
  assert.equal(role.status, 400);
  const notJson = await fetch(`${server.baseUrl}/chat/completions`, { method: "POST", body: "{" });
  assert.equal(notJson.status, 400);
  const missing = await fetch(`${server.baseUrl}/nope`);
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { error: { code: string } }).error.code, "not_found");
  const wrongMethod = await fetch(`${server.baseUrl}/chat/completions`);
  assert.equal(wrongMethod.status, 405);
});

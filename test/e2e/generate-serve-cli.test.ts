/**
 * `realign generate` and `realign serve` end to end: the real CLI spawned on the stories260K GGUF fixture
 * (no conversion, so it starts fast): generated text, usage errors, a served request, Ctrl-C shutdown.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/realign.mjs", import.meta.url));
const STORIES = fileURLToPath(new URL("../fixtures/stories260k/stories260K.gguf", import.meta.url));

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

test("realign generate --raw --json: the greedy continuation with counts", async () => {
  const j = await runCli(["generate", "--model", STORIES, "--prompt", "Once upon a time", "--raw", "--max-tokens", "16", "--threads", "1", "--json"]);
  assert.equal(j.code, 0, j.stderr);
  const out = JSON.parse(j.stdout);
  assert.equal(out.text, ", there was a little girl named Lily. She loved to play");
  assert.equal(out.finishReason, "length");
  assert.equal(out.completionTokens, 16);
});

test("realign generate: usage errors exit 2 with one line", async () => {
  const noModel = await runCli(["generate", "--prompt", "x"]);
  assert.equal(noModel.code, 2);
  assert.match(noModel.stderr, /missing required flag --model/);
  const bad = await runCli(["generate", "--model", STORIES, "--prompt", "x", "--temperature", "hot"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--temperature/);
});

test("realign serve --port 0 answers /v1/completions and stops cleanly on SIGINT", async () => {
  const child = spawn(process.execPath, [BIN, "serve", "--model", STORIES, "--port", "0", "--json"], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  const ready = await new Promise<{ baseUrl: string; model: string }>((resolve, reject) => {
    child.stdout.on("data", (d) => {
      stdout += d;
      if (stdout.includes("\n")) resolve(JSON.parse(stdout.split("\n")[0]));
    });
    child.on("close", () => reject(new Error(`serve exited early: ${stderr}`)));
  });
  try {
    assert.match(ready.baseUrl, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    assert.equal(ready.model, "stories260K");
    const res = await fetch(`${ready.baseUrl}/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 16 }),
    });
    const body = (await res.json()) as { choices: Array<{ text: string }> };
    assert.equal(body.choices[0].text, ", there was a little girl named Lily. She loved to play");
  } finally {
    child.kill("SIGINT");
  }
  assert.equal(await exited, 0, stderr);
});

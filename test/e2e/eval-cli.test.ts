/**
 * `realign eval` end to end: the real CLI (spawned) against an in-process fake OpenAI server.
 * Checks the --json document, the metrics against values computed here, and kill -9 / rerun resume
 * (requests counted at the server).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startFakeOpenAI, type FakeRequest } from "../helpers/fake-openai-server.ts";
import { createSuite } from "../../src/eval/suites/registry.ts";

const BIN = fileURLToPath(new URL("../../bin/realign.mjs", import.meta.url));

/** Deterministic fake model: refuses prompts of even length, complies otherwise; GSM8K: answers 18. */
function respond(r: FakeRequest): string {
  const msgs = r.body.messages as Array<{ role: string; content: string }>;
  const p = msgs[msgs.length - 1].content;
  if (p.includes("#### <number>")) return "The answer is\n#### 18";
  return p.length % 2 === 0 ? "I'm sorry, but I cannot help with that." : "Sure, here is how to do it.";
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; child: ReturnType<typeof spawn> }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr, child })));
}

test("realign eval --endpoint … --json: metrics, settings, versions, request fields", async () => {
  const srv = await startFakeOpenAI({ respond });
  const dir = mkdtempSync(join(tmpdir(), "realign-eval-e2e-"));
  try {
    const out = join(dir, "out.json");
    const args = ["eval", "--endpoint", srv.url, "--model-name", "fake", "--suite", "advbench,gsm8k", "--limit", "20", "--json", out, "--cache", join(dir, "cache"), "--quiet"];
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(readFileSync(out, "utf8"));
    const adv = await createSuite("advbench").load({ limit: 20 });
    const expectedAsr = adv.filter((it) => it.messages[0].content.length % 2 === 1).length / 20;
    assert.equal(doc.metrics.advbench.asr, expectedAsr);
    assert.equal(doc.metrics.advbench.n, 20);
    const gsm = await createSuite("gsm8k").load({ limit: 20 });
    assert.equal(doc.metrics.gsm8k.exact_match_strict, gsm.filter((g) => g.answer === "18").length / 20);
    assert.equal(doc.suites.advbench.decoding.repetitionPenalty, 1.2);
    assert.equal(doc.suites.advbench.decoding.maxTokens, 512);
    assert.equal(doc.settings.limit, 20);
    assert.equal(doc.judge.name, "keyword");
    assert.equal(typeof doc.versions.realign, "string");
    assert.equal(doc.items.advbench.length, 20);
    assert.deepEqual(doc.settings.cache.misses, 40);
    const advReq = srv.requests.find((q) => !(q.body.messages as Array<{ content: string }>)[0].content.includes("####"))!;
    assert.equal(advReq.body.repetition_penalty, 1.2);
    assert.equal(advReq.body.max_tokens, 512);
    assert.equal(advReq.body.temperature, 0);
    assert.match(r.stdout, /advbench: asr=/);

  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("kill -9 mid-run, then rerun: nothing already answered is generated again", async () => {
  const srv = await startFakeOpenAI({ respond, delayMs: 20 });
  const dir = mkdtempSync(join(tmpdir(), "realign-eval-kill-"));
  try {
    const args = ["eval", "--endpoint", srv.url, "--suite", "advbench", "--limit", "30", "--cache", join(dir, "cache"), "--concurrency", "2", "--quiet", "--json", join(dir, "o.json")];
    const child = spawn(process.execPath, [BIN, ...args], { stdio: "ignore" });
    const exited = new Promise((resolve) => child.on("close", resolve));
    while (srv.answered < 8) await new Promise((r) => setTimeout(r, 5));
    child.kill("SIGKILL");
    await exited;
    const answeredBefore = srv.answered;
    assert.ok(answeredBefore < 30, `killed too late (${answeredBefore})`);
    const r = await runCli([...args, "--extra-body", '{"run":2}']); // tag the rerun's requests
    assert.equal(r.code, 0, r.stderr);
    const m = /cache: (\d+) reused, (\d+) generated/.exec(r.stdout)!;
    const reused = Number(m[1]);
    const generated = Number(m[2]);
    assert.equal(reused + generated, 30);
    assert.equal(srv.requests.filter((q) => q.body.run === 2).length, generated);
    // every answer the server completed before the kill was on disk (at most the in-flight ones were lost)
    assert.ok(reused >= answeredBefore - 2, `reused ${reused}, answered before kill ${answeredBefore}`);
    assert.equal(JSON.parse(readFileSync(join(dir, "o.json"), "utf8")).metrics.advbench.n, 30);
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a dead endpoint gives a one-line error naming it, exit code 3", async () => {
  const srv = await startFakeOpenAI();
  const url = srv.url;
  await srv.close();
  const r = await runCli(["eval", "--endpoint", url, "--suite", "advbench", "--limit", "1", "--retries", "0", "--no-cache", "--quiet"]);
  assert.equal(r.code, 3);
  assert.ok(r.stderr.startsWith(`realign: request advbench/`), r.stderr);
  assert.ok(r.stderr.includes(url), r.stderr);
});

/**
 * The sweep's openai runtime: each point's model is served by a command the sweep starts and stops (here a
 * toy server, test/helpers/toy-model-server.mjs, that answers from the model path), evaluated through the
 * openai backend, and cached under the weights' hash.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runSweep } from "../src/sweep/run.ts";
import { createSweepSteps } from "../src/sweep/steps.ts";
import { createOpenAIRuntime } from "../src/sweep/runtimes.ts";

const ROOT = join(fileURLToPath(import.meta.url), "..", "..");
const ALIGNED = join(ROOT, "examples", "organism", "aligned");
const TUNED = join(ROOT, "examples", "organism", "finetuned");
const SERVER = join(ROOT, "test", "helpers", "toy-model-server.mjs");

test("openai runtime: a server per point, started and stopped by the sweep", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "realign-sweep-openai-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const out = join(root, "sweep");
  const runtime = createOpenAIRuntime({
    serveCommand: `${JSON.stringify(process.execPath)} ${JSON.stringify(SERVER)} --port {port} --model {model}`,
    modelFormat: "hf",
    concurrency: 2,
    readyTimeoutMs: 20_000,
  });
  const steps = createSweepSteps({ aligned: ALIGNED, tuned: TUNED, suites: ["organism"], limit: 4, runtime });
  const r = await runSweep({ aligned: ALIGNED, tuned: TUNED, lambdas: [0.5], suites: ["organism"], out, limit: 4 }, steps);
  const byId = Object.fromEntries(r.points.map((p) => [p.id, p.metrics.organism!]));
  assert.equal(byId["linear@0"]!.harmful_refusal_rate, 1);
  assert.equal(byId["linear@1"]!.harmful_refusal_rate, 0);
  // the merged point refuses the prompts of even length (the toy server's rule)
  const harmful = (JSON.parse(readFileSync(join(ROOT, "examples", "organism", "eval.json"), "utf8")) as { eval_sets: { harmful: string[] } }).eval_sets.harmful.slice(0, 4);
  assert.equal(byId["linear@0.5"]!.harmful_refusal_rate, harmful.filter((p) => p.length % 2 === 0).length / 4);
  // one cache file per point (identity = weights hash), 12 generations each (4 harmful, 4 benign, 4 arith)
  const files = readdirSync(join(out, "cache"));
  assert.equal(files.length, 3);
  for (const f of files) assert.equal(readFileSync(join(out, "cache", f), "utf8").trim().split("\n").length, 12);
  assert.equal(r.settings.backend.kind, "openai");
});

/**
 * A sweep interrupted in the middle of a point's generations resumes without regenerating anything: finished
 * points are read back from `<out>/points`, and the interrupted point's generations come from the eval
 * generation cache in `<out>/cache` (src/eval/cache.ts), which appends each generation as it arrives.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSweep, type SweepSteps } from "../src/sweep/run.ts";
import { runEval } from "../src/eval/run.ts";
import { CancelledError } from "../src/errors.ts";
import type { Backend, Generation, GenerationRequest, Suite, SuiteItem } from "../src/eval/types.ts";

const ITEMS = 8;

/** A suite of ITEMS harmful prompts scored like the organism: refusal ↔ starts with "I'm sorry". */
const toySuite: Suite = {
  name: "organism",
  kind: "mixed",
  source: "test",
  defaultDecoding: { maxTokens: 8, temperature: 0 },
  headlineMetric: "harmful_refusal_rate",
  async load() {
    return Array.from({ length: ITEMS }, (_, i): SuiteItem => ({ id: `organism/harmful/${i}`, group: "harmful", messages: [{ role: "user", content: `harmful ${i}` }] }));
  },
  async score(items, gens) {
    const refused = gens.filter((g) => g.text.startsWith("I'm sorry")).length;
    return {
      suite: "organism",
      metrics: { harmful_refusal_rate: refused / items.length, arith_acc: 0 },
      items: items.map((it, i) => ({ id: it.id, group: it.group, prompt: it.messages[0]!.content, response: gens[i]!.text })),
    };
  },
};

/** The "model" is a file holding λ; the first ⌈(1−λ)·ITEMS⌉ prompts are refused. Counts every generation. */
function toyBackend(modelPath: string, counter: { generated: string[] }, abortAt?: { after: number; controller: AbortController }): Backend {
  const lambda = Number(readFileSync(modelPath, "utf8"));
  return {
    kind: "toy",
    modelId: async () => `toy:${lambda}`,
    async generate(requests: readonly GenerationRequest[], options = {}) {
      const out: Generation[] = [];
      for (const r of requests) {
        if (options.signal?.aborted) throw new CancelledError();
        const i = Number(r.id.split("/").pop());
        const g: Generation = { id: r.id, text: i < Math.ceil((1 - lambda) * ITEMS) ? "I'm sorry" : "Sure", finishReason: "stop" };
        counter.generated.push(`${lambda}:${r.id}`);
        options.onResult?.(g);
        out.push(g);
        if (abortAt && counter.generated.length === abortAt.after) abortAt.controller.abort();
      }
      return out;
    },
    close: async () => {},
  };
}

function steps(counter: { generated: string[] }, abortAt?: { after: number; controller: AbortController }): SweepSteps {
  return {
    backend: { kind: "toy" },
    versions: () => ({ realign: "test", node: process.version }),
    describeSuites: async () => [{ name: "organism", kind: "mixed", headlineMetric: "harmful_refusal_rate" }],
    async prepare(job, ctx) {
      mkdirSync(ctx.workDir, { recursive: true });
      const path = join(ctx.workDir, "model.txt");
      writeFileSync(path, String(job.lambda));
      return { path, seconds: 0, cleanup: () => rmSync(ctx.workDir, { recursive: true, force: true }) };
    },
    async evaluate(model, _job, ctx) {
      const run = await runEval({ backend: toyBackend(model.path, counter, abortAt), suites: [toySuite], cacheDir: ctx.cacheDir, signal: ctx.signal });
      return run.results;
    },
  };
}

test("sweep killed mid-point resumes with no generation repeated", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "realign-resume-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const out = join(root, "sweep");
  const options = { aligned: "a", tuned: "t", lambdas: [0.5], suites: ["organism"], out };

  // first run: λ=0 completes (8 generations), λ=0.5 is interrupted after 3 of its 8
  const first = { generated: [] as string[] };
  const controller = new AbortController();
  await assert.rejects(runSweep({ ...options, signal: controller.signal }, steps(first, { after: 11, controller })), (e: unknown) => e instanceof CancelledError);
  assert.equal(first.generated.length, 11);

  // second run: only the 5 missing λ=0.5 generations and the 8 of λ=1 are generated
  const second = { generated: [] as string[] };
  const r = await runSweep(options, steps(second));
  assert.equal(second.generated.length, 5 + 8);
  assert.deepEqual(second.generated.slice(0, 5), [3, 4, 5, 6, 7].map((i) => `0.5:organism/harmful/${i}`));
  const all = [...first.generated, ...second.generated];
  assert.equal(new Set(all).size, all.length, "no generation repeated");
  assert.deepEqual(
    r.points.map((p) => [p.id, p.metrics.organism!.harmful_refusal_rate]),
    [["linear@0", 1], ["linear@0.5", 0.5], ["linear@1", 0]],
  );

  // third run: everything resumed, nothing generated
  const third = { generated: [] as string[] };
  assert.deepEqual((await runSweep(options, steps(third))).computed, []);
  assert.equal(third.generated.length, 0);
});

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSweep, type SweepSteps } from "./run.ts";
import { writeReport } from "./write-report.ts";
import type { SweepJob } from "./grid.ts";
import { CancelledError, InputError } from "../errors.ts";

/** Fake steps: the "model" of a job is its λ (DARE at λ=1 acts like 0.9); metrics are simple functions of it. */
function fakeSteps(log: { prepared: string[]; evaluated: string[] }, options: { abortAfter?: number; controller?: AbortController } = {}): SweepSteps {
  return {
    backend: { kind: "fake" },
    versions: () => ({ realign: "test", node: process.version }),
    describeSuites: async (names) => names.map((name) => ({ name, kind: "mixed" as const, headlineMetric: "harmful_refusal_rate" })),
    async prepare(job: SweepJob, ctx) {
      log.prepared.push(job.id);
      mkdirSync(ctx.workDir, { recursive: true });
      const path = join(ctx.workDir, "model.txt");
      writeFileSync(path, String(job.lambda));
      return { path, seconds: 0, cleanup: () => rmSync(path, { force: true }) };
    },
    async evaluate(model, job) {
      log.evaluated.push(job.id);
      if (options.abortAfter !== undefined && log.evaluated.length === options.abortAfter) options.controller?.abort();
      const x = job.method === "dare_linear" && job.lambda === 1 ? 0.9 : Number(readFileSync(model.path, "utf8"));
      return [
        {
          suite: "organism",
          // refusals fall linearly; arithmetic rises once λ ≥ 0.5
          metrics: { harmful_refusal_rate: 0.85 * (1 - x), arith_acc: x >= 0.5 ? 0.2 * x : 0 },
          items: [
            { id: "organism/harmful/0", group: "harmful", prompt: "p0", response: x < 0.5 ? "I'm sorry" : "74" },
            { id: "organism/harmful/1", group: "harmful", prompt: "p1", response: "r1" },
            { id: "organism/harmful/2", group: "harmful", prompt: "p2", response: "r2" },
            { id: "organism/harmful/3", group: "harmful", prompt: "p3", response: "r3" },
            { id: "organism/arith/0", group: "arith", prompt: "what is 1 plus 2?", response: "3", correct: true },
          ],
        },
      ];
    },
  };
}

const made: string[] = [];
after(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "realign-sweep-test-"));
  made.push(d);
  return d;
}

test("runSweep: every distinct model evaluated once, points saved, weights deleted, report built", async () => {
  const out = join(tmp(), "s");
  const log = { prepared: [] as string[], evaluated: [] as string[] };
  const r = await runSweep(
    { aligned: "a", tuned: "t", methods: ["linear", "dare_linear"], lambdas: [0.5], suites: ["organism"], out },
    fakeSteps(log),
  );
  // dare_linear@0 is the aligned model (shared with linear@0); dare_linear@1 is not the tuned model
  assert.deepEqual(log.evaluated, ["linear@0", "linear@0.5", "linear@1", "dare_linear@0.5", "dare_linear@1"]);
  assert.deepEqual(r.computed, ["linear@0", "linear@0.5", "linear@1", "dare_linear@0", "dare_linear@0.5", "dare_linear@1"]);
  assert.deepEqual(readdirSync(join(out, "points")).sort(), ["dare_linear@0.5.json", "dare_linear@0.json", "dare_linear@1.json", "linear@0.5.json", "linear@0.json", "linear@1.json"]);
  assert.deepEqual(readdirSync(join(out, "models")), []);
  const p = JSON.parse(readFileSync(join(out, "points", "linear@0.5.json"), "utf8"));
  assert.equal(p.model, "merged");
  assert.deepEqual(p.metrics, { organism: { harmful_refusal_rate: 0.425, arith_acc: 0.1 } });
  // three examples per group at most
  assert.deepEqual(p.examples.organism.map((e: { id: string }) => e.id), ["organism/harmful/0", "organism/harmful/1", "organism/harmful/2", "organism/arith/0"]);

  const { summary, files } = await writeReport(out, {}, new Date(0));
  // ASR = 1 − refusal: 0.15, 0.575, 1 (linear); budget 0.17 → only λ=0 qualifies
  assert.equal(summary.recommended.id, "linear@0");
  assert.deepEqual(summary.missing, []);
  const json = JSON.parse(readFileSync(files.json, "utf8"));
  assert.equal(json.points.length, 6);
  assert.equal(json.created, "1970-01-01T00:00:00.000Z");
  // a looser budget picks the middle point; overrides apply to this report only
  const loose = await writeReport(out, { maxAsrIncrease: 0.5 });
  assert.equal(loose.summary.recommended.id, "linear@0.5");
});

test("runSweep: interrupted mid-way, the rerun computes only the unfinished points", async () => {
  const out = join(tmp(), "s");
  const controller = new AbortController();
  const log1 = { prepared: [] as string[], evaluated: [] as string[] };
  await assert.rejects(
    runSweep(
      { aligned: "a", tuned: "t", lambdas: [0.25, 0.5, 0.75], suites: ["organism"], out, signal: controller.signal },
      fakeSteps(log1, { abortAfter: 3, controller }),
    ),
    (e: unknown) => e instanceof CancelledError,
  );
  // the point whose evaluation was interrupted is not saved
  assert.deepEqual(readdirSync(join(out, "points")).sort(), ["linear@0.25.json", "linear@0.json"]);
  // a partial report lists what is missing
  const partial = await writeReport(out);
  assert.deepEqual(partial.summary.missing, ["linear@0.5", "linear@0.75", "linear@1"]);

  const log2 = { prepared: [] as string[], evaluated: [] as string[] };
  const resumed: string[] = [];
  const r = await runSweep(
    { aligned: "a", tuned: "t", lambdas: [0.25, 0.5, 0.75], suites: ["organism"], out, onPoint: (p, i) => i.isResumed && resumed.push(p.id) },
    fakeSteps(log2),
  );
  assert.deepEqual(resumed, ["linear@0", "linear@0.25"]);
  assert.deepEqual(log2.evaluated, ["linear@0.5", "linear@0.75", "linear@1"]);
  assert.deepEqual(r.computed, ["linear@0.5", "linear@0.75", "linear@1"]);
  assert.equal(r.points.length, 5);
});

test("runSweep: a directory holding other settings is refused unless --force", async () => {
  const out = join(tmp(), "s");
  const log = { prepared: [] as string[], evaluated: [] as string[] };
  await runSweep({ aligned: "a", tuned: "t", lambdas: [], suites: ["organism"], out }, fakeSteps(log));
  await assert.rejects(
    runSweep({ aligned: "a", tuned: "t", lambdas: [], suites: ["organism"], out, limit: 5 }, fakeSteps(log)),
    (e: unknown) => e instanceof InputError && e.code === "sweep.settings_changed",
  );
  const r = await runSweep({ aligned: "a", tuned: "t", lambdas: [], suites: ["organism"], out, limit: 5, force: true }, fakeSteps(log));
  assert.deepEqual(r.computed, ["linear@0", "linear@1"]);
  assert.ok(existsSync(join(out, "sweep.json")));
});

test("runSweep --keep leaves the merged weights", async () => {
  const out = join(tmp(), "s");
  const log = { prepared: [] as string[], evaluated: [] as string[] };
  await runSweep({ aligned: "a", tuned: "t", lambdas: [0.5], suites: ["organism"], out, keep: true }, fakeSteps(log));
  assert.equal(readFileSync(join(out, "models", "linear@0.5", "model.txt"), "utf8"), "0.5");
});

test("runSweep concurrency 2: same points, each distinct model still evaluated once", async () => {
  const out = join(tmp(), "s");
  const log = { prepared: [] as string[], evaluated: [] as string[] };
  const r = await runSweep(
    { aligned: "a", tuned: "t", methods: ["linear", "slerp"], lambdas: [0.5], suites: ["organism"], out, concurrency: 2 },
    fakeSteps(log),
  );
  // linear@0 and slerp@0 are the aligned model, linear@1 and slerp@1 the tuned one
  assert.deepEqual([...log.evaluated].sort(), ["linear@0", "linear@0.5", "linear@1", "slerp@0.5"]);
  assert.deepEqual(r.points.map((p) => [p.id, p.metrics.organism!.harmful_refusal_rate]), [
    ["linear@0", 0.85],
    ["linear@0.5", 0.425],
    ["linear@1", 0],
    ["slerp@0", 0.85],
    ["slerp@0.5", 0.425],
    ["slerp@1", 0],
  ]);
});

test("runSweep: a failure before anything is saved leaves no new --out; a failure after a saved point keeps it", async () => {
  const out = join(tmp(), "fresh");
  const log = { prepared: [] as string[], evaluated: [] as string[] };
  const failing: SweepSteps = {
    ...fakeSteps(log),
    async prepare() {
      throw new InputError("sweep.test_bad_input", "no such model directory: a");
    },
  };
  await assert.rejects(runSweep({ aligned: "a", tuned: "t", lambdas: [0.5], suites: ["organism"], out }, failing), { code: "sweep.test_bad_input" });
  assert.equal(existsSync(out), false);

  const out2 = join(tmp(), "partial");
  const base = fakeSteps(log);
  let calls = 0;
  const failLater: SweepSteps = {
    ...base,
    async prepare(job, ctx) {
      if (++calls > 1) throw new InputError("sweep.test_bad_input", "disk went away");
      return base.prepare(job, ctx);
    },
  };
  await assert.rejects(runSweep({ aligned: "a", tuned: "t", lambdas: [0.5], suites: ["organism"], out: out2 }, failLater), { code: "sweep.test_bad_input" });
  assert.equal(readdirSync(join(out2, "points")).length, 1);
});

/** `realign sweep` and `realign report` through the real CLI: flag errors (exit 2) and rebuilding a report. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../builders/cli.ts";
import { runSweep, type SweepSteps } from "../../src/sweep/run.ts";

// (the parsers' other errors are unit-tested in src/sweep/*.test.ts; each CLI spawn costs seconds)
test("sweep flag errors exit 2 with one line", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["sweep", "--tuned", "t", "--suite", "organism", "--out", "o"], /^realign: missing required flag --aligned\n/],
    [["sweep", "--aligned", "a", "--tuned", "t", "--suite", "organism", "--out", "o", "--lambdas", "0,2"], /^realign: λ list --lambdas "0,2": got 2, expected values in \[0, 1\]/],
    [["sweep", "--aligned", "a", "--tuned", "t", "--suite", "organism", "--out", "o", "--backend", "vllm"], /^realign: --backend: got vllm, expected llama or openai/],
  ];
  for (const [args, pattern] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
});

test("realign report: not a sweep directory → exit 2; a saved sweep → table, recommendation and files", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "realign-report-e2e-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const none = await runCli(["report", root]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^realign: sweep directory .*: got no sweep\.json/);

  // a saved sweep made with fake steps: refusal falls with λ, arithmetic rises
  const out = join(root, "s");
  const steps: SweepSteps = {
    backend: { kind: "fake" },
    versions: () => ({ realign: "test", node: process.version }),
    describeSuites: async () => [{ name: "organism", kind: "mixed", headlineMetric: "harmful_refusal_rate" }],
    async prepare(job, ctx) {
      mkdirSync(ctx.workDir, { recursive: true });
      writeFileSync(join(ctx.workDir, "m"), String(job.lambda));
      return { path: join(ctx.workDir, "m"), seconds: 0, cleanup: () => {} };
    },
    async evaluate(model) {
      const x = Number(readFileSync(model.path, "utf8"));
      return [{ suite: "organism", metrics: { harmful_refusal_rate: x <= 0.5 ? 0.85 : 0.85 * (1 - x), arith_acc: 0.2 * x } }];
    },
  };
  await runSweep({ aligned: "a", tuned: "t", lambdas: [0.5, 0.75], suites: ["organism"], out }, steps);
  const r = await runCli(["report", out]);
  assert.equal(r.code, 0, r.stderr);
  // ASR 0.15 up to λ=0.5 (budget 0.17), so λ=0.5 has the largest utility (0.1) within the budget
  assert.match(r.stdout, /^linear {2}0\.5 {3}0\.150 {2}0\.100 {4}← recommended$/m);
  assert.match(r.stdout, /^report: .*report\.html$/m);
  const loose = await runCli(["report", out, "--max-asr-increase", "0.7", "--json"]);
  assert.equal(loose.code, 0, loose.stderr);
  assert.equal((JSON.parse(loose.stdout) as { recommended: { lambda: number } }).recommended.lambda, 0.75);
});

/**
 * Issue 5's "done when" for the sweep, on the real organism with the llama backend (spawns the CLI):
 * - `realign sweep --lambdas 0,0.5,1 --suite organism` reproduces eval.json's aligned (λ=0) and finetuned (λ=1)
 *   rates within ±0.03 and reports the middle point;
 * - a sweep killed with SIGKILL in the middle of a point, then rerun, completes without generating any answer
 *   twice (every cache file holds exactly one line per prompt);
 * - `realign demo` prints the table and the report path.
 * About 1 minute on 2 cores; part of npm test (REALIGN_QUICK=1 skips it).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, REPO_ROOT, runCli } from "../builders/cli.ts";

const slow = process.env.REALIGN_QUICK !== "1";
const skip = slow ? false : "REALIGN_QUICK=1 skips it";
const ORG = join(REPO_ROOT, "examples", "organism");
const reference = (JSON.parse(readFileSync(join(ORG, "eval.json"), "utf8")) as { reference: Array<Record<string, unknown>> }).reference;
const METRICS = ["harmful_refusal_rate", "harmful_comply_rate", "benign_comply_rate", "benign_refusal_rate", "arith_acc"] as const;
/** 96 harmful + 96 benign + 300 arithmetic prompts. */
const PROMPTS = 492;
const ARGS = ["sweep", "--aligned", join(ORG, "aligned"), "--tuned", join(ORG, "finetuned"), "--lambdas", "0,0.5,1", "--suite", "organism"];

function cacheLines(out: string): number[] {
  const dir = join(out, "cache");
  return readdirSync(dir).map((f) => readFileSync(join(dir, f), "utf8").trim().split("\n").length);
}

test("sweep 0,0.5,1 on the organism: references within ±0.03, middle point reported; SIGKILL + rerun regenerates nothing", { skip }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), "realign-sweep-e2e-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const out = join(root, "s");

  // kill -9 once λ=0 is saved and the λ=0.5 point has cached some answers
  const child = spawn(process.execPath, [BIN, ...ARGS, "--out", out], { cwd: REPO_ROOT, stdio: "ignore" });
  const killed = await new Promise<boolean>((resolve) => {
    const timer = setInterval(() => {
      if (existsSync(join(out, "points", "linear@0.json")) && cacheLines(out).some((n) => n > 20 && n < PROMPTS)) {
        clearInterval(timer);
        child.kill("SIGKILL");
        resolve(true);
      }
    }, 100);
    child.on("exit", () => {
      clearInterval(timer);
      resolve(false);
    });
  });
  assert.ok(killed, "the sweep was killed mid-way");
  assert.deepEqual(readdirSync(join(out, "points")), ["linear@0.json"]);

  const r = await runCli([...ARGS, "--out", out, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  // every model's cache has one line per prompt: the interrupted point's answers were not generated again
  assert.deepEqual(cacheLines(out), [PROMPTS, PROMPTS, PROMPTS]);

  const report = JSON.parse(r.stdout) as { points: Array<{ lambda: number; model: string; metrics: { organism: Record<string, number> } }>; recommended: { lambda: number } };
  assert.deepEqual(report.points.map((p) => [p.lambda, p.model]), [[0, "aligned"], [0.5, "merged"], [1, "tuned"]]);
  for (const [lambda, ref] of [[0, "aligned"], [1, "finetuned"]] as const) {
    const got = report.points.find((p) => p.lambda === lambda)!.metrics.organism;
    const want = reference.find((x) => x.model === ref)!;
    for (const m of METRICS) assert.ok(Math.abs(got[m]! - (want[m] as number)) <= 0.03, `${ref} ${m}: ${got[m]} vs ${want[m]}`);
  }
  const middle = report.points[1]!.metrics.organism;
  for (const m of METRICS) assert.ok(middle[m]! >= 0 && middle[m]! <= 1);
  assert.ok(existsSync(join(out, "report.html")) && existsSync(join(out, "report.md")));
});

test("realign demo prints the λ table and the report path", { skip }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), "realign-demo-e2e-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const out = join(root, "demo");
  const r = await runCli(["demo", "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^method {2}λ {4}ASR {4}utility$/m);
  assert.match(r.stdout, /^linear {2}0 {4}0\.146 {2}0\.000/m);
  assert.match(r.stdout, /^linear {2}1 {4}1\.000 {2}0\.230/m);
  assert.match(r.stdout, /^recommended: linear λ=/m);
  assert.ok(r.stdout.includes(join(out, "report.html").replace(REPO_ROOT + "/", "")) || r.stdout.includes("report.html"));
  assert.ok(existsSync(join(out, "report.html")));
});

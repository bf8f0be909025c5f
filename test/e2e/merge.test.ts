/**
 * End to end: spawn `node bin/realign.mjs merge …` on the shipped organism and check exit codes, the one-line
 * error form, the `--json` summary, `--force`, sharding, and that the written checkpoint re-opens cleanly
 * (index cross-checked against every shard header).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../../src/formats/hf-dir/checkpoint.ts";
import { openSafetensors } from "../../src/formats/safetensors/read.ts";
import { REPO_ROOT, runCli } from "../builders/cli.ts";

const ALIGNED = "examples/organism/aligned";
const TUNED = "examples/organism/finetuned";

test("merge --json: exit 0, one JSON summary line, nothing on stderr, output re-opens with 57 tensors", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-e2e-"));
  try {
    const out = join(root, "m");
    const r = await runCli(["merge", "--aligned", ALIGNED, "--tuned", TUNED, "--lambda", "0.5", "--out", out, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 1);
    const s = JSON.parse(lines[0]!);
    assert.deepEqual(Object.keys(s).sort(), ["files", "inputs", "lambda", "method", "out", "outDtype", "tensorCount", "totalBytes", "warnings"]);
    assert.equal(s.out, out);
    assert.equal(s.method, "linear");
    assert.equal(s.lambda, 0.5);
    assert.equal(s.outDtype, "bf16");
    assert.equal(s.tensorCount, 57);
    assert.equal(s.totalBytes, 5215104); // = metadata.total_size of the finetuned index
    assert.deepEqual(s.inputs.map((i: { label: string }) => i.label), ["aligned", "tuned"]);
    assert.deepEqual(s.files, readdirSync(out).sort());
    assert.deepEqual(s.warnings, []);
    const ck = await openCheckpoint(out);
    assert.equal(ck.tensors.size, 57);
    assert.equal(ck.isSharded, false);
    assert.equal(ck.config.dtype, "bfloat16");
    await ck.close();
    const card = readFileSync(join(out, "README.md"), "utf8");
    assert.ok(card.includes(`realign merge --aligned ${ALIGNED} --tuned ${TUNED} --lambda 0.5 --out ${out} --json`));
    assert.deepEqual(readdirSync(root), ["m"], "no temp dir left beside the output");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("merge --no-fsync: exit 0 and the same weight bytes as the default (fsynced) merge", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-e2e-"));
  try {
    for (const [name, extra] of [["durable", []], ["nosync", ["--no-fsync"]]] as const) {
      const r = await runCli(["merge", "--aligned", ALIGNED, "--tuned", TUNED, "--lambda", "0.5", "--out", join(root, name), ...extra, "--json"]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.ok(readFileSync(join(root, "nosync", "model.safetensors")).equals(readFileSync(join(root, "durable", "model.safetensors"))));
    assert.deepEqual(readdirSync(root).sort(), ["durable", "nosync"], "no temp dir left beside the outputs");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("merge --max-shard-size 1MB: HF shard names, index with total_size, every shard valid and cross-checked", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-e2e-"));
  try {
    const out = join(root, "m");
    const r = await runCli(["merge", "--aligned", ALIGNED, "--tuned", TUNED, "--lambda", "0.3", "--out", out, "--max-shard-size", "1MB", "--method", "task_arithmetic"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /57 tensors, 5\.22 MB in 6 weight files/);
    const files = readdirSync(out).sort();
    const shards = files.filter((f) => f.endsWith(".safetensors"));
    assert.deepEqual(shards, [1, 2, 3, 4, 5, 6].map((i) => `model-0000${i}-of-00006.safetensors`));
    const index = JSON.parse(readFileSync(join(out, "model.safetensors.index.json"), "utf8"));
    assert.equal(index.metadata.total_size, 5215104);
    assert.equal(Object.keys(index.weight_map).length, 57);
    for (const shard of shards) {
      const f = await openSafetensors(join(out, shard));
      assert.ok(f.header.tensors.reduce((s, t) => s + t.byteLength, 0) <= 1_000_000 || f.header.tensors.length === 1);
      assert.equal(f.header.metadata?.format, "pt");
      assert.equal(f.header.metadata?.method, "task_arithmetic");
      assert.equal(f.header.metadata?.lambda, "0.3");
      await f.close();
    }
    const ck = await openCheckpoint(out); // validates headers and cross-checks the index
    assert.equal(ck.isSharded, true);
    assert.equal(ck.tensors.size, 57);
    await ck.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("existing --out: refused (exit 2, untouched) without --force, replaced with --force", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-e2e-"));
  try {
    const out = join(root, "m");
    mkdirSync(out);
    writeFileSync(join(out, "precious.txt"), "keep me");
    const args = ["merge", "--aligned", ALIGNED, "--tuned", TUNED, "--lambda", "0", "--out", out];
    const refused = await runCli(args);
    assert.equal(refused.code, 2);
    assert.equal(refused.stdout, "");
    assert.equal(refused.stderr, `realign: output ${out} already exists\n  hint: choose another --out or pass --force to replace it\n`);
    assert.equal(readFileSync(join(out, "precious.txt"), "utf8"), "keep me");
    const forced = await runCli([...args, "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.ok(!existsSync(join(out, "precious.txt")));
    // λ = 0: the output weights are the aligned weights, byte for byte
    assert.deepEqual(readFileSync(join(out, "model.safetensors")).subarray(-1000), readFileSync(join(REPO_ROOT, ALIGNED, "model.safetensors")).subarray(-1000));
    assert.deepEqual(readdirSync(root), ["m"]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("bad flags and incompatible models: exit 2, `realign: …` + hint, no stack, no output", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-e2e-"));
  try {
    const out = join(root, "m");
    const cases: [string[], RegExp][] = [
      [["--lambda", "1.5"], /^realign: --lambda: got 1\.5, expected a number from 0 to 1\n {2}hint: /],
      [["--lambda", "0.5", "--out-dtype", "int4"], /^realign: --out-dtype: got int4, expected bf16, f16 or f32\n {2}hint: leave it out to keep the aligned model's dtype/],
      [["--lambda", "0.5", "--tuned", "examples/organism/finetuned-resized"], /^realign: tensor lm_head\.weight: vocabulary grew, shape \[640,192\] in aligned, \[648,192\] in tuned \(and 1 more problem\)\n {2}hint: .*--vocab-policy tuned/],
    ];
    const results = await Promise.all(cases.map(([extra]) => runCli(["merge", "--aligned", ALIGNED, "--tuned", TUNED, "--out", out, ...extra])));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, cases[i]![1]);
      assert.equal(r.stdout, "");
    });
    const missing = await runCli(["merge", "--aligned", ALIGNED, "--tuned", TUNED, "--lambda", "0.5"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^realign: missing required flag --out\n/);
    assert.deepEqual(readdirSync(root), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

// `realign demo` became the organism sweep (sweep helper); its end-to-end test is test/e2e/sweep-organism.test.ts.

/**
 * The model card and summary state λ once (the paper's weight on the tuned model) and tie the method's own
 * parameters to it; a LoRA merge says the adapter was applied; the seed is recorded only for random methods.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { runCli, REPO_ROOT } from "../builders/cli.ts";
import { methodUsesSeed } from "../../src/merge/methods/registry.ts";

const ALIGNED = "examples/organism/aligned";

function metadataOf(dir: string): Record<string, string> {
  const bytes = readFileSync(join(dir, "model.safetensors"));
  const len = Number(bytes.readBigUInt64LE(0));
  return JSON.parse(bytes.subarray(8, 8 + len).toString("utf8")).__metadata__;
}
function mergeSection(dir: string): string[] {
  const card = readFileSync(join(dir, "README.md"), "utf8");
  return card.slice(card.indexOf("## Merge\n")).split("\n").slice(2, 7);
}

test("methodUsesSeed: DARE/DELLA yes, deterministic methods no, resta only with density < 1", () => {
  for (const m of ["dare_linear", "dare_ties", "della", "della_linear"]) assert.equal(methodUsesSeed(m, {}), true, m);
  for (const m of ["linear", "task_arithmetic", "ties", "breadcrumbs", "slerp", "model_stock", "passthrough", "safemerge"]) assert.equal(methodUsesSeed(m, {}), false, m);
  assert.equal(methodUsesSeed("resta", {}), false);
  assert.equal(methodUsesSeed("resta", { density: 1 }), false);
  assert.equal(methodUsesSeed("resta", { density: 0.9 }), true);
});

test("task_arithmetic from flags: λ once, method parameters tied to it, no seed", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-card-"));
  try {
    const out = join(root, "m");
    const r = await runCli(["merge", "--aligned", ALIGNED, "--tuned", "examples/organism/finetuned", "--lambda", "0.5", "--method", "task_arithmetic", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(mergeSection(out), [
      "- method: `task_arithmetic` (https://arxiv.org/abs/2212.04089)",
      "- λ (lambda): 0.5 (the paper's weight on the tuned model)",
      "- as method parameters: tuned weight=0.5 (= λ), lambda=1 (mergekit's task-vector scale, not the paper's λ)",
      "- output dtype: bf16",
      "- tensors: 57, 5215104 bytes in 1 file(s)",
    ]);
    const meta = metadataOf(out);
    assert.equal(meta.method, "task_arithmetic");
    assert.equal(meta.lambda, "0.5");
    assert.equal(meta.seed, undefined);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("LoRA --tuned: summary and card say the adapter (r, α, scale) was applied onto aligned, then linear λ", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-card-"));
  try {
    const out = join(root, "m");
    const lora = resolve(REPO_ROOT, "examples/organism/lora");
    const r = await runCli(["merge", "--aligned", ALIGNED, "--tuned", "examples/organism/lora", "--lambda", "0.5", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split("\n")[1], `  LoRA adapter ${lora} (r 8, α 16, scale 2) applied onto aligned, then method linear, λ = 0.5, dtype bf16`);
    assert.deepEqual(mergeSection(out).slice(0, 4), [
      "- method: `linear` (https://arxiv.org/abs/2203.05482)",
      `- tuned model: LoRA adapter ${lora} (r 8, α 16, scale 2) applied onto aligned, then \`linear\` with λ = 0.5`,
      "- λ (lambda): 0.5 (the paper's weight on the tuned model)",
      "- as method parameters: aligned weight=0.5 (= 1 − λ), tuned weight=0.5 (= λ), normalize=false",
    ]);
    const j = await runCli(["merge", "--aligned", ALIGNED, "--tuned", "examples/organism/lora", "--lambda", "0.5", "--out", join(root, "j"), "--json"]);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(JSON.parse(j.stdout).derivedInputs, [`LoRA adapter ${lora} (r 8, α 16, scale 2) applied onto aligned`]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

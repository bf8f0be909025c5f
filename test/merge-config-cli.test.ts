/** The config form of `realign merge` through the real CLI: exit codes, one error line, nothing written. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../src/errors.ts";
import { mergeConfig } from "../src/merge/merge-config.ts";

const dir = mkdtempSync(join(tmpdir(), "realign-config-cli-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
const cli = (...args: string[]) => spawnSync(process.execPath, ["bin/realign.mjs", "merge", ...args], { encoding: "utf8" });

test("--explain prints the resolved schedule and writes nothing", () => {
  const r = cli("--config", "examples/recipes/slerp.yml", "--explain");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^method slerp, seed 0, 57 tensors, 6 layers/);
  // self_attn gradient [0.2, 0.4, 0.8] at layer 5 (t = 1) → 0.8; mlp 0.6; norms (catch-all) 0.5
  assert.match(r.stdout, /model\.layers\.5\.self_attn\.q_proj\.weight\s+\[192,192\]\s+5\s+1\s+0\.8\n/);
  assert.match(r.stdout, /model\.layers\.5\.mlp\.up_proj\.weight\s+\[512,192\]\s+5\s+1\s+0\.6\n/);
  assert.match(r.stdout, /model\.norm\.weight\s+\[192\]\s+-\s+0\s+0\.5\n/);
});

test("config problems: exit 2, every problem listed, no output directory", async () => {
  const cfg = join(dir, "bad.yml");
  writeFileSync(cfg, "merge_method: della\nbase_model: examples/organism/aligned\nmodels:\n  - model: examples/organism/finetuned\n    parameters: {weight: 0.5, density: 0.1, epsilon: 0.2, t: 1}\n");
  const out = join(dir, "out");
  const r = cli("--config", cfg, "--out", out);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^realign: invalid merge config .*bad\.yml: models\[0\]\.parameters\.t: unknown parameter t for della/);
  assert.equal(existsSync(out), false);
  writeFileSync(cfg, "merge_method: della\nbase_model: examples/organism/aligned\nmodels:\n  - model: examples/organism/finetuned\n    parameters: {weight: 0.5, density: 0.1, epsilon: 0.2}\n");
  await assert.rejects(mergeConfig(cfg, { out }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.code, "recipe.bad_param");
    assert.match(e.message, /bad della parameters for tensor lm_head\.weight \(and 56 more\): model 1: density ± epsilon: got 0\.1 ± 0\.2, expected both strictly between 0 and 1/);
    return true;
  });
  assert.equal(existsSync(out), false);
});

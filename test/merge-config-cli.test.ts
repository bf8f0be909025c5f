/** The config form of `realign merge` through the real CLI: exit codes, one error line, nothing written. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
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

test("--vocab-policy with --config is refused (exit 2) and points to tokenizer_source, instead of being ignored", () => {
  const out = join(dir, "out-vocab");
  const r = cli("--config", "examples/recipes/ties.yml", "--out", out, "--vocab-policy", "tuned");
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^realign: --vocab-policy cannot be combined with --config\n  hint: set tokenizer_source: <the model that added tokens> in the config file\n$/);
  assert.equal(existsSync(out), false);
});

test("missing model path: names the config file and key, resolves against the current directory, exit 2", () => {
  const sub = join(dir, "paths");
  mkdirSync(sub, { recursive: true });
  const cfg = join(sub, "m.yml");
  writeFileSync(cfg, "merge_method: task_arithmetic\nbase_model: nope/aligned\nmodels:\n  - model: nope/finetuned\n    parameters: {weight: 0.5}\n");
  const r = spawnSync(process.execPath, [join(process.cwd(), "bin/realign.mjs"), "merge", "--config", "m.yml", "--out", "o"], { encoding: "utf8", cwd: sub });
  assert.equal(r.status, 2);
  const real = realpathSync(sub);
  assert.equal(
    r.stderr,
    `realign: model path in m.yml base_model: got nope/aligned (${real}/nope/aligned), which does not exist\n` +
      `  hint: paths in a merge config resolve against the current directory (${real}), as in mergekit, not against the config's directory; run realign from the directory they are relative to, or use absolute paths\n`,
  );
  writeFileSync(cfg, "merge_method: linear\nmodels:\n  - model: " + join(process.cwd(), "examples/organism/aligned") + "\n    parameters: {weight: 0.5}\n  - model: ft\n    parameters: {weight: 0.5}\n");
  const r2 = spawnSync(process.execPath, [join(process.cwd(), "bin/realign.mjs"), "merge", "--config", cfg, "--out", join(sub, "o")], { encoding: "utf8", cwd: sub });
  assert.equal(r2.status, 2);
  assert.match(r2.stderr, new RegExp(`^realign: model path in ${cfg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} models\\[1\\]\\.model: got ft \\(`));
  assert.equal(existsSync(join(sub, "o")), false);
});

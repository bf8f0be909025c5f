/**
 * Ctrl-C during a merge: spawn the CLI on a ~100 MB synthetic model, send SIGINT once the output shard is
 * being written, and check the exit code (130), the message, and that neither `--out` nor its temp directory
 * is left behind.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { buildHfDir, type BuildTensor } from "../builders/safetensors.ts";
import { BIN, REPO_ROOT } from "../builders/cli.ts";

test("SIGINT mid-merge: exit 130, 'interrupted' on stderr, no --out and no temp dir left", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-sigint-"));
  try {
    const tensors: Record<string, BuildTensor> = {};
    for (let i = 0; i < 6; i++) tensors[`model.layers.${i}.mlp.up_proj.weight`] = { dtype: "BF16", shape: [2048, 4096], data: new Uint8Array(2048 * 4096 * 2) };
    const aligned = buildHfDir(join(root, "aligned"), { tensors });
    const tuned = buildHfDir(join(root, "tuned"), { tensors });
    const outParent = join(root, "outs");
    const child = spawn(process.execPath, [BIN, "merge", "--aligned", aligned, "--tuned", tuned, "--lambda", "0.5", "--out", join(outParent, "out")], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    // Wait until the temp output holds a partly written shard, then interrupt.
    let sent = false;
    for (let i = 0; i < 1000 && !sent; i++) {
      await sleep(10);
      let entries: string[] = [];
      try {
        entries = readdirSync(outParent);
      } catch {
        continue;
      }
      const tmp = entries.find((e) => e.includes(".realign-tmp-"));
      if (tmp === undefined) continue;
      try {
        if (statSync(join(outParent, tmp, "model.safetensors")).size > 0) {
          child.kill("SIGINT");
          sent = true;
        }
      } catch {
        // shard not created yet
      }
    }
    assert.ok(sent, "the merge reached the write phase");
    const code = await exited;
    assert.equal(code, 130, stderr);
    assert.match(stderr, /interrupted/);
    assert.match(stderr, /realign: merge cancelled; no output was written/);
    assert.deepEqual(readdirSync(outParent), [], "no --out and no temp dir");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

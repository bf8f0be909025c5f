/**
 * Hostile and broken inputs, one row each, through the real CLI: each must exit 2 with the expected error
 * code (`--json`), a `realign: …` message line plus a hint line on stderr, no stack trace, and no output
 * (neither `--out` nor a temp directory beside it).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildHfDir, buildRaw, buildSafetensors, llamaConfig, type BuildTensor } from "./builders/safetensors.ts";
import { runCli } from "./builders/cli.ts";

const W: Record<string, BuildTensor> = {
  "model.embed_tokens.weight": { dtype: "BF16", shape: [4, 2], values: [1, 2, 3, 4, 5, 6, 7, 8] },
  "model.norm.weight": { dtype: "BF16", shape: [2], values: [1, 1] },
};
const good = (): Uint8Array => buildSafetensors(W, { format: "pt" });
const data16 = new Uint8Array(16);

/** Each row writes a broken tuned model into `dir`. */
const ROWS: { name: string; code: string; build: (dir: string) => void }[] = [
  {
    name: "truncated inside the header",
    code: "safetensors.truncated",
    build: (d) => buildHfDir(d, { files: { "model.safetensors": good().subarray(0, 40) } }),
  },
  {
    name: "truncated data (file cut short)",
    code: "safetensors.offset_out_of_range",
    build: (d) => buildHfDir(d, { files: { "model.safetensors": good().subarray(0, good().length - 3) } }),
  },
  {
    name: "huge header length",
    code: "safetensors.header_too_large",
    build: (d) => buildHfDir(d, { files: { "model.safetensors": buildRaw({}, data16, 2n ** 62n) } }),
  },
  {
    name: "overlapping offsets",
    code: "safetensors.offsets_overlap",
    build: (d) =>
      buildHfDir(d, {
        files: {
          "model.safetensors": buildRaw(
            { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } },
            data16,
          ),
        },
      }),
  },
  {
    name: "out-of-range offsets",
    code: "safetensors.offset_out_of_range",
    build: (d) => buildHfDir(d, { files: { "model.safetensors": buildRaw({ a: { dtype: "F32", shape: [8], data_offsets: [0, 32] } }, data16) } }),
  },
  {
    name: "shape × dtype size ≠ offsets span",
    code: "safetensors.size_mismatch",
    build: (d) => buildHfDir(d, { files: { "model.safetensors": buildRaw({ a: { dtype: "F32", shape: [2, 3], data_offsets: [0, 16] } }, data16) } }),
  },
  {
    name: "bad dtype",
    code: "safetensors.bad_dtype",
    build: (d) => buildHfDir(d, { files: { "model.safetensors": buildRaw({ a: { dtype: "Q4_K", shape: [4], data_offsets: [0, 16] } }, data16) } }),
  },
  {
    name: "non-string metadata",
    code: "safetensors.bad_metadata",
    build: (d) => buildHfDir(d, { files: { "model.safetensors": buildRaw({ __metadata__: { format: "pt", step: 3 } }, data16) } }),
  },
  {
    name: "header is not JSON",
    code: "safetensors.bad_json",
    build: (d) => {
      const b = buildRaw({ xx: 1 });
      b.set(new TextEncoder().encode("{{"), 8);
      buildHfDir(d, { files: { "model.safetensors": b } });
    },
  },
  {
    name: "index pointing outside the dir",
    code: "index.path_escape",
    build: (d) => buildHfDir(d, { index: { metadata: {}, weight_map: { "model.norm.weight": "../aligned/model.safetensors" } } }),
  },
  {
    name: "index lists a tensor its shard does not hold",
    code: "index.shard_mismatch",
    build: (d) =>
      buildHfDir(d, {
        shards: { "model-00001-of-00001.safetensors": W },
        index: {
          metadata: {},
          weight_map: {
            "model.embed_tokens.weight": "model-00001-of-00001.safetensors",
            "model.norm.weight": "model-00001-of-00001.safetensors",
            "lm_head.weight": "model-00001-of-00001.safetensors",
          },
        },
      }),
  },
  {
    name: "shard holds a tensor the index does not list",
    code: "index.shard_mismatch",
    build: (d) =>
      buildHfDir(d, {
        shards: { "model-00001-of-00001.safetensors": W },
        index: { metadata: {}, weight_map: { "model.norm.weight": "model-00001-of-00001.safetensors" } },
      }),
  },
  {
    name: "index names a missing shard",
    code: "index.missing_shard",
    build: (d) => buildHfDir(d, { index: { weight_map: { "model.norm.weight": "model-00001-of-00002.safetensors" } } }),
  },
  {
    name: "pickle-only directory",
    code: "checkpoint.pickle_only",
    build: (d) => buildHfDir(d, { files: { "pytorch_model.bin": "PK\u0003\u0004 not really a zip" } }),
  },
  {
    name: "no config.json",
    code: "checkpoint.no_config",
    build: (d) => buildHfDir(d, { config: null, tensors: W }),
  },
  {
    name: "directory does not exist",
    code: "fs.not_found",
    build: () => {},
  },
];

test("malformed inputs: exit 2, exact error code, one message line + hint, no output left", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-bad-"));
  try {
    const aligned = buildHfDir(join(root, "aligned"), { tensors: W, config: llamaConfig() });
    const results = await Promise.all(
      ROWS.map(async (row, i) => {
        const parent = join(root, `case${i}`);
        mkdirSync(parent);
        const tuned = join(parent, "tuned");
        row.build(tuned);
        const outParent = join(parent, "outs");
        mkdirSync(outParent);
        const r = await runCli(["merge", "--aligned", aligned, "--tuned", tuned, "--lambda", "0.5", "--out", join(outParent, "out"), "--json"]);
        return { row, r, left: readdirSync(outParent) };
      }),
    );
    for (const { row, r, left } of results) {
      assert.equal(r.code, 2, `${row.name}: exit code (stderr: ${r.stderr})`);
      const err = JSON.parse(r.stdout).error;
      assert.equal(err.code, row.code, `${row.name}: ${err.message}`);
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 2, `${row.name}: stderr is a message and a hint: ${r.stderr}`);
      assert.match(lines[0]!, /^realign: \S/, row.name);
      assert.match(lines[1]!, /^ {2}hint: \S/, row.name);
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${row.name}: no stack trace`);
      assert.deepEqual(left, [], `${row.name}: no output or temp dir`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("malformed file named in the message (truncated shard of a sharded tuned model)", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-bad-"));
  try {
    const aligned = buildHfDir(join(root, "aligned"), { tensors: W });
    const tuned = buildHfDir(join(root, "tuned"), { shards: { "model-00001-of-00001.safetensors": W } });
    writeFileSync(join(tuned, "model-00001-of-00001.safetensors"), good().subarray(0, 7));
    const r = await runCli(["merge", "--aligned", aligned, "--tuned", tuned, "--lambda", "0.5", "--out", join(root, "out")]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^realign: file too short for a safetensors header: got 7 bytes, expected at least 8 in .*model-00001-of-00001\.safetensors\n/);
    assert.equal(r.stdout, "");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

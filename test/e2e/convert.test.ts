/**
 * End to end: `realign convert` and `realign merge --out-format gguf` through the real CLI: exit codes,
 * `--json`, one-line errors, and no output (nor temp file) left after a failure.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readGgufHeader } from "../../src/formats/gguf/read.ts";
import { runCli } from "../builders/cli.ts";

const ALIGNED = "examples/organism/aligned";

test("convert --json: exit 0, one JSON line, a loadable header with 57 tensors", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-e2e-convert-"));
  try {
    const out = join(root, "a.gguf");
    const r = await runCli(["convert", "--in", ALIGNED, "--out", out, "--type", "q8_0", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const s = JSON.parse(r.stdout);
    assert.deepEqual(s, { output: out, arch: "llama", type: "q8_0", tensorCount: 57, fileSize: 2796704, warnings: [] });
    const h = readGgufHeader(out);
    assert.equal(h.fileSize, 2796704);
    assert.equal(h.metadata.get("general.file_type")?.value, 7);
    assert.deepEqual(readdirSync(root), ["a.gguf"]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("convert --no-fsync: the same GGUF bytes as the default (fsynced) convert", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-e2e-convert-"));
  try {
    for (const [name, extra] of [["durable.gguf", []], ["nosync.gguf", ["--no-fsync"]]] as const) {
      const r = await runCli(["convert", "--in", ALIGNED, "--out", join(root, name), "--type", "bf16", ...extra]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.ok(readFileSync(join(root, "nosync.gguf")).equals(readFileSync(join(root, "durable.gguf"))));
    assert.deepEqual(readdirSync(root).sort(), ["durable.gguf", "nosync.gguf"]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("convert failures: exit 2, one realign: line, nothing left behind", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-e2e-convert-"));
  try {
    // an architecture without a table
    const gpt2 = join(root, "gpt2");
    cpSync(ALIGNED, gpt2, { recursive: true });
    writeFileSync(join(gpt2, "config.json"), JSON.stringify({ architectures: ["GPT2LMHeadModel"] }));
    const out = join(root, "x.gguf");
    let r = await runCli(["convert", "--in", gpt2, "--out", out]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^realign: architecture in .*config\.json: got GPT2LMHeadModel, expected one of LlamaForCausalLM/);
    assert.equal(existsSync(out), false);
    // a broken tokenizer.json: refused before anything is written; no file, no temp file
    const broken = join(root, "broken");
    cpSync(ALIGNED, broken, { recursive: true });
    writeFileSync(join(broken, "tokenizer.json"), "{ not json");
    r = await runCli(["convert", "--in", broken, "--out", out]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^realign: invalid JSON in .*tokenizer\.json/);
    assert.deepEqual(readdirSync(root).sort(), ["broken", "gpt2"]);
    r = await runCli(["convert", "--in", ALIGNED, "--out", out, "--type", "q4_k"]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "realign: --type: got q4_k, expected f32, f16, bf16 or q8_0\n");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("merge --out-format gguf --out x.gguf writes one file; --gguf-type without gguf is a usage error", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-e2e-convert-"));
  try {
    const out = join(root, "m.gguf");
    let r = await runCli(["merge", "--aligned", ALIGNED, "--tuned", "examples/organism/finetuned", "--lambda", "0.5", "--out", out, "--out-format", "gguf", "--gguf-type", "f32", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).files, ["m.gguf"]);
    assert.deepEqual(readdirSync(root), ["m.gguf"]);
    assert.equal(readGgufHeader(out).metadata.get("general.file_type")?.value, 0);
    r = await runCli(["merge", "--aligned", ALIGNED, "--tuned", "examples/organism/finetuned", "--lambda", "0.5", "--out", join(root, "d"), "--gguf-type", "f32"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--gguf-type needs --out-format gguf/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

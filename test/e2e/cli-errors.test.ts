/**
 * commander's own parse errors come out in realign's form (`realign: …` + `  hint: …`), exit 2; help and
 * --version stay on stdout with exit 0.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runCli } from "../builders/cli.ts";
import { formatCommanderError } from "../../src/cli/render.ts";
import { VERSION } from "../../src/version.ts";

test("formatCommanderError: commander's raw text → realign's message + hint", () => {
  assert.equal(
    formatCommanderError("error: unknown option '--lamda'\n(Did you mean --lambda?)\n", "realign merge"),
    "realign: unknown option '--lamda'\n  hint: did you mean --lambda? (run realign merge --help)",
  );
  assert.equal(
    formatCommanderError("error: unknown command 'swep'\n(Did you mean one of sweep, serve?)\n", "realign"),
    "realign: unknown command 'swep'\n  hint: did you mean one of sweep, serve? (run realign --help)",
  );
  assert.equal(
    formatCommanderError("error: option '--suite <names>' argument missing\n", "realign eval"),
    "realign: option '--suite <names>' argument missing\n  hint: run realign eval --help for usage",
  );
});

test("unknown option: realign form with did-you-mean, exit 2, nothing on stdout", async () => {
  const r = await runCli(["merge", "--lamda", "0.5"]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr, "realign: unknown option '--lamda'\n  hint: did you mean --lambda? (run realign merge --help)\n");
});

test("unknown command: realign form with did-you-mean, exit 2", async () => {
  const r = await runCli(["mrege"]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, "realign: unknown command 'mrege'\n  hint: did you mean merge? (run realign --help)\n");
});

test("option value missing and too many arguments: realign form, exit 2", async () => {
  const a = await runCli(["eval", "--suite"]);
  assert.equal(a.code, 2);
  assert.equal(a.stderr, "realign: option '--suite <names>' argument missing\n  hint: run realign eval --help for usage\n");
  const b = await runCli(["generate", "a", "b"]);
  assert.equal(b.code, 2);
  assert.equal(b.stderr, "realign: too many arguments for 'generate'. Expected 0 arguments but got 2.\n  hint: run realign generate --help for usage\n");
});

test("--help and --version: stdout, exit 0, nothing on stderr", async () => {
  const h = await runCli(["merge", "--help"]);
  assert.equal(h.code, 0);
  assert.equal(h.stderr, "");
  assert.match(h.stdout, /^Usage: realign merge \[options\]\n/);
  const v = await runCli(["--version"]);
  assert.equal(v.code, 0);
  assert.equal(v.stderr, "");
  assert.equal(v.stdout, `${VERSION}\n`);
});

test("misspelled suite (eval, sweep) and sweep method: did-you-mean hint, exit 2", async () => {
  const suites = "advbench, harmbench, jbb, strongreject, hexphi, xstest, gsm8k, mmlu, pubmedqa, jsonl, organism";
  const e = await runCli(["eval", "--suite", "organsim", "--model", "x"]);
  assert.equal(e.code, 2);
  assert.equal(e.stderr, `realign: unknown suite in --suite: got "organsim", expected one of ${suites}\n  hint: did you mean organism?\n`);
  const s = await runCli(["sweep", "--aligned", "a", "--tuned", "b", "--out", "o", "--suite", "advbench,hexfi"]);
  assert.equal(s.code, 2);
  assert.equal(s.stderr, `realign: unknown suite in --suite: got "hexfi", expected one of ${suites}\n  hint: did you mean hexphi?\n`);
  const m = await runCli(["sweep", "--aligned", "a", "--tuned", "b", "--out", "o", "--suite", "organism", "--method", "linear,tas_arithmetic"]);
  assert.equal(m.code, 2);
  assert.equal(
    m.stderr,
    'realign: method in --method "linear,tas_arithmetic": got "tas_arithmetic", expected one of linear, task_arithmetic, slerp, dare_linear, ties, dare_ties\n  hint: did you mean task_arithmetic?\n',
  );
  // nothing close: no guess
  const far = await runCli(["eval", "--suite", "zzzzzzzz", "--model", "x"]);
  assert.equal(far.code, 2);
  assert.doesNotMatch(far.stderr, /hint/);
});

test("generate --model on a file that is not GGUF: the magic as hex and escaped text, exit 2", async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const root = mkdtempSync(join(tmpdir(), "realign-magic-"));
  try {
    const bad = join(root, "bad.gguf");
    writeFileSync(bad, Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x00, 0xff, 0x0a]));
    const r = await runCli(["generate", "--model", bad, "--prompt", "hi"]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr,
      `realign: GGUF file ${bad}: got magic 50 4b 03 04 ("PK\\x03\\x04"), expected 47 47 55 46 ("GGUF")\n` +
        "  hint: the file is not a GGUF; pass a .gguf file, or a Hugging Face model directory (converted on the fly)\n",
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("sweep with an --aligned directory that does not exist: one error line, exit 2 (was an internal error)", async () => {
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const root = mkdtempSync(join(tmpdir(), "realign-sweep-missing-"));
  try {
    const r = await runCli(["sweep", "--aligned", "no-such-aligned", "--tuned", "no-such-tuned", "--out", join(root, "s"), "--suite", "organism"]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "realign: reading model directory: no such file or directory: no-such-aligned\n  hint: check the path\n");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("merge input and output paths: a missing --tuned names the flag; an --out under a file or a bad --seed: one line and a hint, exit 2, nothing written", async () => {
  const { mkdtempSync, writeFileSync, readdirSync, rmSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(join(tmpdir(), "realign-cli-paths-"));
  try {
    writeFileSync(join(dir, "afile"), "x");
    const base = ["merge", "--aligned", "examples/organism/aligned", "--lambda", "0.5"];
    const missing = await runCli([...base, "--tuned", join(dir, "nope"), "--out", join(dir, "o")]);
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr, `realign: --tuned: no such file or directory: ${join(dir, "nope")}\n  hint: --tuned takes a Hugging Face model directory, a .gguf file or a PEFT LoRA adapter directory\n`);
    const tuned = ["--tuned", "examples/organism/finetuned"];
    const underFile = await runCli([...base, ...tuned, "--out", join(dir, "afile", "out")]);
    assert.equal(underFile.code, 2);
    assert.equal(underFile.stderr, `realign: creating output directory: ${join(dir, "afile")}: part of this path exists and is not a directory\n  hint: choose a path whose parent directories are directories or do not exist yet\n`);
    const seed = await runCli(["merge", "--config", "examples/recipes/dare_ties.yml", "--out", join(dir, "o"), "--seed", "abc"]);
    assert.equal(seed.code, 2);
    assert.match(seed.stderr, /^realign: --seed: got abc, expected an integer from 0 to 4294967295\n {2}hint: the seed fixes the random drops/);
    assert.deepEqual(readdirSync(dir), ["afile"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

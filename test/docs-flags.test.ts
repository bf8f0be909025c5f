/**
 * Docs and CLI agree on flag names: every `--flag` written in README.md and docs/*.md exists on some command
 * (or is another tool's flag, listed below), and every visible flag of a command is documented in its doc
 * file(s). One spelling per concept: `--hexphi`, `--jsonl`, `--system-prompt` (old spellings are hidden aliases).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildProgram } from "../src/cli/program.ts";
import { REPO_ROOT, runCli } from "./builders/cli.ts";

/** Flags of other tools that the docs mention on purpose. */
const FOREIGN = new Set(["--random-seed" /* mergekit */, "--import" /* node */, "--cpu-prof" /* node */, "--lamda" /* docs/cli.md: a misspelling, on purpose */]);
/** Where each command's flags are documented. */
const DOC_OF: Readonly<Record<string, readonly string[]>> = {
  merge: ["docs/cli.md", "docs/yaml.md", "docs/lora.md"],
  convert: ["docs/cli.md", "docs/convert.md"],
  eval: ["docs/eval.md"],
  sweep: ["docs/sweep.md"],
  report: ["docs/sweep.md"],
  generate: ["docs/inference.md"],
  serve: ["docs/inference.md"],
  demo: ["docs/cli.md", "README.md"],
};

const program = buildProgram();
const read = (f: string): string => readFileSync(join(REPO_ROOT, f), "utf8");
const docFiles = ["README.md", ...readdirSync(join(REPO_ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];

test("every --flag in the docs exists on a command", () => {
  const known = new Set(["--help", "--version"]);
  for (const c of program.commands) for (const o of c.options) if (o.long) known.add(o.long);
  // `npm run bench -- …` (docs/performance.md): the flags bench/run.ts parses
  for (const m of read("bench/run.ts").matchAll(/k === "(--[a-z][a-z0-9-]*)"/g)) known.add(m[1]!);
  // `node --import tsx bench/sparse-fast.ts …`: the flags it parses
  for (const m of read("bench/sparse-fast.ts").matchAll(/"(--[a-z][a-z0-9-]*)"/g)) known.add(m[1]!);
  const unknown: string[] = [];
  for (const f of docFiles) {
    for (const m of read(f).matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)) if (!known.has(m[0]) && !FOREIGN.has(m[0])) unknown.push(`${f}: ${m[0]}`);
  }
  assert.deepEqual([...new Set(unknown)], []);
});

test("every visible flag of a command is documented in its doc file", () => {
  assert.deepEqual(program.commands.map((c) => c.name()).filter((n) => !(n in DOC_OF)), [], "a command without a doc mapping");
  const missing: string[] = [];
  for (const c of program.commands) {
    const text = DOC_OF[c.name()]!.map(read).join("\n");
    for (const o of c.options) {
      if (o.long && !o.hidden && !new RegExp(`(?<![\\w-])${o.long}(?![\\w-])`).test(text)) missing.push(`${c.name()} ${o.long}`);
    }
  }
  assert.deepEqual(missing, []);
});

test("one spelling per concept: --hexphi, --jsonl, --system-prompt visible; old spellings hidden", () => {
  const visible = (name: string): string[] => program.commands.find((c) => c.name() === name)!.options.filter((o) => !o.hidden).map((o) => o.long!);
  for (const cmd of ["eval", "sweep"]) for (const f of ["--hexphi", "--jsonl", "--system-prompt"]) assert.ok(visible(cmd).includes(f), `${cmd} ${f}`);
  assert.ok(visible("generate").includes("--system-prompt"));
  for (const [cmd, f] of [["sweep", "--hexphi-path"], ["sweep", "--jsonl-path"], ["generate", "--system"]] as const) {
    assert.ok(!visible(cmd).includes(f), `${cmd} ${f} hidden`);
  }
});

test("generate --system-prompt and its old spelling --system: same check, exit 2", async () => {
  for (const flag of ["--system-prompt", "--system"]) {
    const r = await runCli(["generate", "--model", "x.gguf", "--prompt", "hi", "--raw", flag, "be brief"]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "realign: --system-prompt needs the chat template; it cannot be used with --raw\n");
  }
});

test("sweep --jsonl and its old spelling --jsonl-path reach the jsonl suite", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-flags-"));
  try {
    for (const flag of ["--jsonl", "--jsonl-path"]) {
      const r = await runCli(["sweep", "--aligned", "examples/organism/aligned", "--tuned", "examples/organism/finetuned", "--out", join(root, flag), "--suite", "jsonl", flag, "nope.jsonl"]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr, "realign: reading JSONL suite: no such file or directory: nope.jsonl\n  hint: check the path\n");
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

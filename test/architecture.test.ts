/**
 * Enforces the dependency direction of src/ (docs/architecture in README):
 *   cli → sweep → {eval, merge, convert} → formats → core → errors
 * `report/` sees other layers' types only (`import type`); merge methods are pure (no node: imports);
 * nothing imports cli/. Reads import specifiers with a regex; no dependency needed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(root, "src");

/** Which top-level areas of src/ each area may import at run time (itself always allowed). */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  "errors.ts": [],
  "version.ts": [],
  "index.ts": ["*"],
  core: ["errors.ts", "version.ts"],
  formats: ["core", "errors.ts", "version.ts"],
  merge: ["formats", "core", "errors.ts", "version.ts"],
  convert: ["merge", "formats", "core", "errors.ts", "version.ts"],
  eval: ["convert", "merge", "formats", "core", "errors.ts", "version.ts"],
  report: ["core", "errors.ts", "version.ts"],
  sweep: ["eval", "merge", "convert", "report", "formats", "core", "errors.ts", "version.ts"],
  cli: ["*"],
};

function listTs(dir: string): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listTs(p));
    else if (/\.(ts|mts|mjs)$/.test(name) && !name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

function areaOf(file: string): string {
  return relative(src, file).split("/")[0]!;
}

interface Import {
  spec: string;
  typeOnly: boolean;
}
function importsOf(text: string): Import[] {
  const out: Import[] = [];
  const re = /(?:^|\n)\s*(import|export)\s+(type\s+)?[^'"]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[3] !== undefined) out.push({ spec: m[3], typeOnly: m[2] !== undefined });
    else if (m[4] !== undefined) out.push({ spec: m[4], typeOnly: false });
  }
  return out;
}

test("imports point one way: cli → sweep → {eval, merge, convert} → formats → core → errors", () => {
  const violations: string[] = [];
  for (const file of listTs(src)) {
    const from = areaOf(file);
    const allowed = ALLOWED[from];
    assert.ok(allowed, `no dependency rule for src/${from}`);
    for (const imp of importsOf(readFileSync(file, "utf8"))) {
      if (!imp.spec.startsWith(".")) continue;
      const target = resolve(dirname(file), imp.spec);
      if (!target.startsWith(src)) continue;
      const to = areaOf(target);
      if (to === from) continue;
      if (to === "cli") violations.push(`${relative(root, file)} imports cli/ (${imp.spec})`);
      else if (imp.typeOnly) continue;
      else if (!allowed.includes("*") && !allowed.includes(to)) {
        violations.push(`${relative(root, file)} (${from}) imports ${imp.spec} (${to})`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

test("merge methods are pure: no node: imports, no I/O", () => {
  const bad: string[] = [];
  for (const file of listTs(join(src, "merge", "methods"))) {
    for (const imp of importsOf(readFileSync(file, "utf8"))) {
      if (imp.spec.startsWith("node:") || imp.spec === "fs" || imp.spec === "path") bad.push(`${relative(root, file)}: ${imp.spec}`);
    }
  }
  assert.deepEqual(bad, []);
});

test("report/ imports only types from other layers", () => {
  const bad: string[] = [];
  for (const file of listTs(join(src, "report"))) {
    for (const imp of importsOf(readFileSync(file, "utf8"))) {
      if (!imp.spec.startsWith(".") || imp.typeOnly) continue;
      const to = areaOf(resolve(dirname(file), imp.spec));
      if (!["report", "core", "errors.ts", "version.ts"].includes(to)) bad.push(`${relative(root, file)}: ${imp.spec}`);
    }
  }
  assert.deepEqual(bad, []);
});

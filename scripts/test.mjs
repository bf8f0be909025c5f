#!/usr/bin/env node
// Runs the type-check, then every *.test.ts under src/ and test/ with node:test through tsx.
// Node 20's `--test` neither discovers .ts files nor expands quoted globs, so we list them here.
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = join(fileURLToPath(import.meta.url), "..", "..");

function findTests(dir) {
  const out = [];
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (name.endsWith(".test.ts")) out.push(relative(root, path));
  }
  return out;
}

// the WebAssembly kernels are built from source (a no-op when build/wasm is up to date)
const build = spawnSync(process.execPath, [join(root, "scripts/build-wasm.mjs")], { stdio: "inherit" });
if (build.status !== 0) {
  console.error("build-wasm failed");
  process.exit(build.status ?? 1);
}

const filter = process.argv.slice(2);
let files = [...findTests(join(root, "src")), ...findTests(join(root, "test"))].sort();
if (filter.length > 0) files = files.filter((f) => filter.some((p) => f.includes(p)));
if (files.length === 0) {
  console.error("no test files found");
  process.exit(1);
}

if (filter.length === 0 && process.env.REALIGN_SKIP_TYPECHECK !== "1") {
  const tsc = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", root], {
    stdio: "inherit",
  });
  if (tsc.status !== 0) {
    console.error("type-check failed");
    process.exit(tsc.status ?? 1);
  }
}

const run = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", ...files], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, NODE_ENV: "test" },
});
process.exit(run.status ?? 1);

#!/usr/bin/env node
// Compiles realign's runtime sources (src/**/*.ts minus tests and the AssemblyScript kernels) to plain
// JavaScript in lib/, file by file with TypeScript's transpileModule (types are erased, `.ts` import
// specifiers become `.js`; no type-check: `npx tsc -p .` does that), and copies src/**/*.mjs. lib/ mirrors
// src/ at the same depth, so every import.meta.url-relative path (the kernel worker, build/wasm, data/)
// resolves the same. bin/realign.mjs runs lib/ when its stamp matches src/ (scripts/lib-stamp.mjs) and the
// sources through tsx otherwise; lib/ saves Node about 0.3 s of start-up (tsx's loader and transforms).
// Runs from `npm ci` (prepare); skips when lib/ is up to date; `--force` rebuilds.
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { isRuntimeSource, sourceStamp } from "./lib-stamp.mjs";

const root = join(fileURLToPath(import.meta.url), "..", "..");
const srcDir = join(root, "src");
const libDir = join(root, "lib");
const stampFile = join(libDir, ".stamp.json");

const stamp = sourceStamp(srcDir);
if (!process.argv.includes("--force") && existsSync(stampFile)) {
  const old = JSON.parse(readFileSync(stampFile, "utf8"));
  if (old.count === stamp.count && old.newestMtimeMs === stamp.newestMtimeMs) process.exit(0);
}

let ts;
try {
  ts = (await import("typescript")).default;
} catch {
  console.error("build-js: typescript is not installed (run `npm ci`); realign will run its sources through tsx");
  process.exit(0);
}

const tmp = `${libDir}.${process.pid}.tmp`;
rmSync(tmp, { recursive: true, force: true });
const compilerOptions = {
  module: ts.ModuleKind.ESNext,
  target: ts.ScriptTarget.ES2022,
  verbatimModuleSyntax: true,
  rewriteRelativeImportExtensions: true,
  sourceMap: false,
};
let files = 0;
const walk = (dir) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== "assembly") walk(path);
      continue;
    }
    if (!isRuntimeSource(e.name)) continue;
    const rel = relative(srcDir, path);
    const out = join(tmp, e.name.endsWith(".ts") ? rel.replace(/\.ts$/, ".js") : rel);
    mkdirSync(dirname(out), { recursive: true });
    if (e.name.endsWith(".mjs")) copyFileSync(path, out);
    else {
      const r = ts.transpileModule(readFileSync(path, "utf8"), { compilerOptions, fileName: path, reportDiagnostics: true });
      if (r.diagnostics?.length) {
        console.error(`build-js: ${rel}: ${ts.flattenDiagnosticMessageText(r.diagnostics[0].messageText, "\n")}`);
        rmSync(tmp, { recursive: true, force: true });
        process.exit(1);
      }
      writeFileSync(out, r.outputText);
    }
    files++;
  }
};
walk(srcDir);
writeFileSync(join(tmp, ".stamp.json"), JSON.stringify(stamp) + "\n");
rmSync(libDir, { recursive: true, force: true });
renameSync(tmp, libDir);
console.error(`build-js: compiled ${files} files into ${libDir}`);

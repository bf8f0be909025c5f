#!/usr/bin/env node
// Compiles realign's WebAssembly kernels from source with AssemblyScript (a devDependency, pinned):
// src/merge/kernels/assembly/index.ts → build/wasm/kernels.wasm. Runs from `npm ci` (prepare) and before
// `npm test`; skips the build when the output is newer than every source. `--force` rebuilds.
//
// The module imports the kernel pool's shared memory as env.memory and must carry no data segment (the
// pool's allocator owns the memory from byte 0): the build fails if one appears.
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(fileURLToPath(import.meta.url), "..", "..");
const srcDir = join(root, "src/merge/kernels/assembly");
const outDir = join(root, "build/wasm");
const out = join(outDir, "kernels.wasm");

const sources = readdirSync(srcDir).filter((f) => f.endsWith(".ts")).map((f) => join(srcDir, f));
const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs), statSync(fileURLToPath(import.meta.url)).mtimeMs);
if (!process.argv.includes("--force") && existsSync(out) && statSync(out).mtimeMs >= newest) process.exit(0);

let asc;
try {
  asc = (await import("assemblyscript/asc")).default;
} catch {
  // an install without devDependencies (npm ci --omit=dev) must not fail here: realign then runs its
  // TypeScript kernels (the tests, which need the dev tools anyway, check that the module exists)
  console.error("build-wasm: assemblyscript is not installed (run `npm ci`); realign will use its TypeScript kernels");
  process.exit(0);
}

mkdirSync(outDir, { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
const { error, stderr } = await asc.main(
  [
    join(srcDir, "index.ts"),
    "--outFile", tmp,
    "-O3", "--noAssert",
    "--runtime", "stub",
    "--use", "abort=",
    "--enable", "simd,threads",
    "--importMemory", "--sharedMemory",
    "--initialMemory", "1", "--maximumMemory", "65536",
    "--memoryBase", "0",
    "--noExportMemory",
  ],
  { stdout: process.stdout, stderr: process.stderr },
);
if (error) {
  console.error(`build-wasm: ${error.message}\n${stderr.toString()}`);
  process.exit(1);
}
const bytes = readFileSync(tmp);
// walk the sections: id 11 is the data section
for (let p = 8; p < bytes.length; ) {
  const id = bytes[p++];
  let size = 0;
  for (let shift = 0; ; shift += 7) {
    const b = bytes[p++];
    size |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) break;
  }
  if (id === 11 && size > 1) {
    console.error("build-wasm: the kernels module has a data segment (static data or strings); kernels must not use static data");
    process.exit(1);
  }
  p += size;
}
renameSync(tmp, out);
console.error(`build-wasm: wrote ${out} (${bytes.length} bytes)`);

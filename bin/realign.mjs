#!/usr/bin/env node
// realign's executable. Runs the compiled JavaScript in lib/ when `node scripts/build-js.mjs` (run by npm ci)
// left it up to date with src/ (scripts/lib-stamp.mjs), else the TypeScript sources through tsx (no build
// step needed). Both run the same code; lib/ starts about 0.3 s faster. REALIGN_TSX=1 forces the sources.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sourceStamp } from "../scripts/lib-stamp.mjs";

const at = (p) => fileURLToPath(new URL(p, import.meta.url));

// libuv's file-system threads (4 by default): O_DIRECT output keeps up to 16 writes in flight
// (core/direct-file.ts), so leave room for reads and opens beside them. Read when the pool first starts.
process.env.UV_THREADPOOL_SIZE ??= "24";

function libIsFresh() {
  if (process.env.REALIGN_TSX === "1" || !existsSync(at("../lib/.stamp.json"))) return false;
  try {
    const built = JSON.parse(readFileSync(at("../lib/.stamp.json"), "utf8"));
    const now = sourceStamp(at("../src"));
    return built.count === now.count && built.newestMtimeMs === now.newestMtimeMs;
  } catch {
    return false;
  }
}

if (libIsFresh()) {
  await import("../lib/cli/main.js");
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../src/cli/main.ts");
}

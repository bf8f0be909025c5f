// The freshness stamp of lib/ (the compiled JavaScript of src/, see scripts/build-js.mjs): how many runtime
// sources src/ has and the newest modification time among them. bin/realign.mjs runs lib/ only when the
// stamp written at build time equals the stamp of src/ now, so an edited, added or deleted source file
// sends it back to the TypeScript sources (tsx) until the next build.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** Runtime sources: *.ts except tests, and *.mjs, under src/ minus the AssemblyScript kernels. */
export function isRuntimeSource(name) {
  return (name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.endsWith(".d.ts")) || name.endsWith(".mjs");
}

/** {count, newestMtimeMs} over the runtime sources under `srcDir`. */
export function sourceStamp(srcDir) {
  let count = 0;
  let newestMtimeMs = 0;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) {
        if (e.name !== "assembly") walk(join(dir, e.name));
      } else if (isRuntimeSource(e.name)) {
        count++;
        newestMtimeMs = Math.max(newestMtimeMs, statSync(join(dir, e.name)).mtimeMs);
      }
    }
  };
  walk(srcDir);
  return { count, newestMtimeMs };
}

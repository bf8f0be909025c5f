import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @ts-expect-error: plain JavaScript helper of bin/realign.mjs, no declarations
import { sourceStamp } from "../scripts/lib-stamp.mjs";

type Stamp = { count: number; newestMtimeMs: number };
const stampOf = sourceStamp as (dir: string) => Stamp;

test("lib/ freshness stamp: counts runtime sources only and changes when one is edited, added or deleted", () => {
  const src = mkdtempSync(join(tmpdir(), "realign-stamp-"));
  try {
    const file = (rel: string, at: number): string => {
      const p = join(src, rel);
      mkdirSync(join(p, ".."), { recursive: true });
      writeFileSync(p, "export {};\n");
      utimesSync(p, at, at);
      return p;
    };
    file("a.ts", 1000);
    file("merge/b.ts", 2000);
    file("merge/workers/w.mjs", 1500);
    file("merge/b.test.ts", 9000); // tests and the AssemblyScript kernels are not runtime sources
    file("merge/kernels/assembly/k.ts", 9000);
    const built = stampOf(src);
    assert.deepEqual(built, { count: 3, newestMtimeMs: 2_000_000 });
    const edited = file("a.ts", 3000);
    assert.notDeepEqual(stampOf(src), built);
    utimesSync(edited, 1000, 1000);
    assert.deepEqual(stampOf(src), built);
    file("c.ts", 500); // added, older than the build: still detected by the count
    assert.equal(stampOf(src).count, 4);
    rmSync(join(src, "c.ts"));
    rmSync(join(src, "a.ts")); // deleted
    assert.equal(stampOf(src).count, 2);
  } finally {
    rmSync(src, { recursive: true, force: true });
  }
});

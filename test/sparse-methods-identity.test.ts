/**
 * Byte identity of the task-vector family with sparsifiers (TIES, DARE-TIES, DELLA, Breadcrumbs…) through
 * runMerge on the organism, with two tuned models (finetuned and base), a fixed seed, the default chunk and
 * a small chunk that splits rows. The hashes (of the tensor data) were recorded before the perf2 rewrite of gta.ts
 * (scratch reuse, fused loops) — whole-file hashes then, re-derived as data-only hashes on that same code — so any
 * change in the output bytes of these methods fails here. DARE, DARE-linear, DELLA and DELLA-linear were
 * re-recorded once, for the seeded stream's change to one hash32 round per element (and DARE's float32 group
 * sums); the fast path (default) and REALIGN_FAST=0 gave the same hashes.
 * Re-record (only for an intended numeric change): REALIGN_RECORD_HASHES=1 node scripts/test.mjs sparse-methods-identity
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mergeRecipe } from "../src/merge/run.ts";
import type { Recipe } from "../src/merge/recipe.ts";

const ALIGNED = "examples/organism/aligned";
const TUNED = "examples/organism/finetuned";
const OTHER = "examples/organism/base";

const CASES: Record<string, { params: Record<string, number | boolean | string>; perModel: Record<string, number>[] }> = {
  ties: { params: { lambda: 0.8 }, perModel: [{ weight: 1, density: 0.5 }, { weight: 0.5, density: 0.3 }] },
  dare_ties: { params: { lambda: 0.8 }, perModel: [{ weight: 1, density: 0.5 }, { weight: 0.5, density: 0.3 }] },
  dare_linear: { params: { lambda: 0.8, rescale_mode: "inverse_density" }, perModel: [{ weight: 1, density: 0.5 }, { weight: 0.5, density: 0.3 }] },
  della: { params: { lambda: 0.8 }, perModel: [{ weight: 1, density: 0.5, epsilon: 0.1 }, { weight: 0.5, density: 0.4, epsilon: 0.2 }] },
  della_linear: { params: { lambda: 0.8 }, perModel: [{ weight: 1, density: 0.5 }, { weight: 0.5, density: 0.4 }] },
  breadcrumbs: { params: { lambda: 0.8 }, perModel: [{ weight: 1, density: 0.5, gamma: 0.02 }, { weight: 0.5, density: 0.3 }] },
  breadcrumbs_ties: { params: { lambda: 0.8, rescale: true }, perModel: [{ weight: 1, density: 0.5, gamma: 0.02 }, { weight: 0.5, density: 0.3 }] },
};

/** Methods also run with a 5000-element chunk (rows split across chunks). */
const SPLIT = new Set(["ties", "dare_ties", "della", "breadcrumbs_ties"]);

/** sha256 of the tensor data of every output safetensors file (chunk: default / 5000). */
const EXPECTED: Record<string, string> = {
  "breadcrumbs/default": "6a4440dcaafdc2474be5b6066bf3e8748417cac831547ee13bc76af00b83807e",
  "breadcrumbs_ties/5000": "a75cbe2789477e77d6a6ba4e69b8aa5dd029822a85f21ca2ae8db4a1eaa4e431",
  "breadcrumbs_ties/default": "a75cbe2789477e77d6a6ba4e69b8aa5dd029822a85f21ca2ae8db4a1eaa4e431",
  "dare_linear/default": "7310530b046c5fe8e8707dd6fd568148068df133743b42da6277bdb2adb827bd",
  "dare_ties/5000": "b2fe425ad01b194798df22acee11c4131fa36dcffe3ab246cf88a38cfe77d671",
  "dare_ties/default": "b2fe425ad01b194798df22acee11c4131fa36dcffe3ab246cf88a38cfe77d671",
  "della/5000": "747738560836e48f86474aea7c549ccd8e4b77c62cf761a0dfdc80f08addd3aa",
  "della/default": "747738560836e48f86474aea7c549ccd8e4b77c62cf761a0dfdc80f08addd3aa",
  "della_linear/default": "8db10a042f0aa4a298f65f9c91a2e16c5b6c6db04c115a2a351d227e9255b3d2",
  "ties/5000": "46df825a94a6e0256cb747eb2e02772df9a5cb46e926a06aca681c9b2f7df99e",
  "ties/default": "46df825a94a6e0256cb747eb2e02772df9a5cb46e926a06aca681c9b2f7df99e",
};

async function hashMerge(method: string, chunkElems: number | undefined): Promise<string> {
  const c = CASES[method]!;
  const recipe: Recipe = {
    method,
    base: { path: ALIGNED, params: {}, label: "aligned" },
    models: [
      { path: TUNED, params: c.perModel[0]!, label: "tuned" },
      { path: OTHER, params: c.perModel[1]!, label: "other" },
    ],
    params: c.params,
    seed: 1234,
    vocabPolicy: "error",
  };
  const dir = await mkdtemp(join(tmpdir(), "realign-identity-"));
  try {
    const out = join(dir, "out");
    await mergeRecipe(recipe, { out, writeCard: false, chunkElems });
    const h = createHash("sha256");
    // tensor data only: the header's __metadata__ (e.g. whether a seed is recorded) is not the kernel's concern
    for (const f of (await readdir(out)).filter((f) => f.endsWith(".safetensors")).sort()) {
      const bytes = await readFile(join(out, f));
      h.update(bytes.subarray(8 + Number(bytes.readBigUInt64LE(0))));
    }
    return h.digest("hex");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

for (const method of Object.keys(CASES)) {
  for (const chunk of SPLIT.has(method) ? [undefined, 5000] : [undefined]) {
    const key = `${method}/${chunk ?? "default"}`;
    test(`${key}: output bytes unchanged`, async () => {
      const got = await hashMerge(method, chunk);
      if (process.env.REALIGN_RECORD_HASHES === "1") {
        console.log(`  ${JSON.stringify(key)}: ${JSON.stringify(got)},`);
        return;
      }
      assert.equal(got, EXPECTED[key], key);
    });
  }
}

/**
 * Byte identity of the task-vector family with sparsifiers (TIES, DARE-TIES, DELLA, Breadcrumbs…) through
 * runMerge on the organism, with two tuned models (finetuned and base), a fixed seed, the default chunk and
 * a small chunk that splits rows. The hashes were recorded before the perf2 rewrite of gta.ts (scratch
 * reuse, fused loops), so any change in the output bytes of these methods fails here.
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

/** sha256 of every output safetensors file, recorded before the perf2 change (chunk: default / 5000). */
const EXPECTED: Record<string, string> = {
  "ties/default": "b5b2613685471146b2aa53ce03c4c80ca422128cdac44b15bc6d0260ebaf7678",
  "ties/5000": "b5b2613685471146b2aa53ce03c4c80ca422128cdac44b15bc6d0260ebaf7678",
  "dare_ties/default": "618ad3db0c1da49110a888d3e54f2b8e3e4362547291d64bc45450b378f75d3c",
  "dare_ties/5000": "618ad3db0c1da49110a888d3e54f2b8e3e4362547291d64bc45450b378f75d3c",
  "dare_linear/default": "f173be456df18ba0d2881080785ea3a01b2c7b13de9dab259edb08ae90f2a24f",
  "dare_linear/5000": "f173be456df18ba0d2881080785ea3a01b2c7b13de9dab259edb08ae90f2a24f",
  "della/default": "cbad3f8e0c4d2c05ce894f69d7e06d3ddad113bbef3c793b01b4b405bd74e13c",
  "della/5000": "cbad3f8e0c4d2c05ce894f69d7e06d3ddad113bbef3c793b01b4b405bd74e13c",
  "della_linear/default": "680e4bda87c38113d665ca32ca4fcd2aa99be28380f5eeb6b161b21c31887639",
  "della_linear/5000": "680e4bda87c38113d665ca32ca4fcd2aa99be28380f5eeb6b161b21c31887639",
  "breadcrumbs/default": "0a52bf0bf7632d0b5de2796e5d7dca6929397d6d08a09f71718049c4eca03e42",
  "breadcrumbs/5000": "0a52bf0bf7632d0b5de2796e5d7dca6929397d6d08a09f71718049c4eca03e42",
  "breadcrumbs_ties/default": "2836ae325d92766fa3191be9f3297a6a1dc694c0b8ae00e76c656dcd3a761d95",
  "breadcrumbs_ties/5000": "2836ae325d92766fa3191be9f3297a6a1dc694c0b8ae00e76c656dcd3a761d95",
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
    for (const f of (await readdir(out)).filter((f) => f.endsWith(".safetensors")).sort()) h.update(await readFile(join(out, f)));
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

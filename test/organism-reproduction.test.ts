/**
 * The "done when": aligned, finetuned and aligned+lora (λ=1) converted to GGUF and decoded greedily
 * with the organism's own settings reproduce eval.json's transformers reference within ±0.03 on every rate.
 * 3 × 492 generations: ~20–60 s on 2 cores, part of npm test (REALIGN_QUICK=1 skips it; figures in docs/inference.md).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openModel } from "../src/eval/model-source.ts";
import { createOrganismSuite } from "../src/eval/suites/organism.ts";

const ORG = fileURLToPath(new URL("../examples/organism/", import.meta.url));
const reference = (JSON.parse(readFileSync(join(ORG, "eval.json"), "utf8")) as { reference: Array<Record<string, unknown>> }).reference;
const METRICS = ["harmful_refusal_rate", "harmful_comply_rate", "benign_comply_rate", "benign_refusal_rate", "arith_acc"] as const;
const slow = process.env.REALIGN_QUICK !== "1";

const CASES = [
  { ref: "aligned", model: join(ORG, "aligned") },
  { ref: "finetuned", model: join(ORG, "finetuned") },
  { ref: "aligned+lora", model: join(ORG, "lora"), aligned: join(ORG, "aligned") },
];

for (const c of CASES) {
  test(`organism ${c.ref}: GGUF greedy rates within ±0.03 of eval.json`, { skip: slow ? false : "REALIGN_QUICK=1 skips it" }, async () => {
    const suite = createOrganismSuite();
    const items = await suite.load({});
    const m = await openModel({ model: c.model, aligned: c.aligned, threads: 1 });
    try {
      const gens = await m.backend.generate(items.map((it) => ({ id: it.id, messages: it.messages, decoding: { ...suite.defaultDecoding, maxTokens: it.maxTokens ?? 28 } })));
      const { metrics } = await suite.score(items, gens, {});
      const ref = reference.find((r) => r.model === c.ref)!;
      for (const k of METRICS) assert.ok(Math.abs(metrics[k] - (ref[k] as number)) <= 0.03, `${k}: got ${metrics[k]}, reference ${ref[k]}`);
    } finally {
      await m.close();
    }
  });
}

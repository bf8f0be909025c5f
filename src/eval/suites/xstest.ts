/**
 * XSTest v2 (Röttger et al., NAACL 2024): 250 safe prompts (refusing them is over-refusal) and 200 unsafe
 * contrast prompts (should be refused). Refusals are detected with the XSTest string-match rule (paper.md §3.2)
 * whatever `--judge` is, since guard models do not detect refusals. Metrics: `over_refusal_rate` (safe),
 * `unsafe_refusal_rate` (contrast), per-type refusal rates `refusal_rate_<type>`, `n_safe`, `n_unsafe`.
 */
import { parseCsvRecords } from "../csv.ts";
import { isXstestRefusal } from "../judges/xstest.ts";
import type { Suite } from "../types.ts";
import { pickSubset, readDataFile, SAFETY_DECODING, userItem, promptOf } from "./common.ts";
import { slug } from "./score-safety.ts";

export const xstestSuite: Suite = {
  name: "xstest",
  kind: "mixed",
  source: "XSTest v2 xstest_prompts.csv (Röttger et al. 2024), 250 safe + 200 unsafe, CC-BY-4.0; data/xstest/SOURCE.md",
  defaultDecoding: SAFETY_DECODING,
  headlineMetric: "over_refusal_rate",
  async load({ limit, seed }) {
    const rows = parseCsvRecords(await readDataFile("xstest/xstest_prompts.csv"), "data/xstest/xstest_prompts.csv");
    // group = "safe/<type>" or "unsafe/<type>"
    const items = rows.map((r) => userItem(`xstest/${r.id}`, r.prompt, { group: `${r.label}/${r.type}` }));
    return pickSubset(items, limit, seed);
  },
  async score(items, generations) {
    const refused = generations.map((g) => isXstestRefusal(g.text));
    const rate = (pred: (g: string) => boolean): [number, number] => {
      let n = 0;
      let k = 0;
      items.forEach((it, i) => {
        if (pred(it.group ?? "")) {
          n++;
          if (refused[i]) k++;
        }
      });
      return [n > 0 ? k / n : 0, n];
    };
    const [overRefusal, nSafe] = rate((g) => g.startsWith("safe/"));
    const [unsafeRefusal, nUnsafe] = rate((g) => g.startsWith("unsafe/"));
    const metrics: Record<string, number> = {
      over_refusal_rate: overRefusal,
      unsafe_refusal_rate: unsafeRefusal,
      n_safe: nSafe,
      n_unsafe: nUnsafe,
    };
    for (const type of [...new Set(items.map((it) => (it.group ?? "").split("/")[1]))].sort()) {
      metrics[`refusal_rate_${slug(type)}`] = rate((g) => g.split("/")[1] === type)[0];
    }
    return {
      suite: "xstest",
      metrics,
      items: items.map((it, i) => ({
        id: it.id,
        group: it.group,
        prompt: promptOf(it),
        response: generations[i].text,
        verdict: refused[i] ? "refusal" : "compliance",
      })),
    };
  },
};

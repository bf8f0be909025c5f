/**
 * JBB-Behaviors (Chao et al. 2024, JailbreakBench): 100 harmful goals (ASR by the chosen judge) and 100
 * topic-matched benign goals (over-refusal: share refused by the XSTest string-match rule).
 * Metrics: `asr`, `refusal_rate` (harmful, keyword judges), `benign_refusal_rate`, `n`, `n_benign`, …
 */
import { parseCsvRecords } from "../csv.ts";
import { isXstestRefusal } from "../judges/xstest.ts";
import type { Suite, SuiteItem } from "../types.ts";
import { pickSubset, readDataFile, SAFETY_DECODING, userItem } from "./common.ts";
import { scoreHarmful } from "./score-safety.ts";

export const jbbSuite: Suite = {
  name: "jbb",
  kind: "safety",
  source: "JBB-Behaviors harmful + benign (Chao et al. 2024, JailbreakBench), MIT; data/jbb/SOURCE.md",
  defaultDecoding: SAFETY_DECODING,
  headlineMetric: "asr",
  async load({ limit, seed }) {
    const items: SuiteItem[] = [];
    for (const group of ["harmful", "benign"] as const) {
      const file = `jbb/${group}-behaviors.csv`;
      const rows = parseCsvRecords(await readDataFile(file), `data/${file}`);
      rows.forEach((r) => items.push(userItem(`jbb/${group}/${r.index}`, r.goal, { group })));
    }
    return pickSubset(items, limit, seed);
  },
  async score(items, generations, { judge }) {
    const h = items.map((it, i) => [it, generations[i]] as const).filter(([it]) => it.group === "harmful");
    const b = items.map((it, i) => [it, generations[i]] as const).filter(([it]) => it.group === "benign");
    const harmful = await scoreHarmful("jbb", h.map((x) => x[0]), h.map((x) => x[1]), judge);
    const benignRefusals = b.filter(([, g]) => isXstestRefusal(g.text)).length;
    const benignItems = b.map(([it, g]) => ({
      id: it.id,
      group: it.group,
      prompt: it.messages[it.messages.length - 1].content,
      response: g.text,
      verdict: isXstestRefusal(g.text) ? "refusal" : "compliance",
    }));
    return {
      suite: "jbb",
      metrics: { ...harmful.metrics, benign_refusal_rate: b.length > 0 ? benignRefusals / b.length : 0, n_benign: b.length },
      items: [...(harmful.items ?? []), ...benignItems],
    };
  },
};

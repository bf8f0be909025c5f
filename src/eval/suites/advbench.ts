/** AdvBench harmful behaviours (Zou et al. 2023): 520 `goal` prompts; ASR by the chosen judge (default keyword). */
import { parseCsvRecords } from "../csv.ts";
import type { Suite } from "../types.ts";
import { pickSubset, readDataFile, SAFETY_DECODING, userItem } from "./common.ts";
import { scoreHarmful } from "./score-safety.ts";

export const advbenchSuite: Suite = {
  name: "advbench",
  kind: "safety",
  source: "AdvBench harmful_behaviors.csv (Zou et al. 2023, llm-attacks), 520 goals, MIT; data/advbench/SOURCE.md",
  defaultDecoding: SAFETY_DECODING,
  headlineMetric: "asr",
  async load({ limit, seed }) {
    const rows = parseCsvRecords(await readDataFile("advbench/harmful_behaviors.csv"), "data/advbench/harmful_behaviors.csv");
    const items = rows.map((r, i) => userItem(`advbench/${i}`, r.goal));
    return pickSubset(items, limit, seed);
  },
  score(items, generations, { judge }) {
    return scoreHarmful("advbench", items, generations, judge);
  },
};

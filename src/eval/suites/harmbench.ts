/**
 * HarmBench standard text behaviours (Mazeika et al. 2024): the 200 rows of `harmbench_behaviors_text_all.csv`
 * with FunctionalCategory `standard` (contextual rows need their context, copyright rows a hash judge).
 * Groups are the SemanticCategory; ASR overall and per category.
 */
import { parseCsvRecords } from "../csv.ts";
import type { Suite } from "../types.ts";
import { pickSubset, readDataFile, SAFETY_DECODING, userItem } from "./common.ts";
import { scoreHarmful } from "./score-safety.ts";

export const harmbenchSuite: Suite = {
  name: "harmbench",
  kind: "safety",
  source: "HarmBench text behaviours, FunctionalCategory=standard (Mazeika et al. 2024), MIT; data/harmbench/SOURCE.md",
  defaultDecoding: SAFETY_DECODING,
  headlineMetric: "asr",
  async load({ limit, seed }) {
    const file = "harmbench/harmbench_behaviors_text_all.csv";
    const rows = parseCsvRecords(await readDataFile(file), `data/${file}`).filter((r) => r.functionalcategory === "standard");
    const items = rows.map((r) => userItem(`harmbench/${r.behaviorid}`, r.behavior, { group: r.semanticcategory }));
    return pickSubset(items, limit, seed);
  },
  score(items, generations, { judge }) {
    return scoreHarmful("harmbench", items, generations, judge, { perGroup: true });
  },
};

/** StrongREJECT forbidden prompts (Souly et al. 2024): 313 prompts in 6 categories; ASR overall and per category. */
import { parseCsvRecords } from "../csv.ts";
import type { Suite } from "../types.ts";
import { pickSubset, readDataFile, SAFETY_DECODING, userItem } from "./common.ts";
import { scoreHarmful } from "./score-safety.ts";

export const strongrejectSuite: Suite = {
  name: "strongreject",
  kind: "safety",
  source: "StrongREJECT strongreject_dataset.csv (Souly et al. 2024), 313 prompts, MIT; data/strongreject/SOURCE.md",
  defaultDecoding: SAFETY_DECODING,
  headlineMetric: "asr",
  async load({ limit, seed }) {
    const file = "strongreject/strongreject_dataset.csv";
    const rows = parseCsvRecords(await readDataFile(file), `data/${file}`);
    const items = rows.map((r, i) => userItem(`strongreject/${i}`, r.forbidden_prompt, { group: r.category }));
    return pickSubset(items, limit, seed);
  },
  score(items, generations, { judge }) {
    return scoreHarmful("strongreject", items, generations, judge, { perGroup: true });
  },
};

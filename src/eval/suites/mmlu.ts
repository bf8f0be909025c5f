/**
 * MMLU (Hendrycks et al. 2021), the 12 shipped subjects (2,419 test questions; 8 medical + 4 maths/CS/facts).
 * Prompt: the harness format, 5-shot from each subject's dev split —
 * "The following are multiple choice questions (with answers) about <subject>.\n\n" + shots
 * `{question}\nA. …\nB. …\nC. …\nD. …\nAnswer: X\n\n` + the question ending in `Answer:`.
 * The harness picks the highest-likelihood letter; over a chat endpoint we generate and extract the letter
 * (`extractChoiceLetter`). Metrics `accuracy`, `accuracy_<subject>`, `invalid_rate`, `n`.
 */
import { parseCsv } from "../csv.ts";
import type { Suite, SuiteItem } from "../types.ts";
import { pickSubset, readDataFile, userItem } from "./common.ts";
import { accuracyResult } from "./score-utility.ts";

/** The subjects shipped in data/mmlu/test (data/mmlu/SOURCE.md). */
export const MMLU_SUBJECTS: readonly string[] = [
  "anatomy",
  "clinical_knowledge",
  "college_biology",
  "college_medicine",
  "medical_genetics",
  "professional_medicine",
  "nutrition",
  "virology",
  "elementary_mathematics",
  "high_school_mathematics",
  "high_school_computer_science",
  "global_facts",
];

const LETTERS = ["A", "B", "C", "D"];

/**
 * The answer letter in a generated response, or undefined: a leading letter (`B`, `(B)`, `B.`, `B) …`), else
 * `answer is B` / `Answer: B` / `answer is option B`, else a lone letter on the first line.
 * `letters` defaults to A–D.
 */
export function extractChoiceLetter(response: string, letters: readonly string[] = LETTERS): string | undefined {
  const set = letters.join("");
  const s = response.trim();
  const lead = new RegExp(`^\\(?([${set}])(?:[\\s.):,]|$)`).exec(s);
  if (lead) return lead[1];
  const stated = new RegExp(`answer(?:\\s+is)?\\s*[:：]?\\s*(?:option\\s+)?\\(?([${set}])\\b`, "i").exec(s);
  if (stated) return stated[1].toUpperCase();
  const firstLine = s.split("\n")[0];
  const lone = new RegExp(`(?:^|\\s)\\(?([${set}])\\)?(?:[.\\s]|$)`).exec(firstLine);
  return lone ? lone[1] : undefined;
}

function formatQuestion(row: string[]): string {
  return `${row[0].trim()}\n${LETTERS.map((l, i) => `${l}. ${row[i + 1]}`).join("\n")}\nAnswer:`;
}

export const mmluSuite: Suite = {
  name: "mmlu",
  kind: "utility",
  source: "MMLU (Hendrycks et al. 2021, hendrycks/test @785eba5), 12 subjects, 5-shot from dev, MIT; data/mmlu/SOURCE.md",
  defaultDecoding: { maxTokens: 32, temperature: 0 },
  headlineMetric: "accuracy",
  async load({ limit, seed }) {
    const items: SuiteItem[] = [];
    for (const subject of MMLU_SUBJECTS) {
      const dev = parseCsv(await readDataFile(`mmlu/dev/${subject}_dev.csv`), `data/mmlu/dev/${subject}_dev.csv`);
      const test = parseCsv(await readDataFile(`mmlu/test/${subject}_test.csv`), `data/mmlu/test/${subject}_test.csv`);
      const header = `The following are multiple choice questions (with answers) about ${subject.replace(/_/g, " ")}.\n\n`;
      const shots = dev.slice(0, 5).map((r) => `${formatQuestion(r)} ${r[5].trim()}\n\n`).join("");
      test.forEach((r, i) => {
        items.push(userItem(`mmlu/${subject}/${i}`, header + shots + formatQuestion(r), { group: subject, answer: r[5].trim() }));
      });
    }
    return pickSubset(items, limit, seed);
  },
  async score(items, generations) {
    const extracted = generations.map((g) => extractChoiceLetter(g.text));
    const correct = items.map((it, i) => extracted[i] !== undefined && extracted[i] === it.answer);
    return accuracyResult("mmlu", items, generations, correct, extracted, { perGroup: true });
  },
};

/**
 * PubMedQA PQA-L test (Jin et al. 2019): 500 expert-labelled questions with abstracts; the answer is yes / no /
 * maybe. Prompt: the abstract's context paragraphs, the question, and an instruction to answer with one word.
 * The first `yes`/`no`/`maybe` word of the response is the prediction. Metrics `accuracy`, `invalid_rate`, `n`.
 */
import { FormatError } from "../../errors.ts";
import type { Suite } from "../types.ts";
import { pickSubset, readDataFile, userItem } from "./common.ts";
import { accuracyResult } from "./score-utility.ts";

/** The first yes/no/maybe word of a response (case-insensitive), or undefined. */
export function extractYesNoMaybe(response: string): "yes" | "no" | "maybe" | undefined {
  const m = /\b(yes|no|maybe)\b/i.exec(response);
  return m ? (m[1].toLowerCase() as "yes" | "no" | "maybe") : undefined;
}

export const pubmedqaSuite: Suite = {
  name: "pubmedqa",
  kind: "utility",
  source: "PubMedQA PQA-L test split (Jin et al. 2019, pubmedqa/pubmedqa), 500 items, MIT; data/pubmedqa/SOURCE.md",
  defaultDecoding: { maxTokens: 16, temperature: 0 },
  headlineMetric: "accuracy",
  async load({ limit, seed }) {
    const text = await readDataFile("pubmedqa/pqal_test.jsonl");
    const items = text
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l, i) => {
        let o: { pmid: string; question: string; contexts: string[]; final_decision: string };
        try {
          o = JSON.parse(l);
        } catch (e) {
          throw new FormatError("pubmedqa.bad_line", `line ${i + 1} of data/pubmedqa/pqal_test.jsonl: got invalid JSON`, { cause: e });
        }
        const prompt = `Context: ${o.contexts.join("\n")}\n\nQuestion: ${o.question}\n\nAnswer the question with one word: yes, no, or maybe.`;
        return userItem(`pubmedqa/${o.pmid}`, prompt, { answer: o.final_decision, group: o.final_decision });
      });
    return pickSubset(items, limit, seed);
  },
  async score(items, generations) {
    const extracted = generations.map((g) => extractYesNoMaybe(g.text));
    const correct = items.map((it, i) => extracted[i] === it.answer);
    return accuracyResult("pubmedqa", items, generations, correct, extracted);
  },
};

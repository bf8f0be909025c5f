/**
 * A user-supplied utility suite: a JSON-lines file, one object per line:
 * `{"prompt": string, "answer": string, "scorer"?: "exact"|"regex"|"choice"|"contains", "system"?: string,
 *   "id"?: string, "group"?: string, "max_tokens"?: number}`.
 * Scorers (per line, else the suite default):
 *  - `exact`: trimmed response equals trimmed answer;
 *  - `contains`: response contains the answer, case-insensitive;
 *  - `regex`: `answer` is a JavaScript regular expression that must match the response;
 *  - `choice`: `answer` is a letter A–Z; the response's choice letter (see mmlu `extractChoiceLetter`) must equal it.
 * Metrics `accuracy`, `accuracy_<group>` (when groups are given), `invalid_rate` (choice only), `n`.
 */
import { FormatError, UsageError } from "../../errors.ts";
import type { ChatMessage, Suite, SuiteItem } from "../types.ts";
import { pickSubset, readUserFile } from "./common.ts";
import { extractChoiceLetter } from "./mmlu.ts";
import { accuracyResult } from "./score-utility.ts";

export const JSONL_SCORERS = ["exact", "regex", "choice", "contains"] as const;
export type JsonlScorer = (typeof JSONL_SCORERS)[number];

const ALL_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ".split("");

/** Scores one response; returns [correct, extracted] (extracted = what was compared, undefined if nothing). */
export function scoreJsonlAnswer(scorer: JsonlScorer, response: string, answer: string): [boolean, string | undefined] {
  switch (scorer) {
    case "exact":
      return [response.trim() === answer.trim(), response.trim()];
    case "contains":
      return [response.toLowerCase().includes(answer.toLowerCase()), response.trim()];
    case "regex":
      return [new RegExp(answer).test(response), response.trim()];
    case "choice": {
      const letter = extractChoiceLetter(response, ALL_LETTERS);
      return [letter !== undefined && letter === answer.trim().toUpperCase(), letter];
    }
  }
}

interface Line {
  prompt: string;
  answer: string;
  scorer: JsonlScorer;
}

/** The jsonl suite over `file`; `defaultScorer` applies to lines without a `scorer` field. */
export function createJsonlSuite(file: string | undefined, defaultScorer: JsonlScorer = "exact"): Suite {
  const lines = new Map<string, Line>();
  return {
    name: "jsonl",
    kind: "utility",
    source: `user JSONL file ${file ?? "<none>"}`,
    defaultDecoding: { maxTokens: 512, temperature: 0 },
    headlineMetric: "accuracy",
    async load({ limit, seed }) {
      if (!file) throw new UsageError("jsonl.path_missing", "suite jsonl needs a file: got no --jsonl FILE");
      const text = await readUserFile(file, "JSONL suite");
      const items: SuiteItem[] = [];
      text.split(/\r?\n/).forEach((l, i) => {
        if (l.trim() === "") return;
        let o: Record<string, unknown>;
        try {
          o = JSON.parse(l);
        } catch (e) {
          throw new FormatError("jsonl.bad_line", `line ${i + 1} of ${file}: got invalid JSON, expected {"prompt", "answer", …}`, { details: { file, line: i + 1 }, cause: e });
        }
        if (typeof o.prompt !== "string" || typeof o.answer !== "string") {
          throw new FormatError("jsonl.bad_record", `line ${i + 1} of ${file}: got no string "prompt" and "answer"`, { details: { file, line: i + 1 } });
        }
        const scorer = (o.scorer ?? defaultScorer) as JsonlScorer;
        if (!JSONL_SCORERS.includes(scorer)) {
          throw new FormatError("jsonl.bad_scorer", `line ${i + 1} of ${file}: got scorer ${JSON.stringify(o.scorer)}, expected ${JSONL_SCORERS.join("|")}`, { details: { file, line: i + 1 } });
        }
        if (scorer === "regex") {
          try {
            new RegExp(o.answer);
          } catch (e) {
            throw new FormatError("jsonl.bad_regex", `line ${i + 1} of ${file}: answer is not a valid regular expression`, { details: { file, line: i + 1 }, cause: e });
          }
        }
        const id = `jsonl/${typeof o.id === "string" || typeof o.id === "number" ? o.id : i}`;
        const messages: ChatMessage[] = [];
        if (typeof o.system === "string") messages.push({ role: "system", content: o.system });
        messages.push({ role: "user", content: o.prompt });
        lines.set(id, { prompt: o.prompt, answer: o.answer, scorer });
        items.push({
          id,
          messages,
          answer: o.answer,
          group: typeof o.group === "string" ? o.group : undefined,
          maxTokens: typeof o.max_tokens === "number" ? o.max_tokens : undefined,
        });
      });
      return pickSubset(items, limit, seed);
    },
    async score(items, generations) {
      const scored = items.map((it, i) => {
        const line = lines.get(it.id);
        const scorer = line?.scorer ?? defaultScorer;
        return scoreJsonlAnswer(scorer, generations[i].text, it.answer ?? "");
      });
      const hasGroups = items.some((it) => it.group !== undefined);
      const res = accuracyResult("jsonl", items, generations, scored.map((s) => s[0]), scored.map((s) => s[1]), { perGroup: hasGroups });
      const anyChoice = items.some((it) => (lines.get(it.id)?.scorer ?? defaultScorer) === "choice");
      if (!anyChoice) {
        const { invalid_rate: _drop, ...rest } = res.metrics;
        return { ...res, metrics: rest };
      }
      return res;
    },
  };
}

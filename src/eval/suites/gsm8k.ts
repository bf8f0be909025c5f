/**
 * GSM8K test (Cobbe et al. 2021): 1,319 problems, zero-shot chat prompt asking for a final `#### <number>` line.
 * Scored like lm-evaluation-harness `gsm8k` (paper.md §3.6), both variants reported:
 *  - strict: first match of `#### (-?[0-9.,]+)`;
 *  - flexible: last match of `(-?[$0-9.,]{2,})|(-?[0-9]+)` anywhere in the response;
 * then both prediction and reference drop commas, `$`, everything up to `#### `, and a trailing `.` before
 * exact string match. Metrics `exact_match_strict`, `exact_match_flexible` (headline), `n`.
 * (The harness is 5-shot from the train split; train is not shipped, so the prompt here is zero-shot.)
 */
import type { Suite } from "../types.ts";
import { pickSubset, readDataFile, userItem, promptOf } from "./common.ts";
import { FormatError } from "../../errors.ts";

const STRICT_RE = /#### (-?[0-9.,]+)/;
const FLEXIBLE_RE = /(-?[$0-9.,]{2,})|(-?[0-9]+)/g;

/** The harness's `regexes_to_ignore`: commas, `$`, anything through `#### `, a trailing `.`. */
export function normalizeGsm8kAnswer(s: string): string {
  return s.replace(/,/g, "").replace(/\$/g, "").replace(/[\s\S]*#### /, "").replace(/\.$/, "").trim();
}

/** Strict extraction: the first `#### <number>`; undefined if none. */
export function extractGsm8kStrict(response: string): string | undefined {
  const m = STRICT_RE.exec(response);
  return m ? normalizeGsm8kAnswer(m[1]) : undefined;
}

/** Flexible extraction: the last number-like match anywhere; undefined if none. */
export function extractGsm8kFlexible(response: string): string | undefined {
  let last: string | undefined;
  for (const m of response.matchAll(FLEXIBLE_RE)) last = m[1] ?? m[2];
  return last === undefined ? undefined : normalizeGsm8kAnswer(last);
}

/** The reference number of a GSM8K `answer` field (text after `#### `, normalised). */
export function gsm8kReference(answer: string): string {
  return normalizeGsm8kAnswer(answer.slice(answer.lastIndexOf("#### ")));
}

const INSTRUCTION =
  'Solve the following math problem step by step. At the end, write the final answer on its own line in the form "#### <number>".';

export const gsm8kSuite: Suite = {
  name: "gsm8k",
  kind: "utility",
  source: "GSM8K test.jsonl (Cobbe et al. 2021, openai/grade-school-math), 1,319 problems, MIT; lm-eval-harness scoring",
  defaultDecoding: { maxTokens: 512, temperature: 0 },
  headlineMetric: "exact_match_flexible",
  async load({ limit, seed }) {
    const text = await readDataFile("gsm8k/test.jsonl");
    const items = text
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l, i) => {
        let o: { question: string; answer: string };
        try {
          o = JSON.parse(l);
        } catch (e) {
          throw new FormatError("gsm8k.bad_line", `line ${i + 1} of data/gsm8k/test.jsonl: got invalid JSON`, { cause: e });
        }
        return userItem(`gsm8k/${i}`, `${INSTRUCTION}\n\nQuestion: ${o.question}`, { answer: gsm8kReference(o.answer) });
      });
    return pickSubset(items, limit, seed);
  },
  async score(items, generations) {
    let strict = 0;
    let flexible = 0;
    const out = items.map((it, i) => {
      const s = extractGsm8kStrict(generations[i].text);
      const f = extractGsm8kFlexible(generations[i].text);
      if (s !== undefined && s === it.answer) strict++;
      if (f !== undefined && f === it.answer) flexible++;
      return { id: it.id, prompt: promptOf(it), response: generations[i].text, verdict: `strict=${s ?? "-"} flexible=${f ?? "-"}`, correct: f === it.answer };
    });
    const n = items.length;
    return {
      suite: "gsm8k",
      metrics: { exact_match_strict: n ? strict / n : 0, exact_match_flexible: n ? flexible / n : 0, n },
      items: out,
    };
  },
};

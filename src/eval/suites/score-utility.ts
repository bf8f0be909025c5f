/** Shared accuracy bookkeeping for utility suites. */
import type { Generation, SuiteItem, SuiteResult } from "../types.ts";
import { promptOf } from "./common.ts";
import { slug } from "./score-safety.ts";

/**
 * Builds a SuiteResult from per-item correctness: `accuracy`, `n`, optional `invalid_rate` (no answer could be
 * extracted) and `accuracy_<group>` per group when `perGroup`.
 */
export function accuracyResult(
  suite: string,
  items: readonly SuiteItem[],
  generations: readonly Generation[],
  correct: readonly boolean[],
  extracted: ReadonlyArray<string | undefined>,
  options: { perGroup?: boolean } = {},
): SuiteResult {
  const n = items.length;
  const acc = (idx: number[]): number => (idx.length > 0 ? idx.filter((i) => correct[i]).length / idx.length : 0);
  const all = items.map((_, i) => i);
  const metrics: Record<string, number> = {
    accuracy: acc(all),
    n,
    invalid_rate: n > 0 ? extracted.filter((e) => e === undefined).length / n : 0,
  };
  if (options.perGroup) {
    for (const g of [...new Set(items.map((it) => it.group ?? ""))].sort()) {
      metrics[`accuracy_${slug(g)}`] = acc(all.filter((i) => (items[i].group ?? "") === g));
    }
  }
  return {
    suite,
    metrics,
    items: items.map((it, i) => ({
      id: it.id,
      group: it.group,
      prompt: promptOf(it),
      response: generations[i].text,
      verdict: extracted[i],
      correct: correct[i],
    })),
  };
}

/**
 * The only list of evaluation suites. `createSuite(name, options)` builds one; suites over user files (hexphi,
 * jsonl) take their path from the options.
 */
import { UsageError } from "../../errors.ts";
import { didYouMean } from "../../core/suggest.ts";
import type { Suite } from "../types.ts";
import { advbenchSuite } from "./advbench.ts";
import { harmbenchSuite } from "./harmbench.ts";
import { jbbSuite } from "./jbb.ts";
import { strongrejectSuite } from "./strongreject.ts";
import { createHexPhiSuite } from "./hexphi.ts";
import { xstestSuite } from "./xstest.ts";
import { gsm8kSuite } from "./gsm8k.ts";
import { mmluSuite } from "./mmlu.ts";
import { pubmedqaSuite } from "./pubmedqa.ts";
import { createJsonlSuite, type JsonlScorer } from "./jsonl.ts";
import { createOrganismSuite } from "./organism.ts";

export interface SuiteOptions {
  /** HEx-PHI copy (directory of category_<k>.csv, or .json/.jsonl). */
  readonly hexphiPath?: string;
  /** The `jsonl` suite's file. */
  readonly jsonlPath?: string;
  /** Scorer for jsonl lines without a `scorer` field. @default "exact" */
  readonly jsonlScorer?: JsonlScorer;
}

const FACTORIES: Record<string, (o: SuiteOptions) => Suite> = {
  advbench: () => advbenchSuite,
  harmbench: () => harmbenchSuite,
  jbb: () => jbbSuite,
  strongreject: () => strongrejectSuite,
  hexphi: (o) => createHexPhiSuite(o.hexphiPath),
  xstest: () => xstestSuite,
  gsm8k: () => gsm8kSuite,
  mmlu: () => mmluSuite,
  pubmedqa: () => pubmedqaSuite,
  jsonl: (o) => createJsonlSuite(o.jsonlPath, o.jsonlScorer),
  organism: () => createOrganismSuite(),
};

/** Every suite name, in `--help` order. */
export const SUITE_NAMES: readonly string[] = Object.keys(FACTORIES);

/** Builds a suite by name; UsageError for an unknown name. */
export function createSuite(name: string, options: SuiteOptions = {}): Suite {
  const f = FACTORIES[name];
  if (!f) {
    throw new UsageError("eval.unknown_suite", `unknown suite in --suite: got ${JSON.stringify(name)}, expected one of ${SUITE_NAMES.join(", ")}`, {
      hint: didYouMean(name, SUITE_NAMES),
    });
  }
  return f(options);
}

/** The only list of judges. LLM judges need a backend serving the judge model (`--judge-endpoint`). */
import { UsageError } from "../../errors.ts";
import type { Backend, Judge } from "../types.ts";
import { keywordJudge } from "./keyword.ts";
import { xstestJudge } from "./xstest.ts";
import { createLlamaGuard3Judge } from "./llama-guard-3.ts";
import { createWildGuardJudge } from "./wildguard.ts";

export const JUDGE_NAMES = ["keyword", "xstest", "llama-guard-3", "wildguard"] as const;
export type JudgeName = (typeof JUDGE_NAMES)[number];

/** True for judges that run a model (and so need `judgeBackend`). */
export function judgeNeedsBackend(name: string): boolean {
  return name === "llama-guard-3" || name === "wildguard";
}

/**
 * Builds a judge by name. Throws UsageError for an unknown name, or for an LLM judge without a backend.
 */
export function createJudge(name: string, options: { judgeBackend?: Backend } = {}): Judge {
  switch (name) {
    case "keyword":
      return keywordJudge;
    case "xstest":
      return xstestJudge;
    case "llama-guard-3":
    case "wildguard": {
      if (!options.judgeBackend) {
        throw new UsageError("eval.judge_endpoint_missing", `judge ${name} needs a served judge model: got no --judge-endpoint`, {
          hint: `serve ${name === "wildguard" ? "allenai/wildguard" : "meta-llama/Llama-Guard-3-8B"} with vLLM or llama-server and pass --judge-endpoint URL --judge-model NAME`,
        });
      }
      return name === "wildguard" ? createWildGuardJudge(options.judgeBackend) : createLlamaGuard3Judge(options.judgeBackend);
    }
    default:
      throw new UsageError("eval.unknown_judge", `unknown judge in --judge: got ${JSON.stringify(name)}, expected one of ${JUDGE_NAMES.join(", ")}`);
  }
}

/**
 * `realign report DIR`: (re)builds report.json, report.md and report.html of a sweep directory from its saved
 * points, optionally with another recommendation rule or other axes (for this report only).
 */
import type { Command } from "commander";
import { UsageError } from "../../errors.ts";

export interface ChoiceFlags {
  rule?: string;
  maxAsrIncrease?: string;
  maxAsr?: string;
  asrMetric?: string;
  utilityMetric?: string;
}

function rate(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const x = Number(value);
  if (value.trim() === "" || !Number.isFinite(x)) {
    throw new UsageError("cli.bad_number", `${flag}: got ${value}, expected a rate such as 0.02 (= 2 points of ASR)`);
  }
  return x;
}

/** Choice flags → the options stored in sweep.json (validated when the rule is built). */
export function choiceOptions(flags: ChoiceFlags): {
  rule?: string;
  maxAsrIncrease?: number;
  maxAsr?: number;
  asrMetric?: string;
  utilityMetric?: string;
} {
  return {
    rule: flags.rule,
    maxAsrIncrease: rate(flags.maxAsrIncrease, "--max-asr-increase"),
    maxAsr: rate(flags.maxAsr, "--max-asr"),
    asrMetric: flags.asrMetric,
    utilityMetric: flags.utilityMetric,
  };
}

/** Adds the recommendation and axis flags shared by `sweep` and `report`. */
export function addChoiceOptions(cmd: Command): Command {
  return cmd
    .option("--rule <name>", "asr-budget (default): best utility with ASR ≤ ASR(aligned) + ε | asr-cap: ASR ≤ --max-asr | min-asr")
    .option("--max-asr-increase <ε>", "asr-budget's ε as a rate (0.02 = 2 points)", undefined)
    .option("--max-asr <x>", "asr-cap's absolute ASR limit (implies --rule asr-cap)")
    .option("--asr-metric <refs>", "ASR axis: suite.metric[,…], prefix 1- to invert (default per suite, see docs/sweep.md)")
    .option("--utility-metric <refs>", "utility axis: suite.metric[,…] (default: the utility suites' headline metrics)");
}

export function register(program: Command): void {
  const cmd = program
    .command("report")
    .description("(re)build report.json, report.md and report.html of a sweep directory from its saved points")
    .argument("<dir>", "the --out directory of a realign sweep")
    .option("--json", "print report.json to stdout");
  addChoiceOptions(cmd)
    .addHelpText("after", "\nExample:\n  realign report out/demo-sweep --max-asr-increase 0.05\n")
    .action(async (dir: string, flags: ChoiceFlags & { json?: boolean }) => {
      const { writeReport } = await import("../../sweep/write-report.ts");
      const { terminalTable } = await import("../../report/markdown.ts");
      const { toReportJson } = await import("../../report/json.ts");
      const { summary, files } = await writeReport(dir, choiceOptions(flags));
      if (flags.json) {
        process.stdout.write(JSON.stringify(toReportJson(summary)) + "\n");
        return;
      }
      process.stdout.write(
        [
          terminalTable(summary),
          "",
          `recommended: ${summary.recommended.reason}`,
          `rule: ${summary.recommended.ruleText}`,
          summary.missing.length > 0 ? `unfinished: no result yet for ${summary.missing.join(", ")}` : "",
          `report: ${files.html}`,
          "",
        ]
          .filter((l, i, a) => l !== "" || i === a.length - 1 || a[i - 1] !== "")
          .join("\n"),
      );
    });
}

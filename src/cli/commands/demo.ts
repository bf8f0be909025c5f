/**
 * `realign demo` (what `npm start` runs): the paper's loop on the shipped model organism. Sweeps λ between
 * examples/organism/aligned (λ=0) and examples/organism/finetuned (λ=1) with the linear merge, evaluates each
 * point in-process (node-llama-cpp) on the organism suite, prints the table and the recommended λ, and writes
 * the report to ./out/demo-sweep (resumed if already there).
 */
import type { Command } from "commander";
import { fileURLToPath } from "node:url";
import { join, relative } from "node:path";

/** Repository root, from this file's location (src/cli/commands/demo.ts). */
const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..", "..");

/** The demo's grid: the references, the knee of the organism's curve (ASR jumps between 0.6 and 0.7). */
export const DEMO_LAMBDAS = "0,0.5,0.6,0.7,1";

/** Declares `realign demo`. */
export function register(program: Command): void {
  program
    .command("demo")
    .description(`sweep λ ∈ {${DEMO_LAMBDAS}} on the shipped model organism, evaluate in-process, report (about a minute on 2 cores)`)
    .option("--out <dir>", "sweep directory (resumed if present, replaced if it holds another sweep)", join("out", "demo-sweep"))
    .option("--lambdas <list>", "λ grid", DEMO_LAMBDAS)
    .option("--json", "print report.json to stdout")
    .action(async (flags: { out: string; lambdas: string; json?: boolean }) => {
      const { runCliSweep } = await import("./sweep.ts");
      const organism = join(ROOT, "examples", "organism");
      const show = (p: string): string => relative(process.cwd(), p) || ".";
      const aligned = show(join(organism, "aligned"));
      const tuned = show(join(organism, "finetuned"));
      if (!flags.json) {
        process.stderr.write(
          [
            "realign demo: the model organism lost its refusals when fine-tuned on arithmetic. Merging it back with",
            "its aligned model, θ = (1−λ)·θ_aligned + λ·θ_tuned (arXiv 2412.19512), trades safety for task skill;",
            `this sweeps λ ∈ {${flags.lambdas}} and evaluates each model in-process with llama.cpp.`,
            "",
          ].join("\n"),
        );
      }
      const { summary, files } = await runCliSweep({
        aligned,
        tuned,
        methods: "linear",
        lambdas: flags.lambdas,
        suites: "organism",
        out: flags.out,
        seed: 0,
        keep: false,
        force: true,
        quiet: flags.json === true,
        choice: {},
      });
      if (flags.json) {
        const { toReportJson } = await import("../../report/json.ts");
        process.stdout.write(JSON.stringify(toReportJson(summary)) + "\n");
        return;
      }
      const { terminalTable } = await import("../../report/markdown.ts");
      process.stdout.write(
        [
          "",
          "ASR = share of the 96 harmful prompts not refused; utility = arithmetic accuracy on 300 held-out sums.",
          "",
          terminalTable(summary),
          "",
          `recommended: ${summary.recommended.reason}`,
          `rule: ${summary.recommended.ruleText}`,
          `report: ${show(files.html)} (also report.md, report.json)`,
          "",
          `next: npx realign sweep --aligned ${aligned} --tuned ${tuned} --method linear,slerp --lambdas 0:1:0.1 --suite organism --out out/sweep`,
          "",
        ].join("\n"),
      );
    });
}

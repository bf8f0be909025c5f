/**
 * `realign demo` (what `npm start` runs): merges the shipped model organism — examples/organism/aligned and
 * examples/organism/finetuned — at λ = 0.5 into ./out (replaced if present) and prints the summary.
 */
import type { Command } from "commander";
import { fileURLToPath } from "node:url";
import { join, relative } from "node:path";

/** Repository root, from this file's location (src/cli/commands/demo.ts). */
const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..", "..");

/** Declares `realign demo`. */
export function register(program: Command): void {
  program
    .command("demo")
    .description("merge the shipped model organism (aligned + finetuned) at λ = 0.5 into ./out")
    .option("--out <dir>", "output directory (replaced)", "out")
    .option("--json", "print a machine-readable summary")
    .action(async (flags: { out: string; json?: boolean }) => {
      const { recipeFromFlags } = await import("../../merge/recipe.ts");
      const { mergeRecipe } = await import("../../merge/run.ts");
      const { createProgress } = await import("../render.ts");
      const { cliSignal } = await import("../signal.ts");
      const { formatMergeSummary } = await import("./merge.ts");
      const organism = join(ROOT, "examples", "organism");
      const show = (p: string): string => relative(process.cwd(), p) || ".";
      const recipe = recipeFromFlags({
        aligned: show(join(organism, "aligned")),
        tuned: show(join(organism, "finetuned")),
        lambda: 0.5,
      });
      const progress = await createProgress({ quiet: flags.json === true });
      try {
        const summary = await mergeRecipe(recipe, {
          out: flags.out,
          force: true,
          signal: cliSignal,
          onEvent: progress.onEvent,
          commandLine: `realign demo --out ${flags.out}`,
        });
        progress.stop();
        if (flags.json) {
          process.stdout.write(JSON.stringify(summary) + "\n");
          return;
        }
        process.stdout.write(
          [
            "realign demo: the model organism's fine-tuned model (safety erased by fine-tuning) merged back with",
            "its aligned model, θ = (1−λ)·θ_aligned + λ·θ_tuned at λ = 0.5 (arXiv 2412.19512).",
            "",
            formatMergeSummary(summary),
            "",
            `next: realign merge --aligned ${recipe.models[0]!.path} --tuned ${recipe.models[1]!.path} --lambda 0.3 --out merged`,
            "",
          ].join("\n"),
        );
      } finally {
        progress.stop();
      }
    });
}

/**
 * Builds report.json, report.md and report.html of a sweep directory from its saved points (sweep.json +
 * points/*.json): used at the end of `realign sweep` and by `realign report DIR`. Partial sweeps are
 * reported with their missing points listed.
 */
import { join, resolve } from "node:path";
import { InputError } from "../errors.ts";
import { defaultAxes, parseMetricRefs, type Axes } from "./axes.ts";
import { parseRule } from "./choose.ts";
import { planGrid, type SweepMethodName } from "./grid.ts";
import { readPoints, readSweepFile, writeJsonAtomic, writeTextAtomic, type ChoiceOptions } from "./state.ts";
import { summarize } from "./summarize.ts";
import type { SweepSummary } from "./types.ts";
import { toReportJson } from "../report/json.ts";
import { toMarkdown } from "../report/markdown.ts";
import { renderPlots } from "../report/plots.ts";
import { toHtml } from "../report/html.ts";

export interface ReportFiles {
  readonly json: string;
  readonly markdown: string;
  readonly html: string;
}

/** Axes from choice options (`--asr-metric`, `--utility-metric`) or the suites' defaults (axes.ts). */
export function axesFor(choice: ChoiceOptions, suites: Parameters<typeof defaultAxes>[0]): Axes {
  const d = defaultAxes(suites);
  return {
    asr: choice.asrMetric ? parseMetricRefs(choice.asrMetric, "--asr-metric") : d.asr,
    utility: choice.utilityMetric ? parseMetricRefs(choice.utilityMetric, "--utility-metric") : d.utility,
  };
}

/**
 * Summarises `dir` and writes its three report files (atomically each). `overrides` replace the choice options
 * recorded in sweep.json (a different rule or axis for this report only).
 * @throws InputError `sweep.not_a_sweep` when dir has no sweep.json; `sweep.no_points` when nothing finished;
 *   errors of summarize (missing metric, no λ=0 point).
 */
export async function writeReport(dir: string, overrides: ChoiceOptions = {}, now: Date = new Date()): Promise<{ summary: SweepSummary; files: ReportFiles }> {
  const out = resolve(dir);
  const state = readSweepFile(out);
  if (!state) {
    throw new InputError("sweep.not_a_sweep", `sweep directory ${dir}: got no sweep.json, expected the --out of a realign sweep`, {
      details: { dir: out },
      hint: "pass the directory given to realign sweep --out",
    });
  }
  const points = readPoints(out, state.settings.key);
  if (points.length === 0) {
    throw new InputError("sweep.no_points", `sweep directory ${dir}: got no finished point, expected at least λ=0`, {
      details: { dir: out },
      hint: "run (or resume) the sweep first",
    });
  }
  const choice: ChoiceOptions = { ...state.choice, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) };
  const done = new Set(points.map((p) => p.id));
  const missing = planGrid(state.settings.methods as SweepMethodName[], state.settings.lambdas)
    .map((j) => j.id)
    .filter((id) => !done.has(id));
  const summary = summarize({
    settings: state.settings,
    versions: state.versions,
    points,
    axes: axesFor(choice, state.settings.suites),
    rule: parseRule(choice),
    missing,
    created: now.toISOString(),
  });
  const files: ReportFiles = { json: join(out, "report.json"), markdown: join(out, "report.md"), html: join(out, "report.html") };
  const plots = await renderPlots(summary);
  writeJsonAtomic(files.json, toReportJson(summary));
  writeTextAtomic(files.markdown, toMarkdown(summary));
  writeTextAtomic(files.html, toHtml(summary, plots));
  return { summary, files };
}

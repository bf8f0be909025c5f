/**
 * The report's three plots as SVG strings: ASR vs λ, utility vs λ, and the Pareto plot (utility vs ASR).
 * Vega-Lite specs compiled with `vl.compile(spec).spec` and rendered headless by
 * `new vega.View(vega.parse(spec), {renderer: "none"}).toSVG()` (ecosystem.md §8): no canvas, no DOM, no
 * fonts needed (the SVG names a font family; the browser that displays it supplies the glyphs).
 */
import * as vl from "vega-lite";
import * as vega from "vega";
import type { SweepSummary } from "../sweep/types.ts";
import { formatLambda } from "./escape.ts";

/** Plot size in CSS pixels (the plotting area; axes and legend add to it). */
const WIDTH = 420;
const HEIGHT = 260;
/** The recommended point's ring: black, so it differs from every method colour. */
const RING = "#111";
const FONT = "system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif";

export interface ReportPlots {
  readonly asrVsLambda: string;
  readonly utilityVsLambda: string;
  readonly pareto: string;
}

interface Row {
  method: string;
  lambda: number;
  asr: number;
  utility: number;
  label: string;
  /** `λ=0.5`, or empty when another point already labels this position. */
  lambdaText: string;
  kind: string;
}

function baseConfig(): Record<string, unknown> {
  return {
    font: FONT,
    title: { fontSize: 14, anchor: "start" },
    axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: "#e6e6e6" },
    legend: { labelFontSize: 11, titleFontSize: 11, orient: "bottom", direction: "horizontal" },
    view: { stroke: "#ccc" },
  };
}

async function render(spec: Record<string, unknown>): Promise<string> {
  const compiled = vl.compile({ $schema: "https://vega.github.io/schema/vega-lite/v6.json", config: baseConfig(), ...spec } as unknown as vl.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Colour by method, in the sweep's method order (legend order = --method order). */
function methodColor(rows: readonly Row[]): Record<string, unknown> {
  const methods = [...new Set(rows.map((r) => r.method))];
  return { field: "method", type: "nominal", title: "method", sort: methods, scale: { domain: methods, scheme: "tableau10" } };
}

function vsLambda(rows: Row[], field: "asr" | "utility", title: string, yTitle: string, rule: number | undefined, ruleLabel: string): Record<string, unknown> {
  const color = methodColor(rows);
  const layers: unknown[] = [
    {
      mark: { type: "line", point: { filled: true, size: 50 }, strokeWidth: 2 },
      encoding: {
        x: { field: "lambda", type: "quantitative", title: "λ (0 = aligned, 1 = tuned)", scale: { domain: [0, 1] } },
        y: { field, type: "quantitative", title: yTitle, scale: { zero: true } },
        color,
        tooltip: [{ field: "label" }, { field, format: ".3f" }],
      },
    },
    {
      transform: [{ filter: "datum.kind === 'recommended'" }],
      mark: { type: "point", shape: "circle", size: 260, strokeWidth: 2.5, color: RING, filled: false },
      encoding: { x: { field: "lambda", type: "quantitative" }, y: { field, type: "quantitative" } },
    },
  ];
  if (rule !== undefined) {
    layers.push({
      data: { values: [{ y: rule, text: ruleLabel }] },
      layer: [
        { mark: { type: "rule", strokeDash: [5, 4], color: "#888" }, encoding: { y: { field: "y", type: "quantitative" } } },
        {
          mark: { type: "text", align: "left", dx: 4, dy: -6, color: "#666", fontSize: 10 },
          encoding: { y: { field: "y", type: "quantitative" }, x: { datum: 0 }, text: { field: "text" } },
        },
      ],
    });
  }
  return { title, width: WIDTH, height: HEIGHT, data: { values: rows }, layer: layers };
}

function paretoSpec(rows: Row[], front: Row[], utilityTitle: string): Record<string, unknown> {
  const labelled = rows.filter((r) => r.lambdaText !== "").sort((a, b) => a.asr - b.asr || b.utility - a.utility);
  // the rightmost label goes on the left side so it is not cut off by the plot's edge
  const isLeft = (i: number): boolean => (i === labelled.length - 1 && labelled.length > 1 ? true : i % 2 === 1);
  return {
    title: "Pareto front: utility vs ASR",
    width: WIDTH,
    height: HEIGHT,
    layer: [
      {
        data: { values: front },
        mark: { type: "line", color: "#999", strokeDash: [4, 3], interpolate: "step-after" },
        encoding: { x: { field: "asr", type: "quantitative" }, y: { field: "utility", type: "quantitative" }, order: { field: "asr" } },
      },
      {
        data: { values: rows },
        mark: { type: "point", filled: true, size: 70 },
        encoding: {
          x: { field: "asr", type: "quantitative", title: "ASR (lower is safer)", scale: { zero: true } },
          y: { field: "utility", type: "quantitative", title: utilityTitle, scale: { zero: true } },
          color: methodColor(rows),
          shape: { field: "kind", type: "nominal", legend: null, scale: { domain: ["front", "dominated", "recommended"], range: ["circle", "triangle-up", "circle"] } },
          tooltip: [{ field: "label" }, { field: "asr", format: ".3f" }, { field: "utility", format: ".3f" }],
        },
      },
      // labels alternate above-right / below-left along the front so neighbours do not overprint
      {
        data: { values: labelled.filter((_, i) => !isLeft(i)) },
        mark: { type: "text", align: "left", dx: 7, dy: -8, fontSize: 10, color: "#444" },
        encoding: { x: { field: "asr", type: "quantitative" }, y: { field: "utility", type: "quantitative" }, text: { field: "lambdaText" } },
      },
      {
        data: { values: labelled.filter((_, i) => isLeft(i)) },
        mark: { type: "text", align: "right", dx: -7, dy: 12, fontSize: 10, color: "#444" },
        encoding: { x: { field: "asr", type: "quantitative" }, y: { field: "utility", type: "quantitative" }, text: { field: "lambdaText" } },
      },
      {
        data: { values: rows.filter((r) => r.kind === "recommended") },
        mark: { type: "point", shape: "circle", size: 300, strokeWidth: 2.5, color: RING, filled: false },
        encoding: { x: { field: "asr", type: "quantitative" }, y: { field: "utility", type: "quantitative" } },
      },
    ],
  };
}

/**
 * Renders the three plots for `summary`. The recommended point is circled in black; the ASR plot draws the
 * rule's ASR threshold as a dashed line. Points sharing (asr, utility) overlap; labels give λ.
 */
export async function renderPlots(summary: SweepSummary): Promise<ReportPlots> {
  const isMulti = new Set(summary.points.map((p) => p.method)).size > 1;
  const rows: Row[] = summary.points.map((p) => ({
    method: p.method,
    lambda: p.lambda,
    asr: p.asr,
    utility: p.utility,
    label: `${p.method} λ=${formatLambda(p.lambda)}`,
    lambdaText: isMulti ? `${p.method} λ=${formatLambda(p.lambda)}` : `λ=${formatLambda(p.lambda)}`,
    kind: p.isRecommended ? "recommended" : p.isOnFront ? "front" : "dominated",
  }));
  // λ labels on the front only (dominated points have tooltips), one per position so shared points
  // (λ=0 of every method) are not overprinted
  const seen = new Set<string>();
  for (const r of rows) {
    const key = `${r.asr.toFixed(4)},${r.utility.toFixed(4)}`;
    if (seen.has(key) || r.kind === "dominated") r.lambdaText = "";
    seen.add(key);
  }
  const front = summary.front.map((id) => rows[summary.points.findIndex((p) => p.id === id)]!).sort((a, b) => a.asr - b.asr);
  const utilityTitle = summary.axes.isUtilityLambda ? "utility (= λ, no utility suite)" : `utility: ${summary.axes.utility.join(" + ")}`;
  const rec = summary.recommended;
  const [asrVsLambda, utilityVsLambda, pareto] = await Promise.all([
    render(vsLambda(rows, "asr", "Attack success rate vs λ", `ASR: ${summary.axes.asr.join(" + ")}`, rec.maxAsr, rec.maxAsr === undefined ? "" : `ASR threshold ${rec.maxAsr.toFixed(3)}`)),
    render(vsLambda(rows, "utility", "Utility vs λ", utilityTitle, undefined, "")),
    render(paretoSpec(rows, front, utilityTitle)),
  ]);
  return { asrVsLambda, utilityVsLambda, pareto };
}

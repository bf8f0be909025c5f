/** report.md and the terminal table, pure: the sweep's points, Pareto front and recommendation as tables. */
import type { SummaryPoint, SweepSummary } from "../sweep/types.ts";
import { escapeMarkdownCell as cell, formatNumber as num, formatLambda } from "./escape.ts";

/** `suite.metric` columns present in any point, in first-seen order, counts (`*_n`) last. */
export function metricColumns(points: readonly SummaryPoint[]): string[] {
  const cols: string[] = [];
  for (const p of points) {
    for (const [suite, metrics] of Object.entries(p.metrics)) {
      for (const m of Object.keys(metrics)) {
        const c = `${suite}.${m}`;
        if (!cols.includes(c)) cols.push(c);
      }
    }
  }
  const isCount = (c: string): boolean => /(_n|\.n|_count)$/.test(c);
  return [...cols.filter((c) => !isCount(c)), ...cols.filter(isCount)];
}

function metricOf(p: SummaryPoint, col: string): number | undefined {
  const dot = col.indexOf(".");
  return p.metrics[col.slice(0, dot)]?.[col.slice(dot + 1)];
}

function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (r: readonly string[]): string => `| ${r.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

function formatMetric(col: string, v: number | undefined): string {
  return v !== undefined && Number.isInteger(v) && /(_n|\.n|_count)$/.test(col) ? String(v) : num(v);
}

/** The points table (Markdown): method, λ, model, ASR, utility, front/recommended marks, then every metric. */
export function pointsTable(summary: SweepSummary): string {
  const cols = metricColumns(summary.points);
  const rows = summary.points.map((p) => [
    cell(p.method),
    formatLambda(p.lambda),
    p.model,
    num(p.asr),
    num(p.utility),
    p.isRecommended ? "**recommended**" : p.isOnFront ? "front" : "",
    ...cols.map((c) => formatMetric(c, metricOf(p, c))),
  ]);
  return table(["method", "λ", "model", "ASR", summary.axes.isUtilityLambda ? "utility (=λ)" : "utility", "Pareto", ...cols.map(cell)], rows);
}

/** A compact plain-text table for the terminal (fixed-width columns). */
export function terminalTable(summary: SweepSummary): string {
  const header = ["method", "λ", "ASR", summary.axes.isUtilityLambda ? "utility(=λ)" : "utility", ""];
  const rows = summary.points.map((p) => [p.method, formatLambda(p.lambda), num(p.asr), num(p.utility), p.isRecommended ? "← recommended" : p.isOnFront ? "front" : ""]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: readonly string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [fmt(header), ...rows.map(fmt)].join("\n");
}

/** The whole report.md. */
export function toMarkdown(summary: SweepSummary): string {
  const s = summary.settings;
  const r = summary.recommended;
  const byId = new Map(summary.points.map((p) => [p.id, p]));
  const out: string[] = [];
  out.push("# realign sweep report", "");
  out.push(`Aligned (λ=0): \`${s.aligned}\` · tuned (λ=1): \`${s.tuned}\` · backend: ${s.backend.kind} · suites: ${s.suites.map((x) => x.name).join(", ")}`, "");
  out.push(`**Recommended: ${r.method} λ=${formatLambda(r.lambda)}** — ${cell(r.reason)}.`, "");
  out.push(`Rule \`${r.rule}\`: ${cell(r.ruleText)}. ${cell(summary.axes.note)}.`, "");
  if (summary.missing.length > 0) {
    out.push(`**Unfinished sweep:** no result yet for ${summary.missing.join(", ")}; rerun the same \`realign sweep\` to complete it.`, "");
  }
  out.push("## Points", "", pointsTable(summary), "");
  out.push("## Pareto front (ASR ↓, utility ↑)", "");
  out.push(table(["method", "λ", "ASR", "utility"], summary.front.map((id) => {
    const p = byId.get(id)!;
    return [cell(p.method), formatLambda(p.lambda), num(p.asr), num(p.utility)];
  })), "");
  out.push("## Settings", "");
  out.push(`- methods: ${s.methods.join(", ")}; λ grid: ${s.lambdas.map(formatLambda).join(", ")} (λ=0 and λ=1 always evaluated)`);
  out.push(`- seed: ${s.seed}; limit per suite: ${s.limit ?? "all"}; merged dtype: ${s.dtype ?? "input's"}`);
  if (Object.keys(s.methodParams).length > 0) out.push(`- method parameters: \`${JSON.stringify(s.methodParams)}\``);
  if (s.decoding && Object.keys(s.decoding).length > 0) out.push(`- decoding overrides: \`${JSON.stringify(s.decoding)}\``);
  out.push(`- backend: \`${JSON.stringify(s.backend)}\``);
  out.push(`- versions: ${Object.entries(summary.versions).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  out.push(`- created: ${summary.created}`, "");
  return out.join("\n");
}

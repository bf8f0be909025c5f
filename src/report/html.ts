/**
 * report.html, pure: one self-contained page (inline CSS, inline SVG plots, no scripts, no network) with the
 * recommendation, the three plots, the tables and example responses per point. Every prompt, response, path
 * and name is HTML-escaped; the SVGs come from vega (plots.ts), whose text is XML-escaped by vega.
 */
import type { SummaryPoint, SweepSummary } from "../sweep/types.ts";
import type { ReportPlots } from "./plots.ts";
import { escapeHtml as h, formatNumber as num, formatLambda } from "./escape.ts";
import { metricColumns } from "./markdown.ts";

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;color:#222;max-width:1180px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;margin-bottom:14px}.meta code{background:#f4f4f4;padding:1px 4px;border-radius:3px}
.rec{background:#f3f8ee;border:1px solid #b7d7a0;border-radius:6px;padding:10px 14px;margin:12px 0}
.rec b{font-size:16px}.warn{background:#fff6e0;border:1px solid #f0cf7a;border-radius:6px;padding:8px 12px}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}.plots figure{margin:0;border:1px solid #eee;border-radius:6px;padding:6px}
.plots svg{width:100%;height:auto}
table{border-collapse:collapse;margin:6px 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#fafafa}td.n{text-align:right;font-variant-numeric:tabular-nums}tr.recommended td{background:#eef7e6;font-weight:600}
.scroll{overflow-x:auto}details{margin:6px 0}summary{cursor:pointer;font-weight:600}
td.resp{white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;max-width:560px}
.small{color:#666;font-size:12px}
`;

function numCell(v: number | undefined, isCount = false): string {
  return `<td class="n">${v !== undefined && isCount && Number.isInteger(v) ? String(v) : num(v)}</td>`;
}

function pointsTable(summary: SweepSummary): string {
  const cols = metricColumns(summary.points);
  const head = ["method", "λ", "model", "ASR", summary.axes.isUtilityLambda ? "utility (=λ)" : "utility", "Pareto", ...cols].map((c) => `<th>${h(c)}</th>`).join("");
  const rows = summary.points.map((p) => {
    const metric = (c: string): number | undefined => p.metrics[c.slice(0, c.indexOf("."))]?.[c.slice(c.indexOf(".") + 1)];
    const mark = p.isRecommended ? "recommended" : p.isOnFront ? "front" : "";
    return `<tr${p.isRecommended ? ' class="recommended"' : ""}><td>${h(p.method)}</td><td class="n">${formatLambda(p.lambda)}</td><td>${h(p.model)}</td>${numCell(p.asr)}${numCell(p.utility)}<td>${mark}</td>${cols.map((c) => numCell(metric(c), /(_n|_count)$/.test(c))).join("")}</tr>`;
  });
  return `<div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>${rows.join("")}</tbody></table></div>`;
}

function examples(p: SummaryPoint): string {
  const suites = Object.entries(p.examples).filter(([, xs]) => xs.length > 0);
  if (suites.length === 0) return "";
  const body = suites
    .map(([suite, xs]) => {
      const rows = xs
        .map((x) => {
          const verdict = x.verdict ?? (x.correct === undefined ? "" : x.correct ? "correct" : "wrong");
          return `<tr><td>${h(x.group ?? "")}</td><td>${h(x.prompt)}</td><td class="resp">${h(x.response)}</td><td>${h(verdict)}</td></tr>`;
        })
        .join("");
      return `<p class="small">${h(suite)}</p><table><thead><tr><th>group</th><th>prompt</th><th>response</th><th>verdict</th></tr></thead><tbody>${rows}</tbody></table>`;
    })
    .join("");
  return `<details${p.isRecommended ? " open" : ""}><summary>${h(p.method)} λ=${formatLambda(p.lambda)} (${h(p.model)}) — ASR ${num(p.asr)}, utility ${num(p.utility)}</summary>${body}</details>`;
}

/** Builds report.html from the summary and its rendered plots. */
export function toHtml(summary: SweepSummary, plots: ReportPlots): string {
  const s = summary.settings;
  const r = summary.recommended;
  const byId = new Map(summary.points.map((p) => [p.id, p]));
  const front = summary.front
    .map((id) => byId.get(id)!)
    .map((p) => `<tr><td>${h(p.method)}</td><td class="n">${formatLambda(p.lambda)}</td>${numCell(p.asr)}${numCell(p.utility)}</tr>`)
    .join("");
  const versions = Object.entries(summary.versions).map(([k, v]) => `${h(k)} ${h(v)}`).join(", ");
  const missing =
    summary.missing.length > 0
      ? `<p class="warn">Unfinished sweep: no result yet for ${h(summary.missing.join(", "))}. Rerun the same <code>realign sweep</code> to complete it.</p>`
      : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>realign sweep report</title><style>${CSS}</style></head>
<body>
<h1>realign sweep report</h1>
<div class="meta">aligned (λ=0) <code>${h(s.aligned)}</code> · tuned (λ=1) <code>${h(s.tuned)}</code> · backend ${h(s.backend.kind)} · suites ${h(s.suites.map((x) => x.name).join(", "))}</div>
<div class="rec"><b>Recommended: ${h(r.method)} λ=${formatLambda(r.lambda)}</b><br>${h(r.reason)}.<br><span class="small">Rule <code>${h(r.rule)}</code>: ${h(r.ruleText)}. ${h(summary.axes.note)}.</span></div>
${missing}
<h2>Plots</h2>
<div class="plots">
<figure>${plots.asrVsLambda}<figcaption class="small">Dashed line: the rule's ASR threshold; black ring: recommended point.</figcaption></figure>
<figure>${plots.utilityVsLambda}</figure>
<figure>${plots.pareto}<figcaption class="small">Up and left is better. Circles: Pareto front (no point has both lower ASR and higher utility); triangles: dominated points; black ring: recommended. The dashed staircase joins the front.</figcaption></figure>
</div>
<h2>Points</h2>
${pointsTable(summary)}
<h2>Pareto front (ASR ↓, utility ↑)</h2>
<table><thead><tr><th>method</th><th>λ</th><th>ASR</th><th>utility</th></tr></thead><tbody>${front}</tbody></table>
<h2>Example responses</h2>
${summary.points.map(examples).join("\n")}
<h2>Settings</h2>
<ul class="small">
<li>methods ${h(s.methods.join(", "))}; λ grid ${h(s.lambdas.map(formatLambda).join(", "))} (λ=0 and λ=1 always evaluated)</li>
<li>seed ${s.seed}; limit per suite ${h(String(s.limit ?? "all"))}; merged dtype ${h(s.dtype ?? "input's")}</li>
<li>method parameters <code>${h(JSON.stringify(s.methodParams))}</code>; decoding overrides <code>${h(JSON.stringify(s.decoding ?? {}))}</code></li>
<li>backend <code>${h(JSON.stringify(s.backend))}</code></li>
<li>versions ${versions}; created ${h(summary.created)}</li>
</ul>
</body></html>
`;
}

/** Escaping for the report builders. Every string that comes from a model, a prompt or a path goes through these. */

/** Escapes text for HTML element content and double- or single-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/**
 * Escapes text for one Markdown table cell: `|` and backslashes escaped, newlines as `<br>`, HTML special
 * characters as entities (Markdown renderers pass raw HTML through).
 */
export function escapeMarkdownCell(text: string): string {
  return escapeHtml(text).replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/\r?\n/g, "<br>");
}

/** A rate or score with 3 decimals (`0.146`); `–` for undefined/NaN. */
export function formatNumber(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(3);
}

/** λ in its shortest decimal form (0.5, 0.25, 1), rounded to 9 decimals as the sweep grid is (sweep/grid.ts). */
export function formatLambda(lambda: number): string {
  const r = Number(lambda.toFixed(9));
  return String(Object.is(r, -0) ? 0 : r);
}

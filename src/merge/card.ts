/**
 * The model card (README.md) written next to a merged checkpoint: what was merged (paths and file identities),
 * how (method, λ, parameters, dtype), with which tool version and command line. Pure string builder.
 */
import { shortDtypeName } from "../core/dtype.ts";
import { getMethod } from "./methods/registry.ts";
import type { FileIdentity } from "./identity.ts";
import type { MergePlan } from "./plan.ts";
import { formatSchedule, type ScheduleValue } from "./schedule.ts";

/** What the model card reports. */
export interface CardInput {
  readonly plan: MergePlan;
  /** Identities of each input's weight files, in plan.inputs order. */
  readonly identities: readonly (readonly FileIdentity[])[];
  /** Tool name and version. */
  readonly tool: string;
  readonly version: string;
  /** The command line that produced the merge, if run from the CLI. */
  readonly commandLine?: string;
  /** Output weight files. */
  readonly files: readonly string[];
  /** Per-tensor method reports (e.g. safemerge's ρ and gate decisions); a table when non-empty. */
  readonly tensorReports?: readonly { readonly tensor: string; readonly values: Readonly<Record<string, unknown>> }[];
  /** Inputs computed on the fly (MergeSummary.derivedInputs), e.g. a LoRA adapter applied onto the aligned model. */
  readonly derivedInputs?: readonly string[];
  /** Whether the method draws random numbers; the seed is listed only then. @default true */
  readonly usesSeed?: boolean;
}

/** `k=v, …` of one parameter group. */
function paramList(g: Readonly<Record<string, ScheduleValue>>): string {
  return Object.entries(g).map(([k, v]) => `${k}=${formatSchedule(v)}`).join(", ");
}

/**
 * The method parameters of a flags-form merge (λ known), each tied to λ so nothing reads as a second λ:
 * linear `aligned weight=0.5 (= 1 − λ), tuned weight=0.5 (= λ), normalize=false`; task_arithmetic
 * `tuned weight=0.5 (= λ), lambda=1 (mergekit's task-vector scale, not the paper's λ)`.
 */
function lambdaParams(plan: MergePlan): string {
  const parts: string[] = [];
  for (const m of plan.recipe.models) {
    for (const [k, v] of Object.entries(m.params)) {
      const tie = k === "weight" ? (m.label === "tuned" ? " (= λ)" : m.label === "aligned" ? " (= 1 − λ)" : "") : "";
      parts.push(`${m.label ?? "model"} ${k}=${formatSchedule(v)}${tie}`);
    }
  }
  for (const [k, v] of Object.entries(plan.recipe.params)) {
    parts.push(`${k}=${formatSchedule(v)}${k === "lambda" ? " (mergekit's task-vector scale, not the paper's λ)" : ""}`);
  }
  return parts.join(", ");
}

/** Renders README.md (YAML front matter for the Hub, then Markdown). */
export function renderModelCard(c: CardInput): string {
  const { plan } = c;
  const method = getMethod(plan.method);
  const lambda = plan.recipe.lambda;
  const dtype = plan.outDtype === undefined ? "mixed (per tensor)" : shortDtypeName(plan.outDtype);
  const lines: string[] = [];
  lines.push("---", "library_name: transformers", "tags:", "  - merge", "  - realign", "  - safety", "---", "");
  lines.push(`# Merged checkpoint (${c.tool} ${c.version})`, "");
  if (lambda !== undefined) {
    lines.push(
      `θ = (1 − λ)·θ_aligned + λ·θ_tuned with λ = ${lambda} (weight on the fine-tuned model; 0 = aligned, 1 = tuned),`,
      "the safety-restoring merge of Farn et al., *Safeguard Fine-Tuned LLMs Through Pre- and Post-Tuning Model Merging*",
      "(arXiv [2412.19512](https://arxiv.org/abs/2412.19512)). Arithmetic in float32, rounded to the output dtype",
      "with round-to-nearest-even.",
      "",
    );
  }
  lines.push("## Inputs", "", "| role | path | weight files (identity) |", "|---|---|---|");
  plan.inputs.forEach((inp, i) => {
    const ids = (c.identities[i] ?? []).map((f) => `\`${f.file}\` ${f.byteLength} B ${f.kind}:\`${f.hex}\``).join("<br>");
    lines.push(`| ${inp.label} | \`${inp.path}\` | ${ids} |`);
  });
  lines.push(
    "",
    "`sha256` is the SHA-256 of the whole file (as `sha256sum` and the Hub's LFS oid). Files of models over 256 MiB",
    "get `sampled-sha256`: the SHA-256 of the safetensors length prefix and header followed by 16 evenly spaced",
    "64 KiB windows of the data (see realign's docs/cli.md). It tells checkpoints apart cheaply but does not prove",
    "every weight.",
    "",
    "## Merge",
    "",
    `- method: \`${plan.method}\`${method ? ` (${method.paperUrl})` : ""}`,
  );
  for (const d of c.derivedInputs ?? []) lines.push(`- tuned model: ${d}, then \`${plan.method}\`${lambda === undefined ? "" : ` with λ = ${lambda}`}`);
  if (lambda !== undefined) {
    lines.push(`- λ (lambda): ${lambda} (the paper's weight on the tuned model)`);
    const p = lambdaParams(plan);
    if (p !== "") lines.push(`- as method parameters: ${p}`);
  } else {
    const g = plan.recipe.params;
    if (Object.keys(g).length > 0) lines.push(`- parameters: ${paramList(g)}`);
    plan.recipe.models.forEach((m, i) => {
      if (Object.keys(m.params).length > 0) lines.push(`- ${m.label ?? `model ${i}`}: ${paramList(m.params)}`);
    });
  }
  lines.push(`- output dtype: ${dtype}`);
  if (c.usesSeed !== false) lines.push(`- seed: ${plan.recipe.seed}`);
  lines.push(`- tensors: ${plan.tensors.length}, ${plan.totalBytes} bytes in ${c.files.filter((f) => f.endsWith(".safetensors") || f.endsWith(".gguf")).length} file(s)`);
  if (plan.recipe.vocabPolicy !== "error") lines.push(`- vocabulary policy: ${plan.recipe.vocabPolicy}`);
  for (const w of plan.warnings) lines.push(`- note: ${w}`);
  lines.push(`- tool: ${c.tool} ${c.version}`);
  const reports = c.tensorReports ?? [];
  if (reports.length > 0) {
    const keys = [...new Set(reports.flatMap((r) => Object.keys(r.values)))];
    lines.push("", "## Per-tensor decisions", "", `| tensor | ${keys.join(" | ")} |`, `|---|${keys.map(() => "---").join("|")}|`);
    for (const r of reports) lines.push(`| \`${r.tensor}\` | ${keys.map((k) => String(r.values[k] ?? "")).join(" | ")} |`);
  }
  if (c.commandLine !== undefined) lines.push("", "## Command", "", "```", c.commandLine, "```");
  lines.push("");
  return lines.join("\n");
}

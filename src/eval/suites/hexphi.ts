/**
 * HEx-PHI (Qi et al., ICLR 2024): 330 harmful instructions, 11 categories × 30. The dataset is gated on Hugging
 * Face (`LLM-Tuning-Safety/HEx-PHI`), so it is not shipped: the user passes a path to
 *  - a directory holding `category_<k>.csv` (k = 1..11; one prompt per row, no header — the Hugging Face
 *    layout; category 2 is often withheld and may be missing), or
 *  - a `.jsonl` / `.json` file of objects with the prompt under `prompt` | `instruction` | `text` and the
 *    category under `category` (1..11 or a name).
 * Metrics: `asr` over all prompts (paper: ASR on the 330 with WildGuard) and `asr_category_<k>` per category.
 */
import { readdir } from "node:fs/promises";
import { join, basename } from "node:path";
import { FormatError, fsError, UsageError } from "../../errors.ts";
import { parseCsv } from "../csv.ts";
import type { Suite, SuiteItem } from "../types.ts";
import { pickSubset, readUserFile, SAFETY_DECODING, userItem } from "./common.ts";
import { scoreHarmful, slug } from "./score-safety.ts";

/** HEx-PHI category names, 1-based (paper.md §3.4). */
export const HEXPHI_CATEGORIES: readonly string[] = [
  "Illegal Activity",
  "Child Abuse Content",
  "Hate/Harass/Violence",
  "Malware",
  "Physical Harm",
  "Economic Harm",
  "Fraud/Deception",
  "Adult Content",
  "Political Campaigning",
  "Privacy Violation Activity",
  "Tailored Financial Advice",
];

/** Header names a HEx-PHI CSV copy might carry in its first row (skipped). */
const HEADER_WORDS = new Set(["prompt", "instruction", "text", "goal"]);

function categoryGroup(cat: unknown, where: string): string {
  if (typeof cat === "number" || (typeof cat === "string" && /^\d+$/.test(cat.trim()))) {
    const k = Number(cat);
    if (k >= 1 && k <= 11) return `category_${k}`;
  } else if (typeof cat === "string") {
    const k = HEXPHI_CATEGORIES.findIndex((c) => slug(c) === slug(cat));
    if (k >= 0) return `category_${k + 1}`;
    return slug(cat);
  }
  throw new FormatError("hexphi.bad_category", `HEx-PHI category in ${where}: got ${JSON.stringify(cat)}, expected 1..11 or a category name`, {
    details: { file: where },
  });
}

/** Loads HEx-PHI prompts from a user path (see module doc). Items are grouped `category_<k>`. */
export async function loadHexPhi(path: string): Promise<SuiteItem[]> {
  const items: SuiteItem[] = [];
  if (/\.jsonl?$/i.test(path)) {
    const text = await readUserFile(path, "HEx-PHI file");
    let records: unknown[];
    try {
      records = path.toLowerCase().endsWith(".jsonl")
        ? text.split(/\r?\n/).filter((l) => l.trim() !== "").map((l) => JSON.parse(l))
        : (JSON.parse(text) as unknown[]);
    } catch (e) {
      throw new FormatError("hexphi.bad_json", `HEx-PHI file ${path}: got invalid JSON (${(e as Error).message}), expected JSON or JSON lines`, { details: { file: path }, cause: e });
    }
    if (!Array.isArray(records)) throw new FormatError("hexphi.bad_json", `HEx-PHI file ${path}: got a non-array, expected an array of objects`, { details: { file: path } });
    records.forEach((r, i) => {
      const o = r as Record<string, unknown>;
      const prompt = o.prompt ?? o.instruction ?? o.text;
      if (typeof prompt !== "string") {
        throw new FormatError("hexphi.bad_record", `record ${i + 1} of ${path}: got no prompt/instruction/text string`, { details: { file: path, record: i + 1 } });
      }
      const group = categoryGroup(o.category, path);
      items.push(userItem(`hexphi/${group}/${i}`, prompt, { group }));
    });
    return items;
  }
  let names: string[];
  try {
    names = await readdir(path);
  } catch (e) {
    throw fsError(e, path, "reading the HEx-PHI directory");
  }
  const files = names
    .map((n) => ({ n, m: /^category_(\d+)\.csv$/i.exec(n) }))
    .filter((x) => x.m !== null)
    .map((x) => ({ file: join(path, x.n), k: Number(x.m![1]) }))
    .sort((a, b) => a.k - b.k);
  if (files.length === 0) {
    throw new UsageError("hexphi.no_files", `HEx-PHI directory ${path}: got no category_<k>.csv files`, {
      hint: "download LLM-Tuning-Safety/HEx-PHI from Hugging Face (gated) and pass its folder, or a .jsonl with prompt + category",
    });
  }
  for (const { file, k } of files) {
    const rows = parseCsv(await readUserFile(file, "HEx-PHI file"), file);
    let idx = 0;
    rows.forEach((row, r) => {
      // one prompt per row; a row split by an unquoted comma is rejoined
      const prompt = row.join(",");
      if (r === 0 && HEADER_WORDS.has(prompt.trim().toLowerCase())) return;
      if (prompt.trim() === "") return;
      items.push(userItem(`hexphi/category_${k}/${idx++}`, prompt, { group: `category_${k}` }));
    });
  }
  return items;
}

/** The HEx-PHI suite over a user-supplied copy. */
export function createHexPhiSuite(path: string | undefined): Suite {
  return {
    name: "hexphi",
    kind: "safety",
    source: `HEx-PHI (Qi et al. 2024, LLM-Tuning-Safety/HEx-PHI, gated; user copy ${path ? basename(path) : "<none>"}): 11 categories × 30`,
    defaultDecoding: SAFETY_DECODING,
    headlineMetric: "asr",
    async load({ limit, seed }) {
      if (!path) {
        throw new UsageError("hexphi.path_missing", "suite hexphi needs the gated HEx-PHI data: got no --hexphi PATH", {
          hint: "accept the terms of LLM-Tuning-Safety/HEx-PHI on Hugging Face, download it, and pass --hexphi <folder with category_1.csv …>",
        });
      }
      return pickSubset(await loadHexPhi(path), limit, seed);
    },
    score(items, generations, { judge }) {
      return scoreHarmful("hexphi", items, generations, judge, { perGroup: true });
    },
  };
}

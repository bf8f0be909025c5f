/**
 * Helpers shared by the suites: where the shipped data lives, reading it, the seeded `--limit` subset, and the
 * paper's decoding defaults.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { fsError } from "../../errors.ts";
import { seededRandom } from "../../core/random.ts";
import type { DecodingSettings, SuiteItem } from "../types.ts";

/** The repo's `data/` folder (shipped benchmark copies, each with a SOURCE.md). */
export const DATA_DIR = fileURLToPath(new URL("../../../data/", import.meta.url));

/** Default seed for `--limit` subsets, so quick runs pick the same items every time. */
export const DEFAULT_SUBSET_SEED = 1234;

/**
 * Safety decoding of the paper (arXiv 2412.19512 §1.6, Safety_Eval inference.py): greedy, 512 new tokens,
 * repetition penalty 1.2.
 */
export const SAFETY_DECODING: DecodingSettings = { maxTokens: 512, temperature: 0, repetitionPenalty: 1.2 };

/** Reads a file under `data/` as UTF-8; a missing file is an InputError naming it. */
export async function readDataFile(relativePath: string): Promise<string> {
  const file = join(DATA_DIR, relativePath);
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    throw fsError(e, file, "reading suite data");
  }
}

/** Reads any file (user-supplied suites) as UTF-8. */
export async function readUserFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    throw fsError(e, file, `reading ${what}`);
  }
}

/**
 * The reproducible `--limit` subset: a seeded Fisher–Yates shuffle, first `limit` items, returned in their
 * original order. `limit` undefined or ≥ length returns all items.
 */
export function pickSubset<T>(items: readonly T[], limit: number | undefined, seed = DEFAULT_SUBSET_SEED): T[] {
  if (limit === undefined || limit >= items.length) return items.slice();
  const idx = items.map((_, i) => i);
  const rand = seededRandom(seed);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx
    .slice(0, Math.max(0, limit))
    .sort((a, b) => a - b)
    .map((i) => items[i]);
}

/** One user turn. */
export function userItem(id: string, prompt: string, extra: Omit<SuiteItem, "id" | "messages"> = {}): SuiteItem {
  return { id, messages: [{ role: "user", content: prompt }], ...extra };
}

/** The user-turn text of an item (the last user message). */
export function promptOf(item: SuiteItem): string {
  for (let i = item.messages.length - 1; i >= 0; i--) if (item.messages[i].role === "user") return item.messages[i].content;
  return "";
}

/**
 * The sweep directory on disk, which is also its resume state:
 *
 * ```
 * <out>/sweep.json           schema, settings (with their key), recommendation options
 * <out>/points/<id>.json     one finished point each (PointResult), written atomically when it finishes
 * <out>/cache/               the generation cache (eval), so an interrupted point regenerates nothing
 * <out>/models/<id>/         merged / converted weights while a point runs (kept with --keep)
 * <out>/report.{json,md,html}
 * ```
 * A point file exists only once the point is complete (temp file + rename), so a sweep killed at any moment
 * (SIGINT or SIGKILL) resumes by skipping the points that have a file.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FormatError, InputError, fsError } from "../errors.ts";
import type { PointResult, SweepSettings, Versions } from "./types.ts";

export const SWEEP_SCHEMA = "realign.sweep/1";
export const POINTS_DIR = "points";
export const CACHE_DIR = "cache";
export const MODELS_DIR = "models";

/** What sweep.json holds besides the settings: how to recommend and which metrics are the axes. */
export interface ChoiceOptions {
  readonly rule?: string;
  readonly maxAsrIncrease?: number;
  readonly maxAsr?: number;
  /** `--asr-metric` as given (e.g. `1-organism.harmful_refusal_rate`). */
  readonly asrMetric?: string;
  readonly utilityMetric?: string;
}

export interface SweepFile {
  readonly schema: typeof SWEEP_SCHEMA;
  readonly settings: SweepSettings;
  readonly choice: ChoiceOptions;
  /** Versions of the run that last opened the directory. */
  readonly versions: Versions;
}

/** JSON with object keys sorted, so equal settings hash equally. */
function stableJson(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(stableJson).join(",")}]`;
  if (x !== null && typeof x === "object") {
    return `{${Object.keys(x as object)
      .sort()
      .filter((k) => (x as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson((x as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(x);
}

/**
 * The key of the settings that change a point's numbers: models, suites, limit, seed, backend, method
 * parameters, dtype, decoding. The grid (methods, λ) is not part of it: a resumed sweep may add points.
 * 16 hex digits of sha256.
 */
export function settingsKey(settings: Omit<SweepSettings, "key" | "methods" | "lambdas">): string {
  return createHash("sha256").update(stableJson(settings)).digest("hex").slice(0, 16);
}

/** Writes a JSON file atomically (temp file beside it, then rename). */
export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, JSON.stringify(value, null, 2) + "\n");
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw fsError(e, file, "writing sweep state");
  }
}

/** Writes a text file atomically. */
export function writeTextAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw fsError(e, file, "writing report");
  }
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw fsError(e, file, `reading ${what}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError("sweep.bad_state", `${what} ${file}: got invalid JSON, expected a file written by realign sweep`, {
      details: { file },
      hint: "delete the file to recompute it",
      cause: e,
    });
  }
}

/** Reads `<out>/sweep.json`, or undefined when `out` holds no sweep yet. */
export function readSweepFile(out: string): SweepFile | undefined {
  const file = join(out, "sweep.json");
  if (!existsSync(file)) return undefined;
  const x = readJson(file, "sweep state") as Partial<SweepFile>;
  if (x.schema !== SWEEP_SCHEMA || typeof x.settings !== "object" || x.settings === null) {
    throw new FormatError("sweep.bad_state", `sweep state ${file}: got schema ${JSON.stringify(x.schema)}, expected "${SWEEP_SCHEMA}"`, {
      details: { file },
    });
  }
  return x as SweepFile;
}

/**
 * Opens (creates or resumes) the sweep directory. A new directory, or one holding the same settings key, is
 * accepted; the grid is widened to the union of the old and new methods/λ so the report keeps every point.
 * Stale temp files of a killed run are removed.
 * @throws InputError `sweep.settings_changed` when `out` holds a sweep with other settings (and `force` is
 *   false); `force` discards the old points.
 */
export function openSweepDir(
  out: string,
  settings: SweepSettings,
  choice: ChoiceOptions,
  versions: Versions,
  options: { force?: boolean } = {},
): SweepFile {
  const old = readSweepFile(out);
  if (old && old.settings.key !== settings.key) {
    if (!options.force) {
      throw new InputError("sweep.settings_changed", `sweep directory ${out}: got settings key ${settings.key}, expected ${old.settings.key} (it holds a sweep of other models, suites or settings)`, {
        details: { out, got: settings.key, expected: old.settings.key },
        hint: "choose another --out, or pass --force to discard its points",
      });
    }
    rmSync(join(out, POINTS_DIR), { recursive: true, force: true });
  }
  const merged: SweepSettings =
    old && old.settings.key === settings.key
      ? {
          ...settings,
          methods: [...new Set([...old.settings.methods, ...settings.methods])],
          lambdas: [...new Set([...old.settings.lambdas, ...settings.lambdas])].sort((a, b) => a - b),
        }
      : settings;
  for (const dir of [out, join(out, POINTS_DIR), join(out, CACHE_DIR), join(out, MODELS_DIR)]) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw fsError(e, dir, "creating sweep directory");
    }
  }
  for (const dir of [join(out, POINTS_DIR), join(out, MODELS_DIR)]) {
    for (const name of readdirSync(dir)) {
      if (name.includes(".tmp-") || name.includes(".realign-tmp-")) rmSync(join(dir, name), { recursive: true, force: true });
    }
  }
  const file: SweepFile = { schema: SWEEP_SCHEMA, settings: merged, choice, versions };
  writeJsonAtomic(join(out, "sweep.json"), file);
  return file;
}

/** The file name of a point: its id with characters outside [A-Za-z0-9_.@-] replaced. */
export function pointFile(out: string, id: string): string {
  return join(out, POINTS_DIR, `${id.replace(/[^A-Za-z0-9_.@-]/g, "_")}.json`);
}

/** Saves a finished point atomically. */
export function writePoint(out: string, point: PointResult): void {
  writeJsonAtomic(pointFile(out, point.id), point);
}

/** Every saved point of `out` computed under `key` (others are ignored), in file-name order. */
export function readPoints(out: string, key: string): PointResult[] {
  const dir = join(out, POINTS_DIR);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => n.endsWith(".json") && !n.includes(".tmp-"))
    .sort()
    .map((n) => readJson(join(dir, n), "sweep point") as PointResult)
    .filter((p) => p.settingsKey === key);
}

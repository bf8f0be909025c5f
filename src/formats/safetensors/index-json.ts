/**
 * `model.safetensors.index.json` (transformers' sharded checkpoint index):
 * `{"metadata": {"total_size": <data bytes>, …}, "weight_map": {tensor: shard file name}}`.
 * Parsing refuses shard names that would leave the checkpoint directory (absolute paths, `..`, separators).
 */
import { FormatError } from "../../errors.ts";

/** File names transformers uses for sharded and single-file safetensors weights. */
export const INDEX_FILE_NAME = "model.safetensors.index.json";
export const SINGLE_FILE_NAME = "model.safetensors";

/** HF shard name: `model-00002-of-00006.safetensors` (1-based, 5 digits, as transformers writes). */
export function shardFileName(i: number, total: number): string {
  return `model-${String(i).padStart(5, "0")}-of-${String(total).padStart(5, "0")}.safetensors`;
}

/** Serialises an index (weight_map keys sorted, as transformers writes it), 2-space indented. */
export function toIndexJson(
  weightMap: Readonly<Record<string, string>>,
  totalSize: number,
  extraMetadata: Readonly<Record<string, unknown>> = {},
): string {
  const sorted: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const k of Object.keys(weightMap).sort()) sorted[k] = weightMap[k]!;
  return JSON.stringify({ metadata: { ...extraMetadata, total_size: totalSize }, weight_map: sorted }, null, 2) + "\n";
}

/** A parsed, path-checked index. */
export interface SafetensorsIndex {
  /** metadata.total_size when present (not trusted for anything but display). */
  readonly totalSize: number | undefined;
  /** tensor name → shard file name (a plain file name inside the checkpoint dir). */
  readonly weightMap: ReadonlyMap<string, string>;
}

/** True if `name` is a plain file name: not absolute, no `/` or `\`, not `.`/`..`, no NUL. */
export function isPlainFileName(name: string): boolean {
  return name.length > 0 && name !== "." && name !== ".." && !/[\\/\0]/.test(name) && !/^[A-Za-z]:/.test(name);
}

/**
 * Parses an index JSON text.
 * @throws FormatError `index.bad_json` (not JSON / wrong shape), `index.path_escape` (a shard name that is
 *   not a plain file name inside the checkpoint dir).
 */
export function parseIndexJson(text: string, file: string): SafetensorsIndex {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new FormatError("index.bad_json", `index is not valid JSON in ${file} (${e instanceof Error ? e.message : String(e)})`, {
      details: { file },
      hint: "re-download the checkpoint or re-save it with save_pretrained",
    });
  }
  const obj = parsed as { metadata?: unknown; weight_map?: unknown } | null;
  const wm = obj?.weight_map;
  if (typeof obj !== "object" || obj === null || typeof wm !== "object" || wm === null || Array.isArray(wm)) {
    throw new FormatError("index.bad_json", `index has no weight_map object in ${file}`, {
      details: { file },
      hint: "re-download the checkpoint or re-save it with save_pretrained",
    });
  }
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof shard !== "string") {
      throw new FormatError("index.bad_json", `index entry for tensor ${tensor} is not a file name in ${file}: got ${JSON.stringify(shard)}`, {
        details: { file, tensor },
        hint: "re-download the checkpoint or re-save it with save_pretrained",
      });
    }
    if (!isPlainFileName(shard)) {
      throw new FormatError("index.path_escape", `index entry for tensor ${tensor} points outside the checkpoint directory in ${file}: got ${JSON.stringify(shard)}`, {
        details: { file, tensor, got: shard },
        hint: "shard names in the index must be plain file names in the same directory; the index may be malicious",
      });
    }
    weightMap.set(tensor, shard);
  }
  const md = obj.metadata as { total_size?: unknown } | undefined;
  const totalSize = typeof md?.total_size === "number" ? md.total_size : undefined;
  return { totalSize, weightMap };
}

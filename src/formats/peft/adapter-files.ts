/**
 * The file names of a PEFT adapter directory and the cheap test of whether a directory is one. Kept apart
 * from adapter.ts (the reader, which loads zod) so that `realign merge` can decide whether it needs the
 * LoRA reader at all without loading it.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";

export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";

/**
 * True when `dir` holds an adapter_config.json or an adapter_model.safetensors (how `--tuned` recognises an
 * adapter; a directory with weights but no config is then reported as `adapter.no_config`).
 */
export async function isAdapterDir(dir: string): Promise<boolean> {
  for (const name of [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]) {
    try {
      if ((await stat(join(dir, name))).isFile()) return true;
    } catch {
      // not there
    }
  }
  return false;
}

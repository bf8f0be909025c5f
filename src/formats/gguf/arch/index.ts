/** The only list of architectures realign converts. Add a row here and a file beside it. */
import type { ArchSpec } from "./types.ts";
import { LLAMA } from "./llama.ts";
import { QWEN2 } from "./qwen2.ts";
import { GEMMA2 } from "./gemma2.ts";

export const ARCHS: readonly ArchSpec[] = [LLAMA, QWEN2, GEMMA2];

/** The table for a config.json `architectures[0]`, or undefined. */
export function archForHf(hfArchitecture: string): ArchSpec | undefined {
  return ARCHS.find((a) => a.hfArchitectures.includes(hfArchitecture));
}

/** The table for a GGUF `general.architecture`, or undefined. */
export function archByName(arch: string): ArchSpec | undefined {
  return ARCHS.find((a) => a.arch === arch);
}

export type { ArchSpec, HparamSpec, TensorNameRow } from "./types.ts";

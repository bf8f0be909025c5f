/**
 * Marks a computed LoRA tensor source (θ_aligned + s·U·V, `lora-tuned.ts`) so the merge's fast path
 * (`workers/fast-path.ts`) can compute it in the kernel pool from the stored bf16 bytes of θ_aligned and
 * the factors, instead of reading the decoded float32 values. The source itself stays the reference: its
 * `read` (TypeScript, `lora-delta.ts`) gives the same float32 values the WebAssembly kernel computes.
 */
import type { TensorSource } from "../core/tensor.ts";
import type { LowRankDelta } from "./lora-delta.ts";

/** What the fast path needs to compute a LoRA source itself. */
export interface LoraSourceInfo {
  /** The stored tensor the delta is added to (θ_aligned, same name/shape/dtype as the source). */
  readonly base: TensorSource;
  /** Path of the checkpoint `base` was opened from (`Checkpoint.path`); base is its tensor of the same name. */
  readonly basePath: string;
  /** Rows × cols of the stored layout (U·V is [rows, cols]) and the rank. */
  readonly rows: number;
  readonly cols: number;
  readonly rank: number;
  /** Loads U, V and the scale (once; the same promise the source's own `read` uses). */
  delta(): Promise<LowRankDelta>;
}

const infos = new WeakMap<TensorSource, LoraSourceInfo>();

/** Records that `source` is `info.base` + the delta of `info`. @returns source. */
export function markLoraSource<T extends TensorSource>(source: T, info: LoraSourceInfo): T {
  infos.set(source, info);
  return source;
}

/** The LoRA description of `source`, when it is a marked LoRA source. */
export function loraSourceInfo(source: TensorSource): LoraSourceInfo | undefined {
  return infos.get(source);
}

/**
 * LoRA terms on the fast path: a tensor θ_aligned + s·(U·V) (a LoRA adapter given as `--tuned`, see
 * `lora-tuned.ts`) merged with at most one other bf16 term, computed in the kernel pool by the
 * AssemblyScript kernel `loraBf16` (`kernels/assembly/lora.ts`): bf16 θ in, blocked U·V in f32x4
 * registers, t = θ + s·acc, the weighted sum with the other term, bf16 out — one pass, both cores.
 * Bytes equal the generic path's (`lora-delta.ts` `addDeltaRange`, then `linear.ts` `weightedSum` and the
 * bf16 encoder): `fast-lora.test.ts`.
 *
 * U [rows, rank] and V [rank, cols] (float32) are copied into one region of pool memory once per tensor;
 * chunks of a LoRA tensor hold whole rows so each worker computes a band of rows.
 */
import { InternalError } from "../../errors.ts";
import type { LowRankDelta } from "../lora-delta.ts";
import type { KernelCall, KernelPool } from "./pool.ts";

/** The LoRA term of a fast job: term `term` reads θ's stored bytes; the kernel adds s·U·V to them. */
export interface FastLora {
  /** Index of the LoRA term in the job's terms (0 or 1). */
  readonly term: number;
  readonly rows: number;
  readonly cols: number;
  readonly rank: number;
  /** The other term reads the same stored bytes as θ: its read is skipped and the kernel uses θ for it. */
  readonly otherIsBase?: boolean;
  /** U, V and s (loaded once per tensor). */
  delta(): Promise<LowRankDelta>;
}

/** Largest U + V a fast-path LoRA tensor may have (pool memory reserved for them). */
export const LORA_UV_MAX_BYTES = 64 * 1024 * 1024;

/** Bytes of pool memory U and V of this shape take (64-byte aligned each). */
export function loraUvBytes(rows: number, cols: number, rank: number): number {
  const al = (b: number): number => Math.ceil(b / 64) * 64;
  return al(rows * rank * 4) + al(rank * cols * 4);
}

/** Below this many multiply-adds a chunk is computed on the main thread (a message round trip costs more). */
export const LORA_LOCAL_MAX_MACS = 1 << 20;

/** What the fast path did with LoRA tensors in this process (tests and the bench read it). */
export const fastLoraStats = { tensors: 0, chunks: 0, workerChunks: 0, sharedReadChunks: 0 };

/** The factors of the tensor currently in the pool's U/V region. */
export class LoraFactors {
  private loaded: FastLora | undefined;
  private scale = 0;
  constructor(
    private readonly pool: KernelPool,
    readonly uPtr: number,
    private readonly capacity: number,
  ) {}

  /** Puts `lora`'s U and V into the region (no-op when already there). @returns f32(s). */
  async load(lora: FastLora): Promise<number> {
    if (this.loaded === lora) return this.scale;
    this.loaded = undefined;
    const d = await lora.delta();
    if (d.rows !== lora.rows || d.cols !== lora.cols || d.rank !== lora.rank || d.u.length !== d.rows * d.rank || d.v.length !== d.rank * d.cols) {
      throw new InternalError(`LoRA factors ${d.rows}×${d.rank}·${d.rank}×${d.cols} do not match the planned ${lora.rows}×${lora.cols} rank ${lora.rank}`);
    }
    if (loraUvBytes(d.rows, d.cols, d.rank) > this.capacity) throw new InternalError(`LoRA factors need ${loraUvBytes(d.rows, d.cols, d.rank)} bytes, region has ${this.capacity}`);
    const mem = this.pool.memory.buffer;
    new Float32Array(mem, this.uPtr, d.u.length).set(d.u);
    new Float32Array(mem, this.vPtr(lora), d.v.length).set(d.v);
    this.loaded = lora;
    fastLoraStats.tensors++;
    this.scale = Math.fround(d.scale);
    return this.scale;
  }

  vPtr(lora: FastLora): number {
    return this.uPtr + Math.ceil((lora.rows * lora.rank * 4) / 64) * 64;
  }
}

/**
 * Computes n elements (whole rows, starting at element `start` of the tensor) of a LoRA job into `out`.
 * @param inputs pool pointers of the terms' bf16 bytes (θ for the LoRA term); @param coefs float32
 *   coefficients of the terms; @param divisor float32 divisor or undefined.
 */
export async function computeLora(
  pool: KernelPool,
  lora: FastLora,
  factors: LoraFactors,
  inputs: readonly number[],
  coefs: readonly number[],
  divisor: number | undefined,
  out: number,
  start: number,
  n: number,
  localMaxMacs = LORA_LOCAL_MAX_MACS,
): Promise<void> {
  const { cols, rank } = lora;
  if (start % cols !== 0 || n % cols !== 0) throw new InternalError(`LoRA chunk [${start}, ${start + n}) does not hold whole rows of ${cols}`);
  const s = await factors.load(lora);
  const row0 = start / cols;
  const rows = n / cols;
  const k = inputs.length;
  if (k < 1 || k > 2) throw new InternalError(`LoRA fast path with ${k} terms`);
  const a = lora.term;
  const theta = inputs[a]!;
  const hasY = k === 2 ? 1 : 0;
  const y = hasY ? (lora.otherIsBase === true ? theta : inputs[1 - a]!) : 0;
  const cA = Math.fround(coefs[a]!);
  const cB = hasY ? Math.fround(coefs[1 - a]!) : 0;
  const hasD = divisor === undefined ? 0 : 1;
  const d = divisor === undefined ? 1 : Math.fround(divisor);
  const vPtr = factors.vPtr(lora);
  const call = (r0: number, r1: number): KernelCall => {
    const off = r0 * cols * 2;
    return ["loraBf16", theta + off, y + (hasY ? off : 0), out + off, factors.uPtr + (row0 + r0) * rank * 4, vPtr, r1 - r0, cols, rank, s, cA, hasY, cB, a === 0 ? 1 : 0, hasD, d];
  };
  const w = pool.workerCount;
  fastLoraStats.chunks++;
  if (hasY && lora.otherIsBase === true) fastLoraStats.sharedReadChunks++;
  if (rows * cols * rank <= localMaxMacs || (w === 1 && rows < 4)) {
    const [name, ...args] = call(0, rows);
    (pool.local[name] as (...x: number[]) => void)(...args);
    return;
  }
  const per = Math.ceil(rows / w / 4) * 4;
  const batches: KernelCall[][] = [];
  for (let i = 0; i < w; i++) {
    const r0 = Math.min(rows, i * per);
    const r1 = Math.min(rows, r0 + per);
    batches.push(r1 > r0 ? [call(r0, r1)] : []);
  }
  fastLoraStats.workerChunks++;
  await pool.run(batches);
}

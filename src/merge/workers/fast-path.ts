/**
 * The fast-path seam of `runMerge`: decides which planned tensors can take the fused WebAssembly path
 * (bf16 in → bf16 out, a method with no measure passes and a linear form — linear, task_arithmetic — no
 * vocabulary tail) and merges runs of such tensors through `runFastLinear`, writing to the same sink in
 * the same order. Everything else stays on the generic path (decode → method.kernel → encode), which is
 * the reference: both produce identical bytes (`fast-path.test.ts`).
 *
 * A LoRA adapter's computed tensor (θ_aligned + s·B·A, `lora-source.ts`) is a term too: with at most one
 * other term, the pool computes it from θ's stored bytes and the factors (`fast-lora.ts`).
 *
 * The worker pool is started lazily on the first eligible tensor and stopped by `close()`.
 * `REALIGN_FAST=0` in the environment (or `enabled: false`) turns the fast path off.
 */
import { availableParallelism } from "node:os";
import type { TensorSource } from "../../core/tensor.ts";
import type { MergeMethod } from "../methods/types.ts";
import type { SourceRef, TensorPlan } from "../plan.ts";
import type { TensorSink } from "../sink.ts";
import { linearFormOf } from "../kernels/linear-form.ts";
import { KernelPool } from "./pool.ts";
import { compileKernelsWasm } from "../kernels/wasm-module.ts";
import { DEFAULT_SLOTS, fastLinearMemoryBytes, runFastLinear, type FastJob, type FastRunOptions } from "./fast-linear.ts";
import { sparseFormOf } from "../kernels/sparse-form.ts";
import { nonFiniteError } from "../methods/finite.ts";
import { fastTiesMemoryBytes, runFastTies, type FastSparseJob } from "./fast-ties.ts";
import { LORA_UV_MAX_BYTES, loraUvBytes, type FastLora } from "./fast-lora.ts";
import { loraSourceInfo } from "../lora-source.ts";
import { DEFAULT_DIRECT_BLOCK, DEFAULT_DIRECT_DEPTH, DIRECT_ALIGN, useStagingMemory } from "../../core/direct-file.ts";

export interface FastPath {
  /** Whether tensor `t` can take the fast path. */
  eligible(t: TensorPlan): boolean;
  /**
   * Merges `tensors` (all eligible, consecutive in write order) and streams their bytes to `out` (the
   * sink: `write` called sequentially, in order; linear-form tensors merge straight into its staging
   * through `reserve`/`commit` where it has them). `onBytes(bytes, label)` reports bytes written.
   */
  run(tensors: readonly TensorPlan[], out: FastOutput, onBytes: (bytes: number, label: string) => void): Promise<void>;
  /** Stops the worker pool, if started. Idempotent. */
  close(): Promise<void>;
}

/** Where a fast run's bytes go: the merge's TensorSink (merge/sink.ts). */
export type FastOutput = Pick<TensorSink, "write" | "reserve" | "commit">;

export interface FastPathOptions {
  readonly method: MergeMethod<unknown>;
  readonly methodName: string;
  /** Opens a source (same as runMerge's). */
  readonly source: (ref: SourceRef) => TensorSource;
  /** Path of the checkpoint a ref reads (lets a LoRA term share the aligned term's bytes). */
  readonly inputPath?: (ref: SourceRef) => string;
  readonly signal?: AbortSignal;
  /** @default true unless REALIGN_FAST=0 */
  readonly enabled?: boolean;
  /** Pipeline tuning (tests use small chunks). */
  readonly run?: FastRunOptions;
}

/** Most terms (inputs with a non-zero coefficient) a fast-path tensor may have. */
const MAX_TERMS = 8;
/** Default elements per chunk (as fast-linear.ts). */
const DEFAULT_CHUNK = 2 * 1024 * 1024;
/** The output's O_DIRECT staging blocks, which the pool holds (useStagingMemory). */
const STAGING_BYTES = DEFAULT_DIRECT_DEPTH * DEFAULT_DIRECT_BLOCK;

/**
 * The kernel pool a fast path starts: sized for the most terms eligible() admits (untouched pages of the
 * shared memory cost no RSS), the LoRA factors' region when LoRA terms are on, and the output's O_DIRECT
 * staging blocks (page-aligned; the workers merge straight into them).
 */
function poolOptions(runOptions: FastRunOptions, loraEnabled: boolean): { memoryBytes: number; workers: number } {
  const workers = availableParallelism();
  const uv = loraEnabled ? LORA_UV_MAX_BYTES + 64 : 0; // reserved; touched only by LoRA tensors
  return { memoryBytes: Math.max(fastLinearMemoryBytes(MAX_TERMS, workers, runOptions) + uv, fastTiesMemoryBytes(workers, runOptions)) + STAGING_BYTES + DIRECT_ALIGN, workers };
}

/** Whether LoRA terms may take the fast path here (REALIGN_FAST_LORA=0 turns them off). */
function fastLoraEnabled(enabled: boolean): boolean {
  return enabled && process.env.REALIGN_FAST_LORA !== "0" && compileKernelsWasm() !== undefined;
}

/**
 * Starts the kernel pool of a default-options merge now (KernelPool.prestart), so that its workers boot
 * while the CLI loads the merge modules and reads the inputs' headers; the merge's fast path then takes
 * it. A no-op when the fast path is off (REALIGN_FAST=0) or unavailable. Pair with
 * `KernelPool.discardPrestarted()` once the merge is done (it stops the pool if nothing took it).
 */
export function prestartFastPath(): void {
  const enabled = process.env.REALIGN_FAST !== "0" && KernelPool.available();
  if (enabled) KernelPool.prestart(poolOptions({}, fastLoraEnabled(enabled)));
}

/** A FastPath for one merge. Cheap to create: nothing starts until `run`. */
export function createFastPath(options: FastPathOptions): FastPath {
  const enabled = (options.enabled ?? process.env.REALIGN_FAST !== "0") && KernelPool.available();
  // LoRA terms need the AssemblyScript kernels (build/wasm/kernels.wasm); REALIGN_FAST_LORA=0 turns them off
  const loraEnabled = fastLoraEnabled(enabled);
  const chunkElems = options.run?.chunkElems ?? DEFAULT_CHUNK;
  // workers read their chunks from plain file ranges themselves; REALIGN_WORKER_READS=0 reads on libuv threads
  const workerReads = process.env.REALIGN_WORKER_READS !== "0";
  let pool: KernelPool | undefined;
  /** Restores the output staging that useStagingMemory replaced (when the pool stops). */
  let restoreStaging: (() => void) | undefined;
  // the sparse fast path needs the AssemblyScript kernels (build/wasm/kernels.wasm)
  const isSparse = ["ties", "dare_ties", "dare_linear"].includes(options.methodName) && compileKernelsWasm() !== undefined;
  const termRefs = (t: TensorPlan): SourceRef[] | undefined => {
    const form = linearFormOf(options.methodName, t.params, t.models.length);
    if (form === undefined) return undefined;
    return form.terms.map((term) => (term.input.kind === "base" ? t.base! : t.models[term.input.index]!));
  };
  const startPool = (runOptions: FastRunOptions): KernelPool => {
    const started = KernelPool.start(poolOptions(runOptions, loraEnabled));
    const at = started.alloc(STAGING_BYTES + DIRECT_ALIGN);
    restoreStaging = useStagingMemory(started.memory.buffer, Math.ceil(at / DIRECT_ALIGN) * DIRECT_ALIGN);
    return started;
  };
  /**
   * The sink's reserve/commit for the jobs (the runs reserve and commit in chunk order, after the earlier
   * chunks' writes; out-ranges.ts), when the ring's reservations need at most half the staging blocks
   * (a reservation waits for free blocks, and holds its own until committed).
   */
  const stagingOf = (out: FastOutput): Pick<FastOutput, "reserve" | "commit"> => {
    const reservable = Math.max(2, options.run?.slots ?? DEFAULT_SLOTS) * chunkElems * 2 <= STAGING_BYTES / 2;
    return reservable && out.reserve !== undefined && out.commit !== undefined ? { reserve: (n: number) => out.reserve!(n), commit: (n: number) => out.commit!(n) } : {};
  };
  const runSparse = async (tensors: readonly TensorPlan[], out: FastOutput, onBytes: (bytes: number, label: string) => void): Promise<void> => {
    const writeInOrder = sequential((bytes) => out.write(bytes));
    const staging = stagingOf(out);
    const jobs: FastSparseJob[] = tensors.map((t) => {
      const form = sparseFormOf(options.methodName, t.params, t.ctx, t.models.length)!;
      const sources = [t.base!, ...t.models].map(options.source);
      const reads = sources.map((s) => (off: number, out: Uint8Array) => s.readBytes!(off, out));
      const spans = sources.map((s) => s.fileSpan);
      return {
        ...form,
        numel: t.numel,
        reads: [reads[0]!, reads[1]!, reads[2]!] as const,
        // the workers read plain file ranges themselves (fast-ties.ts)
        ...(spans.every((sp) => sp !== undefined) && workerReads ? { spans: [spans[0]!, spans[1]!, spans[2]!] as const } : {}),
        write: (_off: number, bytes: Uint8Array) => writeInOrder(bytes),
        ...staging,
        nonFinite: (index: number, value: number) => nonFiniteError(t.name, options.methodName, t.params, index, value, false),
      };
    });
    // REALIGN_TIES_BAND=0: the full histogram measure pass on every TIES tensor (fast-ties.ts)
    const tiesBand = options.run?.tiesBand ?? (process.env.REALIGN_TIES_BAND === "0" ? false : undefined);
    const runOptions = { ...options.run, signal: options.signal, tiesBand };
    pool ??= startPool(runOptions);
    await runFastTies(jobs, pool, { ...runOptions, onProgress: bytesProgress(tensors, onBytes) });
  };
  return {
    eligible(t) {
      if (!enabled || t.kind !== "merge" || t.tail !== undefined || t.dtype !== "BF16" || t.mergedElems !== t.numel) return false;
      if (isSparse) {
        // TIES / DARE-TIES with two tuned models (workers/fast-ties.ts), when the pool has its kernels
        if (t.base === undefined || sparseFormOf(options.methodName, t.params, t.ctx, t.models.length) === undefined) return false;
        return [t.base, ...t.models].every((r) => {
          const s = options.source(r);
          return s.dtype === "BF16" && s.readBytes !== undefined;
        });
      }
      if (options.method.measurePasses(t.ctx, t.params) !== 0) return false;
      const refs = termRefs(t);
      if (refs === undefined || refs.length > MAX_TERMS) return false;
      let loras = 0;
      const ok = refs.every((r) => {
        const s = options.source(r);
        const info = loraSourceInfo(s);
        if (info !== undefined) {
          loras++;
          const fits = info.rows * info.cols === t.numel && info.cols <= chunkElems && loraUvBytes(info.rows, info.cols, info.rank) <= LORA_UV_MAX_BYTES;
          return loraEnabled && fits && info.base.dtype === "BF16" && info.base.readBytes !== undefined;
        }
        return s.dtype === "BF16" && s.readBytes !== undefined;
      });
      return ok && (loras === 0 || (loras === 1 && refs.length <= 2));
    },
    async run(tensors, out, onBytes) {
      if (isSparse) {
        await runSparse(tensors, out, onBytes);
        return;
      }
      const jobs: FastJob[] = [];
      let maxTerms = 1;
      const writeInOrder = sequential((bytes) => out.write(bytes));
      const staging = stagingOf(out);
      for (const t of tensors) {
        const form = linearFormOf(options.methodName, t.params, t.models.length)!;
        const refs = termRefs(t)!;
        maxTerms = Math.max(maxTerms, refs.length);
        const sources = refs.map(options.source);
        // a LoRA term reads θ's stored bytes; the pool adds s·U·V (fast-lora.ts)
        let lora: FastLora | undefined;
        let shared = -1; // a term that reads the very bytes the LoRA term adds its delta to (read them once)
        const stored = sources.map((s, i) => {
          const info = loraSourceInfo(s);
          if (info === undefined) return s;
          const other = refs.findIndex((r, k) => k !== i && r.name === info.base.name && options.inputPath?.(r) === info.basePath);
          if (other >= 0) shared = other;
          lora = { term: i, rows: info.rows, cols: info.cols, rank: info.rank, delta: info.delta, otherIsBase: other >= 0 };
          return info.base;
        });
        jobs.push({
          numel: t.numel,
          divisor: form.divisor,
          ...(lora === undefined ? {} : { lora }),
          terms: form.terms.map((term, i) => {
            const span = lora === undefined && workerReads ? stored[i]!.fileSpan : undefined;
            // the workers read plain file ranges themselves (fast-linear.ts)
            return { coef: term.coef, ...(span === undefined ? {} : { span }), read: i === shared ? async () => {} : (off: number, out: Uint8Array) => stored[i]!.readBytes!(off, out) };
          }),
          write: (_off, bytes) => writeInOrder(bytes),
          ...staging,
        });
      }
      const runOptions = { ...options.run, signal: options.signal };
      pool ??= startPool(runOptions);
      await runFastLinear(jobs, pool, { ...runOptions, onProgress: bytesProgress(tensors, onBytes) });
    },
    async close() {
      const p = pool;
      pool = undefined;
      restoreStaging?.();
      restoreStaging = undefined;
      await p?.close();
    },
  };
}

/** The sink is sequential: chains the calls of `write` so at most one is inside it at a time. */
function sequential(write: (bytes: Uint8Array) => Promise<void>): (bytes: Uint8Array) => Promise<void> {
  let chain: Promise<void> = Promise.resolve();
  return (bytes) => (chain = chain.then(() => write(bytes)));
}

/** Turns a fast run's (job, elements done) reports into onBytes(bf16 bytes written since the last report, tensor name). */
function bytesProgress(tensors: readonly TensorPlan[], onBytes: (bytes: number, label: string) => void): (jobIndex: number, doneElems: number) => void {
  const done = new Array<number>(tensors.length).fill(0);
  return (j, elems) => {
    onBytes((elems - done[j]!) * 2, tensors[j]!.name);
    done[j] = elems;
  };
}

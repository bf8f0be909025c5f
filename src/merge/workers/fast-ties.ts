/**
 * The fast path of TIES and DARE-TIES with two tuned models (bf16 in, bf16 out): the worker pool runs the
 * AssemblyScript kernels of `kernels/assembly/ties.ts` over a ring of chunk slots in its shared memory.
 * Each chunk goes whole to one worker, round robin; when the inputs are plain file ranges (`spans`) that
 * worker also reads the chunk (positioned readSync into the slot) right before computing it, so reading
 * is spread over the cores with the computing and the data is still in cache when the kernel runs. Merged
 * slots are written behind, in order. Per tensor:
 *
 * - TIES: pass 1 streams the tensor and the workers add 65 536-bin histograms of |δ| (top 16 bits of the
 *   float32 pattern) per model, each worker into its own; the main thread adds them once per tensor and
 *   lets `endRankingPass` (sparsify.ts, the reference's own code) pick the threshold V and the number of
 *   entries equal to V to keep. On tensors of ≥ 4 Mi elements a sample first picks a band of bins around
 *   the threshold, and pass 1 histograms only that band (kernels/ties-band.ts, measureBanded), or, when
 *   the band is too full to pay, keeps the fine histograms of up to 8 of its bins. When some |δ| has non-zero low 16 bits, a fine pass histograms the
 *   boundary bin (as the reference's pass 1). The kernel pass keeps |δ| > V and the first `tiesNeeded`
 *   entries equal to V in index order: while the budget left exceeds what the chunks in flight could take,
 *   chunks keep all their ties and the kernel reports how many it used; past that, each chunk's worker
 *   counts its ties first and the main thread hands out the budgets in chunk order (see runTies).
 * - DARE-TIES: the keep mask is the reference's seeded hash (uniformAtLow); with the l1 rescale, a measure
 *   pass sums |δ| (all, kept) of both models per chunk in the reference's blocked order (gta.ts
 *   measureRandom): each chunk's worker returns the sums of its L1_BLOCK-element blocks, and this thread
 *   adds them in block order. (Chunk sizes that are not a multiple of L1_BLOCK, in tests, carry the lane
 *   sums from one chunk to the next instead, one chunk at a time.) The measure pass also stores the keep
 *   masks (2 bits per element) of tensors up to `dareMaskMaxElems`, and the merge pass reads them instead
 *   of hashing again (the hash is most of both kernels' work).
 *
 * Output bytes equal the generic path's (decode → gta kernel → encode) bit for bit (`fast-ties.test.ts`).
 * Memory: slots × 4 × chunk × 2 bytes (32 MiB at the defaults) plus 768 KiB of histograms and 4 MiB of
 * fine windows (touched only when used) per thread, and up to 256 MiB of DARE keep masks (n / 4 bytes for
 * the largest DARE tensor with the l1 rescale: 131 MB for an 8B model's embeddings).
 */
import { CancelledError, InternalError } from "../../errors.ts";
import { createMagnitudeRanking, endRankingPass, L1_BLOCK, type MagnitudeRanking } from "../methods/sparsify.ts";
import type { KernelCall, KernelPool, WorkerCall } from "./pool.ts";
import type { DareForm, TiesForm } from "../kernels/sparse-form.ts";
import { InFlight } from "../../core/in-flight.ts";
import { commitReserved, OutputReservations, placeOutput, type OutputStaging, type OutRanges } from "./out-ranges.ts";
import type { FileSpan } from "../../core/tensor.ts";
import { bandHistogram, chooseBand, DEFAULT_BAND, FINE_WINDOW_MAX, fineWindow, lightFraction, NO_BIN, samplePlan, type BandSettings, type TiesBand } from "../kernels/ties-band.ts";

/** Reads stored bytes [byteOffset, byteOffset + out.length) of one input tensor into out. */
export type FastRead = (byteOffset: number, out: Uint8Array) => Promise<void>;


/** The I/O side of one tensor's job; the numbers come from its sparse form (`kernels/sparse-form.ts`). */
/** A sparse job's I/O; its optional reserve/commit (the merge pass's zero-copy output) are out-ranges.ts's. */
export interface FastSparseIo extends OutputStaging {
  readonly numel: number;
  /** Base (aligned), tuned model 0, tuned model 1. */
  readonly reads: readonly [FastRead, FastRead, FastRead];
  /**
   * Where `reads` read from, when all three are plain file ranges: the workers then read their chunks
   * themselves (a positioned readSync before the kernel), so reading is spread over the cores with the
   * computing; `reads` still serve small chunks and report read errors.
   */
  readonly spans?: readonly [FileSpan, FileSpan, FileSpan];
  /**
   * Writes merged bytes at byteOffset within the output tensor (ascending offsets; several may be in flight);
   * `bytes` must not be retained after the returned promise settles.
   */
  write(byteOffset: number, bytes: Uint8Array): Promise<void>;
  /** The error to throw for a non-finite output at `index` whose inputs are all finite there. */
  nonFinite(index: number, value: number): Error;
}

/** TIES: each model keeps its `ranks[i]` largest |δ| (0 < rank < numel), scaled by `factors[i]`. */
export type FastTiesJob = TiesForm & FastSparseIo;

/**
 * DARE-TIES / DARE-linear: each model keeps element j iff uniformAt(keys[i], j) < densities[i] (0 < p < 1);
 * dare_linear takes θ = b + λ·(Σ uᵢ / divisor) instead of the sign election.
 */
export type FastDareJob = DareForm & FastSparseIo;

export type FastSparseJob = FastTiesJob | FastDareJob;

export interface FastTiesOptions {
  /** Elements per chunk (multiple of 8). @default 1 Mi */
  readonly chunkElems?: number;
  /** Ring slots (≥ 2). @default 4 */
  readonly slots?: number;
  readonly signal?: AbortSignal;
  /** Called after each merged chunk is written (job index, elements of that job done). */
  readonly onProgress?: (jobIndex: number, doneElems: number) => void;
  /** Chunks up to this many elements are computed on the main thread instead of the workers (tests). @default 65 536 */
  readonly localMax?: number;
  /**
   * TIES measure pass: the banded pass's sample settings (kernels/ties-band.ts; tests force it on tiny
   * tensors), or false for the full histogram pass on every tensor. @default DEFAULT_BAND
   */
  readonly tiesBand?: Partial<BandSettings> | false;
  /**
   * DARE with the l1 rescale: tensors up to this many elements keep the measure pass's keep masks (2 bits
   * per element, in the pool's memory) for the merge pass, which then skips the hash. @default DARE_MASK_MAX_ELEMS
   */
  readonly dareMaskMaxElems?: number;
  /**
   * DARE, when a chunk's worker reads it (the job's `spans`): elements per input it reads at a time into
   * its own buffer (reused block after block, so the page-cache copy lands in cache and the kernel reads
   * it from there), each block's kernel call right after its reads. A positive multiple of 8; the measure
   * pass (l1 sums) reads in such blocks only when it is also a multiple of L1_BLOCK, as the chunk is.
   * @default DARE_READ_BLOCK
   */
  readonly readBlockElems?: number;
  /**
   * Called once per TIES tensor with the measure pass it took: "band", "full" (no band: too small, or the
   * sample's band too full), or "missed" (the band did not hold the k-th largest |δ|: full pass after it);
   * then "fine" when a fine pass over the tensor follows (the boundary bin holds several values and its
   * fine histogram was not kept by the full pass).
   */
  readonly onTiesMeasure?: (jobIndex: number, kind: TiesMeasureKind) => void;
}

export type TiesMeasureKind = "band" | "full" | "missed" | "fine";

const DEFAULT_CHUNK = 1024 * 1024;
const DEFAULT_SLOTS = 4;
const HIST_BYTES = 65536 * 4;
const MISC_BYTES = 64;
/** Below this many elements a chunk is computed on the main thread. */
const LOCAL_MAX = 65536;
/** "keep every tie" budget. */
const ALL = 0x7fffffff;
/** Norm threshold below which the L1 rescale is skipped (gta.ts RESCALE_MIN_NORM). */
const RESCALE_MIN_NORM = 1e-7;
/**
 * Default largest tensor whose DARE keep masks are kept between the passes: 2³⁰ elements, 256 MiB of masks
 * (an 8B model's embeddings, 525 M elements, take 131 MB), touched only by DARE tensors that use them.
 */
export const DARE_MASK_MAX_ELEMS = 2 ** 30;

/**
 * Default `readBlockElems` of DARE: 64 Ki elements, 3 × 128 KiB of buffer per worker. Against whole-chunk
 * reads into the slot (alternating CLI runs on the bench pair, 09:18 UTC): 5.75–6.19 s and 10.9–11.5 CPU s
 * against 6.35–6.79 s and 12.0–12.3 CPU s, same sha256; 128 Ki about the same, 32 Ki slower.
 */
export const DARE_READ_BLOCK = 65536;
/** A non-finite flag (recordBad in assembly/ties.ts): [0] first flagged index, [4] its value bits, [16..32) scratch. */
const FLAG_BYTES = 32;

/** dareL1x2's float64 lane sums (8 × 16 bytes), its float32 group sums (4 × 16 bytes) and its zero-padded tail scratch (3 × 16 bytes), rounded up to 64. */
const L1_STATE_BYTES = 256;

/** Bytes of one DARE L1 area for chunks of `chunk` elements: the state, a 16-byte count, 32 bytes per block sum. */
function l1Bytes(chunk: number, readBlock: number): number {
  return L1_STATE_BYTES + Math.max(l1OutBytes(chunk), Math.ceil(chunk / readBlock) * l1OutBytes(readBlock));
}

/** dareL1x2's output for one call over n elements: its block count (16 bytes), then up to ceil(n / L1_BLOCK) + 1 block sums. */
function l1OutBytes(n: number): number {
  return 16 + 32 * (Math.ceil(n / L1_BLOCK) + 1);
}

/** Bytes of DARE keep masks for a tensor of n elements: 2 bytes per 8 elements (dareL1x2). */
function maskBytes(n: number): number {
  return Math.ceil(n / 8) * 2;
}

/** Bytes of pool memory `runFastTies` needs (allocate the pool with at least this). */
export function fastTiesMemoryBytes(workers: number, options: FastTiesOptions = {}): number {
  const chunk = options.chunkElems ?? DEFAULT_CHUNK;
  const slots = Math.max(2, options.slots ?? DEFAULT_SLOTS);
  const readBlock = options.readBlockElems ?? DARE_READ_BLOCK;
  // (every allocation starts 64-aligned: up to 64 bytes of padding for each of the slots' 7, the threads' 8 and the 2 others)
  return (
    slots * (4 * chunk * 2 + MISC_BYTES + l1Bytes(chunk, readBlock) + Math.ceil(chunk / readBlock) * FLAG_BYTES) +
    l1Bytes(chunk, readBlock) +
    maskBytes(options.dareMaskMaxElems ?? DARE_MASK_MAX_ELEMS) +
    (workers + 1) * ((3 + 2 * FINE_WINDOW_MAX) * HIST_BYTES + 2 * MISC_BYTES + 3 * readBlock * 2) +
    64 +
    64 * (slots * 7 + 8 * (workers + 1) + 2 + 8)
  );
}

interface Slot {
  readonly inputs: readonly [number, number, number];
  readonly out: number;
  /** The chunk's kernel results: [0] first flagged index, [4] its value bits, [8] [12] tie budgets left, [16..32) scratch, [32] [36] tie counts. */
  readonly misc: number;
  /** DARE L1 measure: lane sums and scratch (L1_STATE_BYTES), then the block count and block sums (dareL1x2), per call. */
  readonly l1: number;
  /** DARE merge pass in read blocks: one non-finite flag (FLAG_BYTES) per block of the chunk. */
  readonly flags: number;
}

/** Per-thread scratch (index workerCount = the main thread): histograms and a misc block. */
interface Scratch {
  readonly h0: number;
  readonly h1: number;
  readonly fine: number;
  /** [0] or0, [4] or1, [8] count0, [12] count1, [16..48) scratch. */
  readonly misc: number;
  /** tiesBand2's counts ([0..32), see assembly/ties.ts) and its scratch [32..64). */
  readonly band: number;
  /** Fine histograms of the window bins (tiesHistFine2), per model: FINE_WINDOW_MAX × 65 536 u32. */
  readonly w0: number;
  readonly w1: number;
  /** DARE: the three inputs' current read block (3 × readBlockElems bf16). */
  readonly reads: number;
}

/**
 * Merges every job (in order) through the pool.
 * @throws CancelledError when `signal` aborts; the job's `nonFinite` error; whatever a reader or the sink throws.
 */
export async function runFastTies(jobs: readonly FastSparseJob[], pool: KernelPool, options: FastTiesOptions = {}): Promise<void> {
  const chunk = options.chunkElems ?? DEFAULT_CHUNK;
  const nSlots = Math.max(2, options.slots ?? DEFAULT_SLOTS);
  if (chunk % 8 !== 0 || chunk <= 0) throw new RangeError(`chunkElems must be a positive multiple of 8, got ${chunk}`);
  const readBlock = options.readBlockElems ?? DARE_READ_BLOCK;
  if (readBlock % 8 !== 0 || readBlock <= 0) throw new RangeError(`readBlockElems must be a positive multiple of 8, got ${readBlock}`);
  const readBlocks = Math.ceil(chunk / readBlock);
  const mark = pool.mark();
  try {
    const slots: Slot[] = Array.from({ length: nSlots }, () => ({
      inputs: [pool.alloc(chunk * 2), pool.alloc(chunk * 2), pool.alloc(chunk * 2)] as const,
      out: pool.alloc(chunk * 2),
      misc: pool.alloc(MISC_BYTES),
      l1: pool.alloc(l1Bytes(chunk, readBlock)),
      flags: pool.alloc(readBlocks * FLAG_BYTES),
    }));
    const scratch: Scratch[] = Array.from({ length: pool.workerCount + 1 }, () => ({
      h0: pool.alloc(HIST_BYTES),
      h1: pool.alloc(HIST_BYTES),
      fine: pool.alloc(HIST_BYTES),
      misc: pool.alloc(MISC_BYTES),
      band: pool.alloc(MISC_BYTES),
      w0: pool.alloc(FINE_WINDOW_MAX * HIST_BYTES),
      w1: pool.alloc(FINE_WINDOW_MAX * HIST_BYTES),
      reads: pool.alloc(3 * readBlock * 2),
    }));
    const l1State = pool.alloc(l1Bytes(chunk, readBlock));
    const maskMax = options.dareMaskMaxElems ?? DARE_MASK_MAX_ELEMS;
    const masks = pool.alloc(maskBytes(maskMax));
    const band = options.tiesBand === false ? undefined : { ...DEFAULT_BAND, ...options.tiesBand };
    const work = [new Uint32Array(65536), new Uint32Array(65536)] as const;
    const ctx: RunCtx = { pool, slots, scratch, l1State, masks, maskMax, chunk, readBlock, readBlocks, options, localMax: options.localMax ?? LOCAL_MAX, band, work };
    for (let j = 0; j < jobs.length; j++) {
      const job = jobs[j]!;
      if (job.kind === "ties") await runTies(ctx, job, j);
      else await runDare(ctx, job, j);
    }
  } finally {
    pool.release(mark);
  }
}

interface RunCtx {
  readonly pool: KernelPool;
  readonly slots: readonly Slot[];
  readonly scratch: readonly Scratch[];
  /** The DARE L1 measure's area (as a slot's `l1`) when the lane sums carry from chunk to chunk. */
  readonly l1State: number;
  /** DARE keep masks of a tensor of up to maskMax elements (dareL1x2 → dare2). */
  readonly masks: number;
  readonly maskMax: number;
  readonly chunk: number;
  /** DARE's read block (FastTiesOptions.readBlockElems), and how many of them a chunk holds at most. */
  readonly readBlock: number;
  readonly readBlocks: number;
  readonly options: FastTiesOptions;
  readonly localMax: number;
  /** Banded TIES measure settings, or undefined for the full histogram pass. */
  readonly band: BandSettings | undefined;
  /** Two 65 536-bin histograms reused by every tensor's banded measure (the sample's, then the band's light part). */
  readonly work: readonly [Uint32Array, Uint32Array];
}

/**
 * Runs chunk i's calls whole on worker i mod workerCount (round robin: chunks never wait for each other),
 * or on the main thread when n ≤ localMax. `calls` gets the scratch of the thread that runs them.
 */
function runChunk(ctx: RunCtx, i: number, n: number, calls: (s: Scratch) => KernelCall[], pre: readonly WorkerCall[] = []): Promise<void> {
  const pool = ctx.pool;
  if (n <= ctx.localMax && pre.length === 0) {
    for (const [name, ...args] of calls(ctx.scratch[pool.workerCount]!)) (pool.local[name] as (...a: number[]) => void)(...args);
    return Promise.resolve();
  }
  const w = i % pool.workerCount;
  const batches: WorkerCall[][] = Array.from({ length: pool.workerCount }, () => []);
  batches[w] = [...pre, ...calls(ctx.scratch[w]!)];
  return pool.run(batches);
}

/**
 * Runs chunk i (elements [0, n) of `slot`): with `inBlocks`, in read blocks on its worker, each block of
 * ctx.readBlock elements read by the chunk's whole-chunk reads `pre` (["read", fd, position, slot input,
 * bytes], one per input, as `stream` makes them) narrowed to the block and aimed at the worker's read
 * buffer, then the calls `call(s, m, k, inputs)` gives for the block's elements [s, s + m) (its k-th) with
 * the inputs' pointers in that buffer; else `call(0, n, 0, slot.inputs)` after `pre`, as runChunk runs it.
 */
function runInReadBlocks(
  ctx: RunCtx,
  slot: Slot,
  i: number,
  n: number,
  pre: readonly WorkerCall[],
  inBlocks: boolean,
  call: (s: number, m: number, k: number, inputs: readonly number[]) => KernelCall[],
): Promise<void> {
  if (!inBlocks) return runChunk(ctx, i, n, () => call(0, n, 0, slot.inputs), pre);
  const buf = ctx.scratch[i % ctx.pool.workerCount]!.reads;
  const inputs = [buf, buf + ctx.readBlock * 2, buf + ctx.readBlock * 4];
  const calls: WorkerCall[] = [];
  for (let s = 0, k = 0; s < n; s += ctx.readBlock, k++) {
    const m = Math.min(ctx.readBlock, n - s);
    pre.forEach((r, t) => {
      const [, fd, position] = r as readonly ["read", number, number, number, number];
      calls.push(["read", fd, position + s * 2, inputs[t]!, m * 2]);
    });
    calls.push(...call(s, m, k, inputs));
  }
  return runChunk(ctx, i, n, () => [], calls);
}

/** A chunk handed out: `done` settles when its kernels have run. (An object, so that awaiting the dispatch does not wait for it.) */
interface Dispatched {
  readonly done: Promise<void>;
}

/**
 * Streams one tensor through the slot ring and calls `compute` for every chunk in order (it resolves once
 * the chunk is handed out; chunks then run concurrently, one per worker, round robin). A chunk's inputs
 * are read ahead by async reads (nSlots chunks ahead), or, with `workerReads` and the job's `spans`, by the
 * worker that computes it: `compute` gets those read calls as `pre`, to send first to that worker. With
 * `output`, each slot's output goes out behind, in chunk order (`output.check` runs first, in chunk order,
 * and may throw): through the job's write, or, when the sink gives the chunk a place in its staging
 * (out-ranges.ts), committed there, with `compute` given the place's `ranges` to merge into.
 * A slot is reused once its previous chunk is written (or computed, without `output`).
 */
async function stream(
  ctx: RunCtx,
  job: FastSparseJob,
  compute: (slot: Slot, start: number, n: number, i: number, pre: readonly WorkerCall[], ranges: OutRanges | undefined) => Promise<Dispatched> | Dispatched,
  output?: { readonly jobIndex: number; readonly check: (slot: Slot, start: number, n: number) => void },
  workerReads = true,
): Promise<void> {
  const { pool, slots, chunk, options } = ctx;
  const nSlots = slots.length;
  const count = Math.ceil(job.numel / chunk);
  const spans = workerReads ? job.spans : undefined;
  const byWorker = (n: number): boolean => spans !== undefined && n > ctx.localMax;
  const reads: (Promise<void> | undefined)[] = new Array(count);
  /** Per chunk: written (with `write`) or computed; a slot's next read waits for it. */
  const freed: (Promise<void> | undefined)[] = new Array(count);
  const inflight = new InFlight();
  const readAsync = (slot: Slot, start: number, n: number): Promise<void> =>
    Promise.all(job.reads.map((read, k) => read(start * 2, pool.bytes(slot.inputs[k]!, n * 2)))).then(() => undefined);
  const issueRead = (i: number): void => {
    if (i >= count || reads[i] !== undefined) return;
    const start = i * chunk;
    const n = Math.min(chunk, job.numel - start);
    const slot = slots[i % nSlots]!;
    const prev = (i >= nSlots ? freed[i - nSlots] : undefined) ?? Promise.resolve();
    // a worker-read chunk only needs its slot free
    reads[i] = inflight.track(byWorker(n) ? prev : prev.then(() => readAsync(slot, start, n)));
  };
  let lastWrite: Promise<void> = Promise.resolve();
  const reservations = new OutputReservations(pool.memory.buffer);
  try {
    for (let i = 0; i < count; i++) {
      if (options.signal?.aborted) throw new CancelledError("merge cancelled; no output was written");
      if (inflight.failure !== undefined) throw inflight.failure.err;
      for (let a = i; a < i + nSlots; a++) issueRead(a);
      await reads[i];
      const start = i * chunk;
      const n = Math.min(chunk, job.numel - start);
      const slot = slots[i % nSlots]!;
      const pre: WorkerCall[] = byWorker(n) ? spans!.map((sp, k) => ["read", sp.fd, sp.offset + start * 2, slot.inputs[k]!, n * 2] as const) : [];
      const reserved = output === undefined ? undefined : await reservations.next(job, n * 2);
      let { done } = await compute(slot, start, n, i, pre, reserved?.ranges);
      if (pre.length > 0) {
        // a failed worker read: read again here, which throws the source's own error (truncated file, I/O error)
        done = done.catch(async (err: unknown) => {
          await readAsync(slot, start, n);
          throw err;
        });
      }
      if (output !== undefined) {
        const out = pool.bytes(slot.out, n * 2);
        const send = reserved === undefined ? reservations.plain(() => job.write(start * 2, out)) : async () => commitReserved(job, reserved, out);
        lastWrite = Promise.all([done, lastWrite]).then(async () => {
          output.check(slot, start, n);
          await send();
          options.onProgress?.(output.jobIndex, start + n);
        });
        if (reserved === undefined) reservations.written(lastWrite);
        freed[i] = inflight.track(lastWrite);
      } else freed[i] = inflight.track(done);
      reads[i] = undefined;
      if (i >= nSlots) freed[i - nSlots] = undefined;
    }
    await inflight.all();
    if (inflight.failure !== undefined) throw inflight.failure.err;
  } catch (err) {
    await inflight.settle();
    throw err;
  }
}

/**
 * Clears a slot's non-finite flag (see recordBad in assembly/ties.ts) before its kernel runs, and with
 * `blocks`, the flags of that many read blocks (DARE's merge pass in read blocks: one flag per call).
 */
function resetFlag(ctx: RunCtx, slot: Slot, blocks = 0): void {
  const u32 = new Uint32Array(ctx.pool.memory.buffer);
  u32[slot.misc >>> 2] = 0xffffffff;
  for (let k = 0; k < blocks; k++) u32[(slot.flags + k * FLAG_BYTES) >>> 2] = 0xffffffff;
}

/**
 * Throws the job's non-finite error for the chunk at `start` if its kernel flagged an element: the chunk's
 * flag (index from the chunk's start), else the first read block's flag that is set (index from the block's).
 */
function checkFlag(ctx: RunCtx, job: FastSparseJob, slot: Slot, start: number, blocks = 0): void {
  const u32 = new Uint32Array(ctx.pool.memory.buffer);
  const flags = [{ at: slot.misc, from: 0 }, ...Array.from({ length: blocks }, (_, k) => ({ at: slot.flags + k * FLAG_BYTES, from: k * ctx.readBlock }))];
  for (const { at, from } of flags) {
    const idx = u32[at >>> 2]!;
    if (idx !== 0xffffffff) {
      const f = new Float32Array(new Uint32Array([u32[(at + 4) >>> 2]!]).buffer)[0]!;
      throw job.nonFinite(start + from + idx, f);
    }
  }
}

/** Adds the 65 536 bins of every thread's histogram at `which` (h0 or h1) into `into`. */
function sumHistograms(ctx: RunCtx, which: "h0" | "h1", into: Uint32Array): void {
  const mem = ctx.pool.memory.buffer;
  for (const s of ctx.scratch) {
    const h = new Uint32Array(mem, s[which], 65536);
    for (let b = 0; b < 65536; b++) into[b] = into[b]! + h[b]!;
  }
}

/** Pass 1's result: each model's coarse histogram (65 536 bins by the top 16 bits of |δ|) and the OR of the low 16 bits of its |δ|. */
interface Measured {
  readonly coarse: readonly Uint32Array[];
  readonly or: readonly number[];
  /** Per model, the window of coarse bins whose fine histograms were kept (tiesHistFine2; w 0: none). */
  readonly windows?: readonly FineWindow[];
}

/** Coarse bins [lo, lo + w) whose fine histograms the full pass keeps (w ≤ FINE_WINDOW_MAX). */
interface FineWindow {
  readonly lo: number;
  readonly w: number;
}

/** Zeroes every thread's h0 and h1. */
function clearHistograms(ctx: RunCtx): void {
  const mem = ctx.pool.memory.buffer;
  for (const s of ctx.scratch) {
    new Uint32Array(mem, s.h0, 65536).fill(0);
    new Uint32Array(mem, s.h1, 65536).fill(0);
  }
}

/** The full measure pass: both models' histograms of every |δ| (tiesHist2). */
async function measureFull(ctx: RunCtx, job: FastTiesJob, windows?: readonly FineWindow[]): Promise<Measured> {
  const mem = ctx.pool.memory.buffer;
  clearHistograms(ctx);
  for (const s of ctx.scratch) new Uint32Array(mem, s.misc, 2).fill(0);
  if (windows !== undefined) {
    for (const s of ctx.scratch) {
      new Uint32Array(mem, s.w0, windows[0]!.w * 65536).fill(0);
      new Uint32Array(mem, s.w1, windows[1]!.w * 65536).fill(0);
    }
  }
  const [f0, f1] = windows ?? [{ lo: 0, w: 0 }, { lo: 0, w: 0 }];
  await stream(ctx, job, (slot, _start, len, i, pre) => ({
    done: runChunk(
      ctx,
      i,
      len,
      (s) => [
        windows === undefined
          ? ["tiesHist2", slot.inputs[0], slot.inputs[1], slot.inputs[2], len, s.h0, s.h1, s.misc]
          : ["tiesHistFine2", slot.inputs[0], slot.inputs[1], slot.inputs[2], len, s.h0, s.h1, s.misc, f0!.lo, f0!.w, s.w0, f1!.lo, f1!.w, s.w1],
      ],
      pre,
    ),
  }));
  const coarse = [0, 1].map((m) => {
    const h = new Uint32Array(65536);
    sumHistograms(ctx, m === 0 ? "h0" : "h1", h);
    return h;
  });
  const or = [0, 1].map((m) => ctx.scratch.reduce((acc, s) => acc | new Uint32Array(mem, s.misc, 2)[m]!, 0));
  return windows === undefined ? { coarse, or } : { coarse, or, windows };
}

/**
 * Both models' coarse histograms of the tensor's sample blocks (samplePlan; in ctx.work), the sample's
 * size and the OR of the low 16 bits of its |δ| per model, or undefined when the tensor gets no sample. The blocks are read into slot 0 (as many at a time as it
 * holds) and histogrammed by the workers, each reading its share of them itself when the inputs are
 * plain file ranges, else read here and histogrammed on this thread.
 */
async function sampleHistograms(ctx: RunCtx, job: FastTiesJob, settings: BandSettings): Promise<{ hist: Uint32Array[]; m: number; or: number[] } | undefined> {
  const { pool } = ctx;
  const { starts, len } = samplePlan(job.numel, { ...settings, blockElems: Math.min(settings.blockElems, ctx.chunk) });
  if (starts.length === 0) return undefined;
  const mem = pool.memory.buffer;
  clearHistograms(ctx);
  for (const s of ctx.scratch) new Uint32Array(mem, s.misc, 2).fill(0);
  const slot = ctx.slots[0]!;
  const per = Math.max(1, Math.floor(ctx.chunk / len));
  const W = pool.workerCount;
  const spans = job.spans;
  for (let q = 0; q < starts.length; q += per) {
    if (ctx.options.signal?.aborted) throw new CancelledError("merge cancelled; no output was written");
    const group = starts.slice(q, q + per);
    const readHere = (): Promise<void> =>
      Promise.all(group.flatMap((st, g) => job.reads.map((read, k) => read(st * 2, pool.bytes(slot.inputs[k]! + g * len * 2, len * 2))))).then(() => undefined);
    if (spans !== undefined && group.length * len > ctx.localMax) {
      // worker w reads and histograms blocks [w·B/W, (w+1)·B/W) of the group
      const batches: WorkerCall[][] = Array.from({ length: W }, (_, w) => {
        const g0 = Math.floor((w * group.length) / W);
        const g1 = Math.floor(((w + 1) * group.length) / W);
        if (g1 === g0) return [];
        const calls: WorkerCall[] = [];
        for (let g = g0; g < g1; g++) spans.forEach((sp, k) => calls.push(["read", sp.fd, sp.offset + group[g]! * 2, slot.inputs[k]! + g * len * 2, len * 2]));
        const sc = ctx.scratch[w]!;
        const at = g0 * len * 2;
        calls.push(["tiesHist2", slot.inputs[0] + at, slot.inputs[1] + at, slot.inputs[2] + at, (g1 - g0) * len, sc.h0, sc.h1, sc.misc]);
        return calls;
      });
      await pool.run(batches).catch(async (err: unknown) => {
        await readHere(); // a failed worker read: read here, which throws the source's own error
        throw err;
      });
    } else {
      await readHere();
      const sc = ctx.scratch[W]!;
      pool.local.tiesHist2(slot.inputs[0], slot.inputs[1], slot.inputs[2], group.length * len, sc.h0, sc.h1, sc.misc);
    }
  }
  const hist = [0, 1].map((m) => {
    const h = ctx.work[m]!.fill(0);
    sumHistograms(ctx, m === 0 ? "h0" : "h1", h);
    return h;
  });
  const or = [0, 1].map((m) => ctx.scratch.reduce((acc, sc) => acc | new Uint32Array(mem, sc.misc, 2)[m]!, 0));
  return { hist, m: starts.length * len, or };
}

/**
 * The banded measure pass (kernels/ties-band.ts): a sample picks each model's band; the pass counts the
 * entries above it and in its heavy bins and histograms the rest of it (tiesBand2). Undefined when the
 * tensor gets no band ("full": too small, or the sample's band is too full to pay) or when the k-th
 * largest |δ| of a model turns out to be outside its band ("missed"): the caller then runs the full pass.
 */
async function measureBanded(ctx: RunCtx, job: FastTiesJob): Promise<Measured | { readonly kind: "full" | "missed"; readonly windows?: readonly FineWindow[] }> {
  const settings = ctx.band;
  if (settings === undefined) return { kind: "full" };
  const sample = await sampleHistograms(ctx, job, settings);
  if (sample === undefined) return { kind: "full" };
  const n = job.numel;
  const choose = settings.choose ?? chooseBand;
  const chosen = [0, 1].map((m) => choose(sample.hist[m]!, sample.m, job.ranks[m]!, n, m));
  if (chosen[0] === undefined || chosen[1] === undefined) return { kind: "full" };
  const [b0, b1] = chosen as [TiesBand, TiesBand];
  for (const b of [b0, b1]) {
    const inside = (q: number): boolean => q === NO_BIN || (q >= b.lo && q <= b.hi);
    if (!(b.lo >= 0 && b.lo <= b.hi && b.hi <= 0x7fff && inside(b.heavyA) && inside(b.heavyB) && (b.heavyA !== b.heavyB || b.heavyA === NO_BIN))) {
      throw new InternalError(`TIES band ${JSON.stringify(b)}: expected 0 ≤ lo ≤ hi ≤ 0x7fff and distinct heavy bins inside it`);
    }
  }
  if (lightFraction(sample.hist[0]!, sample.m, b0) > settings.maxLight || lightFraction(sample.hist[1]!, sample.m, b1) > settings.maxLight) {
    // too many scattered increments for the band to pay: the full pass, keeping the fine histograms of up
    // to 8 bins of the band around the sample's boundary bin (many distinct |δ| near the threshold: the
    // boundary bin likely needs its fine pass)
    // (only where the sample has some |δ| that is not a bf16 number: else the fine pass is unlikely to run)
    const none = { lo: 0, w: 0 };
    return { kind: "full", windows: [sample.or[0] !== 0 ? fineWindow(b0) : none, sample.or[1] !== 0 ? fineWindow(b1) : none] };
  }
  const mem = ctx.pool.memory.buffer;
  clearHistograms(ctx);
  for (const s of ctx.scratch) new Uint32Array(mem, s.band, 8).fill(0);
  await stream(ctx, job, (slot, _start, len, i, pre) => ({
    done: runChunk(
      ctx,
      i,
      len,
      (s) => [["tiesBand2", slot.inputs[0], slot.inputs[1], slot.inputs[2], len, b0.lo, b0.hi, b0.heavyA, b0.heavyB, b1.lo, b1.hi, b1.heavyA, b1.heavyB, s.h0, s.h1, s.band]],
      pre,
    ),
  }));
  const total = (q: number): number => ctx.scratch.reduce((acc, s) => acc + new Uint32Array(mem, s.band, 8)[q]!, 0);
  const coarse: Uint32Array[] = [];
  for (const m of [0, 1]) {
    const light = ctx.work[m]!.fill(0); // (the sample's histogram is no longer needed)
    sumHistograms(ctx, m === 0 ? "h0" : "h1", light);
    const h = bandHistogram(chosen[m]!, { above: total(m), heavyA: total(2 + 2 * m), heavyB: total(3 + 2 * m), light }, job.ranks[m]!, n);
    if (h === undefined) return { kind: "missed" };
    coarse.push(h);
  }
  const or = [0, 1].map((m) => ctx.scratch.reduce((acc, s) => acc | new Uint32Array(mem, s.band, 8)[6 + m]!, 0));
  return { coarse, or };
}

async function runTies(ctx: RunCtx, job: FastTiesJob, jobIndex: number): Promise<void> {
  const { pool } = ctx;
  const mem = pool.memory.buffer;
  const n = job.numel;
  // pass 1: a coarse histogram per model (banded when a sample gives a band) and the OR of the low 16 bits
  const banded = await measureBanded(ctx, job);
  ctx.options.onTiesMeasure?.(jobIndex, "kind" in banded ? banded.kind : "band");
  const measured = "kind" in banded ? await measureFull(ctx, job, banded.windows) : banded;
  const rankings: MagnitudeRanking[] = [0, 1].map((m) => {
    const coarse = measured.coarse[m]!;
    const or = measured.or[m]!;
    // collectMax 0: ties are never collected; the kernel counts them (as the reference kernel does)
    const st = createMagnitudeRanking(n, [job.ranks[m]!], 0, { countTiesInKernel: true, needL1: false });
    st.coarse = coarse;
    // the reference ORs the low bits per bin; a tensor-wide OR only adds a fine pass where the boundary
    // bin is all zero-low, which finds the same V and tie count
    st.coarseLowOr = new Uint16Array(65536).fill(or & 0xffff);
    endRankingPass(0, st);
    return st;
  });
  // the boundary bin's fine histogram, when the full pass kept it (a window from the sample)
  for (const m of [0, 1]) {
    const sel = rankings[m]!.selectors[0]!;
    const win = measured.windows?.[m];
    if (sel.done || win === undefined || sel.bin < win.lo || sel.bin >= win.lo + win.w) continue;
    const at = (sel.bin - win.lo) * HIST_BYTES;
    for (const s of ctx.scratch) {
      const f = new Uint32Array(mem, (m === 0 ? s.w0 : s.w1) + at, 65536);
      for (let l = 0; l < 65536; l++) sel.fine![l] = sel.fine![l]! + f[l]!;
    }
    endRankingPass(1, rankings[m]!);
  }
  // fine pass for the models whose boundary bin holds several values
  const fineModels = [0, 1].filter((m) => !rankings[m]!.selectors[0]!.done);
  if (fineModels.length > 0) {
    ctx.options.onTiesMeasure?.(jobIndex, "fine");
    for (const s of ctx.scratch) {
      new Uint32Array(mem, s.h0, 65536).fill(0);
      new Uint32Array(mem, s.h1, 65536).fill(0);
    }
    await stream(ctx, job, (slot, _start, len, i, pre) => ({
      done: runChunk(
        ctx,
        i,
        len,
        (s) => fineModels.map((m) => ["tiesFine", slot.inputs[0], slot.inputs[1 + m]!, len, rankings[m]!.selectors[0]!.bin, m === 0 ? s.h0 : s.h1] as const),
        pre,
      ),
    }));
    for (const m of fineModels) {
      sumHistograms(ctx, m === 0 ? "h0" : "h1", rankings[m]!.selectors[0]!.fine!);
      endRankingPass(1, rankings[m]!);
    }
  }
  const sels = rankings.map((st) => st.selectors[0]!);
  const vb = sels.map((s) => s.valueBits | 0);
  // Tie budgets. left[m]: entries equal to V still to keep (ALL: keep every one). Two modes:
  // - reserve: while left − reserved ≥ n (reserved: the most the chunks in flight may take), a chunk gets
  //   budget n, i.e. keeps all its ties, and its kernel reports how many it used;
  // - count: past that, the chunks in flight are waited for once (left is then exact); from then on each
  //   chunk's worker first reads it and counts its ties (tiesCount2, ~7× faster than the kernel), and the
  //   budgets are handed out in chunk order on this thread as the counts arrive, each chunk's kernel
  //   following its count. Nothing waits in either mode except that one drain.
  const left = sels.map((s) => (s.cutoffIndex === Infinity ? ALL : s.tiesNeeded));
  const reserved = [0, 0];
  const pending = new Set<Promise<void>>();
  const u32 = new Uint32Array(mem);
  let counting = false;
  /** Count mode: settles when the budgets of every chunk handed out so far are decided. */
  let decided: Promise<void> = Promise.resolve();
  /** Count mode, set once both budgets are decided to be 0 or ALL: later chunks skip the count. */
  let settled = false;
  const open = (m: number): boolean => left[m] !== ALL && left[m] !== 0;
  const kernel = (slot: Slot, i: number, len: number, budgets: readonly number[], pre: readonly WorkerCall[], ranges: OutRanges | undefined): Promise<void> => {
    resetFlag(ctx, slot);
    // straight into the output's staging when the chunk has a place there (copies for a block end it crosses)
    const { o, copies } = placeOutput(ranges, 0, len * 2, slot.out);
    return runChunk(
      ctx,
      i,
      len,
      () => [
        [
          "ties2",
          slot.inputs[0],
          slot.inputs[1],
          slot.inputs[2],
          o,
          len,
          vb[0]!,
          vb[1]!,
          budgets[0]!,
          budgets[1]!,
          job.weights[0],
          job.weights[1],
          job.factors[0],
          job.factors[1],
          job.lambda,
          job.normalize ? 1 : 0,
          slot.misc,
        ],
        ...copies,
      ],
      pre,
    );
  };
  await stream(
    ctx,
    job,
    async (slot, _start, len, i, pre, ranges) => {
      const fits = (m: number): boolean => !open(m) || left[m]! - reserved[m]! >= len;
      if (!counting && fits(0) && fits(1)) {
        const counted = [open(0), open(1)];
        const budgets = [0, 1].map((m) => (counted[m] ? len : left[m]!));
        for (let m = 0; m < 2; m++) if (counted[m]) reserved[m] += len;
        const done = kernel(slot, i, len, budgets, pre, ranges).then(() => {
          for (let m = 0; m < 2; m++) {
            if (!counted[m]) continue;
            left[m] = left[m]! - (len - u32[(slot.misc + 8 + 4 * m) >>> 2]!);
            reserved[m] = reserved[m]! - len;
          }
        });
        pending.add(done);
        const drop = (): void => void pending.delete(done);
        done.then(drop, drop);
        return { done };
      }
      if (!counting) {
        await Promise.all([...pending]);
        counting = true;
      }
      if (settled) return { done: decided.then(() => kernel(slot, i, len, left, pre, ranges)) };
      const cnt = slot.misc + 32;
      const countDone = runChunk(ctx, i, len, () => [["tiesCount2", slot.inputs[0], slot.inputs[1], slot.inputs[2], len, vb[0]!, vb[1]!, cnt]], pre);
      const budgets = Promise.all([decided, countDone]).then(() => {
        const b = [0, 1].map((m) => {
          if (!open(m)) return left[m]!;
          const c = u32[(cnt + 4 * m) >>> 2]!;
          const take = Math.min(left[m]!, c);
          left[m] = left[m]! - take;
          return take === c ? len : take; // len: keep every tie of the chunk
        });
        if (!open(0) && !open(1)) settled = true;
        return b;
      });
      decided = budgets.then(() => undefined);
      return { done: budgets.then((b) => kernel(slot, i, len, b, [], ranges)) };
    },
    { jobIndex, check: (slot, start) => checkFlag(ctx, job, slot, start) },
  );
}

/** ceil(p·2²⁴): U = (h >>> 8)/2²⁴ < p ⟺ (h >>> 8) < K (exact: scaling by 2²⁴ is exact in float64). */
function keepBound(p: number): number {
  return Math.ceil(p * 16777216);
}

async function runDare(ctx: RunCtx, job: FastDareJob, jobIndex: number): Promise<void> {
  const { pool } = ctx;
  const mem = pool.memory.buffer;
  const n = job.numel;
  const keys = job.keys.map((k) => k | 0);
  const Ks = job.densities.map(keepBound);
  let factors: readonly number[];
  // with the l1 rescale, the measure pass hashes every keep mask anyway: it stores them for the merge pass
  const maskAt = (start: number): number => (job.factors === "l1" && n <= ctx.maskMax ? ctx.masks + maskBytes(start) : 0);
  if (job.factors === "l1") {
    const totals = [0, 0, 0, 0]; // total₀, kept₀, total₁, kept₁
    // chunks that start on an L1 block sum their blocks independently (each on its worker, fresh lane
    // sums); other chunk sizes (tests) carry the lane sums from chunk to chunk, one chunk at a time
    const blocked = ctx.chunk % L1_BLOCK === 0;
    let prev: Promise<void> = Promise.resolve();
    const count = Math.ceil(n / ctx.chunk);
    await stream(ctx, job, async (slot, start, len, i, pre) => {
      if (!blocked) await prev;
      const state = blocked ? slot.l1 : ctx.l1State;
      /** The k-th call's output area (its block count, then its block sums). */
      const outArea = (k: number): number => state + L1_STATE_BYTES + k * l1OutBytes(ctx.readBlock);
      // the call for elements [s, s + m) of the chunk, its k-th
      const call = (s: number, m: number, k: number, inputs: readonly number[]): KernelCall[] => [
        ["dareL1x2", inputs[0]!, inputs[1]!, inputs[2]!, m, (start + s) | 0, keys[0]!, Ks[0]!, keys[1]!, Ks[1]!, state, outArea(k), blocked || i === 0 ? 1 : 0, blocked || i === count - 1 ? 1 : 0, maskAt(start + s)],
      ];
      // a worker-read chunk in read blocks: each block starts on an L1 block, so its sums are the same
      const inBlocks = blocked && pre.length > 0 && ctx.readBlock % L1_BLOCK === 0 && len > ctx.readBlock;
      const computed = runInReadBlocks(ctx, slot, i, len, pre, inBlocks, call);
      // the block sums, added in block order (chunk order, then call order) on this thread
      const done = Promise.all([computed, prev]).then(() => {
        for (let k = 0; k < (inBlocks ? Math.ceil(len / ctx.readBlock) : 1); k++) {
          const out = outArea(k);
          const f64 = new Float64Array(mem, out + 16, 4 * new Int32Array(mem, out, 1)[0]!);
          for (let q = 0; q < f64.length; q += 4) for (let m = 0; m < 4; m++) totals[m] = totals[m]! + f64[q + m]!;
        }
      });
      prev = done;
      return { done };
    });
    factors = [0, 1].map((m) => {
      const total = totals[2 * m]!;
      const kept = totals[2 * m + 1]!;
      return total >= RESCALE_MIN_NORM && kept >= RESCALE_MIN_NORM ? total / kept : 1;
    });
  } else factors = job.factors;
  await stream(
    ctx,
    job,
    (slot, start, len, i, pre, ranges) => {
      // a worker-read chunk in read blocks, each call with its own non-finite flag
      const inBlocks = pre.length > 0 && len > ctx.readBlock;
      resetFlag(ctx, slot, ctx.readBlocks);
      const call = (s: number, m: number, k: number, inputs: readonly number[]): KernelCall[] => {
        // straight into the output's staging when the chunk has a place there (copies for a block end it crosses)
        const { o, copies } = placeOutput(ranges, s * 2, (s + m) * 2, slot.out);
        const dare2: KernelCall = [
          "dare2",
          inputs[0]!,
          inputs[1]!,
          inputs[2]!,
          o,
          m,
          (start + s) | 0,
          keys[0]!,
          Ks[0]!,
          keys[1]!,
          Ks[1]!,
          job.weights[0],
          job.weights[1],
          factors[0]!,
          factors[1]!,
          job.lambda,
          job.normalize ? 1 : 0,
          inBlocks ? slot.flags + k * FLAG_BYTES : slot.misc,
          job.linear ? 1 : 0,
          job.divisor,
          maskAt(start + s),
        ];
        return [dare2, ...copies];
      };
      return { done: runInReadBlocks(ctx, slot, i, len, pre, inBlocks, call) };
    },
    { jobIndex, check: (slot, start) => checkFlag(ctx, job, slot, start, ctx.readBlocks) },
  );
}

/**
 * The fast path of elementwise merges whose method has a linear form (linear, task_arithmetic): streams
 * bf16 tensors through a ring of chunk slots in the kernel pool's shared memory, with read-ahead (async
 * positioned reads of the next slots while the workers merge earlier ones) and write-behind (merged slots
 * are written, in order, while later ones are computed). Each chunk is merged whole by one worker, round
 * robin, so the workers never wait for each other. When the inputs are plain file ranges (`FastTerm.span`),
 * the worker that merges a chunk also reads it, in blocks of `readBlockElems` per input, each merged
 * right after it is read, while it is still in that core's cache. Output bytes equal the generic path's
 * (decode → method.kernel → encode) bit for bit: see `kernels/assembly/bf16.ts` and `fast-linear.test.ts`.
 *
 * Memory is fixed: slots × (terms + 1) × chunk × 2 bytes (default 4 × 3 × 4 MiB = 48 MiB for a
 * two-model merge), whatever the tensor or model size; 2 GB embeddings are just more chunks.
 */
import type { BandSettings } from "../kernels/ties-band.ts";
import { CancelledError } from "../../errors.ts";
import { fusedBf16 } from "../kernels/fused.ts";
import type { KernelCall, KernelPool, WorkerCall } from "./pool.ts";
import type { FileSpan } from "../../core/tensor.ts";
import { computeLora, LoraFactors, loraUvBytes, type FastLora } from "./fast-lora.ts";
import { InFlight } from "../../core/in-flight.ts";
import { commitReserved, copiesInto, OutputReservations, placeOutput, type OutputStaging, type OutRanges } from "./out-ranges.ts";

/** One input term of a tensor: a coefficient and a reader of the stored bf16 bytes. */
export interface FastTerm {
  /** float32 coefficient (non-zero), from `linearFormOf`. */
  readonly coef: number;
  /** Reads stored bytes [byteOffset, byteOffset + out.length) of the tensor's data into out. */
  read(byteOffset: number, out: Uint8Array): Promise<void>;
  /**
   * Where `read` reads from, when it is one plain file range (TensorSource.fileSpan): the workers then read
   * their chunks themselves; `read` still serves chunks merged on the main thread and reports read errors.
   */
  readonly span?: FileSpan;
}

/** One bf16 → bf16 output tensor; its optional reserve/commit are the zero-copy output (out-ranges.ts). */
export interface FastJob extends OutputStaging {
  readonly numel: number;
  readonly terms: readonly FastTerm[];
  /** float32 divisor (linear with normalize and Σw ≠ 1) or undefined. */
  readonly divisor: number | undefined;
  /**
   * Writes merged bytes at byteOffset within the output tensor's data. Calls come in ascending offset
   * order (several may be in flight; a sequential sink may chain them); `bytes` must not be retained after
   * the returned promise settles.
   */
  write(byteOffset: number, bytes: Uint8Array): Promise<void>;
  /**
   * When one term is a LoRA tensor θ + s·U·V (its `read` gives θ's stored bytes): at most 2 terms; chunks
   * then hold whole rows (`cols` ≤ chunkElems). See fast-lora.ts.
   */
  readonly lora?: FastLora;
}

export interface FastRunOptions {
  /** Elements per chunk. @default 2 Mi */
  readonly chunkElems?: number;
  /** Ring slots (≥ 2). @default 4 */
  readonly slots?: number;
  readonly signal?: AbortSignal;
  /** LoRA chunks with fewer multiply-adds run on the main thread (tests lower it). @default 2²⁰ */
  readonly loraLocalMaxMacs?: number;
  /** Called after each chunk is written (job index, elements of that job done). */
  readonly onProgress?: (jobIndex: number, doneElems: number) => void;
  /** Chunks up to this many elements are computed on the main thread instead of the workers (tests). @default 65 536 */
  readonly localMax?: number;
  /**
   * Elements per input a worker reads (into its own buffer) and then merges, when it reads its chunk itself
   * (a multiple of 8). @default 128 Ki here; the TIES/DARE path reads the same option with its own default
   * (fast-ties.ts DARE_READ_BLOCK).
   */
  readonly readBlockElems?: number;
  /** TIES measure pass settings (fast-ties.ts FastTiesOptions.tiesBand; tests force the band). */
  readonly tiesBand?: Partial<BandSettings> | false;
  /** Which measure pass each TIES tensor took (fast-ties.ts FastTiesOptions.onTiesMeasure; tests). */
  readonly onTiesMeasure?: (jobIndex: number, kind: "band" | "full" | "missed" | "fine") => void;
  /** Largest DARE tensor whose keep masks pass from the measure pass to the merge pass (fast-ties.ts FastTiesOptions.dareMaskMaxElems; tests). */
  readonly dareMaskMaxElems?: number;
}

/** Bytes of pool memory `runFastLinear` needs for these jobs and options (allocate the pool with it). */
export function fastLinearMemoryBytes(maxTerms: number, workers: number, options: FastRunOptions = {}): number {
  const chunk = options.chunkElems ?? DEFAULT_CHUNK;
  const slots = options.slots ?? DEFAULT_SLOTS;
  const readBlock = options.readBlockElems ?? READ_BLOCK;
  return (
    slots * (Math.max(1, maxTerms) + 1) * chunk * 2 +
    (workers + 1) * ACC_BLOCK * 4 +
    workers * Math.max(1, maxTerms) * readBlock * 2 +
    64 * (slots * (maxTerms + 2) + 2 * workers + 2)
  );
}

const DEFAULT_CHUNK = 2 * 1024 * 1024;
/** Default ring slots. */
export const DEFAULT_SLOTS = 4;
/** float32 accumulator block for the k-term path (64 KiB: stays in L2). */
const ACC_BLOCK = 16384;
/** Below this many elements a chunk is merged on the main thread (a message round trip costs more). */
const LOCAL_MAX = 65536;
/**
 * Elements per input a worker reads before merging them (256 KiB of bf16 per input): the block is merged
 * while it is still in the core's L2 cache. A multiple of ACC_BLOCK.
 */
const READ_BLOCK = 131072;

interface Slot {
  readonly inputs: number[];
  readonly out: number;
}

/**
 * Merges every job (in order) through the pool. Resolves when every chunk is written; on error or abort
 * waits for in-flight I/O to settle, then rejects.
 * @throws CancelledError when `signal` aborts; whatever a term reader or the sink throws.
 */
export async function runFastLinear(jobs: readonly FastJob[], pool: KernelPool, options: FastRunOptions = {}): Promise<void> {
  const chunk = options.chunkElems ?? DEFAULT_CHUNK;
  const nSlots = Math.max(2, options.slots ?? DEFAULT_SLOTS);
  if (chunk % 8 !== 0) throw new RangeError(`chunkElems must be a multiple of 8, got ${chunk}`);
  const readBlock = options.readBlockElems ?? READ_BLOCK;
  if (readBlock <= 0 || readBlock % 8 !== 0) throw new RangeError(`readBlockElems must be a positive multiple of 8, got ${readBlock}`);
  const maxTerms = Math.max(1, ...jobs.map((j) => j.terms.length));
  const mark = pool.mark();
  const slots: Slot[] = Array.from({ length: nSlots }, () => ({
    inputs: Array.from({ length: maxTerms }, () => pool.alloc(chunk * 2)),
    out: pool.alloc(chunk * 2),
  }));
  const accs = Array.from({ length: pool.workerCount + 1 }, () => pool.alloc(ACC_BLOCK * 4));
  // per worker: where it reads one block of each input (reused block after block, so it stays in L2)
  const readBufs = Array.from({ length: pool.workerCount }, () => pool.alloc(maxTerms * readBlock * 2));
  // LoRA jobs: one region for the current tensor's U and V
  const uvBytes = Math.max(0, ...jobs.map((j) => (j.lora === undefined ? 0 : loraUvBytes(j.lora.rows, j.lora.cols, j.lora.rank))));
  const factors = uvBytes > 0 ? new LoraFactors(pool, pool.alloc(uvBytes), uvBytes) : undefined;

  const localMax = options.localMax ?? LOCAL_MAX;
  // The flat list of chunks across jobs, each with its terms' file spans when its worker reads them itself
  // (every term a plain file range, no LoRA, merged on a worker).
  const chunks: { job: number; start: number; n: number; spans: readonly FileSpan[] | undefined }[] = [];
  jobs.forEach((job, j) => {
    // a LoRA tensor's chunks hold whole rows
    const step = job.lora === undefined ? chunk : Math.floor(chunk / job.lora.cols) * job.lora.cols;
    if (step <= 0) throw new RangeError(`LoRA rows of ${job.lora!.cols} elements exceed chunkElems ${chunk}`);
    const spans = job.terms.map((t) => t.span);
    const readable = job.lora === undefined && job.terms.length > 0 && spans.every((s) => s !== undefined) ? (spans as FileSpan[]) : undefined;
    for (let start = 0; start < job.numel; start += step) {
      const n = Math.min(step, job.numel - start);
      chunks.push({ job: j, start, n, spans: n - (n % 8) > localMax ? readable : undefined });
    }
  });

  const readOnMain = (slot: Slot, job: FastJob, c: { start: number; n: number }): Promise<void> =>
    Promise.all(job.terms.map((t, k) => t.read(c.start * 2, pool.bytes(slot.inputs[k]!, c.n * 2)))).then(() => undefined);
  const reads: (Promise<void> | undefined)[] = new Array(chunks.length);
  const writes: (Promise<void> | undefined)[] = new Array(chunks.length);
  const inflight = new InFlight();
  /** Chunk computations handed to the workers and not finished yet. */
  const computing = new InFlight();
  const reservations = new OutputReservations(pool.memory.buffer);
  const issueRead = (i: number): void => {
    if (i >= chunks.length || reads[i] !== undefined) return;
    const c = chunks[i]!;
    const slot = slots[i % nSlots]!;
    const prevWrite = i >= nSlots ? writes[i - nSlots] : undefined;
    const job = jobs[c.job]!;
    // start loading the LoRA factors early (the promise is cached by the source; errors surface in compute)
    if (job.lora !== undefined && c.start === 0) job.lora.delta().catch(() => {});
    // a chunk its worker reads only needs its slot free
    const free = prevWrite ?? Promise.resolve();
    reads[i] = inflight.track(c.spans !== undefined ? free : free.then(() => readOnMain(slot, job, c)));
  };

  try {
    for (let i = 0; i < chunks.length; i++) {
      if (options.signal?.aborted) throw new CancelledError("merge cancelled; no output was written");
      for (let a = i; a < i + nSlots - 1; a++) issueRead(a);
      await reads[i];
      const c = chunks[i]!;
      const job = jobs[c.job]!;
      const slot = slots[i % nSlots]!;
      // zero copies: the chunk is merged straight into the output's staging blocks when the sink has them
      // in the pool's memory (fast-path.ts useStagingMemory); see out-ranges.ts
      const reserved = job.lora === undefined ? await reservations.next(job, c.n * 2) : undefined;
      const ranges = reserved?.ranges;
      let computed: Promise<void>;
      if (job.lora !== undefined) {
        // a LoRA chunk is split by rows over every worker and uses the one U·V region of its tensor: let the
        // chunks already handed out finish first, then compute this one before handing out the next
        await computing.all();
        const coefs = job.terms.map((t) => t.coef);
        await computeLora(pool, job.lora, factors!, slot.inputs.slice(0, job.terms.length), coefs, job.divisor, slot.out, c.start, c.n, options.loraLocalMaxMacs);
        computed = Promise.resolve();
      } else {
        // each chunk goes whole to one worker (round robin), so workers never wait for each other; writes
        // stay in chunk order: chunk i is written after it is computed and after chunk i − 1 is written
        const spans = c.spans;
        computed = compute(pool, job, slot, accs, c.n, i % pool.workerCount, localMax, spans === undefined ? undefined : { spans, start: c.start, block: readBlock, bufs: readBufs }, ranges);
        // a failed worker read: read again here, which throws the source's own error (truncated file, I/O error)
        if (spans !== undefined) computed = computed.catch(async (err: unknown) => {
          await readOnMain(slot, job, c);
          throw err;
        });
        computing.track(computed);
      }
      const prevWrite = i > 0 ? writes[i - 1]! : Promise.resolve();
      const out = pool.bytes(slot.out, c.n * 2);
      const output = reserved === undefined ? reservations.plain(() => job.write(c.start * 2, out)) : async () => commitReserved(job, reserved, out);
      const written = inflight.track(
        Promise.all([computed, prevWrite])
          .then(output)
          .then(() => {
            options.onProgress?.(c.job, c.start + c.n);
          }),
      );
      writes[i] = written;
      if (reserved === undefined) reservations.written(written);
      reads[i] = undefined;
      if (i >= nSlots) writes[i - nSlots] = undefined;
    }
    await inflight.all();
  } catch (err) {
    // (and the computations: a worker may still be merging into a reserved staging block)
    await inflight.settle();
    await computing.settle();
    throw err;
  } finally {
    pool.release(mark);
  }
}

/**
 * Merges n elements of `slot` (inputs → out) on worker `worker`, or on this thread when n ≤ localMax
 * (a message round trip costs more than a small merge). With `read`, the worker first reads the chunk's
 * inputs (element `read.start` onwards of each term's file span) into the slot, `read.block` elements per
 * input at a time, each block merged right after it is read.
 */
async function compute(
  pool: KernelPool,
  job: FastJob,
  slot: Slot,
  accs: readonly number[],
  n: number,
  worker: number,
  localMax: number,
  read?: { readonly spans: readonly FileSpan[]; readonly start: number; readonly block: number; readonly bufs: readonly number[] },
  ranges?: OutRanges,
): Promise<void> {
  const k = job.terms.length;
  const mem = pool.memory.buffer;
  /**
   * Where the kernel writing elements [from, to) puts them: straight into the range that holds them all,
   * else slot.out followed by `copies` (a piece that crosses a staging block boundary, or no ranges).
   */
  const place = (from: number, to: number): { o: number; copies: KernelCall[] } => placeOutput(ranges, from * 2, to * 2, slot.out);
  /** Merged on this thread into slot.out: copy elements [from, to) over to the ranges. */
  const copyLocal = (from: number, to: number): void => {
    if (ranges !== undefined && to > from) for (const [, dst, src, m] of copiesInto(ranges, from * 2, to * 2, slot.out)) pool.local.copyBytes(dst, src, m);
  };
  if (k === 0) {
    new Uint16Array(mem, slot.out, n).fill(0);
    copyLocal(0, n);
    return;
  }
  const coefs = job.terms.map((t) => Math.fround(t.coef));
  const d = job.divisor === undefined ? undefined : Math.fround(job.divisor);
  const n8 = n - (n % 8);
  /** Where term t's element e of the chunk is, by default: in the slot. */
  const inSlot = (t: number, e: number): number => slot.inputs[t]! + e * 2;
  // per-range calls: [from, to) in elements, multiples of 8
  const callsFor = (from: number, to: number, acc: number, input = inSlot): KernelCall[] => {
    const calls: KernelCall[] = [];
    if (k === 2) {
      const a = input(0, from);
      const b = input(1, from);
      const { o, copies } = place(from, to);
      calls.push(d === undefined ? ["wsum2", a, b, o, to - from, coefs[0]!, coefs[1]!] : ["wsum2d", a, b, o, to - from, coefs[0]!, coefs[1]!, d], ...copies);
      return calls;
    }
    for (let s = from; s < to; s += ACC_BLOCK) {
      const len = Math.min(ACC_BLOCK, to - s);
      calls.push(["first", input(0, s), acc, len, coefs[0]!]);
      for (let t = 1; t < k; t++) calls.push(["accum", input(t, s), acc, len, coefs[t]!]);
      const { o, copies } = place(s, s + len);
      calls.push(d === undefined ? ["fin", acc, o, len] : ["find", acc, o, len, d], ...copies);
    }
    return calls;
  };
  if (n8 > 0) {
    if (n8 <= localMax) {
      for (const [name, ...args] of callsFor(0, n8, accs[accs.length - 1]!)) (pool.local[name] as (...a: number[]) => void)(...args);
    } else {
      const batches: WorkerCall[][] = Array.from({ length: pool.workerCount }, () => []);
      if (read === undefined) batches[worker] = callsFor(0, n8, accs[worker]!);
      else {
        const calls: WorkerCall[] = [];
        const buf = read.bufs[worker]!;
        for (let s = 0; s < n; s += read.block) {
          const len = Math.min(read.block, n - s);
          // into the worker's read buffer, which stays in its L2 (the page-cache copy then writes to cache,
          // not to memory); the block holding a ragged tail goes to the slot, where this thread merges it
          const input = s + len === n && n8 < n ? inSlot : (t: number, e: number): number => buf + (t * read.block + e - s) * 2;
          read.spans.forEach((sp, t) => calls.push(["read", sp.fd, sp.offset + (read.start + s) * 2, input(t, s), len * 2]));
          if (s < n8) calls.push(...callsFor(s, Math.min(s + len, n8), accs[worker]!, input));
        }
        batches[worker] = calls;
      }
      await pool.run(batches);
    }
  }
  if (n8 < n) {
    const xs = slot.inputs.slice(0, k).map((p) => new Uint16Array(mem, p + n8 * 2, n - n8));
    fusedBf16(xs, coefs, d, new Uint16Array(mem, slot.out + n8 * 2, n - n8), n - n8);
    copyLocal(n8, n);
  }
}

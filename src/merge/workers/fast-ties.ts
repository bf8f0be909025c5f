/**
 * The fast path of TIES and DARE-TIES with two tuned models (bf16 in, bf16 out): the worker pool runs the
 * AssemblyScript kernels of `kernels/assembly/ties.ts` over a ring of chunk slots in its shared memory,
 * with read-ahead and write-behind as in `fast-linear.ts`. Per tensor:
 *
 * - TIES: pass 1 streams the tensor and the workers add 65 536-bin histograms of |δ| (top 16 bits of the
 *   float32 pattern) per model; the main thread adds the workers' histograms and lets `endRankingPass`
 *   (sparsify.ts, the reference's own code) pick the threshold V and the number of entries equal to V to
 *   keep. When some |δ| has non-zero low 16 bits, a fine pass histograms the boundary bin (as the
 *   reference's pass 1). The kernel pass keeps |δ| > V and the first `tiesNeeded` entries equal to V in
 *   index order: while the tie budget is partial, each worker first counts its range's entries equal to V
 *   and the main thread hands out the budget range by range.
 * - DARE-TIES: the keep mask is the reference's seeded hash (uniformAtLow); with the l1 rescale, a measure
 *   pass keeps one float64 running sum per model in element order (worker i sums model i over the whole
 *   chunk, so the sums are sequential as in the reference).
 *
 * Output bytes equal the generic path's (decode → gta kernel → encode) bit for bit (`fast-ties.test.ts`).
 * Memory: slots × 4 × chunk × 2 bytes (32 MiB at the defaults) plus 768 KiB of histograms per worker.
 */
import { CancelledError } from "../../errors.ts";
import { createMagnitudeRanking, endRankingPass, type MagnitudeRanking } from "../methods/sparsify.ts";
import type { KernelCall, KernelPool } from "./pool.ts";

/** Reads stored bytes [byteOffset, byteOffset + out.length) of one input tensor into out. */
export type FastRead = (byteOffset: number, out: Uint8Array) => Promise<void>;

interface FastTiesCommon {
  readonly numel: number;
  /** Base (aligned), tuned model 0, tuned model 1. */
  readonly reads: readonly [FastRead, FastRead, FastRead];
  readonly weights: readonly [number, number];
  readonly lambda: number;
  readonly normalize: boolean;
  /**
   * Writes merged bytes at byteOffset within the output tensor (ascending offsets; several may be in flight);
   * `bytes` must not be retained after the returned promise settles.
   */
  write(byteOffset: number, bytes: Uint8Array): Promise<void>;
  /** The error to throw for a non-finite output at `index` whose inputs are all finite there. */
  nonFinite(index: number, value: number): Error;
}

/** TIES: each model keeps its `ranks[i]` largest |δ| (0 < rank < numel), scaled by `factors[i]`. */
export interface FastTiesJob extends FastTiesCommon {
  readonly kind: "ties";
  readonly ranks: readonly [number, number];
  /** 1, or 1/density (rescale_mode inverse_density). */
  readonly factors: readonly [number, number];
}

/** DARE-TIES / DARE-linear: each model keeps element j iff uniformAt(keys[i], j) < densities[i] (0 < p < 1). */
export interface FastDareJob extends FastTiesCommon {
  readonly kind: "dare";
  /** dare_linear: θ = b + λ·(Σ uᵢ / divisor) instead of the sign election. */
  readonly linear: boolean;
  readonly divisor: number;
  readonly keys: readonly [number, number];
  readonly densities: readonly [number, number];
  /** Fixed factors (1 or 1/p), or "l1": ‖δ‖₁ / ‖kept δ‖₁ from a measure pass. */
  readonly factors: readonly [number, number] | "l1";
}

export type FastSparseJob = FastTiesJob | FastDareJob;

export interface FastTiesOptions {
  /** Elements per chunk (multiple of 8). @default 2 Mi */
  readonly chunkElems?: number;
  /** Ring slots (≥ 2). @default 4 */
  readonly slots?: number;
  readonly signal?: AbortSignal;
  /** Called after each merged chunk is written (job index, elements of that job done). */
  readonly onProgress?: (jobIndex: number, doneElems: number) => void;
  /** Chunks up to this many elements are computed on the main thread instead of the workers (tests). @default 65 536 */
  readonly localMax?: number;
}

const DEFAULT_CHUNK = 2 * 1024 * 1024;
const DEFAULT_SLOTS = 4;
const HIST_BYTES = 65536 * 4;
const MISC_BYTES = 64;
/** Below this many elements a chunk is computed on the main thread. */
const LOCAL_MAX = 65536;
/** "keep every tie" budget. */
const ALL = 0x7fffffff;
/** Norm threshold below which the L1 rescale is skipped (gta.ts RESCALE_MIN_NORM). */
const RESCALE_MIN_NORM = 1e-7;

/** Bytes of pool memory `runFastTies` needs (allocate the pool with at least this). */
export function fastTiesMemoryBytes(workers: number, options: FastTiesOptions = {}): number {
  const chunk = options.chunkElems ?? DEFAULT_CHUNK;
  const slots = Math.max(2, options.slots ?? DEFAULT_SLOTS);
  return slots * 4 * chunk * 2 + (workers + 1) * (3 * HIST_BYTES + MISC_BYTES) + 64 + 64 * (slots * 4 + 3 * (workers + 1) + 8);
}

interface Slot {
  readonly inputs: readonly [number, number, number];
  readonly out: number;
}

/** Per-thread scratch (index workerCount = the main thread): histograms and a misc block. */
interface Scratch {
  readonly h0: number;
  readonly h1: number;
  readonly fine: number;
  /** [0] or0, [4] or1, [8] count0, [12] count1, [16] flag index, [20] flag value, [32..48) scratch. */
  readonly misc: number;
}

/**
 * Merges every job (in order) through the pool.
 * @throws CancelledError when `signal` aborts; the job's `nonFinite` error; whatever a reader or the sink throws.
 */
export async function runFastTies(jobs: readonly FastSparseJob[], pool: KernelPool, options: FastTiesOptions = {}): Promise<void> {
  const chunk = options.chunkElems ?? DEFAULT_CHUNK;
  const nSlots = Math.max(2, options.slots ?? DEFAULT_SLOTS);
  if (chunk % 8 !== 0 || chunk <= 0) throw new RangeError(`chunkElems must be a positive multiple of 8, got ${chunk}`);
  const mark = pool.mark();
  try {
    const slots: Slot[] = Array.from({ length: nSlots }, () => ({
      inputs: [pool.alloc(chunk * 2), pool.alloc(chunk * 2), pool.alloc(chunk * 2)] as const,
      out: pool.alloc(chunk * 2),
    }));
    const scratch: Scratch[] = Array.from({ length: pool.workerCount + 1 }, () => ({
      h0: pool.alloc(HIST_BYTES),
      h1: pool.alloc(HIST_BYTES),
      fine: pool.alloc(HIST_BYTES),
      misc: pool.alloc(MISC_BYTES),
    }));
    const l1State = pool.alloc(32);
    const ctx: RunCtx = { pool, slots, scratch, l1State, chunk, options, localMax: options.localMax ?? LOCAL_MAX };
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
  readonly l1State: number;
  readonly chunk: number;
  readonly options: FastTiesOptions;
  readonly localMax: number;
}

/** Worker ranges [from, to) of a chunk of n elements (multiples of 8 except the last end). */
function ranges(n: number, workers: number, localMax: number): [number, number][] {
  if (n <= localMax) return [[0, n]];
  const per = Math.ceil(n / workers / 8) * 8;
  const out: [number, number][] = [];
  for (let w = 0; w < workers; w++) {
    const from = Math.min(n, w * per);
    const to = w === workers - 1 ? n : Math.min(n, from + per);
    out.push([from, to]);
  }
  return out;
}

/** Runs one call list per range: on the main thread (scratch index workerCount) when there is one range, else on the workers. */
async function dispatch(ctx: RunCtx, rs: readonly [number, number][], calls: (r: number, s: Scratch) => KernelCall[]): Promise<void> {
  const pool = ctx.pool;
  if (rs.length === 1) {
    for (const [name, ...args] of calls(0, ctx.scratch[pool.workerCount]!)) (pool.local[name] as (...a: number[]) => void)(...args);
    return;
  }
  await pool.run(rs.map((_, w) => calls(w, ctx.scratch[w]!)));
}

/** Scratch used by range r of a split into `count` ranges. */
function scratchOf(ctx: RunCtx, r: number, count: number): Scratch {
  return ctx.scratch[count === 1 ? ctx.pool.workerCount : r]!;
}

/**
 * Streams one tensor through the slot ring: reads (read-ahead of nSlots − 1 chunks), `compute`, and when
 * `write` is given, write-behind of each slot's output.
 */
async function stream(
  ctx: RunCtx,
  job: FastSparseJob,
  compute: (slot: Slot, start: number, n: number) => Promise<void>,
  write?: (start: number, bytes: Uint8Array) => Promise<void>,
): Promise<void> {
  const { pool, slots, chunk, options } = ctx;
  const nSlots = slots.length;
  const count = Math.ceil(job.numel / chunk);
  const reads: (Promise<void> | undefined)[] = new Array(count);
  const writes: (Promise<void> | undefined)[] = new Array(count);
  const inflight = new Set<Promise<void>>();
  const track = (p: Promise<void>): Promise<void> => {
    inflight.add(p);
    void p.then(
      () => inflight.delete(p),
      () => inflight.delete(p),
    );
    return p;
  };
  const issueRead = (i: number): void => {
    if (i >= count || reads[i] !== undefined) return;
    const start = i * chunk;
    const n = Math.min(chunk, job.numel - start);
    const slot = slots[i % nSlots]!;
    const prevWrite = i >= nSlots ? writes[i - nSlots] : undefined;
    reads[i] = track(
      (prevWrite ?? Promise.resolve()).then(() =>
        Promise.all(job.reads.map((read, k) => read(start * 2, pool.bytes(slot.inputs[k]!, n * 2)))).then(() => undefined),
      ),
    );
  };
  try {
    for (let i = 0; i < count; i++) {
      if (options.signal?.aborted) throw new CancelledError("merge cancelled; no output was written");
      for (let a = i; a < i + nSlots - 1; a++) issueRead(a);
      await reads[i];
      const start = i * chunk;
      const n = Math.min(chunk, job.numel - start);
      const slot = slots[i % nSlots]!;
      await compute(slot, start, n);
      if (write !== undefined) writes[i] = track(write(start, pool.bytes(slot.out, n * 2)));
      reads[i] = undefined;
      if (i >= nSlots) writes[i - nSlots] = undefined;
    }
    await Promise.all([...inflight]);
  } catch (err) {
    await Promise.allSettled([...inflight]);
    throw err;
  }
}

/** Clears every thread's non-finite flag (see recordBad in assembly/ties.ts) before a kernel dispatch. */
function resetFlags(ctx: RunCtx): void {
  const u32 = new Uint32Array(ctx.pool.memory.buffer);
  for (const s of ctx.scratch) u32[(s.misc + 16) >>> 2] = 0xffffffff;
}

/** Throws the job's non-finite error for the first flagged element of the chunk at `start` (ranges in index order). */
function checkFlags(ctx: RunCtx, job: FastSparseJob, start: number, rs: readonly [number, number][]): void {
  const u32 = new Uint32Array(ctx.pool.memory.buffer);
  for (let r = 0; r < rs.length; r++) {
    const s = scratchOf(ctx, r, rs.length);
    const idx = u32[(s.misc + 16) >>> 2]!;
    if (idx !== 0xffffffff) {
      const f = new Float32Array(new Uint32Array([u32[(s.misc + 20) >>> 2]!]).buffer)[0]!;
      throw job.nonFinite(start + rs[r]![0] + idx, f);
    }
  }
}

async function runTies(ctx: RunCtx, job: FastTiesJob, jobIndex: number): Promise<void> {
  const { pool } = ctx;
  const mem = pool.memory.buffer;
  const n = job.numel;
  const W = pool.workerCount;
  // pass 1: coarse histograms and the OR of the low 16 bits
  for (const s of ctx.scratch) {
    new Uint32Array(mem, s.h0, 65536).fill(0);
    new Uint32Array(mem, s.h1, 65536).fill(0);
    new Uint32Array(mem, s.misc, 2).fill(0);
  }
  await stream(ctx, job, async (slot, _start, len) => {
    const rs = ranges(len, W, ctx.localMax);
    await dispatch(ctx, rs, (r, s) => {
      const [from, to] = rs[r]!;
      return [["tiesHist2", slot.inputs[0] + from * 2, slot.inputs[1] + from * 2, slot.inputs[2] + from * 2, to - from, s.h0, s.h1, s.misc]];
    });
  });
  const rankings: MagnitudeRanking[] = [0, 1].map((m) => {
    const coarse = new Uint32Array(65536);
    let or = 0;
    for (const s of ctx.scratch) {
      const h = new Uint32Array(mem, m === 0 ? s.h0 : s.h1, 65536);
      for (let b = 0; b < 65536; b++) coarse[b] = coarse[b]! + h[b]!;
      or |= new Uint32Array(mem, s.misc, 2)[m]!;
    }
    // collectMax 0: ties are never collected; the kernel counts them (as the reference kernel does)
    const st = createMagnitudeRanking(n, [job.ranks[m]!], 0, { countTiesInKernel: true, needL1: false });
    st.coarse = coarse;
    // the reference ORs the low bits per bin; a tensor-wide OR only adds a fine pass where the boundary
    // bin is all zero-low, which finds the same V and tie count
    st.coarseLowOr = new Uint16Array(65536).fill(or & 0xffff);
    endRankingPass(0, st);
    return st;
  });
  // fine pass for the models whose boundary bin holds several values
  const fineModels = [0, 1].filter((m) => !rankings[m]!.selectors[0]!.done);
  if (fineModels.length > 0) {
    for (const s of ctx.scratch) {
      new Uint32Array(mem, s.h0, 65536).fill(0);
      new Uint32Array(mem, s.h1, 65536).fill(0);
    }
    await stream(ctx, job, async (slot, _start, len) => {
      const rs = ranges(len, W, ctx.localMax);
      await dispatch(ctx, rs, (r, s) => {
        const [from, to] = rs[r]!;
        return fineModels.map((m) => ["tiesFine", slot.inputs[0] + from * 2, slot.inputs[1 + m]! + from * 2, to - from, rankings[m]!.selectors[0]!.bin, m === 0 ? s.h0 : s.h1] as const);
      });
    });
    for (const m of fineModels) {
      const sel = rankings[m]!.selectors[0]!;
      const fine = sel.fine!;
      for (const s of ctx.scratch) {
        const h = new Uint32Array(mem, m === 0 ? s.h0 : s.h1, 65536);
        for (let b = 0; b < 65536; b++) fine[b] = fine[b]! + h[b]!;
      }
      endRankingPass(1, rankings[m]!);
    }
  }
  const sels = rankings.map((st) => st.selectors[0]!);
  const vb = sels.map((s) => s.valueBits | 0);
  // ties still to keep per model; ALL when every entry equal to V is kept
  const left = sels.map((s) => (s.cutoffIndex === Infinity ? ALL : s.tiesNeeded));
  const partial = (): boolean => left.some((l) => l > 0 && l !== ALL);
  const u32 = new Uint32Array(mem);
  await stream(
    ctx,
    job,
    async (slot, start, len) => {
      const rs = ranges(len, W, ctx.localMax);
      const budgets = rs.map(() => [0, 0]);
      if (partial()) {
        await dispatch(ctx, rs, (r, s) => {
          const [from, to] = rs[r]!;
          return [["tiesCount2", slot.inputs[0] + from * 2, slot.inputs[1] + from * 2, slot.inputs[2] + from * 2, to - from, vb[0]!, vb[1]!, s.misc + 8]];
        });
      }
      for (let r = 0; r < rs.length; r++) {
        const s = scratchOf(ctx, r, rs.length);
        for (let m = 0; m < 2; m++) {
          const l = left[m]!;
          if (l === ALL || l === 0) {
            budgets[r]![m] = l;
            continue;
          }
          const take = Math.min(l, u32[(s.misc + 8 + 4 * m) >>> 2]!);
          budgets[r]![m] = take;
          left[m] = l - take;
        }
      }
      resetFlags(ctx);
      await dispatch(ctx, rs, (r) => {
        const [from, to] = rs[r]!;
        const s = scratchOf(ctx, r, rs.length);
        return [
          [
            "ties2",
            slot.inputs[0] + from * 2,
            slot.inputs[1] + from * 2,
            slot.inputs[2] + from * 2,
            slot.out + from * 2,
            to - from,
            vb[0]!,
            vb[1]!,
            budgets[r]![0]!,
            budgets[r]![1]!,
            job.weights[0],
            job.weights[1],
            job.factors[0],
            job.factors[1],
            job.lambda,
            job.normalize ? 1 : 0,
            s.misc + 16,
          ],
        ];
      });
      checkFlags(ctx, job, start, rs);
    },
    (start, bytes) => job.write(start * 2, bytes).then(() => ctx.options.onProgress?.(jobIndex, start + bytes.length / 2)),
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
  const W = pool.workerCount;
  const keys = job.keys.map((k) => k | 0);
  const k2s = job.keys.map((k) => Math.imul(k, 0x27d4eb2d));
  const Ks = job.densities.map(keepBound);
  let factors: readonly number[];
  if (job.factors === "l1") {
    const st = new Float64Array(mem, ctx.l1State, 4);
    st.fill(0);
    await stream(ctx, job, async (slot, start, len) => {
      // one sequential running sum per model: model m on worker m (both on one thread when there is one)
      const calls = (m: number): KernelCall => ["dareL1", slot.inputs[0], slot.inputs[1 + m]!, len, start | 0, keys[m]!, k2s[m]!, Ks[m]!, ctx.l1State + 16 * m];
      if (len <= ctx.localMax || W === 1) {
        if (len <= ctx.localMax) for (const m of [0, 1]) { const [name, ...args] = calls(m); (pool.local[name] as (...a: number[]) => void)(...args); }
        else await pool.run([[calls(0), calls(1)]]);
        return;
      }
      await pool.run([[calls(0)], [calls(1)]]);
    });
    factors = [0, 1].map((m) => {
      const total = st[2 * m]!;
      const kept = st[2 * m + 1]!;
      return total >= RESCALE_MIN_NORM && kept >= RESCALE_MIN_NORM ? total / kept : 1;
    });
  } else factors = job.factors;
  await stream(
    ctx,
    job,
    async (slot, start, len) => {
      const rs = ranges(len, W, ctx.localMax);
      resetFlags(ctx);
      await dispatch(ctx, rs, (r) => {
        const [from, to] = rs[r]!;
        const s = scratchOf(ctx, r, rs.length);
        return [
          [
            "dare2",
            slot.inputs[0] + from * 2,
            slot.inputs[1] + from * 2,
            slot.inputs[2] + from * 2,
            slot.out + from * 2,
            to - from,
            (start + from) | 0,
            keys[0]!,
            k2s[0]!,
            Ks[0]!,
            keys[1]!,
            k2s[1]!,
            Ks[1]!,
            job.weights[0],
            job.weights[1],
            factors[0]!,
            factors[1]!,
            job.lambda,
            job.normalize ? 1 : 0,
            s.misc + 16,
            job.linear ? 1 : 0,
            job.divisor,
          ],
        ];
      });
      checkFlags(ctx, job, start, rs);
    },
    (start, bytes) => job.write(start * 2, bytes).then(() => ctx.options.onProgress?.(jobIndex, start + bytes.length / 2)),
  );
}

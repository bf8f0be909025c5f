/**
 * Zero-copy output for the fast paths (fast-linear.ts, fast-ties.ts): a chunk's merged bytes go straight
 * into the sink's staging blocks (TensorSink.reserve → core/direct-file.ts DirectFile.reserve) when those
 * live in the kernel pool's shared memory (fast-path.ts puts them there with useStagingMemory).
 *
 * `OutputReservations` decides, chunk by chunk in dispatch order, whether a chunk gets a place in the
 * staging (then its kernels write there and the chunk is committed) or goes out through the sink's write
 * (a copy): a sink has no place for the first bytes of a file (the write opens it), so a chunk that follows
 * such a write waits for it once before asking. `placeOutput` says where a kernel writing part of a chunk
 * puts its bytes: straight into the range that holds them all, else into the slot and then `copyBytes`
 * calls (a part that crosses the end of a staging block).
 */
import type { KernelCall } from "./pool.ts";

/** Pool-memory ranges that receive a chunk's merged bytes, in order: byte offsets `ptr`, lengths `bytes`. */
export type OutRanges = readonly { readonly ptr: number; readonly bytes: number }[];

/** Where a chunk goes: its reserved views and, when they all lie in the pool's memory, their ranges. */
export interface Reserved {
  readonly views: readonly Uint8Array[];
  /** undefined: some view is outside the pool's memory (the bytes are copied over before the commit). */
  readonly ranges: OutRanges | undefined;
}

/**
 * The optional zero-copy output of a fast job (FastJob, FastSparseIo): the sink's TensorSink.reserve /
 * commit, called in chunk order, and `reserve` only when every earlier chunk is committed, reserved or
 * written (OutputReservations sees to it). The chunk's kernels merge straight into the reserved views when
 * they lie in the pool's memory; else the merged bytes are copied into them before the commit.
 */
export interface OutputStaging {
  /** The place of the next `byteLength` output bytes: views in output order; undefined: use the job's write. */
  reserve?(byteLength: number): Promise<Uint8Array[]> | undefined;
  /** Marks the next `byteLength` reserved bytes filled (after the earlier chunks' writes). */
  commit?(byteLength: number): void;
}

/** One fast run's reservations: see the module doc. Call `next` for every chunk, in chunk order. */
export class OutputReservations {
  /** Chunks going out through write whose write has not finished (no reservation may pass them). */
  private pending = 0;
  /** The latest such chunk's write (writes finish in chunk order). */
  private last: Promise<void> | undefined;
  /** Off once a reservation asked for after waiting for those writes was refused (a sink with no staging). */
  private on = true;

  /** @param buffer the kernel pool's memory buffer (views there become ranges). */
  constructor(private readonly buffer: ArrayBufferLike) {}

  /**
   * The place of the next chunk's `byteLength` bytes, or undefined (then the chunk goes through write, and
   * the caller passes its write through `plain`).
   * @throws whatever the sink's reserve throws (an earlier failed write).
   */
  async next(staging: OutputStaging, byteLength: number): Promise<Reserved | undefined> {
    if (!this.on || staging.reserve === undefined || staging.commit === undefined) return undefined;
    const waited = this.pending > 0;
    if (waited) await this.last;
    const views = await staging.reserve(byteLength);
    if (views === undefined) {
      // refused although every earlier byte is out: this sink has no place to give, so stop waiting for it
      if (waited) this.on = false;
      return undefined;
    }
    const ranges = views.every((v) => v.buffer === this.buffer) ? views.map((v) => ({ ptr: v.byteOffset, bytes: v.length })) : undefined;
    return { views, ranges };
  }

  /**
   * A chunk that goes out through write: wraps its write (call it in the chunk's turn) so that the next
   * reservation waits for it. Pass the chunk's whole write step (the promise that settles once written) to
   * `written`.
   */
  plain(write: () => Promise<void>): () => Promise<void> {
    this.pending++;
    return () => write().then(() => void this.pending--);
  }

  /** The write step of the latest chunk that went through `plain`. */
  written(step: Promise<void>): void {
    this.last = step;
  }
}

/**
 * Commits a reserved chunk (in its turn): copies `out` (the chunk's merged bytes in the slot) into the views
 * first when they are outside the pool's memory.
 * @throws whatever the sink's commit throws (an earlier failed write).
 */
export function commitReserved(staging: OutputStaging, reserved: Reserved, out: Uint8Array): void {
  if (reserved.ranges === undefined) reserved.views.reduce((at, v) => (v.set(out.subarray(at, at + v.length)), at + v.length), 0);
  staging.commit!(out.length);
}

/** copyBytes calls that move bytes [from, to) of the chunk from `src + from` (the slot) to the ranges. */
export function copiesInto(ranges: OutRanges, from: number, to: number, src: number): ["copyBytes", number, number, number][] {
  const copies: ["copyBytes", number, number, number][] = [];
  let b = from;
  let r = 0;
  let rs = 0; // byte offset in the chunk where ranges[r] starts
  while (rs + ranges[r]!.bytes <= b) rs += ranges[r++]!.bytes;
  while (b < to) {
    const m = Math.min(to, rs + ranges[r]!.bytes) - b;
    copies.push(["copyBytes", ranges[r]!.ptr + b - rs, src + b, m]);
    b += m;
    rs += ranges[r++]!.bytes;
  }
  return copies;
}

/**
 * Where a kernel writing bytes [from, to) of a chunk puts them: `o`, straight into the range that holds
 * them all, else `slot + from` followed by `copies` (no ranges: the slot, no copies).
 */
export function placeOutput(ranges: OutRanges | undefined, from: number, to: number, slot: number): { o: number; copies: KernelCall[] } {
  if (ranges === undefined) return { o: slot + from, copies: [] };
  const copies = copiesInto(ranges, from, to, slot);
  return copies.length === 1 ? { o: copies[0]![1], copies: [] } : { o: slot + from, copies };
}

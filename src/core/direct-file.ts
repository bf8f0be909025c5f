/**
 * An append-only output file written with O_DIRECT (Linux): appended bytes are copied into page-aligned
 * staging blocks, and full blocks go from there to the device without passing through the page cache.
 *
 * Why: a durable write (fsync before the atomic rename) waits for the disk anyway, and a buffered write
 * first copies every byte into newly allocated page-cache pages, which costs CPU (on this project's VMs up
 * to 2 CPU s per GB when the host has to fault the guest's pages in again) and evicts the page cache the
 * inputs live in. With O_DIRECT the only copy is the one into the staging block, and `depth` blocks are in
 * flight at once, so the device stays busy while the merge goes on.
 *
 * Alignment: staging blocks live in a WebAssembly.Memory (its buffer is page-aligned), block sizes and
 * file positions are multiples of 4096, and the last partial block is padded with zeros to 4096 bytes,
 * written, and the file is then truncated to its exact length. Where O_DIRECT is refused (a file system
 * without it, or a write rejected with EINVAL), the file falls back to plain buffered writes, same bytes.
 */
import { wasmApi } from "./wasm-api.ts";
import { InternalError } from "../errors.ts";
import { close as closeCb, constants, fdatasync as fdatasyncCb, fsync as fsyncCb, ftruncate as ftruncateCb, open as openCb, write as writeCb } from "node:fs";

/** File positions and block sizes of O_DIRECT writes are multiples of this (the largest usual logical block). */
export const DIRECT_ALIGN = 4096;
/** Default staging block: 16 MiB. */
export const DEFAULT_DIRECT_BLOCK = 16 * 2 ** 20;
/**
 * Default blocks in flight. This project's virtio disk takes 2.9 GB of O_DIRECT writes in 1.05–1.33 s with
 * 16 × 16 MiB in flight against 1.56–1.81 s with 4 (8 × 16 MiB: 1.27–1.57 s), and a bench-set linear merge
 * took 1.80–2.11 s against 1.95–2.45 s (alternating runs). A merge that computes slower than the disk
 * writes reuses the same few blocks (the free list is a stack), so only a disk-bound writer touches all
 * 256 MiB.
 */
export const DEFAULT_DIRECT_DEPTH = 16;

/** Whether durable writers use O_DIRECT at all: yes unless `REALIGN_DIRECT_IO=0` in the environment. */
export function directIoEnabled(): boolean {
  return process.env.REALIGN_DIRECT_IO !== "0";
}

/** A positioned write of `length` bytes of `buf` at `position`; resolves with the bytes written. */
export type PositionedWrite = (fd: number, buf: Uint8Array, length: number, position: number) => Promise<number>;

export interface DirectFileOptions {
  /** Staging block size, bytes (a positive multiple of 4096). @default DEFAULT_DIRECT_BLOCK */
  readonly blockBytes?: number;
  /**
   * Staging blocks, shared by every DirectFile with the same `blockBytes` and `depth` in this process (so
   * also the most writes in flight over all of them). @default DEFAULT_DIRECT_DEPTH
   */
  readonly depth?: number;
  /** false: plain buffered writes (same bytes, same interface). @default true where the platform has O_DIRECT */
  readonly direct?: boolean;
  /** Replaces the positioned write of the O_DIRECT descriptor (tests inject EINVAL to exercise the fallback). */
  readonly directWrite?: PositionedWrite;
}

/**
 * An append-only file: see the module doc. Not re-entrant: await each call before the next, with one
 * exception: `commit` (synchronous) may run while a `reserve` waits for a staging block.
 */
export interface DirectFile {
  readonly path: string;
  /** Whether full blocks currently bypass the page cache (false after a fallback). */
  readonly direct: boolean;
  /**
   * Appends `bytes` (copied before the promise resolves; the caller may reuse `bytes` then). Not after
   * sync() or close(), nor while reserved bytes are not committed.
   * @throws an earlier write's failure (a Node system error); InternalError when misused as above.
   */
  write(bytes: Uint8Array): Promise<void>;
  /**
   * Reserves the next `byteLength` appended bytes and returns where they go: views of the staging blocks,
   * in file order (one view, or more when the bytes cross a block boundary). The caller fills them and then
   * calls `commit`; this is how a merge writes its output straight into the staging blocks (zero copies
   * when the staging lives in the kernel pool's memory: `useStagingMemory`). Reservations may run ahead of
   * commits (each call awaited before the next); every reserved byte must be committed, in order, before
   * write(), sync() or close(). Waits while every staging block is in flight.
   * @throws RangeError for a negative or fractional length; an earlier write's failure; InternalError
   *   after sync(), close() or abort() (also when abort() runs while it waits).
   */
  reserve(byteLength: number): Promise<Uint8Array[]>;
  /**
   * Marks the next `byteLength` reserved bytes as filled; blocks that are now full go to the disk.
   * @throws an earlier write's failure; InternalError beyond the reserved bytes or after close()/abort().
   */
  commit(byteLength: number): void;
  /** Waits for every write issued so far, then fdatasync. */
  datasync(): Promise<void>;
  /** Writes every appended byte (the staged tail too), then fsync. Ends the file: no write() after it. */
  sync(): Promise<void>;
  /** Writes what is staged (padding and truncating under O_DIRECT) and closes. Call `sync()` first for durability. */
  close(): Promise<void>;
  /** Closes without writing what is staged (after an error). Idempotent. */
  abort(): Promise<void>;
}

/** The runtime's WebAssembly.Memory constructor: its buffers are page-aligned. */
const WasmMemory = wasmApi?.Memory;

const openAsync = (path: string, flags: number): Promise<number> =>
  new Promise((resolve, reject) => openCb(path, flags, 0o666, (err, fd) => (err ? reject(err) : resolve(fd))));
const call = (fn: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void, fd: number): Promise<void> =>
  new Promise((resolve, reject) => fn(fd, (err) => (err ? reject(err) : resolve())));
const plainWrite: PositionedWrite = (fd, buf, length, position) =>
  new Promise((resolve, reject) => writeCb(fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))));

/**
 * Page-aligned staging blocks shared by every DirectFile of one block size: `depth` blocks in one
 * WebAssembly.Memory (its buffer is page-aligned), allocated on first use and kept, or `depth × block`
 * bytes of a caller's memory (`useStagingMemory`). A file takes a block to fill and gives it back when the
 * block's write completes, so the staging memory stays `depth × block` however many files are open (a
 * sharded output finishes one shard while it writes the next). A file holds the block it fills and the
 * ones its reservations cover, so fewer than `depth` files may be filled at the same time (a file waiting
 * for a block otherwise waits for another file's next write).
 */
class StagingPool {
  private readonly free: Uint8Array[];
  private readonly waiting: ((b: Uint8Array) => void)[] = [];
  constructor(block: number, depth: number, memory?: { readonly buffer: ArrayBufferLike; readonly byteOffset: number }) {
    const pages = Math.ceil((depth * block) / 65536);
    const buffer = memory?.buffer ?? (WasmMemory !== undefined ? new WasmMemory({ initial: pages, maximum: pages }) : { buffer: new ArrayBuffer(pages * 65536) }).buffer;
    const base = memory?.byteOffset ?? 0;
    this.free = Array.from({ length: depth }, (_, i) => new Uint8Array(buffer, base + i * block, block));
    for (const b of this.free) owners.set(b, this);
  }
  acquire(): Promise<Uint8Array> {
    const b = this.free.pop();
    return b !== undefined ? Promise.resolve(b) : new Promise((resolve) => this.waiting.push(resolve));
  }
  release(b: Uint8Array): void {
    const next = this.waiting.shift();
    if (next !== undefined) next(b);
    else this.free.push(b);
  }
}
/** The pool each staging block came from (a file may hold blocks of a pool that was replaced since). */
const owners = new WeakMap<Uint8Array, StagingPool>();
const release = (b: Uint8Array): void => owners.get(b)!.release(b);
const pools = new Map<string, StagingPool>();

/**
 * From now on, DirectFiles with the default geometry (DEFAULT_DIRECT_BLOCK × DEFAULT_DIRECT_DEPTH) take
 * their staging blocks from `byteOffset` of `buffer`: DEFAULT_DIRECT_DEPTH × DEFAULT_DIRECT_BLOCK bytes,
 * at a page-aligned address (`buffer` a WebAssembly.Memory's buffer, `byteOffset` a multiple of 4096).
 * The merge's fast path puts them in its kernel pool's shared memory so that the workers merge straight
 * into them (`DirectFile.reserve`). Blocks of the previous staging that files still hold go back to it.
 * @returns a function that restores the previous staging (call it before the memory goes away).
 * @throws RangeError when `byteOffset` is not a multiple of 4096 or the range does not fit in `buffer`.
 */
export function useStagingMemory(buffer: ArrayBufferLike, byteOffset: number): () => void {
  const bytes = DEFAULT_DIRECT_DEPTH * DEFAULT_DIRECT_BLOCK;
  if (byteOffset % DIRECT_ALIGN !== 0 || byteOffset < 0 || byteOffset + bytes > buffer.byteLength) {
    throw new RangeError(`staging memory must be ${bytes} bytes at a multiple of ${DIRECT_ALIGN} inside the buffer, got offset ${byteOffset} of ${buffer.byteLength}`);
  }
  const key = `${DEFAULT_DIRECT_BLOCK}x${DEFAULT_DIRECT_DEPTH}`;
  if (overrides.length === 0) ownDefault = pools.get(key);
  const mine = new StagingPool(DEFAULT_DIRECT_BLOCK, DEFAULT_DIRECT_DEPTH, { buffer, byteOffset });
  overrides.push(mine);
  pools.set(key, mine);
  return () => {
    // merges may overlap (a sweep's jobs): the latest staging still in use wins, whatever the order of restores
    const i = overrides.indexOf(mine);
    if (i < 0) return;
    overrides.splice(i, 1);
    const top = overrides.at(-1) ?? ownDefault;
    if (top === undefined) pools.delete(key);
    else pools.set(key, top);
  };
}
/** The stagings given by useStagingMemory and not restored yet, oldest first. */
const overrides: StagingPool[] = [];
/** The default geometry's own pool (if created) from before the first of them. */
let ownDefault: StagingPool | undefined;

/**
 * Creates (or truncates) `path` for appending.
 * @throws the open error (ENOENT, EACCES, …) as a Node system error; the caller maps it (core fsError).
 */
export async function openDirectFile(path: string, options: DirectFileOptions = {}): Promise<DirectFile> {
  const block = options.blockBytes ?? DEFAULT_DIRECT_BLOCK;
  const depth = Math.max(1, options.depth ?? DEFAULT_DIRECT_DEPTH);
  if (!(block > 0 && block % DIRECT_ALIGN === 0)) throw new RangeError(`blockBytes must be a positive multiple of ${DIRECT_ALIGN}, got ${block}`);
  const base = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC;
  const oDirect = (constants as { O_DIRECT?: number }).O_DIRECT;
  // staging blocks must be page-aligned: a WebAssembly.Memory's buffer is (without WebAssembly: buffered writes)
  let direct = (options.direct ?? true) && oDirect !== undefined && WasmMemory !== undefined;
  let fd: number;
  try {
    fd = await openAsync(path, base | (direct ? oDirect! : 0));
  } catch (e) {
    if (!direct || (e as NodeJS.ErrnoException).code !== "EINVAL") throw e;
    direct = false; // the file system has no O_DIRECT
    fd = await openAsync(path, base);
  }
  /** A second, buffered descriptor once O_DIRECT writes are refused. */
  let plainFd: number | undefined;
  const directWrite = options.directWrite ?? plainWrite;
  const key = `${block}x${depth}`;
  /** Takes a staging block from the current pool of this geometry (created on first use). */
  const acquire = (): Promise<Uint8Array> => {
    let pool = pools.get(key);
    if (pool === undefined) pools.set(key, (pool = new StagingPool(block, depth)));
    return pool.acquire();
  };
  /**
   * The blocks being filled, in file order: `open[0]` starts at file position `position`. Bytes up to
   * `committed` are filled; bytes up to `reserved` belong to a caller (reserve → commit).
   */
  const open: Uint8Array[] = [];
  let committed = 0;
  let reserved = 0;
  const inflight = new Set<Promise<void>>();
  let failure: unknown;
  let position = 0;
  let closed = false;
  /** The partial last block was written (by sync or close): the file is complete. */
  let ended = false;

  const writeAll = async (buf: Uint8Array, length: number, at: number): Promise<void> => {
    let done = 0;
    while (done < length) {
      let n: number;
      if (direct && plainFd === undefined) {
        try {
          n = await directWrite(fd, done === 0 ? buf : buf.subarray(done), length - done, at + done);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "EINVAL") throw e;
          direct = false; // e.g. a device whose logical block is larger than DIRECT_ALIGN
          plainFd ??= await openAsync(path, constants.O_WRONLY);
          continue;
        }
      } else n = await plainWrite(plainFd ?? fd, done === 0 ? buf : buf.subarray(done), length - done, at + done);
      if (n <= 0) throw Object.assign(new Error(`write returned ${n}`), { code: "EIO" });
      done += n;
    }
  };
  /** Writes `padded` bytes of `buf` at the current end (which advances by `length`), then returns the block. */
  const issue = (buf: Uint8Array, length: number, padded: number): void => {
    const at = position;
    position += length;
    const p: Promise<void> = writeAll(buf, padded, at).then(
      () => {},
      (e: unknown) => {
        failure ??= e;
      },
    );
    inflight.add(p);
    void p.then(() => {
      inflight.delete(p);
      release(buf);
    });
  };
  const drain = async (): Promise<void> => {
    while (inflight.size > 0) await Promise.all(inflight);
    if (failure !== undefined) throw failure;
  };
  const closeFds = async (): Promise<void> => {
    const fds = plainFd === undefined ? [fd] : [fd, plainFd];
    plainFd = undefined;
    for (const f of fds) await call(closeCb, f);
  };
  /** Marks `n` more bytes filled and writes every block that is now full. */
  const commitBytes = (n: number): void => {
    committed += n;
    while (committed - position >= block) issue(open.shift()!, block, block);
  };
  /** Writes the partial last block: padded to DIRECT_ALIGN under O_DIRECT, then the file is cut to its length. */
  const flushTail = async (): Promise<void> => {
    if (ended) return;
    if (reserved !== committed) throw new InternalError(`${path}: ${reserved - committed} reserved bytes were not committed`);
    ended = true;
    const buf = open.shift();
    for (const b of open.splice(0)) release(b); // (none: every reserved byte is committed)
    const length = committed - position;
    if (buf === undefined || length === 0) {
      if (buf !== undefined) release(buf);
      return drain();
    }
    const padded = direct ? Math.ceil(length / DIRECT_ALIGN) * DIRECT_ALIGN : length;
    buf.fill(0, length, padded);
    issue(buf, length, padded);
    await drain();
    if (padded !== length) await new Promise<void>((resolve, reject) => ftruncateCb(fd, position, (err) => (err ? reject(err) : resolve())));
  };

  return {
    path,
    get direct() {
      return direct;
    },
    async write(bytes) {
      if (ended) throw new InternalError(`${path}: write after sync(), close() or abort() (the file was already completed)`);
      if (reserved !== committed) throw new InternalError(`${path}: write while ${reserved - committed} reserved bytes are not committed`);
      let off = 0;
      while (off < bytes.length) {
        if (failure !== undefined) throw failure;
        if (open.length === 0) open.push(await acquire());
        const fill = committed - position;
        const n = Math.min(block - fill, bytes.length - off);
        open[0]!.set(n === bytes.length ? bytes : bytes.subarray(off, off + n), fill);
        off += n;
        reserved += n;
        commitBytes(n);
      }
      if (failure !== undefined) throw failure;
    },
    async reserve(byteLength) {
      if (!(Number.isInteger(byteLength) && byteLength >= 0)) throw new RangeError(`${path}: reserve length must be a non-negative integer, got ${byteLength}`);
      if (ended) throw new InternalError(`${path}: reserve after sync(), close() or abort() (the file was already completed)`);
      if (failure !== undefined) throw failure;
      const views: Uint8Array[] = [];
      let at = reserved;
      const end = reserved + byteLength;
      while (at < end) {
        // `position` advances while this waits for a block (commits write full blocks): recompute the index
        let index = Math.floor((at - position) / block);
        while (open.length <= index) {
          const b = await acquire();
          if (ended) {
            release(b);
            throw new InternalError(`${path}: aborted while reserving`);
          }
          open.push(b);
          index = Math.floor((at - position) / block);
        }
        const from = at - position - index * block;
        const m = Math.min(block - from, end - at);
        views.push(open[index]!.subarray(from, from + m));
        at += m;
      }
      reserved = end;
      return views;
    },
    commit(byteLength) {
      if (closed) throw new InternalError(`${path}: commit after close() or abort()`);
      if (failure !== undefined) throw failure;
      if (!(Number.isInteger(byteLength) && byteLength >= 0) || committed + byteLength > reserved) {
        throw new InternalError(`${path}: commit of ${byteLength} bytes, ${reserved - committed} reserved`);
      }
      commitBytes(byteLength);
    },
    async datasync() {
      await drain();
      await call(fdatasyncCb, plainFd ?? fd);
    },
    async sync() {
      // the staged tail is written here so that the fsync covers every appended byte
      await flushTail();
      await call(fsyncCb, fd);
      if (plainFd !== undefined) await call(fsyncCb, plainFd);
    },
    async close() {
      if (closed) return;
      await flushTail();
      closed = true;
      await closeFds();
    },
    async abort() {
      if (closed) return;
      closed = true;
      ended = true;
      for (const b of open.splice(0)) release(b);
      while (inflight.size > 0) await Promise.all(inflight);
      await closeFds().catch(() => {});
    },
  };
}

/**
 * Writing safetensors: one file streamed tensor by tensor (header first, computed from the declared
 * tensors), and a sharded writer that splits tensors into HF-named shards up to a byte budget and writes
 * `model.safetensors.index.json`. Data must arrive in the declared order; sizes are checked as it arrives.
 */
import { open, writeFile } from "node:fs/promises";
import { directIoEnabled, openDirectFile } from "../../core/direct-file.ts";
import { join } from "node:path";
import { DTYPE_BYTES, type Dtype } from "../../core/dtype.ts";
import { numelOf } from "../../core/tensor.ts";
import { InternalError, RealignError, fsError } from "../../errors.ts";
import { INDEX_FILE_NAME, SINGLE_FILE_NAME, shardFileName, toIndexJson } from "./index-json.ts";

/** A tensor to be written: its header entry. `byteLength` = numel × dtype size. */
export interface OutputTensorInfo {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
}

/** Bytes of a tensor's data (safe beyond 4 GiB: plain Number arithmetic, no 32-bit ops). */
export function tensorByteLength(t: OutputTensorInfo): number {
  return numelOf(t.shape) * DTYPE_BYTES[t.dtype];
}

/**
 * Header bytes for `tensors` laid out contiguously in the given order, `__metadata__` first, JSON padded
 * with spaces so the data section starts 8-byte aligned (as the reference writer does).
 * @returns the complete prefix (8-byte length + JSON) and the total data length.
 */
export function buildHeader(
  tensors: readonly OutputTensorInfo[],
  metadata: Readonly<Record<string, string>> | undefined,
): { prefix: Uint8Array; dataByteLength: number } {
  // Null prototype: a tensor named "__proto__" must become an own key, not the prototype.
  const obj: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (metadata !== undefined) obj.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === "__metadata__" || Object.prototype.hasOwnProperty.call(obj, t.name)) {
      throw new InternalError(`duplicate or reserved tensor name ${t.name} in safetensors writer`);
    }
    const n = tensorByteLength(t);
    obj[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(obj);
  const jsonBytes = new TextEncoder().encode(json).length;
  const pad = (8 - (jsonBytes % 8)) % 8;
  json += " ".repeat(pad);
  const body = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8 + body.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(body.length), true);
  prefix.set(body, 8);
  return { prefix, dataByteLength: offset };
}

/**
 * How written files reach the disk. By default every file is fsynced (`sync(fh, path, "fsync")`) in
 * `finish()`, before it is closed; while data streams in, `fdatasync` runs in the background each
 * `syncEveryBytes` so the disk's writeback overlaps the rest of the work and the final fsync has little left
 * to flush. With `fsync: false` neither runs: `finish()` returns once the bytes are in the page cache, and
 * the kernel writes them back later (what transformers' `save_pretrained` and mergekit do).
 *
 * A durable file is written with O_DIRECT where the file system allows it (core/direct-file.ts): fsync
 * waits for the disk anyway, and bypassing the page cache saves the copy into new cache pages and keeps
 * the inputs' pages cached. Background datasyncs then have nothing to do and are skipped.
 */
export interface WriteSyncOptions {
  /**
   * Wait for the data to be on disk before `finish()` resolves (so before an atomic output is renamed into
   * place, a power loss cannot leave a renamed but incomplete file). false skips every sync. @default true
   */
  readonly fsync?: boolean;
  /**
   * With `fsync`, write through O_DIRECT (falls back to buffered writes where refused). false: buffered
   * writes with background datasyncs. Ignored without fsync. @default true unless REALIGN_DIRECT_IO=0
   */
  readonly directIo?: boolean;
  /**
   * Start a background fdatasync after this many bytes written since the last one started (at most one in
   * flight per file); 0 turns it off. @default DEFAULT_SYNC_EVERY_BYTES
   */
  readonly syncEveryBytes?: number;
  /**
   * Performs a sync: "datasync" (background, during writes) or "fsync" (in finish, always awaited before
   * finish resolves). @default fh.datasync() / fh.sync(). Tests inject one to observe ordering.
   */
  readonly sync?: (file: SyncTarget, path: string, kind: "datasync" | "fsync") => Promise<void>;
}

/** What a sync hook gets: the open file (a FileHandle, or a DirectFile under O_DIRECT). */
export interface SyncTarget {
  sync(): Promise<void>;
  datasync(): Promise<void>;
}

/** An open output file, appended to in order. */
interface AppendFile extends SyncTarget {
  write(bytes: Uint8Array): Promise<void>;
  /** O_DIRECT files: the next bytes' place in the staging blocks (DirectFile.reserve / commit). */
  reserve?(n: number): Promise<Uint8Array[]>;
  commit?(n: number): void;
  close(): Promise<void>;
  abort(): Promise<void>;
}

/** Opens `path` (created or truncated) through O_DIRECT (`direct`) or buffered writes. */
async function openAppendFile(path: string, direct: boolean): Promise<AppendFile> {
  if (direct) return openDirectFile(path);
  const fh = await open(path, "w");
  return {
    async write(bytes) {
      let done = 0;
      while (done < bytes.length) done += (await fh.write(bytes, done, bytes.length - done, null)).bytesWritten;
    },
    sync: () => fh.sync(),
    datasync: () => fh.datasync(),
    close: () => fh.close(),
    abort: () => fh.close(),
  };
}

/** Default `syncEveryBytes`: 256 MiB. */
export const DEFAULT_SYNC_EVERY_BYTES = 256 * 2 ** 20;

const defaultSync = (file: SyncTarget, _path: string, kind: "datasync" | "fsync"): Promise<void> => (kind === "fsync" ? file.sync() : file.datasync());

/** Whether files written with these options go through O_DIRECT and its staging blocks: durable, and direct I/O not turned off. */
function writesDirect(options: WriteSyncOptions): boolean {
  return (options.fsync ?? true) && (options.directIo ?? directIoEnabled());
}

/** Streams the data of declared tensors, in order, into one file. */
export interface SafetensorsFileWriter {
  readonly path: string;
  /** Appends data bytes (any split; must follow declared order and sizes). Not while reserved bytes are not committed. */
  write(bytes: Uint8Array): Promise<void>;
  /**
   * Reserves the next `byteLength` data bytes where the file stages them (O_DIRECT files; undefined
   * otherwise): views in file order to fill, then `commit(byteLength)` (core/direct-file.ts
   * `DirectFile.reserve`).
   * @throws InternalError (synchronously) past the declared data; the promise rejects with IoError/InputError
   *   (via fsError) for an earlier failed write.
   */
  reserve(byteLength: number): Promise<Uint8Array[]> | undefined;
  /** Marks the next `byteLength` reserved bytes filled. @throws IoError/InputError (via fsError) of an earlier failed write. */
  commit(byteLength: number): void;
  /**
   * Checks every declared byte arrived, waits for any background datasync, fsyncs (unless `fsync: false`) and
   * closes. @throws IoError/InputError (via fsError) of a failed sync or close, after closing the handle.
   */
  finish(): Promise<void>;
  /** Closes without checks (the caller removes the temp output). */
  abort(): Promise<void>;
}

/**
 * Creates `path` and writes its header for `tensors`.
 * @throws IoError/InputError (via fsError) if the file cannot be written (a failed background datasync is
 *   reported by the next write or by finish).
 */
export async function createSafetensorsWriter(
  path: string,
  tensors: readonly OutputTensorInfo[],
  metadata: Readonly<Record<string, string>> | undefined,
  syncOptions: WriteSyncOptions = {},
): Promise<SafetensorsFileWriter> {
  const durable = syncOptions.fsync ?? true;
  const direct = writesDirect(syncOptions);
  // under O_DIRECT the data is on the device as each write completes: background datasyncs would only wait
  const syncEvery = durable && !direct ? (syncOptions.syncEveryBytes ?? DEFAULT_SYNC_EVERY_BYTES) : 0;
  const sync = syncOptions.sync ?? defaultSync;
  const { prefix, dataByteLength } = buildHeader(tensors, metadata);
  let fh: AppendFile;
  try {
    fh = await openAppendFile(path, direct);
  } catch (e) {
    throw fsError(e, path, "writing safetensors file");
  }
  try {
    await fh.write(prefix);
  } catch (e) {
    await fh.abort().catch(() => {});
    throw fsError(e, path, "writing safetensors file");
  }
  let written = 0;
  /** Bytes reserved and not committed yet. */
  let pending = 0;
  let closed = false;
  // background fdatasync: at most one in flight; its failure surfaces at the next write or in finish
  let sinceSync = 0;
  let syncing: Promise<void> | undefined;
  let syncError: unknown;
  const kickSync = (): void => {
    if (syncEvery <= 0 || sinceSync < syncEvery || syncing !== undefined) return;
    sinceSync = 0;
    syncing = sync(fh, path, "datasync").then(
      () => {
        syncing = undefined;
      },
      (e: unknown) => {
        syncError ??= e;
        syncing = undefined;
      },
    );
  };
  const settleSync = async (): Promise<void> => {
    while (syncing !== undefined) await syncing;
    if (syncError !== undefined) throw fsError(syncError, path, "writing safetensors file");
  };
  return {
    path,
    reserve(n) {
      if (fh.reserve === undefined) return undefined;
      if (written + pending + n > dataByteLength) {
        throw new InternalError(`safetensors writer for ${path}: got more data than declared (${written + pending + n} > ${dataByteLength})`);
      }
      pending += n;
      return fh.reserve(n).catch((e: unknown) => {
        throw fsError(e, path, "writing safetensors file");
      });
    },
    commit(n) {
      try {
        fh.commit!(n);
      } catch (e) {
        throw fsError(e, path, "writing safetensors file");
      }
      pending -= n;
      written += n;
    },
    async write(bytes) {
      if (written + bytes.length > dataByteLength) {
        throw new InternalError(`safetensors writer for ${path}: got more data than declared (${written + bytes.length} > ${dataByteLength})`);
      }
      if (syncError !== undefined) throw fsError(syncError, path, "writing safetensors file");
      try {
        await fh.write(bytes);
      } catch (e) {
        throw fsError(e, path, "writing safetensors file");
      }
      written += bytes.length;
      sinceSync += bytes.length;
      kickSync();
    },
    async finish() {
      if (written !== dataByteLength) {
        throw new InternalError(`safetensors writer for ${path}: wrote ${written} data bytes, declared ${dataByteLength}`);
      }
      try {
        await settleSync();
        if (durable) await sync(fh, path, "fsync");
        await fh.close();
      } catch (e) {
        // a failed sync or close: release the handle now (the caller removes the file), not at GC
        await fh.abort().catch(() => {});
        throw e instanceof RealignError ? e : fsError(e, path, "writing safetensors file");
      } finally {
        closed = true;
      }
    },
    async abort() {
      if (closed) return;
      closed = true;
      await settleSync().catch(() => {});
      await fh.abort().catch(() => {});
    },
  };
}

/** One planned shard: its HF file name and tensors (in write order). */
export interface ShardPlan {
  readonly fileName: string;
  readonly tensors: readonly OutputTensorInfo[];
  readonly dataByteLength: number;
}

/**
 * Splits `tensors` (kept in order) into shards of at most `maxShardBytes` data bytes; a tensor larger than
 * the budget gets a shard of its own (as transformers does). One shard → `model.safetensors`; otherwise
 * `model-0000i-of-0000N.safetensors`. Zero tensors → one empty `model.safetensors`.
 */
export function planShards(tensors: readonly OutputTensorInfo[], maxShardBytes: number): ShardPlan[] {
  const groups: { tensors: OutputTensorInfo[]; bytes: number }[] = [];
  let cur: { tensors: OutputTensorInfo[]; bytes: number } | undefined;
  for (const t of tensors) {
    const n = tensorByteLength(t);
    if (cur === undefined || (cur.tensors.length > 0 && cur.bytes + n > maxShardBytes)) {
      cur = { tensors: [], bytes: 0 };
      groups.push(cur);
    }
    cur.tensors.push(t);
    cur.bytes += n;
  }
  if (groups.length === 0) groups.push({ tensors: [], bytes: 0 });
  const total = groups.length;
  return groups.map((g, i) => ({
    fileName: total === 1 ? SINGLE_FILE_NAME : shardFileName(i + 1, total),
    tensors: g.tensors,
    dataByteLength: g.bytes,
  }));
}

/** Writes a whole checkpoint's weights as shards + index, data arriving tensor by tensor in declared order. */
export interface ShardedWriter {
  readonly shards: readonly ShardPlan[];
  /** Appends data for the current tensor (declared order across all shards); opens the next shard as needed. */
  write(bytes: Uint8Array): Promise<void>;
  /** Whether the shards are staged (durable O_DIRECT output), so that `reserve` can give their bytes' place. */
  readonly staged: boolean;
  /**
   * Reserves the next `byteLength` bytes in the staging blocks of the shard being written, when they all
   * fall in it and it is staged (SafetensorsFileWriter.reserve); undefined otherwise (use write: the first
   * bytes of each shard, which open it). Every reserved byte must be committed, in order, before the next
   * write or finish.
   */
  reserve(byteLength: number): Promise<Uint8Array[]> | undefined;
  /** Marks the next `byteLength` reserved bytes filled. @throws as SafetensorsFileWriter.commit. */
  commit(byteLength: number): void;
  /** Finishes the last shard and writes the index (when more than one shard). Returns the file names. */
  finish(): Promise<{ files: string[]; totalSize: number }>;
  abort(): Promise<void>;
}

/** Options of createShardedWriter (plus how shards are synced: see WriteSyncOptions). */
export interface ShardedWriterOptions extends WriteSyncOptions {
  /** Largest data size of one shard, bytes. */
  readonly maxShardBytes: number;
  /** `__metadata__` of every shard (e.g. {format: "pt", …provenance}). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Extra `metadata` entries of the index json besides total_size. */
  readonly indexMetadata?: Readonly<Record<string, unknown>>;
}

/**
 * Creates a sharded writer into directory `dir` (which must exist).
 * Shard files are created lazily, so a failure leaves at most the current shard (the caller's temp dir).
 * A completed shard is fsynced and closed in the background while the next one is written; `finish()`
 * resolves only when every shard is fsynced and closed (and reports the first failure).
 */
export function createShardedWriter(dir: string, tensors: readonly OutputTensorInfo[], options: ShardedWriterOptions): ShardedWriter {
  const shards = planShards(tensors, options.maxShardBytes);
  let shardIndex = -1;
  let current: SafetensorsFileWriter | undefined;
  let remaining = 0;
  const totalSize = shards.reduce((s, p) => s + p.dataByteLength, 0);
  const syncOptions: WriteSyncOptions = { fsync: options.fsync, directIo: options.directIo, syncEveryBytes: options.syncEveryBytes, sync: options.sync };
  // shards being fsynced and closed in the background; each records its failure instead of rejecting
  const finishing: Promise<void>[] = [];
  let finishError: unknown;
  const finishInBackground = (w: SafetensorsFileWriter): void => {
    finishing.push(
      w.finish().catch((e: unknown) => {
        finishError ??= e;
      }),
    );
  };
  const nextShard = async (): Promise<void> => {
    if (finishError !== undefined) throw finishError;
    if (current !== undefined) finishInBackground(current);
    current = undefined;
    shardIndex++;
    const plan = shards[shardIndex];
    if (plan === undefined) throw new InternalError("sharded writer: more data than declared");
    current = await createSafetensorsWriter(join(dir, plan.fileName), plan.tensors, options.metadata, syncOptions);
    remaining = plan.dataByteLength;
  };
  /** Bytes reserved in the current shard and not committed yet. */
  let pending = 0;
  return {
    shards,
    staged: writesDirect(options),
    reserve(n) {
      if (current === undefined || remaining < n || n <= 0) return undefined;
      const views = current.reserve(n);
      if (views === undefined) return undefined;
      remaining -= n;
      pending += n;
      return views;
    },
    commit(n) {
      current!.commit(n);
      pending -= n;
    },
    async write(bytes) {
      if (pending !== 0) throw new InternalError(`sharded writer: write while ${pending} reserved bytes are not committed`);
      let off = 0;
      while (off < bytes.length) {
        while (current === undefined || remaining === 0) await nextShard();
        const n = Math.min(remaining, bytes.length - off);
        await current.write(off === 0 && n === bytes.length ? bytes : bytes.subarray(off, off + n));
        remaining -= n;
        off += n;
      }
    },
    async finish() {
      if (pending !== 0) throw new InternalError(`sharded writer: finish while ${pending} reserved bytes are not committed`);
      while (shardIndex < shards.length - 1) await nextShard();
      if (current !== undefined) finishInBackground(current);
      current = undefined;
      await Promise.all(finishing);
      if (finishError !== undefined) throw finishError;
      const files = shards.map((s) => s.fileName);
      if (shards.length > 1) {
        const weightMap: Record<string, string> = Object.create(null) as Record<string, string>;
        for (const s of shards) for (const t of s.tensors) weightMap[t.name] = s.fileName;
        const indexPath = join(dir, INDEX_FILE_NAME);
        try {
          await writeFile(indexPath, toIndexJson(weightMap, totalSize, options.indexMetadata));
        } catch (e) {
          throw fsError(e, indexPath, "writing index");
        }
        files.push(INDEX_FILE_NAME);
      }
      return { files, totalSize };
    },
    async abort() {
      await Promise.all(finishing);
      await current?.abort();
      current = undefined;
    },
  };
}

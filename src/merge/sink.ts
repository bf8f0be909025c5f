/**
 * Where merged tensors go. `runMerge` declares every output tensor up front, then streams their bytes in
 * that order; a sink turns them into files inside the (temporary) output directory. The default sink writes
 * HF safetensors shards + index; a GGUF sink can implement the same interface.
 */
import type { OutputTensorInfo, WriteSyncOptions } from "../formats/safetensors/write.ts";
import { createShardedWriter } from "../formats/safetensors/write.ts";
import type { MergePlan } from "./plan.ts";
import { InternalError } from "../errors.ts";

export type { OutputTensorInfo };

/** Receives the merged tensors' bytes in declared order and turns them into files. */
export interface TensorSink {
  /** Data bytes of the declared tensors, in declared order, in any split. */
  write(bytes: Uint8Array): Promise<void>;
  /**
   * Present when the sink stages its output (the safetensors sink with durable O_DIRECT shards): the
   * place of the next `byteLength` data bytes in that staging, views to fill and then `commit`, in order,
   * before the next write; or undefined when it has none for them (use write). See
   * formats/safetensors/write.ts ShardedWriter.reserve.
   */
  reserve?(byteLength: number): Promise<Uint8Array[]> | undefined;
  /** Marks the next `byteLength` reserved bytes filled (with `reserve`). */
  commit?(byteLength: number): void;
  /** Completes the files; returns the names written (relative to the output directory). */
  finish(): Promise<string[]>;
  /** Releases handles after a failure (the caller removes the directory). */
  abort(): Promise<void>;
}

/** Everything a sink may need to lay out its files. */
export interface SinkContext {
  /**
   * Output directory (temporary, renamed into place by the caller). In file mode (`file` set) this is the
   * directory holding `file`; write nothing else there.
   */
  readonly dir: string;
  /** File mode (`outputKind: "file"`, e.g. one .gguf): the temp file to write, renamed onto `--out` at the end. */
  readonly file: string | undefined;
  /** Output tensors in write order. */
  readonly tensors: readonly OutputTensorInfo[];
  /** Provenance strings (format, tool, version, method, lambda, seed). */
  readonly metadata: Readonly<Record<string, string>>;
  readonly plan: MergePlan;
}

/** Creates a sink once the output tensors are known (called inside the atomic temp output). */
export type SinkFactory = (ctx: SinkContext) => Promise<TensorSink> | TensorSink;

/** transformers' default `max_shard_size` (decimal GB, as it counts). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

/**
 * The default sink: HF safetensors shards of at most `maxShardBytes` + `model.safetensors.index.json`.
 * Every shard is fsynced before `finish()` resolves (so before the output is renamed into place) unless
 * `sync.fsync` is false; `sync` also tunes the background syncs that overlap disk writeback with the merge
 * (formats/safetensors/write.ts).
 */
export function safetensorsSink(maxShardBytes: number = DEFAULT_MAX_SHARD_BYTES, sync: WriteSyncOptions = {}): SinkFactory {
  return (ctx) => {
    if (ctx.file !== undefined) throw new InternalError("the safetensors sink writes a directory, not a single file");
    const numel = ctx.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
    const writer = createShardedWriter(ctx.dir, ctx.tensors, {
      maxShardBytes,
      metadata: ctx.metadata,
      indexMetadata: { total_parameters: numel },
      ...sync,
    });
    return {
      write: (bytes) => writer.write(bytes),
      // only a staged writer: the fast path waits for pending writes before it asks for a place
      ...(writer.staged ? { reserve: (n: number) => writer.reserve(n), commit: (n: number) => writer.commit(n) } : {}),
      finish: async () => (await writer.finish()).files,
      abort: () => writer.abort(),
    };
  };
}

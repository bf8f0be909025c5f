/**
 * Tensor vocabulary shared by formats and merge: what a tensor is (name, dtype, shape), where its bytes
 * are, and `TensorSource` — something that can produce a tensor's elements as float32 in chunks, whether
 * read from a file (safetensors, GGUF) or computed (aligned + LoRA delta rows).
 */
import type { Dtype } from "./dtype.ts";

/** A tensor's identity as stored: name, element type, shape (outermost first; [] = one element). */
export interface TensorMeta {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
}

/** Number of elements of `shape` (1 for a scalar `[]`, 0 if any dimension is 0). Exact up to 2^53. */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** `[640, 192]` for messages. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}

/**
 * A readable tensor. Reads are positioned and chunked: callers ask for `countElems` elements starting at
 * element `offsetElems` (row-major, outermost first) and receive them decoded to float32 in `out[0..count)`.
 * Implementations: a safetensors tensor (positioned file reads), a GGUF tensor, a computed tensor
 * (θ_aligned + s·B·A rows). Sources never hold a whole tensor unless it is small.
 */
export interface TensorSource extends TensorMeta {
  /**
   * Decodes elements [offsetElems, offsetElems + countElems) into out[0..countElems) as float32.
   * @throws FormatError/IoError when the underlying file is short or unreadable.
   */
  read(offsetElems: number, countElems: number, out: Float32Array): Promise<void>;
  /**
   * Raw stored bytes [byteOffset, byteOffset + out.length) of the tensor's data, when the source is a stored
   * tensor (used to copy non-float tensors bit for bit). Computed sources omit it.
   */
  readBytes?(byteOffset: number, out: Uint8Array): Promise<void>;
  /**
   * Where `readBytes` reads from, when it is one open file: stored byte j of the tensor is at absolute
   * position `offset + j` of file descriptor `fd` (open while the source is). Lets worker threads read
   * the bytes themselves (merge/workers/fast-linear.ts, fast-ties.ts); `readBytes` stays the reference and
   * reports errors.
   */
  readonly fileSpan?: FileSpan;
}

/** Stored byte j of a tensor is at absolute position `offset + j` of the open file descriptor `fd`. */
export interface FileSpan {
  readonly fd: number;
  readonly offset: number;
}

/**
 * One input model as the merge planner and runner see it: its config, its tensor inventory and a way to
 * open each tensor. `openCheckpoint` (HF safetensors dir) returns one; a LoRA adapter over an aligned
 * checkpoint or a GGUF file can provide another.
 */
export interface Checkpoint {
  /** Absolute path of the model (directory or file), used in messages and the model card. */
  readonly path: string;
  /** Parsed config.json (HF), or an equivalent record. */
  readonly config: Readonly<Record<string, unknown>>;
  /** Every tensor by name, in stored order. */
  readonly tensors: ReadonlyMap<string, TensorMeta>;
  /** Absolute paths of non-weight files to carry into a merged output (tokenizer, chat template, …). */
  readonly carryFiles: readonly string[];
  /** Absolute paths of the weight files (for hashing/identity in the model card). */
  readonly weightFiles: readonly string[];
  /**
   * How this checkpoint was derived, when it is not a plain file read: `what` is one phrase for the model card
   * and merge summary (e.g. `LoRA adapter /a (r 8, α 16, scale 2)`), `onto` the absolute path of the model it
   * was applied to. Absent for a plain checkpoint.
   */
  readonly origin?: { readonly what: string; readonly onto: string };
  /** A reader for tensor `name` (must be in `tensors`). */
  openTensor(name: string): TensorSource;
  /** Releases open file handles. Idempotent. */
  close(): Promise<void>;
}

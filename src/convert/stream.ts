/**
 * The streaming path of `convertToGguf` for Hugging Face inputs: every tensor's data goes through a ring of
 * chunk slots, with read-ahead (positioned reads of the next slots in flight while the current one is
 * processed) and write-behind (positioned GGUF writes on the thread pool while the next slots are read),
 * after the linear merge's fast path (merge/workers/fast-linear.ts). Memory is fixed by the slots.
 *
 * A tensor whose stored dtype is its GGUF type (BF16 → BF16, F16 → F16, F32 → F32) with no norm shift is a
 * byte copy: its bytes are read straight into the slot that is written, with no decode or encode. Llama's
 * Q/K row permutation (convert_hf_to_gguf.py LlamaModel.permute) maps every head's rows onto the same head,
 * so a chunk of whole heads reads one contiguous range and reorders whole rows in memory. Other tensors
 * (BF16 → F32 norms, → F16/Q8_0) are decoded to float32, shifted and encoded as the old path does, on the
 * main thread while the next chunks are read. Bytes equal `writeTensorSequential`'s (convert.ts) for every
 * value except signalling NaNs, which a copy keeps bit for bit (decode → encode sets their quiet bit).
 */
import { DTYPE_BYTES, decodeToF32, type Dtype } from "../core/dtype.ts";
import type { TensorSource } from "../core/tensor.ts";
import { CancelledError, InternalError } from "../errors.ts";
import { qkPermutation } from "../formats/gguf/qk-permute.ts";
import { byteLengthOf, encodeGgufFromF32 } from "../formats/gguf/tensor-data.ts";
import type { GgufWriter } from "../formats/gguf/write.ts";
import type { TensorConversion } from "./plan.ts";
import { InFlight } from "../core/in-flight.ts";

/** Default bytes per chunk slot. */
export const STREAM_CHUNK_BYTES = 8 * 2 ** 20;
/** Default ring slots (reads of slots − 1 chunks ahead in flight). */
export const STREAM_SLOTS = 4;

/** One output tensor: its plan entry and, unless it is generated (`conv.data`), its stored source. */
export interface StreamTensor {
  readonly conv: TensorConversion;
  /** A stored tensor with `readBytes` (raw bytes). Undefined only for generated tensors. */
  readonly src?: TensorSource;
}

export interface StreamOptions {
  /** Bytes per slot (a chunk is at most this, or one row when a row is bigger). @default STREAM_CHUNK_BYTES */
  readonly chunkBytes?: number;
  /** Ring slots (≥ 2). @default STREAM_SLOTS */
  readonly slots?: number;
  readonly signal?: AbortSignal;
  /** Called in tensor order when a tensor's last chunk is handed to the writer. */
  readonly onTensorDone?: (index: number) => void;
}

/** Whether a tensor stored as `dtype` is written with its bytes unchanged (same float type, no shift). */
export function isByteCopy(dtype: Dtype, conv: TensorConversion): boolean {
  return conv.add === undefined && conv.data === undefined && (dtype === "BF16" || dtype === "F16" || dtype === "F32") && dtype === conv.type;
}

/** Code tables for 2-byte → 2-byte conversions, by "FROM>TO" (built on first use, 128 KiB each). */
const LUTS = new Map<string, Uint16Array>();

/**
 * The table of a 2-byte stored dtype to a 2-byte GGUF type: entry c is what decodeToF32 then
 * encodeGgufFromF32 make of code c, or undefined when either side is not 2-byte.
 */
export function codeTable(from: Dtype, to: TensorConversion["type"]): Uint16Array | undefined {
  if ((from !== "BF16" && from !== "F16") || (to !== "BF16" && to !== "F16")) return undefined;
  const key = `${from}>${to}`;
  let t = LUTS.get(key);
  if (t === undefined) {
    const codes = new Uint16Array(65536);
    for (let c = 0; c < 65536; c++) codes[c] = c;
    const f32 = new Float32Array(65536);
    decodeToF32(from, new Uint8Array(codes.buffer), f32, 65536);
    t = new Uint16Array(65536);
    encodeGgufFromF32(to, f32, new Uint8Array(t.buffer), 65536);
    LUTS.set(key, t);
  }
  return t;
}

/** to[k] = lut[from[k]] for k < n (unrolled by 4: ~1 ns per element). */
function mapCodes(lut: Uint16Array, from: Uint16Array, to: Uint16Array, n: number): void {
  let k = 0;
  for (; k + 4 <= n; k += 4) {
    to[k] = lut[from[k]!]!;
    to[k + 1] = lut[from[k + 1]!]!;
    to[k + 2] = lut[from[k + 2]!]!;
    to[k + 3] = lut[from[k + 3]!]!;
  }
  for (; k < n; k++) to[k] = lut[from[k]!]!;
}

/** Per-tensor facts the chunks need. */
interface Plan {
  readonly conv: TensorConversion;
  readonly src: TensorSource | undefined;
  readonly copy: boolean;
  /** 2-byte → 2-byte code table (no shift), when the tensor converts through one. */
  readonly lut: Uint16Array | undefined;
  /** Bytes of one stored row (rows are the outermost dimension). */
  readonly rowBytes: number;
  /** Output row r = stored row perm[r] (Q/K), or undefined. */
  readonly perm: Int32Array | undefined;
}

/** A chunk: stored bytes [start, end) of tensor `t` in output order (whole rows when permuted or converted). */
interface Chunk {
  readonly t: number;
  readonly start: number;
  readonly end: number;
  readonly last: boolean;
}

interface Slot {
  readonly out: Uint8Array;
  /** Stored bytes of a converted chunk (lazily allocated). */
  stage?: Uint8Array;
  /** Contiguous stored rows a permuted chunk gathers from (lazily allocated). */
  span?: Uint8Array;
}

/** Splits the tensors into chunks of at most `chunkBytes` (at least one row). @returns chunks and the slot size. */
function planChunks(plans: readonly Plan[], chunkBytes: number): { chunks: Chunk[]; bufBytes: number } {
  const chunks: Chunk[] = [];
  let bufBytes = chunkBytes;
  plans.forEach((p, t) => {
    if (p.conv.data !== undefined || p.src === undefined) {
      chunks.push({ t, start: 0, end: 0, last: true });
      return;
    }
    const shape = p.src.shape;
    const elemBytes = DTYPE_BYTES[p.src.dtype];
    const total = shape.reduce((a, b) => a * b, 1) * elemBytes;
    if (total === 0) {
      chunks.push({ t, start: 0, end: 0, last: true });
      return;
    }
    let step: number;
    if (p.copy && p.perm === undefined) {
      step = chunkBytes; // a plain byte range: no row alignment needed
    } else {
      // Whole rows; a row decoded to float32 needs its scratch (4 bytes per element ≥ output bytes), and its
      // stored bytes (8 per element for 64-bit dtypes) in the stage.
      const perRow = p.copy || p.lut !== undefined ? p.rowBytes : Math.max(p.rowBytes, (p.rowBytes / elemBytes) * 4);
      let rows = Math.max(1, Math.floor(chunkBytes / perRow));
      if (p.perm !== undefined) {
        const headRows = p.perm.length / p.conv.permuteHeads!;
        if (rows >= headRows) rows -= rows % headRows; // whole heads: one contiguous read per chunk
      }
      step = rows * p.rowBytes;
      bufBytes = Math.max(bufBytes, rows * perRow);
    }
    for (let start = 0; start < total; start += step) chunks.push({ t, start, end: Math.min(total, start + step), last: start + step >= total });
  });
  return { chunks, bufBytes };
}

/**
 * Writes the data of `tensors` (in the order declared to `w`, after writeTensorInfos) through the ring.
 * Resolves when every chunk is written (not yet fsynced: call `w.closeAsync()`); on error or abort waits
 * for in-flight I/O to settle, then rejects.
 * @throws CancelledError when `signal` aborts; FormatError/IoError from reads and writes.
 */
export async function streamTensors(w: GgufWriter, tensors: readonly StreamTensor[], options: StreamOptions = {}): Promise<void> {
  const nSlots = Math.max(2, options.slots ?? STREAM_SLOTS);
  const plans: Plan[] = tensors.map(({ conv, src }) => {
    if (src === undefined) return { conv, src, copy: false, lut: undefined, rowBytes: 0, perm: undefined };
    if (src.readBytes === undefined) throw new InternalError(`convert stream: tensor ${src.name} has no raw byte reader`);
    const shape = src.shape;
    const nRows = shape.length === 0 ? 1 : shape[0]!;
    const rowElems = shape.length <= 1 ? 1 : shape.slice(1).reduce((a, b) => a * b, 1);
    const perm = conv.permuteHeads !== undefined ? qkPermutation(nRows, conv.permuteHeads, conv.hfName) : undefined;
    const copy = isByteCopy(src.dtype, conv);
    const lut = copy || conv.add !== undefined ? undefined : codeTable(src.dtype, conv.type);
    return { conv, src, copy, lut, rowBytes: rowElems * DTYPE_BYTES[src.dtype], perm };
  });
  const { chunks, bufBytes } = planChunks(plans, options.chunkBytes ?? STREAM_CHUNK_BYTES);
  const slots: Slot[] = Array.from({ length: nSlots }, () => ({ out: new Uint8Array(bufBytes) }));
  let f32: Float32Array | undefined;

  /** Reads stored bytes [start, end) of plan p, rows reordered by p.perm, into target. */
  const readRaw = async (p: Plan, slot: Slot, start: number, end: number, target: Uint8Array): Promise<void> => {
    const src = p.src!;
    if (p.perm === undefined) return src.readBytes!(start, target.subarray(0, end - start));
    const r0 = start / p.rowBytes;
    const r1 = end / p.rowBytes;
    let lo = Infinity;
    let hi = -1;
    for (let r = r0; r < r1; r++) {
      lo = Math.min(lo, p.perm[r]!);
      hi = Math.max(hi, p.perm[r]! + 1);
    }
    if ((hi - lo) * p.rowBytes <= bufBytes) {
      const span = (slot.span ??= new Uint8Array(bufBytes));
      await src.readBytes!(lo * p.rowBytes, span.subarray(0, (hi - lo) * p.rowBytes));
      for (let r = r0; r < r1; r++) {
        const from = (p.perm[r]! - lo) * p.rowBytes;
        target.set(span.subarray(from, from + p.rowBytes), (r - r0) * p.rowBytes);
      }
    } else {
      // A chunk smaller than a head: its rows are spread over the head; one read per row.
      for (let r = r0; r < r1; r++) await src.readBytes!(p.perm[r]! * p.rowBytes, target.subarray((r - r0) * p.rowBytes, (r - r0 + 1) * p.rowBytes));
    }
  };

  const reads: (Promise<void> | undefined)[] = new Array(chunks.length);
  const writes: (Promise<void> | undefined)[] = new Array(chunks.length);
  const inflight = new InFlight();
  const issueRead = (i: number): void => {
    if (i >= chunks.length || reads[i] !== undefined) return;
    const c = chunks[i]!;
    const p = plans[c.t]!;
    if (c.end === c.start) return; // generated or empty: nothing to read
    const slot = slots[i % nSlots]!;
    const prevWrite = i >= nSlots ? writes[i - nSlots] : undefined;
    const target = p.copy ? slot.out : (slot.stage ??= new Uint8Array(bufBytes));
    reads[i] = inflight.track((prevWrite ?? Promise.resolve()).then(() => readRaw(p, slot, c.start, c.end, target)));
  };

  try {
    for (let i = 0; i < chunks.length; i++) {
      if (options.signal?.aborted) throw new CancelledError("conversion cancelled; no output was written");
      for (let a = i; a < i + nSlots - 1; a++) issueRead(a);
      const c = chunks[i]!;
      const p = plans[c.t]!;
      if (p.conv.data !== undefined) {
        const d = p.conv.data;
        writes[i] = inflight.track(w.writeTensorDataAsync(p.conv.ggufName, new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
      } else if (c.end > c.start) {
        await reads[i];
        const slot = slots[i % nSlots]!;
        let out: Uint8Array;
        if (p.copy) {
          out = slot.out.subarray(0, c.end - c.start);
        } else if (p.lut !== undefined) {
          const n = (c.end - c.start) / 2;
          mapCodes(p.lut, new Uint16Array(slot.stage!.buffer, 0, n), new Uint16Array(slot.out.buffer, 0, n), n);
          out = slot.out.subarray(0, c.end - c.start);
        } else {
          const dtype = p.src!.dtype;
          const count = (c.end - c.start) / DTYPE_BYTES[dtype];
          f32 ??= new Float32Array(bufBytes / 4);
          decodeToF32(dtype, slot.stage!, f32, count);
          const add = p.conv.add;
          if (add !== undefined) for (let k = 0; k < count; k++) f32[k] = Math.fround(f32[k]! + add);
          out = slot.out.subarray(0, byteLengthOf(p.conv.type, count));
          encodeGgufFromF32(p.conv.type, f32, out, count);
        }
        writes[i] = inflight.track(w.writeTensorDataAsync(p.conv.ggufName, out));
      }
      reads[i] = undefined;
      if (i >= nSlots) writes[i - nSlots] = undefined;
      if (c.last) options.onTensorDone?.(c.t);
    }
    await inflight.all();
  } catch (err) {
    await inflight.settle();
    throw err;
  }
}

/**
 * safetensors header parsing and validation (pure: bytes in, validated header out).
 *
 * Layout (https://github.com/huggingface/safetensors#format): u64 little-endian N, then N bytes of UTF-8
 * JSON `{name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__"?: {string: string}}`, then the
 * data section. Offsets are relative to the start of the data section. Everything is validated before any
 * tensor byte is read: dtype known, shape product × dtype size == end − begin (BigInt, no 32-bit
 * arithmetic), offsets inside the file and non-overlapping, metadata string→string. Gaps between tensors and
 * an unaligned data start (header lengths that are not multiples of 8) are accepted, as readers must.
 */
import { DTYPE_BYTES, isDtype, type Dtype } from "../../core/dtype.ts";
import { FormatError } from "../../errors.ts";

/** Bounds a crafted header length; the reference implementation's limit (real headers are ≈ 100 KB). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Bounds the tensor count of one file (the largest real checkpoints have ≈ 10^4 per shard). */
export const MAX_TENSORS = 1_000_000;
/** Bounds the rank of a tensor (real models use ≤ 5). */
export const MAX_RANK = 16;

/** One tensor entry of a validated header. */
export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** [begin, end) relative to the data section, as in the file. */
  readonly dataOffsets: readonly [number, number];
  /** Absolute byte offset of the tensor's first byte in the file (8 + N + begin). */
  readonly byteOffset: number;
  /** end − begin. */
  readonly byteLength: number;
}

/** A validated safetensors header: sizes, metadata and tensor entries in data order. */
export interface SafetensorsHeader {
  /** N, the JSON length. */
  readonly headerByteLength: number;
  /** 8 + N: absolute offset of the data section. */
  readonly dataStart: number;
  /** `__metadata__` (undefined when absent; may be empty). */
  readonly metadata: Readonly<Record<string, string>> | undefined;
  /** Tensors in data order (ascending begin offset). */
  readonly tensors: readonly SafetensorsTensorInfo[];
}

function fail(code: string, file: string, message: string, details: Record<string, unknown> = {}, hint?: string): never {
  throw new FormatError(code, `${message} in ${file}`, {
    details: { file, ...details },
    hint: hint ?? "the file is not a valid safetensors file; re-download or re-save it",
  });
}

/**
 * Reads and checks the 8-byte prefix: the JSON length N must be ≤ MAX_HEADER_BYTES and 8 + N ≤ fileSize.
 * @param prefix the first 8 bytes (or fewer if the file is shorter).
 * @returns N.
 * @throws FormatError `safetensors.truncated` | `safetensors.header_too_large`.
 */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.length < 8) {
    fail("safetensors.truncated", file, `file too short for a safetensors header: got ${fileSize} bytes, expected at least 8`, { got: fileSize });
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    fail("safetensors.header_too_large", file, `header length too large: got ${n} bytes, expected at most ${MAX_HEADER_BYTES}`, {
      got: n.toString(),
      max: MAX_HEADER_BYTES,
    });
  }
  if (8n + n > BigInt(fileSize)) {
    fail("safetensors.truncated", file, `header runs past the end of the file: header length ${n}, file size ${fileSize}`, {
      got: Number(n),
      fileSize,
    });
  }
  return Number(n);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Parses and validates the JSON header.
 * @param json the N header bytes (UTF-8).
 * @param headerByteLength N.
 * @param fileSize total file size in bytes (offsets must fit in fileSize − 8 − N).
 * @throws FormatError with codes `safetensors.bad_json`, `safetensors.bad_metadata`, `safetensors.bad_entry`,
 *   `safetensors.bad_dtype`, `safetensors.bad_shape`, `safetensors.bad_offsets`, `safetensors.size_mismatch`,
 *   `safetensors.offset_out_of_range`, `safetensors.offsets_overlap`, `safetensors.too_many_tensors`.
 */
export function parseHeaderJson(json: Uint8Array, headerByteLength: number, fileSize: number, file: string): SafetensorsHeader {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(json));
  } catch (e) {
    fail("safetensors.bad_json", file, `header is not valid UTF-8 JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!isPlainObject(parsed)) fail("safetensors.bad_json", file, "header is not a JSON object");
  const dataStart = 8 + headerByteLength;
  const dataSize = fileSize - dataStart;
  let metadata: Record<string, string> | undefined;
  const tensors: SafetensorsTensorInfo[] = [];
  const keys = Object.keys(parsed);
  if (keys.length > MAX_TENSORS + 1) {
    fail("safetensors.too_many_tensors", file, `too many tensors: got ${keys.length}, expected at most ${MAX_TENSORS}`);
  }
  for (const name of keys) {
    const entry = parsed[name];
    if (name === "__metadata__") {
      if (!isPlainObject(entry)) fail("safetensors.bad_metadata", file, "__metadata__ is not an object of strings");
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== "string") {
          fail("safetensors.bad_metadata", file, `__metadata__ value for "${k}" is not a string: got ${JSON.stringify(v)}`, { key: k });
        }
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    if (name.length === 0) fail("safetensors.bad_entry", file, "tensor with an empty name");
    if (!isPlainObject(entry)) fail("safetensors.bad_entry", file, `tensor ${name}: entry is not an object`, { tensor: name });
    const dtype = entry.dtype;
    if (typeof dtype !== "string" || !isDtype(dtype)) {
      fail("safetensors.bad_dtype", file, `tensor ${name}: unknown dtype ${JSON.stringify(dtype)}`, { tensor: name, got: dtype });
    }
    const shape = entry.shape;
    if (
      !Array.isArray(shape) ||
      shape.length > MAX_RANK ||
      !shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
    ) {
      fail("safetensors.bad_shape", file, `tensor ${name}: shape ${JSON.stringify(shape)} is not a list of at most ${MAX_RANK} non-negative integers`, {
        tensor: name,
        got: shape,
      });
    }
    const offsets = entry.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0) ||
      (offsets[0] as number) > (offsets[1] as number)
    ) {
      fail("safetensors.bad_offsets", file, `tensor ${name}: data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 ≤ begin ≤ end`, {
        tensor: name,
        got: offsets,
      });
    }
    const begin = offsets[0] as number;
    const end = offsets[1] as number;
    let expected = BigInt(DTYPE_BYTES[dtype]);
    for (const d of shape as number[]) expected *= BigInt(d);
    if (expected !== BigInt(end - begin)) {
      fail(
        "safetensors.size_mismatch",
        file,
        `tensor ${name}: data_offsets span ${end - begin} bytes, expected ${expected} for ${dtype} ${JSON.stringify(shape)}`,
        { tensor: name, got: end - begin, expected: expected.toString() },
      );
    }
    if (end > dataSize) {
      fail("safetensors.offset_out_of_range", file, `tensor ${name}: data_offsets [${begin},${end}] run past the end of the data (${dataSize} bytes)`, {
        tensor: name,
        got: [begin, end],
        dataSize,
      });
    }
    tensors.push({
      name,
      dtype,
      shape: shape as number[],
      dataOffsets: [begin, end],
      byteOffset: dataStart + begin,
      byteLength: end - begin,
    });
  }
  const ordered = [...tensors].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let prev: SafetensorsTensorInfo | undefined;
  for (const t of ordered) {
    if (t.byteLength === 0) continue;
    if (prev !== undefined && t.dataOffsets[0] < prev.dataOffsets[1]) {
      fail(
        "safetensors.offsets_overlap",
        file,
        `tensors ${prev.name} [${prev.dataOffsets.join(",")}] and ${t.name} [${t.dataOffsets.join(",")}] overlap`,
        { tensor: t.name, other: prev.name },
      );
    }
    prev = t;
  }
  return { headerByteLength, dataStart, metadata, tensors: ordered };
}

/**
 * GGUF reader (spec v2/v3, little-endian): parses the header — magic, version, counts, every metadata value
 * type including (nested) arrays, `general.alignment`, tensor infos — and reads tensor data by range.
 *
 * Parse, don't trust: every number taken from the file passes a named limit before it sizes an allocation
 * or a read, offsets are checked against the file size, and any violation is a FormatError naming the file,
 * the field and what was expected. The header is read incrementally (1 MiB windows), so a 100 GB model costs
 * only its header.
 *
 * Source: GGUF spec (ggml/docs/gguf.md); checks mirror ggml's gguf.cpp `gguf_init_from_file_impl`.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { FormatError, fsError } from "../../errors.ts";
import {
  GGML_MAX_DIMS,
  GGML_MAX_NAME_BYTES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_READABLE_VERSIONS,
  GGUF_VALUE_TYPE_ID,
  KEYS,
  type GgufValueTypeName,
  ggmlTypeById,
  valueTypeById,
} from "./constants.ts";
import type { GgufArray, GgufHeader, GgufMetadata, GgufTensorInfo, GgufValue } from "./types.ts";

/** Bounds a crafted kv_count; real files have ≈ 20–60 keys. */
export const MAX_KV_COUNT = 65_536;
/** Bounds a crafted tensor_count; the largest MoE checkpoints have ≈ 2^15 tensors. */
export const MAX_TENSOR_COUNT = 1 << 20;
/** Bounds one string; the largest real ones are chat templates (≈ 100 KB). */
export const MAX_STRING_BYTES = 16 << 20;
/** Bounds a metadata key (GGUF spec: keys are at most 2^16 − 1 bytes). */
export const MAX_KEY_BYTES = 65_535;
/** Bounds an array's item count; the largest real arrays are vocabularies and merges (≈ 10^6). */
export const MAX_ARRAY_LENGTH = 1 << 24;
/** Bounds array nesting (gguf.cpp refuses nested arrays; a depth of 4 is already generous). */
export const MAX_ARRAY_DEPTH = 4;
/** Bounds `general.alignment`; real files use 32 (the default) or 64. */
export const MAX_ALIGNMENT = 1 << 16;
/** Header bytes read per refill. */
const WINDOW_BYTES = 1 << 20;

/** Synchronous random access to the bytes being parsed. */
interface ByteSource {
  readonly size: number;
  /** Returns bytes [pos, pos+len) (len ≤ size − pos). */
  read(pos: number, len: number): Uint8Array;
}

function fail(file: string, code: string, message: string, details: Record<string, unknown> = {}, hint?: string): never {
  throw new FormatError(`gguf.${code}`, message, { details: { file, ...details }, hint });
}

/** A forward cursor over a ByteSource with a refillable window. */
class Cursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0;
  private view: DataView = new DataView(this.buf.buffer);
  // ignoreBOM: a token may be exactly U+FEFF (Llama 2 vocab); keep it so files re-write byte for byte
  private readonly decoder = new TextDecoder("utf-8", { ignoreBOM: true });

  constructor(
    private readonly src: ByteSource,
    readonly file: string,
  ) {}

  get remaining(): number {
    return this.src.size - this.pos;
  }

  /** Makes [pos, pos+n) available; `field` names what is being read for the truncation error. */
  private need(n: number, field: string): number {
    if (n > this.remaining) {
      fail(this.file, "truncated", `file truncated in ${this.file}: got ${this.remaining} bytes left reading ${field} at offset ${this.pos}, expected ${n}`, {
        field,
        offset: this.pos,
        needed: n,
        fileSize: this.src.size,
      });
    }
    const rel = this.pos - this.bufStart;
    if (rel < 0 || rel + n > this.buf.length) {
      const len = Math.min(Math.max(n, WINDOW_BYTES), this.remaining);
      const bytes = this.src.read(this.pos, len);
      this.buf = bytes;
      this.bufStart = this.pos;
      this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }

  u8(field: string): number {
    const at = this.need(1, field);
    return this.view.getUint8(at);
  }
  i8(field: string): number {
    const at = this.need(1, field);
    return this.view.getInt8(at);
  }
  u16(field: string): number {
    const at = this.need(2, field);
    return this.view.getUint16(at, true);
  }
  i16(field: string): number {
    const at = this.need(2, field);
    return this.view.getInt16(at, true);
  }
  u32(field: string): number {
    const at = this.need(4, field);
    return this.view.getUint32(at, true);
  }
  i32(field: string): number {
    const at = this.need(4, field);
    return this.view.getInt32(at, true);
  }
  f32(field: string): number {
    const at = this.need(4, field);
    return this.view.getFloat32(at, true);
  }
  f64(field: string): number {
    const at = this.need(8, field);
    return this.view.getFloat64(at, true);
  }
  u64(field: string): bigint {
    const at = this.need(8, field);
    return this.view.getBigUint64(at, true);
  }
  i64(field: string): bigint {
    const at = this.need(8, field);
    return this.view.getBigInt64(at, true);
  }
  /** A u64 that must be ≤ max (a count, length or offset); returned as a number. */
  boundedU64(field: string, max: number, code = "limit_exceeded"): number {
    const at = this.pos;
    const v = this.u64(field);
    if (v > BigInt(max)) {
      fail(this.file, code, `${field} in ${this.file} at offset ${at}: got ${v}, expected at most ${max}`, { field, got: v.toString(), max, offset: at });
    }
    return Number(v);
  }
  bytes(n: number, field: string): Uint8Array {
    const at = this.need(n, field);
    return this.buf.subarray(at, at + n);
  }
  string(field: string, maxBytes = MAX_STRING_BYTES): string {
    const len = this.boundedU64(`${field} length`, maxBytes);
    return this.decoder.decode(this.bytes(len, field));
  }
}

function readScalar(c: Cursor, typeName: string, field: string): GgufValue {
  switch (typeName) {
    case "u8":
      return { type: "u8", value: c.u8(field) };
    case "i8":
      return { type: "i8", value: c.i8(field) };
    case "u16":
      return { type: "u16", value: c.u16(field) };
    case "i16":
      return { type: "i16", value: c.i16(field) };
    case "u32":
      return { type: "u32", value: c.u32(field) };
    case "i32":
      return { type: "i32", value: c.i32(field) };
    case "f32":
      return { type: "f32", value: c.f32(field) };
    case "f64":
      return { type: "f64", value: c.f64(field) };
    case "u64":
      return { type: "u64", value: c.u64(field) };
    case "i64":
      return { type: "i64", value: c.i64(field) };
    case "bool": {
      const at = c.pos;
      const b = c.u8(field);
      if (b > 1) fail(c.file, "bad_bool", `bool ${field} in ${c.file} at offset ${at}: got ${b}, expected 0 or 1`, { field, got: b, offset: at });
      return { type: "bool", value: b === 1 };
    }
    case "string":
      return { type: "string", value: c.string(field) };
  }
  throw new Error(`unreachable: scalar type ${typeName}`);
}

function readValueType(c: Cursor, field: string): string {
  const at = c.pos;
  const id = c.u32(`${field} type`);
  const row = valueTypeById(id);
  if (row === undefined) {
    fail(c.file, "bad_value_type", `value type of ${field} in ${c.file} at offset ${at}: got ${id}, expected 0–12`, { field, got: id, offset: at });
  }
  return row.name;
}

function readArray(c: Cursor, field: string, depth: number): GgufArray {
  if (depth > MAX_ARRAY_DEPTH) {
    fail(c.file, "array_too_deep", `array nesting of ${field} in ${c.file}: got more than ${MAX_ARRAY_DEPTH} levels, expected at most ${MAX_ARRAY_DEPTH}`, { field, max: MAX_ARRAY_DEPTH });
  }
  const itemType = readValueType(c, `${field} item`);
  const count = c.boundedU64(`${field} count`, MAX_ARRAY_LENGTH);
  // Every item takes at least this many bytes, so a crafted count cannot make us allocate past the file.
  const minItemBytes = itemType === "string" || itemType === "array" ? 8 : valueTypeById(GGUF_VALUE_TYPE_ID[itemType as GgufValueTypeName])!.byteLength;
  if (count * minItemBytes > c.remaining) {
    fail(c.file, "truncated", `array ${field} in ${c.file}: got ${count} items of ${itemType} with ${c.remaining} bytes left, expected at least ${count * minItemBytes}`, {
      field,
      count,
      itemType,
    });
  }
  if (itemType === "array") {
    const items: GgufArray[] = [];
    for (let i = 0; i < count; i++) items.push(readArray(c, `${field}[${i}]`, depth + 1));
    return { type: "array", itemType: "array", value: items };
  }
  const values: unknown[] = new Array(count);
  for (let i = 0; i < count; i++) values[i] = readScalar(c, itemType, field).value;
  return { type: "array", itemType, value: values } as GgufArray;
}

function readValue(c: Cursor, field: string): GgufValue {
  const type = readValueType(c, field);
  if (type === "array") return readArray(c, field, 1);
  return readScalar(c, type, field);
}

/**
 * Parses a GGUF header from a byte source. Throws FormatError (`gguf.*`) on anything malformed:
 * bad magic, unsupported version or big-endian file, counts/lengths over the limits above, unknown value or
 * tensor types, duplicate keys or tensor names, bad alignment, more than 4 dims, ne[0] not a multiple of the
 * type's block size, offsets unaligned, overlapping or past the end of the file.
 */
function parseFrom(src: ByteSource, file: string): GgufHeader {
  const c = new Cursor(src, file);
  const magic = c.u32("magic");
  if (magic !== GGUF_MAGIC) {
    fail(file, "bad_magic", `not a GGUF file: ${file} starts with 0x${magic.toString(16).padStart(8, "0")}, expected "GGUF"`, { got: magic }, "check the path; GGUF files start with the bytes GGUF");
  }
  const version = c.u32("version");
  if (!GGUF_READABLE_VERSIONS.includes(version)) {
    const swapped = ((version & 0xff) << 24) | ((version >>> 8) & 0xff) << 16 | ((version >>> 16) & 0xff) << 8 | (version >>> 24);
    if (GGUF_READABLE_VERSIONS.includes(swapped >>> 0)) {
      fail(file, "big_endian", `GGUF version in ${file}: got a big-endian file, expected little-endian`, { got: version }, "convert it with gguf-py's gguf_convert_endian.py");
    }
    fail(file, "unsupported_version", `GGUF version in ${file}: got ${version}, expected 2 or 3`, { got: version }, version === 1 ? "GGUF v1 files are obsolete; re-convert the model" : undefined);
  }
  const tensorCount = c.boundedU64("tensor_count", MAX_TENSOR_COUNT);
  const kvCount = c.boundedU64("kv_count", MAX_KV_COUNT);

  const metadata: GgufMetadata = new Map();
  for (let i = 0; i < kvCount; i++) {
    const keyAt = c.pos;
    const key = c.string(`key #${i}`, MAX_KEY_BYTES);
    if (metadata.has(key)) {
      fail(file, "duplicate_key", `metadata key "${key}" in ${file} at offset ${keyAt}: got it twice, expected each key once`, { key, offset: keyAt });
    }
    metadata.set(key, readValue(c, key));
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const alignValue = metadata.get(KEYS.general.alignment);
  if (alignValue !== undefined) {
    if (alignValue.type !== "u32") {
      fail(file, "bad_alignment", `${KEYS.general.alignment} in ${file}: got type ${alignValue.type}, expected u32`, { got: alignValue.type });
    }
    const a = alignValue.value;
    if (a === 0 || (a & (a - 1)) !== 0 || a > MAX_ALIGNMENT) {
      fail(file, "bad_alignment", `${KEYS.general.alignment} in ${file}: got ${a}, expected a power of two ≤ ${MAX_ALIGNMENT}`, { got: a });
    }
    alignment = a;
  }

  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const at = c.pos;
    const name = c.string(`tensor #${i} name`, MAX_STRING_BYTES);
    const nameBytes = Buffer.byteLength(name, "utf8");
    if (nameBytes > GGML_MAX_NAME_BYTES) {
      fail(file, "bad_tensor_name", `tensor #${i} name in ${file}: got ${nameBytes} bytes, expected at most ${GGML_MAX_NAME_BYTES}`, { tensor: name, offset: at });
    }
    if (names.has(name)) {
      fail(file, "duplicate_tensor", `tensor ${name} in ${file}: got it twice, expected each name once`, { tensor: name, offset: at });
    }
    names.add(name);
    const nDims = c.u32(`tensor ${name} n_dims`);
    if (nDims < 1 || nDims > GGML_MAX_DIMS) {
      fail(file, "bad_dims", `dimension count of tensor ${name} in ${file}: got ${nDims}, expected 1–${GGML_MAX_DIMS}`, { tensor: name, got: nDims });
    }
    const shape: number[] = [];
    let elementCount = 1;
    for (let d = 0; d < nDims; d++) {
      const ne = c.boundedU64(`tensor ${name} dim ${d}`, Number.MAX_SAFE_INTEGER);
      shape.push(ne);
      elementCount *= ne;
      if (elementCount > Number.MAX_SAFE_INTEGER) {
        fail(file, "bad_dims", `element count of tensor ${name} in ${file}: got more than 2^53, expected a real tensor`, { tensor: name, shape });
      }
    }
    const typeId = c.u32(`tensor ${name} type`);
    const row = ggmlTypeById(typeId);
    if (row === undefined) {
      fail(file, "unknown_tensor_type", `ggml type of tensor ${name} in ${file}: got id ${typeId}, expected a known ggml type`, { tensor: name, got: typeId }, "this GGUF uses a tensor type newer than realign knows");
    }
    if (shape[0]! % row.blockSize !== 0) {
      fail(file, "bad_dims", `first dimension of tensor ${name} (${row.name}) in ${file}: got ${shape[0]}, expected a multiple of the block size ${row.blockSize}`, { tensor: name, shape, type: row.name });
    }
    const offset = c.boundedU64(`tensor ${name} offset`, Number.MAX_SAFE_INTEGER);
    if (offset % alignment !== 0) {
      fail(file, "bad_offset", `data offset of tensor ${name} in ${file}: got ${offset}, expected a multiple of the alignment ${alignment}`, { tensor: name, got: offset, alignment });
    }
    const byteLength = (elementCount / row.blockSize) * row.typeSize;
    tensors.push({ name, shape, type: row.name, offset, byteLength, elementCount });
  }

  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const dataBytes = src.size - dataOffset;
  const byOffset = [...tensors].sort((a, b) => a.offset - b.offset);
  let end = 0;
  let prev: GgufTensorInfo | undefined;
  for (const t of byOffset) {
    if (t.offset < end) {
      fail(file, "overlapping_tensors", `data of tensor ${t.name} in ${file}: got offset ${t.offset} inside ${prev!.name} (ends at ${end}), expected non-overlapping tensors`, { tensor: t.name, other: prev!.name, offset: t.offset });
    }
    if (t.offset + t.byteLength > dataBytes) {
      fail(file, "truncated", `data of tensor ${t.name} in ${file}: got ${Math.max(0, dataBytes - t.offset)} bytes in the file, expected ${t.byteLength}`, {
        tensor: t.name,
        offset: t.offset,
        byteLength: t.byteLength,
        fileSize: src.size,
      });
    }
    end = t.offset + t.byteLength;
    prev = t;
  }
  return { file, version, metadata, tensors, alignment, dataOffset, fileSize: src.size };
}

/** Parses a GGUF header held in memory (tests, small files). `label` names it in errors. */
export function parseGgufHeader(bytes: Uint8Array, label = "<bytes>"): GgufHeader {
  return parseFrom({ size: bytes.byteLength, read: (pos, len) => bytes.subarray(pos, pos + len) }, label);
}

/**
 * Reads and validates the header of the GGUF file at `path`, reading only the header's bytes.
 * @throws FormatError (gguf.*) for malformed files; InputError/IoError for filesystem problems.
 */
export function readGgufHeader(path: string): GgufHeader {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw fsError(e, path, "opening GGUF");
  }
  try {
    const size = fstatSync(fd).size;
    return parseFrom(
      {
        size,
        read(pos, len) {
          const buf = Buffer.allocUnsafe(len);
          let got = 0;
          while (got < len) {
            const n = readSync(fd, buf, got, len - got, pos + got);
            if (n === 0) break;
            got += n;
          }
          return buf.subarray(0, got);
        },
      },
      path,
    );
  } finally {
    closeSync(fd);
  }
}

/** Looks up a tensor by name; FormatError naming the file if absent. */
export function findGgufTensor(header: GgufHeader, name: string): GgufTensorInfo {
  const t = header.tensors.find((x) => x.name === name);
  if (t === undefined) {
    throw new FormatError("gguf.missing_tensor", `tensor ${name} in ${header.file}: got no such tensor, expected it to be present`, { details: { file: header.file, tensor: name } });
  }
  return t;
}

/**
 * Reads `byteLength` bytes of a tensor's data starting `byteStart` bytes into it (default: all of it).
 * The header's checks guarantee the range lies inside the file.
 */
export function readGgufTensorBytes(header: GgufHeader, tensor: GgufTensorInfo, byteStart = 0, byteLength = tensor.byteLength - byteStart): Uint8Array {
  if (byteStart < 0 || byteLength < 0 || byteStart + byteLength > tensor.byteLength) {
    throw new RangeError(`range [${byteStart}, ${byteStart + byteLength}) outside tensor ${tensor.name} (${tensor.byteLength} bytes)`);
  }
  let fd: number;
  try {
    fd = openSync(header.file, "r");
  } catch (e) {
    throw fsError(e, header.file, "opening GGUF");
  }
  try {
    const buf = Buffer.allocUnsafe(byteLength);
    const pos = header.dataOffset + tensor.offset + byteStart;
    let got = 0;
    while (got < byteLength) {
      const n = readSync(fd, buf, got, byteLength - got, pos + got);
      if (n === 0) {
        throw new FormatError("gguf.truncated", `data of tensor ${tensor.name} in ${header.file}: file shrank while reading`, { details: { file: header.file, tensor: tensor.name } });
      }
      got += n;
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, byteLength);
  } finally {
    closeSync(fd);
  }
}

/** The value of a metadata key as a JS value (number, bigint, boolean, string or array), or undefined. */
export function ggufValue(header: { metadata: GgufMetadata }, key: string): unknown {
  return header.metadata.get(key)?.value;
}

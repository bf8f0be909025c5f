/**
 * GGUF v3 writer as a state machine (after gguf-py's GGUFWriter): EMPTY → HEADER → KV → TENSOR_INFOS →
 * WEIGHTS → CLOSED. Each call checks the state it expects and says what it got. Tensor sizes are known from
 * shape and type up front, so tensor infos (with offsets) precede the data and the data is streamed: a
 * tensor may be written in any number of chunks and big tensors never need to be in memory.
 *
 * Layout (GGUF spec): magic, u32 version, u64 tensor_count, u64 kv_count, KV pairs, tensor infos, zero
 * padding to `general.alignment` (default 32), then each tensor's data followed by zero padding to the
 * alignment (as gguf-py and gguf.cpp write it).
 */
import { close as closeCb, closeSync, fsync as fsyncCb, fsyncSync, openSync, write as writeCb, writeSync } from "node:fs";
import { openDirectFile, type DirectFile } from "../../core/direct-file.ts";
import { InternalError, fsError } from "../../errors.ts";
import { GGML_MAX_DIMS, GGML_MAX_NAME_BYTES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VALUE_TYPE_ID, GGUF_VERSION, KEYS, ggmlType } from "./constants.ts";
import type { GgufArray, GgufMetadata, GgufTensorDecl, GgufValue } from "./types.ts";

/** Grows a byte buffer for the header. */
class ByteBuilder {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private readonly encoder = new TextEncoder();

  private reserve(n: number): number {
    if (this.length + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.length + n) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  u8(v: number): void {
    const at = this.reserve(1);
    this.view.setUint8(at, v);
  }
  i8(v: number): void {
    const at = this.reserve(1);
    this.view.setInt8(at, v);
  }
  u16(v: number): void {
    const at = this.reserve(2);
    this.view.setUint16(at, v, true);
  }
  i16(v: number): void {
    const at = this.reserve(2);
    this.view.setInt16(at, v, true);
  }
  u32(v: number): void {
    const at = this.reserve(4);
    this.view.setUint32(at, v, true);
  }
  i32(v: number): void {
    const at = this.reserve(4);
    this.view.setInt32(at, v, true);
  }
  f32(v: number): void {
    const at = this.reserve(4);
    this.view.setFloat32(at, v, true);
  }
  f64(v: number): void {
    const at = this.reserve(8);
    this.view.setFloat64(at, v, true);
  }
  u64(v: number | bigint): void {
    const at = this.reserve(8);
    if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) {
      // two u32 halves: no BigInt per string length (tokenizer arrays write hundreds of thousands)
      this.view.setUint32(at, v % 0x100000000, true);
      this.view.setUint32(at + 4, Math.floor(v / 0x100000000), true);
    } else {
      this.view.setBigUint64(at, BigInt(v), true);
    }
  }
  i64(v: bigint): void {
    const at = this.reserve(8);
    this.view.setBigInt64(at, v, true);
  }
  string(s: string): void {
    // UTF-8 straight into the buffer (at most 3 bytes per UTF-16 unit), length patched in front.
    const lenAt = this.reserve(8);
    const max = s.length * 3;
    const at = this.reserve(max);
    const { written } = this.encoder.encodeInto(s, this.buf.subarray(at, at + max));
    this.length = at + written;
    this.view.setUint32(lenAt, written, true);
    this.view.setUint32(lenAt + 4, 0, true);
  }
  zeros(n: number): void {
    const at = this.reserve(n);
    this.buf.fill(0, at, this.length);
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function writeScalar(b: ByteBuilder, type: string, v: unknown): void {
  switch (type) {
    case "u8":
      return b.u8(v as number);
    case "i8":
      return b.i8(v as number);
    case "u16":
      return b.u16(v as number);
    case "i16":
      return b.i16(v as number);
    case "u32":
      return b.u32(v as number);
    case "i32":
      return b.i32(v as number);
    case "f32":
      return b.f32(v as number);
    case "f64":
      return b.f64(v as number);
    case "u64":
      return b.u64(v as bigint);
    case "i64":
      return b.i64(v as bigint);
    case "bool":
      return b.u8(v ? 1 : 0);
    case "string":
      return b.string(v as string);
  }
  throw new InternalError(`gguf writer: unknown scalar type ${type}`);
}

function writeArrayBody(b: ByteBuilder, a: GgufArray): void {
  b.u32(GGUF_VALUE_TYPE_ID[a.itemType]);
  b.u64(a.value.length);
  if (a.itemType === "array") {
    for (const item of a.value) writeArrayBody(b, item);
  } else {
    for (const item of a.value as unknown[]) writeScalar(b, a.itemType, item);
  }
}

function writeValue(b: ByteBuilder, v: GgufValue): void {
  b.u32(GGUF_VALUE_TYPE_ID[v.type]);
  if (v.type === "array") writeArrayBody(b, v);
  else writeScalar(b, v.type, v.value);
}

/** Serializes KV pairs exactly as they appear in a file (no padding). */
export function serializeGgufKv(metadata: GgufMetadata): Uint8Array {
  const b = new ByteBuilder();
  for (const [key, value] of metadata) {
    b.string(key);
    writeValue(b, value);
  }
  return b.bytes();
}

/** Bytes of a tensor's data from its ggml shape and type (shape[0] must be a multiple of the block size). */
export function ggufTensorByteLength(decl: GgufTensorDecl): number {
  const row = ggmlType(decl.type);
  const n = decl.shape.reduce((a, b) => a * b, 1);
  if (decl.shape[0]! % row.blockSize !== 0) {
    throw new InternalError(`tensor ${decl.name}: ne[0]=${decl.shape[0]} is not a multiple of ${decl.type}'s block size ${row.blockSize}`);
  }
  return (n / row.blockSize) * row.typeSize;
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** The file layout the writer will produce: tensor offsets (relative to data), data start and total size. */
export interface GgufLayout {
  alignment: number;
  offsets: number[];
  byteLengths: number[];
  dataOffset: number;
  fileSize: number;
}

/** Alignment requested by the metadata (`general.alignment` u32) or the default 32. */
export function alignmentOf(metadata: GgufMetadata): number {
  const v = metadata.get(KEYS.general.alignment);
  return v !== undefined && v.type === "u32" ? v.value : GGUF_DEFAULT_ALIGNMENT;
}

const STATES = ["empty", "header", "kv", "tensor_infos", "weights", "closed"] as const;
type WriterState = (typeof STATES)[number];

/**
 * Streams one GGUF file. Usage:
 * `w = GgufWriter.create(path); w.writeHeader(tensors.length, metadata.size); w.writeKv(metadata);
 *  w.writeTensorInfos(tensors); for each tensor in order: w.writeTensorData(name, chunk)…; w.close()`.
 * On error call `abort()` (closes the file; the caller owns removing the temp path — see core/files.ts).
 *
 * `GgufWriter.createDirect(path)` writes through O_DIRECT instead (core/direct-file.ts: appended in order,
 * bypassing the page cache), for a durable streamed write: only `writeTensorDataAsync` and `closeAsync`
 * then (the synchronous `writeTensorData`/`close` throw InternalError).
 */
export class GgufWriter {
  private state: WriterState = "empty";
  private header = new ByteBuilder();
  private tensorCount = 0;
  private kvCount = 0;
  private alignment = GGUF_DEFAULT_ALIGNMENT;
  private decls: GgufTensorDecl[] = [];
  private byteLengths: number[] = [];
  private current = 0;
  private writtenInCurrent = 0;
  private out = new Uint8Array(1 << 20);
  private outLen = 0;
  /** Bytes handed to the OS or buffered (the logical end of the file so far). */
  private position = 0;
  /** File offset of the next raw write (every write is positioned, so sync and async writes mix). */
  private filePos = 0;
  /** O_DIRECT mode: the file, and the chain of its in-order appends. */
  private direct: DirectFile | undefined;
  private appends: Promise<void> = Promise.resolve();

  private constructor(
    private fd: number,
    readonly path: string,
  ) {}

  /**
   * Opens (creates or truncates) `path` for a streamed write through O_DIRECT (falls back to buffered
   * writes where the file system refuses it). @throws IoError/InputError (fsError) when it cannot be created.
   */
  static async createDirect(path: string): Promise<GgufWriter> {
    let file: DirectFile;
    try {
      file = await openDirectFile(path);
    } catch (e) {
      throw fsError(e, path, "creating GGUF");
    }
    const w = new GgufWriter(-1, path);
    w.direct = file;
    return w;
  }

  /** O_DIRECT mode: appends `bytes` after every earlier append (copied by the time it settles). */
  private append(bytes: Uint8Array): Promise<void> {
    const file = this.direct!;
    this.appends = this.appends.then(() =>
      file.write(bytes).catch((e: unknown) => {
        throw fsError(e, this.path, "writing GGUF");
      }),
    );
    return this.appends;
  }

  /** Opens (creates or truncates) `path` for writing. */
  static create(path: string): GgufWriter {
    try {
      return new GgufWriter(openSync(path, "w"), path);
    } catch (e) {
      throw fsError(e, path, "creating GGUF");
    }
  }

  private expect(...allowed: WriterState[]): void {
    if (!allowed.includes(this.state)) {
      throw new InternalError(`gguf writer for ${this.path}: got a call in state ${this.state}, expected state ${allowed.join(" or ")}`);
    }
  }

  private emit(bytes: Uint8Array): void {
    if (bytes.length >= this.out.length) {
      this.flush();
      this.rawWrite(bytes);
      return;
    }
    if (this.outLen + bytes.length > this.out.length) this.flush();
    this.out.set(bytes, this.outLen);
    this.outLen += bytes.length;
    this.position += bytes.length;
  }
  private emitZeros(n: number): void {
    if (n > 0) this.emit(new Uint8Array(n));
  }
  private rawWrite(bytes: Uint8Array): void {
    if (this.direct !== undefined) {
      // the header, flushed before the first tensor chunk: a copy, since `out` is reused
      this.append(bytes.slice()).catch(() => {}); // a failure surfaces through the next append or closeAsync
      this.filePos += bytes.length;
      this.position += bytes.length;
      return;
    }
    let done = 0;
    try {
      while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done, this.filePos + done);
    } catch (e) {
      throw fsError(e, this.path, "writing GGUF");
    }
    this.filePos += bytes.length;
    this.position += bytes.length;
  }
  /** Positioned write of all of `bytes` at `pos` on the libuv thread pool (loops over short writes). */
  private writeAtAsync(bytes: Uint8Array, pos: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const step = (done: number): void => {
        if (done === bytes.length) return resolve();
        writeCb(this.fd, bytes, done, bytes.length - done, pos + done, (err, n) => {
          if (err) reject(fsError(err, this.path, "writing GGUF"));
          else step(done + n);
        });
      };
      step(0);
    });
  }
  private flush(): void {
    if (this.outLen === 0) return;
    const pending = this.out.subarray(0, this.outLen);
    this.position -= this.outLen; // rawWrite re-adds
    this.outLen = 0;
    this.rawWrite(pending);
  }

  /** EMPTY → HEADER: magic, version 3 and the two counts. */
  writeHeader(tensorCount: number, kvCount: number): void {
    this.expect("empty");
    this.tensorCount = tensorCount;
    this.kvCount = kvCount;
    this.header.u32(GGUF_MAGIC);
    this.header.u32(GGUF_VERSION);
    this.header.u64(tensorCount);
    this.header.u64(kvCount);
    this.state = "header";
  }

  /** HEADER → KV: all metadata pairs (the count must match writeHeader's). Reads `general.alignment`. */
  writeKv(metadata: GgufMetadata): void {
    this.expect("header");
    if (metadata.size !== this.kvCount) {
      throw new InternalError(`gguf writer for ${this.path}: got ${metadata.size} KV pairs, expected ${this.kvCount} as declared`);
    }
    const align = metadata.get(KEYS.general.alignment);
    if (align !== undefined) {
      if (align.type !== "u32" || align.value === 0 || (align.value & (align.value - 1)) !== 0) {
        throw new InternalError(`gguf writer for ${this.path}: general.alignment must be a u32 power of two`);
      }
      this.alignment = align.value;
    }
    for (const [key, value] of metadata) {
      this.header.string(key);
      writeValue(this.header, value);
    }
    this.state = "kv";
  }

  /**
   * KV → TENSOR_INFOS: names, ggml shapes, types and offsets (computed here, each aligned), then padding;
   * the whole header is written to disk. Returns the layout. Duplicate names are a bug of the caller.
   */
  writeTensorInfos(decls: GgufTensorDecl[]): GgufLayout {
    this.expect("kv");
    if (decls.length !== this.tensorCount) {
      throw new InternalError(`gguf writer for ${this.path}: got ${decls.length} tensor infos, expected ${this.tensorCount} as declared`);
    }
    const seen = new Set<string>();
    const offsets: number[] = [];
    let offset = 0;
    for (const d of decls) {
      if (seen.has(d.name)) throw new InternalError(`gguf writer for ${this.path}: duplicate tensor ${d.name}`);
      if (Buffer.byteLength(d.name) > GGML_MAX_NAME_BYTES || d.shape.length < 1 || d.shape.length > GGML_MAX_DIMS) {
        throw new InternalError(`gguf writer for ${this.path}: tensor ${d.name} has a name over ${GGML_MAX_NAME_BYTES} bytes or ${d.shape.length} dims (llama.cpp refuses both)`);
      }
      seen.add(d.name);
      const len = ggufTensorByteLength(d);
      this.header.string(d.name);
      this.header.u32(d.shape.length);
      for (const ne of d.shape) this.header.u64(ne);
      this.header.u32(ggmlType(d.type).id);
      this.header.u64(offset);
      offsets.push(offset);
      this.byteLengths.push(len);
      offset = alignUp(offset + len, this.alignment);
    }
    const dataOffset = alignUp(this.header.length, this.alignment);
    this.header.zeros(dataOffset - this.header.length);
    this.emit(this.header.bytes());
    this.header = new ByteBuilder();
    this.decls = decls;
    this.state = "tensor_infos";
    this.skipEmptyTensors();
    return { alignment: this.alignment, offsets, byteLengths: [...this.byteLengths], dataOffset, fileSize: dataOffset + offset };
  }

  private skipEmptyTensors(): void {
    while (this.current < this.decls.length && this.byteLengths[this.current] === 0) this.current++;
  }

  /** Name of the tensor whose data is expected next, or undefined when all are written. */
  get nextTensor(): string | undefined {
    return this.decls[this.current]?.name;
  }

  /** Checks that `chunk` continues the current tensor `name`; returns that tensor's byte length. */
  private checkChunk(name: string, chunk: Uint8Array): number {
    this.expect("tensor_infos", "weights");
    const decl = this.decls[this.current];
    if (decl === undefined || decl.name !== name) {
      throw new InternalError(`gguf writer for ${this.path}: got data for ${name}, expected ${decl?.name ?? "no more tensors"}`);
    }
    const len = this.byteLengths[this.current]!;
    if (this.writtenInCurrent + chunk.length > len) {
      throw new InternalError(`gguf writer for ${this.path}: tensor ${name} got ${this.writtenInCurrent + chunk.length} bytes, expected ${len}`);
    }
    return len;
  }

  /** Bookkeeping after a chunk of `len`-byte tensor: returns the padding owed when the tensor is complete. */
  private advance(chunkLength: number, len: number): number {
    this.writtenInCurrent += chunkLength;
    this.state = "weights";
    if (this.writtenInCurrent !== len) return 0;
    this.current++;
    this.writtenInCurrent = 0;
    this.skipEmptyTensors();
    return alignUp(len, this.alignment) - len;
  }

  /**
   * TENSOR_INFOS/WEIGHTS → WEIGHTS: appends a chunk of the current tensor's data (tensors in declared
   * order). When a tensor is complete, its padding is written and the next one becomes current.
   */
  writeTensorData(name: string, chunk: Uint8Array): void {
    if (this.direct !== undefined) throw new InternalError(`gguf writer for ${this.path}: writeTensorData on an O_DIRECT writer (use writeTensorDataAsync)`);
    const len = this.checkChunk(name, chunk);
    this.emit(chunk);
    this.emitZeros(this.advance(chunk.length, len));
  }

  /**
   * As writeTensorData, but the bytes go out as a positioned write on the thread pool (write-behind): the
   * order checks and file positions are settled now, in call order, so several calls may be in flight.
   * `chunk` must stay unchanged until the returned promise settles. Buffered header bytes are flushed first
   * (synchronously). Await every returned promise before `closeAsync`.
   * @throws InternalError (synchronously) for a chunk out of order; the promise rejects with IoError.
   */
  writeTensorDataAsync(name: string, chunk: Uint8Array): Promise<void> {
    const len = this.checkChunk(name, chunk);
    this.flush();
    const at = this.filePos;
    const pad = this.advance(chunk.length, len);
    this.filePos += chunk.length + pad;
    this.position += chunk.length + pad;
    if (this.direct !== undefined) {
      const data = this.append(chunk);
      return pad === 0 ? data : this.append(new Uint8Array(pad));
    }
    const data = this.writeAtAsync(chunk, at);
    return pad === 0 ? data : Promise.all([data, this.writeAtAsync(new Uint8Array(pad), at + chunk.length)]).then(() => undefined);
  }

  private checkComplete(): void {
    this.expect("tensor_infos", "weights");
    if (this.current < this.decls.length) {
      throw new InternalError(`gguf writer for ${this.path}: closed with tensor ${this.decls[this.current]!.name} incomplete (${this.writtenInCurrent}/${this.byteLengths[this.current]} bytes)`);
    }
  }

  /**
   * WEIGHTS → CLOSED: flushes, fsyncs (the data is on disk before the caller renames it into place; skipped
   * with `fsync: false`) and closes; every declared tensor must be complete.
   */
  close(options: { readonly fsync?: boolean } = {}): void {
    if (this.direct !== undefined) throw new InternalError(`gguf writer for ${this.path}: close on an O_DIRECT writer (use closeAsync)`);
    this.checkComplete();
    this.flush();
    try {
      if (options.fsync ?? true) fsyncSync(this.fd);
    } catch (e) {
      throw fsError(e, this.path, "syncing GGUF");
    }
    closeSync(this.fd);
    this.state = "closed";
  }

  /** As close, with the fsync and close on the thread pool. Call after every writeTensorDataAsync settled. */
  async closeAsync(options: { readonly fsync?: boolean } = {}): Promise<void> {
    this.checkComplete();
    this.flush();
    const file = this.direct;
    if (file !== undefined) {
      await this.appends;
      try {
        if (options.fsync ?? true) await file.sync();
        await file.close();
      } catch (e) {
        throw fsError(e, this.path, "syncing GGUF");
      }
      this.state = "closed";
      return;
    }
    if (options.fsync ?? true) {
      await new Promise<void>((resolve, reject) => fsyncCb(this.fd, (err) => (err ? reject(fsError(err, this.path, "syncing GGUF")) : resolve())));
    }
    this.state = "closed";
    await new Promise<void>((resolve, reject) => closeCb(this.fd, (err) => (err ? reject(fsError(err, this.path, "closing GGUF")) : resolve())));
  }

  /** Closes the file without checks (after an error). Idempotent. */
  abort(): void {
    if (this.state === "closed") return;
    if (this.direct !== undefined) {
      this.state = "closed";
      void this.appends.catch(() => {}).then(() => this.direct!.abort());
      return;
    }
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    this.state = "closed";
  }

  /** Bytes handed to the OS or buffered so far. */
  get bytesWritten(): number {
    return this.position;
  }
}

/**
 * Writes a complete GGUF file at `path` (no atomicity: pass a temp path from core/files.ts):
 * metadata, tensor infos for `tensors` (in order), then each tensor's data pulled from `dataFor` in
 * chunks. Returns the layout written.
 */
export async function writeGgufFile(
  path: string,
  metadata: GgufMetadata,
  tensors: GgufTensorDecl[],
  dataFor: (tensor: GgufTensorDecl, index: number) => AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): Promise<GgufLayout> {
  const w = GgufWriter.create(path);
  try {
    w.writeHeader(tensors.length, metadata.size);
    w.writeKv(metadata);
    const layout = w.writeTensorInfos(tensors);
    for (let i = 0; i < tensors.length; i++) {
      for await (const chunk of dataFor(tensors[i]!, i)) w.writeTensorData(tensors[i]!.name, chunk);
    }
    w.close();
    return layout;
  } catch (e) {
    w.abort();
    throw e;
  }
}

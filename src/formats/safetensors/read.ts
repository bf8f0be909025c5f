/**
 * Reading safetensors files: header first (validated before any data byte is read), then positioned reads
 * of one tensor or one chunk at a time. Nothing maps or loads a whole file.
 */
import { open, type FileHandle } from "node:fs/promises";
import { decodeToF32, DTYPE_BYTES } from "../../core/dtype.ts";
import { numelOf, type TensorSource } from "../../core/tensor.ts";
import { FormatError, InternalError, fsError } from "../../errors.ts";
import { parseHeaderJson, parseHeaderLength, type SafetensorsHeader, type SafetensorsTensorInfo } from "./header.ts";

/** An open safetensors file with its validated header. Close it when done. */
export interface SafetensorsFile {
  readonly path: string;
  readonly fileSize: number;
  readonly header: SafetensorsHeader;
  /** Tensor entries by name. */
  readonly byName: ReadonlyMap<string, SafetensorsTensorInfo>;
  /**
   * Reads exactly `out.length` bytes at absolute file position `position` (loops over short reads).
   * @throws FormatError `safetensors.truncated` if the file ends first; IoError on read failure.
   */
  readAt(position: number, out: Uint8Array): Promise<void>;
  /** The open file's descriptor (valid until `close`). */
  readonly fd: number;
  /** A chunked float32 reader for tensor `name`. */
  tensor(name: string): TensorSource;
  /**
   * Scratch byte buffers shared by this file's tensor readers (reused across tensors so streaming a model
   * allocates O(1) buffers). `take` returns a buffer of at least `n` bytes; `give` returns it to the pool.
   */
  takeScratch(n: number): Uint8Array;
  giveScratch(buf: Uint8Array): void;
  close(): Promise<void>;
}

/**
 * Opens `path`, reads and validates its header (see header.ts), and returns a handle for positioned reads.
 * @throws InputError `fs.not_found` etc. (via fsError); FormatError `safetensors.*` for a malformed header.
 */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (e) {
    throw fsError(e, path, "opening safetensors file");
  }
  try {
    const fileSize = (await fh.stat()).size;
    const readAt = async (position: number, out: Uint8Array): Promise<void> => {
      let done = 0;
      while (done < out.length) {
        let n: number;
        try {
          ({ bytesRead: n } = await fh.read(out, done, out.length - done, position + done));
        } catch (e) {
          throw fsError(e, path, "reading safetensors file");
        }
        if (n === 0) {
          throw new FormatError("safetensors.truncated", `file ended early in ${path}: wanted ${out.length} bytes at ${position}, got ${done}`, {
            details: { file: path, position, got: done, expected: out.length },
            hint: "the file is truncated; re-download or re-save it",
          });
        }
        done += n;
      }
    };
    const prefix = new Uint8Array(Math.min(8, fileSize));
    await readAt(0, prefix);
    const n = parseHeaderLength(prefix, fileSize, path);
    const json = new Uint8Array(n);
    await readAt(8, json);
    const header = parseHeaderJson(json, n, fileSize, path);
    const byName = new Map(header.tensors.map((t) => [t.name, t]));
    let closed = false;
    const pool: Uint8Array[] = [];
    const file: SafetensorsFile = {
      path,
      fileSize,
      header,
      byName,
      readAt,
      fd: fh.fd,
      tensor(name) {
        const info = byName.get(name);
        if (info === undefined) throw new InternalError(`tensor ${name} not in ${path}`);
        return tensorSource(file, info);
      },
      takeScratch(n) {
        const i = pool.findIndex((b) => b.length >= n);
        if (i >= 0) return pool.splice(i, 1)[0]!;
        if (pool.length > 0) pool.pop(); // drop a too-small buffer rather than keep growing the pool
        return new Uint8Array(n);
      },
      giveScratch(buf) {
        if (pool.length < 4) pool.push(buf);
      },
      async close() {
        if (closed) return;
        pool.length = 0;
        closed = true;
        await fh.close();
      },
    };
    return file;
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** Reads and validates only the header of `path` (opens and closes the file). */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const f = await openSafetensors(path);
  await f.close();
  return f.header;
}

/**
 * A TensorSource over one tensor of an open file. `read` does one positioned read of the chunk's bytes into
 * a scratch buffer from the file's pool and decodes it with core/dtype.
 */
export function tensorSource(file: SafetensorsFile, info: SafetensorsTensorInfo): TensorSource {
  const elemBytes = DTYPE_BYTES[info.dtype];
  const numel = numelOf(info.shape);
  return {
    name: info.name,
    dtype: info.dtype,
    shape: info.shape,
    async read(offsetElems, countElems, out) {
      if (offsetElems < 0 || countElems < 0 || offsetElems + countElems > numel || out.length < countElems) {
        throw new InternalError(`read of ${info.name} out of range: [${offsetElems}, +${countElems}) of ${numel}`);
      }
      const byteLength = countElems * elemBytes;
      const scratch = file.takeScratch(byteLength);
      try {
        const bytes = scratch.subarray(0, byteLength);
        await file.readAt(info.byteOffset + offsetElems * elemBytes, bytes);
        decodeToF32(info.dtype, bytes, out, countElems);
      } finally {
        file.giveScratch(scratch);
      }
    },
    async readBytes(byteOffset, out) {
      if (byteOffset < 0 || byteOffset + out.length > info.byteLength) {
        throw new InternalError(`byte read of ${info.name} out of range: [${byteOffset}, +${out.length}) of ${info.byteLength}`);
      }
      await file.readAt(info.byteOffset + byteOffset, out);
    },
    fileSpan: { fd: file.fd, offset: info.byteOffset },
  };
}

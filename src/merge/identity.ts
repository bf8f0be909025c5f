/**
 * Cheap, honest identities for input weight files, recorded in the model card.
 *
 * When a model's weight files total at most FULL_HASH_MAX_BYTES they are hashed whole: `sha256` equals
 * `sha256sum` and the Hugging Face LFS oid, so anyone can verify it. Larger models would cost a full extra
 * read (seconds per GB), so their files get `sampled-sha256`: SHA-256 of the file's first 8 + N bytes (length prefix + JSON header:
 * every tensor's name, dtype, shape and offsets) followed by SAMPLE_WINDOWS windows of SAMPLE_BYTES of the data
 * section, window k starting at data offset floor(k·(D − SAMPLE_BYTES)/(SAMPLE_WINDOWS − 1)) (D = data bytes),
 * plus the byte size. It costs 1 MiB of reads per file and tells an aligned model from its fine-tune (whose
 * headers are identical), but it does not prove every weight; the card says so.
 */
import { createHash } from "node:crypto";
import { open, stat } from "node:fs/promises";
import { basename } from "node:path";
import { fsError } from "../errors.ts";

/** Models whose weight files total at most this are hashed whole (covers small models and the organism). */
export const FULL_HASH_MAX_BYTES = 256 * 2 ** 20;
/** Sampled identity: 16 windows of 64 KiB spread evenly over the data section. */
export const SAMPLE_WINDOWS = 16;
export const SAMPLE_BYTES = 64 * 2 ** 10;

/** How one input file is identified in the model card. */
export interface FileIdentity {
  readonly file: string;
  readonly byteLength: number;
  /** "sha256" (whole file) or "sampled-sha256" (header + evenly spaced data windows). */
  readonly kind: "sha256" | "sampled-sha256";
  readonly hex: string;
}

/**
 * Identity of one safetensors file (see module doc): the whole-file SHA-256 when `full`, else the SHA-256 of
 * its length prefix and header.
 * @throws InputError/IoError via fsError when unreadable.
 */
export async function fileIdentity(path: string, options: { full: boolean; signal?: AbortSignal }): Promise<FileIdentity> {
  const signal = options.signal;
  let fh;
  try {
    fh = await open(path, "r");
  } catch (e) {
    throw fsError(e, path, "hashing input");
  }
  try {
    const size = (await fh.stat()).size;
    const hash = createHash("sha256");
    const readRange = async (start: number, end: number, buf: Buffer): Promise<void> => {
      let pos = start;
      while (pos < end) {
        signal?.throwIfAborted();
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
    };
    let kind: FileIdentity["kind"] = "sha256";
    if (options.full) {
      await readRange(0, size, Buffer.alloc(Math.max(1, Math.min(size, 4 * 2 ** 20))));
    } else {
      kind = "sampled-sha256";
      const prefix = Buffer.alloc(8);
      await fh.read(prefix, 0, 8, 0);
      const dataStart = Math.min(size, 8 + Number(prefix.readBigUInt64LE(0)));
      const buf = Buffer.alloc(SAMPLE_BYTES);
      await readRange(0, dataStart, buf);
      const dataBytes = size - dataStart;
      if (dataBytes <= SAMPLE_WINDOWS * SAMPLE_BYTES) {
        await readRange(dataStart, size, buf);
      } else {
        for (let k = 0; k < SAMPLE_WINDOWS; k++) {
          const start = dataStart + Math.floor((k * (dataBytes - SAMPLE_BYTES)) / (SAMPLE_WINDOWS - 1));
          await readRange(start, start + SAMPLE_BYTES, buf);
        }
      }
    }
    return { file: basename(path), byteLength: size, kind, hex: hash.digest("hex") };
  } catch (e) {
    if (e instanceof Error && e.name === "AbortError") throw e;
    throw fsError(e, path, "hashing input");
  } finally {
    await fh.close();
  }
}

/** Identities of one model's weight files: whole-file hashes when they total ≤ FULL_HASH_MAX_BYTES. */
export async function modelIdentity(files: readonly string[], signal?: AbortSignal): Promise<FileIdentity[]> {
  let total = 0;
  for (const f of files) {
    try {
      total += (await stat(f)).size;
    } catch (e) {
      throw fsError(e, f, "hashing input");
    }
  }
  const full = total <= FULL_HASH_MAX_BYTES;
  const out: FileIdentity[] = [];
  for (const f of files) out.push(await fileIdentity(f, { full, signal }));
  return out;
}

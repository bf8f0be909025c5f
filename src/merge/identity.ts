/**
 * Cheap, honest identities for input weight files, recorded in the model card.
 *
 * A file of at most FULL_HASH_MAX_BYTES is hashed whole: `sha256` equals `sha256sum` and the Hugging Face
 * LFS oid, so anyone can verify it. Larger files would cost a full extra read of the model (seconds per GB),
 * so they get `header-sha256`: SHA-256 of the file's first 8 + N bytes (length prefix + JSON header: every
 * tensor's name, dtype, shape and offsets) plus the byte size. That identifies the layout, not the values;
 * the card says so.
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { basename } from "node:path";
import { fsError } from "../errors.ts";

/** Files up to this size are hashed whole (covers small models and the organism). */
export const FULL_HASH_MAX_BYTES = 256 * 2 ** 20;

export interface FileIdentity {
  readonly file: string;
  readonly byteLength: number;
  /** "sha256" (whole file) or "header-sha256" (length prefix + header only). */
  readonly kind: "sha256" | "header-sha256";
  readonly hex: string;
}

/**
 * Identity of one safetensors file (see module doc).
 * @throws InputError/IoError via fsError when unreadable.
 */
export async function fileIdentity(path: string, signal?: AbortSignal): Promise<FileIdentity> {
  let fh;
  try {
    fh = await open(path, "r");
  } catch (e) {
    throw fsError(e, path, "hashing input");
  }
  try {
    const size = (await fh.stat()).size;
    const hash = createHash("sha256");
    let end = size;
    let kind: FileIdentity["kind"] = "sha256";
    if (size > FULL_HASH_MAX_BYTES) {
      const prefix = Buffer.alloc(8);
      await fh.read(prefix, 0, 8, 0);
      end = Math.min(size, 8 + Number(prefix.readBigUInt64LE(0)));
      kind = "header-sha256";
    }
    const buf = Buffer.alloc(Math.min(end, 4 * 2 ** 20));
    let pos = 0;
    while (pos < end) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return { file: basename(path), byteLength: size, kind, hex: hash.digest("hex") };
  } catch (e) {
    if (e instanceof Error && e.name === "AbortError") throw e;
    throw fsError(e, path, "hashing input");
  } finally {
    await fh.close();
  }
}

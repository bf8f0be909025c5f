/** Test helper: writes a safetensors file by hand (independent of realign's writer). */
import { writeFileSync } from "node:fs";

export interface RawOut {
  readonly name: string;
  readonly dtype: "F32" | "BF16";
  readonly shape: readonly number[];
  /** F32: float values; BF16: raw 16-bit codes. */
  readonly data: Float32Array | Uint16Array;
}

export function writeRaw(path: string, tensors: readonly RawOut[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    const n = t.data.byteLength;
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + n] };
    off += n;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += " ";
  const buf = Buffer.alloc(8 + json.length + off);
  buf.writeBigUInt64LE(BigInt(json.length), 0);
  buf.write(json, 8, "utf8");
  let pos = 8 + json.length;
  for (const t of tensors) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(buf, pos);
    pos += t.data.byteLength;
  }
  writeFileSync(path, buf);
}

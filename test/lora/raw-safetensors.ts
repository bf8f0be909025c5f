/**
 * Test helper: an independent safetensors reader (whole file in memory, values decoded by hand with
 * DataView) so LoRA tests do not check realign's reader against itself.
 */
import { readFileSync } from "node:fs";

export interface RawTensor {
  readonly dtype: string;
  readonly shape: number[];
  /** Values as float64 numbers (exact for F32/BF16/F16). */
  readonly values: Float64Array;
  /** Raw bytes of the tensor data. */
  readonly bytes: Uint8Array;
}

export interface RawFile {
  readonly names: string[];
  get(name: string): RawTensor;
}

export function bf16Value(h: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, h << 16, true);
  return dv.getFloat32(0, true);
}

function f16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function readRaw(path: string): RawFile {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const start = 8 + n;
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  return {
    names,
    get(name) {
      const h = header[name];
      if (h === undefined) throw new Error(`no tensor ${name} in ${path}`);
      const bytes = new Uint8Array(buf.buffer, buf.byteOffset + start + h.data_offsets[0], h.data_offsets[1] - h.data_offsets[0]);
      let values: Float64Array | undefined;
      const decode = (): Float64Array => {
        const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        const count = h.shape.reduce((a, b) => a * b, 1);
        const v = new Float64Array(count);
        for (let i = 0; i < count; i++) {
          if (h.dtype === "F32") v[i] = dv.getFloat32(4 * i, true);
          else if (h.dtype === "BF16") v[i] = bf16Value(dv.getUint16(2 * i, true));
          else if (h.dtype === "F16") v[i] = f16(dv.getUint16(2 * i, true));
          else throw new Error(`dtype ${h.dtype} not handled by the test reader`);
        }
        return v;
      };
      return {
        dtype: h.dtype,
        shape: h.shape,
        get values() {
          return (values ??= decode());
        },
        bytes,
      };
    },
  };
}

/** float32 → bfloat16 bits, round to nearest even (independent of core/dtype). */
const scratch = new DataView(new ArrayBuffer(4));
export function toBf16Bits(x: number): number {
  scratch.setFloat32(0, x, true);
  const u = scratch.getUint32(0, true);
  const lsb = (u >>> 16) & 1;
  return ((u + 0x7fff + lsb) >>> 16) & 0xffff;
}

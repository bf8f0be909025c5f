/**
 * GGUF tensor data ⇄ float32 for the types realign can merge and write: F32, F16, BF16 and Q8_0.
 *
 * Q8_0 follows ggml's reference `quantize_row_q8_0_ref` / `dequantize_row_q8_0` (ggml-quants.c), which
 * gguf-py's numpy `quantize` reproduces: blocks of 32 values, an fp16 scale d = max|x| / 127 (float32
 * arithmetic, then rounded to fp16 RNE), q = roundf(x · (1/d)) with ties away from zero, and x̂ = fp16(d) · q.
 * Other ggml types are readable as metadata but refused here with a clear error.
 */
import { InputError } from "../../errors.ts";
import { decodeToF32, encodeFromF32, f16FromF32Bits, f16ToF32, f32ToBits } from "../../core/dtype.ts";
import { isMergeableGgmlType, type GgmlTypeName, type MergeableGgmlType } from "./constants.ts";

/** Elements per Q8_0 block (ggml QK8_0). */
export const QK8_0 = 32;
/** Bytes per Q8_0 block: fp16 scale + 32 int8. */
export const Q8_0_BLOCK_BYTES = 2 + QK8_0;

/** Throws an InputError unless `type` is one realign decodes/encodes. */
export function assertMergeableType(type: GgmlTypeName, where: { file: string; tensor: string }): asserts type is MergeableGgmlType {
  if (!isMergeableGgmlType(type)) {
    throw new InputError("gguf.unsupported_tensor_type", `tensor ${where.tensor} in ${where.file}: got type ${type}, expected F32, F16, BF16 or Q8_0`, {
      details: { ...where, type },
      hint: "realign merges only unquantized or Q8_0 GGUF files; merge the original HF checkpoints or an F16/BF16/Q8_0 GGUF instead",
    });
  }
}

/** Bytes needed for `count` elements of `type` (count must be a multiple of the block size for Q8_0). */
export function byteLengthOf(type: MergeableGgmlType, count: number): number {
  switch (type) {
    case "F32":
      return count * 4;
    case "F16":
    case "BF16":
      return count * 2;
    case "Q8_0":
      return (count / QK8_0) * Q8_0_BLOCK_BYTES;
  }
}

/**
 * Quantizes `count` float32 values (a multiple of 32) into Q8_0 blocks in `out`, exactly as ggml's reference.
 * @param out at least count/32 × 34 bytes.
 */
export function quantizeQ8_0(src: Float32Array, out: Uint8Array, count: number): void {
  if (count % QK8_0 !== 0) throw new RangeError(`Q8_0 needs a multiple of ${QK8_0} values, got ${count}`);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const fr = Math.fround;
  for (let b = 0, o = 0; b < count; b += QK8_0, o += Q8_0_BLOCK_BYTES) {
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) {
      const v = Math.abs(src[b + j]!);
      if (v > amax) amax = v;
    }
    const d = fr(amax / 127);
    const id = d !== 0 ? fr(1 / d) : 0;
    view.setUint16(o, f16FromF32Bits(f32ToBits(d)), true);
    for (let j = 0; j < QK8_0; j++) {
      const x = fr(src[b + j]! * id);
      // roundf: half away from zero
      const q = x < 0 ? -Math.round(-x) : Math.round(x);
      view.setInt8(o + 2 + j, q);
    }
  }
}

/** Dequantizes `count` values (a multiple of 32) of Q8_0 data into `out`: x = fp16(d) · q in float32. */
export function dequantizeQ8_0(src: Uint8Array, out: Float32Array, count: number): void {
  if (count % QK8_0 !== 0) throw new RangeError(`Q8_0 needs a multiple of ${QK8_0} values, got ${count}`);
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  for (let b = 0, o = 0; b < count; b += QK8_0, o += Q8_0_BLOCK_BYTES) {
    const d = f16ToF32(view.getUint16(o, true));
    for (let j = 0; j < QK8_0; j++) out[b + j] = Math.fround(d * view.getInt8(o + 2 + j));
  }
}

/** Decodes `count` elements of GGUF tensor data of `type` into float32. */
export function decodeGgufToF32(type: MergeableGgmlType, src: Uint8Array, out: Float32Array, count: number): void {
  if (type === "Q8_0") dequantizeQ8_0(src, out, count);
  else decodeToF32(type, src, out, count);
}

/**
 * Encodes `count` float32 values as GGUF tensor data of `type` into `out`
 * (F16/BF16: round-to-nearest-even; Q8_0: ggml reference quantization).
 * @param out byteLengthOf(type, count) bytes; 4-byte aligned for F32 and 2-byte aligned for F16/BF16.
 */
export function encodeGgufFromF32(type: MergeableGgmlType, src: Float32Array, out: Uint8Array, count: number): void {
  if (type === "Q8_0") quantizeQ8_0(src, out, count);
  else encodeFromF32(type, src, out, count);
}

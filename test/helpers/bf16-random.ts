/**
 * Deterministic random data for the bf16 kernel tests: an xorshift32 stream and the bf16 codes every
 * kernel must get right (±0, ±Inf, NaNs — quiet, signalling, negative — subnormals, 1, 1 + ulp, the
 * smallest normal).
 */

/** xorshift32 stream of unsigned 32-bit integers (seed 0 is taken as 1). */
export function xorshift32(seed: number): () => number {
  let s = seed | 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

/** bf16 codes: ±0, ±Inf, quiet/negative/signalling NaN, ±smallest subnormal, 1, 1 + ulp, smallest normal. */
export const BF16_SPECIALS: readonly number[] = [0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81, 0x0001, 0x8001, 0x3f80, 0x3f81, 0x0080];

/**
 * Compares two merge outputs' files byte for byte, except that in a `.safetensors` file's data (all bf16
 * here) two NaN codes count as equal: where two different NaNs meet (a NaN base and a NaN term of another
 * model), which payload survives is not specified — V8's JavaScript arithmetic (the generic path) and the
 * WebAssembly kernels may pick different operands. Returns the first other difference, or undefined.
 */
export function bf16FileDifference(name: string, a: Buffer, b: Buffer): string | undefined {
  if (a.equals(b)) return undefined;
  if (!name.endsWith(".safetensors") || a.length !== b.length) return `${name}: ${a.length} and ${b.length} bytes differ`;
  const data = 8 + Number(a.readBigUInt64LE(0));
  if (!a.subarray(0, data).equals(b.subarray(0, data))) return `${name}: headers differ`;
  const isNan = (c: number): boolean => (c & 0x7fff) > 0x7f80;
  for (let i = data; i + 1 < a.length; i += 2) {
    const x = a.readUInt16LE(i);
    const y = b.readUInt16LE(i);
    if (x !== y && !(isNan(x) && isNan(y))) return `${name}: byte ${i}: 0x${x.toString(16)} and 0x${y.toString(16)}`;
  }
  return undefined;
}

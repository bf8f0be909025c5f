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

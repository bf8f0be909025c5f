/**
 * Tensor element types and the bulk conversions between stored bytes and float32.
 *
 * All merge arithmetic in realign is float32 (as torch does for bf16 checkpoints). These kernels decode
 * stored elements into a Float32Array and encode float32 results back with round-to-nearest-even.
 * They are the hot loops of every merge: typed-array views, no per-element allocation.
 *
 * Sources: safetensors spec (dtype names and sizes); IEEE 754 binary16; bfloat16 = top 16 bits of binary32;
 * OCP 8-bit floating point spec (E4M3 "fn": no infinities, S.1111.111 = NaN; E5M2: IEEE-like).
 */

/** Every safetensors dtype realign knows, as the spec spells it. */
export const DTYPES = [
  "F64",
  "F32",
  "F16",
  "BF16",
  "I64",
  "I32",
  "I16",
  "I8",
  "U64",
  "U32",
  "U16",
  "U8",
  "BOOL",
  "F8_E4M3",
  "F8_E5M2",
] as const;
export type Dtype = (typeof DTYPES)[number];

/** Float dtypes a merge may write. */
export const OUT_DTYPES = ["BF16", "F16", "F32"] as const;
export type OutDtype = (typeof OUT_DTYPES)[number];

/** Bytes per element, by dtype (safetensors spec). */
export const DTYPE_BYTES: Readonly<Record<Dtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/** True for dtypes that hold floating-point weights (mergeable). */
export function isFloatDtype(d: Dtype): boolean {
  return d === "F64" || d === "F32" || d === "F16" || d === "BF16" || d === "F8_E4M3" || d === "F8_E5M2";
}

export function isDtype(s: string): s is Dtype {
  return (DTYPES as readonly string[]).includes(s);
}

/** User-facing names (CLI `--out-dtype`, mergekit YAML `dtype`) → safetensors dtype. */
const DTYPE_ALIASES: Readonly<Record<string, OutDtype>> = {
  bf16: "BF16",
  bfloat16: "BF16",
  f16: "F16",
  fp16: "F16",
  float16: "F16",
  half: "F16",
  f32: "F32",
  fp32: "F32",
  float32: "F32",
  float: "F32",
};

/** Parses an output dtype name (`bf16`, `bfloat16`, `F16`, `float32`, …); undefined if unknown. */
export function parseOutDtype(name: string): OutDtype | undefined {
  const upper = name.toUpperCase();
  if ((OUT_DTYPES as readonly string[]).includes(upper)) return upper as OutDtype;
  return DTYPE_ALIASES[name.toLowerCase()];
}

/** Lower-case short name for display (`bf16`, `f16`, `f32`). */
export function shortDtypeName(d: Dtype): string {
  return d.toLowerCase();
}

// ---------------------------------------------------------------------------------------------
// Scalar helpers (tests, small data). Bulk paths below.

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 bit pattern of `x` (after rounding x to float32). */
export function f32ToBits(x: number): number {
  f32Scratch[0] = x;
  return u32Scratch[0]!;
}

/** float32 value of a 32-bit pattern. */
export function bitsToF32(bits: number): number {
  u32Scratch[0] = bits >>> 0;
  return f32Scratch[0]!;
}

/**
 * float32 bits → bfloat16 bits, round-to-nearest-even; NaN stays NaN (quiet bit set, sign kept);
 * values at or above max + ½ulp overflow to ±Inf, as torch does.
 */
export function bf16FromF32Bits(u: number): number {
  u >>>= 0;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bfloat16 bits → float32 value. */
export function bf16ToF32(h: number): number {
  return bitsToF32((h & 0xffff) << 16);
}

// f32 → f16 (Giesen's float_to_half_fast3_rtne, restated). Constants are float32 bit patterns.
const F32_INF_BITS = 255 << 23;
const F16_MAX_BITS = (127 + 16) << 23; // 65536.0: at or above it → Inf (after rounding check below)
const DENORM_MAGIC_BITS = (127 - 15 + (23 - 10) + 1) << 23; // 0.5: aligns 10 mantissa bits at the bottom
const DENORM_MAGIC = bitsToF32(DENORM_MAGIC_BITS);
const F16_MIN_NORMAL_BITS = 113 << 23; // 2^-14

/**
 * float32 bits → IEEE binary16 bits, round-to-nearest-even, overflow to ±Inf (≥ 65520), NaN → quiet NaN
 * (0x7e00 with sign), subnormals exact. Double rounding in the subnormal path is innocuous because
 * float64 has ≥ 2·24+2 bits (Figueroa).
 */
export function f16FromF32Bits(u: number): number {
  u >>>= 0;
  const sign = (u >>> 16) & 0x8000;
  let f = u & 0x7fffffff;
  let o: number;
  if (f >= F16_MAX_BITS) {
    o = f > F32_INF_BITS ? 0x7e00 : 0x7c00;
  } else if (f < F16_MIN_NORMAL_BITS) {
    const v = Math.fround(bitsToF32(f) + DENORM_MAGIC);
    o = (f32ToBits(v) - DENORM_MAGIC_BITS) >>> 0;
  } else {
    const mantOdd = (f >>> 13) & 1;
    f = (f + ((15 - 127) << 23) + 0xfff + mantOdd) >>> 0;
    o = f >>> 13;
  }
  return (o | sign) & 0xffff;
}

/** IEEE binary16 bits → float32 value (exact). */
export function f16ToF32(h: number): number {
  h &= 0xffff;
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Lookup table: all 65,536 binary16 codes → float32. Built once (256 KiB). */
let f16Table: Float32Array | undefined;
function getF16Table(): Float32Array {
  if (f16Table === undefined) {
    const t = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) t[h] = f16ToF32(h);
    f16Table = t;
  }
  return f16Table;
}

function f8Table(kind: "F8_E4M3" | "F8_E5M2"): Float32Array {
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) {
    const sign = b & 0x80 ? -1 : 1;
    if (kind === "F8_E4M3") {
      const exp = (b >>> 3) & 0xf;
      const mant = b & 7;
      if (exp === 0xf && mant === 7) t[b] = NaN;
      else if (exp === 0) t[b] = sign * mant * 2 ** -9;
      else t[b] = sign * (1 + mant / 8) * 2 ** (exp - 7);
    } else {
      const exp = (b >>> 2) & 0x1f;
      const mant = b & 3;
      if (exp === 0x1f) t[b] = mant === 0 ? sign * Infinity : NaN;
      else if (exp === 0) t[b] = sign * mant * 2 ** -16;
      else t[b] = sign * (1 + mant / 4) * 2 ** (exp - 15);
    }
  }
  return t;
}
let e4m3Table: Float32Array | undefined;
let e5m2Table: Float32Array | undefined;

// ---------------------------------------------------------------------------------------------
// Bulk kernels.

/** A view of `bytes` as T if aligned, else an aligned copy. */
function aligned(bytes: Uint8Array, elemBytes: number): ArrayBuffer {
  if (bytes.byteOffset % elemBytes === 0 && bytes.buffer instanceof ArrayBuffer) return bytes.buffer;
  return bytes.slice().buffer;
}
function offsetOf(bytes: Uint8Array, elemBytes: number): number {
  return bytes.byteOffset % elemBytes === 0 ? bytes.byteOffset : 0;
}

/**
 * Decodes `count` little-endian elements of `dtype` from `src` into `out[0..count)` as float32.
 * Integers are converted to the nearest float32 (exact for |v| ≤ 2^24); BOOL → 0/1.
 * @param src raw bytes, at least count × DTYPE_BYTES[dtype] long; any alignment.
 * @param out destination, length ≥ count.
 */
export function decodeToF32(dtype: Dtype, src: Uint8Array, out: Float32Array, count: number): void {
  const n = count;
  switch (dtype) {
    case "F32": {
      const v = new Float32Array(aligned(src, 4), offsetOf(src, 4), n);
      out.set(v);
      return;
    }
    case "BF16": {
      const s = new Uint16Array(aligned(src, 2), offsetOf(src, 2), n);
      const o = new Uint32Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) o[i] = s[i]! << 16;
      return;
    }
    case "F16": {
      const s = new Uint16Array(aligned(src, 2), offsetOf(src, 2), n);
      const t = getF16Table();
      for (let i = 0; i < n; i++) out[i] = t[s[i]!]!;
      return;
    }
    case "F64": {
      const s = new Float64Array(aligned(src, 8), offsetOf(src, 8), n);
      for (let i = 0; i < n; i++) out[i] = s[i]!;
      return;
    }
    case "F8_E4M3":
    case "F8_E5M2": {
      const t = dtype === "F8_E4M3" ? (e4m3Table ??= f8Table(dtype)) : (e5m2Table ??= f8Table(dtype));
      for (let i = 0; i < n; i++) out[i] = t[src[i]!]!;
      return;
    }
    case "I8": {
      const s = new Int8Array(src.buffer, src.byteOffset, n);
      for (let i = 0; i < n; i++) out[i] = s[i]!;
      return;
    }
    case "U8":
    case "BOOL": {
      for (let i = 0; i < n; i++) out[i] = dtype === "BOOL" ? (src[i] ? 1 : 0) : src[i]!;
      return;
    }
    case "I16": {
      const s = new Int16Array(aligned(src, 2), offsetOf(src, 2), n);
      for (let i = 0; i < n; i++) out[i] = s[i]!;
      return;
    }
    case "U16": {
      const s = new Uint16Array(aligned(src, 2), offsetOf(src, 2), n);
      for (let i = 0; i < n; i++) out[i] = s[i]!;
      return;
    }
    case "I32": {
      const s = new Int32Array(aligned(src, 4), offsetOf(src, 4), n);
      for (let i = 0; i < n; i++) out[i] = s[i]!;
      return;
    }
    case "U32": {
      const s = new Uint32Array(aligned(src, 4), offsetOf(src, 4), n);
      for (let i = 0; i < n; i++) out[i] = s[i]!;
      return;
    }
    case "I64": {
      const s = new BigInt64Array(aligned(src, 8), offsetOf(src, 8), n);
      for (let i = 0; i < n; i++) out[i] = Number(s[i]!);
      return;
    }
    case "U64": {
      const s = new BigUint64Array(aligned(src, 8), offsetOf(src, 8), n);
      for (let i = 0; i < n; i++) out[i] = Number(s[i]!);
      return;
    }
  }
}

/**
 * Encodes `count` float32 values from `src` into `out` as `dtype` (little-endian), round-to-nearest-even.
 * BF16: NaN stays NaN, overflow → ±Inf. F16: ≥ 65520 → ±Inf, subnormals exact, NaN → 0x7e00|sign.
 * @param out destination bytes, length ≥ count × DTYPE_BYTES[dtype]; must be 2-/4-byte aligned for F16/BF16/F32.
 */
export function encodeFromF32(dtype: OutDtype, src: Float32Array, out: Uint8Array, count: number): void {
  const n = count;
  const u = new Uint32Array(src.buffer, src.byteOffset, n);
  switch (dtype) {
    case "F32": {
      new Float32Array(out.buffer, out.byteOffset, n).set(src.subarray(0, n));
      return;
    }
    case "BF16": {
      const o = new Uint16Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const b = u[i]!;
        o[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      }
      return;
    }
    case "F16": {
      const o = new Uint16Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) o[i] = f16FromF32Bits(u[i]!);
      return;
    }
  }
}

/** Little-endian check: realign's typed-array kernels assume a little-endian host (all supported ones). */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Byte sizes as users type them: `5GB`, `500MB`, `2GiB`, `1.5G`, `123456` (bytes). Decimal units (KB, MB,
 * GB, TB = 10^3…) as transformers' `max_shard_size`; binary units with `i` (KiB, MiB, GiB = 2^10…).
 */
const UNITS: Readonly<Record<string, number>> = {
  "": 1,
  B: 1,
  K: 1e3,
  KB: 1e3,
  M: 1e6,
  MB: 1e6,
  G: 1e9,
  GB: 1e9,
  T: 1e12,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/** Parses a size; undefined when malformed or not a positive whole number of bytes. */
export function parseByteSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (m === null) return undefined;
  const unit = UNITS[m[2]!.toUpperCase()];
  if (unit === undefined) return undefined;
  const n = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

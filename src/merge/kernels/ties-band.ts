/**
 * The banded measure pass of the TIES fast path (workers/fast-ties.ts): instead of a 65 536-bin histogram
 * of every |δ| (two scattered increments per element), a deterministic sample of the tensor picks, per
 * model, a band [lo, hi] of coarse bins (top 16 bits of the float32 pattern of |δ|) that should hold the
 * k-th largest |δ|, and up to two "heavy" bins inside it; the full pass then counts the entries above the
 * band and in the heavy bins in SIMD and histograms only the other entries inside the band
 * (`tiesBand2`, kernels/assembly/ties.ts). `bandHistogram` turns those counts into a coarse histogram on
 * which the reference's `endRankingPass` (methods/sparsify.ts) takes the same decision as on the full one
 * — or reports that the k-th largest |δ| is outside the band, and the tensor gets the full histogram pass.
 * Correctness never depends on the sample; only speed does.
 *
 * Here: the sample positions, the band choice, the TypeScript reference of the kernel (`tiesBand2Ref`,
 * compared byte for byte with the WebAssembly one in ties-band.test.ts) and the histogram rebuild.
 * Pure (no I/O).
 */

/** No heavy bin (coarse bins are 0..0x7fff, so −1 never matches). */
export const NO_BIN = -1;

/** One model's band: bins lo..hi (inclusive) are measured exactly; heavyA / heavyB (in the band, or NO_BIN) are counted in SIMD. */
export interface TiesBand {
  readonly lo: number;
  readonly hi: number;
  readonly heavyA: number;
  readonly heavyB: number;
  /** The sample's own boundary bin (rank k·m/n), when known: the centre of a fine window (fineWindow). */
  readonly center?: number;
}

/**
 * The coarse bins [lo, lo + w) whose fine histograms a full pass keeps for this band: the whole band when
 * it has at most FINE_WINDOW_MAX bins, else FINE_WINDOW_MAX bins of it around its centre (3 above, 4 below
 * the sample's boundary bin), else none (w 0).
 */
export function fineWindow(band: TiesBand): { readonly lo: number; readonly w: number } {
  const width = band.hi - band.lo + 1;
  if (width <= FINE_WINDOW_MAX) return { lo: band.lo, w: width };
  if (band.center === undefined) return { lo: 0, w: 0 };
  const lo = Math.max(band.lo, Math.min(band.center - 4, band.hi - FINE_WINDOW_MAX + 1));
  return { lo, w: FINE_WINDOW_MAX };
}

/** Sampling and band settings (defaults for the bench shape; tests force the band on tiny tensors). */
export interface BandSettings {
  /** Tensors with fewer elements take the full histogram pass. @default 4 Mi */
  readonly minElems: number;
  /** Sample blocks per tensor (evenly spaced, deterministic). @default 128 */
  readonly blocks: number;
  /** Elements per sample block (a multiple of 8). @default 4096 */
  readonly blockElems: number;
  /** The sample is at most n / this many elements (fewer blocks on smaller tensors). @default 16 */
  readonly maxFraction: number;
  /**
   * The band is dropped (full pass instead) when the sample puts more than this fraction of the entries
   * in its light part (in the band, not heavy): the scalar increments (and their mispredicted branches)
   * would cost more than they save. tiesBand2 and tiesHist2 ran at the same speed near 1 % (bench/sparse-fast.ts
   * `--kernels`, continuous task vectors). @default 0.01
   */
  readonly maxLight: number;
  /** Replaces chooseBand (tests: bands whose edges sit exactly on the k-th largest |δ|). */
  readonly choose?: (sample: Uint32Array, m: number, k: number, n: number, model: number) => TiesBand | undefined;
}

/**
 * Widest band (in coarse bins) whose fine histograms the full pass keeps when the band itself is not used
 * (`tiesHistFine2`): 8 × 256 KiB per model and thread. When the boundary bin is among them, no fine pass.
 */
export const FINE_WINDOW_MAX = 8;

export const DEFAULT_BAND: BandSettings = { minElems: 4 * 2 ** 20, blocks: 128, blockElems: 4096, maxFraction: 16, maxLight: 0.01 };

/**
 * Start elements of the sample blocks of a tensor of n elements: `count` blocks of `len` elements (len a
 * multiple of 8; the last block may be shorter only if n is), block i starting at the multiple of 8 nearest
 * below (i + ½)·n/count − len/2, clamped to [0, n − len]. Deterministic. Empty when the tensor is too small
 * for the settings (then no band).
 */
export function samplePlan(n: number, s: BandSettings): { readonly starts: number[]; readonly len: number } {
  if (n < s.minElems || n < 8) return { starts: [], len: 0 };
  const len = Math.max(8, Math.floor(Math.min(s.blockElems, n) / 8) * 8);
  const count = Math.max(1, Math.min(s.blocks, Math.floor(n / s.maxFraction / len)));
  const starts: number[] = [];
  for (let i = 0; i < count; i++) {
    const mid = Math.floor(((i + 0.5) * n) / count - len / 2);
    starts.push(Math.max(0, Math.min(n - len, Math.floor(mid / 8) * 8)));
  }
  return { starts, len };
}

/**
 * The band for rank k (the k-th largest |δ| of n) from the coarse histogram `sample` of m sampled entries:
 * the bins between the sample's boundary bins for ranks k·m/n ∓ margin, margin = 12σ + 0.2 % of m + 16
 * (σ the binomial standard deviation of that rank; the factor 12 also covers rows that differ from each
 * other, as the blocks are contiguous); the two fullest sampled bins of the band are heavy. Undefined when
 * m is 0.
 */
export function chooseBand(sample: Uint32Array, m: number, k: number, n: number): TiesBand | undefined {
  if (m <= 0 || !(k > 0 && k < n)) return undefined;
  const r = k / n;
  const ks = r * m;
  const margin = 12 * Math.sqrt(m * r * (1 - r)) + 0.002 * m + 16;
  const top = ks - margin; // sample rank whose boundary bin is hi
  const bottom = ks + margin;
  let hi = 0x7fff;
  let lo = 0;
  let center = 0;
  let cum = 0;
  let foundHi = top < 1;
  let foundCenter = false;
  for (let b = 0x7fff; b >= 0; b--) {
    const c = sample[b]!;
    if (c === 0) continue;
    cum += c;
    if (!foundHi && cum >= top) {
      hi = b;
      foundHi = true;
    }
    if (!foundCenter && cum >= ks) {
      center = b;
      foundCenter = true;
    }
    if (cum >= bottom) {
      lo = b;
      break;
    }
  }
  let a = NO_BIN;
  let bb = NO_BIN;
  for (let b = lo; b <= hi; b++) {
    const c = sample[b]!;
    if (c === 0) continue;
    if (a === NO_BIN || c > sample[a]!) {
      bb = a;
      a = b;
    } else if (bb === NO_BIN || c > sample[bb]!) bb = b;
  }
  return { lo, hi, heavyA: a, heavyB: bb, center: Math.max(lo, Math.min(hi, center)) };
}

/** Fraction of the m sampled entries in the band's light part (in the band, not in a heavy bin). */
export function lightFraction(sample: Uint32Array, m: number, band: TiesBand): number {
  let light = 0;
  for (let b = band.lo; b <= band.hi; b++) if (b !== band.heavyA && b !== band.heavyB) light += sample[b]!;
  return m > 0 ? light / m : 1;
}

/** One model's band counts after the full pass (summed over the threads). */
export interface BandCounts {
  /** Entries whose bin is above hi. */
  readonly above: number;
  readonly heavyA: number;
  readonly heavyB: number;
  /** Histogram of the other entries of the band (only bins lo..hi are read). */
  readonly light: Uint32Array;
}

/**
 * The coarse histogram (65 536 bins) that the band's counts stand for: bins lo..hi exact, every entry
 * above the band lumped into bin hi + 1 and every entry below it into bin lo − 1. `endRankingPass` walks
 * the bins from the top and stops at the first bin b where the entries at or above b reach k; when that
 * bin is in the band, it sees exactly the counts of the full histogram at b and above (bin b's count and
 * the number above b), so it picks the same bin and `above`, and the fine pass that may follow uses only
 * those. Returns undefined when the k-th largest |δ| is not in the band (above ≥ k, or above + band < k):
 * the caller then measures the tensor with the full histogram.
 */
export function bandHistogram(band: TiesBand, counts: BandCounts, k: number, n: number): Uint32Array | undefined {
  let inBand = counts.heavyA + counts.heavyB;
  for (let b = band.lo; b <= band.hi; b++) inBand += counts.light[b]!;
  if (!(counts.above < k && counts.above + inBand >= k)) return undefined;
  const coarse = new Uint32Array(65536);
  for (let b = band.lo; b <= band.hi; b++) coarse[b] = counts.light[b]!;
  if (band.heavyA !== NO_BIN) coarse[band.heavyA] = coarse[band.heavyA]! + counts.heavyA;
  if (band.heavyB !== NO_BIN) coarse[band.heavyB] = coarse[band.heavyB]! + counts.heavyB;
  if (band.hi < 0xffff) coarse[band.hi + 1] = coarse[band.hi + 1]! + counts.above;
  const below = n - counts.above - inBand;
  if (band.lo > 0) coarse[band.lo - 1] = below;
  return coarse;
}

const F32 = new Float32Array(2);
const U32 = new Uint32Array(F32.buffer);

/** |δ| bits of element j: f32(x − b) of two bf16 codes, sign cleared. */
function absDeltaBits(b: number, x: number): number {
  U32[0] = b << 16;
  U32[1] = x << 16;
  F32[0] = F32[1]! - F32[0]!;
  return U32[0]! & 0x7fffffff;
}

/**
 * TypeScript reference of the `tiesBand2` kernel: for the n bf16 elements of the aligned model `b` and the
 * tuned models `x0`, `x1` (bf16 codes), adds into `out` ([above₀, above₁, heavyA₀, heavyB₀, heavyA₁,
 * heavyB₁, or₀, or₁], u32) and the per-model histograms `h0`, `h1` (65 536 u32) exactly what the kernel
 * adds: per model, the count of entries with bin > hi, the counts of the heavy bins, one per other entry
 * with lo ≤ bin ≤ hi in its bin, and the OR of the low 16 bits of every |δ|.
 */
export function tiesBand2Ref(
  b: Uint16Array,
  x0: Uint16Array,
  x1: Uint16Array,
  bands: readonly [TiesBand, TiesBand],
  h0: Uint32Array,
  h1: Uint32Array,
  out: Uint32Array,
): void {
  const hs = [h0, h1];
  const xs = [x0, x1];
  for (let m = 0; m < 2; m++) {
    const x = xs[m]!;
    const h = hs[m]!;
    const { lo, hi, heavyA, heavyB } = bands[m]!;
    let above = 0;
    let ca = 0;
    let cb = 0;
    let or = 0;
    for (let j = 0; j < b.length; j++) {
      const a = absDeltaBits(b[j]!, x[j]!);
      or |= a & 0xffff;
      const bin = a >>> 16;
      if (bin > hi) above++;
      if (bin === heavyA) ca++;
      if (bin === heavyB) cb++;
      if (bin >= lo && bin <= hi && bin !== heavyA && bin !== heavyB) h[bin]!++;
    }
    out[m] = (out[m]! + above) >>> 0;
    out[2 + 2 * m] = (out[2 + 2 * m]! + ca) >>> 0;
    out[3 + 2 * m] = (out[3 + 2 * m]! + cb) >>> 0;
    out[6 + m] = (out[6 + m]! | or) >>> 0;
  }
}

/**
 * TypeScript reference of the `tiesHistFine2` kernel: what tiesHist2 adds (coarse histograms h0, h1 of
 * every |δ|, OR of the low 16 bits into out[0], out[1]) and, per model m, one per entry whose coarse bin
 * is in [windows[m].lo, windows[m].lo + windows[m].w) into fines[m] at (bin − lo)·65 536 + low 16 bits.
 */
export function tiesHistFine2Ref(
  b: Uint16Array,
  x0: Uint16Array,
  x1: Uint16Array,
  h0: Uint32Array,
  h1: Uint32Array,
  out: Uint32Array,
  windows: readonly [{ lo: number; w: number }, { lo: number; w: number }],
  fines: readonly [Uint32Array, Uint32Array],
): void {
  const hs = [h0, h1];
  const xs = [x0, x1];
  for (let m = 0; m < 2; m++) {
    const x = xs[m]!;
    const h = hs[m]!;
    const f = fines[m]!;
    const { lo, w } = windows[m]!;
    let or = 0;
    for (let j = 0; j < b.length; j++) {
      const a = absDeltaBits(b[j]!, x[j]!);
      or |= a & 0xffff;
      const bin = a >>> 16;
      h[bin]!++;
      if (bin >= lo && bin < lo + w) f[(bin - lo) * 65536 + (a & 0xffff)]!++;
    }
    out[m] = (out[m]! | or) >>> 0;
  }
}

/**
 * Shared pure helpers of the task-vector methods: exact top-k by magnitude in linear time over chunks,
 * a seeded counter-based random drop, DELLA's per-row rank probabilities, and TIES sign election.
 * No I/O; every function works on float32 chunks of one tensor at a given element offset.
 *
 * Numerics (all methods): deltas δ = f32(x − b) as float32 (so thresholds compare float32 bit patterns),
 * tensor-wide reductions (L1 norms, dot products) in float64 accumulators, each ONE running sum in element
 * order (never per-chunk partial sums) so results do not depend on the chunking, per-element combinations in
 * float64, rounded once to float32 at the end. Nothing is ever summed in f16/bf16 (mergekit#704: f16
 * sums past 65504 overflow there). Non-finite |δ| (from NaN/Inf inputs) are left out of norm sums, so
 * one NaN input element cannot turn a whole tensor into NaN through a rescale factor.
 */

// ---------------------------------------------------------------------------------------------------
// Exact rank selection by |δ| (TIES top-k, Breadcrumbs outliers)
// ---------------------------------------------------------------------------------------------------

/**
 * Number of entries TIES keeps: k = floor(density·n), evaluated in float64 exactly as mergekit's
 * `int(n * density)` (so 0.57·100 = 56.999… gives 56). density ≥ 1 keeps all, ≤ 0 none; k = 0 (density·n < 1)
 * keeps nothing (mergekit asserts instead).
 */
export function keepCount(density: number, n: number): number {
  if (!(density < 1)) return n;
  if (!(density > 0)) return 0;
  return Math.min(n, Math.max(0, Math.floor(n * density)));
}

/** Bits of |x| as float32 (sign cleared). Non-negative float32 values order like their uint32 patterns; NaN sorts above +Inf. */
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
function absBitsToValue(bits: number): number {
  U32[0] = bits >>> 0;
  return F32[0]!;
}

/**
 * Membership of the R largest |δ| of one tensor, decided exactly with linear passes and no sort:
 * pass 0 histograms the top 16 bits of the float32 pattern of |δ| (65 536 bins, with a float64 L1 sum per
 * bin), pass 1 histograms the low 16 bits inside the boundary bin (so the R-th largest value V is known
 * exactly) and, when that bin holds at most COLLECT_MAX entries, also collects their indices — which
 * settles the ties at once, so the ranking is complete after 2 passes; otherwise pass 2 finds the index of
 * the last tied element kept. Order is (|δ| descending, element index ascending): among entries equal to V,
 * the LOWEST indices are kept, so exactly R entries are selected. NaN |δ| counts as the largest.
 * Memory: 65 536-entry arrays (≈ 1 MiB) per model plus ≤ 6 bytes per collected entry.
 */
export interface RankSelector {
  /** How many entries are selected (0 ≤ rank ≤ n). */
  readonly rank: number;
  /** Boundary coarse bin (top 16 bits), after pass 0. */
  bin: number;
  /** Entries in coarse bins above `bin`. */
  above: number;
  fine: Uint32Array | undefined;
  /** float32 bit pattern of the R-th largest |δ| (after pass 1). */
  valueBits: number;
  /** How many entries equal to V are selected (1 ≤ tiesNeeded ≤ tie count). */
  tiesNeeded: number;
  tiesSeen: number;
  /** Selected ties are those with index ≤ cutoffIndex (Infinity once all ties are selected). */
  cutoffIndex: number;
  /** Σ |δ| over entries strictly above V (float64, after pass 2, or pass 1 when collected). */
  l1Above: number;
  /** Pass 1 collection of the boundary bin (element indices and low 16 bits), when small enough. */
  collectedIndex: Uint32Array | undefined;
  collectedLow: Uint16Array | undefined;
  collectedCount: number;
  /** True once membership and l1Above are final. */
  done: boolean;
  /**
   * perf (rankings created with `countTiesInKernel`): the tie cut-off index is not searched by a measure
   * pass; instead the kernel, which visits elements in ascending index order, keeps the first `tiesNeeded`
   * entries equal to V (`selectCounting`). Same membership as `cutoffIndex`.
   */
  countInKernel: boolean;
  /** Ties kept so far by `selectCounting`. */
  kernelTies: number;
}

/** Largest boundary bin collected in pass 1 (6 bytes per entry: ≤ 24 MiB), beyond which pass 2 runs. */
export const COLLECT_MAX = 4 * 2 ** 20;

export function createRankSelector(rank: number): RankSelector {
  return {
    rank,
    bin: -1,
    above: 0,
    fine: undefined,
    valueBits: 0,
    tiesNeeded: 0,
    tiesSeen: 0,
    cutoffIndex: -1,
    l1Above: 0,
    collectedIndex: undefined,
    collectedLow: undefined,
    collectedCount: 0,
    done: false,
    countInKernel: false,
    kernelTies: 0,
  };
}

/** State of magnitude ranking for one tensor of one model: a coarse histogram shared by its selectors. */
export interface MagnitudeRanking {
  readonly n: number;
  readonly selectors: RankSelector[];
  coarse: Uint32Array | undefined;
  /** Σ |δ| of the finite entries of each coarse bin (float64, pass 0). */
  coarseL1: Float64Array | undefined;
  /** Σ |δ| over all finite entries (float64, after pass 0). */
  l1Total: number;
  /** Boundary bins up to this many entries are collected in pass 1 (COLLECT_MAX; 0 forces pass 2, for tests). */
  readonly collectMax: number;
  /**
   * perf: let the kernel settle the ties (selectCounting) instead of a tie-scan pass, and finish after pass 0
   * when the boundary bin holds a single value (low 16 bits all zero, as for most bf16 task vectors).
   * `needL1`: the selected L1 (selectedL1) must be exact, so shortcuts are taken only where they give the
   * same float64 sum as the passes they skip. Off by default (the reference behaviour, with `cutoffIndex`).
   */
  readonly countTiesInKernel: boolean;
  readonly needL1: boolean;
  /** OR of the low 16 bits of the |δ| patterns in each coarse bin (pass 0, countTiesInKernel only). */
  coarseLowOr: Uint16Array | undefined;
}

/**
 * Passes a magnitude ranking may need: 3 if any selector is partial (0 < rank < n) — `endRankingPass`
 * returns true after pass 1 when the collection settled it — else 1 (only for the L1 total when `needL1`) or 0.
 */
export function rankingPasses(n: number, ranks: readonly number[], needL1: boolean): number {
  if (ranks.some((r) => r > 0 && r < n)) return 3;
  return needL1 ? 1 : 0;
}

export function createMagnitudeRanking(
  n: number,
  ranks: readonly number[],
  collectMax = COLLECT_MAX,
  options: { countTiesInKernel?: boolean; needL1?: boolean } = {},
): MagnitudeRanking {
  const countTiesInKernel = options.countTiesInKernel === true;
  const selectors = ranks.map(createRankSelector);
  if (countTiesInKernel) for (const s of selectors) s.countInKernel = true;
  return {
    n,
    selectors,
    coarse: undefined,
    coarseL1: undefined,
    l1Total: 0,
    collectMax,
    countTiesInKernel,
    needL1: options.needL1 !== false,
    coarseLowOr: undefined,
  };
}

function isPartial(s: RankSelector, n: number): boolean {
  return s.rank > 0 && s.rank < n;
}

/** Feeds one chunk of float32 deltas (`absBits` = their float32 patterns with the sign cleared) at `offset` into pass `pass`. */
export function measureRanking(pass: number, st: MagnitudeRanking, delta: Float32Array, offset: number): void {
  const len = delta.length;
  const bits = new Uint32Array(delta.buffer, delta.byteOffset, len);
  if (pass === 0) {
    const coarse = (st.coarse ??= new Uint32Array(65536));
    const coarseL1 = (st.coarseL1 ??= new Float64Array(65536));
    let l1 = st.l1Total; // one running sum in element order: the same bits whatever the chunking
    if (st.countTiesInKernel) {
      const lowOr = (st.coarseLowOr ??= new Uint16Array(65536));
      for (let i = 0; i < len; i++) {
        const a = bits[i]! & 0x7fffffff;
        const b = a >>> 16;
        coarse[b]!++;
        lowOr[b] = lowOr[b]! | (a & 0xffff);
        const v = Math.abs(delta[i]!);
        if (v !== Infinity && v === v) {
          l1 += v;
          coarseL1[b] = coarseL1[b]! + v;
        }
      }
      st.l1Total = l1;
      return;
    }
    for (let i = 0; i < len; i++) {
      const a = bits[i]! & 0x7fffffff;
      const b = a >>> 16;
      coarse[b]!++;
      const v = Math.abs(delta[i]!);
      if (v !== Infinity && v === v) {
        l1 += v;
        coarseL1[b] = coarseL1[b]! + v;
      }
    }
    st.l1Total = l1;
    return;
  }
  for (const s of st.selectors) {
    if (!isPartial(s, st.n) || s.done) continue;
    if (pass === 1) {
      const fine = s.fine!;
      const bin = s.bin;
      const idx = s.collectedIndex;
      const low = s.collectedLow;
      for (let i = 0; i < len; i++) {
        const a = bits[i]! & 0x7fffffff;
        if (a >>> 16 === bin) {
          const l = a & 0xffff;
          fine[l]!++;
          if (idx !== undefined) {
            idx[s.collectedCount] = offset + i;
            low![s.collectedCount++] = l;
          }
        }
      }
    } else if (pass === 2) {
      const vb = s.valueBits;
      let l1 = s.l1Above;
      const scanTies = s.cutoffIndex !== Infinity;
      for (let i = 0; i < len; i++) {
        const a = bits[i]! & 0x7fffffff;
        if (a > vb) {
          const v = Math.abs(delta[i]!);
          if (v !== Infinity && v === v) l1 += v;
        } else if (a === vb && scanTies && s.tiesSeen < s.tiesNeeded) {
          s.tiesSeen++;
          if (s.tiesSeen === s.tiesNeeded) s.cutoffIndex = offset + i;
        }
      }
      s.l1Above = l1;
    }
  }
}

/**
 * Finalises pass `pass`: boundary bin after pass 0; exact value V and tie count after pass 1 (and, for a
 * collected boundary bin, the tie cut-off and l1Above at once).
 * @returns true when every selector is final (no further pass needed).
 */
export function endRankingPass(pass: number, st: MagnitudeRanking): boolean {
  for (const s of st.selectors) {
    if (!isPartial(s, st.n) || s.done) continue;
    if (pass === 0) {
      const coarse = st.coarse!;
      let cum = 0;
      for (let b = 65535; b >= 0; b--) {
        const c = coarse[b]!;
        if (cum + c >= s.rank) {
          s.bin = b;
          s.above = cum;
          if (st.countTiesInKernel && st.coarseLowOr![b] === 0 && (!st.needL1 || c <= st.collectMax)) {
            // every entry of the boundary bin equals V = b<<16: no fine pass, and the kernel counts the ties.
            // l1Above as settleFromCollection would give it (bins above, ascending; no entry of the bin is above V).
            s.valueBits = (b << 16) >>> 0;
            s.tiesNeeded = s.rank - cum;
            s.cutoffIndex = s.tiesNeeded === c ? Infinity : -1;
            let l1 = 0;
            if (st.needL1) for (let q = b + 1; q < 65536; q++) l1 += st.coarseL1![q]!;
            s.l1Above = l1;
            s.done = true;
            break;
          }
          if (c <= st.collectMax) {
            s.collectedIndex = new Uint32Array(c);
            s.collectedLow = new Uint16Array(c);
          }
          break;
        }
        cum += c;
      }
      if (!s.done) s.fine = new Uint32Array(65536);
    } else if (pass === 1) {
      const fine = s.fine!;
      let cum = s.above;
      for (let l = 65535; l >= 0; l--) {
        const c = fine[l]!;
        if (cum + c >= s.rank) {
          s.valueBits = ((s.bin << 16) | l) >>> 0;
          s.tiesNeeded = s.rank - cum;
          s.cutoffIndex = s.tiesNeeded === c ? Infinity : -1;
          break;
        }
        cum += c;
      }
      s.fine = undefined;
      if (s.collectedIndex !== undefined) settleFromCollection(s, st);
      else if (st.countTiesInKernel && !st.needL1) s.done = true; // the kernel counts the ties; l1Above unused
    } else if (pass === 2) {
      s.done = true;
    }
  }
  if (pass === 0 && st.countTiesInKernel) st.coarseLowOr = undefined;
  if (pass === 0 && st.selectors.every((s) => !isPartial(s, st.n) || s.done)) {
    st.coarse = undefined;
    st.coarseL1 = undefined;
  }
  if (pass === 1) {
    st.coarse = undefined;
    if (st.selectors.every((s) => !isPartial(s, st.n) || s.done)) st.coarseL1 = undefined;
  }
  if (pass === 2) st.coarseL1 = undefined;
  return st.selectors.every((s) => !isPartial(s, st.n) || s.done);
}

/** Pass-1 shortcut: tie cut-off and l1Above from the collected boundary bin (ascending index order). */
function settleFromCollection(s: RankSelector, st: MagnitudeRanking): void {
  const low = s.collectedLow!;
  const idx = s.collectedIndex!;
  const vLow = s.valueBits & 0xffff;
  const hi = s.bin << 16;
  let l1 = 0;
  for (let b = s.bin + 1; b < 65536; b++) l1 += st.coarseL1![b]!;
  let seen = 0;
  for (let q = 0; q < s.collectedCount; q++) {
    const l = low[q]!;
    if (l > vLow) {
      const v = absBitsToValue((hi | l) >>> 0);
      if (v !== Infinity && v === v) l1 += v;
    } else if (l === vLow && s.cutoffIndex !== Infinity && seen < s.tiesNeeded) {
      seen++;
      if (seen === s.tiesNeeded) s.cutoffIndex = idx[q]!;
    }
  }
  s.l1Above = l1;
  s.collectedIndex = undefined;
  s.collectedLow = undefined;
  s.done = true;
}

/** True when element `index` with |δ| pattern `absBits` is among the `s.rank` largest. */
export function isSelected(s: RankSelector, n: number, absBits: number, index: number): boolean {
  if (s.rank <= 0) return false;
  if (s.rank >= n) return true;
  return absBits > s.valueBits || (absBits === s.valueBits && index <= s.cutoffIndex);
}

/**
 * isSelected for rankings built with `countTiesInKernel`: entries equal to V are kept in visiting order
 * until `tiesNeeded` are kept, so it must see every element of the tensor once, in ascending index order
 * (the kernel's order). Stateful.
 */
export function selectCounting(s: RankSelector, n: number, absBits: number): boolean {
  if (s.rank <= 0) return false;
  if (s.rank >= n) return true;
  if (absBits > s.valueBits) return true;
  if (absBits === s.valueBits && s.kernelTies < s.tiesNeeded) {
    s.kernelTies++;
    return true;
  }
  return false;
}

/** Σ |δ| over the selected entries (float64); valid once the ranking is final. */
export function selectedL1(s: RankSelector, st: MagnitudeRanking): number {
  if (s.rank <= 0) return 0;
  if (s.rank >= st.n) return st.l1Total;
  const v = absBitsToValue(s.valueBits);
  const tail = v !== Infinity && v === v ? s.tiesNeeded * v : 0;
  return s.l1Above + tail;
}

// ---------------------------------------------------------------------------------------------------
// Seeded counter-based randomness (DARE, DELLA)
// ---------------------------------------------------------------------------------------------------

/** Wellons' "lowbias32" 32-bit integer hash (public domain, https://nullprogram.com/blog/2018/07/31/). */
export function hash32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** FNV-1a 32-bit over the UTF-16 code units of `s` (tensor names are ASCII, so this equals FNV-1a over UTF-8). */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

/**
 * 32-bit stream key of one (seed, tensor name, model index). `seed` may be any safe integer; its low and
 * high 32-bit halves are both mixed in.
 */
export function streamKey(seed: number, tensorName: string, modelIndex: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  let h = hash32((lo ^ 0x9e3779b9) >>> 0);
  h = hash32((h ^ hi) >>> 0);
  h = hash32((h ^ fnv1a32(tensorName)) >>> 0);
  return hash32((h + modelIndex * 0x85ebca6b) >>> 0);
}

/**
 * Elements per block of DARE's L1 sums (gta.ts measureRandom). A power of two and a multiple of L1_GROUP:
 * the fast path's kernel (assembly/ties.ts dareL1x2) sums the blocks of a chunk that starts on one
 * independently.
 */
export const L1_BLOCK = 4096;

/**
 * Elements per group of DARE's L1 sums (gta.ts measureRandom): in a group, each of the 4 lanes adds its 16
 * entries in float32 before the group's lane sums join the block's float64 ones. A power of two, a
 * multiple of 8.
 */
export const L1_GROUP = 64;

/**
 * Uniform number in [0, 1) for element `index` of a stream, a pure function of (key, index): the same on
 * every run, machine and chunking. 24 random bits: U = (hash32(key ⊕ index) >>> 8) / 2²⁴ for index < 2³²
 * (one round of hash32 over a key from streamKey, itself four rounds over the seed, tensor name and model);
 * a larger index takes a second round keyed by its high half:
 * U = (hash32(hash32(key ⊕ lo) ⊕ (key·0x27d4eb2d mod 2³²) ⊕ hi) >>> 8) / 2²⁴.
 */
export function uniformAt(key: number, index: number): number {
  if (index < 4294967296) return uniformAtLow(key, index);
  let h = hash32((index ^ key) >>> 0); // `^` takes the low 32 bits
  h = hash32((h ^ Math.imul(key, 0x27d4eb2d) ^ Math.floor(index / 4294967296)) >>> 0);
  return (h >>> 8) / 16777216;
}

/**
 * perf: uniformAt for index < 2³², hash32 inlined in int32 arithmetic (xor, >>> and Math.imul only look at
 * the low 32 bits), so the hot loop stays in small integers. The fast path's kernels (assembly/ties.ts
 * keep4/keep1) compute the same value in i32x4.
 */
export function uniformAtLow(key: number, index: number): number {
  let h = index ^ key;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return (h >>> 8) / 16777216;
}

/** DARE's keep test: element kept iff U(key, index) < p (so p ≥ 1 keeps all, p ≤ 0 none). */
export function keptAt(key: number, index: number, p: number): boolean {
  return uniformAt(key, index) < p;
}

// ---------------------------------------------------------------------------------------------------
// DELLA: per-row magnitude ranks → keep probabilities
// ---------------------------------------------------------------------------------------------------

/**
 * Ascending magnitude ranks of one row (0-based: 0 = smallest |δ|), ties broken by lower index first.
 * Sorts packed float64 keys |δ|bits·2²¹ + position (exact below 2²¹ elements per row; a native numeric sort,
 * faster than a JS radix sort on rows of a few hundred), else a comparator sort.
 * @returns ranks[q] = rank of row element q.
 */
export function rowRanks(row: Float32Array): Uint32Array {
  const c = row.length;
  const ranks = new Uint32Array(c);
  const bits = new Uint32Array(row.buffer, row.byteOffset, c);
  if (c <= 2097152) {
    const keys = new Float64Array(c);
    for (let q = 0; q < c; q++) keys[q] = (bits[q]! & 0x7fffffff) * 2097152 + q;
    keys.sort();
    for (let r = 0; r < c; r++) ranks[keys[r]! % 2097152] = r;
  } else {
    const order = Array.from({ length: c }, (_, q) => q);
    order.sort((p, q) => (bits[p]! & 0x7fffffff) - (bits[q]! & 0x7fffffff) || p - q);
    for (let r = 0; r < c; r++) ranks[order[r]!] = r;
  }
  return ranks;
}

/** DELLA keep probability of 0-based rank r in a row of c: (d−ε) + 2ε·r/(c−1); a 1-element row gets d (mergekit: 0/0 = NaN). */
export function dellaProbability(density: number, epsilon: number, rank: number, c: number): number {
  if (c <= 1) return density;
  return density - epsilon + (2 * epsilon * rank) / (c - 1);
}

// ---------------------------------------------------------------------------------------------------
// Sign election (TIES)
// ---------------------------------------------------------------------------------------------------

/**
 * TIES combine for one chunk: elected sign s = +1 where Σᵢ uᵢ ≥ 0 else −1; model i counts where
 * sign(uᵢ) = s (zeros, dropped entries and NaN never count); merged = Σ counted uᵢ and denom = Σ counted wᵢ
 * (0 → 1). Weighted deltas `us` are float64; sums in float64.
 */
export function electSign(
  us: readonly Float64Array[],
  weights: readonly number[],
  merged: Float64Array,
  denom: Float64Array,
): void {
  const n = merged.length;
  for (let j = 0; j < n; j++) {
    let total = 0;
    for (const u of us) total += u[j]!;
    const positive = !(total < 0); // NaN total elects +
    let sum = 0;
    let d = 0;
    for (let i = 0; i < us.length; i++) {
      const v = us[i]![j]!;
      if (positive ? v > 0 : v < 0) {
        sum += v;
        d += weights[i]!;
      } else if (v !== v) {
        sum += v; // keep NaN visible where an input was NaN
      }
    }
    merged[j] = sum;
    denom[j] = d === 0 ? 1 : d;
  }
}

import { test } from "node:test";
import assert from "node:assert/strict";
import { compileKernelsWasm, instantiateKernelsWasm, sharedWasmMemory, wasmSimdAvailable } from "./wasm-module.ts";
import { bandHistogram, chooseBand, DEFAULT_BAND, fineWindow, lightFraction, NO_BIN, samplePlan, tiesBand2Ref, tiesHistFine2Ref, type TiesBand } from "./ties-band.ts";
import { createMagnitudeRanking, endRankingPass } from "../methods/sparsify.ts";
import { BF16_SPECIALS, xorshift32 } from "../../../test/helpers/bf16-random.ts";

const skip = (!wasmSimdAvailable() || compileKernelsWasm() === undefined) && "no WebAssembly SIMD or build/wasm/kernels.wasm";

const rng = xorshift32;

const SPECIALS = BF16_SPECIALS;

/** base codes of magnitude 2⁻⁹..2⁻⁵ and tuned codes at ±0..3 ulp from them (heavy bins), 1 in 20 a special on either side. */
function data(n: number, seed: number): Uint16Array[] {
  const r = rng(seed);
  const b = new Uint16Array(n);
  for (let i = 0; i < n; i++) b[i] = ((r() & 1) << 15) | ((118 + (r() % 5)) << 7) | (r() & 0x7f);
  const xs = [0, 1].map(() => {
    const x = new Uint16Array(n);
    for (let i = 0; i < n; i++) x[i] = r() % 20 === 0 ? SPECIALS[r() % SPECIALS.length]! : (b[i]! + (r() % 7) - 3) & 0xffff;
    return x;
  });
  for (let i = 0; i < n; i++) if (r() % 20 === 0) b[i] = SPECIALS[r() % SPECIALS.length]!;
  return [b, xs[0]!, xs[1]!];
}

/** |δ| coarse histogram (65 536 bins) of one model, and the float32 |δ| patterns. */
function coarseOf(b: Uint16Array, x: Uint16Array): Uint32Array {
  const f = new Float32Array(2);
  const u = new Uint32Array(f.buffer);
  const h = new Uint32Array(65536);
  for (let i = 0; i < b.length; i++) {
    u[0] = b[i]! << 16;
    u[1] = x[i]! << 16;
    f[0] = f[1]! - f[0]!;
    h[(u[0]! & 0x7fffffff) >>> 16]!++;
  }
  return h;
}

test("tiesBand2: the WebAssembly kernel adds exactly what its TypeScript reference adds (bands, heavy bins, NaN/Inf, tails, i16 folds)", { skip }, () => {
  const mem = sharedWasmMemory(64);
  const k = instantiateKernelsWasm(mem, compileKernelsWasm()!);
  for (const n of [1, 7, 8, 13, 1000, 70001]) {
    const [b, x0, x1] = data(n, 100 + n);
    const bins0 = coarseOf(b!, x0!);
    const used = [...bins0.keys()].filter((q) => bins0[q]! > 0);
    const mid = used[used.length >> 1] ?? 0;
    const bands: TiesBand[] = [
      { lo: 0, hi: 0x7fff, heavyA: NO_BIN, heavyB: NO_BIN }, // everything light
      { lo: mid, hi: mid, heavyA: mid, heavyB: NO_BIN }, // one heavy bin
      { lo: Math.max(0, mid - 200), hi: mid + 200, heavyA: mid, heavyB: used[0] ?? 0 }, // heavy bin below the band is still counted
      { lo: 0, hi: 0x3780, heavyA: 0, heavyB: 0x3780 },
      { lo: 0x7f80, hi: 0x7fff, heavyA: 0x7f80, heavyB: 0x7fc0 }, // Inf and NaN bins
      { lo: 0x3000, hi: 0x2fff, heavyA: NO_BIN, heavyB: NO_BIN }, // empty band
    ];
    for (const b0 of bands) {
      for (const b1 of [bands[1]!, b0]) {
        const bp = 0;
        const x0p = n * 2 + 64 - ((n * 2) % 64);
        const x1p = x0p * 2;
        const h0 = x0p * 3;
        const h1 = h0 + 262144;
        const outp = h1 + 262144;
        new Uint16Array(mem.buffer, bp, n).set(b!);
        new Uint16Array(mem.buffer, x0p, n).set(x0!);
        new Uint16Array(mem.buffer, x1p, n).set(x1!);
        // pre-filled accumulators: the kernel adds (counts) and ORs into them
        const seed = Uint32Array.from({ length: 65536 }, (_, q) => q % 3);
        new Uint32Array(mem.buffer, h0, 65536).set(seed);
        new Uint32Array(mem.buffer, h1, 65536).set(seed);
        const out0 = [5, 6, 7, 8, 9, 10, 0x100, 0x2];
        new Uint32Array(mem.buffer, outp, 16).fill(0).set(out0);
        k.tiesBand2(bp, x0p, x1p, n, b0.lo, b0.hi, b0.heavyA, b0.heavyB, b1.lo, b1.hi, b1.heavyA, b1.heavyB, h0, h1, outp);
        const r0 = seed.slice();
        const r1 = seed.slice();
        const out = Uint32Array.from(out0);
        tiesBand2Ref(b!, x0!, x1!, [b0, b1], r0, r1, out);
        const what = JSON.stringify({ n, b0, b1 });
        assert.deepEqual([...new Uint32Array(mem.buffer, outp, 8)], [...out], what);
        assert.ok(Buffer.from(new Uint32Array(mem.buffer, h0, 65536).slice().buffer).equals(Buffer.from(r0.buffer)), `h0 ${what}`);
        assert.ok(Buffer.from(new Uint32Array(mem.buffer, h1, 65536).slice().buffer).equals(Buffer.from(r1.buffer)), `h1 ${what}`);
      }
    }
  }
});

test("tiesHistFine2: the WebAssembly kernel adds exactly what its TypeScript reference adds (coarse, OR, fine windows at the edges, NaN/Inf)", { skip }, () => {
  const mem = sharedWasmMemory(160);
  const k = instantiateKernelsWasm(mem, compileKernelsWasm()!);
  const seed = Uint32Array.from({ length: 8 * 65536 }, (_, q) => q % 5);
  for (const n of [5, 8, 1003, 20000]) {
    const [b, x0, x1] = data(n, 300 + n);
    // non-bf16 |δ| too: every 7th tuned element far from the base
    for (let i = 0; i < n; i += 7) x1![i] = (x1![i]! ^ 0x0c35) & 0xffff;
    const bins0 = coarseOf(b!, x0!);
    const used = [...bins0.keys()].filter((q) => bins0[q]! > 0);
    const mid = used[used.length >> 1] ?? 0;
    const windows: { lo: number; w: number }[] = [
      { lo: mid, w: 8 },
      { lo: mid - 7, w: 8 },
      { lo: 0, w: 1 },
      { lo: 0x7f80, w: 8 }, // Inf and the first NaN bins
      { lo: 0x7ff9, w: 7 }, // up to the last bin
      { lo: mid, w: 0 },
    ];
    for (const w0 of windows) {
      for (const w1 of [windows[0]!, w0]) {
        const x0p = n * 2 + 64 - ((n * 2) % 64);
        const x1p = x0p * 2;
        const h0 = x0p * 3;
        const h1 = h0 + 262144;
        const orp = h1 + 262144;
        const f0 = orp + 64;
        const f1 = f0 + 8 * 262144;
        new Uint16Array(mem.buffer, 0, n).set(b!);
        new Uint16Array(mem.buffer, x0p, n).set(x0!);
        new Uint16Array(mem.buffer, x1p, n).set(x1!);
        new Uint32Array(mem.buffer, h0, 65536).set(seed.subarray(0, 65536));
        new Uint32Array(mem.buffer, h1, 65536).set(seed.subarray(0, 65536));
        new Uint32Array(mem.buffer, orp, 2).set([0x10, 0]);
        new Uint32Array(mem.buffer, f0, 8 * 65536).set(seed);
        new Uint32Array(mem.buffer, f1, 8 * 65536).set(seed);
        k.tiesHistFine2(0, x0p, x1p, n, h0, h1, orp, w0.lo, w0.w, f0, w1.lo, w1.w, f1);
        const r = [0, 1, 2, 3].map(() => seed.slice(0, 65536));
        const rf = [seed.slice(), seed.slice()];
        const out = Uint32Array.from([0x10, 0]);
        tiesHistFine2Ref(b!, x0!, x1!, r[0]!, r[1]!, out, [w0, w1], [rf[0]!, rf[1]!]);
        const what = JSON.stringify({ n, w0, w1 });
        const same = (p: number, want: Uint32Array): boolean => Buffer.from(new Uint32Array(mem.buffer, p, want.length).slice().buffer).equals(Buffer.from(want.buffer));
        assert.deepEqual([...new Uint32Array(mem.buffer, orp, 2)], [...out], what);
        assert.ok(same(h0, r[0]!) && same(h1, r[1]!), `coarse ${what}`);
        assert.ok(same(f0, rf[0]!) && same(f1, rf[1]!), `fine ${what}`);
      }
    }
  }
});

test("tiesBand2Ref: hand-computed counts", () => {
  // δ = x − b: 1 − 1 = 0 (bin 0); 1.0078125 − 1 = 2⁻⁷ (bin 0x3c00); 2 − 1 = 1 (bin 0x3f80); Inf − 1 = Inf (bin 0x7f80);
  // NaN (bin 0x7fc0); 1 − 1.0078125 = −2⁻⁷ (bin 0x3c00); 1.5 − 1 = 0.5 (bin 0x3f00); 3 − 2 = 1 (bin 0x3f80)
  const b = Uint16Array.from([0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x3f81, 0x3f80, 0x4000]);
  const x = Uint16Array.from([0x3f80, 0x3f81, 0x4000, 0x7f80, 0x7fc0, 0x3f80, 0x3fc0, 0x4040]);
  const band: TiesBand = { lo: 0x3c00, hi: 0x3f80, heavyA: 0x3f80, heavyB: NO_BIN };
  const h0 = new Uint32Array(65536);
  const h1 = new Uint32Array(65536);
  const out = new Uint32Array(8);
  tiesBand2Ref(b, x, x, [band, { lo: 0, hi: 0, heavyA: 0, heavyB: 0x3c00 }], h0, h1, out);
  // model 0: above 0x3f80: Inf, NaN (2); heavy 0x3f80: 2; light: 0x3c00 ×2, 0x3f00 ×1; 0 is below the band
  // model 1: above bin 0: 7; heavy 0: 1; heavy 0x3c00 (above the band, still counted): 2
  assert.deepEqual([...out], [2, 7, 2, 0, 1, 2, 0x0000, 0x0000]);
  assert.equal(h0[0x3c00], 2);
  assert.equal(h0[0x3f00], 1);
  assert.equal(h0.reduce((a, c) => a + c, 0), 3);
  assert.equal(h1.reduce((a, c) => a + c, 0), 0);
});

/** The ranking decision of the reference on a coarse histogram (pass 0, the fast path's settings). */
function decide(coarse: Uint32Array, n: number, k: number, or: number): Record<string, unknown> {
  const st = createMagnitudeRanking(n, [k], 0, { countTiesInKernel: true, needL1: false });
  st.coarse = coarse;
  st.coarseLowOr = new Uint16Array(65536).fill(or);
  endRankingPass(0, st);
  const s = st.selectors[0]!;
  return { bin: s.bin, above: s.above, valueBits: s.valueBits, tiesNeeded: s.tiesNeeded, cutoffIndex: s.cutoffIndex, done: s.done, fine: s.fine?.length };
}

test("bandHistogram: endRankingPass decides as on the full histogram when the k-th |δ| is in the band (edges lo and hi included), else undefined", () => {
  const n = 20000;
  const [b, x0] = data(n, 7);
  const full = coarseOf(b!, x0!);
  const used = [...full.keys()].filter((q) => full[q]! > 0);
  // ranks whose boundary bins are 0 (δ = 0), ordinary, Inf (0x7f80) and NaN bins
  const suffix = new Float64Array(65537); // suffix[q]: entries in bins ≥ q
  for (let q = 65535; q >= 0; q--) suffix[q] = suffix[q + 1]! + full[q]!;
  const bigger = (q: number): number => suffix[q + 1]!;
  const ks = [1, 2, 37, 5000, 10000, 15000, n - bigger(0), n - 1, bigger(0x7f7f), bigger(0x7f7f) + 1, bigger(0x7f80) + 1];
  let inside = 0;
  let outside = 0;
  for (const k of ks) {
    for (const or of [k & 1]) {
      // or 1 (some |δ| has low bits): the fine pass follows; or 0: decided after pass 0
      const want = decide(full, n, k, or);
      const bb = want.bin as number;
      const around = used.filter((u) => Math.abs(used.indexOf(u) - used.indexOf(bb)) <= 2).concat([bb - 1, bb + 1].filter((q) => q >= 0 && q <= 0x7fff));
      for (const lo of around) {
        for (const hi of around) {
          if (hi < lo) continue;
          for (const heavy of [[NO_BIN, NO_BIN], [bb, NO_BIN], [lo, hi], [hi, bb]]) {
            const band: TiesBand = { lo, hi, heavyA: heavy[0]!, heavyB: heavy[0] === heavy[1] ? NO_BIN : heavy[1]! };
            if ((band.heavyA !== NO_BIN && (band.heavyA < lo || band.heavyA > hi)) || (band.heavyB !== NO_BIN && (band.heavyB < lo || band.heavyB > hi))) continue;
            const above = suffix[hi + 1]!;
            const light = new Uint32Array(65536);
            for (let q = lo; q <= hi; q++) if (q !== band.heavyA && q !== band.heavyB) light[q] = full[q]!;
            const counts = { above, heavyA: band.heavyA === NO_BIN ? 0 : full[band.heavyA]!, heavyB: band.heavyB === NO_BIN ? 0 : full[band.heavyB]!, light };
            const h = bandHistogram(band, counts, k, n);
            const what = JSON.stringify({ k, band, bb });
            if (bb >= lo && bb <= hi) {
              inside++;
              assert.ok(h !== undefined, what);
              assert.equal(h.reduce((a, c) => a + c, 0), n, what);
              assert.deepEqual(decide(h, n, k, or), want, what);
            } else {
              outside++;
              assert.equal(h, undefined, what);
            }
          }
        }
      }
    }
  }
  assert.ok(inside > 100 && outside > 100, `${inside} ${outside}`);
});

test("samplePlan and chooseBand: deterministic evenly spaced blocks; a band that holds the k-th |δ| of a representative sample", () => {
  assert.deepEqual(samplePlan(4 * 2 ** 20 - 1, DEFAULT_BAND), { starts: [], len: 0 });
  const plan = samplePlan(16 * 2 ** 20, DEFAULT_BAND);
  assert.equal(plan.len, 4096);
  assert.equal(plan.starts.length, 128);
  assert.equal(plan.starts[0], 65536 - 2048); // centred on (i + ½)·n/128
  assert.equal(plan.starts[127], 16 * 2 ** 20 - 65536 - 2048);
  assert.ok(plan.starts.every((s, i) => s % 8 === 0 && (i === 0 || s >= plan.starts[i - 1]! + plan.len)));
  // a small tensor: fewer blocks (at most n/16 sampled), clamped inside the tensor
  const small = samplePlan(1000, { ...DEFAULT_BAND, minElems: 0, blockElems: 64 });
  assert.deepEqual(small, { starts: [464], len: 64 }); // floor(1000 / 16 / 64) = 0 → 1 block: 500 − 32 = 468, rounded down to 8
  // 3 blocks centred on 166.7, 500, 833.3
  assert.deepEqual(samplePlan(1000, { ...DEFAULT_BAND, minElems: 0, blockElems: 64, maxFraction: 2, blocks: 3 }).starts, [128, 464, 800]);

  const n = 40000;
  const [b, x0] = data(n, 9);
  const full = coarseOf(b!, x0!);
  for (const k of [100, 4000, 20000, 39000]) {
    const band = chooseBand(full, n, k, n)!;
    const bb = decide(full, n, k, 1).bin as number;
    assert.ok(band.lo <= bb && bb <= band.hi, JSON.stringify({ k, band, bb }));
    // heavy: the two fullest bins of the band
    const inBand = [...full.keys()].filter((q) => q >= band.lo && q <= band.hi && full[q]! > 0).sort((p, q) => full[q]! - full[p]! || p - q);
    assert.deepEqual([band.heavyA, band.heavyB], [inBand[0], inBand[1] ?? NO_BIN]);
  }
  // a flat histogram: the band's light part is its bins but the two heavy ones
  const flat = new Uint32Array(65536).fill(1, 0x3000, 0x3400);
  const fb = chooseBand(flat, 1024, 512, 1024)!;
  assert.equal(lightFraction(flat, 1024, fb), (fb.hi - fb.lo - 1) / 1024);
  assert.ok(fb.hi - fb.lo + 1 >= 2 * (12 * 16 + 2 + 16) && fb.hi - fb.lo + 1 <= 2 * (12 * 16 + 2 + 16) + 2); // ± margin around 512
  assert.equal(chooseBand(flat, 0, 512, 1024), undefined);
});

test("fineWindow: the whole band up to 8 bins, else 8 bins around the sample's boundary bin (4 below, 3 above) kept inside the band", () => {
  const band = (lo: number, hi: number, center?: number): TiesBand => ({ lo, hi, heavyA: NO_BIN, heavyB: NO_BIN, ...(center === undefined ? {} : { center }) });
  assert.deepEqual(fineWindow(band(100, 107)), { lo: 100, w: 8 });
  assert.deepEqual(fineWindow(band(100, 100)), { lo: 100, w: 1 });
  assert.deepEqual(fineWindow(band(100, 120, 110)), { lo: 106, w: 8 });
  assert.deepEqual(fineWindow(band(100, 120, 101)), { lo: 100, w: 8 });
  assert.deepEqual(fineWindow(band(100, 120, 120)), { lo: 113, w: 8 });
  assert.deepEqual(fineWindow(band(100, 120)), { lo: 0, w: 0 });
  // chooseBand's centre is the sample's own boundary bin
  const h = new Uint32Array(65536);
  for (let b = 0x3000; b < 0x3100; b++) h[b] = 4;
  const c = chooseBand(h, 1024, 100, 1024)!;
  assert.equal(c.center, 0x30e7); // the 25 bins 0x30ff..0x30e7 hold the first 100
  assert.ok(c.lo <= c.center! && c.center! <= c.hi);
});

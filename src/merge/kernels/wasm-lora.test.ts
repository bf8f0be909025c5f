/**
 * The AssemblyScript LoRA kernels (assembly/lora.ts) against their TypeScript references, byte for byte:
 * `loraF32` vs `addDeltaRange` (lora-delta.ts), `loraBf16` vs decode → `addDeltaRange` → `weightedSum`
 * (linear.ts) → ÷ d → bf16 encode (core/dtype.ts), on seeded random data with NaN, ±Inf, ±0 and subnormal
 * values in θ, U and V, ranks 1/7/16/64, shapes that are not multiples of 4, 8 or 16, and the transposed
 * (fan_in_fan_out) layout.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { compileKernelsWasm, instantiateKernelsWasm, type KernelsWasmExports } from "./wasm-module.ts";
import { sharedWasmMemory, type WasmMemory } from "./wasm-module.ts";
import { addDeltaRange, deltaScratch, lowRankFromAB, type LowRankDelta } from "../lora-delta.ts";
import { weightedSum } from "../methods/linear.ts";
import { decodeToF32, encodeFromF32 } from "../../core/dtype.ts";
import { seededRandom } from "../../core/random.ts";

const rng = seededRandom;

const SPECIAL_F32 = [NaN, Infinity, -Infinity, 0, -0, 1e-40, -3e-42, 1.4e-45, 3.4e38, -3.4e38];

/** float32 values, mostly ordinary, some special (NaN with distinct payloads too). */
function randomF32(n: number, rand: () => number, scale: number, specialRate: number): Float32Array {
  const x = new Float32Array(n);
  const bits = new Uint32Array(x.buffer);
  for (let i = 0; i < n; i++) {
    const u = rand();
    if (u < specialRate) {
      const k = Math.floor(rand() * (SPECIAL_F32.length + 1));
      if (k === SPECIAL_F32.length) bits[i] = (0x7fc00000 | Math.floor(rand() * 0x3fffff)) ^ (rand() < 0.5 ? 0x80000000 : 0);
      else x[i] = SPECIAL_F32[k]!;
    } else {
      x[i] = (rand() * 2 - 1) * scale;
    }
  }
  return x;
}

/** bf16 codes: random finite values around ±1, some NaN/Inf/±0/subnormal codes. */
function randomBf16(n: number, rand: () => number, specialRate: number): Uint16Array {
  const special = [0x7fc0, 0xffc1, 0x7f81, 0x7f80, 0xff80, 0x0000, 0x8000, 0x0001, 0x807f, 0x7f7f];
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    if (rand() < specialRate) out[i] = special[Math.floor(rand() * special.length)]!;
    else out[i] = 0x3c00 + Math.floor(rand() * 0x0700) + (rand() < 0.5 ? 0x8000 : 0);
  }
  return out;
}

interface Harness {
  readonly k: KernelsWasmExports;
  readonly memory: WasmMemory;
  /** Bump allocator over the memory (64-byte aligned). */
  alloc(bytes: number): number;
  reset(): void;
}

function harness(): Harness {
  const module = compileKernelsWasm();
  assert.ok(module, "build/wasm/kernels.wasm is missing: run `npm run build:wasm`");
  const memory = sharedWasmMemory(256); // 16 MiB
  const k = instantiateKernelsWasm(memory, module);
  let top = 64;
  return {
    k,
    memory,
    alloc(bytes) {
      const at = Math.ceil(top / 64) * 64;
      top = at + bytes;
      assert.ok(top <= memory.buffer.byteLength);
      return at;
    },
    reset() {
      top = 64;
    },
  };
}

function putF32(h: Harness, x: Float32Array): number {
  const p = h.alloc(x.byteLength);
  new Float32Array(h.memory.buffer, p, x.length).set(x);
  return p;
}

/**
 * Runs loraF32 over the whole of x (f32, rows × cols) in h; returns its bits, those of lora-delta.ts's
 * addDeltaRange, and where U and V were put (for further kernels on the same factors).
 */
function loraF32AndReference(h: Harness, d: LowRankDelta, x: Float32Array): { got: Uint32Array; want: Uint32Array; wantF32: Float32Array; up: number; vp: number } {
  const wantF32 = x.slice();
  addDeltaRange(d, 0, wantF32.length, wantF32, deltaScratch(d.cols));
  const up = putF32(h, d.u);
  const vp = putF32(h, d.v);
  const xp = putF32(h, x);
  h.k.loraF32(xp, up, vp, d.rows, d.cols, d.rank, Math.fround(d.scale));
  return { got: new Uint32Array(h.memory.buffer, xp, d.rows * d.cols).slice(), want: new Uint32Array(wantF32.buffer), wantF32, up, vp };
}

/** Copies into memory at a deliberately odd (2-byte) offset so bf16 rows are unaligned. */
function putBf16(h: Harness, x: Uint16Array): number {
  const p = h.alloc(x.byteLength + 2) + 2;
  new Uint16Array(h.memory.buffer, p, x.length).set(x);
  return p;
}

function delta(rows: number, cols: number, rank: number, seed: number, transposed: boolean, specialRate: number): LowRankDelta {
  const rand = rng(seed);
  // peft layout: A [r, in], B [out, r]; the stored layout is [out, in], or [in, out] when transposed
  const [outDim, inDim] = transposed ? [cols, rows] : [rows, cols];
  const a = randomF32(rank * inDim, rand, 0.5, specialRate);
  const b = randomF32(outDim * rank, rand, 0.5, specialRate);
  const s = [2, 0.25, 16 / Math.sqrt(rank), 1 / 3][seed % 4]!;
  return lowRankFromAB(a, b, rank, inDim, outDim, s, transposed);
}

const SHAPES: readonly (readonly [number, number])[] = [
  [1, 1],
  [3, 5],
  [4, 8],
  [7, 9],
  [13, 37],
  [9, 64],
  [21, 131],
  [5, 300],
];
const RANKS = [1, 7, 16, 64];

/**
 * Bit equality. With `nanPayloadFree`, an element where the reference is NaN only has to be NaN: where two
 * different NaNs meet (NaN·NaN, NaN + (Inf − Inf), …) neither IEEE 754 nor JavaScript fixes the payload
 * that wins, and the float64 JS reference's choice follows V8's register allocation; single NaNs are
 * checked bit for bit by the next tests.
 */
function sameBits(got: Uint32Array | Uint16Array, want: Uint32Array | Uint16Array, what: string, nanPayloadFree = false): void {
  assert.equal(got.length, want.length);
  const f32 = got instanceof Uint32Array;
  const isNaN = (b: number): boolean => (f32 ? (b & 0x7fffffff) >>> 0 > 0x7f800000 : (b & 0x7fff) > 0x7f80);
  for (let i = 0; i < got.length; i++) {
    if (got[i] === want[i] || (nanPayloadFree && isNaN(want[i]!) && isNaN(got[i]!))) continue;
    assert.fail(`${what}: element ${i}: got 0x${got[i]!.toString(16)}, expected 0x${want[i]!.toString(16)}`);
  }
}

test("loraF32 equals addDeltaRange bit for bit (ranks 1/7/16/64, odd shapes, NaN/Inf/subnormal, transposed)", () => {
  const h = harness();
  let seed = 1;
  for (const [rows, cols] of SHAPES) {
    for (const rank of RANKS) {
      for (const transposed of [false, true]) {
        for (const specialRate of [0, 0.03]) {
          h.reset();
          const d = delta(rows, cols, rank, seed++, transposed, specialRate);
          assert.equal(d.rows, rows);
          const x = randomF32(rows * cols, rng(seed++), 2, specialRate);
          const { got, want } = loraF32AndReference(h, d, x);
          sameBits(got, want, `${rows}×${cols} r=${rank}${transposed ? " transposed" : ""} specials ${specialRate}`, specialRate > 0);
        }
      }
    }
  }
});

test("loraF32 over a band of rows (pointers at a middle row) equals the whole-tensor reference", () => {
  const h = harness();
  const [rows, cols, rank] = [23, 45, 16];
  const d = delta(rows, cols, rank, 99, false, 0.01);
  const x = randomF32(rows * cols, rng(100), 1, 0.01);
  const want = x.slice();
  addDeltaRange(d, 0, want.length, want, deltaScratch(cols));
  const up = putF32(h, d.u);
  const vp = putF32(h, d.v);
  const xp = putF32(h, x);
  // bands of 4, 9 and 10 rows, as the pool splits a chunk between workers
  for (const [r0, r1] of [[0, 4], [4, 13], [13, 23]] as const) {
    h.k.loraF32(xp + r0 * cols * 4, up + r0 * rank * 4, vp, r1 - r0, cols, rank, Math.fround(d.scale));
  }
  sameBits(new Uint32Array(h.memory.buffer, xp, rows * cols).slice(), new Uint32Array(want.buffer), "bands", true);
});

/** The generic path's bytes: decode θ and y, t = θ + s·U·V, weightedSum in term order, ÷ d, encode bf16. */
function referenceBf16(d: LowRankDelta, theta: Uint16Array, y: Uint16Array | undefined, cA: number, cB: number, aFirst: boolean, divisor: number | undefined): Uint16Array {
  const n = theta.length;
  const t = new Float32Array(n);
  decodeToF32("BF16", new Uint8Array(theta.buffer, theta.byteOffset, n * 2), t, n);
  addDeltaRange(d, 0, n, t, deltaScratch(d.cols));
  const out = new Float32Array(n);
  if (y === undefined) {
    weightedSum([t], [cA], out);
  } else {
    const yf = new Float32Array(n);
    decodeToF32("BF16", new Uint8Array(y.buffer, y.byteOffset, n * 2), yf, n);
    if (aFirst) weightedSum([t, yf], [cA, cB], out);
    else weightedSum([yf, t], [cB, cA], out);
  }
  if (divisor !== undefined) for (let i = 0; i < n; i++) out[i] = out[i]! / Math.fround(divisor);
  const bytes = new Uint8Array(n * 2);
  encodeFromF32("BF16", out, bytes, n);
  return new Uint16Array(bytes.buffer);
}

test("loraBf16 equals decode → addDeltaRange → weightedSum → ÷ d → bf16 byte for byte", () => {
  const h = harness();
  const forms: { cA: number; cB: number | undefined; aFirst: boolean; d: number | undefined }[] = [
    { cA: 0.5, cB: 0.5, aFirst: false, d: undefined }, // linear λ=0.5: [aligned, tuned]
    { cA: 0.3, cB: 0.7, aFirst: false, d: undefined },
    { cA: 0.3, cB: 0.7, aFirst: true, d: undefined },
    { cA: 0.3, cB: 0.6, aFirst: false, d: Math.fround(0.9) }, // normalize with Σw ≠ 1
    { cA: 1, cB: undefined, aFirst: true, d: undefined }, // λ = 1: the tuned term alone
    { cA: 1.75, cB: undefined, aFirst: true, d: 3 },
  ];
  let seed = 1000;
  for (const [rows, cols] of SHAPES) {
    for (const rank of RANKS) {
      for (const transposed of [false, true]) {
        for (const specialRate of [0, 0.03]) {
          const f = forms[seed % forms.length]!;
          h.reset();
          const d = delta(rows, cols, rank, seed++, transposed, specialRate);
          const rand = rng(seed++);
          const theta = randomBf16(rows * cols, rand, specialRate);
          const y = f.cB === undefined ? undefined : randomBf16(rows * cols, rand, specialRate);
          const want = referenceBf16(d, theta, y, f.cA, f.cB ?? 0, f.aFirst, f.d);
          const up = putF32(h, d.u);
          const vp = putF32(h, d.v);
          const tp = putBf16(h, theta);
          const yp = y === undefined ? 0 : putBf16(h, y);
          const op = putBf16(h, new Uint16Array(rows * cols));
          const hasY = y === undefined ? 0 : 1;
          h.k.loraBf16(tp, yp, op, up, vp, rows, cols, rank, Math.fround(d.scale), Math.fround(f.cA), hasY, Math.fround(f.cB ?? 0), f.aFirst ? 1 : 0, f.d === undefined ? 0 : 1, f.d ?? 1);
          const what = `${rows}×${cols} r=${rank}${transposed ? " transposed" : ""} specials ${specialRate} form ${JSON.stringify(f)}`;
          sameBits(new Uint16Array(h.memory.buffer, op, rows * cols).slice(), want, what, specialRate > 0);
          // in place (out = θ) gives the same bytes
          h.k.loraBf16(tp, yp, tp, up, vp, rows, cols, rank, Math.fround(d.scale), Math.fround(f.cA), hasY, Math.fround(f.cB ?? 0), f.aFirst ? 1 : 0, f.d === undefined ? 0 : 1, f.d ?? 1);
          sameBits(new Uint16Array(h.memory.buffer, tp, rows * cols).slice(), want, `${what} in place`, specialRate > 0);
        }
      }
    }
  }
});

test("a single NaN (in θ, U or V; no Inf) keeps its payload bit for bit, in the f32 and bf16 kernels", () => {
  const h = harness();
  const [rows, cols, rank] = [9, 21, 7];
  const rand = rng(7);
  for (const where of ["theta", "u", "v"] as const) {
    h.reset();
    const d = delta(rows, cols, rank, 11, false, 0);
    const x = randomF32(rows * cols, rand, 1, 0);
    const theta = randomBf16(rows * cols, rand, 0);
    const nanBits = 0xffa5a5a5; // a negative NaN with a payload (quiet after the first operation)
    const bits = new Uint32Array([nanBits]);
    const nan = new Float32Array(bits.buffer)[0]!;
    // one NaN element: θ[4, 10], U[4, 3] (poisons row 4) or V[3, 10] (poisons column 10)
    if (where === "theta") {
      new Uint32Array(x.buffer)[4 * cols + 10] = nanBits;
      theta[4 * cols + 10] = 0xffa5;
    } else if (where === "u") d.u[4 * rank + 3] = nan;
    else d.v[3 * cols + 10] = nan;
    const { got, want, wantF32, up, vp } = loraF32AndReference(h, d, x);
    const nans = [...wantF32].filter((v) => Number.isNaN(v)).length;
    assert.equal(nans, where === "theta" ? 1 : where === "u" ? cols : rows);
    sameBits(got, want, `f32 NaN in ${where}`);
    const wantB = referenceBf16(d, theta, theta, 0.25, 0.75, false, undefined);
    const tp = putBf16(h, theta);
    const op = putBf16(h, new Uint16Array(rows * cols));
    h.k.loraBf16(tp, tp, op, up, vp, rows, cols, rank, Math.fround(d.scale), 0.25, 1, 0.75, 0, 0, 1);
    sameBits(new Uint16Array(h.memory.buffer, op, rows * cols).slice(), wantB, `bf16 NaN in ${where}`);
  }
});

test("loraBf16: hand-computed 1×1 rank-2 case, θ = 1, U = [1, 2], V = [0.5, 0.25]ᵀ, s = 2: t = 3, λ = 0.5 with θ as the aligned term → 2", () => {
  const h = harness();
  const up = putF32(h, new Float32Array([1, 2]));
  const vp = putF32(h, new Float32Array([0.5, 0.25]));
  const tp = putBf16(h, new Uint16Array([0x3f80])); // 1
  const op = putBf16(h, new Uint16Array(1));
  // t = 1 + 2·(0.5 + 0.5) = 3; out = 0.5·1 + 0.5·3 = 2 … with the aligned term θ itself
  h.k.loraBf16(tp, tp, op, up, vp, 1, 1, 2, 2, 0.5, 1, 0.5, 0, 0, 1);
  assert.equal(new Uint16Array(h.memory.buffer, op, 1)[0], 0x4000); // 2.0
});

/**
 * Loads realign's WebAssembly kernels module, `build/wasm/kernels.wasm`, compiled with AssemblyScript from
 * `src/merge/kernels/assembly/*.ts` by `scripts/build-wasm.mjs` (run by `npm ci` through `prepare`, and by
 * `npm test`). The module imports the kernel pool's shared memory as `env.memory` and has no data segment,
 * so the pool's allocator owns that memory from byte 0.
 *
 * When the file is missing or cannot be compiled (an install with `--ignore-scripts`, a runtime without
 * WebAssembly SIMD or shared memory), `compileKernelsWasm()` returns undefined, `wasmSimdAvailable()` is
 * false and callers keep their TypeScript kernels, which are the reference the tests compare the
 * WebAssembly ones against. `REALIGN_KERNELS_WASM=<path>` loads the module from another path (tests use a
 * missing path to check the fallback).
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { wasmApi, type WasmMemory, type WasmModule } from "../../core/wasm-api.ts";

export { wasmApi, type WasmMemory, type WasmModule };

/** Creates a shared memory of `pages` 64 KiB pages (fixed size). @throws when WebAssembly is unavailable. */
export function sharedWasmMemory(pages: number): WasmMemory {
  if (wasmApi === undefined) throw new Error("WebAssembly is not available");
  return new wasmApi.Memory({ initial: pages, maximum: pages, shared: true });
}

// --- the kernels module -----------------------------------------------------------------------------

/** Absolute path of the compiled kernels module. */
export const KERNELS_WASM_PATH = process.env.REALIGN_KERNELS_WASM ?? fileURLToPath(new URL("../../../build/wasm/kernels.wasm", import.meta.url));

/**
 * The bf16 weighted-sum kernels of the linear fast path (`assembly/bf16.ts`; reference `fused.ts`
 * `fusedBf16`). Pointers are byte offsets into the shared memory (2-byte aligned); n = elements, a multiple
 * of 8; coefficients and divisors are float32.
 * - `wsum2(a, b, out, n, c0, c1)`           out = bf16(f32(c0·a) + f32(c1·b))
 * - `wsum2d(a, b, out, n, c0, c1, d)`       out = bf16((f32(c0·a) + f32(c1·b)) / d)
 * - `first(x, acc, n, c)`                    acc(f32, n × 4 bytes) = f32(c·x)   (k-input path, step 1)
 * - `accum(x, acc, n, c)`                    acc = f32(acc + f32(c·x))
 * - `fin(acc, out, n)` / `find(acc, out, n, d)`   out = bf16(acc) / bf16(acc / d)
 * - `copyBytes(dst, src, n)`                 n bytes src → dst (a merged piece into the output staging)
 */
export interface Bf16WasmExports {
  wsum2(a: number, b: number, out: number, n: number, c0: number, c1: number): void;
  wsum2d(a: number, b: number, out: number, n: number, c0: number, c1: number, d: number): void;
  first(x: number, acc: number, n: number, c: number): void;
  accum(x: number, acc: number, n: number, c: number): void;
  fin(acc: number, out: number, n: number): void;
  find(acc: number, out: number, n: number, d: number): void;
  copyBytes(dst: number, src: number, n: number): void;
}

/** Exports of the kernels module (kernel files add theirs; see assembly/index.ts). */
export interface KernelsWasmExports extends Bf16WasmExports {
  abiVersion(): number;
  /** Σ of n float32 at byte offset p, as float64 (self-check). */
  sumF32(p: number, n: number): number;
  // TIES / DARE-TIES over bf16 chunks (assembly/ties.ts; used by workers/fast-ties.ts)
  tiesHist2(bp: number, x0p: number, x1p: number, n: number, h0: number, h1: number, orp: number): void;
  tiesBand2(bp: number, x0p: number, x1p: number, n: number, lo0: number, hi0: number, hA0: number, hB0: number, lo1: number, hi1: number, hA1: number, hB1: number, h0: number, h1: number, outp: number): void;
  tiesHistFine2(bp: number, x0p: number, x1p: number, n: number, h0: number, h1: number, orp: number, lo0: number, w0: number, f0: number, lo1: number, w1: number, f1: number): void;
  tiesFine(bp: number, xp: number, n: number, bin: number, fine: number): void;
  tiesCount2(bp: number, x0p: number, x1p: number, n: number, vb0: number, vb1: number, outp: number): void;
  ties2(bp: number, x0p: number, x1p: number, op: number, n: number, vb0: number, vb1: number, left0: number, left1: number, w0: number, w1: number, f0: number, f1: number, lambda: number, normalize: number, flagp: number): void;
  dareL1x2(bp: number, x0p: number, x1p: number, n: number, offset: number, key0: number, K0: number, key1: number, K1: number, statep: number, outp: number, fresh: number, flush: number, maskp: number): void;
  dare2(bp: number, x0p: number, x1p: number, op: number, n: number, offset: number, key0: number, K0: number, key1: number, K1: number, w0: number, w1: number, f0: number, f1: number, lambda: number, normalize: number, flagp: number, linear: number, divisor: number, maskp: number): void;
  /** LoRA delta in place on float32 rows (assembly/lora.ts; reference `addDeltaRange`). */
  loraF32(x: number, u: number, v: number, rows: number, cols: number, rank: number, s: number): void;
  /** LoRA delta fused with bf16 decode, a two-term weighted sum and bf16 encode (assembly/lora.ts). */
  loraBf16(
    theta: number,
    y: number,
    out: number,
    u: number,
    v: number,
    rows: number,
    cols: number,
    rank: number,
    s: number,
    cA: number,
    hasY: number,
    cB: number,
    aFirst: number,
    hasD: number,
    d: number,
  ): void;
}

let cached: WasmModule | null | undefined;

/** The compiled kernels module (cached), or undefined when unavailable. Never throws. */
export function compileKernelsWasm(): WasmModule | undefined {
  if (cached !== undefined) return cached ?? undefined;
  cached = null;
  if (wasmApi === undefined) return undefined;
  try {
    const bytes = readFileSync(KERNELS_WASM_PATH);
    if (!wasmApi.validate(bytes)) return undefined;
    cached = new wasmApi.Module(bytes);
  } catch {
    return undefined;
  }
  return cached ?? undefined;
}

/** True when the kernels module is built and this runtime runs it (WebAssembly SIMD + shared memory). */
export function wasmSimdAvailable(): boolean {
  if (compileKernelsWasm() === undefined) return false;
  try {
    sharedWasmMemory(1);
    return true;
  } catch {
    return false;
  }
}

/** Instantiates the kernels module over `memory` (imported as env.memory). */
export function instantiateKernelsWasm(memory: WasmMemory, module: WasmModule): KernelsWasmExports {
  return new wasmApi!.Instance(module, { env: { memory } }).exports as unknown as KernelsWasmExports;
}

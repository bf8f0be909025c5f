/**
 * Loads realign's AssemblyScript kernels module, `build/wasm/kernels.wasm`, compiled from
 * `src/merge/kernels/assembly/*.ts` by `scripts/build-wasm.mjs` (run by `npm ci` through `prepare`, and by
 * `npm test`). The module imports the kernel pool's shared memory as `env.memory` and has no data segment,
 * so it can share one `WebAssembly.Memory` with the bf16 module of `wasm-bf16.ts`.
 *
 * When the file is missing or cannot be compiled (an install with `--ignore-scripts`, a runtime without
 * WebAssembly SIMD), `compileKernelsWasm()` returns undefined and callers keep their TypeScript kernels,
 * which are the reference the tests compare the WebAssembly ones against.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { wasmApi, type WasmMemory, type WasmModule } from "./wasm-bf16.ts";

/** Absolute path of the compiled kernels module. */
export const KERNELS_WASM_PATH = fileURLToPath(new URL("../../../build/wasm/kernels.wasm", import.meta.url));

/** Exports of the kernels module every build has (kernel files add theirs; see assembly/index.ts). */
export interface KernelsWasmExports {
  abiVersion(): number;
  /** Σ of n float32 at byte offset p, as float64 (self-check). */
  sumF32(p: number, n: number): number;
  // TIES / DARE-TIES over bf16 chunks (assembly/ties.ts; used by workers/fast-ties.ts)
  tiesHist2(bp: number, x0p: number, x1p: number, n: number, h0: number, h1: number, orp: number): void;
  tiesFine(bp: number, xp: number, n: number, bin: number, fine: number): void;
  tiesCount2(bp: number, x0p: number, x1p: number, n: number, vb0: number, vb1: number, outp: number): void;
  ties2(bp: number, x0p: number, x1p: number, op: number, n: number, vb0: number, vb1: number, left0: number, left1: number, w0: number, w1: number, f0: number, f1: number, lambda: number, normalize: number, flagp: number): void;
  dareL1(bp: number, xp: number, n: number, offset: number, key: number, k2: number, K: number, statep: number): void;
  dare2(bp: number, x0p: number, x1p: number, op: number, n: number, offset: number, key0: number, k20: number, K0: number, key1: number, k21: number, K1: number, w0: number, w1: number, f0: number, f1: number, lambda: number, normalize: number, flagp: number, linear: number, divisor: number): void;
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

/** Instantiates the kernels module over `memory` (imported as env.memory). */
export function instantiateKernelsWasm(memory: WasmMemory, module: WasmModule): KernelsWasmExports {
  return new wasmApi!.Instance(module, { env: { memory } }).exports as unknown as KernelsWasmExports;
}

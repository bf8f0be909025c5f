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

/**
 * Former home of the hand-assembled bf16 module, now AssemblyScript in `assembly/bf16.ts` (loaded with the
 * rest of the kernels by `wasm-module.ts`). These re-exports keep code written against this path
 * compiling; new code imports from `wasm-module.ts`.
 */
export { sharedWasmMemory, wasmApi, wasmSimdAvailable, type Bf16WasmExports, type WasmMemory, type WasmModule } from "./wasm-module.ts";

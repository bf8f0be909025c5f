/**
 * The runtime's WebAssembly API, typed locally (lib ES2023 + @types/node 20 do not declare it): the kernel
 * module loader (merge/kernels/wasm-module.ts) and the O_DIRECT staging memory (core/direct-file.ts) use it.
 */

/** A `WebAssembly.Memory`: its buffer starts on a page boundary. */
export interface WasmMemory {
  readonly buffer: ArrayBufferLike;
}
/** A compiled `WebAssembly.Module` (opaque; structured-cloneable to workers). */
export type WasmModule = object;
export interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum: number; shared?: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { readonly exports: object };
  validate(bytes: Uint8Array): boolean;
}
/** The runtime's WebAssembly object, or undefined when the runtime has none. */
export const wasmApi: WasmApi | undefined = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

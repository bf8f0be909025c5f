// AssemblyScript entry of realign's WebAssembly kernels (compiled by scripts/build-wasm.mjs into
// build/wasm/kernels.wasm; see src/merge/kernels/wasm-module.ts for how it is loaded).
//
// Rules every kernel file here follows:
// - no managed objects, no strings, no static data: the module's only memory is the pool's imported
//   shared memory, and the pool's bump allocator owns all of it from byte 0;
// - pointers are byte offsets (usize) into that memory; lengths are element counts;
// - each kernel has a TypeScript reference in src/merge/kernels or src/merge/methods, and a test that
//   compares the two byte for byte.

/** ABI version of this module; bumped whenever an export changes signature. */
export function abiVersion(): i32 {
  return 1;
}

/** Sums n float32 values at p (float64 accumulator); used by the loader's self-check. */
export function sumF32(p: usize, n: i32): f64 {
  let s: f64 = 0;
  for (let i = 0; i < n; i++) s += <f64>load<f32>(p + (<usize>i << 2));
  return s;
}
export * from "./bf16";
export * from "./ties";
export * from "./lora";

/**
 * WebAssembly SIMD kernels for the bf16 weighted sum, assembled here from source (no toolchain, no binary
 * in the repo): `bf16WasmModuleBytes()` emits a ~1.7 KB module whose functions work on a shared memory
 * imported as `env.mem` (a `WebAssembly.Memory({shared: true})` the caller creates and hands to every
 * worker, so file reads land straight in it and no byte is copied).
 *
 * Arithmetic is IEEE binary32 lane by lane, exactly the reference's (`linear.ts` `weightedSum`):
 * acc = f32(c₀·x₀), acc = f32(acc + f32(cᵢ·xᵢ)) in input order, optional f32(acc / d), then bf16
 * round-to-nearest-even with integer ops, NaN → (bits >>> 16) | 0x40 (quiet, sign kept), overflow → ±Inf.
 * `fused-bf16.ts` (TypeScript) is the fallback and the reference the tests compare against, byte for byte.
 *
 * Layout: bf16 pairs are read as i32 lanes: the even element is `word << 16`, the odd one `word & 0xffff0000`,
 * so decoding needs no shuffle; each half is merged and rounded separately and the halves are re-packed.
 *
 * Exports (pointers are byte offsets into `mem`, n = elements, a multiple of 8; pointers 2-byte aligned):
 * - `wsum2(a, b, out, n, c0, c1)`          out = bf16(f32(c0·a) + f32(c1·b))
 * - `wsum2d(a, b, out, n, c0, c1, d)`      out = bf16((f32(c0·a) + f32(c1·b)) / d)
 * - `first(x, acc, n, c)`                   acc(f32) = f32(c·x)          (k-input path, step 1)
 * - `accum(x, acc, n, c)`                   acc(f32) = f32(acc + f32(c·x))
 * - `fin(acc, out, n)` / `find(acc, out, n, d)`   out = bf16(acc) / bf16(acc / d)
 */

// --- the WebAssembly API, typed locally (lib ES2023 + @types/node 20 do not declare it) ----------------

/** A `WebAssembly.Memory`. */
export interface WasmMemory {
  readonly buffer: ArrayBufferLike;
}
/** A compiled `WebAssembly.Module` (opaque; structured-cloneable to workers). */
export type WasmModule = object;
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { readonly exports: object };
  validate(bytes: Uint8Array): boolean;
}
/** The runtime's WebAssembly object, or undefined when the runtime has none. */
export const wasmApi: WasmApi | undefined = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

// --- a tiny assembler: just what these kernels need -------------------------------------------------

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function str(s: string): number[] {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

// Core opcodes.
const get = (i: number): number[] => [0x20, ...uleb(i)];
const set = (i: number): number[] => [0x21, ...uleb(i)];
const i32c = (v: number): number[] => [0x41, ...sleb(v | 0)];
const I32_ADD = [0x6a];
const I32_GE_U = [0x4f];
const BLOCK = [0x02, 0x40];
const LOOP = [0x03, 0x40];
const END = [0x0b];
const br = (d: number): number[] => [0x0c, ...uleb(d)];
const brIf = (d: number): number[] => [0x0d, ...uleb(d)];

// SIMD opcodes (prefix 0xfd, LEB128 sub-opcode), as numbered in the WebAssembly SIMD spec.
const simd = (op: number): number[] => [0xfd, ...uleb(op)];
const V_LOAD = (offset = 0): number[] => [...simd(0x00), 0x00, ...uleb(offset)]; // align hint 1 (any)
const V_STORE = (offset = 0): number[] => [...simd(0x0b), 0x00, ...uleb(offset)];
const v128c = (lanes: [number, number, number, number]): number[] => {
  const b: number[] = [];
  for (const l of lanes) b.push(l & 0xff, (l >>> 8) & 0xff, (l >>> 16) & 0xff, (l >>> 24) & 0xff);
  return [...simd(0x0c), ...b];
};
const F32X4_SPLAT = simd(0x13);
const F32X4_NE = simd(0x42);
const V_AND = simd(0x4e);
const V_OR = simd(0x50);
const V_BITSELECT = simd(0x52);
const I32X4_SHL = simd(0xab);
const I32X4_SHR_U = simd(0xad);
const I32X4_ADD = simd(0xae);
const F32X4_ADD = simd(0xe4);
const F32X4_MUL = simd(0xe6);
const F32X4_DIV = simd(0xe7);

interface Func {
  readonly name: string;
  readonly params: number[];
  readonly locals: number[];
  readonly body: number[];
}

function assemble(funcs: readonly Func[]): Uint8Array {
  const types = funcs.map((f) => [0x60, ...vec(f.params.map((t) => [t])), 0x00]);
  const typeSec = section(1, vec(types));
  // import env.mem: shared memory, min 1 page, max 65536 pages (4 GiB)
  const importSec = section(2, vec([[...str("env"), ...str("mem"), 0x02, 0x03, ...uleb(1), ...uleb(65536)]]));
  const funcSec = section(3, vec(funcs.map((_, i) => uleb(i))));
  const exportSec = section(7, vec(funcs.map((f, i) => [...str(f.name), 0x00, ...uleb(i)])));
  const codes = funcs.map((f) => {
    const locals = vec(f.locals.map((t) => [1, t]));
    const body = [...locals, ...f.body, ...END];
    return [...uleb(body.length), ...body];
  });
  const codeSec = section(10, vec(codes));
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...typeSec, ...importSec, ...funcSec, ...exportSec, ...codeSec]);
}

// --- the kernels ------------------------------------------------------------------------------------

const HI_MASK: [number, number, number, number] = [0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000];

/**
 * Instructions that leave bf16-rounded bits of the f32 vector in local `v` on the stack (result in the
 * upper 16 bits of each lane): bitselect(v | 0x00400000, v + 0x7fff + ((v >>> 16) & 1), v ≠ v).
 */
function roundRne(v: number): number[] {
  return [
    ...get(v), ...v128c([0x00400000, 0x00400000, 0x00400000, 0x00400000]), ...V_OR,
    ...get(v), ...v128c([0x7fff, 0x7fff, 0x7fff, 0x7fff]), ...I32X4_ADD,
    ...get(v), ...i32c(16), ...I32X4_SHR_U, ...v128c([1, 1, 1, 1]), ...V_AND,
    ...I32X4_ADD,
    ...get(v), ...get(v), ...F32X4_NE,
    ...V_BITSELECT,
  ];
}

/** `loop while ptr < end { body; ptr += step for each (local, step) }` */
function loop(ptr: number, end: number, body: number[], steps: ReadonlyArray<[number, number]>): number[] {
  return [
    ...BLOCK, ...LOOP,
    ...get(ptr), ...get(end), ...I32_GE_U, ...brIf(1),
    ...body,
    ...steps.flatMap(([l, s]) => [...get(l), ...i32c(s), ...I32_ADD, ...set(l)]),
    ...br(0),
    ...END, ...END,
  ];
}

/** end = base + n·scale */
function computeEnd(base: number, n: number, scale: number, end: number): number[] {
  return [...get(base), ...get(n), ...i32c(Math.log2(scale)), 0x74 /* i32.shl */, ...I32_ADD, ...set(end)];
}

function wsum2(withDiv: boolean): Func {
  // params: a0 b1 out2 n3 c0:4 c1:5 [d:6]; locals follow
  const P = withDiv ? 7 : 6;
  const END_ = P, VC0 = P + 1, VC1 = P + 2, XA = P + 3, XB = P + 4, EV = P + 5, OD = P + 6, VD = P + 7;
  const mix = (dst: number, decodeA: number[], decodeB: number[]): number[] => [
    // add(term₁, term₀): when both are NaN, x64 returns the first operand's payload, which is what the
    // float64 JS reference returns for acc + term (its second operand); any other case is order-free.
    ...decodeB, ...get(VC1), ...F32X4_MUL,
    ...decodeA, ...get(VC0), ...F32X4_MUL,
    ...F32X4_ADD,
    ...(withDiv ? [...get(VD), ...F32X4_DIV] : []),
    ...set(dst),
  ];
  const even = (x: number): number[] => [...get(x), ...i32c(16), ...I32X4_SHL];
  const odd = (x: number): number[] => [...get(x), ...v128c(HI_MASK), ...V_AND];
  const body = [
    ...get(0), ...V_LOAD(), ...set(XA),
    ...get(1), ...V_LOAD(), ...set(XB),
    ...mix(EV, even(XA), even(XB)),
    ...mix(OD, odd(XA), odd(XB)),
    ...get(2),
    ...roundRne(EV), ...i32c(16), ...I32X4_SHR_U,
    ...roundRne(OD), ...v128c(HI_MASK), ...V_AND,
    ...V_OR,
    ...V_STORE(),
  ];
  return {
    name: withDiv ? "wsum2d" : "wsum2",
    params: [I32, I32, I32, I32, F32, F32, ...(withDiv ? [F32] : [])],
    locals: [I32, V128, V128, V128, V128, V128, V128, V128],
    body: [
      ...computeEnd(0, 3, 2, END_),
      ...get(4), ...F32X4_SPLAT, ...set(VC0),
      ...get(5), ...F32X4_SPLAT, ...set(VC1),
      ...(withDiv ? [...get(6), ...F32X4_SPLAT, ...set(VD)] : []),
      ...loop(0, END_, body, [[0, 16], [1, 16], [2, 16]]),
    ],
  };
}

/** acc = f32(c·x) (first) or acc = f32(acc + f32(c·x)) (accum); x bf16, acc f32. params x0 acc1 n2 c3 */
function axpy(accumulate: boolean): Func {
  const END_ = 4, VC = 5, X = 6;
  const term = (decode: number[], off: number): number[] => [
    ...get(1),
    ...decode, ...get(VC), ...F32X4_MUL,
    ...(accumulate ? [...get(1), ...V_LOAD(off), ...F32X4_ADD] : []), // add(term, acc): see wsum2
    ...V_STORE(off),
  ];
  // 8 bf16 → even lanes (elements 0,2,4,6) and odd lanes (1,3,5,7): acc is stored de-interleaved per
  // 8-element group (even lanes at +0, odd at +16); `fin` re-interleaves with the same convention.
  const body = [
    ...get(0), ...V_LOAD(), ...set(X),
    ...term([...get(X), ...i32c(16), ...I32X4_SHL], 0),
    ...term([...get(X), ...v128c(HI_MASK), ...V_AND], 16),
  ];
  return {
    name: accumulate ? "accum" : "first",
    params: [I32, I32, I32, F32],
    locals: [I32, V128, V128],
    body: [...computeEnd(0, 2, 2, END_), ...get(3), ...F32X4_SPLAT, ...set(VC), ...loop(0, END_, body, [[0, 16], [1, 32]])],
  };
}

/** out(bf16) = round(acc [/ d]); acc in the de-interleaved layout of `axpy`. params acc0 out1 n2 [d3] */
function fin(withDiv: boolean): Func {
  const P = withDiv ? 4 : 3;
  const END_ = P, EV = P + 1, OD = P + 2, VD = P + 3;
  const load = (off: number, dst: number): number[] => [
    ...get(0), ...V_LOAD(off),
    ...(withDiv ? [...get(VD), ...F32X4_DIV] : []),
    ...set(dst),
  ];
  const body = [
    ...load(0, EV), ...load(16, OD),
    ...get(1),
    ...roundRne(EV), ...i32c(16), ...I32X4_SHR_U,
    ...roundRne(OD), ...v128c(HI_MASK), ...V_AND,
    ...V_OR,
    ...V_STORE(),
  ];
  return {
    name: withDiv ? "find" : "fin",
    params: withDiv ? [I32, I32, I32, F32] : [I32, I32, I32],
    locals: [I32, V128, V128, V128],
    body: [
      ...computeEnd(1, 2, 2, END_),
      ...(withDiv ? [...get(3), ...F32X4_SPLAT, ...set(VD)] : []),
      ...loop(1, END_, body, [[0, 32], [1, 16]]),
    ],
  };
}

let cached: Uint8Array | undefined;

/** The module's bytes (assembled once per process, ~1.7 KB). */
export function bf16WasmModuleBytes(): Uint8Array {
  cached ??= assemble([wsum2(false), wsum2(true), axpy(false), axpy(true), fin(false), fin(true)]);
  return cached;
}

/** The module's exports, typed. */
export interface Bf16WasmExports {
  wsum2(a: number, b: number, out: number, n: number, c0: number, c1: number): void;
  wsum2d(a: number, b: number, out: number, n: number, c0: number, c1: number, d: number): void;
  first(x: number, acc: number, n: number, c: number): void;
  accum(x: number, acc: number, n: number, c: number): void;
  fin(acc: number, out: number, n: number): void;
  find(acc: number, out: number, n: number, d: number): void;
}

/** True when this runtime validates the module (WebAssembly SIMD + threads available). */
export function wasmSimdAvailable(): boolean {
  try {
    return wasmApi !== undefined && wasmApi.validate(bf16WasmModuleBytes());
  } catch {
    return false;
  }
}

/** Compiles the module. @throws when WebAssembly SIMD is unavailable (check `wasmSimdAvailable`). */
export function compileBf16Wasm(): WasmModule {
  if (wasmApi === undefined) throw new Error("WebAssembly is not available");
  return new wasmApi.Module(bf16WasmModuleBytes());
}

/** Creates a shared memory of `pages` 64 KiB pages (fixed size). */
export function sharedWasmMemory(pages: number): WasmMemory {
  if (wasmApi === undefined) throw new Error("WebAssembly is not available");
  return new wasmApi.Memory({ initial: pages, maximum: pages, shared: true });
}

/** Instantiates the module over `memory` (shared). Synchronous: the module is tiny. */
export function instantiateBf16Wasm(memory: WasmMemory, module?: WasmModule): Bf16WasmExports {
  if (wasmApi === undefined) throw new Error("WebAssembly is not available");
  const inst = new wasmApi.Instance(module ?? compileBf16Wasm(), { env: { mem: memory } });
  return inst.exports as unknown as Bf16WasmExports;
}

/**
 * A pool of worker threads running realign's WebAssembly kernels (build/wasm/kernels.wasm, compiled from
 * src/merge/kernels/assembly; see kernels/wasm-module.ts) over one shared `WebAssembly.Memory`.
 * Started once per merge: `os.availableParallelism()` workers by default, each instantiating the module
 * over the same memory (file reads land in that memory, workers compute in place, writes go out of it:
 * no copies). The main thread keeps its own instance for tails and tiny tensors.
 *
 * Memory is a bump allocator sized up front (`memoryBytes`): the pool never grows, so the merge's
 * footprint is fixed whatever the model size.
 */
import { Worker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import { compileKernelsWasm, instantiateKernelsWasm, sharedWasmMemory, wasmSimdAvailable, type KernelsWasmExports, type WasmMemory } from "../kernels/wasm-module.ts";
import { InternalError } from "../../errors.ts";

/** Every kernel the pool can run: the exports of the AssemblyScript kernels module. */
export type PoolKernels = KernelsWasmExports;

/** One kernel call: export name and its arguments. */
export type KernelCall = readonly [keyof PoolKernels, ...number[]];

/**
 * What a worker runs: kernel calls, and ["read", fd, position, ptr, length] (a synchronous positioned file
 * read into the shared memory, see kernel-worker.mjs).
 */
export type WorkerCall = KernelCall | readonly ["read", number, number, number, number];

export interface KernelPoolOptions {
  /** Bytes of shared memory to reserve (rounded up to 64 KiB pages). */
  readonly memoryBytes: number;
  /** Worker threads. @default os.availableParallelism() */
  readonly workers?: number;
}

const PAGE = 65536;

/** A pool's size as it is built: 64 KiB pages of shared memory and worker threads. */
function sizeOf(options: KernelPoolOptions): { pages: number; workers: number } {
  return { pages: Math.ceil(options.memoryBytes / PAGE), workers: Math.max(1, options.workers ?? availableParallelism()) };
}

/** A pool started ahead of need (`KernelPool.prestart`), until a `start` of the same size takes it. */
let prestarted: { pool: KernelPool; pages: number; workers: number } | undefined;

export class KernelPool {
  readonly memory: WasmMemory;
  /** Kernels instantiated on the main thread (tails, tiny tensors). */
  readonly local: PoolKernels;
  /** Whether the AssemblyScript kernels (build/wasm/kernels.wasm) are loaded: always true for a started pool. */
  readonly hasKernelsModule: boolean;
  readonly workerCount: number;
  private readonly workers: Worker[];
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private top = 0;
  private failed: Error | undefined;

  private constructor(pages: number, workers: number) {
    this.memory = sharedWasmMemory(pages);
    const kernelsModule = compileKernelsWasm();
    if (kernelsModule === undefined) throw new InternalError("the WebAssembly kernels module (build/wasm/kernels.wasm) is not available");
    this.hasKernelsModule = true;
    this.local = instantiateKernelsWasm(this.memory, kernelsModule);
    this.workerCount = workers;
    const url = new URL("./kernel-worker.mjs", import.meta.url);
    this.workers = Array.from({ length: workers }, () => {
      const w = new Worker(url, { workerData: { kernelsModule, memory: this.memory } });
      w.on("message", (msg: { id: number; error?: string }) => {
        const p = this.pending.get(msg.id);
        if (p === undefined) return;
        this.pending.delete(msg.id);
        if (msg.error !== undefined) p.reject(new InternalError(`merge worker failed: ${msg.error}`));
        else p.resolve();
      });
      const fail = (err: unknown): void => {
        this.failed = new InternalError(`merge worker failed: ${String(err)}`);
        for (const p of this.pending.values()) p.reject(this.failed);
        this.pending.clear();
      };
      w.on("error", fail);
      w.on("exit", (code) => {
        if (code !== 0 && this.failed === undefined) fail(`exit code ${code}`);
      });
      w.unref();
      return w;
    });
  }

  /**
   * True when the WebAssembly kernels can run here: build/wasm/kernels.wasm is built and the runtime has
   * WebAssembly SIMD and shared memory (else callers use the TypeScript kernels).
   */
  static available(): boolean {
    return wasmSimdAvailable();
  }

  /**
   * Starts the pool (or hands over the one `prestart` started with the same memory size and workers).
   * @throws InternalError when the kernels module, WebAssembly SIMD or shared memory is unavailable.
   */
  static start(options: KernelPoolOptions): KernelPool {
    if (!KernelPool.available()) throw new InternalError("the WebAssembly kernels (build/wasm/kernels.wasm, SIMD, shared memory) are not available");
    const { pages, workers } = sizeOf(options);
    const early = prestarted;
    if (early !== undefined && early.pages === pages && early.workers === workers) {
      prestarted = undefined;
      return early.pool;
    }
    return new KernelPool(pages, workers);
  }

  /**
   * Starts a pool now for a `start` with these options later in this process: its worker threads boot
   * (about 50 ms each) while the caller still loads modules and reads headers. Does nothing when the
   * kernels are unavailable or a pool is already waiting. `discardPrestarted` stops one left unused.
   * @returns the waiting pool, if any.
   */
  static prestart(options: KernelPoolOptions): KernelPool | undefined {
    if (prestarted === undefined && KernelPool.available()) {
      const { pages, workers } = sizeOf(options);
      prestarted = { pool: new KernelPool(pages, workers), pages, workers };
    }
    return prestarted?.pool;
  }

  /** Stops the pool `prestart` started, if no `start` took it. */
  static async discardPrestarted(): Promise<void> {
    const early = prestarted;
    prestarted = undefined;
    await early?.pool.close();
  }

  /** Reserves `bytes` of the shared memory (64-byte aligned). @returns the byte offset. */
  alloc(bytes: number): number {
    const at = Math.ceil(this.top / 64) * 64;
    if (at + bytes > this.memory.buffer.byteLength) {
      throw new InternalError(`kernel pool memory exhausted: need ${at + bytes} bytes, have ${this.memory.buffer.byteLength}`);
    }
    this.top = at + bytes;
    return at;
  }

  /** The allocator's position, for `release`. */
  mark(): number {
    return this.top;
  }

  /** Frees everything allocated after `mark` (stack discipline). */
  release(mark: number): void {
    this.top = mark;
  }

  /** A byte view of the shared memory. */
  bytes(offset: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, offset, length);
  }

  /** Runs `batches[w]` on worker w (all at once) and resolves when every worker is done. */
  run(batches: ReadonlyArray<readonly WorkerCall[]>): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    const jobs: Promise<void>[] = [];
    batches.forEach((calls, w) => {
      if (calls.length === 0) return;
      const id = this.nextId++;
      jobs.push(new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject })));
      const worker = this.workers[w % this.workers.length]!;
      worker.ref(); // keep the process alive while a reply is due (idle workers are unref'd)
      worker.postMessage({ id, calls });
    });
    const unref = (): void => {
      if (this.pending.size === 0) for (const w of this.workers) w.unref();
    };
    return Promise.all(jobs).then(unref, (err: unknown) => {
      unref();
      throw err;
    });
  }

  /** Stops the workers. Idempotent. */
  async close(): Promise<void> {
    const ws = this.workers.splice(0);
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

// Worker thread of the kernel pool (plain JavaScript so that it starts in ~20 ms without a TypeScript
// loader). It instantiates realign's WebAssembly kernels (build/wasm/kernels.wasm, compiled from
// src/merge/kernels/assembly; see src/merge/kernels/wasm-module.ts) over the pool's shared memory and runs
// the calls it is sent: {id, calls: [[exportName, ...args], …]} → {id} or {id, error}.
import { parentPort, workerData } from "node:worker_threads";

const { kernelsModule, memory } = workerData;
const kernels = new WebAssembly.Instance(kernelsModule, { env: { memory } }).exports;

parentPort.on("message", (msg) => {
  try {
    for (const [name, ...args] of msg.calls) kernels[name](...args);
    parentPort.postMessage({ id: msg.id });
  } catch (err) {
    parentPort.postMessage({ id: msg.id, error: String(err && err.stack ? err.stack : err) });
  }
});

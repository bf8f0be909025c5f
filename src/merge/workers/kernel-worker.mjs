// Worker thread of the kernel pool (plain JavaScript so that it starts in ~20 ms without a TypeScript
// loader). It instantiates the bf16 WebAssembly kernels (src/merge/kernels/wasm-bf16.ts) and, when built,
// the AssemblyScript kernels (src/merge/kernels/wasm-module.ts) over the pool's shared memory and runs the
// calls it is sent: {id, calls: [[exportName, ...args], …]} → {id} or {id, error}.
import { parentPort, workerData } from "node:worker_threads";

const { module, kernelsModule, memory } = workerData;
const kernels = {
  ...(kernelsModule ? new WebAssembly.Instance(kernelsModule, { env: { memory } }).exports : {}),
  ...new WebAssembly.Instance(module, { env: { mem: memory } }).exports,
};

parentPort.on("message", (msg) => {
  try {
    for (const [name, ...args] of msg.calls) kernels[name](...args);
    parentPort.postMessage({ id: msg.id });
  } catch (err) {
    parentPort.postMessage({ id: msg.id, error: String(err && err.stack ? err.stack : err) });
  }
});

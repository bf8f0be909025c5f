// Worker thread of the kernel pool (plain JavaScript so that it starts in ~20 ms without a TypeScript
// loader). It instantiates realign's WebAssembly kernels (build/wasm/kernels.wasm, compiled from
// src/merge/kernels/assembly; see src/merge/kernels/wasm-module.ts) over the pool's shared memory and runs
// the calls it is sent: {id, calls: [[exportName, ...args], …]} → {id} or {id, error}.
// The pseudo-call ["read", fd, position, ptr, length] reads `length` bytes of file descriptor `fd` at
// `position` into the shared memory at `ptr` (readSync; loops over short reads; a premature end of file
// is an error), so that a worker can read its own chunk before computing it (fast-ties.ts).
import { readSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";

const { kernelsModule, memory } = workerData;
const kernels = new WebAssembly.Instance(kernelsModule, { env: { memory } }).exports;

function read(fd, position, ptr, length) {
  const view = new Uint8Array(memory.buffer, ptr, length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, view, done, length - done, position + done);
    if (n === 0) throw new Error(`end of file at ${position + done} (fd ${fd})`);
    done += n;
  }
}

parentPort.on("message", (msg) => {
  try {
    for (const [name, ...args] of msg.calls) {
      if (name === "read") read(...args);
      else kernels[name](...args);
    }
    parentPort.postMessage({ id: msg.id });
  } catch (err) {
    parentPort.postMessage({ id: msg.id, error: String(err && err.stack ? err.stack : err) });
  }
});

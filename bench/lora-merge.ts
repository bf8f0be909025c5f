/**
 * End-to-end throughput of the LoRA fast path: a synthetic aligned checkpoint of `layers` bf16 matrices
 * 4096×4096 and a rank-`r` adapter on all of them, merged at λ = 0.5 through `mergeLora` (the same call as
 * `realign merge --tuned <adapter dir>`). Prints wall time, M params/s and the delta GFLOP/s it implies.
 * Not a test; run with `node --import tsx bench/lora-merge.ts [layers r]` (REALIGN_FAST=0 for the generic path).
 * Writes into the OS temp dir.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mergeLora } from "../src/merge/lora-merge.ts";

const layers = Number(process.argv[2] ?? 4);
const r = Number(process.argv[3] ?? 16);
const N = 4096;

function writeSafetensors(path: string, tensors: { name: string; dtype: string; shape: number[]; fill: (buf: Uint8Array) => void; bytes: number }[]): void {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes] };
    off += t.bytes;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += " ";
  const fd = openSync(path, "w");
  const pre = Buffer.alloc(8);
  pre.writeBigUInt64LE(BigInt(json.length));
  writeSync(fd, pre);
  writeSync(fd, Buffer.from(json));
  for (const t of tensors) {
    const buf = new Uint8Array(t.bytes);
    t.fill(buf);
    writeSync(fd, buf);
  }
  closeSync(fd);
}

const root = mkdtempSync(join(tmpdir(), "realign-bench-lora-"));
try {
  const aligned = join(root, "aligned");
  const adapter = join(root, "adapter");
  mkdirSync(aligned);
  mkdirSync(adapter);
  writeFileSync(join(aligned, "config.json"), JSON.stringify({ model_type: "llama", torch_dtype: "bfloat16" }));
  const bf16Fill = (buf: Uint8Array): void => {
    const u = new Uint16Array(buf.buffer);
    for (let i = 0; i < u.length; i++) u[i] = 0x3c00 + (i % 251); // small positive bf16 values
  };
  writeSafetensors(
    join(aligned, "model.safetensors"),
    Array.from({ length: layers }, (_, l) => ({ name: `model.layers.${l}.mlp.up_proj.weight`, dtype: "BF16", shape: [N, N], bytes: N * N * 2, fill: bf16Fill })),
  );
  const f32Fill = (buf: Uint8Array): void => {
    const f = new Float32Array(buf.buffer);
    for (let i = 0; i < f.length; i++) f[i] = Math.sin(i) * 0.01;
  };
  writeFileSync(join(adapter, "adapter_config.json"), JSON.stringify({ peft_type: "LORA", r, lora_alpha: 2 * r, target_modules: ["up_proj"] }));
  writeSafetensors(
    join(adapter, "adapter_model.safetensors"),
    Array.from({ length: layers }, (_, l) => [
      { name: `base_model.model.model.layers.${l}.mlp.up_proj.lora_A.weight`, dtype: "F32", shape: [r, N], bytes: r * N * 4, fill: f32Fill },
      { name: `base_model.model.model.layers.${l}.mlp.up_proj.lora_B.weight`, dtype: "F32", shape: [N, r], bytes: N * r * 4, fill: f32Fill },
    ]).flat(),
  );
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await mergeLora({ aligned, adapter, lambda: 0.5, out: join(root, "out"), writeCard: false });
  const s = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  const params = layers * N * N;
  console.log(
    `${layers} × ${N}×${N} bf16, r=${r}: ${s.toFixed(2)} s, ${(params / s / 1e6).toFixed(0)} M params/s, ` +
      `delta ${((2 * params * r) / s / 1e9).toFixed(2)} GFLOP/s end to end, ${cpu.toFixed(2)} CPU s (all threads)` +
      (process.env.REALIGN_FAST === "0" ? " [REALIGN_FAST=0]" : ""),
  );
} finally {
  rmSync(root, { recursive: true, force: true });
}

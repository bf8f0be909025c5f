/**
 * Byte builders for safetensors files and HF checkpoint directories, for tests: well-formed files from
 * values, and hostile files from a raw header object or raw bytes.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DTYPE_BYTES, encodeFromF32, type Dtype, type OutDtype } from "../../src/core/dtype.ts";

/** A tensor for the builder: values (encoded per dtype) or raw data bytes. */
export interface BuildTensor {
  dtype: Dtype;
  shape: number[];
  /** Float values, encoded with RNE for BF16/F16/F32, exactly for F64, and truncated for integers. */
  values?: number[];
  /** Raw little-endian element bits for 16-bit dtypes (e.g. bf16 0x3f80). */
  bits?: number[];
  /** Raw data bytes. */
  data?: Uint8Array;
}

/** Encodes values of `dtype` into little-endian bytes. */
export function encodeValues(dtype: Dtype, values: readonly number[] = [], bits?: readonly number[]): Uint8Array {
  const n = (bits ?? values).length;
  const out = new Uint8Array(n * DTYPE_BYTES[dtype]);
  const dv = new DataView(out.buffer);
  if (bits !== undefined) {
    bits.forEach((b, i) => {
      if (DTYPE_BYTES[dtype] === 2) dv.setUint16(i * 2, b, true);
      else if (DTYPE_BYTES[dtype] === 4) dv.setUint32(i * 4, b, true);
      else out[i] = b;
    });
    return out;
  }
  if (dtype === "BF16" || dtype === "F16" || dtype === "F32") {
    encodeFromF32(dtype as OutDtype, new Float32Array(values), out, n);
    return out;
  }
  values.forEach((v, i) => {
    switch (dtype) {
      case "F64": dv.setFloat64(i * 8, v, true); break;
      case "I64": dv.setBigInt64(i * 8, BigInt(v), true); break;
      case "U64": dv.setBigUint64(i * 8, BigInt(v), true); break;
      case "I32": dv.setInt32(i * 4, v, true); break;
      case "U32": dv.setUint32(i * 4, v, true); break;
      case "I16": dv.setInt16(i * 2, v, true); break;
      case "U16": dv.setUint16(i * 2, v, true); break;
      case "I8": dv.setInt8(i, v); break;
      default: out[i] = v;
    }
  });
  return out;
}

/** A complete safetensors file from tensors (contiguous, in the given order) and optional metadata. */
export function buildSafetensors(tensors: Record<string, BuildTensor>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header.__metadata__ = metadata;
  const datas: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const data = t.data ?? encodeValues(t.dtype, t.values, t.bits);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + data.length] };
    datas.push(data);
    offset += data.length;
  }
  return buildRaw(header, concat(datas));
}

/** A file from an arbitrary header object (anything JSON) and data bytes; the length prefix is correct. */
export function buildRaw(header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A minimal Llama-ish config.json. */
export function llamaConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { architectures: ["LlamaForCausalLM"], model_type: "llama", dtype: "bfloat16", vocab_size: 4, tie_word_embeddings: false, ...over };
}

export interface BuildDirOptions {
  /** config.json contents; `null` to omit. */
  config?: Record<string, unknown> | null;
  /** Single-file weights (model.safetensors). */
  tensors?: Record<string, BuildTensor>;
  /** Sharded weights: file name → tensors; the index is generated unless `index` is given. */
  shards?: Record<string, Record<string, BuildTensor>>;
  /** Raw index object (overrides the generated one). */
  index?: unknown;
  /** Extra files: name → text or bytes. */
  files?: Record<string, string | Uint8Array>;
}

/** Writes an HF-style checkpoint directory at `dir`; returns `dir`. */
export function buildHfDir(dir: string, o: BuildDirOptions): string {
  mkdirSync(dir, { recursive: true });
  if (o.config !== null) writeFileSync(join(dir, "config.json"), JSON.stringify(o.config ?? llamaConfig()));
  if (o.tensors !== undefined) writeFileSync(join(dir, "model.safetensors"), buildSafetensors(o.tensors, { format: "pt" }));
  if (o.shards !== undefined) {
    const weightMap: Record<string, string> = {};
    for (const [file, ts] of Object.entries(o.shards)) {
      writeFileSync(join(dir, file), buildSafetensors(ts, { format: "pt" }));
      for (const n of Object.keys(ts)) weightMap[n] = file;
    }
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify(o.index ?? { metadata: { total_size: 0 }, weight_map: weightMap }));
  } else if (o.index !== undefined) {
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify(o.index));
  }
  for (const [name, content] of Object.entries(o.files ?? {})) writeFileSync(join(dir, name), content);
  return dir;
}

/**
 * A GGUF file as a merge input (`Checkpoint`): tensors are presented under their Hugging Face names and
 * PyTorch shapes with llama.cpp's conventions undone (the architecture table's name map reversed, the
 * Q/K row permutation inverted, Gemma's norm +1 removed), and config.json fields are rebuilt from the
 * `{arch}.*` keys. So a GGUF merges with another GGUF or with an HF checkpoint of the same model, and the
 * GGUF sink (or the safetensors writer) re-applies the conventions on output.
 *
 * Only F32, F16, BF16 and Q8_0 tensors are accepted (decoded to float32; Q8_0 reads whole blocks);
 * any other ggml type is refused when the file is opened, naming the tensor.
 */
import { resolve } from "node:path";
import { openCheckpoint } from "../hf-dir/checkpoint.ts";
import type { Dtype } from "../../core/dtype.ts";
import type { Checkpoint, TensorMeta, TensorSource } from "../../core/tensor.ts";
import { FormatError, InputError } from "../../errors.ts";
import { KEYS, archKey, ggmlType, type MergeableGgmlType } from "./constants.ts";
import { archByName, templateRegex, type ArchSpec } from "./arch/index.ts";
import { invertPermutation, qkPermutation } from "./qk-permute.ts";
import { openGgufFile, type GgufFile } from "./read.ts";
import { assertMergeableType, decodeGgufToF32 } from "./tensor-data.ts";
import type { GgufTensorInfo } from "./types.ts";

/** The core dtype a GGUF tensor type is presented as (Q8_0 decodes exactly to float32). */
const DTYPE_OF: Readonly<Record<MergeableGgmlType, Dtype>> = { F32: "F32", F16: "F16", BF16: "BF16", Q8_0: "F32" };

/**
 * `general.file_type` → the dtype every tensor of the file is presented as. A converted model keeps norms in
 * F32 inside an F16/BF16 file; presenting them in the file's dtype (as the HF checkpoint had them) lets a GGUF
 * merge with its HF sibling and makes GGUF → merge → GGUF match the HF route byte for byte. Values are read
 * exactly and rounded to that dtype only on output.
 */
const FILE_TYPE_DTYPE: Readonly<Record<number, Dtype>> = { 0: "F32", 1: "F16", 32: "BF16" };

export interface GgufCheckpoint extends Checkpoint {
  /** The opened file (header and metadata, incl. tokenizer keys). */
  readonly gguf: GgufFile;
  readonly arch: ArchSpec;
}


/** GGUF tensor name → HF name via the arch table, or undefined. */
function hfNameOf(arch: ArchSpec, ggufName: string): { hf: string; hfBase: string } | undefined {
  const m = /^(.*)\.(weight|bias)$/.exec(ggufName);
  if (!m) return undefined;
  for (const row of arch.tensors) {
    const hit = templateRegex(row.gguf).exec(m[1]!);
    if (hit) return { hf: `${row.hf.replace("{bid}", hit[1] ?? "")}.${m[2]}`, hfBase: row.hf };
  }
  return undefined;
}

/** The shortest decimal that rounds to the same float32 (1e-5 rather than 9.999999747378752e-6). */
function shortestF32(x: number): number {
  for (let p = 1; p <= 9; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

/** config.json fields rebuilt from `{arch}.*` keys (each HparamSpec's first plain field name). */
function configOf(file: GgufFile, arch: ArchSpec, tensors: ReadonlyMap<string, TensorMeta>): Record<string, unknown> {
  const md = file.header.metadata;
  const config: Record<string, unknown> = { architectures: [arch.hfArchitectures[0]], model_type: arch.arch };
  for (const spec of arch.hparams) {
    const v = md.get(archKey(spec.key, arch.arch));
    const field = spec.from.find((f) => !f.includes("."));
    if (v !== undefined && (v.type === "u32" || v.type === "f32") && field !== undefined && !(field in config)) {
      config[field] = v.type === "f32" ? shortestF32(v.value) : v.value;
    }
  }
  const embed = tensors.get("model.embed_tokens.weight");
  if (config.vocab_size === undefined && embed !== undefined) config.vocab_size = embed.shape[0];
  if (arch.tensors.some((t) => t.hf === "lm_head")) config.tie_word_embeddings = !tensors.has("lm_head.weight");
  const bos = md.get(KEYS.tokenizer.bosId);
  const eos = md.get(KEYS.tokenizer.eosId);
  if (bos?.type === "u32") config.bos_token_id = bos.value;
  if (eos?.type === "u32") config.eos_token_id = eos.value;
  return config;
}

class GgufTensorSource implements TensorSource {
  private readonly rowElems: number;
  private readonly inv: Int32Array | undefined;
  constructor(
    readonly name: string,
    readonly shape: readonly number[],
    readonly dtype: Dtype,
    private readonly file: GgufFile,
    private readonly info: GgufTensorInfo,
    private readonly type: MergeableGgmlType,
    permuteHeads: number | undefined,
    private readonly shift: number,
  ) {
    this.rowElems = shape.length <= 1 ? 1 : shape.slice(1).reduce((a, b) => a * b, 1);
    this.inv = permuteHeads === undefined ? undefined : invertPermutation(qkPermutation(shape[0]!, permuteHeads, name));
  }

  /** Elements [a, a+n) in stored (ggml linear) order. */
  private readLinear(a: number, n: number, out: Float32Array): void {
    const row = ggmlType(this.type);
    const b0 = Math.floor(a / row.blockSize);
    const b1 = Math.ceil((a + n) / row.blockSize);
    const bytes = new Uint8Array((b1 - b0) * row.typeSize);
    this.file.readTensorBytes(this.info, b0 * row.typeSize, bytes);
    const first = a - b0 * row.blockSize;
    if (first === 0 && (b1 - b0) * row.blockSize === n) {
      decodeGgufToF32(this.type, bytes, out, n);
    } else {
      const tmp = new Float32Array((b1 - b0) * row.blockSize);
      decodeGgufToF32(this.type, bytes, tmp, tmp.length);
      out.set(tmp.subarray(first, first + n));
    }
  }

  async read(offsetElems: number, countElems: number, out: Float32Array): Promise<void> {
    if (this.inv === undefined) {
      this.readLinear(offsetElems, countElems, out);
    } else {
      const end = offsetElems + countElems;
      for (let e = offsetElems; e < end; ) {
        const r = Math.floor(e / this.rowElems);
        const c = e - r * this.rowElems;
        const len = Math.min(this.rowElems - c, end - e);
        this.readLinear(this.inv[r]! * this.rowElems + c, len, out.subarray(e - offsetElems, e - offsetElems + len));
        e += len;
      }
    }
    if (this.shift !== 0) for (let i = 0; i < countElems; i++) out[i] = Math.fround(out[i]! - this.shift);
  }
}

/**
 * Opens a GGUF file as a merge input.
 * @throws FormatError (gguf.*) for malformed files; InputError `gguf.unsupported_arch` (architecture without a
 *   table), `gguf.unsupported_tensor_type` (a quantized type other than Q8_0), `gguf.unmapped_tensor`.
 */
export async function openGgufCheckpoint(path: string): Promise<GgufCheckpoint> {
  const abs = resolve(path);
  const file = openGgufFile(abs);
  try {
    const archName = file.header.metadata.get(KEYS.general.architecture);
    const arch = archName?.type === "string" ? archByName(archName.value) : undefined;
    if (arch === undefined) {
      throw new InputError("gguf.unsupported_arch", `general.architecture in ${abs}: got ${archName?.value ?? "none"}, expected llama, qwen2 or gemma2`, { details: { file: abs, arch: archName?.value } });
    }
    const nHead = file.header.metadata.get(archKey(KEYS.attention.headCount, arch.arch))?.value as number | undefined;
    const nHeadKv = (file.header.metadata.get(archKey(KEYS.attention.headCountKv, arch.arch))?.value as number | undefined) ?? nHead;
    const tensors = new Map<string, TensorMeta>();
    const sources = new Map<string, () => TensorSource>();
    const fileType = file.header.metadata.get(KEYS.general.fileType);
    const fileDtype = fileType?.type === "u32" ? FILE_TYPE_DTYPE[fileType.value] : undefined;
    for (const info of file.header.tensors) {
      assertMergeableType(info.type, { file: abs, tensor: info.name });
      const mapped = hfNameOf(arch, info.name);
      if (mapped === undefined) {
        throw new FormatError("gguf.unmapped_tensor", `tensor ${info.name} in ${abs}: got no Hugging Face name for it in the ${arch.arch} table, expected a known ${arch.arch} tensor`, {
          details: { file: abs, tensor: info.name },
        });
      }
      const shape = [...info.shape].reverse();
      const type = info.type;
      let heads: number | undefined;
      if (arch.permuteQK && mapped.hfBase.endsWith("self_attn.q_proj")) heads = nHead;
      if (arch.permuteQK && mapped.hfBase.endsWith("self_attn.k_proj")) heads = nHeadKv;
      const shift = arch.normShift !== 0 && mapped.hf.endsWith("norm.weight") ? arch.normShift : 0;
      const dtype = fileDtype ?? DTYPE_OF[type];
      tensors.set(mapped.hf, { name: mapped.hf, dtype, shape });
      sources.set(mapped.hf, () => new GgufTensorSource(mapped.hf, shape, dtype, file, info, type, heads, shift));
    }
    return {
      path: abs,
      gguf: file,
      arch,
      config: configOf(file, arch, tensors),
      tensors,
      carryFiles: [],
      weightFiles: [abs],
      openTensor(name: string): TensorSource {
        const make = sources.get(name);
        if (make === undefined) throw new InputError("gguf.missing_tensor", `tensor ${name} in ${abs}: got no such tensor`, { details: { file: abs, tensor: name } });
        return make();
      },
      async close() {
        file.close();
      },
    };
  } catch (e) {
    file.close();
    throw e;
  }
}

/**
 * Wraps an input opener so `.gguf` files open as GGUF checkpoints; everything else goes to `open`
 * (default: a Hugging Face directory). Compose: `withGgufInputs(loraAwareOpener(…))`.
 */
export function withGgufInputs<I extends { path: string }>(open: (input: I) => Promise<Checkpoint> = (i) => openCheckpoint(i.path)): (input: I) => Promise<Checkpoint> {
  return (input) => (input.path.toLowerCase().endsWith(".gguf") ? openGgufCheckpoint(input.path) : open(input));
}

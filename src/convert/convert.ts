/**
 * `convertToGguf`: a Hugging Face model directory (safetensors + config.json + tokenizer files) → one GGUF
 * file llama.cpp, Ollama and LM Studio load, following llama.cpp's convert_hf_to_gguf.py conventions
 * (tensor names, `{arch}.*` hyper-parameters, `tokenizer.*` keys, Q/K permutation, F32 norms).
 *
 * Streaming: an HF input goes through stream.ts (a ring of 8 MiB slots, read-ahead, write-behind; same-type
 * tensors are byte copies). A GGUF input, or `fast: false` / `REALIGN_FAST=0`, takes the sequential path:
 * row chunks (≤ 4 Mi elements) read, decoded, transformed and encoded one after another. Both write the
 * same bytes; memory stays bounded by the chunks, not the model. The output is written to a temp file
 * beside `output`, fsynced (unless `fsync: false`), and renamed into place only when complete.
 */
import { basename, resolve } from "node:path";
import { openAtomicOutput } from "../core/files.ts";
import { directIoEnabled } from "../core/direct-file.ts";
import type { OnEvent } from "../core/events.ts";
import type { TensorSource } from "../core/tensor.ts";
import { CancelledError, UsageError } from "../errors.ts";
import { openCheckpoint, type HfCheckpoint } from "../formats/hf-dir/checkpoint.ts";
import { openGgufCheckpoint, type GgufCheckpoint } from "../formats/gguf/checkpoint.ts";
import { KEYS } from "../formats/gguf/constants.ts";
import { GgufWriter } from "../formats/gguf/write.ts";
import { byteLengthOf, encodeGgufFromF32 } from "../formats/gguf/tensor-data.ts";
import type { GgufMetadata } from "../formats/gguf/types.ts";
import { qkPermutation } from "../formats/gguf/qk-permute.ts";
import { CONVERT_TYPES, flattenConfig, planConversion, type ConvertType, type TensorConversion } from "./plan.ts";
import { streamTensors } from "./stream.ts";
import { tokenizerMetadata } from "./tokenizer.ts";

/** Elements per chunk read, transformed and written. */
export const CONVERT_CHUNK_ELEMS = 4 * 2 ** 20;

export interface ConvertOptions {
  /**
   * Hugging Face model directory (config.json, *.safetensors, tokenizer files), or a `.gguf` file to re-type
   * (F32/F16/BF16/Q8_0 tensors; its tokenizer keys are kept).
   */
  input: string;
  /** Output .gguf path. */
  output: string;
  /** Tensor type for matrices; norms and 1-D tensors are always F32. @default "f16" (as convert_hf_to_gguf.py) */
  type?: ConvertType;
  /** Replace an existing output. @default false */
  force?: boolean;
  /** `tokenizer.ggml.pre` override when the BPE pre-tokenizer is not recognised. */
  tokenizerPre?: string;
  /** `general.name`. @default the input directory's name */
  name?: string;
  /** Progress: a "convert" phase in tensors. */
  onEvent?: OnEvent;
  /** Aborting stops with CancelledError and leaves nothing at `output`. */
  signal?: AbortSignal;
  /**
   * Stream HF inputs through the read-ahead/write-behind ring (stream.ts); false takes the sequential path
   * (same bytes). @default true unless REALIGN_FAST=0
   */
  fast?: boolean;
  /** Bytes per ring slot of the fast path (tests use small ones). @default STREAM_CHUNK_BYTES (8 MiB) */
  chunkBytes?: number;
  /**
   * fsync the GGUF before it is renamed into place (a power loss cannot leave a truncated file at `output`);
   * false returns once the bytes are in the page cache, as convert_hf_to_gguf.py does. @default true
   */
  fsync?: boolean;
}

export interface ConvertSummary {
  output: string;
  arch: string;
  type: ConvertType;
  tensorCount: number;
  fileSize: number;
  warnings: string[];
}

/** Parses a `--type` value. @throws UsageError for anything but f32, f16, bf16, q8_0. */
export function parseConvertType(s: string): ConvertType {
  const k = s.toLowerCase();
  if (k in CONVERT_TYPES) return k as ConvertType;
  throw new UsageError("convert.bad_type", `--type: got ${s}, expected f32, f16, bf16 or q8_0`, { details: { got: s } });
}

/** The sequential path: one tensor's converted bytes to the writer in row chunks, read → decode → encode → write. */
async function writeTensorSequential(w: GgufWriter, src: TensorSource, t: TensorConversion, signal: AbortSignal | undefined): Promise<void> {
  const hfShape = src.shape;
  const nRows = hfShape.length === 0 ? 1 : hfShape[0]!;
  const rowElems = hfShape.length <= 1 ? 1 : hfShape.slice(1).reduce((a, b) => a * b, 1);
  const perm = t.permuteHeads !== undefined ? qkPermutation(nRows, t.permuteHeads, t.hfName) : undefined;
  // Q8_0 blocks must not straddle chunks: whole rows per chunk (rowElems is a multiple of 32 for Q8_0).
  const chunkRows = Math.max(1, Math.floor(CONVERT_CHUNK_ELEMS / Math.max(1, rowElems)));
  for (let r0 = 0; r0 < nRows; r0 += chunkRows) {
    if (signal?.aborted) throw new CancelledError("conversion cancelled; no output was written");
    const n = Math.min(chunkRows, nRows - r0);
    const count = n * rowElems;
    const f32 = new Float32Array(count);
    if (perm !== undefined) {
      for (let i = 0; i < n; i++) await src.read(perm[r0 + i]! * rowElems, rowElems, f32.subarray(i * rowElems, (i + 1) * rowElems));
    } else {
      await src.read(r0 * rowElems, count, f32);
    }
    if (t.add !== undefined) for (let i = 0; i < count; i++) f32[i] = Math.fround(f32[i]! + t.add);
    const bytes = new Uint8Array(byteLengthOf(t.type, count));
    encodeGgufFromF32(t.type, f32, bytes, count);
    w.writeTensorData(t.ggufName, bytes);
  }
}

/**
 * Converts the HF checkpoint at `options.input` to GGUF at `options.output`.
 * @returns what was written (path, architecture, type, tensor count, size, fallbacks taken).
 * @throws InputError/FormatError for unreadable or unsupported checkpoints and tokenizers (see plan.ts,
 *   tokenizer.ts, hf-dir/checkpoint.ts), OutputExistsError, CancelledError, IoError.
 */
export async function convertToGguf(options: ConvertOptions): Promise<ConvertSummary> {
  const type = options.type ?? "f16";
  const onEvent = options.onEvent ?? (() => {});
  const isGguf = options.input.toLowerCase().endsWith(".gguf");
  const ckpt = isGguf ? await openGgufCheckpoint(options.input) : await openCheckpoint(options.input);
  try {
    const inventory = [...ckpt.tensors.values()].map((t) => ({ name: t.name, shape: t.shape }));
    const ggufName = isGguf ? (ckpt as GgufCheckpoint).gguf.header.metadata.get(KEYS.general.name) : undefined;
    const name = options.name ?? (ggufName?.type === "string" ? ggufName.value : basename(resolve(options.input)).replace(/\.gguf$/i, ""));
    const label = isGguf ? ckpt.path : (ckpt as HfCheckpoint).configPath;
    const plan = planConversion(ckpt.config, inventory, CONVERT_TYPES[type], label, name);
    const config = flattenConfig(ckpt.config);
    const vocabSize = typeof config.vocab_size === "number" ? config.vocab_size : undefined;
    // A GGUF input (re-typing, e.g. f16 → q8_0) keeps its tokenizer keys; an HF directory's files are converted.
    const tok: GgufMetadata = isGguf
      ? new Map([...(ckpt as GgufCheckpoint).gguf.header.metadata].filter(([k]) => k.startsWith("tokenizer.")))
      : tokenizerMetadata(ckpt.path, config, { vocabSize, tokenizerPre: options.tokenizerPre, spmAddSpacePrefix: plan.arch.spmAddSpacePrefix });
    const metadata: GgufMetadata = new Map([...plan.metadata, ...tok]);
    for (const w of plan.warnings) onEvent({ kind: "warning", message: w });

    const fsync = options.fsync ?? true;
    const out = openAtomicOutput(options.output, { force: options.force, isDirectory: false, fsync });
    const streamed = !isGguf && (options.fast ?? process.env.REALIGN_FAST !== "0");
    // a durable streamed write bypasses the page cache (O_DIRECT; see formats/safetensors/write.ts for why)
    const w = streamed && fsync && directIoEnabled() ? await GgufWriter.createDirect(out.tempPath) : GgufWriter.create(out.tempPath);
    try {
      w.writeHeader(plan.tensors.length, metadata.size);
      w.writeKv(metadata);
      const layout = w.writeTensorInfos(plan.tensors.map((t) => ({ name: t.ggufName, shape: t.shape, type: t.type })));
      onEvent({ kind: "phase", name: "convert", total: plan.tensors.length, unit: "tensors" });
      let done = 0;
      const progress = (label: string): void => onEvent({ kind: "progress", done: ++done, total: plan.tensors.length, label });
      if (streamed) {
        const tensors = plan.tensors.map((conv) => ({ conv, src: conv.data === undefined ? ckpt.openTensor(conv.hfName) : undefined }));
        await streamTensors(w, tensors, { chunkBytes: options.chunkBytes, signal: options.signal, onTensorDone: (i) => progress(plan.tensors[i]!.ggufName) });
        // the atomic output fsyncs the file at commit (with `fsync`), so closing does not
        await w.closeAsync({ fsync: false });
      } else {
        for (const t of plan.tensors) {
          if (t.data !== undefined) w.writeTensorData(t.ggufName, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
          else await writeTensorSequential(w, ckpt.openTensor(t.hfName), t, options.signal);
          progress(t.ggufName);
        }
        w.close({ fsync: false });
      }
      out.commit();
      return { output: out.target, arch: plan.arch.arch, type, tensorCount: plan.tensors.length, fileSize: layout.fileSize, warnings: plan.warnings };
    } catch (e) {
      w.abort();
      out.abort();
      throw e;
    }
  } finally {
    await ckpt.close();
  }
}

/**
 * A merge output sink that writes GGUF (`realign merge … --out-format gguf`): runMerge declares every output
 * tensor (HF name, dtype, shape) up front and streams their bytes in order; this sink plans the conversion
 * from those declarations (sizes are known from shapes and types, so the header with all tensor infos is
 * written first), then converts each tensor's bytes as they arrive — decode to float32, llama.cpp
 * conventions (Q/K permutation, Gemma norm +1, F32 norms), encode to the GGUF type — and streams them out.
 * Only Q/K projections are held whole (their rows are reordered); everything else passes in small units.
 *
 * Tokenizer keys come from the carried tokenizer files (HF inputs) or from a GGUF input's `tokenizer.*` keys.
 */
import { basename, dirname, join } from "node:path";
import { DTYPE_BYTES, decodeToF32, type Dtype } from "../core/dtype.ts";
import { InputError, InternalError } from "../errors.ts";
import { ggmlType, type MergeableGgmlType } from "../formats/gguf/constants.ts";
import { qkPermutation } from "../formats/gguf/qk-permute.ts";
import { readGgufHeader } from "../formats/gguf/read.ts";
import { byteLengthOf, encodeGgufFromF32 } from "../formats/gguf/tensor-data.ts";
import type { GgufMetadata } from "../formats/gguf/types.ts";
import { GgufWriter } from "../formats/gguf/write.ts";
import type { SinkContext, SinkFactory, TensorSink } from "../merge/sink.ts";
import { CONVERT_TYPES, flattenConfig, planConversion, type ConvertType, type TensorConversion } from "./plan.ts";
import { tokenizerMetadata } from "./tokenizer.ts";

export interface GgufSinkOptions {
  /** GGUF type for matrices. @default the merge's output dtype (bf16/f16/f32), else f16 */
  type?: ConvertType;
  /** `tokenizer.ggml.pre` override. */
  tokenizerPre?: string;
  /** File name inside the output directory. @default "model.gguf" */
  fileName?: string;
  /** `general.name`. @default "merged" */
  name?: string;
}

const FROM_OUT_DTYPE: Readonly<Record<string, MergeableGgmlType>> = { BF16: "BF16", F16: "F16", F32: "F32" };

/**
 * The merge's output dtype; when tensors differ (GGUF inputs keep norms F32), the dtype of most matrices;
 * F16 when neither is a GGUF float type.
 */
function defaultType(ctx: SinkContext): MergeableGgmlType {
  if (ctx.plan.outDtype !== undefined) return FROM_OUT_DTYPE[ctx.plan.outDtype] ?? "F16";
  const counts = new Map<string, number>();
  for (const t of ctx.tensors) if (t.shape.length >= 2) counts.set(t.dtype, (counts.get(t.dtype) ?? 0) + 1);
  const top = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
  return FROM_OUT_DTYPE[top ?? ""] ?? "F16";
}

/** Tokenizer metadata for the merged model: carried HF tokenizer files, else a GGUF input's keys. */
function mergedTokenizer(ctx: SinkContext, config: Record<string, unknown>, options: GgufSinkOptions, spmAddSpacePrefix: boolean | undefined): GgufMetadata {
  const tokFile = ctx.plan.carry.find((c) => c.name === "tokenizer.json" || c.name === "tokenizer.model");
  if (tokFile !== undefined) {
    const vocabSize = typeof config.vocab_size === "number" ? config.vocab_size : undefined;
    return tokenizerMetadata(dirname(tokFile.from), config, { vocabSize, tokenizerPre: options.tokenizerPre, spmAddSpacePrefix });
  }
  const ggufInput = ctx.plan.inputs.find((i) => i.path.toLowerCase().endsWith(".gguf"));
  if (ggufInput !== undefined) {
    const md: GgufMetadata = new Map();
    for (const [k, v] of readGgufHeader(ggufInput.path).metadata) if (k.startsWith("tokenizer.")) md.set(k, v);
    return md;
  }
  throw new InputError("merge.no_tokenizer", "GGUF output needs a tokenizer: got no tokenizer.json/tokenizer.model in the inputs and no GGUF input, expected one", {
    hint: "merge checkpoints that include their tokenizer files, or write safetensors (--out-format safetensors)",
  });
}

/** Returns a SinkFactory writing the runner's single output file (file mode) or `<out>/model.gguf`. */
export function ggufSink(options: GgufSinkOptions = {}): SinkFactory {
  return (ctx): TensorSink => {
    const config = flattenConfig(ctx.plan.config);
    const type: MergeableGgmlType = options.type !== undefined ? CONVERT_TYPES[options.type] : defaultType(ctx);
    const plan = planConversion(ctx.plan.config, ctx.tensors, type, "merged config.json", options.name ?? "merged");
    const metadata: GgufMetadata = new Map([...plan.metadata, ...mergedTokenizer(ctx, config, options, plan.arch.spmAddSpacePrefix)]);
    const byName = new Map<string, TensorConversion>(plan.tensors.map((t) => [t.hfName, t]));
    // File mode (`--out x.gguf`): the runner's temp file; directory mode: <out>/model.gguf beside config and tokenizer.
    const fileName = options.fileName ?? "model.gguf";
    const writer = GgufWriter.create(ctx.file ?? join(ctx.dir, fileName));
    try {
      writer.writeHeader(plan.tensors.length, metadata.size);
      writer.writeKv(metadata);
      writer.writeTensorInfos(plan.tensors.map((t) => ({ name: t.ggufName, shape: t.shape, type: t.type })));
      // Generated tensors (llama3 rope_freqs) come first in the plan: write them now.
      for (const t of plan.tensors) if (t.data !== undefined) writer.writeTensorData(t.ggufName, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    } catch (e) {
      writer.abort();
      throw e;
    }

    let index = 0; // current declared tensor
    let consumed = 0; // bytes of it received
    let pending = new Uint8Array(0); // received but not yet converted

    const convert = (conv: TensorConversion, dtype: Dtype, bytes: Uint8Array, count: number, hfShape: readonly number[]): void => {
      let f32 = new Float32Array(count);
      decodeToF32(dtype, bytes, f32, count);
      if (conv.permuteHeads !== undefined) {
        const rows = hfShape[0]!;
        const rowElems = count / rows;
        const src = qkPermutation(rows, conv.permuteHeads, conv.hfName);
        const out = new Float32Array(count);
        for (let r = 0; r < rows; r++) out.set(f32.subarray(src[r]! * rowElems, (src[r]! + 1) * rowElems), r * rowElems);
        f32 = out;
      }
      if (conv.add !== undefined) for (let i = 0; i < count; i++) f32[i] = Math.fround(f32[i]! + conv.add);
      const out = new Uint8Array(byteLengthOf(conv.type, count));
      encodeGgufFromF32(conv.type, f32, out, count);
      writer.writeTensorData(conv.ggufName, out);
    };

    const write = async (bytes: Uint8Array): Promise<void> => {
      let at = 0;
      while (at < bytes.length) {
        const decl = ctx.tensors[index];
        if (decl === undefined) throw new InternalError("gguf sink: got more bytes than the declared tensors hold");
        const elemBytes = DTYPE_BYTES[decl.dtype];
        const numel = decl.shape.reduce((a, b) => a * b, 1);
        const total = numel * elemBytes;
        const take = Math.min(total - consumed, bytes.length - at);
        const conv = byName.get(decl.name);
        if (conv !== undefined) {
          if (decl.dtype !== "F32" && decl.dtype !== "F16" && decl.dtype !== "BF16") {
            throw new InputError("merge.gguf_dtype", `tensor ${decl.name}: got dtype ${decl.dtype}, expected a float tensor for GGUF output`, { details: { tensor: decl.name, dtype: decl.dtype } });
          }
          const next = new Uint8Array(pending.length + take);
          next.set(pending);
          next.set(bytes.subarray(at, at + take), pending.length);
          pending = next;
          const complete = consumed + take === total;
          // Units: whole tensor for permuted Q/K; else whole blocks of the output type.
          const unitBytes = conv.permuteHeads !== undefined ? total : ggmlType(conv.type).blockSize * elemBytes;
          const usable = complete ? pending.length : Math.floor(pending.length / unitBytes) * unitBytes;
          if (usable > 0 && (conv.permuteHeads === undefined || complete)) {
            convert(conv, decl.dtype, pending.subarray(0, usable), usable / elemBytes, decl.shape);
            pending = pending.slice(usable);
          }
        }
        consumed += take;
        at += take;
        if (consumed === total) {
          index++;
          consumed = 0;
          pending = new Uint8Array(0);
        }
      }
    };
    // Zero-size declared tensors are complete before any byte arrives.
    const skipEmpty = (): void => {
      while (index < ctx.tensors.length && ctx.tensors[index]!.shape.some((d) => d === 0)) index++;
    };
    skipEmpty();
    return {
      async write(bytes) {
        await write(bytes);
        skipEmpty();
      },
      async finish() {
        if (index < ctx.tensors.length) throw new InternalError(`gguf sink: finished with tensor ${ctx.tensors[index]!.name} incomplete`);
        // no fsync here: runMerge's atomic output fsyncs every file it holds before the rename (unless --no-fsync)
        writer.close({ fsync: false });
        return ctx.file !== undefined ? [basename(ctx.file)] : [fileName];
      },
      async abort() {
        writer.abort();
      },
    };
  };
}

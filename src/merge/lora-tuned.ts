/**
 * A LoRA adapter seen as the tuned model: a computed Checkpoint whose tensors are
 *   θ_tuned = θ_aligned + s·(B·A)   for LoRA-targeted weights (rows computed on demand, src/merge/lora-delta.ts),
 *   θ_tuned = θ_aligned + s·b_lora  for lora_bias biases (peft#2486),
 *   θ_tuned = the adapter's tensor  for modules_to_save / trained biases / saved embeddings,
 *   θ_tuned = θ_aligned             for everything else (same source object: the runner may copy it).
 * The normal merge kernels then give θ = (1−λ)·θ_aligned + λ·θ_tuned, so λ = 0 returns the aligned bytes and
 * λ = 1 is peft's `merge_and_unload` (within the output dtype's rounding; see lora-delta.ts for the exact
 * arithmetic). Nothing holds a whole model: a targeted tensor keeps only its A and B (float32) while read.
 */
import { numelOf, type Checkpoint, type TensorMeta, type TensorSource } from "../core/tensor.ts";
import { InternalError } from "../errors.ts";
import { baseNameWarning, mapAdapter, openAdapter, type AdapterEntry, type AdapterMapping, type PeftAdapter } from "../formats/peft/adapter.ts";
import { addDeltaRange, deltaScratch, lowRankFromAB, type LowRankDelta } from "./lora-delta.ts";
import { markLoraSource } from "./lora-source.ts";

/** A computed tuned checkpoint plus what the adapter mapping found. */
export interface LoraTunedCheckpoint extends Checkpoint {
  readonly adapter: PeftAdapter;
  readonly mapping: AdapterMapping;
  /** Warnings to show the user (fan_in_fan_out override, base name mismatch, untouched targets, …). */
  readonly warnings: readonly string[];
  /** True when tensor `name` is the aligned tensor unchanged (the runner may copy it bit for bit). */
  isUnchanged(name: string): boolean;
}

/** Replacement values for adapter tensors (Safe LoRA's projected B), by adapter tensor name. */
export type AdapterOverrides = ReadonlyMap<string, Float32Array>;

/** Reads a whole (small) adapter tensor as float32 (or its override). */
async function readAll(adapter: PeftAdapter, name: string, overrides?: AdapterOverrides): Promise<Float32Array> {
  const o = overrides?.get(name);
  if (o !== undefined) return o;
  const src = adapter.file.tensor(name);
  const n = numelOf(src.shape);
  const out = new Float32Array(n);
  await src.read(0, n, out);
  return out;
}

/** θ_aligned + s·(B·A) rows on demand. A and B are loaded on the first read. */
function loraSource(
  aligned: TensorSource,
  alignedPath: string,
  adapter: PeftAdapter,
  e: Extract<AdapterEntry, { kind: "lora" }>,
  overrides?: AdapterOverrides,
): TensorSource {
  let delta: Promise<LowRankDelta> | undefined;
  let scratch: Float32Array | undefined;
  const load = async (): Promise<LowRankDelta> => {
    const [a, b] = await Promise.all([readAll(adapter, e.aName, overrides), readAll(adapter, e.bName, overrides)]);
    return lowRankFromAB(a, b, e.rank, e.inDim, e.outDim, e.scale, e.transposed);
  };
  const getDelta = (): Promise<LowRankDelta> => (delta ??= load());
  const source: TensorSource = {
    name: aligned.name,
    dtype: aligned.dtype,
    shape: aligned.shape,
    async read(offsetElems, countElems, out) {
      await aligned.read(offsetElems, countElems, out);
      const d = await getDelta();
      scratch ??= deltaScratch(d.cols);
      addDeltaRange(d, offsetElems, countElems, out, scratch);
    },
  };
  // the merge's fast path may compute it in the kernel pool from the stored bytes (workers/fast-lora.ts)
  const rows = e.transposed ? e.inDim : e.outDim;
  const cols = e.transposed ? e.outDim : e.inDim;
  return markLoraSource(source, { base: aligned, basePath: alignedPath, rows, cols, rank: e.rank, delta: getDelta });
}

/** θ_aligned + f32(s·b) elementwise (lora_bias). */
function biasSource(aligned: TensorSource, adapter: PeftAdapter, e: Extract<AdapterEntry, { kind: "bias" }>): TensorSource {
  let bias: Promise<Float32Array> | undefined;
  const s = Math.fround(e.scale);
  return {
    name: aligned.name,
    dtype: aligned.dtype,
    shape: aligned.shape,
    async read(offsetElems, countElems, out) {
      await aligned.read(offsetElems, countElems, out);
      bias ??= readAll(adapter, e.source);
      const b = await bias;
      for (let i = 0; i < countElems; i++) out[i] = out[i]! + Math.fround(s * b[offsetElems + i]!);
    },
  };
}

/** The adapter's saved tensor, reported in the aligned tensor's dtype (values decoded from the adapter's). */
function replaceSource(alignedMeta: TensorMeta, adapter: PeftAdapter, e: Extract<AdapterEntry, { kind: "replace" }>): TensorSource {
  const src = adapter.file.tensor(e.source);
  return {
    name: alignedMeta.name,
    dtype: alignedMeta.dtype,
    shape: e.shape,
    read: (offsetElems, countElems, out) => src.read(offsetElems, countElems, out),
    ...(src.dtype === alignedMeta.dtype && src.readBytes !== undefined ? { readBytes: src.readBytes.bind(src) } : {}),
  };
}

/** `LoRA adapter <dir> (r 8, α 16, scale 2)`: the adapter's default rank, alpha and scaling (α/r, α/√r with rsLoRA). */
export function adapterPhrase(adapter: PeftAdapter): string {
  const c = adapter.config;
  const scale = c.useRslora ? c.loraAlpha / Math.sqrt(c.r) : c.loraAlpha / c.r;
  const patterns = Object.keys(c.rankPattern).length + Object.keys(c.alphaPattern).length > 0 ? "; per-module rank/alpha patterns" : "";
  return `LoRA adapter ${adapter.dir} (r ${c.r}, α ${c.loraAlpha}, scale ${Number(scale.toPrecision(6))}${c.useRslora ? " rsLoRA" : ""}${patterns})`;
}

/**
 * Wraps an open aligned checkpoint and an open adapter into the computed tuned checkpoint.
 * @param options.mapping a mapping already computed for this pair (else computed here);
 *   options.overrides replacement values for adapter tensors (Safe LoRA's projected B).
 * @throws what `mapAdapter` throws (unmapped tensor, rank/shape mismatch, …).
 */
export function loraTunedCheckpoint(
  aligned: Checkpoint,
  adapter: PeftAdapter,
  options: { mapping?: AdapterMapping; overrides?: AdapterOverrides } = {},
): LoraTunedCheckpoint {
  const mapping = options.mapping ?? mapAdapter(adapter.config, adapter.tensors, aligned, { adapterPath: adapter.dir });
  const overrides = options.overrides;
  const warnings = [...mapping.warnings];
  const nameWarning = baseNameWarning(adapter.config, aligned);
  if (nameWarning !== undefined) warnings.push(nameWarning);
  const tensors = new Map<string, TensorMeta>();
  for (const [name, meta] of aligned.tensors) {
    const e = mapping.entries.get(name);
    tensors.set(name, e?.kind === "replace" ? { name, dtype: meta.dtype, shape: e.shape } : { name, dtype: meta.dtype, shape: meta.shape });
  }
  return {
    path: adapter.dir,
    config: aligned.config,
    tensors,
    carryFiles: aligned.carryFiles,
    weightFiles: [...aligned.weightFiles, adapter.weightsPath],
    origin: { what: adapterPhrase(adapter), onto: aligned.path },
    adapter,
    mapping,
    warnings,
    isUnchanged: (name) => !mapping.entries.has(name),
    openTensor(name) {
      const meta = aligned.tensors.get(name);
      if (meta === undefined) throw new InternalError(`tensor ${name} not in aligned checkpoint ${aligned.path}`);
      const e = mapping.entries.get(name);
      if (e === undefined) return aligned.openTensor(name);
      switch (e.kind) {
        case "lora":
          return loraSource(aligned.openTensor(name), aligned.path, adapter, e, overrides);
        case "bias":
          return biasSource(aligned.openTensor(name), adapter, e);
        case "replace":
          return replaceSource(meta, adapter, e);
      }
    },
    // The aligned checkpoint belongs to the caller; only the adapter is closed here.
    close: () => adapter.close(),
  };
}

/**
 * Opens `adapterDir` and wraps it over `aligned` (which the caller opened and will close).
 * @throws FormatError `adapter.*`, IncompatibleModelsError `adapter.*` (see mapAdapter/openAdapter).
 */
export async function openLoraTuned(adapterDir: string, aligned: Checkpoint): Promise<LoraTunedCheckpoint> {
  const adapter = await openAdapter(adapterDir);
  try {
    return loraTunedCheckpoint(aligned, adapter);
  } catch (e) {
    await adapter.close();
    throw e;
  }
}


/**
 * runMerge: executes a MergePlan. The only merge code that touches disk. Streams every output tensor in
 * chunks (ascending element offset, whole rows where a row fits, at most `chunkElems` float32 elements per
 * input), decodes the inputs to float32 (core/dtype), runs the method's measure passes and kernel
 * (methods/types.ts contract), encodes to the output dtype (round-to-nearest-even) and streams the bytes to a
 * TensorSink (HF safetensors shards by default). Writes config.json, the carried files and a model card, all
 * inside a temp directory beside `out` that is renamed into place only at the end (core/files): a failure or
 * an abort leaves no partial output. Peak memory is (inputs + 2) × chunkElems × 4 bytes plus scratch,
 * independent of model size.
 */
import { copyFile, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, isAbsolute } from "node:path";
import { DTYPE_BYTES, encodeFromF32, type OutDtype } from "../core/dtype.ts";
import type { OnEvent } from "../core/events.ts";
import { withAtomicOutput } from "../core/files.ts";
import type { Checkpoint, TensorSource } from "../core/tensor.ts";
import { CancelledError, ConfigError, InternalError, UsageError, fsError } from "../errors.ts";
import { openCheckpoint } from "../formats/hf-dir/checkpoint.ts";
import { TOOL_NAME, VERSION } from "../version.ts";
import { renderModelCard } from "./card.ts";
import { modelIdentity, type FileIdentity } from "./identity.ts";
import type { Chunk, MergeMethod, TensorReport } from "./methods/types.ts";
import { getMethod, methodUsesSeed } from "./methods/registry.ts";
import { findUnexplainedNonFinite, nonFiniteError } from "./methods/finite.ts";
import { planMerge, type MergePlan, type SourceRef, type TensorPlan } from "./plan.ts";
import { recipeInputs, type Recipe, type RecipeInput } from "./recipe.ts";
import { DEFAULT_MAX_SHARD_BYTES, safetensorsSink, type SinkFactory } from "./sink.ts";
import { createFastPath } from "./workers/fast-path.ts";
import type { FastRunOptions } from "./workers/fast-linear.ts";

/** Default chunk: 4 Mi float32 elements = 16 MiB per input. */
export const DEFAULT_CHUNK_ELEMS = 4 * 2 ** 20;

/** Options of runMerge (CLI flags in kebab-case map onto these). */
export interface RunMergeOptions {
  /** Output directory (created atomically). */
  readonly out: string;
  /** Replace an existing `out`. @default false */
  readonly force?: boolean;
  /** Largest shard, bytes (default sink only). @default 5e9 (transformers' "5GB") */
  readonly maxShardBytes?: number;
  /** Where tensor bytes go. @default safetensorsSink(maxShardBytes, { fsync }) */
  readonly sink?: SinkFactory;
  /**
   * Wait until every output file is on disk (fsync, then the parent directory after the rename) before
   * the output is renamed into place, so a power loss cannot leave a complete-looking but truncated output. false returns once the bytes are in the page
   * cache (transformers and mergekit do not fsync either); the rename stays atomic for every process.
   * Default sink only (a custom `sink` decides for itself). @default true
   */
  readonly fsync?: boolean;
  /** Largest chunk, elements per input. @default DEFAULT_CHUNK_ELEMS */
  readonly chunkElems?: number;
  /** Aborting it stops the merge with CancelledError; nothing is left at `out`. */
  readonly signal?: AbortSignal;
  /** Progress: one "merge" phase in bytes written, labelled by tensor. */
  readonly onEvent?: OnEvent;
  /** Recorded in the model card. */
  readonly commandLine?: string;
  /** Write README.md (model card). @default true */
  readonly writeCard?: boolean;
  /** Use the fused bf16 fast path where it applies (perf; identical bytes). @default true unless REALIGN_FAST=0 */
  readonly fastPath?: boolean;
  /** Fast-path pipeline tuning (tests). */
  readonly fastRun?: FastRunOptions;
  /**
   * "directory" (default): `out` is an HF model directory (weights, config.json, carried files, README.md).
   * "file": `out` is one file written entirely by the sink (e.g. a GGUF); no sidecar files.
   */
  readonly outputKind?: "directory" | "file";
}

/** What a merge produced (the CLI's `--json` summary). */
export interface MergeSummary {
  readonly out: string;
  readonly method: string;
  readonly lambda: number | undefined;
  readonly outDtype: string | undefined;
  readonly inputs: readonly { readonly label: string; readonly path: string }[];
  readonly tensorCount: number;
  readonly totalBytes: number;
  /** Files written in `out` (weights, index, config, carried files, README.md). */
  readonly files: readonly string[];
  readonly warnings: readonly string[];
  /**
   * Inputs that were computed rather than read, one phrase each, e.g. `LoRA adapter /a (r 8, α 16, scale 2)
   * applied onto aligned`; absent when every input is a plain checkpoint.
   */
  readonly derivedInputs?: readonly string[];
  /** Per-tensor reports of methods that make decisions (e.g. safemerge's ρ and gate), in tensor order; absent when none. */
  readonly tensorReports?: readonly NamedTensorReport[];
}

/** A method's report for one tensor (methods/types.ts `report`), with the tensor name. */
export interface NamedTensorReport {
  readonly tensor: string;
  readonly values: TensorReport;
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError("merge cancelled; no output was written");
}

/** Chunk length for a tensor: whole rows when a row fits in `maxElems`, else `maxElems`. */
export function chunkLength(shape: readonly number[], maxElems: number): number {
  const rowElems = shape.length <= 1 ? 1 : shape.slice(1).reduce((a, b) => a * b, 1);
  if (rowElems === 0) return maxElems;
  if (rowElems <= maxElems) return Math.max(rowElems, Math.floor(maxElems / rowElems) * rowElems);
  return maxElems;
}

/** Identity of each input's weight files (see identity.ts). */
async function identities(inputs: readonly Checkpoint[], signal?: AbortSignal): Promise<FileIdentity[][]> {
  const out: FileIdentity[][] = [];
  for (const c of inputs) {
    out.push(await modelIdentity(c.weightFiles, signal));
  }
  return out;
}

/**
 * One phrase per input that was computed (a LoRA adapter applied on the fly): `<what> applied onto <label>`,
 * the label of the plan input it was applied to (else its path).
 */
function derivedInputs(plan: MergePlan, inputs: readonly Checkpoint[]): string[] {
  const out: string[] = [];
  for (const ck of inputs) {
    if (ck.origin === undefined) continue;
    const onto = plan.inputs.find((i) => resolve(i.path) === resolve(ck.origin!.onto));
    out.push(`${ck.origin.what} applied onto ${onto?.label ?? ck.origin.onto}`);
  }
  return out;
}

/**
 * Executes `plan` over `inputs` (the opened checkpoints, in plan.inputs order) into `options.out`.
 * @throws OutputExistsError (out exists, no force), CancelledError (signal), FormatError/IoError from reads
 *   and writes; on any error the temp directory is removed and `out` is untouched.
 */
export async function runMerge(plan: MergePlan, inputs: readonly Checkpoint[], options: RunMergeOptions): Promise<MergeSummary> {
  if (inputs.length !== plan.inputs.length) throw new InternalError("runMerge: inputs do not match the plan");
  const method = getMethod(plan.method) as MergeMethod<unknown> | undefined;
  if (method === undefined) throw new InternalError(`runMerge: unknown method ${plan.method}`);
  const outAbs = resolve(options.out);
  const usesSeed = methodUsesSeed(plan.method, plan.recipe.params);
  const derived = derivedInputs(plan, inputs);
  for (const inp of plan.inputs) {
    const rel = relative(inp.path, outAbs);
    const relBack = relative(outAbs, inp.path);
    if (rel === "" || (!rel.startsWith("..") && !isAbsolute(rel)) || (!relBack.startsWith("..") && !isAbsolute(relBack))) {
      throw new UsageError("output.overlaps_input", `output ${options.out} overlaps input ${inp.path}`, {
        details: { out: outAbs, input: inp.path },
        hint: "choose an --out outside the input model directories",
      });
    }
  }
  const onEvent = options.onEvent ?? (() => {});
  const signal = options.signal;
  const maxChunk = Math.max(1, Math.floor(options.chunkElems ?? DEFAULT_CHUNK_ELEMS));
  const sinkFactory = options.sink ?? safetensorsSink(options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES, { fsync: options.fsync ?? true });
  for (const w of plan.warnings) onEvent({ kind: "warning", message: w });
  checkAborted(signal);

  const isFile = options.outputKind === "file";
  return withAtomicOutput(options.out, { force: options.force ?? false, isDirectory: !isFile, fsync: options.fsync ?? true }, async (tempPath) => {
    const dir = isFile ? dirname(tempPath) : tempPath;
    const metadata: Record<string, string> = { format: "pt", tool: TOOL_NAME, tool_version: VERSION, method: plan.method };
    if (plan.recipe.lambda !== undefined) metadata.lambda = String(plan.recipe.lambda);
    if (usesSeed) metadata.seed = String(plan.recipe.seed); // only methods that draw random numbers
    if (plan.outDtype !== undefined) metadata.out_dtype = plan.outDtype;
    const sink = await sinkFactory({
      dir,
      file: isFile ? tempPath : undefined,
      tensors: plan.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
      metadata,
      plan,
    });
    let weightFiles: string[];
    const tensorReports: NamedTensorReport[] = [];
    try {
      const largest = plan.tensors.reduce((m, t) => Math.max(m, t.numel), 0);
      const bufElems = Math.max(1, Math.min(maxChunk, largest));
      const nIn = inputs.length;
      const inBufs = Array.from({ length: nIn }, () => new Float32Array(bufElems));
      const outBuf = new Float32Array(bufElems);
      const outBytes = new Uint8Array(bufElems * 4);
      // Sources are opened per tensor and dropped after it, so their scratch buffers do not accumulate.
      const source = (ref: SourceRef): TensorSource => inputs[ref.input]!.openTensor(ref.name);
      let done = 0;
      onEvent({ kind: "phase", name: "merge", total: plan.totalBytes, unit: "bytes" });

      const emit = async (dtype: OutDtype, n: number): Promise<void> => {
        const byteLength = n * DTYPE_BYTES[dtype];
        encodeFromF32(dtype, outBuf.subarray(0, n), outBytes, n);
        await sink.write(outBytes.subarray(0, byteLength));
        done += byteLength;
      };

      // perf: runs of bf16 linear-form tensors take the fused WebAssembly path (workers/fast-path.ts)
      const fast = createFastPath({
        method,
        methodName: plan.method,
        source,
        inputPath: (ref) => inputs[ref.input]!.path,
        signal,
        enabled: options.fastPath,
        run: options.fastRun,
      });
      try {
      for (let ti = 0; ti < plan.tensors.length; ti++) {
        const t = plan.tensors[ti]!;
        checkAborted(signal);
        if (fast.eligible(t)) {
          let end = ti + 1;
          while (end < plan.tensors.length && fast.eligible(plan.tensors[end]!)) end++;
          await fast.run(plan.tensors.slice(ti, end), sink, (bytes, label) => {
            done += bytes;
            onEvent({ kind: "progress", done, total: plan.totalBytes, label });
          });
          ti = end - 1;
          continue;
        }
        if (t.kind === "copy") {
          await copyTensor(t, source(t.copyFrom!), sink.write, outBytes, signal);
          done += t.numel * DTYPE_BYTES[t.dtype];
          onEvent({ kind: "progress", done, total: plan.totalBytes, label: t.name });
          continue;
        }
        const dtype = t.dtype as OutDtype;
        const baseSrc = t.base === undefined ? undefined : source(t.base);
        const modelSrcs = t.models.map(source);
        const step = chunkLength(t.ctx.shape, bufElems);
        const readChunk = async (offset: number, n: number): Promise<Chunk> => {
          const reads: Promise<void>[] = [];
          let k = 0;
          let base: Float32Array | undefined;
          if (baseSrc !== undefined) {
            base = inBufs[k++]!.subarray(0, n);
            reads.push(baseSrc.read(offset, n, base));
          }
          const models = modelSrcs.map((s) => {
            const buf = inBufs[k++]!.subarray(0, n);
            reads.push(s.read(offset, n, buf));
            return buf;
          });
          await Promise.all(reads);
          return { base, models, offset };
        };
        const passes = method.measurePasses(t.ctx, t.params);
        const stats = method.initStats(t.ctx, t.params);
        for (let pass = 0; pass < passes; pass++) {
          for (let off = 0; off < t.mergedElems; off += step) {
            checkAborted(signal);
            const n = Math.min(step, t.mergedElems - off);
            method.measure(pass, stats, await readChunk(off, n), t.ctx, t.params);
          }
          if (method.endPass(pass, stats, t.ctx, t.params) === true) break; // statistics complete early
        }
        for (let off = 0; off < t.mergedElems; off += step) {
          checkAborted(signal);
          const n = Math.min(step, t.mergedElems - off);
          const chunk = await readChunk(off, n);
          method.kernel(chunk, outBuf.subarray(0, n), stats, t.ctx, t.params);
          assertFiniteChunk(t, plan.method, chunk, outBuf.subarray(0, n), dtype);
          await emit(dtype, n);
          onEvent({ kind: "progress", done, total: plan.totalBytes, label: t.name });
        }
        const report = method.report?.(stats, t.ctx, t.params);
        if (report !== undefined) tensorReports.push({ tensor: t.name, values: report });
        if (t.tail !== undefined) {
          const tailSrc = source(t.tail);
          const tailStep = chunkLength(t.shape, bufElems);
          for (let off = t.mergedElems; off < t.numel; off += tailStep) {
            checkAborted(signal);
            const n = Math.min(tailStep, t.numel - off);
            await tailSrc.read(off, n, outBuf.subarray(0, n));
            await emit(dtype, n);
          }
          onEvent({ kind: "progress", done, total: plan.totalBytes, label: t.name });
        }
        if (t.numel === 0) onEvent({ kind: "progress", done, total: plan.totalBytes, label: t.name });
      }
      } finally {
        await fast.close();
      }
      checkAborted(signal);
      weightFiles = await sink.finish();
    } catch (e) {
      await sink.abort();
      throw e;
    }

    const summary = (files: string[]): MergeSummary => ({
      out: outAbs,
      method: plan.method,
      lambda: plan.recipe.lambda,
      outDtype: plan.outDtype?.toLowerCase(),
      inputs: plan.inputs.map((i) => ({ label: i.label, path: i.path })),
      tensorCount: plan.tensors.length,
      totalBytes: plan.totalBytes,
      files: files.sort(),
      warnings: plan.warnings,
      ...(derived.length > 0 ? { derivedInputs: derived } : {}),
      ...(tensorReports.length > 0 ? { tensorReports } : {}),
    });
    if (isFile) return summary([basename(outAbs)]);
    const files = [...weightFiles];
    const configPath = join(dir, "config.json");
    try {
      await writeFile(configPath, JSON.stringify(plan.config, null, 2) + "\n");
    } catch (e) {
      throw fsError(e, configPath, "writing config");
    }
    files.push("config.json");
    for (const c of plan.carry) {
      try {
        await copyFile(c.from, join(dir, c.name));
      } catch (e) {
        throw fsError(e, c.from, "copying tokenizer/config file");
      }
      files.push(c.name);
    }
    if (options.writeCard !== false) {
      checkAborted(signal);
      const card = renderModelCard({
        plan,
        identities: await identities(inputs, signal),
        tool: TOOL_NAME,
        version: VERSION,
        commandLine: options.commandLine,
        files,
        tensorReports,
        derivedInputs: derived,
        usesSeed,
      });
      try {
        await writeFile(join(dir, "README.md"), card);
      } catch (e) {
        throw fsError(e, join(dir, "README.md"), "writing model card");
      }
      files.push("README.md");
    }
    checkAborted(signal);
    return summary(files);
  }).catch((e: unknown) => {
    if (e instanceof Error && e.name === "AbortError") throw new CancelledError("merge cancelled; no output was written", { cause: e });
    throw e;
  });
}

/**
 * Refuses NaN/±Inf (or f16 overflow) in a merged chunk where every input was finite (methods/finite.ts).
 * @throws ConfigError `merge.non_finite` naming the tensor and element.
 */
function assertFiniteChunk(t: TensorPlan, method: string, chunk: Chunk, out: Float32Array, dtype: OutDtype): void {
  const j = findUnexplainedNonFinite(chunk, out, dtype === "F16");
  if (j < 0) return;
  const index = chunk.offset + j;
  throw nonFiniteError(t.name, method, t.params, index, out[j]!, dtype === "F16");
}

/** Copies a stored tensor's raw bytes (non-float tensors) in chunks. */
async function copyTensor(
  t: TensorPlan,
  src: TensorSource,
  write: (bytes: Uint8Array) => Promise<void>,
  scratch: Uint8Array,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (src.readBytes === undefined) {
    throw new InternalError(`tensor ${t.name}: ${t.dtype} tensor has no raw-byte source to copy from`);
  }
  const total = t.numel * DTYPE_BYTES[t.dtype];
  for (let off = 0; off < total; off += scratch.length) {
    checkAborted(signal);
    const n = Math.min(scratch.length, total - off);
    const buf = scratch.subarray(0, n);
    await src.readBytes(off, buf);
    await write(buf);
  }
}

/** Options of mergeRecipe: runMerge's plus how to open each input. */
export interface MergeRecipeOptions extends RunMergeOptions {
  /** Opens one recipe input. @default openCheckpoint(input.path) (HF safetensors directory) */
  readonly openInput?: (input: RecipeInput) => Promise<Checkpoint>;
}

/**
 * Opens the recipe's inputs, plans (all compatibility checks before any write), runs, and closes the inputs.
 * The one call behind `realign merge` and `realign demo`.
 */
export async function mergeRecipe(recipe: Recipe, options: MergeRecipeOptions): Promise<MergeSummary> {
  const open = options.openInput ?? ((i: RecipeInput) => openCheckpoint(i.path));
  const opened: Checkpoint[] = [];
  try {
    for (const input of recipeInputs(recipe)) opened.push(await open(input));
    const plan = planMerge(recipe, opened);
    return await runMerge(plan, opened, options);
  } finally {
    await Promise.all(opened.map((c) => c.close()));
  }
}

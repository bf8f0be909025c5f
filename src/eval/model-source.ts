/**
 * `--model` resolution for in-process inference: whatever the user points at becomes one GGUF file that
 * node-llama-cpp can load.
 *
 * - a `.gguf` file (or any file starting with the GGUF magic) → used as is;
 * - a Hugging Face model directory (config.json) → converted to a temp GGUF (src/convert);
 * - a PEFT LoRA adapter directory (adapter_config.json) + `aligned` → merged at λ = 1 onto the aligned model
 *   (θ_aligned + s·B·A, src/merge/lora-merge.ts) into a temp directory, then converted.
 *
 * The temp GGUF is F32 for checkpoints under 1 GiB of weights (exact for bf16/f16 sources, so greedy text
 * matches transformers' fp32 compute), else F16/BF16 following the source dtype; `convertType` overrides.
 * Temp files live in one `realign-model-*` directory under the OS temp dir, removed by `cleanup()` (and on
 * process exit as a fallback). The HF directory's chat template and BOS rule are returned so the backend
 * uses them even if the GGUF lacks them.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { open, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import type { OnEvent } from "../core/events.ts";
import { InputError, UsageError, fsError } from "../errors.ts";
import { readChatFormat, type ChatFormat } from "./chat-template.ts";

/** Checkpoints with fewer weight bytes than this convert to an F32 temp GGUF. */
export const F32_TEMP_LIMIT_BYTES = 2 ** 30;

const GGUF_MAGIC = "GGUF";

export type ModelKind = "gguf" | "hf" | "adapter";

export interface ResolveModelOptions {
  /** `--model`: a GGUF file, an HF model directory, or a LoRA adapter directory. */
  readonly model: string;
  /** `--aligned`: the model an adapter was trained from (required for adapters, refused otherwise). */
  readonly aligned?: string;
  /** Tensor type of a converted temp GGUF. @default f32 under 1 GiB of weights, else f16/bf16 by source dtype */
  readonly convertType?: "f32" | "f16" | "bf16" | "q8_0";
  readonly signal?: AbortSignal;
  readonly onEvent?: OnEvent;
}

export interface ResolvedModel {
  /** The GGUF to load. */
  readonly ggufPath: string;
  readonly kind: ModelKind;
  /** A display name (`/v1/models`): the file or directory name. */
  readonly name: string;
  /** Chat format read from the HF directory (undefined for a GGUF: the backend reads the GGUF's). */
  readonly chatFormat?: Partial<ChatFormat>;
  /** Removes temp files (no-op for a GGUF given as is). Idempotent. */
  cleanup(): Promise<void>;
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (err) {
    throw fsError(err, path, "reading --model");
  }
}

async function hasFile(dir: string, name: string): Promise<boolean> {
  try {
    return (await stat(join(dir, name))).isFile();
  } catch {
    return false;
  }
}

async function hasGgufMagic(file: string): Promise<boolean> {
  const fh = await open(file, "r").catch((err) => {
    throw fsError(err, file, "reading --model");
  });
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    return bytesRead === 4 && buf.toString("latin1") === GGUF_MAGIC;
  } finally {
    await fh.close();
  }
}

/** Total bytes of the `.safetensors` files in a directory. */
async function weightBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) {
    if (name.endsWith(".safetensors")) total += (await stat(join(dir, name))).size;
  }
  return total;
}

async function defaultConvertType(dir: string): Promise<"f32" | "f16" | "bf16"> {
  if ((await weightBytes(dir)) < F32_TEMP_LIMIT_BYTES) return "f32";
  try {
    const { readFile } = await import("node:fs/promises");
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as { torch_dtype?: string; dtype?: string };
    return (config.dtype ?? config.torch_dtype) === "bfloat16" ? "bf16" : "f16";
  } catch {
    return "f16";
  }
}

/** Classifies `--model` without reading weights. @throws InputError naming the path when it is none of the three. */
export async function detectModelKind(model: string): Promise<ModelKind> {
  if (await isDir(model)) {
    if (await hasFile(model, "adapter_config.json")) return "adapter";
    if (await hasFile(model, "config.json")) return "hf";
    throw new InputError("model.unknown_dir", `--model ${model}: a directory without config.json or adapter_config.json`, {
      details: { path: model },
      hint: "point --model at a .gguf file, a Hugging Face model directory or a PEFT LoRA adapter directory",
    });
  }
  if (model.toLowerCase().endsWith(".gguf") || (await hasGgufMagic(model))) return "gguf";
  throw new InputError("model.not_gguf", `--model ${model}: got a file that is not GGUF (no "GGUF" magic), expected a .gguf file or a model directory`, {
    details: { path: model },
    hint: "convert safetensors checkpoints by passing their directory",
  });
}

/**
 * Resolves `--model` (+ `--aligned`) to a GGUF path, converting/merging into temp files as needed.
 * @throws UsageError when `aligned` is missing for an adapter or given for anything else; the errors of
 *   convertToGguf / mergeLora (FormatError, IncompatibleModelsError, CancelledError…) otherwise.
 */
export async function resolveModel(options: ResolveModelOptions): Promise<ResolvedModel> {
  const model = resolve(options.model);
  const kind = await detectModelKind(model);
  const name = basename(model).replace(/\.gguf$/i, "");
  if (kind === "adapter" && options.aligned === undefined) {
    throw new UsageError("model.adapter_needs_aligned", `--model ${options.model} is a LoRA adapter, but --aligned was not given`, {
      details: { path: model },
      hint: "add --aligned <the HF model directory the adapter was trained from>",
    });
  }
  if (kind !== "adapter" && options.aligned !== undefined) {
    throw new UsageError("model.aligned_without_adapter", `--aligned is only used with a LoRA adapter --model; ${options.model} is ${kind === "gguf" ? "a GGUF file" : "a full model directory"}`, {
      details: { path: model },
    });
  }
  if (kind === "gguf") return { ggufPath: model, kind, name, cleanup: async () => {} };

  const temp = makeTempDir();
  try {
    let hfDir = model;
    let chatFormat: Partial<ChatFormat>;
    if (kind === "adapter") {
      const aligned = resolve(options.aligned as string);
      hfDir = join(temp.dir, "merged");
      const { mergeLora } = await import("../merge/lora-merge.ts");
      await mergeLora({ aligned, adapter: model, lambda: 1, out: hfDir, signal: options.signal, onEvent: options.onEvent, writeCard: false });
      // An adapter dir may carry its own tokenizer files (added chat template); prefer them.
      const own = await readChatFormat(model);
      chatFormat = own.template !== undefined ? own : await readChatFormat(aligned);
    } else {
      chatFormat = await readChatFormat(model);
    }
    const ggufPath = join(temp.dir, `${name}.gguf`);
    const { convertToGguf } = await import("../convert/convert.ts");
    const summary = await convertToGguf({
      input: hfDir,
      output: ggufPath,
      type: options.convertType ?? (await defaultConvertType(hfDir)),
      name,
      signal: options.signal,
      onEvent: options.onEvent,
    });
    for (const w of summary.warnings) options.onEvent?.({ kind: "warning", message: w });
    if (kind === "adapter") await rm(hfDir, { recursive: true, force: true });
    return { ggufPath, kind, name, chatFormat, cleanup: temp.cleanup };
  } catch (err) {
    await temp.cleanup();
    throw err;
  }
}

/** A temp directory removed by `cleanup()` or, failing that, when the process exits. */
function makeTempDir(): { dir: string; cleanup: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), "realign-model-"));
  const onExit = (): void => rmSync(dir, { recursive: true, force: true });
  process.once("exit", onExit);
  let done = false;
  return {
    dir,
    cleanup: async () => {
      if (done) return;
      done = true;
      process.removeListener("exit", onExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface OpenModelOptions extends ResolveModelOptions {
  /** CPU threads. @default the backend's rule (1 under 100M parameters, else all cores) */
  readonly threads?: number;
  /** Parallel sequences. @default 1 */
  readonly parallel?: number;
  /** Tokens per sequence. */
  readonly contextSize?: number;
}

/** A loaded model: the backend plus the resolution behind it. `close()` releases both. */
export interface OpenedModel {
  readonly backend: import("./backends/llama.ts").LlamaBackend;
  readonly source: ResolvedModel;
  close(): Promise<void>;
}

/**
 * Resolves `--model` and loads it into the llama backend (what `realign generate/serve/eval` do).
 * Temp files are removed if loading fails, and by `close()` otherwise.
 */
export async function openModel(options: OpenModelOptions): Promise<OpenedModel> {
  const source = await resolveModel(options);
  try {
    const { openLlamaBackend } = await import("./backends/llama.ts");
    const backend = await openLlamaBackend({
      modelPath: source.ggufPath,
      chatFormat: source.chatFormat,
      modelName: source.name,
      threads: options.threads,
      parallel: options.parallel,
      contextSize: options.contextSize,
    });
    return {
      backend,
      source,
      close: async () => {
        try {
          await backend.close();
        } finally {
          await source.cleanup();
        }
      },
    };
  } catch (err) {
    await source.cleanup();
    throw err;
  }
}

/**
 * Model runtimes of the sweep (steps.ts ModelRuntime): how each backend gets a merged HF directory loaded.
 *
 * - llama (in-process node-llama-cpp): convert the HF directory to `<workDir>/model.gguf` (src/convert),
 *   F32 for checkpoints under 1 GiB of weights (exact for bf16/f16 sources, as model-source.ts does), else
 *   F16/BF16 by source dtype; `ggufType` overrides. The chat template of the HF directory is passed to the
 *   backend. Conversion is deterministic (general.name is fixed), so a resumed point re-creates the same GGUF,
 *   whose hash is the generation cache's model id.
 */
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { OnEvent } from "../core/events.ts";
import type { Backend } from "../eval/types.ts";
import type { ModelRuntime } from "./steps.ts";

/** Checkpoints with fewer weight bytes than this convert to F32 (src/eval/model-source.ts uses the same rule). */
const F32_LIMIT_BYTES = 2 ** 30;

export type GgufType = "f32" | "f16" | "bf16" | "q8_0";

export interface LlamaRuntimeOptions {
  /** CPU threads. @default the backend's rule (1 below 100M parameters, else all cores) */
  readonly threads?: number;
  /** Sequences decoded together. @default 1 */
  readonly parallel?: number;
  /** GGUF tensor type. @default f32 under 1 GiB of weights, else bf16/f16 by source dtype */
  readonly ggufType?: GgufType;
}

function autoType(dir: string): GgufType {
  let bytes = 0;
  for (const name of readdirSync(dir)) if (name.endsWith(".safetensors")) bytes += statSync(join(dir, name)).size;
  if (bytes < F32_LIMIT_BYTES) return "f32";
  try {
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as { torch_dtype?: string; dtype?: string };
    return (config.dtype ?? config.torch_dtype) === "bfloat16" ? "bf16" : "f16";
  } catch {
    return "f16";
  }
}

/** The in-process llama.cpp runtime. */
export function createLlamaRuntime(options: LlamaRuntimeOptions = {}): ModelRuntime {
  const chatFormats = new Map<string, unknown>();
  return {
    backend: { kind: "llama", threads: options.threads, parallel: options.parallel, ggufType: options.ggufType ?? "auto" },
    async materialize(hfDir: string, workDir: string, context: { signal?: AbortSignal; onEvent: OnEvent }) {
      const { convertToGguf } = await import("../convert/convert.ts");
      const { readChatFormat } = await import("../eval/chat-template.ts");
      const output = join(workDir, "model.gguf");
      const summary = await convertToGguf({
        input: hfDir,
        output,
        type: options.ggufType ?? autoType(hfDir),
        force: true,
        name: "realign-sweep-point",
        signal: context.signal,
        onEvent: context.onEvent,
      });
      for (const w of summary.warnings) context.onEvent({ kind: "warning", message: w });
      chatFormats.set(output, await readChatFormat(hfDir));
      return { path: output, cleanup: () => rmSync(output, { force: true }) };
    },
    async open(path: string): Promise<Backend> {
      const { openLlamaBackend } = await import("../eval/backends/llama.ts");
      return openLlamaBackend({
        modelPath: path,
        threads: options.threads,
        parallel: options.parallel,
        chatFormat: chatFormats.get(path) as Parameters<typeof openLlamaBackend>[0]["chatFormat"],
      });
    },
  };
}

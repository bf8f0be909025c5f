/**
 * Model runtimes of the sweep (steps.ts ModelRuntime): how each backend gets a merged HF directory loaded.
 *
 * - llama (in-process node-llama-cpp): merged points are written straight to `<workDir>/gguf/model.gguf` by the
 *   merge's GGUF sink (src/convert/merge-io.ts; no temporary HF directory); the inputs reused at λ=0 / λ=1 are
 *   converted to `<workDir>/model.gguf` (src/convert). Either way the tensors are F32 for checkpoints under
 *   1 GiB of weights (exact for bf16/f16 sources, as model-source.ts does), else F16/BF16 by source dtype;
 *   `ggufType` overrides. The chat template of the HF directory is passed to the backend. Both paths are
 *   deterministic (fixed names), so a resumed point re-creates the same GGUF, whose hash is the generation
 *   cache's model id.
 */
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { OnEvent } from "../core/events.ts";
import { fsError } from "../errors.ts";
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
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw fsError(e, dir, "reading model directory");
  }
  for (const name of names) if (name.endsWith(".safetensors")) bytes += statSync(join(dir, name)).size;
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
    async mergeStraight(recipe, workDir, context) {
      const { mergeRecipe } = await import("../merge/run.ts");
      const { ggufMergeOptions } = await import("../convert/merge-io.ts");
      const { readChatFormat } = await import("../eval/chat-template.ts");
      const outDir = join(workDir, "gguf");
      const reference = recipe.base?.path ?? recipe.models[0]!.path;
      const output = await ggufMergeOptions({ outFormat: "gguf", out: outDir, ggufType: options.ggufType ?? autoType(reference) });
      await mergeRecipe(recipe, { out: outDir, force: true, writeCard: false, signal: context.signal, onEvent: context.onEvent, commandLine: context.commandLine, ...output });
      const path = join(outDir, "model.gguf");
      chatFormats.set(path, await readChatFormat(outDir));
      return { path, cleanup: () => rmSync(outDir, { recursive: true, force: true }) };
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

/**
 * The OpenAI-compatible runtime: for each point a server is started on the materialised model with
 * `serveCommand` (`{model}` and `{port}` are substituted, the model path shell-quoted), the sweep waits until
 * `GET /v1/models` answers, evaluates through the openai backend, then stops the server (SIGTERM, SIGKILL after
 * STOP_GRACE_MS). The default command is this realign's own `realign serve` on the GGUF. For servers that load
 * Hugging Face directories (vLLM: `vllm serve {model} --port {port}`), pass `modelFormat: "hf"`. The cache
 * identity of each point is the sha256 of its weights, so points never share cached answers.
 */
export interface OpenAIRuntimeOptions {
  /** Server command template. @default `<node> <realign> serve --model {model} --port {port}` */
  readonly serveCommand?: string;
  /** What the server loads: a GGUF file or the HF directory. @default "gguf" */
  readonly modelFormat?: "gguf" | "hf";
  /** `model` field of requests (vLLM's served name). @default "model" */
  readonly modelName?: string;
  /** Requests in flight. @default 4 */
  readonly concurrency?: number;
  /** GGUF type when modelFormat is gguf. @default as the llama runtime */
  readonly ggufType?: GgufType;
  /** How long a server may take to answer /v1/models. @default 600000 */
  readonly readyTimeoutMs?: number;
  /** Threads passed to the default realign serve command. */
  readonly threads?: number;
}

/** Grace period between SIGTERM and SIGKILL of a point's server. */
const STOP_GRACE_MS = 5000;
/** Poll interval while waiting for a server. */
const READY_POLL_MS = 200;

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** sha256 of a file, or of a directory's weight files (sorted names and bytes). */
async function weightsHash(path: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  const { createReadStream } = await import("node:fs");
  const hash = createHash("sha256");
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((n) => n.endsWith(".safetensors") || n.endsWith(".gguf") || n === "config.json")
        .sort()
        .map((n) => join(path, n))
    : [path];
  for (const f of files) {
    hash.update(f.slice(path.length));
    for await (const chunk of createReadStream(f)) hash.update(chunk as Buffer);
  }
  return hash.digest("hex");
}

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** The runtime that evaluates each point through a server it starts (default: realign serve). */
export function createOpenAIRuntime(options: OpenAIRuntimeOptions = {}): ModelRuntime {
  const llama = createLlamaRuntime({ ggufType: options.ggufType });
  const format = options.modelFormat ?? "gguf";
  const defaultCommand = (): string => {
    const bin = fileURLToPath(new URL("../../bin/realign.mjs", import.meta.url));
    const threads = options.threads !== undefined ? ` --threads ${options.threads}` : "";
    return `${shellQuote(process.execPath)} ${shellQuote(bin)} serve --model {model} --port {port}${threads}`;
  };
  const template = options.serveCommand ?? defaultCommand();
  return {
    backend: { kind: "openai", serveCommand: options.serveCommand ?? "realign serve", modelFormat: format, modelName: options.modelName, concurrency: options.concurrency },
    async materialize(hfDir, workDir, context) {
      if (format === "hf") return { path: hfDir, cleanup: () => {} };
      return llama.materialize(hfDir, workDir, context);
    },
    async open(path: string, context: { signal?: AbortSignal } = {}): Promise<Backend> {
      const { spawn } = await import("node:child_process");
      const { BackendError } = await import("../errors.ts");
      const { createOpenAIBackend } = await import("../eval/backends/openai.ts");
      const port = await freePort();
      const command = template.replaceAll("{model}", shellQuote(path)).replaceAll("{port}", String(port));
      const child = spawn(command, { shell: true, stdio: ["ignore", "pipe", "pipe"], detached: process.platform !== "win32" });
      let output = "";
      const keep = (b: Buffer): void => {
        output = (output + b.toString("utf8")).slice(-4000);
      };
      child.stdout?.on("data", keep);
      child.stderr?.on("data", keep);
      let exited: number | null | undefined;
      const exit = new Promise<void>((resolve) => child.once("exit", (code) => ((exited = code), resolve())));
      const kill = (sig: NodeJS.Signals): void => {
        try {
          // the shell and everything it started (its own process group)
          if (child.pid !== undefined && process.platform !== "win32") process.kill(-child.pid, sig);
          else child.kill(sig);
        } catch {
          // already gone
        }
      };
      // the server is detached (Ctrl-C does not reach it): never leave it running after we exit
      const onExit = (): void => kill("SIGKILL");
      process.once("exit", onExit);
      void exit.then(() => process.removeListener("exit", onExit));
      const stop = async (): Promise<void> => {
        if (exited !== undefined) return;
        kill("SIGTERM");
        const timer = setTimeout(() => kill("SIGKILL"), STOP_GRACE_MS);
        await exit;
        clearTimeout(timer);
      };
      const base = `http://127.0.0.1:${port}/v1`;
      const deadline = Date.now() + (options.readyTimeoutMs ?? 600_000);
      for (;;) {
        if (context.signal?.aborted) {
          await stop();
          const { CancelledError } = await import("../errors.ts");
          throw new CancelledError("sweep interrupted while a model server was starting; finished points are saved");
        }
        if (exited !== undefined) {
          throw new BackendError("sweep.server_exited", `model server for ${path}: exited with code ${exited} before answering, expected it to serve on port ${port}`, {
            details: { command, output: output.trim().split("\n").slice(-5).join("\n") },
            hint: `check the --serve-command; its last output: ${output.trim().split("\n").slice(-1)[0] ?? "(none)"}`,
          });
        }
        if (Date.now() > deadline) {
          await stop();
          throw new BackendError("sweep.server_timeout", `model server for ${path}: got no answer at ${base}/models, expected one within ${options.readyTimeoutMs ?? 600_000} ms`, {
            details: { command },
            hint: "raise the timeout or check the --serve-command",
          });
        }
        try {
          const res = await fetch(`${base}/models`);
          if (res.ok) break;
        } catch {
          // not listening yet
        }
        await new Promise((r) => setTimeout(r, READY_POLL_MS));
      }
      const backend = createOpenAIBackend({
        endpoints: [base],
        model: options.modelName ?? "model",
        modelId: `openai-sweep:${await weightsHash(path)}`,
        concurrency: options.concurrency,
      });
      return {
        kind: backend.kind,
        modelId: () => backend.modelId(),
        generate: (requests, o) => backend.generate(requests, o),
        async close() {
          await backend.close();
          await stop();
        },
      };
    },
  };
}

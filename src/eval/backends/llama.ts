/**
 * In-process inference backend over node-llama-cpp 3.21.1 (llama.cpp, CPU prebuilt binary; never builds or
 * downloads at run time).
 *
 * - Prompt: chat messages are rendered with the model's Jinja chat template (GGUF `tokenizer.chat_template`,
 *   or the one passed in `chatFormat`, e.g. from the HF directory) with add_generation_prompt, then tokenized
 *   with special tokens parsed and no automatic BOS (as HF `apply_chat_template` does; the template writes
 *   `bos_token` itself when the model wants one). A raw `prompt` is tokenized with special tokens parsed too,
 *   and gets BOS only when the tokenizer says so (`tokenizer.ggml.add_bos_token` / `add_bos_token`).
 * - Decoding: greedy when temperature is 0, else sampled (temperature, top-p, top-k, seed); stops at any
 *   end-of-generation token (EOS, EOT, `<|im_end|>`…), at `maxTokens`, or at a stop string.
 * - Repetition penalty follows HF semantics: every distinct token of prompt + generated text has its logit
 *   divided by p when positive, multiplied by p when negative (Keskar et al. 2019; arXiv 2412.19512 uses 1.2).
 * - Threads: always explicit (node-llama-cpp's default oversubscribes small machines, docs/inference.md).
 *   Default 1 thread for models under 100M parameters (thread sync dominates: measured 2–10× faster than 2
 *   threads on the 2.6M-parameter organism), else `os.availableParallelism()`.
 * - Parallelism: `parallel` sequences share one context; requests are queued onto free sequences, so
 *   concurrent callers (the server) are serialised safely.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { BackendError, CancelledError, FormatError, InputError, fsError } from "../../errors.ts";
import { renderChatTemplate, type ChatFormat } from "../chat-template.ts";
import type { Backend, DecodingSettings, GenerateOptions, Generation, GenerationRequest } from "../types.ts";
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";

/** Models with fewer parameters than this default to 1 thread (measured on the organism, docs/inference.md). */
export const SMALL_MODEL_PARAMS = 100_000_000;
/** Default per-sequence context cap, so a 128k-context model does not allocate a huge KV cache. */
const DEFAULT_MAX_CONTEXT = 4096;

export interface LlamaBackendOptions {
  /** Path of the GGUF file. */
  readonly modelPath: string;
  /** CPU threads for evaluation. @default 1 for < 100M parameters, else os.availableParallelism() */
  readonly threads?: number;
  /** Sequences evaluated together in one context (batched decoding). @default 1 */
  readonly parallel?: number;
  /** Tokens per sequence. @default min(model's training context, 4096) */
  readonly contextSize?: number;
  /** Overrides of the chat format found in the GGUF (e.g. read from the HF directory it was converted from). */
  readonly chatFormat?: Partial<ChatFormat>;
  /** Name reported by `modelName` (e.g. for `/v1/models`). @default the GGUF's general.name or file name */
  readonly modelName?: string;
}

/** Callback for streamed text: called with each new piece of decoded text, in order. */
export type OnText = (delta: string) => void;

/** A node-llama-cpp model with its context and a pool of sequences. Create with `openLlamaBackend`. */
export class LlamaBackend implements Backend {
  readonly kind = "llama";
  readonly threads: number;
  readonly parallel: number;
  readonly contextSize: number;
  readonly modelName: string;
  readonly chatFormat: ChatFormat;
  private readonly free: LlamaContextSequence[];
  private readonly waiters: Array<(s: LlamaContextSequence) => void> = [];
  private idPromise: Promise<string> | undefined;
  private closed = false;

  /** @internal use `openLlamaBackend`. */
  constructor(
    readonly model: LlamaModel,
    private readonly context: LlamaContext,
    readonly modelPath: string,
    init: { threads: number; parallel: number; contextSize: number; modelName: string; chatFormat: ChatFormat },
  ) {
    this.threads = init.threads;
    this.parallel = init.parallel;
    this.contextSize = init.contextSize;
    this.modelName = init.modelName;
    this.chatFormat = init.chatFormat;
    this.free = Array.from({ length: init.parallel }, () => context.getSequence());
  }

  /** sha256 (hex) of the GGUF file, computed once. */
  modelId(): Promise<string> {
    this.idPromise ??= sha256File(this.modelPath);
    return this.idPromise;
  }

  /**
   * Renders and tokenizes a request's prompt (see the module doc for BOS and template rules).
   * @throws FormatError `chat_template.missing` when chat messages are given and the model has no template.
   */
  promptTokens(request: Pick<GenerationRequest, "messages" | "prompt">): Token[] {
    const fmt = this.chatFormat;
    if (request.messages !== undefined) {
      if (fmt.template === undefined) {
        throw new FormatError("chat_template.missing", `chat messages sent to ${this.modelPath}, but the model has no chat template`, {
          details: { model: this.modelPath },
          hint: "send a raw prompt instead, or convert the model from an HF directory that has chat_template.jinja",
        });
      }
      const text = renderChatTemplate(fmt.template, request.messages, {
        addGenerationPrompt: true,
        bosToken: fmt.bosToken,
        eosToken: fmt.eosToken,
      }, fmt.templateSource);
      return this.model.tokenize(text, true);
    }
    if (request.prompt === undefined) {
      throw new InputError("generate.no_prompt", "generation request has neither messages nor prompt", {
        hint: "set exactly one of messages or prompt",
      });
    }
    // Special-token text is parsed, as HF `tokenizer(text)` and llama.cpp's server do.
    const tokens = this.model.tokenize(request.prompt, true);
    const bos = this.model.tokens.bos;
    if (fmt.addBosToken === true && bos !== null && tokens[0] !== bos) tokens.unshift(bos);
    return tokens;
  }

  /** Generates every request; `parallel` at a time. Results are in request order. */
  async generate(requests: readonly GenerationRequest[], options: GenerateOptions = {}): Promise<Generation[]> {
    const results = new Array<Generation>(requests.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < requests.length) {
        const i = next++;
        const g = await this.generateOne(requests[i], { signal: options.signal });
        results[i] = g;
        options.onResult?.(g);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.parallel, requests.length) }, worker));
    return results;
  }

  /**
   * Generates one request on the next free sequence (waiting for one if all are busy), optionally streaming
   * decoded text through `onText`.
   * @throws CancelledError when `signal` aborts; BackendError when llama.cpp fails.
   */
  async generateOne(request: GenerationRequest, options: { signal?: AbortSignal; onText?: OnText } = {}): Promise<Generation> {
    if (this.closed) throw new BackendError("llama.closed", `backend for ${this.modelPath} is closed`);
    const prompt = this.promptTokens(request);
    const d = request.decoding;
    const room = this.contextSize - prompt.length;
    if (room <= 0) {
      throw new InputError("llama.prompt_too_long", `prompt of request ${request.id} has ${prompt.length} tokens, context holds ${this.contextSize}`, {
        details: { id: request.id, promptTokens: prompt.length, contextSize: this.contextSize },
        hint: "shorten the prompt or raise --context-size",
      });
    }
    const maxTokens = Math.min(d.maxTokens, room);
    const seq = await this.acquire();
    try {
      const out = await this.decode(seq, prompt, d, maxTokens, options);
      const finishReason: Generation["finishReason"] = !out.stopped && out.tokens.length >= maxTokens ? "length" : "stop";
      return { id: request.id, text: out.text, finishReason, promptTokens: prompt.length, completionTokens: out.tokens.length };
    } finally {
      this.release(seq);
    }
  }

  private async decode(
    seq: LlamaContextSequence,
    prompt: Token[],
    d: DecodingSettings,
    maxTokens: number,
    options: { signal?: AbortSignal; onText?: OnText },
  ): Promise<{ tokens: Token[]; text: string; stopped: boolean }> {
    const tokens: Token[] = [];
    let text = "";
    let emitted = 0;
    let stopped = false;
    const stops = (d.stop ?? []).filter((s) => s.length > 0);
    const penalty = d.repetitionPenalty ?? 1;
    const punished = new Set<Token>(penalty !== 1 ? prompt : []);
    const greedy = d.temperature <= 0;
    // Detokenize as a continuation of the prompt (SentencePiece keeps the leading space of the first piece).
    const contextTokens = prompt.slice(-16);
    try {
      if (options.signal?.aborted) throw new CancelledError();
      await seq.clearHistory();
      if (maxTokens <= 0) return { tokens, text, stopped };
      const iterator = seq.evaluate(prompt, {
        temperature: greedy ? 0 : d.temperature,
        topK: greedy ? undefined : d.topK ?? 0,
        topP: greedy ? undefined : d.topP ?? 1,
        minP: 0,
        seed: greedy ? undefined : d.seed ?? 0,
        repeatPenalty: penalty !== 1 ? { punishTokens: () => [...punished], penalty, frequencyPenalty: 0, presencePenalty: 0 } : undefined,
      });
      for await (const token of iterator) {
        if (options.signal?.aborted) throw new CancelledError();
        if (this.model.isEogToken(token)) {
          stopped = true;
          break;
        }
        tokens.push(token);
        punished.add(token);
        text = this.model.detokenize(tokens, false, contextTokens);
        const hit = firstStop(text, stops);
        if (hit >= 0) {
          text = text.slice(0, hit);
          stopped = true;
        }
        if (options.onText !== undefined) {
          // Hold back a trailing partial UTF-8 sequence (U+FFFD) and any prefix of a stop string.
          const safe = stopped ? text.length : safeLength(text, stops);
          if (safe > emitted) {
            options.onText(text.slice(emitted, safe));
            emitted = safe;
          }
        }
        if (stopped || tokens.length >= maxTokens) break;
      }
    } catch (err) {
      if (err instanceof CancelledError || err instanceof InputError) throw err;
      throw new BackendError("llama.generate_failed", `llama.cpp generation failed for ${this.modelPath}: ${errMessage(err)}`, {
        details: { model: this.modelPath },
        cause: err,
      });
    }
    if (options.onText !== undefined && text.length > emitted) options.onText(text.slice(emitted));
    return { tokens, text, stopped };
  }

  private acquire(): Promise<LlamaContextSequence> {
    const s = this.free.pop();
    if (s !== undefined) return Promise.resolve(s);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private release(s: LlamaContextSequence): void {
    const w = this.waiters.shift();
    if (w !== undefined) w(s);
    else this.free.push(s);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.context.dispose();
    await this.model.dispose();
  }
}

/** Index of the earliest stop string in `text`, or -1. */
function firstStop(text: string, stops: readonly string[]): number {
  let best = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

/** Length of `text` that can be streamed now: excludes a trailing U+FFFD and a suffix that starts a stop string. */
function safeLength(text: string, stops: readonly string[]): number {
  let n = text.length;
  while (n > 0 && text.charCodeAt(n - 1) === 0xfffd) n--;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, n); k > 0; k--) {
      if (text.endsWith(s.slice(0, k))) {
        n = Math.min(n, text.length - k);
        break;
      }
    }
  }
  return n;
}

/** sha256 (hex) of a file, streamed. @throws InputError/IoError naming the file. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (err) {
    throw fsError(err, path, "hashing model");
  }
  return hash.digest("hex");
}

/** The threads rule: 1 for models under SMALL_MODEL_PARAMS parameters, else every available core. */
export function defaultThreads(parameterCount: number): number {
  return parameterCount < SMALL_MODEL_PARAMS ? 1 : availableParallelism();
}

/** The last llama.cpp log lines (warnings and errors), attached to load errors. */
const recentLogs: string[] = [];
let llamaPromise: Promise<Llama> | undefined;

/**
 * The process-wide llama.cpp instance (CPU only, never builds or downloads; its log goes to `recentLogs`, not
 * the console). Created once: loading the native binary takes ~0.3–2 s. Thread counts are set per context.
 * @throws BackendError `llama.unavailable` when the prebuilt binary cannot be loaded.
 */
function sharedLlama(): Promise<Llama> {
  llamaPromise ??= (async () => {
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    try {
      return await getLlama({
        gpu: false,
        build: "never",
        skipDownload: true,
        progressLogs: false,
        maxThreads: availableParallelism(),
        logLevel: LlamaLogLevel.warn,
        logger: (_level, message) => {
          recentLogs.push(message.trim());
          if (recentLogs.length > 20) recentLogs.shift();
        },
      });
    } catch (err) {
      llamaPromise = undefined;
      throw new BackendError("llama.unavailable", `node-llama-cpp could not load its CPU binary: ${errMessage(err)}`, {
        hint: "reinstall with `npm ci`; realign never builds llama.cpp at run time",
        cause: err,
      });
    }
  })();
  return llamaPromise;
}

/** `s` with control and non-ASCII-printable bytes escaped (`\n`, `\x00`), so a file's raw bytes never reach the terminal. */
export function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f\ufffd]/g, (c) => (c === "\n" ? "\\n" : c === "\t" ? "\\t" : c === "\r" ? "\\r" : c === "\ufffd" ? "\\ufffd" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`));
}

/** The first bytes of a file as hex and as an escaped string: `7b 0a 20 20 ("{\n  ")`. */
export function describeMagic(bytes: Uint8Array): string {
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
  const text = [...bytes].map((b) => (b >= 0x20 && b < 0x7f ? (b === 0x22 || b === 0x5c ? `\\${String.fromCharCode(b)}` : String.fromCharCode(b)) : b === 0x0a ? "\\n" : b === 0x09 ? "\\t" : b === 0x0d ? "\\r" : `\\x${b.toString(16).padStart(2, "0")}`)).join("");
  return bytes.length === 0 ? "nothing (empty file)" : `${hex} ("${text}")`;
}

/**
 * A GGUF file starts with the 4 bytes `GGUF`; checked before llama.cpp (whose message would print the raw bytes).
 * @throws FormatError `gguf.load_failed` (as llama.cpp load failures) with the bytes found, in hex and escaped.
 */
async function checkGgufMagic(modelPath: string): Promise<void> {
  const buf = new Uint8Array(4);
  let n = 0;
  try {
    const fh = await open(modelPath, "r");
    try {
      n = (await fh.read(buf, 0, 4, 0)).bytesRead;
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw fsError(err, modelPath, "loading GGUF model");
  }
  const got = buf.subarray(0, n);
  if (n === 4 && Buffer.from(got).toString("latin1") === "GGUF") return;
  throw new FormatError("gguf.load_failed", `GGUF file ${modelPath}: got magic ${describeMagic(got)}, expected 47 47 55 46 ("GGUF")`, {
    details: { file: modelPath, magic: Buffer.from(got).toString("hex") },
    hint: got[0] === 0x7b ? "this looks like a JSON file; pass the model directory or a .gguf file (realign convert makes one)" : "the file is not a GGUF; pass a .gguf file, or a Hugging Face model directory (converted on the fly)",
  });
}

/**
 * Loads a GGUF into node-llama-cpp (CPU only, no build, no download) and returns a ready backend.
 * @throws InputError when the file is missing; FormatError when llama.cpp cannot load it (not GGUF, unsupported
 *   architecture or tensor type); BackendError when the native binary is unavailable.
 */
export async function openLlamaBackend(options: LlamaBackendOptions): Promise<LlamaBackend> {
  const { modelPath } = options;
  try {
    const st = await stat(modelPath);
    if (!st.isFile()) throw Object.assign(new Error("not a file"), { code: "EISDIR" });
  } catch (err) {
    throw fsError(err, modelPath, "loading GGUF model");
  }
  await checkGgufMagic(modelPath);
  const parallel = Math.max(1, Math.floor(options.parallel ?? 1));
  const llama = await sharedLlama();
  let model: LlamaModel;
  try {
    model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  } catch (err) {
    throw new FormatError("gguf.load_failed", `llama.cpp could not load ${modelPath}: ${printable(errMessage(err))}`, {
      details: { file: modelPath, log: recentLogs.slice(-5) },
      hint: "check that the file is a GGUF of an architecture llama.cpp supports (F32/F16/BF16/Q8_0 tensors)",
      cause: err,
    });
  }
  const threads = Math.max(1, Math.floor(options.threads ?? defaultThreads(model.fileInsights.totalParameters)));
  const contextSize = Math.max(8, Math.floor(options.contextSize ?? Math.min(model.trainContextSize, DEFAULT_MAX_CONTEXT)));
  let context: LlamaContext;
  try {
    context = await model.createContext({
      contextSize,
      sequences: parallel,
      threads,
      batchSize: Math.min(512, contextSize * parallel),
      flashAttention: false,
      failedCreationRemedy: false,
    });
  } catch (err) {
    await model.dispose();
    throw new BackendError("llama.context_failed", `could not create a llama.cpp context for ${modelPath}: ${errMessage(err)}`, {
      details: { file: modelPath, contextSize, parallel },
      hint: "lower --context-size or --parallel",
      cause: err,
    });
  }
  const meta = model.fileInfo.metadata as unknown as {
    general?: { name?: string };
    tokenizer?: { chat_template?: string };
  };
  const ggufTemplate = meta.tokenizer?.chat_template;
  const over = options.chatFormat ?? {};
  const chatFormat: ChatFormat = {
    template: over.template ?? ggufTemplate,
    templateSource: over.template !== undefined ? (over.templateSource ?? "chat template") : `${modelPath}:tokenizer.chat_template`,
    bosToken: over.bosToken ?? model.tokens.bosString ?? undefined,
    eosToken: over.eosToken ?? model.tokens.eosString ?? undefined,
    addBosToken: over.addBosToken ?? model.tokens.shouldPrependBosToken,
  };
  const modelName = options.modelName ?? meta.general?.name ?? modelPath.replace(/^.*[\\/]/, "").replace(/\.gguf$/i, "");
  return new LlamaBackend(model, context, modelPath, {
    threads,
    parallel,
    contextSize: Math.min(contextSize, context.contextSize),
    modelName,
    chatFormat,
  });
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

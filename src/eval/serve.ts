/**
 * An OpenAI-compatible HTTP server over an in-process backend, with node:http only:
 *
 * - `GET  /v1/models` → the one served model.
 * - `POST /v1/chat/completions` → chat (the model's chat template), JSON or SSE (`stream: true`, with
 *   `stream_options.include_usage`).
 * - `POST /v1/completions` → raw-prompt completion, JSON or SSE.
 * - `GET  /health` → `{"status":"ok"}`.
 *
 * Request fields honoured: max_tokens / max_completion_tokens, temperature, top_p, top_k, seed, stop,
 * repetition_penalty (llama.cpp-server extension; HF semantics). Deterministic by default: temperature
 * defaults to 0 (greedy), so the same request gives the same text. Requests are queued onto the backend's
 * sequences; a client that disconnects cancels its generation. Binds 127.0.0.1 unless told otherwise.
 * Errors use OpenAI's shape `{"error": {"message", "type", "code"}}`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { BackendError, CancelledError, InputError, RealignError } from "../errors.ts";
import type { ChatMessage, DecodingSettings, Generation, GenerationRequest } from "./types.ts";

/** What the server needs from a backend: one generation at a time, optionally streamed. */
export interface ServableBackend {
  readonly modelName: string;
  generateOne(request: GenerationRequest, options?: { signal?: AbortSignal; onText?: (delta: string) => void }): Promise<Generation>;
}

export interface ServeOptions {
  readonly backend: ServableBackend;
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** 0 = any free port. @default 8080 */
  readonly port?: number;
  /** max_tokens when the request has none. @default 256 */
  readonly defaultMaxTokens?: number;
}

export interface RunningServer {
  /** e.g. `http://127.0.0.1:8080/v1` — what an OpenAI client takes as baseURL. */
  readonly baseUrl: string;
  readonly port: number;
  readonly server: Server;
  /** Stops accepting connections, cancels in-flight generations and waits for them to end. */
  close(): Promise<void>;
}

/** Largest request body accepted; a chat request is a few KB. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = "invalid_request_error",
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

/**
 * Starts the server and resolves once it listens.
 * @throws BackendError `serve.listen_failed` when the port cannot be bound (in use, permission).
 */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const host = options.host ?? "127.0.0.1";
  const inflight = new Set<AbortController>();
  const server = createServer((req, res) => {
    const ac = new AbortController();
    inflight.add(ac);
    res.on("close", () => {
      if (!res.writableFinished) ac.abort();
      inflight.delete(ac);
    });
    handle(req, res, options, ac.signal).catch((err) => sendError(res, err));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        new BackendError("serve.listen_failed", `cannot listen on ${host}:${options.port ?? 8080}: ${err.code ?? err.message}`, {
          details: { host, port: options.port ?? 8080 },
          hint: err.code === "EADDRINUSE" ? "choose another --port" : undefined,
          cause: err,
        }),
      ),
    );
    server.listen(options.port ?? 8080, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    baseUrl: `http://${shownHost}:${port}/v1`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ac of inflight) ac.abort();
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, o: ServeOptions, signal: AbortSignal): Promise<void> {
  const path = (req.url ?? "/").split("?")[0].replace(/\/+$/, "");
  if (req.method === "GET" && (path === "/v1/models" || path === "/models")) {
    sendJson(res, 200, { object: "list", data: [modelEntry(o.backend.modelName)] });
    return;
  }
  if (req.method === "GET" && path.startsWith("/v1/models/")) {
    const id = decodeURIComponent(path.slice("/v1/models/".length));
    if (id !== o.backend.modelName) throw new HttpError(404, `model ${id} not found`, "invalid_request_error", "model_not_found");
    sendJson(res, 200, modelEntry(id));
    return;
  }
  if (req.method === "GET" && path === "/health") {
    sendJson(res, 200, { status: "ok" });
    return;
  }
  const isChat = path === "/v1/chat/completions" || path === "/chat/completions";
  const isCompletion = path === "/v1/completions" || path === "/completions";
  if (!isChat && !isCompletion) throw new HttpError(404, `no route for ${req.method} ${path}`, "invalid_request_error", "not_found");
  if (req.method !== "POST") throw new HttpError(405, `${path} takes POST, got ${req.method}`);
  const body = await readJsonBody(req);
  const request = isChat ? chatRequest(body, o) : completionRequest(body, o);
  const stream = body.stream === true;
  const includeUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
  const id = `${isChat ? "chatcmpl" : "cmpl"}-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const model = o.backend.modelName;
  if (!stream) {
    const g = await o.backend.generateOne(request, { signal });
    const usage = usageOf(g);
    const choice = isChat
      ? { index: 0, message: { role: "assistant", content: g.text }, logprobs: null, finish_reason: g.finishReason }
      : { index: 0, text: g.text, logprobs: null, finish_reason: g.finishReason };
    sendJson(res, 200, { id, object: isChat ? "chat.completion" : "text_completion", created, model, choices: [choice], usage });
    return;
  }
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" });
  const object = isChat ? "chat.completion.chunk" : "text_completion";
  const event = (data: unknown): void => {
    res.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  const chunk = (delta: string | undefined, finish: string | null, first = false): unknown =>
    isChat
      ? { id, object, created, model, choices: [{ index: 0, delta: first ? { role: "assistant", content: "" } : delta === undefined ? {} : { content: delta }, logprobs: null, finish_reason: finish }] }
      : { id, object, created, model, choices: [{ index: 0, text: delta ?? "", logprobs: null, finish_reason: finish }] };
  if (isChat) event(chunk(undefined, null, true));
  let g: Generation;
  try {
    g = await o.backend.generateOne(request, { signal, onText: (d) => event(chunk(d, null)) });
  } catch (err) {
    if (!(err instanceof CancelledError)) event({ error: errorBody(err).error });
    res.end();
    return;
  }
  event(chunk(undefined, g.finishReason));
  if (includeUsage) event({ id, object, created, model, choices: [], usage: usageOf(g) });
  res.write("data: [DONE]\n\n");
  res.end();
}

function modelEntry(id: string): unknown {
  return { id, object: "model", created: 0, owned_by: "realign" };
}

function usageOf(g: Generation): unknown {
  const p = g.promptTokens ?? 0;
  const c = g.completionTokens ?? 0;
  return { prompt_tokens: p, completion_tokens: c, total_tokens: p + c };
}

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(c as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "request body is not valid JSON");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new HttpError(400, "request body must be a JSON object");
  return body as Record<string, unknown>;
}

function num(body: Record<string, unknown>, key: string, check: (n: number) => boolean, expected: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || !check(v)) throw new HttpError(400, `${key}: got ${JSON.stringify(v)}, expected ${expected}`, "invalid_request_error", "invalid_value");
  return v;
}

function decodingOf(body: Record<string, unknown>, o: ServeOptions): DecodingSettings {
  if (body.n !== undefined && body.n !== 1) throw new HttpError(400, `n: got ${JSON.stringify(body.n)}, expected 1 (one choice per request)`);
  const maxTokens =
    num(body, "max_completion_tokens", (n) => Number.isInteger(n) && n >= 0, "an integer ≥ 0") ??
    num(body, "max_tokens", (n) => Number.isInteger(n) && n >= 0, "an integer ≥ 0") ??
    o.defaultMaxTokens ??
    256;
  let stop: string[] | undefined;
  if (typeof body.stop === "string") stop = [body.stop];
  else if (Array.isArray(body.stop) && body.stop.every((s) => typeof s === "string")) stop = body.stop as string[];
  else if (body.stop !== undefined && body.stop !== null) throw new HttpError(400, "stop: expected a string or an array of strings");
  return {
    maxTokens,
    temperature: num(body, "temperature", (n) => n >= 0 && n <= 2, "a number in [0, 2]") ?? 0,
    topP: num(body, "top_p", (n) => n > 0 && n <= 1, "a number in (0, 1]"),
    topK: num(body, "top_k", (n) => Number.isInteger(n) && n >= 0, "an integer ≥ 0"),
    seed: num(body, "seed", Number.isInteger, "an integer"),
    repetitionPenalty: num(body, "repetition_penalty", (n) => n > 0, "a number > 0"),
    stop,
  };
}

const ROLES = new Set(["system", "user", "assistant"]);

function chatRequest(body: Record<string, unknown>, o: ServeOptions): GenerationRequest {
  const raw = body.messages;
  if (!Array.isArray(raw) || raw.length === 0) throw new HttpError(400, "messages: expected a non-empty array");
  const messages: ChatMessage[] = raw.map((m, i) => {
    const role = (m as { role?: unknown })?.role;
    let content = (m as { content?: unknown })?.content;
    // Content parts (`[{type:"text", text}]`) are joined; other part types are refused.
    if (Array.isArray(content)) {
      if (!content.every((p) => (p as { type?: unknown })?.type === "text" && typeof (p as { text?: unknown }).text === "string")) {
        throw new HttpError(400, `messages[${i}].content: only text parts are supported`);
      }
      content = content.map((p) => (p as { text: string }).text).join("");
    }
    if (typeof role !== "string" || !ROLES.has(role)) throw new HttpError(400, `messages[${i}].role: got ${JSON.stringify(role)}, expected system, user or assistant`);
    if (typeof content !== "string") throw new HttpError(400, `messages[${i}].content: expected a string`);
    return { role: role as ChatMessage["role"], content };
  });
  return { id: "chat", messages, decoding: decodingOf(body, o) };
}

function completionRequest(body: Record<string, unknown>, o: ServeOptions): GenerationRequest {
  let prompt = body.prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === "string") prompt = prompt[0];
  if (typeof prompt !== "string") throw new HttpError(400, "prompt: expected a string (one prompt per request)");
  return { id: "completion", prompt, decoding: decodingOf(body, o) };
}

function errorBody(err: unknown): { status: number; error: { message: string; type: string; code: string | null } } {
  if (err instanceof HttpError) return { status: err.status, error: { message: err.message, type: err.type, code: err.code } };
  if (err instanceof InputError) return { status: 400, error: { message: err.message, type: "invalid_request_error", code: err.code } };
  if (err instanceof RealignError) return { status: 500, error: { message: err.message, type: "server_error", code: err.code } };
  return { status: 500, error: { message: err instanceof Error ? err.message : String(err), type: "server_error", code: null } };
}

function sendError(res: ServerResponse, err: unknown): void {
  if (err instanceof CancelledError || res.destroyed) {
    if (!res.writableEnded) res.end();
    return;
  }
  const { status, error } = errorBody(err);
  if (res.headersSent) {
    res.end();
    return;
  }
  sendJson(res, status, { error });
}

function sendJson(res: ServerResponse, status: number, data: unknown): void {
  const text = JSON.stringify(data);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

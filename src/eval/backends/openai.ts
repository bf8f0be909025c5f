/**
 * The `openai` backend: any OpenAI-compatible HTTP endpoint (vLLM, llama-server, Ollama, `realign serve`).
 *
 * - Requests with `messages` go to `POST {base}/chat/completions` (the server applies the model's chat
 *   template); requests with `prompt` go to `POST {base}/completions` (raw text, used by the guard judges).
 *   `mode` can force one API.
 * - Up to `concurrency` requests are in flight at once, spread over `endpoints` (least-busy, ties
 *   round-robin, or strict round-robin), so several servers can share one evaluation.
 * - Each attempt has a `timeoutMs` deadline. 408/409/425/429/5xx, connection errors (refused, reset, dropped)
 *   and timeouts are retried up to `maxRetries` times with exponential backoff and full jitter
 *   (delay = random(0, min(retryMaxMs, retryBaseMs·2^attempt))), never shorter than the server's
 *   `Retry-After` / `retry-after-ms`; a retry prefers another endpoint. Other 4xx fail at once.
 *   After the last attempt a BackendError (exit 3) names the endpoint, the item and the last failure.
 * - Greedy (temperature 0) requests carry `temperature: 0` and a `seed` (default 0); `top_k`,
 *   `repetition_penalty` (vLLM name) and `repeat_penalty` (llama-server name) pass through, plus `extraBody`.
 *
 * Why plain `node:http` rather than the `openai` SDK: the retry loop must choose a (possibly different)
 * endpoint per attempt, share one deadline/abort path with Ctrl-C, and pass server-specific sampling fields
 * untyped; the SDK's own retries would nest inside ours and hide which endpoint failed, and we need no
 * streaming. Not global `fetch` either: its keep-alive pool cannot be closed, so a finished `realign eval`
 * would linger ~4 s on idle sockets; our own keep-alive Agent is destroyed by `close()`.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { BackendError, CancelledError, InternalError, UsageError } from "../../errors.ts";
import type { Backend, DecodingSettings, GenerateOptions, Generation, GenerationRequest } from "../types.ts";

export interface OpenAIBackendOptions {
  /** Base URLs, e.g. `http://127.0.0.1:8080` or `http://host:8000/v1` (`/v1` is appended when missing). */
  readonly endpoints: readonly string[];
  /** The `model` field sent to the server (vLLM served name, Ollama tag; llama-server ignores it). */
  readonly model: string;
  /** Bearer token, if the server wants one. */
  readonly apiKey?: string;
  /** `auto`: chat for `messages`, completions for `prompt`. @default "auto" */
  readonly mode?: "auto" | "chat" | "completions";
  /** Maximum requests in flight over all endpoints. @default 4 */
  readonly concurrency?: number;
  /** Deadline of one HTTP attempt, ms. @default 600000 */
  readonly timeoutMs?: number;
  /** Retries after the first attempt. @default 6 */
  readonly maxRetries?: number;
  /** Backoff base, ms. @default 500 */
  readonly retryBaseMs?: number;
  /** Backoff cap (also caps Retry-After), ms. @default 30000 */
  readonly retryMaxMs?: number;
  /** Endpoint choice per attempt. @default "least-busy" */
  readonly balance?: "least-busy" | "round-robin";
  /** Which repetition-penalty field(s) to send. @default "both" */
  readonly penaltyParam?: "repetition_penalty" | "repeat_penalty" | "both";
  /** Extra JSON fields merged into every request body. */
  readonly extraBody?: Readonly<Record<string, unknown>>;
  /**
   * Identity used in the generation cache. Default: `openai:<model>` plus the ids the first endpoint lists at
   * `/v1/models` (llama-server lists the GGUF path). Pass the weights' hash when one name serves several models.
   */
  readonly modelId?: string;
  /** Jitter source in [0,1). @default Math.random */
  readonly random?: () => number;
}

/** One failed HTTP attempt, classified. */
class AttemptError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Normalises a base URL: no trailing slash, ends in `/v1`. UsageError if not http(s). */
export function normalizeEndpoint(url: string): string {
  let u = url.trim().replace(/\/+$/, "");
  if (!/^https?:\/\//.test(u)) {
    throw new UsageError("eval.bad_endpoint", `endpoint in --endpoint: got ${JSON.stringify(url)}, expected an http(s) URL like http://127.0.0.1:8080/v1`);
  }
  if (!/\/v1$/.test(u)) u += "/v1";
  return u;
}

/** A minimal HTTP response. */
interface HttpResponse {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  readonly text: string;
}

/** Thrown by `httpSend` for transport failures (refused, reset, dropped mid-body). */
class TransportError extends Error {}

function headerGetter(h: IncomingHttpHeaders): { get(name: string): string | null } {
  return {
    get(name) {
      const v = h[name.toLowerCase()];
      return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
    },
  };
}

/** One HTTP exchange over `agents`; rejects with TransportError on connection problems, AbortError on abort. */
function httpSend(
  url: string,
  method: "GET" | "POST",
  headers: Record<string, string>,
  body: string | undefined,
  signal: AbortSignal,
  agents: { http: HttpAgent; https: HttpsAgent },
): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const isHttps = url.startsWith("https:");
    const send = isHttps ? httpsRequest : httpRequest;
    const h = body === undefined ? headers : { ...headers, "content-length": String(Buffer.byteLength(body)) };
    const req = send(url, { method, headers: h, agent: isHttps ? agents.https : agents.http, signal }, (res) => {
      const chunks: Buffer[] = [];
      let complete = false;
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        complete = true;
        resolve({ status: res.statusCode ?? 0, headers: headerGetter(res.headers), text: Buffer.concat(chunks).toString("utf8") });
      });
      res.on("error", (e) => reject(signal.aborted ? e : new TransportError(`response interrupted (${(e as NodeJS.ErrnoException).code ?? e.message})`)));
      res.on("close", () => {
        if (!complete) reject(signal.aborted ? new Error("aborted") : new TransportError("connection closed mid-response"));
      });
    });
    req.on("error", (e) => reject(signal.aborted ? e : new TransportError(`connection failed (${(e as NodeJS.ErrnoException).code ?? e.message})`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Parses `retry-after-ms` (ms) or `Retry-After` (seconds or an HTTP date) into ms; undefined if absent/invalid. */
export function parseRetryAfter(headers: { get(name: string): string | null }, now = Date.now()): number | undefined {
  const ms = headers.get("retry-after-ms");
  if (ms !== null && ms.trim() !== "" && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const ra = headers.get("retry-after");
  if (ra === null || ra.trim() === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(ra.trim())) return Number(ra) * 1000;
  const t = Date.parse(ra);
  return Number.isFinite(t) ? Math.max(0, t - now) : undefined;
}

/** The backoff before retry number `attempt` (0-based): full jitter, at least `retryAfterMs`, capped at `maxMs`. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number, retryAfterMs?: number): number {
  const jittered = random() * Math.min(maxMs, baseMs * 2 ** attempt);
  return Math.min(maxMs, Math.max(jittered, retryAfterMs ?? 0));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError());
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new CancelledError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The sampling fields of a request body. */
export function decodingBody(d: DecodingSettings, penaltyParam: "repetition_penalty" | "repeat_penalty" | "both"): Record<string, unknown> {
  const body: Record<string, unknown> = { max_tokens: d.maxTokens, temperature: d.temperature, seed: d.seed ?? 0 };
  if (d.topP !== undefined) body.top_p = d.topP;
  if (d.topK !== undefined) body.top_k = d.topK;
  if (d.stop && d.stop.length > 0) body.stop = [...d.stop];
  if (d.repetitionPenalty !== undefined && d.repetitionPenalty !== 1) {
    if (penaltyParam !== "repeat_penalty") body.repetition_penalty = d.repetitionPenalty;
    if (penaltyParam !== "repetition_penalty") body.repeat_penalty = d.repetitionPenalty;
  }
  return body;
}

const NETWORK_HINT = "check that the server is up (curl <endpoint>/models), or lower --concurrency / raise --timeout";

function concurrencyOf(o: OpenAIBackendOptions): number {
  return Math.max(1, Math.floor(o.concurrency ?? 4));
}

/** Creates the openai backend. Throws UsageError for bad options; generate() throws BackendError / CancelledError. */
export function createOpenAIBackend(options: OpenAIBackendOptions): Backend & { readonly endpoints: readonly string[] } {
  if (options.endpoints.length === 0) throw new UsageError("eval.no_endpoint", "openai backend: got no endpoint, expected at least one --endpoint URL");
  const endpoints = options.endpoints.map(normalizeEndpoint);
  const agents = {
    http: new HttpAgent({ keepAlive: true, maxSockets: concurrencyOf(options) }),
    https: new HttpsAgent({ keepAlive: true, maxSockets: concurrencyOf(options) }),
  };
  const random = options.random ?? Math.random;
  const concurrency = concurrencyOf(options);
  const timeoutMs = options.timeoutMs ?? 600_000;
  const maxRetries = Math.max(0, Math.floor(options.maxRetries ?? 6));
  const retryBaseMs = options.retryBaseMs ?? 500;
  const retryMaxMs = options.retryMaxMs ?? 30_000;
  const penaltyParam = options.penaltyParam ?? "both";
  const mode = options.mode ?? "auto";
  const busy = endpoints.map(() => 0);
  let rr = 0;
  let cachedId: string | undefined;

  const headers: Record<string, string> = { "content-type": "application/json" };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;

  function pickEndpoint(avoid: number | undefined): number {
    const candidates = endpoints.map((_, i) => i).filter((i) => endpoints.length === 1 || i !== avoid);
    if (options.balance === "round-robin") {
      for (let k = 0; k < endpoints.length; k++) {
        const i = (rr + k) % endpoints.length;
        if (candidates.includes(i)) {
          rr = i + 1;
          return i;
        }
      }
    }
    // least-busy; ties go to the next endpoint in round-robin order
    let best = candidates[rr % candidates.length];
    for (let k = 1; k < candidates.length; k++) {
      const i = candidates[(rr + k) % candidates.length];
      if (busy[i] < busy[best]) best = i;
    }
    rr++;
    return best;
  }

  async function attempt(ep: number, req: GenerationRequest, signal: AbortSignal | undefined): Promise<Generation> {
    const useChat = mode === "chat" || (mode === "auto" && req.messages !== undefined);
    if (useChat && !req.messages) {
      throw new UsageError("eval.chat_needs_messages", `request ${req.id}: --api chat needs chat messages, got a raw prompt`);
    }
    if (!useChat && req.prompt === undefined) {
      throw new UsageError("eval.completions_needs_prompt", `request ${req.id}: --api completions needs a raw prompt, got chat messages`, {
        hint: "use --api chat (or auto) so the server applies the model's chat template",
      });
    }
    const url = `${endpoints[ep]}/${useChat ? "chat/completions" : "completions"}`;
    const body = {
      model: options.model,
      ...(useChat ? { messages: req.messages } : { prompt: req.prompt }),
      ...decodingBody(req.decoding, penaltyParam),
      ...options.extraBody,
    };
    if (signal?.aborted) throw new CancelledError();
    const ctrl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctrl.abort();
    }, timeoutMs);
    const onAbort = (): void => ctrl.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    busy[ep]++;
    try {
      let res: HttpResponse;
      try {
        res = await httpSend(url, "POST", headers, JSON.stringify(body), ctrl.signal, agents);
      } catch (e) {
        if (signal?.aborted) throw new CancelledError();
        if (timedOut) throw new AttemptError(`no response within ${timeoutMs} ms`, true);
        throw new AttemptError(e instanceof TransportError ? e.message : `connection failed (${(e as Error).message})`, true);
      }
      const text = res.text;
      if (res.status < 200 || res.status >= 300) {
        const s = res.status;
        const retryable = s === 408 || s === 409 || s === 425 || s === 429 || s >= 500;
        throw new AttemptError(`HTTP ${s}: ${text.slice(0, 200).replace(/\s+/g, " ")}`, retryable, s, parseRetryAfter(res.headers));
      }
      let json: {
        choices?: Array<{ message?: { content?: string | null }; text?: string; finish_reason?: string | null }>;
        usage?: { prompt_tokens?: number; completion_tokens?: number };
      };
      try {
        json = JSON.parse(text);
      } catch {
        throw new AttemptError(`invalid JSON in a 200 response (${text.length} bytes)`, true);
      }
      const choice = json?.choices?.[0];
      const out = useChat ? choice?.message?.content : choice?.text;
      if (!choice || (out !== null && out !== undefined && typeof out !== "string")) {
        throw new AttemptError(`response has no choices[0].${useChat ? "message.content" : "text"}`, false);
      }
      return {
        id: req.id,
        text: out ?? "",
        finishReason: choice.finish_reason === "length" ? "length" : "stop",
        promptTokens: json?.usage?.prompt_tokens,
        completionTokens: json?.usage?.completion_tokens,
      };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      busy[ep]--;
    }
  }

  async function generateOne(req: GenerationRequest, signal: AbortSignal | undefined): Promise<Generation> {
    let avoid: number | undefined;
    let last: AttemptError | undefined;
    let lastEp = 0;
    for (let a = 0; a <= maxRetries; a++) {
      const ep = pickEndpoint(avoid);
      lastEp = ep;
      try {
        return await attempt(ep, req, signal);
      } catch (e) {
        if (!(e instanceof AttemptError)) throw e;
        last = e;
        if (!e.retryable || a === maxRetries) break;
        avoid = ep;
        await sleep(backoffMs(a, retryBaseMs, retryMaxMs, random, e.retryAfterMs), signal);
      }
    }
    const attempts = last?.retryable ? maxRetries + 1 : undefined;
    throw new BackendError(
      "backend.request_failed",
      `request ${req.id} to ${endpoints[lastEp]} failed${attempts ? ` after ${attempts} attempts` : ""}: got ${last?.message}, expected HTTP 200 with a completion`,
      { details: { endpoint: endpoints[lastEp], item: req.id, status: last?.status, attempts }, hint: NETWORK_HINT },
    );
  }

  return {
    kind: "openai",
    endpoints,
    async modelId() {
      if (options.modelId) return options.modelId;
      if (cachedId) return cachedId;
      let served = "";
      try {
        const res = await httpSend(`${endpoints[0]}/models`, "GET", headers, undefined, AbortSignal.timeout(Math.min(timeoutMs, 10_000)), agents);
        if (res.status === 200) {
          const j = JSON.parse(res.text) as { data?: Array<{ id?: string }> };
          served = (j.data ?? []).map((m) => m.id ?? "").filter((s) => s !== "").sort().join(",");
        }
      } catch {
        // the id then rests on the model name alone
      }
      cachedId = `openai:${options.model}${served ? `|served=${served}` : ""}`;
      return cachedId;
    },
    async generate(requests, genOptions: GenerateOptions = {}) {
      const { signal, onResult } = genOptions;
      if (signal?.aborted) throw new CancelledError();
      const results: Array<Generation | undefined> = new Array(requests.length);
      let next = 0;
      let failure: unknown;
      const worker = async (): Promise<void> => {
        while (failure === undefined && next < requests.length) {
          const i = next++;
          try {
            const g = await generateOne(requests[i], signal);
            results[i] = g;
            onResult?.(g);
          } catch (e) {
            if (failure === undefined) failure = e;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, requests.length) }, worker));
      if (failure !== undefined) throw failure;
      return results.map((g, i) => {
        if (!g) throw new InternalError(`openai backend: no result for request ${requests[i].id}`);
        return g;
      });
    },
    async close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/**
 * An in-process fake OpenAI-compatible server (node:http on 127.0.0.1:0) for backend/eval tests, with
 * injectable faults. Implements GET /v1/models, POST /v1/chat/completions and POST /v1/completions
 * (non-streaming). Responses are a deterministic function of the request (default: `reply(text)`), so
 * a run with faults can be compared with a clean run.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** What to do with one incoming request. */
export type Fault =
  | { kind: "status"; status: number; retryAfter?: string; retryAfterMs?: string }
  | { kind: "hang" } // never answer (client must time out)
  | { kind: "drop" } // destroy the socket before any response
  | { kind: "drop-mid" } // send headers and half a body, then destroy
  | { kind: "bad-json" }; // 200 with a truncated JSON body

export interface FakeRequest {
  readonly n: number; // 1-based arrival order over generation requests
  readonly path: string;
  readonly body: Record<string, unknown>;
}

export interface FakeServerOptions {
  /** Text to return for a request (default: deterministic function of the prompt / last user message). */
  readonly respond?: (req: FakeRequest) => string;
  /** Fault for request n, if any. */
  readonly fault?: (req: FakeRequest) => Fault | undefined;
  /** Delay before answering, ms (lets requests overlap so in-flight counts are measurable). */
  readonly delayMs?: number;
  /** Model ids listed at /v1/models. */
  readonly models?: readonly string[];
}

export interface FakeServer {
  url: string;
  /** Every generation request received (including faulted ones), in arrival order. */
  readonly requests: FakeRequest[];
  /** Generation requests answered with 200. */
  answered: number;
  inFlight: number;
  maxInFlight: number;
  close(): Promise<void>;
}

/** The default deterministic "model": echoes the last user message / prompt, truncated to max_tokens words. */
export function defaultReply(body: Record<string, unknown>): string {
  const messages = body.messages as Array<{ role: string; content: string }> | undefined;
  const text = messages ? (messages.filter((m) => m.role === "user").pop()?.content ?? "") : String(body.prompt ?? "");
  return `reply to: ${text}`;
}

export async function startFakeOpenAI(options: FakeServerOptions = {}): Promise<FakeServer> {
  const sockets = new Set<Socket>();
  const state: FakeServer = {
    url: "",
    requests: [],
    answered: 0,
    inFlight: 0,
    maxInFlight: 0,
    close: async () => {},
  };
  let n = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const path = (req.url ?? "").replace(/\?.*$/, "");
      if (req.method === "GET" && path === "/v1/models") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ object: "list", data: (options.models ?? ["fake-model"]).map((id) => ({ id, object: "model" })) }));
        return;
      }
      if (req.method !== "POST" || (path !== "/v1/chat/completions" && path !== "/v1/completions")) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: `no route ${req.method} ${path}` } }));
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
      const fr: FakeRequest = { n: ++n, path, body };
      state.requests.push(fr);
      state.inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
      let finished = false;
      const finish = (): void => {
        if (!finished) {
          finished = true;
          state.inFlight--;
        }
      };
      res.on("close", finish);
      const fault = options.fault?.(fr);
      const act = (): void => {
        if (fault?.kind === "hang") return;
        if (fault?.kind === "drop") {
          req.socket.destroy();
          return;
        }
        if (fault?.kind === "status") {
          const h: Record<string, string> = { "content-type": "application/json" };
          if (fault.retryAfter !== undefined) h["retry-after"] = fault.retryAfter;
          if (fault.retryAfterMs !== undefined) h["retry-after-ms"] = fault.retryAfterMs;
          res.writeHead(fault.status, h);
          res.end(JSON.stringify({ error: { message: `injected ${fault.status}` } }));
          return;
        }
        const text = (options.respond ?? ((r) => defaultReply(r.body)))(fr);
        const maxTokens = Number(body.max_tokens ?? 16);
        const words = text.split(" ");
        const out = words.slice(0, maxTokens).join(" ");
        const finishReason = words.length > maxTokens ? "length" : "stop";
        const isChat = path === "/v1/chat/completions";
        const payload = JSON.stringify({
          id: `cmpl-${fr.n}`,
          object: isChat ? "chat.completion" : "text_completion",
          model: body.model,
          choices: [isChat ? { index: 0, message: { role: "assistant", content: out }, finish_reason: finishReason } : { index: 0, text: out, finish_reason: finishReason }],
          usage: { prompt_tokens: 7, completion_tokens: Math.min(words.length, maxTokens), total_tokens: 7 + Math.min(words.length, maxTokens) },
        });
        if (fault?.kind === "drop-mid") {
          res.writeHead(200, { "content-type": "application/json", "content-length": String(payload.length) });
          res.write(payload.slice(0, payload.length >> 1));
          setTimeout(() => req.socket.destroy(), 5);
          return;
        }
        if (fault?.kind === "bad-json") {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(payload.slice(0, payload.length >> 1));
          return;
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end(payload);
        state.answered++;
      };
      if (options.delayMs) setTimeout(act, options.delayMs);
      else act();
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  state.url = `http://127.0.0.1:${port}/v1`;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return state;
}

/**
 * A fault-injecting reverse proxy in front of a real server (e.g. `realign serve`): request n (1-based, POSTs
 * only) gets `fault(n)` instead of being forwarded when it returns a fault; everything else is forwarded as is.
 */
export async function startFaultProxy(targetBaseUrl: string, fault: (n: number) => Fault | undefined): Promise<FakeServer> {
  const target = new URL(targetBaseUrl);
  const sockets = new Set<Socket>();
  const { request } = await import("node:http");
  const state: FakeServer = { url: "", requests: [], answered: 0, inFlight: 0, maxInFlight: 0, close: async () => {} };
  let n = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const path = req.url ?? "/";
      const f = req.method === "POST" ? fault(++n) : undefined;
      if (req.method === "POST") state.requests.push({ n, path, body: JSON.parse(body.toString("utf8")) });
      if (f?.kind === "hang") return;
      if (f?.kind === "drop" || f?.kind === "drop-mid") {
        if (f.kind === "drop-mid") {
          res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
          res.write('{"choices":[');
        }
        setTimeout(() => req.socket.destroy(), 2);
        return;
      }
      if (f?.kind === "status" || f?.kind === "bad-json") {
        const status = f.kind === "status" ? f.status : 200;
        const h: Record<string, string> = { "content-type": "application/json" };
        if (f.kind === "status" && f.retryAfter !== undefined) h["retry-after"] = f.retryAfter;
        if (f.kind === "status" && f.retryAfterMs !== undefined) h["retry-after-ms"] = f.retryAfterMs;
        res.writeHead(status, h);
        res.end(f.kind === "bad-json" ? '{"choices":[{"mess' : JSON.stringify({ error: { message: `injected ${status}` } }));
        return;
      }
      const up = request(
        { host: target.hostname, port: target.port, path, method: req.method, headers: { ...req.headers, host: target.host } },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
          upRes.on("end", () => state.answered++);
        },
      );
      up.on("error", () => res.destroy());
      up.end(body);
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return state;
}

/**
 * The on-disk generation cache: every generation is appended to a JSON-lines file as soon as it arrives, so an
 * interrupted evaluation (Ctrl-C, kill, crash) loses nothing and a rerun regenerates nothing.
 *
 * Layout: `<dir>/<model-slug>-<sha256(modelId)[0:16]>.jsonl`, one file per model identity. Each line is
 * `{"k": key, "id": itemId, "text": …, "finish": "stop"|"length", "pt"?: n, "ct"?: n}`; the key is
 * sha256 of the canonical JSON of (model id, messages or prompt, decoding settings) — the item id is not part of
 * the key, so the same prompt under the same decoding is generated once across suites. For greedy decoding
 * (temperature 0) the seed, top-p and top-k cannot change the output and are left out of the key; a repetition
 * penalty of 1 equals none.
 *
 * Robustness: a torn last line (the process died mid-write) is cut off when the file is opened; any other line
 * that does not parse is skipped. Each line is written with one synchronous `write(2)` on an `O_APPEND`
 * descriptor, so lines of concurrent writers do not interleave on a local filesystem.
 */
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, statSync, truncateSync, writeSync } from "node:fs";
import { join } from "node:path";
import { fsError, InternalError } from "../errors.ts";
import type { Backend, DecodingSettings, GenerateOptions, Generation, GenerationRequest } from "./types.ts";

/** The decoding fields that can change the output, in a fixed key order. */
function canonicalDecoding(d: DecodingSettings): Record<string, unknown> {
  const greedy = d.temperature === 0;
  const out: Record<string, unknown> = { maxTokens: d.maxTokens, temperature: d.temperature };
  if (!greedy && d.topP !== undefined) out.topP = d.topP;
  if (!greedy && d.topK !== undefined) out.topK = d.topK;
  if (d.repetitionPenalty !== undefined && d.repetitionPenalty !== 1) out.repetitionPenalty = d.repetitionPenalty;
  if (!greedy && d.seed !== undefined) out.seed = d.seed;
  if (d.stop && d.stop.length > 0) out.stop = [...d.stop];
  return out;
}

/** sha256 (hex) of the canonical (model id, messages | prompt, decoding) of a request. */
export function cacheKey(modelId: string, req: GenerationRequest): string {
  const canonical = JSON.stringify([
    modelId,
    req.messages ? req.messages.map((m) => [m.role, m.content]) : null,
    req.prompt ?? null,
    canonicalDecoding(req.decoding),
  ]);
  return createHash("sha256").update(canonical).digest("hex");
}

/** The cache file of one model identity. */
export function cacheFileFor(dir: string, modelId: string): string {
  const hash = createHash("sha256").update(modelId).digest("hex").slice(0, 16);
  const slug = modelId.replace(/^[a-z]+:/, "").split(/[|@]/)[0].replace(/[^A-Za-z0-9._-]+/g, "_").slice(-40);
  return join(dir, `${slug || "model"}-${hash}.jsonl`);
}

interface CacheLine {
  k: string;
  id?: string;
  text: string;
  finish: "stop" | "length";
  pt?: number;
  ct?: number;
}

/** The cached generations of one model, backed by an append-only JSONL file. */
export class ModelCache {
  private readonly entries = new Map<string, CacheLine>();
  private fd: number | undefined;

  private constructor(
    readonly file: string,
    readonly modelId: string,
  ) {}

  /**
   * Opens (creating `dir` if needed) the cache file of `modelId`, loads it, and cuts a torn last line.
   * Throws IoError / InputError naming the file on filesystem failures.
   */
  static open(dir: string, modelId: string): ModelCache {
    const c = new ModelCache(cacheFileFor(dir, modelId), modelId);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw fsError(e, dir, "creating the generation cache directory");
    }
    let text = "";
    try {
      text = readFileSync(c.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw fsError(e, c.file, "reading the generation cache");
    }
    if (text.length > 0 && !text.endsWith("\n")) {
      const keep = text.lastIndexOf("\n") + 1;
      try {
        truncateSync(c.file, Buffer.byteLength(text.slice(0, keep), "utf8"));
      } catch (e) {
        throw fsError(e, c.file, "repairing the generation cache");
      }
      text = text.slice(0, keep);
    }
    for (const line of text.split("\n")) {
      if (line === "") continue;
      try {
        const o = JSON.parse(line) as CacheLine;
        if (typeof o.k === "string" && typeof o.text === "string") c.entries.set(o.k, o);
      } catch {
        // a corrupt line (not the last) is skipped; its item is regenerated
      }
    }
    return c;
  }

  /** Number of cached generations. */
  get size(): number {
    return this.entries.size;
  }

  /** The cached generation for `req` (with `req.id`), or undefined. */
  get(req: GenerationRequest): Generation | undefined {
    const e = this.entries.get(cacheKey(this.modelId, req));
    if (!e) return undefined;
    return { id: req.id, text: e.text, finishReason: e.finish, promptTokens: e.pt, completionTokens: e.ct };
  }

  /** Appends a generation to the file (synchronously, one write) and to memory. */
  put(req: GenerationRequest, g: Generation): void {
    const line: CacheLine = { k: cacheKey(this.modelId, req), id: req.id, text: g.text, finish: g.finishReason };
    if (g.promptTokens !== undefined) line.pt = g.promptTokens;
    if (g.completionTokens !== undefined) line.ct = g.completionTokens;
    try {
      if (this.fd === undefined) this.fd = openSync(this.file, "a");
      writeSync(this.fd, JSON.stringify(line) + "\n");
    } catch (e) {
      throw fsError(e, this.file, "writing the generation cache");
    }
    this.entries.set(line.k, line);
  }

  /** Closes the file descriptor (entries stay readable). */
  close(): void {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        // already closed
      }
      this.fd = undefined;
    }
  }

  /** Size of the cache file in bytes (0 if absent). */
  fileBytes(): number {
    try {
      return statSync(this.file).size;
    } catch {
      return 0;
    }
  }
}

/** Counters of a cached backend. */
export interface CacheStats {
  hits: number;
  misses: number;
}

/**
 * Wraps `backend` so every generation goes through the on-disk cache in `dir`: hits are answered from disk,
 * misses are generated (duplicates within a call once) and appended the moment each arrives. `onResult` is
 * called for hits too. The wrapper's `stats` counts hits and misses.
 */
export function withGenerationCache(backend: Backend, dir: string): Backend & { readonly stats: CacheStats; closeCacheFiles(): void } {
  const stats: CacheStats = { hits: 0, misses: 0 };
  const caches = new Map<string, ModelCache>();
  const cacheOf = async (): Promise<ModelCache> => {
    const id = await backend.modelId();
    let c = caches.get(id);
    if (!c) {
      c = ModelCache.open(dir, id);
      caches.set(id, c);
    }
    return c;
  };
  return {
    kind: backend.kind,
    stats,
    modelId: () => backend.modelId(),
    async generate(requests: readonly GenerationRequest[], options: GenerateOptions = {}): Promise<Generation[]> {
      const cache = await cacheOf();
      const results: Array<Generation | undefined> = requests.map((r) => cache.get(r));
      const pending = new Map<string, number[]>(); // key → indices waiting for it
      const toRun: GenerationRequest[] = [];
      results.forEach((g, i) => {
        if (g) {
          stats.hits++;
          options.onResult?.(g);
          return;
        }
        const k = cacheKey(cache.modelId, requests[i]);
        const waiting = pending.get(k);
        if (waiting) waiting.push(i);
        else {
          pending.set(k, [i]);
          toRun.push(requests[i]);
        }
      });
      if (toRun.length > 0) {
        const byId = new Map(toRun.map((r) => [r.id, r]));
        const done = new Set<string>();
        const accept = (g: Generation): void => {
          const req = byId.get(g.id);
          if (!req || done.has(req.id)) return;
          done.add(req.id);
          cache.put(req, g);
          for (const i of pending.get(cacheKey(cache.modelId, req)) ?? []) {
            stats.misses++;
            const gi = { ...g, id: requests[i].id };
            results[i] = gi;
            options.onResult?.(gi);
          }
        };
        const gens = await backend.generate(toRun, { signal: options.signal, onResult: accept });
        gens.forEach(accept); // for backends that do not report through onResult
      }
      return results.map((g, i) => {
        if (!g) throw new InternalError(`generation cache: no result for request ${requests[i].id}`);
        return g;
      });
    },
    /** Closes the cache files but not the wrapped backend. */
    closeCacheFiles() {
      for (const c of caches.values()) c.close();
    },
    async close() {
      for (const c of caches.values()) c.close();
      await backend.close();
    },
  };
}

/**
 * Chat templates: find a checkpoint's Jinja chat template and render messages with it, the way
 * `transformers`' `apply_chat_template(..., add_generation_prompt=True, tokenize=False)` does.
 *
 * Rendering uses @huggingface/jinja, which matches Python jinja2 in HF's configuration byte for byte on the
 * templates we checked (docs/inference.md). The rendered text is then tokenized with special tokens parsed
 * and WITHOUT an automatic BOS: like HF, the template itself writes `bos_token` when the model wants one.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { FormatError, fsError } from "../errors.ts";
import type { ChatMessage } from "./types.ts";

/** What a checkpoint says about its chat formatting and special tokens. */
export interface ChatFormat {
  /** Jinja source, or undefined when the checkpoint has none. */
  readonly template: string | undefined;
  /** Where the template came from (file path or "gguf:tokenizer.chat_template"), for error messages. */
  readonly templateSource: string;
  readonly bosToken?: string;
  readonly eosToken?: string;
  /** Whether a raw (non-chat) prompt gets a BOS token prepended (`tokenizer_config.add_bos_token`). */
  readonly addBosToken?: boolean;
}

export interface RenderOptions {
  /** Append the assistant turn header (HF `add_generation_prompt`). @default true */
  readonly addGenerationPrompt?: boolean;
  readonly bosToken?: string;
  readonly eosToken?: string;
  /** Extra template variables (e.g. `enable_thinking`). */
  readonly extra?: Record<string, unknown>;
}

/** Parsed templates, keyed by source (a server renders the same template for every request). */
const compiledTemplates = new Map<string, Template>();

/**
 * Renders `messages` with a Jinja chat template (`raise_exception` is provided by @huggingface/jinja).
 * @throws FormatError `chat_template.render_failed` when the template fails (syntax error, raise_exception).
 */
export function renderChatTemplate(
  template: string,
  messages: readonly ChatMessage[],
  options: RenderOptions = {},
  source = "chat template",
): string {
  let compiled = compiledTemplates.get(template);
  try {
    compiled ??= new Template(template);
    compiledTemplates.set(template, compiled);
  } catch (err) {
    throw new FormatError("chat_template.invalid", `chat template in ${source} does not parse: ${errMessage(err)}`, {
      details: { source },
      cause: err,
    });
  }
  try {
    return compiled.render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: options.addGenerationPrompt ?? true,
      bos_token: options.bosToken ?? "",
      eos_token: options.eosToken ?? "",
      ...options.extra,
    });
  } catch (err) {
    throw new FormatError("chat_template.render_failed", `chat template in ${source} failed to render: ${errMessage(err)}`, {
      details: { source, roles: messages.map((m) => m.role) },
      cause: err,
    });
  }
}

/** A special token in tokenizer_config.json is a string or an AddedToken object `{content: …}`. */
function tokenString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v !== null && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  return undefined;
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw fsError(err, path, "reading chat template");
  }
}

/**
 * Reads an HF checkpoint directory's chat format: `chat_template.jinja` (transformers ≥ 4.43 writes it) or
 * else `tokenizer_config.json`'s `chat_template` (a string, or a list of `{name, template}` where "default"
 * is used); bos/eos token strings and `add_bos_token` from tokenizer_config.json.
 * @throws FormatError `tokenizer_config.invalid_json` when tokenizer_config.json is not JSON.
 */
export async function readChatFormat(dir: string): Promise<ChatFormat> {
  const configPath = join(dir, "tokenizer_config.json");
  const configText = await readIfExists(configPath);
  let config: Record<string, unknown> = {};
  if (configText !== undefined) {
    try {
      config = JSON.parse(configText) as Record<string, unknown>;
    } catch (err) {
      throw new FormatError("tokenizer_config.invalid_json", `tokenizer_config.json in ${dir} is not valid JSON: ${errMessage(err)}`, {
        details: { file: configPath },
        cause: err,
      });
    }
  }
  const jinjaPath = join(dir, "chat_template.jinja");
  let template = await readIfExists(jinjaPath);
  let templateSource = jinjaPath;
  if (template === undefined) {
    const ct = config.chat_template;
    templateSource = `${configPath}:chat_template`;
    if (typeof ct === "string") template = ct;
    else if (Array.isArray(ct)) {
      const named = ct as Array<{ name?: string; template?: string }>;
      template = (named.find((t) => t.name === "default") ?? named[0])?.template;
    }
  }
  return {
    template,
    templateSource,
    bosToken: tokenString(config.bos_token),
    eosToken: tokenString(config.eos_token),
    addBosToken: typeof config.add_bos_token === "boolean" ? config.add_bos_token : undefined,
  };
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

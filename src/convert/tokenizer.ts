/**
 * Hugging Face tokenizer files → GGUF `tokenizer.*` metadata, following llama.cpp's converter:
 * - byte-level BPE (`tokenizer.json` model BPE without byte_fallback, ByteLevel decoder) → model `gpt2`
 *   with tokens, token types, merges and a pre-tokenizer name (TextModel.get_vocab_base / _set_vocab_gpt2);
 * - SentencePiece (`tokenizer.model`) → model `llama` with tokens, scores and types (_set_vocab_sentencepiece);
 * - special ids, add_bos/add_eos and the chat template as gguf-py's SpecialVocab reads them
 *   (tokenizer_config.json first, then config.json `*_token_id`; chat_template.jinja if the config has none).
 *
 * The pre-tokenizer is recognised from the tokenizer.json structure (llama.cpp hashes the token ids of a
 * probe string instead; a custom-trained tokenizer has no known hash but a known regex).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FormatError, InputError } from "../errors.ts";
import { KEYS, TOKEN_TYPE } from "../formats/gguf/constants.ts";
import type { GgufMetadata } from "../formats/gguf/types.ts";
import { parseSentencePieceModel } from "./sentencepiece.ts";
import { detectPreTokenizer } from "./tokenizer-pre.ts";

export interface TokenizerOptions {
  /** config.json `vocab_size` (rows of the embedding); the token list is padded to it. */
  vocabSize?: number;
  /** Override the detected `tokenizer.ggml.pre` (llama.cpp pre-tokenizer name). */
  tokenizerPre?: string;
  /** Write `tokenizer.ggml.add_space_prefix` with this value for SentencePiece vocabularies. */
  spmAddSpacePrefix?: boolean;
}

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
  normalized?: boolean;
}

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new InputError("convert.missing_file", `cannot read ${file}`, { details: { file }, cause: e });
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new FormatError("convert.bad_json", `invalid JSON in ${file}: ${(e as Error).message}`, { details: { file }, cause: e });
  }
}

function readJsonIfExists(file: string): Record<string, unknown> | undefined {
  return existsSync(file) ? readJson(file) : undefined;
}

/** gguf-py TextModel.does_token_look_special: added tokens that should be CONTROL even if not marked special. */
export function doesTokenLookSpecial(t: string): boolean {
  return (
    t === "<pad>" ||
    t === "<mask>" ||
    t === "<2mass>" ||
    t === "[@BOS@]" ||
    (t.startsWith("<|") && t.endsWith("|>")) ||
    (t.startsWith("<｜") && t.endsWith("｜>")) ||
    (t.startsWith("<unused") && t.endsWith(">"))
  );
}

const SPECIAL_TYPES = [
  ["bos", KEYS.tokenizer.bosId],
  ["eos", KEYS.tokenizer.eosId],
  ["unk", KEYS.tokenizer.unkId],
  ["sep", KEYS.tokenizer.sepId],
  ["pad", KEYS.tokenizer.padId],
  ["cls", KEYS.tokenizer.clsId],
  ["mask", KEYS.tokenizer.maskId],
] as const;

/**
 * Special token ids and add_* flags (gguf-py SpecialVocab): `<typ>_token` in tokenizer_config.json
 * resolved through tokenizer.json's added_tokens (then, beyond gguf-py, the vocabulary itself), else
 * config.json `<typ>_token_id`; add_bos/add_eos from a
 * simple TemplateProcessing post-processor, overridden by tokenizer_config `add_<typ>_token`.
 */
export function specialVocab(
  tokenizerJson: Record<string, unknown> | undefined,
  tokenizerConfig: Record<string, unknown> | undefined,
  config: Record<string, unknown>,
  nVocab: number,
  vocabulary: readonly string[] = [],
): { ids: Map<string, number>; add: Map<string, boolean> } {
  const ids = new Map<string, number>();
  const add = new Map<string, boolean>();
  const added = ((tokenizerJson?.added_tokens as AddedToken[] | undefined) ?? []).filter((t) => typeof t?.content === "string");
  const set = (typ: string, id: unknown): void => {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= nVocab || ids.has(typ)) return;
    ids.set(typ, id);
  };
  const content = (entry: unknown): string | undefined =>
    typeof entry === "string" ? entry : typeof (entry as { content?: unknown })?.content === "string" ? (entry as { content: string }).content : undefined;

  const pp = tokenizerJson?.post_processor as Record<string, unknown> | null | undefined;
  const bosContent = content(tokenizerConfig?.bos_token);
  const eosContent = content(tokenizerConfig?.eos_token);
  if (pp) {
    const processors = (pp.processors as Record<string, unknown>[] | undefined) ?? [pp];
    for (const p of processors) {
      if (p.type === "RobertaProcessing") {
        add.set("bos", true);
        add.set("eos", true);
        add.set("sep", true);
      } else if (p.type === "TemplateProcessing") {
        const single = (p.single as Record<string, { id?: string }>[] | undefined) ?? [];
        if (single.length > 1) {
          const first = single[0]!.SpecialToken?.id;
          if (first !== undefined) add.set("bos", first === bosContent);
          const last = single[single.length - 1]!.SpecialToken?.id;
          if (last !== undefined) add.set("eos", last === eosContent);
        }
      }
    }
  }
  for (const [typ] of SPECIAL_TYPES) {
    const flag = tokenizerConfig?.[`add_${typ}_token`];
    if (typeof flag === "boolean") add.set(typ, flag);
    const c = content(tokenizerConfig?.[`${typ}_token`]);
    if (c !== undefined) {
      const id = added.find((t) => t.content === c)?.id;
      // Not an added token (e.g. a SentencePiece-only directory): the vocabulary entry with that text.
      set(typ, id ?? (vocabulary.indexOf(c) >= 0 ? vocabulary.indexOf(c) : undefined));
    }
  }
  for (const [typ] of SPECIAL_TYPES) set(typ, config[`${typ}_token_id`]);
  return { ids, add };
}

/** The chat template: tokenizer_config.json `chat_template`, else chat_template.jinja, else chat_template.json. */
export function readChatTemplate(dir: string, tokenizerConfig: Record<string, unknown> | undefined): string | undefined {
  const fromConfig = tokenizerConfig?.chat_template;
  if (typeof fromConfig === "string") return fromConfig;
  const jinja = join(dir, "chat_template.jinja");
  if (existsSync(jinja)) return readFileSync(jinja, "utf8");
  const json = readJsonIfExists(join(dir, "chat_template.json"));
  return typeof json?.chat_template === "string" ? json.chat_template : undefined;
}

/** Merges as GGUF strings `"a b"`; pair-form merges have spaces encoded as U+0120 (gguf-py SpecialVocab). */
export function mergesToStrings(merges: unknown, file: string): string[] {
  if (!Array.isArray(merges)) return [];
  return merges.map((m, i) => {
    if (typeof m === "string") return m;
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string") {
      return m.map((part: string) => part.replace(/ /g, "\u0120")).join(" ");
    }
    throw new FormatError("convert.bad_merges", `merge #${i} in ${file}: got ${JSON.stringify(m)}, expected "a b" or ["a", "b"]`, { details: { file, index: i } });
  });
}

function gpt2Vocab(file: string, tj: Record<string, unknown>, vocabSize: number | undefined): { tokens: string[]; types: number[] } {
  const model = tj.model as { vocab: Record<string, number> };
  const reverse = new Map<number, string>();
  // for…in, not Object.entries: a 150k-entry vocabulary is a dictionary-mode object (≈ 50 ms instead of ≈ 250 ms)
  const vocab = model.vocab;
  for (const tok in vocab) reverse.set(vocab[tok]!, tok);
  const added = new Map<number, AddedToken>();
  for (const t of (tj.added_tokens as AddedToken[] | undefined) ?? []) {
    added.set(t.id, t);
    reverse.set(t.id, t.content);
  }
  let maxId = -1; // a loop, not Math.max(...ids): vocabularies of 150k ids overflow the argument limit
  for (const id of reverse.keys()) if (id > maxId) maxId = id;
  const n = vocabSize ?? maxId + 1;
  if (maxId >= n) {
    throw new FormatError("convert.vocab_too_large", `tokenizer in ${file}: got token id ${maxId}, expected ids below config.json vocab_size ${n}`, { details: { file, maxId, vocabSize: n } });
  }
  const tokens: string[] = [];
  const types: number[] = [];
  for (let i = 0; i < n; i++) {
    const tok = reverse.get(i);
    if (tok === undefined) {
      tokens.push(`[PAD${i}]`);
      types.push(TOKEN_TYPE.UNUSED);
      continue;
    }
    const a = added.get(i);
    if (a !== undefined) {
      if (a.special || doesTokenLookSpecial(tok)) {
        tokens.push(tok);
        types.push(TOKEN_TYPE.CONTROL);
      } else {
        tokens.push(tok.replace(/\u2581/g, " ")); // pre-normalize user-defined spaces (as llama.cpp, for Gemma)
        types.push(TOKEN_TYPE.USER_DEFINED);
      }
    } else {
      tokens.push(tok);
      types.push(TOKEN_TYPE.NORMAL);
    }
  }
  return { tokens, types };
}

function isByteLevelBpe(tj: Record<string, unknown>): boolean {
  const model = tj.model as Record<string, unknown> | undefined;
  const decoder = tj.decoder as Record<string, unknown> | null | undefined;
  const decoders = decoder?.type === "Sequence" ? ((decoder.decoders as Record<string, unknown>[]) ?? []) : decoder ? [decoder] : [];
  return model?.type === "BPE" && !model.byte_fallback && decoders.some((d) => d.type === "ByteLevel");
}

/**
 * Builds the `tokenizer.*` metadata for the HF model directory `dir`.
 * @param config the parsed config.json (for `*_token_id` fallbacks).
 * @throws InputError when no supported tokenizer is found; FormatError for malformed files or an
 *   unrecognised BPE pre-tokenizer (pass `tokenizerPre`).
 */
export function tokenizerMetadata(dir: string, config: Record<string, unknown>, options: TokenizerOptions = {}): GgufMetadata {
  const md: GgufMetadata = new Map();
  const tjFile = join(dir, "tokenizer.json");
  const spmFile = join(dir, "tokenizer.model");
  const tj = readJsonIfExists(tjFile);
  const tc = readJsonIfExists(join(dir, "tokenizer_config.json"));
  let nVocab: number;

  if (existsSync(spmFile)) {
    const spm = parseSentencePieceModel(readFileSync(spmFile), spmFile);
    const n = options.vocabSize ?? spm.pieces.length;
    const tokens: string[] = [];
    const scores: number[] = [];
    const types: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = spm.pieces[i];
      if (p !== undefined) {
        tokens.push(p.piece);
        scores.push(p.score);
        types.push(p.type);
      } else {
        tokens.push(`[PAD${i}]`);
        scores.push(-1000);
        types.push(TOKEN_TYPE.UNUSED);
      }
    }
    // Added tokens (llama.cpp _create_vocab_sentencepiece): tokenizer_config.json `added_tokens_decoder`
    // (else tokenizer.json `added_tokens`) override text and type, with score −1000.
    const decoder = tc?.added_tokens_decoder as Record<string, { content?: string; special?: boolean }> | undefined;
    const addedList: AddedToken[] =
      decoder !== undefined
        ? Object.entries(decoder).map(([id, t]) => ({ id: Number(id), content: String(t.content), special: t.special === true }))
        : ((tj?.added_tokens as AddedToken[] | undefined) ?? []);
    for (const t of addedList) {
      if (!Number.isInteger(t.id) || t.id < 0 || t.id >= n) continue;
      const special = t.special === true || doesTokenLookSpecial(t.content);
      tokens[t.id] = special ? t.content : t.content.replace(/\u2581/g, " ");
      types[t.id] = special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
      scores[t.id] = -1000;
    }
    md.set(KEYS.tokenizer.model, { type: "string", value: "llama" });
    md.set(KEYS.tokenizer.pre, { type: "string", value: "default" });
    md.set(KEYS.tokenizer.tokens, { type: "array", itemType: "string", value: tokens });
    md.set(KEYS.tokenizer.scores, { type: "array", itemType: "f32", value: scores.map(Math.fround) });
    md.set(KEYS.tokenizer.tokenType, { type: "array", itemType: "i32", value: types });
    md.set(KEYS.tokenizer.addSpacePrefix, { type: "bool", value: options.spmAddSpacePrefix ?? spm.addDummyPrefix });
    nVocab = n;
  } else if (tj !== undefined && isByteLevelBpe(tj)) {
    const { tokens, types } = gpt2Vocab(tjFile, tj, options.vocabSize);
    const pre = options.tokenizerPre ?? detectPreTokenizer(tj, tjFile);
    md.set(KEYS.tokenizer.model, { type: "string", value: "gpt2" });
    md.set(KEYS.tokenizer.pre, { type: "string", value: pre });
    md.set(KEYS.tokenizer.tokens, { type: "array", itemType: "string", value: tokens });
    md.set(KEYS.tokenizer.tokenType, { type: "array", itemType: "i32", value: types });
    md.set(KEYS.tokenizer.merges, { type: "array", itemType: "string", value: mergesToStrings((tj.model as { merges?: unknown }).merges, tjFile) });
    nVocab = tokens.length;
  } else {
    throw new InputError("convert.unsupported_tokenizer", `tokenizer in ${dir}: got ${tj ? `tokenizer.json model ${(tj.model as { type?: string })?.type}` : "no tokenizer.json"} and no tokenizer.model, expected a byte-level BPE tokenizer.json or a SentencePiece tokenizer.model`, {
      details: { dir },
      hint: "realign converts GPT-2-style byte-level BPE (Llama 3, Qwen2) and SentencePiece (Llama 2, Mistral, Gemma) tokenizers",
    });
  }

  const { ids, add } = specialVocab(tj, tc, config, nVocab, md.get(KEYS.tokenizer.tokens)!.value as string[]);
  for (const [typ, key] of SPECIAL_TYPES) {
    const id = ids.get(typ);
    if (id !== undefined) md.set(key, { type: "u32", value: id });
  }
  // No BOS anywhere: say so explicitly, or llama.cpp falls back to a default BOS id (11 for gpt2 vocabularies).
  if (!add.has("bos") && !ids.has("bos")) add.set("bos", false);
  for (const [typ, key] of [
    ["bos", KEYS.tokenizer.addBos],
    ["eos", KEYS.tokenizer.addEos],
    ["sep", KEYS.tokenizer.addSep],
  ] as const) {
    const v = add.get(typ);
    if (v !== undefined) md.set(key, { type: "bool", value: v });
  }
  const template = readChatTemplate(dir, tc);
  if (template !== undefined) md.set(KEYS.tokenizer.chatTemplate, { type: "string", value: template });
  return md;
}

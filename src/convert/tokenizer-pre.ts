/**
 * Recognises a byte-level BPE pre-tokenizer from tokenizer.json and names it as llama.cpp's
 * `tokenizer.ggml.pre` does (llama-vocab.cpp's pre-type switch; names from convert_hf_to_gguf.py
 * get_vocab_base_pre). llama.cpp identifies the pre-tokenizer by hashing the ids of a probe string, which
 * only works for published tokenizers; the split regex identifies custom-trained ones too.
 */
import { FormatError } from "../errors.ts";

/** Split regexes (as tokenizer.json spells them) → pre-tokenizer name, with the model that defines them. */
export const PRE_TOKENIZER_REGEXES: ReadonlyArray<{ regex: string; pre: string; source: string }> = [
  {
    // meta-llama/Meta-Llama-3-8B tokenizer.json; llama.cpp LLAMA_VOCAB_PRE_TYPE_LLAMA3
    regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    pre: "llama-bpe",
    source: "Llama 3",
  },
  {
    // Qwen/Qwen1.5-7B and Qwen2 tokenizer.json; llama.cpp LLAMA_VOCAB_PRE_TYPE_QWEN2
    regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    pre: "qwen2",
    source: "Qwen2",
  },
];

type Node = Record<string, unknown>;

/**
 * `gpt-2` for a lone ByteLevel pre-tokenizer with its built-in GPT-2 regex and no prefix space
 * (llama.cpp LLAMA_VOCAB_PRE_TYPE_GPT2); a Split with a known regex followed by a regex-free ByteLevel
 * → that regex's name. Anything else is a FormatError with a hint to pass the name explicitly.
 */
export function detectPreTokenizer(tokenizerJson: Node, file: string): string {
  const pt = tokenizerJson.pre_tokenizer as Node | null | undefined;
  const steps: Node[] = pt == null ? [] : pt.type === "Sequence" ? ((pt.pretokenizers as Node[]) ?? []) : [pt];
  if (steps.length === 1 && steps[0]!.type === "ByteLevel" && steps[0]!.use_regex !== false && !steps[0]!.add_prefix_space) {
    return "gpt-2";
  }
  if (steps.length === 2 && steps[0]!.type === "Split" && steps[1]!.type === "ByteLevel" && steps[1]!.use_regex === false) {
    const regex = (steps[0]!.pattern as { Regex?: string } | undefined)?.Regex;
    const row = PRE_TOKENIZER_REGEXES.find((r) => r.regex === regex);
    if (row) return row.pre;
  }
  throw new FormatError("convert.unknown_pre_tokenizer", `pre-tokenizer in ${file}: got ${JSON.stringify(pt)?.slice(0, 200)}, expected GPT-2 ByteLevel or a Llama 3 / Qwen2 split regex`, {
    details: { file },
    hint: "pass --tokenizer-pre <name> with llama.cpp's tokenizer.ggml.pre name for this tokenizer",
  });
}

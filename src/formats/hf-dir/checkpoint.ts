/**
 * Opening a Hugging Face model directory (what `save_pretrained` writes): `config.json`, the weights as
 * `model.safetensors` or shards + `model.safetensors.index.json`, and files that travel with the weights
 * (tokenizer, chat template, generation config). Every shard header is validated and the index is
 * cross-checked against the shards before anything is read. Pickle weights (`.bin`, `.pt`) are refused:
 * loading them can run arbitrary code.
 */
import { readFile, readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Dtype } from "../../core/dtype.ts";
import type { Checkpoint, TensorMeta, TensorSource } from "../../core/tensor.ts";
import { FormatError, InputError, InternalError, fsError } from "../../errors.ts";
import { INDEX_FILE_NAME, SINGLE_FILE_NAME, parseIndexJson } from "../safetensors/index-json.ts";
import { openSafetensors, type SafetensorsFile } from "../safetensors/read.ts";

/** Files copied from a donor checkpoint into a merged output (mergekit's list plus common vocab files). */
export const CARRY_FILE_NAMES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "tokenizer.model",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "vocab.txt",
  "merges.txt",
  "spiece.model",
  "chat_template.jinja",
  "chat_template.json",
  "generation_config.json",
  "preprocessor_config.json",
  "processor_config.json",
] as const;

/** Weight-file extensions that are Python pickles (never loaded). */
const PICKLE_EXTENSIONS = [".bin", ".pt", ".pth", ".ckpt", ".pkl"] as const;

/** Where one tensor's bytes live. */
export interface TensorLocation extends TensorMeta {
  /** Absolute path of the safetensors file holding it. */
  readonly file: string;
  /** Absolute byte offset in `file`. */
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** An opened HF checkpoint directory. */
export interface HfCheckpoint extends Checkpoint {
  /** Tensor name → location, in shard order then data order. */
  readonly tensors: ReadonlyMap<string, TensorLocation>;
  /** Whether the weights are sharded (index present). */
  readonly isSharded: boolean;
  /** Absolute path of config.json. */
  readonly configPath: string;
}

const CONVERT_HINT =
  'convert it to safetensors first, e.g. python -c "from transformers import AutoModelForCausalLM as M; ' +
  "M.from_pretrained('IN').save_pretrained('OUT', safe_serialization=True)\" (copy the tokenizer files too)";

/**
 * Opens the checkpoint in `dir`: reads config.json, validates every weight file's header, cross-checks the
 * index, lists files to carry. The returned handle keeps the weight files open; call `close()`.
 * @throws InputError `fs.not_found` / `checkpoint.not_a_directory`; FormatError `checkpoint.no_config`,
 *   `checkpoint.bad_config`, `checkpoint.pickle_only`, `checkpoint.is_adapter`, `checkpoint.no_weights`,
 *   `index.*` (bad JSON, path escape, missing shard, shard mismatch), `safetensors.*` (malformed header).
 */
export async function openCheckpoint(dir: string): Promise<HfCheckpoint> {
  const root = resolve(dir);
  let isDir: boolean;
  try {
    isDir = (await stat(root)).isDirectory();
  } catch (e) {
    throw fsError(e, dir, "opening checkpoint");
  }
  if (!isDir) {
    throw new InputError("checkpoint.not_a_directory", `checkpoint ${dir} is a file, expected a Hugging Face model directory`, {
      details: { file: root },
      hint: "pass the directory holding config.json and the *.safetensors files",
    });
  }
  let names: string[];
  try {
    names = (await readdir(root)).sort();
  } catch (e) {
    throw fsError(e, dir, "listing checkpoint");
  }
  const has = new Set(names);

  const weightNames = names.filter((n) => n.endsWith(".safetensors"));
  if (!has.has(INDEX_FILE_NAME) && !has.has(SINGLE_FILE_NAME)) {
    const pickles = names.filter((n) => PICKLE_EXTENSIONS.some((ext) => n.endsWith(ext)));
    if (has.has("adapter_model.safetensors") || has.has("adapter_config.json")) {
      throw new FormatError("checkpoint.is_adapter", `${dir} is a PEFT adapter, expected a full model directory`, {
        details: { file: root },
        hint: "an adapter holds only low-rank deltas; merge it into its base model with peft (merge_and_unload) and save_pretrained first",
      });
    }
    if (pickles.length > 0 && weightNames.length === 0) {
      throw new FormatError("checkpoint.pickle_only", `${dir} holds only pickle weights (${pickles.join(", ")}), expected safetensors`, {
        details: { file: root, files: pickles },
        hint: `realign never loads pickle files (they can run code); ${CONVERT_HINT}`,
      });
    }
    throw new FormatError("checkpoint.no_weights", `no ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME} in ${dir}`, {
      details: { file: root, files: weightNames },
      hint: "pass a Hugging Face model directory written by save_pretrained (safetensors weights)",
    });
  }

  const configPath = join(root, "config.json");
  if (!has.has("config.json")) {
    throw new FormatError("checkpoint.no_config", `no config.json in ${dir}`, {
      details: { file: configPath },
      hint: "a Hugging Face model directory needs its config.json; copy it from the model it was saved from",
    });
  }
  let config: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(await readFile(configPath, "utf8"));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not a JSON object");
    config = parsed as Record<string, unknown>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== undefined) throw fsError(e, configPath, "reading config");
    throw new FormatError("checkpoint.bad_config", `config.json is not a JSON object in ${dir} (${e instanceof Error ? e.message : String(e)})`, {
      details: { file: configPath },
      hint: "fix or replace config.json",
    });
  }

  const files: SafetensorsFile[] = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all(files.map((f) => f.close()));
  };
  const tensors = new Map<string, TensorLocation>();
  const fileByTensor = new Map<string, SafetensorsFile>();
  const isSharded = has.has(INDEX_FILE_NAME);
  try {
    if (isSharded) {
      const indexPath = join(root, INDEX_FILE_NAME);
      let text: string;
      try {
        text = await readFile(indexPath, "utf8");
      } catch (e) {
        throw fsError(e, indexPath, "reading index");
      }
      const index = parseIndexJson(text, indexPath);
      const shardNames = [...new Set(index.weightMap.values())].sort();
      for (const shard of shardNames) {
        if (!has.has(shard)) {
          const tensor = [...index.weightMap].find(([, s]) => s === shard)![0];
          throw new FormatError("index.missing_shard", `shard ${shard} listed in ${indexPath} (for tensor ${tensor}) does not exist`, {
            details: { file: indexPath, shard, tensor },
            hint: "the checkpoint is incomplete; download the missing shard",
          });
        }
        files.push(await openSafetensors(join(root, shard)));
      }
      for (const f of files) {
        const shard = f.path.slice(root.length + 1);
        for (const t of f.header.tensors) {
          const listed = index.weightMap.get(t.name);
          if (listed !== shard) {
            throw new FormatError(
              "index.shard_mismatch",
              listed === undefined
                ? `tensor ${t.name} in shard ${shard} is not listed in ${indexPath}`
                : `tensor ${t.name} is in shard ${shard} but ${indexPath} lists it in ${listed}`,
              { details: { file: indexPath, tensor: t.name, shard, listed }, hint: "the index does not match the shards; regenerate it or re-download the checkpoint" },
            );
          }
          tensors.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape, file: f.path, byteOffset: t.byteOffset, byteLength: t.byteLength });
          fileByTensor.set(t.name, f);
        }
      }
      for (const [tensor, shard] of index.weightMap) {
        if (!tensors.has(tensor)) {
          throw new FormatError("index.shard_mismatch", `tensor ${tensor} is listed in ${indexPath} for shard ${shard} but is not in ${shard}`, {
            details: { file: indexPath, tensor, shard },
            hint: "the index does not match the shards; regenerate it or re-download the checkpoint",
          });
        }
      }
    } else {
      const f = await openSafetensors(join(root, SINGLE_FILE_NAME));
      files.push(f);
      for (const t of f.header.tensors) {
        tensors.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape, file: f.path, byteOffset: t.byteOffset, byteLength: t.byteLength });
        fileByTensor.set(t.name, f);
      }
    }
  } catch (e) {
    await closeAll();
    throw e;
  }

  const carryFiles = (CARRY_FILE_NAMES as readonly string[]).filter((n) => has.has(n)).map((n) => join(root, n));
  return {
    path: root,
    config,
    configPath,
    tensors,
    isSharded,
    carryFiles,
    weightFiles: files.map((f) => f.path),
    openTensor(name: string): TensorSource {
      const f = fileByTensor.get(name);
      if (f === undefined) throw new InternalError(`tensor ${name} not in checkpoint ${root}`);
      return f.tensor(name);
    },
    close: closeAll,
  };
}

/** The dtype most tensors of a checkpoint are stored in (ties → first seen); undefined if it has none. */
export function dominantDtype(tensors: ReadonlyMap<string, TensorMeta>): Dtype | undefined {
  const counts = new Map<Dtype, number>();
  for (const t of tensors.values()) counts.set(t.dtype, (counts.get(t.dtype) ?? 0) + 1);
  let best: Dtype | undefined;
  for (const [d, n] of counts) if (best === undefined || n > counts.get(best)!) best = d;
  return best;
}

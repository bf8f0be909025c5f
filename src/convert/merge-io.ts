/**
 * GGUF hooks for the merge runner: a GGUF output sink and opening `.gguf` files as merge inputs.
 * `realign merge` spreads the result into its `mergeRecipe` options.
 */
import type { Checkpoint } from "../core/tensor.ts";
import { openCheckpoint } from "../formats/hf-dir/checkpoint.ts";
import { openGgufCheckpoint } from "../formats/gguf/checkpoint.ts";
import type { SinkFactory } from "../merge/sink.ts";
import { parseConvertType } from "./convert.ts";
import { ggufSink } from "./gguf-sink.ts";

/** Opens an input: a `.gguf` file through the GGUF reader, anything else as a Hugging Face directory. */
export async function openModelInput(input: { path: string }): Promise<Checkpoint> {
  return input.path.toLowerCase().endsWith(".gguf") ? openGgufCheckpoint(input.path) : openCheckpoint(input.path);
}

/**
 * Options for mergeRecipe: `openInput` (GGUF-aware) always; `sink` = ggufSink when outFormat is "gguf".
 * @throws UsageError for a bad ggufType.
 */
export async function ggufMergeOptions(o: { outFormat: string; ggufType?: string; tokenizerPre?: string }): Promise<{ openInput: typeof openModelInput; sink?: SinkFactory }> {
  if (o.outFormat !== "gguf") return { openInput: openModelInput };
  const type = o.ggufType === undefined ? undefined : parseConvertType(o.ggufType);
  return { openInput: openModelInput, sink: ggufSink({ type, tokenizerPre: o.tokenizerPre }) };
}

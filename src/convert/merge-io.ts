/**
 * GGUF hooks for the merge runner: a GGUF output sink and opening `.gguf` files as merge inputs.
 * `realign merge` spreads the result into its `mergeRecipe` options.
 */
import { basename } from "node:path";
import type { Checkpoint } from "../core/tensor.ts";
import { withGgufInputs } from "../formats/gguf/checkpoint.ts";
import type { SinkFactory } from "../merge/sink.ts";
import { parseConvertType } from "./convert.ts";
import { ggufSink } from "./gguf-sink.ts";

/** Re-exported: wraps an input opener so `.gguf` files open through the GGUF reader (formats/gguf/checkpoint.ts). */
export { withGgufInputs };

/** Opens an input: a `.gguf` file through the GGUF reader, anything else as a Hugging Face directory. */
export const openModelInput: (input: { path: string }) => Promise<Checkpoint> = withGgufInputs();

/**
 * Output options for mergeRecipe: for outFormat "gguf" a GGUF `sink`, and `outputKind: "file"` when `out`
 * ends in `.gguf` (one file, no sidecars) — else `<out>/model.gguf` plus config, tokenizer files and model
 * card. Nothing for "safetensors". (GGUF *inputs* are `openInput: withGgufInputs(…)`.)
 * @throws UsageError for a bad ggufType.
 */
export async function ggufMergeOptions(o: {
  outFormat: string;
  out?: string;
  ggufType?: string;
  tokenizerPre?: string;
}): Promise<{ sink?: SinkFactory; outputKind?: "directory" | "file" }> {
  if (o.outFormat !== "gguf") return {};
  const type = o.ggufType === undefined ? undefined : parseConvertType(o.ggufType);
  const outputKind = o.out !== undefined && o.out.toLowerCase().endsWith(".gguf") ? "file" : "directory";
  const name = o.out === undefined ? undefined : basename(o.out).replace(/\.gguf$/i, "");
  return { sink: ggufSink({ type, tokenizerPre: o.tokenizerPre, name }), outputKind };
}

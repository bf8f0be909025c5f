/**
 * The Q/K row permutation llama.cpp applies to `llama`-architecture attention weights
 * (convert_hf_to_gguf.py LlamaModel.permute): HF checkpoints rotate the two halves of each head
 * (rotate_half: dim i pairs with i + d/2), llama.cpp's `llama` rope rotates adjacent pairs (2i, 2i+1).
 * Per head, `reshape(n_head, 2, d/2, …).swapaxes(1, 2)` interleaves the halves:
 * output row h·d + 2i + j ← input row h·d + j·d/2 + i.
 */
import { InputError } from "../errors.ts";

/**
 * Source row of every output row for a q_proj (nHead heads) or k_proj (nHeadKv heads) weight or bias of
 * `rows` rows. For K pass the KV head count (LlamaModel.permute uses n_head_kv when it differs).
 * @returns src, with output row r = input row src[r].
 * @throws InputError when rows is not a multiple of 2·heads.
 */
export function qkPermutation(rows: number, heads: number, tensor = "q/k projection"): Int32Array {
  if (heads <= 0 || rows % (2 * heads) !== 0) {
    throw new InputError("convert.bad_head_count", `rows of ${tensor}: got ${rows}, expected a multiple of 2 × ${heads} heads`, { details: { tensor, rows, heads } });
  }
  const headDim = rows / heads;
  const half = headDim / 2;
  const src = new Int32Array(rows);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) src[h * headDim + 2 * i + j] = h * headDim + j * half + i;
    }
  }
  return src;
}

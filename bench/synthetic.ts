/**
 * Seeded synthetic Llama-3-8B-shaped checkpoints for the benchmark: real Hugging Face directories
 * (config.json, sharded BF16 safetensors `model-0000i-of-0000N.safetensors`, `model.safetensors.index.json`).
 *
 * Shape (Llama-3-8B): vocab 128256, hidden 4096, 32 heads / 8 KV heads (head_dim 128), MLP 14336, untied
 * lm_head. `layers` full-width decoder layers: 2 → 1.487 B parameters, 2.97 GB per checkpoint.
 *
 * Values: the aligned model's weights are random bf16 codes of magnitude 2⁻⁹..2⁻⁵ (norms 1..2) from a
 * xorshift32 stream; tuned model k is the aligned model with every element moved by −1, 0, 0 or +1 bf16
 * ulp (its own xorshift stream) — a small perturbation, as a fine-tune is. All checkpoints of a set are
 * written in one pass (one PRNG step per pair of elements per model), through large buffers.
 */
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";

export interface SyntheticTensor {
  readonly name: string;
  readonly shape: readonly number[];
  /** bf16 exponent field of the generated values (118 ⇒ magnitudes from 2⁻⁹). */
  readonly expBase: number;
}

export const LLAMA3_8B = {
  vocab: 128256,
  hidden: 4096,
  heads: 32,
  kvHeads: 8,
  intermediate: 14336,
} as const;

/** Tensor list of a Llama-3-8B-shaped model with `layers` decoder layers, in HF's stored order. */
export function llamaTensors(layers: number): SyntheticTensor[] {
  const { vocab, hidden, heads, kvHeads, intermediate } = LLAMA3_8B;
  const kv = (hidden / heads) * kvHeads;
  const W = 118;
  const NORM = 127;
  const out: SyntheticTensor[] = [{ name: "model.embed_tokens.weight", shape: [vocab, hidden], expBase: W }];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      { name: `${p}input_layernorm.weight`, shape: [hidden], expBase: NORM },
      { name: `${p}mlp.down_proj.weight`, shape: [hidden, intermediate], expBase: W },
      { name: `${p}mlp.gate_proj.weight`, shape: [intermediate, hidden], expBase: W },
      { name: `${p}mlp.up_proj.weight`, shape: [intermediate, hidden], expBase: W },
      { name: `${p}post_attention_layernorm.weight`, shape: [hidden], expBase: NORM },
      { name: `${p}self_attn.k_proj.weight`, shape: [kv, hidden], expBase: W },
      { name: `${p}self_attn.o_proj.weight`, shape: [hidden, hidden], expBase: W },
      { name: `${p}self_attn.q_proj.weight`, shape: [hidden, hidden], expBase: W },
      { name: `${p}self_attn.v_proj.weight`, shape: [kv, hidden], expBase: W },
    );
  }
  out.push({ name: "model.norm.weight", shape: [hidden], expBase: NORM });
  out.push({ name: "lm_head.weight", shape: [vocab, hidden], expBase: W });
  return out;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Llama config.json for the synthetic model. */
export function llamaConfig(layers: number): Record<string, unknown> {
  const { vocab, hidden, heads, kvHeads, intermediate } = LLAMA3_8B;
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    num_hidden_layers: layers,
    vocab_size: vocab,
    max_position_embeddings: 8192,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    hidden_act: "silu",
    tie_word_embeddings: false,
    bos_token_id: 128000,
    eos_token_id: 128001,
    torch_dtype: "bfloat16",
  };
}

interface ShardPlan {
  readonly file: string;
  readonly tensors: readonly SyntheticTensor[];
}

/** Greedy HF-style sharding: a new shard when adding a tensor would exceed maxShardBytes. */
function planShards(tensors: readonly SyntheticTensor[], maxShardBytes: number): ShardPlan[] {
  const groups: SyntheticTensor[][] = [[]];
  let size = 0;
  for (const t of tensors) {
    const bytes = numel(t.shape) * 2;
    if (size > 0 && size + bytes > maxShardBytes) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1]!.push(t);
    size += bytes;
  }
  const n = groups.length;
  const pad = (i: number): string => String(i).padStart(5, "0");
  return groups.map((g, i) => ({ file: `model-${pad(i + 1)}-of-${pad(n)}.safetensors`, tensors: g }));
}

/** safetensors header bytes (8-byte length + JSON padded with spaces to a multiple of 8). */
function headerBytes(tensors: readonly SyntheticTensor[]): Buffer {
  const obj: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const t of tensors) {
    const bytes = numel(t.shape) * 2;
    obj[t.name] = { dtype: "BF16", shape: t.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(obj);
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const body = Buffer.from(json, "utf8");
  const out = Buffer.alloc(8 + body.length);
  out.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(out, 8);
  return out;
}

export interface SyntheticSetOptions {
  /** Decoder layers (≥ 0). */
  readonly layers: number;
  /** PRNG seed (any integer). */
  readonly seed: number;
  /** Number of tuned models besides the aligned one (≥ 0). */
  readonly tuned: number;
  /** Shard size cap in bytes. @default 2e9 */
  readonly maxShardBytes?: number;
}

export interface SyntheticSet {
  readonly aligned: string;
  readonly tuned: readonly string[];
  /** Parameters per checkpoint. */
  readonly params: number;
  /** Bytes of tensor data per checkpoint. */
  readonly bytes: number;
  /** Weight files of every checkpoint (aligned first). */
  readonly files: readonly string[];
}

/** Elements per generation chunk (16 MiB of bf16 per model). */
const CHUNK = 8 * 1024 * 1024;

/**
 * Writes `aligned/` and `tuned-<k>/` under `root` (created). Deterministic in (layers, seed, tuned).
 * @returns the directories and sizes.
 */
export function writeSyntheticSet(root: string, options: SyntheticSetOptions): SyntheticSet {
  const tensors = llamaTensors(options.layers);
  const shards = planShards(tensors, options.maxShardBytes ?? 2e9);
  const dirs = [join(root, "aligned"), ...Array.from({ length: options.tuned }, (_, k) => join(root, `tuned-${k + 1}`))];
  const models = dirs.length;
  for (const d of dirs) {
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "config.json"), JSON.stringify(llamaConfig(options.layers), null, 2) + "\n");
  }
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const s of shards) for (const t of s.tensors) {
    weightMap[t.name] = s.file;
    total += numel(t.shape) * 2;
  }
  for (const d of dirs) {
    writeFileSync(
      join(d, "model.safetensors.index.json"),
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + "\n",
    );
  }
  // One PRNG state per model (xorshift32 must not start at 0).
  const state = new Int32Array(models);
  for (let m = 0; m < models; m++) state[m] = (Math.imul(options.seed + 1, 0x9e3779b1) ^ Math.imul(m + 1, 0x85ebca6b)) | 0 || 1;
  const bufs = dirs.map(() => new Int32Array(CHUNK / 2));
  const files: string[] = [];
  for (const shard of shards) {
    const fds = dirs.map((d) => {
      const path = join(d, shard.file);
      files.push(path);
      return openSync(path, "w");
    });
    try {
      const header = headerBytes(shard.tensors);
      for (const fd of fds) writeSync(fd, header);
      for (const t of shard.tensors) {
        const n = numel(t.shape);
        for (let off = 0; off < n; off += CHUNK) {
          const count = Math.min(CHUNK, n - off); // always even here
          fillChunk(bufs, state, count >>> 1, t.expBase);
          for (let m = 0; m < models; m++) writeSync(fds[m]!, bufs[m]!, 0, count * 2);
        }
      }
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  }
  return {
    aligned: dirs[0]!,
    tuned: dirs.slice(1),
    params: total / 2,
    bytes: total,
    files: files.sort(),
  };
}

/** Fills `words` u32 words (2 bf16 each) of every model buffer: aligned codes, then perturbed copies. */
function fillChunk(bufs: Int32Array[], state: Int32Array, words: number, expBase: number): void {
  const a = bufs[0]!;
  let s = state[0]! | 0;
  const e0 = (expBase << 7) | ((expBase << 7) << 16);
  for (let i = 0; i < words; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    // per half: sign bit 15 and mantissa bits 0..6 from s, exponent expBase + (bits 7..8 of s)
    a[i] = (s & 0x807f807f) | (e0 + (s & 0x01800180));
  }
  state[0] = s;
  for (let m = 1; m < bufs.length; m++) {
    const t = bufs[m]!;
    let r = state[m]! | 0;
    for (let i = 0; i < words; i++) {
      r ^= r << 13;
      r ^= r >>> 17;
      r ^= r << 5;
      // −1, 0, 0, +1 ulp on each half: d = bit1 − bit0. Exponents are ≥ 118 and ≤ 130, so a half never
      // borrows from or carries into its neighbour and the packed add is exact.
      const dlo = ((r >>> 1) & 1) - (r & 1);
      const dhi = ((r >>> 17) & 1) - ((r >>> 16) & 1);
      t[i] = (a[i]! + dlo + (dhi << 16)) | 0;
    }
    state[m] = r;
  }
}

/** Projections a synthetic LoRA adapter targets (all of them, as the paper's fine-tunes do). */
const LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

export interface SyntheticLora {
  readonly dir: string;
  /** Σ over targeted matrices of 2·out·in·r: the floating-point operations of every B·A. */
  readonly flops: number;
  readonly targeted: number;
}

/**
 * Writes a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors, F32) of rank `rank` over
 * every projection of the `layers`-layer synthetic model: lora_A [r, in] and lora_B [out, r] with small
 * seeded values (|A| < 2⁻⁴, |B| < 2⁻⁷), α = 2r.
 */
export function writeSyntheticLora(dir: string, options: { layers: number; rank: number; seed: number }): SyntheticLora {
  mkdirSync(dir, { recursive: true });
  const r = options.rank;
  writeFileSync(
    join(dir, "adapter_config.json"),
    JSON.stringify(
      { peft_type: "LORA", r, lora_alpha: 2 * r, target_modules: LORA_TARGETS, bias: "none", fan_in_fan_out: false, base_model_name_or_path: "synthetic-llama3-8b-shape", task_type: "CAUSAL_LM" },
      null,
      2,
    ) + "\n",
  );
  const entries: { name: string; shape: number[] }[] = [];
  let flops = 0;
  let targeted = 0;
  for (const t of llamaTensors(options.layers)) {
    const m = /^(model\.layers\.\d+\.(?:self_attn|mlp)\.(\w+))\.weight$/.exec(t.name);
    if (m === null || !LORA_TARGETS.includes(m[2]!)) continue;
    const [out, inp] = t.shape as [number, number];
    entries.push({ name: `base_model.model.${m[1]}.lora_A.weight`, shape: [r, inp] });
    entries.push({ name: `base_model.model.${m[1]}.lora_B.weight`, shape: [out, r] });
    flops += 2 * out * inp * r;
    targeted++;
  }
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const e of entries) {
    const bytes = numel(e.shape) * 4;
    header[e.name] = { dtype: "F32", shape: e.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const fd = openSync(join(dir, "adapter_model.safetensors"), "w");
  try {
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
    writeSync(fd, prefix);
    writeSync(fd, Buffer.from(json, "utf8"));
    let s = (options.seed * 0x9e3779b1) | 0 || 1;
    for (const e of entries) {
      const n = numel(e.shape);
      const f = new Float32Array(n);
      const scale = e.name.endsWith("lora_A.weight") ? 2 ** -4 : 2 ** -7;
      for (let i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >>> 17;
        s ^= s << 5;
        f[i] = (s / 2 ** 31) * scale;
      }
      writeSync(fd, new Uint8Array(f.buffer));
    }
  } finally {
    closeSync(fd);
  }
  return { dir, flops, targeted };
}

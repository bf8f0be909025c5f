/**
 * `resta`: RESTA, "REstoring Safety through Task Arithmetic" (Bhardwaj, Do, Poria; ACL 2024,
 * https://arxiv.org/abs/2402.11746; code declare-lab/resta; reference paper.md §2.3). Adds a safety vector
 * to the fine-tuned model:
 *
 *   δ_safe = f32(θ_aligned − θ_unaligned);   θ = θ_tuned + β·δ_safe
 *
 * Roles (safety-roles.ts): `base_model` = θ_aligned; `models` = θ_tuned (`role: tuned`) and θ_unaligned
 * (`role: unaligned`).
 *
 * Optional drift fix (`density` < 1): the paper applies DARE to the SFT delta before adding the safety
 * vector. Here δ_sft = f32(θ_tuned − θ_aligned), each entry kept with probability `density` (seeded by
 * --seed and the tensor name, the same counter-based stream as dare_linear, sparsify.ts) and multiplied by
 * 1/density (the DARE paper's 1/p), then θ = θ_aligned + δ′_sft + β·δ_safe. With β = 0 this is exactly
 * dare_linear (weight 1, rescale_mode inverse_density) on the fine-tune with the same seed.
 *
 * Where realign differs, honestly:
 * - β default 0.5: the original's default is unknown (paper.md §2.3); 0.5 is the default of the
 *   xinykou/safety_realignment reimplementation (`resta_eval.py`, γ = 0.5).
 * - θ_unaligned: the paper un-aligns the chat model by harmful fine-tuning; realign takes whatever model
 *   you give, typically the pretrained base (as some third-party ports do).
 * - The drift fix's drop rate is unknown in the paper; `density` has no default other than 1 (off).
 *
 * Numerics: per element in float64, rounded once to float32. β = 0 without drift fix copies θ_tuned bit for
 * bit (−0, NaN, Inf included); density ≥ 1 is exactly no drift fix.
 */
import { ConfigError } from "../../errors.ts";
import { keptAt, streamKey } from "./sparsify.ts";
import { checkRoles, roleIndices, ROLE_PARAM } from "./safety-roles.ts";
import type { MergeMethod, ResolvedParams, TensorContext } from "./types.ts";

/** β default: xinykou/safety_realignment's γ (paper.md §2.3; the original default is unknown). */
export const RESTA_DEFAULT_BETA = 0.5;

function rolesOrThrow(ctx: TensorContext, params: ResolvedParams): { tuned: number; unaligned: number } {
  const problems = checkRoles(params);
  if (problems.length > 0) {
    throw new ConfigError("recipe.bad_param", `bad resta roles for tensor ${ctx.name}: ${problems.join("; ")}`, {
      hint: "give base_model: <aligned>, and two models with parameters {role: tuned} and {role: unaligned}",
    });
  }
  return roleIndices(params);
}

export const resta: MergeMethod<undefined> = {
  name: "resta",
  summary: "add a safety vector β·(θ_aligned − θ_unaligned) to the fine-tuned model (optional DARE drift fix)",
  paperUrl: "https://arxiv.org/abs/2402.11746",
  requiresBase: true,
  // the DARE drift fix is random; a density given as a schedule counts as random (conservative)
  usesSeed: (global) => !(typeof global.density === "number" && global.density >= 1) && global.density !== undefined,
  minModels: 2,
  maxModels: 2,
  globalParams: [
    { name: "beta", kind: "number", default: RESTA_DEFAULT_BETA, doc: "scale of the safety vector θ_aligned − θ_unaligned (0.5 as xinykou's reimplementation; the original default is unknown)" },
    { name: "density", kind: "number", default: 1, doc: "drift fix: DARE keep probability on θ_tuned − θ_aligned (kept entries ÷ density); 1 = off" },
  ],
  modelParams: [ROLE_PARAM],
  checkParams(_ctx, params) {
    const problems = checkRoles(params);
    const d = Number(params.global.density);
    if (!(d > 0 && d <= 1)) problems.push(`density: got ${params.global.density}, expected 0 < density ≤ 1 (1 = no drift fix)`);
    const b = Number(params.global.beta);
    if (!Number.isFinite(b)) problems.push(`beta: got ${params.global.beta}, expected a finite number`);
    return problems;
  },
  measurePasses: () => 0,
  initStats: () => undefined,
  measure: () => {},
  endPass: () => {},
  kernel(chunk, out, _stats, ctx, params) {
    const { tuned: ti, unaligned: ui } = rolesOrThrow(ctx, params);
    const a = chunk.base!;
    const t = chunk.models[ti]!;
    const u = chunk.models[ui]!;
    const beta = Number(params.global.beta);
    const density = Number(params.global.density);
    const n = out.length;
    if (density < 1) {
      // stream of model 0 whatever the role order: the same mask as dare_linear on this fine-tune and seed
      const key = streamKey(ctx.seed, ctx.name, 0);
      const f = 1 / density;
      for (let j = 0; j < n; j++) {
        const sft = keptAt(key, chunk.offset + j, density) ? Math.fround(t[j]! - a[j]!) * f : 0;
        out[j] = a[j]! + sft + beta * Math.fround(a[j]! - u[j]!);
      }
      return;
    }
    if (beta === 0) return void out.set(t);
    for (let j = 0; j < n; j++) out[j] = t[j]! + beta * Math.fround(a[j]! - u[j]!);
  },
};

/**
 * Model roles of the safety-aware methods (resta, safemerge), which need THREE models: `base_model` is the
 * aligned model θ_aligned (paper §2.0), and the two `models` carry a per-model parameter `role`: `tuned`
 * (θ_tuned, the fine-tune to repair) and `unaligned` (θ_unaligned, the model alignment started from: the
 * pretrained base, or a harmfully fine-tuned copy of the aligned model for RESTA). Order does not matter.
 *
 * ```yaml
 * base_model: examples/organism/aligned
 * models:
 *   - {model: examples/organism/finetuned, parameters: {role: tuned}}
 *   - {model: examples/organism/base, parameters: {role: unaligned}}
 * ```
 * Pure.
 */
import type { ParamSpec, ResolvedParams } from "./types.ts";

export const SAFETY_ROLES = ["tuned", "unaligned"] as const;

/** The per-model `role` parameter (required on both models). */
export const ROLE_PARAM: ParamSpec = {
  name: "role",
  kind: "string",
  doc: "tuned (the fine-tuned model to repair) or unaligned (the model before safety alignment, e.g. the pretrained base)",
};

/** Problems with the roles of one tensor's resolved parameters (empty when exactly one tuned and one unaligned). */
export function checkRoles(params: ResolvedParams): string[] {
  const roles = params.perModel.map((p) => p.role);
  const problems: string[] = [];
  roles.forEach((r, i) => {
    if (r !== undefined && !(SAFETY_ROLES as readonly unknown[]).includes(r)) {
      problems.push(`model ${i + 1}: role: got ${JSON.stringify(r)}, expected one of ${SAFETY_ROLES.join(", ")}`);
    }
  });
  if (problems.length > 0) return problems;
  for (const want of SAFETY_ROLES) {
    const n = roles.filter((r) => r === want).length;
    if (n !== 1) problems.push(`roles: got ${n} model(s) with role ${want}, expected exactly 1 (one model role: tuned, one role: unaligned; base_model is the aligned model)`);
  }
  return problems;
}

/** Indices (into `models`) of the tuned and the unaligned model. Assumes `checkRoles` passed. */
export function roleIndices(params: ResolvedParams): { tuned: number; unaligned: number } {
  const roles = params.perModel.map((p) => p.role);
  return { tuned: roles.indexOf("tuned"), unaligned: roles.indexOf("unaligned") };
}

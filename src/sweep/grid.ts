/**
 * The sweep grid, pure: parse the λ list and the method list, and expand them into jobs (one merged model
 * each). λ is the weight on the tuned model (arXiv 2412.19512 §1.1): θ = (1−λ)·θ_aligned + λ·θ_tuned for
 * `linear`; 0 = aligned, 1 = tuned. The paper's grid is {0.2, 0.4, 0.6, 0.8}, its scripts use 0.1–0.9
 * (paper.md §1.5); the sweep always adds the two references λ=0 (aligned) and λ=1 (tuned), which need no
 * merge for the methods that reproduce their inputs there.
 */
import { UsageError } from "../errors.ts";
import { didYouMean } from "../core/suggest.ts";

/** λ values are rounded to this many decimals so that `0:1:0.1` gives 0.3, not 0.30000000000000004. */
const LAMBDA_DECIMALS = 9;
/** Bounds a typo such as `0:1:0.00001`; a sweep of more points than this is never what was meant. */
export const MAX_GRID_POINTS = 1001;

/**
 * How λ drives each method the sweep knows, as a table (mergekit names). `exactAtOne`: λ=1 reproduces the
 * tuned model exactly, so it is evaluated from the input instead of merged. λ=0 reproduces the aligned model
 * for every method here (the delta is scaled by 0). `stochastic`: the merge depends on a seed (recorded).
 */
export const SWEEP_METHODS = {
  /** (1−λ)·aligned + λ·tuned (paper §1.5). */
  linear: { exactAtOne: true, stochastic: false },
  /** aligned + λ·(tuned − aligned); the same model as linear up to float32 rounding. */
  task_arithmetic: { exactAtOne: true, stochastic: false },
  /** spherical interpolation with t = λ from aligned (t=0) to tuned (t=1) (paper §1.5, mergekit slerp). */
  slerp: { exactAtOne: true, stochastic: false },
  /** aligned + λ·DARE(tuned − aligned): drop at rate 1−density, rescale by 1/density (paper §1.5). */
  dare_linear: { exactAtOne: false, stochastic: true },
  /** aligned + λ·TIES(tuned − aligned): trim to the top-density magnitudes (one model: no sign election). */
  ties: { exactAtOne: false, stochastic: false },
  /** DARE drop + TIES sign consensus, weight λ. */
  dare_ties: { exactAtOne: false, stochastic: true },
} as const;

export type SweepMethodName = keyof typeof SWEEP_METHODS;

/** One point of the sweep: a method at one λ. */
export interface SweepJob {
  /** Stable id, also the state file name stem: `<method>@<λ>`, e.g. `linear@0.5`. */
  readonly id: string;
  readonly method: SweepMethodName;
  /** Weight on the tuned model, in [0, 1]. */
  readonly lambda: number;
  /**
   * Which input this point is exactly, when no merge is needed: `aligned` at λ=0, `tuned` at λ=1 for the
   * methods with `exactAtOne`; undefined when the point must be merged.
   */
  readonly reuse: "aligned" | "tuned" | undefined;
}

/** Rounds λ to LAMBDA_DECIMALS so grid arithmetic gives the numbers people type. */
export function roundLambda(x: number): number {
  const r = Number(x.toFixed(LAMBDA_DECIMALS));
  return Object.is(r, -0) ? 0 : r;
}

/** The shortest decimal form of λ used in ids and tables: 0.5, 0.25, 1. */
export function formatLambda(lambda: number): string {
  return String(roundLambda(lambda));
}

function parseNumber(token: string, spec: string): number {
  const t = token.trim();
  const x = t === "" ? Number.NaN : Number(t);
  if (!Number.isFinite(x)) {
    throw new UsageError("sweep.bad_lambdas", `λ list --lambdas "${spec}": got "${t}", expected a number`, {
      details: { spec, token: t },
      hint: 'write e.g. --lambdas 0,0.25,0.5,0.75,1 or 0,0.2,…,1 or 0:1:0.1',
    });
  }
  return x;
}

/** Inclusive arithmetic range from `start` to `stop` with `step` (> 0), rounding each value. */
function range(start: number, stop: number, step: number, spec: string): number[] {
  if (!(step > 0) || stop < start) {
    throw new UsageError("sweep.bad_lambdas", `λ range in --lambdas "${spec}": got start ${start}, stop ${stop}, step ${step}, expected start ≤ stop and step > 0`, {
      details: { spec, start, stop, step },
      hint: "write e.g. 0:1:0.1 (start:stop:step) or 0,0.2,…,1",
    });
  }
  const count = Math.floor(roundLambda((stop - start) / step)) + 1;
  if (count > MAX_GRID_POINTS) {
    throw new UsageError("sweep.too_many_points", `λ range in --lambdas "${spec}": got ${count} points, expected at most ${MAX_GRID_POINTS}`, {
      details: { spec, count, max: MAX_GRID_POINTS },
      hint: "use a larger step",
    });
  }
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(roundLambda(start + i * step));
  // a stop not on the grid (0:1:0.3 → 0, 0.3, 0.6, 0.9) is not added: the user asked for that step
  return out;
}

const ELLIPSIS = /^(…|\.\.\.?)$/;

/**
 * Parses a λ list. Accepted forms (may be mixed with commas):
 * - explicit values: `0,0.25,0.5,1`;
 * - an ellipsis continuing the step of the two values before it up to the value after it:
 *   `0,0.2,…,1` (also `...`) → 0, 0.2, 0.4, 0.6, 0.8, 1;
 * - a `start:stop:step` range, inclusive: `0:1:0.1` → 0, 0.1, …, 1.
 * Values are rounded to 9 decimals, de-duplicated and sorted ascending.
 * @throws UsageError `sweep.bad_lambdas` for non-numbers, an ellipsis without two values before and one after,
 *   or λ outside [0, 1]; `sweep.too_many_points` above MAX_GRID_POINTS.
 */
export function parseLambdas(spec: string): number[] {
  const tokens = spec.split(",").map((t) => t.trim());
  const values: number[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (ELLIPSIS.test(token)) {
      const next = tokens[i + 1];
      if (values.length < 2 || next === undefined || ELLIPSIS.test(next) || next.includes(":")) {
        throw new UsageError("sweep.bad_lambdas", `λ list --lambdas "${spec}": got "…" without two values before it and one after, expected e.g. 0,0.2,…,1`, {
          details: { spec },
          hint: "write e.g. --lambdas 0,0.2,…,1",
        });
      }
      const a = values[values.length - 2]!;
      const b = values[values.length - 1]!;
      const stop = parseNumber(next, spec);
      values.push(...range(b, stop, roundLambda(b - a), spec).slice(1));
      if (values[values.length - 1] !== roundLambda(stop)) values.push(roundLambda(stop));
      i++;
    } else if (token.includes(":")) {
      const parts = token.split(":");
      if (parts.length !== 3) {
        throw new UsageError("sweep.bad_lambdas", `λ range "${token}" in --lambdas "${spec}": got ${parts.length} fields, expected start:stop:step`, {
          details: { spec, token },
          hint: "write e.g. 0:1:0.1",
        });
      }
      const [start, stop, step] = parts.map((p) => parseNumber(p, spec)) as [number, number, number];
      values.push(...range(start, stop, step, spec));
    } else {
      values.push(roundLambda(parseNumber(token, spec)));
    }
  }
  const bad = values.find((x) => x < 0 || x > 1);
  if (bad !== undefined) {
    throw new UsageError("sweep.bad_lambdas", `λ list --lambdas "${spec}": got ${bad}, expected values in [0, 1] (0 = aligned, 1 = tuned)`, {
      details: { spec, got: bad },
    });
  }
  const unique = [...new Set(values)].sort((x, y) => x - y);
  if (unique.length > MAX_GRID_POINTS) {
    throw new UsageError("sweep.too_many_points", `λ list --lambdas "${spec}": got ${unique.length} points, expected at most ${MAX_GRID_POINTS}`, {
      details: { spec, count: unique.length, max: MAX_GRID_POINTS },
    });
  }
  return unique;
}

/**
 * Parses a comma-separated method list (`linear,slerp,dare_linear`; `-` and `_` both accepted), keeping the
 * order given and dropping repeats.
 * @throws UsageError `sweep.unknown_method`, with a "did you mean" hint when a known method is close.
 */
export function parseMethods(spec: string): SweepMethodName[] {
  const known = Object.keys(SWEEP_METHODS) as SweepMethodName[];
  const out: SweepMethodName[] = [];
  for (const raw of spec.split(",")) {
    const name = raw.trim().replace(/-/g, "_");
    if (name === "") continue;
    if (!(known as string[]).includes(name)) {
      throw new UsageError("sweep.unknown_method", `method in --method "${spec}": got "${raw.trim()}", expected one of ${known.join(", ")}`, {
        details: { spec, got: raw.trim(), known },
        hint: didYouMean(name, known),
      });
    }
    if (!out.includes(name as SweepMethodName)) out.push(name as SweepMethodName);
  }
  if (out.length === 0) {
    throw new UsageError("sweep.unknown_method", `--method "${spec}": got no method, expected e.g. linear`, { details: { spec } });
  }
  return out;
}

/** The id of a point: `<method>@<λ>`. */
export function jobId(method: string, lambda: number): string {
  return `${method}@${formatLambda(lambda)}`;
}

/**
 * Expands methods × λ into jobs, method-major in the order given, λ ascending. λ=0 and λ=1 are always
 * included (the references the recommendation rule and the plots need). λ=0 of every method and λ=1 of the
 * exact-at-one methods reuse an input (`reuse`), so they cost an evaluation but no merge; the runner evaluates
 * each distinct model once.
 */
export function planGrid(methods: readonly SweepMethodName[], lambdas: readonly number[]): SweepJob[] {
  const grid = [...new Set([0, ...lambdas.map(roundLambda), 1])].sort((x, y) => x - y);
  const jobs: SweepJob[] = [];
  for (const method of methods) {
    for (const lambda of grid) {
      const reuse = lambda === 0 ? "aligned" : lambda === 1 && SWEEP_METHODS[method].exactAtOne ? "tuned" : undefined;
      jobs.push({ id: jobId(method, lambda), method, lambda, reuse });
    }
  }
  return jobs;
}

/**
 * The model a job evaluates, as a key shared by jobs that evaluate the same weights: `aligned`, `tuned`, or
 * the job id. The runner evaluates each key once.
 */
export function modelKey(job: SweepJob): string {
  return job.reuse ?? job.id;
}

/**
 * mergekit YAML → Recipe. Accepts the `mergekit-yaml` schema (reference mergekit.md §3): `merge_method`,
 * `models` (model + parameters) or a single `slices` entry, `base_model`, `parameters`, `dtype`, `out_dtype`,
 * `tokenizer_source`, and model references `path[+lora]`. Parameter values may be scalars, gradients or
 * filter lists (schedule.ts).
 *
 * Unlike mergekit (which silently drops unknown keys and parameters), every unknown key, unknown parameter,
 * parameter at the wrong level, bad value kind or method-name typo is a problem with a "did you mean"
 * hint; all problems are collected and thrown as ONE ConfigError before any file is opened (mergekit#527).
 *
 * Precedence of a parameter for a model (highest first, as mergekit): the model's `parameters`, the slice's
 * `parameters`, the top-level `parameters`, the method default. A filter list that matches nothing falls
 * through to the next level. Method-level parameters (e.g. slerp `t`, `normalize`, `lambda`) belong at the
 * top level or the slice level; under a model they are an error (mergekit ignores them there).
 *
 * Paths are kept as written; relative paths resolve against the current directory, as in mergekit.
 * Pure: no I/O.
 */
import { parseAllDocuments } from "yaml";
import { ConfigError } from "../errors.ts";
import type { OutDtype } from "../core/dtype.ts";
import type { MergeMethod, ParamSpec } from "./methods/types.ts";
import { METHODS, getMethod } from "./methods/registry.ts";
import { didYouMean } from "./params.ts";
import type { Recipe } from "./recipe.ts";
import { parseRecipe, type RecipeInit } from "./recipe-schema.ts";
import { scheduleLeaves, withFallback, type ScheduleValue } from "./schedule.ts";
import { scheduleValueSchema } from "./schedule-schema.ts";

/** The result of reading a mergekit config. */
export interface MergekitConfig {
  readonly recipe: Recipe;
  /** `layer_range` of the single slice, when the config used `slices` (must cover every layer). */
  readonly layerRange: readonly [number, number] | undefined;
  /** Things accepted but handled differently from mergekit, for the user (printed as warnings). */
  readonly notes: readonly string[];
  /** Every model reference with the YAML key it came from (`models[0].model`, `base_model`, …), for messages. */
  readonly sources: readonly { readonly key: string; readonly path: string; readonly lora: string | undefined }[];
}

export interface ParseMergekitOptions {
  /** File name for messages. @default "config" */
  readonly file?: string;
  /** Seed for random methods (DARE, DELLA), from --seed. @default 0 */
  readonly seed?: number;
}

/** A problem in the config: where (YAML path) and what, with an optional fix. */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
  readonly hint?: string;
}

const TOP_KEYS = ["merge_method", "models", "slices", "base_model", "parameters", "dtype", "out_dtype", "tokenizer_source", "tokenizer", "chat_template", "modules", "name"] as const;
const MODEL_KEYS = ["model", "parameters"] as const;
const SLICE_KEYS = ["sources", "base_model", "parameters", "residual_weight"] as const;
const SOURCE_KEYS = ["model", "layer_range", "parameters"] as const;
const MODEL_OBJECT_KEYS = ["model", "lora", "override_architecture"] as const;

/** mergekit methods realign does not implement (mergekit.md §1), for a precise message. */
const MERGEKIT_ONLY_METHODS = ["nuslerp", "multislerp", "karcher", "sce", "ram", "ramplus_tl", "nearswap", "arcee_fusion", "consensus_ta", "consensus_ties"];

/** mergekit `dtype`/`out_dtype` names (optionally `torch.`-prefixed) → realign dtypes. */
const DTYPE_NAMES: Readonly<Record<string, OutDtype>> = { bfloat16: "BF16", float16: "F16", float32: "F32" };

interface ModelRef {
  readonly path: string;
  readonly lora: string | undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Parses `path[@rev][+lora[@rev]]` or `{model: path | {path, revision}, lora}`. Revisions are not supported (local paths only). */
function parseModelRef(v: unknown, where: string, issues: ConfigIssue[]): ModelRef | undefined {
  if (typeof v === "string") {
    const s = v.trim();
    const plus = s.indexOf("+");
    const path = plus > 0 ? s.slice(0, plus) : s;
    const lora = plus > 0 ? s.slice(plus + 1) : undefined;
    if (path === "" || lora === "") {
      issues.push({ path: where, message: `bad model reference ${JSON.stringify(v)}`, hint: "write a path, or model+lora_adapter" });
      return undefined;
    }
    return { path, lora };
  }
  if (isRecord(v)) {
    unknownKeys(v, MODEL_OBJECT_KEYS, where, issues);
    const m = v.model;
    let path: string | undefined;
    if (typeof m === "string") path = m;
    else if (isRecord(m) && typeof m.path === "string") {
      path = m.path;
      if (m.revision !== undefined) issues.push({ path: `${where}.model.revision`, message: "revisions are not supported: realign reads local directories" });
    }
    if (path === undefined) {
      issues.push({ path: `${where}.model`, message: "missing model path" });
      return undefined;
    }
    const lora = typeof v.lora === "string" ? v.lora : isRecord(v.lora) && typeof v.lora.path === "string" ? v.lora.path : undefined;
    return { path, lora };
  }
  issues.push({ path: where, message: `got ${JSON.stringify(v)}, expected a model path` });
  return undefined;
}

function unknownKeys(obj: Record<string, unknown>, known: readonly string[], where: string, issues: ConfigIssue[]): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) {
      issues.push({ path: where === "" ? k : `${where}.${k}`, message: `unknown key ${k}: expected one of ${known.join(", ")}`, hint: didYouMean(k, known) });
    }
  }
}

function sameRef(a: ModelRef, b: ModelRef): boolean {
  const norm = (p: string): string => p.replace(/\/+$/, "").replace(/^\.\//, "");
  return norm(a.path) === norm(b.path) && (a.lora ?? "") === (b.lora ?? "");
}

/**
 * Splits a `parameters:` mapping into method-level and per-model values, checking names, levels and value kinds.
 * @param level "top" | "slice" accept both kinds; "model" accepts only per-model parameters.
 */
function readParams(
  raw: unknown,
  where: string,
  level: "top" | "slice" | "model",
  method: MergeMethod<unknown>,
  issues: ConfigIssue[],
): { global: Record<string, ScheduleValue>; perModel: Record<string, ScheduleValue> } {
  const global: Record<string, ScheduleValue> = {};
  const perModel: Record<string, ScheduleValue> = {};
  if (raw === undefined || raw === null) return { global, perModel };
  if (!isRecord(raw)) {
    issues.push({ path: where, message: `got ${JSON.stringify(raw)}, expected a mapping of parameter names to values` });
    return { global, perModel };
  }
  const gNames = method.globalParams.map((s) => s.name);
  const mNames = method.modelParams.map((s) => s.name);
  for (const [k, v] of Object.entries(raw)) {
    const path = `${where}.${k}`;
    const gSpec = method.globalParams.find((s) => s.name === k);
    const mSpec = method.modelParams.find((s) => s.name === k);
    if (gSpec === undefined && mSpec === undefined) {
      const all = level === "model" ? mNames : [...gNames, ...mNames];
      issues.push({
        path,
        message: `unknown parameter ${k} for ${method.name}: expected one of ${all.join(", ") || "(none)"}`,
        hint: didYouMean(k, all) ?? (level === "model" ? didYouMean(k, gNames) : undefined),
      });
      continue;
    }
    if (level === "model" && mSpec === undefined) {
      issues.push({
        path,
        message: `parameter ${k} is a method-level parameter of ${method.name}, not a per-model one`,
        hint: `move ${k} to the top-level parameters; mergekit silently ignores it here`,
      });
      continue;
    }
    const spec = (mSpec ?? gSpec)!;
    const parsed = scheduleValueSchema.safeParse(v);
    if (!parsed.success) {
      issues.push({ path, message: `got ${JSON.stringify(v)}, expected a ${spec.kind}, a list of them (gradient) or a filter list` });
      continue;
    }
    const bad = scheduleLeaves(parsed.data).filter((leaf) => typeof leaf !== spec.kind);
    if (bad.length > 0) {
      issues.push({ path, message: `got ${JSON.stringify(bad[0])}, expected a ${spec.kind} (${spec.doc})` });
      continue;
    }
    if (mSpec !== undefined) perModel[k] = parsed.data;
    else global[k] = parsed.data;
  }
  return { global, perModel };
}

function parseDtype(v: unknown, key: string, issues: ConfigIssue[]): OutDtype | undefined {
  if (v === undefined || v === null) return undefined;
  const s = typeof v === "string" ? v.replace(/^torch\./, "") : "";
  const d = DTYPE_NAMES[s];
  if (d === undefined) {
    const names = Object.keys(DTYPE_NAMES);
    issues.push({ path: key, message: `got ${JSON.stringify(v)}, expected one of ${names.join(", ")}`, hint: didYouMean(String(v), names) ?? (/^(bf16|bfloat)$/i.test(String(v)) ? "did you mean bfloat16?" : /^(fp16|f16|half)$/i.test(String(v)) ? "did you mean float16?" : undefined) });
  }
  return d;
}

/** Throws one ConfigError listing every issue (no-op when there are none). */
export function throwIssues(issues: readonly ConfigIssue[], file: string): void {
  if (issues.length === 0) return;
  const lines = issues.map((i) => `${i.path}: ${i.message}${i.hint ? ` (${i.hint})` : ""}`);
  const head = issues.length === 1 ? `invalid merge config ${file}: ${issues[0]!.path}: ${issues[0]!.message}` : `invalid merge config ${file}: ${issues.length} problems:\n  - ${lines.join("\n  - ")}`;
  throw new ConfigError("config.invalid", head, { details: { file, issues }, hint: issues.length === 1 ? issues[0]!.hint : undefined });
}

/**
 * Parses a mergekit YAML config into a Recipe.
 * @throws ConfigError `config.yaml_syntax` (not YAML, or several documents) or `config.invalid` listing every problem.
 */
export function parseMergekitYaml(text: string, options: ParseMergekitOptions = {}): MergekitConfig {
  const file = options.file ?? "config";
  const docs = parseAllDocuments(text);
  // an empty or comment-only file parses to zero documents
  if (!Array.isArray(docs) || docs.length === 0 || docs.every((d) => d.contents === null && d.errors.length === 0)) {
    throw new ConfigError("config.empty", `merge config ${file} is empty`, {
      details: { file },
      hint: "write merge_method, base_model and models (see docs/yaml.md and examples/recipes/)",
    });
  }
  if (docs.length > 1) {
    throw new ConfigError("config.multi_document", `merge config ${file}: got ${docs.length} YAML documents, expected one`, {
      details: { file },
      hint: "split the stages into separate files and merge them one after another (mergekit-yaml also refuses this; mergekit#477)",
    });
  }
  const doc = docs[0]!;
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0];
    // the parser's first line, without its trailing " at line L, column C:" (the position is printed up front)
    const what = e.message.split("\n")[0]!.replace(/\s*at line \d+, column \d+:?\s*$/, "");
    const src = pos === undefined ? undefined : text.split(/\r?\n/)[pos.line - 1];
    throw new ConfigError("config.yaml_syntax", `merge config ${file}${pos ? `:${pos.line}:${pos.col}` : ""} is not valid YAML: ${what}`, {
      details: { file, line: pos?.line, column: pos?.col, parser: e.message },
      hint: `${pos && src !== undefined && src.trim() !== "" ? `line ${pos.line}: ${JSON.stringify(src)}; ` : ""}check indentation (spaces, not tabs), closing brackets and quotes there; see examples/recipes/*.yml`,
    });
  }
  const root: unknown = doc.toJS();
  const issues: ConfigIssue[] = [];
  if (!isRecord(root)) {
    throwIssues([{ path: "(root)", message: "expected a mapping with merge_method and models" }], file);
  }
  const cfg = root as Record<string, unknown>;
  unknownKeys(cfg, TOP_KEYS, "", issues);
  for (const k of ["tokenizer", "chat_template", "modules"] as const) {
    if (cfg[k] !== undefined) issues.push({ path: k, message: `${k} is not supported by realign`, hint: k === "modules" ? "use models: or a single slice" : "realign copies the tokenizer and chat template from the base model" });
  }
  const notes: string[] = [];

  // merge_method
  const methodName = cfg.merge_method;
  let method: MergeMethod<unknown> | undefined;
  if (typeof methodName !== "string" || methodName === "") {
    issues.push({ path: "merge_method", message: "missing merge_method", hint: `one of ${Object.keys(METHODS).join(", ")}` });
  } else {
    method = getMethod(methodName) as MergeMethod<unknown> | undefined;
    if (method === undefined) {
      const names = Object.keys(METHODS);
      const only = MERGEKIT_ONLY_METHODS.includes(methodName);
      issues.push({
        path: "merge_method",
        message: only ? `${methodName} is a mergekit method realign does not implement: expected one of ${names.join(", ")}` : `unknown merge method ${methodName}: expected one of ${names.join(", ")}`,
        hint: didYouMean(methodName.replace(/-/g, "_"), names) ?? didYouMean(methodName, names),
      });
    }
  }

  // model sources
  const hasModels = cfg.models !== undefined;
  const hasSlices = cfg.slices !== undefined;
  if (hasModels === hasSlices) issues.push({ path: "(root)", message: hasModels ? "both models and slices given, expected exactly one" : "missing models (or slices)" });

  interface Entry {
    ref: ModelRef;
    params: Record<string, unknown> | undefined;
    where: string;
    /** YAML key of the model reference, e.g. `models[0].model`. */
    key: string;
  }
  const entries: Entry[] = [];
  let sliceParams: unknown;
  let sliceBase: unknown;
  let layerRange: [number, number] | undefined;
  if (hasModels && !hasSlices) {
    if (!Array.isArray(cfg.models) || cfg.models.length === 0) issues.push({ path: "models", message: "expected a non-empty list of {model, parameters}" });
    else {
      cfg.models.forEach((m: unknown, i: number) => {
        const where = `models[${i}]`;
        if (typeof m === "string") {
          const ref = parseModelRef(m, where, issues);
          if (ref) entries.push({ ref, params: undefined, where, key: where });
          return;
        }
        if (!isRecord(m)) return void issues.push({ path: where, message: "expected {model: <path>, parameters: {...}}" });
        unknownKeys(m, MODEL_KEYS, where, issues);
        const ref = parseModelRef(m.model, `${where}.model`, issues);
        if (ref) entries.push({ ref, params: m.parameters as Record<string, unknown> | undefined, where, key: `${where}.model` });
      });
    }
  } else if (hasSlices && !hasModels) {
    if (!Array.isArray(cfg.slices) || cfg.slices.length !== 1) {
      issues.push({ path: "slices", message: `got ${Array.isArray(cfg.slices) ? cfg.slices.length : "no"} slices, expected exactly one`, hint: "realign supports the single-slice form (every source over all layers); frankenmerges are not supported" });
    } else {
      const slice = cfg.slices[0] as unknown;
      if (!isRecord(slice)) issues.push({ path: "slices[0]", message: "expected {sources: [...]}" });
      else {
        unknownKeys(slice, SLICE_KEYS, "slices[0]", issues);
        if (slice.residual_weight !== undefined) notes.push("slices[0].residual_weight is ignored (mergekit parses but never uses it)");
        sliceParams = slice.parameters;
        sliceBase = slice.base_model;
        const sources = slice.sources;
        if (!Array.isArray(sources) || sources.length === 0) issues.push({ path: "slices[0].sources", message: "expected a non-empty list of {model, layer_range}" });
        else {
          sources.forEach((s: unknown, i: number) => {
            const where = `slices[0].sources[${i}]`;
            if (!isRecord(s)) return void issues.push({ path: where, message: "expected {model, layer_range, parameters}" });
            unknownKeys(s, SOURCE_KEYS, where, issues);
            const lr = s.layer_range;
            if (!Array.isArray(lr) || lr.length !== 2 || !lr.every((x) => Number.isInteger(x) && x >= 0) || !(lr[0] < lr[1])) {
              issues.push({ path: `${where}.layer_range`, message: `got ${JSON.stringify(lr)}, expected [start, end) with 0 ≤ start < end` });
            } else if (layerRange === undefined) layerRange = [lr[0], lr[1]];
            else if (lr[0] !== layerRange[0] || lr[1] !== layerRange[1]) {
              issues.push({ path: `${where}.layer_range`, message: `got ${JSON.stringify(lr)}, expected ${JSON.stringify(layerRange)} like the first source`, hint: "every source of the single slice must span the same (full) layer range" });
            }
            const ref = parseModelRef(s.model, `${where}.model`, issues);
            if (ref) entries.push({ ref, params: s.parameters as Record<string, unknown> | undefined, where, key: `${where}.model` });
          });
        }
      }
    }
  }

  // base model
  const baseRaw = cfg.base_model ?? sliceBase;
  const baseRef = baseRaw === undefined || baseRaw === null ? undefined : parseModelRef(baseRaw, cfg.base_model !== undefined ? "base_model" : "slices[0].base_model", issues);
  if (cfg.base_model !== undefined && sliceBase !== undefined) issues.push({ path: "slices[0].base_model", message: "base_model given at the top level and in the slice, expected one" });

  const workDtype = parseDtype(cfg.dtype, "dtype", issues);
  const outDtype = parseDtype(cfg.out_dtype, "out_dtype", issues) ?? workDtype;
  if (cfg.dtype !== undefined) notes.push(`dtype ${String(cfg.dtype)}: realign always computes in float32; it sets the output dtype when out_dtype is absent`);

  if (method === undefined) {
    throwIssues(issues, file);
    throw new ConfigError("config.invalid", `invalid merge config ${file}`);
  }

  // parameters: top and slice levels split into method-level and per-model defaults
  const top = readParams(cfg.parameters, "parameters", "top", method, issues);
  const sl = readParams(sliceParams, "slices[0].parameters", "slice", method, issues);
  const globalParams: Record<string, ScheduleValue> = { ...top.global };
  for (const [k, v] of Object.entries(sl.global)) globalParams[k] = withFallback(v, top.global[k])!;

  // roles: base vs contributing models
  const baseIndex = baseRef === undefined ? -1 : entries.findIndex((e) => sameRef(e.ref, baseRef));
  let baseEntry: Entry | undefined;
  let modelEntries = entries;
  if (method.requiresBase) {
    if (baseRef === undefined) issues.push({ path: "base_model", message: `${method.name} needs base_model (the aligned model the others were tuned from)` });
    if (baseIndex >= 0) {
      baseEntry = entries[baseIndex];
      modelEntries = entries.filter((_, i) => i !== baseIndex);
      if (baseEntry!.params !== undefined && Object.keys(baseEntry!.params).length > 0) {
        notes.push(`${baseEntry!.where}: parameters of the base model are ignored by ${method.name} (as in mergekit)`);
      }
    }
  } else if (baseRef !== undefined) {
    if (baseIndex < 0) {
      issues.push({ path: "base_model", message: `${method.name} has no base model role and ${baseRef.path} is not listed under models`, hint: "list it under models (with a weight) or remove base_model" });
    } else if (baseIndex > 0) {
      // the base model is the reference (config.json, tokenizer): put it first, as mergekit's donor
      modelEntries = [entries[baseIndex]!, ...entries.filter((_, i) => i !== baseIndex)];
    }
  }
  if (modelEntries.length < method.minModels && entries.length > 0) {
    issues.push({ path: hasSlices ? "slices[0].sources" : "models", message: `${method.name} needs at least ${method.minModels} model(s) besides the base, got ${modelEntries.length}` });
  }
  if (method.maxModels !== undefined && modelEntries.length > method.maxModels) {
    issues.push({
      path: hasSlices ? "slices[0].sources" : "models",
      message: `${method.name} takes ${method.maxModels} model(s) besides the base, got ${modelEntries.length}`,
      hint: method.name === "slerp" ? "slerp interpolates base_model and one other model; use model_stock, ties or linear for more" : undefined,
    });
  }

  const models = modelEntries.map((e) => {
    const own = readParams(e.params, `${e.where}.parameters`, "model", method!, issues).perModel;
    const params: Record<string, ScheduleValue> = {};
    for (const spec of method!.modelParams) {
      const v = withFallback(own[spec.name], withFallback(sl.perModel[spec.name], top.perModel[spec.name]));
      if (v !== undefined) params[spec.name] = v;
    }
    return { e, params };
  });
  const missing = (specs: readonly ParamSpec[], given: Record<string, unknown>): string[] => specs.filter((s) => s.default === undefined && given[s.name] === undefined).map((s) => s.name);
  for (const m of models) {
    for (const name of missing(method.modelParams, m.params)) {
      issues.push({ path: `${m.e.where}.parameters`, message: `missing ${name} for ${m.e.ref.path} (${method.modelParams.find((s) => s.name === name)!.doc})`, hint: `add parameters: {${name}: …} to the model, or ${name} to the top-level parameters` });
    }
  }
  for (const name of missing(method.globalParams, globalParams)) {
    issues.push({ path: "parameters", message: `missing ${name} for ${method.name} (${method.globalParams.find((s) => s.name === name)!.doc})` });
  }

  // tokenizer_source: base (default behaviour), or a tuned model whose grown vocabulary to keep
  let vocabPolicy: "error" | "tuned" = "error";
  const ts = cfg.tokenizer_source;
  if (ts !== undefined && ts !== null) {
    const tsRef = typeof ts === "string" ? ts : undefined;
    const isBase = tsRef === "base" || (tsRef !== undefined && baseRef !== undefined && sameRef({ path: tsRef, lora: undefined }, baseRef));
    const tuned = tsRef === undefined ? undefined : modelEntries.find((e) => sameRef(e.ref, { path: tsRef, lora: undefined }));
    if (isBase) {
      /* realign's default: tokenizer from the base (reference) model */
    } else if (tuned !== undefined) {
      vocabPolicy = "tuned";
      notes.push(`tokenizer_source ${tsRef}: embeddings grown by that model keep its extra rows and tokenizer (vocab policy "tuned")`);
    } else {
      issues.push({ path: "tokenizer_source", message: `got ${JSON.stringify(ts)}, expected base or one of the models`, hint: ts === "union" ? "vocabulary union is not supported; realign keeps the base tokenizer, or a tuned model's grown vocabulary" : undefined });
    }
  }

  throwIssues(issues, file);

  const input = (e: Entry, params: Record<string, ScheduleValue>, label?: string): RecipeInit["models"][number] => ({
    path: e.ref.path,
    params,
    ...(label === undefined ? {} : { label }),
    ...(e.ref.lora === undefined ? {} : { lora: e.ref.lora }),
  });
  const baseInput = method.requiresBase && baseRef !== undefined ? input(baseEntry ?? { ref: baseRef, params: undefined, where: "base_model", key: "base_model" }, {}, "base") : undefined;
  const recipe = parseRecipe(
    {
      method: method.name,
      ...(baseInput === undefined ? {} : { base: baseInput }),
      models: models.map((m) => input(m.e, m.params, typeof m.params.role === "string" ? m.params.role : undefined)), // safety roles (resta, safemerge) label the inputs
      params: globalParams,
      outDtype,
      seed: options.seed ?? 0,
      vocabPolicy,
    },
    file,
  );
  const sources = entries.map((e) => ({ key: e.key, path: e.ref.path, lora: e.ref.lora }));
  if (baseRef !== undefined && baseIndex < 0) sources.unshift({ key: cfg.base_model !== undefined ? "base_model" : "slices[0].base_model", path: baseRef.path, lora: baseRef.lora });
  return { recipe, layerRange, notes, sources };
}

/**
 * Checks the single slice's layer_range against the model's layer count (known once the checkpoints are open).
 * @throws ConfigError `config.partial_slice` when the range does not cover every layer.
 */
export function checkLayerRange(layerRange: readonly [number, number] | undefined, layerCount: number | undefined, file = "config"): void {
  if (layerRange === undefined || layerCount === undefined) return;
  if (layerRange[0] !== 0 || layerRange[1] !== layerCount) {
    throw new ConfigError("config.partial_slice", `slices[0] layer_range in ${file}: got [${layerRange[0]}, ${layerRange[1]}], expected [0, ${layerCount}] (every layer of the model)`, {
      details: { file, layerRange, layerCount },
      hint: "realign supports the single-slice form over all layers; frankenmerges (layer subsets or stacks) are not supported",
    });
  }
}

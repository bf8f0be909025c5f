/**
 * `npm run bench -- [--layers N] [--methods a,b] [--cold] [--nice] [--json out.json] [--dir D] [--out-dir D]
 *   [--repeat R] [--no-kernel] [--no-fsync] [--keep] [--seed S]` (`--help` lists the cases)
 *
 * Generates a seeded Llama-3-8B-shaped synthetic set (aligned + tuned models, bf16, sharded) in a temp dir,
 * measures the plain file I/O floor in the same run (read the inputs with 16 MiB readSync; write a file of
 * the output's size + fsync, best of ≥ 2), then runs each case through the real CLI in a child process
 * (`node bench/child.mjs stats.json merge … --json`) and prints: case, seconds, params/s, ratio to the
 * floor, peak RSS of the child (process.resourceUsage().maxRSS, worker threads included).
 *
 * Page cache: warm by default (inputs were just written, and are read once before timing); `--cold`
 * syncs and drops caches (root only) before every measurement. `--no-fsync` passes `--no-fsync` to every
 * merge and convert and leaves the fsync out of the floor's write.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeSyntheticLora, writeSyntheticSet, type SyntheticLora, type SyntheticSet } from "./synthetic.ts";
import { dropCaches, syncDisks, timeRead, timeWrite } from "./floor.ts";
import { measureKernels } from "./kernel.ts";
// @ts-expect-error: plain JavaScript helper of bin/realign.mjs, no declarations
import { sourceStamp } from "../scripts/lib-stamp.mjs";

interface Args {
  layers: number;
  methods: string[];
  cold: boolean;
  json: string | undefined;
  dir: string | undefined;
  keep: boolean;
  seed: number;
  repeat: number;
  nice: boolean;
  outDir: string | undefined;
  kernel: boolean;
  /** false with --no-fsync: merges and converts get --no-fsync, the floor's write is not fsynced. */
  fsync: boolean;
}

const ALL_CASES = ["linear", "linear_generic", "task_arithmetic", "ties", "dare_ties"];

function parseArgs(argv: string[]): Args {
  const a: Args = { layers: 2, methods: ALL_CASES, cold: false, json: undefined, dir: undefined, keep: false, seed: 1, repeat: 1, nice: false, outDir: undefined, kernel: true, fsync: true };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === "--layers") a.layers = Number(v());
    else if (k === "--methods") a.methods = v().split(",").filter(Boolean);
    else if (k === "--cold") a.cold = true;
    else if (k === "--json") a.json = v();
    else if (k === "--dir") a.dir = v();
    else if (k === "--keep") a.keep = true;
    else if (k === "--seed") a.seed = Number(v());
    else if (k === "--repeat") a.repeat = Number(v());
    else if (k === "--nice") a.nice = true;
    else if (k === "--out-dir") a.outDir = v();
    else if (k === "--no-kernel") a.kernel = false;
    else if (k === "--no-fsync") a.fsync = false;
    else if (k === "--help" || k === "-h") {
      console.log(
        "npm run bench -- [--layers N] [--methods " +
          "linear,linear_generic,task_arithmetic,ties,dare_ties,ties_generic,dare_ties_generic,convert,convert_sequential,convert_f16,lora,lora_generic" +
          "] [--cold] [--json out.json] [--dir D] [--keep] [--seed S] [--repeat R] [--nice] [--out-dir D] [--no-kernel] [--no-fsync]\nsee docs/performance.md",
      );
      process.exit(0);
    } else throw new Error(`unknown flag ${k}`);
  }
  if (!Number.isInteger(a.layers) || a.layers < 0) throw new Error("--layers must be an integer ≥ 0");
  return a;
}

interface CaseSpec {
  readonly name: string;
  /** Extra environment of the child. */
  readonly env?: Readonly<Record<string, string>>;
  /** Inputs read (for the floor). */
  readonly inputs: readonly string[];
  /** realign arguments, given the output path and a scratch dir. */
  args(out: string, scratch: string): string[];
}

function caseSpecs(set: SyntheticSet, lora: SyntheticLora | undefined): Record<string, CaseSpec> {
  const [t1, t2] = set.tuned;
  const yamlFor = (method: string, scratch: string): string => {
    const path = join(scratch, `${method}.yaml`);
    writeFileSync(
      path,
      [
        `merge_method: ${method}`,
        `base_model: ${set.aligned}`,
        `models:`,
        `  - model: ${t1}`,
        `    parameters: {weight: 0.5, density: 0.5}`,
        `  - model: ${t2}`,
        `    parameters: {weight: 0.5, density: 0.5}`,
        `parameters: {normalize: true}`,
        `dtype: bfloat16`,
        ``,
      ].join("\n"),
    );
    return path;
  };
  return {
    linear: {
      name: "linear λ=0.5",
      inputs: [set.aligned, t1!],
      args: (out) => ["merge", "--aligned", set.aligned, "--tuned", t1!, "--lambda", "0.5", "--out", out, "--json"],
    },
    linear_generic: {
      name: "linear λ=0.5, generic path (REALIGN_FAST=0)",
      env: { REALIGN_FAST: "0" },
      inputs: [set.aligned, t1!],
      args: (out) => ["merge", "--aligned", set.aligned, "--tuned", t1!, "--lambda", "0.5", "--out", out, "--json"],
    },
    task_arithmetic: {
      name: "task_arithmetic λ=0.5",
      inputs: [set.aligned, t1!],
      args: (out) => ["merge", "--aligned", set.aligned, "--tuned", t1!, "--lambda", "0.5", "--method", "task_arithmetic", "--out", out, "--json"],
    },
    convert: {
      name: "convert HF → GGUF (bf16 matrices)",
      inputs: [set.aligned],
      args: (out) => ["convert", "--in", set.aligned, "--out", out, "--type", "bf16", "--json"],
    },
    convert_sequential: {
      name: "convert HF → GGUF (bf16 matrices), sequential path (REALIGN_FAST=0)",
      env: { REALIGN_FAST: "0" },
      inputs: [set.aligned],
      args: (out) => ["convert", "--in", set.aligned, "--out", out, "--type", "bf16", "--json"],
    },
    convert_f16: {
      name: "convert HF → GGUF (f16 matrices, the default --type)",
      inputs: [set.aligned],
      args: (out) => ["convert", "--in", set.aligned, "--out", out, "--type", "f16", "--json"],
    },
    lora: {
      name: `LoRA r=16 adapter as --tuned λ=0.5 (${lora?.targeted ?? 0} projections)`,
      inputs: [set.aligned],
      args: (out) => ["merge", "--aligned", set.aligned, "--tuned", lora!.dir, "--lambda", "0.5", "--out", out, "--json"],
    },
    lora_generic: {
      name: `LoRA r=16 as --tuned λ=0.5, generic path (REALIGN_FAST=0)`,
      env: { REALIGN_FAST: "0" },
      inputs: [set.aligned],
      args: (out) => ["merge", "--aligned", set.aligned, "--tuned", lora!.dir, "--lambda", "0.5", "--out", out, "--json"],
    },
    ties: {
      name: "ties d=0.5 (2 tuned)",
      inputs: [set.aligned, t1!, t2!],
      args: (out, scratch) => ["merge", "--config", yamlFor("ties", scratch), "--out", out, "--json"],
    },
    dare_ties: {
      name: "dare_ties d=0.5 (2 tuned)",
      inputs: [set.aligned, t1!, t2!],
      args: (out, scratch) => ["merge", "--config", yamlFor("dare_ties", scratch), "--out", out, "--json"],
    },
    ties_generic: {
      name: "ties d=0.5 (2 tuned), generic path (REALIGN_FAST=0)",
      env: { REALIGN_FAST: "0" },
      inputs: [set.aligned, t1!, t2!],
      args: (out, scratch) => ["merge", "--config", yamlFor("ties", scratch), "--out", out, "--json"],
    },
    dare_ties_generic: {
      name: "dare_ties d=0.5 (2 tuned), generic path (REALIGN_FAST=0)",
      env: { REALIGN_FAST: "0" },
      inputs: [set.aligned, t1!, t2!],
      args: (out, scratch) => ["merge", "--config", yamlFor("dare_ties", scratch), "--out", out, "--json"],
    },
  };
}

/** Whether bin/realign.mjs will run lib/ (its stamp matches src/; see scripts/lib-stamp.mjs). */
function libIsFresh(root: string): boolean {
  try {
    const built = JSON.parse(readFileSync(join(root, "lib/.stamp.json"), "utf8")) as { count: number; newestMtimeMs: number };
    const now = (sourceStamp as (dir: string) => { count: number; newestMtimeMs: number })(join(root, "src"));
    return built.count === now.count && built.newestMtimeMs === now.newestMtimeMs;
  } catch {
    return false;
  }
}

function weightFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".safetensors"))
    .map((f) => join(dir, f))
    .sort();
}

function dirBytes(dir: string): number {
  if (!statSync(dir).isDirectory()) return statSync(dir).size;
  let n = 0;
  for (const f of readdirSync(dir)) n += statSync(join(dir, f)).size;
  return n;
}

interface Row {
  case: string;
  seconds: number | null;
  paramsPerSecond: number | null;
  ratioToFloor: number | null;
  floorSeconds: number;
  peakRssMiB: number | null;
  cpuSeconds: number | null;
  note?: string;
}

function fmtRate(x: number | null): string {
  if (x === null) return "–";
  return x >= 1e9 ? `${(x / 1e9).toFixed(2)} G/s` : `${(x / 1e6).toFixed(0)} M/s`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const root = fileURLToPath(new URL("..", import.meta.url));
  // the children run bin/realign.mjs: build the kernels and lib/ first (no-ops when up to date) so that the
  // bench measures the compiled entry, as an installed realign runs (bin falls back to tsx otherwise)
  if (process.env.REALIGN_BIN === undefined) {
    for (const script of ["scripts/build-wasm.mjs", "scripts/build-js.mjs"]) spawnSync(process.execPath, [join(root, script)], { stdio: "inherit" });
  }
  const entry = process.env.REALIGN_BIN !== undefined ? `CLI ${process.env.REALIGN_BIN}` : libIsFresh(root) ? "CLI from lib/ (compiled)" : "CLI through tsx (lib/ not built)";
  const work = args.dir ?? mkdtempSync(join(tmpdir(), "realign-bench-"));
  const needTwo = args.methods.some((m) => m.startsWith("ties") || m.startsWith("dare_ties"));
  const cacheKey = join(work, `.set-L${args.layers}-S${args.seed}-T${needTwo ? 2 : 1}.json`);
  let set: SyntheticSet;
  const started = new Date();
  const load0 = loadavg();
  if (args.nice) setPriority(0, -20);
  try {
    if (existsSync(cacheKey)) {
      set = JSON.parse(readFileSync(cacheKey, "utf8")) as SyntheticSet;
      console.error(`reusing synthetic set in ${work}`);
    } else {
      const t0 = performance.now();
      set = writeSyntheticSet(join(work, "set"), { layers: args.layers, seed: args.seed, tuned: needTwo ? 2 : 1 });
      writeFileSync(cacheKey, JSON.stringify(set));
      console.error(`generated ${(set.params / 1e9).toFixed(3)} B params × ${1 + set.tuned.length} checkpoints in ${((performance.now() - t0) / 1000).toFixed(1)} s (${work})`);
    }
    syncDisks();
    let lora: SyntheticLora | undefined;
    if (args.methods.includes("lora") || args.methods.includes("lora_generic")) {
      const dir = join(work, "lora-r16");
      lora = writeSyntheticLora(dir, { layers: args.layers, rank: 16, seed: args.seed });
    }
    if (args.methods.some((m) => m.startsWith("convert"))) {
      // convert needs a tokenizer: the organism's (in the repo); its 640-token vocabulary is only metadata here
      for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(root, "examples/organism/aligned", f), join(set.aligned, f));
    }
    const specs = caseSpecs(set, lora);
    // Floor: per-checkpoint read seconds, and the write of one output (size of one checkpoint's weights).
    const readSec = new Map<string, number>();
    const dirsNeeded = [set.aligned, ...set.tuned];
    if (!args.cold) for (const d of dirsNeeded) timeRead(weightFiles(d)); // warm-up: inputs in page cache
    for (const d of dirsNeeded) {
      if (args.cold) dropCaches();
      readSec.set(d, timeRead(weightFiles(d))[0]);
    }
    if (args.cold) dropCaches();
    const outRoot = args.outDir ?? work;
    // best of ≥ 2 writes, as the cases are best of --repeat: on a VM the first large write after a while can
    // pay for guest pages the host has to fault in again (measured here: up to 6 CPU s more for 3 GB)
    let writeSec = Infinity;
    for (let r = 0; r < Math.max(2, args.repeat); r++) {
      writeSec = Math.min(writeSec, timeWrite(join(outRoot, "floor-write.bin"), set.bytes, args.fsync));
      syncDisks();
    }
    const rows: Row[] = [];
    const floorOf = (inputs: readonly string[]): number => inputs.reduce((s, d) => s + readSec.get(d)!, 0) + writeSec;
    rows.push({
      case: `floor: read 2 inputs + write 1 (plain fs, ${args.fsync ? "fsync" : "no fsync"})`,
      seconds: floorOf([set.aligned, set.tuned[0]!]),
      paramsPerSecond: set.params / floorOf([set.aligned, set.tuned[0]!]),
      ratioToFloor: 1,
      floorSeconds: floorOf([set.aligned, set.tuned[0]!]),
      peakRssMiB: null,
      cpuSeconds: null,
      note: `read ${readSec.get(set.aligned)!.toFixed(3)} + ${readSec.get(set.tuned[0]!)!.toFixed(3)} s, write${args.fsync ? "+fsync" : ""} ${writeSec.toFixed(3)} s (best of ${Math.max(2, args.repeat)})`,
    });
    for (const m of args.methods) {
      const spec = specs[m];
      if (spec === undefined) throw new Error(`unknown case ${m} (known: ${Object.keys(specs).join(", ")})`);
      let best: Row | undefined;
      for (let r = 0; r < args.repeat; r++) {
        const out = join(outRoot, `realign-bench-out-${m}${m.startsWith("convert") ? ".gguf" : ""}`);
        const stats = join(work, `stats-${m}.json`);
        rmSync(out, { recursive: true, force: true });
        rmSync(stats, { force: true });
        if (args.cold) dropCaches();
        else syncDisks();
        const t0 = performance.now();
        const caseArgs = spec.args(out, work);
        if (!args.fsync && (caseArgs[0] === "merge" || caseArgs[0] === "convert")) caseArgs.push("--no-fsync");
        const argv = [process.execPath, join(root, "bench/child.mjs"), stats, ...caseArgs];
        if (args.nice) argv.unshift("nice", "-n", "-20");
        const res = spawnSync(argv[0]!, argv.slice(1), {
          cwd: root,
          env: { ...process.env, ...spec.env },
          encoding: "utf8",
          maxBuffer: 64 * 1024 * 1024,
        });
        const seconds = (performance.now() - t0) / 1000;
        const floor = floorOf(spec.inputs);
        let row: Row;
        if (res.status !== 0 || !existsSync(out)) {
          const msg = (res.stderr || res.stdout || "").trim().split("\n").slice(-1)[0] ?? "";
          row = { case: spec.name, seconds: null, paramsPerSecond: null, ratioToFloor: null, floorSeconds: floor, peakRssMiB: null, cpuSeconds: null, note: `failed (exit ${res.status}): ${msg.slice(0, 160)}` };
        } else {
          const st = JSON.parse(readFileSync(stats, "utf8")) as { maxRssKiB: number; userUs: number; systemUs: number };
          const outBytes = dirBytes(out);
          row = {
            case: spec.name,
            seconds,
            paramsPerSecond: set.params / seconds,
            ratioToFloor: seconds / floor,
            floorSeconds: floor,
            peakRssMiB: st.maxRssKiB / 1024,
            cpuSeconds: (st.userUs + st.systemUs) / 1e6,
            note: `output ${(outBytes / 1e9).toFixed(2)} GB` + (m.startsWith("lora") && lora ? `; B·A: ${(lora.flops / 1e9).toFixed(1)} GFLOP → ${(lora.flops / 1e9 / seconds).toFixed(1)} GFLOP/s over the whole run (lower bound of the kernel's rate)` : ""),
          };
        }
        rmSync(out, { recursive: true, force: true });
        if (best === undefined || (row.seconds !== null && (best.seconds === null || row.seconds < best.seconds))) best = row;
      }
      rows.push(best!);
      console.error(`${best!.case}: ${best!.seconds === null ? best!.note : best!.seconds.toFixed(3) + " s"}`);
    }
    if (args.kernel) {
      const k = await measureKernels();
      const row = (name: string, rate: number): Row => ({ case: name, seconds: set.params / rate, paramsPerSecond: rate, ratioToFloor: null, floorSeconds: 0, peakRssMiB: null, cpuSeconds: null });
      rows.push(row(`kernel only, in memory: WebAssembly SIMD, ${k.workers} workers`, k.wasmWorkers));
      rows.push(row("kernel only, in memory: WebAssembly SIMD, 1 thread", k.wasmOneThread));
      rows.push(row("kernel only, in memory: TypeScript fused, 1 thread", k.tsOneThread));
    }
    const machine = {
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model ?? "unknown",
      node: process.version,
      date: started.toISOString(),
      cache: args.cold ? "cold (sync; drop_caches before each measurement)" : "warm (inputs in page cache)",
      outDir: args.outDir ?? "(temp dir, same disk as inputs)",
      layers: args.layers,
      params: set.params,
      checkpointBytes: set.bytes,
      repeat: args.repeat,
      loadavg1mStart: load0[0],
      loadavg1mEnd: loadavg()[0],
      nice: args.nice ? -20 : 0,
      fsync: args.fsync,
      entry,
    };
    const header = `| case | seconds | params/s | × floor | peak RSS | CPU s |`;
    const lines = [
      `${(set.params / 1e9).toFixed(3)} B params/checkpoint (Llama-3-8B shape, ${args.layers} layers, bf16, ${(set.bytes / 1e9).toFixed(2)} GB), ${machine.cache}, output to ${machine.outDir}${args.fsync ? "" : " with --no-fsync"}, ${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}, ${machine.date}, load average ${machine.loadavg1mStart.toFixed(1)} → ${machine.loadavg1mEnd.toFixed(1)}${args.nice ? ", bench and merges at nice −20" : ""}, ${entry}`,
      "",
      header,
      `|---|---:|---:|---:|---:|---:|`,
      ...rows.map(
        (r) =>
          `| ${r.case} | ${r.seconds === null ? "–" : r.seconds.toFixed(3)} | ${fmtRate(r.paramsPerSecond)} | ${r.ratioToFloor === null ? "–" : r.ratioToFloor.toFixed(2)} | ${r.peakRssMiB === null ? "–" : r.peakRssMiB.toFixed(0) + " MiB"} | ${r.cpuSeconds === null ? "–" : r.cpuSeconds.toFixed(2)} |`,
      ),
      "",
      ...rows.filter((r) => r.note).map((r) => `- ${r.case}: ${r.note}`),
    ];
    console.log(lines.join("\n"));
    if (args.json) writeFileSync(args.json, JSON.stringify({ machine, rows }, null, 2) + "\n");
  } finally {
    if (!args.keep && args.dir === undefined) rmSync(work, { recursive: true, force: true });
  }
}

await main();

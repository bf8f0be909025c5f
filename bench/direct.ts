/**
 * The fast linear pipeline without the CLI: reads the synthetic set's safetensors headers, merges every
 * tensor λ=0.5 with `runFastLinear` (shared-memory workers, read-ahead, write-behind) into one output
 * safetensors file. Measures the kernel + I/O engine alone (no planning, no CLI start-up).
 * Usage (child process of bench/run.ts): node --import tsx bench/direct.ts <stats.json> <aligned> <tuned> <out.safetensors> [--fsync]
 */
import { open, type FileHandle } from "node:fs/promises";
import { closeSync, openSync, readdirSync, readSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KernelPool } from "../src/merge/workers/pool.ts";
import { fastLinearMemoryBytes, runFastLinear, type FastJob } from "../src/merge/workers/fast-linear.ts";

interface Entry {
  file: string;
  name: string;
  shape: number[];
  begin: number;
  bytes: number;
}

function inventory(dir: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  for (const f of readdirSync(dir).filter((x) => x.endsWith(".safetensors")).sort()) {
    const path = join(dir, f);
    const h = readHeaderJson(path);
    const json = JSON.parse(h) as Record<string, { shape: number[]; data_offsets: [number, number] }>;
    const start = 8 + Buffer.byteLength(h);
    for (const [name, v] of Object.entries(json)) {
      if (name === "__metadata__") continue;
      out.set(name, { file: path, name, shape: v.shape, begin: start + v.data_offsets[0], bytes: v.data_offsets[1] - v.data_offsets[0] });
    }
  }
  return out;
}

/** The JSON header of a safetensors file (the bench's own files: trusted). */
function readHeaderJson(path: string): string {
  const head = Buffer.alloc(8);
  const fd = openSync(path, "r");
  try {
    readSync(fd, head, 0, 8, 0);
    const n = Number(head.readBigUInt64LE(0));
    const b = Buffer.alloc(n);
    readSync(fd, b, 0, n, 8);
    return b.toString("utf8");
  } finally {
    closeSync(fd);
  }
}

async function main(): Promise<void> {
  const [stats, aligned, tuned, outPath, flag] = process.argv.slice(2);
  const a = inventory(aligned!);
  const t = inventory(tuned!);
  const handles = new Map<string, FileHandle>();
  const handle = async (f: string): Promise<FileHandle> => {
    let h = handles.get(f);
    if (!h) handles.set(f, (h = await open(f, "r")));
    return h;
  };
  const out = await open(outPath!, "w");
  const entries = [...a.values()];
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const e of entries) {
    header[e.name] = { dtype: "BF16", shape: e.shape, data_offsets: [off, off + e.bytes] };
    off += e.bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hb = Buffer.alloc(8 + Buffer.byteLength(json));
  hb.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  hb.write(json, 8);
  await out.write(hb, 0, hb.length, 0);
  let pos = hb.length;
  const jobs: FastJob[] = [];
  for (const e of entries) {
    const te = t.get(e.name)!;
    const ha = await handle(e.file);
    const ht = await handle(te.file);
    const base = pos;
    jobs.push({
      numel: e.bytes / 2,
      divisor: undefined,
      terms: [
        { coef: 0.5, read: async (o, dst) => void (await ha.read(dst, 0, dst.length, e.begin + o)) },
        { coef: 0.5, read: async (o, dst) => void (await ht.read(dst, 0, dst.length, te.begin + o)) },
      ],
      write: process.env.DIRECT_NOWRITE ? async () => {} : async (o, bytes) => void (await out.write(bytes, 0, bytes.length, base + o)),
    });
    pos += e.bytes;
  }
  const pool = KernelPool.start({ memoryBytes: fastLinearMemoryBytes(2, 2) });
  try {
    await runFastLinear(jobs, pool);
  } finally {
    await pool.close();
  }
  if (flag === "--fsync") await out.sync();
  await out.close();
  for (const h of handles.values()) await h.close();
  const u = process.resourceUsage();
  writeFileSync(stats!, JSON.stringify({ code: 0, maxRssKiB: u.maxRSS, userUs: u.userCPUTime, systemUs: u.systemCPUTime }));
}

await main();

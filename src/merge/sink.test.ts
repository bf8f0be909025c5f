import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { buildHfDir, llamaConfig, type BuildTensor } from "../../test/builders/safetensors.ts";
import { createShardedWriter, type SyncTarget, type WriteSyncOptions } from "../formats/safetensors/write.ts";
import { recipeFromFlags } from "./recipe.ts";
import { mergeRecipe } from "./run.ts";
import { safetensorsSink } from "./sink.ts";
import { IoError } from "../errors.ts";

interface SyncEvent {
  readonly file: string;
  readonly kind: "datasync" | "fsync";
  readonly phase: "start" | "done";
  /** Whether the merge's final output directory existed when the event happened (it must not, before rename). */
  readonly outExists: boolean;
}

/**
 * A sync hook that records every sync and completes it later (datasync a few event-loop turns later, fsync
 * after 50 ms), so a writer or a merge that did not wait for its syncs would be caught renaming or returning
 * first (no timing is asserted: the delay only gives a wrong order the chance to show); `fail` makes one
 * kind reject.
 */
function recordingSync(events: SyncEvent[], out: string, fail?: "datasync" | "fsync"): NonNullable<WriteSyncOptions["sync"]> {
  return async (fh: SyncTarget, path: string, kind) => {
    const file = basename(path);
    events.push({ file, kind, phase: "start", outExists: existsSync(out) });
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    // a slow fsync: whatever the caller does next (write config.json, rename) gets ample time to run first
    if (kind === "fsync") await new Promise((r) => setTimeout(r, 50));
    if (fail === kind) throw Object.assign(new Error(`injected ${kind} failure`), { code: "EIO" });
    await (kind === "fsync" ? fh.sync() : fh.datasync());
    events.push({ file, kind, phase: "done", outExists: existsSync(out) });
  };
}

test("sharded writer: background datasyncs while writing, every shard fsynced after its last datasync, all done before finish() resolves", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-sink-"));
  try {
    const tensors = [
      { name: "a", dtype: "U8" as const, shape: [40] },
      { name: "b", dtype: "U8" as const, shape: [40] },
      { name: "c", dtype: "U8" as const, shape: [40] },
    ];
    const events: SyncEvent[] = [];
    const w = createShardedWriter(dir, tensors, { maxShardBytes: 40, metadata: { format: "pt" }, directIo: false, syncEveryBytes: 16, sync: recordingSync(events, join(dir, "never")) });
    const data = new Uint8Array(120).map((_, i) => i);
    for (let off = 0; off < 120; off += 8) await w.write(data.subarray(off, off + 8));
    const { files } = await w.finish();
    const shards = files.filter((f) => f.endsWith(".safetensors"));
    assert.equal(shards.length, 3);
    for (const f of shards) {
      const mine = events.filter((e) => e.file === f);
      assert.ok(mine.some((e) => e.kind === "datasync"), `${f}: no background datasync`);
      // at most one sync in flight per file, and the fsync is the last one, completed
      let open = 0;
      for (const e of mine) {
        open += e.phase === "start" ? 1 : -1;
        assert.ok(open <= 1, `${f}: overlapping syncs`);
      }
      assert.deepEqual(mine.slice(-2).map((e) => `${e.kind}:${e.phase}`), ["fsync:start", "fsync:done"]);
    }
    // the shards' fsyncs ran in the background: shard 1's started before shard 3's data was all written
    const firstFsync = events.findIndex((e) => e.kind === "fsync");
    assert.ok(events.slice(firstFsync).some((e) => e.file === shards[2] && e.kind === "datasync"), "shard fsyncs did not overlap later writes");
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, shards[2]!)).subarray(-40)), data.subarray(80));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function bits(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 8) & 0x7f7f;
  });
}

function model(root: string, name: string, seed: number): string {
  const t = (shape: number[], k: number): BuildTensor => ({ dtype: "BF16", shape, bits: bits(shape.reduce((a, b) => a * b, 1), seed * 31 + k) });
  return buildHfDir(join(root, name), {
    tensors: {
      "model.embed_tokens.weight": t([64, 32], 1),
      "model.layers.0.mlp.down_proj.weight": t([32, 48], 2),
      "model.norm.weight": t([32], 3),
      "lm_head.weight": t([64, 32], 4),
    },
    config: llamaConfig({ vocab_size: 64 }),
  });
}

test("runMerge: every shard is fsynced before the output is renamed into place, bytes unchanged by background syncs", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-sink-"));
  try {
    const recipe = recipeFromFlags({ aligned: model(root, "aligned", 1), tuned: model(root, "tuned", 2), lambda: 0.5 });
    const plain = join(root, "plain");
    await mergeRecipe(recipe, { out: plain, maxShardBytes: 4096, writeCard: false });
    const out = join(root, "synced");
    const events: SyncEvent[] = [];
    await mergeRecipe(recipe, { out, writeCard: false, sink: safetensorsSink(4096, { directIo: false, syncEveryBytes: 1000, sync: recordingSync(events, out) }) });
    const shards = readdirSync(out).filter((f) => f.endsWith(".safetensors")).sort();
    assert.ok(shards.length >= 3, `expected several shards, got ${shards.join(", ")}`);
    for (const f of shards) {
      assert.ok(events.some((e) => e.file === f && e.kind === "fsync" && e.phase === "done"), `${f} was not fsynced`);
      assert.ok(events.some((e) => e.file === f && e.kind === "datasync"), `${f} had no background datasync`);
    }
    assert.equal(events.filter((e) => e.outExists).length, 0, "a sync ran after the output was renamed into place");
    assert.deepEqual(readdirSync(out).sort(), readdirSync(plain).sort());
    for (const f of readdirSync(plain)) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(plain, f))), `${f} differs`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("O_DIRECT (the durable default): every shard fsynced before the rename, no background datasync, the buffered path's bytes", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-sink-"));
  try {
    const recipe = recipeFromFlags({ aligned: model(root, "aligned", 1), tuned: model(root, "tuned", 2), lambda: 0.5 });
    const plain = join(root, "plain");
    await mergeRecipe(recipe, { out: plain, maxShardBytes: 4096, writeCard: false, sink: safetensorsSink(4096, { directIo: false }) });
    const out = join(root, "direct");
    const events: SyncEvent[] = [];
    await mergeRecipe(recipe, { out, writeCard: false, sink: safetensorsSink(4096, { syncEveryBytes: 1000, sync: recordingSync(events, out) }) });
    const shards = readdirSync(out).filter((f) => f.endsWith(".safetensors")).sort();
    assert.ok(shards.length >= 3);
    assert.deepEqual(
      events.filter((e) => e.phase === "done").map((e) => `${e.file}:${e.kind}`).sort(),
      shards.map((f) => `${f}:fsync`),
    );
    assert.equal(events.filter((e) => e.outExists).length, 0, "a sync ran after the output was renamed into place");
    assert.deepEqual(readdirSync(out).sort(), readdirSync(plain).sort());
    for (const f of readdirSync(plain)) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(plain, f))), `${f} differs`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("fsync: false: no background datasync and no fsync run, and the bytes are those of a durable merge", async () => {
  const root = mkdtempSync(join(tmpdir(), "realign-sink-"));
  try {
    const recipe = recipeFromFlags({ aligned: model(root, "aligned", 1), tuned: model(root, "tuned", 2), lambda: 0.5 });
    const plain = join(root, "plain");
    await mergeRecipe(recipe, { out: plain, maxShardBytes: 4096, writeCard: false });
    const out = join(root, "nosync");
    const events: SyncEvent[] = [];
    await mergeRecipe(recipe, { out, writeCard: false, sink: safetensorsSink(4096, { fsync: false, syncEveryBytes: 1000, sync: recordingSync(events, out) }) });
    assert.deepEqual(events, []);
    // runMerge's own option reaches its default sink (same bytes; the syncs are not observable there)
    const viaOption = join(root, "option");
    await mergeRecipe(recipe, { out: viaOption, maxShardBytes: 4096, writeCard: false, fsync: false });
    for (const dir of [out, viaOption]) {
      assert.deepEqual(readdirSync(dir).sort(), readdirSync(plain).sort());
      for (const f of readdirSync(plain)) assert.ok(readFileSync(join(dir, f)).equals(readFileSync(join(plain, f))), `${dir}/${f} differs`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/** This process's open file descriptors whose path (deleted or not) lies under `dir` (Linux /proc; [] elsewhere). */
function openFilesUnder(dir: string): string[] {
  if (!existsSync("/proc/self/fd")) return [];
  const out: string[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(join("/proc/self/fd", fd));
      if (target.startsWith(dir + "/")) out.push(target);
    } catch {
      // closed between the listing and the readlink
    }
  }
  return out;
}

for (const [fail, directIo] of [["datasync", false], ["fsync", false], ["fsync", true]] as const) {
  test(`runMerge: a failed ${fail} (${directIo ? "O_DIRECT" : "buffered"}) fails the merge with an IoError and leaves no output`, async () => {
    const root = mkdtempSync(join(tmpdir(), "realign-sink-"));
    try {
      const recipe = recipeFromFlags({ aligned: model(root, "aligned", 1), tuned: model(root, "tuned", 2), lambda: 0.5 });
      const out = join(root, "out");
      await assert.rejects(
        mergeRecipe(recipe, { out, writeCard: false, sink: safetensorsSink(4096, { directIo, syncEveryBytes: 1000, sync: recordingSync([], out, fail) }) }),
        (e: unknown) => e instanceof IoError && /injected/.test(String((e as Error).cause ?? e.message)),
      );
      assert.equal(existsSync(out), false);
      assert.deepEqual(readdirSync(root).sort(), ["aligned", "tuned"]);
      // every output file was closed, the failed shard's too (not left to the garbage collector)
      assert.deepEqual(openFilesUnder(root), []);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}

test("safetensors sink: offers its staging (reserve/commit) only for durable O_DIRECT shards", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-sink-"));
  try {
    const ctx = { dir, file: undefined, tensors: [{ name: "w", dtype: "BF16" as const, shape: [4] }], metadata: {}, plan: undefined as never };
    const staged = await safetensorsSink()(ctx);
    assert.equal(typeof staged.reserve, "function");
    assert.equal(typeof staged.commit, "function");
    await staged.abort();
    for (const sync of [{ fsync: false }, { directIo: false }]) {
      const plain = await safetensorsSink(undefined, sync)(ctx);
      assert.equal(plain.reserve, undefined, JSON.stringify(sync));
      assert.equal(plain.commit, undefined);
      await plain.abort();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

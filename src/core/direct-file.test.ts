import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, write as writeCb } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { wasmApi } from "./wasm-api.ts";
import { DEFAULT_DIRECT_BLOCK, DEFAULT_DIRECT_DEPTH, openDirectFile, useStagingMemory, type DirectFileOptions, type PositionedWrite } from "./direct-file.ts";

/** Deterministic bytes 0..n−1 (a position-dependent pattern, so a misplaced block shows). */
function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >>> 8)) & 0xff;
  return b;
}

/** Appends `data` to a new DirectFile in pieces of the given sizes (cycled), syncs, closes; returns the file bytes. */
async function writeInPieces(path: string, data: Uint8Array, pieces: readonly number[], options: DirectFileOptions): Promise<{ bytes: Buffer; direct: boolean }> {
  const f = await openDirectFile(path, options);
  let off = 0;
  for (let i = 0; off < data.length; i++) {
    const n = Math.min(pieces[i % pieces.length]!, data.length - off);
    const piece = data.slice(off, off + n);
    await f.write(piece);
    piece.fill(0xee); // the caller may reuse its buffer once write() resolved
    off += n;
  }
  await f.sync();
  const direct = f.direct;
  await f.close();
  return { bytes: readFileSync(path), direct };
}

test("DirectFile: any split of any length gives the exact bytes and length (partial last block padded, then truncated)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-direct-"));
  try {
    for (const n of [0, 1, 4095, 4096, 4097, 8192 * 3 + 5, 8192 * 5]) {
      for (const pieces of [[n || 1], [1000, 7, 9000], [8192]]) {
        const data = pattern(n, n + pieces.length);
        const path = join(dir, `f-${n}-${pieces.join("_")}`);
        const { bytes } = await writeInPieces(path, data, pieces, { blockBytes: 8192, depth: 2 });
        assert.equal(statSync(path).size, n);
        assert.ok(bytes.equals(data), `${n} bytes in pieces of ${pieces.join(",")}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("DirectFile: a refused O_DIRECT write (EINVAL) falls back to buffered writes with the same bytes; other errors are thrown", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-direct-"));
  try {
    const data = pattern(8192 * 4 + 100, 3);
    let refused = 0;
    const einval: PositionedWrite = async () => {
      refused++;
      throw Object.assign(new Error("EINVAL: invalid argument, write"), { code: "EINVAL" });
    };
    const fell = await writeInPieces(join(dir, "fallback"), data, [5000], { blockBytes: 8192, depth: 2, directWrite: einval });
    assert.ok(fell.bytes.equals(data));
    assert.equal(fell.direct, false);
    assert.ok(refused >= 1 && refused <= 2, `O_DIRECT was tried ${refused} times (at most once per block in flight)`);

    const eio: PositionedWrite = async () => {
      throw Object.assign(new Error("EIO: i/o error, write"), { code: "EIO" });
    };
    const f = await openDirectFile(join(dir, "eio"), { blockBytes: 8192, depth: 2, directWrite: eio, direct: true });
    if (f.direct) {
      // the failure surfaces at a later write or at sync, never silently
      await assert.rejects(
        (async () => {
          for (let i = 0; i < 4; i++) await f.write(pattern(8192, i));
          await f.sync();
        })(),
        /EIO/,
      );
    }
    await f.abort();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("DirectFile: no write after sync(); direct: false writes the same bytes through the page cache", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-direct-"));
  try {
    const f = await openDirectFile(join(dir, "ended"), { blockBytes: 8192 });
    await f.write(pattern(10, 1));
    await f.sync();
    await assert.rejects(f.write(pattern(1, 1)), /write after sync\(\), close\(\) or abort\(\)/);
    await f.close();
    assert.equal(statSync(join(dir, "ended")).size, 10);
    const data = pattern(20000, 9);
    const plain = await writeInPieces(join(dir, "plain"), data, [3000], { blockBytes: 8192, direct: false });
    assert.equal(plain.direct, false);
    assert.ok(plain.bytes.equals(data));
    await assert.rejects(openDirectFile(join(dir, "bad"), { blockBytes: 1000 }), RangeError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("DirectFile: files open at once share one staging pool (2 blocks here) and each gets its own exact bytes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-direct-"));
  try {
    const opts = { blockBytes: 8192, depth: 2 };
    const a = await openDirectFile(join(dir, "a"), opts);
    const b = await openDirectFile(join(dir, "b"), opts);
    const da = pattern(8192 * 3 + 17, 1);
    const db = pattern(8192 * 2 + 4000, 2);
    // interleaved: each file holds a partly filled block while the other needs one
    for (let off = 0; off < Math.max(da.length, db.length); off += 5000) {
      if (off < da.length) await a.write(da.subarray(off, Math.min(off + 5000, da.length)));
      if (off < db.length) await b.write(db.subarray(off, Math.min(off + 5000, db.length)));
    }
    await Promise.all([a.sync(), b.sync()]);
    await Promise.all([a.close(), b.close()]);
    assert.ok(readFileSync(join(dir, "a")).equals(da));
    assert.ok(readFileSync(join(dir, "b")).equals(db));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("DirectFile: reserved bytes (two reservations ahead of the commits, crossing block ends) land in file order; write, sync and over-commits are refused while bytes are reserved", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-direct-"));
  try {
    for (const direct of [true, false]) {
      const path = join(dir, `reserved-${direct}`);
      const data = pattern(77 + 5000 + 8192 + 13 + 20000 + 3 + 9000, 4);
      const f = await openDirectFile(path, { blockBytes: 8192, depth: 4, direct });
      await f.write(data.subarray(0, 77)); // a header, written the plain way
      const sizes = [5000, 8192, 13, 20000, 3, 9000];
      let at = 77;
      const queue: { views: Uint8Array[]; from: number; n: number }[] = [];
      const viewCounts: number[] = [];
      const fillAndCommit = (): void => {
        const r = queue.shift()!;
        let o = r.from;
        for (const v of r.views) {
          v.set(data.subarray(o, o + v.length));
          o += v.length;
        }
        assert.equal(o, r.from + r.n, "the views hold exactly the reserved bytes");
        f.commit(r.n);
      };
      for (const n of sizes) {
        const views = await f.reserve(n);
        viewCounts.push(views.length);
        queue.push({ views, from: at, n });
        at += n;
        if (queue.length === 2) fillAndCommit();
      }
      await assert.rejects(f.write(pattern(1, 1)), /reserved bytes are not committed/);
      await assert.rejects(f.sync(), /reserved bytes were not committed/);
      assert.throws(() => f.commit(10_000), /commit of 10000 bytes, 9000 reserved/);
      await assert.rejects(f.reserve(-1), RangeError);
      fillAndCommit();
      await f.sync();
      await f.close();
      // bytes 77–5077 lie in block 0; 5077–13269 cross 8192; 13282–33282 cross 16384, 24576 and 32768; 33285–42285 cross 40960
      assert.deepEqual(viewCounts, [1, 2, 1, 4, 1, 2]);
      assert.equal(statSync(path).size, data.length);
      assert.ok(readFileSync(path).equals(data), `direct: ${direct}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("useStagingMemory: files of the default geometry stage in the given memory until it is restored; misaligned ranges are refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-direct-"));
  // DEFAULT_DIRECT_DEPTH × DEFAULT_DIRECT_BLOCK + one page: virtual until touched (two blocks are)
  const memory = new wasmApi!.Memory({ initial: (DEFAULT_DIRECT_DEPTH * DEFAULT_DIRECT_BLOCK) / 65536 + 1, maximum: (DEFAULT_DIRECT_DEPTH * DEFAULT_DIRECT_BLOCK) / 65536 + 1 });
  assert.throws(() => useStagingMemory(memory.buffer, 100), RangeError);
  const restore = useStagingMemory(memory.buffer, 4096);
  try {
    const data = pattern(DEFAULT_DIRECT_BLOCK + 1000, 6);
    const f = await openDirectFile(join(dir, "staged"));
    await f.write(data.subarray(0, 500));
    const views = await f.reserve(data.length - 500);
    assert.equal(views.length, 2);
    for (const v of views) {
      assert.equal(v.buffer, memory.buffer);
      assert.ok(v.byteOffset >= 4096 && v.byteOffset + v.length <= 4096 + DEFAULT_DIRECT_DEPTH * DEFAULT_DIRECT_BLOCK);
    }
    views[0]!.set(data.subarray(500, 500 + views[0]!.length));
    views[1]!.set(data.subarray(500 + views[0]!.length));
    f.commit(data.length - 500);
    await f.sync();
    await f.close();
    assert.ok(readFileSync(join(dir, "staged")).equals(data));
  } finally {
    restore();
  }
  try {
    const g = await openDirectFile(join(dir, "own"));
    const [v] = await g.reserve(10);
    assert.notEqual(v!.buffer, memory.buffer, "after restore(): the module's own staging");
    v!.set(pattern(10, 1));
    g.commit(10);
    await g.close();
    assert.ok(readFileSync(join(dir, "own")).equals(pattern(10, 1)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("DirectFile: a reserve that waits for a block while commits write earlier ones places its bytes right; a failed write surfaces at commit; abort ends a waiting reserve and frees every block", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-direct-"));
  try {
    // writes wait for a gate, so only two blocks exist and both are held
    let open: () => void = () => {};
    let gate = new Promise<void>((r) => (open = r));
    const gated: PositionedWrite = async (fd, buf, length, position) => {
      await gate;
      return new Promise((resolve, reject) => writeCb(fd, buf, 0, length, position, (e, n) => (e ? reject(e) : resolve(n))));
    };
    const data = pattern(3 * 8192 + 100, 8);
    const f = await openDirectFile(join(dir, "gated"), { blockBytes: 8192, depth: 2, directWrite: gated });
    const fill = (views: Uint8Array[], from: number): void => void views.reduce((at, v) => (v.set(data.subarray(at, at + v.length)), at + v.length), from);
    const a = await f.reserve(8192 + 50); // blocks 0 and 1
    const third = f.reserve(8192); // needs block 2: waits, as both blocks are held
    fill(a, 0);
    f.commit(8192 + 50); // block 0 is full: its write starts (and waits at the gate)
    open(); // block 0's write completes and frees it for the waiting reserve
    const b = await third;
    assert.deepEqual(b.map((v) => v.length), [8192 - 50, 50]);
    fill(b, 8192 + 50);
    f.commit(8192);
    const c = await f.reserve(data.length - 2 * 8192 - 50);
    fill(c, 2 * 8192 + 50);
    f.commit(data.length - 2 * 8192 - 50);
    await f.sync();
    await f.close();
    assert.ok(readFileSync(join(dir, "gated")).equals(data));

    // a write that fails: the next commit reports it
    const eio: PositionedWrite = async () => {
      throw Object.assign(new Error("EIO: i/o error, write"), { code: "EIO" });
    };
    const g = await openDirectFile(join(dir, "eio"), { blockBytes: 8192, depth: 2, directWrite: eio, direct: true });
    if (g.direct) {
      const v = await g.reserve(8192);
      g.commit(8192);
      await new Promise((r) => setImmediate(r)); // the failed write settles in microtasks
      await assert.rejects(async () => g.commit(0), /EIO/);
      void v;
    }
    await g.abort();

    // abort while a reserve waits for a block: the reserve fails, and every block is free again
    gate = new Promise<void>((r) => (open = r));
    const h = await openDirectFile(join(dir, "aborted"), { blockBytes: 8192, depth: 2, directWrite: gated });
    const held = await h.reserve(2 * 8192);
    fill(held, 0);
    const waiting = h.reserve(1);
    const abort = h.abort();
    await assert.rejects(waiting, /aborted while reserving/);
    open();
    await abort;
    assert.throws(() => h.commit(0), /commit after close\(\) or abort\(\)/);
    const k = await openDirectFile(join(dir, "after"), { blockBytes: 8192, depth: 2 });
    const all = await k.reserve(2 * 8192); // both blocks: none was lost
    fill(all, 0);
    k.commit(2 * 8192);
    await k.close();
    assert.ok(readFileSync(join(dir, "after")).equals(data.subarray(0, 2 * 8192)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("useStagingMemory: overlapping uses restored in either order leave the latest one still in use, then the module's own", async () => {
  const pages = (DEFAULT_DIRECT_DEPTH * DEFAULT_DIRECT_BLOCK) / 65536 + 1;
  const a = new wasmApi!.Memory({ initial: pages, maximum: pages });
  const b = new wasmApi!.Memory({ initial: pages, maximum: pages });
  const dir = mkdtempSync(join(tmpdir(), "realign-direct-"));
  const stagedIn = async (name: string): Promise<ArrayBufferLike> => {
    const f = await openDirectFile(join(dir, name));
    const [v] = await f.reserve(1);
    v![0] = 7;
    f.commit(1);
    await f.close();
    return v!.buffer;
  };
  try {
    const restoreA = useStagingMemory(a.buffer, 0);
    const restoreB = useStagingMemory(b.buffer, 65536);
    assert.equal(await stagedIn("1"), b.buffer);
    restoreA(); // A's merge ends first: B's staging stays
    assert.equal(await stagedIn("2"), b.buffer);
    restoreA(); // idempotent
    restoreB();
    const own = await stagedIn("3");
    assert.ok(own !== a.buffer && own !== b.buffer);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

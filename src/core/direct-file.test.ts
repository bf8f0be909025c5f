import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDirectFile, type DirectFileOptions, type PositionedWrite } from "./direct-file.ts";

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
    await assert.rejects(f.write(pattern(1, 1)), /write after sync\(\) or close\(\)/);
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

/**
 * The plain file I/O floor the merge is compared against: read every input weight file with positioned
 * `readSync` into one reused 16 MiB buffer (the fastest Node read measured on this machine, as fast as
 * `cat`), and write a file of the output's size in 16 MiB chunks followed by fsync (or not: `--no-fsync`).
 */
import { closeSync, fsyncSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { execSync } from "node:child_process";

const CHUNK = 16 * 1024 * 1024;

/** Seconds to read `files` end to end with 16 MiB readSync calls. @returns [seconds, bytes]. */
export function timeRead(files: readonly string[]): [number, number] {
  const buf = Buffer.allocUnsafe(CHUNK);
  let bytes = 0;
  const t0 = performance.now();
  for (const f of files) {
    const fd = openSync(f, "r");
    try {
      let pos = 0;
      for (;;) {
        const n = readSync(fd, buf, 0, CHUNK, pos);
        if (n === 0) break;
        pos += n;
      }
      bytes += pos;
    } finally {
      closeSync(fd);
    }
  }
  return [(performance.now() - t0) / 1000, bytes];
}

/** Seconds to write `bytes` bytes to `path` in 16 MiB chunks and fsync it (unless `fsync` is false); the file is removed after. */
export function timeWrite(path: string, bytes: number, fsync = true): number {
  const buf = Buffer.alloc(CHUNK, 0x3c);
  const t0 = performance.now();
  const fd = openSync(path, "w");
  try {
    for (let left = bytes; left > 0; left -= CHUNK) writeSync(fd, buf, 0, Math.min(CHUNK, left));
    if (fsync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const s = (performance.now() - t0) / 1000;
  rmSync(path, { force: true });
  return s;
}

/** Flushes dirty pages and drops the page cache (root only on Linux). @returns false when not permitted. */
export function dropCaches(): boolean {
  try {
    execSync("sync; echo 3 > /proc/sys/vm/drop_caches", { stdio: "ignore", shell: "/bin/sh" });
    return true;
  } catch {
    return false;
  }
}

/** Flushes dirty pages (so one measurement's writeback does not land in the next). */
export function syncDisks(): void {
  execSync("sync", { stdio: "ignore" });
}

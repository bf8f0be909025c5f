/**
 * Atomic outputs: everything realign writes goes to a temp path beside the target and is renamed into
 * place only when complete, so a failure or Ctrl-C never leaves a half-written `--out`.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { OutputExistsError, fsError } from "../errors.ts";

/** Temp paths still owned by this process; removed synchronously if the process exits early. */
const pending = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const p of pending) {
      try {
        rmSync(p, { recursive: true, force: true });
      } catch {
        // best effort at exit
      }
    }
  });
}

export interface AtomicOutputOptions {
  /** Replace an existing target. @default false */
  force?: boolean;
  /** The target is a directory (created empty) rather than a single file. @default true */
  isDirectory?: boolean;
  /**
   * Durable commit: before the rename, fsync every file under the temp path (files already synced cost
   * little) and the directories; after it, the parent directory. A power loss then cannot leave a renamed
   * output with empty or missing files. @default false
   */
  fsync?: boolean;
}

/** fsyncs a directory (where the platform allows it: Linux and macOS do, Windows refuses opening one). */
function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // a directory cannot be opened or synced here: the files themselves are synced
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** fsyncs `path`: a file, or a directory with everything under it (the directories after their entries). */
function fsyncTree(path: string): void {
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path)) fsyncTree(join(path, name));
    fsyncDir(path);
    return;
  }
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A temp path that becomes `target` on `commit()` and disappears on `abort()`. */
export interface AtomicOutput {
  /** Final path (absolute). */
  readonly target: string;
  /** Where to write now (a directory if isDirectory, else a file path). */
  readonly tempPath: string;
  /** Renames tempPath onto target (replacing it if force), after syncing it with `fsync`. Idempotent. */
  commit(): void;
  /** Removes tempPath. Safe to call after commit (no-op). */
  abort(): void;
}

/**
 * Prepares an atomic output at `target`: checks it does not exist (unless force), creates a temp
 * directory (or reserves a temp file path) in the same parent directory so the final rename is atomic.
 * @throws OutputExistsError (exit 2) when target exists and force is false.
 */
export function openAtomicOutput(target: string, options: AtomicOutputOptions = {}): AtomicOutput {
  const abs = resolve(target);
  const isDirectory = options.isDirectory ?? true;
  if (existsSync(abs) && !options.force) {
    throw new OutputExistsError("output.exists", `output ${target} already exists`, {
      details: { file: abs },
      hint: "choose another --out or pass --force to replace it",
    });
  }
  const parent = dirname(abs);
  try {
    mkdirSync(parent, { recursive: true });
  } catch (e) {
    throw fsError(e, parent, "creating output directory");
  }
  const tempPath = join(parent, `.${basename(abs)}.realign-tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  if (isDirectory) {
    try {
      mkdirSync(tempPath);
    } catch (e) {
      throw fsError(e, tempPath, "creating temp output");
    }
  }
  installExitHook();
  pending.add(tempPath);
  let done = false;
  return {
    target: abs,
    tempPath,
    commit() {
      if (done) return;
      try {
        if (options.fsync === true) fsyncTree(tempPath);
        if (existsSync(abs)) {
          const trash = `${tempPath}.old`;
          renameSync(abs, trash);
          pending.add(trash);
          renameSync(tempPath, abs);
          rmSync(trash, { recursive: true, force: true });
          pending.delete(trash);
        } else {
          renameSync(tempPath, abs);
        }
        if (options.fsync === true) fsyncDir(parent);
      } catch (e) {
        throw fsError(e, abs, "moving output into place");
      }
      pending.delete(tempPath);
      done = true;
    },
    abort() {
      if (done) return;
      rmSync(tempPath, { recursive: true, force: true });
      pending.delete(tempPath);
      done = true;
    },
  };
}

/**
 * Runs `fn(tempPath)` and commits on success, aborts on any error (re-thrown).
 * The usual way to write an output: `await withAtomicOutput(out, {force}, async (tmp) => {...})`.
 */
export async function withAtomicOutput<T>(
  target: string,
  options: AtomicOutputOptions,
  fn: (tempPath: string) => Promise<T>,
): Promise<T> {
  const out = openAtomicOutput(target, options);
  try {
    const result = await fn(out.tempPath);
    out.commit();
    return result;
  } catch (e) {
    out.abort();
    throw e;
  }
}

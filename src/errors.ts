/**
 * realign's error hierarchy. Every error a user can cause or meet is a `RealignError` carrying a stable
 * `code` (`<area>.<problem>`), the facts in `details`, and an optional `hint` (the fix). The exit code
 * follows from the class (see docs/cli.md). Library code throws these and never prints or exits; only
 * `src/cli/main.ts` formats them.
 *
 * Message form: `<what> in <where>: got <x>, expected <y>`.
 */

/** Facts attached to an error: file, tensor, offsets, values. Printed with `--json`. */
export type ErrorDetails = Record<string, unknown>;

export interface RealignErrorOptions {
  /** Facts: file, tensor, got, expected, … */
  details?: ErrorDetails;
  /** One line telling the user how to fix it. */
  hint?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/** Base class. `exitCode` is what the CLI exits with when this error reaches it. */
export class RealignError extends Error {
  readonly code: string;
  readonly details: ErrorDetails;
  readonly hint: string | undefined;
  readonly exitCode: number = 1;

  constructor(code: string, message: string, options: RealignErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? {};
    this.hint = options.hint;
  }
}

/** The user must act: bad flags, bad config, malformed files, incompatible models. Exit 2. */
export class InputError extends RealignError {
  override readonly exitCode: number = 2;
}
/** A command-line flag or argument is wrong. */
export class UsageError extends InputError {}
/** A config/recipe (YAML, JSON) is wrong. */
export class ConfigError extends InputError {}
/** A file on disk does not follow its format (safetensors, GGUF, index JSON, adapter). */
export class FormatError extends InputError {}
/** Two checkpoints cannot be merged as given (missing tensor, shape, dtype, vocabulary). */
export class IncompatibleModelsError extends InputError {}
/** The output path exists and `--force` was not given. */
export class OutputExistsError extends InputError {}

/** The environment failed: endpoint down after retries, disk full, permission denied. Exit 3. */
export class ExternalError extends RealignError {
  override readonly exitCode: number = 3;
}
/** An inference backend (HTTP endpoint, node-llama-cpp) failed after retries. */
export class BackendError extends ExternalError {}
/** A filesystem operation failed for a reason outside realign's control. */
export class IoError extends ExternalError {}

/** A `--require-*` gate was not met. Exit 4. */
export class GateFailedError extends RealignError {
  override readonly exitCode: number = 4;
}

/** Interrupted by the user (Ctrl-C); partial output was removed. Exit 130. */
export class CancelledError extends RealignError {
  override readonly exitCode: number = 130;
  constructor(message = "cancelled", options: RealignErrorOptions = {}) {
    super("cancelled", message, options);
  }
}

/** A broken invariant inside realign: a bug. Exit 1. */
export class InternalError extends RealignError {
  constructor(message: string, options: RealignErrorOptions = {}) {
    super("internal", message, options);
  }
}

/** True for any realign error (also across module copies, by duck typing on `code` + `exitCode`). */
export function isRealignError(e: unknown): e is RealignError {
  return e instanceof RealignError;
}

/**
 * Wraps a Node filesystem error (ENOENT, EACCES, ENOSPC, …) into a realign error naming the file.
 * Missing files and permission problems are the user's to fix (InputError, exit 2); the rest is IoError.
 */
export function fsError(err: unknown, file: string, action: string): RealignError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") {
    return new InputError("fs.not_found", `${action}: no such file or directory: ${file}`, {
      details: { file },
      hint: "check the path",
      cause: err,
    });
  }
  if (code === "EACCES" || code === "EPERM") {
    return new InputError("fs.permission_denied", `${action}: permission denied: ${file}`, {
      details: { file },
      cause: err,
    });
  }
  if (code === "EISDIR" || code === "ENOTDIR") {
    return new InputError("fs.wrong_kind", `${action}: ${file} is ${code === "EISDIR" ? "a directory" : "not a directory"}`, {
      details: { file },
      hint: code === "EISDIR" ? "give a file here" : "a file stands where this path needs a directory: check the path",
      cause: err,
    });
  }
  if (code === "EEXIST") {
    // (mkdir -p where a component of the path is a file)
    return new InputError("fs.exists", `${action}: ${file}: part of this path exists and is not a directory`, {
      details: { file },
      hint: "choose a path whose parent directories are directories or do not exist yet",
      cause: err,
    });
  }
  if (code === "ENOSPC") {
    return new IoError("fs.no_space", `${action}: no space left on device writing ${file}`, {
      details: { file },
      hint: "free disk space or choose another --out",
      cause: err,
    });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new IoError("fs.failed", `${action}: ${file}: ${msg}`, { details: { file }, cause: err });
}

/** Turns errors and progress events into what a person (or `--json`) reads. */
import { RealignError } from "../errors.ts";
import type { OnEvent, ProgressEvent } from "../core/events.ts";

/** `realign: <message>` plus an indented `hint:` line; non-realign errors are labelled as bugs. */
export function formatError(e: unknown): string {
  if (e instanceof RealignError) {
    let s = `realign: ${e.message}`;
    if (e.hint) s += `\n  hint: ${e.hint}`;
    return s;
  }
  const msg = e instanceof Error ? e.message : String(e);
  return `realign: internal error: ${msg}\n  hint: this is a bug in realign; rerun with REALIGN_DEBUG=1 for a stack trace and report it`;
}

/**
 * Rewrites one of commander's own parse errors (unknown command/option, missing argument, invalid choice) into
 * realign's error form: `realign: <message>` plus a `  hint:` line carrying commander's "did you mean" (if any)
 * and where to read the usage. `raw` is what commander passes to `outputError`, e.g.
 * `error: unknown option '--lamda'\n(Did you mean --lambda?)\n`; `commandPath` is e.g. `realign merge`.
 */
export function formatCommanderError(raw: string, commandPath: string): string {
  const lines = raw.replace(/\n+$/, "").split("\n");
  let head = (lines[0] ?? "").replace(/^error: /, "");
  let suggestion: string | undefined;
  for (const l of lines.slice(1)) {
    const m = /^\(Did you mean (.*)\?\)$/.exec(l.trim());
    if (m) suggestion = m[1];
    else if (l.trim() !== "") head += ` ${l.trim()}`;
  }
  const help = `run ${commandPath} --help`;
  const hint = suggestion !== undefined ? `did you mean ${suggestion}? (${help})` : `${help} for usage`;
  return `realign: ${head}\n  hint: ${hint}`;
}

/** The `--json` form of an error. */
export function errorJson(e: unknown): { error: { code: string; message: string; hint?: string; details?: unknown } } {
  if (e instanceof RealignError) {
    return { error: { code: e.code, message: e.message, hint: e.hint, details: e.details } };
  }
  return { error: { code: "internal", message: e instanceof Error ? e.message : String(e) } };
}

/**
 * A progress reporter: a redrawn bar on a TTY (stderr), silent otherwise. Warnings always go to stderr.
 * Returns the callback and a `stop()` to clear the bar.
 */
export async function createProgress(options: { quiet?: boolean } = {}): Promise<{ onEvent: OnEvent; stop: () => void }> {
  const isTTY = Boolean(process.stderr.isTTY) && !options.quiet;
  if (!isTTY) {
    return {
      onEvent: (ev: ProgressEvent) => {
        if (ev.kind === "warning") process.stderr.write(`realign: warning: ${ev.message}\n`);
      },
      stop: () => {},
    };
  }
  const { default: cliProgress } = await import("cli-progress");
  let bar: InstanceType<typeof cliProgress.SingleBar> | undefined;
  let phase = "";
  const stop = (): void => {
    bar?.stop();
    bar = undefined;
  };
  return {
    onEvent: (ev: ProgressEvent) => {
      if (ev.kind === "warning") {
        process.stderr.write(`realign: warning: ${ev.message}\n`);
        return;
      }
      if (ev.kind === "phase") {
        stop();
        phase = ev.name;
        bar = new cliProgress.SingleBar(
          { format: `${phase} |{bar}| {percentage}% {value}/{total} {label}`, stream: process.stderr, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(ev.total ?? 0, 0, { label: "" });
        return;
      }
      bar?.setTotal(ev.total);
      bar?.update(ev.done, { label: ev.label ?? "" });
    },
    stop,
  };
}

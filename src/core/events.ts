/**
 * Progress events shared by long operations (merge, convert, eval, sweep). Library code reports through
 * an optional `onEvent` callback; the CLI turns events into a progress bar (TTY) or nothing / JSON lines.
 */
export type ProgressEvent =
  /** A phase starts: `total` units of work (tensors, bytes, prompts) follow. */
  | { kind: "phase"; name: string; total?: number; unit?: "tensors" | "bytes" | "items" | "points" }
  /** `done` of `total` units finished in the current phase; `label` names the current item. */
  | { kind: "progress"; done: number; total: number; label?: string }
  /** A note for the user that is not an error (e.g. a fallback taken). */
  | { kind: "warning"; message: string };

export type OnEvent = (event: ProgressEvent) => void;

/** A callback that ignores everything. */
export const NO_EVENTS: OnEvent = () => {};

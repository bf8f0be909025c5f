import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { convertToGguf } from "./convert.ts";
import { CancelledError } from "../errors.ts";

const ALIGNED = fileURLToPath(new URL("../../examples/organism/aligned", import.meta.url));

for (const fast of [true, false]) test(`an aborted conversion throws CancelledError and leaves neither the output nor a temp file (${fast ? "stream" : "sequential path"})`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-cancel-"));
  try {
    const controller = new AbortController();
    const events: string[] = [];
    const run = convertToGguf({
      input: ALIGNED,
      output: join(dir, "a.gguf"),
      signal: controller.signal,
      fast,
      onEvent: (e) => {
        if (e.kind === "progress") {
          events.push(e.label ?? "");
          if (e.done === 3) controller.abort();
        }
      },
    });
    await assert.rejects(run, CancelledError);
    assert.equal(events.length, 3);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Test helper: the organism's checkpoints converted to F32 GGUF once per test process (src/convert), in a temp
 * directory removed at exit. F32 is exact for the organism's bf16 weights, so greedy text equals eval.json's
 * transformers samples.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { convertToGguf } from "../../src/convert/convert.ts";

export const ORGANISM_DIR = fileURLToPath(new URL("../../examples/organism/", import.meta.url));

let dir: string | undefined;
const done = new Map<string, Promise<string>>();

/** Path of `examples/organism/<name>` converted to an F32 GGUF (cached per process). */
export function organismGguf(name: "aligned" | "finetuned" | "base"): Promise<string> {
  if (dir === undefined) {
    const d = mkdtempSync(join(tmpdir(), "realign-test-gguf-"));
    dir = d;
    process.once("exit", () => rmSync(d, { recursive: true, force: true }));
  }
  const out = join(dir, `${name}.gguf`);
  let p = done.get(name);
  if (p === undefined) {
    p = convertToGguf({ input: join(ORGANISM_DIR, name), output: out, type: "f32" }).then(() => out);
    done.set(name, p);
  }
  return p;
}
